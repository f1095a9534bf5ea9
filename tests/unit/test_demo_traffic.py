"""The demo's traffic simulator publishes what ALB would for each target group, and only that.

Driven tick by tick through fake AWS clients: the weights, each service's build and its targets'
health go in, PutMetricData calls come out.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from ecs_canary_cli.demo.infra import PairInfra, ServiceInfra
from ecs_canary_cli.demo.traffic import TrafficSimulator

ELB = "arn:aws:elasticloadbalancing:us-east-1:123456789012"
STAMP = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
PAIR = PairInfra(
    name="web",
    router="alb",
    cluster="demo",
    family="web",
    services=(
        ServiceInfra("web-a", "arn:svc/a", f"{ELB}:targetgroup/web-a/1", f"{ELB}:loadbalancer/app/web/9", ()),
        ServiceInfra("web-b", "arn:svc/b", f"{ELB}:targetgroup/web-b/2", f"{ELB}:loadbalancer/app/web/9", ()),
    ),
    live="web-a",
    idle="web-b",
    first_task_definition="web:1",
    listener_arn=f"{ELB}:listener/app/web/9/3",
)


class FakeAws:
    """Answers the calls the simulator makes; records what it publishes."""

    def __init__(
        self,
        weights: Mapping[str, int],
        env: Mapping[str, Mapping[str, str]],
        health: Mapping[str, list[str]],
    ) -> None:
        self.weights = weights
        self.env = env
        self.health = health
        self.published: list[dict[str, Any]] = []

    def __call__(self, service: str) -> FakeAws:
        return self

    # elbv2
    def describe_listeners(self, **_: Any) -> dict[str, Any]:
        groups = [
            {"TargetGroupArn": PAIR.service(n).target_group_arn, "Weight": w} for n, w in self.weights.items()
        ]
        return {
            "Listeners": [
                {"DefaultActions": [{"Type": "forward", "ForwardConfig": {"TargetGroups": groups}}]}
            ]
        }

    def describe_target_health(self, TargetGroupArn: str) -> dict[str, Any]:
        name = next(s.name for s in PAIR.services if s.target_group_arn == TargetGroupArn)
        return {
            "TargetHealthDescriptions": [{"TargetHealth": {"State": state}} for state in self.health[name]]
        }

    # ecs
    def describe_services(self, **_: Any) -> dict[str, Any]:
        return {
            "services": [
                {"serviceName": n, "deployments": [{"status": "PRIMARY", "taskDefinition": f"td/{n}"}]}
                for n in PAIR.service_names
            ]
        }

    def describe_task_definition(self, taskDefinition: str) -> dict[str, Any]:
        env = self.env[taskDefinition.removeprefix("td/")]
        return {
            "taskDefinition": {
                "containerDefinitions": [{"environment": [{"name": k, "value": v} for k, v in env.items()]}]
            }
        }

    # cloudwatch
    def put_metric_data(self, Namespace: str, MetricData: list[dict[str, Any]]) -> None:
        assert Namespace == "AWS/ApplicationELB"
        self.published.extend(MetricData)

    def by_service(self) -> dict[str, dict[str, float]]:
        """Published values per target group, summed per metric (response times: their count)."""
        found: dict[str, dict[str, float]] = {}
        for datum in self.published:
            dims = {d["Name"]: d["Value"] for d in datum["Dimensions"]}
            assert set(dims) == {"TargetGroup", "LoadBalancer"}, "only per-target-group metrics"
            service = dims["TargetGroup"].split("/")[1]
            value = sum(datum["Counts"]) if "Counts" in datum else datum["Value"]
            metrics = found.setdefault(service, {})
            metrics[datum["MetricName"]] = metrics.get(datum["MetricName"], 0.0) + value
        return found


def _tick(aws: FakeAws, emulated_seconds: float = 10.0) -> dict[str, dict[str, float]]:
    simulator = TrafficSimulator(aws, [PAIR], time_scale=1.0, rate=50.0, now=lambda: STAMP)
    simulator._send(simulator._pairs["web"], emulated_seconds)
    return aws.by_service()


HEALTHY = ["healthy", "healthy"]


@pytest.mark.parametrize(
    ("weights", "env", "health", "expected"),
    [
        pytest.param(
            {"web-a": 50, "web-b": 50},
            {"web-a": {}, "web-b": {}},
            {"web-a": HEALTHY, "web-b": HEALTHY},
            {
                "web-a": {
                    "RequestCount": 250,
                    "HTTPCode_Target_5XX_Count": 0,
                    "TargetResponseTime": 25,
                    "UnHealthyHostCount": 0,
                },
                "web-b": {
                    "RequestCount": 250,
                    "HTTPCode_Target_5XX_Count": 0,
                    "TargetResponseTime": 25,
                    "UnHealthyHostCount": 0,
                },
            },
            id="healthy-split",
        ),
        pytest.param(
            {"web-a": 100, "web-b": 0},
            {"web-a": {}, "web-b": {}},
            {"web-a": HEALTHY, "web-b": ["healthy", "unhealthy"]},
            {
                "web-a": {
                    "RequestCount": 500,
                    "HTTPCode_Target_5XX_Count": 0,
                    "TargetResponseTime": 25,
                    "UnHealthyHostCount": 0,
                },
                # No traffic, but its targets' health is reported all the same.
                "web-b": {"UnHealthyHostCount": 1},
            },
            id="idle-service-with-an-unhealthy-target",
        ),
        pytest.param(
            {"web-a": 50, "web-b": 50},
            {"web-a": {}, "web-b": {"CAPACITY_RPS": "0"}},
            {"web-a": HEALTHY, "web-b": ["unhealthy", "unhealthy"]},
            {
                "web-a": {
                    "RequestCount": 250,
                    "HTTPCode_Target_5XX_Count": 0,
                    "TargetResponseTime": 25,
                    "UnHealthyHostCount": 0,
                },
                # Nothing listens: connections fail, no target answers (no 5xx, no response time).
                "web-b": {
                    "RequestCount": 250,
                    "HTTPCode_Target_5XX_Count": 0,
                    "TargetConnectionErrorCount": 250,
                    "UnHealthyHostCount": 2,
                },
            },
            id="a-build-that-cannot-serve",
        ),
        pytest.param(
            {"web-a": 25, "web-b": 75},
            {"web-a": {}, "web-b": {"CAPACITY_RPS": "30"}},
            {"web-a": HEALTHY, "web-b": HEALTHY},
            {
                "web-a": {
                    "RequestCount": 125,
                    "HTTPCode_Target_5XX_Count": 0,
                    "TargetResponseTime": 25,
                    "UnHealthyHostCount": 0,
                },
                # Overloaded: what it cannot serve fails with its own 5xx (what its alarm watches).
                "web-b": {
                    "RequestCount": 375,
                    "HTTPCode_Target_5XX_Count": 75,
                    "TargetResponseTime": 25,
                    "UnHealthyHostCount": 0,
                },
            },
            id="overloaded",
        ),
    ],
)
def test_published_metrics(
    weights: dict[str, int],
    env: dict[str, dict[str, str]],
    health: dict[str, list[str]],
    expected: dict[str, dict[str, float]],
) -> None:
    assert _tick(FakeAws(weights, env, health)) == expected
