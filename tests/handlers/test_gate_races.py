"""Races around the gates: late calls, retries after a close, interrupts while a gate runs.

Each test plays one interleaving a real account can produce (an interrupt while a Lambda call is
still in flight, a retry of a call that died after its write, an operator acting mid-gate) and
checks the rule it could break: no change lands after the restore, test traffic always goes back,
a newer deployment is never touched, a bake is never skipped, an answer is never ignored.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from ecs_canary.errors import ApprovalRejected, RollbackRequested, ShiftInFlight, WriteRefused
from ecs_canary.flow import rollback as rollback_flow
from ecs_canary.flow import stages, steps
from ecs_canary.routers import alb as alb_router
from ecs_canary.spec import ServicePairSpec, parse_spec
from ecs_canary.store import Status
from flow_fixtures import BLUE, GREEN, PAIR, Flow, VirtualClock, catch

pytest_plugins = ["flow_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

HOOK = "ecs-canary-hook-smoke"
UNTOUCHED = {BLUE: 100, GREEN: 0}


def _register(flow: Flow, **gates: Any) -> ServicePairSpec:
    doc = json.loads(flow.spec("alb").model_dump_json())
    doc.update(gates)
    spec = parse_spec(doc)
    flow.router = "alb"
    flow.set_weights(UNTOUCHED)
    flow.store.put_pair(spec, live_service=BLUE, idle_baseline=flow.deployment_of(GREEN))
    return spec


def _test_listener(flow: Flow) -> tuple[str, list[dict[str, Any]]]:
    default = [{"Type": "forward", "TargetGroupArn": flow.target_groups[BLUE]}]
    created = flow.elbv2.create_listener(
        LoadBalancerArn=flow.load_balancer_arn, Protocol="HTTP", Port=8080, DefaultActions=default
    )
    arn = str(created["Listeners"][0]["ListenerArn"])
    return arn, _actions(flow, arn)


def _actions(flow: Flow, listener: str) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = flow.elbv2.describe_listeners(ListenerArns=[listener])["Listeners"][0][
        "DefaultActions"
    ]
    return actions


def test_a_rollback_waits_for_the_test_traffic_change_in_flight_and_it_never_outlives_the_end(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener, original = _test_listener(flow)
    _register(flow, test_traffic={"listener_arn": listener})
    run, state = flow.rolling(GREEN)
    monkeypatch.setattr(rollback_flow, "time", VirtualClock())
    real_apply = stages.apply_test_traffic
    seen: dict[str, Any] = {}

    def slow_apply(spec: ServicePairSpec, record: Any, snapshot: Any) -> None:
        # While this call is in flight an alarm fires and "Roll back" runs: it must not restore
        # (and close) under the test-traffic lease, or this late write would outlive the restore.
        flow.invoke("interrupt", flow.alarm_event(f"{GREEN}-5xx", "ALARM"))
        with pytest.raises(ShiftInFlight, match="a change of the test traffic"):
            run.rollback(catch("AlarmFired", "alarm"))
        seen["status"] = run.record().status
        real_apply(spec, record, snapshot)

    monkeypatch.setattr(steps, "apply_test_traffic", slow_apply)
    with pytest.raises(RollbackRequested):  # the gate's own write is refused: it is rolling back
        run.advance(state)

    assert seen["status"] is Status.ROLLING_BACK
    assert _actions(flow, listener) == original, "the refused tick undid its own late change"
    result = run.rollback(catch("AlarmFired", "alarm"))  # the state's Retry, after the lease

    assert result["status"] == "FAILED"
    record = run.record()
    assert record.status is Status.FAILED
    assert record.test_snapshot is not None
    assert record.test_snapshot.get("restored") is True
    assert _actions(flow, listener) == original
    assert flow.weights() == UNTOUCHED


def test_test_traffic_is_restored_even_when_production_traffic_cannot_be(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener, original = _test_listener(flow)
    _register(flow, test_traffic={"listener_arn": listener})
    run, state = flow.rolling(GREEN)
    state = run.advance(state)  # test traffic on green, then the first production shift
    assert _actions(flow, listener) != original

    def router_down(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("router down")

    monkeypatch.setattr(alb_router.AlbRouter, "set_weights", router_down)
    with pytest.raises(RuntimeError, match="router down"):
        run.rollback(catch("GreenUnhealthy", "5xx"))
    assert _actions(flow, listener) == original, "the test target does not wait for the production restore"

    closed = run.rollback_failed(
        catch("GreenUnhealthy", "5xx"), {"Error": "RuntimeError", "Cause": "router down"}
    )

    assert closed["status"] == "ROLLBACK_FAILED"
    assert run.record().status is Status.ROLLBACK_FAILED
    assert _actions(flow, listener) == original


def test_a_retried_rollback_after_the_close_still_runs_the_on_rollback_hooks(flow: Flow) -> None:
    _register(flow, hooks={"on_rollback": [{"function": HOOK}]})
    run, state = flow.rolling(GREEN)
    run.advance(state)
    first = run.rollback(catch("GreenUnhealthy", "5xx"))
    assert first["hooks"] is not None

    retried = run.rollback(catch("GreenUnhealthy", "5xx"))  # the first call died after closing

    assert retried["status"] == "FAILED"
    assert retried["hooks"] == first["hooks"]


def test_a_resume_while_after_each_shift_hooks_run_keeps_the_rest_of_the_bake(flow: Flow) -> None:
    _register(flow, hooks={"after_each_shift": [{"function": HOOK}]})
    run, prepared = flow.rolling(GREEN)
    shifted = run.advance(prepared)
    assert shifted["cursor"]["action"] == "hooks"
    bake = shifted["cursor"]["wait_seconds"]
    assert bake > 0

    flow.command("pause")
    flow.command("resume")
    again = run.advance(run.reenter(prepared))

    assert again["cursor"]["action"] == "hooks"
    assert again["cursor"]["hooks"]["then"] == "bake"
    assert 0 < again["cursor"]["wait_seconds"] <= bake, "the step still bakes after its hooks"


def test_a_rejection_is_acted_on_while_paused(flow: Flow) -> None:
    _register(flow, approvals={"before_production_traffic": {"timeout_seconds": 600}})
    run, prepared = flow.rolling(GREEN)
    assert run.advance(prepared)["cursor"]["action"] == "approval"
    flow.command("pause")
    flow.command("reject", reason="bad build")

    with pytest.raises(ApprovalRejected, match="bad build"):
        run.advance(run.reenter(prepared))

    assert run.record().status is Status.ROLLING_BACK
    assert flow.weights() == UNTOUCHED


def test_a_retried_promotion_never_scales_down_the_green_of_a_newer_deployment(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register(flow, after_promotion={"scale_old_to_zero": True})
    flow.ecs.update_service(cluster="prod", service=BLUE, desiredCount=3)
    flow.ecs.update_service(cluster="prod", service=GREEN, desiredCount=3)
    run, state = flow.rolling(GREEN)
    for _ in range(12):
        if state["cursor"]["complete"]:
            break
        state = run.advance(state)
    assert state["cursor"]["complete"], state["cursor"]
    real = steps._after_success
    calls: list[int] = []

    def dies_once(store: Any, spec: Any, record: Any) -> None:
        if not calls:
            calls.append(1)
            raise RuntimeError("the Lambda died after the success was recorded")
        real(store, spec, record)

    monkeypatch.setattr(steps, "_after_success", dies_once)
    with pytest.raises(RuntimeError):
        run.promote(state)
    assert run.record().status is Status.SUCCEEDED
    newer = flow.start(BLUE)  # the next release, to the old service, is picked up at once
    assert flow.store.active_deployment_id(PAIR) == newer.deployment_id

    run.promote(state)  # the Promote state's Retry

    blue = flow.ecs.describe_services(cluster="prod", services=[BLUE])["services"][0]
    assert blue["desiredCount"] == 3
    assert "scale_down_skipped" in run.events()


def test_a_late_call_whose_shift_a_later_tick_adopted_records_nothing_twice(flow: Flow) -> None:
    _register(flow)
    run, state = flow.rolling(GREEN)
    state = run.advance(state)  # step 1 (10 %) recorded
    half = {BLUE: 50, GREEN: 50}
    # An earlier tick took the lease for step 2 and its write landed; then it was abandoned (an
    # operator's command re-entered the rollout) while still running.
    flow.store.begin_shift(
        PAIR, run.deployment_id, owner=run.execution, weights=half, step_index=1, percent=50, lease_seconds=90
    )
    flow.set_weights(half)
    run.advance(run.reenter(state))  # the re-entered rollout adopts the landed shift
    assert run.record().step_index == 1

    with pytest.raises(WriteRefused, match="shift_unrecorded"):
        flow.store.record_shift(  # the abandoned tick's own record, arriving late
            PAIR, run.deployment_id, owner=run.execution, step_index=1, percent=50, weights=half,
            bake_seconds=60, change_id=None, message="step 2/3: 50%",
        )  # fmt: skip

    assert [h.get("percent") for h in run.record().history if h["event"] == "shifted"] == [10, 50]
