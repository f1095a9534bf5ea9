"""``ecs-canary wait`` as a CI job runs it, in its own process, against the emulator or AWS.

The exit code is the contract a pipeline branches on: 0 for a promoted release, 3 for one that
failed back, 9 for ``--timeout`` (see the README's "CI integration").
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from ecs_canary.store import Status
from ecs_canary_cli.demo.infra import PairInfra

from .targets import Target

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")]

QUICK = {"type": "steps", "steps": [50, 100], "bake_seconds": 60}
DAY = {"type": "steps", "steps": [50, 100], "bake_seconds": 86_400}


def _alarms_only(target: Target, pair: PairInfra, plan: dict[str, Any]) -> str:
    target.register(pair, plan=plan, alarms=[f"{s.name}-5xx" for s in pair.services], max_5xx_percent=None)
    return target.store.get_pair(pair.name).idle_service


def _last_document(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    document: dict[str, Any] = json.loads(lines[-1])
    return document


def test_wait_exits_0_once_the_release_is_promoted(target: Target) -> None:
    pair = target.alb_pair("wait-ok")
    green = _alarms_only(target, pair, QUICK)
    task_definition = target.release(pair, "v2")

    waited = target.cli(
        "wait", pair.name, "--release", task_definition, "--interval", "0.5", "--output", "json"
    )

    assert waited.returncode == 0, waited.stdout + waited.stderr
    final = _last_document(waited.stdout)
    assert final["status"] == "SUCCEEDED"
    dep = target.wait(pair, green, task_definition)
    assert dep.status is Status.SUCCEEDED
    assert final["deployment_id"] == dep.deployment_id


def test_wait_exits_3_when_the_release_fails_back(target: Target) -> None:
    pair = target.alb_pair("wait-fail")
    green = _alarms_only(target, pair, DAY)
    task_definition = target.release(pair, "v2")
    result: dict[str, Any] = {}

    def follow() -> None:
        result["run"] = target.cli("wait", pair.name, "--release", task_definition, "--interval", "0.5")

    follower = threading.Thread(target=follow)
    follower.start()
    target.wait(pair, green, task_definition, until=lambda d: d.step_index == 0)
    target.set_alarm_state(f"{green}-5xx", "ALARM", "5xx burst seen by a test")
    follower.join(timeout=target.timings.cli_timeout)

    assert not follower.is_alive()
    waited = result["run"]
    assert waited.returncode == 3, waited.stdout + waited.stderr
    assert "FAILED" in waited.stdout
    dep = target.wait(pair, green, task_definition)
    assert dep.status is Status.FAILED
    assert target.weights(pair) == dep.snapshot


def test_wait_exits_9_when_its_timeout_passes_first(target: Target) -> None:
    pair = target.alb_pair("wait-timeout")
    green = _alarms_only(target, pair, DAY)
    task_definition = target.release(pair, "v2")
    target.wait(pair, green, task_definition, until=lambda d: d.step_index == 0)

    waited = target.cli(
        "wait", pair.name, "--release", task_definition, "--timeout", "2", "--interval", "0.5"
    )

    assert waited.returncode == 9, waited.stdout + waited.stderr
    dep = target.wait(pair, green, task_definition, until=lambda d: True)
    assert dep.status is Status.RUNNING, "giving up waiting changes nothing"
    target.cli("abort", pair.name, "--reason", "test done")
