"""The health gate's metric window: only whole periods of the judged step's own traffic count.

Tables of metric timelines: when the shift happened, when the check runs, what CloudWatch holds
per period (late, partial, empty periods), and what the gate makes of it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ecs_canary.health import (
    HealthReport,
    MetricSample,
    MetricWindow,
    PeriodMetrics,
    Verdict,
    judge,
    metric_window,
    summarise,
)
from ecs_canary.spec import (
    METRIC_LAG_SECONDS,
    METRIC_PERIOD_SECONDS,
    METRIC_SETTLE_SECONDS,
    MIN_METRIC_PERIODS,
    HealthSpec,
    MetricThresholds,
)
from hypothesis import given, settings
from hypothesis import strategies as st

NOON = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def at(clock: str) -> datetime:
    """``"12:03:10"`` (or ``"12:03:10.5"``) on the test day, UTC."""
    parsed = datetime.strptime(clock, "%H:%M:%S.%f" if "." in clock else "%H:%M:%S")
    return NOON.replace(
        hour=parsed.hour, minute=parsed.minute, second=parsed.second, microsecond=parsed.microsecond
    )


def gate(**fields: Any) -> MetricThresholds:
    return MetricThresholds(**{"max_5xx_percent": 5, "min_requests": 20, **fields})


def period(clock: str, requests: int = 0, **fields: Any) -> PeriodMetrics:
    return PeriodMetrics(start=at(clock), requests=requests, **{"unhealthy_hosts": 0.0, **fields})


def test_defaults_are_the_documented_aws_values() -> None:
    defaults = gate()
    assert (
        (defaults.period_seconds, defaults.settle(), defaults.lag_seconds, defaults.min_periods)
        == (
            METRIC_PERIOD_SECONDS,
            METRIC_SETTLE_SECONDS,
            METRIC_LAG_SECONDS,
            MIN_METRIC_PERIODS,
        )
        == (60, 30, 120, 1)
    )
    assert defaults.max_unhealthy_hosts == 0
    # Unset, the settle time grows by the router's propagation (Route53's TTL); set, it is used as is.
    assert (defaults.settle(60), gate(settle_seconds=10).settle(60)) == (90, 10)
    # The default 300 s bake sees min_periods complete periods wherever the shift falls.
    assert defaults.earliest_verdict_seconds == 210
    assert defaults.sure_verdict_seconds == 270


# ---- which periods a check may read -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("shifted", "now", "fields", "propagation", "window"),
    [
        pytest.param("12:00:00", "12:04:10", {}, 0, ("12:01:00", "12:02:00", 1), id="shift-on-a-boundary"),
        pytest.param("12:00:45", "12:05:00", {}, 0, ("12:02:00", "12:03:00", 1), id="shift-off-a-boundary"),
        pytest.param(
            "12:00:30", "12:04:00", {}, 0, ("12:01:00", "12:02:00", 1), id="settle-ends-on-a-boundary"
        ),
        pytest.param(
            "12:00:00", "12:03:00", {"settle_seconds": 0}, 0, ("12:00:00", "12:01:00", 1), id="no-settle"
        ),
        pytest.param(
            "12:00:00.000001",
            "12:03:00",
            {"settle_seconds": 0},
            0,
            ("12:01:00", "12:01:00", 0),
            id="just-after",
        ),
        pytest.param("12:00:00", "12:03:59", {}, 0, ("12:01:00", "12:01:00", 0), id="last-period-too-recent"),
        pytest.param("12:00:00", "12:00:05", {}, 0, ("12:01:00", "12:01:00", 0), id="right-after-the-shift"),
        pytest.param("12:00:00", "12:10:00", {}, 0, ("12:01:00", "12:08:00", 7), id="long-bake"),
        pytest.param("12:00:00", "12:10:00", {}, 60, ("12:02:00", "12:08:00", 6), id="route53-ttl"),
        pytest.param(
            "12:00:00",
            "12:10:00",
            {"settle_seconds": 0},
            60,
            ("12:00:00", "12:08:00", 8),
            id="set-settle-is-exact",
        ),
        pytest.param(
            "12:00:00",
            "12:10:00",
            {"period_seconds": 300},
            0,
            ("12:05:00", "12:05:00", 0),
            id="five-minute-periods",
        ),
        pytest.param(
            "12:00:00.4",
            "12:00:03.2",
            {"period_seconds": 1, "settle_seconds": 0, "lag_seconds": 0},
            0,
            ("12:00:01", "12:00:03", 2),
            id="emulator-seconds",
        ),
    ],
)
def test_window(
    shifted: str, now: str, fields: dict[str, Any], propagation: int, window: tuple[str, str, int]
) -> None:
    found = metric_window(at(shifted), at(now), gate(**fields), propagation_seconds=propagation)
    assert (found.start, found.end, found.periods) == (at(window[0]), at(window[1]), window[2])


def test_window_rejects_negative_propagation() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        metric_window(NOON, NOON, gate(), propagation_seconds=-1)


@pytest.mark.parametrize(
    ("start", "end", "period", "message"),
    [
        ("12:01:00", "12:00:00", 60, "must not end before it starts"),
        ("12:00:00", "12:01:00", 0, "at least 1"),
    ],
)
def test_window_rejects_impossible_shapes(start: str, end: str, period: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MetricWindow(at(start), at(end), period)


@settings(deadline=None)  # long windows of 1 s periods are many periods; no wall-clock bound here
@given(
    shift=st.integers(min_value=0, max_value=10**9),
    elapsed=st.integers(min_value=0, max_value=4 * 3600),
    settle=st.integers(min_value=0, max_value=600),
    lag=st.integers(min_value=0, max_value=600),
    period=st.sampled_from([1, 5, 10, 20, 30, 60, 120, 300]),
    min_periods=st.integers(min_value=1, max_value=5),
)
def test_window_holds_only_whole_periods_between_settle_and_lag(
    *, shift: int, elapsed: int, settle: int, lag: int, period: int, min_periods: int
) -> None:
    metrics = gate(settle_seconds=settle, lag_seconds=lag, period_seconds=period, min_periods=min_periods)
    shifted = NOON + timedelta(milliseconds=shift)
    now = shifted + timedelta(seconds=elapsed)
    window = metric_window(shifted, now, metrics)

    for start in window.period_starts():
        assert start >= shifted + timedelta(seconds=settle)
        assert start + timedelta(seconds=period) <= now - timedelta(seconds=lag)
        assert (start - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() % period == 0
    # No whole period between settle and lag is left out ...
    assert window.start - (shifted + timedelta(seconds=settle)) < timedelta(seconds=period)
    if window.periods:
        assert (now - timedelta(seconds=lag)) - window.end < timedelta(seconds=period)
    # ... so a bake of sure_verdict_seconds always holds min_periods of them, and one shorter than
    # earliest_verdict_seconds never does.
    if elapsed >= metrics.sure_verdict_seconds:
        assert window.periods >= min_periods
    if elapsed < metrics.earliest_verdict_seconds:
        assert window.periods < min_periods


# ---- what the gate makes of a timeline -----------------------------------------------------------------

TIMELINES: list[Any] = [
    pytest.param(
        gate(),
        "12:00:00",
        "12:04:10",
        [period("12:01:00", 600)],
        Verdict.PASS,
        ("5xx 0% <= 5%; unhealthy targets 0 <= 0; 600 requests in 1 period (12:01:00-12:02:00 UTC)",),
        id="one-whole-period",
    ),
    pytest.param(
        gate(),
        "12:00:00",
        "12:03:30",
        [period("12:00:00", 500, target_5xx=400), period("12:01:00", 600, target_5xx=1)],
        Verdict.INCONCLUSIVE,
        (
            "no complete 60 s metric period yet (the first starts at 12:01:00 UTC): a period counts once it "
            "starts after the shift's settle time and ended lag_seconds (120 s) ago",
            "only 0 requests, need 20",
        ),
        id="late-data-is-not-judged-yet",
    ),
    pytest.param(
        gate(),
        "12:00:20",
        "12:05:00",
        [
            period("12:00:00", 900, target_5xx=900),  # the previous step's (and the shift's) minute
            period("12:01:00", 300, target_5xx=1),
            period("12:02:00", 300),
            period("12:03:00", 50, target_5xx=50),  # still arriving: too recent to judge
        ],
        Verdict.PASS,
        ("5xx 0.167% <= 5%; unhealthy targets 0 <= 0; 600 requests in 2 periods (12:01:00-12:03:00 UTC)",),
        id="partial-periods-on-both-ends-are-left-out",
    ),
    pytest.param(
        gate(),
        "12:00:00",
        "12:04:10",
        [period("12:01:00")],
        Verdict.INCONCLUSIVE,
        (
            "only 0 of 1 complete 60 s periods (12:01:00-12:02:00 UTC) have green traffic, need 1",
            "only 0 requests, need 20",
        ),
        id="empty-period",
    ),
    pytest.param(
        gate(),
        "12:00:00",
        "12:04:10",
        [],
        Verdict.INCONCLUSIVE,
        (
            "no UnHealthyHostCount data for green's target group",
            "only 0 of 1 complete 60 s periods (12:01:00-12:02:00 UTC) have green traffic, need 1",
            "only 0 requests, need 20",
        ),
        id="nothing-published",
    ),
    pytest.param(
        gate(min_periods=3),
        "12:00:00",
        "12:06:10",
        [period("12:01:00", 400), period("12:02:00"), period("12:03:00", 400)],
        Verdict.INCONCLUSIVE,
        ("only 2 of 3 complete 60 s periods (12:01:00-12:04:00 UTC) have green traffic, need 3",),
        id="empty-period-among-full-ones",
    ),
    pytest.param(
        gate(min_periods=3),
        "12:00:00",
        "12:05:10",
        [period("12:01:00", 400), period("12:02:00", 400)],
        Verdict.INCONCLUSIVE,
        ("only 2 of 2 complete 60 s periods (12:01:00-12:03:00 UTC) have green traffic, need 3",),
        id="too-few-periods",
    ),
    pytest.param(
        gate(min_periods=2),
        "12:00:00",
        "12:05:10",
        [period("12:01:00", 400), period("12:02:00", 400)],
        Verdict.PASS,
        ("5xx 0% <= 5%; unhealthy targets 0 <= 0; 800 requests in 2 periods (12:01:00-12:03:00 UTC)",),
        id="enough-periods",
    ),
    pytest.param(
        gate(),
        "12:00:00",
        "12:04:10",
        [period("12:01:00", 5, unhealthy_hosts=1.0)],
        Verdict.FAIL,
        ("1 unhealthy target(s) in green's target group > 0 allowed (UnHealthyHostCount)",),
        id="an-unhealthy-host-fails-however-few-requests",
    ),
    pytest.param(
        gate(max_unhealthy_hosts=1),
        "12:00:00",
        "12:05:10",
        [period("12:01:00", 300, unhealthy_hosts=1.0), period("12:02:00", 300, unhealthy_hosts=0.0)],
        Verdict.PASS,
        ("5xx 0% <= 5%; unhealthy targets 1 <= 1; 600 requests in 2 periods (12:01:00-12:03:00 UTC)",),
        id="unhealthy-within-allowance",
    ),
    pytest.param(
        gate(max_unhealthy_hosts=None),
        "12:00:00",
        "12:04:10",
        [period("12:01:00", 300, unhealthy_hosts=None)],
        Verdict.PASS,
        ("5xx 0% <= 5%; 300 requests in 1 period (12:01:00-12:02:00 UTC)",),
        id="unhealthy-check-off",
    ),
    pytest.param(
        gate(),
        "12:00:00",
        "12:04:10",
        [period("12:01:00", 100, connection_errors=10)],
        Verdict.FAIL,
        ("5xx 10% > 5% (0 target 5xx + 10 connection errors of 100 requests)",),
        id="connection-errors-count-as-failures",
    ),
    pytest.param(
        gate(),
        "12:00:00",
        "12:05:10",
        [period("12:01:00", 100, target_5xx=6), period("12:02:00", 100, connection_errors=6)],
        Verdict.FAIL,
        ("5xx 6% > 5% (6 target 5xx + 6 connection errors of 200 requests)",),
        id="target-5xx-and-connection-errors-add-up",
    ),
    pytest.param(
        gate(max_p99_latency_ms=500),
        "12:00:00",
        "12:05:10",
        [period("12:01:00", 300, p99_latency_ms=120.0), period("12:02:00", 300, p99_latency_ms=800.0)],
        Verdict.FAIL,
        ("p99 800ms > 500ms",),
        id="p99-of-the-worst-period",
    ),
    pytest.param(
        gate(period_seconds=1, settle_seconds=0, lag_seconds=0),
        "12:00:00.4",
        "12:00:03.2",
        [period("12:00:00", 90, target_5xx=90), period("12:00:01", 30), period("12:00:02", 30)],
        Verdict.PASS,
        ("5xx 0% <= 5%; unhealthy targets 0 <= 0; 60 requests in 2 periods (12:00:01-12:00:03 UTC)",),
        id="emulator-seconds",
    ),
]


@pytest.mark.parametrize(("metrics", "shifted", "now", "periods", "verdict", "reasons"), TIMELINES)
def test_timeline(
    *,
    metrics: MetricThresholds,
    shifted: str,
    now: str,
    periods: list[PeriodMetrics],
    verdict: Verdict,
    reasons: tuple[str, ...],
) -> None:
    window = metric_window(at(shifted), at(now), metrics)
    sample = summarise(window, periods)
    assert judge(HealthSpec(metrics=metrics), {}, sample) == HealthReport(verdict, reasons)


def test_summarise_keeps_only_the_window_and_takes_the_worst_values() -> None:
    window = MetricWindow(at("12:01:00"), at("12:04:00"), 60)
    sample = summarise(
        window,
        [
            period("12:00:00", 1000, target_5xx=1000, unhealthy_hosts=9.0),  # before: left out
            period("12:01:00", 100, target_5xx=2, p99_latency_ms=90.0, unhealthy_hosts=0.0),
            period("12:02:00", 0, unhealthy_hosts=1.0),  # no traffic, but a target was unhealthy
            period("12:03:00", 50, connection_errors=4, p99_latency_ms=140.0, unhealthy_hosts=None),
            period("12:03:30", 10_000),  # not on a period boundary: left out
            period("12:04:00", 1000, target_5xx=1000),  # after: left out
        ],
    )
    assert sample == MetricSample(
        requests=150,
        errors_5xx=2,
        p99_latency_ms=140.0,
        connection_errors=4,
        unhealthy_hosts=1,
        periods=2,
        window_periods=3,
        window="12:01:00-12:04:00 UTC",
    )
    assert sample.errors == 6
    assert sample.error_percent == pytest.approx(4.0)


def test_windowed_sample_round_trips() -> None:
    window = MetricWindow(at("12:01:00"), at("12:02:00"), 60)
    sample = summarise(window, [period("12:01:00", 10, connection_errors=1, p99_latency_ms=12.5)])
    assert MetricSample.from_dict(sample.to_dict()) == sample
    # Records written before these fields existed still read.
    assert MetricSample.from_dict({"requests": 3, "errors_5xx": 1}) == MetricSample(3, 1)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"requests": -1}, "must not be negative"),
        ({"connection_errors": -1}, "must not be negative"),
    ],
)
def test_period_metrics_reject_negative_counts(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PeriodMetrics(start=NOON, **fields)
