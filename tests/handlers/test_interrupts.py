"""Interrupts: alarms, crashing green tasks and operator commands record an intent and end the watch."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from ecs_canary import aws
from ecs_canary.flow import signals
from ecs_canary.store import Release, Status, Store
from flow_fixtures import (
    ALARMS,
    BLUE,
    GREEN,
    PAIR,
    PAIR_ALARM,
    TOKEN,
    Flow,
    Run,
    catch,
    fake_spec,
)

pytest_plugins = ["flow_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

JANE = "arn:aws:iam::123456789012:user/jane"
RAMP0 = {BLUE: 90, GREEN: 10}


def _at_step0(flow: Flow, **register: Any) -> tuple[Run, dict[str, Any]]:
    flow.register(**register)
    run, state = flow.rolling(GREEN)
    return run, run.advance(state)


def _outcomes(result: dict[str, Any]) -> list[dict[str, Any]]:
    return list(result["outcomes"])


# ---- CloudWatch alarms --------------------------------------------------------------------------


@pytest.mark.parametrize("alarm", [ALARMS[GREEN], PAIR_ALARM], ids=["green-service-alarm", "pair-alarm"])
def test_alarm_of_the_gate_fails_the_deployment_back_at_once(flow: Flow, alarm: str) -> None:
    run, _ = _at_step0(flow)

    result = flow.invoke("interrupt", flow.alarm_event(alarm, "ALARM", "Threshold Crossed: 7 > 5"))

    reason = f"alarm {alarm} went into ALARM during the deployment: Threshold Crossed: 7 > 5"
    assert _outcomes(result) == [
        {"action": "rolling_back", "reason": reason, "pair": PAIR, "deployment_id": run.deployment_id}
    ]
    record = run.record()
    assert record.status is Status.ROLLING_BACK
    assert record.rollback is not None
    assert (record.rollback.status, record.rollback.reason, record.rollback.by) == (
        Status.FAILED,
        reason,
        f"alarm {alarm}",
    )
    (failure,) = flow.tokens.failures(TOKEN)
    assert (failure["error"], failure["cause"]) == ("GreenUnhealthy", reason)
    assert flow.weights() == RAMP0  # the owner's "Roll back" restores, not the interrupt

    # Re-delivered: the intent stays the first one and nothing new is recorded.
    again = flow.invoke("interrupt", flow.alarm_event(alarm, "ALARM", "another reason"))
    assert _outcomes(again)[0]["action"] == "ignored"
    assert run.record().rollback == record.rollback


def test_the_live_services_own_alarm_does_not_interrupt(flow: Flow) -> None:
    run, _ = _at_step0(flow)
    before = flow.items()

    result = flow.invoke("interrupt", flow.alarm_event(ALARMS[BLUE], "ALARM"))

    assert _outcomes(result) == [
        {"action": "ignored", "reason": f"alarm {ALARMS[BLUE]} does not gate {GREEN}", "pair": PAIR}
    ]
    assert flow.items() == before
    assert flow.tokens.calls == []
    assert run.record().status is Status.RUNNING


@pytest.mark.parametrize("state", ["OK", "INSUFFICIENT_DATA"])
def test_alarm_leaving_alarm_is_ignored(flow: Flow, state: str) -> None:
    _at_step0(flow)
    before = flow.items()

    result = flow.invoke("interrupt", flow.alarm_event(ALARMS[GREEN], state))

    assert _outcomes(result) == [{"action": "ignored", "reason": f"alarm {ALARMS[GREEN]} is {state}"}]
    assert flow.items() == before
    assert flow.tokens.calls == []


def test_alarm_nobody_gates_on_is_ignored(flow: Flow) -> None:
    _at_step0(flow)
    result = flow.invoke("interrupt", flow.alarm_event("billing-alarm", "ALARM"))
    assert _outcomes(result) == [
        {"action": "ignored", "reason": "no registered pair gates on alarm billing-alarm"}
    ]


def test_alarm_without_an_active_deployment_is_ignored(flow: Flow) -> None:
    flow.register()
    before = flow.items()
    result = flow.invoke("interrupt", flow.alarm_event(PAIR_ALARM, "ALARM"))
    assert _outcomes(result) == [
        {"action": "ignored", "reason": f"no deployment of {PAIR} to interrupt", "pair": PAIR}
    ]
    assert flow.items() == before


def _active(store: Store, pair: str, service: str, live: str, token: str) -> str:
    """A running deployment of a pair that exists only in the table (alarms never touch its traffic)."""
    deployment_id = f"{pair}-d1"
    arn = f"arn:aws:states:us-east-1:123456789012:execution:CanaryStateMachine:{deployment_id}"
    release = Release(service, "ecs-svc/77", "arn:aws:ecs:us-east-1:123456789012:task-definition/x:1")
    assert (
        store.claim(pair, deployment_id, release, live, execution_arn=arn, lease_seconds=900).outcome
        == "claimed"
    )
    store.mark_started(pair, deployment_id, arn)
    store.arm_listener(pair, deployment_id, owner=arn, token=token)
    return deployment_id


def test_alarm_fails_back_every_pair_whose_gate_names_it(flow: Flow) -> None:
    run, _ = _at_step0(flow)
    store = flow.store
    # shop gates green on the same pair-wide alarm; api only has it on its live service.
    store.put_pair(
        fake_spec("shop", services=("shop-blue", "shop-green"), alarms=(PAIR_ALARM,)),
        live_service="shop-blue",
        idle_baseline=None,
    )
    store.put_pair(
        fake_spec(
            "api",
            services=("api-blue", "api-green"),
            alarms=("api-latency",),
            service_alarms={"api-blue": (PAIR_ALARM,)},
        ),
        live_service="api-blue",
        idle_baseline=None,
    )
    shop = _active(store, "shop", "shop-green", "shop-blue", "shop-token")
    api = _active(store, "api", "api-green", "api-blue", "api-token")

    result = flow.invoke("interrupt", flow.alarm_event(PAIR_ALARM, "ALARM"))

    assert [(o["action"], o["pair"]) for o in _outcomes(result)] == [
        ("ignored", "api"),
        ("rolling_back", "shop"),
        ("rolling_back", PAIR),
    ]
    assert run.record().status is Status.ROLLING_BACK
    assert store.get_deployment("shop", shop).status is Status.ROLLING_BACK
    assert store.get_deployment("api", api).status is Status.RUNNING
    assert sorted(c["token"] for c in flow.tokens.failures()) == ["shop-token", TOKEN]


def test_malformed_alarm_event_is_rejected(flow: Flow) -> None:
    _at_step0(flow)
    event = flow.alarm_event(PAIR_ALARM, "ALARM")
    event["detail"]["state"]["value"] = "ON_FIRE"
    before = flow.items()

    result = flow.invoke("interrupt", event)

    assert result["action"] == "rejected"
    assert "detail.state.value" in result["reason"]
    assert flow.items() == before


# ---- ECS tasks stopping -------------------------------------------------------------------------------


def _stopped(flow: Flow, run: Run, **kwargs: Any) -> dict[str, Any]:
    return flow.task_event(GREEN, run.input["release"]["deployment"], last_status="STOPPED", **kwargs)


UNEXPECTED = [
    pytest.param(
        {
            "stop_code": "EssentialContainerExited",
            "stopped_reason": "Essential container in task exited",
            "exit_code": 137,
        },
        "EssentialContainerExited (Essential container in task exited; app exited 137)",
        id="essential-container-exited",
    ),
    pytest.param(
        {"stop_code": "TaskFailedToStart", "stopped_reason": "CannotPullContainerError: pull access denied"},
        "TaskFailedToStart (CannotPullContainerError: pull access denied)",
        id="failed-to-start",
    ),
    pytest.param(
        {
            "stop_code": "ServiceSchedulerInitiated",
            "stopped_reason": "Task failed ELB health checks in (target-group arn:aws:elb:tg/web-green)",
        },
        "Task failed ELB health checks in (target-group arn:aws:elb:tg/web-green)",
        id="elb-health-checks",
    ),
    pytest.param(
        {"stop_code": "ServiceSchedulerInitiated", "stopped_reason": "Task failed container health checks"},
        "Task failed container health checks",
        id="container-health-checks",
    ),
]


@pytest.mark.parametrize(("stop", "why"), UNEXPECTED)
def test_unexpected_stop_is_counted(flow: Flow, stop: dict[str, Any], why: str) -> None:
    run, _ = _at_step0(flow)
    event = _stopped(flow, run, **stop)

    result = flow.invoke("interrupt", event)

    (outcome,) = _outcomes(result)
    assert outcome == {
        "action": "counted",
        "reason": f"1 of at most 1 unexpected stops: {why}",
        "pair": PAIR,
        "deployment_id": run.deployment_id,
    }
    record = run.record()
    assert record.stopped_tasks == frozenset({event["detail"]["taskArn"]})
    assert record.history[-1]["event"] == "task_stopped"
    assert record.history[-1]["message"].endswith(f"stopped: {why}")
    assert record.status is Status.RUNNING
    assert flow.tokens.calls == []


@pytest.mark.parametrize(
    "stop",
    [
        pytest.param(
            {
                "stop_code": "ServiceSchedulerInitiated",
                "stopped_reason": "Scaling activity initiated by (deployment ecs-svc/1)",
            },
            id="scale-in",
        ),
        pytest.param(
            {
                "stop_code": "ServiceSchedulerInitiated",
                "stopped_reason": "ECS is performing maintenance on the underlying infrastructure",
            },
            id="maintenance",
        ),
        pytest.param({"stop_code": "UserInitiated", "stopped_reason": "Task stopped by user"}, id="user"),
        pytest.param(
            {"stop_code": "SpotInterruption", "stopped_reason": "Your Spot Task was interrupted."}, id="spot"
        ),
        pytest.param({}, id="no-code"),
    ],
)
def test_planned_stops_are_ignored(flow: Flow, stop: dict[str, Any]) -> None:
    run, _ = _at_step0(flow)
    before = flow.items()

    result = flow.invoke("interrupt", _stopped(flow, run, **stop))

    (outcome,) = _outcomes(result)
    assert outcome["action"] == "ignored"
    assert "stopped as planned" in outcome["reason"]
    assert flow.items() == before
    assert run.record().stopped_tasks == frozenset()


CRASH: dict[str, Any] = {
    "stop_code": "EssentialContainerExited",
    "stopped_reason": "Essential container in task exited",
    "exit_code": 1,
}


def test_the_same_stop_redelivered_is_counted_once(flow: Flow) -> None:
    run, _ = _at_step0(flow, max_stopped_tasks=1)
    event = _stopped(flow, run, **CRASH)

    first = flow.invoke("interrupt", event)
    again = flow.invoke("interrupt", event)

    assert _outcomes(first)[0]["action"] == "counted"
    assert _outcomes(again)[0] == {
        "action": "duplicate",
        "reason": f"stop of {event['detail']['taskArn']} already counted",
        "pair": PAIR,
        "deployment_id": run.deployment_id,
    }
    record = run.record()
    assert len(record.stopped_tasks) == 1
    assert record.status is Status.RUNNING
    assert run.events().count("task_stopped") == 1


@pytest.mark.parametrize("limit", [0, 1, 2])
def test_one_stop_more_than_the_limit_fails_back(flow: Flow, limit: int) -> None:
    run, _ = _at_step0(flow, max_stopped_tasks=limit)
    release = run.input["release"]["deployment"]

    outcomes = [
        _outcomes(flow.invoke("interrupt", _stopped(flow, run, **CRASH)))[0] for _ in range(limit + 1)
    ]

    assert [o["action"] for o in outcomes] == ["counted"] * limit + ["rolling_back"]
    reason = (
        f"{limit + 1} tasks of release {release} stopped unexpectedly (health.max_stopped_tasks is {limit}); "
        "latest: EssentialContainerExited (Essential container in task exited; app exited 1)"
    )
    assert outcomes[-1]["reason"] == reason
    record = run.record()
    assert record.status is Status.ROLLING_BACK
    assert record.rollback is not None
    assert (record.rollback.status, record.rollback.reason) == (Status.FAILED, reason)
    (failure,) = flow.tokens.failures(TOKEN)
    assert failure["error"] == "GreenTasksStopped"
    assert flow.weights() == RAMP0

    # More stops while rolling back are counted, but the intent does not change.
    late = _outcomes(flow.invoke("interrupt", _stopped(flow, run, **CRASH)))[0]
    assert late["action"] == "counted"
    assert run.record().rollback == record.rollback
    assert len(flow.tokens.failures()) == 1

    result = run.rollback(catch("GreenTasksStopped", reason))
    assert result["status"] == "FAILED"
    assert flow.weights() == {BLUE: 100, GREEN: 0}


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param(
            lambda f, r: f.task_event(
                GREEN, f.store.get_pair(PAIR).idle_baseline, last_status="STOPPED", **CRASH
            ),
            "is not of a release under test",
            id="green-baseline-task",
        ),
        pytest.param(
            lambda f, r: f.task_event(BLUE, f.deployment_of(BLUE), last_status="STOPPED", **CRASH),
            "is not of a release under test",
            id="live-service-task",
        ),
        pytest.param(
            lambda f, r: f.task_event("payments", "ecs-svc/1", last_status="STOPPED", **CRASH),
            "payments is not part of a registered pair",
            id="unregistered-service",
        ),
        pytest.param(
            lambda f, r: f.task_event(GREEN, r.input["release"]["deployment"], **CRASH),
            "is not a stopped service task",
            id="not-stopped",
        ),
        pytest.param(
            lambda f, r: f.task_event(None, "ecs-svc/1", last_status="STOPPED", **CRASH),
            "is not a stopped service task",
            id="standalone-task",
        ),
    ],
)
def test_stops_that_are_not_of_the_release_under_test_are_ignored(flow: Flow, make: Any, reason: str) -> None:
    run, _ = _at_step0(flow, max_stopped_tasks=0)
    event = make(flow, run)
    before = flow.items()

    (outcome,) = _outcomes(flow.invoke("interrupt", event))

    assert outcome["action"] == "ignored"
    assert reason in outcome["reason"]
    assert flow.items() == before
    assert run.record().status is Status.RUNNING


def test_stop_without_an_active_deployment_is_ignored(flow: Flow) -> None:
    flow.register(max_stopped_tasks=0)
    release = flow.new_release(GREEN)
    before = flow.items()
    (outcome,) = _outcomes(
        flow.invoke("interrupt", flow.task_event(GREEN, release, last_status="STOPPED", **CRASH))
    )
    assert outcome["action"] == "ignored"
    assert flow.items() == before


def test_malformed_task_event_is_rejected_naming_the_field(flow: Flow) -> None:
    run, _ = _at_step0(flow)
    event = _stopped(flow, run, **CRASH)
    event["detail"]["stoppedReason"] = "x" * 2000
    before = flow.items()

    result = flow.invoke("interrupt", event)

    assert result["action"] == "rejected"
    assert "detail.stoppedReason" in result["reason"]
    assert flow.items() == before


# ---- operator commands ---------------------------------------------------------------------------------


def test_abort_records_the_intent_and_ends_the_watch(flow: Flow) -> None:
    run, _ = _at_step0(flow)

    reply = flow.command("abort", reason="wrong build", by=JANE)

    assert reply == {
        "accepted": True,
        "command": "abort",
        "pair": PAIR,
        "deployment_id": run.deployment_id,
        "status": "ROLLING_BACK",
    }
    record = run.record()
    assert record.rollback is not None
    assert (record.rollback.status, record.rollback.reason, record.rollback.by) == (
        Status.ABORTED,
        f"aborted by {JANE}: wrong build",
        JANE,
    )
    (failure,) = flow.tokens.failures(TOKEN)
    assert (failure["error"], failure["cause"]) == ("Aborted", f"aborted by {JANE}: wrong build")
    assert flow.weights() == RAMP0

    result = run.rollback(catch("Aborted", f"aborted by {JANE}: wrong build"))
    assert result["status"] == "ABORTED"
    assert flow.weights() == {BLUE: 100, GREEN: 0}


def test_abort_of_a_deployment_already_rolling_back_keeps_the_first_intent(flow: Flow) -> None:
    run, _ = _at_step0(flow)
    flow.invoke("interrupt", flow.alarm_event(ALARMS[GREEN], "ALARM"))
    first = run.record().rollback

    reply = flow.command("abort", reason="me too")

    assert reply["accepted"] is True
    assert reply["status"] == "ROLLING_BACK"
    assert run.record().rollback == first


def test_pause_then_resume(flow: Flow) -> None:
    run, _ = _at_step0(flow)

    paused = flow.command("pause", reason="checking logs", by=JANE)

    assert paused["accepted"] is True
    assert paused["status"] == "PAUSED"
    record = run.record()
    assert record.paused is not None
    assert (record.paused["by"], record.paused["reason"]) == (JANE, "checking logs")
    assert flow.tokens.calls == []  # a pause does not end the bake

    resumed = flow.command("resume", reason="all fine")

    assert resumed["status"] == "RUNNING"
    assert run.record().paused is None
    (failure,) = flow.tokens.failures(TOKEN)
    assert failure["error"] == "ResumeRequested"


def test_promote_stores_the_order_and_ends_the_bake(flow: Flow) -> None:
    run, _ = _at_step0(flow)

    reply = flow.command("promote", full=True, skip_analysis=True, reason="hotfix", by=JANE)

    assert reply["accepted"] is True
    assert reply["status"] == "RUNNING"
    command = run.record().command
    assert command is not None
    assert (command.full, command.skip_analysis, command.by, command.reason) == (True, True, JANE, "hotfix")
    (failure,) = flow.tokens.failures(TOKEN)
    assert failure["error"] == "PromoteRequested"


def test_command_for_a_named_deployment(flow: Flow) -> None:
    run, _ = _at_step0(flow)
    assert flow.command("pause", deployment_id=run.deployment_id)["status"] == "PAUSED"


def test_command_still_applies_when_the_watch_already_ended(flow: Flow) -> None:
    run, _ = _at_step0(flow)
    flow.tokens.gone[TOKEN] = "TaskTimedOut"

    reply = flow.command("promote")

    assert reply["accepted"] is True
    assert run.record().command is not None
    assert flow.tokens.failures(TOKEN)[0]["answered"] == "TaskTimedOut"


def _rolling_back(flow: Flow, run: Run) -> None:
    flow.invoke("interrupt", flow.alarm_event(ALARMS[GREEN], "ALARM"))


def _closed(flow: Flow, run: Run) -> None:
    run.rollback(catch("GreenUnhealthy", "x"))


@pytest.mark.parametrize(
    ("setup", "command", "extra", "reason"),
    [
        pytest.param(
            lambda f, r: f.command("pause"),
            "pause",
            {},
            "cannot pause deployment {id}: it is PAUSED",
            id="pause-paused",
        ),
        pytest.param(
            lambda f, r: None,
            "resume",
            {},
            "cannot resume deployment {id}: it is RUNNING",
            id="resume-running",
        ),
        pytest.param(
            _rolling_back, "pause", {}, "deployment {id} is already rolling back", id="pause-rolling-back"
        ),
        pytest.param(
            _rolling_back, "resume", {}, "deployment {id} is already rolling back", id="resume-rolling-back"
        ),
        pytest.param(
            _rolling_back, "promote", {}, "deployment {id} is already rolling back", id="promote-rolling-back"
        ),
        pytest.param(
            _closed, "pause", {}, "pair web has no active deployment to pause", id="pause-after-close"
        ),
        pytest.param(
            _closed,
            "abort",
            {"deployment_id": "{id}"},
            "deployment {id} already ended (FAILED)",
            id="abort-named-closed",
        ),
        pytest.param(
            lambda f, r: None,
            "abort",
            {"deployment_id": "web-nope"},
            "no deployment 'web-nope'",
            id="unknown-deployment",
        ),
        pytest.param(
            lambda f, r: None,
            "pause",
            {"pair": "nope"},
            "no service pair named 'nope' is registered",
            id="unknown-pair",
        ),
    ],
)
def test_commands_that_do_not_apply_are_answered_not_accepted(
    flow: Flow, setup: Any, command: str, extra: dict[str, str], reason: str
) -> None:
    run, _ = _at_step0(flow)
    setup(flow, run)
    before = flow.items()
    calls = len(flow.tokens.calls)
    extra = {k: v.format(id=run.deployment_id) for k, v in extra.items()}

    reply = flow.command(command, **extra)

    assert reply["accepted"] is False
    assert reply["command"] == command
    assert reason.format(id=run.deployment_id) in reply["reason"]
    assert flow.items() == before
    assert len(flow.tokens.calls) == calls


def test_command_without_any_deployment(flow: Flow) -> None:
    flow.register()
    reply = flow.command("promote")
    assert reply == {
        "accepted": False,
        "command": "promote",
        "pair": PAIR,
        "reason": f"pair {PAIR} has no active deployment to promote",
    }


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param({"pair": PAIR, "command": "explode", "by": JANE}, "command", id="unknown-command"),
        pytest.param({"pair": PAIR, "command": "abort"}, "by", id="no-caller"),
        pytest.param(
            {"pair": PAIR, "command": "abort", "by": JANE, "force": True}, "force", id="unknown-field"
        ),
        pytest.param({"pair": "p" * 41, "command": "abort", "by": JANE}, "pair", id="pair-too-long"),
        pytest.param(
            {"pair": PAIR, "command": "abort", "by": JANE, "reason": "r" * 1025}, "reason", id="long-reason"
        ),
    ],
)
def test_malformed_command_is_answered_naming_the_field(
    flow: Flow, payload: dict[str, Any], field: str
) -> None:
    _at_step0(flow)
    before = flow.items()

    reply = flow.invoke("command", payload)

    assert reply["accepted"] is False
    assert reply["reason"].startswith("malformed command: ")
    assert f"{field}: " in reply["reason"]
    assert flow.items() == before


def test_pause_before_prepare_is_honoured(flow: Flow) -> None:
    flow.register()
    run = flow.start(GREEN)  # the execution is starting; its first state has not run yet
    assert flow.command("pause", reason="hold the next release")["accepted"] is True

    state = run.prepare()

    assert state["deployment"]["snapshot"] == {BLUE: 100, GREEN: 0}
    record = run.record()
    assert record.status is Status.PAUSED
    assert record.snapshot == {BLUE: 100, GREEN: 0}
    # The rollout arms its watch and judges, but holds until resumed.
    state = run.steady(state)
    run.listen(state)
    state = run.advance(state)
    assert state["cursor"]["action"] == "hold"
    assert flow.weights() == {BLUE: 100, GREEN: 0}

    flow.command("resume")
    state = run.advance(run.reenter(state))
    assert state["cursor"]["action"] == "shift"
    assert flow.weights() == RAMP0


# ---- ending a wait through its task token -------------------------------------------------------------


@pytest.mark.parametrize("code", ["TaskDoesNotExist", "TaskTimedOut", "InvalidToken"])
def test_a_token_nobody_waits_on_is_not_an_error(flow: Flow, code: str) -> None:
    sfn = aws.client("stepfunctions")
    flow.tokens.gone["old"] = code

    assert signals.fail_task("old", "Aborted", "why", sfn=sfn) is False
    assert signals.succeed_task("old", {"complete": True}, sfn=sfn) is False
    assert [c["answered"] for c in flow.tokens.calls] == [code, code]


def test_a_waiting_token_is_signalled(flow: Flow) -> None:
    sfn = aws.client("stepfunctions")
    assert signals.fail_task("live", "Aborted", "x" * 40_000, sfn=sfn) is True
    assert signals.succeed_task("live", {"complete": True}, sfn=sfn) is True
    failure, success = flow.tokens.calls
    assert (failure["error"], len(failure["cause"])) == ("Aborted", 32_000)
    assert success["output"] == {"complete": True}


@pytest.mark.parametrize("token", [None, ""])
def test_no_token_signals_nothing(flow: Flow, token: str | None) -> None:
    assert signals.fail_task(token, "Aborted", "why") is False
    assert signals.succeed_task(token, {}) is False
    assert flow.tokens.calls == []


def test_other_signal_errors_propagate(flow: Flow) -> None:
    flow.tokens.gone["denied"] = "AccessDeniedException"
    with pytest.raises(ClientError, match="AccessDeniedException"):
        signals.fail_task("denied", "Aborted", "why")
    with pytest.raises(ClientError, match="AccessDeniedException"):
        signals.succeed_task("denied", {})
