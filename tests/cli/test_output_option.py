"""``--output text|json`` on the read commands; ``--json`` stays as its deprecated alias."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ecs_canary.store import Status

from .conftest import Run
from .infra import BLUE, GREEN, PAIR, Stack, World, finish, ramp, start_deployment
from .test_watch import Clock, clock, nothing

__all__ = ["clock"]  # the watch clock fixture, re-exported for these tests


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("command", [["pairs"], ["deployments", PAIR], ["status", PAIR]])
def test_output_json_is_the_json_flag(run: Run, stack: Stack, registered: World, command: list[str]) -> None:
    deployment_id = start_deployment(stack)
    ramp(stack, deployment_id, steps=1)

    new = run(*command, "--output", "json")
    old = run(*command, "--json")
    text = run(*command, "--output", "text")

    assert (new.code, old.code, text.code) == (0, 0, 0)
    assert json.loads(new.out) == json.loads(old.out)
    assert deployment_id in json.dumps(json.loads(new.out))
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.out)
    assert text.out == run(*command).out


@pytest.mark.parametrize("command", ["pairs", "deployments", "status", "watch", "wait"])
def test_help_shows_output_and_the_deprecated_alias(run: Run, command: str) -> None:
    result = run(command, "--help")

    assert result.code == 0
    out = " ".join(result.out.split())
    assert "--output {text,json}" in out
    assert "--json deprecated: same as --output json" in out


def test_output_rejects_other_formats(run: Run) -> None:
    result = run("pairs", "--output", "yaml")

    assert result.code == 2
    assert "invalid choice: 'yaml'" in result.err


def test_watch_json_prints_one_document_per_change(
    run: Run, stack: Stack, registered: World, clock: Clock
) -> None:
    started: list[str] = []
    clock.script = [
        lambda: started.append(start_deployment(stack)),
        nothing,
        lambda: ramp(stack, started[0], steps=2),
        lambda: finish(stack, started[0], Status.SUCCEEDED, f"{GREEN} took all traffic"),
    ]

    result = run("watch", PAIR, "--output", "json")

    assert result.code == 0, result.err
    docs = json_lines(result.out)
    assert [d["event"] for d in docs] == ["waiting", "change", "change", "end"]
    assert docs[0] == {"event": "waiting", "pair": PAIR, "service": GREEN, "status": None}
    assert (docs[1]["deployment_id"], docs[1]["status"], docs[1]["execution_status"]) == (
        started[0],
        "RUNNING",
        "RUNNING",
    )
    assert (docs[2]["step"], docs[2]["percent"], docs[2]["weights"]) == (2, 50, {BLUE: 50, GREEN: 50})
    assert (docs[3]["status"], docs[3]["reason"], docs[3]["exit_code"]) == (
        "SUCCEEDED",
        f"{GREEN} took all traffic",
        0,
    )
    assert "refreshing" not in result.out


def test_watch_json_of_a_failure_and_of_a_timeout(
    run: Run, stack: Stack, registered: World, clock: Clock
) -> None:
    deployment_id = start_deployment(stack)
    running = run("watch", PAIR, "--json", "--interval", "30", "--timeout", "60")
    finish(stack, deployment_id, Status.FAILED, "green unhealthy")
    failed = run("watch", PAIR, deployment_id, "--output", "json")

    assert running.code == 1
    assert [d["event"] for d in json_lines(running.out)] == ["change", "timeout"]
    assert json_lines(running.out)[-1]["exit_code"] == 1
    assert running.err.strip() == f"timed out after 1m: deployment {deployment_id} is still RUNNING"
    assert failed.code == 1
    [end] = json_lines(failed.out)
    assert (end["event"], end["status"], end["reason"], end["exit_code"]) == (
        "end",
        "FAILED",
        "green unhealthy",
        1,
    )
