"""What starts a deployment and what does not: duplicated events, strangers' services, bad specs."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import yaml
from ecs_canary.registration import RegistrationError, register
from ecs_canary.spec import parse_spec
from ecs_canary.store import Status
from ecs_canary_cli.demo.infra import spec_for, write_spec

from .conftest import World

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")]


def test_duplicated_and_reordered_events_start_exactly_one_execution(world: World) -> None:
    """EventBridge delivers every task event 4 times, shuffled over 30 s: still one deployment."""
    pair = world.alb_pair("burst")
    world.register(pair)
    green = world.store.get_pair(pair.name).idle_service
    world.emulator.options.duplicates = 3
    world.emulator.options.reorder_window = 30.0

    task_definition = world.release(pair, "v2")
    dep = world.wait(pair, green, task_definition)
    assert world.emulator.wait_for_idle(60)  # a deadline, not a speed check

    assert dep.status is Status.SUCCEEDED, dep.reason
    executions = world.executions(pair)
    assert [e["name"] for e in executions] == [dep.deployment_id]
    assert [d.deployment_id for d in world.store.list_deployments(pair.name)] == [dep.deployment_id]


def test_deployment_of_an_unregistered_service_is_ignored(world: World) -> None:
    pair = world.alb_pair("stranger")  # built, never registered
    before = world.weights(pair)
    task_definition = world.release(pair, "v2", service=pair.idle)
    assert world.emulator.wait_for_idle(60)  # a deadline, not a speed check

    # The release really ran (its tasks are RUNNING, so their events were published)...
    described = world.clients("ecs").describe_services(cluster=pair.cluster, services=[pair.idle])
    service = described["services"][0]
    assert service["deployments"][0]["taskDefinition"] == task_definition
    assert service["runningCount"] == 2
    time.sleep(0.5)  # 50 emulated seconds for anything that would still start
    # ... and ecs-canary left it alone.
    assert world.executions(pair) == []
    assert world.store.list_deployments(pair.name) == []
    assert world.weights(pair) == before


def _cli(world: World, *argv: str) -> subprocess.CompletedProcess[str]:
    """``ecs-canary ARGV`` as a user runs it, in its own process pointed at the emulator."""
    return world.cli(*argv, "--table", world.store.table, "--region", world.emulator.region)


def test_invalid_spec_is_refused_naming_the_field(world: World, tmp_path: Path) -> None:
    pair = world.alb_pair("invalid")
    spec = spec_for(pair)
    spec["health"]["metrics"]["max_5xx_percent"] = 250
    spec["plan"] = "Linear200PercentEvery1Minute"
    path = write_spec(spec, tmp_path / "invalid.yaml")

    result = _cli(world, "register", str(path))

    err = result.stderr
    assert result.returncode == 2
    assert "health.metrics.max_5xx_percent" in err
    assert "Linear200PercentEvery1Minute" in err
    with pytest.raises(Exception, match="no service pair named"):
        world.store.get_pair(pair.name)


def test_spec_naming_missing_resources_is_refused_by_registration(world: World, tmp_path: Path) -> None:
    """A spec that parses but names an alarm that does not exist: every problem named, nothing stored."""
    pair = world.alb_pair("missing")
    spec = spec_for(pair, alarms=["missing-a-5xx", "no-such-alarm"])
    with pytest.raises(RegistrationError) as refused:
        register(
            world.store,
            parse_spec(spec),
            ecs=world.clients("ecs"),
            elbv2=world.clients("elbv2"),
            route53=world.clients("route53"),
            cloudwatch=world.clients("cloudwatch"),
            sts=world.clients("sts"),
        )
    assert refused.value.problems == ("CloudWatch alarm no-such-alarm does not exist",)

    path = tmp_path / "missing.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    result = _cli(world, "register", str(path))
    assert result.returncode == 2
    assert "CloudWatch alarm no-such-alarm does not exist" in result.stderr
    with pytest.raises(Exception, match="no service pair named"):
        world.store.get_pair(pair.name)
