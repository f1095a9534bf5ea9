"""Health-gate verdicts from CloudWatch alarm states and green's target group metrics.

"No data" is never a pass: a missing sample, too few requests, a missing p99 or an
alarm with INSUFFICIENT_DATA make the verdict inconclusive, and the rollout only
tolerates a bounded number of those before rolling back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ecs_canary.spec import HealthSpec

ALARM_OK = "OK"
ALARM_ALARM = "ALARM"
ALARM_INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


class Verdict(StrEnum):
    """Outcome of one health check."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class MetricSample:
    """Green target group metrics summed (or, for p99, taken) over the bake window."""

    requests: int
    errors_5xx: int
    p99_latency_ms: float | None = None

    def __post_init__(self) -> None:
        if self.requests < 0 or self.errors_5xx < 0:
            raise ValueError(
                f"counts must not be negative: requests={self.requests}, errors_5xx={self.errors_5xx}"
            )
        if self.p99_latency_ms is not None and not (
            math.isfinite(self.p99_latency_ms) and self.p99_latency_ms >= 0
        ):
            raise ValueError(
                f"p99_latency_ms must be a finite, non-negative number, got {self.p99_latency_ms}"
            )

    @property
    def error_percent(self) -> float:
        """5xx responses as a percentage of requests (0 when there were no requests)."""
        return 100.0 * self.errors_5xx / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "requests": self.requests,
            "errors_5xx": self.errors_5xx,
            "p99_latency_ms": self.p99_latency_ms,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricSample:
        """Inverse of :meth:`to_dict`."""
        p99 = data.get("p99_latency_ms")
        return cls(
            requests=int(data["requests"]),
            errors_5xx=int(data["errors_5xx"]),
            p99_latency_ms=None if p99 is None else float(p99),
        )


@dataclass(frozen=True)
class HealthReport:
    """A verdict and the human-readable reasons behind it."""

    verdict: Verdict
    reasons: tuple[str, ...]

    def summary(self) -> str:
        """All reasons on one line."""
        return "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form, for Step Functions state and the deployment record."""
        return {"verdict": self.verdict.value, "reasons": list(self.reasons)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HealthReport:
        """Inverse of :meth:`to_dict`."""
        return cls(verdict=Verdict(data["verdict"]), reasons=tuple(str(r) for r in data["reasons"]))


def _num(value: float) -> str:
    """Compact number for messages: at most three decimals, no trailing zeros."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _combine(fails: list[str], unknowns: list[str], passes: list[str]) -> HealthReport:
    if fails:
        return HealthReport(Verdict.FAIL, tuple(fails))
    if unknowns:
        return HealthReport(Verdict.INCONCLUSIVE, tuple(unknowns))
    return HealthReport(Verdict.PASS, ("; ".join(passes),))


def _alarm_verdict(name: str, state: str | None) -> tuple[Verdict, str]:
    """One alarm's say: missing or ALARM fails, OK passes (text = its name), anything else is unknown."""
    if state is None:
        return Verdict.FAIL, f"alarm {name} does not exist"
    if state == ALARM_ALARM:
        return Verdict.FAIL, f"alarm {name} is in ALARM"
    if state == ALARM_OK:
        return Verdict.PASS, name
    if state == ALARM_INSUFFICIENT_DATA:
        return Verdict.INCONCLUSIVE, f"alarm {name} has INSUFFICIENT_DATA"
    return Verdict.INCONCLUSIVE, f"alarm {name} is in unexpected state {state!r}"


def _judge_alarms(
    health: HealthSpec,
    alarm_states: Mapping[str, str],
    fails: list[str],
    unknowns: list[str],
    passes: list[str],
) -> None:
    ok: list[str] = []
    for name in health.alarms:
        verdict, text = _alarm_verdict(name, alarm_states.get(name))
        {Verdict.FAIL: fails, Verdict.INCONCLUSIVE: unknowns, Verdict.PASS: ok}[verdict].append(text)
    if health.alarms and len(ok) == len(health.alarms):
        passes.append(f"alarms OK: {', '.join(ok)}")


def judge(health: HealthSpec, alarm_states: Mapping[str, str], sample: MetricSample | None) -> HealthReport:
    """Judge green after a bake.

    ``alarm_states`` maps alarm names to CloudWatch ``StateValue`` strings; an alarm
    absent from it does not exist. A FAIL lists every failing check; otherwise an
    INCONCLUSIVE lists every check that lacked data; a PASS summarises what was checked.
    """
    fails: list[str] = []
    unknowns: list[str] = []
    passes: list[str] = []
    _judge_alarms(health, alarm_states, fails, unknowns, passes)

    metrics = health.metrics
    if metrics is not None:
        if sample is None:
            unknowns.append("no metric data for green")
        elif sample.requests < metrics.min_requests:
            unknowns.append(f"only {sample.requests} requests, need {metrics.min_requests}")
        else:
            if metrics.max_5xx_percent is not None:
                pct, limit = sample.error_percent, metrics.max_5xx_percent
                if pct > limit:
                    fails.append(
                        f"5xx {_num(pct)}% > {_num(limit)}% "
                        f"({sample.errors_5xx} of {sample.requests} requests)"
                    )
                else:
                    passes.append(f"5xx {_num(pct)}% <= {_num(limit)}%")
            if metrics.max_p99_latency_ms is not None:
                p99, ceiling = sample.p99_latency_ms, metrics.max_p99_latency_ms
                if p99 is None:
                    unknowns.append("no p99 latency data")
                elif p99 > ceiling:
                    fails.append(f"p99 {_num(p99)}ms > {_num(ceiling)}ms")
                else:
                    passes.append(f"p99 {_num(p99)}ms <= {_num(ceiling)}ms")
            passes.append(f"{sample.requests} requests")

    if not health.alarms and metrics is None:
        unknowns.append("the health gate has no alarms or metrics to check")
    return _combine(fails, unknowns, passes)


def preflight(health: HealthSpec, alarm_states: Mapping[str, str]) -> HealthReport:
    """Check before any traffic moves: only alarms count.

    Green has served nothing yet, so its metrics (and alarms without data) cannot be
    held against it; an alarm already in ALARM, or one that does not exist, fails.
    """
    fails: list[str] = []
    notes: list[str] = []
    ok: list[str] = []
    for name in health.alarms:
        state = alarm_states.get(name)
        verdict, text = _alarm_verdict(name, state)
        if verdict is Verdict.INCONCLUSIVE:
            text = f"alarm {name} is {state}, accepted before traffic moves"
        {Verdict.FAIL: fails, Verdict.INCONCLUSIVE: notes, Verdict.PASS: ok}[verdict].append(text)
    if fails:
        return HealthReport(Verdict.FAIL, tuple(fails))
    summary: list[str] = []
    if ok:
        summary.append(f"alarms OK: {', '.join(ok)}")
    summary.extend(notes)
    if not health.alarms:
        summary.append("no alarms configured")
    if health.metrics is not None:
        summary.append("metrics are judged once green receives traffic")
    return HealthReport(Verdict.PASS, ("; ".join(summary),))
