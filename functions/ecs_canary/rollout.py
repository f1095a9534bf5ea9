"""The rollout step machine: given the plan, where the ramp is and the latest health report, what next.

One Lambda invocation per increment judges health, calls :func:`decide`, applies the
decision (writes weights for a shift) and hands :func:`advance_cursor`'s result back
to Step Functions, which waits ``wait_seconds`` and calls again. Keeping the logic
pure makes every branch testable without AWS.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from ecs_canary.errors import GreenUnhealthy, HealthInconclusive
from ecs_canary.health import HealthReport, Verdict
from ecs_canary.plans import Plan
from ecs_canary.spec import HealthSpec

Action = Literal["shift", "recheck", "hold", "promote"]
PREFLIGHT_INDEX = -1


@dataclass(frozen=True)
class Cursor:
    """Progress through a plan, carried in Step Functions state between invocations."""

    step_index: int = PREFLIGHT_INDEX
    """Index into ``plan.steps`` of the step currently baking; -1 before the first shift."""
    inconclusive: int = 0
    """Consecutive inconclusive verdicts at the current step."""
    shifted_at: str | None = None
    """ISO-8601 UTC time of the latest shift."""

    def __post_init__(self) -> None:
        if self.step_index < PREFLIGHT_INDEX:
            raise ValueError(f"step_index must be -1 or more, got {self.step_index}")
        if self.inconclusive < 0:
            raise ValueError(f"inconclusive must not be negative, got {self.inconclusive}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "step_index": self.step_index,
            "inconclusive": self.inconclusive,
            "shifted_at": self.shifted_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Cursor:
        """Inverse of :meth:`to_dict`; missing keys (or no state at all) mean a fresh cursor."""
        if not data:
            return cls()
        shifted_at = data.get("shifted_at")
        return cls(
            step_index=int(data.get("step_index", PREFLIGHT_INDEX)),
            inconclusive=int(data.get("inconclusive", 0)),
            shifted_at=None if shifted_at is None else str(shifted_at),
        )


@dataclass(frozen=True)
class PromoteOrder:
    """An operator's ``promote``: skip the rest of the bake; ``full`` goes to 100 % and promotes."""

    full: bool = False
    skip_analysis: bool = False


@dataclass(frozen=True)
class Decision:
    """What to do next.

    ``shift``: write the weights for ``percent`` (step ``step_index``), then wait (or, with
    ``promote_after``, promote at once: an operator's ``promote --full``).
    ``recheck``: change nothing, judge the same step again after ``wait_seconds``.
    ``hold``: the deployment is paused; green passed, nothing moves, judge again after ``wait_seconds``.
    ``promote``: green has passed the final gate at 100%.
    """

    action: Action
    step_index: int
    percent: int
    wait_seconds: int
    report: HealthReport
    promote_after: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "action": self.action,
            "step_index": self.step_index,
            "percent": self.percent,
            "wait_seconds": self.wait_seconds,
            "report": self.report.to_dict(),
        }


def percent_at(plan: Plan, step_index: int) -> int:
    """Green's planned share at ``step_index`` (0 before the first shift)."""
    return 0 if step_index == PREFLIGHT_INDEX else plan.steps[step_index]


def describe_step(plan: Plan, step_index: int) -> str:
    """Human name of a step, used in error messages."""
    if step_index == PREFLIGHT_INDEX:
        return "preflight (no traffic shifted yet)"
    return f"step {step_index + 1}/{len(plan.steps)} ({plan.steps[step_index]}% to green)"


def decide(
    plan: Plan,
    health: HealthSpec,
    cursor: Cursor,
    report: HealthReport,
    *,
    propagation_seconds: int,
    paused: bool = False,
    promote: PromoteOrder | None = None,
) -> Decision:
    """Next action after judging health at ``cursor``.

    Raises :class:`GreenUnhealthy` on a FAIL and :class:`HealthInconclusive` once
    inconclusive verdicts at one step exceed ``health.max_inconclusive``; both mean
    roll back (paused or not: the gate stays armed). A shift waits
    ``bake_seconds + propagation_seconds`` so the bake only starts counting once the new
    weights have reached clients. Paused, a pass holds; an operator's ``promote`` moves to
    the next step now, ``promote --full`` to 100 % and promotion at once.
    """
    if not PREFLIGHT_INDEX <= cursor.step_index <= plan.last_index:
        raise ValueError(
            f"cursor step_index {cursor.step_index} is outside the plan's {len(plan.steps)} steps"
        )
    if propagation_seconds < 0:
        raise ValueError(f"propagation_seconds must not be negative, got {propagation_seconds}")

    where = describe_step(plan, cursor.step_index)
    if report.verdict is Verdict.FAIL:
        raise GreenUnhealthy(f"green is unhealthy at {where}: {report.summary()}")
    if report.verdict is Verdict.INCONCLUSIVE:
        attempts = cursor.inconclusive + 1
        if attempts > health.max_inconclusive:
            raise HealthInconclusive(
                f"health was inconclusive {attempts} times in a row at {where} "
                f"(max_inconclusive is {health.max_inconclusive}): {report.summary()}"
            )
        return Decision(
            action="recheck",
            step_index=cursor.step_index,
            percent=percent_at(plan, cursor.step_index),
            wait_seconds=health.recheck_seconds,
            report=report,
        )
    if paused:
        return Decision(
            action="hold",
            step_index=cursor.step_index,
            percent=percent_at(plan, cursor.step_index),
            wait_seconds=health.recheck_seconds,
            report=report,
        )
    if cursor.step_index == plan.last_index:
        return Decision(
            action="promote",
            step_index=cursor.step_index,
            percent=plan.steps[-1],
            wait_seconds=0,
            report=report,
        )
    if promote is not None and promote.full:
        return Decision(
            action="shift",
            step_index=plan.last_index,
            percent=plan.steps[-1],
            wait_seconds=0,
            report=report,
            promote_after=True,
        )
    next_index = cursor.step_index + 1
    return Decision(
        action="shift",
        step_index=next_index,
        percent=plan.steps[next_index],
        wait_seconds=plan.bake_seconds + propagation_seconds,
        report=report,
    )


def advance_cursor(cursor: Cursor, decision: Decision, now_iso: str) -> Cursor:
    """The cursor after ``decision`` has been carried out at ``now_iso``."""
    if decision.action == "shift":
        return Cursor(step_index=decision.step_index, inconclusive=0, shifted_at=now_iso)
    if decision.action == "recheck":
        return replace(cursor, inconclusive=cursor.inconclusive + 1)
    return replace(cursor, inconclusive=0)


def remaining_bake(bake_until: str | None, now: datetime, plan: Plan) -> int:
    """Whole seconds of the current step's bake still to wait (0 when over or unknown).

    Used only when a rollout is re-entered (after resume or promote), never on the normal path,
    whose Bake wait is the timer; capped at the plan's bake.
    """
    if not bake_until:
        return 0
    end = datetime.fromisoformat(bake_until.replace("Z", "+00:00"))
    return max(0, min(plan.bake_seconds, math.ceil((end - now).total_seconds())))
