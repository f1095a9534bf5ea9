"""Lambda runs concurrently: each invocation in an execution environment (a process) of its own.

The functions here rendezvous through files: each one marks that it started, then waits until its
partner has started too. Serialised invocations could never both see the other's mark; the wait
has a bound only so that a broken runtime fails the test instead of hanging it.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from ecs_canary_cli.local import Emulator
from ecs_canary_cli.local.patches import CONFIG

RENDEZVOUS = """
import os
import time
from pathlib import Path

STARTS = [0]  # module state: counts the invocations this execution environment served


def handler(event, context):
    STARTS[0] += 1
    folder = Path(event["folder"])
    (folder / event["me"]).write_text(str(os.getpid()))
    deadline = time.monotonic() + event.get("patience", 60)
    while not (folder / event["partner"]).exists():
        if time.monotonic() > deadline:
            return {"met": False}
        time.sleep(0.005)
    print("met", event["partner"])
    return {
        "met": True,
        "pid": os.getpid(),
        "who": os.environ.get("WHO"),
        "function": os.environ.get("AWS_LAMBDA_FUNCTION_NAME"),
        "log_stream": context.log_stream_name,
        "env_log_stream": os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME"),
        "request_id": context.aws_request_id,
        "served": STARTS[0],
    }
"""


def _zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("rendezvous.py", source)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def functions(aws: Emulator, stack: dict[str, str]) -> dict[str, str]:
    """Two functions with the same code and a different WHO variable each."""
    lam = aws.client("lambda")
    role = lam.get_function_configuration(FunctionName=stack["EchoFunction"])["Role"]
    names = {}
    for who in ("alpha", "beta"):
        name = f"emulator-concurrency-{who}"
        lam.create_function(
            FunctionName=name,
            Runtime="python3.13",
            Role=role,
            Handler="rendezvous.handler",
            Timeout=90,
            Environment={"Variables": {"WHO": who}},
            Code={"ZipFile": _zip(RENDEZVOUS)},
        )
        names[who] = name
    return names


@pytest.fixture
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="ecs-canary-rendezvous-") as name:
        yield Path(name)


def _invoke(aws: Emulator, name: str, event: dict[str, Any]) -> tuple[str | None, Any]:
    response = aws.client("lambda").invoke(FunctionName=name, Payload=json.dumps(event).encode())
    return response.get("FunctionError"), json.loads(response["Payload"].read() or b"null")


def _both(aws: Emulator, first: tuple[str, dict[str, Any]], second: tuple[str, dict[str, Any]]) -> list[Any]:
    """Invoke the two at once (RequestResponse, from two threads); their answers, in order."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(_invoke, aws, name, event) for name, event in (first, second)]
        answers = [future.result() for future in futures]
    for error, body in answers:
        assert error is None, body
    return [body for _, body in answers]


def test_two_functions_run_at_once_each_with_its_own_environment(
    aws: Emulator, functions: dict[str, str], folder: Path
) -> None:
    alpha, beta = _both(
        aws,
        (functions["alpha"], {"folder": str(folder), "me": "a", "partner": "b"}),
        (functions["beta"], {"folder": str(folder), "me": "b", "partner": "a"}),
    )
    assert alpha["met"]
    assert beta["met"]
    assert (alpha["who"], beta["who"]) == ("alpha", "beta")
    assert (alpha["function"], beta["function"]) == (functions["alpha"], functions["beta"])
    assert alpha["pid"] != beta["pid"] != os.getpid()
    assert os.environ.get("WHO") is None  # nothing leaks into the emulator's own environment
    assert os.environ.get("AWS_LAMBDA_FUNCTION_NAME") is None


def test_two_invocations_of_one_function_run_in_two_execution_environments(
    aws: Emulator, functions: dict[str, str], folder: Path
) -> None:
    name = functions["alpha"]
    one, two = _both(
        aws,
        (name, {"folder": str(folder), "me": "1", "partner": "2"}),
        (name, {"folder": str(folder), "me": "2", "partner": "1"}),
    )
    assert one["met"]
    assert two["met"]
    assert one["who"] == two["who"] == "alpha"
    assert one["pid"] != two["pid"]
    assert one["request_id"] != two["request_id"]
    # Each environment has a log stream of its own, in its context and its environment alike.
    assert one["log_stream"] != two["log_stream"]
    assert (one["log_stream"], two["log_stream"]) == (one["env_log_stream"], two["env_log_stream"])


def test_a_warm_environment_serves_the_next_invocation(
    aws: Emulator, functions: dict[str, str], folder: Path
) -> None:
    (folder / "ready").write_text("")
    name = functions["beta"]
    first = _invoke(aws, name, {"folder": str(folder), "me": "x", "partner": "ready"})[1]
    second = _invoke(aws, name, {"folder": str(folder), "me": "y", "partner": "ready"})[1]
    assert second["pid"] == first["pid"]  # the same environment, its module state kept
    assert second["served"] == first["served"] + 1
    assert second["log_stream"] == first["log_stream"]


def test_log_lines_go_to_cloudwatch_logs_not_to_stdout(
    aws: Emulator, functions: dict[str, str], folder: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (folder / "ready").write_text("")
    marker = f"m{uuid.uuid4().hex}"
    capfd.readouterr()
    body = _invoke(aws, functions["alpha"], {"folder": str(folder), "me": marker, "partner": "ready"})[1]
    out, err = capfd.readouterr()
    for frame in ("START RequestId", "END RequestId", "REPORT RequestId"):
        assert frame not in out
        assert frame not in err
    group = f"/aws/lambda/{functions['alpha']}"
    events = aws.client("logs").filter_log_events(logGroupName=group, logStreamNames=[body["log_stream"]])
    messages = [e["message"] for e in events["events"]]
    request_id = body["request_id"]
    assert f"START RequestId: {request_id} Version: $LATEST" in messages
    assert f"END RequestId: {request_id}" in messages
    assert any(m.startswith(f"REPORT RequestId: {request_id}\t") for m in messages)
    assert "met ready" in messages  # what the code printed is in the log stream too


def test_a_synchronous_call_waits_for_a_slot_instead_of_being_throttled(
    aws: Emulator, functions: dict[str, str], folder: Path
) -> None:
    """With one slot taken, a second call waits for it (AWS, whose limit is far higher than the
    emulator's, would run it at once) rather than being throttled."""
    runtime = CONFIG.runtime
    assert runtime is not None
    arn = aws.client("lambda").get_function_configuration(FunctionName=functions["beta"])["FunctionArn"]
    account, region = arn.split(":")[4], arn.split(":")[3]
    aws.options.lambda_concurrency = 1
    with ThreadPoolExecutor(max_workers=2) as pool:
        holder = pool.submit(
            _invoke, aws, functions["alpha"], {"folder": str(folder), "me": "h", "partner": "go"}
        )
        while not (folder / "h").exists():  # the first call holds the only slot
            time.sleep(0.005)
        waiter = pool.submit(
            _invoke, aws, functions["beta"], {"folder": str(folder), "me": "w", "partner": "h"}
        )
        while runtime.waiting(account, region) == 0:  # the second call waits for it
            time.sleep(0.005)
        assert not (folder / "w").exists()
        (folder / "go").write_text("")
        assert holder.result()[0] is None
        error, body = waiter.result()
    assert error is None, body
    assert body["met"]
    assert body["who"] == "beta"
