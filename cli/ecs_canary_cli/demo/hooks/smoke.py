"""An ``after_test_traffic`` hook: judge green on the test requests it served, from CloudWatch.

A check a user could deploy as it is. It reads green's target group metrics (``RequestCount`` and
``HTTPCode_Target_5XX_Count`` of ``AWS/ApplicationELB``, the same metrics ALB publishes for test
listener traffic as for production traffic) over a recent window, and answers:

* ``IN_PROGRESS`` (asked again after ``callback_seconds``) until green served ``min_requests``;
* ``FAILED`` when the share of them answered with a 5xx is above ``max_error_percent`` (the reason
  gives the counts);
* ``SUCCEEDED`` otherwise.

The window is the last ``window_seconds``, but never earlier than the start of the ECS deployment
being released (rounded up to a whole second, CloudWatch's finest query resolution), so requests an
earlier build of the same service answered never count. Green has no production traffic before this
stage, so what the window holds is what the test listener sent it.

``hookDetails``: ``cluster`` (required: green's ECS cluster), ``window_seconds`` (default 300),
``min_requests`` (default 20), ``max_error_percent`` (default 5), ``callback_seconds`` (default 30).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "DEFAULTS",
    "handler",
    "query_start",
    "verdict",
]

NAMESPACE = "AWS/ApplicationELB"
DEFAULTS: dict[str, float] = {
    "window_seconds": 300,
    "min_requests": 20,
    "max_error_percent": 5,
    "callback_seconds": 30,
}
_clients: dict[str, Any] = {}


def verdict(requests: int, errors: int, *, min_requests: int, max_error_percent: float) -> tuple[str, str]:
    """(hookStatus, reason) for ``errors`` 5xx answers out of ``requests`` test requests."""
    if requests < max(1, min_requests):
        return "IN_PROGRESS", f"waiting for test traffic: {requests} of {min_requests} requests so far"
    share = 100.0 * errors / requests
    summary = f"{errors} of {requests} test requests ({share:.1f} %) answered 5xx"
    if share > max_error_percent:
        return "FAILED", f"{summary}, above max_error_percent {max_error_percent:g} %"
    return "SUCCEEDED", f"{summary}, within max_error_percent {max_error_percent:g} %"


def query_start(now: datetime, window_seconds: float, release_started: datetime | None) -> datetime:
    """The window's start: ``window_seconds`` ago, but not before the release (rounded up to a second)."""
    start = now - timedelta(seconds=window_seconds)
    if release_started is not None:
        whole = release_started.replace(microsecond=0)
        if whole < release_started:
            whole += timedelta(seconds=1)
        start = max(start, whole)
    return min(start, now.replace(microsecond=0))


def _client(name: str) -> Any:
    """One boto3 client per service for the life of the execution environment."""
    if name not in _clients:
        import boto3  # noqa: PLC0415 - the Lambda runtime provides it; the verdict logic needs no AWS

        _clients[name] = boto3.client(name)  # type: ignore[call-overload]
    return _clients[name]


def _green(cluster: str, service: str, deployment: str) -> tuple[str, str, datetime | None]:
    """Green's target group, its load balancer, and when the release's ECS deployment started."""
    described = _client("ecs").describe_services(cluster=cluster, services=[service])["services"][0]
    target_group = str(described["loadBalancers"][0]["targetGroupArn"])
    deployments = described.get("deployments", [])
    started = next((d.get("createdAt") for d in deployments if d["id"] == deployment), None)
    groups = _client("elbv2").describe_target_groups(TargetGroupArns=[target_group])["TargetGroups"]
    load_balancer = str(groups[0]["LoadBalancerArns"][0])
    return target_group, load_balancer, started


def _sums(target_group: str, load_balancer: str, start: datetime, end: datetime) -> dict[str, int]:
    """Sum of RequestCount and HTTPCode_Target_5XX_Count of one target group between two times."""
    dimensions = [
        {"Name": "TargetGroup", "Value": target_group.split(":", 5)[5]},
        {"Name": "LoadBalancer", "Value": load_balancer.split(":", 5)[5].removeprefix("loadbalancer/")},
    ]
    queries = [
        {
            "Id": key,
            "MetricStat": {
                "Metric": {"Namespace": NAMESPACE, "MetricName": metric, "Dimensions": dimensions},
                "Period": 60,
                "Stat": "Sum",
            },
        }
        for key, metric in (("requests", "RequestCount"), ("errors", "HTTPCode_Target_5XX_Count"))
    ]
    found = _client("cloudwatch").get_metric_data(MetricDataQueries=queries, StartTime=start, EndTime=end)
    return {r["Id"]: round(sum(r.get("Values", []))) for r in found["MetricDataResults"]}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    details = {**DEFAULTS, **(event.get("hookDetails") or {})}
    green = str(event["greenService"])
    target_group, load_balancer, started = _green(
        str(details["cluster"]), green, str(event["release"]["deployment"])
    )
    now = datetime.now(UTC)
    start = query_start(now, float(details["window_seconds"]), started)
    # EndTime a period ahead: every datapoint up to now is in, whatever the clock's resolution.
    counts = _sums(target_group, load_balancer, start, now + timedelta(seconds=60))
    status, reason = verdict(
        counts.get("requests", 0),
        counts.get("errors", 0),
        min_requests=int(details["min_requests"]),
        max_error_percent=float(details["max_error_percent"]),
    )
    seconds = max(0, math.ceil((now - start).total_seconds()))
    answer: dict[str, Any] = {"hookStatus": status, "reason": f"{green}, last {seconds} s: {reason}"}
    if status == "IN_PROGRESS":
        answer["callBackDelay"] = int(details["callback_seconds"])
    return answer
