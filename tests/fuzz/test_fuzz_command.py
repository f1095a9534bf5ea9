"""Fuzzing the command function: malformed and inapplicable operator commands.

The world holds a deployment of web-green mid-ramp (50/50), so a command that slipped through would
have something to abort, pause or promote. Malformed payloads (missing, mistyped, oversized or unknown
fields, unknown commands, unicode, anything that is not an object) and well-formed commands that do
not apply (unknown pairs, unknown deployments, ``resume`` while running, ``approve``/``reject`` with
no approval pending) must be answered ``accepted: false`` with a reason naming the problem, and
change nothing.
"""

from __future__ import annotations

import copy
import typing
from dataclasses import dataclass
from typing import Any

import pytest
from ecs_canary.events import CommandName
from fuzz_support import (
    HOSTILE_TEXT,
    PAIR,
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

TARGET = "command (operator commands)"
MALFORMED = "malformed command: "
COMMANDS: tuple[str, ...] = typing.get_args(CommandName)
FIELDS = ("pair", "command", "by", "reason", "full", "skip_analysis", "deployment_id")
BY = "arn:aws:sts::123456789012:assumed-role/ops/alice"
DELETE = object()


@dataclass(repr=False)
class World:
    flow: Flow
    watch: Watch
    run: Run

    def __repr__(self) -> str:
        return f"World(deployment={self.run.deployment_id!r})"


@pytest.fixture
def world(flow: Flow, watch: Watch) -> World:
    return World(flow, watch, mid_ramp(flow))


@dataclass(frozen=True)
class Case:
    """A change of ``{"pair": "web", "command": "resume", "by": ...}``, or another payload altogether."""

    kind: str
    changes: tuple[tuple[str, Any], ...] = ()
    paths: tuple[str, ...] = ()
    """For a malformed payload: the fields the rejection must name."""
    names: tuple[str, ...] = ()
    """For a well-formed one: text its refusal must contain."""
    replace: Any = DELETE

    def payload(self) -> Any:
        if self.replace is not DELETE:
            return copy.deepcopy(self.replace)
        payload: dict[str, Any] = {"pair": PAIR, "command": "resume", "by": BY}
        for key, value in self.changes:
            if value is DELETE:
                payload.pop(key, None)
            else:
                payload[key] = value
        return payload


def _bad(field: str) -> st.SearchStrategy[Any]:
    """Values ``field`` must refuse."""
    if field in ("full", "skip_analysis"):
        return st.one_of(
            st.none(),
            st.integers(2, 2**40),
            st.sampled_from(["maybe", "ja", "2", "", "truee"]),
            st.lists(st.booleans()),
            st.dictionaries(TEXT, st.booleans(), max_size=2),
        )
    limits = {"pair": 40, "by": 2048, "reason": 1024, "deployment_id": 128}
    wrong = WRONG_TYPES if field == "deployment_id" else st.one_of(st.none(), WRONG_TYPES)
    values: list[st.SearchStrategy[Any]] = [
        wrong,
        st.lists(st.just("\ud800"), min_size=1, max_size=2).map("".join),
    ]
    if field in limits:
        values.append(oversized().filter(lambda s: len(s) > limits[field]))
    if field in ("pair", "by"):
        values.append(st.just(""))
    if field == "command":
        values.append(
            HOSTILE_TEXT.filter(lambda s: s not in COMMANDS)
            | st.sampled_from(["Abort", "ABORT", " abort", "abort\n", "rollback", "stop", "promote --full"])
        )
    return st.one_of(values)


@st.composite
def malformed(draw: st.DrawFn) -> Case:
    """One to three fields wrong, missing, or unknown."""
    broken = draw(st.lists(st.sampled_from([*FIELDS, "extra"]), min_size=1, max_size=3, unique=True))
    changes: list[tuple[str, Any]] = []
    paths: list[str] = []
    for field in broken:
        if field == "extra":
            key = draw(
                st.text(
                    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-.0123456789é💥",
                    min_size=1,
                    max_size=30,
                )
            )
            if key in FIELDS:
                continue
            changes.append((key, draw(json_values(max_leaves=3))))
            paths.append(key)
        elif field in ("pair", "command", "by") and draw(st.booleans()):
            changes.append((field, DELETE))
            paths.append(field)
        else:
            changes.append((field, draw(_bad(field))))
            paths.append(field)
    if not changes:
        changes, paths = [("command", "rollback")], ["command"]
    return Case("malformed", tuple(changes), tuple(paths))


@st.composite
def unknown_pair(draw: st.DrawFn) -> Case:
    pair = draw(st.text(min_size=1, max_size=40).filter(lambda p: p != PAIR))
    command = draw(st.sampled_from(COMMANDS))
    return Case(
        "unknown pair", (("pair", pair), ("command", command)), names=(f"no service pair named {pair!r}",)
    )


@st.composite
def unknown_deployment(draw: st.DrawFn) -> Case:
    deployment_id = draw(st.text(min_size=1, max_size=128))
    command = draw(st.sampled_from(COMMANDS))
    changes = (("command", command), ("deployment_id", deployment_id))
    return Case("unknown deployment", changes, names=(f"no deployment {deployment_id!r} of pair {PAIR!r}",))


@st.composite
def does_not_apply(draw: st.DrawFn) -> Case:
    """Well-formed commands for the running deployment that its state does not allow."""
    command = draw(st.sampled_from([c for c in COMMANDS if c in ("resume", "approve", "reject")]))
    extras = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "reason": TEXT,
                "by": TEXT.filter(bool),
                "full": st.booleans(),
                "skip_analysis": st.booleans(),
                "deployment_id": st.just(""),
            },
        )
    )
    why = "it is RUNNING" if command == "resume" else "is not waiting for an approval"
    return Case(f"{command} does not apply", (("command", command), *extras.items()), names=(why,))


def cases() -> st.SearchStrategy[Case]:
    return st.one_of(
        malformed(),
        unknown_pair(),
        unknown_deployment(),
        does_not_apply(),
        json_values()
        .filter(lambda v: not isinstance(v, dict))
        .map(lambda v: Case("not an object", replace=v)),
    )


# ---- the tests ------------------------------------------------------------------------------------------


def test_control_a_well_formed_abort_is_accepted(world: World) -> None:
    """Without this, the invariants below would hold vacuously: a real command does act."""
    result = world.flow.invoke("command", {"pair": PAIR, "command": "abort", "by": BY})

    assert result["accepted"] is True, result


@fuzz_settings(SIDE_EXAMPLES)
@given(case=cases())
@example(case=Case("not an object", replace=[]))
@example(case=Case("malformed", (("command", "ABORT"),), ("command",)))
def fuzz_command(world: World, case: Case) -> None:
    with world.watch.unchanged(TARGET):
        result = world.flow.invoke("command", case.payload())

    assert result["accepted"] is False, short(result)
    reason = str(result["reason"])
    if case.kind in ("malformed", "not an object"):
        listed = [path for path, _ in problems_of(reason, MALFORMED)]
        for path in case.paths:
            assert any(p == path or p.startswith(path + ".") for p in listed), (path, short(reason))
    else:
        for name in case.names:
            assert name in reason, (name, short(reason))
    TALLY.rejected(TARGET, f"{case.kind} → refused")


def test_bad_commands_are_refused_naming_the_problem(world: World) -> None:
    before = TALLY.row(TARGET)

    fuzz_command(world=world)

    TALLY.assert_clean(TARGET, before, SIDE_EXAMPLES)
