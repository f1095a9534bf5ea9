"""EventBridge: rules deliver to Lambda and SQS targets with the full event, disabled rules match
nothing, scheduled rules fire on the emulator clock, and ``aws.*`` sources are reserved to AWS."""

from __future__ import annotations

import copy
import dataclasses
import datetime
import functools
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

from moto.awslambda.utils import get_backend as get_lambda_backend
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.events.models import EventsBackend, Rule, events_backends
from moto.events.responses import EventsHandler
from moto.events.utils import EventTemplateParser
from moto.sqs.models import sqs_backends
from moto.utilities.arns import parse_arn

from .. import control
from ..clock import EmulatorClock
from ._core import (
    CONFIG,
    _install,
    _iso,
    _sqs_send,
)

LOG = logging.getLogger(__name__)


# -- EventBridge ----------------------------------------------------------------------------------


def _target_input(target: Mapping[str, Any], event: dict[str, Any]) -> str:
    """What EventBridge sends a target: Input, InputPath, InputTransformer, or the whole event."""
    if "Input" in target and target["Input"] is not None:
        return str(target["Input"])
    if target.get("InputPath"):
        value: Any = event
        for part in str(target["InputPath"]).lstrip("$").strip(".").split("."):
            if part:
                value = value.get(part) if isinstance(value, dict) else None
        return json.dumps(value)
    transformer = target.get("InputTransformer")
    if transformer:
        parsed = EventTemplateParser.parse(
            input_template=transformer.get("InputTemplate"),
            input_paths_map=transformer.get("InputPathsMap", {}),
            # moto's parser also offers <aws.events.event.ingestion-time>, read from the event.
            event=cast(Any, {"ingestion-time": event.get("time"), **event}),
        )
        return parsed if isinstance(parsed, str) else json.dumps(parsed)
    return json.dumps(event)


def _envelope(original_event: Mapping[str, Any]) -> dict[str, Any]:
    """The event as targets receive it: moto's message without its internal keys, ISO time."""
    event = {k: v for k, v in dict(original_event).items() if k != "ingestion-time"}
    event["time"] = _iso(event.get("time"))
    return event


def _events_may_invoke(fn: Any, rule_arn: str) -> bool:
    """Whether the function's resource policy lets EventBridge (for this rule) invoke it."""
    statements = getattr(getattr(fn, "policy", None), "statements", None) or []
    for statement in statements:
        principal = statement.get("Principal", {})
        service = principal.get("Service") if isinstance(principal, dict) else principal
        services = service if isinstance(service, list) else [service]
        if "events.amazonaws.com" not in services or statement.get("Effect", "Allow") != "Allow":
            continue
        source = (statement.get("Condition") or {}).get("ArnLike", {}).get("AWS:SourceArn")
        if source is None:
            return True
        pattern = str(source).replace("*", "")
        if rule_arn == source or (str(source).endswith("*") and rule_arn.startswith(pattern)):
            return True
    return False


def _deliver_to_lambda(rule: Any, target: Mapping[str, Any], event: dict[str, Any]) -> None:
    """One event for one target, retried as the target's RetryPolicy says, then dead-lettered."""
    executor = CONFIG.events
    if executor is None:
        return
    clock = CONFIG.clock
    policy = target.get("RetryPolicy") or {}
    max_attempts = int(policy.get("MaximumRetryAttempts", 185))
    max_age = float(policy.get("MaximumEventAgeInSeconds", 86400))
    payload = _target_input(target, event)
    first = clock.monotonic()
    rule_arn = rule.arn
    function_arn = target["Arn"]

    def attempt(number: int) -> None:

        arn = parse_arn(function_arn)
        error_code, error_message = "", ""
        try:
            backend = get_lambda_backend(arn.account, arn.region)
            fn = backend.get_function(function_arn)
            if not _events_may_invoke(fn, rule_arn):
                error_code = "NO_PERMISSIONS"
                error_message = (
                    f"Lambda function policy does not allow events.amazonaws.com to invoke {function_arn}"
                )
            else:
                backend.invoke(function_arn, None, payload, {"x-amz-invocation-type": "Event"}, {})
                return
        except Exception as exc:
            error_code = getattr(exc, "error_type", None) or type(exc).__name__
            error_message = getattr(exc, "message", None) or str(exc)
            if error_code == "ResourceNotFoundException":
                error_code = "RESOURCE_NOT_FOUND"
        age = clock.monotonic() - first
        delay = min(2.0**number, 300.0) * CONFIG.options.rng.uniform(0.5, 1.0)
        if number < max_attempts and age + delay <= max_age:
            executor.submit(lambda: attempt(number + 1), delay)
            return
        exhausted = "MaximumRetryAttempts" if number >= max_attempts else "MaximumEventAgeInSeconds"
        dlq = (target.get("DeadLetterConfig") or {}).get("Arn")
        LOG.warning(
            "EventBridge gave up on %s for %s: %s %s", function_arn, rule_arn, error_code, error_message
        )
        if dlq:
            _sqs_send(
                dlq,
                json.dumps(event),
                {
                    "RULE_ARN": rule_arn,
                    "TARGET_ARN": function_arn,
                    "ERROR_CODE": error_code,
                    "ERROR_MESSAGE": error_message,
                    "EXHAUSTED_RETRY_CONDITION": exhausted,
                    "RETRY_ATTEMPTS": str(number),
                },
            )

    options = CONFIG.options
    copies = 1 + max(0, options.duplicates)
    if options.duplicate_probability > 0 and options.rng.random() < options.duplicate_probability:
        copies += 1
    for _ in range(copies):
        delay = options.rng.uniform(0, options.reorder_window) if options.reorder_window > 0 else 0.0
        executor.submit(lambda: attempt(0), delay)


def deliver_eventbridge_to_lambda() -> None:
    """AWS: a rule whose target is a Lambda function invokes it asynchronously with the event
    (``version, id, detail-type, source, account, time, region, resources, detail``), at least
    once. The target's RetryPolicy and DeadLetterConfig cover failures to hand the event to Lambda
    (function missing, no permission, throttled); errors raised by the function are Lambda's
    asynchronous retries, not EventBridge's. moto raises NotImplementedError for Lambda targets.
    """

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
            lambdas = [t for t in self.targets if parse_arn(t["Arn"]).service == "lambda"]
            others = [t for t in self.targets if parse_arn(t["Arn"]).service != "lambda"]
            if others:
                clone = copy.copy(self)
                clone.targets = others
                original(clone, original_event, transform_input)
            if not lambdas or not self.event_pattern.matches_event(original_event):
                return
            event = _envelope(original_event)
            for target in lambdas:
                _deliver_to_lambda(self, target, copy.deepcopy(event))

        return send_to_targets

    _install(Rule, "send_to_targets", make, "lambda-targets")


def skip_disabled_event_rules() -> None:
    """AWS: a rule in the DISABLED state matches no events. moto's PutEvents ignores the state."""

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
            if getattr(self, "state", "ENABLED") != "ENABLED":
                return
            original(self, original_event, transform_input)

        return send_to_targets

    _install(Rule, "send_to_targets", make, "skip-disabled")


def _send_event_to_queue(target: Mapping[str, Any], body: str) -> None:
    arn = parse_arn(target["Arn"])
    backend = sqs_backends[arn.account][arn.region]
    group_id = (target.get("SqsParameters") or {}).get("MessageGroupId")
    if arn.resource_id.endswith(".fifo"):
        attributes = backend.get_queue_attributes(
            queue_name=arn.resource_id, attribute_names=["ContentBasedDeduplication"]
        )
        if str(attributes.get("ContentBasedDeduplication", "false")).lower() != "true":
            LOG.warning("EventBridge needs content-based deduplication on FIFO queue %s", arn.resource_id)
            return
    backend.send_message(queue_name=arn.resource_id, message_body=body, group_id=group_id)


def deliver_full_envelope_to_sqs() -> None:
    """AWS: a rule whose target is an SQS queue sends it the whole event, ``version, id,
    detail-type, source, account, time, region, resources, detail`` (or what the target's Input,
    InputPath or InputTransformer make of it), with the target's MessageGroupId for FIFO queues.
    moto's default input template leaves out ``account`` and ignores Input and InputPath.
    """

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
            queues = [t for t in self.targets if parse_arn(t["Arn"]).service == "sqs"]
            if not queues:
                original(self, original_event, transform_input)
                return
            others = [t for t in self.targets if parse_arn(t["Arn"]).service != "sqs"]
            if others:
                clone = copy.copy(self)
                clone.targets = others
                original(clone, original_event, transform_input)
            if not self.event_pattern.matches_event(original_event):
                return
            event = _envelope(original_event)
            for target in queues:
                body = _target_input(target, event) if transform_input else json.dumps(event)
                try:
                    _send_event_to_queue(target, body)
                except Exception:
                    LOG.exception("EventBridge could not deliver to %s", target["Arn"])

        return send_to_targets

    _install(Rule, "send_to_targets", make, "sqs-targets")


# -- PutEvents: aws.* sources -----------------------------------------------------------------------

_NOT_AUTHORIZED = {
    "ErrorCode": "NotAuthorizedForSourceException",
    "ErrorMessage": "Not authorized for the source.",
}


def _reserved_source(entry: Any) -> bool:
    return isinstance(entry, dict) and str(entry.get("Source") or "").startswith("aws.")


def refuse_aws_sources_in_put_events() -> None:
    """AWS: PutEvents refuses each entry whose Source begins with ``aws.`` (those sources belong to
    AWS services): that entry fails with NotAuthorizedForSourceException, counts in
    FailedEntryCount, and the batch's other entries are still published. moto publishes them.
    """

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def put_events(self: Any) -> Any:
            entries = self._get_param("Entries") or []
            if len(entries) > 10 or not any(_reserved_source(e) for e in entries):
                return original(self)  # moto validates the batch size
            allowed = [e for e in entries if not _reserved_source(e)]
            published = iter(self.events_backend.put_events(allowed) if allowed else [])
            results = [dict(_NOT_AUTHORIZED) if _reserved_source(e) else next(published) for e in entries]
            return json.dumps(
                {"FailedEntryCount": sum(1 for r in results if "ErrorCode" in r), "Entries": results}
            )

        return put_events

    _install(EventsHandler, "put_events", make, "reserved-sources")


# -- /_emulator/events: publish as an AWS service -----------------------------------------------------


def _epoch(value: Any) -> float:
    if isinstance(value, bool):
        raise control.ControlError("Time must be an ISO 8601 timestamp or epoch seconds")
    if isinstance(value, (int, float)):
        return float(value)
    try:
        moment = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise control.ControlError(f"Time {value!r} is not an ISO 8601 timestamp: {exc}") from exc
    return (moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)).timestamp()


@control.route("POST", "events")
def publish_service_events(body: dict[str, Any]) -> dict[str, Any]:
    """``POST /_emulator/events`` ``{"Entries": [...], "Region"?, "Account"?}``: publish
    PutEvents-shaped entries as the AWS service named by each Source would, ``aws.*`` included.

    PutEvents refuses those sources, so this is how tests inject service events (ECS task state
    changes, alarm transitions). ``Detail`` may be a JSON string or an object, ``Time`` ISO 8601 or
    epoch seconds; the answer is PutEvents' (``Entries`` with EventId or ErrorCode,
    ``FailedEntryCount``).
    """
    entries = body.get("Entries")
    if not isinstance(entries, list) or not entries:
        raise control.ControlError("Entries must be a non-empty list of PutEvents entries")
    region = str(body.get("Region") or "us-east-1")
    account = str(body.get("Account") or DEFAULT_ACCOUNT_ID)
    if not all(isinstance(raw, dict) for raw in entries):
        raise control.ControlError("each entry must be an object")
    normalized: list[dict[str, Any]] = []
    for raw in entries:  # all validated before any is published
        entry = dict(raw)
        detail = entry.get("Detail", {})
        entry["Detail"] = detail if isinstance(detail, str) else json.dumps(detail)
        if entry.get("Time") is not None:
            entry["Time"] = _epoch(entry["Time"])
        else:
            entry.pop("Time", None)
        normalized.append(entry)
    results: list[dict[str, Any]] = []
    for entry in normalized:
        bus = str(entry.get("EventBusName") or "")
        where = parse_arn(bus) if bus.startswith("arn:") else None
        backend = events_backends[where.account if where else account][where.region if where else region]
        try:
            results.extend(backend.put_events([entry]))
        except Exception as exc:
            code = getattr(exc, "error_type", None) or type(exc).__name__
            results.append({"ErrorCode": code, "ErrorMessage": getattr(exc, "message", None) or str(exc)})
    return {"Entries": results, "FailedEntryCount": sum(1 for r in results if "ErrorCode" in r)}


# -- Scheduled rules ------------------------------------------------------------------------------------

_RATE = re.compile(r"rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)")
_CRON = re.compile(r"cron\((.*)\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTH_NAMES = {
    m: i
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1
    )
}
_DAY_NAMES = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], 1)}
_MINUTE = datetime.timedelta(minutes=1)
_LAST_YEAR = 2199
# Longest real-time sleep between two looks at the rules (PutRule wakes the scheduler anyway).
_MAX_IDLE = 5.0


def _cron_field(
    text: str, low: int, high: int, names: Mapping[str, int] | None = None
) -> frozenset[int] | None:
    """The values a cron field allows; None for ``*`` and ``?`` (any)."""
    if text in ("*", "?"):
        return None

    def number(token: str) -> int:
        value = (names or {}).get(token.upper())
        if value is None:
            if not token.isdigit():
                raise ValueError(f"unsupported cron value {token!r}")
            value = int(token)
        if not low <= value <= high:
            raise ValueError(f"cron value {token!r} is outside {low}-{high}")
        return value

    values: set[int] = set()
    for item in text.split(","):
        base, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"cron step {item!r} must be positive")
        if base == "*":
            first, last = low, high
        elif "-" in base:
            start, _, end = base.partition("-")
            first, last = number(start), number(end)
        else:
            first = number(base)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


@dataclasses.dataclass(frozen=True)
class _Cron:
    """An EventBridge cron expression: minutes hours day-of-month month day-of-week year (UTC)."""

    minutes: frozenset[int] | None
    hours: frozenset[int] | None
    days: frozenset[int] | None
    months: frozenset[int] | None
    weekdays: frozenset[int] | None  # 1 = Sunday ... 7 = Saturday
    years: frozenset[int] | None

    @classmethod
    def parse(cls, fields: str) -> _Cron:
        parts = fields.split()
        if len(parts) != 6:
            raise ValueError(f"cron({fields}) needs 6 fields")
        minute, hour, day, month, weekday, year = parts
        return cls(
            _cron_field(minute, 0, 59),
            _cron_field(hour, 0, 23),
            _cron_field(day, 1, 31),
            _cron_field(month, 1, 12, _MONTH_NAMES),
            _cron_field(weekday, 1, 7, _DAY_NAMES),
            _cron_field(year, 1970, _LAST_YEAR),
        )

    def _day_matches(self, moment: datetime.datetime) -> bool:
        weekday = (moment.weekday() + 1) % 7 + 1
        return (self.days is None or moment.day in self.days) and (
            self.weekdays is None or weekday in self.weekdays
        )

    def next_after(self, moment: datetime.datetime) -> datetime.datetime | None:
        """The first whole minute after ``moment`` the expression matches (None if never)."""
        t = moment.replace(second=0, microsecond=0) + _MINUTE
        while t.year <= _LAST_YEAR:
            if self.years is not None and t.year not in self.years:
                t = t.replace(year=t.year + 1, month=1, day=1, hour=0, minute=0)
            elif self.months is not None and t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + datetime.timedelta(days=32)).replace(day=1)
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + datetime.timedelta(days=1)
            elif self.hours is not None and t.hour not in self.hours:
                t = t.replace(minute=0) + datetime.timedelta(hours=1)
            elif self.minutes is not None and t.minute not in self.minutes:
                t += _MINUTE
            else:
                return t
        return None


@dataclasses.dataclass(frozen=True)
class _Schedule:
    """When a ScheduleExpression fires: every ``rate`` seconds from creation, or on ``cron``."""

    rate: float | None = None
    cron: _Cron | None = None

    def first(self, now: datetime.datetime) -> datetime.datetime | None:
        if self.rate is not None:
            return now + datetime.timedelta(seconds=self.rate)
        return self.cron.next_after(now) if self.cron is not None else None

    def following(self, due: datetime.datetime, now: datetime.datetime) -> datetime.datetime | None:
        """The next firing after ``due`` that is still ahead of ``now`` (missed ones are skipped)."""
        if self.rate is not None:
            period = datetime.timedelta(seconds=self.rate)
            return due + period * (int((now - due) / period) + 1)
        return self.cron.next_after(max(due, now)) if self.cron is not None else None


@functools.cache
def _parse_schedule(expression: str) -> _Schedule | None:
    """None (logged once) for what the emulator does not support."""
    try:
        rate = _RATE.fullmatch(expression.strip())
        if rate:
            if int(rate.group(1)) < 1:
                raise ValueError("a rate must be at least 1")
            return _Schedule(rate=int(rate.group(1)) * _UNIT_SECONDS[rate.group(2).rstrip("s")])
        cron = _CRON.fullmatch(expression.strip())
        if cron:
            return _Schedule(cron=_Cron.parse(cron.group(1)))
        raise ValueError("neither rate(...) nor cron(...)")
    except ValueError as exc:
        LOG.warning("scheduled rules with %r are not emulated: %s", expression, exc)
        return None


@dataclasses.dataclass
class _Due:
    rule: Any
    expression: str
    at: datetime.datetime | None


def _snapshot(values: Any) -> list[Any]:
    """``list(values)`` of a dict view other threads may be changing (PutRule, DeleteRule)."""
    while True:
        try:
            return list(values)
        except RuntimeError:  # changed size during iteration: look again
            continue


def _scheduled_rules() -> Iterator[Any]:
    """Every rule with a ScheduleExpression, in every account and region moto has a backend for."""
    for account in _snapshot(events_backends.values()):
        for backend in _snapshot(account.values()):
            bus = backend.event_buses.get("default")
            for rule in _snapshot(bus.rules.values()) if bus is not None else []:
                if rule.scheduled_expression:
                    yield rule


class _Scheduler:
    """Fires scheduled rules on an emulated UTC clock that starts at the real time it is created
    and runs ``1 / time_scale`` as fast as real time (cron fields match that clock)."""

    def __init__(self, clock: EmulatorClock) -> None:
        self.clock = clock
        self.origin = datetime.datetime.now(datetime.UTC)
        self.origin_monotonic = time.monotonic()
        self.wake = threading.Event()
        self.stopped = False
        self.due: dict[int, _Due] = {}
        self.thread = threading.Thread(target=self.run, name="eventbridge-schedules", daemon=True)

    def now(self) -> datetime.datetime:
        elapsed = self.clock.unscaled(time.monotonic() - self.origin_monotonic)
        return self.origin + datetime.timedelta(seconds=elapsed)

    def run(self) -> None:
        while not self.stopped:
            self.wake.clear()
            try:
                idle = self.tick()
            except Exception:
                LOG.exception("scheduled rules failed")
                idle = _MAX_IDLE
            self.wake.wait(idle)

    def tick(self) -> float:
        """Fire what is due; return the real seconds to sleep until the next firing."""
        now = self.now()
        due: dict[int, _Due] = {}
        for rule in _scheduled_rules():
            schedule = _parse_schedule(str(rule.scheduled_expression))
            if schedule is None:
                continue
            entry = self.due.get(id(rule))
            if entry is None or entry.rule is not rule or entry.expression != rule.scheduled_expression:
                entry = _Due(rule, str(rule.scheduled_expression), schedule.first(now))
            if entry.at is not None and entry.at <= now:
                if getattr(rule, "state", "ENABLED") == "ENABLED":
                    _fire_scheduled_rule(rule, entry.at)
                entry.at = schedule.following(entry.at, now)
            due[id(rule)] = entry
        self.due = due
        ahead = [e.at for e in due.values() if e.at is not None]
        if not ahead:
            return _MAX_IDLE
        return min(_MAX_IDLE, max(0.0, self.clock.scaled((min(ahead) - self.now()).total_seconds())))

    def stop(self) -> None:
        self.stopped = True
        self.wake.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)


_SCHEDULER: list[_Scheduler] = []


def _fire_scheduled_rule(rule: Any, at: datetime.datetime) -> None:
    """Send the rule's targets AWS's "Scheduled Event" for the firing due ``at``."""
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": rule.account_id,
        "time": at.timestamp(),
        "region": rule.region_name,
        "resources": [rule.arn],
        "detail": {},
        "ingestion-time": time.time(),
    }
    rule.send_to_targets(event)


def fire_scheduled_rules() -> None:
    """AWS: a rule with a ScheduleExpression (``rate(5 minutes)``, ``cron(0 12 * * ? *)``, in
    UTC) sends its targets a ``Scheduled Event`` from ``aws.events`` (resources: the rule's ARN,
    detail ``{}``) on that schedule while it is ENABLED; a rate schedule counts from the rule's
    creation. moto stores the expression and never fires. Here the schedule runs on the emulator
    clock (with time scale 0.01, ``rate(5 minutes)`` fires every 3 real seconds).
    """

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def put_rule(self: Any, *args: Any, **kwargs: Any) -> Any:
            rule = original(self, *args, **kwargs)
            for scheduler in _SCHEDULER:
                scheduler.wake.set()  # a new rule's rate counts from now
            return rule

        return put_rule

    _install(EventsBackend, "put_rule", make, "schedule-wake")
    if _SCHEDULER and _SCHEDULER[0].thread.is_alive():
        return
    stop_scheduled_rules()
    scheduler = _Scheduler(CONFIG.clock)
    _SCHEDULER.append(scheduler)
    scheduler.thread.start()


def stop_scheduled_rules() -> None:
    """Stop the scheduler :func:`fire_scheduled_rules` started (``stop_workers`` calls it)."""
    while _SCHEDULER:
        _SCHEDULER.pop().stop()
