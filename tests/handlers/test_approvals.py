"""Approval gates: asked once, answered with ``ecs-canary approve`` / ``reject``, or timed out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from ecs_canary import aws
from ecs_canary.errors import ApprovalRejected, CommandRefused, WriteRefused
from ecs_canary.events import CommandInput
from ecs_canary.flow import interrupts
from ecs_canary.spec import ServicePairSpec, parse_spec
from ecs_canary.store import RollbackIntent, Status, now_iso
from flow_fixtures import BLUE, GREEN, PAIR, TOKEN, Flow, Run, catch

pytest_plugins = ["flow_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

JANE = "arn:aws:iam::123456789012:user/jane"
BEFORE = "approval:before_production_traffic"
AFTER = "approval:after_production_traffic"
TIMEOUT = 600
UNTOUCHED = {BLUE: 100, GREEN: 0}
RAMP0 = {BLUE: 90, GREEN: 10}


def _register(flow: Flow, **gates: Any) -> ServicePairSpec:
    doc = json.loads(flow.spec("alb").model_dump_json())
    doc.update(gates)
    spec = parse_spec(doc)
    flow.router = "alb"
    flow.set_weights(UNTOUCHED)
    flow.store.put_pair(spec, live_service=BLUE, idle_baseline=flow.deployment_of(GREEN))
    return spec


def _gated(
    flow: Flow, on_timeout: str = "rollback", timeout: int = TIMEOUT
) -> tuple[Run, dict[str, Any], dict[str, Any]]:
    """A rollout waiting for approval before production traffic: (run, its first state, the waiting one)."""
    _register(
        flow,
        approvals={"before_production_traffic": {"timeout_seconds": timeout, "on_timeout": on_timeout}},
    )
    run, prepared = flow.rolling(GREEN)
    return run, prepared, run.advance(prepared)


def _asked_ago(flow: Flow, run: Run, seconds: float) -> None:
    """Time passes: the approval was asked for ``seconds`` ago."""
    moment = datetime.now(UTC) - timedelta(seconds=seconds)
    stamp = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    flow.update_record(run.deployment_id, "SET approval.requested_at = :t", {":t": stamp})


def _reentered(run: Run, prepared: dict[str, Any]) -> dict[str, Any]:
    """ "Act on the operator's command": "Roll out" again with its own input (the cursor before any tick)."""
    return run.reenter(prepared)


# ---- asking --------------------------------------------------------------------------------------------


def test_an_approval_is_asked_for_once_and_holds_production_traffic(flow: Flow) -> None:
    run, prepared, state = _gated(flow)

    assert state["cursor"]["action"] == "approval"
    assert state["cursor"]["wait_seconds"] == TIMEOUT
    assert state["cursor"]["complete"] is False
    assert run.last["reason"] == "waiting for approval"
    record = run.record()
    assert record.approval is not None
    requested_at = record.approval["requested_at"]
    assert record.approval == {
        "key": BEFORE,
        "timeout_seconds": TIMEOUT,
        "on_timeout": "rollback",
        "requested_at": requested_at,
    }
    assert record.gates_done == frozenset()
    (asked,) = [h for h in record.history if h["event"] == "awaiting_approval"]
    assert asked["message"] == f"waiting for approval at {BEFORE}"
    assert flow.weights() == UNTOUCHED
    assert flow.tokens.calls == []  # the watch stays armed while waiting

    # Re-entered before anyone answered: the same request, only what is left of its timeout.
    again = run.advance(_reentered(run, prepared))

    assert again["cursor"]["action"] == "approval"
    assert 1 <= again["cursor"]["wait_seconds"] <= TIMEOUT
    assert run.last["reason"] == "still waiting for approval"
    record = run.record()
    assert record.approval is not None
    assert record.approval["requested_at"] == requested_at
    assert run.events().count("awaiting_approval") == 1
    assert flow.weights() == UNTOUCHED


# ---- answers -------------------------------------------------------------------------------------------


def test_approve_passes_the_gate_and_production_traffic_moves(flow: Flow) -> None:
    run, prepared, _ = _gated(flow)

    reply = flow.command("approve", reason="lgtm")

    assert reply == {
        "accepted": True,
        "command": "approve",
        "pair": PAIR,
        "deployment_id": run.deployment_id,
        "status": "RUNNING",
    }
    (signal,) = flow.tokens.failures(TOKEN)
    assert (signal["error"], signal["cause"]) == ("ApprovalDecided", f"approved by {JANE}: lgtm")
    record = run.record()
    assert record.approval is not None
    assert (record.approval["decision"], record.approval["by"], record.approval["reason"]) == (
        "approved",
        JANE,
        "lgtm",
    )
    assert run.events()[-1] == "approved"
    assert flow.weights() == UNTOUCHED  # the command itself moves nothing

    state = run.advance(_reentered(run, prepared))

    assert state["cursor"]["action"] == "shift"
    assert flow.weights() == RAMP0
    record = run.record()
    assert record.approval is None
    assert {BEFORE, "capacity"} <= record.gates_done
    assert record.status is Status.RUNNING


def test_reject_fails_back_with_who_and_why(flow: Flow) -> None:
    run, prepared, _ = _gated(flow)

    reply = flow.command("reject", reason="not on a Friday")

    assert reply["accepted"] is True
    (signal,) = flow.tokens.failures(TOKEN)
    assert (signal["error"], signal["cause"]) == ("ApprovalDecided", f"rejected by {JANE}: not on a Friday")
    reason = f"rejected by {JANE}: not on a Friday"
    with pytest.raises(ApprovalRejected) as rejected:
        run.advance(_reentered(run, prepared))
    assert str(rejected.value) == reason
    record = run.record()
    assert record.status is Status.ROLLING_BACK
    assert record.rollback is not None
    assert (record.rollback.status, record.rollback.reason, record.rollback.by) == (
        Status.FAILED,
        reason,
        JANE,
    )
    assert BEFORE not in record.gates_done
    assert flow.weights() == UNTOUCHED

    result = run.rollback(catch("ApprovalRejected", reason))

    assert result["status"] == "FAILED"
    assert result["reason"].startswith(reason)
    assert flow.weights() == UNTOUCHED


@pytest.mark.parametrize(
    ("on_timeout", "passes"),
    [pytest.param("rollback", False, id="rollback"), pytest.param("continue", True, id="continue")],
)
def test_an_approval_nobody_gives_times_out_as_the_spec_says(
    flow: Flow, on_timeout: str, passes: bool
) -> None:
    run, _, waiting = _gated(flow, on_timeout)

    if not passes:
        with pytest.raises(ApprovalRejected) as timed_out:
            run.advance(waiting)  # the machine waited the whole timeout
        reason = f"approval timed out after {TIMEOUT} s"
        assert str(timed_out.value) == reason
        record = run.record()
        assert record.status is Status.ROLLING_BACK
        assert record.rollback is not None
        assert (record.rollback.status, record.rollback.reason, record.rollback.by) == (
            Status.FAILED,
            reason,
            "ecs-canary",
        )
        assert flow.weights() == UNTOUCHED
        return

    state = run.advance(waiting)

    assert state["cursor"]["action"] == "shift"
    assert flow.weights() == RAMP0
    record = run.record()
    assert record.approval is None
    assert BEFORE in record.gates_done
    (line,) = [h for h in record.history if h["event"] == "approval_timed_out"]
    assert line["message"] == f"approval timed out after {TIMEOUT} s; on_timeout is continue"


@pytest.mark.parametrize(
    ("asked_ago", "low", "high"),
    [
        # What is left of the timeout, less the (unbounded) time this test itself takes.
        pytest.param(100, 1, TIMEOUT - 100, id="a-sixth-gone"),
        pytest.param(TIMEOUT - 120, 1, 120, id="two-minutes-left"),
    ],
)
def test_a_re_entered_rollout_waits_only_what_is_left_of_the_timeout(
    flow: Flow, asked_ago: int, low: int, high: int
) -> None:
    run, prepared, _ = _gated(flow)
    _asked_ago(flow, run, asked_ago)

    state = run.advance(_reentered(run, prepared))

    assert state["cursor"]["action"] == "approval"
    assert low <= state["cursor"]["wait_seconds"] <= high
    assert run.record().status is Status.RUNNING
    assert run.events().count("awaiting_approval") == 1


@pytest.mark.parametrize("on_timeout", ["rollback", "continue"])
def test_a_re_entered_rollout_past_the_timeout_applies_on_timeout_at_once(
    flow: Flow, on_timeout: str
) -> None:
    run, prepared, _ = _gated(flow, on_timeout)
    _asked_ago(flow, run, TIMEOUT + 1)

    if on_timeout == "rollback":
        with pytest.raises(ApprovalRejected, match=f"approval timed out after {TIMEOUT} s"):
            run.advance(_reentered(run, prepared))
        assert run.record().status is Status.ROLLING_BACK
    else:
        state = run.advance(_reentered(run, prepared))
        assert state["cursor"]["action"] == "shift"
        assert BEFORE in run.record().gates_done


def test_an_approval_at_100_percent_holds_promotion_until_approved(flow: Flow) -> None:
    _register(flow, approvals={"after_production_traffic": {"timeout_seconds": 300}})
    run, prepared = flow.rolling(GREEN)
    state = prepared
    for _ in range(3):
        state = run.advance(state)
    assert flow.weights() == {BLUE: 0, GREEN: 100}

    state = run.advance(state)

    assert (state["cursor"]["action"], state["cursor"]["wait_seconds"]) == ("approval", 300)
    assert state["cursor"]["complete"] is False
    record = run.record()
    assert record.approval is not None
    assert record.approval["key"] == AFTER
    assert flow.tokens.calls == []  # the rollout is not complete: promotion waits

    flow.command("approve", reason="ship it")
    run.backdate(3600)  # the approval was asked after the last step baked
    state = run.advance(_reentered(run, prepared))

    assert state["cursor"]["complete"] is True
    assert AFTER in run.record().gates_done
    assert flow.tokens.successes(TOKEN) != []


# ---- refusals ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "before",
    [
        pytest.param(None, id="never-asked"),
        pytest.param("approved", id="already-approved"),
        pytest.param("rejected", id="already-rejected"),
    ],
)
def test_decide_approval_is_refused_unless_an_approval_is_pending(flow: Flow, before: str | None) -> None:
    if before is None:
        _register(flow)
        run, _ = flow.rolling(GREEN)
    else:
        run, _, _ = _gated(flow)
        flow.store.decide_approval(PAIR, run.deployment_id, decision=before, by="bob", reason="first")
    record = run.record()

    with pytest.raises(WriteRefused) as refused:
        flow.store.decide_approval(PAIR, run.deployment_id, decision="approved", by=JANE, reason="late")

    assert refused.value.condition == "approval_pending"
    assert run.record() == record  # nothing written


@pytest.mark.parametrize("command", ["approve", "reject"])
def test_a_command_with_no_pending_approval_is_refused(flow: Flow, command: str) -> None:
    _register(flow)
    run, _ = flow.rolling(GREEN)
    record = run.record()
    order = CommandInput(pair=PAIR, command=command, by=JANE, reason="why not")

    with pytest.raises(
        CommandRefused, match=f"deployment {run.deployment_id} is not waiting for an approval"
    ):
        interrupts.on_command(flow.store, order)

    # As the CLI sees it: not accepted, with the reason; nothing recorded, the watch left alone.
    reply = flow.command(command, reason="why not")
    assert reply == {
        "accepted": False,
        "command": command,
        "pair": PAIR,
        "reason": f"deployment {run.deployment_id} is not waiting for an approval",
    }
    assert run.record() == record
    assert flow.tokens.calls == []


@pytest.mark.parametrize("command", ["approve", "reject"])
def test_a_command_for_a_deployment_rolling_back_is_refused(flow: Flow, command: str) -> None:
    run, _, _ = _gated(flow)
    intent = RollbackIntent(Status.FAILED, "alarm", "alarm web-green-5xx", now_iso())
    flow.store.request_rollback(PAIR, run.deployment_id, intent)

    reply = flow.command(command, reason="too late")

    assert reply["accepted"] is False
    assert "already rolling back" in reply["reason"]
    record = run.record()
    assert record.approval is not None
    assert "decision" not in record.approval


# ---- a retried tick -------------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", ["approved", "timed-out-continue"])
def test_a_tick_retried_after_the_gate_write_failed_keeps_the_answer(
    flow: Flow, monkeypatch: pytest.MonkeyPatch, answer: str
) -> None:
    run, prepared, waiting = _gated(flow, "continue")
    if answer == "approved":
        flow.command("approve", reason="lgtm")
        tick_state = _reentered(run, prepared)
    else:
        tick_state = waiting  # the machine waited the whole timeout
    ddb = aws.client("dynamodb")
    real = ddb.update_item
    failed: list[str] = []

    def throttled_once(**kwargs: Any) -> Any:
        if "ADD gates_done" in kwargs["UpdateExpression"] and not failed:
            failed.append(kwargs["UpdateExpression"])
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "UpdateItem"
            )
        return real(**kwargs)

    monkeypatch.setattr(ddb, "update_item", throttled_once)
    with pytest.raises(ClientError, match="ThrottlingException"):
        run.advance(tick_state)

    state = run.advance(tick_state)  # the state machine's Retry, with the same input

    assert failed
    assert state["cursor"]["action"] == "shift"
    assert run.events().count("awaiting_approval") == 1
    assert flow.weights() == RAMP0


# ---- approval steps of a steps plan --------------------------------------------------------------------

STEP_GATE = "approval:step:2"
HALF = {BLUE: 50, GREEN: 50}


def _step_gated(flow: Flow, on_timeout: str = "rollback") -> tuple[Run, dict[str, Any], dict[str, Any]]:
    """A rollout at 10 % whose steps plan holds the shift to 50 % for approval."""
    _register(
        flow,
        plan={
            "type": "steps",
            "steps": [10, {"approve": {"timeout_seconds": TIMEOUT, "on_timeout": on_timeout}}, 50, 100],
            "bake_seconds": 60,
        },
    )
    run, prepared = flow.rolling(GREEN)
    state = run.advance(prepared)
    assert state["cursor"]["action"] == "shift"
    assert flow.weights() == RAMP0
    return run, prepared, state


def test_a_step_approval_holds_the_next_shift_after_the_bake_passed(flow: Flow) -> None:
    run, prepared, state = _step_gated(flow)
    run.backdate(120)  # the 10 % step baked

    state = run.advance(state)

    assert state["cursor"]["action"] == "approval"
    assert state["cursor"]["wait_seconds"] == TIMEOUT
    assert flow.weights() == RAMP0  # held at 10 %
    record = run.record()
    assert record.approval is not None
    assert record.approval["key"] == STEP_GATE
    (asked,) = [h for h in record.history if h["event"] == "awaiting_approval"]
    assert STEP_GATE in asked["message"]

    flow.command("approve", reason="metrics look fine")
    state = run.advance(_reentered(run, prepared))

    assert flow.weights() == HALF
    record = run.record()
    assert STEP_GATE in record.gates_done
    assert record.approval is None
    assert record.step_index == 1


def test_a_step_approval_timing_out_fails_back_from_that_step(flow: Flow) -> None:
    run, _prepared, state = _step_gated(flow)
    run.backdate(120)
    state = run.advance(state)
    assert state["cursor"]["action"] == "approval"

    with pytest.raises(ApprovalRejected, match=f"approval timed out after {TIMEOUT} s"):
        run.advance(state)  # "Wait for approval" ran out

    assert flow.weights() == RAMP0  # the Roll back state restores, not the tick
    assert run.record().status is Status.ROLLING_BACK


def test_promote_is_the_go_ahead_for_a_step_approval(flow: Flow) -> None:
    run, prepared, state = _step_gated(flow)
    run.backdate(120)
    state = run.advance(state)
    assert state["cursor"]["action"] == "approval"

    flow.command("promote", reason="ship it")
    run.advance(_reentered(run, prepared))

    assert flow.weights() == HALF
    record = run.record()
    assert record.approval is None  # the status no longer shows a pending approval
    assert STEP_GATE in record.gates_done
    (passed,) = [h for h in record.history if h["event"] == "approved"]
    assert passed["message"] == f"promoted by {JANE}: ship it"
