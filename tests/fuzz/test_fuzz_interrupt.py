"""Fuzzing the interrupt function: CloudWatch alarm and ECS task STOPPED events that must not interrupt.

The world holds a deployment of web-green mid-ramp (50/50), registered by cluster ARN as ``register``
stores it. The events are malformed (rejected, naming the field), alarms that do not gate the
deployment or are not in ALARM, and stopped tasks that are not an unexpected stop of the release
under test (planned stops, other services, clusters and releases, tasks not STOPPED). None may raise,
count a stop, record an intent, fail the watch or move traffic.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pytest
from fuzz_support import (
    ACCOUNT,
    ALARMS,
    BLUE,
    CLUSTER,
    CLUSTER_ARN,
    GREEN,
    HOSTILE_TEXT,
    PAIR_ALARM,
    REGION,
    SIDE_EXAMPLES,
    TALLY,
    TEXT,
    WRONG_TYPES,
    Flow,
    Run,
    Watch,
    fuzz_settings,
    json_values,
    mid_ramp,
    oversized,
    problems_of,
    short,
)
from hypothesis import example, given
from hypothesis import strategies as st

pytest_plugins = ["flow_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

TARGET = "interrupt (alarm, task STOPPED)"
GATING = (PAIR_ALARM, ALARMS[GREEN])
"""The alarms that gate the deployment of green: the pair's and green's own."""
DELETE = object()


@dataclass(repr=False)
class World:
    flow: Flow
    watch: Watch
    run: Run
    release: str

    def __repr__(self) -> str:
        return f"World(release={self.release!r})"


@pytest.fixture
def world(flow: Flow, watch: Watch) -> World:
    run = mid_ramp(flow, cluster_arn=CLUSTER_ARN)
    return World(flow, watch, run, str(run.input["release"]["deployment"]))


@dataclass(frozen=True)
class Case:
    """An alarm event or a task event (``source``), changed; what the function must answer."""

    kind: str
    source: str
    alarm: str = PAIR_ALARM
    state: str = "ALARM"
    changes: tuple[tuple[tuple[str | int, ...], Any], ...] = ()
    rejected: tuple[str, ...] = ()
    """For a malformed event: the problem paths the rejection must list."""
    names: tuple[str, ...] = ()
    """Otherwise: text every outcome's reason must contain (any of them)."""
    replace: Any = DELETE

    def build(self, world: World) -> Any:
        if self.replace is not DELETE:
            return copy.deepcopy(self.replace)
        if self.source == "aws.cloudwatch":
            event = world.flow.alarm_event(self.alarm, self.state)
        else:
            event = world.flow.task_event(
                GREEN,
                world.release,
                last_status="STOPPED",
                stop_code="EssentialContainerExited",
                stopped_reason="Essential container in task exited",
                exit_code=1,
            )
        for path, value in self.changes:
            target: Any = event
            for key in path[:-1]:
                target = target[key]
            if value is DELETE:
                target.pop(path[-1], None)
            else:
                target[path[-1]] = value
        return event


# ---- alarms ------------------------------------------------------------------------------------------------


@st.composite
def malformed_alarm(draw: st.DrawFn) -> Case:
    where = draw(
        st.sampled_from(["alarmName", "state", "state.value", "state.reason", "detail", "detail-type"])
    )
    if where == "alarmName":
        value = draw(st.one_of(st.just(DELETE), st.none(), WRONG_TYPES, st.just(""), oversized()))
        return Case(
            "malformed alarm",
            "aws.cloudwatch",
            changes=((("detail", "alarmName"), value),),
            rejected=("detail.alarmName",),
        )
    if where == "state":
        value = draw(
            st.one_of(st.just(DELETE), st.none(), WRONG_TYPES.filter(lambda v: not isinstance(v, dict)), TEXT)
        )
        return Case(
            "malformed alarm",
            "aws.cloudwatch",
            changes=((("detail", "state"), value),),
            rejected=("detail.state",),
        )
    if where == "state.value":
        value = draw(
            st.one_of(
                st.just(DELETE),
                st.none(),
                WRONG_TYPES,
                st.sampled_from(["alarm", "Alarm", "ALARM ", "INSUFFICIENT DATA", ""]),
                HOSTILE_TEXT.filter(lambda s: s not in ("OK", "ALARM", "INSUFFICIENT_DATA")),
            )
        )
        return Case(
            "malformed alarm",
            "aws.cloudwatch",
            changes=((("detail", "state", "value"), value),),
            rejected=("detail.state.value",),
        )
    if where == "state.reason":
        value = draw(st.one_of(WRONG_TYPES, oversized().filter(lambda s: len(s) > 1023)))
        return Case(
            "malformed alarm",
            "aws.cloudwatch",
            changes=((("detail", "state", "reason"), value),),
            rejected=("detail.state.reason",),
        )
    if where == "detail":
        value = draw(
            st.one_of(st.just(DELETE), st.none(), TEXT, WRONG_TYPES.filter(lambda v: not isinstance(v, dict)))
        )
        return Case(
            "malformed alarm", "aws.cloudwatch", changes=((("detail",), value),), rejected=("detail",)
        )
    value = draw(st.one_of(st.just(DELETE), st.none(), WRONG_TYPES))
    return Case(
        "malformed alarm", "aws.cloudwatch", changes=((("detail-type",), value),), rejected=("detail-type",)
    )


@st.composite
def alarm_that_does_not_gate(draw: st.DrawFn) -> Case:
    """An alarm in ALARM that no registered pair gates on, or that gates the other service only."""
    name = draw(
        st.one_of(
            st.just(ALARMS[BLUE]),
            st.text(min_size=1, max_size=255).filter(lambda n: n not in (*GATING, ALARMS[BLUE])),
            st.sampled_from([f"{PAIR_ALARM} ", PAIR_ALARM.upper(), f"{ALARMS[GREEN]}\x00", "[/]"]),
        )
    )
    why = (
        f"alarm {name} does not gate {GREEN}"
        if name == ALARMS[BLUE]
        else f"no registered pair gates on alarm {name}"
    )
    return Case("alarm not gating green", "aws.cloudwatch", alarm=name, names=(why,))


@st.composite
def gating_alarm_not_in_alarm(draw: st.DrawFn) -> Case:
    name = draw(st.sampled_from(GATING))
    state = draw(st.sampled_from(["OK", "INSUFFICIENT_DATA"]))
    return Case(
        "gating alarm not in ALARM",
        "aws.cloudwatch",
        alarm=name,
        state=state,
        names=(f"alarm {name} is {state}",),
    )


# ---- tasks ---------------------------------------------------------------------------------------------

PLANNED = (
    (None, None),
    ("ServiceSchedulerInitiated", "Scaling activity initiated by (deployment ecs-svc/1)"),
    ("UserInitiated", "Task stopped by user"),
    ("SpotInterruption", "Your Spot Task was interrupted."),
    ("TerminationNotice", "Host EC2 (instance i-1) stopped/terminated"),
    ("ServiceSchedulerInitiated", None),
)


@st.composite
def malformed_task(draw: st.DrawFn) -> Case:
    where = draw(
        st.sampled_from(
            [
                "clusterArn",
                "taskArn",
                "taskDefinitionArn",
                "lastStatus",
                "stopCode",
                "stoppedReason",
                "group",
                "containers",
            ]
        )
    )
    limits = {"stopCode": 255, "stoppedReason": 1024, "group": 263}
    if where in limits:
        value = draw(st.one_of(WRONG_TYPES, oversized().filter(lambda s: len(s) > limits[where])))
    elif where == "containers":
        value = draw(
            st.one_of(
                TEXT,
                st.integers(101, 500).map(lambda n: [{"name": "app"}] * n),
                st.just([{"name": "app", "exitCode": 2**31}]),
                st.just([{"name": "app", "exitCode": 1.5}]),
            )
        )
    else:
        value = draw(
            st.one_of(
                st.just(DELETE),
                st.none(),
                WRONG_TYPES,
                oversized(),
                HOSTILE_TEXT.filter(lambda s: s != "STOPPED"),
            )
        )
    return Case(
        "malformed task event",
        "aws.ecs",
        changes=((("detail", where), value),),
        rejected=(f"detail.{where}",),
    )


@st.composite
def planned_stop(draw: st.DrawFn) -> Case:
    """The release under test's task stopped by the scheduler, a user, Spot or the host: not a crash."""
    code, why = draw(st.sampled_from(PLANNED))
    changes: list[tuple[tuple[str | int, ...], Any]] = [
        (("detail", "stopCode"), code),
        (("detail", "stoppedReason"), why),
    ]
    if code is None:
        changes[0] = (("detail", "stopCode"), DELETE)
    if why is None:
        changes[1] = (("detail", "stoppedReason"), DELETE)
    if draw(st.booleans()):
        changes.append(
            (("detail", "stoppedReason"), draw(TEXT.filter(lambda s: "health check" not in s.lower())))
        )
    return Case("planned stop", "aws.ecs", changes=tuple(changes), names=("stopped as planned",))


@st.composite
def not_the_release_under_test(draw: st.DrawFn) -> Case:
    """A crash, but of another release, service, cluster, or not of a stopped service task."""
    how = draw(st.sampled_from(["release", "service", "blue", "cluster", "status", "group"]))
    if how == "release":
        started_by = draw(st.one_of(st.none(), st.integers(0, 10**19).map(lambda n: f"ecs-svc/{n}")))
        return Case(
            "crash of another release",
            "aws.ecs",
            changes=((("detail", "startedBy"), started_by),),
            names=("is not of a release under test",),
        )
    if how == "service":
        service = draw(st.text(min_size=1, max_size=255).filter(lambda s: s not in (BLUE, GREEN)))
        return Case(
            "crash of an unregistered service",
            "aws.ecs",
            changes=((("detail", "group"), f"service:{service}"),),
            names=("is not part of a registered pair",),
        )
    if how == "blue":
        return Case(
            "crash of the live service",
            "aws.ecs",
            changes=((("detail", "group"), f"service:{BLUE}"),),
            names=("is not of a release under test",),
        )
    if how == "cluster":
        partition = draw(st.sampled_from(["aws", "aws-cn", "aws-us-gov"]))
        region = draw(st.sampled_from([REGION, "eu-west-1"]))
        account = draw(st.sampled_from([ACCOUNT, "999999999999"]))
        cluster = f"arn:{partition}:ecs:{region}:{account}:cluster/{CLUSTER}"
        if cluster == CLUSTER_ARN:
            cluster = f"arn:aws:ecs:{REGION}:999999999999:cluster/{CLUSTER}"
        return Case(
            "crash in another cluster",
            "aws.ecs",
            changes=((("detail", "clusterArn"), cluster),),
            names=("is not the pair's cluster",),
        )
    if how == "status":
        status = draw(st.sampled_from(["RUNNING", "PENDING", "DEPROVISIONING", "STOPPING", "DELETED"]))
        return Case(
            "task not STOPPED",
            "aws.ecs",
            changes=((("detail", "lastStatus"), status),),
            names=("is not a stopped service task",),
        )
    group = draw(
        st.one_of(
            st.just(DELETE), st.none(), st.text(max_size=40).filter(lambda g: not g.startswith("service:"))
        )
    )
    return Case(
        "standalone task",
        "aws.ecs",
        changes=((("detail", "group"), group),),
        names=("is not a stopped service task",),
    )


def cases() -> st.SearchStrategy[Case]:
    return st.one_of(
        malformed_alarm(),
        alarm_that_does_not_gate(),
        gating_alarm_not_in_alarm(),
        malformed_task(),
        planned_stop(),
        not_the_release_under_test(),
        json_values()
        .filter(lambda v: isinstance(v, dict))
        .map(lambda v: Case("any JSON object", "?", replace=v)),
    )


# ---- the tests ------------------------------------------------------------------------------------------


def test_control_a_gating_alarm_interrupts(world: World) -> None:
    """Without this, the invariants below would hold vacuously: a gating alarm does interrupt."""
    result = world.flow.invoke("interrupt", world.flow.alarm_event(PAIR_ALARM, "ALARM"))

    assert [o["action"] for o in result["outcomes"]] == ["rolling_back"], result


def test_control_a_crash_of_the_release_is_counted(world: World) -> None:
    result = world.flow.invoke("interrupt", Case("control", "aws.ecs").build(world))

    assert [o["action"] for o in result["outcomes"]] == ["counted"], result


@fuzz_settings(SIDE_EXAMPLES)
@given(case=cases())
@example(
    case=Case(
        "alarm not gating green",
        "aws.cloudwatch",
        alarm="[/]",
        names=("no registered pair gates on alarm [/]",),
    )
)
def fuzz_interrupt(world: World, case: Case) -> None:
    event = case.build(world)

    with world.watch.unchanged(TARGET):
        result = world.flow.invoke("interrupt", event)

    if case.rejected or case.kind == "any JSON object":
        assert result.get("action") == "rejected", short(result)
        prefix = f"malformed {event.get('detail-type', 'event')}: "
        listed = [path for path, _ in problems_of(str(result["reason"]), prefix)]
        for path in case.rejected:
            assert any(p == path or p.startswith(path + ".") for p in listed), (path, short(result))
        TALLY.rejected(TARGET, f"{case.kind} → rejected")
        return
    actions = sorted({o["action"] for o in result["outcomes"]})
    assert actions == ["ignored"], short(result)
    reasons = " | ".join(o["reason"] for o in result["outcomes"])
    assert all(name in reasons for name in case.names), (case.names, short(reasons))
    TALLY.rejected(TARGET, f"{case.kind} → {'/'.join(actions)}")


def test_events_that_must_not_interrupt_change_nothing(world: World) -> None:
    before = TALLY.row(TARGET)

    fuzz_interrupt(world=world)

    TALLY.assert_clean(TARGET, before, SIDE_EXAMPLES)


# ---- bugs ----------------------------------------------------------------------------------------------


@fuzz_settings(max_examples=20)
@given(payload=json_values().filter(lambda v: not isinstance(v, dict)))
@example(payload=[])
def test_a_payload_that_is_not_an_object_is_rejected(world: World, payload: Any) -> None:
    world.watch.final_check = False

    with world.watch.unchanged(f"{TARGET}, regression: not an object"):
        result = world.flow.invoke("interrupt", payload)

    assert result["action"] == "rejected", result
