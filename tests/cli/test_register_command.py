"""``ecs-canary register``: checks against moto's resources, the summary, and what gets stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from ecs_canary.flow.identity import execution_arn_for
from ecs_canary.store import Release

from .conftest import Run
from .infra import BLUE, GREEN, PAIR, Stack, World


def write(tmp_path: Path, data: dict[str, Any]) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def primary(world: World, service: str) -> str:
    described = world.ecs.describe_services(cluster="prod", services=[service])["services"][0]
    return str(next(d["id"] for d in described["deployments"] if d["status"] == "PRIMARY"))


def test_register_prints_the_summary_and_stores_the_pair(
    run: Run, stack: Stack, world: World, tmp_path: Path
) -> None:
    result = run("register", write(tmp_path, world.spec()))

    assert result.code == 0, result.err
    out = " ".join(result.out.split())
    assert out.startswith(f"✓ registered pair {PAIR}")
    assert f"live service {BLUE}" in out
    assert f"idle service {GREEN} (baseline release {primary(world, GREEN)})" in out
    assert "router alb listener app/shop/" in out
    assert "plan 10% → 50% → 100%, bake 1m after each step" in out
    assert f"{BLUE} (live)" in out
    assert f"The next release of {GREEN}" in out
    pair = stack.store.get_pair(PAIR)
    assert (pair.live_service, pair.idle_baseline) == (BLUE, primary(world, GREEN))


def test_re_register_after_traffic_moved(run: Run, stack: Stack, world: World, tmp_path: Path) -> None:
    spec = write(tmp_path, world.spec())
    assert run("register", spec).code == 0
    world.set_weights(0, 100)

    result = run("register", spec)

    assert result.code == 0, result.err
    assert result.out.startswith(f"✓ re-registered pair {PAIR}")
    assert stack.store.get_pair(PAIR).live_service == GREEN


def test_dry_run_checks_but_stores_nothing(run: Run, stack: Stack, world: World, tmp_path: Path) -> None:
    result = run("register", "--dry-run", write(tmp_path, world.spec()))

    assert result.code == 0, result.err
    out = " ".join(result.out.split())
    assert f"✓ pair {PAIR} can be registered (dry run: nothing stored)" in out
    assert f"router ALB listener {world.listener}" in out
    assert stack.store.list_pairs() == []


def test_every_resource_problem_is_listed_and_nothing_stored(
    run: Run, stack: Stack, world: World, tmp_path: Path
) -> None:
    data = world.spec(health={"alarms": ["shop-5xx", "typo"]})
    data["services"][1]["name"] = "shop-purple"
    world.set_weights(60, 40)

    result = run("register", write(tmp_path, data))

    assert result.code == 2
    assert result.out == ""
    assert result.err.splitlines() == [
        f"cannot register pair {PAIR} (3 problems):",
        "  ECS service shop-purple does not exist in cluster prod",
        "  CloudWatch alarm typo does not exist",
        f"  traffic is split ({BLUE}=60, shop-purple=40): "
        "route all traffic to one service before registering",
    ]
    assert stack.store.list_pairs() == []


def test_register_refused_while_a_deployment_is_active(
    run: Run, stack: Stack, world: World, tmp_path: Path
) -> None:
    spec = write(tmp_path, world.spec())
    assert run("register", spec).code == 0
    stack.store.claim(
        PAIR,
        "dep-1",
        Release(GREEN, "ecs-svc/9", "td:9"),
        BLUE,
        execution_arn=execution_arn_for(stack.state_machine_arn, "dep-1"),
        lease_seconds=900,
    )

    result = run("register", spec)

    assert result.code == 1
    assert result.err.splitlines() == [
        f"cannot register pair {PAIR}:",
        f"  pair '{PAIR}' has an active deployment; wait for it to end before re-registering",
    ]


def test_invalid_spec_never_reaches_aws(run: Run, tmp_path: Path) -> None:
    result = run("register", write(tmp_path, {"name": "shop"}), "--stack", "no-such-stack")

    assert result.code == 2
    assert "spec.yaml is invalid" in result.err
    assert "cluster: Field required" in result.err
    assert "no-such-stack" not in result.err


def test_deregister_removes_the_pair_and_its_index(
    run: Run, stack: Stack, world: World, tmp_path: Path
) -> None:
    assert run("register", write(tmp_path, world.spec())).code == 0
    assert stack.store.pair_for_service("arn:aws:ecs:us-east-1:123456789012:cluster/prod", GREEN) is not None

    result = run("deregister", PAIR)

    assert result.code == 0, result.err
    assert f"deregistered pair {PAIR}" in result.out
    assert stack.store.list_pairs() == []
    assert stack.store.pair_for_service("prod", GREEN) is None
    assert stack.store.pair_for_service("prod", BLUE) is None


def test_deregister_refused_while_a_deployment_is_active(
    run: Run, stack: Stack, world: World, tmp_path: Path
) -> None:
    assert run("register", write(tmp_path, world.spec())).code == 0
    stack.store.claim(
        PAIR,
        "dep-1",
        Release(GREEN, "ecs-svc/9", "td:9"),
        BLUE,
        execution_arn=execution_arn_for(stack.state_machine_arn, "dep-1"),
        lease_seconds=900,
    )

    result = run("deregister", PAIR)

    assert result.code == 1
    assert "has an active deployment" in result.err
    assert [p.spec.name for p in stack.store.list_pairs()] == [PAIR]


def test_deregister_of_an_unknown_pair(run: Run, stack: Stack) -> None:
    result = run("deregister", "nope")

    assert result.code == 2
    assert result.err.strip() == "no service pair named 'nope' is registered"
