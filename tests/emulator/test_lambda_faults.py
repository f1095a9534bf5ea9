"""Injected Lambda faults (``/_emulator/lambda/faults``): each kind acts as the failure it stands for.

The function under test writes an item to DynamoDB, then reads it back and answers what it read,
so a test can tell a refused call, a crash before the write and an exit after it apart.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from ecs_canary_cli.demo.infra import deploy_function
from ecs_canary_cli.local import Emulator, control

WRITER = """
import os
import boto3
from botocore.config import Config

def handler(event, context):
    # One attempt per call, so a refused call is the handler's error at once.
    dynamodb = boto3.client("dynamodb", config=Config(retries={"mode": "standard", "max_attempts": 1}))
    key = {"id": {"S": event["key"]}}
    dynamodb.put_item(TableName=event["table"], Item={**key, "by": {"S": context.aws_request_id}})
    item = dynamodb.get_item(TableName=event["table"], Key=key, ConsistentRead=True)["Item"]
    return {"written_by": item["by"]["S"]}
"""

TABLE = "emulator-faults"


@pytest.fixture(scope="module")
def writer(aws: Emulator) -> str:
    aws.client("dynamodb").create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    table = f"arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}"
    return deploy_function(
        aws.client,
        "emulator-faults-writer",
        {"writer.py": WRITER},
        "writer.handler",
        statements=[
            {"Effect": "Allow", "Action": ["dynamodb:PutItem", "dynamodb:GetItem"], "Resource": table}
        ],
        timeout=3,
    )


@pytest.fixture(autouse=True)
def _no_faults(aws: Emulator) -> Iterator[None]:
    control.call(aws.endpoint, "DELETE", "lambda/faults", {})
    yield
    control.call(aws.endpoint, "DELETE", "lambda/faults", {})


def _fault(aws: Emulator, **body: Any) -> dict[str, Any]:
    return control.call(aws.endpoint, "POST", "lambda/faults", body)


def _invoke(aws: Emulator, function: str, key: str) -> tuple[dict[str, Any], str | None]:
    answer = aws.client("lambda").invoke(
        FunctionName=function, Payload=json.dumps({"table": TABLE, "key": key}).encode()
    )
    return json.loads(answer["Payload"].read() or b"null"), answer.get("FunctionError")


def _item(aws: Emulator, key: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = (
        aws.client("dynamodb")
        .get_item(TableName=TABLE, Key={"id": {"S": key}}, ConsistentRead=True)
        .get("Item")
    )
    return found


def _listed(aws: Emulator, fault_id: str) -> dict[str, Any]:
    faults = control.call(aws.endpoint, "GET", "lambda/faults")["faults"]
    return next(f for f in faults if f["id"] == fault_id)


def test_without_a_fault_the_writer_writes_and_answers(aws: Emulator, writer: str) -> None:
    key = uuid.uuid4().hex
    body, error = _invoke(aws, writer, key)
    assert error is None
    assert _item(aws, key) is not None
    assert body["written_by"]


def test_a_crash_exits_the_runtime_before_the_handler_writes(aws: Emulator, writer: str) -> None:
    fault = _fault(aws, function=writer, kind="crash")
    key = uuid.uuid4().hex
    body, error = _invoke(aws, writer, key)
    assert error == "Unhandled"
    assert body["errorType"] == "Runtime.ExitError"
    assert _item(aws, key) is None
    assert _listed(aws, fault["id"])["invocations"] == 1
    assert _listed(aws, fault["id"])["acted"] == 1
    # times=1: the next invocation runs normally (in a new environment).
    assert _invoke(aws, writer, key)[1] is None
    assert _item(aws, key) is not None


def test_a_timeout_hangs_the_handler_until_lambda_stops_it(aws: Emulator, writer: str) -> None:
    _fault(aws, function=writer, kind="timeout")
    key = uuid.uuid4().hex
    body, error = _invoke(aws, writer, key)
    assert error == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 3.00 seconds" in body["errorMessage"]
    assert _item(aws, key) is None


@pytest.mark.parametrize(
    ("kind", "code"),
    [("throttle", "ThrottlingException"), ("server-error", "InternalServerError")],
)
def test_a_call_fault_refuses_the_matching_call_as_the_service_would(
    aws: Emulator, writer: str, kind: str, code: str
) -> None:
    fault = _fault(aws, function=writer, kind=kind, calls=["dynamodb:PutItem"])
    key = uuid.uuid4().hex
    body, error = _invoke(aws, writer, key)
    assert error == "Unhandled"
    assert body["errorType"] in (code, "ClientError"), "the SDK's modeled error, or its generic one"
    assert f"({code})" in body["errorMessage"]
    assert "PutItem" in body["errorMessage"]
    assert _item(aws, key) is None
    assert _listed(aws, fault["id"])["acted"] >= 1


def test_a_call_fault_leaves_other_calls_alone(aws: Emulator, writer: str) -> None:
    fault = _fault(aws, function=writer, kind="throttle", calls=["elbv2:*"])
    key = uuid.uuid4().hex
    assert _invoke(aws, writer, key)[1] is None
    assert _item(aws, key) is not None
    assert _listed(aws, fault["id"]) == {**_listed(aws, fault["id"]), "invocations": 1, "acted": 0}


def test_exit_after_call_lets_the_write_land_then_exits(aws: Emulator, writer: str) -> None:
    """The default target is the first call that writes: PutItem lands, the read never happens."""
    fault = _fault(aws, function=writer, kind="exit-after-call")
    key = uuid.uuid4().hex
    body, error = _invoke(aws, writer, key)
    assert error == "Unhandled"
    assert body["errorType"] == "Runtime.ExitError"
    assert _item(aws, key) is not None, "the write landed before the process exited"
    assert _listed(aws, fault["id"])["acted"] == 1


def test_match_and_times_single_out_invocations(aws: Emulator, writer: str) -> None:
    fault = _fault(aws, function=writer, kind="crash", match="only-this", times=None)
    assert _invoke(aws, writer, f"other-{uuid.uuid4().hex}")[1] is None
    for _ in range(2):
        body, _error = _invoke(aws, writer, f"only-this-{uuid.uuid4().hex}")
        assert body["errorType"] == "Runtime.ExitError"
    assert _listed(aws, fault["id"])["invocations"] == 2
    control.call(aws.endpoint, "DELETE", "lambda/faults", {"id": fault["id"]})
    assert _invoke(aws, writer, f"only-this-{uuid.uuid4().hex}")[1] is None


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"kind": "crash"}, "'function'"),
        ({"function": "f", "kind": "melt"}, "'kind'"),
        ({"function": "f", "kind": "crash", "calls": ["dynamodb:PutItem"]}, "'calls'"),
        ({"function": "f", "kind": "throttle", "calls": ["PutItem"]}, "'calls'"),
        ({"function": "f", "kind": "crash", "times": 0}, "'times'"),
        ({"function": "f", "kind": "crash", "color": "red"}, "color"),
    ],
)
def test_a_bad_fault_is_refused_naming_the_field(aws: Emulator, body: dict[str, Any], named: str) -> None:
    with pytest.raises(control.ControlError) as refused:
        control.call(aws.endpoint, "POST", "lambda/faults", body)
    assert refused.value.status == 400
    assert named in str(refused.value)
    assert control.call(aws.endpoint, "GET", "lambda/faults")["faults"] == []
