"""The owner execution's states: prepare, wait for green, watch, tick (judge and shift), promote.

Every step is level-triggered: it reads the deployment record and the world before acting, and
acts only as the record's owner. It refuses to run for another execution (``NotOwner``), stops as
soon as a rollback intent is recorded (``RollbackRequested``), fails back when green no longer runs
the release under test (``NewRelease``) or when the router's weights are not the ones it last
wrote (``TrafficDrift``, or a hold with ``on_drift: hold``). Every step is safe to run twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger

from ecs_canary import aws, green, health, metrics, rollout
from ecs_canary.errors import (
    ApprovalRejected,
    CapacityShort,
    DeploymentClosed,
    GreenNeverSteady,
    NewRelease,
    NotOwner,
    RollbackRequested,
    RouterConfigError,
    ShiftNotVerified,
    TrafficDrift,
    WriteRefused,
)
from ecs_canary.events import AdvanceInput, ListenInput, PrepareInput, SteadyInput
from ecs_canary.flow import notify
from ecs_canary.flow.hooks import first_cursor
from ecs_canary.flow.identity import execution_name as _short
from ecs_canary.flow.identity import router_for
from ecs_canary.flow.identity import weights_text as _fmt
from ecs_canary.flow.settings import settings
from ecs_canary.flow.signals import succeed_task
from ecs_canary.flow.stages import (
    Gate,
    apply_test_traffic,
    capacity_problem,
    final_gate,
    preproduction_gate,
    restore_test_target,
    restore_test_traffic,
    shift_gate,
    snapshot_test_traffic,
    step_approval_gate,
    test_endpoint,
)
from ecs_canary.gates import CAPACITY_POLL_SECONDS
from ecs_canary.health import HealthReport, Verdict
from ecs_canary.routers import ShiftReceipt, TrafficRouter
from ecs_canary.spec import ServicePairSpec, parse_spec
from ecs_canary.store import Deployment, Release, RollbackIntent, Status, Store, now_iso, parse_iso
from ecs_canary.weights import live_service, weights_for

__all__ = ["check_green_steady", "listen", "prepare", "promote", "tick"]

logger = Logger(child=True)

# A Route53 change not yet INSYNC is checked again this often, at most this many times (5 min).
SYNC_POLL_SECONDS = 5
MAX_SYNC_CHECKS = 60
# The watch branch stores its token within moments of the rollout starting; ticks wait for it.
ARM_POLL_SECONDS = 1


def owned(store: Store, pair: str, deployment_id: str, execution: str) -> Deployment:
    """The record, if ``execution`` owns it and it may still act; raises naming why not otherwise."""
    record = store.get_deployment(pair, deployment_id)
    if record.execution_arn != execution:
        store.record_refused(pair, deployment_id, execution, "not the deployment's execution")
        raise NotOwner(
            f"execution {_short(execution)} does not own deployment {deployment_id} "
            f"(its execution is {record.execution_arn}); refused before touching traffic"
        )
    if record.status is Status.ROLLING_BACK:
        reason = record.rollback.reason if record.rollback else "rollback requested"
        raise RollbackRequested(f"deployment {deployment_id} is rolling back: {reason}")
    if record.status.terminal:
        raise DeploymentClosed(f"deployment {deployment_id} is {record.status.value}: {record.reason}")
    return record


def _observe_release(
    store: Store, spec: ServicePairSpec, record: Deployment, execution: str, primary: tuple[str, str] | None
) -> None:
    """Fail back at once when green's primary ECS deployment is not the release under test."""
    under_test = record.release.deployment
    if primary is not None and primary[0] == under_test:
        return
    if primary is None:
        reason = f"{record.service} has no PRIMARY ECS deployment any more (release {under_test} is gone)"
        successor = None
    else:
        reason = (
            f"{record.service} now runs release {primary[0]} ({primary[1]}) instead of release "
            f"{under_test} under test"
        )
        successor = Release(record.service, primary[0], primary[1])
    intent = RollbackIntent(Status.SUPERSEDED, reason, f"execution {_short(execution)}", now_iso(), successor)
    store.request_rollback(record.pair, record.deployment_id, intent, owner=execution)
    raise NewRelease(reason)


# ---- Load spec and snapshot traffic -------------------------------------------------------------


def prepare(store: Store, event: PrepareInput) -> dict[str, Any]:
    """Load the spec and snapshot the weights; the snapshot is the exact rollback target."""
    run, execution = event.input, event.execution
    record = owned(store, run.pair, run.deployment_id, execution)
    pair = store.get_pair(run.pair)
    spec = parse_spec(record.spec) if record.spec is not None else pair.spec
    green_name = run.release.service
    if green_name == pair.live_service and record.snapshot is None:
        raise RouterConfigError(f"{green_name} is already the live service of {spec.name}")
    green_spec = spec.service(green_name)
    router = router_for(spec)
    if record.snapshot is not None:
        # A retried call: the first one checked the weights and stored the snapshot. The weights
        # may have moved since, so reuse the recorded snapshot instead of judging them again.
        weights = record.snapshot
    else:
        weights = router.read_weights()
        holder = live_service(weights)
        if holder != pair.live_service:
            raise RouterConfigError(
                f"{router.describe()} sends all traffic to {holder}, but {pair.live_service} is the "
                f"registered live service of {spec.name}; re-register the pair"
            )
    first = record.snapshot is None
    record = store.begin(run.pair, run.deployment_id, owner=execution, snapshot=weights, spec=spec)
    assert record.snapshot is not None
    if first:
        notify.emit("started", record, reason=f"snapshot of the weights: {_fmt(record.snapshot)}")
    context = {
        "pair": spec.name,
        "deployment_id": run.deployment_id,
        "live": record.live_service,
        "green": green_name,
        "green_release": run.release.deployment,
        "spec": spec.model_dump(mode="json"),
        "snapshot": record.snapshot,
        "green_target_group_arn": green_spec.target_group_arn,
        "green_load_balancer_arn": metrics.load_balancer_for_target_group(
            aws.client("elbv2"), green_spec.target_group_arn
        ),
    }
    return {
        **run.model_dump(mode="json"),
        "deployment": context,
        "steady": {"steady": False, "polls": 0, "wait_seconds": 0, "reason": "not checked yet"},
        "cursor": {
            **rollout.Cursor().to_dict(),
            "percent": 0,
            "wait_seconds": 0,
            "complete": False,
            "verdict": None,
            "reentered": False,
        },
    }


# ---- Wait for green to be steady ----------------------------------------------------------------


def check_green_steady(store: Store, event: SteadyInput) -> dict[str, Any]:
    """One poll of green's readiness; the state machine waits between polls."""
    ctx, execution = event.deployment, event.execution
    record = owned(store, ctx.pair, ctx.deployment_id, execution)
    if record.step_index is not None and record.step_index >= 0:
        # A rollout re-entered after an operator's command: traffic is already moving.
        return {"steady": True, "polls": event.steady.polls, "wait_seconds": 0, "reason": "traffic is moving"}
    spec = parse_spec(record.spec or ctx.spec)
    report = green.check_steady(
        aws.client("ecs"),
        aws.client("elbv2"),
        cluster=spec.cluster,
        service=ctx.green,
        target_group_arn=ctx.green_target_group_arn,
        deployment_id=None,
    )
    primary = (report.primary_id, report.primary_task_definition or "") if report.primary_id else None
    _observe_release(store, spec, record, execution, primary)
    polls = event.steady.polls + 1
    if report.steady:
        store.note(ctx.pair, ctx.deployment_id, owner=execution, event="steady", message=report.reason)
        notify.emit("steady", record, reason=report.reason)
        return {"steady": True, "polls": polls, "wait_seconds": 0, "reason": report.reason}
    if polls >= spec.steady.max_polls:
        raise GreenNeverSteady(
            f"{ctx.green} was not steady after {spec.steady.timeout_seconds}s ({polls} checks): "
            f"{report.reason}"
        )
    if polls == 1:
        store.note(
            ctx.pair, ctx.deployment_id, owner=execution, event="waiting", message=f"waiting: {report.reason}"
        )
    return {
        "steady": False,
        "polls": polls,
        "wait_seconds": spec.steady.poll_seconds,
        "reason": report.reason,
    }


# ---- Watch for alarms, crashes, new releases and operators ---------------------------------------


def listen(store: Store, event: ListenInput) -> dict[str, Any]:
    """Store the watch's task token: interrupts end it (and the rollout's bake) through it."""
    ctx = event.deployment
    record = owned(store, ctx.pair, ctx.deployment_id, event.execution)
    store.arm_listener(ctx.pair, ctx.deployment_id, owner=event.execution, token=event.token)
    return {"armed": True, "status": record.status.value}


# ---- Check health and shift traffic -------------------------------------------------------------


def _wait(record: Deployment, seconds: int, reason: str, **extra: Any) -> dict[str, Any]:
    return {
        "step_index": -1 if record.step_index is None else record.step_index,
        "percent": record.percent or 0,
        "inconclusive": record.inconclusive,
        "shifted_at": record.shifted_at,
        "wait_seconds": max(0, seconds),
        "complete": False,
        "verdict": None,
        "shift_ms": 0,
        "action": "wait",
        "reason": reason,
        "hooks": None,
        "gate_waits": 0,
        **extra,
    }


def _check_weights(
    store: Store,
    spec: ServicePairSpec,
    record: Deployment,
    actual: Mapping[str, int],
    execution: str,
) -> Deployment | None:
    """Level-triggered weights: adopt our own unrecorded shift, else compare with what we last wrote.

    Returns the (possibly updated) record, or None when drift put the deployment on hold.
    """
    expected = record.expected_weights
    if record.shift is not None and dict(actual) == record.shift.weights and actual != expected:
        # A shift of ours landed but its result was never recorded (the call died in between).
        return store.record_shift(
            record.pair,
            record.deployment_id,
            owner=execution,
            step_index=record.shift.step_index,
            percent=record.shift.percent,
            weights=actual,
            bake_seconds=spec.resolved_plan().bake_seconds,
            change_id=None,
            message=f"recovered a shift whose result was not recorded: {_fmt(actual)}",
        )
    if expected is None or dict(actual) == expected:
        return record
    reason = (
        f"the router's weights are {_fmt(actual)}, but this deployment last wrote {_fmt(expected)}: "
        "someone else changed them"
    )
    if spec.on_drift == "hold":
        if record.status is Status.RUNNING:
            paused = store.pause(record.pair, record.deployment_id, by="ecs-canary (drift)", reason=reason)
            notify.emit(
                "drift", paused, reason=reason, by="ecs-canary", expected=expected, actual=dict(actual)
            )
            notify.emit("paused", paused, reason=reason, by="ecs-canary (drift)")
        return None
    notify.emit("drift", record, reason=reason, by="ecs-canary", expected=expected, actual=dict(actual))
    intent = RollbackIntent(
        Status.FAILED, f"traffic drift: {reason}", f"execution {_short(execution)}", now_iso()
    )
    store.request_rollback(record.pair, record.deployment_id, intent, owner=execution)
    raise RollbackRequested(f"traffic drift: {reason}")


def _judge(
    spec: ServicePairSpec, record: Deployment, *, green_name: str, tg: str, lb: str, skip: str | None
) -> HealthReport:
    if skip is not None:
        return HealthReport(Verdict.PASS, (f"analysis skipped by {skip}",))
    gate = spec.health_for(green_name)
    cloudwatch = aws.client("cloudwatch")
    states = metrics.alarm_states(cloudwatch, gate.alarms) if gate.alarms else {}
    if record.step_index is None or record.step_index < 0 or record.shifted_at is None:
        return health.preflight(gate, states)
    sample = None
    if gate.metrics is not None:
        # Only whole periods of this step's own traffic: from the shift plus the settle time (and, with
        # Route53, the records' TTL, during which clients still use the old weights) to now minus the
        # metrics' publishing lag.
        window = health.metric_window(
            parse_iso(record.shifted_at),
            datetime.now(UTC),
            gate.metrics,
            propagation_seconds=router_for(spec).propagation_seconds(),
        )
        sample = metrics.window_sample(cloudwatch, target_group_arn=tg, load_balancer_arn=lb, window=window)
    return health.judge(gate, states, sample)


def tick(store: Store, event: AdvanceInput) -> dict[str, Any]:
    """Re-observe, judge the step that baked, then act: shift, recheck, hold or complete."""
    ctx, execution = event.deployment, event.execution
    record = owned(store, ctx.pair, ctx.deployment_id, execution)
    spec = parse_spec(record.spec or ctx.spec)
    plan = spec.resolved_plan()
    router = router_for(spec)
    _act_on_rejection(store, record, execution)

    _observe_release(
        store, spec, record, execution, green.primary_deployment(aws.client("ecs"), spec.cluster, ctx.green)
    )
    if not record.listener_token:
        return _wait(record, ARM_POLL_SECONDS, "waiting for the watch to be armed")

    actual = router.read_weights()
    checked = _check_weights(store, spec, record, actual, execution)
    if checked is None:
        return _wait(record, spec.health.recheck_seconds, "on hold: the weights drifted", action="hold")
    if checked.step_index != record.step_index:
        # An unrecorded shift of ours was adopted: its step bakes before it is judged.
        wait = plan.bake_seconds + router.propagation_seconds()
        return {**_wait(checked, wait, "recovered a shift whose result was not recorded"), "action": "shift"}
    record = checked

    if record.pending_change is not None:
        if not router.propagated(ShiftReceipt(record.pending_change)):
            checks = record.sync_checks + 1
            if checks > MAX_SYNC_CHECKS:
                raise ShiftNotVerified(
                    f"Route53 change {record.pending_change} for {router.describe()} was not INSYNC after "
                    f"{MAX_SYNC_CHECKS} checks"
                )
            record = store.save_progress(ctx.pair, ctx.deployment_id, owner=execution, sync_checks=checks)
            return _wait(record, SYNC_POLL_SECONDS, "waiting for Route53 to be INSYNC")
        record = store.save_progress(
            ctx.pair, ctx.deployment_id, owner=execution, pending_change=None, sync_checks=0
        )

    command = record.command
    if (
        command is None
        and record.status is Status.RUNNING
        and record.step_index is not None
        and record.step_index >= 0
    ):
        # The current step's after_each_shift hooks, if an interrupt (pause, resume) cut them short:
        # its bake only counts once they passed.
        met = _gates(store, spec, record, event, _current_shift_gate)
        if isinstance(met, dict):
            return met
        record = met

    if event.cursor.reentered and command is None:
        remaining = rollout.remaining_bake(record.bake_until, datetime.now(UTC), plan)
        if remaining > 0:
            return _wait(record, remaining, "the current step's bake continues")

    if (record.step_index is None or record.step_index < 0) and record.status is Status.RUNNING:
        met = _gates(store, spec, record, event, preproduction_gate)
        if isinstance(met, dict):
            return met
        record = met

    cursor = rollout.Cursor(
        -1 if record.step_index is None else record.step_index, record.inconclusive, record.shifted_at
    )
    order = rollout.PromoteOrder(command.full, command.skip_analysis) if command is not None else None
    skip = command.by if command is not None and command.skip_analysis else None
    report = _judge(
        spec,
        record,
        green_name=ctx.green,
        tg=ctx.green_target_group_arn,
        lb=ctx.green_load_balancer_arn,
        skip=skip,
    )
    decision = rollout.decide(
        plan,
        spec.health,
        cursor,
        report,
        propagation_seconds=router.propagation_seconds(),
        paused=record.status is Status.PAUSED,
        promote=order,
    )
    if decision.action == "shift" and command is not None:
        pending = record.approval
        if pending and not pending.get("decision"):
            # An operator's promote is itself the go-ahead for the approval the rollout waited at.
            record = store.mark_gate(
                ctx.pair, ctx.deployment_id, owner=execution, key=str(pending["key"]), clear_approval=True,
                event=("approved", f"promoted by {command.by}: {command.reason or 'no reason given'}"),
            )  # fmt: skip
            notify.emit("approved", record, reason=command.reason, by=command.by, gate=str(pending["key"]))
    elif decision.action == "shift":
        # A steps plan's approval gate holds this shift.
        step = decision.step_index
        met = _gates(store, spec, record, event, lambda s, r: step_approval_gate(s, r, step))
        if isinstance(met, dict):
            return {**met, "verdict": report.verdict.value}
        record = met
    if decision.action == "shift":
        return _shift(
            store, spec, router, record, decision=decision, actual=actual, execution=execution, report=report
        )
    if decision.action in ("recheck", "hold"):
        event_name = "inconclusive" if decision.action == "recheck" else "holding"
        updated = store.save_progress(
            ctx.pair,
            ctx.deployment_id,
            owner=execution,
            inconclusive=cursor.inconclusive + 1 if decision.action == "recheck" else 0,
            event=(event_name, report.summary()),
        )
        return {
            **_wait(updated, decision.wait_seconds, report.summary(), action=decision.action),
            "verdict": report.verdict.value,
        }
    met = _gates(store, spec, record, event, final_gate)
    if isinstance(met, dict):
        return {**met, "verdict": report.verdict.value}
    return _complete(store, met, execution, report, clear_command=command is not None)


GateFinder = Callable[[ServicePairSpec, Deployment], Gate | None]


def _current_shift_gate(spec: ServicePairSpec, record: Deployment) -> Gate | None:
    return shift_gate(spec, record, record.step_index if record.step_index is not None else -1)


def _gates(
    store: Store, spec: ServicePairSpec, record: Deployment, event: AdvanceInput, find: GateFinder
) -> Deployment | dict[str, Any]:
    """Pass every gate that is due now; the record when none is left, else what the machine does next."""
    while (gate := find(spec, record)) is not None:
        outcome = _meet(store, spec, record, gate, event)
        if isinstance(outcome, dict):
            return outcome
        record = outcome
    return record


def _meet(
    store: Store, spec: ServicePairSpec, record: Deployment, gate: Gate, event: AdvanceInput
) -> Deployment | dict[str, Any]:
    """Act on one gate: the record when it was passed at once, else the machine's next step."""
    execution = event.execution
    pair, deployment_id = record.pair, record.deployment_id
    if gate.kind == "hooks":
        assert gate.stage is not None
        then, wait = "tick", 0
        if gate.stage == "after_each_shift":
            # Re-entered while the step's hooks ran (pause, resume): the bake that follows them is
            # what is left of the step's, not nothing.
            then = "bake"
            wait = rollout.remaining_bake(record.bake_until, datetime.now(UTC), spec.resolved_plan())
        return {
            **_wait(record, wait, f"running the {gate.stage} hooks", action="hooks"),
            "hooks": first_cursor(gate.stage, gate.key, then),
        }
    if gate.kind == "test_traffic":
        # Intent before action: the snapshot is stored (once) before the test target is touched, so a
        # rollback racing this call always knows what to put back.
        # The write also takes a lease a rollback waits for, so this change cannot land after it.
        saved = store.save_test_snapshot(
            pair, deployment_id, owner=execution, snapshot=snapshot_test_traffic(spec, record),
            lease_seconds=settings().shift_lease_seconds,
        )  # fmt: skip
        assert saved.test_snapshot is not None
        apply_test_traffic(spec, record, saved.test_snapshot)
        endpoint = test_endpoint(spec)
        try:
            updated = store.mark_gate(
                pair, deployment_id, owner=execution, key=gate.key,
                event=("test_traffic", f"test traffic points at {record.service}: {endpoint}"),
            )  # fmt: skip
        except Exception:
            # A rollback (or a new owner) got in after the lease ran out: whatever it restored, this
            # change landed afterwards, so undo it here too before giving up.
            restore_test_traffic(saved.test_snapshot)
            store.drop_test_lease(pair, deployment_id, owner=execution)
            raise
        notify.emit(
            "test_traffic", updated, reason=f"test traffic points at {record.service}", endpoint=endpoint
        )
        return updated
    if gate.kind == "approval":
        return _approval(store, record, gate, event)
    if gate.kind == "capacity":
        problem = capacity_problem(spec, record)
        if problem is None:
            return store.mark_gate(pair, deployment_id, owner=execution, key=gate.key)
        waited = event.cursor.gate_waits if event.cursor.action == "capacity" else 0
        if waited >= spec.capacity.wait_seconds:
            reason = f"{problem} after waiting {waited} s (capacity.wait_seconds)"
            intent = RollbackIntent(Status.FAILED, reason, f"execution {_short(execution)}", now_iso())
            store.request_rollback(pair, deployment_id, intent, owner=execution)
            raise CapacityShort(reason)
        if waited == 0:
            store.note(pair, deployment_id, owner=execution, event="capacity", message=f"waiting: {problem}")
        return {
            **_wait(record, CAPACITY_POLL_SECONDS, problem, action="capacity"),
            "gate_waits": waited + CAPACITY_POLL_SECONDS,
        }
    # The watched bake after promotion: the next tick judges the gate once more, then completes.
    updated = store.mark_gate(
        pair, deployment_id, owner=execution, key=gate.key,
        event=("watching", f"green takes all traffic; watching for {gate.seconds} s before promotion"),
    )  # fmt: skip
    return _wait(updated, gate.seconds, "watching after promotion", action="bake")


def _act_on_rejection(store: Store, record: Deployment, execution: str) -> None:
    """A rejection fails the deployment back whatever the rollout was doing (paused, rechecking)."""
    pending = record.approval
    if not pending or pending.get("decision") != "rejected":
        return
    by, why = str(pending.get("by", "")), str(pending.get("reason", ""))
    reason = f"rejected by {by}: {why}"
    notify.emit("rejected", record, reason=why, by=by, gate=str(pending.get("key", "")))
    intent = RollbackIntent(Status.FAILED, reason, by or "ecs-canary", now_iso())
    store.request_rollback(record.pair, record.deployment_id, intent, owner=execution)
    raise ApprovalRejected(reason)


def _where(key: str) -> str:
    """``approval:step:3`` → ``before step 3``; ``approval:after_production_traffic`` → ``at after_...``."""
    where = key.split(":", 1)[1]
    return f"before {where.replace(':', ' ')}" if where.startswith("step:") else f"at {where}"


def _approval(
    store: Store, record: Deployment, gate: Gate, event: AdvanceInput
) -> Deployment | dict[str, Any]:
    """Ask for approval once, then act on the answer (or on the wait running out)."""
    assert gate.approval is not None
    execution = event.execution
    pair, deployment_id = record.pair, record.deployment_id
    pending = record.approval if record.approval and record.approval.get("key") == gate.key else None
    timeout, on_timeout = gate.approval.timeout_seconds, gate.approval.on_timeout
    if pending is None:
        asked = store.request_approval(
            pair,
            deployment_id,
            owner=execution,
            approval={
                "key": gate.key,
                "timeout_seconds": timeout,
                "on_timeout": on_timeout,
                "requested_at": now_iso(),
            },
        )
        notify.emit(
            "awaiting_approval",
            asked,
            reason=f"waiting up to {timeout} s for approval {_where(gate.key)}",
            gate=gate.key,
            timeout_seconds=timeout,
            on_timeout=on_timeout,
        )
        return _wait(asked, timeout, "waiting for approval", action="approval")
    decision = pending.get("decision")
    by, why = str(pending.get("by", "")), str(pending.get("reason", ""))
    # Level-triggered: the wait ran out if the machine just waited for it, or if the clock says so
    # (a re-entered rollout only waits what is left of the timeout, not a new one).
    elapsed = (datetime.now(UTC) - parse_iso(str(pending.get("requested_at") or now_iso()))).total_seconds()
    timed_out = event.cursor.action == "approval" or elapsed >= timeout
    if decision == "approved":
        passed = store.mark_gate(pair, deployment_id, owner=execution, key=gate.key, clear_approval=True)
        notify.emit("approved", passed, reason=why, by=by, gate=gate.key)
        return passed
    # (A rejection was acted on at the start of the tick: see _act_on_rejection.)
    if timed_out and on_timeout == "rollback":
        reason = f"approval timed out after {timeout} s"
        notify.emit("rejected", record, reason=reason, by="ecs-canary (timeout)", gate=gate.key)
        intent = RollbackIntent(Status.FAILED, reason, "ecs-canary", now_iso())
        store.request_rollback(pair, deployment_id, intent, owner=execution)
        raise ApprovalRejected(reason)
    if timed_out:
        return store.mark_gate(
            pair, deployment_id, owner=execution, key=gate.key, clear_approval=True,
            event=("approval_timed_out", f"approval timed out after {timeout} s; on_timeout is continue"),
        )  # fmt: skip
    remaining = max(1, min(timeout, int(timeout - elapsed)))
    return _wait(record, remaining, "still waiting for approval", action="approval")


def _shift(
    store: Store,
    spec: ServicePairSpec,
    router: TrafficRouter,
    record: Deployment,
    *,
    decision: rollout.Decision,
    actual: Mapping[str, int],
    execution: str,
    report: HealthReport,
) -> dict[str, Any]:
    plan = spec.resolved_plan()
    weights = weights_for(
        decision.percent, live=record.live_service, green=record.service, total=spec.weight_total
    )
    started = time.monotonic()
    try:
        store.begin_shift(
            record.pair,
            record.deployment_id,
            owner=execution,
            weights=weights,
            step_index=decision.step_index,
            percent=decision.percent,
            lease_seconds=settings().shift_lease_seconds,
        )
    except WriteRefused as refused:
        if refused.condition != "status":
            raise
        # Paused between the verdict and the shift: hold instead (the gate stays armed).
        return _wait(record, spec.health.recheck_seconds, "paused before the shift", action="hold")
    # If the write fails, its lease expires on its own; the next step adopts the weights if it landed.
    try:
        receipt = router.set_weights(weights, expected=actual)
    except TrafficDrift as drift:
        # Someone changed the weights between this step's read and its write: nothing was written.
        store.drop_shift(record.pair, record.deployment_id, owner=execution)
        if spec.on_drift == "hold":
            store.pause(record.pair, record.deployment_id, by="ecs-canary (drift)", reason=str(drift))
            return _wait(record, spec.health.recheck_seconds, f"on hold: {drift}", action="hold")
        intent = RollbackIntent(
            Status.FAILED, f"traffic drift: {drift}", f"execution {_short(execution)}", now_iso()
        )
        store.request_rollback(record.pair, record.deployment_id, intent, owner=execution)
        raise RollbackRequested(f"traffic drift: {drift}") from drift
    if receipt.change_id is None:
        router.verify(weights, receipt)  # ALB: one read-back, nothing to wait for
    shift_ms = round((time.monotonic() - started) * 1000)
    verdict = "" if record.step_index is None or record.step_index < 0 else f" after {report.summary()}"
    order = " (promote requested)" if record.command is not None else ""
    updated = store.record_shift(
        record.pair,
        record.deployment_id,
        owner=execution,
        step_index=decision.step_index,
        percent=decision.percent,
        weights=weights,
        bake_seconds=decision.wait_seconds,
        change_id=receipt.change_id,
        message=f"step {decision.step_index + 1}/{len(plan.steps)}: {decision.percent}% to "
        f"{record.service} ({_fmt(weights)}){verdict}{order}",
    )
    if updated.status is Status.ROLLING_BACK:
        reason = updated.rollback.reason if updated.rollback else "rollback requested"
        raise RollbackRequested(f"deployment {record.deployment_id} is rolling back: {reason}")
    notify.emit(
        "shifted", updated, reason=report.summary(), step=decision.step_index + 1, steps=len(plan.steps)
    )
    notify.metric("GreenPercent", decision.percent, record.pair, notify.MetricUnit.Percent)
    if record.shifted_at is not None:
        seconds = (parse_iso(updated.shifted_at or now_iso()) - parse_iso(record.shifted_at)).total_seconds()
        notify.metric("StepSeconds", seconds, record.pair, notify.MetricUnit.Seconds)
    if decision.promote_after and receipt.change_id is not None:
        # promote --full on Route53: promotion waits until the 100 % change is INSYNC, then completes
        # without judging again (the gate was judged before the shift).
        updated = store.save_progress(record.pair, record.deployment_id, owner=execution, judged_command=True)
    elif record.command is not None:
        updated = store.save_progress(record.pair, record.deployment_id, owner=execution, clear_command=True)
    shifted = {
        "step_index": decision.step_index,
        "percent": decision.percent,
        "inconclusive": 0,
        "shifted_at": updated.shifted_at,
        "wait_seconds": decision.wait_seconds,
        "complete": False,
        "verdict": report.verdict.value,
        "shift_ms": shift_ms,
        "gate_waits": 0,
    }
    after = shift_gate(spec, updated, decision.step_index) if not decision.promote_after else None
    if after is not None and after.stage is not None:
        return {
            **shifted,
            "action": "hooks",
            "reason": f"running the after_each_shift hooks of step {decision.step_index + 1}",
            "hooks": first_cursor(after.stage, after.key, "bake"),
        }
    if decision.promote_after:
        if receipt.change_id is not None:
            return {
                **_wait(updated, SYNC_POLL_SECONDS, "waiting for Route53 to be INSYNC"),
                "shift_ms": shift_ms,
            }
        return {**_complete(store, updated, execution, report, clear_command=False), "shift_ms": shift_ms}
    return {**shifted, "action": "shift", "reason": report.summary(), "hooks": None}


def _complete(
    store: Store, record: Deployment, execution: str, report: HealthReport, *, clear_command: bool
) -> dict[str, Any]:
    """Green passed the final gate: end the watch so the rollout completes and promotion runs.

    Intent first: the token is marked done before it is completed, so a retried call (the first one
    completed the watch, then died) knows the watch is over instead of waiting for it forever.
    """
    token = record.listener_token
    already = token is not None and record.watch_done == token
    if not already:
        store.save_progress(record.pair, record.deployment_id, owner=execution, watch_done=token)
    if not succeed_task(token, {"complete": True}) and not already:
        # The stored token belongs to an earlier rollout attempt (its watch failed); the new watch
        # arms within moments.
        store.save_progress(record.pair, record.deployment_id, owner=execution, watch_done=None)
        return _wait(record, ARM_POLL_SECONDS, "waiting for the watch to be armed")
    updated = store.save_progress(
        record.pair,
        record.deployment_id,
        owner=execution,
        inconclusive=0,
        clear_command=clear_command,
        event=("healthy", f"final step healthy: {report.summary()}"),
    )
    return {
        **_wait(updated, 0, report.summary(), action="complete"),
        "complete": True,
        "verdict": report.verdict.value,
    }


# ---- Promote green ----------------------------------------------------------------------------------


def promote(store: Store, event: AdvanceInput) -> dict[str, Any]:
    """Record success, release the lock and swap roles so the next release goes to the other service."""
    ctx, execution = event.deployment, event.execution
    try:
        record = owned(store, ctx.pair, ctx.deployment_id, execution)
    except DeploymentClosed:
        current = store.get_deployment(ctx.pair, ctx.deployment_id)
        if current.status is Status.SUCCEEDED and current.execution_arn == execution:
            # A retry after this execution closed it: the call that did may have died before the
            # event (emitted again: at least once) or the steps after it.
            notify.emit("succeeded", current, reason=current.reason, repeated=True)
            _after_success(store, parse_spec(current.spec or ctx.spec), current)
            return {"live_service": ctx.green}
        raise
    spec = parse_spec(record.spec or ctx.spec)
    ecs = aws.client("ecs")
    _observe_release(store, spec, record, execution, green.primary_deployment(ecs, spec.cluster, ctx.green))
    final = weights_for(100, live=record.live_service, green=record.service, total=spec.weight_total)
    actual = router_for(spec).read_weights()
    if actual != final:
        reason = (
            f"the router's weights are {_fmt(actual)} at promotion, not {_fmt(final)}: someone changed them"
        )
        intent = RollbackIntent(
            Status.FAILED, f"traffic drift: {reason}", f"execution {_short(execution)}", now_iso()
        )
        store.request_rollback(ctx.pair, ctx.deployment_id, intent, owner=execution)
        raise RollbackRequested(f"traffic drift: {reason}")
    restore_test_target(store, record)
    baseline = green.current_deployment_id(ecs, spec.cluster, record.live_service)
    reason = f"{record.service} took all traffic after {len(spec.resolved_plan().steps)} healthy step(s)"
    if not store.finish(
        ctx.pair,
        ctx.deployment_id,
        Status.SUCCEEDED,
        reason,
        weights=final,
        promote=(record.service, baseline),
        owner=execution,
        from_statuses=(Status.RUNNING, Status.PAUSED),
    ):
        current = store.get_deployment(ctx.pair, ctx.deployment_id)
        if current.status is not Status.SUCCEEDED:
            raise DeploymentClosed(
                f"deployment {ctx.deployment_id} was closed as {current.status.value} before promotion"
            )
        return {"live_service": record.service}
    closed = store.get_deployment(ctx.pair, ctx.deployment_id)
    notify.emit("succeeded", closed, reason=reason)
    _after_success(store, spec, closed)
    notify.metric("DeploymentsSucceeded", 1, record.pair)
    notify.metric("GreenPercent", 100, record.pair, notify.MetricUnit.Percent)
    seconds = (parse_iso(closed.ended_at or now_iso()) - parse_iso(closed.created_at)).total_seconds()
    notify.metric("DeploymentSeconds", seconds, record.pair, notify.MetricUnit.Seconds)
    return {"live_service": record.service}


def _after_success(store: Store, spec: ServicePairSpec, record: Deployment) -> None:
    """Once green is live: retire the old service if the spec says so.

    Idempotent (a retried promotion repeats it harmlessly): the old service's desired count is
    recorded on the pair before it is scaled to zero. Runs after the success is recorded, so a
    deployment that lost its owner never scales anything down.
    """
    restore_test_target(store, record)
    if not spec.after_promotion.scale_old_to_zero:
        return
    if store.active_deployment_id(record.pair) is not None:
        # A retried promotion after the next release already started: the old service may be that
        # release's green now, so it is left alone.
        store.append_history(
            record.pair,
            record.deployment_id,
            "scale_down_skipped",
            f"{record.live_service} was not scaled to zero: a newer deployment of {record.pair} is active",
        )
        return
    ecs = aws.client("ecs")
    old = green.describe_service(ecs, spec.cluster, record.live_service)
    desired = int(old.get("desiredCount", 0))
    if desired == 0:
        return
    store.record_retired(record.pair, record.live_service, desired)
    ecs.update_service(cluster=spec.cluster, service=record.live_service, desiredCount=0)
    store.append_history(
        record.pair,
        record.deployment_id,
        "scaled_down",
        f"{record.live_service} scaled to 0 tasks (it ran {desired}; recorded on the pair)",
    )
    notify.emit(
        "scaled_down",
        record,
        reason=f"{record.live_service} scaled from {desired} to 0 tasks",
        service_retired=record.live_service,
        desired_count=desired,
    )
