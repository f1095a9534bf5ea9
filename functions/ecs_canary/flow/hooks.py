"""Running a stage's lifecycle hooks: one invocation per call, waits between calls in Step Functions.

A hook is a Lambda function that answers ``{"hookStatus": "SUCCEEDED" | "FAILED" | "IN_PROGRESS",
"callBackDelay": seconds}`` (ECS-native semantics). The state machine calls :func:`run_hooks` with the
stage's cursor; each call invokes the current hook once and says what next: the next hook, a wait of
``callBackDelay`` (default 30 s) before asking the same hook again, or done. A crash, a response
without a valid ``hookStatus`` or a hook still IN_PROGRESS past its ``timeout_seconds`` counts as
FAILED. A failed hook fails the deployment back, except at ``on_rollback``, where it is recorded and
the rollback still completes. Only the deployment's owner runs its hooks.
"""

from __future__ import annotations

import functools
import json
import time
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from botocore.config import Config
from botocore.exceptions import ClientError

from ecs_canary import aws
from ecs_canary.errors import HookFailed, NotOwner, RollbackRequested
from ecs_canary.events import HookInput
from ecs_canary.flow import notify
from ecs_canary.flow.signals import request_rollback
from ecs_canary.flow.stages import test_endpoint
from ecs_canary.gates import HookSpec, hook_min_delay
from ecs_canary.spec import ServicePairSpec, parse_spec
from ecs_canary.store import Deployment, RollbackIntent, Status, Store, now_iso

__all__ = ["DEFAULT_CALLBACK_DELAY", "first_cursor", "hook_payload", "run_hooks"]

logger = Logger(child=True)

DEFAULT_CALLBACK_DELAY = 30
MAX_CALLBACK_DELAY = 3600
_STATUSES = ("SUCCEEDED", "FAILED", "IN_PROGRESS")


@functools.cache
def _invoke_client() -> Any:
    """A Lambda client that waits as long as a hook may run (the shared clients give up after 30 s)."""
    config = aws.CLIENT_CONFIG.merge(
        Config(read_timeout=900, retries={"mode": "standard", "max_attempts": 1})
    )
    return boto3.session.Session().client("lambda", region_name=aws.region(), config=config)


def first_cursor(stage: str, key: str, then: str) -> dict[str, Any]:
    """The cursor the tick hands the hook loop when a stage's hooks are due."""
    return {"stage": stage, "key": key, "index": 0, "attempt": 0, "waited": 0, "then": then, "done": False,
            "wait_seconds": 0}  # fmt: skip


def hook_payload(
    spec: ServicePairSpec, record: Deployment, stage: str, hook: HookSpec, attempt: int
) -> dict[str, Any]:
    """What a hook is invoked with: the deployment's context and its own ``hookDetails``."""
    return {
        "lifecycleStage": stage,
        "pair": record.pair,
        "deploymentId": record.deployment_id,
        "executionArn": record.execution_arn,
        "release": record.release.to_dict(),
        "greenService": record.service,
        "liveService": record.live_service,
        "step": {"index": record.step_index, "percent": record.percent},
        "weights": record.weights,
        "testEndpoint": test_endpoint(spec),
        "hookDetails": hook.details,
        "attempt": attempt,
    }


def _verdict(response: dict[str, Any], body: bytes) -> tuple[str, int, str]:
    """(hookStatus, callBackDelay, why) from an Invoke response; crashes and bad answers are FAILED."""
    if response.get("FunctionError"):
        try:
            error = json.loads(body or b"{}")
        except ValueError:
            error = {}
        kind = error.get("errorType", response["FunctionError"]) if isinstance(error, dict) else "error"
        message = error.get("errorMessage", "") if isinstance(error, dict) else ""
        return "FAILED", 0, f"the hook crashed: {kind}: {message}".rstrip(": ")
    try:
        answer = json.loads(body or b"null")
    except ValueError:
        return "FAILED", 0, "the hook's response is not JSON"
    if not isinstance(answer, dict) or answer.get("hookStatus") not in _STATUSES:
        got = answer.get("hookStatus") if isinstance(answer, dict) else answer
        return "FAILED", 0, f"the hook's response has no valid hookStatus (got {json.dumps(got)[:200]})"
    status = str(answer["hookStatus"])
    delay = answer.get("callBackDelay", DEFAULT_CALLBACK_DELAY)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= MAX_CALLBACK_DELAY:
        delay = DEFAULT_CALLBACK_DELAY
    why = str(answer.get("reason", "")) or f"hook answered {status}"
    return status, int(delay), why


def _record(store: Store, inp: HookInput) -> Deployment:
    record = store.get_deployment(inp.pair, inp.deployment_id)
    if record.execution_arn != inp.execution:
        store.record_refused(inp.pair, inp.deployment_id, inp.execution, "not the deployment's execution")
        raise NotOwner(f"execution {inp.execution.rsplit(':', 1)[-1]} does not own {inp.deployment_id}")
    if inp.hooks.stage != "on_rollback" and record.status is Status.ROLLING_BACK:
        raise RollbackRequested(f"deployment {inp.deployment_id} is rolling back")
    return record


def run_hooks(store: Store, inp: HookInput) -> dict[str, Any]:
    """Invoke the stage's current hook once; the cursor says what the state machine does next."""
    record = _record(store, inp)
    cursor = inp.hooks.model_dump()
    stage = inp.hooks.stage
    spec = parse_spec(record.spec) if record.spec else store.get_pair(record.pair).spec
    hooks = spec.hooks.of(stage)
    index = inp.hooks.index
    if index >= len(hooks):
        return _done(store, record, inp, cursor)
    hook = hooks[index]
    began = time.monotonic()
    response = _invoke_client().invoke(
        FunctionName=hook.function,
        InvocationType="RequestResponse",
        Payload=json.dumps(
            hook_payload(spec, record, stage, hook, inp.hooks.attempt + 1), default=str
        ).encode(),
    )
    body = response["Payload"].read()
    notify.metric("HookSeconds", time.monotonic() - began, record.pair, notify.MetricUnit.Seconds)
    status, delay, why = _verdict(response, body)
    where = f"hook {hook.function} at {stage}"
    if status == "IN_PROGRESS":
        # The time the hook took to answer counts too; a short callBackDelay is raised to the hook's
        # floor (so it reaches its timeout in bounded checks) and a long one cut to what is left of it.
        spent = inp.hooks.waited + int(time.monotonic() - began)
        if spent < hook.timeout_seconds:
            left = hook.timeout_seconds - spent
            delay = max(1, min(max(delay, hook_min_delay(hook.timeout_seconds)), left))
            return {
                **cursor,
                "attempt": inp.hooks.attempt + 1,
                "waited": spent + delay,
                "wait_seconds": delay,
            }
        status, why = "FAILED", f"still IN_PROGRESS after {hook.timeout_seconds} s (timeout_seconds)"
    if status == "SUCCEEDED":
        notify.emit("hook_succeeded", record, reason=f"{where}: {why}", hook=hook.function, stage=stage)
        _note(store, record, inp, "hook_succeeded", f"{where} succeeded: {why}")
        return {**cursor, "index": index + 1, "attempt": 0, "waited": 0, "wait_seconds": 0}
    reason = f"{where} failed: {why}"
    notify.emit("hook_failed", record, reason=reason, hook=hook.function, stage=stage)
    _note(store, record, inp, "hook_failed", reason)
    if stage == "on_rollback":
        return {**cursor, "index": index + 1, "attempt": 0, "waited": 0, "wait_seconds": 0}
    intent = RollbackIntent(Status.FAILED, reason, f"execution {inp.execution.rsplit(':', 1)[-1]}", now_iso())
    # Like any interrupt, the intent also ends the watch's wait: an answer that arrives after the state
    # machine gave up on this call (a timed-out Task) still fails the deployment back at once.
    try:
        request_rollback(store, record, intent, signal="HookFailed", owner=inp.execution)
    except ClientError as exc:
        # Ending the watch early is a speed-up: this Task's own failure fails the deployment back.
        logger.warning("the watch could not be ended early", extra={"error": str(exc)})
    raise HookFailed(reason)


def _note(store: Store, record: Deployment, inp: HookInput, event: str, message: str) -> None:
    """A line in the history: the owner's note while active; after the close (on_rollback) an append."""
    if record.status.terminal or record.status is Status.ROLLING_BACK:
        store.append_history(record.pair, record.deployment_id, event, message)
        return
    store.note(record.pair, record.deployment_id, owner=inp.execution, event=event, message=message)


def _done(store: Store, record: Deployment, inp: HookInput, cursor: dict[str, Any]) -> dict[str, Any]:
    """Every hook of the stage succeeded: the gate is passed."""
    if inp.hooks.stage != "on_rollback" and not record.status.terminal:
        store.mark_gate(record.pair, record.deployment_id, owner=inp.execution, key=inp.hooks.key)
    return {**cursor, "done": True, "wait_seconds": 0}
