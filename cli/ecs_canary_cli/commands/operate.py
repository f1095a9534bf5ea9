"""``abort``, ``pause``, ``resume`` and ``promote``: an operator acting on a pair's active deployment.

Each command invokes the stack's command function (``CommandFunctionArn`` output) with the
caller's identity from STS and the ``--reason``; the function records both in the deployment's
history and ends the execution's watch, so the command takes effect in seconds. The same calls
work against AWS and the emulator.
"""

from __future__ import annotations

import json
import time
from typing import Any

from botocore.exceptions import ClientError
from ecs_canary.store import Deployment, Status
from rich.text import Text

from ecs_canary_cli import render
from ecs_canary_cli.commands.base import EXIT_FAILURE, EXIT_OK, App, CliError
from ecs_canary_cli.context import ENV_COMMAND_FUNCTION, StackContext

__all__ = [
    "abort_command",
    "approve_command",
    "pause_command",
    "promote_command",
    "reject_command",
    "resume_command",
]

# Module attributes so tests can drive the wait without real sleeping.
sleep = time.sleep
monotonic = time.monotonic


def _identity(ctx: StackContext) -> str:
    try:
        return str(ctx.client("sts").get_caller_identity()["Arn"])
    except ClientError as exc:
        raise CliError(f"cannot tell who you are (sts:GetCallerIdentity failed): {exc}") from exc


def _invoke(app: App, command: str, **options: Any) -> dict[str, Any]:
    ctx = app.context()
    function = ctx.command_function
    if not function:
        raise CliError(
            f"the stack has no CommandFunctionArn output: redeploy ecs-canary, or set {ENV_COMMAND_FUNCTION}"
        )
    payload = {
        "pair": app.args.pair,
        "command": command,
        "by": _identity(ctx),
        "reason": app.args.reason or "",
        **options,
    }
    response = ctx.client("lambda").invoke(
        FunctionName=function, InvocationType="RequestResponse", Payload=json.dumps(payload).encode()
    )
    body = response["Payload"].read()
    try:
        result: dict[str, Any] = json.loads(body or b"{}")
    except ValueError as exc:
        raise CliError(f"the command function answered something that is not JSON: {body[:200]!r}") from exc
    if response.get("FunctionError"):
        kind, message = result.get("errorType", "error"), result.get("errorMessage", "")
        raise CliError(f"the command function failed: {kind}: {message}")
    if not result.get("accepted"):
        raise CliError(f"{command} refused: {result.get('reason', 'no reason given')}")
    return result


def _accepted(app: App, result: dict[str, Any], what: str) -> None:
    app.out.print(
        Text(
            f"✓ {what} deployment {result['deployment_id']} of {result['pair']} ({result['status']})",
            style="green",
        ),
        soft_wrap=True,
    )


def _await_end(app: App, pair: str, deployment_id: str, timeout: float) -> Deployment:
    store = app.context().store()
    deadline = monotonic() + timeout
    while True:
        dep = store.get_deployment(pair, deployment_id)
        if dep.status.terminal or monotonic() >= deadline:
            return dep
        sleep(0.5)


def abort_command(app: App) -> int:
    """Fail back now: the execution restores the snapshot weights within seconds."""
    result = _invoke(app, "abort")
    _accepted(app, result, "abort requested for")
    if app.args.no_wait:
        return EXIT_OK
    dep = _await_end(app, result["pair"], result["deployment_id"], float(app.args.timeout))
    if not dep.status.terminal:
        raise CliError(
            f"deployment {dep.deployment_id} is still {dep.status.value} after {app.args.timeout:g} s; "
            f"follow it with: ecs-canary watch {dep.pair} {dep.deployment_id}"
        )
    pair = app.context().store().get_pair(dep.pair)
    weights = render.format_weights(dep.weights, pair.spec.service_names) if dep.weights else "unchanged"
    style = "green" if dep.status is Status.ABORTED else "yellow"
    app.out.print(Text(f"{dep.status.value}: {dep.reason}", style=style), soft_wrap=True)
    app.out.print(f"weights: {weights}")
    return EXIT_OK if dep.status is Status.ABORTED else EXIT_FAILURE


def pause_command(app: App) -> int:
    """Stop progressing; the health gate and the interrupts stay armed."""
    _accepted(app, _invoke(app, "pause"), "paused")
    return EXIT_OK


def resume_command(app: App) -> int:
    _accepted(app, _invoke(app, "resume"), "resumed")
    return EXIT_OK


def promote_command(app: App) -> int:
    """Skip to the next step now; ``--full`` goes to 100 % and promotes."""
    result = _invoke(app, "promote", full=bool(app.args.full), skip_analysis=bool(app.args.skip_analysis))
    what = "promote --full requested for" if app.args.full else "promote requested for"
    _accepted(app, result, what)
    return EXIT_OK


def approve_command(app: App) -> int:
    """Let a deployment waiting at an approval gate go on."""
    _accepted(app, _invoke(app, "approve"), "approved")
    return EXIT_OK


def reject_command(app: App) -> int:
    """Fail a deployment waiting at an approval gate back to its snapshot."""
    _accepted(app, _invoke(app, "reject"), "rejected")
    return EXIT_OK
