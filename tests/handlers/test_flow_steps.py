"""The owner execution's states, in flow order: prepare, steady, listen, tick ("advance"), promote."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ecs_canary import aws
from ecs_canary.errors import (
    DeploymentClosed,
    DeploymentNotFound,
    GreenNeverSteady,
    GreenUnhealthy,
    HealthInconclusive,
    NewRelease,
    NotOwner,
    RollbackRequested,
    RouterConfigError,
    ShiftInFlight,
    ShiftNotVerified,
)
from ecs_canary.flow import rollback as rollback_flow
from ecs_canary.flow import steps
from ecs_canary.metrics import lb_dimension, tg_dimension
from ecs_canary.store import Release, Status
from flow_fixtures import (
    ALARMS,
    BAKE,
    BLUE,
    GREEN,
    PAIR,
    PAIR_ALARM,
    PROPAGATION,
    ROUTERS,
    STEPS,
    TOKEN,
    Flow,
    Run,
    VirtualClock,
    catch,
)
from pydantic import ValidationError

pytest_plugins = ["flow_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

STRANGER_NAME = "manual-rerun-1"
RAMP = {0: {BLUE: 90, GREEN: 10}, 1: {BLUE: 50, GREEN: 50}, 2: {BLUE: 0, GREEN: 100}}


def _stranger(flow: Flow) -> str:
    """A copy of the deployment's input started as another execution (console "New execution")."""
    return flow.execution_arn(STRANGER_NAME)


def _at_step(flow: Flow, step_index: int, router: str = "alb", **register: Any) -> tuple[Run, dict[str, Any]]:
    flow.register(router, **register)
    run, state = flow.rolling(GREEN)
    return run, run.to_step(state, step_index)


# ---- prepare ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("router", ROUTERS)
def test_prepare_snapshots_weights_and_builds_the_context(flow: Flow, router: str) -> None:
    flow.register(router)
    run = flow.start(GREEN)

    state = run.prepare()

    assert {k: state[k] for k in ("pair", "deployment_id", "release")} == run.input
    ctx = state["deployment"]
    assert ctx["pair"] == PAIR
    assert ctx["deployment_id"] == run.deployment_id
    assert (ctx["live"], ctx["green"]) == (BLUE, GREEN)
    assert ctx["green_release"] == run.input["release"]["deployment"]
    assert ctx["snapshot"] == {BLUE: 100, GREEN: 0}
    assert ctx["green_target_group_arn"] == flow.target_groups[GREEN]
    assert ctx["green_load_balancer_arn"] == flow.load_balancer_arn
    assert ctx["spec"] == json.loads(flow.spec(router).model_dump_json())
    assert state["cursor"] == {
        "step_index": -1,
        "inconclusive": 0,
        "shifted_at": None,
        "percent": 0,
        "wait_seconds": 0,
        "complete": False,
        "verdict": None,
        "reentered": False,
    }
    assert state["steady"] == {"steady": False, "polls": 0, "wait_seconds": 0, "reason": "not checked yet"}
    record = run.record()
    assert record.status is Status.RUNNING
    assert record.snapshot == record.weights == {BLUE: 100, GREEN: 0}
    assert record.spec == ctx["spec"]
    assert run.events() == ["claimed", "started", "snapshot"]
    assert flow.weights() == {BLUE: 100, GREEN: 0}


@pytest.mark.parametrize(
    ("router", "snapshot", "moved"),
    [
        pytest.param("alb", {BLUE: 100, GREEN: 0}, {BLUE: 40, GREEN: 0}, id="alb-live-weight-changed"),
        pytest.param("alb", {BLUE: 7, GREEN: 0}, {BLUE: 60, GREEN: 40}, id="alb-split"),
        pytest.param("route53", {BLUE: 255, GREEN: 0}, {BLUE: 90, GREEN: 10}, id="route53-split"),
        pytest.param("route53", {BLUE: 100, GREEN: 0}, {BLUE: 0, GREEN: 100}, id="route53-all-on-green"),
    ],
)
def test_prepare_again_keeps_the_first_snapshot(
    flow: Flow, router: str, snapshot: dict[str, int], moved: dict[str, int]
) -> None:
    flow.register(router, snapshot=snapshot)
    run = flow.start(GREEN)
    first = run.prepare()
    flow.set_weights(moved)

    second = run.prepare()

    assert first["deployment"]["snapshot"] == second["deployment"]["snapshot"] == snapshot
    assert second["deployment"] == first["deployment"]
    record = run.record()
    assert record.snapshot == record.weights == snapshot
    assert record.status is Status.RUNNING
    assert flow.weights() == moved  # prepare reads, never writes


ON_GREEN = f"sends all traffic to {GREEN}, but {BLUE} is the"


@pytest.mark.parametrize(
    ("router", "weights", "message"),
    [
        pytest.param("alb", {BLUE: 0, GREEN: 100}, ON_GREEN, id="alb-on-green"),
        pytest.param("route53", {BLUE: 0, GREEN: 255}, ON_GREEN, id="route53-on-green"),
        pytest.param("alb", {BLUE: 70, GREEN: 30}, "traffic is split between services", id="alb-split"),
        pytest.param("route53", {BLUE: 0, GREEN: 0}, "every weight is 0", id="route53-all-zero"),
    ],
)
def test_prepare_refuses_traffic_not_on_the_registered_live_service(
    flow: Flow, router: str, weights: dict[str, int], message: str
) -> None:
    flow.register(router)
    run = flow.start(GREEN)
    flow.set_weights(weights)

    with pytest.raises(RouterConfigError, match=message):
        run.prepare()

    assert flow.weights() == weights
    record = run.record()
    assert record.status is Status.RUNNING
    assert record.snapshot is None
    assert record.weights is None
    assert run.events() == ["claimed", "started"]


def test_prepare_refuses_an_execution_that_does_not_own_the_deployment(flow: Flow) -> None:
    flow.register()
    run = flow.start(GREEN)
    flow.set_weights({BLUE: 100, GREEN: 0})

    with pytest.raises(
        NotOwner, match=f"execution {STRANGER_NAME} does not own deployment {run.deployment_id}"
    ):
        run.prepare(execution=_stranger(flow))

    record = run.record()
    assert record.execution_arn == run.execution
    assert record.snapshot is None
    assert record.status is Status.RUNNING
    assert record.history[-1]["event"] == "refused"
    assert (
        record.history[-1]["message"] == f"execution {STRANGER_NAME} refused: not the deployment's execution"
    )
    # The owner itself still runs normally afterwards.
    assert run.prepare()["deployment"]["snapshot"] == {BLUE: 100, GREEN: 0}


def test_prepare_of_a_deployment_rolling_back_stops_before_the_snapshot(flow: Flow) -> None:
    flow.register()
    run = flow.start(GREEN)
    assert flow.command("abort", reason="wrong build")["accepted"] is True

    with pytest.raises(RollbackRequested, match=r"is rolling back: aborted by .*: wrong build"):
        run.prepare()

    record = run.record()
    assert record.status is Status.ROLLING_BACK
    assert record.snapshot is None


def test_prepare_of_a_deployment_already_closed(flow: Flow) -> None:
    flow.register()
    run = flow.start(GREEN)
    flow.store.finish(PAIR, run.deployment_id, Status.ABORTED, "stopped")
    with pytest.raises(DeploymentClosed, match="is ABORTED: stopped"):
        run.prepare()
    assert flow.weights() == {BLUE: 100, GREEN: 0}
    assert run.record().snapshot is None


def test_prepare_of_an_unknown_deployment(flow: Flow) -> None:
    flow.register()
    run = flow.start(GREEN)
    run.input = {**run.input, "pair": "gone"}
    with pytest.raises(DeploymentNotFound, match="no deployment"):
        run.prepare()


@pytest.mark.parametrize(
    "event",
    [
        pytest.param({"input": {"pair": PAIR, "deployment_id": "x"}, "execution": "arn"}, id="no-release"),
        pytest.param(
            {"input": {"pair": "", "deployment_id": "x", "release": {}}, "execution": "arn"}, id="empty"
        ),
        pytest.param(
            {
                "input": {
                    "pair": PAIR,
                    "deployment_id": "x",
                    "release": {"service": "s", "deployment": "d", "task_definition": "t"},
                }
            },
            id="no-execution",
        ),
    ],
)
def test_prepare_rejects_a_malformed_input(flow: Flow, event: dict[str, Any]) -> None:
    flow.register()
    with pytest.raises(ValidationError):
        flow.invoke("prepare", event)


# ---- wait for green to be steady ------------------------------------------------------------------


def test_steady_green_passes_and_notes_it(flow: Flow) -> None:
    flow.register()
    run = flow.start(GREEN)

    state = run.steady(run.prepare())

    assert state["steady"] == {
        "steady": True,
        "polls": 1,
        "wait_seconds": 0,
        "reason": "2/2 tasks running, 2/2 targets healthy",
    }
    assert run.events()[-1] == "steady"


def test_green_not_steady_waits_then_gives_up(flow: Flow) -> None:
    flow.register()
    run = flow.start(GREEN)
    state = run.prepare()
    flow.elbv2.deregister_targets(
        TargetGroupArn=flow.target_groups[GREEN],
        Targets=[{"Id": f"10.0.2.{n}", "Port": 80} for n in (10, 11)],
    )
    poll = flow.spec().steady

    first = run.steady(state)
    second = run.steady(first)

    assert first["steady"]["steady"] is False
    assert first["steady"]["polls"] == 1
    assert first["steady"]["wait_seconds"] == poll.poll_seconds
    assert "no targets registered" in first["steady"]["reason"]
    assert second["steady"]["polls"] == 2
    assert run.events().count("waiting") == 1  # noted once, not once per poll
    last = {**state, "steady": {**state["steady"], "polls": poll.max_polls - 1}}
    with pytest.raises(GreenNeverSteady, match=f"was not steady after {poll.timeout_seconds}s"):
        run.steady(last)
    assert flow.weights() == {BLUE: 100, GREEN: 0}


def test_steady_detects_a_new_primary_release(flow: Flow) -> None:
    flow.register()
    run = flow.start(GREEN)
    state = run.prepare()
    newer = flow.new_release(GREEN)

    with pytest.raises(NewRelease, match=f"now runs release {newer}"):
        run.steady(state)

    record = run.record()
    assert record.status is Status.ROLLING_BACK
    assert record.rollback is not None
    assert record.rollback.status is Status.SUPERSEDED
    assert record.rollback.successor == Release(GREEN, newer, flow.task_definitions[GREEN])
    assert record.rollback.by == f"execution {run.deployment_id}"
    assert flow.weights() == {BLUE: 100, GREEN: 0}


def test_steady_fails_back_when_green_has_no_primary_release(flow: Flow) -> None:
    flow.register()
    run = flow.start(GREEN)
    state = run.prepare()
    flow.drop_deployments(GREEN)

    with pytest.raises(NewRelease, match="has no PRIMARY ECS deployment any more"):
        run.steady(state)

    rollback = run.record().rollback
    assert rollback is not None
    assert (rollback.status, rollback.successor) == (Status.SUPERSEDED, None)


def test_steady_after_traffic_moved_does_not_wait_again(flow: Flow) -> None:
    """A rollout re-entered after an operator's command: green was steady, traffic is moving."""
    run, state = _at_step(flow, 0)
    flow.drop_deployments(GREEN)  # would fail any real check

    again = run.steady(state)

    assert again["steady"] == {
        "steady": True,
        "polls": state["steady"]["polls"],
        "wait_seconds": 0,
        "reason": "traffic is moving",
    }
    assert run.record().status is Status.RUNNING


def test_steady_refuses_another_execution(flow: Flow) -> None:
    flow.register()
    run = flow.start(GREEN)
    state = run.prepare()
    with pytest.raises(NotOwner):
        run.steady(state, execution=_stranger(flow))
    assert run.events()[-1] == "refused"


# ---- the watch -------------------------------------------------------------------------------------


def test_listen_stores_the_task_token(flow: Flow) -> None:
    flow.register()
    run = flow.start(GREEN)
    state = run.prepare()

    assert run.listen(state) == {"armed": True, "status": "RUNNING"}

    assert run.record().listener_token == TOKEN
    assert flow.tokens.calls == []  # storing the token signals nothing


def test_listen_refuses_another_execution(flow: Flow) -> None:
    flow.register()
    run = flow.start(GREEN)
    state = run.prepare()
    with pytest.raises(NotOwner):
        run.listen(state, "copy-token", execution=_stranger(flow))
    assert run.record().listener_token is None


def test_listen_after_a_rollback_intent_ends_the_watch_at_once(flow: Flow) -> None:
    flow.register()
    run = flow.start(GREEN)
    state = run.prepare()
    flow.command("abort")
    with pytest.raises(RollbackRequested):
        run.listen(state)
    assert run.record().listener_token is None


# ---- tick: before anything moves ----------------------------------------------------------------------


def test_tick_waits_for_the_watch_to_be_armed(flow: Flow) -> None:
    flow.register()
    run = flow.start(GREEN)
    state = run.steady(run.prepare())

    state = run.advance(state)

    assert run.last["action"] == "wait"
    assert run.last["reason"] == "waiting for the watch to be armed"
    assert state["cursor"]["wait_seconds"] == steps.ARM_POLL_SECONDS
    assert state["cursor"]["step_index"] == -1
    assert flow.weights() == {BLUE: 100, GREEN: 0}
    assert run.record().step_index is None

    run.listen(state)
    state = run.advance(state)
    assert run.last["action"] == "shift"
    assert flow.weights() == RAMP[0]


@pytest.mark.parametrize(
    ("router", "alarm"), [("alb", ALARMS[GREEN]), ("route53", ALARMS[GREEN]), ("alb", PAIR_ALARM)]
)
def test_preflight_with_an_alarm_in_alarm_moves_nothing(flow: Flow, router: str, alarm: str) -> None:
    flow.register(router)
    run, state = flow.rolling(GREEN)
    flow.alarm("ALARM", alarm)

    with pytest.raises(GreenUnhealthy, match=f"preflight.*alarm {alarm} is in ALARM"):
        run.advance(state)

    assert flow.weights() == {BLUE: 100, GREEN: 0}
    record = run.record()
    assert record.weights == {BLUE: 100, GREEN: 0}
    assert record.step_index is None
    assert record.shift is None
    assert "shifted" not in run.events()


def test_preflight_ignores_the_live_services_own_alarm(flow: Flow) -> None:
    flow.register()
    run, state = flow.rolling(GREEN)
    flow.alarm("ALARM", ALARMS[BLUE])  # blue is live: its alarm is not the gate on green

    state = run.advance(state)

    assert state["cursor"]["step_index"] == 0
    assert flow.weights() == RAMP[0]


def test_preflight_with_a_missing_alarm_fails(flow: Flow) -> None:
    flow.cloudwatch.delete_alarms(AlarmNames=[PAIR_ALARM])
    flow.register()
    run, state = flow.rolling(GREEN)
    with pytest.raises(GreenUnhealthy, match=f"alarm {PAIR_ALARM} does not exist"):
        run.advance(state)
    assert flow.weights() == {BLUE: 100, GREEN: 0}


# ---- tick: the ramp -----------------------------------------------------------------------------------


@pytest.mark.parametrize("router", ROUTERS)
def test_ramp_shifts_step_by_step_then_completes(flow: Flow, router: str) -> None:
    flow.register(router)
    run, state = flow.rolling(GREEN)

    for index, percent in enumerate(STEPS):
        state = run.advance(state)
        cursor = state["cursor"]
        assert cursor["action"] == "shift"
        assert cursor["step_index"] == index
        assert cursor["percent"] == percent
        assert cursor["complete"] is False
        assert cursor["verdict"] == "pass"
        assert cursor["inconclusive"] == 0
        assert cursor["shifted_at"]
        assert cursor["wait_seconds"] == BAKE + PROPAGATION[router]
        assert flow.weights() == RAMP[index]
        record = run.record()
        # The record says exactly what the router shows, and no shift is left in flight.
        assert (record.step_index, record.percent, record.weights) == (index, percent, flow.weights())
        assert record.shift is None
        assert record.shifted_at == cursor["shifted_at"]
        assert (record.pending_change is not None) is (router == "route53")

    assert flow.tokens.calls == []
    state = run.advance(state)

    assert state["cursor"]["complete"] is True
    assert state["cursor"]["action"] == "complete"
    assert state["cursor"]["step_index"] == 2
    assert state["cursor"]["percent"] == 100
    assert state["cursor"]["wait_seconds"] == 0
    assert flow.weights() == RAMP[2]
    # The last tick ends the watch, so "Roll out" completes and promotion runs.
    assert flow.tokens.calls == [{"op": "success", "token": TOKEN, "output": {"complete": True}}]
    record = run.record()
    assert record.status is Status.RUNNING
    assert record.snapshot == {BLUE: 100, GREEN: 0}
    assert run.events()[2:] == ["snapshot", "steady", "shifted", "shifted", "shifted", "healthy"]
    assert [h.get("percent") for h in record.history if h["event"] == "shifted"] == list(STEPS)


def test_shift_takes_its_lease_before_the_router_call_and_records_after(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow.register()
    run, state = flow.rolling(GREEN)
    elbv2 = aws.client("elbv2")
    real = elbv2.modify_listener
    seen: list[Any] = []

    def modify_listener(**kwargs: Any) -> Any:
        seen.append(run.record())
        return real(**kwargs)

    monkeypatch.setattr(elbv2, "modify_listener", modify_listener)
    before = datetime.now(UTC).replace(microsecond=0)

    run.advance(state)

    (during,) = seen
    assert during.shift is not None
    assert (during.shift.weights, during.shift.step_index, during.shift.percent) == (RAMP[0], 0, 10)
    assert not during.shift.expired(before + timedelta(seconds=89))  # SHIFT_LEASE_SECONDS: 90
    assert during.weights == {BLUE: 100, GREEN: 0}  # not recorded before it is written
    after = run.record()
    assert after.shift is None
    assert after.weights == RAMP[0] == flow.weights()


def test_a_live_lease_of_a_shift_that_did_not_land_blocks_the_next_one(flow: Flow) -> None:
    flow.register()
    run, state = flow.rolling(GREEN)
    # An earlier attempt took the lease, then died before the router call.
    flow.store.begin_shift(
        PAIR,
        run.deployment_id,
        owner=run.execution,
        weights=RAMP[0],
        step_index=0,
        percent=10,
        lease_seconds=90,
    )

    with pytest.raises(ShiftInFlight):
        run.advance(state)

    assert flow.weights() == {BLUE: 100, GREEN: 0}
    assert run.record().step_index is None


@pytest.mark.parametrize("router", ROUTERS)
def test_tick_adopts_its_own_unrecorded_shift_and_lets_it_bake(flow: Flow, router: str) -> None:
    flow.register(router)
    run, state = flow.rolling(GREEN)
    # An earlier attempt took the lease and its router call landed, then the Lambda died; Step
    # Functions retries the tick seconds later.
    flow.store.begin_shift(
        PAIR,
        run.deployment_id,
        owner=run.execution,
        weights=RAMP[0],
        step_index=0,
        percent=10,
        lease_seconds=90,
    )
    flow.set_weights(RAMP[0])

    state = run.advance(state)  # no drift: the weights are ours

    record = run.record()
    recovered = next(h for h in record.history if h["event"] == "shifted")
    assert recovered["message"] == f"recovered a shift whose result was not recorded: {BLUE}=90, {GREEN}=10"
    assert recovered["percent"] == 10
    assert (record.step_index, record.percent, record.shift) == (0, 10, None)
    assert record.status is Status.RUNNING
    assert record.weights == flow.weights() == RAMP[0]
    assert record.rollback is None
    # 10 % was not judged yet: it bakes first, like any step.
    assert state["cursor"]["action"] == "shift"
    assert state["cursor"]["step_index"] == 0
    assert state["cursor"]["wait_seconds"] == BAKE + PROPAGATION[router]
    assert run.last["reason"] == "recovered a shift whose result was not recorded"

    state = run.advance(state)  # after the bake: judged, then the ramp goes on

    assert state["cursor"]["step_index"] == 1
    assert flow.weights() == RAMP[1]


# ---- tick: drift ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "expected"),
    [pytest.param(-1, {BLUE: 100, GREEN: 0}, id="before-any-shift"), pytest.param(0, RAMP[0], id="mid-ramp")],
)
def test_drift_fails_back_naming_both_weights(flow: Flow, step: int, expected: dict[str, int]) -> None:
    run, state = _at_step(flow, step)
    flow.set_weights({BLUE: 70, GREEN: 30})
    shown = f"{BLUE}={expected[BLUE]}, {GREEN}={expected[GREEN]}"

    with pytest.raises(RollbackRequested, match="traffic drift") as raised:
        run.advance(state)

    message = f"the router's weights are {BLUE}=70, {GREEN}=30, but this deployment last wrote {shown}"
    assert message in str(raised.value)
    record = run.record()
    assert record.status is Status.ROLLING_BACK
    assert record.rollback is not None
    assert record.rollback.status is Status.FAILED
    assert record.rollback.reason.startswith(f"traffic drift: {message}")
    assert flow.weights() == {BLUE: 70, GREEN: 30}  # the tick never writes over someone else's change


def test_drift_with_on_drift_hold_pauses_and_holds(flow: Flow) -> None:
    run, state = _at_step(flow, 0, on_drift="hold")
    flow.set_weights({BLUE: 70, GREEN: 30})

    state = run.advance(state)

    assert state["cursor"]["action"] == "hold"
    assert run.last["reason"] == "on hold: the weights drifted"
    assert state["cursor"]["wait_seconds"] == 30  # health.recheck_seconds
    record = run.record()
    assert record.status is Status.PAUSED
    assert record.paused is not None
    assert record.paused["by"] == "ecs-canary (drift)"
    assert f"the router's weights are {BLUE}=70, {GREEN}=30" in record.paused["reason"]
    assert record.rollback is None

    state = run.advance(state)  # still drifted: still on hold, paused once

    assert state["cursor"]["action"] == "hold"
    assert run.events().count("paused") == 1
    assert flow.weights() == {BLUE: 70, GREEN: 30}
    assert run.record().weights == RAMP[0]


# ---- tick: Route53 propagation -----------------------------------------------------------------------


def _pending_changes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Route53 answers PENDING for every change (moto's GetChange says INSYNC at once)."""
    route53 = aws.client("route53")
    asked: list[str] = []

    def get_change(**kwargs: Any) -> Any:
        asked.append(kwargs["Id"])
        return {"ChangeInfo": {"Id": kwargs["Id"], "Status": "PENDING", "SubmittedAt": datetime.now(UTC)}}

    monkeypatch.setattr(route53, "get_change", get_change)
    return asked


def test_route53_change_not_insync_makes_the_tick_wait(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    run, state = _at_step(flow, 0, "route53")
    change = run.record().pending_change
    assert change is not None
    with monkeypatch.context() as patch:
        asked = _pending_changes(patch)

        state = run.advance(state)
        state = run.advance(state)

        assert asked == [change, change]
        assert state["cursor"]["action"] == "wait"
        assert run.last["reason"] == "waiting for Route53 to be INSYNC"
        assert state["cursor"]["wait_seconds"] == steps.SYNC_POLL_SECONDS
        record = run.record()
        assert (record.sync_checks, record.pending_change, record.step_index) == (2, change, 0)
        assert flow.weights() == RAMP[0]

    state = run.advance(state)  # INSYNC now: the step is judged and the ramp goes on

    assert state["cursor"]["action"] == "shift"
    assert flow.weights() == RAMP[1]
    record = run.record()
    assert record.step_index == 1
    assert record.pending_change is not None  # the new step's change
    assert record.sync_checks == 0


def test_route53_change_never_insync_fails(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    run, state = _at_step(flow, 0, "route53")
    flow.update_record(run.deployment_id, "SET sync_checks = :n", {":n": steps.MAX_SYNC_CHECKS})
    _pending_changes(monkeypatch)

    with pytest.raises(ShiftNotVerified, match=f"was not INSYNC after {steps.MAX_SYNC_CHECKS} checks"):
        run.advance(state)

    assert flow.weights() == RAMP[0]


# ---- tick: operators ----------------------------------------------------------------------------------


def test_paused_deployment_holds_and_keeps_judging(flow: Flow) -> None:
    run, state = _at_step(flow, 0)
    assert flow.command("pause", reason="checking logs")["status"] == "PAUSED"

    state = run.advance(state)

    assert state["cursor"]["action"] == "hold"
    assert state["cursor"]["verdict"] == "pass"
    assert state["cursor"]["wait_seconds"] == 30
    assert flow.weights() == RAMP[0]
    assert run.events()[-1] == "holding"

    flow.alarm("ALARM")  # the gate stays armed while paused
    with pytest.raises(GreenUnhealthy):
        run.advance(state)
    assert flow.weights() == RAMP[0]


def test_resume_reenters_and_waits_out_the_rest_of_the_bake(flow: Flow) -> None:
    run, state = _at_step(flow, 0)
    flow.command("pause")
    state = run.advance(state)
    assert flow.command("resume")["status"] == "RUNNING"
    state = run.reenter(state)
    # However long this test takes, the step's bake is not over (the wait is capped at the plan's).
    far = (datetime.now(UTC) + timedelta(hours=1)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    flow.update_record(run.deployment_id, "SET bake_until = :b", {":b": far})

    state = run.advance(state)

    assert state["cursor"]["action"] == "wait"
    assert run.last["reason"] == "the current step's bake continues"
    assert state["cursor"]["wait_seconds"] == BAKE
    assert flow.weights() == RAMP[0]

    run.backdate(3600 + BAKE + 1)  # the bake is over
    state = run.advance(run.reenter(state))

    assert state["cursor"]["action"] == "shift"
    assert flow.weights() == RAMP[1]


def test_paused_between_the_verdict_and_the_shift_holds(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    run, state = _at_step(flow, 0)
    cloudwatch = aws.client("cloudwatch")
    real = cloudwatch.describe_alarms

    def operator_pauses_meanwhile(**kwargs: Any) -> Any:
        flow.store.pause(PAIR, run.deployment_id, by="jane", reason="hold on")
        return real(**kwargs)

    monkeypatch.setattr(cloudwatch, "describe_alarms", operator_pauses_meanwhile)

    state = run.advance(state)

    assert state["cursor"]["action"] == "hold"
    assert run.last["reason"] == "paused before the shift"
    assert flow.weights() == RAMP[0]
    record = run.record()
    assert record.shift is None
    assert record.step_index == 0


def test_promote_order_moves_to_the_next_step_now(flow: Flow) -> None:
    run, state = _at_step(flow, 0)
    reply = flow.command("promote", reason="looks good")
    assert reply["accepted"] is True
    (signal,) = flow.tokens.failures(TOKEN)
    assert signal["error"] == "PromoteRequested"

    state = run.advance(run.reenter(state))  # mid-bake: the order skips the rest of it

    assert state["cursor"]["action"] == "shift"
    assert state["cursor"]["step_index"] == 1
    assert state["cursor"]["wait_seconds"] == BAKE
    assert flow.weights() == RAMP[1]
    record = run.record()
    assert record.command is None
    shifted = [h for h in record.history if h["event"] == "shifted"][-1]
    assert shifted["message"].endswith("(promote requested)")


@pytest.mark.parametrize("step", [-1, 0, 1])
def test_promote_full_goes_to_100_and_completes_on_alb(flow: Flow, step: int) -> None:
    run, state = _at_step(flow, step)
    flow.command("promote", full=True)

    state = run.advance(run.reenter(state))

    assert state["cursor"]["complete"] is True
    assert state["cursor"]["action"] == "complete"
    assert flow.weights() == RAMP[2]
    record = run.record()
    assert (record.step_index, record.percent, record.weights) == (2, 100, RAMP[2])
    assert record.command is None
    assert flow.tokens.successes(TOKEN) == [{"op": "success", "token": TOKEN, "output": {"complete": True}}]
    assert run.promote(state) == {"live_service": GREEN}
    assert run.record().status is Status.SUCCEEDED


def test_promote_full_on_route53_completes_once_the_change_is_insync(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, state = _at_step(flow, 0, "route53")
    flow.command("promote", full=True)

    state = run.advance(run.reenter(state))  # step 1's change is INSYNC: straight to 100 %

    assert state["cursor"]["complete"] is False
    assert run.last["reason"] == "waiting for Route53 to be INSYNC"
    assert flow.weights() == RAMP[2]
    record = run.record()
    assert record.pending_change is not None
    # The order stays, marked judged: once INSYNC, promotion does not judge the gate a second time.
    assert record.command is not None
    assert record.command.skip_analysis is True
    with monkeypatch.context() as patch:
        _pending_changes(patch)
        state = run.advance(state)
        assert state["cursor"]["complete"] is False
        assert flow.tokens.successes() == []

    state = run.advance(state)

    assert state["cursor"]["complete"] is True
    assert flow.weights() == RAMP[2]
    assert len(flow.tokens.successes(TOKEN)) == 1
    assert run.record().command is None


def test_promote_at_the_last_step_completes(flow: Flow) -> None:
    run, state = _at_step(flow, 2)
    flow.command("promote")

    state = run.advance(run.reenter(state))

    assert state["cursor"]["complete"] is True
    assert run.record().command is None
    assert flow.weights() == RAMP[2]


def test_promote_skip_analysis_passes_a_failing_gate_once(flow: Flow) -> None:
    run, state = _at_step(flow, 0)
    flow.alarm("ALARM")
    flow.command("promote", skip_analysis=True, by="jane")

    state = run.advance(run.reenter(state))

    assert state["cursor"]["action"] == "shift"
    assert flow.weights() == RAMP[1]
    shifted = [h for h in run.record().history if h["event"] == "shifted"][-1]
    assert "after analysis skipped by jane" in shifted["message"]
    # The order is used up: the next verdict judges the alarm again.
    with pytest.raises(GreenUnhealthy, match=f"alarm {ALARMS[GREEN]} is in ALARM"):
        run.advance(state)


def test_complete_waits_when_the_stored_token_is_gone(flow: Flow) -> None:
    run, state = _at_step(flow, 2)
    flow.tokens.gone[TOKEN] = "TaskDoesNotExist"

    state = run.advance(state)

    assert state["cursor"]["complete"] is False
    assert run.last["reason"] == "waiting for the watch to be armed"
    assert "healthy" not in run.events()
    assert flow.tokens.calls[-1]["answered"] == "TaskDoesNotExist"

    run.listen(state, "watch-token-2")  # the watch of this rollout attempt arms
    state = run.advance(state)

    assert state["cursor"]["complete"] is True
    assert flow.tokens.successes("watch-token-2") == [
        {"op": "success", "token": "watch-token-2", "output": {"complete": True}}
    ]


# ---- tick: refusals -------------------------------------------------------------------------------------


def test_tick_detects_a_new_release_and_moves_nothing(flow: Flow) -> None:
    run, state = _at_step(flow, 0)
    newer = flow.new_release(GREEN)

    with pytest.raises(NewRelease, match=newer):
        run.advance(state)

    assert flow.weights() == RAMP[0]
    rollback = run.record().rollback
    assert rollback is not None
    assert rollback.status is Status.SUPERSEDED
    assert rollback.successor == Release(GREEN, newer, flow.task_definitions[GREEN])


def test_tick_refuses_another_execution(flow: Flow) -> None:
    run, state = _at_step(flow, 0)
    with pytest.raises(NotOwner):
        run.advance(state, execution=_stranger(flow))
    assert flow.weights() == RAMP[0]
    assert run.events()[-1] == "refused"


@pytest.mark.parametrize(
    ("close", "error"),
    [
        pytest.param(lambda f: f.command("abort"), RollbackRequested, id="rolling-back"),
        pytest.param(
            lambda f: f.store.finish(PAIR, str(f.lock()), Status.ABORTED, "stopped"),
            DeploymentClosed,
            id="closed",
        ),
    ],
)
def test_tick_after_a_rollback_intent_or_close_moves_nothing(
    flow: Flow, close: Any, error: type[Exception]
) -> None:
    run, state = _at_step(flow, 0)
    close(flow)
    with pytest.raises(error):
        run.advance(state)
    assert flow.weights() == RAMP[0]


# ---- tick: health ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("router", "alarm"), [("alb", ALARMS[GREEN]), ("route53", ALARMS[GREEN]), ("route53", PAIR_ALARM)]
)
def test_alarm_after_a_shift_is_unhealthy_and_the_tick_changes_nothing(
    flow: Flow, router: str, alarm: str
) -> None:
    run, state = _at_step(flow, 0, router)
    flow.alarm("ALARM", alarm)

    with pytest.raises(GreenUnhealthy, match=rf"step 1/3 \(10% to green\).*alarm {alarm} is in ALARM"):
        run.advance(state)

    assert flow.weights() == RAMP[0]  # the "Roll back" state restores, not the tick


@pytest.mark.parametrize("router", ROUTERS)
def test_inconclusive_without_datapoints_rechecks_then_gives_up(flow: Flow, router: str) -> None:
    run, state = _at_step(
        flow, 0, router, metrics={"max_5xx_percent": 1, "min_requests": 20}, max_inconclusive=2
    )
    assert flow.weights() == RAMP[0]

    for attempt in (1, 2):
        state = run.advance(state)
        assert state["cursor"] | {"shifted_at": None} == {
            "step_index": 0,
            "percent": 10,
            "inconclusive": attempt,
            "shifted_at": None,
            "wait_seconds": 30,  # health.recheck_seconds
            "complete": False,
            "shift_ms": 0,  # nothing shifted on a recheck
            "verdict": "inconclusive",
            "action": "recheck",
            "hooks": None,
            "gate_waits": 0,
        }
        assert flow.weights() == RAMP[0]

    with pytest.raises(
        HealthInconclusive, match=r"inconclusive 3 times in a row at step 1/3.*only 0 requests"
    ):
        run.advance(state)

    assert flow.weights() == RAMP[0]
    assert run.events().count("inconclusive") == 2
    assert run.record().step_index == 0


def test_insufficient_data_alarm_is_inconclusive_not_a_pass(flow: Flow) -> None:
    run, state = _at_step(flow, 0, max_inconclusive=0)
    flow.alarm("INSUFFICIENT_DATA")
    with pytest.raises(HealthInconclusive, match=f"alarm {ALARMS[GREEN]} has INSUFFICIENT_DATA"):
        run.advance(state)
    assert flow.weights() == RAMP[0]


def _put_green_metrics(flow: Flow, requests: int, errors: int) -> None:
    dimensions = [
        {"Name": "TargetGroup", "Value": tg_dimension(flow.target_groups[GREEN])},
        {"Name": "LoadBalancer", "Value": lb_dimension(flow.load_balancer_arn)},
    ]
    # Inside a whole period that starts after the shift's settle time and ended more than the
    # metrics' publishing lag ago (defaults 30 s and 120 s): the test backdates the shift by 300 s.
    at = datetime.now(UTC) - timedelta(seconds=200)
    flow.cloudwatch.put_metric_data(
        Namespace="AWS/ApplicationELB",
        MetricData=[
            {"MetricName": "RequestCount", "Dimensions": dimensions, "Timestamp": at, "Value": requests},
            {
                "MetricName": "HTTPCode_Target_5XX_Count",
                "Dimensions": dimensions,
                "Timestamp": at,
                "Value": errors,
            },
            {"MetricName": "UnHealthyHostCount", "Dimensions": dimensions, "Timestamp": at, "Value": 0},
        ],
    )


@pytest.mark.parametrize(
    ("requests", "errors", "outcome"),
    [
        pytest.param(500, 2, "shift", id="0.4%-passes"),
        pytest.param(500, 25, r"5xx 5% > 1% \(25 of 500 requests\)", id="5%-fails"),
    ],
)
def test_metrics_gate_judges_green_target_group(flow: Flow, requests: int, errors: int, outcome: str) -> None:
    run, state = _at_step(flow, 0, metrics={"max_5xx_percent": 1, "min_requests": 100})
    run.backdate(BAKE * 5)  # the step baked long enough for a whole period to be judged
    _put_green_metrics(flow, requests, errors)

    if outcome == "shift":
        state = run.advance(state)
        assert state["cursor"]["step_index"] == 1
        assert flow.weights() == RAMP[1]
    else:
        with pytest.raises(GreenUnhealthy, match=outcome):
            run.advance(state)
        assert flow.weights() == RAMP[0]


# ---- promote -----------------------------------------------------------------------------------------


def _complete(flow: Flow, router: str = "alb") -> tuple[Run, dict[str, Any]]:
    flow.register(router)
    run, state = flow.rolling(GREEN)
    while not state["cursor"]["complete"]:
        state = run.advance(state)
    return run, state


@pytest.mark.parametrize("router", ROUTERS)
def test_promote_records_success_and_swaps_roles(flow: Flow, router: str) -> None:
    run, state = _complete(flow, router)
    old_live_release = flow.deployment_of(BLUE)

    assert run.promote(state) == {"live_service": GREEN}

    record = run.record()
    assert record.status is Status.SUCCEEDED
    assert record.reason == f"{GREEN} took all traffic after 3 healthy step(s)"
    assert record.weights == RAMP[2]
    assert record.ended_at
    assert record.listener_token is None
    assert run.events()[-1] == "succeeded"
    assert flow.lock() is None
    pair = flow.item("SPEC")
    assert pair is not None
    assert pair["live_service"] == GREEN
    assert pair["idle_baseline"] == old_live_release
    assert pair["promoted_at"]
    assert flow.store.get_pair(PAIR).idle_service == BLUE
    assert flow.weights() == RAMP[2]

    before = flow.items()
    assert run.promote(state) == {"live_service": GREEN}  # a retried call
    assert flow.items() == before


def test_promote_refuses_weights_that_are_not_all_on_green(flow: Flow) -> None:
    run, state = _complete(flow)
    flow.set_weights({BLUE: 5, GREEN: 95})

    with pytest.raises(RollbackRequested, match="at promotion, not"):
        run.promote(state)

    record = run.record()
    assert record.status is Status.ROLLING_BACK
    assert record.rollback is not None
    assert record.rollback.status is Status.FAILED
    assert f"the router's weights are {BLUE}=5, {GREEN}=95 at promotion" in record.rollback.reason
    pair = flow.item("SPEC")
    assert pair is not None
    assert pair["live_service"] == BLUE
    assert flow.lock() == run.deployment_id


def test_promote_refuses_another_execution(flow: Flow) -> None:
    run, state = _complete(flow)
    before = [i for i in flow.items() if i["sk"] != f"DEPLOYMENT#{run.deployment_id}"]

    with pytest.raises(NotOwner):
        run.promote(state, execution=_stranger(flow))

    assert run.record().status is Status.RUNNING
    assert [i for i in flow.items() if i["sk"] != f"DEPLOYMENT#{run.deployment_id}"] == before
    assert run.events()[-1] == "refused"


def test_promote_after_the_deployment_was_rolled_back_is_refused(flow: Flow) -> None:
    run, state = _complete(flow)
    run.rollback({"Error": "States.Timeout", "Cause": "stopped"})
    before = flow.items()

    with pytest.raises(DeploymentClosed, match="is FAILED"):
        run.promote(state)

    assert flow.items() == before
    pair = flow.item("SPEC")
    assert pair is not None
    assert pair["live_service"] == BLUE


def test_promote_detects_a_new_release(flow: Flow) -> None:
    run, state = _complete(flow)
    flow.new_release(GREEN)

    with pytest.raises(NewRelease):
        run.promote(state)

    assert run.record().status is Status.ROLLING_BACK
    pair = flow.item("SPEC")
    assert pair is not None
    assert pair["live_service"] == BLUE


# ---- races around the final verdict and the write ----------------------------------------------------


def test_an_alarm_after_the_final_verdict_still_stops_the_promotion(flow: Flow) -> None:
    run, state = _complete(flow)
    flow.tokens.gone[TOKEN] = "TaskTimedOut"  # the watch already completed
    flow.invoke("interrupt", flow.alarm_event(ALARMS[GREEN], "ALARM"))

    with pytest.raises(RollbackRequested, match=f"alarm {ALARMS[GREEN]} went into ALARM"):
        run.promote(state)

    pair = flow.item("SPEC")
    assert pair is not None
    assert pair["live_service"] == BLUE
    result = run.rollback(catch("RollbackRequested", "rolling back"))
    assert result["status"] == "FAILED"
    assert flow.weights() == {BLUE: 100, GREEN: 0}


def _retried_final_tick(flow: Flow) -> tuple[Run, dict[str, Any]]:
    """The final tick ran to the end (the watch was completed) but Lambda's answer was lost.

    Step Functions retries the task (Lambda.ServiceException, a timeout...) with the same input,
    and its SendTaskSuccess now meets a closed task.
    """
    run, state = _at_step(flow, 2)
    done = run.advance(state)
    assert done["cursor"]["complete"] is True
    flow.tokens.gone[TOKEN] = "TaskTimedOut"
    return run, state


def test_a_retried_final_tick_completes_without_moving_traffic(flow: Flow) -> None:
    run, state = _retried_final_tick(flow)
    assert run.record().watch_done == TOKEN  # the intent to complete the watch was recorded first

    again = run.advance(state)

    assert again["cursor"]["complete"] is True
    assert again["cursor"]["action"] == "complete"
    assert flow.weights() == RAMP[2]
    record = run.record()
    assert record.status is Status.RUNNING
    assert (record.step_index, record.weights) == (2, RAMP[2])
    assert run.promote(again) == {"live_service": GREEN}


def test_a_token_of_an_earlier_watch_is_not_taken_for_a_completed_one(flow: Flow) -> None:
    """The stored token's watch failed (an operator's command ended it): wait for the new watch."""
    run, state = _at_step(flow, 2)
    flow.tokens.gone[TOKEN] = "TaskDoesNotExist"

    waiting = run.advance(state)

    assert waiting["cursor"]["complete"] is False
    assert run.last["reason"] == "waiting for the watch to be armed"
    assert run.record().watch_done is None

    run.listen(state, "watch-token-2")
    assert run.advance(state)["cursor"]["complete"] is True
    assert run.record().watch_done == "watch-token-2"


def _drift_during_the_verdict(flow: Flow, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """Someone moves traffic after the tick read the weights and before it writes the next step."""
    cloudwatch = aws.client("cloudwatch")
    real = cloudwatch.describe_alarms

    def hand_edit_meanwhile(**kwargs: Any) -> Any:
        flow.set_weights({BLUE: 70, GREEN: 30})
        return real(**kwargs)

    monkeypatch.setattr(cloudwatch, "describe_alarms", hand_edit_meanwhile)


def test_drift_at_write_time_fails_back_and_releases_the_lease(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, state = _at_step(flow, 0)
    _drift_during_the_verdict(flow, run, monkeypatch)

    with pytest.raises(RollbackRequested, match=r"traffic drift: .*someone else changed them"):
        run.advance(state)

    assert flow.weights() == {BLUE: 70, GREEN: 30}  # the router refused: the hand edit is not overwritten
    record = run.record()
    assert (record.step_index, record.weights) == (0, RAMP[0])
    assert record.shift is None  # nothing is in flight: the rollback need not wait
    assert record.status is Status.ROLLING_BACK
    assert record.rollback is not None
    assert record.rollback.status is Status.FAILED
    assert (
        f"has weights {BLUE}=70, {GREEN}=30, not the expected {BLUE}=90, {GREEN}=10" in record.rollback.reason
    )
    assert run.events().count("shifted") == 1

    clock = VirtualClock()
    monkeypatch.setattr(rollback_flow, "time", clock)
    result = run.rollback(catch("RollbackRequested", "traffic drift"))
    assert clock.sleeps == 0
    assert result["status"] == "FAILED"
    assert flow.weights() == {BLUE: 100, GREEN: 0}


def test_drift_at_write_time_with_on_drift_hold_holds(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    run, state = _at_step(flow, 0, on_drift="hold")
    _drift_during_the_verdict(flow, run, monkeypatch)

    state = run.advance(state)

    assert state["cursor"]["action"] == "hold"
    assert run.last["reason"].startswith("on hold: ")
    record = run.record()
    assert record.status is Status.PAUSED
    assert record.paused is not None
    assert record.paused["by"] == "ecs-canary (drift)"
    assert record.shift is None
    assert record.rollback is None
    assert flow.weights() == {BLUE: 70, GREEN: 30}
