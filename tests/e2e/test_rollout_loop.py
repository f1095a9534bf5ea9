"""The rollout loop re-observes and reacts: fenced steps, drift, new releases, interrupts, operators.

Every test runs through the real trigger (UpdateService → ECS task events → the filter → an
execution) in the emulator. Bakes of a day (``DAY``, 864 real seconds here) stand for "the bake is
far from over": a test that finishes at all proves that an event, not the end of the bake, ended it.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from ecs_canary.store import Status
from ecs_canary_cli.demo.infra import PairInfra
from ecs_canary_cli.local import deploy_stack

from .conftest import ROOT, STACK_PARAMETERS, World, history_events
from .targets import Target

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")]

DAY = {"type": "steps", "steps": [25, 50, 100], "bake_seconds": 86_400}
SHORT = {"type": "steps", "steps": [50, 100], "bake_seconds": 300}


def _alarms_only(world: Target, pair: PairInfra, plan: dict[str, Any], **extra: Any) -> None:
    """Register with the services' alarms as the gate (no metric thresholds to wait for)."""
    world.register(
        pair, plan=plan, alarms=[f"{s.name}-5xx" for s in pair.services], max_5xx_percent=None, **extra
    )


def _at_step(world: Target, pair: PairInfra, green: str, task_definition: str, index: int = 0) -> Any:
    return world.wait(pair, green, task_definition, until=lambda d: d.step_index == index)


def _closed_truthfully(world: Target, pair: PairInfra, dep: Any) -> None:
    """A closed record tells the truth: its weights are the router's, and the lock is free."""
    assert dep.weights == world.weights(pair)
    assert world.store.active_deployment_id(pair.name) is None


# ---- events end a bake in seconds ------------------------------------------------------------------


@pytest.mark.parametrize("router", ["alb", "route53"])
def test_an_alarm_mid_bake_fails_back_at_once(target: Target, router: str) -> None:
    pair = target.alb_pair(f"alarm-{router}") if router == "alb" else target.route53_pair(f"alarm-{router}")
    _alarms_only(target, pair, DAY)
    green = target.store.get_pair(pair.name).idle_service
    before = target.weights(pair)
    task_definition = target.release(pair, "v2")
    _at_step(target, pair, green, task_definition)
    assert target.weights(pair) != before

    target.set_alarm_state(f"{green}-5xx", "ALARM", "5xx burst seen by a test")
    dep = target.wait(pair, green, task_definition)

    assert dep.status is Status.FAILED
    assert f"alarm {green}-5xx went into ALARM" in (dep.reason or "")
    assert "5xx burst seen by a test" in (dep.reason or "")
    assert dep.step_index == 0, "the bake of the first step never ended"
    assert target.weights(pair) == before == dep.snapshot
    _closed_truthfully(target, pair, dep)
    events = [h["event"] for h in dep.history]
    assert events.index("rolling_back") < events.index("restored") < events.index("failed")
    assert target.execution_status(dep) == "FAILED"


def test_green_tasks_crashing_mid_bake_fail_back_at_once(world: World) -> None:
    """health.max_stopped_tasks is 1: the second unexpected stop of the release's tasks fails back."""
    pair = world.alb_pair("crash")
    _alarms_only(world, pair, DAY)
    green = world.store.get_pair(pair.name).idle_service
    before = world.weights(pair)
    task_definition = world.release(pair, "v2")
    dep = _at_step(world, pair, green, task_definition)

    first, second = world.release_tasks(pair, green, dep.release.deployment)[:2]
    world.exit_container(pair, first["taskArn"], exit_code=137)
    assert world.emulator.wait_for_idle(60)  # a deadline, not a speed check
    assert world.deployment(pair, task_definition).status is Status.RUNNING, "one stop is tolerated"
    world.exit_container(pair, second["taskArn"], exit_code=1)
    dep = world.wait(pair, green, task_definition)

    assert dep.status is Status.FAILED
    assert "2 tasks of release" in (dep.reason or "")
    assert "EssentialContainerExited" in (dep.reason or "")
    assert "health.max_stopped_tasks is 1" in (dep.reason or "")
    assert len(history_events(dep, "task_stopped")) == 2
    assert world.weights(pair) == before
    _closed_truthfully(world, pair, dep)


# ---- a new release on green (issue: a release nobody tested got promoted) ----------------------------


def test_a_new_release_mid_ramp_supersedes_the_deployment(world: World) -> None:
    pair = world.alb_pair("supersede")
    _alarms_only(world, pair, SHORT)
    stored = world.store.get_pair(pair.name)
    green, live = stored.idle_service, stored.live_service
    before = world.weights(pair)
    first = world.release(pair, "v2")
    _at_step(world, pair, green, first)

    second = world.release(pair, "v3", service=green)
    superseded = world.wait(pair, green, first)
    successor = world.wait(pair, green, second)

    assert superseded.status is Status.SUPERSEDED
    assert "instead of release" in (superseded.reason or "")
    assert superseded.weights == before, "traffic went back before the new release started"
    assert successor.status is Status.SUCCEEDED, successor.reason
    assert successor.snapshot == before, "the new release started from the restored weights"
    assert successor.release.task_definition == second
    assert world.weights(pair) == {live: 0, green: 100}
    assert world.store.get_pair(pair.name).live_service == green
    assert len(world.executions(pair)) == 2


def test_a_new_release_with_on_new_release_reject_is_recorded_rejected(world: World) -> None:
    pair = world.alb_pair("reject")
    _alarms_only(world, pair, DAY, extra={"on_new_release": "reject"})
    stored = world.store.get_pair(pair.name)
    green = stored.idle_service
    before = world.weights(pair)
    first = world.release(pair, "v2")
    _at_step(world, pair, green, first)

    second = world.release(pair, "v3", service=green)
    superseded = world.wait(pair, green, first)
    rejected = world.wait(pair, green, second)
    assert world.emulator.wait_for_idle(60)  # a deadline, not a speed check

    assert superseded.status is Status.SUPERSEDED
    assert rejected.status is Status.REJECTED
    assert "on_new_release is reject" in (rejected.reason or "")
    assert world.weights(pair) == before
    assert world.store.active_deployment_id(pair.name) is None
    assert len(world.executions(pair)) == 1, "the rejected release never got an execution"


# ---- fencing (issue: anyone holding a copy of the input could act) ---------------------------------


def test_a_copy_of_the_execution_is_refused_and_changes_nothing(world: World) -> None:
    pair = world.alb_pair("copy")
    _alarms_only(world, pair, SHORT)
    stored = world.store.get_pair(pair.name)
    green, live = stored.idle_service, stored.live_service
    task_definition = world.release(pair, "v2")
    dep = _at_step(world, pair, green, task_definition)
    assert dep.execution_arn is not None
    sfn = world.clients("stepfunctions")
    original = sfn.describe_execution(executionArn=dep.execution_arn)

    copy = sfn.start_execution(
        stateMachineArn=world.state_machine_arn, name=f"{pair.name}-copy", input=original["input"]
    )["executionArn"]
    dep = world.wait(pair, green, task_definition)
    deadline = time.monotonic() + 60
    while sfn.describe_execution(executionArn=copy)["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.1)

    copied = sfn.describe_execution(executionArn=copy)
    assert copied["status"] == "FAILED"
    assert copied["error"] == "NotOwner"
    entered = {
        e["stateEnteredEventDetails"]["name"] for e in world.history(copy) if "stateEnteredEventDetails" in e
    }
    assert "Roll back" not in entered, "a copy never restores on the owner's behalf"
    assert dep.status is Status.SUCCEEDED, dep.reason
    assert [h["event"] for h in dep.history].count("refused") == 1
    assert world.weights(pair) == {live: 0, green: 100}
    _closed_truthfully(world, pair, dep)


# ---- intent before action (issue: a rollback could be overtaken by a shift in flight) ---------------


def test_an_abort_racing_back_to_back_shifts_ends_exactly_at_the_snapshot(world: World) -> None:
    """Bakes of 0 s: shifts follow each other without pause, so the abort lands while one is in flight.

    The rollback records its intent first (no step writes past it), waits for the shift's lease, then
    restores: the closed record and the router agree, on the snapshot, and the lock is free.
    """
    pair = world.alb_pair("race")
    _alarms_only(world, pair, {"type": "linear", "percent": 5, "bake_seconds": 0})
    green = world.store.get_pair(pair.name).idle_service
    before = world.weights(pair)
    task_definition = world.release(pair, "v2")
    _at_step(world, pair, green, task_definition, index=1)

    result = world.cli("abort", pair.name, "--reason", "race")
    dep = world.deployment(pair, task_definition)

    assert result.returncode == 0, result.stderr
    assert dep.status is Status.ABORTED
    assert dep.step_index is not None
    assert dep.step_index < 19, "aborted mid-ramp"
    assert dep.weights == before
    _closed_truthfully(world, pair, dep)
    assert world.emulator.wait_for_idle(60)  # a deadline, not a speed check
    assert world.weights(pair) == before, "no late shift landed after the restore"


# ---- drift (issue: weights changed by hand went unnoticed) ------------------------------------------


def _show(weights: dict[str, int]) -> str:
    return ", ".join(f"{name}={weight}" for name, weight in sorted(weights.items()))


def _set_alb_weights(world: World, pair: PairInfra, weights: dict[str, int]) -> None:
    assert pair.listener_arn is not None
    world.clients("elbv2").modify_listener(
        ListenerArn=pair.listener_arn,
        DefaultActions=[
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [
                        {"TargetGroupArn": pair.service(name).target_group_arn, "Weight": weight}
                        for name, weight in weights.items()
                    ]
                },
            }
        ],
    )


def test_weights_changed_by_hand_fail_back_naming_both(world: World) -> None:
    pair = world.alb_pair("drift")
    _alarms_only(world, pair, {"type": "steps", "steps": [25, 50, 100], "bake_seconds": 300})
    stored = world.store.get_pair(pair.name)
    green, live = stored.idle_service, stored.live_service
    before = world.weights(pair)
    task_definition = world.release(pair, "v2")
    _at_step(world, pair, green, task_definition)

    _set_alb_weights(world, pair, {live: 10, green: 90})
    dep = world.wait(pair, green, task_definition)

    assert dep.status is Status.FAILED
    reason = dep.reason or ""
    assert "traffic drift" in reason
    assert f"weights are {_show({live: 10, green: 90})}" in reason, "the weights found"
    assert f"last wrote {_show({live: 75, green: 25})}" in reason, "the weights this deployment wrote"
    assert world.weights(pair) == before
    _closed_truthfully(world, pair, dep)


def test_drift_with_on_drift_hold_pauses_until_resumed(world: World) -> None:
    pair = world.alb_pair("hold")
    _alarms_only(
        world, pair, {"type": "steps", "steps": [25, 100], "bake_seconds": 300}, extra={"on_drift": "hold"}
    )
    stored = world.store.get_pair(pair.name)
    green, live = stored.idle_service, stored.live_service
    task_definition = world.release(pair, "v2")
    _at_step(world, pair, green, task_definition)

    _set_alb_weights(world, pair, {live: 50, green: 50})
    held = world.wait(pair, green, task_definition, until=lambda d: d.status is Status.PAUSED)
    assert held.paused is not None
    assert "someone else changed them" in held.paused["reason"]
    time.sleep(1.0)  # several hold checks (health.recheck_seconds: 10 emulated seconds each)
    assert world.deployment(pair, task_definition).status is Status.PAUSED
    assert world.weights(pair) == {live: 50, green: 50}, "holding changes nothing"

    _set_alb_weights(world, pair, {live: 75, green: 25})  # put back what the deployment wrote
    resumed = world.cli("resume", pair.name, "--reason", "weights put back")
    assert resumed.returncode == 0, resumed.stderr
    dep = world.wait(pair, green, task_definition)

    assert dep.status is Status.SUCCEEDED, dep.reason
    assert world.weights(pair) == {live: 0, green: 100}


# ---- operators ---------------------------------------------------------------------------------------


def test_abort_fails_back_now_and_records_who_and_why(target: Target) -> None:
    pair = target.alb_pair("abort")
    _alarms_only(target, pair, DAY)
    green = target.store.get_pair(pair.name).idle_service
    before = target.weights(pair)
    task_definition = target.release(pair, "v2")
    _at_step(target, pair, green, task_definition)

    result = target.cli("abort", pair.name, "--reason", "bad dashboard")
    dep = target.deployment(pair, task_definition)

    assert result.returncode == 0, result.stderr
    assert "ABORTED" in result.stdout
    assert dep.status is Status.ABORTED
    assert f"aborted by {target.caller_principal()}/" in (dep.reason or "")
    assert "bad dashboard" in (dep.reason or "")
    assert target.weights(pair) == before
    _closed_truthfully(target, pair, dep)
    assert target.execution_status(dep) == "FAILED"
    assert (
        target.history(dep.execution_arn or "")[-1]["executionFailedEventDetails"]["error"]
        == "DeploymentAborted"
    )


def test_pause_holds_and_resume_goes_on(world: World) -> None:
    pair = world.alb_pair("pause")
    _alarms_only(world, pair, {"type": "steps", "steps": [25, 50, 100], "bake_seconds": 300})
    stored = world.store.get_pair(pair.name)
    green, live = stored.idle_service, stored.live_service
    task_definition = world.release(pair, "v2")
    _at_step(world, pair, green, task_definition)

    paused = world.cli("pause", pair.name, "--reason", "lunch")
    assert paused.returncode == 0, paused.stderr
    at = world.deployment(pair, task_definition).step_index
    time.sleep(5.0)  # the bake (3 s) ends, then several hold checks
    held = world.deployment(pair, task_definition)
    assert held.status is Status.PAUSED
    assert held.step_index == at, "paused: nothing moved past the step it was on"
    assert history_events(held, "holding"), "the health gate kept judging while paused"

    resumed = world.cli("resume", pair.name, "--reason", "back")
    assert resumed.returncode == 0, resumed.stderr
    dep = world.wait(pair, green, task_definition)

    assert dep.status is Status.SUCCEEDED, dep.reason
    assert [h["percent"] for h in history_events(dep, "shifted")] == [25, 50, 100]
    assert [h["event"] for h in dep.history].count("paused") == 1
    assert world.weights(pair) == {live: 0, green: 100}


def test_promote_skips_the_bake_and_promote_full_goes_to_100(world: World) -> None:
    pair = world.alb_pair("promote")
    _alarms_only(world, pair, {"type": "steps", "steps": [10, 25, 50, 75, 100], "bake_seconds": 86_400})
    stored = world.store.get_pair(pair.name)
    green, live = stored.idle_service, stored.live_service
    task_definition = world.release(pair, "v2")
    _at_step(world, pair, green, task_definition)

    promoted = world.cli("promote", pair.name, "--reason", "looks good")
    assert promoted.returncode == 0, promoted.stderr
    _at_step(world, pair, green, task_definition, index=1)
    assert world.weights(pair) == {live: 75, green: 25}

    full = world.cli("promote", pair.name, "--full", "--reason", "ship it")
    assert full.returncode == 0, full.stderr
    dep = world.wait(pair, green, task_definition)

    assert dep.status is Status.SUCCEEDED, dep.reason
    assert [h["percent"] for h in history_events(dep, "shifted")] == [10, 25, 100]
    assert world.weights(pair) == {live: 0, green: 100}
    assert world.store.get_pair(pair.name).live_service == green


def test_commands_without_an_active_deployment_are_refused(world: World) -> None:
    pair = world.alb_pair("idle")
    _alarms_only(world, pair, SHORT)
    for command in ("abort", "pause", "resume", "promote"):
        result = world.cli(command, pair.name)
        assert result.returncode == 1, (command, result.stdout)
        assert "has no active deployment" in result.stderr


# ---- nothing silent (issue: a rollback that could not finish was silent) ------------------------------


def test_a_rollback_that_cannot_restore_ends_rollback_failed_and_alarms(world: World) -> None:
    pair = world.alb_pair("broken")
    _alarms_only(world, pair, DAY)
    green = world.store.get_pair(pair.name).idle_service
    task_definition = world.release(pair, "v2")
    _at_step(world, pair, green, task_definition)
    assert pair.listener_arn is not None

    # The listener the weights live on disappears: no restore can succeed any more.
    world.clients("elbv2").delete_listener(ListenerArn=pair.listener_arn)
    world.cli("abort", pair.name, "--no-wait", "--reason", "listener deleted")
    dep = world.wait(pair, green, task_definition)

    assert dep.status is Status.ROLLBACK_FAILED
    reason = dep.reason or ""
    assert reason.startswith("rollback failed: ")
    assert "traffic is at could not be read" in reason
    assert "aborted by" in reason, "the reason it was rolling back is kept"
    assert world.store.active_deployment_id(pair.name) is None
    assert world.execution_status(dep) == "FAILED"
    cloudwatch = world.clients("cloudwatch")
    alarm_name = world.emulator.outputs["RollbackFailedAlarmName"]
    deadline = time.monotonic() + 120  # a deadline, not a speed check
    state = ""
    while time.monotonic() < deadline:
        state = cloudwatch.describe_alarms(AlarmNames=[alarm_name])["MetricAlarms"][0]["StateValue"]
        if state == "ALARM":
            break
        time.sleep(0.2)
    assert state == "ALARM", "the stack alarms on ROLLBACK_FAILED"


def test_the_sweeper_closes_a_deployment_whose_execution_ended_silently(world: World) -> None:
    """The execution is stopped while nothing reconciles it: the scheduled sweeper restores and closes."""
    pair = world.alb_pair("swept")
    _alarms_only(world, pair, DAY)
    green = world.store.get_pair(pair.name).idle_service
    before = world.weights(pair)
    events = world.clients("events")
    rules = [
        rule["Name"]
        for rule in events.list_rules(NamePrefix="ecs-canary-")["Rules"]
        if any(
            "ReconcileFunction" in target["Arn"]
            for target in events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        )
    ]
    assert len(rules) == 1
    task_definition = world.release(pair, "v2")
    dep = _at_step(world, pair, green, task_definition)
    events.disable_rule(Name=rules[0])
    try:
        world.clients("stepfunctions").stop_execution(executionArn=dep.execution_arn or "", error="Lost")
        dep = world.wait(pair, green, task_definition)
    finally:
        events.enable_rule(Name=rules[0])

    assert dep.status is Status.ABORTED
    assert "closed by the sweeper" in (dep.reason or "")
    assert world.weights(pair) == before
    _closed_truthfully(world, pair, dep)


# ---- safe updates (issue: a stack update broke in-flight deployments) -----------------------------------


def test_a_stack_update_mid_ramp_does_not_disturb_the_running_deployment(
    world: World, tmp_path: Path
) -> None:
    pair = world.alb_pair("update")
    _alarms_only(world, pair, {"type": "steps", "steps": [50, 100], "bake_seconds": 1_200})
    stored = world.store.get_pair(pair.name)
    green, live = stored.idle_service, stored.live_service
    task_definition = world.release(pair, "v2")
    dep = _at_step(world, pair, green, task_definition)
    sfn = world.clients("stepfunctions")
    before = json.loads(sfn.describe_state_machine(stateMachineArn=world.state_machine_arn)["definition"])

    # A new build of the stack: the same template, code that differs by one module.
    build = tmp_path / "build"
    shutil.copytree(ROOT / "functions", build / "functions", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "statemachine", build / "statemachine")
    shutil.copy(ROOT / "template.yaml", build / "template.yaml")
    (build / "functions" / "ecs_canary" / "build_info.py").write_text('BUILD = "next"\n')
    try:
        deploy_stack(
            world.emulator.endpoint,
            build / "template.yaml",
            "ecs-canary",
            STACK_PARAMETERS,
            region=world.emulator.region,
        )
        after = json.loads(sfn.describe_state_machine(stateMachineArn=world.state_machine_arn)["definition"])
        dep = world.wait(pair, green, task_definition)
    finally:
        deploy_stack(
            world.emulator.endpoint,
            ROOT / "template.yaml",
            "ecs-canary",
            STACK_PARAMETERS,
            region=world.emulator.region,
        )

    def functions(definition: dict[str, Any]) -> set[str]:
        return {
            str(state["Parameters"]["FunctionName"])
            for state in _all_states(definition)
            if state.get("Type") == "Task"
        }

    assert functions(before) != functions(after), "the update published new function versions"
    assert all(arn.rsplit(":", 1)[-1].isdigit() for arn in functions(after)), (
        "versions, not $LATEST or aliases"
    )
    assert dep.status is Status.SUCCEEDED, dep.reason
    assert world.weights(pair) == {live: 0, green: 100}
    called = {
        json.loads(e["taskScheduledEventDetails"]["parameters"])["FunctionName"]
        for e in world.history(dep.execution_arn or "")
        if "taskScheduledEventDetails" in e
    }
    assert called <= functions(before), "the in-flight execution kept calling the versions it started with"


def _all_states(definition: dict[str, Any]) -> list[dict[str, Any]]:
    states: list[dict[str, Any]] = []
    for state in definition["States"].values():
        states.append(state)
        for branch in state.get("Branches", []):
            states.extend(_all_states(branch))
    return states
