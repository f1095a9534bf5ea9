"""Health-gate verdicts from CloudWatch alarm states and green's target group metrics.

"No data" is never a pass: a missing sample, too few complete metric periods, too few
requests, a missing p99 or unhealthy-host count, or an alarm with INSUFFICIENT_DATA make
the verdict inconclusive, and the rollout only tolerates a bounded number of those before
rolling back.

Metrics are judged over whole periods only (:func:`metric_window`): periods that start at
least the settle time after the shift, so none holds the previous step's traffic, and that
ended at least the publishing lag ago, so CloudWatch has all of their datapoints.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from ecs_canary.spec import HealthSpec, MetricThresholds

ALARM_OK = "OK"
ALARM_ALARM = "ALARM"
ALARM_INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


class Verdict(StrEnum):
    """Outcome of one health check."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _aligned(moment: datetime, period_seconds: int, *, up: bool) -> datetime:
    """``moment`` moved to a multiple of ``period_seconds`` since the epoch, as CloudWatch aligns periods."""
    step = period_seconds * 1_000_000
    micros = (moment - _EPOCH) // _MICROSECOND
    whole = -(-micros // step) if up else micros // step
    return _EPOCH + timedelta(microseconds=whole * step)


def _clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M:%S")


@dataclass(frozen=True)
class MetricWindow:
    """The whole metric periods a verdict may read: ``[start, end)``, ``period_seconds`` each."""

    start: datetime
    end: datetime
    period_seconds: int

    def __post_init__(self) -> None:
        if self.period_seconds < 1:
            raise ValueError(f"period_seconds must be at least 1, got {self.period_seconds}")
        if self.end < self.start:
            raise ValueError(f"the window must not end before it starts ({self.start} .. {self.end})")

    @property
    def periods(self) -> int:
        """Complete periods in the window (0: nothing can be judged yet)."""
        return int((self.end - self.start).total_seconds()) // self.period_seconds

    def period_starts(self) -> tuple[datetime, ...]:
        """Start of every period in the window, oldest first."""
        step = timedelta(seconds=self.period_seconds)
        return tuple(self.start + i * step for i in range(self.periods))

    def describe(self) -> str:
        """``12:01:00-12:04:00 UTC``."""
        return f"{_clock(self.start)}-{_clock(self.end)} UTC"


def metric_window(
    shifted_at: datetime,
    now: datetime,
    metrics: MetricThresholds,
    *,
    propagation_seconds: int = 0,
) -> MetricWindow:
    """The complete periods to judge for the step shifted at ``shifted_at``, seen at ``now``.

    A period counts when it starts at or after ``shifted_at`` plus the settle time (by default
    with ``propagation_seconds`` added: how long clients may keep the old weights, the records'
    TTL with Route53) and ends at or before ``now`` minus the publishing lag. Periods are aligned to
    multiples of the period since the epoch, as ALB stamps its datapoints (at the start of each
    minute) and CloudWatch aligns its answers. An empty window (``periods == 0``) starts where
    the first period will.
    """
    if propagation_seconds < 0:
        raise ValueError(f"propagation_seconds must not be negative, got {propagation_seconds}")
    period = metrics.period_seconds
    earliest = shifted_at + timedelta(seconds=metrics.settle(propagation_seconds))
    latest = now - timedelta(seconds=metrics.lag_seconds)
    start = _aligned(earliest, period, up=True)
    end = max(start, _aligned(latest, period, up=False))
    return MetricWindow(start=start, end=end, period_seconds=period)


@dataclass(frozen=True)
class PeriodMetrics:
    """Green's target group metrics of one period, as CloudWatch returns them (None: no datapoint).

    ALB reports counts only when they are nonzero, so a missing count is 0; a period without a
    ``RequestCount`` datapoint carried no traffic to green (or its data has not arrived).
    """

    start: datetime
    requests: int = 0
    target_5xx: int = 0
    connection_errors: int = 0
    p99_latency_ms: float | None = None
    unhealthy_hosts: float | None = None

    def __post_init__(self) -> None:
        counts = {
            "requests": self.requests,
            "target_5xx": self.target_5xx,
            "connection_errors": self.connection_errors,
        }
        negative = {k: v for k, v in counts.items() if v < 0}
        if negative:
            raise ValueError(f"counts must not be negative: {negative}")


@dataclass(frozen=True)
class MetricSample:
    """Green target group metrics over the judged window.

    Counts are summed over its periods, ``p99_latency_ms`` is the worst period's p99 and
    ``unhealthy_hosts`` the highest UnHealthyHostCount. ``window_periods`` (complete periods in
    the window) and ``periods`` (those with green traffic) are None for a sample that was not
    read period by period.
    """

    requests: int
    errors_5xx: int
    p99_latency_ms: float | None = None
    connection_errors: int = 0
    unhealthy_hosts: int | None = None
    periods: int | None = None
    window_periods: int | None = None
    window: str | None = None
    """The window judged, for messages (``12:01:00-12:04:00 UTC``)."""

    def __post_init__(self) -> None:
        counts = (self.requests, self.errors_5xx, self.connection_errors)
        if any(c < 0 for c in counts):
            raise ValueError(
                f"counts must not be negative: requests={self.requests}, errors_5xx={self.errors_5xx}, "
                f"connection_errors={self.connection_errors}"
            )
        if self.p99_latency_ms is not None and not (
            math.isfinite(self.p99_latency_ms) and self.p99_latency_ms >= 0
        ):
            raise ValueError(
                f"p99_latency_ms must be a finite, non-negative number, got {self.p99_latency_ms}"
            )
        for name in ("unhealthy_hosts", "periods", "window_periods"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")

    @property
    def errors(self) -> int:
        """Requests that failed on green's behalf: target 5xx plus failed connections to its targets."""
        return self.errors_5xx + self.connection_errors

    @property
    def error_percent(self) -> float:
        """Failed requests as a percentage of requests (0 when there were no requests)."""
        return 100.0 * self.errors / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "requests": self.requests,
            "errors_5xx": self.errors_5xx,
            "p99_latency_ms": self.p99_latency_ms,
            "connection_errors": self.connection_errors,
            "unhealthy_hosts": self.unhealthy_hosts,
            "periods": self.periods,
            "window_periods": self.window_periods,
            "window": self.window,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricSample:
        """Inverse of :meth:`to_dict` (keys added later may be missing)."""

        def optional_int(key: str) -> int | None:
            value = data.get(key)
            return None if value is None else int(value)

        p99 = data.get("p99_latency_ms")
        window = data.get("window")
        return cls(
            requests=int(data["requests"]),
            errors_5xx=int(data["errors_5xx"]),
            p99_latency_ms=None if p99 is None else float(p99),
            connection_errors=int(data.get("connection_errors", 0)),
            unhealthy_hosts=optional_int("unhealthy_hosts"),
            periods=optional_int("periods"),
            window_periods=optional_int("window_periods"),
            window=None if window is None else str(window),
        )


def summarise(window: MetricWindow, periods: Iterable[PeriodMetrics]) -> MetricSample:
    """Green's sample over ``window``: only periods that start on one of its period boundaries count.

    A period outside the window (an early or late datapoint, a period CloudWatch aligned
    differently) is left out rather than guessed at.
    """
    starts = set(window.period_starts())
    judged = [p for p in periods if p.start in starts]
    p99s = [p.p99_latency_ms for p in judged if p.p99_latency_ms is not None]
    unhealthy = [p.unhealthy_hosts for p in judged if p.unhealthy_hosts is not None]
    return MetricSample(
        requests=sum(p.requests for p in judged),
        errors_5xx=sum(p.target_5xx for p in judged),
        p99_latency_ms=max(p99s) if p99s else None,
        connection_errors=sum(p.connection_errors for p in judged),
        unhealthy_hosts=math.ceil(max(unhealthy)) if unhealthy else None,
        periods=len({p.start for p in judged if p.requests > 0}),
        window_periods=window.periods,
        window=window.describe(),
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


def _window_shortfall(metrics: MetricThresholds, sample: MetricSample) -> str | None:
    """Why the window holds too few periods to judge, or None when it holds enough."""
    if sample.window_periods is None or sample.periods is None:
        return None
    period = f"{metrics.period_seconds} s"
    if sample.window_periods == 0:
        first = f" (the first starts at {sample.window.partition('-')[0]} UTC)" if sample.window else ""
        return (
            f"no complete {period} metric period yet{first}: a period counts once it starts after the "
            f"shift's settle time and ended lag_seconds ({metrics.lag_seconds} s) ago"
        )
    if sample.periods < metrics.min_periods:
        return (
            f"only {sample.periods} of {sample.window_periods} complete {period} periods "
            f"({sample.window}) have green traffic, need {metrics.min_periods}"
        )
    return None


def _judge_unhealthy_hosts(metrics: MetricThresholds, sample: MetricSample) -> tuple[Verdict, str] | None:
    """Any unhealthy target beyond the allowance fails, however few requests green served."""
    allowed = metrics.max_unhealthy_hosts
    if allowed is None or sample.window_periods == 0:
        return None
    if sample.unhealthy_hosts is None:
        return Verdict.INCONCLUSIVE, "no UnHealthyHostCount data for green's target group"
    if sample.unhealthy_hosts > allowed:
        return (
            Verdict.FAIL,
            f"{sample.unhealthy_hosts} unhealthy target(s) in green's target group > {allowed} allowed "
            "(UnHealthyHostCount)",
        )
    return Verdict.PASS, f"unhealthy targets {sample.unhealthy_hosts} <= {allowed}"


def _judge_metrics(
    metrics: MetricThresholds, sample: MetricSample, fails: list[str], unknowns: list[str], passes: list[str]
) -> None:
    hosts = _judge_unhealthy_hosts(metrics, sample)
    if hosts is not None and hosts[0] is not Verdict.PASS:
        (fails if hosts[0] is Verdict.FAIL else unknowns).append(hosts[1])
    shortfall = _window_shortfall(metrics, sample)
    if shortfall is not None:
        unknowns.append(shortfall)
    if sample.requests < metrics.min_requests:
        unknowns.append(f"only {sample.requests} requests, need {metrics.min_requests}")
    if shortfall is not None or sample.requests < metrics.min_requests:
        return
    if metrics.max_5xx_percent is not None:
        pct, limit = sample.error_percent, metrics.max_5xx_percent
        if sample.connection_errors:
            counted = (
                f"{sample.errors_5xx} target 5xx + {sample.connection_errors} connection errors "
                f"of {sample.requests} requests"
            )
        else:
            counted = f"{sample.errors_5xx} of {sample.requests} requests"
        if pct > limit:
            fails.append(f"5xx {_num(pct)}% > {_num(limit)}% ({counted})")
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
    if hosts is not None and hosts[0] is Verdict.PASS:
        passes.append(hosts[1])
    if sample.periods is not None and sample.window:
        plural = "s" if sample.periods != 1 else ""
        passes.append(f"{sample.requests} requests in {sample.periods} period{plural} ({sample.window})")
    else:
        passes.append(f"{sample.requests} requests")


def judge(health: HealthSpec, alarm_states: Mapping[str, str], sample: MetricSample | None) -> HealthReport:
    """Judge green after a bake.

    ``alarm_states`` maps alarm names to CloudWatch ``StateValue`` strings; an alarm
    absent from it does not exist. A FAIL lists every failing check; otherwise an
    INCONCLUSIVE lists every check that lacked data; a PASS summarises what was checked.
    Unhealthy targets fail whatever the request count; error share and p99 are only judged
    over enough complete periods and requests.
    """
    fails: list[str] = []
    unknowns: list[str] = []
    passes: list[str] = []
    _judge_alarms(health, alarm_states, fails, unknowns, passes)

    metrics = health.metrics
    if metrics is not None:
        if sample is None:
            unknowns.append("no metric data for green")
        else:
            _judge_metrics(metrics, sample, fails, unknowns, passes)

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
