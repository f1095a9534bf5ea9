"""Static checks of the state machine definition (statemachine/canary.asl.json).

The invariants the rollout's safety depends on: every Task either retries or lands in the rollback
path, the rollback itself retries, nothing dangles or is unreachable, and no ARN is hard-coded.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ASL_PATH = ROOT / "statemachine" / "canary.asl.json"
VALIDATOR = ROOT / "node_modules" / ".bin" / "asl-validator"
ROLLBACK = "Roll back"

State = dict[str, Any]

# The only form a Task's Resource may take besides a ${Substitution}: an optimized service
# integration ("arn:aws:states:::lambda:invoke", "...:::ecs:runTask.sync"). These name an API, not
# a resource: no region, no account.
INTEGRATION_ARN = re.compile(r"^arn:aws[a-z-]*:states:::[a-z0-9-]+:[A-Za-z0-9.]+$")
SUBSTITUTION = re.compile(r"^\$\{[A-Za-z0-9_]+\}$")
ARN_LITERAL = re.compile(r"arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d{12}:")
# State names show up in the console and in execution history: they read as sentences ("Wait for
# green to be steady", "Is green steady?") or are one capitalized word ("Bake"); no CamelCase.
SENTENCE = re.compile(r"^[A-Z][A-Za-z0-9,'%()-]*( [A-Za-z0-9,'%()-]+)+[?!.]?$")
ONE_WORD = re.compile(r"^[A-Z][a-z0-9]+$")


def _load() -> dict[str, Any]:
    definition: dict[str, Any] = json.loads(ASL_PATH.read_text(encoding="utf-8"))
    return definition


DEFINITION = _load()
STATES: dict[str, State] = DEFINITION["States"]


def scopes(definition: dict[str, Any], where: str = "top level") -> Iterator[tuple[str, dict[str, Any]]]:
    """The top-level machine plus every Parallel branch and Map iterator, each with its own states."""
    yield where, definition
    for name, state in definition["States"].items():
        for i, branch in enumerate(state.get("Branches", [])):
            yield from scopes(branch, f"branch {i} of {name!r}")
        inner = state.get("ItemProcessor") or state.get("Iterator")
        if inner:
            yield from scopes(inner, f"the iterator of {name!r}")


def all_states() -> Iterator[tuple[str, State]]:
    for _, scope in scopes(DEFINITION):
        yield from scope["States"].items()


def tasks() -> list[tuple[str, State]]:
    return [(name, state) for name, state in all_states() if state["Type"] == "Task"]


TASKS = tasks()
NON_ROLLBACK_TASKS = [(name, state) for name, state in TASKS if name != ROLLBACK]


def transitions(state: State) -> list[str]:
    """Every state name this state can hand over to."""
    targets = [c["Next"] for c in state.get("Choices", [])]
    targets += [c["Next"] for c in state.get("Catch", [])]
    targets += [state[key] for key in ("Next", "Default") if key in state]
    return targets


def reachable(states: dict[str, State], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in states:
            continue
        seen.add(name)
        todo.extend(transitions(states[name]))
    return seen


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def test_definition_has_tasks_and_a_rollback_task() -> None:
    assert TASKS, "no Task states: is this the right file?"
    assert ROLLBACK in STATES, f"the rollback state {ROLLBACK!r} is missing"
    assert STATES[ROLLBACK]["Type"] == "Task"


@pytest.mark.parametrize(("name", "state"), TASKS, ids=[n for n, _ in TASKS])
def test_every_task_retries(name: str, state: State) -> None:
    retries = state.get("Retry", [])
    assert retries, f"Task {name!r} has no Retry"
    assert any(r.get("MaxAttempts", 3) > 0 for r in retries), f"Task {name!r} never actually retries"


@pytest.mark.parametrize(("name", "state"), TASKS, ids=[n for n, _ in TASKS])
def test_every_task_catches_everything(name: str, state: State) -> None:
    catches = state.get("Catch", [])
    assert catches, f"Task {name!r} has no Catch"
    caught = {error for c in catches for error in c["ErrorEquals"]}
    assert "States.ALL" in caught, f"Task {name!r} lets some errors escape its Catch (no States.ALL)"


@pytest.mark.parametrize(("name", "state"), NON_ROLLBACK_TASKS, ids=[n for n, _ in NON_ROLLBACK_TASKS])
def test_failures_lead_into_the_rollback(name: str, state: State) -> None:
    for catch in state["Catch"]:
        target = catch["Next"]
        assert target == ROLLBACK or ROLLBACK in reachable(STATES, target), (
            f"Task {name!r} catches {catch['ErrorEquals']} into {target!r}, which never reaches {ROLLBACK!r}"
        )
        assert STATES.get(target, {}).get("Type") != "Succeed", f"{name!r}: a failure must not end in success"


def test_the_rollback_retries_and_fails_loudly_when_it_cannot_restore() -> None:
    rollback = STATES[ROLLBACK]
    assert any("States.ALL" in r["ErrorEquals"] and r.get("MaxAttempts", 3) > 0 for r in rollback["Retry"]), (
        "the rollback must retry every error before giving up"
    )
    for catch in rollback.get("Catch", []):
        assert STATES[catch["Next"]]["Type"] == "Fail", (
            f"the rollback's own failure goes to {catch['Next']!r}, which is not a Fail state"
        )
    assert STATES[rollback["Next"]]["Type"] == "Fail", (
        "a rolled-back deployment must end the execution as failed"
    )


SCOPES = list(scopes(DEFINITION))


@pytest.mark.parametrize(("where", "scope"), SCOPES, ids=[w for w, _ in SCOPES])
def test_every_transition_target_exists(where: str, scope: dict[str, Any]) -> None:
    states: dict[str, State] = scope["States"]
    assert scope["StartAt"] in states, f"{where}: StartAt {scope['StartAt']!r} is not a state"
    dangling = {
        f"{name} -> {target}"
        for name, state in states.items()
        for target in transitions(state)
        if target not in states
    }
    assert not dangling, f"{where}: transitions to missing states: {sorted(dangling)}"


@pytest.mark.parametrize(("where", "scope"), SCOPES, ids=[w for w, _ in SCOPES])
def test_every_state_is_reachable(where: str, scope: dict[str, Any]) -> None:
    unreachable = set(scope["States"]) - reachable(scope["States"], scope["StartAt"])
    assert not unreachable, f"{where}: states unreachable from {scope['StartAt']!r}: {sorted(unreachable)}"


@pytest.mark.parametrize(("name", "state"), TASKS, ids=[n for n, _ in TASKS])
def test_task_resources_are_integrations_or_substitutions(name: str, state: State) -> None:
    resource = state["Resource"]
    assert SUBSTITUTION.match(resource) or INTEGRATION_ARN.match(resource), (
        f"Task {name!r} has Resource {resource!r}: use a ${{Substitution}} from template.yaml or a "
        "service integration (arn:aws:states:::service:api)"
    )
    target = state.get("Parameters", {}).get("FunctionName")
    if target is not None:
        assert SUBSTITUTION.match(target), f"Task {name!r} names its function literally: {target!r}"


def test_no_literal_account_arns_anywhere() -> None:
    literal = sorted({s for s in strings(DEFINITION) if ARN_LITERAL.search(s)})
    assert not literal, f"ARNs with an account id belong in DefinitionSubstitutions: {literal}"


@pytest.mark.parametrize("name", [n for n, _ in all_states()])
def test_state_names_read_as_sentences(name: str) -> None:
    assert SENTENCE.match(name) or ONE_WORD.match(name), (
        f"state name {name!r} should read as a sentence starting with a capital letter "
        "(e.g. 'Roll back') or be one capitalized word (e.g. 'Bake')"
    )


def test_asl_validator_accepts_the_definition() -> None:
    if not VALIDATOR.exists():
        pytest.skip("asl-validator is not installed (node_modules missing): run `npm ci` or `make install`")
    if shutil.which("node") is None:
        pytest.skip("node is not on PATH, asl-validator cannot run")
    result = subprocess.run(
        [str(VALIDATOR), "--json-path", str(ASL_PATH)],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert result.returncode == 0, f"asl-validator rejected {ASL_PATH.name}:\n{result.stdout}{result.stderr}"
