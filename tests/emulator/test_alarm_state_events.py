"""publish_set_alarm_state_changes: SetAlarmState is a state transition like the evaluator's."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from conftest import purge, receive
from ecs_canary_cli.local import Emulator


def _alarm(aws: Emulator, name: str, period: int, missing: str = "missing") -> None:
    """An alarm on its own metric (dimension Alarm=<name>): Errors above 5."""
    aws.client("cloudwatch").put_metric_alarm(
        AlarmName=name,
        AlarmDescription="set by hand",
        Namespace="SetState",
        MetricName="Errors",
        Dimensions=[{"Name": "Alarm", "Value": name}],
        Statistic="Maximum",
        Period=period,
        EvaluationPeriods=1,
        Threshold=5.0,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData=missing,
    )


def _put(aws: Emulator, name: str, value: float) -> None:
    aws.client("cloudwatch").put_metric_data(
        Namespace="SetState",
        MetricData=[
            {"MetricName": "Errors", "Dimensions": [{"Name": "Alarm", "Value": name}], "Value": value}
        ],
    )


def _state(aws: Emulator, name: str) -> dict[str, Any]:
    return dict(aws.client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"][0])


def _wait_state(aws: Emulator, name: str, state: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (alarm := _state(aws, name))["StateValue"] != state and time.monotonic() < deadline:
        time.sleep(0.05)
    return alarm


def _changes(
    aws: Emulator,
    queue_url: str,
    name: str,
    until: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 10.0,
) -> list[dict[str, Any]]:
    """The alarm's state change events the sink records, each once, as soon as ``until`` holds for
    them (or ``timeout`` has passed). The sink may still hold other tests' events, and delivery to
    the recording function is at least once (a retried delivery records an event twice)."""
    unique: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in receive(aws, queue_url, 1, timeout=0.2, source="aws.cloudwatch"):
            event = message["body"]["event"]
            if event["detail"]["alarmName"] == name:
                unique.setdefault(event["id"], event)
        if until(list(unique.values())):
            break
    return list(unique.values())


def _entered(events: list[dict[str, Any]], state: str) -> list[dict[str, Any]]:
    return [e for e in events if e["detail"]["state"]["value"] == state]


def test_set_alarm_state_publishes_a_state_change_and_nothing_when_unchanged(
    aws: Emulator, stack: dict[str, str]
) -> None:
    purge(aws, stack["SinkUrl"])
    cloudwatch = aws.client("cloudwatch")
    _alarm(aws, "set-by-hand", period=3600)  # no data: the evaluator keeps it INSUFFICIENT_DATA
    reason_data = json.dumps({"source": "test"})
    cloudwatch.set_alarm_state(
        AlarmName="set-by-hand", StateValue="ALARM", StateReason="drill", StateReasonData=reason_data
    )
    alarm = _state(aws, "set-by-hand")
    assert (alarm["StateValue"], alarm["StateReason"]) == ("ALARM", "drill")
    cloudwatch.set_alarm_state(AlarmName="set-by-hand", StateValue="ALARM", StateReason="still a drill")
    cloudwatch.set_alarm_state(AlarmName="set-by-hand", StateValue="OK", StateReason="drill over")

    changes = _changes(aws, stack["SinkUrl"], "set-by-hand", lambda found: bool(_entered(found, "OK")))
    assert aws.wait_for_idle(10)
    changes += _changes(aws, stack["SinkUrl"], "set-by-hand", lambda _: False, timeout=0.5)
    transitions = sorted(
        (c["detail"]["previousState"]["value"], c["detail"]["state"]["value"]) for c in changes
    )
    assert transitions == [("ALARM", "OK"), ("INSUFFICIENT_DATA", "ALARM")]  # none for ALARM -> ALARM

    [change] = _entered(changes, "ALARM")
    assert change["source"] == "aws.cloudwatch"
    assert change["detail-type"] == "CloudWatch Alarm State Change"
    assert change["resources"] == [alarm["AlarmArn"]]
    detail = change["detail"]
    assert (detail["alarmName"], detail["state"]["reason"]) == ("set-by-hand", "drill")
    assert detail["state"]["reasonData"] == reason_data
    assert detail["configuration"]["description"] == "set by hand"
    [metric] = detail["configuration"]["metrics"]
    assert metric["metricStat"]["metric"] == {
        "namespace": "SetState",
        "name": "Errors",
        "dimensions": {"Alarm": "set-by-hand"},
    }
    assert (metric["metricStat"]["period"], metric["metricStat"]["stat"]) == (3600, "Maximum")
    [recovered] = _entered(changes, "OK")
    assert recovered["detail"]["state"]["reason"] == "drill over"
    assert "reasonData" not in recovered["detail"]["state"]
    cloudwatch.delete_alarms(AlarmNames=["set-by-hand"])


def test_a_set_state_lasts_until_the_alarms_next_period(aws: Emulator, stack: dict[str, str]) -> None:
    cloudwatch = aws.client("cloudwatch")
    _alarm(aws, "held", period=86400)  # one period lasts 864 s at the tests' time scale
    _alarm(aws, "short", period=10, missing="notBreaching")  # one period lasts 0.1 s
    _put(aws, "held", 1.0)
    for name in ("held", "short"):
        assert _wait_state(aws, name, "OK")["StateValue"] == "OK"

    for name in ("held", "short"):
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="drill")
    short = _wait_state(aws, "short", "OK")  # evaluated again once its period has passed
    assert short["StateValue"] == "OK"
    assert short["StateReason"].startswith("Threshold Crossed: no datapoints were received")
    time.sleep(0.3)  # a few more evaluations (every 10 emulated seconds)
    assert _state(aws, "held")["StateValue"] == "ALARM"

    def back_to_ok(found: list[dict[str, Any]]) -> bool:
        return any(e["detail"]["previousState"]["value"] == "ALARM" for e in _entered(found, "OK"))

    changes = _changes(aws, stack["SinkUrl"], "short", back_to_ok)
    [set_by_hand] = [e for e in _entered(changes, "ALARM") if e["detail"]["state"]["reason"] == "drill"]
    assert set_by_hand["detail"]["previousState"]["value"] == "OK"
    [evaluated] = [e for e in _entered(changes, "OK") if e["detail"]["previousState"]["value"] == "ALARM"]
    assert evaluated["detail"]["previousState"]["reason"] == "drill"
    assert "Threshold Crossed" in evaluated["detail"]["state"]["reason"]
    cloudwatch.delete_alarms(AlarmNames=["held", "short"])
