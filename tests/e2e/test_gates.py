"""The gates people and tests hold, end to end: lifecycle hooks, test traffic, approvals, events.

Hooks are real Lambda functions deployed into the emulator (``hooks_fixture/hook.py``, named with
the stack's HookFunctionPrefix) and answer what their ``hookDetails`` script says; approvals are
given with the CLI in its own process; lifecycle events are read from an SQS queue a rule feeds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ecs_canary.flow.notify import DETAIL_TYPES, LifecycleEvent
from ecs_canary.store import Deployment, Status
from ecs_canary_cli.demo.infra import PairInfra, deploy_function

from .conftest import World, history_events

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore:No application metrics:UserWarning")]

HOOK_SOURCE = Path(__file__).resolve().parent / "hooks_fixture" / "hook.py"
TWO_STEPS = {"type": "steps", "steps": [50, 100], "bake_seconds": 120}
LONG_BAKE = {"type": "steps", "steps": [50, 100], "bake_seconds": 86_400}


@pytest.fixture(scope="module")
def hook(world: World) -> str:
    """The scripted hook, deployed as a Lambda function the stack may invoke (its name has the prefix)."""
    name = f"{world.emulator.outputs['HookFunctionPrefix']}e2e"
    return deploy_function(world.clients, name, {"hook.py": HOOK_SOURCE}, "hook.handler")


def _script(function: str, *answers: str, delay: int = 30, timeout: int | None = None) -> dict[str, Any]:
    hook: dict[str, Any] = {"function": function, "details": {"answers": list(answers), "delay": delay}}
    if timeout is not None:
        hook["timeout_seconds"] = timeout
    return hook


def _test_listener(world: World, pair: PairInfra) -> tuple[str, list[dict[str, Any]]]:
    """A test listener (HTTP:8080) on the pair's load balancer, forwarding to the live service."""
    elbv2 = world.clients("elbv2")
    live = pair.service(pair.live)
    arn = elbv2.create_listener(
        LoadBalancerArn=live.load_balancer_arn,
        Protocol="HTTP",
        Port=8080,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": live.target_group_arn}],
    )["Listeners"][0]["ListenerArn"]
    return str(arn), _listener_actions(world, str(arn))


def _listener_actions(world: World, arn: str) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = world.clients("elbv2").describe_listeners(ListenerArns=[arn])[
        "Listeners"
    ][0]["DefaultActions"]
    return actions


def _forwarded_to(actions: list[dict[str, Any]]) -> set[str]:
    groups: set[str] = set()
    for action in actions:
        if action.get("Type") != "forward":
            continue
        if action.get("TargetGroupArn"):
            groups.add(action["TargetGroupArn"])
        for group in (action.get("ForwardConfig") or {}).get("TargetGroups", []):
            if int(group.get("Weight", 1)) > 0:
                groups.add(group["TargetGroupArn"])
    return groups


def _register(
    world: World, pair: PairInfra, plan: dict[str, Any] = TWO_STEPS, **extra: Any
) -> tuple[str, str]:
    """Register with the services' alarms as the health gate; (green, live)."""
    world.register(
        pair,
        plan=plan,
        alarms=[f"{s.name}-5xx" for s in pair.services],
        max_5xx_percent=None,
        extra=extra,
    )
    stored = world.store.get_pair(pair.name)
    return stored.idle_service, stored.live_service


def _hook_runs(dep: Deployment) -> list[tuple[str, dict[str, Any]]]:
    """(event, what the hook saw) of every finished hook call, in order."""
    runs = []
    for entry in dep.history:
        if entry.get("event") not in ("hook_succeeded", "hook_failed"):
            continue
        message = str(entry.get("message", ""))
        seen: dict[str, Any] = {}
        if "{" in message:
            try:
                seen = json.loads(message[message.index("{") : message.rindex("}") + 1])
            except ValueError:
                seen = {}
        runs.append((str(entry["event"]), seen))
    return runs


# ---- hooks at every stage, test traffic restored ---------------------------------------------------


def test_hooks_run_at_every_stage_in_order_and_test_traffic_is_restored(world: World, hook: str) -> None:
    pair = world.alb_pair("hooks-all")
    listener, original = _test_listener(world, pair)
    stages = [
        "before_test_traffic",
        "after_test_traffic",
        "before_production_traffic",
        "after_each_shift",
        "after_production_traffic",
        "after_promotion",
    ]
    hooks = {stage: [_script(hook, "SUCCEEDED")] for stage in stages}
    # The test-traffic hook asks to be called back once before it answers.
    hooks["after_test_traffic"] = [_script(hook, "IN_PROGRESS", "SUCCEEDED", delay=45)]
    green, live = _register(world, pair, hooks=hooks, test_traffic={"listener_arn": listener})
    task_definition = world.release(pair, "v2")
    dep = world.wait(pair, green, task_definition)

    assert dep.status is Status.SUCCEEDED, dep.reason
    runs = _hook_runs(dep)
    assert [event for event, _ in runs] == ["hook_succeeded"] * 7
    assert [seen["stage"] for _, seen in runs] == [
        "before_test_traffic",
        "after_test_traffic",
        "before_production_traffic",
        "after_each_shift",
        "after_each_shift",
        "after_production_traffic",
        "after_promotion",
    ]
    by_stage = {seen["stage"]: seen for _, seen in runs}
    assert by_stage["after_test_traffic"]["attempt"] == 2, "asked again after its callBackDelay"
    assert by_stage["after_test_traffic"]["test"] == "alb", "the hook was told the test endpoint"
    assert by_stage["before_test_traffic"]["green"] == green
    shift_steps = [seen["step"]["percent"] for _, seen in runs if seen["stage"] == "after_each_shift"]
    assert shift_steps == [50, 100]
    events = [h["event"] for h in dep.history]
    assert events.index("test_traffic") < events.index("shifted"), "test traffic before production"
    assert events.index("test_traffic_restored") < events.index("succeeded"), "restored before it ended"
    assert _listener_actions(world, listener) == original, "the test listener is put back exactly"
    assert world.weights(pair) == {live: 0, green: 100}


def test_a_failing_test_traffic_hook_fails_back_before_any_production_traffic(
    world: World, hook: str
) -> None:
    pair = world.alb_pair("hooks-fail")
    green, live = _register_with_listener(world, pair, hook, after_test=["FAILED"], on_rollback=["SUCCEEDED"])
    listener = world.store.get_pair(pair.name).spec.test_traffic
    assert listener is not None
    assert listener.listener_arn is not None
    original = _listener_actions(world, listener.listener_arn)
    before = world.weights(pair)
    task_definition = world.release(pair, "v2")
    dep = world.wait(pair, green, task_definition)

    assert dep.status is Status.FAILED
    assert f"hook {hook} at after_test_traffic failed" in (dep.reason or "")
    assert not history_events(dep, "shifted"), "production traffic never moved"
    assert world.weights(pair) == before == {live: 100, green: 0}
    # The test listener (pointed at green during the stage) is restored exactly, then on_rollback runs.
    assert _listener_actions(world, listener.listener_arn) == original
    assert world.execution_status(dep) == "FAILED", "on_rollback hooks ran, then the execution ended"
    runs = _hook_runs(world.deployment(pair, task_definition))
    assert [(event, seen["stage"]) for event, seen in runs] == [
        ("hook_failed", "after_test_traffic"),
        ("hook_succeeded", "on_rollback"),
    ]
    assert world.store.active_deployment_id(pair.name) is None


def _register_with_listener(
    world: World, pair: PairInfra, hook: str, *, after_test: list[str], on_rollback: list[str]
) -> tuple[str, str]:
    listener, _ = _test_listener(world, pair)
    return _register(
        world,
        pair,
        hooks={
            "after_test_traffic": [_script(hook, *after_test)],
            "on_rollback": [_script(hook, *on_rollback)],
        },
        test_traffic={"listener_arn": listener},
    )


@pytest.mark.parametrize(
    ("answers", "timeout", "why"),
    [
        (["IN_PROGRESS"], 120, "still IN_PROGRESS after 120 s (timeout_seconds)"),
        (["CRASH"], None, "the hook crashed: RuntimeError: hook crashed on purpose"),
        (["GARBAGE"], None, "the hook's response has no valid hookStatus"),
    ],
    ids=["timeout", "crash", "garbage"],
)
def test_a_hook_that_times_out_crashes_or_answers_garbage_fails_the_deployment(
    world: World, hook: str, answers: list[str], timeout: int | None, why: str
) -> None:
    pair = world.route53_pair(f"hook-{answers[0].lower().replace('_', '')}")
    green, live = _register(
        world,
        pair,
        hooks={"before_production_traffic": [_script(hook, *answers, delay=60, timeout=timeout)]},
    )
    task_definition = world.release(pair, "v2")
    dep = world.wait(pair, green, task_definition)

    assert dep.status is Status.FAILED
    assert why in (dep.reason or ""), dep.reason
    assert f"hook {hook} at before_production_traffic failed" in (dep.reason or "")
    assert not history_events(dep, "shifted")
    assert world.weights(pair) == {live: 100, green: 0}


def test_a_failing_after_each_shift_hook_fails_back_to_the_snapshot(world: World, hook: str) -> None:
    pair = world.alb_pair("hook-shift")
    green, _ = _register(world, pair, hooks={"after_each_shift": [_script(hook, "FAILED")]})
    before = world.weights(pair)
    task_definition = world.release(pair, "v2")
    dep = world.wait(pair, green, task_definition)

    assert dep.status is Status.FAILED
    assert "after_each_shift" in (dep.reason or "")
    assert [h["percent"] for h in history_events(dep, "shifted")] == [50], (
        "failed right after the first shift"
    )
    assert world.weights(pair) == before == dep.snapshot


# ---- approvals -----------------------------------------------------------------------------------------


def _awaiting(world: World, pair: PairInfra, green: str, task_definition: str) -> Deployment:
    return world.wait(pair, green, task_definition, until=lambda d: d.approval is not None)


def test_an_approval_holds_production_traffic_until_approved_with_the_cli(world: World) -> None:
    pair = world.alb_pair("approve")
    listener, original = _test_listener(world, pair)
    green, live = _register(
        world,
        pair,
        test_traffic={"listener_arn": listener},
        approvals={"before_production_traffic": {"timeout_seconds": 86_400}},
    )
    green_tg = pair.service(green).target_group_arn
    task_definition = world.release(pair, "v2")
    waiting = _awaiting(world, pair, green, task_definition)

    assert waiting.status is Status.RUNNING
    assert world.weights(pair) == {live: 100, green: 0}, "no production traffic before the approval"
    assert _forwarded_to(_listener_actions(world, listener)) == {green_tg}, "test traffic goes to green"
    shown = world.cli("status", pair.name)
    assert shown.returncode == 0, shown.stderr

    approved = world.cli("approve", pair.name, "--reason", "smoke tests look good")
    assert approved.returncode == 0, approved.stderr
    dep = world.wait(pair, green, task_definition)

    assert dep.status is Status.SUCCEEDED, dep.reason
    (entry,) = history_events(dep, "approved")
    assert "smoke tests look good" in str(entry.get("message", ""))
    assert _listener_actions(world, listener) == original
    assert world.weights(pair) == {live: 0, green: 100}


def test_a_rejection_with_the_cli_fails_back_with_its_reason(world: World) -> None:
    pair = world.route53_pair("approval-reject")
    green, live = _register(world, pair, approvals={"after_production_traffic": {"timeout_seconds": 86_400}})
    before = world.weights(pair)
    task_definition = world.release(pair, "v2")
    waiting = _awaiting(world, pair, green, task_definition)
    assert world.weights(pair) == {live: 0, green: 100}, "the gate holds at 100 % before promotion"
    assert waiting.status is Status.RUNNING

    refused = world.cli("reject", pair.name)
    assert refused.returncode != 0, "a rejection needs a reason"
    rejected = world.cli("reject", pair.name, "--reason", "error budget burnt")
    assert rejected.returncode == 0, rejected.stderr
    dep = world.wait(pair, green, task_definition)

    assert dep.status is Status.FAILED
    assert "rejected by" in (dep.reason or "")
    assert "error budget burnt" in (dep.reason or "")
    assert world.weights(pair) == before
    again = world.cli("approve", pair.name)
    assert again.returncode != 0, "nothing is waiting for an approval any more"


@pytest.mark.parametrize(
    ("on_timeout", "ends"), [("rollback", Status.FAILED), ("continue", Status.SUCCEEDED)]
)
def test_an_approval_nobody_gives_times_out_as_the_spec_says(
    world: World, on_timeout: str, ends: Status
) -> None:
    pair = world.alb_pair(f"approval-{on_timeout}")
    green, live = _register(
        world,
        pair,
        approvals={"before_production_traffic": {"timeout_seconds": 60, "on_timeout": on_timeout}},
    )
    task_definition = world.release(pair, "v2")
    dep = world.wait(pair, green, task_definition)

    assert dep.status is ends, dep.reason
    if ends is Status.FAILED:
        assert "approval timed out after 60 s" in (dep.reason or "")
        assert not history_events(dep, "shifted")
        assert world.weights(pair) == {live: 100, green: 0}
    else:
        assert history_events(dep, "approval_timed_out")
        assert world.weights(pair) == {live: 0, green: 100}


# ---- after promotion -------------------------------------------------------------------------------------


def test_after_promotion_bake_then_the_old_service_is_scaled_to_zero(world: World) -> None:
    pair = world.alb_pair("retire")
    green, live = _register(world, pair, after_promotion={"bake_seconds": 120, "scale_old_to_zero": True})
    running = world.clients("ecs").describe_services(cluster=pair.cluster, services=[live])["services"][0]
    task_definition = world.release(pair, "v2")
    dep = world.wait(pair, green, task_definition)

    assert dep.status is Status.SUCCEEDED, dep.reason
    # Retiring the old service follows the recorded success (a deployment that lost its owner never
    # scales anything down).
    dep = world.wait(pair, green, task_definition, until=lambda d: bool(history_events(d, "scaled_down")))
    events = [h["event"] for h in dep.history]
    assert events.index("watching") < events.index("succeeded") < events.index("scaled_down")
    old = world.clients("ecs").describe_services(cluster=pair.cluster, services=[live])["services"][0]
    assert old["desiredCount"] == 0
    retired = world.store.get_pair(pair.name).retired
    assert retired is not None
    assert retired["service"] == live
    assert retired["desired_count"] == running["desiredCount"]


def test_a_crash_in_the_post_promotion_bake_still_fails_back(world: World) -> None:
    pair = world.alb_pair("post-bake")
    green, live = _register(world, pair, after_promotion={"bake_seconds": 86_400, "scale_old_to_zero": True})
    before = world.weights(pair)
    task_definition = world.release(pair, "v2")
    watching = world.wait(pair, green, task_definition, until=lambda d: bool(history_events(d, "watching")))
    assert world.weights(pair) == {live: 0, green: 100}
    ecs_deployment = watching.release.deployment
    tasks = world.release_tasks(pair, green, ecs_deployment)
    assert tasks, "green runs tasks"
    for task in tasks[:2]:
        world.exit_container(pair, task["taskArn"])
    dep = world.wait(pair, green, task_definition)

    assert dep.status is Status.FAILED
    assert world.weights(pair) == before, "the old service still ran and takes the traffic back"
    old = world.clients("ecs").describe_services(cluster=pair.cluster, services=[live])["services"][0]
    assert old["desiredCount"] > 0, "a failed deployment never scales the old service down"


# ---- lifecycle events --------------------------------------------------------------------------------------


@pytest.fixture
def lifecycle_queue(world: World) -> Iterator[tuple[str, str]]:
    """An SQS queue fed by a rule on source ecs-canary (what a user wires to chat or a pager)."""
    sqs, events = world.clients("sqs"), world.clients("events")
    url = sqs.create_queue(QueueName=f"lifecycle-{time.monotonic_ns()}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = f"lifecycle-{time.monotonic_ns()}"
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["ecs-canary"]}))
    events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": arn}])
    yield url, rule
    events.remove_targets(Rule=rule, Ids=["queue"])
    events.delete_rule(Name=rule)


def _drain(world: World, url: str, pair: str, *, until: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    sqs = world.clients("sqs")
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in got.get("Messages", []):
            envelope = json.loads(message["Body"])
            if envelope["detail"]["pair"] == pair:
                seen.append(envelope)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if any(e["detail"]["transition"] == until for e in seen):
            break
    return sorted(seen, key=lambda e: str(e["detail"]["at"]))


def test_every_transition_of_a_deployment_is_an_event(
    world: World, hook: str, lifecycle_queue: tuple[str, str]
) -> None:
    url, _ = lifecycle_queue
    pair = world.alb_pair("events")
    green, _ = _register(world, pair, hooks={"before_production_traffic": [_script(hook, "SUCCEEDED")]})
    task_definition = world.release(pair, "v2")
    dep = world.wait(pair, green, task_definition)
    assert dep.status is Status.SUCCEEDED, dep.reason

    envelopes = _drain(world, url, pair.name, until="succeeded")
    transitions = [e["detail"]["transition"] for e in envelopes]
    assert transitions[0] == "started", transitions
    assert transitions[-1] == "succeeded", transitions
    assert transitions.index("steady") < transitions.index("hook_succeeded") < transitions.index("shifted")
    assert [e["detail"]["percent"] for e in envelopes if e["detail"]["transition"] == "shifted"] == [50, 100]
    for envelope in envelopes:
        assert envelope["source"] == "ecs-canary"
        detail = LifecycleEvent.model_validate(envelope["detail"])
        assert envelope["detail-type"] == DETAIL_TYPES[detail.transition]
        assert detail.deployment_id == dep.deployment_id
        assert detail.version == "1"
        assert envelope["resources"] == [dep.execution_arn]


def test_a_failed_deployment_emits_why_and_the_restore(
    world: World, hook: str, lifecycle_queue: tuple[str, str]
) -> None:
    url, _ = lifecycle_queue
    pair = world.route53_pair("events-fail")
    green, _ = _register(world, pair, plan=LONG_BAKE)
    task_definition = world.release(pair, "v2")
    world.wait(pair, green, task_definition, until=lambda d: d.step_index == 0)
    world.clients("cloudwatch").set_alarm_state(
        AlarmName=f"{green}-5xx", StateValue="ALARM", StateReason="errors seen by a test"
    )
    dep = world.wait(pair, green, task_definition)
    assert dep.status is Status.FAILED

    envelopes = _drain(world, url, pair.name, until="failed")
    transitions = [e["detail"]["transition"] for e in envelopes]
    assert transitions.index("interrupted") < transitions.index("rolled_back") < transitions.index("failed")
    failed = next(e["detail"] for e in envelopes if e["detail"]["transition"] == "failed")
    assert "errors seen by a test" in failed["reason"]
    assert failed["weights"] == dep.snapshot
