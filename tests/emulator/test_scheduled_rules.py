"""fire_scheduled_rules: rate() and cron() rules fire on the emulator clock (1/100 here, so
``rate(1 minute)`` fires every 0.6 s)."""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import HERE, TIME_SCALE, receive
from ecs_canary_cli.local import Emulator, deploy_stack
from ecs_canary_cli.local.patches import CONFIG
from ecs_canary_cli.local.patches.events import _Cron, _parse_schedule

ENVELOPE = {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}
PERIOD = 60 * TIME_SCALE  # real seconds between two firings of rate(1 minute)


def _utc(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _times(events: list[dict[str, Any]]) -> list[datetime.datetime]:
    return [_utc(e["time"]) for e in events]


def _scheduled_queue(aws: Emulator, name: str, expression: str) -> tuple[str, str]:
    """A rule firing on ``expression`` into a new queue; (queue URL, rule ARN)."""
    sqs, events = aws.client("sqs"), aws.client("events")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule_arn = events.put_rule(Name=name, ScheduleExpression=expression)["RuleArn"]
    events.put_targets(Rule=name, Targets=[{"Id": "queue", "Arn": arn}])
    return url, rule_arn


def _delete_rule(aws: Emulator, name: str) -> None:
    events = aws.client("events")
    events.remove_targets(Rule=name, Ids=["queue"])
    events.delete_rule(Name=name)


# -- expressions ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("cron(0 12 * * ? *)", "2024-01-01T13:00:00Z", "2024-01-02T12:00:00Z"),
        ("cron(0/15 * * * ? *)", "2024-01-01T10:07:30Z", "2024-01-01T10:15:00Z"),
        ("cron(*/10 * * * ? *)", "2024-01-01T10:50:00Z", "2024-01-01T11:00:00Z"),
        ("cron(0 9,17 * * ? *)", "2024-01-01T09:00:00Z", "2024-01-01T17:00:00Z"),
        ("cron(30 8 ? * MON-FRI *)", "2024-01-05T09:00:00Z", "2024-01-08T08:30:00Z"),  # Fri -> Mon
        ("cron(0 0 ? * 1 *)", "2024-01-01T00:00:00Z", "2024-01-07T00:00:00Z"),  # 1 is Sunday
        ("cron(0 0 1 JAN,JUL ? *)", "2024-02-10T00:00:00Z", "2024-07-01T00:00:00Z"),
        ("cron(15 10 29 2 ? *)", "2024-03-01T00:00:00Z", "2028-02-29T10:15:00Z"),
        ("cron(0 18 ? * * 2025)", "2024-06-01T00:00:00Z", "2025-01-01T18:00:00Z"),
        ("cron(* * * * ? *)", "2024-12-31T23:59:00Z", "2025-01-01T00:00:00Z"),
    ],
)
def test_cron_expressions(expression: str, after: str, expected: str) -> None:
    schedule = _parse_schedule(expression)
    assert schedule is not None
    assert schedule.first(_utc(after)) == _utc(expected)


def test_cron_in_a_past_year_never_fires() -> None:
    assert _Cron.parse("0 0 * * ? 2020").next_after(_utc("2024-01-01T00:00:00Z")) is None


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(1 minute)", 60), ("rate(5 minutes)", 300), ("rate(2 hours)", 7200), ("rate(1 day)", 86400)],
)
def test_rate_expressions(expression: str, seconds: int) -> None:
    schedule = _parse_schedule(expression)
    assert schedule is not None
    start = _utc("2024-01-01T00:00:00Z")
    assert schedule.first(start) == start + datetime.timedelta(seconds=seconds)
    # Firings missed while the emulator was busy are skipped, not burst.
    late = start + datetime.timedelta(seconds=seconds * 3.5)
    assert schedule.following(start, late) == start + datetime.timedelta(seconds=seconds * 4)


@pytest.mark.parametrize(
    "expression", ["cron(0 12 L * ? *)", "cron(0 12 * *)", "rate(0 minutes)", "every(5 minutes)"]
)
def test_unsupported_expressions_are_not_emulated(expression: str) -> None:
    assert _parse_schedule(expression) is None


# -- firing ----------------------------------------------------------------------------------------


def test_rate_rule_sends_scheduled_events_until_deleted(aws: Emulator) -> None:
    created = time.monotonic()
    url, rule_arn = _scheduled_queue(aws, "every-minute", "rate(1 minute)")
    events = [m["body"] for m in receive(aws, url, 3, timeout=30)]
    assert time.monotonic() - created >= PERIOD  # the first firing is one period after creation
    assert len(events) == 3
    for event in events:
        assert set(event) == ENVELOPE
        assert event["detail-type"] == "Scheduled Event"
        assert event["source"] == "aws.events"
        assert event["resources"] == [rule_arn]
        assert event["detail"] == {}
        assert (event["account"], event["region"], event["version"]) == ("123456789012", "us-east-1", "0")
    assert len({e["id"] for e in events}) == 3
    first, second, third = _times(events)
    assert second - first == third - second == datetime.timedelta(minutes=1)

    _delete_rule(aws, "every-minute")
    receive(aws, url, 100, timeout=PERIOD)  # what was already on its way
    time.sleep(3 * PERIOD)
    assert receive(aws, url, 1, timeout=0.1) == []


def test_disabled_rule_does_not_fire_until_enabled(aws: Emulator) -> None:
    url, _ = _scheduled_queue(aws, "paused-minute", "rate(1 minute)")
    events = aws.client("events")
    events.disable_rule(Name="paused-minute")
    try:
        receive(aws, url, 100, timeout=PERIOD)
        time.sleep(3 * PERIOD)
        assert receive(aws, url, 1, timeout=0.1) == []
        events.enable_rule(Name="paused-minute")
        assert len(receive(aws, url, 1, timeout=30)) == 1
    finally:
        _delete_rule(aws, "paused-minute")


def test_cron_rule_fires_on_whole_minutes(aws: Emulator) -> None:
    url, _ = _scheduled_queue(aws, "each-minute-cron", "cron(* * * * ? *)")
    try:
        events = [m["body"] for m in receive(aws, url, 2, timeout=30)]
    finally:
        _delete_rule(aws, "each-minute-cron")
    assert len(events) == 2
    first, second = _times(events)
    assert first.second == second.second == 0
    assert second - first == datetime.timedelta(minutes=1)


@pytest.fixture
def schedules(aws: Emulator) -> Iterator[dict[str, str]]:
    """tests/emulator/fixture_schedules.yaml: a function with two SAM Schedule events, one disabled."""
    outputs = deploy_stack(aws.endpoint, HERE / "fixture_schedules.yaml", "emulator-schedules")
    try:
        yield outputs
    finally:
        aws.client("cloudformation").delete_stack(StackName="emulator-schedules")


def test_sam_schedule_invokes_its_function_until_the_stack_is_deleted(
    aws: Emulator, schedules: dict[str, str]
) -> None:
    rules = {
        r["Name"]: r
        for r in aws.client("events").list_rules(NamePrefix="emulator-schedules-")["Rules"]
        if r.get("ScheduleExpression")
    }
    [enabled] = [r for r in rules.values() if r["State"] == "ENABLED"]
    assert enabled["ScheduleExpression"] == "rate(1 minute)"
    assert len(rules) == 2

    records = [m["body"] for m in receive(aws, schedules["TicksUrl"], 3, timeout=30)]
    assert len(records) == 3
    assert {r["function"] for r in records} == {schedules["TickFunction"]}
    # Only the enabled rule fires; the function gets AWS's scheduled event.
    assert {tuple(r["event"]["resources"]) for r in records} == {(enabled["Arn"],)}
    assert all(r["event"]["detail-type"] == "Scheduled Event" for r in records)
    assert all(set(r["event"]) == ENVELOPE for r in records)

    aws.client("cloudformation").delete_stack(StackName="emulator-schedules")
    assert aws.client("events").list_rules(NamePrefix="emulator-schedules-")["Rules"] == []
    assert aws.wait_for_idle(10)
    before = _invocations(schedules["TickFunction"])
    time.sleep(3 * PERIOD)
    assert aws.wait_for_idle(10)
    assert _invocations(schedules["TickFunction"]) == before


def _invocations(function: str) -> int:
    """How often the in-process Lambda runtime has run ``function``."""
    runtime = CONFIG.runtime
    assert runtime is not None
    return sum(1 for name, _ in list(runtime.invocations) if name == function)


def test_scheduler_sleeps_until_the_next_firing(aws: Emulator) -> None:
    """No busy loop: between firings the scheduler thread waits for the next one."""
    from ecs_canary_cli.local.patches import events as module  # noqa: PLC0415 - its private state

    [scheduler] = module._SCHEDULER
    assert scheduler.thread.is_alive()
    url, _ = _scheduled_queue(aws, "idle-check", "rate(1 hour)")
    try:
        ticks: list[float] = []
        original = scheduler.tick

        def counting() -> float:
            ticks.append(time.monotonic())
            return original()

        scheduler.tick = counting  # type: ignore[method-assign]
        try:
            time.sleep(1.0)
        finally:
            scheduler.tick = original  # type: ignore[method-assign]
        assert len(ticks) <= 2  # it slept through the second, woken at most by another test's rule
    finally:
        _delete_rule(aws, "idle-check")
    assert receive(aws, url, 1, timeout=0.1) == []
