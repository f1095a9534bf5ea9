"""evaluate_cloudwatch_alarms: alarms move on the emulator clock against stored datapoints."""

from __future__ import annotations

import json
import re
import time
from types import SimpleNamespace
from typing import Any

from conftest import purge, receive
from ecs_canary_cli.local import Emulator
from ecs_canary_cli.local.patches.cloudwatch import EVALUATION_RANGE_EXTRA, evaluate_alarm

DIMENSIONS = [{"Name": "Service", "Value": "green"}]


def _alarm(aws: Emulator, name: str, **overrides: Any) -> None:
    spec: dict[str, Any] = {
        "AlarmName": name,
        "Namespace": "Emulated",
        "MetricName": "Errors",
        "Dimensions": DIMENSIONS,
        "Statistic": "Average",
        "Period": 60,
        "EvaluationPeriods": 1,
        "Threshold": 5.0,
        "ComparisonOperator": "GreaterThanThreshold",
    }
    spec.update(overrides)
    spec = {k: v for k, v in spec.items() if v is not None}
    aws.client("cloudwatch").put_metric_alarm(**spec)


def _state(aws: Emulator, name: str) -> dict[str, Any]:
    return dict(aws.client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"][0])


def _wait_state(
    aws: Emulator, name: str, state: str, timeout: float = 5.0, feed: Any = None
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        alarm = _state(aws, name)
        if alarm["StateValue"] == state or time.monotonic() > deadline:
            return alarm
        if feed is not None:
            feed()
        time.sleep(0.05)


def _put(aws: Emulator, **datum: Any) -> None:
    aws.client("cloudwatch").put_metric_data(
        Namespace="Emulated", MetricData=[{"MetricName": "Errors", "Dimensions": DIMENSIONS, **datum}]
    )


def test_alarm_fires_on_threshold_and_recovers(aws: Emulator, stack: dict[str, str]) -> None:
    purge(aws, stack["SinkUrl"])
    _alarm(aws, "errors-high")
    assert _state(aws, "errors-high")["StateValue"] == "INSUFFICIENT_DATA"
    _put(aws, Value=12.0)
    alarm = _wait_state(aws, "errors-high", "ALARM")
    assert alarm["StateValue"] == "ALARM"
    assert re.fullmatch(
        r"Threshold Crossed: 1 datapoint \[12\.0 \(\d\d/\d\d/\d\d \d\d:\d\d:\d\d\)\] "
        r"was greater than the threshold \(5\.0\)\.",
        alarm["StateReason"],
    )
    alarm = _wait_state(aws, "errors-high", "OK", feed=lambda: _put(aws, Value=1.0))
    assert alarm["StateValue"] == "OK"
    assert "was not greater than the threshold (5.0)" in alarm["StateReason"]
    # Delivery is at least once and unordered: compare the transitions, each event once.
    changes: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 10
    while len(changes) < 2 and time.monotonic() < deadline:
        for message in receive(aws, stack["SinkUrl"], 1, timeout=0.5, source="aws.cloudwatch"):
            if message["body"]["event"]["detail"]["alarmName"] == "errors-high":
                changes.setdefault(message["body"]["event"]["id"], message["body"]["event"])
    transitions = {c["detail"]["previousState"]["value"]: c for c in changes.values()}
    assert {k: c["detail"]["state"]["value"] for k, c in transitions.items()} == {
        "INSUFFICIENT_DATA": "ALARM",
        "ALARM": "OK",
    }
    assert transitions["INSUFFICIENT_DATA"]["detail-type"] == "CloudWatch Alarm State Change"
    aws.client("cloudwatch").delete_alarms(AlarmNames=["errors-high"])


def test_statistic_sets_values_counts_and_percentiles(aws: Emulator) -> None:
    _alarm(aws, "p99-high", MetricName="Latency", Statistic=None, ExtendedStatistic="p99", Threshold=50.0)
    _alarm(aws, "sum-high", MetricName="Requests", Statistic="Sum", Threshold=20.0)
    cloudwatch = aws.client("cloudwatch")
    cloudwatch.put_metric_data(
        Namespace="Emulated",
        MetricData=[
            {
                "MetricName": "Latency",
                "Dimensions": DIMENSIONS,
                "Values": [1.0, 100.0],
                "Counts": [98.0, 2.0],
            },
            {
                "MetricName": "Requests",
                "Dimensions": DIMENSIONS,
                "StatisticValues": {"SampleCount": 10, "Sum": 30, "Minimum": 1, "Maximum": 5},
            },
        ],
    )
    assert _wait_state(aws, "p99-high", "ALARM")["StateValue"] == "ALARM"
    assert _wait_state(aws, "sum-high", "ALARM")["StateValue"] == "ALARM"
    assert "[30.0 (" in _state(aws, "sum-high")["StateReason"]
    cloudwatch.delete_alarms(AlarmNames=["p99-high", "sum-high"])


def test_missing_data_goes_insufficient_and_other_dimensions_do_not_count(aws: Emulator) -> None:
    _alarm(aws, "quiet", MetricName="Quiet")
    aws.client("cloudwatch").put_metric_data(
        Namespace="Emulated",
        MetricData=[
            {"MetricName": "Quiet", "Dimensions": [{"Name": "Service", "Value": "blue"}], "Value": 99.0}
        ],
    )
    time.sleep(0.3)
    alarm = _state(aws, "quiet")
    assert alarm["StateValue"] == "INSUFFICIENT_DATA"
    aws.client("cloudwatch").delete_alarms(AlarmNames=["quiet"])


def _datum(value: float, at: float) -> SimpleNamespace:
    return SimpleNamespace(namespace="N", name="M", dimensions=[], unit=None, timestamp=at, value=value)


def _spec(**kw: Any) -> SimpleNamespace:
    base: dict[str, Any] = {
        "comparison_operator": "GreaterThanOrEqualToThreshold",
        "metric_name": "M",
        "metric_data_queries": [],
        "namespace": "N",
        "dimensions": [],
        "unit": None,
        "evaluation_periods": 3,
        "datapoints_to_alarm": 2,
        "period": 60,
        "statistic": "Maximum",
        "extended_statistic": None,
        "threshold": 10.0,
        "treat_missing_data": "missing",
    }
    base.update(kw)
    return SimpleNamespace(**base)


def test_m_out_of_n_and_treat_missing_data() -> None:
    now = 1_000_000.0
    two_of_three = [_datum(11, now - 10), _datum(3, now - 70), _datum(12, now - 130)]
    state, reason, _ = evaluate_alarm(_spec(), two_of_three, now, 60.0) or ("", "", "")
    assert state == "ALARM"
    assert reason.startswith("Threshold Crossed: 2 out of the last 3 datapoints [")
    assert reason.endswith("(minimum 2 datapoints for OK -> ALARM transition).")
    one = [_datum(11, now - 10)]
    assert (evaluate_alarm(_spec(), one, now, 60.0) or ("",))[0] == "OK"
    assert (evaluate_alarm(_spec(treat_missing_data="breaching"), one, now, 60.0) or ("",))[0] == "ALARM"
    assert evaluate_alarm(_spec(treat_missing_data="ignore"), [], now, 60.0) is None
    assert (evaluate_alarm(_spec(), [], now, 60.0) or ("",))[0] == "INSUFFICIENT_DATA"
    assert (evaluate_alarm(_spec(treat_missing_data="notBreaching"), [], now, 60.0) or ("",))[0] == "OK"


def test_the_evaluation_range_counts_datapoints_of_older_periods_when_recent_ones_are_missing() -> None:
    """A sparse metric (published only on failure) or a late datapoint still moves the alarm."""
    now = 1_000_000.0
    one_of_one = {"evaluation_periods": 1, "datapoints_to_alarm": 1, "treat_missing_data": "notBreaching"}
    late = [_datum(11, now - 70)]  # in the period before the last one
    state, reason, data = evaluate_alarm(_spec(**one_of_one), late, now, 60.0) or ("", "", "")
    assert state == "ALARM"
    assert reason.startswith("Threshold Crossed: 1 datapoint [11.0")
    assert json.loads(data)["recentDatapoints"] == [11.0]
    # Beyond the evaluation range it no longer counts: missing data is treated as the alarm says.
    gone = [_datum(11, now - 60 * (1 + EVALUATION_RANGE_EXTRA) - 10)]
    assert (evaluate_alarm(_spec(**one_of_one), gone, now, 60.0) or ("",))[0] == "OK"
    # A good datapoint in an older period evaluates as OK too (not "keep the state").
    assert (evaluate_alarm(_spec(**one_of_one), [_datum(3, now - 70)], now, 60.0) or ("",))[0] == "OK"
    # M out of N: two datapoints in the range, one breaching, with 2 needed: OK.
    mixed = [_datum(11, now - 70), _datum(3, now - 130)]
    assert (evaluate_alarm(_spec(evaluation_periods=2), mixed, now, 60.0) or ("",))[0] == "OK"
