"""The deployment flow, one function per state-machine step (the handlers are thin wrappers).

Every function is safe to run twice: Step Functions retries tasks and EventBridge delivers events
at least once, so each step either repeats harmlessly (setting the same weights again) or finds
its work already recorded and returns.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from ecs_canary import aws, green, health, metrics, rollout
from ecs_canary.errors import DeploymentNotFound, GreenNeverSteady, RouterConfigError
from ecs_canary.events import (
    CursorModel,
    DeploymentContext,
    EcsTaskStateChange,
    ExecutionInput,
    ExecutionStatusChange,
    ReleaseModel,
    SteadyState,
)
from ecs_canary.routers import TrafficRouter, build_router
from ecs_canary.spec import ServicePairSpec, parse_spec
from ecs_canary.store import Release, Status, Store, now_iso
from ecs_canary.weights import live_service, same_weights, weights_for

logger = Logger(child=True)

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


# ---- identities ---------------------------------------------------------------------------------


def deployment_id_for(pair: str, release: Release) -> str:
    """Deterministic id (and Step Functions execution name) of a release of a pair.

    The same ECS deployment + task definition always maps to the same name, so a re-delivered
    event can never start a second execution: Step Functions refuses a duplicate name.
    """
    digest = hashlib.sha256(
        f"{pair}\n{release.service}\n{release.deployment}\n{release.task_definition}".encode()
    ).hexdigest()[:16]
    service = _UNSAFE.sub("-", release.service).strip("-")[: 80 - len(pair) - len(digest) - 2]
    return f"{pair}-{service}-{digest}" if service else f"{pair}-{digest}"


def execution_arn_for(state_machine_arn: str, name: str) -> str:
    """The ARN Step Functions gives execution ``name`` of a standard state machine."""
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"


def router_for(spec: ServicePairSpec) -> TrafficRouter:
    return build_router(
        spec.router, [(s.name, s.target_group_arn, s.record_set_identifier) for s in spec.services]
    )


def _fmt(weights: Mapping[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(weights.items()))


# ---- trigger --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilterResult:
    """What the filter did with one event; ``action`` is started/duplicate/rejected/ignored."""

    action: str
    reason: str
    deployment_id: str | None = None
    pair: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def on_task_running(store: Store, sfn: Any, state_machine_arn: str, task: EcsTaskStateChange) -> FilterResult:
    """Start exactly one deployment per new release of a registered pair's idle service."""
    service = task.service_name
    if service is None:
        return FilterResult("ignored", f"task {task.task_arn} was not started by a service")
    if task.last_status != "RUNNING" or task.desired_status != "RUNNING":
        return FilterResult("ignored", f"task is {task.last_status}/{task.desired_status}, not RUNNING")
    pair = store.pair_for_service(task.cluster_arn, service)
    if pair is None:
        return FilterResult("ignored", f"service {service} is not part of a registered pair")
    name = pair.spec.name
    if service == pair.live_service:
        return FilterResult(
            "ignored", f"{service} is the live service of {name} (scaling or task replacement)", pair=name
        )
    if not task.started_by or not task.started_by.startswith("ecs-svc/"):
        return FilterResult(
            "ignored", f"task of {service} not started by an ECS service deployment", pair=name
        )
    if task.started_by == pair.idle_baseline:
        return FilterResult(
            "ignored",
            f"{task.started_by} is the release {service} already ran when it became idle",
            pair=name,
        )

    release = Release(service, task.started_by, task.task_definition_arn)
    deployment_id = deployment_id_for(name, release)
    claim = store.claim(name, deployment_id, release, pair.live_service)
    if claim.outcome == "busy":
        reason = (
            f"release {release.deployment} of {service} arrived while deployment "
            f"{claim.active_deployment_id} of {name} is active; it was not started"
        )
        store.record_rejected(name, deployment_id, release, pair.live_service, reason)
        logger.warning(reason, extra={"deployment_id": deployment_id})
        return FilterResult("rejected", reason, deployment_id, name)
    if claim.outcome == "live":
        return FilterResult("ignored", f"{service} became the live service of {name}", deployment_id, name)
    if claim.outcome == "duplicate":
        assert claim.existing is not None
        if claim.existing.status is not Status.STARTING:
            return FilterResult(
                "duplicate", f"release already handled ({claim.existing.status.value})", deployment_id, name
            )
        # Claimed before but the execution may never have started: (re)start it; the name dedupes.

    execution_input = ExecutionInput(
        pair=name,
        deployment_id=deployment_id,
        release=ReleaseModel(**release.to_dict()),
    )
    try:
        arn = sfn.start_execution(
            stateMachineArn=state_machine_arn, name=deployment_id, input=execution_input.model_dump_json()
        )["executionArn"]
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
            raise
        arn = execution_arn_for(state_machine_arn, deployment_id)
    store.mark_started(name, deployment_id, arn)
    return FilterResult(
        "started", f"execution {deployment_id} started for {release.deployment}", deployment_id, name
    )


# ---- state machine steps ------------------------------------------------------------------------


def prepare(store: Store, run: ExecutionInput) -> dict[str, Any]:
    """Load the spec and snapshot the weights; the snapshot is the exact rollback target."""
    pair = store.get_pair(run.pair)
    spec = pair.spec
    green_name = run.release.service
    if green_name == pair.live_service:
        raise RouterConfigError(f"{green_name} is already the live service of {spec.name}")
    green_spec = spec.service(green_name)
    router = router_for(spec)
    recorded = store.get_deployment(run.pair, run.deployment_id)
    if recorded.snapshot is not None:
        # A retried call: the first one checked the weights and stored the snapshot. The weights
        # may have moved since, so reuse the recorded snapshot instead of judging them again.
        weights = recorded.snapshot
    else:
        weights = router.read_weights()
        holder = live_service(weights)
        if holder != pair.live_service:
            raise RouterConfigError(
                f"{router.describe()} sends all traffic to {holder}, but {pair.live_service} is the "
                f"registered live service of {spec.name}; re-register the pair"
            )
    record = store.begin(run.pair, run.deployment_id, weights, spec)
    assert record.snapshot is not None
    context = DeploymentContext(
        pair=spec.name,
        deployment_id=run.deployment_id,
        live=pair.live_service,
        green=green_name,
        green_release=run.release.deployment,
        spec=spec.model_dump(mode="json"),
        snapshot=record.snapshot,
        green_target_group_arn=green_spec.target_group_arn,
        green_load_balancer_arn=metrics.load_balancer_for_target_group(
            aws.client("elbv2"), green_spec.target_group_arn
        ),
    )
    return {
        **run.model_dump(mode="json"),
        "deployment": context.model_dump(mode="json"),
        "steady": {"steady": False, "polls": 0, "wait_seconds": 0, "reason": "not checked yet"},
        "cursor": {
            **rollout.Cursor().to_dict(),
            "percent": 0,
            "wait_seconds": 0,
            "complete": False,
            "verdict": None,
        },
    }


def check_green_steady(store: Store, ctx: DeploymentContext, state: SteadyState) -> dict[str, Any]:
    """One poll of green's readiness; the state machine waits between polls."""
    spec = parse_spec(ctx.spec)
    report = green.check_steady(
        aws.client("ecs"),
        aws.client("elbv2"),
        cluster=spec.cluster,
        service=ctx.green,
        target_group_arn=ctx.green_target_group_arn,
        deployment_id=ctx.green_release,
    )
    polls = state.polls + 1
    if report.steady:
        store.note(ctx.pair, ctx.deployment_id, "steady", f"{ctx.green} is steady: {report.reason}")
        return {"steady": True, "polls": polls, "wait_seconds": 0, "reason": report.reason}
    if polls >= spec.steady.max_polls:
        raise GreenNeverSteady(
            f"{ctx.green} was not steady after {spec.steady.timeout_seconds}s ({polls} checks): "
            f"{report.reason}"
        )
    if polls == 1:
        store.note(ctx.pair, ctx.deployment_id, "waiting", f"waiting for {ctx.green}: {report.reason}")
    return {
        "steady": False,
        "polls": polls,
        "wait_seconds": spec.steady.poll_seconds,
        "reason": report.reason,
    }


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def advance(store: Store, ctx: DeploymentContext, cursor_in: CursorModel) -> dict[str, Any]:
    """Judge the step that just baked, then move to the next step's weights (one call per increment)."""
    spec = parse_spec(ctx.spec)
    plan = spec.resolved_plan()
    cursor = rollout.Cursor(cursor_in.step_index, cursor_in.inconclusive, cursor_in.shifted_at)
    gate = spec.health_for(ctx.green)
    cloudwatch = aws.client("cloudwatch")
    states = metrics.alarm_states(cloudwatch, gate.alarms) if gate.alarms else {}
    if cursor.step_index < 0 or cursor.shifted_at is None:
        report = health.preflight(gate, states)
    else:
        sample = None
        if gate.metrics is not None:
            sample = metrics.green_sample(
                cloudwatch,
                target_group_arn=ctx.green_target_group_arn,
                load_balancer_arn=ctx.green_load_balancer_arn,
                start=(start := _parse_time(cursor.shifted_at)),
                # A zero bake (or clock skew between invocations) must still give a valid window.
                end=max(datetime.now(UTC), start + timedelta(seconds=1)),
            )
        report = health.judge(gate, states, sample)
    router = router_for(spec)
    decision = rollout.decide(
        plan, spec.health, cursor, report, propagation_seconds=router.propagation_seconds()
    )
    shift_ms = 0
    if decision.action == "shift":
        weights = weights_for(decision.percent, live=ctx.live, green=ctx.green, total=spec.weight_total)
        started = time.monotonic()
        receipt = router.set_weights(weights)
        router.verify(weights, receipt)
        shift_ms = round((time.monotonic() - started) * 1000)
        verdict = "" if cursor.step_index < 0 else f" after {report.summary()}"
        try:
            store.record_step(
                ctx.pair,
                ctx.deployment_id,
                step_index=decision.step_index,
                percent=decision.percent,
                weights=weights,
                message=f"step {decision.step_index + 1}/{len(plan.steps)}: {decision.percent}% to "
                f"{ctx.green} ({_fmt(weights)}){verdict}",
            )
        except DeploymentNotFound:
            # The deployment was closed while this shift was in flight (stopped in the console and
            # reconciled): the restore may have run before our write, so put the snapshot back.
            receipt = router.set_weights(ctx.snapshot)
            router.verify(ctx.snapshot, receipt)
            raise
    elif decision.action == "recheck":
        store.note(ctx.pair, ctx.deployment_id, "inconclusive", report.summary())
    else:
        store.note(ctx.pair, ctx.deployment_id, "healthy", f"final step healthy: {report.summary()}")
    nxt = rollout.advance_cursor(cursor, decision, now_iso())
    return {
        **nxt.to_dict(),
        "percent": decision.percent,
        "wait_seconds": decision.wait_seconds,
        "complete": decision.action == "promote",
        "verdict": report.verdict.value,
        "shift_ms": shift_ms,
    }


def promote(store: Store, ctx: DeploymentContext) -> dict[str, Any]:
    """Record success, release the lock and swap roles so the next release goes to the other service."""
    spec = parse_spec(ctx.spec)
    baseline = green.current_deployment_id(aws.client("ecs"), spec.cluster, ctx.live)
    final = weights_for(100, live=ctx.live, green=ctx.green, total=spec.weight_total)
    reason = f"{ctx.green} took all traffic after {len(spec.resolved_plan().steps)} healthy step(s)"
    if not store.finish(
        ctx.pair, ctx.deployment_id, Status.SUCCEEDED, reason, weights=final, promote=(ctx.green, baseline)
    ):
        current = store.get_deployment(ctx.pair, ctx.deployment_id)
        if current.status is not Status.SUCCEEDED:
            raise DeploymentNotFound(
                f"deployment {ctx.deployment_id} was closed as {current.status.value} before promotion"
            )
    return {"live_service": ctx.green}


def fail_back(store: Store, pair: str, deployment_id: str, status: Status, reason: str) -> dict[str, Any]:
    """Restore the snapshot weights exactly, close the record with ``reason`` and release the lock."""
    record = store.find_deployment(pair, deployment_id)
    if record is None:
        return {"reason": f"{reason} (no deployment record)", "restored": False}
    if record.status.terminal:
        return {"reason": record.reason or reason, "restored": False}
    restored = False
    final: dict[str, int] | None = None
    if record.snapshot is not None and record.spec is not None:
        router = router_for(parse_spec(record.spec))
        current = router.read_weights()
        if not same_weights(current, record.snapshot):
            receipt = router.set_weights(record.snapshot)
            router.verify(record.snapshot, receipt)
            restored = True
        final = record.snapshot
        reason = f"{reason}; traffic {'restored' if restored else 'unchanged'} at {_fmt(record.snapshot)}"
    else:
        reason = f"{reason}; no traffic had moved"
    store.finish(pair, deployment_id, status, reason, weights=final)
    return {"reason": reason, "restored": restored}


_ENDED = {"ABORTED": Status.ABORTED, "TIMED_OUT": Status.TIMED_OUT, "FAILED": Status.FAILED}


def reconcile(store: Store, detail: ExecutionStatusChange) -> dict[str, Any]:
    """An execution ended without closing its record (stopped, timed out, rollback failed): close it now."""
    status = _ENDED.get(detail.status)
    data = detail.input_json()
    pair, deployment_id = data.get("pair"), data.get("deployment_id")
    if status is None or not isinstance(pair, str) or not isinstance(deployment_id, str):
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
    if record.execution_arn and record.execution_arn != detail.execution_arn:
        # e.g. a console "New execution" started with a copy of the deployment's input.
        return {
            "action": "ignored",
            "reason": f"execution {detail.name} is not the execution of deployment {deployment_id}",
        }
    why = f"execution {detail.status.lower().replace('_', ' ')} outside the state machine"
    if detail.error or detail.cause:
        why += f" ({': '.join(x for x in (detail.error, detail.cause) if x)})"
    result = fail_back(store, pair, deployment_id, status, why)
    return {"action": "reconciled", **result}
