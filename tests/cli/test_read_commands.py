"""``pairs``, ``deployments`` and ``status`` read the store (and the router, and Step Functions)."""

from __future__ import annotations

import json

from ecs_canary.store import Status

from .conftest import Run
from .infra import BLUE, GREEN, PAIR, TABLE, Stack, World, finish, ramp, start_deployment


def flat(text: str) -> str:
    return " ".join(text.split())


# ---- pairs -------------------------------------------------------------------------------------


def test_pairs_when_none_are_registered(run: Run, stack: Stack) -> None:
    result = run("pairs")

    assert result.code == 0
    assert "No pairs registered yet" in result.out


def test_pairs_table_shows_the_active_deployment(run: Run, stack: Stack, registered: World) -> None:
    deployment_id = start_deployment(stack)

    result = run("pairs")

    assert result.code == 0, result.err
    row = next(line for line in result.out.splitlines() if f"│ {PAIR} " in line)
    cells = [c.strip() for c in row.split("│")[1:-1]]
    assert cells[:4] == [PAIR, "prod", BLUE, GREEN]
    assert cells[4].startswith("alb listener app/shop/")
    assert cells[5] == "10% → 50% → 100%, bake 1m after each step"
    assert cells[6] == deployment_id


def test_pairs_json(run: Run, stack: Stack, registered: World) -> None:
    result = run("pairs", "--json")

    assert result.code == 0
    [pair] = json.loads(result.out)
    assert pair["name"] == PAIR
    assert (pair["live_service"], pair["idle_service"]) == (BLUE, GREEN)
    assert pair["router"] == {"type": "alb", "listener_arn": registered.listener, "rule_arn": None}
    assert pair["plan"] == {"steps": [10, 50, 100], "bake_seconds": 60}
    assert pair["active_deployment"] is None


# ---- deployments ----------------------------------------------------------------------------------


def test_deployments_newest_first_with_limit(run: Run, stack: Stack, registered: World) -> None:
    first = start_deployment(stack, release="ecs-svc/1")
    ramp(stack, first, steps=3)
    finish(stack, first, Status.SUCCEEDED, f"{GREEN} took all traffic after 3 healthy step(s)")
    second = start_deployment(stack, release="ecs-svc/2", service=BLUE)

    table = run("deployments", PAIR)
    limited = run("deployments", PAIR, "--limit", "1")

    assert table.code == 0, table.err
    rows = [line for line in table.out.splitlines() if f"{PAIR}-" in line]
    assert [r.split("│")[1].strip() for r in rows] == [second, first]
    assert "RUNNING" in rows[0]
    assert "SUCCEEDED" in rows[1]
    assert "3 · 100%" in rows[1]
    assert "took all traffic" in table.out
    assert second in limited.out
    assert first not in limited.out


def test_deployments_json(run: Run, stack: Stack, registered: World) -> None:
    deployment_id = start_deployment(stack)

    result = run("deployments", PAIR, "--json")

    assert result.code == 0
    [dep] = json.loads(result.out)
    assert dep["deployment_id"] == deployment_id
    assert dep["status"] == "RUNNING"
    assert dep["release"]["deployment"] == "ecs-svc/2"


def test_deployments_of_a_pair_without_any(run: Run, stack: Stack, registered: World) -> None:
    result = run("deployments", PAIR)

    assert result.code == 0
    assert f"No deployments of pair {PAIR} yet." in result.out


def test_deployments_of_an_unknown_pair(run: Run, stack: Stack) -> None:
    result = run("deployments", "nope")

    assert result.code == 2
    assert result.err.strip() == "no service pair named 'nope' is registered"


# ---- status ---------------------------------------------------------------------------------------


def test_status_of_the_active_deployment(run: Run, stack: Stack, registered: World) -> None:
    deployment_id = start_deployment(stack)
    ramp(stack, deployment_id, steps=2)
    registered.set_weights(50, 50)

    result = run("status", PAIR)

    assert result.code == 0, result.err
    out = flat(result.out)
    assert f"{PAIR} · {deployment_id}" in out
    assert "RUNNING execution RUNNING" in out
    assert f"step 2/3 · 50% to {GREEN}" in out
    assert f"snapshot {BLUE}=100, {GREEN}=0" in out
    assert f"current {BLUE}=50, {GREEN}=50" in out
    assert "claimed release ecs-svc/2 seen" in out
    assert f"shifted step 2/3: 50% to {GREEN}" in out
    arn = f"{stack.state_machine_arn.replace(':stateMachine:', ':execution:')}:{deployment_id}"
    console = next(line for line in result.out.splitlines() if line.startswith("console: "))
    assert console == (
        "console: https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1"
        f"#/v2/executions/details/{arn}"
    )


def test_status_defaults_to_the_newest_when_nothing_is_active(
    run: Run, stack: Stack, registered: World
) -> None:
    old = start_deployment(stack, release="ecs-svc/1")
    finish(stack, old, Status.FAILED, "green unhealthy")
    new = start_deployment(stack, release="ecs-svc/2")
    finish(stack, new, Status.ABORTED, "stopped by an operator")

    result = run("status", PAIR)

    assert result.code == 0
    out = flat(result.out)
    assert new in out
    assert "reason stopped by an operator" in out
    assert "ABORTED" in out


def test_status_of_a_named_deployment(run: Run, stack: Stack, registered: World) -> None:
    old = start_deployment(stack, release="ecs-svc/1")
    finish(stack, old, Status.FAILED, "green unhealthy")
    start_deployment(stack, release="ecs-svc/2")

    result = run("status", PAIR, old)

    assert result.code == 0
    assert old in result.out
    assert "green unhealthy" in result.out


def test_status_of_a_starting_deployment_without_execution(run: Run, stack: Stack, registered: World) -> None:
    deployment_id = start_deployment(stack, execution=False)

    result = run("status", PAIR)

    assert result.code == 0
    assert "STARTING" in result.out
    assert "0/3 (no traffic shifted yet)" in result.out
    assert "execution" not in result.out
    assert "console:" not in result.out
    assert deployment_id in result.out


def test_status_json(run: Run, stack: Stack, registered: World) -> None:
    deployment_id = start_deployment(stack)
    ramp(stack, deployment_id, steps=1)

    result = run("status", PAIR, "--json")

    assert result.code == 0
    data = json.loads(result.out)
    assert data["deployment_id"] == deployment_id
    assert data["steps"] == 3
    assert data["percent"] == 10
    assert data["execution_status"] == "RUNNING"
    assert data["current_weights"] == {BLUE: 100, GREEN: 0}
    assert data["current_weights_error"] is None
    assert data["console_url"].endswith(f"execution:canary:{deployment_id}")
    assert [h["event"] for h in data["history"]] == ["claimed", "started", "snapshot", "steady", "shifted"]


def test_status_when_the_router_cannot_be_read(run: Run, stack: Stack, registered: World) -> None:
    start_deployment(stack)
    registered.elbv2.delete_listener(ListenerArn=registered.listener)

    result = run("status", PAIR)

    assert result.code == 0
    assert "current weights unavailable" in result.err
    assert "does not exist" in result.err


def test_status_without_deployments(run: Run, stack: Stack, registered: World) -> None:
    result = run("status", PAIR)

    assert result.code == 1
    assert result.err.strip() == f"pair {PAIR} has no deployments yet"


def test_status_of_an_unknown_deployment(run: Run, stack: Stack, registered: World) -> None:
    result = run("status", PAIR, "nope")

    assert result.code == 2
    assert result.err.strip() == f"no deployment 'nope' of pair '{PAIR}'"


def test_status_with_a_table_override_and_no_state_machine(run: Run, stack: Stack, registered: World) -> None:
    deployment_id = start_deployment(stack, execution=False)

    result = run("status", PAIR, "--table", TABLE, "--json")

    assert result.code == 0
    data = json.loads(result.out)
    assert data["deployment_id"] == deployment_id
    assert data["execution_status"] is None
    assert data["console_url"] is None
