"""Ending a waiting task of an execution through its task token.

The "watch" branch of a rollout waits on a task token stored in the deployment record; an alarm,
a crash, a new release or an operator ends it (and with it the bake) at once. A token whose task
already ended is not an error here: the record holds the intent, and the next step reads it.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from ecs_canary import aws
from ecs_canary.flow import notify
from ecs_canary.store import Deployment, RollbackIntent, Status, Store

__all__ = ["fail_task", "request_rollback", "succeed_task"]

logger = Logger(child=True)

# The task already ended (or never existed in this execution): nothing is waiting on the token.
_GONE = {"TaskDoesNotExist", "TaskTimedOut", "InvalidToken"}


def _gone(err: ClientError) -> bool:
    return str(err.response.get("Error", {}).get("Code", "")) in _GONE


def fail_task(token: str | None, error: str, cause: str, sfn: Any = None) -> bool:
    """Fail the task waiting on ``token``; False when no task waits on it any more."""
    if not token:
        return False
    client = sfn if sfn is not None else aws.client("stepfunctions")
    try:
        client.send_task_failure(taskToken=token, error=error, cause=cause[:32_000])
    except ClientError as err:
        if _gone(err):
            logger.info("no task waits on the token any more", extra={"error": error})
            return False
        raise
    return True


def succeed_task(token: str | None, output: dict[str, Any], sfn: Any = None) -> bool:
    """Complete the task waiting on ``token``; False when no task waits on it any more."""
    if not token:
        return False
    client = sfn if sfn is not None else aws.client("stepfunctions")
    try:
        client.send_task_success(taskToken=token, output=json.dumps(output))
    except ClientError as err:
        if _gone(err):
            return False
        raise
    return True


def request_rollback(
    store: Store,
    record: Deployment,
    intent: RollbackIntent,
    *,
    signal: str,
    owner: str | None = None,
    sfn: Any = None,
) -> Deployment:
    """Record the intent (the first one wins), then end the owner's wait so it rolls back now.

    ``signal`` is the error name the owner's watch fails with (the state machine's Catch routes
    every one of them to "Roll back"). Returns the record as it is after the intent.
    """
    updated = store.request_rollback(record.pair, record.deployment_id, intent, owner=owner)
    assert updated.rollback is not None
    if updated.status is Status.ROLLING_BACK:
        if updated.rollback.at == intent.at:
            # Emitted first: the intent is recorded, whatever happens to the signal below.
            notify.emit("interrupted", updated, reason=intent.reason, by=intent.by, signal=signal)
        fail_task(updated.listener_token, signal, updated.rollback.reason, sfn=sfn)
    return updated
