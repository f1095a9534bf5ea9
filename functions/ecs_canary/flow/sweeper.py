"""The scheduled sweeper: no deployment stays open, and no lock stays held, after its execution ended.

It walks every held lock (the sparse ``Locks`` index), leaves alone those whose lease is still
valid, and asks Step Functions about the rest: a running execution renews the lease; an ended one
(whose rollback and reconcile both failed, or whose events were lost) gets its traffic restored
and its record closed; a claimed release whose execution never started is started; a lock whose
deployment is already closed is released. A rollback the sweeper cannot finish after a few runs is
recorded ROLLBACK_FAILED with the actual weights, which the stack alarms on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from ecs_canary import aws
from ecs_canary.flow import notify
from ecs_canary.flow.identity import router_for
from ecs_canary.flow.rollback import complete_rollback, start_execution
from ecs_canary.flow.settings import settings
from ecs_canary.spec import parse_spec
from ecs_canary.store import Deployment, Lock, RollbackIntent, Status, Store, now_iso

__all__ = ["MAX_SWEEP_ATTEMPTS", "Swept", "sweep"]

logger = Logger(child=True)

MAX_SWEEP_ATTEMPTS = 3
"""Sweeps that try to finish a dead execution's rollback before it is recorded ROLLBACK_FAILED."""

_ENDED = {"ABORTED": Status.ABORTED, "TIMED_OUT": Status.TIMED_OUT, "FAILED": Status.FAILED}


@dataclass(frozen=True)
class Swept:
    pair: str
    deployment_id: str
    action: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _execution_status(sfn: Any, execution_arn: str) -> str | None:
    """RUNNING / SUCCEEDED / FAILED / TIMED_OUT / ABORTED, or None when the execution does not exist."""
    try:
        return str(sfn.describe_execution(executionArn=execution_arn)["status"])
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") == "ExecutionDoesNotExist":
            return None
        raise


def sweep(store: Store, sfn: Any = None, now: datetime | None = None) -> list[Swept]:
    """One pass over every held lock."""
    sfn = sfn if sfn is not None else aws.client("stepfunctions")
    now = now or datetime.now(UTC)
    results: list[Swept] = []
    for lock in store.list_locks():
        if lock.leased(now):
            continue
        try:
            results.append(_sweep_one(store, sfn, lock))
        except Exception as exc:  # one broken pair must not stop the others from being swept
            logger.exception("sweeping %s failed", lock.pair)
            results.append(Swept(lock.pair, lock.deployment_id, "error", f"{type(exc).__name__}: {exc}"))
    return results


def _sweep_one(store: Store, sfn: Any, lock: Lock) -> Swept:
    lease = settings().lock_lease_seconds
    record = store.find_deployment(lock.pair, lock.deployment_id)
    if record is None or record.status.terminal:
        store.release_lock(lock.pair, lock.deployment_id)
        state = "missing" if record is None else record.status.value
        return Swept(lock.pair, lock.deployment_id, "released", f"lock of a {state} deployment released")
    execution = record.execution_arn
    status = _execution_status(sfn, execution) if execution else None
    if status == "RUNNING":
        store.extend_lease(lock.pair, lock.deployment_id, lease)
        return Swept(lock.pair, lock.deployment_id, "alive", "its execution is running; lease renewed")
    if status is None and record.status is Status.STARTING and execution:
        start_execution(store, execution, record.pair, record.deployment_id, record.release)
        store.extend_lease(lock.pair, lock.deployment_id, lease)
        return Swept(lock.pair, lock.deployment_id, "started", "a claimed release's execution was started")
    return _close_abandoned(store, record, status)


def _close_abandoned(store: Store, record: Deployment, execution_status: str | None) -> Swept:
    ended = _ENDED.get(execution_status or "", Status.ABORTED)
    why = (
        f"its execution ended ({execution_status or 'never started'}) without closing the deployment; "
        "closed by the sweeper"
    )
    intent = RollbackIntent(ended, why, "sweeper", now_iso())
    record = store.request_rollback(record.pair, record.deployment_id, intent)
    attempts = sum(1 for h in record.history if h.get("event") == "sweep_failed")
    try:
        result = complete_rollback(store, record, lease_wait=0)
    except Exception as exc:
        if attempts + 1 < MAX_SWEEP_ATTEMPTS:
            store.note_failure(
                record.pair, record.deployment_id, "sweep_failed", f"{type(exc).__name__}: {exc}"
            )
            return Swept(record.pair, record.deployment_id, "retrying", f"restore failed: {exc}")
        return _rollback_failed(store, record, exc)
    return Swept(record.pair, record.deployment_id, "closed", str(result["reason"]))


def _rollback_failed(store: Store, record: Deployment, exc: Exception) -> Swept:
    actual: dict[str, int] | None = None
    seen = "could not be read"
    if record.spec is not None:
        try:
            actual = router_for(parse_spec(record.spec)).read_weights()
            seen = ", ".join(f"{k}={v}" for k, v in sorted(actual.items()))
        except Exception as read_error:
            seen = f"could not be read ({read_error})"
    reason = (
        f"rollback failed after {MAX_SWEEP_ATTEMPTS} sweeps: {type(exc).__name__}: {exc}; traffic is at "
        f"{seen}; it was rolling back because "
        f"{record.rollback.reason if record.rollback else 'its execution ended'}"
    )
    if store.finish(record.pair, record.deployment_id, Status.ROLLBACK_FAILED, reason, weights=actual):
        notify.emit("rollback_failed", store.get_deployment(record.pair, record.deployment_id), reason=reason)
        notify.metric("RollbacksFailed", 1, record.pair)
    return Swept(record.pair, record.deployment_id, "rollback_failed", reason)
