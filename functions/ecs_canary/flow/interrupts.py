"""Events and people that end a bake early: alarms, crashing green tasks, operator commands.

None of them touches traffic itself. Each records what must happen on the deployment record
(a rollback intent, a pause, a promote order) under a condition, then ends the owner execution's
watch through its task token, so the owner acts within seconds instead of at the end of a bake.
If the owner is between two steps, the record still holds the intent and its next step reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger

from ecs_canary.errors import CommandRefused, DeploymentClosed, RollbackRequested, WriteRefused
from ecs_canary.events import AlarmStateChange, CommandInput, EcsTaskStateChange
from ecs_canary.flow import notify
from ecs_canary.flow.rollback import request_rollback
from ecs_canary.flow.signals import fail_task
from ecs_canary.spec import parse_spec
from ecs_canary.store import Command, Deployment, RollbackIntent, Status, Store, now_iso

__all__ = ["UNEXPECTED_STOP_CODES", "on_alarm", "on_command", "on_task_stopped", "unexpected_stop"]

logger = Logger(child=True)

UNEXPECTED_STOP_CODES = frozenset({"EssentialContainerExited", "TaskFailedToStart"})
"""ECS stop codes that mean the release itself failed (not scaling, a deployment or a user)."""
_HEALTH_CHECK_STOP = ("failed elb health checks", "failed container health checks")


@dataclass(frozen=True)
class Outcome:
    """What one interrupt did, per deployment it concerned."""

    action: str
    reason: str
    pair: str | None = None
    deployment_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _active(store: Store, pair: str) -> Deployment | None:
    deployment_id = store.active_deployment_id(pair)
    if deployment_id is None:
        return None
    record = store.find_deployment(pair, deployment_id)
    return record if record is not None and not record.status.terminal else None


# ---- CloudWatch alarms --------------------------------------------------------------------------


def on_alarm(store: Store, alarm: AlarmStateChange) -> list[Outcome]:
    """An alarm went into ALARM: fail back every active deployment whose gate names it."""
    if alarm.state.value != "ALARM":
        return [Outcome("ignored", f"alarm {alarm.alarm_name} is {alarm.state.value}")]
    outcomes: list[Outcome] = []
    for pair in store.pairs_for_alarm(alarm.alarm_name):
        record = _active(store, pair)
        if record is None or record.status is Status.ROLLING_BACK:
            outcomes.append(Outcome("ignored", f"no deployment of {pair} to interrupt", pair))
            continue
        spec = parse_spec(record.spec) if record.spec else store.get_pair(pair).spec
        if alarm.alarm_name not in spec.health_for(record.service).alarms:
            outcomes.append(
                Outcome("ignored", f"alarm {alarm.alarm_name} does not gate {record.service}", pair)
            )
            continue
        why = f": {alarm.state.reason.rstrip('. ')}" if alarm.state.reason else ""
        reason = f"alarm {alarm.alarm_name} went into ALARM during the deployment{why}"
        intent = RollbackIntent(Status.FAILED, reason, f"alarm {alarm.alarm_name}", now_iso())
        outcomes.append(_interrupt(store, record, intent, "GreenUnhealthy"))
    return outcomes or [Outcome("ignored", f"no registered pair gates on alarm {alarm.alarm_name}")]


# ---- ECS tasks stopping -----------------------------------------------------------------------------


def unexpected_stop(task: EcsTaskStateChange) -> str | None:
    """Why a stopped task counts as the release failing (None for scaling, deployments, users)."""
    reason = task.stopped_reason or ""
    if task.stop_code in UNEXPECTED_STOP_CODES:
        exits = [
            f"{c.name} exited {c.exit_code}"
            for c in task.containers
            if c.exit_code not in (None, 0) and c.name
        ]
        detail = "; ".join(filter(None, [reason, ", ".join(exits)]))
        return f"{task.stop_code}" + (f" ({detail})" if detail else "")
    if any(marker in reason.lower() for marker in _HEALTH_CHECK_STOP):
        return reason
    return None


def on_task_stopped(store: Store, task: EcsTaskStateChange) -> Outcome:
    """Count an unexpected stop of a green task of the release under test; past the limit, fail back."""
    service = task.service_name
    if service is None or task.last_status != "STOPPED":
        return Outcome("ignored", f"task {task.task_arn} is not a stopped service task")
    why = unexpected_stop(task)
    if why is None:
        return Outcome("ignored", f"task {task.task_arn} stopped as planned ({task.stop_code or 'no code'})")
    pair = store.pair_for_service(task.cluster_arn, service)
    if pair is None:
        return Outcome("ignored", f"service {service} is not part of a registered pair")
    if pair.cluster_arn is not None and pair.cluster_arn != task.cluster_arn:
        return Outcome("ignored", f"cluster {task.cluster_arn} is not the pair's cluster", pair.spec.name)
    record = _active(store, pair.spec.name)
    if record is None or record.service != service or record.release.deployment != task.started_by:
        return Outcome("ignored", f"task {task.task_arn} is not of a release under test", pair.spec.name)
    counted = store.count_stopped_task(
        record.pair,
        record.deployment_id,
        task.task_arn,
        f"task {task.task_arn.rsplit('/', 1)[-1]} stopped: {why}",
    )
    if counted is None:
        return Outcome(
            "duplicate", f"stop of {task.task_arn} already counted", record.pair, record.deployment_id
        )
    spec = parse_spec(counted.spec) if counted.spec else pair.spec
    stopped, limit = len(counted.stopped_tasks), spec.health.max_stopped_tasks
    if stopped <= limit or counted.status is Status.ROLLING_BACK:
        return Outcome(
            "counted",
            f"{stopped} of at most {limit} unexpected stops: {why}",
            record.pair,
            record.deployment_id,
        )
    reason = (
        f"{stopped} tasks of release {record.release.deployment} stopped unexpectedly "
        f"(health.max_stopped_tasks is {limit}); latest: {why}"
    )
    intent = RollbackIntent(Status.FAILED, reason, "ecs task state change", now_iso())
    return _interrupt(store, counted, intent, "GreenTasksStopped")


def _interrupt(store: Store, record: Deployment, intent: RollbackIntent, signal: str) -> Outcome:
    try:
        updated = request_rollback(store, record, intent, signal=signal)
    except DeploymentClosed:
        return Outcome("ignored", f"deployment {record.deployment_id} already ended", record.pair)
    logger.warning(intent.reason, extra={"pair": record.pair, "deployment_id": record.deployment_id})
    first = updated.rollback.reason if updated.rollback else intent.reason
    return Outcome("rolling_back", first, record.pair, record.deployment_id)


# ---- Operator commands -----------------------------------------------------------------------------


def on_command(store: Store, command: CommandInput) -> dict[str, Any]:
    """``abort``, ``pause``, ``resume`` or ``promote`` the pair's active deployment (or the named one)."""
    deployment_id = command.deployment_id or store.active_deployment_id(command.pair)
    store.get_pair(command.pair)  # an unknown pair is a clear error, not "no deployment"
    if deployment_id is None:
        raise CommandRefused(f"pair {command.pair} has no active deployment to {command.command}")
    record = store.get_deployment(command.pair, deployment_id)
    if record.status.terminal:
        raise CommandRefused(f"deployment {deployment_id} already ended ({record.status.value})")
    reason = command.reason or "no reason given"
    try:
        if command.command == "abort":
            intent = RollbackIntent(
                Status.ABORTED, f"aborted by {command.by}: {reason}", command.by, now_iso()
            )
            record = request_rollback(store, record, intent, signal="Aborted")
        elif command.command == "pause":
            record = store.pause(command.pair, deployment_id, by=command.by, reason=reason)
            notify.emit("paused", record, reason=reason, by=command.by)
        elif command.command == "resume":
            record = store.resume(command.pair, deployment_id, by=command.by, reason=reason)
            notify.emit("resumed", record, reason=reason, by=command.by)
            fail_task(record.listener_token, "ResumeRequested", f"resumed by {command.by}: {reason}")
        elif command.command in ("approve", "reject"):
            decision = "approved" if command.command == "approve" else "rejected"
            record = store.decide_approval(
                command.pair, deployment_id, decision=decision, by=command.by, reason=reason
            )
            fail_task(record.listener_token, "ApprovalDecided", f"{decision} by {command.by}: {reason}")
        else:
            order = Command("promote", command.full, command.skip_analysis, command.by, reason, now_iso())
            record = store.set_command(command.pair, deployment_id, order)
            fail_task(
                record.listener_token, "PromoteRequested", f"promote requested by {command.by}: {reason}"
            )
    except RollbackRequested as exc:
        raise CommandRefused(f"deployment {deployment_id} is already rolling back ({exc})") from exc
    except WriteRefused as exc:
        if exc.condition == "approval_pending":
            raise CommandRefused(f"deployment {deployment_id} is not waiting for an approval") from exc
        now = _current(store, command.pair, deployment_id)
        raise CommandRefused(f"cannot {command.command} deployment {deployment_id}: it is {now}") from exc
    return {
        "accepted": True,
        "command": command.command,
        "pair": command.pair,
        "deployment_id": deployment_id,
        "status": record.status.value,
    }


def _current(store: Store, pair: str, deployment_id: str) -> str:
    found = store.find_deployment(pair, deployment_id)
    return found.status.value if found else "gone"
