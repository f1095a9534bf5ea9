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


ROLLOUT = "Roll out"
REFUSE = "Refuse an execution that does not own the deployment"
RECORD_FAILED = "Record that the rollback failed"
# Everything after "Roll back" runs once traffic is restored: its failures end the deployment.
AFTER_ROLLBACK = reachable(STATES, ROLLBACK)
TOP_TASKS = [(n, s) for n, s in STATES.items() if s["Type"] == "Task" and n not in AFTER_ROLLBACK]
ROLLBACK_HOOK_TASKS = [(n, s) for n, s in STATES.items() if s["Type"] == "Task" and "hook" in n]
BRANCH_TASKS = [
    (name, state, branch)
    for branch in STATES[ROLLOUT]["Branches"]
    for name, state in branch["States"].items()
    if state["Type"] == "Task"
]
OPERATOR_SIGNALS = {"PromoteRequested", "ResumeRequested"}


def _catches(state: State) -> dict[str, str]:
    return {error: c["Next"] for c in state.get("Catch", []) for error in c["ErrorEquals"]}


@pytest.mark.parametrize(("name", "state"), TOP_TASKS, ids=[n for n, _ in TOP_TASKS])
def test_failures_lead_into_the_rollback(name: str, state: State) -> None:
    for error, target in _catches(state).items():
        if error == "NotOwner":
            continue
        assert target == ROLLBACK or ROLLBACK in reachable(STATES, target), (
            f"Task {name!r} catches {error} into {target!r}, which never reaches {ROLLBACK!r}"
        )
        assert STATES.get(target, {}).get("Type") != "Succeed", f"{name!r}: a failure must not end in success"


@pytest.mark.parametrize(("name", "state"), ROLLBACK_HOOK_TASKS, ids=[n for n, _ in ROLLBACK_HOOK_TASKS])
def test_rollback_hooks_never_lead_back_to_traffic(name: str, state: State) -> None:
    """on_rollback hooks run after the restore; whatever they do, the deployment only ends."""
    assert name in AFTER_ROLLBACK
    assert ROLLOUT not in reachable(STATES, name)
    assert ROLLBACK not in reachable(STATES, name)
    for target in _catches(state).values():
        assert STATES[target]["Type"] in ("Choice", "Fail")


def test_the_rollout_catches_interrupts_into_the_rollback_and_re_enters_on_operator_commands() -> None:
    catches = _catches(STATES[ROLLOUT])
    assert catches["States.ALL"] == ROLLBACK
    assert catches["NotOwner"] == REFUSE
    for signal in OPERATOR_SIGNALS:
        assert ROLLOUT in reachable(STATES, catches[signal]), f"{signal} must lead back into {ROLLOUT!r}"
        assert ROLLBACK not in reachable(STATES, catches[signal]) - reachable(STATES, ROLLOUT)


@pytest.mark.parametrize(("name", "state", "branch"), BRANCH_TASKS, ids=[n for n, _, _ in BRANCH_TASKS])
def test_branch_failures_end_the_branch_with_the_same_error(
    name: str, state: State, branch: dict[str, Any]
) -> None:
    """Inside the rollout a Catch only names the failure in the console; the rollout's Catch acts on it."""
    for catch in state["Catch"]:
        target = branch["States"][catch["Next"]]
        assert target["Type"] == "Fail", f"{name!r} catches into {catch['Next']!r}, not a Fail state"
        assert target.get("ErrorPath") == f"{catch['ResultPath']}.Error"
        assert target.get("CausePath") == f"{catch['ResultPath']}.Cause"


def test_the_owner_check_never_leads_to_a_restore() -> None:
    """A copy of a deployment's input must end without rolling back on the owner's behalf."""
    for name, state in all_states():
        target = _catches(state).get("NotOwner")
        if target is None or name in ("Stop ramping", "Stop watching"):
            continue
        assert target == REFUSE, f"{name!r} catches NotOwner into {target!r}"
    assert STATES[REFUSE]["Type"] == "Fail"


def _signals() -> set[str]:
    """Every error name the functions fail a task token with (the signals that end the watch)."""
    names: set[str] = set()
    for path in (ROOT / "functions" / "ecs_canary").rglob("*.py"):
        text = path.read_text()
        names |= set(re.findall(r'fail_task\(\s*[\w.]+,\s*"([A-Za-z]+)"', text))
        names |= set(re.findall(r'signal="([A-Za-z]+)"', text))
        names |= set(re.findall(r'_interrupt\([^)]*"([A-Za-z]+)"\)', text))
    return names


def test_the_watch_is_never_retried_after_a_signal() -> None:
    """Its Retry covers the call that stores the token, not the errors interrupts fail it with."""
    watch = STATES[ROLLOUT]["Branches"][1]
    (task,) = [s for s in watch["States"].values() if s["Type"] == "Task"]
    assert task["Resource"] == "${LambdaInvokeWaitIntegration}"
    retried = {error for r in task["Retry"] for error in r["ErrorEquals"]}
    signals = _signals()
    assert {"Aborted", "NewRelease", "HookFailed", "PromoteRequested", "ApprovalDecided"} <= signals
    assert "States.ALL" not in retried
    assert not retried & signals, f"signals retried: {sorted(retried & signals)}"
    # Transient failures of the call itself are retried: a crash or timeout of the function.
    assert {"Runtime.ExitError", "Sandbox.Timedout", "ThrottlingException"} <= retried


def test_each_increment_is_three_states() -> None:
    """Check health and shift traffic -> Is the rollout complete? -> Bake -> back: the normal path."""
    ramp = STATES[ROLLOUT]["Branches"][0]["States"]
    tick = ramp["Check health and shift traffic"]
    choice = ramp[tick["Next"]]
    bake = ramp[choice["Default"]]
    assert choice["Type"] == "Choice"
    assert bake["Type"] == "Wait"
    assert bake["Next"] == "Check health and shift traffic"


def test_the_rollback_retries_and_fails_loudly_when_it_cannot_restore() -> None:
    rollback = STATES[ROLLBACK]
    assert any("States.ALL" in r["ErrorEquals"] and r.get("MaxAttempts", 3) > 0 for r in rollback["Retry"]), (
        "the rollback must retry every error before giving up"
    )
    catches = _catches(rollback)
    assert catches["NotOwner"] == REFUSE
    record = STATES[catches["States.ALL"]]
    assert record["Type"] == "Task", "a rollback that gives up is recorded (ROLLBACK_FAILED) first"
    assert STATES[record["Next"]]["Type"] == "Fail"
    assert all(STATES[c["Next"]]["Type"] == "Fail" for c in record["Catch"])
    # After the restore only the on_rollback hooks (Task/Wait that never reach traffic) run, then it ends.
    after = reachable(STATES, rollback["Next"])
    hooks = {n for n in after if STATES[n]["Type"] in ("Task", "Wait")}
    assert all("hook" in n for n in hooks), f"after the rollback only rollback hooks run: {sorted(hooks)}"
    ends = {STATES[n]["Type"] for n in after - hooks} - {"Choice"}
    assert ends <= {"Fail", "Succeed"}, "after the rollback the execution ends"
    why = STATES["Why did it end?"]
    failing = [STATES[c["Next"]] for c in why["Choices"]]
    assert STATES[why["Default"]]["Type"] == "Fail", "a rolled-back deployment must end as failed"
    assert sum(1 for s in failing if s["Type"] == "Succeed") <= 1


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
