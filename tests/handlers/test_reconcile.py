"""The reconcile handler: executions that ended outside the state machine's own terminal states."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ecs_canary.flow.identity import deployment_id_for
from ecs_canary.store import Release, Status
from flow_fixtures import ALARMS, BLUE, GREEN, PAIR, ROUTERS, Flow, Run, catch
from pydantic import ValidationError

pytest_plugins = ["flow_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

HALF = {BLUE: 50, GREEN: 50}


def _mid_ramp(flow: Flow, router: str = "alb", **register: Any) -> tuple[Run, dict[str, Any]]:
    """A deployment at 50 % green."""
    flow.register(router, **register)
    run, state = flow.rolling(GREEN)
    state = run.to_step(state, 1)
    assert flow.weights() == HALF
    return run, state


def _recorded_input(flow: Flow, run: Run) -> str:
    """``detail.input`` is the execution input as a JSON string, exactly as it was started."""
    return str(flow.sfn.describe_execution(executionArn=run.execution)["input"])


def _ended(flow: Flow, run: Run, status: str, **extra: Any) -> dict[str, Any]:
    return flow.execution_status_event(
        status, execution_input=_recorded_input(flow, run), name=run.deployment_id, **extra
    )


def _split(weights: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(weights.items()))


@pytest.mark.parametrize(
    ("router", "snapshot"),
    [
        pytest.param("alb", {BLUE: 100, GREEN: 0}, id="alb"),
        pytest.param("alb", {BLUE: 7, GREEN: 0}, id="alb-7/0"),
        pytest.param("route53", {BLUE: 255, GREEN: 0}, id="route53-255/0"),
    ],
)
def test_aborted_execution_restores_traffic_and_records_aborted(
    flow: Flow, router: str, snapshot: dict[str, int]
) -> None:
    run, _ = _mid_ramp(flow, router, snapshot=snapshot)
    event = _ended(flow, run, "ABORTED")

    result = flow.invoke("reconcile", event)

    reason = f"execution aborted outside the state machine; traffic restored at {_split(snapshot)}"
    assert result == {"action": "reconciled", "status": "ABORTED", "reason": reason, "restored": True}
    assert flow.weights() == snapshot
    record = run.record()
    assert record.status is Status.ABORTED
    assert record.reason == reason
    assert record.weights == snapshot
    assert record.ended_at
    assert record.rollback is not None
    assert record.rollback.by == "reconcile"
    assert flow.lock() is None
    pair = flow.item("SPEC")
    assert pair is not None
    assert pair["live_service"] == BLUE

    # EventBridge delivers at least once: the second delivery finds the record closed.
    before = flow.items()
    again = flow.invoke("reconcile", event)
    assert again == {"action": "ignored", "reason": f"deployment {run.deployment_id} is already ABORTED"}
    assert flow.items() == before


@pytest.mark.parametrize(
    ("status", "error", "cause", "reason"),
    [
        pytest.param(
            "TIMED_OUT", None, None, "execution timed out outside the state machine", id="timed-out"
        ),
        pytest.param(
            "FAILED",
            "States.Runtime",
            "boom",
            "execution failed outside the state machine (States.Runtime: boom)",
            id="failed",
        ),
        pytest.param(
            "ABORTED",
            None,
            "stopped by jane",
            "execution aborted outside the state machine (stopped by jane)",
            id="aborted-with-cause",
        ),
    ],
)
def test_other_endings_record_their_status(
    flow: Flow, status: str, error: str | None, cause: str | None, reason: str
) -> None:
    run, _ = _mid_ramp(flow)

    result = flow.invoke("reconcile", _ended(flow, run, status, error=error, cause=cause))

    assert result["action"] == "reconciled"
    assert result["status"] == status
    assert result["restored"] is True
    assert result["reason"] == f"{reason}; traffic restored at {_split({BLUE: 100, GREEN: 0})}"
    record = run.record()
    assert record.status.value == status
    assert record.reason == result["reason"]
    assert flow.weights() == {BLUE: 100, GREEN: 0}
    assert flow.lock() is None


def test_execution_stopped_before_any_snapshot(flow: Flow) -> None:
    flow.register()
    run = flow.start(GREEN)

    result = flow.invoke("reconcile", _ended(flow, run, "ABORTED"))

    assert result == {
        "action": "reconciled",
        "status": "ABORTED",
        "reason": "execution aborted outside the state machine; no traffic had moved",
        "restored": False,
    }
    assert run.record().status is Status.ABORTED
    assert flow.lock() is None
    assert flow.weights() == {BLUE: 100, GREEN: 0}


def test_an_intent_recorded_before_the_execution_ended_wins(flow: Flow) -> None:
    """The rollback itself crashed (the execution FAILED): the record closes with the alarm's intent."""
    run, _ = _mid_ramp(flow)
    flow.invoke("interrupt", flow.alarm_event(ALARMS[GREEN], "ALARM"))

    result = flow.invoke(
        "reconcile", _ended(flow, run, "FAILED", error="RollbackFailed", cause="Rate exceeded")
    )

    assert result["status"] == "FAILED"
    assert result["reason"].startswith(f"alarm {ALARMS[GREEN]} went into ALARM during the deployment")
    assert flow.weights() == {BLUE: 100, GREEN: 0}
    assert run.record().status is Status.FAILED


def test_a_superseded_deployment_stopped_in_the_console_still_hands_over(flow: Flow) -> None:
    run, _ = _mid_ramp(flow)
    newer = flow.new_release(GREEN)
    assert flow.invoke("filter", flow.task_event(GREEN, newer))["action"] == "superseding"

    result = flow.invoke("reconcile", _ended(flow, run, "ABORTED"))

    assert result["status"] == "SUPERSEDED"
    assert flow.weights() == {BLUE: 100, GREEN: 0}
    successor = deployment_id_for(PAIR, Release(GREEN, newer, flow.task_definitions[GREEN]))
    assert flow.lock() == successor
    assert flow.store.get_deployment(PAIR, successor).status is Status.RUNNING
    assert successor in {e["name"] for e in flow.executions()}


def test_reconcile_waits_for_a_shift_lease_of_the_dead_execution(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The execution ended with a tick's write in flight: the restore waits for its (short) lease."""
    monkeypatch.setenv("SHIFT_LEASE_SECONDS", "60")
    run, _ = _mid_ramp(flow)
    flow.store.begin_shift(
        PAIR,
        run.deployment_id,
        owner=run.execution,
        weights={BLUE: 0, GREEN: 100},
        step_index=2,
        percent=100,
        lease_seconds=0.3,
    )

    result = flow.invoke("reconcile", _ended(flow, run, "ABORTED"))

    assert result["status"] == "ABORTED"
    assert result["restored"] is True
    assert flow.weights() == {BLUE: 100, GREEN: 0}
    assert run.record().status is Status.ABORTED


# ---- already closed ------------------------------------------------------------------------------


def _rolled_back(flow: Flow) -> Run:
    run, _ = _mid_ramp(flow)
    run.rollback(catch("GreenUnhealthy", "alarm web-green-5xx is in ALARM"))
    return run


def _promoted(flow: Flow) -> Run:
    run, state = _mid_ramp(flow)
    while not state["cursor"]["complete"]:
        state = run.advance(state)
    run.promote(state)
    return run


@pytest.mark.parametrize(
    ("close", "status", "ended"),
    [
        pytest.param(_rolled_back, "FAILED", "FAILED", id="rolled-back-then-failed-event"),
        pytest.param(_rolled_back, "FAILED", "ABORTED", id="rolled-back-then-late-abort"),
        pytest.param(_promoted, "SUCCEEDED", "ABORTED", id="promoted-then-late-abort"),
        pytest.param(_promoted, "SUCCEEDED", "TIMED_OUT", id="promoted-then-timed-out"),
    ],
)
def test_record_already_terminal_is_left_alone(flow: Flow, close: Any, status: str, ended: str) -> None:
    run = close(flow)
    closed = run.record()
    assert closed.status.value == status
    flow.set_weights({BLUE: 30, GREEN: 70})  # whatever traffic looks like now is not ours to touch
    before = flow.items()
    event = _ended(
        flow,
        run,
        ended,
        error="DeploymentFailed" if ended == "FAILED" else None,
        cause=closed.reason if ended == "FAILED" else None,
    )

    result = flow.invoke("reconcile", event)

    assert result == {"action": "ignored", "reason": f"deployment {run.deployment_id} is already {status}"}
    assert flow.items() == before
    assert flow.weights() == {BLUE: 30, GREEN: 70}


# ---- not ours -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "make_input", "name"),
    [
        pytest.param("ABORTED", lambda d: None, None, id="no-input"),
        pytest.param("ABORTED", lambda d: "not json {", None, id="input-not-json"),
        pytest.param("ABORTED", lambda d: json.dumps(["pair", PAIR]), None, id="input-a-list"),
        pytest.param("FAILED", lambda d: json.dumps({"order": 42}), None, id="other-workflow-input"),
        pytest.param(
            "ABORTED", lambda d: json.dumps({"pair": PAIR, "deployment_id": 7}), None, id="id-not-str"
        ),
        pytest.param("SUCCEEDED", lambda d: d, None, id="succeeded"),
        pytest.param("RUNNING", lambda d: d, None, id="running"),
        pytest.param("ABORTED", lambda d: d, "manual-rerun-1", id="copy-of-input-other-execution"),
        pytest.param("TIMED_OUT", lambda d: d, "manual-rerun-2", id="copy-timed-out"),
        pytest.param(
            "ABORTED",
            lambda d: json.dumps({"pair": "payments", "deployment_id": "payments-x-0123"}),
            "payments-x-0123",
            id="unknown-deployment",
        ),
    ],
)
def test_unrelated_executions_are_ignored(flow: Flow, status: str, make_input: Any, name: str | None) -> None:
    run, _ = _mid_ramp(flow)
    before = flow.items()
    event = flow.execution_status_event(
        status, execution_input=make_input(_recorded_input(flow, run)), name=name or run.deployment_id
    )

    result = flow.invoke("reconcile", event)

    assert result["action"] == "ignored", result
    assert flow.items() == before
    assert flow.weights() == HALF
    assert run.record().status is Status.RUNNING
    assert flow.lock() == run.deployment_id


@pytest.mark.parametrize("router", ROUTERS)
def test_malformed_status_event_fails_loudly(flow: Flow, router: str) -> None:
    run, _ = _mid_ramp(flow, router)
    event = _ended(flow, run, "ABORTED")
    del event["detail"]["executionArn"]
    before = flow.items()

    with pytest.raises(ValidationError, match="executionArn"):
        flow.invoke("reconcile", event)

    assert flow.items() == before
    assert flow.weights() == HALF
