"""One emulator per test session (moto's backends are process-wide), at 1/100 of real time."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ecs_canary_cli.local import Emulator, deploy_stack

HERE = Path(__file__).parent
TIME_SCALE = 0.01


@pytest.fixture(scope="session")
def aws() -> Iterator[Emulator]:
    emulator = Emulator(time_scale=TIME_SCALE, template=None)
    with emulator:
        yield emulator


@pytest.fixture(scope="session")
def stack(aws: Emulator) -> dict[str, str]:
    """The test stack (tests/emulator/fixture_template.yaml), deployed once."""
    return deploy_stack(
        aws.endpoint, HERE / "fixture_template.yaml", "emulator-fixture", {"Greeting": "bonjour"}
    )


@pytest.fixture(autouse=True)
def _faithful_options(aws: Emulator) -> Iterator[None]:
    aws.options.reset()
    yield
    aws.wait_for_idle(10)
    aws.options.reset()


def receive(
    aws: Emulator, queue_url: str, count: int, timeout: float = 10.0, source: str | None = None
) -> list[dict[str, Any]]:
    """At least ``count`` messages of the queue (bodies parsed, attributes kept), consumed.

    With ``source``, sink records of events from other sources are consumed and left out.
    """
    sqs = aws.client("sqs")
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(found) < count and time.monotonic() < deadline:
        response = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
        )
        for message in response.get("Messages", []):
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            body = json.loads(message["Body"])
            if source is not None and body.get("event", {}).get("source") != source:
                continue
            found.append({"body": body, "attributes": message.get("MessageAttributes", {})})
        if len(found) < count:
            time.sleep(0.05)
    return found


def purge(aws: Emulator, queue_url: str) -> None:
    """Consume whatever the queue holds once the emulator is idle (PurgeQueue is once a minute)."""
    aws.wait_for_idle(10)
    receive(aws, queue_url, 10_000, timeout=0.2)


def wait_execution(aws: Emulator, execution_arn: str, timeout: float = 10.0) -> dict[str, Any]:
    sfn = aws.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while True:
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING" or time.monotonic() > deadline:
            return described
        time.sleep(0.05)


@pytest.fixture
def real_stack(aws: Emulator) -> Iterator[dict[str, str]]:
    """This repository's template.yaml deployed as ``ecs-canary-under-test``, deleted afterwards.

    Deleting it stops its scheduled sweeper, which would otherwise keep firing (and invoking
    Lambda) for the rest of the session.
    """
    name = "ecs-canary-under-test"
    outputs = deploy_stack(aws.endpoint, HERE.parent.parent / "template.yaml", name)
    try:
        yield outputs
    finally:
        cloudformation = aws.client("cloudformation")
        cloudformation.delete_stack(StackName=name)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            stacks = cloudformation.describe_stacks()["Stacks"]
            if not any(s["StackName"] == name and s["StackStatus"] != "DELETE_COMPLETE" for s in stacks):
                break
            time.sleep(0.2)
