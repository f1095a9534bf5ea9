"""The demo's gates: the smoke-test hook's verdict, the gates pair's spec, the synthetic test client.

All pure or driven through fakes: the hook's handler gets fake ECS, ELB and CloudWatch clients, the
traffic simulator a fake AWS whose test listener forwards where the test says.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ecs_canary.spec import parse_spec
from ecs_canary_cli.demo.hooks import smoke
from ecs_canary_cli.demo.infra import (
    GATES_PLAN,
    SMOKE_HOOK_DETAILS,
    PairInfra,
    ServiceInfra,
    gates_for,
    spec_for,
)
from ecs_canary_cli.demo.traffic import TrafficSimulator, read_test_targets

ELB = "arn:aws:elasticloadbalancing:us-east-1:123456789012"
LB = f"{ELB}:loadbalancer/app/demo-shop/9"
TG_A = f"{ELB}:targetgroup/shop-a-tg/1"
TG_B = f"{ELB}:targetgroup/shop-b-tg/2"
PAIR = PairInfra(
    name="shop",
    router="alb",
    cluster="demo",
    family="shop",
    services=(
        ServiceInfra("shop-a", "arn:svc/a", TG_A, LB, ("shop-a-5xx",)),
        ServiceInfra("shop-b", "arn:svc/b", TG_B, LB, ("shop-b-5xx",)),
    ),
    live="shop-a",
    idle="shop-b",
    first_task_definition="shop:1",
    listener_arn=f"{ELB}:listener/app/demo-shop/9/80",
    test_listener_arn=f"{ELB}:listener/app/demo-shop/9/8080",
)
NOW = datetime(2026, 5, 1, 12, 0, 30, 250_000, tzinfo=UTC)


# ---- the hook's verdict ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requests", "errors", "status", "says"),
    [
        (0, 0, "IN_PROGRESS", "0 of 5 requests so far"),
        (4, 4, "IN_PROGRESS", "4 of 5 requests so far"),
        (5, 5, "FAILED", "5 of 5 test requests (100.0 %) answered 5xx, above max_error_percent 5 %"),
        (40, 3, "FAILED", "3 of 40 test requests (7.5 %) answered 5xx, above"),
        (40, 2, "SUCCEEDED", "2 of 40 test requests (5.0 %) answered 5xx, within max_error_percent 5 %"),
        (5, 0, "SUCCEEDED", "0 of 5 test requests (0.0 %)"),
    ],
)
def test_the_verdict_waits_for_enough_requests_then_judges_the_error_share(
    requests: int, errors: int, status: str, says: str
) -> None:
    got, reason = smoke.verdict(requests, errors, min_requests=5, max_error_percent=5)
    assert got == status
    assert says in reason


def test_no_minimum_still_needs_one_request() -> None:
    assert smoke.verdict(0, 0, min_requests=0, max_error_percent=5)[0] == "IN_PROGRESS"
    assert smoke.verdict(1, 0, min_requests=0, max_error_percent=5)[0] == "SUCCEEDED"


def test_the_window_never_starts_before_the_release() -> None:
    started = NOW - timedelta(seconds=4, microseconds=100_000)  # 12:00:26.15
    # Rounded up to a whole second: datapoints of the build before, in the same second, never count.
    assert smoke.query_start(NOW, 60, started) == datetime(2026, 5, 1, 12, 0, 27, tzinfo=UTC)
    # A release older than the window: the window decides.
    assert smoke.query_start(NOW, 60, NOW - timedelta(hours=1)) == NOW - timedelta(seconds=60)
    assert smoke.query_start(NOW, 60, None) == NOW - timedelta(seconds=60)
    # A release that started this very second: the window still starts no later than now.
    assert smoke.query_start(NOW, 60, NOW) <= NOW


class FakeHookAws:
    """ECS, ELB and CloudWatch as the hook calls them; records the metric query."""

    def __init__(self, requests: float, errors: float, started: datetime) -> None:
        self.sums = {"RequestCount": requests, "HTTPCode_Target_5XX_Count": errors}
        self.started = started
        self.query: dict[str, Any] = {}

    def describe_services(self, cluster: str, services: list[str]) -> dict[str, Any]:
        assert cluster == "demo"
        assert services == ["shop-b"]
        return {
            "services": [
                {
                    "loadBalancers": [{"targetGroupArn": TG_B}],
                    "deployments": [
                        {"id": "ecs-svc/older", "createdAt": self.started - timedelta(days=1)},
                        {"id": "ecs-svc/2", "createdAt": self.started},
                    ],
                }
            ]
        }

    def describe_target_groups(self, TargetGroupArns: list[str]) -> dict[str, Any]:
        return {"TargetGroups": [{"TargetGroupArn": TargetGroupArns[0], "LoadBalancerArns": [LB]}]}

    def get_metric_data(self, **query: Any) -> dict[str, Any]:
        self.query = query
        return {
            "MetricDataResults": [
                {"Id": q["Id"], "Values": [self.sums[q["MetricStat"]["Metric"]["MetricName"]]]}
                for q in query["MetricDataQueries"]
            ]
        }


def _invoke(monkeypatch: pytest.MonkeyPatch, aws: FakeHookAws) -> dict[str, Any]:
    monkeypatch.setattr(smoke, "_clients", {"ecs": aws, "elbv2": aws, "cloudwatch": aws})
    event = {
        "lifecycleStage": "after_test_traffic",
        "greenService": "shop-b",
        "release": {"service": "shop-b", "deployment": "ecs-svc/2", "task_definition": "shop:2"},
        "hookDetails": {"cluster": "demo", **SMOKE_HOOK_DETAILS},
    }
    return smoke.handler(event, None)


def test_the_hook_fails_a_release_whose_test_requests_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    started = datetime.now(UTC) - timedelta(seconds=3)
    aws = FakeHookAws(requests=6, errors=6, started=started)
    answer = _invoke(monkeypatch, aws)

    assert answer["hookStatus"] == "FAILED"
    assert "shop-b" in answer["reason"]
    assert "6 of 6 test requests (100.0 %) answered 5xx" in answer["reason"]
    # Green's target group on its load balancer, from the release's start (rounded up) on.
    dims = aws.query["MetricDataQueries"][0]["MetricStat"]["Metric"]["Dimensions"]
    assert dims == [
        {"Name": "TargetGroup", "Value": "targetgroup/shop-b-tg/2"},
        {"Name": "LoadBalancer", "Value": "app/demo-shop/9"},
    ]
    assert aws.query["StartTime"] > started
    assert aws.query["StartTime"] - started < timedelta(seconds=1)


def test_the_hook_asks_to_be_called_back_until_it_has_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    answer = _invoke(monkeypatch, FakeHookAws(requests=2, errors=0, started=datetime.now(UTC)))
    assert answer["hookStatus"] == "IN_PROGRESS"
    assert answer["callBackDelay"] == SMOKE_HOOK_DETAILS["callback_seconds"]

    answer = _invoke(monkeypatch, FakeHookAws(requests=9, errors=0, started=datetime.now(UTC)))
    assert answer["hookStatus"] == "SUCCEEDED"
    assert "callBackDelay" not in answer


# ---- the gates pair's spec ------------------------------------------------------------------------


def test_the_gates_spec_is_valid_and_names_the_test_listener_hook_and_approval() -> None:
    spec = parse_spec(spec_for(PAIR, plan=GATES_PLAN, gates=gates_for(PAIR, "ecs-canary-hook-smoke-test")))
    assert spec.test_traffic is not None
    assert spec.test_traffic.listener_arn == PAIR.test_listener_arn
    (hook,) = spec.hooks.after_test_traffic
    assert hook.function == "ecs-canary-hook-smoke-test"
    assert hook.details["cluster"] == "demo"
    assert spec.approvals.before_production_traffic is not None
    assert spec.resolved_plan().steps == (50, 100)


def test_a_pair_without_a_test_listener_has_no_gates() -> None:
    with pytest.raises(ValueError, match="no test listener"):
        gates_for(replace(PAIR, test_listener_arn=None), "ecs-canary-hook-smoke-test")


def test_the_hook_source_is_self_contained() -> None:
    """Zipped alone into the function: it may import only the standard library and boto3."""
    source = Path(smoke.__file__).read_text(encoding="utf-8")
    assert "ecs_canary" not in source.replace("ecs_canary_cli.demo", "")


# ---- the synthetic test client --------------------------------------------------------------------


def test_test_targets_follow_the_listeners_forward_action() -> None:
    assert read_test_targets(PAIR, [{"Type": "forward", "TargetGroupArn": TG_A}]) == {"shop-a": 1}
    weighted = {
        "Type": "forward",
        "ForwardConfig": {
            "TargetGroups": [{"TargetGroupArn": TG_A, "Weight": 0}, {"TargetGroupArn": TG_B, "Weight": 1}]
        },
    }
    assert read_test_targets(PAIR, [weighted]) == {"shop-b": 1}
    assert read_test_targets(PAIR, [{"Type": "fixed-response"}]) == {}
    assert (
        read_test_targets(PAIR, [{"Type": "forward", "TargetGroupArn": f"{ELB}:targetgroup/other/3"}]) == {}
    )


class FakeAws:
    """Production at 100/0 on shop-a; the test listener forwards to ``test_target``; builds by env."""

    def __init__(self, test_target: str, env: dict[str, dict[str, str]]) -> None:
        self.test_target = test_target
        self.env = env
        self.published: list[dict[str, Any]] = []

    def __call__(self, service: str) -> FakeAws:
        return self

    def describe_listeners(self, ListenerArns: list[str]) -> dict[str, Any]:
        actions: list[dict[str, Any]]
        if ListenerArns == [PAIR.test_listener_arn]:
            actions = [{"Type": "forward", "TargetGroupArn": PAIR.service(self.test_target).target_group_arn}]
        else:
            groups: list[dict[str, Any]] = [
                {"TargetGroupArn": TG_A, "Weight": 100},
                {"TargetGroupArn": TG_B, "Weight": 0},
            ]
            actions = [{"Type": "forward", "ForwardConfig": {"TargetGroups": groups}}]
        return {"Listeners": [{"DefaultActions": actions}]}

    def describe_target_health(self, **_: Any) -> dict[str, Any]:
        return {"TargetHealthDescriptions": []}

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

    def put_metric_data(self, Namespace: str, MetricData: list[dict[str, Any]]) -> None:
        self.published.extend(MetricData)

    def sums(self, service: str) -> dict[str, float]:
        found: dict[str, float] = {}
        for datum in self.published:
            dims = {d["Name"]: d["Value"] for d in datum["Dimensions"]}
            if dims["TargetGroup"].split("/")[1] == f"{service}-tg" and "Value" in datum:
                found[datum["MetricName"]] = found.get(datum["MetricName"], 0.0) + datum["Value"]
        return found


def test_the_test_client_sends_one_request_per_interval_to_the_test_listeners_target() -> None:
    aws = FakeAws("shop-b", {"shop-a": {}, "shop-b": {"ERROR_RATE": "1"}})
    simulator = TrafficSimulator(aws, [PAIR], time_scale=1.0, rate=50.0, test_interval=20.0)
    pair = simulator._pairs["shop"]

    simulator._send(pair, 10.0)  # not yet 20 emulated seconds: no test request
    assert simulator.snapshot("shop")["shop-b"].test_requests == 0
    simulator._send(pair, 10.0)
    simulator._send(pair, 300.0)  # a late tick sends one request, not a burst of 15

    green = simulator.snapshot("shop")["shop-b"]
    assert (green.test_requests, green.test_errors) == (2, 2)
    assert (green.requests, green.errors) == (0, 0), "production traffic is counted apart"
    # ALB counts the test listener's requests in the target group's metrics like any others.
    assert aws.sums("shop-b") == {"RequestCount": 2, "HTTPCode_Target_5XX_Count": 2, "UnHealthyHostCount": 0}
    assert aws.sums("shop-a")["RequestCount"] == 50.0 * 320
    assert simulator.snapshot("shop")["shop-a"].test_requests == 0


def test_test_requests_follow_the_listener_back_to_the_live_service() -> None:
    aws = FakeAws("shop-a", {"shop-a": {}, "shop-b": {"ERROR_RATE": "1"}})
    simulator = TrafficSimulator(aws, [PAIR], time_scale=1.0, rate=50.0, test_interval=20.0)
    simulator._send(simulator._pairs["shop"], 20.0)
    stats = simulator.snapshot("shop")
    assert (stats["shop-a"].test_requests, stats["shop-a"].test_errors) == (1, 0)
    assert stats["shop-b"].test_requests == 0
