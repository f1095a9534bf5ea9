"""metrics: alarm states, the green target group's ALB metrics and the ARN-to-dimension helpers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from ecs_canary.errors import RouterConfigError
from ecs_canary.health import MetricSample, PeriodMetrics, metric_window
from ecs_canary.metrics import (
    alarm_states,
    green_periods,
    green_sample,
    lb_dimension,
    load_balancer_for_target_group,
    metric_period,
    tg_dimension,
    window_sample,
)
from ecs_canary.spec import MetricThresholds
from moto.cloudwatch.models import cloudwatch_backends

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
ACCOUNT_ARN = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT_ID}"
TG_ARN = f"{ACCOUNT_ARN}:targetgroup/shop-green/73e2d6bc24d8a067"
LB_ARN = f"{ACCOUNT_ARN}:loadbalancer/app/shop/50dc6c495c0c9188"
DIMENSIONS = [
    {"Name": "TargetGroup", "Value": "targetgroup/shop-green/73e2d6bc24d8a067"},
    {"Name": "LoadBalancer", "Value": "app/shop/50dc6c495c0c9188"},
]


def _calls(client: Any, operation: str) -> list[dict[str, Any]]:
    """Parameters of every ``operation`` call the client makes from now on."""
    seen: list[dict[str, Any]] = []
    client.meta.events.register(
        f"before-parameter-build.*.{operation}", lambda params, **_: seen.append(dict(params))
    )
    return seen


# ---- ARN helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arn", "dimension"),
    [
        (TG_ARN, "targetgroup/shop-green/73e2d6bc24d8a067"),
        (
            "arn:aws-cn:elasticloadbalancing:cn-north-1:123456789012:targetgroup/a-b/0123456789abcdef",
            "targetgroup/a-b/0123456789abcdef",
        ),
    ],
)
def test_tg_dimension(arn: str, dimension: str) -> None:
    assert tg_dimension(arn) == dimension


@pytest.mark.parametrize(
    ("arn", "dimension"),
    [
        (LB_ARN, "app/shop/50dc6c495c0c9188"),
        (
            "arn:aws-us-gov:elasticloadbalancing:us-gov-west-1:1:loadbalancer/app/x/1",
            "app/x/1",
        ),
    ],
)
def test_lb_dimension(arn: str, dimension: str) -> None:
    assert lb_dimension(arn) == dimension


@pytest.mark.parametrize(
    ("function", "arn", "message"),
    [
        (tg_dimension, LB_ARN, "not a target group ARN"),
        (tg_dimension, "targetgroup/shop/1", "not an Elastic Load Balancing ARN"),
        (tg_dimension, "arn:aws:ecs:us-east-1:1:targetgroup/a/1", "not an Elastic Load Balancing ARN"),
        (tg_dimension, f"{ACCOUNT_ARN}:targetgroup/shop", "not a target group ARN"),
        (lb_dimension, TG_ARN, "not a load balancer ARN"),
        (lb_dimension, f"{ACCOUNT_ARN}:loadbalancer/net/shop/1", "not an Application Load Balancer"),
        (lb_dimension, f"{ACCOUNT_ARN}:listener/app/shop/1/2", "not a load balancer ARN"),
    ],
)
def test_dimension_rejects(function: Any, arn: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        function(arn)


@pytest.mark.parametrize(
    ("seconds", "period"),
    [(1, 60), (30, 60), (60, 60), (61, 120), (300, 300), (300.5, 360), (3599, 3600)],
)
def test_metric_period(seconds: float, period: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert metric_period(start, start + timedelta(seconds=seconds)) == period


@pytest.mark.parametrize("seconds", [0, -5])
def test_metric_period_rejects_empty_window(seconds: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="must end after it starts"):
        metric_period(start, start + timedelta(seconds=seconds))


# ---- alarms ------------------------------------------------------------------------------------


@pytest.fixture
def cloudwatch(mocked_aws: None) -> Any:
    return boto3.client("cloudwatch")


def _alarm(cloudwatch: Any, name: str, state: str | None = None) -> None:
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/ApplicationELB",
        MetricName="HTTPCode_Target_5XX_Count",
        Dimensions=DIMENSIONS,
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=5,
        ComparisonOperator="GreaterThanThreshold",
    )
    if state:
        cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason="test")


def _composite_alarm(name: str, rule: str) -> None:
    """Create a composite alarm in moto's backend: moto has no PutCompositeAlarm."""
    backend: Any = cloudwatch_backends[ACCOUNT_ID][REGION]
    backend.put_metric_alarm(
        name=name,
        namespace=None,
        metric_name=None,
        comparison_operator=None,
        evaluation_periods=None,
        period=None,
        threshold=None,
        statistic=None,
        description=None,
        dimensions=[],
        alarm_actions=[],
        rule=rule,
    )


def test_alarm_states(cloudwatch: Any) -> None:
    _alarm(cloudwatch, "green-5xx", "ALARM")
    _alarm(cloudwatch, "green-latency", "OK")
    _alarm(cloudwatch, "unrelated", "ALARM")
    _composite_alarm("green-any", 'ALARM("green-5xx") OR ALARM("green-latency")')
    cloudwatch.set_alarm_state(AlarmName="green-any", StateValue="ALARM", StateReason="test")
    calls = _calls(cloudwatch, "DescribeAlarms")

    states = alarm_states(cloudwatch, ["green-5xx", "green-latency", "green-any", "missing", "green-5xx"])

    assert states == {"green-5xx": "ALARM", "green-latency": "OK", "green-any": "ALARM"}
    assert len(calls) == 1
    assert calls[0]["AlarmTypes"] == ["MetricAlarm", "CompositeAlarm"]
    assert calls[0]["AlarmNames"] == ["green-5xx", "green-latency", "green-any", "missing"]


def test_alarm_states_chunks_names(cloudwatch: Any) -> None:
    names = [f"alarm-{i:03d}" for i in range(230)]
    for i, name in enumerate(names[::2]):
        _alarm(cloudwatch, name, "ALARM" if i % 3 == 0 else "OK")
    calls = _calls(cloudwatch, "DescribeAlarms")

    states = alarm_states(cloudwatch, names)

    assert states == {name: "ALARM" if i % 3 == 0 else "OK" for i, name in enumerate(names[::2])}
    assert [len(call["AlarmNames"]) for call in calls] == [100, 100, 30]
    assert all(call["MaxRecords"] == 100 for call in calls)


def test_alarm_states_without_names_makes_no_call(cloudwatch: Any) -> None:
    calls = _calls(cloudwatch, "DescribeAlarms")
    assert alarm_states(cloudwatch, []) == {}
    assert calls == []


# ---- green_sample, green_periods, window_sample ---------------------------------------------------


def _put(cloudwatch: Any, metric: str, value: float, at: datetime, dimensions: list[dict[str, str]]) -> None:
    cloudwatch.put_metric_data(
        Namespace="AWS/ApplicationELB",
        MetricData=[{"MetricName": metric, "Dimensions": dimensions, "Value": value, "Timestamp": at}],
    )


QUERIED = {
    "requests": ("RequestCount", "Sum"),
    "errors5xx": ("HTTPCode_Target_5XX_Count", "Sum"),
    "connectionErrors": ("TargetConnectionErrorCount", "Sum"),
    "p99": ("TargetResponseTime", "p99"),
    "unhealthyHosts": ("UnHealthyHostCount", "Maximum"),
}
"""Every metric the gate reads: only ones ALB publishes per target group (TargetGroup, LoadBalancer)."""


def test_green_sample_with_moto(cloudwatch: Any) -> None:
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(seconds=250)
    other = [{"Name": "TargetGroup", "Value": "targetgroup/shop-blue/1"}, DIMENSIONS[1]]
    for metric, value, age in [
        ("RequestCount", 40, 200),
        ("RequestCount", 60, 20),
        ("RequestCount", 1000, 400),  # before the window
        ("HTTPCode_Target_5XX_Count", 2, 100),
        ("HTTPCode_Target_5XX_Count", 1, 10),
        ("TargetConnectionErrorCount", 4, 50),
        ("UnHealthyHostCount", 0, 200),
        ("UnHealthyHostCount", 1, 100),
    ]:
        _put(cloudwatch, metric, value, end - timedelta(seconds=age), DIMENSIONS)
    _put(cloudwatch, "RequestCount", 500, end - timedelta(seconds=30), other)
    # Load-balancer-wide metrics mix blue's traffic in: never read.
    _put(cloudwatch, "HTTPCode_ELB_5XX_Count", 70, end - timedelta(seconds=30), [DIMENSIONS[1]])
    calls = _calls(cloudwatch, "GetMetricData")

    sample = green_sample(cloudwatch, target_group_arn=TG_ARN, load_balancer_arn=LB_ARN, start=start, end=end)

    # moto cannot compute percentile statistics, so no TargetResponseTime is published here.
    assert sample == MetricSample(
        requests=100, errors_5xx=3, p99_latency_ms=None, connection_errors=4, unhealthy_hosts=1
    )
    (call,) = calls
    assert (call["StartTime"], call["EndTime"]) == (start, end)
    stats = {q["Id"]: q["MetricStat"] for q in call["MetricDataQueries"]}
    assert {k: (v["Metric"]["MetricName"], v["Stat"]) for k, v in stats.items()} == QUERIED
    assert {v["Period"] for v in stats.values()} == {300}
    assert all(v["Metric"]["Namespace"] == "AWS/ApplicationELB" for v in stats.values())
    assert all(v["Metric"]["Dimensions"] == DIMENSIONS for v in stats.values())


def test_green_sample_without_data(cloudwatch: Any) -> None:
    end = datetime.now(UTC)
    sample = green_sample(
        cloudwatch,
        target_group_arn=TG_ARN,
        load_balancer_arn=LB_ARN,
        start=end - timedelta(minutes=1),
        end=end,
    )
    assert sample == MetricSample(requests=0, errors_5xx=0, p99_latency_ms=None)


def test_window_sample_reads_whole_periods_only(cloudwatch: Any) -> None:
    """A timeline in moto: the shift's own minute and the minute still arriving are left out."""
    metrics = MetricThresholds(max_5xx_percent=1)
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    shifted = minute + timedelta(seconds=20)
    now = minute + timedelta(minutes=5, seconds=10)
    for metric, value, offset in [
        ("RequestCount", 900, 10),  # the shift's minute: the previous step's traffic
        ("HTTPCode_Target_5XX_Count", 900, 10),
        ("RequestCount", 300, 70),  # judged
        ("HTTPCode_Target_5XX_Count", 1, 70),
        ("UnHealthyHostCount", 0, 70),
        ("RequestCount", 200, 130),  # judged
        ("TargetConnectionErrorCount", 2, 150),
        ("UnHealthyHostCount", 0, 130),
        ("RequestCount", 50, 190),  # ended less than lag_seconds ago
        ("HTTPCode_Target_5XX_Count", 50, 190),
    ]:
        _put(cloudwatch, metric, value, minute + timedelta(seconds=offset), DIMENSIONS)
    window = metric_window(shifted, now, metrics)
    calls = _calls(cloudwatch, "GetMetricData")

    sample = window_sample(cloudwatch, target_group_arn=TG_ARN, load_balancer_arn=LB_ARN, window=window)

    assert (window.start, window.end) == (minute + timedelta(minutes=1), minute + timedelta(minutes=3))
    assert sample == MetricSample(
        requests=500,
        errors_5xx=1,
        connection_errors=2,
        unhealthy_hosts=0,
        periods=2,
        window_periods=2,
        window=window.describe(),
    )
    (call,) = calls
    assert (call["StartTime"], call["EndTime"]) == (window.start, window.end)
    assert {q["MetricStat"]["Period"] for q in call["MetricDataQueries"]} == {60}


def test_an_empty_window_is_not_read(cloudwatch: Any) -> None:
    now = datetime.now(UTC)
    window = metric_window(now - timedelta(seconds=30), now, MetricThresholds(max_5xx_percent=1))
    calls = _calls(cloudwatch, "GetMetricData")

    sample = window_sample(cloudwatch, target_group_arn=TG_ARN, load_balancer_arn=LB_ARN, window=window)

    assert calls == []
    assert (sample.requests, sample.periods, sample.window_periods) == (0, 0, 0)


@dataclass(frozen=True)
class Page:
    """One GetMetricData page: per query, (minute offset, value) datapoints."""

    data: dict[str, list[tuple[int, float]]]
    token: str | None = None


START = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def stubbed_cloudwatch() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("cloudwatch")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def _periods(*rows: tuple[int, dict[str, Any]]) -> list[PeriodMetrics]:
    return [PeriodMetrics(start=START + timedelta(minutes=m), **fields) for m, fields in rows]


@pytest.mark.parametrize(
    ("pages", "expected"),
    [
        pytest.param(
            [
                Page(
                    {
                        "requests": [(0, 10)],
                        "errors5xx": [(0, 1)],
                        "p99": [(0, 0.25)],
                        "unhealthyHosts": [(0, 0)],
                    }
                )
            ],
            _periods((0, {"requests": 10, "target_5xx": 1, "p99_latency_ms": 250.0, "unhealthy_hosts": 0.0})),
            id="one-period",
        ),
        pytest.param(
            [
                Page(
                    {
                        "requests": [(0, 10), (1, 5)],
                        "p99": [(0, 0.25), (1, 0.4)],
                        "connectionErrors": [(1, 2)],
                    }
                )
            ],
            _periods(
                (0, {"requests": 10, "p99_latency_ms": 250.0}),
                (1, {"requests": 5, "p99_latency_ms": 400.0, "connection_errors": 2}),
            ),
            id="two-periods",
        ),
        pytest.param(
            [Page({"requests": [(1, 10)]}, token="t1"), Page({"requests": [(0, 7)], "errors5xx": [(0, 2)]})],
            _periods((0, {"requests": 7, "target_5xx": 2}), (1, {"requests": 10})),
            id="two-pages",
        ),
        pytest.param(
            [Page({"unhealthyHosts": [(0, 2)]})],
            _periods((0, {"unhealthy_hosts": 2.0})),
            id="no-traffic-but-unhealthy",
        ),
        pytest.param([Page({})], [], id="nothing"),
    ],
)
def test_green_periods_groups_datapoints_by_period(
    stubbed_cloudwatch: tuple[Any, Stubber], pages: list[Page], expected: list[PeriodMetrics]
) -> None:
    client, stubber = stubbed_cloudwatch
    end = START + timedelta(minutes=3)
    previous_token: str | None = None
    for page in pages:
        results = [
            {
                "Id": query_id,
                "Timestamps": [START + timedelta(minutes=m) for m, _ in page.data.get(query_id, [])],
                "Values": [v for _, v in page.data.get(query_id, [])],
                "StatusCode": "Complete",
            }
            for query_id in QUERIED
        ]
        response: dict[str, Any] = {"MetricDataResults": results}
        if page.token:
            response["NextToken"] = page.token
        expected_params: dict[str, Any] = {
            "MetricDataQueries": _expected_queries(60),
            "StartTime": START,
            "EndTime": end,
        }
        if previous_token:
            expected_params["NextToken"] = previous_token
        stubber.add_response("get_metric_data", response, expected_params)
        previous_token = page.token

    periods = green_periods(
        client, target_group_arn=TG_ARN, load_balancer_arn=LB_ARN, start=START, end=end, period=60
    )

    assert periods == expected


def _expected_queries(period: int) -> list[dict[str, Any]]:
    return [
        {
            "Id": query_id,
            "MetricStat": {
                "Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": metric, "Dimensions": DIMENSIONS},
                "Period": period,
                "Stat": stat,
            },
            "ReturnData": True,
        }
        for query_id, (metric, stat) in QUERIED.items()
    ]


# ---- load_balancer_for_target_group ------------------------------------------------------------


@pytest.fixture
def elbv2(mocked_aws: None) -> Any:
    return boto3.client("elbv2")


def _vpc_and_subnets() -> tuple[str, list[str]]:
    ec2: Any = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-east-1{az}")["Subnet"][
            "SubnetId"
        ]
        for i, az in ((1, "a"), (2, "b"))
    ]
    return vpc, subnets


def test_load_balancer_for_target_group(elbv2: Any) -> None:
    vpc, subnets = _vpc_and_subnets()
    lb = elbv2.create_load_balancer(Name="shop", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
    attached, loose = (
        elbv2.create_target_group(Name=name, Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip")[
            "TargetGroups"
        ][0]["TargetGroupArn"]
        for name in ("attached", "loose")
    )
    elbv2.create_listener(
        LoadBalancerArn=lb,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": attached}],
    )

    assert load_balancer_for_target_group(elbv2, attached) == lb
    with pytest.raises(RouterConfigError, match=f"target group {loose} is not attached to a load balancer"):
        load_balancer_for_target_group(elbv2, loose)
    with pytest.raises(RouterConfigError, match="does not exist"):
        load_balancer_for_target_group(elbv2, f"{ACCOUNT_ARN}:targetgroup/gone/0123456789abcdef")
