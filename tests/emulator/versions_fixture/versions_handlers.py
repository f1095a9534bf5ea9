"""Handlers the version tests deploy (none of ecs-canary's code).

The tests publish new code by rewriting CODE_REVISION in a copy of this file before a stack update.
"""

from __future__ import annotations

import json
import os
from typing import Any

import boto3

CODE_REVISION = "one"
CALLS = [0]  # module state: survives warm invocations of one version's sandbox only


def describe(event: Any, context: Any) -> dict[str, Any]:
    """What ran: the code's revision, the environment's, and what Lambda says about the version."""
    CALLS[0] += 1
    return {
        "code": CODE_REVISION,
        "env": os.environ.get("REVISION"),
        "calls": CALLS[0],
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "env_version": os.environ.get("AWS_LAMBDA_FUNCTION_VERSION"),
        "remaining_ms": context.get_remaining_time_in_millis(),
        "event": event,
    }


def record(event: Any, context: Any) -> dict[str, Any]:
    """``describe``, also sent to the sink queue (for asynchronous invocations)."""
    result = describe(event, context)
    boto3.client("sqs").send_message(QueueUrl=os.environ["SINK_QUEUE_URL"], MessageBody=json.dumps(result))
    return result
