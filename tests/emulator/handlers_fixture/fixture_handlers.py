"""Tiny Lambda handlers the emulator tests deploy (none of ecs-canary's code)."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import boto3

CALLS = [0]  # module state: survives warm invocations of one function, not shared with others


class FlakyError(Exception):
    """A function error with a class name Step Functions can retry and catch on."""


def _record(kind: str, event: Any, context: Any) -> None:
    boto3.client("sqs").send_message(
        QueueUrl=os.environ["SINK_QUEUE_URL"],
        MessageBody=json.dumps({"kind": kind, "function": context.function_name, "event": event}),
    )


def echo(event: Any, context: Any) -> dict[str, Any]:
    CALLS[0] += 1
    keys = [k for k in os.environ if k.startswith(("AWS_", "_HANDLER", "GREETING", "POWERTOOLS", "LAMBDA_"))]
    return {
        "event": event,
        "calls": CALLS[0],
        "env": {k: os.environ[k] for k in keys if "SECRET" not in k},
        "host_env_leaked": "EMULATOR_TEST_HOST_ONLY" in os.environ,
        "context": {
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "aws_request_id": context.aws_request_id,
            "log_group_name": context.log_group_name,
            "remaining_ms": context.get_remaining_time_in_millis(),
        },
    }


def fail(event: Any, context: Any) -> None:
    raise FlakyError(f"boom: {json.dumps(event)}")


def record(event: Any, context: Any) -> dict[str, str]:
    _record("record", event, context)
    return {"recorded": context.aws_request_id}


def record_then_fail(event: Any, context: Any) -> None:
    _record("attempt", event, context)
    raise FlakyError("recorded, then failed")


def slow(event: Any, context: Any) -> str:
    time.sleep(float(event.get("seconds", 1.5)))
    return "done"


def emit_metric(event: Any, context: Any) -> str:
    print(f"handling {context.aws_request_id}")
    emf = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": "EmulatorTest",
                    "Dimensions": [["service"]],
                    "Metrics": [{"Name": "Hits", "Unit": "Count"}],
                }
            ],
        },
        "service": "fixture",
        "Hits": [1.0, 2.0],
    }
    print(json.dumps(emf))
    return "ok"


def send(event: Any, context: Any) -> dict[str, str]:
    """Send the event's ``body`` to its ``queue`` with the function's own credentials."""
    sent = boto3.client("sqs").send_message(QueueUrl=event["queue"], MessageBody=event.get("body", "{}"))
    return {"sent": sent["MessageId"]}
