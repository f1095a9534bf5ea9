"""deliver_eventbridge_to_lambda and skip_disabled_event_rules."""

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
