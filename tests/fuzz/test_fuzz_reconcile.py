"""Fuzzing reconcile: Step Functions "Execution Status Change" events that are not the owner's end.

The world holds a deployment mid-ramp (50/50) whose owner execution is running. The generated events
are malformed envelopes and details, inputs that are not JSON or not objects, copies of the
execution (same input, another execution ARN), unknown pairs and deployments, and the owner's own
execution with a status other than ABORTED, TIMED_OUT or FAILED.

Which exceptions are acceptable: only the ``pydantic.ValidationError`` Powertools' ``event_parser``
raises for a structurally invalid envelope or detail. Such an event must fail loudly (Lambda's
asynchronous retries, then the stack's dead-letter queue and its alarm) rather than be dropped,
but it must change nothing. Every other input is answered ``ignored``; none changes the record,
the lock, the executions or the weights (only the owner's real end may, see the control test).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from ecs_canary.spec import PAIR_NAME_PATTERN
from fuzz_support import (
    ACCOUNT,
    EXAMPLES,
    GREEN,
    HOSTILE_TEXT,
    PAIR,
    REGION,
    TALLY,
    WRONG_TYPES,
    Flow,
    Run,
    Watch,
    fuzz_settings,
    json_values,
    long_text,
    mid_ramp,
    oversized,
    short,
)
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

pytest_plugins = ["flow_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

TARGET = "reconcile (Execution Status Change)"
ENDED = ("ABORTED", "TIMED_OUT", "FAILED")
OWN_MACHINE = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:CanaryStateMachine"


@dataclass
class World:
    flow: Flow
    watch: Watch
    run: Run
    input: str
    """The owner's input, exactly as Step Functions reports it in ``detail.input``."""

    def event(
        self,
        status: str = "ABORTED",
        *,
        execution_input: Any = None,
        name: str | None = None,
        machine: str | None = None,
    ) -> Any:
        raw = self.input if execution_input is None else execution_input
        return self.flow.execution_status_event(
            status, execution_input=raw, name=name or self.run.deployment_id, state_machine_arn=machine
        )


@pytest.fixture
def world(flow: Flow, watch: Watch) -> World:
    run = mid_ramp(flow)
    recorded = str(flow.sfn.describe_execution(executionArn=run.execution)["input"])
    return World(flow, watch, run, recorded)


# ---- generated events --------------------------------------------------------------------------------

DETAIL_STRINGS = ("executionArn", "stateMachineArn", "name", "status")
ENVELOPE_STRINGS = ("version", "id", "source", "account", "region", "detail-type")
DELETE = object()


@dataclass(frozen=True)
class Case:
    """A change of the owner's ABORTED event; ``loud`` when the parser must refuse it."""

    kind: str
    changes: tuple[tuple[tuple[str, ...], Any], ...] = ()
    status: str = "ABORTED"
    execution_input: Any = None
    name: str | None = None
    machine: str | None = None
    loud: tuple[str, ...] = ()
    """Paths the parser's error must name (the event is structurally invalid)."""
    names: tuple[str, ...] = ()
    """Text the ``ignored`` reason must contain."""
    replace: Any = DELETE

    def build(self, world: World) -> Any:
        if self.replace is not DELETE:
            return copy.deepcopy(self.replace)
        event = world.event(
            self.status, execution_input=self.execution_input, name=self.name, machine=self.machine
        )
        for path, value in self.changes:
            target = event
            for key in path[:-1]:
                target = target[key]
            if value is DELETE:
                target.pop(path[-1], None)
            else:
                target[path[-1]] = value
        return event


@st.composite
def malformed(draw: st.DrawFn) -> Case:
    """The owner's real end with its envelope or detail broken: must fail loudly, change nothing."""
    where = draw(st.sampled_from([*ENVELOPE_STRINGS, "time", "detail", *DETAIL_STRINGS, "input", "error"]))
    if where in ENVELOPE_STRINGS:
        return Case(
            "malformed envelope",
            (((where,), draw(st.one_of(st.just(DELETE), st.none(), WRONG_TYPES))),),
            loud=(where,),
        )
    if where == "time":
        value = draw(st.one_of(st.just(DELETE), st.none(), st.sampled_from(["soon", ""]), oversized("x")))
        return Case("malformed envelope", ((("time",), value),), loud=("time",))
    if where == "detail":
        value = draw(
            st.one_of(
                st.just(DELETE),
                st.none(),
                HOSTILE_TEXT,
                WRONG_TYPES.filter(lambda v: not isinstance(v, dict)),
            )
        )
        return Case("malformed detail", ((("detail",), value),), loud=("detail",))
    if where in DETAIL_STRINGS:
        value = draw(st.one_of(st.just(DELETE), st.none(), WRONG_TYPES))
        return Case("malformed detail", ((("detail", where), value),), loud=(f"detail.{where}",))
    if where == "input":
        return Case("malformed detail", ((("detail", "input"), draw(WRONG_TYPES)),), loud=("detail.input",))
    return Case("malformed detail", ((("detail", where), draw(WRONG_TYPES)),), loud=(f"detail.{where}",))


def not_an_envelope() -> st.SearchStrategy[Case]:
    return (
        json_values()
        .filter(lambda v: not isinstance(v, dict) or "detail" not in v)
        .map(lambda v: Case("not an envelope", replace=v, loud=("",)))
    )


@st.composite
def not_a_deployment_input(draw: st.DrawFn) -> Case:
    """The owner's ARN and an ending status, but an input that names no deployment."""
    objects = st.dictionaries(
        st.sampled_from(["pair", "deployment_id", "release", "x"]), json_values(max_leaves=4), max_size=3
    ).filter(lambda d: not (isinstance(d.get("pair"), str) and isinstance(d.get("deployment_id"), str)))
    raw = draw(
        st.one_of(
            st.none(),
            HOSTILE_TEXT,
            oversized("{"),
            json_values().filter(lambda v: not isinstance(v, dict)).map(json.dumps),
            objects.map(json.dumps),
            st.just('{"pair": "web", "deployment_id": '),
        )
    )
    raw = "" if raw is None else raw
    status = draw(st.sampled_from(ENDED))
    return Case(
        "input names no deployment", status=status, execution_input=raw, names=("is not a deployment",)
    )


@st.composite
def copy_of_the_execution(draw: st.DrawFn) -> Case:
    """The owner's input, but another execution: a console "New execution", a script, another machine."""
    status = draw(st.sampled_from(ENDED))
    how = draw(st.sampled_from(["name", "machine", "arn"]))
    if how == "name":
        name = draw(st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=80))
        return Case(
            "copy of the execution", status=status, name=name, names=("is not the execution of deployment",)
        )
    if how == "machine":
        region = draw(st.sampled_from([REGION, "eu-west-1"]))
        account = draw(st.sampled_from([ACCOUNT, "999999999999"]))
        machine_name = draw(st.sampled_from(["Copy", "CanaryStateMachine"]))
        machine = f"arn:aws:states:{region}:{account}:stateMachine:{machine_name}"
        if machine == OWN_MACHINE:  # that would be the owner itself
            machine = machine.replace(":stateMachine:CanaryStateMachine", ":stateMachine:Copy")
        return Case(
            "copy of the execution",
            status=status,
            machine=machine,
            names=("is not the execution of deployment",),
        )
    arn = draw(st.one_of(HOSTILE_TEXT, oversized("arn:aws:states:")))
    return Case(
        "copy of the execution",
        ((("detail", "executionArn"), arn),),
        status=status,
        names=("is not the execution of deployment",),
    )


@st.composite
def unknown_deployment(draw: st.DrawFn) -> Case:
    """An input naming a pair or deployment that does not exist (within DynamoDB's key limits)."""
    pair = draw(st.one_of(st.just(PAIR), st.text(min_size=0, max_size=60), long_text("p", 2000, 2043)))
    deployment_id = draw(st.one_of(st.text(min_size=0, max_size=60), long_text("d", 900, 1013)))
    raw = json.dumps({"pair": pair, "deployment_id": deployment_id, "release": {"service": GREEN}})
    owner = draw(st.booleans())
    return Case(
        "unknown pair or deployment",
        status=draw(st.sampled_from(ENDED)),
        execution_input=raw,
        name=None if owner else draw(st.text("abc123-", min_size=1, max_size=80)),
        # A pair name no spec may have (or an id longer than any ecs-canary makes) cannot be a
        # deployment at all; a plausible one is looked up and not found.
        names=(
            ("has no deployment",)
            if re.fullmatch(PAIR_NAME_PATTERN, pair) and len(deployment_id.encode()) <= 512
            else ("is not a deployment",)
        ),
    )


@st.composite
def not_an_end(draw: st.DrawFn) -> Case:
    """The owner's own execution and input, with a status that is not an end outside the state machine."""
    status = draw(
        st.one_of(
            st.sampled_from(
                ["RUNNING", "SUCCEEDED", "PENDING_REDRIVE", "aborted", "Failed", "TIMED OUT", ""]
            ),
            HOSTILE_TEXT.filter(lambda s: s not in ENDED),
            oversized(),
        )
    )
    return Case("status not an end", status=status, names=(f"({status}) is not a deployment",))


@st.composite
def hostile_copy(draw: st.DrawFn) -> Case:
    """A copy whose name, error and cause are hostile text."""
    changes = (
        (("detail", "name"), draw(st.one_of(HOSTILE_TEXT, oversized()))),
        (("detail", "error"), draw(st.one_of(st.none(), HOSTILE_TEXT, oversized()))),
        (("detail", "cause"), draw(st.one_of(st.none(), HOSTILE_TEXT, oversized()))),
        (("detail", "executionArn"), draw(st.one_of(HOSTILE_TEXT, oversized()))),
    )
    return Case("hostile copy", changes, status=draw(st.sampled_from(ENDED)), names=("is not the execution",))


def cases() -> st.SearchStrategy[Case]:
    return st.one_of(
        malformed(),
        not_an_envelope(),
        not_a_deployment_input(),
        copy_of_the_execution(),
        unknown_deployment(),
        not_an_end(),
        hostile_copy(),
    )


def _located(error: ValidationError) -> list[str]:
    return [".".join(str(part) for part in e["loc"]) for e in error.errors()]


# ---- the tests -----------------------------------------------------------------------------------------


def test_control_the_owners_end_restores_the_snapshot(world: World) -> None:
    """Without this, the invariants below would hold vacuously: the owner's real end does act."""
    result = world.flow.invoke("reconcile", world.event("ABORTED"))

    assert result["action"] == "reconciled", result
    assert world.flow.weights() == {"web-blue": 100, "web-green": 0}


@fuzz_settings()
@given(case=cases())
@example(case=Case("not an envelope", replace=[], loud=("",)))
@example(case=Case("input names no deployment", execution_input="[1, 2]", names=("is not a deployment",)))
@example(case=Case("status not an end", status="SUCCEEDED", names=("(SUCCEEDED) is not a deployment",)))
@example(case=Case("copy of the execution", name="copy", names=("is not the execution of deployment",)))
def fuzz_reconcile(world: World, case: Case) -> None:
    """One event: no traffic or record change; the only exception is the parser's, for a structurally
    invalid event, and it names the field."""
    event = case.build(world)
    result: Any = None
    located: list[str] | None = None

    with world.watch.unchanged(TARGET):
        try:
            result = world.flow.invoke("reconcile", event)
        except ValidationError as exc:
            if not case.loud:
                raise
            located = _located(exc)

    if case.loud:
        assert result is None, f"a structurally invalid event was accepted: {short(result)}"
        assert located, "the parser's error names no field"
        for path in case.loud:
            assert any(loc == path or loc.startswith(path) for loc in located), (path, located)
        TALLY.envelope_failures[TARGET] += 1
        TALLY.rejected(TARGET, f"{case.kind} → ValidationError (loud)")
        return
    assert result["action"] == "ignored", short(result)
    for name in case.names:
        assert name in result["reason"], (name, short(result["reason"]))
    TALLY.rejected(TARGET, f"{case.kind} → {result['action']}")


def test_events_that_are_not_the_owners_end_change_nothing(world: World) -> None:
    """At least EXAMPLES events, every one refused naming why; no record, lock, execution or weight moves."""
    before = TALLY.row(TARGET)

    fuzz_reconcile(world=world)

    TALLY.assert_clean(TARGET, before, EXAMPLES)


# ---- bugs ---------------------------------------------------------------------------------------------


@fuzz_settings(max_examples=20)
@given(pair=long_text("p", 2044, 200_000), deployment_id=long_text("d", 1, 2000))
@example(pair="p" * 2044, deployment_id="d")
def test_an_oversized_pair_in_the_input_is_ignored(world: World, pair: str, deployment_id: str) -> None:
    world.watch.final_check = False
    raw = json.dumps({"pair": pair, "deployment_id": deployment_id})
    event = world.event("FAILED", execution_input=raw, name="started-by-hand")

    with world.watch.unchanged(f"{TARGET}, regression: key size"):
        result = world.flow.invoke("reconcile", event)

    assert result["action"] == "ignored", result
