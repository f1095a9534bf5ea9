"""The rollout step machine: every branch of decide() and the cursor it drives."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from ecs_canary.errors import GreenUnhealthy, HealthInconclusive
from ecs_canary.health import HealthReport, Verdict
from ecs_canary.plans import Plan
from ecs_canary.rollout import (
    Cursor,
    Decision,
    PromoteOrder,
    advance_cursor,
    decide,
    describe_step,
    percent_at,
    remaining_bake,
)
from ecs_canary.spec import HealthSpec
from hypothesis import given
from hypothesis import strategies as st

PLAN = Plan(steps=(5, 25, 50, 100), bake_seconds=300)
HEALTH = HealthSpec(alarms=("a",), recheck_seconds=30, max_inconclusive=2)
PASS = HealthReport(Verdict.PASS, ("alarms OK: a",))
UNSURE = HealthReport(Verdict.INCONCLUSIVE, ("alarm a has INSUFFICIENT_DATA",))
FAIL = HealthReport(Verdict.FAIL, ("alarm a is in ALARM",))
NOW = "2024-05-01T12:00:00Z"


@pytest.mark.parametrize(
    ("plan", "cursor", "report", "expected"),
    [
        # Preflight passed: first shift, bake plus propagation.
        (PLAN, Cursor(), PASS, Decision("shift", 0, 5, 360, PASS)),
        (PLAN, Cursor(-1, inconclusive=2), PASS, Decision("shift", 0, 5, 360, PASS)),
        # Mid-ramp pass: next step.
        (PLAN, Cursor(0, 0, NOW), PASS, Decision("shift", 1, 25, 360, PASS)),
        (PLAN, Cursor(2, 1, NOW), PASS, Decision("shift", 3, 100, 360, PASS)),
        # Final gate passed at 100%: promote without waiting.
        (PLAN, Cursor(3, 0, NOW), PASS, Decision("promote", 3, 100, 0, PASS)),
        (Plan((100,), 300), Cursor(), PASS, Decision("shift", 0, 100, 360, PASS)),
        (Plan((100,), 300), Cursor(0, 0, NOW), PASS, Decision("promote", 0, 100, 0, PASS)),
        (Plan((10, 100), 0), Cursor(), PASS, Decision("shift", 0, 10, 60, PASS)),
        # Inconclusive within budget: recheck the same step.
        (PLAN, Cursor(), UNSURE, Decision("recheck", -1, 0, 30, UNSURE)),
        (PLAN, Cursor(1, 0, NOW), UNSURE, Decision("recheck", 1, 25, 30, UNSURE)),
        (PLAN, Cursor(1, 1, NOW), UNSURE, Decision("recheck", 1, 25, 30, UNSURE)),
        (PLAN, Cursor(3, 1, NOW), UNSURE, Decision("recheck", 3, 100, 30, UNSURE)),
    ],
)
def test_decide(plan: Plan, cursor: Cursor, report: HealthReport, expected: Decision) -> None:
    assert decide(plan, HEALTH, cursor, report, propagation_seconds=60) == expected


@pytest.mark.parametrize(
    ("cursor", "where"),
    [
        (Cursor(), "preflight (no traffic shifted yet)"),
        (Cursor(0, 0, NOW), "step 1/4 (5% to green)"),
        (Cursor(2, 1, NOW), "step 3/4 (50% to green)"),
        (Cursor(3, 2, NOW), "step 4/4 (100% to green)"),
    ],
)
def test_fail_raises_green_unhealthy_naming_the_step_and_reasons(cursor: Cursor, where: str) -> None:
    with pytest.raises(GreenUnhealthy) as info:
        decide(PLAN, HEALTH, cursor, FAIL, propagation_seconds=60)
    assert str(info.value) == f"green is unhealthy at {where}: alarm a is in ALARM"


@pytest.mark.parametrize(
    ("cursor", "where"),
    [
        (Cursor(-1, 2), "preflight (no traffic shifted yet)"),
        (Cursor(1, 2, NOW), "step 2/4 (25% to green)"),
        (Cursor(3, 2, NOW), "step 4/4 (100% to green)"),
        (Cursor(3, 7, NOW), "step 4/4 (100% to green)"),
    ],
)
def test_too_many_inconclusive_verdicts_raise(cursor: Cursor, where: str) -> None:
    with pytest.raises(HealthInconclusive) as info:
        decide(PLAN, HEALTH, cursor, UNSURE, propagation_seconds=60)
    message = str(info.value)
    assert f"at {where}" in message
    assert "max_inconclusive is 2" in message
    assert message.endswith("alarm a has INSUFFICIENT_DATA")


def test_zero_tolerance_raises_on_the_first_inconclusive_verdict() -> None:
    strict = HealthSpec(alarms=("a",), max_inconclusive=0)
    with pytest.raises(HealthInconclusive, match="inconclusive 1 times in a row"):
        decide(PLAN, strict, Cursor(0, 0, NOW), UNSURE, propagation_seconds=0)


@pytest.mark.parametrize(
    ("cursor", "propagation", "fragment"),
    [
        (Cursor(4, 0, NOW), 0, "outside the plan's 4 steps"),
        (Cursor(10, 0, NOW), 0, "outside the plan's 4 steps"),
        (Cursor(), -1, "propagation_seconds must not be negative"),
    ],
)
def test_decide_rejects_impossible_input(cursor: Cursor, propagation: int, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        decide(PLAN, HEALTH, cursor, PASS, propagation_seconds=propagation)


@pytest.mark.parametrize(
    ("cursor", "decision", "expected"),
    [
        (Cursor(), Decision("shift", 0, 5, 360, PASS), Cursor(0, 0, NOW)),
        (Cursor(0, 2, "earlier"), Decision("shift", 1, 25, 360, PASS), Cursor(1, 0, NOW)),
        (Cursor(), Decision("recheck", -1, 0, 30, UNSURE), Cursor(-1, 1, None)),
        (Cursor(1, 1, "earlier"), Decision("recheck", 1, 25, 30, UNSURE), Cursor(1, 2, "earlier")),
        (Cursor(3, 1, "earlier"), Decision("promote", 3, 100, 0, PASS), Cursor(3, 0, "earlier")),
    ],
)
def test_advance_cursor(cursor: Cursor, decision: Decision, expected: Cursor) -> None:
    assert advance_cursor(cursor, decision, NOW) == expected


@pytest.mark.parametrize(
    "cursor", [Cursor(), Cursor(0, 0, NOW), Cursor(3, 2, "2024-05-01T12:34:56.789000+00:00")]
)
def test_cursor_dict_round_trip(cursor: Cursor) -> None:
    data = json.loads(json.dumps(cursor.to_dict()))
    assert set(data) == {"step_index", "inconclusive", "shifted_at"}
    assert Cursor.from_dict(data) == cursor


@pytest.mark.parametrize("data", [None, {}, {"step_index": -1}])
def test_cursor_from_empty_state_is_fresh(data: dict[str, int] | None) -> None:
    assert Cursor.from_dict(data) == Cursor(step_index=-1, inconclusive=0, shifted_at=None)


@pytest.mark.parametrize(
    ("step_index", "inconclusive", "fragment"),
    [(-2, 0, "step_index must be -1 or more"), (0, -1, "inconclusive must not be negative")],
)
def test_cursor_rejects_impossible_values(step_index: int, inconclusive: int, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        Cursor(step_index, inconclusive)


def test_decision_to_dict_is_json_friendly() -> None:
    decision = Decision("shift", 1, 25, 360, PASS)
    assert json.loads(json.dumps(decision.to_dict())) == {
        "action": "shift",
        "step_index": 1,
        "percent": 25,
        "wait_seconds": 360,
        "report": {"verdict": "pass", "reasons": ["alarms OK: a"]},
    }


def test_percent_and_step_names() -> None:
    assert percent_at(PLAN, -1) == 0
    assert percent_at(PLAN, 2) == 50
    assert describe_step(PLAN, 0) == "step 1/4 (5% to green)"


def test_a_healthy_rollout_walks_every_step_then_promotes() -> None:
    cursor, actions, waited = Cursor(), [], 0
    while True:
        decision = decide(PLAN, HEALTH, cursor, PASS, propagation_seconds=60)
        actions.append((decision.action, decision.percent))
        waited += decision.wait_seconds
        if decision.action == "promote":
            break
        cursor = advance_cursor(cursor, decision, NOW)
    assert actions == [("shift", 5), ("shift", 25), ("shift", 50), ("shift", 100), ("promote", 100)]
    assert waited == 4 * 360


plans = st.lists(st.integers(min_value=1, max_value=99), unique=True, max_size=10).map(
    lambda s: Plan(steps=(*sorted(s), 100), bake_seconds=60)
)
verdict_runs = st.lists(st.sampled_from([Verdict.PASS, Verdict.INCONCLUSIVE]), max_size=200)


@given(plan=plans, verdicts=verdict_runs, budget=st.integers(min_value=0, max_value=5))
def test_machine_invariants(plan: Plan, verdicts: list[Verdict], budget: int) -> None:
    health = HealthSpec(alarms=("a",), recheck_seconds=10, max_inconclusive=budget)
    cursor = Cursor()
    percents_shifted: list[int] = []
    for verdict in verdicts:
        report = PASS if verdict is Verdict.PASS else UNSURE
        try:
            decision = decide(plan, health, cursor, report, propagation_seconds=5)
        except HealthInconclusive:
            assert verdict is Verdict.INCONCLUSIVE
            assert cursor.inconclusive == budget
            return
        if decision.action == "promote":
            assert cursor.step_index == plan.last_index
            assert percents_shifted == list(plan.steps)
            return
        if decision.action == "shift":
            assert decision.step_index == cursor.step_index + 1
            assert decision.wait_seconds == 65
            percents_shifted.append(decision.percent)
        else:
            assert decision.step_index == cursor.step_index
            assert decision.wait_seconds == 10
        cursor = advance_cursor(cursor, decision, NOW)
        assert 0 <= cursor.inconclusive <= budget
    assert percents_shifted == list(plan.steps[: len(percents_shifted)])


# ---- paused and operator orders ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cursor", "expected"),
    [
        # A pass while paused holds where it is and looks again after recheck_seconds.
        (Cursor(), Decision("hold", -1, 0, 30, PASS)),
        (Cursor(1, 0, NOW), Decision("hold", 1, 25, 30, PASS)),
        # Even the final gate holds instead of promoting.
        (Cursor(3, 0, NOW), Decision("hold", 3, 100, 30, PASS)),
    ],
)
def test_paused_holds_on_a_pass(cursor: Cursor, expected: Decision) -> None:
    assert decide(PLAN, HEALTH, cursor, PASS, propagation_seconds=60, paused=True) == expected


def test_paused_keeps_the_gate_armed() -> None:
    with pytest.raises(GreenUnhealthy, match="step 2/4"):
        decide(PLAN, HEALTH, Cursor(1, 0, NOW), FAIL, propagation_seconds=60, paused=True)
    # Inconclusive verdicts still count (and still run out) while paused.
    assert decide(PLAN, HEALTH, Cursor(1, 0, NOW), UNSURE, propagation_seconds=60, paused=True) == Decision(
        "recheck", 1, 25, 30, UNSURE
    )
    with pytest.raises(HealthInconclusive):
        decide(PLAN, HEALTH, Cursor(1, 2, NOW), UNSURE, propagation_seconds=60, paused=True)


@pytest.mark.parametrize("order", [PromoteOrder(), PromoteOrder(full=True), PromoteOrder(True, True)])
def test_paused_wins_over_a_promote_order(order: PromoteOrder) -> None:
    decision = decide(
        PLAN, HEALTH, Cursor(0, 0, NOW), PASS, propagation_seconds=60, paused=True, promote=order
    )
    assert decision == Decision("hold", 0, 5, 30, PASS)


@pytest.mark.parametrize(
    ("cursor", "order", "expected"),
    [
        # promote: the next step now (the rest of the current bake is skipped by the caller).
        (Cursor(), PromoteOrder(), Decision("shift", 0, 5, 360, PASS)),
        (Cursor(1, 0, NOW), PromoteOrder(), Decision("shift", 2, 50, 360, PASS)),
        (Cursor(2, 0, NOW), PromoteOrder(skip_analysis=True), Decision("shift", 3, 100, 360, PASS)),
        # promote --full: straight to 100 % and promotion at once, whatever step.
        (Cursor(), PromoteOrder(full=True), Decision("shift", 3, 100, 0, PASS, promote_after=True)),
        (Cursor(0, 0, NOW), PromoteOrder(full=True), Decision("shift", 3, 100, 0, PASS, promote_after=True)),
        (Cursor(2, 1, NOW), PromoteOrder(True, True), Decision("shift", 3, 100, 0, PASS, promote_after=True)),
        # At the last step there is nothing to shift: promote.
        (Cursor(3, 0, NOW), PromoteOrder(), Decision("promote", 3, 100, 0, PASS)),
        (Cursor(3, 0, NOW), PromoteOrder(full=True), Decision("promote", 3, 100, 0, PASS)),
    ],
)
def test_promote_orders(cursor: Cursor, order: PromoteOrder, expected: Decision) -> None:
    assert decide(PLAN, HEALTH, cursor, PASS, propagation_seconds=60, promote=order) == expected


def test_promote_full_of_a_one_step_plan_at_preflight() -> None:
    decision = decide(
        Plan((100,), 300), HEALTH, Cursor(), PASS, propagation_seconds=60, promote=PromoteOrder(True)
    )
    assert decision == Decision("shift", 0, 100, 0, PASS, promote_after=True)


@pytest.mark.parametrize("order", [PromoteOrder(), PromoteOrder(full=True)])
def test_a_promote_order_does_not_override_the_verdict(order: PromoteOrder) -> None:
    """Without skip_analysis the caller judges as usual: a FAIL still fails, doubt still rechecks."""
    with pytest.raises(GreenUnhealthy):
        decide(PLAN, HEALTH, Cursor(1, 0, NOW), FAIL, propagation_seconds=60, promote=order)
    recheck = decide(PLAN, HEALTH, Cursor(1, 0, NOW), UNSURE, propagation_seconds=60, promote=order)
    assert recheck == Decision("recheck", 1, 25, 30, UNSURE)


# ---- the rest of a bake, for a rollout re-entered after resume or promote ---------------------------

CLOCK = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def _at(seconds: float) -> str:
    return (CLOCK + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("bake_until", "expected"),
    [
        pytest.param(None, 0, id="no-shift-yet"),
        pytest.param("", 0, id="empty"),
        pytest.param(_at(120), 120, id="two-minutes-left"),
        pytest.param(_at(0.2), 1, id="rounds-up"),
        pytest.param(_at(299.001), 300, id="rounds-up-to-the-plan-bake"),
        pytest.param(_at(0), 0, id="ends-now"),
        pytest.param(_at(-30), 0, id="over"),
        pytest.param(_at(3600), 300, id="capped-at-the-plan-bake"),
        pytest.param("2024-05-01T12:02:00+00:00", 120, id="offset-form"),
    ],
)
def test_remaining_bake(bake_until: str | None, expected: int) -> None:
    assert remaining_bake(bake_until, CLOCK, PLAN) == expected


def test_remaining_bake_of_a_zero_bake_plan() -> None:
    assert remaining_bake(_at(60), CLOCK, Plan((10, 100), 0)) == 0
