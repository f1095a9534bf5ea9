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
from ecs_canary.health import MetricSample
from ecs_canary.metrics import (
    alarm_states,
    green_sample,
    lb_dimension,
    load_balancer_for_target_group,
    metric_period,
    tg_dimension,
)
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


# ---- green_sample ------------------------------------------------------------------------------


def _put(cloudwatch: Any, metric: str, value: float, at: datetime, dimensions: list[dict[str, str]]) -> None:
    cloudwatch.put_metric_data(
        Namespace="AWS/ApplicationELB",
        MetricData=[{"MetricName": metric, "Dimensions": dimensions, "Value": value, "Timestamp": at}],
    )


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
    ]:
        _put(cloudwatch, metric, value, end - timedelta(seconds=age), DIMENSIONS)
    _put(cloudwatch, "RequestCount", 500, end - timedelta(seconds=30), other)
    calls = _calls(cloudwatch, "GetMetricData")

    sample = green_sample(cloudwatch, target_group_arn=TG_ARN, load_balancer_arn=LB_ARN, start=start, end=end)

    # moto cannot compute percentile statistics, so no TargetResponseTime is published here.
    assert sample == MetricSample(requests=100, errors_5xx=3, p99_latency_ms=None)
    (call,) = calls
    assert (call["StartTime"], call["EndTime"]) == (start, end)
    stats = {q["Id"]: q["MetricStat"] for q in call["MetricDataQueries"]}
    assert {k: (v["Metric"]["MetricName"], v["Stat"], v["Period"]) for k, v in stats.items()} == {
        "requests": ("RequestCount", "Sum", 300),
        "errors5xx": ("HTTPCode_Target_5XX_Count", "Sum", 300),
        "p99": ("TargetResponseTime", "p99", 300),
    }
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


@dataclass(frozen=True)
class Page:
    requests: list[float]
    errors: list[float]
    p99_seconds: list[float]
    token: str | None = None


@pytest.fixture
def stubbed_cloudwatch() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("cloudwatch")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("pages", "expected"),
    [
        ([Page([10], [1], [0.25])], MetricSample(10, 1, 250.0)),
        # The minute-aligned start can split the window into two buckets.
        ([Page([10, 5], [1, 0], [0.25, 0.4])], MetricSample(15, 1, 400.0)),
        ([Page([10], [], [0.2], token="t1"), Page([7], [2], [0.1])], MetricSample(17, 2, 200.0)),
        ([Page([3], [0], [])], MetricSample(3, 0, None)),
    ],
    ids=["one-bucket", "two-buckets", "two-pages", "no-latency"],
)
def test_green_sample_aggregates_buckets_and_pages(
    stubbed_cloudwatch: tuple[Any, Stubber], pages: list[Page], expected: MetricSample
) -> None:
    client, stubber = stubbed_cloudwatch
    end = datetime(2026, 5, 1, 12, 10, 30, tzinfo=UTC)
    start = end - timedelta(seconds=90)
    previous_token: str | None = None
    for page in pages:
        results = [
            {"Id": "requests", "Values": page.requests, "StatusCode": "Complete"},
            {"Id": "errors5xx", "Values": page.errors, "StatusCode": "Complete"},
            {"Id": "p99", "Values": page.p99_seconds, "StatusCode": "Complete"},
        ]
        response: dict[str, Any] = {"MetricDataResults": results}
        if page.token:
            response["NextToken"] = page.token
        expected_params: dict[str, Any] = {
            "MetricDataQueries": _expected_queries(120),
            "StartTime": start,
            "EndTime": end,
        }
        if previous_token:
            expected_params["NextToken"] = previous_token
        stubber.add_response("get_metric_data", response, expected_params)
        previous_token = page.token

    sample = green_sample(client, target_group_arn=TG_ARN, load_balancer_arn=LB_ARN, start=start, end=end)

    assert sample == expected


def _expected_queries(period: int) -> list[dict[str, Any]]:
    def query(query_id: str, metric: str, stat: str) -> dict[str, Any]:
        return {
            "Id": query_id,
            "MetricStat": {
                "Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": metric, "Dimensions": DIMENSIONS},
                "Period": period,
                "Stat": stat,
            },
            "ReturnData": True,
        }

    return [
        query("requests", "RequestCount", "Sum"),
        query("errors5xx", "HTTPCode_Target_5XX_Count", "Sum"),
        query("p99", "TargetResponseTime", "p99"),
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
