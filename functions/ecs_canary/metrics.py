"""CloudWatch reads behind the health gate: alarm states and the green target group's ALB metrics."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ecs_canary.errors import RouterConfigError
from ecs_canary.health import MetricSample

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client

__all__ = [
    "alarm_states",
    "green_sample",
    "lb_dimension",
    "load_balancer_for_target_group",
    "metric_period",
    "tg_dimension",
]

NAMESPACE = "AWS/ApplicationELB"
# DescribeAlarms accepts at most 100 names per call.
_ALARM_NAMES_PER_CALL = 100
_QUERY_REQUESTS = "requests"
_QUERY_ERRORS = "errors5xx"
_QUERY_P99 = "p99"


def alarm_states(cloudwatch: CloudWatchClient, names: Sequence[str]) -> dict[str, str]:
    """State (OK / ALARM / INSUFFICIENT_DATA) of each named metric or composite alarm.

    Alarms that do not exist are absent from the result, so the caller decides how a
    missing alarm counts.
    """
    unique = list(dict.fromkeys(names))
    states: dict[str, str] = {}
    paginator = cloudwatch.get_paginator("describe_alarms")
    for offset in range(0, len(unique), _ALARM_NAMES_PER_CALL):
        chunk = unique[offset : offset + _ALARM_NAMES_PER_CALL]
        # Without AlarmTypes, DescribeAlarms returns metric alarms only.
        pages = paginator.paginate(
            AlarmNames=chunk,
            AlarmTypes=["MetricAlarm", "CompositeAlarm"],
            PaginationConfig={"PageSize": _ALARM_NAMES_PER_CALL},
        )
        for page in pages:
            for metric_alarm in page.get("MetricAlarms", []):
                states[metric_alarm["AlarmName"]] = metric_alarm["StateValue"]
            for composite_alarm in page.get("CompositeAlarms", []):
                states[composite_alarm["AlarmName"]] = composite_alarm["StateValue"]
    return states


def _arn_resource(arn: str) -> str:
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "elasticloadbalancing":
        raise ValueError(f"{arn!r} is not an Elastic Load Balancing ARN")
    return parts[5]


def tg_dimension(arn: str) -> str:
    """CloudWatch ``TargetGroup`` dimension value (``targetgroup/<name>/<id>``) of a target group ARN."""
    resource = _arn_resource(arn)
    segments = resource.split("/")
    if len(segments) != 3 or segments[0] != "targetgroup" or not all(segments):
        raise ValueError(f"{arn!r} is not a target group ARN")
    return resource


def lb_dimension(arn: str) -> str:
    """CloudWatch ``LoadBalancer`` dimension value (``app/<name>/<id>``) of an ALB ARN."""
    resource = _arn_resource(arn)
    segments = resource.split("/")
    if len(segments) != 4 or segments[0] != "loadbalancer" or not all(segments):
        raise ValueError(f"{arn!r} is not a load balancer ARN")
    if segments[1] != "app":
        raise ValueError(f"{arn!r} is not an Application Load Balancer")
    return resource.removeprefix("loadbalancer/")


def metric_period(start: datetime, end: datetime) -> int:
    """Window length rounded up to a whole minute (at least 60 s), so one bucket spans the window."""
    seconds = (end - start).total_seconds()
    if seconds <= 0:
        raise ValueError(f"metric window must end after it starts ({start} .. {end})")
    return max(60, math.ceil(seconds / 60) * 60)


def _query(query_id: str, metric: str, stat: str, dimensions: list[Any], period: int) -> Any:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {"Namespace": NAMESPACE, "MetricName": metric, "Dimensions": dimensions},
            "Period": period,
            "Stat": stat,
        },
        "ReturnData": True,
    }


def green_sample(
    cloudwatch: CloudWatchClient,
    *,
    target_group_arn: str,
    load_balancer_arn: str,
    start: datetime,
    end: datetime,
) -> MetricSample:
    """Requests, target 5XX responses and p99 latency of one target group over ``[start, end)``.

    CloudWatch aligns the start to a minute, so the window may still come back in
    two buckets: counts are summed over buckets and p99 takes the worst bucket.
    """
    period = metric_period(start, end)
    dimensions = [
        {"Name": "TargetGroup", "Value": tg_dimension(target_group_arn)},
        {"Name": "LoadBalancer", "Value": lb_dimension(load_balancer_arn)},
    ]
    queries = [
        _query(_QUERY_REQUESTS, "RequestCount", "Sum", dimensions, period),
        _query(_QUERY_ERRORS, "HTTPCode_Target_5XX_Count", "Sum", dimensions, period),
        _query(_QUERY_P99, "TargetResponseTime", "p99", dimensions, period),
    ]
    values: dict[str, list[float]] = {_QUERY_REQUESTS: [], _QUERY_ERRORS: [], _QUERY_P99: []}
    request: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": start, "EndTime": end}
    while True:
        response = cloudwatch.get_metric_data(**request)
        for result in response.get("MetricDataResults", []):
            values.setdefault(result["Id"], []).extend(float(v) for v in result.get("Values", []))
        token = response.get("NextToken")
        if not token:
            break
        request["NextToken"] = token
    p99 = values[_QUERY_P99]
    return MetricSample(
        requests=round(sum(values[_QUERY_REQUESTS])),
        errors_5xx=round(sum(values[_QUERY_ERRORS])),
        p99_latency_ms=max(p99) * 1000.0 if p99 else None,
    )


def load_balancer_for_target_group(elbv2: ElasticLoadBalancingv2Client, target_group_arn: str) -> str:
    """ARN of the load balancer in front of the target group (its metrics need both dimensions)."""
    try:
        groups = elbv2.describe_target_groups(TargetGroupArns=[target_group_arn])["TargetGroups"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "TargetGroupNotFound":
            raise RouterConfigError(f"target group {target_group_arn} does not exist") from exc
        raise
    arns = groups[0].get("LoadBalancerArns", []) if groups else []
    if not arns:
        raise RouterConfigError(f"target group {target_group_arn} is not attached to a load balancer")
    return arns[0]
