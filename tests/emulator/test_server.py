"""Emulator lifecycle: restarts in one process, holds AWS calls until the stack is deployed, and
``local up`` announces the endpoint only once it is ready.

Each test runs its emulator in a child process (one emulator per process; the session's is here).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from conftest import HERE
from ecs_canary_cli.local import control, deploy_stack

REPO = HERE.parent.parent
# A small stack of its own (one table, one state machine), so these tests do not follow template.yaml.
TEMPLATE = HERE / "fixture_readiness.yaml"
# Generous ceilings for a loaded machine: failing them means a hang, not slowness.
STARTUP = 300.0

RESTART = textwrap.dedent(
    """
    import os, threading
    from ecs_canary_cli.local import Emulator

    for round in range(2):
        with Emulator(time_scale=0.01, template=None) as aws:
            assert os.environ["MOTO_PORT"] != str(aws.port)  # the interpreter bypasses the gate
            queue = aws.client("sqs").create_queue(QueueName="q")["QueueUrl"]
            assert aws.client("sqs").list_queues()["QueueUrls"] == [queue]  # a fresh account each time
        assert "MOTO_PORT" not in os.environ
        assert not [t for t in threading.enumerate() if t.name == "eventbridge-schedules"]
    print("restarted")
    """
)

# Starts the emulator on argv[1] with the template argv[3], but holds the deployment until a line
# arrives on stdin; argv[2] == "fail" makes the deployment fail instead.
HELD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from ecs_canary_cli.local import server

    deploy = server.deploy_stack

    def held(*args, **kwargs):
        print("deploying", flush=True)
        sys.stdin.readline()
        if sys.argv[2] == "fail":
            raise RuntimeError("the template is broken on purpose")
        return deploy(*args, **kwargs)

    server.deploy_stack = held
    with server.Emulator(port=int(sys.argv[1]), time_scale=0.01, template=Path(sys.argv[3])) as aws:
        print("ready", flush=True)
        sys.stdin.readline()
    print("stopped", flush=True)
    """
)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("MOTO_PORT", "AWS_ENDPOINT_URL")}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _read_until(stream: IO[str], marker: str) -> list[str]:
    """Lines of ``stream`` up to the one containing ``marker`` (EOF fails the test)."""
    lines: list[str] = []
    while True:
        line = stream.readline()
        if not line:
            pytest.fail(f"the child exited before printing {marker!r}: {''.join(lines)[-2000:]}")
        lines.append(line)
        if marker in line:
            return lines


def _client(endpoint: str, service: str, **config: Any) -> Any:
    session: Any = boto3.Session(
        region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    return session.client(service, endpoint_url=endpoint, config=Config(read_timeout=STARTUP, **config))


def _wait_for(condition: Any, what: str) -> Any:
    deadline = time.monotonic() + STARTUP
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"gave up waiting for {what}")


def _health(endpoint: str) -> dict[str, Any]:
    try:
        return control.call(endpoint, "GET", "health", timeout=5)
    except OSError:
        return {}


@pytest.fixture
def held_emulator(request: pytest.FixtureRequest) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = _free_port()
    mode = getattr(request, "param", "deploy")
    child = subprocess.Popen(
        [sys.executable, "-c", HELD, str(port), mode, str(TEMPLATE)],
        cwd=REPO,
        env=_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        _read_until(child.stdout, "deploying")
        yield child, f"http://127.0.0.1:{port}"
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=60)


def _release(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None
    child.stdin.write("\n")
    child.stdin.flush()


def test_emulator_restarts_in_one_process() -> None:
    result = subprocess.run(
        [sys.executable, "-c", RESTART], capture_output=True, text=True, timeout=120, env=_env(), check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "restarted" in result.stdout


def test_calls_wait_until_the_stack_is_deployed(held_emulator: tuple[subprocess.Popen[str], str]) -> None:
    child, endpoint = held_emulator
    assert child.stdout is not None
    # The port is open and the control API answers while the stack is still deploying.
    assert _health(endpoint) == {
        "ready": False,
        "stack": "ecs-canary",
        "outputs": {},
        "error": None,
        "waiting": 0,
    }
    cfn = _client(endpoint, "cloudformation")
    sfn = _client(endpoint, "stepfunctions")
    ddb = _client(endpoint, "dynamodb")
    seen: list[tuple[list[tuple[str, str]], int, int]] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            stacks = [(s["StackName"], s["StackStatus"]) for s in cfn.describe_stacks()["Stacks"]]
            machines = len(sfn.list_state_machines()["stateMachines"])
            tables = len(ddb.list_tables()["TableNames"])
            seen.append((stacks, machines, tables))
            time.sleep(0.1)

    # A client deploying the same stack meanwhile (which used to create a second copy of it).
    deployed: list[dict[str, str]] = []
    poller = threading.Thread(target=poll, daemon=True)
    deployer = threading.Thread(target=lambda: deployed.append(deploy_stack(endpoint, TEMPLATE)), daemon=True)
    poller.start()
    deployer.start()
    _wait_for(lambda: _health(endpoint).get("waiting", 0) >= 2, "both clients' first calls to be held")
    assert seen == []

    _release(child)
    _read_until(child.stdout, "ready")
    deployer.join(STARTUP)
    _wait_for(lambda: len(seen) >= 5, "five rounds of answers")
    stop.set()
    poller.join(STARTUP)

    assert all(observed == ([("ecs-canary", "CREATE_COMPLETE")], 1, 1) for observed in seen), seen
    health = _health(endpoint)
    assert health["ready"] is True
    assert deployed == [health["outputs"]]
    assert {"StateMachineArn", "TableName"} <= set(health["outputs"])
    # The client's deploy of the unchanged template was a no-op, not an update.
    [stack] = cfn.describe_stacks(StackName="ecs-canary")["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    _release(child)
    _read_until(child.stdout, "stopped")


@pytest.mark.parametrize("held_emulator", ["fail"], indirect=True)
def test_waiting_calls_get_503_naming_a_failed_deploy(
    held_emulator: tuple[subprocess.Popen[str], str],
) -> None:
    child, endpoint = held_emulator
    once = {"retries": {"total_max_attempts": 1}}
    calls = {  # one service per protocol: query, json, smithy-rpc-v2-cbor, rest-json, rest-xml
        "cloudformation": lambda c: c.describe_stacks(),
        "stepfunctions": lambda c: c.list_state_machines(),
        "cloudwatch": lambda c: c.describe_alarms(),
        "lambda": lambda c: c.list_functions(),
        "s3": lambda c: c.list_buckets(),
    }
    errors: dict[str, dict[str, Any]] = {}

    def call(service: str) -> None:
        try:
            calls[service](_client(endpoint, service, **once))
            errors[service] = {"unexpected": "success"}
        except ClientError as exc:
            errors[service] = {
                "status": exc.response["ResponseMetadata"]["HTTPStatusCode"],
                **exc.response["Error"],
            }

    threads = [threading.Thread(target=call, args=(s,), daemon=True) for s in calls]
    for thread in threads:
        thread.start()
    _wait_for(lambda: _health(endpoint).get("waiting", 0) >= len(calls), "every call to be held")
    _release(child)
    for thread in threads:
        thread.join(STARTUP)

    assert set(errors) == set(calls)
    for service, error in errors.items():
        assert error["status"] == 503, (service, error)
        assert error["Code"] in ("ServiceUnavailable", "ServiceUnavailableException"), (service, error)
        assert "stack ecs-canary failed to deploy" in error["Message"], (service, error)
        assert "the template is broken on purpose" in error["Message"], (service, error)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode != 0
    assert "the template is broken on purpose" in stderr


def test_local_up_announces_the_endpoint_once_the_stack_is_deployed() -> None:
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    child = subprocess.Popen(
        [
            *(sys.executable, "-m", "ecs_canary_cli.main", "local", "up", "--template", str(TEMPLATE)),
            *("--port", str(port), "--time-scale", "0.01"),
        ],
        cwd=REPO,
        env={**_env(), "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        lines = _read_until(child.stdout, "ecs-canary local emulator")
        # When the panel appears the endpoint already serves the deployed stack.
        health = _health(endpoint)
        assert health["ready"] is True
        panel = " ".join("".join(lines + _read_until(child.stdout, "Press Ctrl-C to stop.")).split())
        assert f"endpoint {endpoint}" in panel
        assert f"TableName {health['outputs']['TableName']}" in panel
        stacks = _client(endpoint, "cloudformation").describe_stacks()["Stacks"]
        assert [(s["StackName"], s["StackStatus"]) for s in stacks] == [("ecs-canary", "CREATE_COMPLETE")]
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=60)
    assert child.returncode == 0, stderr[-2000:]
    assert "stopping the emulator" in stderr
