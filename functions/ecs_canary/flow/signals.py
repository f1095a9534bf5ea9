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

__all__ = ["fail_task", "succeed_task"]

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
