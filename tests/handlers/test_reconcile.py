"""The reconcile handler: executions that ended outside the state machine's own terminal states."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flow_fixtures import BLUE, GREEN, PAIR, ROUTERS, Flow
from pydantic import ValidationError

pytest_plugins = ["flow_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


def _mid_ramp(flow: Flow, router: str = "alb", **register: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A deployment at 50 % green: (its execution input as Step Functions recorded it, its state)."""
    flow.register(router, **register)
    _, execution_input = flow.start(GREEN)
    state = flow.invoke("prepare", execution_input)
    while state["cursor"]["step_index"] < 1:
        state = flow.advance(state)
    assert flow.weights() == {BLUE: 50, GREEN: 50}
    return execution_input, state


def _recorded_input(flow: Flow, deployment_id: str) -> str:
    """``detail.input`` is the execution input as a JSON string, exactly as it was started."""
    (execution,) = [e for e in flow.executions() if e["name"] == deployment_id]
    return str(flow.sfn.describe_execution(executionArn=execution["executionArn"])["input"])


def _record(flow: Flow, deployment_id: str) -> dict[str, Any]:
    record = flow.item(f"DEPLOYMENT#{deployment_id}")
    assert record is not None
    return record


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
    execution_input, _ = _mid_ramp(flow, router, snapshot=snapshot)
    deployment_id = execution_input["deployment_id"]
    event = flow.execution_status_event(
        "ABORTED", execution_input=_recorded_input(flow, deployment_id), name=deployment_id
    )

    result = flow.invoke("reconcile", event)

    split = ", ".join(f"{k}={v}" for k, v in sorted(snapshot.items()))
    reason = f"execution aborted outside the state machine; traffic restored at {split}"
    assert result == {"action": "reconciled", "reason": reason, "restored": True}
    assert flow.weights() == snapshot
    record = _record(flow, deployment_id)
    assert record["status"] == "ABORTED"
    assert record["reason"] == reason
    assert record["weights"] == snapshot
    assert record["ended_at"]
    assert flow.lock() is None
    pair = flow.item("SPEC")
    assert pair is not None
    assert pair["live_service"] == BLUE

    # EventBridge delivers at least once: the second delivery finds the record closed.
    before = flow.items()
    again = flow.invoke("reconcile", event)
    assert again == {"action": "reconciled", "reason": reason, "restored": False}
    assert flow.items() == before


@pytest.mark.parametrize(
    ("status", "error", "cause", "reason"),
    [
        pytest.param(
            "TIMED_OUT", None, None, "execution timed out outside the state machine", id="timed-out"
        ),
        pytest.param(
            "FAILED",
            "RollbackFailed",
            "Rate exceeded",
            "execution failed outside the state machine (RollbackFailed: Rate exceeded)",
            id="rollback-failed",
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
    execution_input, _ = _mid_ramp(flow)
    deployment_id = execution_input["deployment_id"]
    event = flow.execution_status_event(
        status,
        execution_input=_recorded_input(flow, deployment_id),
        name=deployment_id,
        error=error,
        cause=cause,
    )

    result = flow.invoke("reconcile", event)

    assert result["action"] == "reconciled"
    assert result["restored"] is True
    assert result["reason"].startswith(reason + "; traffic restored at")
    record = _record(flow, deployment_id)
    assert record["status"] == status
    assert record["reason"] == result["reason"]
    assert flow.weights() == {BLUE: 100, GREEN: 0}
    assert flow.lock() is None


def test_execution_stopped_before_any_snapshot(flow: Flow) -> None:
    flow.register()
    deployment_id, _ = flow.start(GREEN)
    event = flow.execution_status_event(
        "ABORTED", execution_input=_recorded_input(flow, deployment_id), name=deployment_id
    )

    result = flow.invoke("reconcile", event)

    assert result == {
        "action": "reconciled",
        "reason": "execution aborted outside the state machine; no traffic had moved",
        "restored": False,
    }
    assert _record(flow, deployment_id)["status"] == "ABORTED"
    assert flow.lock() is None
    assert flow.weights() == {BLUE: 100, GREEN: 0}


# ---- already closed ------------------------------------------------------------------------------


def _rolled_back(flow: Flow) -> str:
    execution_input, state = _mid_ramp(flow)
    flow.invoke("rollback", flow.rollback_input(state, "GreenUnhealthy", "alarm web-green-5xx is in ALARM"))
    return str(execution_input["deployment_id"])


def _promoted(flow: Flow) -> str:
    execution_input, state = _mid_ramp(flow)
    while not state["cursor"]["complete"]:
        state = flow.advance(state)
    flow.invoke("promote", {"deployment": state["deployment"], "cursor": state["cursor"]})
    return str(execution_input["deployment_id"])


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
    deployment_id = close(flow)
    closed = _record(flow, deployment_id)
    assert closed["status"] == status
    flow.set_weights({BLUE: 30, GREEN: 70})  # whatever traffic looks like now is not ours to touch
    before = flow.items()
    event = flow.execution_status_event(
        ended,
        execution_input=_recorded_input(flow, deployment_id),
        name=deployment_id,
        error="DeploymentFailed" if ended == "FAILED" else None,
        cause=closed["reason"] if ended == "FAILED" else None,
    )

    result = flow.invoke("reconcile", event)

    assert result == {"action": "reconciled", "reason": closed["reason"], "restored": False}
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
        pytest.param(
            "ABORTED",
            lambda d: json.dumps({"pair": "payments", "deployment_id": "payments-x-0123"}),
            "payments-x-0123",
            id="unknown-deployment",
        ),
    ],
)
def test_unrelated_executions_are_ignored(flow: Flow, status: str, make_input: Any, name: str | None) -> None:
    execution_input, _ = _mid_ramp(flow)
    deployment_id = execution_input["deployment_id"]
    before = flow.items()
    event = flow.execution_status_event(
        status,
        execution_input=make_input(_recorded_input(flow, deployment_id)),
        name=name or deployment_id,
    )

    result = flow.invoke("reconcile", event)

    assert result["action"] == "ignored", result
    assert flow.items() == before
    assert flow.weights() == {BLUE: 50, GREEN: 50}
    assert _record(flow, deployment_id)["status"] == "RUNNING"
    assert flow.lock() == deployment_id


@pytest.mark.parametrize("router", ROUTERS)
def test_malformed_status_event_fails_loudly(flow: Flow, router: str) -> None:
    execution_input, _ = _mid_ramp(flow, router)
    event = flow.execution_status_event(
        "ABORTED", execution_input=json.dumps(execution_input), name=execution_input["deployment_id"]
    )
    del event["detail"]["executionArn"]
    before = flow.items()

    with pytest.raises(ValidationError, match="executionArn"):
        flow.invoke("reconcile", event)

    assert flow.items() == before
    assert flow.weights() == {BLUE: 50, GREEN: 50}
