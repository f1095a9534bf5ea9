"""Failing back: record the intent, end the owner's wait, restore the snapshot exactly, then close.

Intent before action: whoever decides to fail back (the owner's own step, an alarm, a crashing
task, a new release, an operator, the sweeper) first writes ROLLING_BACK with the reason and the
terminal status to record. No step can write past that, so nothing that races the rollback can
shift traffic after it. The restore then waits for any weight change still in flight (its lease),
writes the snapshot, verifies it, and only then closes the record with the weights it verified,
handing the pair's lock to a superseding release if there is one.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from ecs_canary import aws
from ecs_canary.errors import NotOwner, ShiftInFlight
from ecs_canary.events import ExecutionInput, ExecutionStatusChange, ReleaseModel, StateError
from ecs_canary.flow import notify
from ecs_canary.flow.hooks import first_cursor
from ecs_canary.flow.identity import (
    deployment_id_for,
    execution_arn_for,
    router_for,
    state_machine_of,
)
from ecs_canary.flow.identity import execution_name as _short
from ecs_canary.flow.identity import weights_text as _fmt
from ecs_canary.flow.settings import settings
from ecs_canary.flow.signals import request_rollback
from ecs_canary.flow.stages import restore_test_target
from ecs_canary.spec import PAIR_NAME_PATTERN, parse_spec
from ecs_canary.store import Deployment, Handover, Release, RollbackIntent, Status, Store, now_iso, parse_iso

__all__ = [
    "complete_rollback",
    "fail_back",
    "intent_for_error",
    "reconcile",
    "record_rollback_failed",
    "request_rollback",
    "start_execution",
]

logger = Logger(child=True)

# Error names (as the state machine sees them) whose rollback closes with a status other than FAILED.
_ERROR_STATUS = {"Aborted": Status.ABORTED, "NewRelease": Status.SUPERSEDED}
_ENDED = {"ABORTED": Status.ABORTED, "TIMED_OUT": Status.TIMED_OUT, "FAILED": Status.FAILED}
_TRANSITION: dict[Status, notify.Transition] = {
    Status.FAILED: "failed",
    Status.ABORTED: "aborted",
    Status.TIMED_OUT: "timed_out",
    Status.SUPERSEDED: "superseded",
    Status.SUCCEEDED: "succeeded",
    Status.ROLLBACK_FAILED: "rollback_failed",
}

# How long one "Roll back" call waits in-process for a shift in flight before handing the wait
# to the state machine's Retry (the lease lasts at most the tick function's timeout).
_MAX_DEPLOYMENT_ID_BYTES = 512
"""Longer than any deployment id ecs-canary makes (pair, service and a hash), shorter than a DynamoDB key."""
_LEASE_WAIT_SECONDS = 20.0
_LEASE_POLL_SECONDS = 0.1


def intent_for_error(error: StateError | None, by: str) -> RollbackIntent:
    """The intent a failed step implies: its error decides the status, its message the reason."""
    if error is None:
        return RollbackIntent(Status.FAILED, "rollback requested", by, now_iso())
    return RollbackIntent(_ERROR_STATUS.get(error.error, Status.FAILED), error.reason(), by, now_iso())


def fail_back(
    store: Store, pair: str, deployment_id: str, *, execution: str, error: StateError | None
) -> dict[str, Any]:
    """State "Roll back": only the deployment's owner may restore and close it."""
    record = store.find_deployment(pair, deployment_id)
    if record is None:
        reason = error.reason() if error else "rollback requested"
        return {
            "status": Status.FAILED.value,
            "reason": f"{reason} (no deployment record)",
            "restored": False,
            "hooks": None,
        }
    if record.execution_arn != execution:
        store.record_refused(pair, deployment_id, execution, "not the deployment's execution")
        raise NotOwner(
            f"execution {_short(execution)} does not own deployment {deployment_id} "
            f"(its execution is {record.execution_arn}); nothing was restored"
        )
    if record.status.terminal:
        # A retry after the close: make sure a successor it handed the lock to got its execution, and
        # that the on_rollback hooks still run (the call that closed it may have died before answering).
        _ensure_successor_started(store, record)
        if record.rollback is not None and record.status is record.rollback.status:
            # That call may also have died before it emitted the terminal event: emit it again (events
            # are at least once), so the close is never silent.
            notify.emit(
                _TRANSITION[record.status], record, reason=record.reason, by=record.rollback.by, repeated=True
            )
        return {
            "status": record.status.value,
            "reason": record.reason or "",
            "restored": False,
            "hooks": _rollback_hooks(store, record) if record.rollback is not None else None,
        }
    if record.rollback is None:
        intent = intent_for_error(error, f"execution {_short(execution)}")
        record = store.request_rollback(pair, deployment_id, intent, owner=execution)
    return complete_rollback(store, record)


def _await_lease(store: Store, record: Deployment, budget: float) -> Deployment:
    """Wait (bounded) until no weight change of the deployment is in flight; raise if one still is."""
    deadline = time.monotonic() + budget
    while (what := _in_flight(record)) is not None:
        if time.monotonic() >= deadline:
            raise ShiftInFlight(
                f"{what} of deployment {record.deployment_id} is still in flight; the restore waits for it"
            )
        time.sleep(_LEASE_POLL_SECONDS)
        record = store.get_deployment(record.pair, record.deployment_id)
    return record


def _in_flight(record: Deployment) -> str | None:
    """The change of the deployment that may still land (its lease has not expired), if any."""
    now = datetime.now(UTC)
    if record.shift is not None and not record.shift.expired(now):
        return f"a shift to {_fmt(record.shift.weights)} (lease until {record.shift.until})"
    if record.test_lease is not None and parse_iso(record.test_lease) > now:
        return f"a change of the test traffic (lease until {record.test_lease})"
    return None


def complete_rollback(
    store: Store, record: Deployment, *, lease_wait: float = _LEASE_WAIT_SECONDS
) -> dict[str, Any]:
    """Restore the snapshot exactly (after any shift in flight), then close with the recorded intent."""
    intent = record.rollback
    if intent is None or record.status is not Status.ROLLING_BACK:
        if record.status.terminal:
            return {
                "status": record.status.value,
                "reason": record.reason or "",
                "restored": False,
                "hooks": None,
            }
        raise ValueError(f"deployment {record.deployment_id} has no rollback intent ({record.status.value})")
    record = _await_lease(store, record, lease_wait)
    restored = False
    final: dict[str, int] | None = None
    try:
        if record.snapshot is not None and record.spec is not None:
            router = router_for(parse_spec(record.spec))
            current = router.read_weights()
            if current != record.snapshot:
                receipt = router.set_weights(record.snapshot)
                router.verify(record.snapshot, receipt)
                restored = True
            final = record.snapshot
            note = f"traffic {'restored' if restored else 'unchanged'} at {_fmt(record.snapshot)}"
            store.record_restored(record.pair, record.deployment_id, record.snapshot, note)
            notify.emit(
                "rolled_back", record, reason=f"{intent.reason}; {note}", by=intent.by, restored=restored
            )
            reason = f"{intent.reason}; {note}"
        else:
            reason = f"{intent.reason}; no traffic had moved"
    finally:
        # The test target is restored whether or not production traffic could be (it does not depend
        # on it); a failure here fails this attempt too, and the state's retry restores both again.
        restore_test_target(store, record)
    handover, rejected = _successor_plan(store, record, intent)
    closed = store.finish(
        record.pair,
        record.deployment_id,
        intent.status,
        reason,
        weights=final,
        successor=handover,
        from_statuses=(Status.ROLLING_BACK,),
    )
    if rejected is not None and store.record_rejected(record.pair, *rejected):
        notify.emit("release_rejected", store.get_deployment(record.pair, rejected[0]), reason=rejected[3])
    if closed:
        ended = store.get_deployment(record.pair, record.deployment_id)
        notify.emit(_TRANSITION[intent.status], ended, reason=reason, by=intent.by)
        notify.metric("Rollbacks", 1, record.pair)
        notify.metric(f"Deployments{intent.status.value.title().replace('_', '')}", 1, record.pair)
        seconds = (parse_iso(ended.ended_at or now_iso()) - parse_iso(intent.at)).total_seconds()
        notify.metric("RollbackSeconds", max(0.0, seconds), record.pair, notify.MetricUnit.Seconds)
    if closed and handover is not None:
        start_execution(store, handover.execution_arn, record.pair, handover.deployment_id, handover.release)
    logger.info(
        "rolled back",
        extra={"deployment_id": record.deployment_id, "status": intent.status.value, "restored": restored},
    )
    return {
        "status": intent.status.value,
        "reason": reason,
        "restored": restored,
        "hooks": _rollback_hooks(store, record),
    }


def _rollback_hooks(store: Store, record: Deployment) -> dict[str, Any] | None:
    """The on_rollback hook loop's first cursor, when the spec has such hooks."""
    spec = parse_spec(record.spec) if record.spec else None
    if spec is None:
        pair = store.find_pair(record.pair)
        spec = pair.spec if pair is not None else None
    if spec is None or not spec.hooks.on_rollback:
        return None
    return first_cursor("on_rollback", "hooks:on_rollback", "end")


def _successor_plan(
    store: Store, record: Deployment, intent: RollbackIntent
) -> tuple[Handover | None, tuple[str, Release, str, str] | None]:
    """What happens to a release that superseded this one: hand it the lock, or record it REJECTED."""
    successor = intent.successor
    if successor is None or record.execution_arn is None:
        return None, None
    pair = store.find_pair(record.pair)
    if pair is None or successor.deployment == pair.idle_baseline:
        return None, None  # e.g. ECS rolled green back to what it ran before: nothing new to deploy
    successor_id = deployment_id_for(record.pair, successor)
    # The deployment's own spec copy, or the registered one if it was superseded before it began.
    policy = (record.spec or pair.spec.model_dump(mode="json")).get("on_new_release", "supersede")
    if policy == "reject":
        reason = (
            f"release {successor.deployment} of {successor.service} replaced release "
            f"{record.release.deployment} under test; on_new_release is reject, so it was not deployed"
        )
        return None, (successor_id, successor, record.live_service, reason)
    arn = execution_arn_for(state_machine_of(record.execution_arn), successor_id)
    return Handover(successor_id, successor, record.live_service, arn, settings().lock_lease_seconds), None


def _ensure_successor_started(store: Store, record: Deployment) -> None:
    """Start the execution of the release this deployment handed its lock to, if it has none yet."""
    if record.status is not Status.SUPERSEDED or record.rollback is None or record.rollback.successor is None:
        return
    successor_id = deployment_id_for(record.pair, record.rollback.successor)
    if store.active_deployment_id(record.pair) != successor_id:
        return
    successor = store.find_deployment(record.pair, successor_id)
    if successor is not None and successor.status is Status.STARTING and successor.execution_arn:
        start_execution(store, successor.execution_arn, record.pair, successor_id, successor.release)


def start_execution(
    store: Store, execution_arn: str, pair: str, deployment_id: str, release: Release
) -> None:
    """Start the (deterministically named) execution of a claimed deployment; a duplicate is a no-op."""
    execution_input = ExecutionInput(
        pair=pair, deployment_id=deployment_id, release=ReleaseModel(**release.to_dict())
    )
    try:
        aws.client("stepfunctions").start_execution(
            stateMachineArn=state_machine_of(execution_arn),
            name=deployment_id,
            input=execution_input.model_dump_json(),
        )
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
            raise
    store.mark_started(pair, deployment_id, execution_arn)


def record_rollback_failed(
    store: Store,
    pair: str,
    deployment_id: str,
    *,
    execution: str,
    error: StateError | None,
    rollback_error: StateError | None,
) -> dict[str, Any]:
    """State "Record that the rollback failed": close as ROLLBACK_FAILED with the actual weights."""
    record = store.find_deployment(pair, deployment_id)
    if record is not None and record.status is Status.ROLLBACK_FAILED and record.execution_arn == execution:
        # A retry after this execution recorded it: the call that did may have died before the event
        # and the metric the stack's alarm watches. Both again (at least once): never silent.
        notify.emit("rollback_failed", record, reason=record.reason, repeated=True)
        notify.metric("RollbacksFailed", 1, pair)
        return {"status": record.status.value, "weights": record.weights, "reason": record.reason}
    if record is None or record.status.terminal:
        return {"status": record.status.value if record else "FAILED", "weights": None}
    if record.execution_arn != execution:
        raise NotOwner(f"execution {_short(execution)} does not own deployment {deployment_id}")
    why = rollback_error.reason() if rollback_error else "the rollback gave up"
    first = record.rollback.reason if record.rollback else (error.reason() if error else "rollback")
    actual: dict[str, int] | None = None
    seen = "could not be read"
    if record.spec is not None:
        try:
            actual = router_for(parse_spec(record.spec)).read_weights()
            seen = _fmt(actual)
        except Exception as exc:  # the router is what failed: say so instead of guessing the weights
            seen = f"could not be read ({exc})"
    snapshot = _fmt(record.snapshot) if record.snapshot else "none taken"
    reason = (
        f"rollback failed: {why}; traffic is at {seen} (snapshot {snapshot}); it was rolling back "
        f"because {first}"
    )
    try:
        restore_test_target(store, record)
    except Exception as exc:  # recorded in the reason: the test target still needs a hand
        reason += f"; the test traffic could not be restored either ({exc})"
    if store.finish(
        pair,
        deployment_id,
        Status.ROLLBACK_FAILED,
        reason,
        weights=actual,
        from_statuses=(Status.STARTING, Status.RUNNING, Status.PAUSED, Status.ROLLING_BACK),
    ):
        notify.emit("rollback_failed", store.get_deployment(pair, deployment_id), reason=reason)
        notify.metric("RollbacksFailed", 1, pair)
    return {"status": Status.ROLLBACK_FAILED.value, "weights": actual, "reason": reason}


def reconcile(store: Store, detail: ExecutionStatusChange) -> dict[str, Any]:
    """An execution ended without closing its record (stopped, timed out, failed): close it now."""
    status = _ENDED.get(detail.status)
    data = detail.input_json()
    pair, deployment_id = data.get("pair"), data.get("deployment_id")
    if (
        status is None
        or not isinstance(pair, str)
        or not isinstance(deployment_id, str)
        # Not a deployment of a registered pair (and too long to be a DynamoDB key at all).
        or not re.fullmatch(PAIR_NAME_PATTERN, pair)
        or len(deployment_id.encode()) > _MAX_DEPLOYMENT_ID_BYTES
    ):
        return {
            "action": "ignored",
            "reason": f"execution {detail.name} ({detail.status}) is not a deployment",
        }
    record = store.find_deployment(pair, deployment_id)
    if record is None:
        return {
            "action": "ignored",
            "reason": f"execution {detail.name}: pair {pair} has no deployment {deployment_id}",
        }
    if record.execution_arn != detail.execution_arn:
        # e.g. a console "New execution" started with a copy of the deployment's input.
        return {
            "action": "ignored",
            "reason": f"execution {detail.name} is not the execution of deployment {deployment_id}",
        }
    if record.status.terminal:
        return {"action": "ignored", "reason": f"deployment {deployment_id} is already {record.status.value}"}
    why = f"execution {detail.status.lower().replace('_', ' ')} outside the state machine"
    if detail.error or detail.cause:
        why += f" ({': '.join(x for x in (detail.error, detail.cause) if x)})"
    intent = RollbackIntent(status, why, "reconcile", now_iso())
    record = store.request_rollback(pair, deployment_id, intent)
    # The execution has ended, so no shift of it can still be in flight for long: wait out the lease.
    result = complete_rollback(store, record, lease_wait=settings().shift_lease_seconds)
    # The execution has ended: no state is left to run on_rollback hooks from.
    result.pop("hooks", None)
    return {"action": "reconciled", **result}
