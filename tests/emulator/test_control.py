"""The emulator's own API under /_emulator/: health, and publishing events as AWS services do."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from typing import Any

import pytest
from conftest import receive
from ecs_canary_cli.local import Emulator, control

ENVELOPE = {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}


def _recorded(aws: Emulator, queue_url: str, marker: str, timeout: float = 10.0) -> dict[str, Any]:
    """The event the fixture's record function got whose detail carries ``marker``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in receive(aws, queue_url, 1, timeout=0.2):
            event: dict[str, Any] = message["body"].get("event", {})
            if isinstance(event.get("detail"), dict) and event["detail"].get("marker") == marker:
                return event
    pytest.fail(f"no recorded event with marker {marker}")


def test_health_of_an_emulator_without_a_stack(aws: Emulator) -> None:
    assert aws.health() == {"ready": True, "stack": None, "outputs": {}, "error": None, "waiting": 0}


def test_unknown_route_is_404_naming_the_routes(aws: Emulator) -> None:
    with pytest.raises(control.ControlError) as raised:
        control.call(aws.endpoint, "GET", "nothing-here")
    assert raised.value.status == 404
    assert "GET /_emulator/health" in str(raised.value)
    assert "POST /_emulator/events" in str(raised.value)


def test_routes_answer_json(aws: Emulator) -> None:
    with urllib.request.urlopen(f"{aws.endpoint}/_emulator/health", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        assert json.loads(response.read())["ready"] is True


def test_injected_service_event_reaches_rules_as_the_service_would(
    aws: Emulator, stack: dict[str, str]
) -> None:
    marker = str(uuid.uuid4())
    answer = aws.inject_events(
        [
            {
                "Source": "aws.ecs",
                "DetailType": "ECS Task State Change",
                "Detail": {"marker": marker, "lastStatus": "STOPPED"},
                "Resources": ["arn:aws:ecs:us-east-1:123456789012:task/c/t"],
                "Time": "2030-05-06T07:08:09Z",
            }
        ]
    )
    assert answer["FailedEntryCount"] == 0
    [entry] = answer["Entries"]
    event = _recorded(aws, stack["SinkUrl"], marker)
    assert set(event) == ENVELOPE
    assert event["id"] == entry["EventId"]
    assert event["source"] == "aws.ecs"
    assert event["detail-type"] == "ECS Task State Change"
    assert event["detail"] == {"marker": marker, "lastStatus": "STOPPED"}
    assert event["resources"] == ["arn:aws:ecs:us-east-1:123456789012:task/c/t"]
    assert event["time"] == "2030-05-06T07:08:09Z"
    assert (event["account"], event["region"]) == ("123456789012", "us-east-1")


def test_detail_string_epoch_time_and_a_custom_bus(aws: Emulator) -> None:
    events, sqs = aws.client("events"), aws.client("sqs")
    events.create_event_bus(Name="services")
    url = sqs.create_queue(QueueName="from-services")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name="alarms", EventBusName="services", EventPattern=json.dumps({"source": ["aws.cloudwatch"]})
    )
    events.put_targets(Rule="alarms", EventBusName="services", Targets=[{"Id": "q", "Arn": arn}])
    answer = control.inject_events(
        aws.endpoint,
        [
            {
                "Source": "aws.cloudwatch",
                "DetailType": "CloudWatch Alarm State Change",
                "Detail": json.dumps({"state": {"value": "ALARM"}}),
                "Time": 1_900_000_000,
                "EventBusName": "services",
            }
        ],
    )
    assert answer["FailedEntryCount"] == 0
    [message] = receive(aws, url, 1)
    assert message["body"]["detail"] == {"state": {"value": "ALARM"}}
    assert message["body"]["time"] == "2030-03-17T17:46:40Z"
    assert message["body"]["resources"] == []


def test_entries_fail_one_by_one_like_put_events(aws: Emulator) -> None:
    answer = aws.inject_events(
        [
            {"Source": "aws.ecs", "Detail": {}},
            {"Source": "aws.ecs", "DetailType": "ECS Task State Change", "Detail": {"n": 1}},
            {"Source": "aws.ecs", "DetailType": "X", "Detail": {}, "EventBusName": "no-such-bus"},
        ]
    )
    assert answer["FailedEntryCount"] == 2
    missing_type, published, no_bus = answer["Entries"]
    assert missing_type["ErrorCode"] == "InvalidArgument"
    assert set(published) == {"EventId"}
    assert no_bus["ErrorCode"] == "ResourceNotFoundException"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "Entries must be a non-empty list"),
        ({"Entries": ["not an object"]}, "each entry must be an object"),
        ({"Entries": [{"Source": "aws.ecs", "DetailType": "X", "Detail": {}, "Time": "soon"}]}, "soon"),
    ],
)
def test_bad_requests_are_400(aws: Emulator, body: dict[str, Any], message: str) -> None:
    with pytest.raises(control.ControlError) as raised:
        control.call(aws.endpoint, "POST", "events", body)
    assert raised.value.status == 400
    assert message in str(raised.value)
