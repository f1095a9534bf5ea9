"""Fuzzing the filter: malformed, hostile and forged ECS "Task State Change" events.

The world holds a registered pair whose idle service (web-green) has a real new release pending:
its own event would start a deployment (the control test proves it). Every generated event is that
event with something broken (a field missing, of the wrong type, oversized, unicode, an ARN of
another partition, region or account, a ``startedBy`` ECS never issued, a status other than
RUNNING, a group that is not ``service:``, a service nobody registered) or any JSON at all. For
each one the filter must not raise, start no execution, write nothing, leave the weights alone and
say why, naming the offending field or the problem.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import pytest
from fuzz_support import (
    ACCOUNT,
    BLUE,
    CLUSTER,
    CLUSTER_ARN,
    EXAMPLES,
    GREEN,
    HOSTILE_TEXT,
    PAIR,
    REGION,
    SURROGATE,
    TALLY,
    TEXT,
    WRONG_TYPES,
    Flow,
    Watch,
    fuzz_settings,
    json_values,
    long_text,
    oversized,
    problems_of,
    short,
)
from hypothesis import example, given
from hypothesis import strategies as st

pytest_plugins = ["flow_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

TARGET = "filter (ECS Task State Change)"
MALFORMED = "malformed ECS Task State Change event: "
STATUSES = (
    "PROVISIONING",
    "PENDING",
    "ACTIVATING",
    "RUNNING",
    "DEACTIVATING",
    "STOPPING",
    "DEPROVISIONING",
    "STOPPED",
    "DELETED",
)


class Ref(Enum):
    """A value only the world knows (moto picks ECS deployment ids), resolved when the event is built."""

    BASELINE = "green's release before the new one (its idle baseline)"
    BLUE_RELEASE = "the live service's current ECS deployment"


DELETE = object()
"""A change that removes the field."""

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Case:
    """One generated event: the real release's event with ``changes``, or ``replace`` instead.

    ``action`` is what the filter must answer; every string of ``names`` must appear in its reason,
    and for a rejection every path of ``paths`` must be one of the problems it lists.
    """

    kind: str
    changes: tuple[tuple[Path, Any], ...] = ()
    action: str = "rejected"
    names: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    replace: Any = DELETE

    def event(self, world: World) -> Any:
        if self.replace is not DELETE:
            return copy.deepcopy(self.replace)
        event = world.flow.task_event(GREEN, world.release)
        for path, value in self.changes:
            _apply(event, path, world.resolve(value))
        return event


def _apply(event: dict[str, Any], path: Path, value: Any) -> None:
    target: Any = event
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value


@dataclass(repr=False)
class World:
    """The flow world: the pair registered by cluster ARN (as ``register`` does), a release pending."""

    flow: Flow
    watch: Watch
    release: str
    refs: dict[Ref, str] = field(default_factory=dict)

    def resolve(self, value: Any) -> Any:
        return self.refs[value] if isinstance(value, Ref) else value

    def __repr__(self) -> str:
        return f"World(release={self.release!r})"


@pytest.fixture
def world(flow: Flow, watch: Watch) -> World:
    flow.register(cluster_arn=CLUSTER_ARN)
    baseline = flow.deployment_of(GREEN)
    release = flow.new_release(GREEN)
    return World(flow, watch, release, {Ref.BASELINE: baseline, Ref.BLUE_RELEASE: flow.deployment_of(BLUE)})


# ---- values -------------------------------------------------------------------------------------------

PARTITIONS = ("aws", "aws-cn", "aws-us-gov", "aws-iso-b")
REGIONS = ("us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1", "ap-southeast-2")
ACCOUNTS = ("123456789012", "999999999999", "000000000000")
NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"

names = st.one_of(st.text(NAME_CHARS, min_size=1, max_size=24), long_text(NAME_CHARS, 255, 255))
accounts = st.one_of(st.sampled_from(ACCOUNTS), st.text("0123456789", min_size=12, max_size=12))


@st.composite
def arns(draw: st.DrawFn, resource: str) -> str:
    """A well-formed ECS ARN of any partition, region and account (``resource`` is cluster, task...)."""
    partition, region, account = (
        draw(st.sampled_from(PARTITIONS)),
        draw(st.sampled_from(REGIONS)),
        draw(accounts),
    )
    head = f"arn:{partition}:ecs:{region}:{account}"
    if resource == "cluster":
        return f"{head}:cluster/{draw(names)}"
    if resource == "task":
        task_id = draw(st.text("0123456789abcdef-", min_size=1, max_size=64))
        return f"{head}:task/{draw(names)}/{task_id}"
    return f"{head}:task-definition/{draw(names)}:{draw(st.integers(1, 999_999_999))}"


# Strings one step away from what the models accept.
NEAR_MISSES = {
    "clusterArn": (
        CLUSTER,
        f"arn:aws:ecs:{REGION}:{ACCOUNT[:-1]}:cluster/{CLUSTER}",
        f"arn:aws:ecs:{REGION.upper()}:{ACCOUNT}:cluster/{CLUSTER}",
        f"arn:aws:ec2:{REGION}:{ACCOUNT}:cluster/{CLUSTER}",
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/",
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{CLUSTER}",
        f"{CLUSTER_ARN}\n",
        f" {CLUSTER_ARN}",
        f"{CLUSTER_ARN}/extra",
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{'p' * 256}",
        f"arn:Aws:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER}",
    ),
    "taskArn": (
        "task/1",
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{CLUSTER}/",
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{CLUSTER}/{'a' * 65}",
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{CLUSTER}/abc\n",
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{CLUSTER}/ab_c",
    ),
    "taskDefinitionArn": (
        "web-green:2",
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web-green",
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web-green:",
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web-green:1234567890",
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web-green:-1",
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web green:2",
    ),
    "startedBy": ("", "ecs-svc/1;drop", "ecs-svc/1 2", "ecs-svc:1", "ecs-svc/" + "1" * 121, "ecs-svc/1\n"),
    "lastStatus": ("running", "Running", " RUNNING", "RUNNING\n", "RUN", ""),
}


def _bad_string(field_name: str) -> st.SearchStrategy[Any]:
    """Values a pattern- or literal-checked string field must refuse."""
    return st.one_of(
        st.sampled_from(NEAR_MISSES.get(field_name, NEAR_MISSES["lastStatus"])),
        oversized(),
        HOSTILE_TEXT.filter(lambda s: s not in STATUSES),
        st.lists(SURROGATE, min_size=1, max_size=2).map(lambda s: "RUNNING" + "".join(s)),
    )


# ---- malformed events: the schema refuses them ----------------------------------------------------------

ENVELOPE_STRINGS = ("version", "id", "source", "account", "region", "detail-type")
REQUIRED_DETAIL = ("clusterArn", "taskArn", "taskDefinitionArn", "lastStatus", "desiredStatus")


@st.composite
def broken_field(draw: st.DrawFn) -> tuple[Path, Any, str]:
    """One field made invalid: (where, its new value or DELETE, the problem path the reason must list)."""
    where = draw(
        st.sampled_from(
            [
                *ENVELOPE_STRINGS,
                "time",
                "resources",
                "detail",
                *REQUIRED_DETAIL,
                "group",
                "startedBy",
                "stopCode",
                "stoppedReason",
                "containers",
                "container",
            ]
        )
    )
    if where in ENVELOPE_STRINGS:
        value = draw(st.one_of(st.just(DELETE), st.none(), WRONG_TYPES))
        return (where,), value, where
    if where == "time":
        bad_times = st.sampled_from(["yesterday", "2026-13-45T00:00:00Z", "", "T", "2026-01-01T25:00:00Z"])
        value = draw(
            st.one_of(st.just(DELETE), st.none(), bad_times, oversized("x"), st.lists(st.integers()))
        )
        return ("time",), value, "time"
    if where == "resources":
        value = draw(
            st.one_of(
                st.just(DELETE),
                st.none(),
                st.text(max_size=5),
                st.integers(),
                st.lists(st.one_of(st.integers(), st.none(), st.booleans()), min_size=1, max_size=3),
            )
        )
        return ("resources",), value, "resources"
    if where == "detail":
        value = draw(
            st.one_of(
                st.just(DELETE),
                st.none(),
                WRONG_TYPES.filter(lambda v: not isinstance(v, dict)),
                HOSTILE_TEXT,
            )
        )
        return ("detail",), value, "detail"
    if where in REQUIRED_DETAIL:
        value = draw(st.one_of(st.just(DELETE), st.none(), WRONG_TYPES, _bad_string(where)))
        return ("detail", where), value, f"detail.{where}"
    if where == "group":
        value = draw(st.one_of(WRONG_TYPES, oversized("service:")))
        return ("detail", "group"), value, "detail.group"
    if where == "startedBy":
        value = draw(st.one_of(WRONG_TYPES, _bad_string("startedBy")))
        return ("detail", "startedBy"), value, "detail.startedBy"
    if where in ("stopCode", "stoppedReason"):
        limit = 255 if where == "stopCode" else 1024
        value = draw(st.one_of(WRONG_TYPES, oversized().filter(lambda s: len(s) > limit)))
        return ("detail", where), value, f"detail.{where}"
    if where == "containers":
        value = draw(
            st.one_of(
                st.none(),
                st.text(max_size=5),
                st.integers(),
                st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                st.integers(101, 1_000).map(lambda n: [{"name": "app"}] * n),
            )
        )
        return ("detail", "containers"), value, "detail.containers"
    part = draw(st.sampled_from(["name", "exitCode", "reason", "lastStatus"]))
    if part == "exitCode":
        value = draw(
            st.one_of(
                st.integers(2**31, 2**80),
                st.integers(-(2**80), -(2**31) - 1),
                st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
                st.sampled_from(["one", "", "0x1", "1e400"]),
                st.lists(st.integers(), max_size=2),
            )
        )
    else:
        limit = 1024 if part == "reason" else 255
        value = draw(st.one_of(WRONG_TYPES, oversized().filter(lambda s: len(s) > limit)))
    return ("detail", "containers", 0, part), value, f"detail.containers.0.{part}"


@st.composite
def malformed(draw: st.DrawFn) -> Case:
    """The real release's event with one to three fields the schema refuses."""
    broken = draw(st.lists(broken_field(), min_size=1, max_size=3, unique_by=lambda b: b[0][:2]))
    if any(path == ("detail",) for path, _, _ in broken):  # the whole detail is gone: only it is named
        broken = [b for b in broken if len(b[0]) == 1]
    if any(path[:2] == ("detail", "containers") and len(path) == 2 for path, _, _ in broken):
        broken = [b for b in broken if b[0][:3] != ("detail", "containers", 0)]
    return Case(
        "malformed",
        tuple((path, value) for path, value, _ in broken),
        "rejected",
        paths=tuple(problem for _, _, problem in broken),
    )


def any_json() -> st.SearchStrategy[Case]:
    """Any JSON at all, as the whole event or as its detail."""
    whole = json_values().map(lambda v: Case("any JSON", replace=v))
    as_detail = json_values().map(lambda v: Case("any JSON detail", ((("detail",), v),), paths=("detail",)))
    return st.one_of(whole, as_detail)


# ---- well-formed but not a release: the filter ignores them ----------------------------------------------


@st.composite
def not_running(draw: st.DrawFn) -> Case:
    last = draw(st.sampled_from(STATUSES))
    desired = draw(st.sampled_from(STATUSES))
    if last == desired == "RUNNING":
        desired = draw(st.sampled_from([s for s in STATUSES if s != "RUNNING"]))
    changes = ((("detail", "lastStatus"), last), (("detail", "desiredStatus"), desired))
    return Case("status not RUNNING", changes, "ignored", (f"{last}/{desired}, not RUNNING",))


@st.composite
def not_a_service(draw: st.DrawFn) -> Case:
    group = draw(
        st.one_of(
            st.just(DELETE),
            st.none(),
            st.just("service:"),
            st.sampled_from(
                ["family:web-green", "Service:web-green", "SERVICE:web-green", " service:web-green"]
            ),
            st.text(max_size=263).filter(lambda g: not g.startswith("service:")),
        )
    )
    return Case(
        "group not service:", ((("detail", "group"), group),), "ignored", ("not started by a service",)
    )


@st.composite
def unregistered_service(draw: st.DrawFn) -> Case:
    service = draw(
        st.one_of(st.text(min_size=1, max_size=255), names).filter(lambda s: s not in (BLUE, GREEN))
    )
    changes: list[tuple[Path, Any]] = [(("detail", "group"), f"service:{service}")]
    if draw(st.booleans()):  # any cluster, any release: still nobody's service
        changes.append((("detail", "clusterArn"), draw(arns("cluster"))))
        changes.append((("detail", "startedBy"), draw(forged_started_by())))
    return Case("unregistered service", tuple(changes), "ignored", ("is not part of a registered pair",))


@st.composite
def other_cluster(draw: st.DrawFn) -> Case:
    """The release's event from a cluster that is not the pair's (same name elsewhere, or another name)."""
    cluster = draw(arns("cluster").filter(lambda arn: arn != CLUSTER_ARN))
    same_name = cluster.rsplit("/", 1)[-1] == CLUSTER
    reason = f"cluster {cluster} is not the pair's registered cluster" if same_name else "is not part of a"
    return Case("other cluster", ((("detail", "clusterArn"), cluster),), "ignored", (reason,))


@st.composite
def forged_started_by(draw: st.DrawFn) -> str:
    """A well-formed ECS deployment id that ECS never issued."""
    return draw(
        st.one_of(
            st.integers(0, 10**19 - 1).map(lambda n: f"ecs-svc/{n}"),
            st.text(NAME_CHARS + "/", min_size=1, max_size=120).map(lambda s: f"ecs-svc/{s}"),
        )
    )


@st.composite
def forged(draw: st.DrawFn) -> Case:
    """A ``startedBy`` ECS never issued, with any other well-formed fields (ARNs of anywhere, any text)."""
    started_by = draw(forged_started_by())
    changes: list[tuple[Path, Any]] = [(("detail", "startedBy"), started_by)]
    extras = {
        ("detail", "taskArn"): arns("task"),
        ("detail", "taskDefinitionArn"): arns("task-definition"),
        ("source",): st.one_of(TEXT, oversized()),
        ("region",): st.one_of(st.sampled_from(REGIONS), oversized()),
        ("account",): st.one_of(accounts, TEXT),
        ("id",): st.one_of(TEXT, oversized()),
        ("resources",): st.lists(TEXT, max_size=3),
        ("detail", "stoppedReason"): TEXT,
        ("detail", "containers"): st.lists(
            st.fixed_dictionaries({"name": TEXT, "exitCode": st.integers(-(2**31), 2**31 - 1)}),
            max_size=3,
        ),
    }
    chosen = draw(st.lists(st.sampled_from(sorted(extras, key=str)), unique=True, max_size=4))
    changes += [(path, draw(extras[path])) for path in chosen]
    return Case(
        "forged startedBy",
        tuple(changes),
        "ignored",
        (f"{started_by} is not a current ECS deployment of {GREEN}", "nothing was started"),
    )


@st.composite
def not_a_deployment(draw: st.DrawFn) -> Case:
    started_by = draw(
        st.one_of(
            st.just(DELETE),
            st.none(),
            st.text(NAME_CHARS + "/", min_size=1, max_size=128).filter(
                lambda s: not s.startswith("ecs-svc/")
            ),
        )
    )
    reason = f"task of {GREEN} not started by an ECS service deployment"
    return Case("startedBy not ecs-svc/", ((("detail", "startedBy"), started_by),), "ignored", (reason,))


def stale_or_foreign_release() -> st.SearchStrategy[Case]:
    baseline = Case(
        "idle baseline",
        ((("detail", "startedBy"), Ref.BASELINE),),
        "ignored",
        (f"is the release {GREEN} already ran when it became idle",),
    )
    blue = Case(
        "live service's release on green",
        ((("detail", "startedBy"), Ref.BLUE_RELEASE),),
        "ignored",
        (f"is not a current ECS deployment of {GREEN}",),
    )
    live = Case(
        "live service's task",
        ((("detail", "group"), f"service:{BLUE}"),),
        "ignored",
        (f"{BLUE} is the live service of {PAIR}",),
    )
    return st.sampled_from([baseline, blue, live])


def cases() -> st.SearchStrategy[Case]:
    return st.one_of(
        malformed(),
        any_json(),
        not_running(),
        not_a_service(),
        unregistered_service(),
        other_cluster(),
        forged(),
        not_a_deployment(),
        stale_or_foreign_release(),
    )


def check(case: Case, result: Mapping[str, Any]) -> None:
    """The answer is the expected action, and its reason says what is wrong.

    A malformed event may also be ignored instead of rejected when a broken field leaves it no
    release at all (e.g. a ``startedBy`` that is no ECS deployment): either way nothing starts, and the
    reason says why. A rejection names at least one of the broken fields (the envelope is checked
    before the detail, so a broken envelope can hide a broken detail).
    """
    reason = str(result["reason"])
    assert reason.strip(), short(result)
    if case.action == "rejected" and result["action"] == "ignored":
        return
    assert result["action"] == case.action, short(result)
    for name in case.names:
        assert name in reason, f"{name!r} not in {short(reason)}"
    if case.action == "rejected":
        listed = [path for path, _ in problems_of(reason, MALFORMED)]
        named = [path for path in case.paths if any(p == path or p.startswith(path + ".") for p in listed)]
        assert named or not case.paths, (case.paths, short(reason))
        assert set(result) == {"action", "reason"}, short(result)


# ---- the tests ------------------------------------------------------------------------------------------


def test_control_the_pending_release_starts_exactly_once(world: World) -> None:
    """Without this, every invariant below would hold vacuously: the real event does start."""
    result = world.flow.invoke("filter", world.flow.task_event(GREEN, world.release))

    assert result["action"] == "started", result
    assert len(world.flow.executions()) == 1


@fuzz_settings()
@given(case=cases())
@example(case=Case("any JSON", replace=[]))
@example(case=Case("any JSON", replace={}))
@example(
    case=Case("malformed", ((("detail", "clusterArn"), f"{CLUSTER_ARN}\n"),), paths=("detail.clusterArn",))
)
@example(
    case=Case("malformed", ((("detail", "group"), "service:" + "g" * 200_000),), paths=("detail.group",))
)
def fuzz_filter(world: World, case: Case) -> None:
    """One bad event: no exception, no execution, no write, no traffic change, a reason that names it."""
    event = case.event(world)

    with world.watch.unchanged(TARGET):
        result = world.flow.invoke("filter", event)

    check(case, result)
    TALLY.rejected(TARGET, f"{case.kind} → {result['action']}")


def test_bad_events_start_nothing_and_name_the_problem(world: World) -> None:
    """At least EXAMPLES bad events, every one refused naming its problem, nothing started or moved."""
    before = TALLY.row(TARGET)

    fuzz_filter(world=world)

    TALLY.assert_clean(TARGET, before, EXAMPLES)


# ---- bugs ---------------------------------------------------------------------------------------------


@fuzz_settings(max_examples=20)
@given(task_definition=arns("task-definition"))
@example(task_definition=f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/x:1")
def test_a_forged_task_definition_starts_nothing(world: World, task_definition: Any) -> None:
    world.watch.final_check = False
    event = world.flow.task_event(GREEN, world.release, task_definition=task_definition)

    with world.watch.unchanged(f"{TARGET}, regression: task definition"):
        result = world.flow.invoke("filter", event)

    assert result["action"] == "ignored", result


@pytest.fixture
def legacy_world(flow: Flow, watch: Watch) -> World:
    """The pair stored without its cluster ARN (``Store.put_pair``'s default; pairs registered before it)."""
    flow.register()
    release = flow.new_release(GREEN)
    return World(flow, watch, release)


@fuzz_settings(max_examples=10)
@given(partition=st.sampled_from(PARTITIONS[1:]))
@example(partition="aws-cn")
def test_a_cluster_of_another_partition_starts_nothing(legacy_world: World, partition: str) -> None:
    legacy_world.watch.final_check = False
    cluster = f"arn:{partition}:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER}"
    event = legacy_world.flow.task_event(GREEN, legacy_world.release, cluster=cluster)

    with legacy_world.watch.unchanged(f"{TARGET}, regression: partition"):
        result = legacy_world.flow.invoke("filter", event)

    assert result["action"] == "ignored", result
    assert partition in result["reason"]
