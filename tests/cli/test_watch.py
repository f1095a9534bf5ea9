"""``ecs-canary watch``: follows the store until the deployment ends; the clock is driven by the test."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from ecs_canary.store import Status
from ecs_canary_cli.commands import deployments

from .conftest import Run
from .infra import GREEN, PAIR, Stack, World, finish, ramp, start_deployment

Step = Callable[[], None]


@dataclass
class Clock:
    """Replaces ``sleep``/``monotonic`` in the watch loop; each sleep runs the next scripted change."""

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
    monkeypatch.setattr(deployments, "sleep", fake.sleep)
    monkeypatch.setattr(deployments, "monotonic", fake.monotonic)
    return fake


def nothing() -> None:
    """A poll where nothing changed."""


def test_follows_the_active_deployment_to_success(
    run: Run, stack: Stack, registered: World, clock: Clock
) -> None:
    deployment_id = start_deployment(stack)
    clock.script = [
        lambda: ramp(stack, deployment_id, steps=1),
        nothing,
        lambda: finish(
            stack, deployment_id, Status.SUCCEEDED, f"{GREEN} took all traffic after 3 healthy step(s)"
        ),
    ]

    result = run("watch", PAIR, "--interval", "5")

    assert result.code == 0, result.err
    assert clock.sleeps == [5.0, 5.0, 5.0]
    out = " ".join(result.out.split())
    assert f"{PAIR} · {deployment_id}" in out
    assert "SUCCEEDED execution RUNNING" in out
    assert out.endswith(
        f"deployment {deployment_id} SUCCEEDED: {GREEN} took all traffic after 3 healthy step(s)"
    )


def test_a_failed_deployment_exits_one(run: Run, stack: Stack, registered: World, clock: Clock) -> None:
    deployment_id = start_deployment(stack)
    clock.script = [
        lambda: finish(stack, deployment_id, Status.FAILED, "green unhealthy: alarm shop-5xx is ALARM")
    ]

    result = run("watch", PAIR, deployment_id, "--interval", "0")

    assert result.code == 1
    assert f"deployment {deployment_id} FAILED: green unhealthy: alarm shop-5xx is ALARM" in result.out
    assert "reason" in result.out


def test_a_finished_deployment_returns_at_once(
    run: Run, stack: Stack, registered: World, clock: Clock
) -> None:
    deployment_id = start_deployment(stack)
    finish(stack, deployment_id, Status.ABORTED, "stopped")

    result = run("watch", PAIR, deployment_id)

    assert result.code == 1
    assert clock.sleeps == []
    assert f"deployment {deployment_id} ABORTED: stopped" in result.out


def test_waits_for_the_next_deployment(run: Run, stack: Stack, registered: World, clock: Clock) -> None:
    old = start_deployment(stack, release="ecs-svc/1")
    finish(stack, old, Status.FAILED, "old failure")
    started: list[str] = []
    clock.script = [
        nothing,
        lambda: started.append(start_deployment(stack, release="ecs-svc/2")),
        lambda: finish(stack, started[0], Status.SUCCEEDED, "promoted"),
    ]

    result = run("watch", PAIR, "--interval", "1")

    assert result.code == 0, result.err
    assert f"deployment {started[0]} SUCCEEDED: promoted" in result.out
    assert "old failure" not in result.out


def test_catches_a_deployment_that_ended_between_polls(
    run: Run, stack: Stack, registered: World, clock: Clock
) -> None:
    started: list[str] = []

    def whole_deployment() -> None:
        started.append(start_deployment(stack))
        finish(stack, started[0], Status.FAILED, "green never steady")

    clock.script = [whole_deployment]

    result = run("watch", PAIR)

    assert result.code == 1
    assert f"deployment {started[0]} FAILED: green never steady" in result.out


def test_times_out_waiting_for_a_deployment(run: Run, stack: Stack, registered: World, clock: Clock) -> None:
    result = run("watch", PAIR, "--interval", "2", "--timeout", "5")

    assert result.code == 1
    assert result.err.strip() == f"timed out after 5s: no deployment of pair {PAIR} started"
    assert "waiting for the next deployment of shop" in result.out
    assert clock.sleeps == [2.0, 2.0, 2.0]


def test_times_out_while_the_deployment_runs(run: Run, stack: Stack, registered: World, clock: Clock) -> None:
    deployment_id = start_deployment(stack)

    result = run("watch", PAIR, "--interval", "30", "--timeout", "60")

    assert result.code == 1
    assert result.err.strip() == f"timed out after 1m: deployment {deployment_id} is still RUNNING"
    assert "refreshing" in result.out


def test_unknown_pair_and_deployment(run: Run, stack: Stack, registered: World, clock: Clock) -> None:
    assert run("watch", "nope").code == 2
    missing = run("watch", PAIR, "nope")
    assert missing.code == 2
    assert missing.err.strip() == f"no deployment 'nope' of pair '{PAIR}'"
