"""``ecs-canary wait``: follows one named release to its end; the clock is driven by the test."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from ecs_canary.flow.identity import deployment_id_for
from ecs_canary.store import Release, Status
from ecs_canary_cli.commands import wait
from ecs_canary_cli.main import build_parser

from .conftest import Run
from .infra import BLUE, GREEN, PAIR, Stack, World, finish, ramp, start_deployment

Step = Callable[[], None]

TASK_DEFINITION = "arn:aws:ecs:us-east-1:123456789012:task-definition/shop:{}"


@dataclass
class Clock:
    """Replaces ``sleep``/``monotonic`` in the wait loop; each sleep runs the next scripted change."""

    now: float = 1000.0
    script: list[Step] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.script:
            self.script.pop(0)()

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(wait, "sleep", fake.sleep)
    monkeypatch.setattr(wait, "monotonic", fake.monotonic)
    return fake


def nothing() -> None:
    """A poll where nothing changed."""


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def reject(stack: Stack, release: str) -> str:
    """Record a release the pair refused (``on_new_release: reject``), as the filter does."""
    rel = Release(GREEN, release, TASK_DEFINITION.format(release[-1]))
    deployment_id = deployment_id_for(PAIR, rel)
    assert stack.store.record_rejected(PAIR, deployment_id, rel, BLUE, "a deployment of shop is running")
    return deployment_id


# ---- exit codes ----------------------------------------------------------------------------------


def test_every_terminal_status_has_its_own_exit_code() -> None:
    codes = {status: wait.exit_code_for(status) for status in Status if status.terminal}

    assert codes[Status.SUCCEEDED] == 0
    assert set(codes) == set(wait.EXIT_CODES)
    others = [code for status, code in codes.items() if status is not Status.SUCCEEDED]
    assert len(set(others)) == len(others)
    assert not {0, 1, 2, wait.EXIT_WAIT_TIMEOUT} & set(others)


def test_help_lists_the_exit_codes(run: Run) -> None:
    result = run("wait", "--help")

    assert result.code == 0
    lines = [" ".join(line.split()) for line in result.out.splitlines()]
    for status, code in wait.EXIT_CODES.items():
        assert f"{code} {status.value}" in lines
    assert "9 --timeout passed first" in lines


# ---- following a release -------------------------------------------------------------------------


def test_a_release_that_succeeds_exits_zero(run: Run, stack: Stack, registered: World, clock: Clock) -> None:
    deployment_id = start_deployment(stack)
    clock.script = [
        lambda: ramp(stack, deployment_id, steps=1),
        nothing,
        lambda: ramp_more(stack, deployment_id),
        lambda: finish(stack, deployment_id, Status.SUCCEEDED, f"{GREEN} took all traffic"),
    ]

    result = run("wait", PAIR, "--release", "ecs-svc/2", "--interval", "5")

    assert result.code == 0, result.err
    assert clock.sleeps == [5.0, 5.0, 5.0, 5.0]
    lines = [" ".join(line.split()) for line in result.out.splitlines()]
    assert lines[0] == (
        f"release ecs-svc/2 is deployment {deployment_id}: {GREEN} ← ecs-svc/2 ({TASK_DEFINITION.format(2)})"
    )
    progress = lines[1:-1]
    # One line per change: the poll where nothing changed prints nothing.
    assert len(progress) == 3
    assert "RUNNING step 0/3 (no traffic shifted yet) weights —" in progress[0]
    assert f"RUNNING step 1/3 · 10% to {GREEN} weights {BLUE}=90, {GREEN}=10" in progress[1]
    assert f"RUNNING step 3/3 · 100% to {GREEN} weights {BLUE}=0, {GREEN}=100" in progress[2]
    assert lines[-1] == f"deployment {deployment_id} SUCCEEDED: {GREEN} took all traffic"
    assert "waiting for ecs-canary" not in result.out


def ramp_more(stack: Stack, deployment_id: str) -> None:
    """Record the 50 % and 100 % shifts after the first one."""
    owner = stack.store.get_deployment(PAIR, deployment_id).execution_arn
    assert owner is not None
    for index, percent in ((1, 50), (2, 100)):
        weights = {BLUE: 100 - percent, GREEN: percent}
        stack.store.begin_shift(
            PAIR,
            deployment_id,
            owner=owner,
            weights=weights,
            step_index=index,
            percent=percent,
            lease_seconds=90,
        )
        stack.store.record_shift(
            PAIR,
            deployment_id,
            owner=owner,
            step_index=index,
            percent=percent,
            weights=weights,
            bake_seconds=60,
            change_id=None,
            message=f"step {index + 1}/3: {percent}% to {GREEN}",
        )


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (Status.FAILED, 3),
        (Status.ABORTED, 5),
        (Status.TIMED_OUT, 6),
        (Status.SUPERSEDED, 7),
        (Status.ROLLBACK_FAILED, 8),
    ],
)
@pytest.mark.usefixtures("registered")
def test_each_terminal_status_exits_with_its_code(
    run: Run, stack: Stack, clock: Clock, status: Status, code: int
) -> None:
    deployment_id = start_deployment(stack)
    clock.script = [lambda: ramp(stack, deployment_id), lambda: finish(stack, deployment_id, status, "why")]

    result = run("wait", PAIR, "--release", "ecs-svc/2")

    assert result.code == code
    assert result.out.splitlines()[-1] == f"deployment {deployment_id} {status.value}: why"
    assert result.err == ""


def test_a_rejected_release_exits_four(run: Run, stack: Stack, registered: World, clock: Clock) -> None:
    deployment_id = reject(stack, "ecs-svc/3")

    result = run("wait", PAIR, "--release", "ecs-svc/3")

    assert result.code == 4
    assert clock.sleeps == []
    assert f"deployment {deployment_id} REJECTED: a deployment of shop is running" in result.out


def test_follows_the_named_release_not_the_active_one(
    run: Run, stack: Stack, registered: World, clock: Clock
) -> None:
    old = start_deployment(stack, release="ecs-svc/1")
    finish(stack, old, Status.SUPERSEDED, "release ecs-svc/2 replaced it on green")
    new = start_deployment(stack, release="ecs-svc/2")

    superseded = run("wait", PAIR, "--release", "ecs-svc/1")
    clock.script = [lambda: finish(stack, new, Status.FAILED, "green unhealthy")]
    failed = run("wait", PAIR, "--release", "ecs-svc/2")

    assert superseded.code == 7
    assert f"deployment {old} SUPERSEDED" in superseded.out
    assert new not in superseded.out
    assert failed.code == 3
    assert f"deployment {new} FAILED: green unhealthy" in failed.out


def test_waits_for_the_release_to_be_seen_then_for_its_end(
    run: Run, stack: Stack, registered: World, clock: Clock
) -> None:
    old = start_deployment(stack, release="ecs-svc/1")
    finish(stack, old, Status.FAILED, "an older failure")
    started: list[str] = []
    clock.script = [
        nothing,
        lambda: started.append(start_deployment(stack, release="ecs-svc/2")),
        lambda: ramp(stack, started[0]),
        lambda: finish(stack, started[0], Status.SUCCEEDED, "promoted"),
    ]

    result = run("wait", PAIR, "--release", "ecs-svc/2", "--interval", "2")

    assert result.code == 0, result.err
    assert clock.sleeps == [2.0] * 4
    lines = result.out.splitlines()
    assert lines[0] == f"waiting for ecs-canary to pick up release ecs-svc/2 of pair {PAIR} …"
    assert sum("waiting for" in line for line in lines) == 1
    assert lines[1].startswith(f"release ecs-svc/2 is deployment {started[0]}:")
    assert lines[-1] == f"deployment {started[0]} SUCCEEDED: promoted"
    assert "an older failure" not in result.out


def test_a_release_named_by_task_definition_follows_the_newest_of_it(
    run: Run, stack: Stack, registered: World, clock: Clock
) -> None:
    # ecs-svc/12 and ecs-svc/2 both run task definition shop:2 (a redeployment of it).
    first = start_deployment(stack, release="ecs-svc/12")
    finish(stack, first, Status.FAILED, "the first try failed")
    second = start_deployment(stack, release="ecs-svc/2")
    clock.script = [lambda: finish(stack, second, Status.SUCCEEDED, "promoted")]

    result = run("wait", PAIR, "--release", TASK_DEFINITION.format(2))

    assert result.code == 0, result.err
    assert f"deployment {second} SUCCEEDED: promoted" in result.out
    assert "the first try failed" not in result.out
    assert " ".join(result.err.split()) == (
        f"2 deployments of pair {PAIR} ran task definition {TASK_DEFINITION.format(2)}: following the "
        f"newest, {second} (pass its ECS deployment id to name one exactly)"
    )


def test_a_release_named_by_family_and_revision(
    run: Run, stack: Stack, registered: World, clock: Clock
) -> None:
    deployment_id = start_deployment(stack, release="ecs-svc/7")
    finish(stack, deployment_id, Status.ABORTED, "stopped by an operator")

    result = run("wait", PAIR, "--release", "shop:7")

    assert result.code == 5
    assert f"task definition shop:7 is deployment {deployment_id}" in " ".join(result.out.split())
    assert run("wait", PAIR, "--release", "shop:2", "--timeout", "1").code == wait.EXIT_WAIT_TIMEOUT


# ---- JSON Lines ----------------------------------------------------------------------------------


def test_json_output_prints_one_document_per_change_and_a_final_one(
    run: Run, stack: Stack, registered: World, clock: Clock
) -> None:
    started: list[str] = []
    clock.script = [
        lambda: started.append(start_deployment(stack)),
        lambda: ramp(stack, started[0], steps=1),
        nothing,
        lambda: finish(stack, started[0], Status.FAILED, "green unhealthy: alarm shop-5xx is ALARM"),
    ]

    result = run("wait", PAIR, "--release", "ecs-svc/2", "--output", "json")

    assert result.code == 3
    docs = json_lines(result.out)
    assert [d["event"] for d in docs] == ["waiting", "change", "change", "end"]
    assert docs[0] == {"event": "waiting", "pair": PAIR, "release_ref": "ecs-svc/2", "status": None}
    change = docs[2]
    assert change["deployment_id"] == started[0]
    assert change["release"] == {
        "service": GREEN,
        "deployment": "ecs-svc/2",
        "task_definition": TASK_DEFINITION.format(2),
    }
    assert (change["status"], change["step"], change["steps"], change["percent"]) == ("RUNNING", 1, 3, 10)
    assert change["weights"] == {BLUE: 90, GREEN: 10}
    assert change["reason"] is None
    assert docs[1]["step"] is None
    end = docs[-1]
    assert (end["status"], end["exit_code"]) == ("FAILED", 3)
    assert end["reason"] == "green unhealthy: alarm shop-5xx is ALARM"
    assert end["ended_at"] is not None
    # Every line is one compact document.
    assert len(result.out.strip().splitlines()) == 4


def test_the_deprecated_json_flag_means_json_output(
    run: Run, stack: Stack, registered: World, clock: Clock
) -> None:
    deployment_id = start_deployment(stack)
    finish(stack, deployment_id, Status.SUCCEEDED, "promoted")

    result = run("wait", PAIR, "--release", "ecs-svc/2", "--json")

    assert result.code == 0
    [end] = json_lines(result.out)
    assert (end["event"], end["status"], end["exit_code"]) == ("end", "SUCCEEDED", 0)


# ---- the wait's own timeout and usage errors -----------------------------------------------------


def test_times_out_when_the_release_is_never_seen(
    run: Run, stack: Stack, registered: World, clock: Clock
) -> None:
    result = run("wait", PAIR, "--release", "ecs-svc/404", "--interval", "5", "--timeout", "10")

    assert result.code == 9
    assert clock.sleeps == [5.0, 5.0]
    assert " ".join(result.err.split()) == (
        f"timed out after 10s: ecs-canary has not picked up release ecs-svc/404 of pair {PAIR} "
        f"(is it deployed to the idle service, {GREEN}?)"
    )


def test_times_out_while_the_release_runs(run: Run, stack: Stack, registered: World, clock: Clock) -> None:
    deployment_id = start_deployment(stack)

    result = run(
        "wait", PAIR, "--release", "ecs-svc/2", "--interval", "30", "--timeout", "60", "--output", "json"
    )

    assert result.code == 9
    assert result.err.strip() == f"timed out after 1m: deployment {deployment_id} is still RUNNING"
    docs = json_lines(result.out)
    assert [d["event"] for d in docs] == ["change", "timeout"]
    assert (docs[-1]["deployment_id"], docs[-1]["status"], docs[-1]["exit_code"]) == (
        deployment_id,
        "RUNNING",
        9,
    )


def test_timeout_before_the_release_is_seen_in_json(
    run: Run, stack: Stack, registered: World, clock: Clock
) -> None:
    result = run("wait", PAIR, "--release", "ecs-svc/404", "--timeout", "3", "--output", "json")

    assert result.code == 9
    docs = json_lines(result.out)
    assert [d["event"] for d in docs] == ["waiting", "timeout"]
    assert docs[-1] == {
        "event": "timeout",
        "pair": PAIR,
        "release_ref": "ecs-svc/404",
        "deployment_id": None,
        "status": None,
        "exit_code": 9,
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["wait", PAIR],
        ["wait", PAIR, "--release", "42"],
        ["wait", PAIR, "--release", "shop-green"],
        ["wait", PAIR, "--release", "arn:aws:ecs:us-east-1:123456789012:service/prod/shop-green"],
        ["wait", PAIR, "--release", "ecs-svc/2", "--interval", "0"],
        ["wait", PAIR, "--release", "ecs-svc/2", "--output", "yaml"],
    ],
)
def test_bad_arguments_are_usage_errors(run: Run, argv: list[str]) -> None:
    result = run(*argv)

    assert result.code == 2
    assert "usage: ecs-canary wait" in result.err


def test_an_unknown_pair_is_a_usage_error(run: Run, stack: Stack, clock: Clock) -> None:
    result = run("wait", "nope", "--release", "ecs-svc/2")

    assert result.code == 2
    assert result.err.strip() == "no service pair named 'nope' is registered"


def test_release_forms() -> None:
    parse = build_parser().parse_args

    assert parse(["wait", PAIR, "--release", "ecs-svc/9223370519283419236"]).release == wait.ReleaseRef(
        "deployment", "ecs-svc/9223370519283419236"
    )
    assert parse(["wait", PAIR, "--release", TASK_DEFINITION.format(3)]).release == wait.ReleaseRef(
        "task_definition", TASK_DEFINITION.format(3)
    )
    assert parse(["wait", PAIR, "--release", "shop:3"]).release == wait.ReleaseRef(
        "family_revision", "shop:3"
    )
    defaults = parse(["wait", PAIR, "--release", "shop:3"])
    assert (defaults.timeout, defaults.interval, defaults.output) == (0.0, 5.0, "text")
