"""State "Roll back" (and "Record that the rollback failed"): intent first, then restore, then close."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ecs_canary import aws
from ecs_canary.errors import NotOwner, ShiftInFlight
from ecs_canary.flow import rollback as rollback_flow
from ecs_canary.flow.identity import deployment_id_for
from ecs_canary.store import Release, Status
from flow_fixtures import (
    ALARMS,
    BLUE,
    GREEN,
    PAIR,
    ROUTERS,
    TOKEN,
    Flow,
    Run,
    VirtualClock,
    catch,
)

pytest_plugins = ["flow_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

SNAPSHOT = {BLUE: 100, GREEN: 0}
RAMP = {0: {BLUE: 90, GREEN: 10}, 1: {BLUE: 50, GREEN: 50}, 2: {BLUE: 0, GREEN: 100}}


def _split(weights: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(weights.items()))


def _at_step(flow: Flow, step: int, router: str = "alb", **register: Any) -> tuple[Run, dict[str, Any]]:
    flow.register(router, **register)
    run, state = flow.rolling(GREEN)
    return run, run.to_step(state, step)


# ---- restoring the snapshot ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("router", "snapshot"),
    [
        pytest.param("alb", {BLUE: 100, GREEN: 0}, id="alb-100/0"),
        pytest.param("alb", {BLUE: 7, GREEN: 0}, id="alb-7/0"),
        pytest.param("alb", {BLUE: 999, GREEN: 0}, id="alb-999/0"),
        pytest.param("route53", {BLUE: 255, GREEN: 0}, id="route53-255/0"),
        pytest.param("route53", {BLUE: 1, GREEN: 0}, id="route53-1/0"),
    ],
)
def test_rollback_restores_the_exact_snapshot_and_closes(
    flow: Flow, router: str, snapshot: dict[str, int]
) -> None:
    run, _ = _at_step(flow, 1, router, snapshot=snapshot)
    assert flow.weights() == RAMP[1]
    message = "green is unhealthy at step 2/3 (50% to green): alarm web-green-5xx is in ALARM"

    result = run.rollback(catch("GreenUnhealthy", message))

    reason = f"GreenUnhealthy: {message}; traffic restored at {_split(snapshot)}"
    assert result == {"status": "FAILED", "reason": reason, "restored": True, "hooks": None}
    assert flow.weights() == snapshot
    record = run.record()
    assert record.status is Status.FAILED
    assert record.reason == reason
    assert record.weights == record.snapshot == snapshot
    assert record.ended_at
    assert record.rollback is not None
    assert record.rollback.by == f"execution {run.deployment_id}"
    assert run.events()[-3:] == ["rolling_back", "restored", "failed"]
    assert flow.lock() is None
    pair = flow.item("SPEC")
    assert pair is not None
    assert pair["live_service"] == BLUE

    # Step Functions retries the task; meanwhile someone moved traffic on. Nothing is touched.
    flow.set_weights({BLUE: 30, GREEN: 70})
    before = flow.items()
    again = run.rollback(catch("GreenUnhealthy", message))
    assert again == {"status": "FAILED", "reason": reason, "restored": False, "hooks": None}
    assert flow.items() == before
    assert flow.weights() == {BLUE: 30, GREEN: 70}


def test_rollback_records_its_intent_before_touching_traffic(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, _ = _at_step(flow, 1)
    elbv2 = aws.client("elbv2")
    real = elbv2.modify_listener
    during: list[Any] = []

    def modify_listener(**kwargs: Any) -> Any:
        during.append(run.record())
        return real(**kwargs)

    monkeypatch.setattr(elbv2, "modify_listener", modify_listener)

    run.rollback(catch("GreenUnhealthy", "alarm"))

    (seen,) = during
    assert seen.status is Status.ROLLING_BACK
    assert seen.rollback is not None
    assert seen.rollback.reason == "GreenUnhealthy: alarm"
    assert flow.lock() is None
    assert run.record().status is Status.FAILED


def test_rollback_at_the_snapshot_already_changes_nothing(flow: Flow) -> None:
    flow.register()
    run, state = flow.rolling(GREEN)
    flow.alarm("ALARM")
    with pytest.raises(Exception, match="preflight") as failed:
        run.advance(state)

    result = run.rollback(catch("GreenUnhealthy", str(failed.value)))

    assert result["restored"] is False
    assert result["reason"].endswith(f"; traffic unchanged at {BLUE}=100, {GREEN}=0")
    assert str(failed.value) in result["reason"]
    assert run.record().status is Status.FAILED
    assert flow.lock() is None


@pytest.mark.parametrize("router", ROUTERS)
def test_rollback_before_any_snapshot_says_no_traffic_moved(flow: Flow, router: str) -> None:
    flow.register(router)
    run = flow.start(GREEN)
    flow.set_weights({BLUE: 0, GREEN: 100})  # the router disagrees with the registration
    with pytest.raises(Exception, match="sends all traffic") as failed:
        run.prepare()

    result = run.rollback(catch("RouterConfigError", str(failed.value)))

    assert result == {
        "status": "FAILED",
        "reason": f"RouterConfigError: {failed.value}; no traffic had moved",
        "restored": False,
        "hooks": None,
    }
    record = run.record()
    assert record.status is Status.FAILED
    assert record.reason == result["reason"]
    assert record.weights is None
    assert flow.lock() is None
    assert flow.weights() == {BLUE: 0, GREEN: 100}


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        pytest.param(
            {"Error": "GreenNeverSteady", "Cause": json.dumps({"errorMessage": "0/2 tasks running"})},
            "GreenNeverSteady: 0/2 tasks running",
            id="lambda-error-json",
        ),
        pytest.param(
            {"Error": "States.Timeout", "Cause": "Task timed out after 120.00 seconds"},
            "States.Timeout: Task timed out after 120.00 seconds",
            id="plain-cause",
        ),
        pytest.param({"Error": "States.TaskFailed"}, "States.TaskFailed", id="no-cause"),
        pytest.param(
            {"Error": "Lambda.Unknown", "Cause": {"errorMessage": "out of memory"}},
            "Lambda.Unknown: out of memory",
            id="cause-object",
        ),
        pytest.param(None, "rollback requested", id="no-error"),
    ],
)
def test_rollback_reason_from_the_catch(flow: Flow, error: dict[str, Any] | None, reason: str) -> None:
    flow.register()
    run = flow.start(GREEN)

    result = run.rollback(error)

    assert result == {
        "status": "FAILED",
        "reason": f"{reason}; no traffic had moved",
        "restored": False,
        "hooks": None,
    }
    assert run.record().reason == result["reason"]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        pytest.param("Aborted", "ABORTED", id="aborted"),
        pytest.param("NewRelease", "SUPERSEDED", id="new-release"),
        pytest.param("GreenUnhealthy", "FAILED", id="unhealthy"),
        pytest.param("TrafficDrift", "FAILED", id="drift"),
        pytest.param("States.Timeout", "FAILED", id="timeout"),
    ],
)
def test_the_catch_error_decides_the_status_when_no_intent_was_recorded(
    flow: Flow, error: str, status: str
) -> None:
    run, _ = _at_step(flow, 0)

    result = run.rollback(catch(error, "why"))

    assert result["status"] == status
    assert run.record().status.value == status
    assert flow.weights() == SNAPSHOT


@pytest.mark.parametrize(
    ("interrupt", "catch_error", "status", "reason"),
    [
        pytest.param(
            lambda f: f.invoke("interrupt", f.alarm_event(ALARMS[GREEN], "ALARM", "3 datapoints")),
            "GreenUnhealthy",
            "FAILED",
            f"alarm {ALARMS[GREEN]} went into ALARM during the deployment: 3 datapoints",
            id="alarm",
        ),
        pytest.param(
            lambda f: f.command("abort", reason="bad build", by="jane"),
            "Aborted",
            "ABORTED",
            "aborted by jane: bad build",
            id="abort",
        ),
    ],
)
def test_the_recorded_intent_decides_the_outcome(
    flow: Flow, interrupt: Any, catch_error: str, status: str, reason: str
) -> None:
    run, _ = _at_step(flow, 1)
    interrupt(flow)
    assert flow.weights() == RAMP[1]  # interrupts never touch traffic themselves

    result = run.rollback(catch(catch_error, "the watch failed"))

    assert result == {
        "status": status,
        "reason": f"{reason}; traffic restored at {_split(SNAPSHOT)}",
        "restored": True,
        "hooks": None,
    }
    assert flow.weights() == SNAPSHOT
    assert run.record().status.value == status


def test_rollback_refuses_another_execution_and_restores_nothing(flow: Flow) -> None:
    run, _ = _at_step(flow, 1)
    stranger = flow.execution_arn("manual-rerun-1")

    with pytest.raises(NotOwner, match="nothing was restored"):
        run.rollback(catch("GreenUnhealthy", "x"), execution=stranger)

    assert flow.weights() == RAMP[1]
    record = run.record()
    assert record.status is Status.RUNNING
    assert record.rollback is None
    assert record.history[-1]["event"] == "refused"
    assert flow.lock() == run.deployment_id


def test_rollback_of_an_unknown_deployment_writes_nothing(flow: Flow) -> None:
    flow.register()
    before = flow.items()
    result = flow.invoke(
        "rollback",
        {
            "pair": PAIR,
            "deployment_id": "web-nothing-0000",
            "error": None,
            "execution": flow.execution_arn("x"),
        },
    )
    assert result == {
        "status": "FAILED",
        "reason": "rollback requested (no deployment record)",
        "restored": False,
        "hooks": None,
    }
    assert flow.items() == before


# ---- a shift still in flight -----------------------------------------------------------------------


def _in_flight(flow: Flow, run: Run, weights: dict[str, int], *, lease_seconds: float = 90) -> None:
    """A tick of the owner took the shift lease and is about to write ``weights``."""
    flow.store.begin_shift(
        PAIR,
        run.deployment_id,
        owner=run.execution,
        weights=weights,
        step_index=1,
        percent=50,
        lease_seconds=lease_seconds,
    )


@pytest.mark.parametrize("router", ROUTERS)
def test_rollback_waits_for_the_shift_in_flight_then_restores(
    flow: Flow, monkeypatch: pytest.MonkeyPatch, router: str
) -> None:
    run, _ = _at_step(flow, 0, router)
    _in_flight(flow, run, RAMP[1])
    flow.invoke("interrupt", flow.alarm_event(ALARMS[GREEN], "ALARM"))

    def the_shift_lands(sleeps: int) -> None:
        if sleeps == 3:  # the in-flight tick writes its weights late, then records them
            flow.set_weights(RAMP[1])
            flow.store.record_shift(
                PAIR,
                run.deployment_id,
                owner=run.execution,
                step_index=1,
                percent=50,
                weights=RAMP[1],
                bake_seconds=60,
                change_id=None,
                message="step 2/3: 50%",
            )

    clock = VirtualClock(the_shift_lands)
    monkeypatch.setattr(rollback_flow, "time", clock)

    result = run.rollback(catch("GreenUnhealthy", "alarm"))

    assert clock.sleeps == 3
    assert result["restored"] is True
    assert flow.weights() == SNAPSHOT  # the late write did not survive the restore
    record = run.record()
    assert record.status is Status.FAILED
    assert record.weights == SNAPSHOT
    assert run.events()[-4:] == ["rolling_back", "shifted", "restored", "failed"]


def test_rollback_gives_up_waiting_for_a_live_lease_with_shift_in_flight(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, _ = _at_step(flow, 0)
    _in_flight(flow, run, RAMP[1])
    clock = VirtualClock()
    monkeypatch.setattr(rollback_flow, "time", clock)

    with pytest.raises(ShiftInFlight, match="is still in flight"):
        run.rollback(catch("GreenUnhealthy", "alarm"))

    assert clock.now - 1_000.0 >= rollback_flow._LEASE_WAIT_SECONDS
    assert flow.weights() == RAMP[0]  # nothing restored under a live lease
    record = run.record()
    assert record.status is Status.ROLLING_BACK  # the intent stays; the Retry comes back
    assert record.rollback is not None
    assert flow.lock() == run.deployment_id


def test_an_expired_lease_is_not_waited_for(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    run, _ = _at_step(flow, 0)
    _in_flight(flow, run, RAMP[1], lease_seconds=-1)
    clock = VirtualClock()
    monkeypatch.setattr(rollback_flow, "time", clock)

    result = run.rollback(catch("GreenUnhealthy", "alarm"))

    assert clock.sleeps == 0
    assert result["restored"] is True
    assert flow.weights() == SNAPSHOT


# ---- a superseding release ----------------------------------------------------------------------------


def _successor_run(flow: Flow, release: Release) -> Run:
    successor_id = deployment_id_for(PAIR, release)
    arn = flow.execution_arn(successor_id)
    return Run(flow, successor_id, flow.execution_input(arn), arn)


@pytest.mark.parametrize("detected_by", ["tick", "filter"])
def test_supersede_fails_back_then_hands_the_lock_to_the_new_release(flow: Flow, detected_by: str) -> None:
    run, state = _at_step(flow, 1)
    newer = flow.new_release(GREEN)
    release = Release(GREEN, newer, flow.task_definitions[GREEN])
    if detected_by == "tick":
        with pytest.raises(Exception, match="now runs release"):
            run.advance(state)
    else:
        assert flow.invoke("filter", flow.task_event(GREEN, newer))["action"] == "superseding"
        assert flow.tokens.failures(TOKEN)[-1]["error"] == "NewRelease"

    result = run.rollback(catch("NewRelease", "green runs another release"))

    assert result["status"] == "SUPERSEDED"
    assert result["restored"] is True
    assert flow.weights() == SNAPSHOT
    old = run.record()
    assert old.status is Status.SUPERSEDED
    assert old.weights == SNAPSHOT
    successor = _successor_run(flow, release)
    record = successor.record()
    assert record.release == release
    assert (record.service, record.live_service) == (GREEN, BLUE)
    assert record.execution_arn == successor.execution
    assert record.status is Status.RUNNING  # STARTING at the handover, then its execution started
    assert successor.events() == ["claimed", "started"]
    assert flow.lock() == successor.deployment_id
    assert sorted(e["name"] for e in flow.executions()) == sorted(
        [run.deployment_id, successor.deployment_id]
    )
    assert successor.input == {
        "pair": PAIR,
        "deployment_id": successor.deployment_id,
        "release": release.to_dict(),
    }

    # The successor deploys from the restored weights.
    state = successor.prepare()
    assert state["deployment"]["snapshot"] == SNAPSHOT
    # Its release's tasks are now duplicates of the started deployment.
    assert flow.invoke("filter", flow.task_event(GREEN, newer))["action"] == "duplicate"


def test_supersede_with_on_new_release_reject_records_the_release_rejected(flow: Flow) -> None:
    run, state = _at_step(flow, 1, on_new_release="reject")
    newer = flow.new_release(GREEN)
    release = Release(GREEN, newer, flow.task_definitions[GREEN])
    with pytest.raises(Exception, match="now runs release"):
        run.advance(state)

    result = run.rollback(catch("NewRelease", "green runs another release"))

    assert result["status"] == "SUPERSEDED"
    assert flow.weights() == SNAPSHOT
    rejected = flow.store.get_deployment(PAIR, deployment_id_for(PAIR, release))
    assert rejected.status is Status.REJECTED
    assert rejected.reason is not None
    assert "on_new_release is reject, so it was not deployed" in rejected.reason
    assert flow.lock() is None
    assert [e["name"] for e in flow.executions()] == [run.deployment_id]
    again = flow.invoke("filter", flow.task_event(GREEN, newer))
    assert again["action"] == "duplicate"
    assert "REJECTED" in again["reason"]


def test_green_rolled_back_to_its_baseline_hands_over_to_nobody(flow: Flow) -> None:
    flow.register()
    baseline = flow.store.get_pair(PAIR).idle_baseline
    baseline_td = flow.task_definitions[GREEN]
    assert baseline is not None
    run, state = flow.rolling(GREEN)
    state = run.advance(state)
    flow.set_primary(GREEN, baseline, baseline_td)  # ECS' circuit breaker rolled green back
    with pytest.raises(Exception, match=f"now runs release {baseline}"):
        run.advance(state)

    result = run.rollback(catch("NewRelease", "x"))

    assert result["status"] == "SUPERSEDED"
    assert flow.lock() is None
    assert [r["deployment_id"] for r in flow.records()] == [run.deployment_id]
    assert len(flow.executions()) == 1


# ---- the rollback itself failed -----------------------------------------------------------------------


def test_record_rollback_failed_records_the_actual_weights(flow: Flow) -> None:
    run, _ = _at_step(flow, 1)
    flow.invoke("interrupt", flow.alarm_event(ALARMS[GREEN], "ALARM"))

    result = run.rollback_failed(
        catch("GreenUnhealthy", "alarm"),
        catch("ShiftNotVerified", "listener has weights 50/50 after writing 100/0"),
    )

    assert result["status"] == "ROLLBACK_FAILED"
    assert result["weights"] == RAMP[1]
    record = run.record()
    assert record.status is Status.ROLLBACK_FAILED
    assert record.weights == RAMP[1] == flow.weights()
    assert record.reason == result["reason"]
    assert record.reason == (
        "rollback failed: ShiftNotVerified: listener has weights 50/50 after writing 100/0; traffic is at "
        f"{_split(RAMP[1])} (snapshot {_split(SNAPSHOT)}); it was rolling back because alarm {ALARMS[GREEN]} "
        "went into ALARM during the deployment: Threshold Crossed"
    )
    assert flow.lock() is None
    # The pair is free for the next release.
    assert flow.invoke("filter", flow.task_event(GREEN, flow.new_release(GREEN)))["action"] == "started"


def test_record_rollback_failed_when_the_router_cannot_be_read(flow: Flow) -> None:
    run, _ = _at_step(flow, 1)
    flow.elbv2.delete_listener(ListenerArn=flow.listener_arn)

    result = run.rollback_failed(None, catch("RouterConfigError", "listener gone"))

    assert result["weights"] is None
    assert "traffic is at could not be read (" in result["reason"]
    assert run.record().status is Status.ROLLBACK_FAILED
    assert flow.lock() is None


def test_record_rollback_failed_refuses_another_execution(flow: Flow) -> None:
    run, _ = _at_step(flow, 1)
    with pytest.raises(NotOwner):
        run.rollback_failed(None, catch("X", "y"), execution=flow.execution_arn("manual-rerun-1"))
    assert run.record().status is Status.RUNNING
    assert flow.lock() == run.deployment_id


def test_record_rollback_failed_after_the_record_closed_changes_nothing(flow: Flow) -> None:
    run, _ = _at_step(flow, 1)
    run.rollback(catch("GreenUnhealthy", "alarm"))
    before = flow.items()

    result = run.rollback_failed(None, catch("X", "y"))

    assert result == {"status": "FAILED", "weights": None}
    assert flow.items() == before


def test_reject_applies_to_a_deployment_superseded_before_it_began(flow: Flow) -> None:
    """Superseded before prepare copied the spec: the registered spec's on_new_release applies."""
    flow.register(on_new_release="reject")
    run = flow.start(GREEN)  # claimed and started; "Load spec and snapshot traffic" has not run
    newer = flow.new_release(GREEN)
    release = Release(GREEN, newer, flow.task_definitions[GREEN])
    assert flow.invoke("filter", flow.task_event(GREEN, newer))["action"] == "superseding"
    with pytest.raises(Exception, match="is rolling back"):
        run.prepare()

    result = run.rollback(catch("RollbackRequested", "superseded"))

    assert result["status"] == "SUPERSEDED"
    assert flow.store.get_deployment(PAIR, deployment_id_for(PAIR, release)).status is Status.REJECTED
    assert flow.lock() is None
    assert [e["name"] for e in flow.executions()] == [run.deployment_id]


def test_a_deployment_superseded_before_it_began_hands_over_without_moving_traffic(flow: Flow) -> None:
    flow.register()
    run = flow.start(GREEN)
    newer = flow.new_release(GREEN)
    release = Release(GREEN, newer, flow.task_definitions[GREEN])
    flow.invoke("filter", flow.task_event(GREEN, newer))

    intent = run.record().rollback
    assert intent is not None

    result = run.rollback(catch("RollbackRequested", "superseded"))

    assert result == {
        "status": "SUPERSEDED",
        "reason": f"{intent.reason}; no traffic had moved",
        "restored": False,
        "hooks": None,
    }
    successor = _successor_run(flow, release)
    assert flow.lock() == successor.deployment_id
    assert successor.record().status is Status.RUNNING
    assert flow.weights() == SNAPSHOT
