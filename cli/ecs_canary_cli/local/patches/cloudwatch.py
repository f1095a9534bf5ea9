"""CloudWatch: alarms are evaluated, percentiles are computed."""

from __future__ import annotations

import datetime
import functools
import json
import logging
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from moto.cloudwatch.models import CloudWatchBackend, Statistics, cloudwatch_backends
from moto.cloudwatch.responses import CloudWatchResponse
from moto.core.responses import ActionResult

from ._core import (
    CONFIG,
    _install,
    _iso,
    _put_event,
)

LOG = logging.getLogger(__name__)

# -- CloudWatch -----------------------------------------------------------------------------------

_COMPARISONS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}


def _utc_seconds(moment: Any) -> float:
    if isinstance(moment, datetime.datetime):
        aware = moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)
        return aware.timestamp()
    return float(moment)


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    rank = max(0, math.ceil(pct / 100.0 * len(ordered)) - 1)
    return ordered[min(rank, len(ordered) - 1)]


def _statistic(data: list[Any], statistic: str | None, extended: str | None) -> float | None:
    """One period's value of the alarm's statistic, or None when it has no datapoint."""
    singles = [float(d.value) for d in data if hasattr(d, "value")]
    aggregates = [d for d in data if hasattr(d, "sample_count")]
    if not singles and not aggregates:
        return None
    if extended:
        if not singles or not extended.lower().startswith("p"):
            return None
        return _percentile(singles, float(extended[1:]))
    count = len(singles) + sum(float(a.sample_count) for a in aggregates)
    total = sum(singles) + sum(float(a.sum) for a in aggregates)
    if statistic == "SampleCount":
        return count
    if statistic == "Sum":
        return total
    if statistic == "Minimum":
        return min(singles + [float(a.min) for a in aggregates])
    if statistic == "Maximum":
        return max(singles + [float(a.max) for a in aggregates])
    return total / count if count else None


def _fmt(value: float) -> str:
    return repr(float(value))


EVALUATION_RANGE_EXTRA = 2
"""Periods CloudWatch retrieves beyond EvaluationPeriods (its "evaluation range")."""


def evaluate_alarm(
    alarm: Any, metric_data: Iterable[Any], now: float, period_seconds: float
) -> tuple[str, str, str] | None:
    """(state, reason, reason data) for a single-metric alarm, or None to keep its state.

    ``now`` is the evaluation time (epoch seconds) and ``period_seconds`` the real length of one
    of the alarm's periods; the most recent EvaluationPeriods periods ending at ``now`` count.
    Like CloudWatch, it retrieves a few more periods than that (the evaluation range): when some
    recent periods are missing but the range holds at least DatapointsToAlarm datapoints, the
    most recent of those are evaluated and TreatMissingData does not apply. So a datapoint that
    arrives late, or a sparse metric that only reports failures, still moves the alarm.
    """
    comparison = _COMPARISONS.get(alarm.comparison_operator)
    if comparison is None or not alarm.metric_name or alarm.metric_data_queries:
        return None
    compare, words = comparison
    wanted = {(d.name, d.value) for d in alarm.dimensions}
    points = [
        d
        for d in metric_data
        if d.namespace == alarm.namespace
        and d.name == alarm.metric_name
        and {(x.name, x.value) for x in d.dimensions} == wanted
        and (not alarm.unit or d.unit == alarm.unit)
    ]
    periods = int(alarm.evaluation_periods)
    needed = int(alarm.datapoints_to_alarm or periods)
    values: list[float | None] = []
    stamps: list[float] = []
    for index in range(periods + EVALUATION_RANGE_EXTRA):
        end = now - index * period_seconds
        start = end - period_seconds
        window = [d for d in points if start <= _utc_seconds(d.timestamp) < end]
        values.append(_statistic(window, alarm.statistic, alarm.extended_statistic))
        stamps.append(start)
    threshold = float(alarm.threshold)
    treat = (alarm.treat_missing_data or "missing").lower()
    recent = [(v, s) for v, s in zip(values[:periods], stamps[:periods], strict=True) if v is not None]
    in_range = [(v, s) for v, s in zip(values, stamps, strict=True) if v is not None]
    if len(recent) < periods and len(in_range) >= needed:
        # Some of the last periods are missing but the evaluation range holds enough datapoints:
        # CloudWatch evaluates the most recent ones it retrieved; TreatMissingData does not apply.
        present = in_range[:periods]
        treat = "evaluated"
        missing = 0
    else:
        present = recent
        missing = periods - len(present)
    breaching = [(v, s) for v, s in present if compare(v, threshold)]
    breach_count = len(breaching) + (missing if treat == "breaching" else 0)
    good_count = len(present) - len(breaching) + (missing if treat == "notbreaching" else 0)

    def stamp(seconds: float) -> str:
        return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC).strftime("%d/%m/%y %H:%M:%S")

    listed = ", ".join(f"{_fmt(v)} ({stamp(s)})" for v, s in present)
    data = {
        "version": "1.0",
        "queryDate": datetime.datetime.fromtimestamp(now, tz=datetime.UTC).strftime(
            "%Y-%m-%dT%H:%M:%S.000+0000"
        ),
        "statistic" if not alarm.extended_statistic else "extendedStatistic": alarm.extended_statistic
        or alarm.statistic,
        "period": int(alarm.period),
        "recentDatapoints": [v for v, _ in present],
        "threshold": threshold,
        "evaluatedDatapoints": [
            {
                "timestamp": datetime.datetime.fromtimestamp(s, tz=datetime.UTC).strftime(
                    "%Y-%m-%dT%H:%M:%S.000+0000"
                ),
                "value": v,
            }
            for v, s in present
        ],
    }
    reason_data = json.dumps(data)
    if breach_count >= needed and (present or treat == "breaching"):
        if periods == 1:
            reason = (
                f"Threshold Crossed: 1 datapoint [{listed}] was {words} the threshold ({_fmt(threshold)})."
            )
        else:
            reason = (
                f"Threshold Crossed: {breach_count} out of the last {periods} datapoints [{listed}] "
                f"were {words} "
                f"the threshold ({_fmt(threshold)}) (minimum {needed} datapoint{'s' if needed > 1 else ''} "
                "for OK -> ALARM transition)."
            )
        return "ALARM", reason, reason_data
    if not present:
        if treat == "ignore":
            return None
        if treat == "notbreaching":
            return (
                "OK",
                f"Threshold Crossed: no datapoints were received for {periods} periods and {periods} "
                "missing datapoints were treated as [NonBreaching].",
                reason_data,
            )
        return (
            "INSUFFICIENT_DATA",
            f"Insufficient Data: {periods} datapoint{'s were' if periods > 1 else ' was'} unknown.",
            reason_data,
        )
    if good_count > periods - needed or treat in ("missing", "ignore", "evaluated"):
        count = len(present)
        verb = "was" if count == 1 else "were"
        plural = "datapoint" if count == 1 else "datapoints"
        return (
            "OK",
            f"Threshold Crossed: {count} {plural} [{listed}] {verb} not {words} "
            f"the threshold ({_fmt(threshold)}).",
            reason_data,
        )
    return None


# Serializes state changes: the evaluator's and SetAlarmState's.
_ALARM_LOCK = threading.RLock()


def _state_of(alarm: Any) -> dict[str, Any]:
    """An alarm's current state as a state change event shows it (``state``/``previousState``)."""
    state: dict[str, Any] = {"value": alarm.state_value, "reason": alarm.state_reason}
    if alarm.state_reason_data:
        state["reasonData"] = alarm.state_reason_data
    state["timestamp"] = _iso(alarm.state_updated_timestamp)
    return state


def _configuration(alarm: Any) -> dict[str, Any]:
    """The ``configuration`` of a state change event: the alarm's rule or the metrics it watches."""
    configuration: dict[str, Any] = {"description": alarm.description}
    if alarm.rule:
        configuration["alarmRule"] = alarm.rule
        return configuration
    metrics: list[dict[str, Any]] = []
    for query in alarm.metric_data_queries:
        metric: dict[str, Any] = {"id": query.id, "returnData": query.return_data in (True, "true", None)}
        if query.expression:
            metric["expression"] = query.expression
        if query.metric_stat is not None:
            stat = query.metric_stat
            metric["metricStat"] = {
                "metric": {
                    "namespace": stat.metric.namespace,
                    "name": stat.metric.metric_name,
                    "dimensions": {d.name: d.value for d in stat.metric.dimensions},
                },
                "period": int(stat.period),
                "stat": stat.stat,
            }
        metrics.append(metric)
    if not metrics:
        metrics.append(
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, alarm.alarm_arn)),
                "metricStat": {
                    "metric": {
                        "namespace": alarm.namespace,
                        "name": alarm.metric_name,
                        "dimensions": {d.name: d.value for d in alarm.dimensions},
                    },
                    "period": int(alarm.period),
                    "stat": alarm.extended_statistic or alarm.statistic,
                },
                "returnData": True,
            }
        )
    configuration["metrics"] = metrics
    return configuration


def _publish_state_change(account_id: str, region: str, alarm: Any, previous: dict[str, Any]) -> None:
    """The ``CloudWatch Alarm State Change`` event of a transition from ``previous`` to the alarm's state."""
    _put_event(
        account_id,
        region,
        "aws.cloudwatch",
        "CloudWatch Alarm State Change",
        resources=[alarm.alarm_arn],
        detail={
            "alarmName": alarm.name,
            "state": _state_of(alarm),
            "previousState": previous,
            "configuration": _configuration(alarm),
        },
    )


MetricKey = tuple[str, str, frozenset[tuple[str, str]]]


class _MetricIndex:
    """A backend's datapoints grouped by metric (namespace, name, dimension set), kept up to date as
    moto appends to its list, so that each evaluation reads only its alarm's metric instead of
    every datapoint ever put (which grows without bound)."""

    def __init__(self) -> None:
        self.source: list[Any] | None = None
        self.seen = 0
        self.by_metric: dict[MetricKey, list[Any]] = {}

    def update(self, data: list[Any]) -> None:
        if data is not self.source or len(data) < self.seen:
            self.source, self.seen, self.by_metric = data, 0, {}
        new = data[self.seen :]  # moto may append while this runs: count only what was read
        for datum in new:
            key = (datum.namespace, datum.name, frozenset((d.name, d.value) for d in datum.dimensions))
            self.by_metric.setdefault(key, []).append(datum)
        self.seen += len(new)

    def of(self, alarm: Any) -> list[Any]:
        key = (alarm.namespace, alarm.metric_name, frozenset((d.name, d.value) for d in alarm.dimensions))
        return self.by_metric.get(key, [])


_INDEXES: dict[int, _MetricIndex] = {}


def _evaluate_all_alarms() -> None:

    now = time.time()
    for account_id, regions in list(cloudwatch_backends.items()):
        for region, backend in list(regions.items()):
            index = _INDEXES.setdefault(id(backend), _MetricIndex())
            index.update(backend.metric_data)
            for alarm in list(backend.alarms.values()):
                with _ALARM_LOCK:
                    if time.monotonic() < getattr(alarm, "_emulator_set_until", 0.0):
                        continue  # set by SetAlarmState: kept until its next period
                    try:
                        period = CONFIG.clock.scaled(float(alarm.period or 60))
                        verdict = evaluate_alarm(alarm, index.of(alarm), now, period)
                    except Exception:
                        LOG.exception("evaluating alarm %s", getattr(alarm, "name", "?"))
                        continue
                    if verdict is None or verdict[0] == alarm.state_value:
                        continue
                    previous = _state_of(alarm)
                    alarm.update_state(verdict[1], verdict[2], verdict[0])
                    _publish_state_change(account_id, region, alarm, previous)


def evaluate_cloudwatch_alarms() -> None:
    """AWS: CloudWatch evaluates each metric alarm against its metric every period and moves it
    between OK, ALARM and INSUFFICIENT_DATA (StateReason "Threshold Crossed: ..."), honouring
    EvaluationPeriods, DatapointsToAlarm and TreatMissingData, and publishes a ``CloudWatch Alarm
    State Change`` event on each transition. A new alarm starts INSUFFICIENT_DATA; an updated one
    keeps its state. moto never evaluates alarms and creates them OK.
    """

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def put_metric_alarm(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
            previous = self.alarms.get(name)
            alarm = original(self, name, *args, **kwargs)
            if previous is not None:
                alarm.state_value = previous.state_value
                alarm.state_reason = previous.state_reason
                alarm.state_reason_data = previous.state_reason_data
                alarm.state_updated_timestamp = previous.state_updated_timestamp
            else:
                alarm.state_value = "INSUFFICIENT_DATA"
            return alarm

        return put_metric_alarm

    _install(CloudWatchBackend, "put_metric_alarm", make, "initial-state")
    if CONFIG.alarm_thread is not None and CONFIG.alarm_thread.is_alive():
        return
    stop = CONFIG.alarm_stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                _evaluate_all_alarms()
            except Exception:
                LOG.exception("alarm evaluation failed")
            stop.wait(max(0.05, CONFIG.clock.scaled(CONFIG.alarm_period)))

    CONFIG.alarm_thread = threading.Thread(target=loop, name="cloudwatch-alarms", daemon=True)
    CONFIG.alarm_thread.start()


def publish_set_alarm_state_changes() -> None:
    """AWS: SetAlarmState moves an alarm to the given state until CloudWatch evaluates it again at its
    next period, and a change of state is a transition like any other: it publishes a ``CloudWatch
    Alarm State Change`` event (and none when the state stays the same). moto changes the state but
    publishes nothing, and the emulator's evaluator would undo the change at its next 10 s tick.
    Here the set state holds for one period of the alarm, then evaluation resumes.
    """

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def set_alarm_state(
            self: Any, alarm_name: str, reason: str, reason_data: str, state_value: str
        ) -> Any:
            with _ALARM_LOCK:
                before = self.alarms.get(alarm_name)
                previous = _state_of(before) if before is not None else None
                result = original(self, alarm_name, reason, reason_data, state_value)
                alarm = self.alarms[alarm_name]
                if previous is not None and previous["value"] != alarm.state_value:
                    period = CONFIG.clock.scaled(float(alarm.period or 60))
                    alarm._emulator_set_until = time.monotonic() + period
                    _publish_state_change(self.account_id, self.region_name, alarm, previous)
                return result

        return set_alarm_state

    _install(CloudWatchBackend, "set_alarm_state", make, "state-change-event")


# pNN or pNN.NN, 0 to 100: the percentile statistics CloudWatch accepts.
_PERCENTILE_STAT = re.compile(r"p(?:100(?:\.0{1,2})?|\d{1,2}(?:\.\d{1,2})?)")


def _is_percentile(stat: Any) -> bool:
    return isinstance(stat, str) and _PERCENTILE_STAT.fullmatch(stat) is not None


def percentile_statistics_in_metric_queries() -> None:
    """AWS: GetMetricData with a percentile ``Stat`` (``p99``, ``p99.9``) and GetMetricStatistics
    with ``ExtendedStatistics`` return, for each period, that percentile of the raw values
    published in it (a value sent with ``Values``/``Counts`` counts as often as its count). A
    percentile needs raw values: a period that only has statistic sets (``StatisticValues``) has
    no percentile, so GetMetricData leaves that period out and GetMetricStatistics gives its
    datapoint no ``ExtendedStatistics``. moto computes only Sum, Average, Minimum, Maximum and
    SampleCount, answers None for a percentile and fails to serialize the response.
    """

    def statistic(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def get_statistics_for_type(self: Any, stat: str) -> Any:
            if _is_percentile(stat):
                return _statistic(list(self.metric_data), None, stat)
            return original(self, stat)

        return get_statistics_for_type

    def metric_data(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def get_metric_data(
            self: Any,
            queries: list[dict[str, Any]],
            start_time: datetime.datetime,
            end_time: datetime.datetime,
            scan_by: str = "TimestampAscending",
        ) -> list[dict[str, Any]]:
            results: list[dict[str, Any]] = original(
                self, queries=queries, start_time=start_time, end_time=end_time, scan_by=scan_by
            )
            ids = {q["Id"] for q in queries if _is_percentile((q.get("MetricStat") or {}).get("Stat"))}
            ids |= {q["Id"] for q in queries if q.get("Expression") in ids}  # a bare reference
            for result in results:
                if result["id"] not in ids:
                    continue
                kept = [
                    (value, stamp)
                    for value, stamp in zip(result["values"], result["timestamps"], strict=True)
                    if value is not None
                ]
                result["values"] = [value for value, _ in kept]
                result["timestamps"] = [stamp for _, stamp in kept]
            return results

        return get_metric_data

    def metric_statistics(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def get_metric_statistics(self: Any) -> Any:
            response = original(self)
            wanted = [s for s in self._get_param("ExtendedStatistics", []) or [] if _is_percentile(s)]
            if not wanted or not isinstance(response, ActionResult):
                return response
            body = dict(cast(Mapping[str, Any], response.result))
            simple = bool(self._get_param("Statistics", []))
            datapoints = []
            for datapoint in body.get("Datapoints", []):
                values = {s: _statistic(list(datapoint.metric_data), None, s) for s in wanted}
                present = {s: v for s, v in values.items() if v is not None}
                if present:
                    datapoint.extended_statistics = present
                elif not simple:
                    continue
                datapoints.append(datapoint)
            body["Datapoints"] = datapoints
            return ActionResult(body)

        return get_metric_statistics

    _install(Statistics, "get_statistics_for_type", statistic, "percentiles")
    _install(CloudWatchBackend, "get_metric_data", metric_data, "percentiles")
    _install(CloudWatchResponse, "get_metric_statistics", metric_statistics, "percentiles")


def stop_alarm_evaluator() -> None:
    """Stop the background evaluation started by :func:`evaluate_cloudwatch_alarms`."""
    CONFIG.alarm_stop.set()
    if CONFIG.alarm_thread is not None:
        CONFIG.alarm_thread.join(timeout=5)
        CONFIG.alarm_thread = None


_ALARM_TYPE = "AWS::CloudWatch::Alarm"


def _alarm_arguments(name: str, properties: Mapping[str, Any]) -> dict[str, Any]:
    """PutMetricAlarm's arguments (moto's backend signature) for an AWS::CloudWatch::Alarm."""
    threshold = properties.get("Threshold")
    return {
        "name": name,
        "namespace": properties.get("Namespace"),
        "metric_name": properties.get("MetricName"),
        "comparison_operator": properties.get("ComparisonOperator"),
        "evaluation_periods": int(properties.get("EvaluationPeriods", 1)),
        "period": int(properties.get("Period", 60)),
        "threshold": float(threshold) if threshold is not None else 0.0,
        "statistic": properties.get("Statistic"),
        "extended_statistic": properties.get("ExtendedStatistic"),
        "description": properties.get("AlarmDescription", ""),
        "dimensions": [
            {"Name": str(d["Name"]), "Value": str(d["Value"])} for d in properties.get("Dimensions") or []
        ],
        "alarm_actions": list(properties.get("AlarmActions") or []),
        "ok_actions": list(properties.get("OKActions") or []),
        "insufficient_data_actions": list(properties.get("InsufficientDataActions") or []),
        "datapoints_to_alarm": (
            int(properties["DatapointsToAlarm"]) if properties.get("DatapointsToAlarm") else None
        ),
        "unit": properties.get("Unit"),
        "actions_enabled": str(properties.get("ActionsEnabled", True)).lower() != "false",
        "treat_missing_data": properties.get("TreatMissingData"),
    }


def cloudwatch_alarms_from_cloudformation() -> None:
    """AWS: ``AWS::CloudWatch::Alarm`` creates a metric alarm as PutMetricAlarm does (named
    ``AlarmName``, else ``<stack>-<logical id>-<random>``); Ref returns the alarm's name and
    GetAtt Arn its ARN; an update replaces its configuration (keeping its state), deleting the
    resource deletes the alarm. moto's CloudFormation does not know the type and skips it with a
    warning, so a template's alarms silently do not exist.
    """
    from moto.cloudformation import parsing  # noqa: PLC0415 - the registry the models join
    from moto.core.common_models import CloudFormationModel  # noqa: PLC0415

    if _ALARM_TYPE in parsing.get_model_map():
        return

    class AlarmResource(CloudFormationModel):
        def __init__(self, name: str, account_id: str, region: str) -> None:
            self.name = name
            self.account_id = account_id
            self.region = region
            backend = cloudwatch_backends[account_id][region]
            self.arn = backend.alarms[name].alarm_arn

        @property
        def physical_resource_id(self) -> str:
            return self.name

        @staticmethod
        def cloudformation_name_type() -> str:
            return "AlarmName"

        @staticmethod
        def cloudformation_type() -> str:
            return _ALARM_TYPE

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return attr == "Arn"

        def get_cfn_attribute(self, attribute_name: str) -> str:
            if attribute_name == "Arn":
                return self.arn
            raise NotImplementedError(attribute_name)

        @classmethod
        def create_from_cloudformation_json(
            cls,
            resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> Any:
            props = cloudformation_json["Properties"]
            name = str(props.get("AlarmName") or resource_name)
            backend = cloudwatch_backends[account_id][region_name]
            backend.put_metric_alarm(**_alarm_arguments(name, props))
            return cls(name, account_id, region_name)

        @classmethod
        def update_from_cloudformation_json(
            cls,
            original_resource: Any,
            new_resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
        ) -> Any:
            props = cloudformation_json["Properties"]
            name = str(props.get("AlarmName") or original_resource.name)
            backend = cloudwatch_backends[account_id][region_name]
            if name != original_resource.name:
                backend.delete_alarms([original_resource.name])
            backend.put_metric_alarm(**_alarm_arguments(name, props))
            return cls(name, account_id, region_name)

        @classmethod
        def delete_from_cloudformation_json(
            cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
        ) -> None:
            cloudwatch_backends[account_id][region_name].delete_alarms([resource_name])

        def delete(self, account_id: str, region_name: str) -> None:
            cloudwatch_backends[account_id][region_name].delete_alarms([self.name])

    del AlarmResource  # registered with moto's CloudFormation by subclassing
    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()
