"""``abort``, ``pause``, ``resume``, ``promote``: what the CLI sends the command function and how it
reports the answer. The command function's own behaviour is tested in tests/handlers and end to end
in tests/e2e; here a stand-in Lambda answers as it would (moto runs no function code)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from botocore.response import StreamingBody
from ecs_canary.store import Status
from ecs_canary_cli.commands import operate
from ecs_canary_cli.context import StackContext

from .conftest import Run
from .infra import PAIR, Stack, World, finish, start_deployment

FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:ecs-canary-CommandFunction:live"


class FakeLambda:
    """Answers Invoke like the deployed command function: records the request, replies ``answer``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answer: dict[str, Any] = {}
        self.function_error: str | None = None

    def invoke(self, **request: Any) -> dict[str, Any]:
        self.requests.append({**request, "Payload": json.loads(request["Payload"])})
        body = json.dumps(self.answer).encode()
        response: dict[str, Any] = {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(body), len(body))}
        if self.function_error:
            response["FunctionError"] = self.function_error
        return response


@pytest.fixture
def command_function(monkeypatch: pytest.MonkeyPatch, stack: Stack) -> FakeLambda:
    fake = FakeLambda()
    monkeypatch.setenv("ECS_CANARY_COMMAND_FUNCTION", FUNCTION)
    original = StackContext.client

    def client(self: StackContext, service_name: str) -> Any:
        return fake if service_name == "lambda" else original(self, service_name)

    monkeypatch.setattr(StackContext, "client", client)
    monkeypatch.setattr(operate, "sleep", lambda _seconds: None)
    return fake


def _accepted(deployment_id: str, status: str = "RUNNING", command: str = "pause") -> dict[str, Any]:
    return {
        "accepted": True,
        "command": command,
        "pair": PAIR,
        "deployment_id": deployment_id,
        "status": status,
    }


@pytest.mark.parametrize(
    ("argv", "command", "options"),
    [
        (["pause", PAIR, "--reason", "lunch"], "pause", {}),
        (["resume", PAIR], "resume", {}),
        (["promote", PAIR], "promote", {"full": False, "skip_analysis": False}),
        (["promote", PAIR, "--full", "--skip-analysis"], "promote", {"full": True, "skip_analysis": True}),
    ],
)
@pytest.mark.usefixtures("registered")
def test_each_command_sends_the_pair_the_caller_and_the_reason(
    run: Run,
    command_function: FakeLambda,
    argv: list[str],
    command: str,
    options: dict[str, Any],
) -> None:
    command_function.answer = _accepted("dep-1", command=command)

    result = run(*argv)

    assert result.code == 0, result.err
    (request,) = command_function.requests
    assert request["FunctionName"] == FUNCTION
    assert request["InvocationType"] == "RequestResponse"
    payload = request["Payload"]
    assert payload["pair"] == PAIR
    assert payload["command"] == command
    assert payload["by"].startswith("arn:aws:")  # the caller's identity, from STS
    assert payload["reason"] == ("lunch" if "--reason" in argv else "")
    for key, value in options.items():
        assert payload[key] is value
    assert "deployment dep-1 of shop" in result.out


def test_a_refused_command_exits_1_with_the_reason(
    run: Run, registered: World, command_function: FakeLambda
) -> None:
    command_function.answer = {"accepted": False, "reason": "pair shop has no active deployment to pause"}

    result = run("pause", PAIR)

    assert result.code == 1
    assert result.err.strip() == "pause refused: pair shop has no active deployment to pause"


def test_a_failing_command_function_is_reported(
    run: Run, registered: World, command_function: FakeLambda
) -> None:
    command_function.answer = {"errorType": "Runtime.ImportModuleError", "errorMessage": "boom"}
    command_function.function_error = "Unhandled"

    result = run("resume", PAIR)

    assert result.code == 1
    assert "the command function failed: Runtime.ImportModuleError: boom" in result.err


def test_abort_waits_for_the_deployment_to_end_and_shows_the_weights(
    run: Run, stack: Stack, registered: World, command_function: FakeLambda
) -> None:
    deployment_id = start_deployment(stack)
    finish(stack, deployment_id, Status.ABORTED, "aborted by someone: test")
    command_function.answer = _accepted(deployment_id, status="ROLLING_BACK", command="abort")

    result = run("abort", PAIR, "--reason", "test")

    assert result.code == 0, result.err
    assert "ABORTED: aborted by someone: test" in result.out


def test_abort_that_does_not_end_in_time_says_how_to_follow_it(
    run: Run, stack: Stack, registered: World, command_function: FakeLambda
) -> None:
    deployment_id = start_deployment(stack)
    command_function.answer = _accepted(deployment_id, status="ROLLING_BACK", command="abort")

    result = run("abort", PAIR, "--timeout", "0")

    assert result.code == 1
    assert f"ecs-canary watch {PAIR} {deployment_id}" in result.err


def test_abort_no_wait_returns_once_recorded(
    run: Run, stack: Stack, registered: World, command_function: FakeLambda
) -> None:
    deployment_id = start_deployment(stack)
    command_function.answer = _accepted(deployment_id, status="ROLLING_BACK", command="abort")

    result = run("abort", PAIR, "--no-wait")

    assert result.code == 0, result.err
    assert "abort requested for deployment" in result.out


def test_without_a_command_function_the_cli_says_what_to_do(run: Run, registered: World) -> None:
    result = run("pause", PAIR, "--table", "canary-table")

    assert result.code == 1
    assert "CommandFunctionArn" in result.err
