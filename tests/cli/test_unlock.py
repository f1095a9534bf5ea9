"""``ecs-canary unlock``: releases only locks no execution will release, checking Step Functions first."""

from __future__ import annotations

from ecs_canary.store import Status

from .conftest import Run
from .infra import BLUE, GREEN, PAIR, TABLE, Stack, World, start_deployment


def execution_arn(stack: Stack, deployment_id: str) -> str:
    return f"{stack.state_machine_arn.replace(':stateMachine:', ':execution:')}:{deployment_id}"


def test_nothing_to_unlock(run: Run, stack: Stack, registered: World) -> None:
    result = run("unlock", PAIR)

    assert result.code == 0
    assert result.out.strip() == f"pair {PAIR} is not locked: nothing to unlock"


def test_refuses_while_the_execution_runs(run: Run, stack: Stack, registered: World) -> None:
    deployment_id = start_deployment(stack)

    result = run("unlock", PAIR)

    assert result.code == 1
    arn = execution_arn(stack, deployment_id)
    assert result.err.splitlines() == [
        f"refusing to unlock {PAIR}: deployment {deployment_id} is still running ({arn})",
        f"stop the execution to roll it back: aws stepfunctions stop-execution --execution-arn {arn} "
        "(the reconciler then restores the weights and releases the lock)",
    ]
    assert stack.store.active_deployment_id(PAIR) == deployment_id


def test_releases_the_lock_of_an_ended_execution(run: Run, stack: Stack, registered: World) -> None:
    deployment_id = start_deployment(stack)
    stack.sfn.stop_execution(executionArn=execution_arn(stack, deployment_id))

    result = run("unlock", PAIR)

    assert result.code == 0, result.err
    assert f"✓ released the lock of {PAIR}: its execution ended as ABORTED" in result.out
    assert f"traffic was not changed; current weights: {BLUE}=100, {GREEN}=0" in result.out
    assert stack.store.active_deployment_id(PAIR) is None
    dep = stack.store.get_deployment(PAIR, deployment_id)
    assert dep.status is Status.ABORTED
    assert dep.reason == "lock released by an operator: its execution ended as ABORTED"


def test_starting_deployment_whose_execution_never_started(run: Run, stack: Stack, registered: World) -> None:
    deployment_id = start_deployment(stack, execution=False)

    result = run("unlock", PAIR)

    assert result.code == 0, result.err
    assert f"deployment {deployment_id} is STARTING and its execution was never started" in result.out
    assert stack.store.active_deployment_id(PAIR) is None


def test_starting_deployment_whose_execution_did_start(run: Run, stack: Stack, registered: World) -> None:
    deployment_id = start_deployment(stack, execution=False)
    stack.sfn.start_execution(stateMachineArn=stack.state_machine_arn, name=deployment_id)

    result = run("unlock", PAIR)

    assert result.code == 1
    assert "is still running" in result.err
    assert stack.store.active_deployment_id(PAIR) == deployment_id


def test_starting_deployment_without_a_known_state_machine(run: Run, stack: Stack, registered: World) -> None:
    """The record names its one execution when the release is claimed, so no stack is needed to check it."""
    deployment_id = start_deployment(stack, execution=False)

    result = run("unlock", PAIR, "--table", TABLE)

    assert result.code == 0, result.err
    assert f"deployment {deployment_id} is STARTING and its execution was never started" in result.out
    assert stack.store.active_deployment_id(PAIR) is None


def test_running_deployment_whose_execution_no_longer_exists(
    run: Run, stack: Stack, registered: World
) -> None:
    deployment_id = start_deployment(stack, execution=True)
    owner = execution_arn(stack, deployment_id)
    stack.sfn.delete_state_machine(stateMachineArn=stack.state_machine_arn)

    result = run("unlock", PAIR)

    assert result.code == 0, result.err
    assert f"its execution {owner} does not exist" in result.out
    assert stack.store.active_deployment_id(PAIR) is None


def test_unknown_pair(run: Run, stack: Stack) -> None:
    result = run("unlock", "nope")

    assert result.code == 2
    assert result.err.strip() == "no service pair named 'nope' is registered"
