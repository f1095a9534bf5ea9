"""Deployments from release to verdict: promotion, fail-back at a middle step, roles, outside stops."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from ecs_canary.store import Status
from ecs_canary_cli.demo.infra import PairInfra

from .conftest import World, history_events
from .targets import Target

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")]


def _promoted(world: Target, pair: PairInfra, version: str, steps: list[int]) -> None:
    """Release ``version`` to the idle service and check that it went through ``steps`` and took over."""
    before = world.store.get_pair(pair.name)
    green, live = before.idle_service, before.live_service
    assert world.weights(pair) == {live: 100, green: 0}

    task_definition = world.release(pair, version)
    dep = world.wait(pair, green, task_definition)

    assert dep.status is Status.SUCCEEDED, dep.reason
    assert world.execution_status(dep) == "SUCCEEDED"
    assert [h["percent"] for h in history_events(dep, "shifted")] == steps
    assert dep.snapshot == {live: 100, green: 0}
    assert world.weights(pair) == {live: 0, green: 100}
    assert world.store.get_pair(pair.name).live_service == green


def test_happy_path_alb(target: Target) -> None:
    pair = target.alb_pair("happy-alb")
    target.register(pair, plan=target.timings.promotion_plan)
    _promoted(target, pair, "v2", list(target.timings.promotion_steps))
    assert len(target.executions(pair)) == 1


def test_happy_path_route53(world: World) -> None:
    """Emulator only: in an account the metric gate needs clients that follow the records' weights."""
    pair = world.route53_pair("happy-r53")
    world.register(pair, plan="Linear25PercentEvery2Minutes")
    _promoted(world, pair, "v2", [25, 50, 75, 100])
    assert len(world.executions(pair)) == 1


def test_alarm_at_a_middle_step_fails_back_to_the_exact_snapshot(world: World) -> None:
    """Green's 5xx alarm fires while step 2 (50%) bakes: the rollout stops there and restores 100/0."""
    pair = world.alb_pair("failback")
    # Alarms only (no metric thresholds), and a 3-minute bake so the alarm has time to react.
    world.register(
        pair,
        plan={"type": "steps", "steps": [25, 50, 75, 100], "bake_seconds": 180},
        alarms=[f"{s.name}-5xx" for s in pair.services],
        max_5xx_percent=None,
    )
    stored = world.store.get_pair(pair.name)
    green = pair.service(stored.idle_service)
    before = world.weights(pair)
    task_definition = world.release(pair, "v2")

    # Once traffic reaches step 2, an error burst hits green's target group (a load balancer
    # would report it as HTTPCode_Target_5XX_Count) until the deployment is over.
    world.wait(pair, green.name, task_definition, until=lambda d: d.step_index == 1)
    done = threading.Event()

    def burst() -> None:
        cloudwatch = world.emulator.client("cloudwatch")
        dimensions = [
            {"Name": "TargetGroup", "Value": green.target_group_arn.split(":", 5)[5]},
            {
                "Name": "LoadBalancer",
                "Value": green.load_balancer_arn.split(":", 5)[5].removeprefix("loadbalancer/"),
            },
        ]
        while not done.is_set():
            cloudwatch.put_metric_data(
                Namespace="AWS/ApplicationELB",
                MetricData=[
                    {
                        "MetricName": "HTTPCode_Target_5XX_Count",
                        "Dimensions": dimensions,
                        "Timestamp": datetime.now(UTC),
                        "Value": 50.0,
                        "Unit": "Count",
                    }
                ],
            )
            time.sleep(0.05)

    thread = threading.Thread(target=burst, daemon=True)
    thread.start()
    try:
        dep = world.wait(pair, green.name, task_definition)
    finally:
        done.set()
        thread.join(5)

    assert dep.status is Status.FAILED
    assert dep.step_index == 1, "rolled back at step 2/4"
    assert dep.percent == 50
    assert f"alarm {green.name}-5xx went into ALARM" in (dep.reason or "")
    assert [h["percent"] for h in history_events(dep, "shifted")] == [25, 50]
    assert dep.snapshot == before
    assert world.weights(pair) == before, "weights equal the snapshot exactly"
    assert world.store.get_pair(pair.name).live_service == stored.live_service
    assert world.execution_status(dep) == "FAILED"


def test_second_release_after_promotion_goes_to_the_other_service(world: World) -> None:
    pair = world.alb_pair("second")
    world.register(pair)
    first_green = world.store.get_pair(pair.name).idle_service
    _promoted(world, pair, "v2", [50, 100])

    second_green = world.store.get_pair(pair.name).idle_service
    assert second_green != first_green
    _promoted(world, pair, "v3", [50, 100])
    assert world.weights(pair) == {first_green: 0, second_green: 100}
    assert len(world.executions(pair)) == 2


def test_execution_stopped_from_outside_restores_traffic_and_records_aborted(target: Target) -> None:
    pair = target.alb_pair("stopped")
    # Ten 10-minute steps: the execution is still ramping when it is stopped.
    target.register(pair, plan="Linear10PercentEvery10Minutes")
    green = target.store.get_pair(pair.name).idle_service
    before = target.weights(pair)
    task_definition = target.release(pair, "v2")
    dep = target.wait(pair, green, task_definition, until=lambda d: d.step_index == 0)
    assert target.weights(pair) != before, "traffic had moved before the stop"
    assert dep.execution_arn is not None

    target.clients("stepfunctions").stop_execution(
        executionArn=dep.execution_arn, error="OperatorStop", cause="stopped from the console"
    )
    dep = target.wait(pair, green, task_definition)

    assert dep.status is Status.ABORTED
    assert "aborted outside the state machine" in (dep.reason or "")
    assert target.execution_status(dep) == "ABORTED"
    assert target.weights(pair) == before == dep.snapshot
    assert target.store.active_deployment_id(pair.name) is None, "the pair's lock was released"
    assert target.store.get_pair(pair.name).live_service != green
