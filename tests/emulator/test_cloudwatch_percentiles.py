"""percentile_statistics_in_metric_queries: GetMetricData and GetMetricStatistics compute pNN from
the raw values of each period; periods with only statistic sets have no percentile."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import pytest
from ecs_canary.metrics import green_sample
from ecs_canary_cli.local import Emulator

NAMESPACE = "AWS/ApplicationELB"


def _dimensions() -> list[dict[str, str]]:
    """Dimensions of a target group of its own, so no other test's datapoints count."""
    suffix = uuid.uuid4().hex[:16]
    return [
        {"Name": "TargetGroup", "Value": f"targetgroup/green-{suffix[:6]}/{suffix}"},
        {"Name": "LoadBalancer", "Value": f"app/shop-{suffix[:6]}/{suffix}"},
    ]


def _window(minutes: int = 5) -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.UTC).replace(second=0, microsecond=0)
    return now - datetime.timedelta(minutes=minutes), now + datetime.timedelta(minutes=1)


def _query(query_id: str, stat: str, dimensions: list[dict[str, str]], period: int = 60) -> dict[str, Any]:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {"Namespace": NAMESPACE, "MetricName": "TargetResponseTime", "Dimensions": dimensions},
            "Period": period,
            "Stat": stat,
        },
    }


def _results(aws: Emulator, queries: list[dict[str, Any]]) -> dict[str, list[float]]:
    start, end = _window()
    response = aws.client("cloudwatch").get_metric_data(
        MetricDataQueries=queries, StartTime=start, EndTime=end, ScanBy="TimestampAscending"
    )
    return {r["Id"]: list(r["Values"]) for r in response["MetricDataResults"]}


def test_get_metric_data_percentiles_of_raw_values_with_counts(aws: Emulator) -> None:
    dimensions = _dimensions()
    at = _window()[0] + datetime.timedelta(minutes=2, seconds=10)
    aws.client("cloudwatch").put_metric_data(
        Namespace=NAMESPACE,
        MetricData=[
            {
                "MetricName": "TargetResponseTime",
                "Dimensions": dimensions,
                "Timestamp": at,
                "Values": [0.02, 0.4, 1.5],
                "Counts": [97.0, 2.0, 1.0],
                "Unit": "Seconds",
            }
        ],
    )
    results = _results(
        aws,
        [
            _query("p50", "p50", dimensions),
            _query("p97", "p97", dimensions),
            _query("p99", "p99", dimensions),
            _query("p995", "p99.5", dimensions),
            _query("count", "SampleCount", dimensions),
            {"Id": "copy", "Expression": "p99"},
        ],
    )
    assert results["p50"] == [pytest.approx(0.02)]
    assert results["p97"] == [pytest.approx(0.02)]  # the 97th of 100 values
    assert results["p99"] == [pytest.approx(0.4)]
    assert results["p995"] == [pytest.approx(1.5)]
    assert results["count"] == [100.0]
    assert results["copy"] == results["p99"]


def test_periods_with_only_statistic_sets_have_no_percentile(aws: Emulator) -> None:
    dimensions = _dimensions()
    start, _ = _window()
    aws.client("cloudwatch").put_metric_data(
        Namespace=NAMESPACE,
        MetricData=[
            {
                "MetricName": "TargetResponseTime",
                "Dimensions": dimensions,
                "Timestamp": start + datetime.timedelta(minutes=1, seconds=5),
                "StatisticValues": {"SampleCount": 10, "Sum": 2.0, "Minimum": 0.1, "Maximum": 0.5},
            },
            {
                "MetricName": "TargetResponseTime",
                "Dimensions": dimensions,
                "Timestamp": start + datetime.timedelta(minutes=3, seconds=5),
                "Values": [0.25],
            },
        ],
    )
    start_time, end_time = _window()
    response = aws.client("cloudwatch").get_metric_data(
        MetricDataQueries=[_query("p99", "p99", dimensions), _query("max", "Maximum", dimensions)],
        StartTime=start_time,
        EndTime=end_time,
        ScanBy="TimestampAscending",
    )
    by_id = {r["Id"]: r for r in response["MetricDataResults"]}
    assert by_id["p99"]["Values"] == [0.25]
    assert [t.replace(tzinfo=None) for t in by_id["p99"]["Timestamps"]] == [
        (start + datetime.timedelta(minutes=3)).replace(tzinfo=None)
    ]
    assert by_id["max"]["Values"] == [0.5, 0.25]


def test_get_metric_statistics_extended_statistics(aws: Emulator) -> None:
    dimensions = _dimensions()
    start, end = _window()
    cloudwatch = aws.client("cloudwatch")
    cloudwatch.put_metric_data(
        Namespace=NAMESPACE,
        MetricData=[
            {
                "MetricName": "TargetResponseTime",
                "Dimensions": dimensions,
                "Timestamp": start + datetime.timedelta(minutes=1, seconds=5),
                "StatisticValues": {"SampleCount": 4, "Sum": 2.0, "Minimum": 0.1, "Maximum": 1.0},
            },
            {
                "MetricName": "TargetResponseTime",
                "Dimensions": dimensions,
                "Timestamp": start + datetime.timedelta(minutes=3, seconds=5),
                "Values": [float(i) / 1000 for i in range(1, 101)],
            },
        ],
    )
    common: dict[str, Any] = {
        "Namespace": NAMESPACE,
        "MetricName": "TargetResponseTime",
        "Dimensions": dimensions,
        "StartTime": start,
        "EndTime": end,
        "Period": 60,
    }
    [point] = cloudwatch.get_metric_statistics(**common, ExtendedStatistics=["p99", "p50"])["Datapoints"]
    assert point["ExtendedStatistics"] == {"p99": pytest.approx(0.099), "p50": pytest.approx(0.05)}
    points = cloudwatch.get_metric_statistics(**common, Statistics=["SampleCount"])["Datapoints"]
    assert sorted(p["SampleCount"] for p in points) == [4.0, 100.0]
    assert all("ExtendedStatistics" not in p for p in points)


def test_green_sample_reads_p99_in_milliseconds(aws: Emulator) -> None:
    suffix = uuid.uuid4().hex[:16]
    account = "arn:aws:elasticloadbalancing:us-east-1:123456789012"
    target_group_arn = f"{account}:targetgroup/green-{suffix[:6]}/{suffix}"
    load_balancer_arn = f"{account}:loadbalancer/app/shop-{suffix[:6]}/{suffix}"
    dimensions = [
        {"Name": "TargetGroup", "Value": f"targetgroup/green-{suffix[:6]}/{suffix}"},
        {"Name": "LoadBalancer", "Value": f"app/shop-{suffix[:6]}/{suffix}"},
    ]
    start, end = _window()
    at = start + datetime.timedelta(minutes=2)
    cloudwatch = aws.client("cloudwatch")
    cloudwatch.put_metric_data(
        Namespace=NAMESPACE,
        MetricData=[
            {"MetricName": "RequestCount", "Dimensions": dimensions, "Timestamp": at, "Value": 200.0},
            {
                "MetricName": "HTTPCode_Target_5XX_Count",
                "Dimensions": dimensions,
                "Timestamp": at,
                "Value": 3.0,
            },
            {
                "MetricName": "TargetResponseTime",
                "Dimensions": dimensions,
                "Timestamp": at,
                "Values": [0.030, 0.120, 0.850],
                "Counts": [190.0, 8.0, 2.0],
                "Unit": "Seconds",
            },
        ],
    )
    sample = green_sample(
        cloudwatch,
        target_group_arn=target_group_arn,
        load_balancer_arn=load_balancer_arn,
        start=start,
        end=end,
    )
    assert (sample.requests, sample.errors_5xx) == (200, 3)
    assert sample.p99_latency_ms == pytest.approx(120.0)  # the 198th of 200 values, in ms
