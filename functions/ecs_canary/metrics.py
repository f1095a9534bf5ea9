"""CloudWatch reads behind the health gate: alarm states and the green target group's ALB metrics.

Only metrics ALB publishes per target group (dimensions ``TargetGroup`` and ``LoadBalancer``) are
read, so every number is green's own: ``RequestCount``, ``HTTPCode_Target_5XX_Count``,
``TargetConnectionErrorCount``, ``TargetResponseTime`` (p99) and ``UnHealthyHostCount``
(Maximum). ``HTTPCode_ELB_5XX_Count`` is not among them: ALB publishes it per load balancer
(and Availability Zone) only, mixing blue's and green's traffic; a failed connection to one of
green's targets, the usual cause of an ELB 502/503 on its behalf, is counted through
``TargetConnectionErrorCount`` instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ecs_canary.errors import RouterConfigError
from ecs_canary.health import MetricSample, MetricWindow, PeriodMetrics, summarise

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client

__all__ = [
    "alarm_states",
    "green_periods",
    "green_sample",
    "lb_dimension",
    "load_balancer_for_target_group",
    "metric_period",
    "tg_dimension",
    "window_sample",
]

NAMESPACE = "AWS/ApplicationELB"
# DescribeAlarms accepts at most 100 names per call.
_ALARM_NAMES_PER_CALL = 100
_QUERY_REQUESTS = "requests"
_QUERY_ERRORS = "errors5xx"
_QUERY_CONNECTION_ERRORS = "connectionErrors"
_QUERY_P99 = "p99"
_QUERY_UNHEALTHY = "unhealthyHosts"
_QUERIES = (
    (_QUERY_REQUESTS, "RequestCount", "Sum"),
    (_QUERY_ERRORS, "HTTPCode_Target_5XX_Count", "Sum"),
    (_QUERY_CONNECTION_ERRORS, "TargetConnectionErrorCount", "Sum"),
    (_QUERY_P99, "TargetResponseTime", "p99"),
    (_QUERY_UNHEALTHY, "UnHealthyHostCount", "Maximum"),
)
"""(query id, ALB metric, statistic) of every per-target-group metric the gate reads."""


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


def green_periods(
    cloudwatch: CloudWatchClient,
    *,
    target_group_arn: str,
    load_balancer_arn: str,
    start: datetime,
    end: datetime,
    period: int,
) -> list[PeriodMetrics]:
    """Green's metrics per ``period`` over ``[start, end)``, one entry per period that has any datapoint.

    ``start`` and ``end`` should lie on period boundaries (see :func:`health.metric_window`); a
    datapoint's timestamp is the start of its period, as CloudWatch returns it.
    """
    dimensions = [
        {"Name": "TargetGroup", "Value": tg_dimension(target_group_arn)},
        {"Name": "LoadBalancer", "Value": lb_dimension(load_balancer_arn)},
    ]
    queries = [_query(query_id, metric, stat, dimensions, period) for query_id, metric, stat in _QUERIES]
    found: dict[datetime, dict[str, float]] = {}
    request: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": start, "EndTime": end}
    while True:
        response = cloudwatch.get_metric_data(**request)
        for result in response.get("MetricDataResults", []):
            stamps = result.get("Timestamps", [])
            for stamp, value in zip(stamps, result.get("Values", []), strict=False):
                moment = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
                values = found.setdefault(moment.astimezone(UTC), {})
                query_id = result["Id"]
                # Pages split a result between datapoints; should a timestamp still come twice,
                # counts add up and the worst p99 or unhealthy count wins.
                if query_id in (_QUERY_P99, _QUERY_UNHEALTHY):
                    values[query_id] = max(values.get(query_id, float(value)), float(value))
                else:
                    values[query_id] = values.get(query_id, 0.0) + float(value)
        token = response.get("NextToken")
        if not token:
            break
        request["NextToken"] = token
    periods = []
    for moment, values in sorted(found.items()):
        p99 = values.get(_QUERY_P99)
        periods.append(
            PeriodMetrics(
                start=moment,
                requests=round(values.get(_QUERY_REQUESTS, 0.0)),
                target_5xx=round(values.get(_QUERY_ERRORS, 0.0)),
                connection_errors=round(values.get(_QUERY_CONNECTION_ERRORS, 0.0)),
                p99_latency_ms=None if p99 is None else p99 * 1000.0,
                unhealthy_hosts=values.get(_QUERY_UNHEALTHY),
            )
        )
    return periods


def window_sample(
    cloudwatch: CloudWatchClient, *, target_group_arn: str, load_balancer_arn: str, window: MetricWindow
) -> MetricSample:
    """Green's sample over the complete periods of ``window``; an empty window is read without a call."""
    periods: list[PeriodMetrics] = []
    if window.periods:
        periods = green_periods(
            cloudwatch,
            target_group_arn=target_group_arn,
            load_balancer_arn=load_balancer_arn,
            start=window.start,
            end=window.end,
            period=window.period_seconds,
        )
    return summarise(window, periods)


def green_sample(
    cloudwatch: CloudWatchClient,
    *,
    target_group_arn: str,
    load_balancer_arn: str,
    start: datetime,
    end: datetime,
) -> MetricSample:
    """Green's metrics summed over ``[start, end)`` whatever its periods, for inspecting a window by hand.

    CloudWatch aligns the start to a minute, so the window may come back in two buckets: counts are
    summed over buckets, p99 and unhealthy targets take the worst bucket. The health gate reads
    :func:`window_sample` instead, which judges complete periods only.
    """
    period = metric_period(start, end)
    periods = green_periods(
        cloudwatch,
        target_group_arn=target_group_arn,
        load_balancer_arn=load_balancer_arn,
        start=start,
        end=end,
        period=period,
    )
    p99s = [p.p99_latency_ms for p in periods if p.p99_latency_ms is not None]
    unhealthy = [p.unhealthy_hosts for p in periods if p.unhealthy_hosts is not None]
    return MetricSample(
        requests=sum(p.requests for p in periods),
        errors_5xx=sum(p.target_5xx for p in periods),
        p99_latency_ms=max(p99s) if p99s else None,
        connection_errors=sum(p.connection_errors for p in periods),
        unhealthy_hosts=math.ceil(max(unhealthy)) if unhealthy else None,
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
