"""The scheduled sweeper: no deployment stays open, and no lock stays held, after its execution ended."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from ecs_canary import aws
from ecs_canary.flow.identity import deployment_id_for
from ecs_canary.flow.sweeper import MAX_SWEEP_ATTEMPTS
from ecs_canary.store import Release, Status
from flow_fixtures import ALARMS, BLUE, GREEN, PAIR, TABLE, Flow, Run

pytest_plugins = ["flow_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

SNAPSHOT = {BLUE: 100, GREEN: 0}
HALF = {BLUE: 50, GREEN: 50}


def _sweep(flow: Flow) -> list[dict[str, Any]]:
    return list(flow.invoke("sweeper", {})["swept"])


def _mid_ramp(flow: Flow) -> Run:
    flow.register()
    run, state = flow.rolling(GREEN)
    run.to_step(state, 1)
    assert flow.weights() == HALF
    return run


def _lease_end(flow: Flow) -> datetime:
    lock = flow.store.get_lock(PAIR)
    assert lock is not None
    assert lock.lease_until is not None
    return datetime.fromisoformat(lock.lease_until.replace("Z", "+00:00"))


def test_a_leased_lock_is_left_alone(flow: Flow) -> None:
    run = _mid_ramp(flow)
    flow.sfn.stop_execution(executionArn=run.execution)  # even though its execution ended
    before = flow.items()

    assert _sweep(flow) == []

    assert flow.items() == before
    assert flow.weights() == HALF


def test_a_running_execution_renews_the_lease(flow: Flow) -> None:
    run = _mid_ramp(flow)
    flow.expire_lock()
    before = datetime.now(UTC).replace(microsecond=0)

    swept = _sweep(flow)

    assert swept == [
        {
            "pair": PAIR,
            "deployment_id": run.deployment_id,
            "action": "alive",
            "reason": "its execution is running; lease renewed",
        }
    ]
    assert _lease_end(flow) >= before + timedelta(seconds=900)  # LOCK_LEASE_SECONDS
    assert run.record().status is Status.RUNNING
    assert flow.weights() == HALF
    assert _sweep(flow) == []  # leased again


def test_a_claimed_release_whose_execution_never_started_is_started(flow: Flow) -> None:
    flow.register()
    release = Release(GREEN, flow.new_release(GREEN), flow.task_definitions[GREEN])
    deployment_id = deployment_id_for(PAIR, release)
    arn = flow.execution_arn(deployment_id)
    # The filter claimed the release, then died before StartExecution.
    claim = flow.store.claim(PAIR, deployment_id, release, BLUE, execution_arn=arn, lease_seconds=900)
    assert claim.outcome == "claimed"
    assert flow.executions() == []
    flow.expire_lock()
    before = datetime.now(UTC).replace(microsecond=0)

    swept = _sweep(flow)

    assert [(s["deployment_id"], s["action"]) for s in swept] == [(deployment_id, "started")]
    (execution,) = flow.executions()
    assert execution["executionArn"] == arn
    assert flow.execution_input(arn) == {
        "pair": PAIR,
        "deployment_id": deployment_id,
        "release": release.to_dict(),
    }
    record = flow.store.get_deployment(PAIR, deployment_id)
    assert record.status is Status.RUNNING
    assert _lease_end(flow) >= before + timedelta(seconds=900)
    # The started execution runs as the owner.
    run = Run(flow, deployment_id, flow.execution_input(arn), arn)
    assert run.prepare()["deployment"]["snapshot"] == SNAPSHOT


@pytest.mark.parametrize(
    ("end", "status"),
    [
        pytest.param(lambda f, r: f.sfn.stop_execution(executionArn=r.execution), "ABORTED", id="stopped"),
        pytest.param(
            lambda f, r: f.sfn.delete_state_machine(stateMachineArn=f.state_machine_arn),
            "ABORTED",
            id="execution-gone",
        ),
    ],
)
def test_an_ended_execution_gets_its_traffic_restored_and_its_record_closed(
    flow: Flow, end: Any, status: str
) -> None:
    run = _mid_ramp(flow)
    end(flow, run)
    flow.expire_lock()

    (swept,) = _sweep(flow)

    assert swept["action"] == "closed"
    assert flow.weights() == SNAPSHOT
    record = run.record()
    assert record.status.value == status
    assert record.weights == SNAPSHOT
    assert record.reason is not None
    assert "without closing the deployment; closed by the sweeper" in record.reason
    assert record.reason.endswith(f"traffic restored at {BLUE}=100, {GREEN}=0")
    assert record.rollback is not None
    assert record.rollback.by == "sweeper"
    assert flow.lock() is None
    assert _sweep(flow) == []


def test_a_dead_execution_closes_with_the_intent_it_recorded(flow: Flow) -> None:
    run = _mid_ramp(flow)
    flow.invoke("interrupt", flow.alarm_event(ALARMS[GREEN], "ALARM"))
    flow.sfn.stop_execution(executionArn=run.execution)  # its "Roll back" never ran
    flow.expire_lock()

    (swept,) = _sweep(flow)

    assert swept["action"] == "closed"
    record = run.record()
    assert record.status is Status.FAILED
    assert record.reason is not None
    assert record.reason.startswith(f"alarm {ALARMS[GREEN]} went into ALARM")
    assert flow.weights() == SNAPSHOT


@pytest.mark.parametrize("missing", [True, False], ids=["record-missing", "record-closed"])
def test_a_lock_of_a_closed_or_missing_record_is_released(flow: Flow, missing: bool) -> None:
    run = _mid_ramp(flow)
    lock = flow.ddb.get_item(TableName=TABLE, Key={"pk": {"S": f"PAIR#{PAIR}"}, "sk": {"S": "LOCK"}})["Item"]
    if missing:
        flow.ddb.delete_item(
            TableName=TABLE, Key={"pk": {"S": f"PAIR#{PAIR}"}, "sk": {"S": f"DEPLOYMENT#{run.deployment_id}"}}
        )
    else:
        run.rollback({"Error": "GreenUnhealthy"})
        flow.ddb.put_item(TableName=TABLE, Item=lock)  # a lock left behind
    flow.expire_lock()
    weights = flow.weights()

    (swept,) = _sweep(flow)

    state = "missing" if missing else "FAILED"
    assert swept == {
        "pair": PAIR,
        "deployment_id": run.deployment_id,
        "action": "released",
        "reason": f"lock of a {state} deployment released",
    }
    assert flow.lock() is None
    assert flow.weights() == weights  # nothing restored on behalf of a closed deployment


def _failing_restores(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The listener can be read but not modified (e.g. an SCP denies it)."""
    elbv2 = aws.client("elbv2")
    calls: list[Any] = []

    def denied(**kwargs: Any) -> Any:
        calls.append(kwargs)
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "denied by SCP"}}, "ModifyListener")

    monkeypatch.setattr(elbv2, "modify_listener", denied)
    return calls


def test_restore_failures_are_retried_then_recorded_rollback_failed(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert MAX_SWEEP_ATTEMPTS >= 2  # a failed restore is retried at least once
    run = _mid_ramp(flow)
    flow.sfn.stop_execution(executionArn=run.execution)
    attempts = _failing_restores(flow, monkeypatch)

    outcomes = []
    for _ in range(MAX_SWEEP_ATTEMPTS):
        flow.expire_lock()
        (swept,) = _sweep(flow)
        outcomes.append(swept["action"])

    assert outcomes == ["retrying"] * (MAX_SWEEP_ATTEMPTS - 1) + ["rollback_failed"]
    assert len(attempts) == MAX_SWEEP_ATTEMPTS
    record = run.record()
    assert record.status is Status.ROLLBACK_FAILED
    assert record.weights == HALF == flow.weights()  # the actual weights, not the snapshot
    assert record.reason is not None
    assert record.reason.startswith(f"rollback failed after {MAX_SWEEP_ATTEMPTS} sweeps: ClientError")
    assert f"traffic is at {BLUE}=50, {GREEN}=50" in record.reason
    assert run.events().count("sweep_failed") == MAX_SWEEP_ATTEMPTS - 1
    assert flow.lock() is None


def test_a_restore_that_works_on_a_later_sweep_closes_normally(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _mid_ramp(flow)
    flow.sfn.stop_execution(executionArn=run.execution)
    with monkeypatch.context() as patch:
        _failing_restores(flow, patch)
        flow.expire_lock()
        assert [s["action"] for s in _sweep(flow)] == ["retrying"]
        assert run.record().status is Status.ROLLING_BACK
        assert flow.lock() == run.deployment_id

    flow.expire_lock()
    assert [s["action"] for s in _sweep(flow)] == ["closed"]
    assert run.record().status is Status.ABORTED
    assert flow.weights() == SNAPSHOT


def test_an_error_sweeping_a_lock_is_reported_not_raised(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _mid_ramp(flow)
    flow.expire_lock()
    sfn = aws.client("stepfunctions")

    def denied(**kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "DescribeExecution")

    monkeypatch.setattr(sfn, "describe_execution", denied)

    (swept,) = _sweep(flow)

    assert swept["action"] == "error"
    assert swept["reason"].startswith("ClientError:")
    assert run.record().status is Status.RUNNING
    assert flow.weights() == HALF


def _handed_over_but_not_started(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str]:
    """A superseded deployment whose handover's StartExecution of the successor was throttled."""
    run = _mid_ramp(flow)
    newer = flow.new_release(GREEN)
    assert flow.invoke("filter", flow.task_event(GREEN, newer))["action"] == "superseding"
    successor = deployment_id_for(PAIR, Release(GREEN, newer, flow.task_definitions[GREEN]))
    sfn = aws.client("stepfunctions")
    with monkeypatch.context() as patch:

        def throttled(**kwargs: Any) -> Any:
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "StartExecution"
            )

        patch.setattr(sfn, "start_execution", throttled)
        with pytest.raises(ClientError, match="ThrottlingException"):
            run.rollback({"Error": "NewRelease"})

    # Traffic is restored and the lock handed over; the successor is claimed but not started.
    assert flow.weights() == SNAPSHOT
    assert run.record().status is Status.SUPERSEDED
    assert flow.store.get_deployment(PAIR, successor).status is Status.STARTING
    assert flow.lock() == successor
    assert successor not in {e["name"] for e in flow.executions()}
    return run, successor


def test_a_retried_rollback_starts_the_successor_it_handed_over_to(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, successor = _handed_over_but_not_started(flow, monkeypatch)

    # Step Functions retries "Roll back": the record is closed, nothing is restored again, and the
    # successor that holds the lock gets its execution.
    assert run.rollback({"Error": "NewRelease"})["restored"] is False

    assert successor in {e["name"] for e in flow.executions()}
    assert flow.store.get_deployment(PAIR, successor).status is Status.RUNNING


def test_a_successor_whose_execution_failed_to_start_is_started_by_the_sweeper(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run, successor = _handed_over_but_not_started(flow, monkeypatch)

    flow.expire_lock()
    (swept,) = _sweep(flow)

    assert (swept["deployment_id"], swept["action"]) == (successor, "started")
    assert successor in {e["name"] for e in flow.executions()}
    assert flow.store.get_deployment(PAIR, successor).status is Status.RUNNING
