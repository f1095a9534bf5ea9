"""Health verdicts: alarms and metrics, where missing data is never a pass."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from ecs_canary.health import HealthReport, MetricSample, Verdict, judge, preflight
from ecs_canary.spec import HealthSpec, MetricThresholds
from hypothesis import given
from hypothesis import strategies as st


def S(requests: int, errors_5xx: int, p99: float | None, **extra: Any) -> MetricSample:
    """A sample whose target group reported no unhealthy targets (the usual case)."""
    return MetricSample(requests, errors_5xx, p99, **{"unhealthy_hosts": 0, **extra})


ALARMS_ONLY = HealthSpec(alarms=("a", "b"))
METRICS_ONLY = HealthSpec(
    metrics=MetricThresholds(max_5xx_percent=1, max_p99_latency_ms=500, min_requests=20)
)
FIVE_XX_ONLY = HealthSpec(metrics=MetricThresholds(max_5xx_percent=1))
P99_ONLY = HealthSpec(metrics=MetricThresholds(max_p99_latency_ms=500))
BOTH = HealthSpec(
    alarms=("a", "b"), metrics=MetricThresholds(max_5xx_percent=1, max_p99_latency_ms=500, min_requests=20)
)

OK = {"a": "OK", "b": "OK"}
GOOD = S(480, 1, 120)


@pytest.mark.parametrize(
    ("health", "states", "sample", "verdict", "reasons"),
    [
        # PASS summarises everything that was checked.
        (ALARMS_ONLY, OK, None, Verdict.PASS, ("alarms OK: a, b",)),
        (ALARMS_ONLY, {**OK, "unrelated": "ALARM"}, None, Verdict.PASS, ("alarms OK: a, b",)),
        (
            BOTH,
            OK,
            GOOD,
            Verdict.PASS,
            (
                "alarms OK: a, b; 5xx 0.208% <= 1%; p99 120ms <= 500ms; unhealthy targets 0 <= 0; "
                "480 requests",
            ),
        ),
        (
            METRICS_ONLY,
            {},
            S(500, 1, 120.5),
            Verdict.PASS,
            ("5xx 0.2% <= 1%; p99 120.5ms <= 500ms; unhealthy targets 0 <= 0; 500 requests",),
        ),
        (
            FIVE_XX_ONLY,
            {},
            S(20, 0, None),
            Verdict.PASS,
            ("5xx 0% <= 1%; unhealthy targets 0 <= 0; 20 requests",),
        ),
        (
            P99_ONLY,
            {},
            S(20, 20, 499.0),
            Verdict.PASS,
            ("p99 499ms <= 500ms; unhealthy targets 0 <= 0; 20 requests",),
        ),
        # Limits are inclusive.
        (
            METRICS_ONLY,
            {},
            S(100, 1, 500),
            Verdict.PASS,
            ("5xx 1% <= 1%; p99 500ms <= 500ms; unhealthy targets 0 <= 0; 100 requests",),
        ),
        # Alarms.
        (ALARMS_ONLY, {"a": "ALARM", "b": "OK"}, None, Verdict.FAIL, ("alarm a is in ALARM",)),
        (ALARMS_ONLY, {"a": "OK"}, None, Verdict.FAIL, ("alarm b does not exist",)),
        (ALARMS_ONLY, {}, None, Verdict.FAIL, ("alarm a does not exist", "alarm b does not exist")),
        (
            ALARMS_ONLY,
            {"a": "INSUFFICIENT_DATA", "b": "OK"},
            None,
            Verdict.INCONCLUSIVE,
            ("alarm a has INSUFFICIENT_DATA",),
        ),
        (
            ALARMS_ONLY,
            {"a": "INSUFFICIENT_DATA", "b": "INSUFFICIENT_DATA"},
            None,
            Verdict.INCONCLUSIVE,
            ("alarm a has INSUFFICIENT_DATA", "alarm b has INSUFFICIENT_DATA"),
        ),
        (
            ALARMS_ONLY,
            {"a": "ok", "b": "OK"},
            None,
            Verdict.INCONCLUSIVE,
            ("alarm a is in unexpected state 'ok'",),
        ),
        # FAIL wins over INCONCLUSIVE and lists only what failed.
        (
            ALARMS_ONLY,
            {"a": "INSUFFICIENT_DATA", "b": "ALARM"},
            None,
            Verdict.FAIL,
            ("alarm b is in ALARM",),
        ),
        # Metrics: no data is never a pass.
        (METRICS_ONLY, {}, None, Verdict.INCONCLUSIVE, ("no metric data for green",)),
        (METRICS_ONLY, {}, S(0, 0, None), Verdict.INCONCLUSIVE, ("only 0 requests, need 20",)),
        (METRICS_ONLY, {}, S(19, 0, 10), Verdict.INCONCLUSIVE, ("only 19 requests, need 20",)),
        (METRICS_ONLY, {}, S(19, 19, 9000), Verdict.INCONCLUSIVE, ("only 19 requests, need 20",)),
        (METRICS_ONLY, {}, S(100, 0, None), Verdict.INCONCLUSIVE, ("no p99 latency data",)),
        (
            METRICS_ONLY,
            {},
            S(100, 2, 100),
            Verdict.FAIL,
            ("5xx 2% > 1% (2 of 100 requests)",),
        ),
        (METRICS_ONLY, {}, S(100, 0, 500.1), Verdict.FAIL, ("p99 500.1ms > 500ms",)),
        (
            METRICS_ONLY,
            {},
            S(300, 100, 750),
            Verdict.FAIL,
            ("5xx 33.333% > 1% (100 of 300 requests)", "p99 750ms > 500ms"),
        ),
        (METRICS_ONLY, {}, S(100, 5, None), Verdict.FAIL, ("5xx 5% > 1% (5 of 100 requests)",)),
        # Alarms and metrics together.
        (
            BOTH,
            {"a": "ALARM", "b": "OK"},
            S(100, 5, 900),
            Verdict.FAIL,
            ("alarm a is in ALARM", "5xx 5% > 1% (5 of 100 requests)", "p99 900ms > 500ms"),
        ),
        (
            BOTH,
            {"a": "INSUFFICIENT_DATA", "b": "OK"},
            None,
            Verdict.INCONCLUSIVE,
            ("alarm a has INSUFFICIENT_DATA", "no metric data for green"),
        ),
        (BOTH, OK, S(3, 0, 10), Verdict.INCONCLUSIVE, ("only 3 requests, need 20",)),
        (BOTH, {"a": "OK"}, GOOD, Verdict.FAIL, ("alarm b does not exist",)),
    ],
)
def test_judge(
    health: HealthSpec,
    states: Mapping[str, str],
    sample: MetricSample | None,
    verdict: Verdict,
    reasons: tuple[str, ...],
) -> None:
    report = judge(health, states, sample)
    assert report == HealthReport(verdict, reasons)


def test_judge_without_anything_configured_is_not_a_pass() -> None:
    unchecked = HealthSpec.model_construct(alarms=(), metrics=None, recheck_seconds=30, max_inconclusive=3)
    report = judge(unchecked, {}, GOOD)
    assert report.verdict is Verdict.INCONCLUSIVE


@pytest.mark.parametrize(
    ("health", "states", "verdict", "reasons"),
    [
        (ALARMS_ONLY, OK, Verdict.PASS, ("alarms OK: a, b",)),
        (
            ALARMS_ONLY,
            {"a": "INSUFFICIENT_DATA", "b": "OK"},
            Verdict.PASS,
            ("alarms OK: b; alarm a is INSUFFICIENT_DATA, accepted before traffic moves",),
        ),
        (ALARMS_ONLY, {"a": "ALARM", "b": "OK"}, Verdict.FAIL, ("alarm a is in ALARM",)),
        (ALARMS_ONLY, {"a": "OK"}, Verdict.FAIL, ("alarm b does not exist",)),
        (
            ALARMS_ONLY,
            {"a": "ALARM", "b": "INSUFFICIENT_DATA"},
            Verdict.FAIL,
            ("alarm a is in ALARM",),
        ),
        (
            METRICS_ONLY,
            {},
            Verdict.PASS,
            ("no alarms configured; metrics are judged once green receives traffic",),
        ),
        (BOTH, OK, Verdict.PASS, ("alarms OK: a, b; metrics are judged once green receives traffic",)),
        (BOTH, {"a": "ALARM"}, Verdict.FAIL, ("alarm a is in ALARM", "alarm b does not exist")),
    ],
)
def test_preflight_counts_only_alarms(
    health: HealthSpec, states: Mapping[str, str], verdict: Verdict, reasons: tuple[str, ...]
) -> None:
    assert preflight(health, states) == HealthReport(verdict, reasons)


@pytest.mark.parametrize(
    ("sample", "percent"),
    [
        (MetricSample(100, 1, None), 1.0),
        (MetricSample(3, 1, None), 100 / 3),
        (MetricSample(0, 0, None), 0.0),
        (MetricSample(10, 10, None), 100.0),
    ],
)
def test_error_percent(sample: MetricSample, percent: float) -> None:
    assert sample.error_percent == pytest.approx(percent)


@pytest.mark.parametrize(
    ("requests", "errors", "p99", "fragment"),
    [
        (-1, 0, None, "must not be negative"),
        (10, -1, None, "must not be negative"),
        (10, 0, -1.0, "finite, non-negative"),
        (10, 0, float("nan"), "finite, non-negative"),
        (10, 0, float("inf"), "finite, non-negative"),
    ],
)
def test_metric_sample_rejects_impossible_values(
    requests: int, errors: int, p99: float | None, fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        MetricSample(requests, errors, p99)


def test_metric_sample_dict_round_trip() -> None:
    for sample in (GOOD, MetricSample(5, 0, None)):
        assert MetricSample.from_dict(json.loads(json.dumps(sample.to_dict()))) == sample


def test_report_dict_round_trip_is_json_friendly() -> None:
    report = HealthReport(Verdict.FAIL, ("alarm a is in ALARM", "p99 900ms > 500ms"))
    data = report.to_dict()
    assert data == {"verdict": "fail", "reasons": ["alarm a is in ALARM", "p99 900ms > 500ms"]}
    assert HealthReport.from_dict(json.loads(json.dumps(data))) == report
    assert report.summary() == "alarm a is in ALARM; p99 900ms > 500ms"


def test_verdict_values_are_lower_case_strings() -> None:
    assert [v.value for v in Verdict] == ["pass", "fail", "inconclusive"]
    assert Verdict("inconclusive") is Verdict.INCONCLUSIVE
    assert f"{Verdict.PASS}" == "pass"


alarm_state = st.sampled_from(["OK", "ALARM", "INSUFFICIENT_DATA", None])
counts = st.integers(min_value=0, max_value=10_000)


@st.composite
def _windowed(draw: st.DrawFn) -> tuple[int | None, int | None, str | None]:
    """(periods with traffic, complete periods, window text), or all None for a sample read in one piece."""
    if draw(st.booleans()):
        return None, None, None
    window_periods = draw(st.integers(min_value=0, max_value=5))
    periods = draw(st.integers(min_value=0, max_value=window_periods))
    return periods, window_periods, "12:00:00-12:05:00 UTC"


@st.composite
def _samples(draw: st.DrawFn) -> MetricSample:
    periods, window_periods, window = draw(_windowed())
    return MetricSample(
        requests=draw(counts),
        errors_5xx=draw(counts),
        p99_latency_ms=draw(st.one_of(st.none(), st.floats(min_value=0, max_value=10_000, allow_nan=False))),
        connection_errors=draw(st.one_of(st.just(0), counts)),
        unhealthy_hosts=draw(st.one_of(st.none(), st.integers(min_value=0, max_value=3))),
        periods=periods,
        window_periods=window_periods,
        window=window,
    )


samples = st.one_of(st.none(), _samples())
five_xx_limits = st.floats(min_value=0, max_value=100)
p99_limits = st.floats(min_value=1, max_value=5_000)
thresholds = st.builds(
    lambda limits, min_requests, min_periods, unhealthy: MetricThresholds(
        max_5xx_percent=limits[0],
        max_p99_latency_ms=limits[1],
        min_requests=min_requests,
        min_periods=min_periods,
        max_unhealthy_hosts=unhealthy,
    ),
    st.one_of(
        st.tuples(five_xx_limits, st.none()),
        st.tuples(st.none(), p99_limits),
        st.tuples(five_xx_limits, p99_limits),
    ),
    st.integers(min_value=1, max_value=500),
    st.integers(min_value=1, max_value=3),
    st.one_of(st.none(), st.integers(min_value=0, max_value=2)),
)


def _metric_oracle(metrics: MetricThresholds, sample: MetricSample | None) -> tuple[bool, bool]:
    """(failed, blind) of the metric checks, restated from the README's rule."""
    if sample is None:
        return False, True
    failed = blind = False
    if metrics.max_unhealthy_hosts is not None and sample.window_periods != 0:
        if sample.unhealthy_hosts is None:
            blind = True
        elif sample.unhealthy_hosts > metrics.max_unhealthy_hosts:
            failed = True
    short = sample.window_periods is not None and (
        sample.window_periods == 0 or (sample.periods or 0) < metrics.min_periods
    )
    if short or sample.requests < metrics.min_requests:
        return failed, True
    errors = sample.errors_5xx + sample.connection_errors
    if metrics.max_5xx_percent is not None and 100.0 * errors / sample.requests > metrics.max_5xx_percent:
        failed = True
    if metrics.max_p99_latency_ms is not None:
        if sample.p99_latency_ms is None:
            blind = True
        elif sample.p99_latency_ms > metrics.max_p99_latency_ms:
            failed = True
    return failed, blind


@given(
    states=st.fixed_dictionaries({"a": alarm_state, "b": alarm_state}),
    metrics=st.one_of(st.none(), thresholds),
    sample=samples,
)
def test_verdict_agrees_with_each_check(
    states: dict[str, str | None], metrics: MetricThresholds | None, sample: MetricSample | None
) -> None:
    health = HealthSpec(alarms=("a", "b"), metrics=metrics)
    present = {name: state for name, state in states.items() if state is not None}
    report = judge(health, present, sample)

    alarm_failed = any(s in (None, "ALARM") for s in states.values())
    alarm_blind = any(s == "INSUFFICIENT_DATA" for s in states.values())
    metric_failed, metric_blind = _metric_oracle(metrics, sample) if metrics is not None else (False, False)

    if alarm_failed or metric_failed:
        assert report.verdict is Verdict.FAIL
    elif alarm_blind or metric_blind:
        assert report.verdict is Verdict.INCONCLUSIVE
    else:
        assert report.verdict is Verdict.PASS
    assert report.reasons
    assert all(reason for reason in report.reasons)


@given(metrics=thresholds, requests=counts)
def test_too_little_traffic_is_never_a_pass(metrics: MetricThresholds, requests: int) -> None:
    health = HealthSpec(metrics=metrics)
    sample = S(requests, 0, 1.0)
    report = judge(health, {}, sample)
    if requests < metrics.min_requests:
        assert report.verdict is Verdict.INCONCLUSIVE
        assert report.reasons == (f"only {requests} requests, need {metrics.min_requests}",)
    assert judge(health, {}, None).verdict is Verdict.INCONCLUSIVE


@given(metrics=thresholds, sample=_samples())
def test_too_few_complete_periods_is_never_a_pass(metrics: MetricThresholds, sample: MetricSample) -> None:
    report = judge(HealthSpec(metrics=metrics), {}, sample)
    if sample.window_periods is not None and (sample.periods or 0) < metrics.min_periods:
        assert report.verdict is not Verdict.PASS


@given(states=st.fixed_dictionaries({"a": alarm_state, "b": alarm_state}))
def test_preflight_fails_exactly_when_an_alarm_fires_or_is_missing(states: dict[str, str | None]) -> None:
    present = {name: state for name, state in states.items() if state is not None}
    report = preflight(ALARMS_ONLY, present)
    should_fail = any(s in (None, "ALARM") for s in states.values())
    assert report.verdict is (Verdict.FAIL if should_fail else Verdict.PASS)
