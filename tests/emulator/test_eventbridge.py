"""deliver_eventbridge_to_lambda, skip_disabled_event_rules, deliver_full_envelope_to_sqs and
refuse_aws_sources_in_put_events (fire_scheduled_rules: test_scheduled_rules.py)."""

from __future__ import annotations

import json

from conftest import receive
from ecs_canary_cli.local import Emulator

ENVELOPE = {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}


def _put(aws: Emulator, *details: dict[str, object], source: str = "emulator.test") -> None:
    aws.client("events").put_events(
        Entries=[
            {"Source": source, "DetailType": "Test", "Detail": json.dumps(d), "Resources": ["arn:x"]}
            for d in details
        ]
    )


def test_rule_delivers_the_full_envelope_to_lambda(aws: Emulator, stack: dict[str, str]) -> None:
    _put(aws, {"n": 1})
    [message] = receive(aws, stack["SinkUrl"], 1, source="emulator.test")
    event = message["body"]["event"]
    assert set(event) == ENVELOPE
    assert event["version"] == "0"
    assert event["source"] == "emulator.test"
    assert event["detail-type"] == "Test"
    assert event["detail"] == {"n": 1}
    assert event["resources"] == ["arn:x"]
    assert event["account"] == "123456789012"
    assert event["region"] == "us-east-1"
    assert event["time"].endswith("Z")
    assert "T" in event["time"]


def test_duplicates_option_delivers_each_event_again(aws: Emulator, stack: dict[str, str]) -> None:
    aws.options.duplicates = 2
    _put(aws, {"n": 2})
    assert aws.wait_for_idle(10)
    messages = receive(aws, stack["SinkUrl"], 3, source="emulator.test")
    assert len(messages) == 3
    assert len({m["body"]["event"]["id"] for m in messages}) == 1


def test_duplicate_probability_is_seeded(aws: Emulator, stack: dict[str, str]) -> None:
    def run() -> int:
        aws.options.reseed(7)
        aws.options.duplicate_probability = 0.5
        for n in range(4):
            _put(aws, {"n": n})
        assert aws.wait_for_idle(10)
        return len(receive(aws, stack["SinkUrl"], 100, timeout=0.5, source="emulator.test"))

    first = run()
    assert 4 < first < 8
    assert run() == first


def test_reorder_window_shuffles_deliveries(aws: Emulator, stack: dict[str, str]) -> None:
    aws.options.reorder_window = 50.0  # emulated seconds: 0.5 s real
    for n in range(0, 10, 2):
        _put(aws, {"n": n}, {"n": n + 1})
    assert aws.wait_for_idle(10)
    order = [
        m["body"]["event"]["detail"]["n"] for m in receive(aws, stack["SinkUrl"], 10, source="emulator.test")
    ]
    assert sorted(order) == list(range(10))
    assert order != list(range(10))


def test_undeliverable_event_is_retried_then_dead_lettered(aws: Emulator, stack: dict[str, str]) -> None:
    events = aws.client("events")
    events.put_rule(Name="to-missing-function", EventPattern=json.dumps({"source": ["emulator.missing"]}))
    missing = stack["RecordFunctionArn"].rsplit(":", 1)[0] + ":does-not-exist"
    events.put_targets(
        Rule="to-missing-function",
        Targets=[
            {
                "Id": "gone",
                "Arn": missing,
                "RetryPolicy": {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600},
                "DeadLetterConfig": {"Arn": stack["DeadLettersArn"]},
            }
        ],
    )
    _put(aws, {"lost": True}, source="emulator.missing")
    assert aws.wait_for_idle(10)
    [dead] = receive(aws, stack["DeadLettersUrl"], 1)
    assert dead["body"]["detail"] == {"lost": True}
    attributes = {k: v["StringValue"] for k, v in dead["attributes"].items()}
    assert attributes["ERROR_CODE"] == "RESOURCE_NOT_FOUND"
    assert attributes["RETRY_ATTEMPTS"] == "3"
    assert attributes["EXHAUSTED_RETRY_CONDITION"] == "MaximumRetryAttempts"
    assert attributes["TARGET_ARN"] == missing
    assert attributes["RULE_ARN"].endswith(":rule/to-missing-function")


def test_function_without_resource_policy_is_not_invoked(aws: Emulator, stack: dict[str, str]) -> None:
    events = aws.client("events")
    events.put_rule(Name="no-permission", EventPattern=json.dumps({"source": ["emulator.denied"]}))
    echo_arn = stack["RecordFunctionArn"].replace(stack["RecordFunction"], stack["EchoFunction"])
    events.put_targets(
        Rule="no-permission",
        Targets=[
            {
                "Id": "echo",
                "Arn": echo_arn,
                "RetryPolicy": {"MaximumRetryAttempts": 0},
                "DeadLetterConfig": {"Arn": stack["DeadLettersArn"]},
            }
        ],
    )
    _put(aws, {"denied": True}, source="emulator.denied")
    assert aws.wait_for_idle(10)
    [dead] = receive(aws, stack["DeadLettersUrl"], 1)
    assert dead["attributes"]["ERROR_CODE"]["StringValue"] == "NO_PERMISSIONS"


def test_disabled_rule_matches_nothing(aws: Emulator, stack: dict[str, str]) -> None:
    events = aws.client("events")
    [rule] = [r for r in events.list_rules(NamePrefix="emulator-fixture-RecordFunctionTestEvents")["Rules"]]
    events.disable_rule(Name=rule["Name"])
    try:
        _put(aws, {"n": 99})
        assert aws.wait_for_idle(10)
        assert receive(aws, stack["SinkUrl"], 1, timeout=0.3, source="emulator.test") == []
    finally:
        events.enable_rule(Name=rule["Name"])


def _queue(aws: Emulator, name: str) -> tuple[str, str]:
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def test_put_events_refuses_aws_sources_entry_by_entry(aws: Emulator, stack: dict[str, str]) -> None:
    """refuse_aws_sources_in_put_events"""
    response = aws.client("events").put_events(
        Entries=[
            {"Source": "aws.ecs", "DetailType": "ECS Task State Change", "Detail": json.dumps({"forged": 1})},
            {"Source": "emulator.test", "DetailType": "Test", "Detail": json.dumps({"n": "allowed"})},
            {"Source": "aws.states", "DetailType": "Test", "Detail": json.dumps({"forged": 2})},
        ]
    )
    assert response["FailedEntryCount"] == 2
    refused = {
        "ErrorCode": "NotAuthorizedForSourceException",
        "ErrorMessage": "Not authorized for the source.",
    }
    first, second, third = response["Entries"]
    assert first == refused
    assert third == refused
    assert set(second) == {"EventId"}
    [delivered] = receive(aws, stack["SinkUrl"], 1, source="emulator.test")
    assert delivered["body"]["event"]["id"] == second["EventId"]
    assert delivered["body"]["event"]["detail"] == {"n": "allowed"}
    assert aws.wait_for_idle(10)
    assert receive(aws, stack["SinkUrl"], 1, timeout=0.3, source="aws.ecs") == []


def test_sqs_target_gets_the_full_envelope(aws: Emulator) -> None:
    """deliver_full_envelope_to_sqs"""
    url, arn = _queue(aws, "envelope-target")
    events = aws.client("events")
    events.put_rule(Name="to-queue", EventPattern=json.dumps({"source": ["emulator.sqs"]}))
    events.put_targets(Rule="to-queue", Targets=[{"Id": "queue", "Arn": arn}])
    [published] = aws.client("events").put_events(
        Entries=[
            {
                "Source": "emulator.sqs",
                "DetailType": "Queued",
                "Detail": json.dumps({"n": 1}),
                "Resources": ["arn:y"],
            }
        ]
    )["Entries"]
    [message] = receive(aws, url, 1)
    event = message["body"]
    assert set(event) == ENVELOPE
    assert event["id"] == published["EventId"]
    assert event["account"] == "123456789012"
    assert event["region"] == "us-east-1"
    assert (event["source"], event["detail-type"], event["resources"]) == (
        "emulator.sqs",
        "Queued",
        ["arn:y"],
    )
    assert event["detail"] == {"n": 1}
    assert event["time"].endswith("Z")


def test_sqs_target_input_path_and_constant_input(aws: Emulator) -> None:
    """deliver_full_envelope_to_sqs: a target's InputPath and Input shape what the queue gets."""
    url, arn = _queue(aws, "shaped-target")
    events = aws.client("events")
    events.put_rule(Name="shaped", EventPattern=json.dumps({"source": ["emulator.shaped"]}))
    events.put_targets(
        Rule="shaped",
        Targets=[
            {"Id": "detail", "Arn": arn, "InputPath": "$.detail"},
            {"Id": "constant", "Arn": arn, "Input": json.dumps({"fixed": True})},
        ],
    )
    _put(aws, {"n": 7}, source="emulator.shaped")
    bodies = [m["body"] for m in receive(aws, url, 2)]
    assert sorted(bodies, key=json.dumps) == [{"fixed": True}, {"n": 7}]


def test_disabled_rule_delivers_nothing_to_queues(aws: Emulator) -> None:
    """skip_disabled_event_rules also holds for the SQS targets deliver_full_envelope_to_sqs sends to."""
    url, arn = _queue(aws, "disabled-target")
    events = aws.client("events")
    events.put_rule(Name="disabled-to-queue", EventPattern=json.dumps({"source": ["emulator.off"]}))
    events.put_targets(Rule="disabled-to-queue", Targets=[{"Id": "queue", "Arn": arn}])
    events.disable_rule(Name="disabled-to-queue")
    _put(aws, {"n": 1}, source="emulator.off")
    assert receive(aws, url, 1, timeout=0.3) == []
