"""From ECS task events to exactly one deployment per real release of a pair's idle service.

A release is started only when it is real: the task's cluster is the pair's registered cluster
(same account and region, not just the same name) and its ``startedBy`` is one of the service's
current ECS deployments, so a forged or stale id never takes the pair's lock. A new release of
the service a deployment is judging supersedes that deployment (``on_new_release``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import botocore.session
from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from ecs_canary import green
from ecs_canary.errors import RouterConfigError
from ecs_canary.events import EcsTaskStateChange, ExecutionInput, ReleaseModel
from ecs_canary.flow import notify
from ecs_canary.flow.identity import deployment_id_for, execution_arn_for
from ecs_canary.flow.rollback import request_rollback
from ecs_canary.flow.settings import settings
from ecs_canary.store import Deployment, Pair, Release, RollbackIntent, Status, Store, now_iso

__all__ = ["FilterResult", "on_task_running"]

logger = Logger(child=True)


@dataclass(frozen=True)
class FilterResult:
    """What the filter did with one event; ``action`` is started/duplicate/superseding/rejected/ignored."""

    action: str
    reason: str
    deployment_id: str | None = None
    pair: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _partition(cluster: str, region: str | None) -> str | None:
    """The AWS partition the pair's cluster is in (from its ARN, else from the region)."""
    if cluster.startswith("arn:"):
        return cluster.split(":")[1]
    return None if region is None else _region_partition(region)


@functools.cache
def _region_partition(region: str) -> str:
    return str(botocore.session.get_session().get_partition_for_region(region))


def _same_cluster(
    pair: Pair, task: EcsTaskStateChange, region: str | None, account: str | None
) -> str | None:
    """Why the task's cluster is not the pair's cluster (None when it is)."""
    if pair.cluster_arn is not None:
        if task.cluster_arn != pair.cluster_arn:
            return f"cluster {task.cluster_arn} is not the pair's registered cluster {pair.cluster_arn}"
        return None
    event_partition, event_region, event_account = task.cluster_partition_region_account
    partition = _partition(pair.spec.cluster, region)
    if partition is not None and event_partition != partition:
        return f"cluster {task.cluster_arn} is in partition {event_partition}, not {partition}"
    if region is not None and event_region != region:
        return f"cluster {task.cluster_arn} is in region {event_region}, not {region}"
    if account is not None and event_account != account:
        return f"cluster {task.cluster_arn} is in account {event_account}, not {account}"
    return None


def on_task_running(
    store: Store,
    sfn: Any,
    ecs: Any,
    state_machine_arn: str,
    task: EcsTaskStateChange,
    *,
    region: str | None = None,
    account: str | None = None,
) -> FilterResult:
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
    elsewhere = _same_cluster(pair, task, region, account)
    if elsewhere is not None:
        return FilterResult("ignored", f"{elsewhere}; not a release of {name}", pair=name)
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
    known = store.find_deployment(name, deployment_id)
    if known is not None and known.status is not Status.STARTING:
        return FilterResult(
            "duplicate", f"release already handled ({known.status.value})", deployment_id, name
        )

    # Level-triggered: ask ECS whether this release exists and is what the service converges to.
    try:
        current = green.deployments_of(ecs, pair.spec.cluster, service)
    except RouterConfigError as exc:
        return FilterResult("ignored", f"cannot confirm release {release.deployment}: {exc}", pair=name)
    confirmed = current.get(release.deployment)
    if confirmed is None:
        return FilterResult(
            "ignored",
            f"{release.deployment} is not a current ECS deployment of {service} (never issued by ECS, "
            "or already replaced); nothing was started",
            pair=name,
        )
    if confirmed.get("taskDefinition") and confirmed["taskDefinition"] != release.task_definition:
        return FilterResult(
            "ignored",
            f"{release.deployment} of {service} runs {confirmed['taskDefinition']}, not the event's "
            f"{release.task_definition}; nothing was started",
            pair=name,
        )
    is_primary = confirmed.get("status") == "PRIMARY"

    active_id = store.active_deployment_id(name)
    if active_id is not None and active_id != deployment_id:
        active = store.find_deployment(name, active_id)
        if active is not None and not active.status.terminal and active.service == service:
            if not is_primary:
                return FilterResult(
                    "ignored",
                    f"{release.deployment} is not the primary deployment of {service}; "
                    f"deployment {active_id} goes on",
                    pair=name,
                )
            return _supersede(store, active, release, deployment_id)

    if not is_primary and known is None:
        return FilterResult(
            "ignored",
            f"{release.deployment} is no longer the primary deployment of {service}; nothing was started",
            pair=name,
        )
    return _claim_and_start(
        store, sfn, state_machine_arn, pair=pair, release=release, deployment_id=deployment_id
    )


def _supersede(store: Store, active: Deployment, release: Release, deployment_id: str) -> FilterResult:
    """Green got a different release mid-deployment: fail the active one back at once."""
    reason = (
        f"{active.service} now runs release {release.deployment} ({release.task_definition}) instead of "
        f"release {active.release.deployment} under test"
    )
    intent = RollbackIntent(Status.SUPERSEDED, reason, "filter (new release)", now_iso(), release)
    request_rollback(store, active, intent, signal="NewRelease")
    logger.warning(reason, extra={"deployment_id": active.deployment_id, "successor": deployment_id})
    return FilterResult(
        "superseding",
        f"{reason}; deployment {active.deployment_id} fails back first",
        deployment_id,
        active.pair,
    )


def _claim_and_start(
    store: Store, sfn: Any, state_machine_arn: str, *, pair: Pair, release: Release, deployment_id: str
) -> FilterResult:
    name = pair.spec.name
    execution_arn = execution_arn_for(state_machine_arn, deployment_id)
    claim = store.claim(
        name,
        deployment_id,
        release,
        pair.live_service,
        execution_arn=execution_arn,
        lease_seconds=settings().lock_lease_seconds,
    )
    if claim.outcome == "busy":
        reason = (
            f"release {release.deployment} of {release.service} arrived while deployment "
            f"{claim.active_deployment_id} of {name} is active; it was not started"
        )
        if store.record_rejected(name, deployment_id, release, pair.live_service, reason):
            notify.emit("release_rejected", store.get_deployment(name, deployment_id), reason=reason)
        logger.warning(reason, extra={"deployment_id": deployment_id})
        return FilterResult("rejected", reason, deployment_id, name)
    if claim.outcome == "live":
        return FilterResult(
            "ignored", f"{release.service} became the live service of {name}", deployment_id, name
        )
    if claim.outcome == "duplicate":
        assert claim.existing is not None
        if claim.existing.status is not Status.STARTING:
            return FilterResult(
                "duplicate", f"release already handled ({claim.existing.status.value})", deployment_id, name
            )
        # Claimed before but the execution may never have started: (re)start it; the name dedupes.
        execution_arn = claim.existing.execution_arn or execution_arn
    execution_input = ExecutionInput(
        pair=name, deployment_id=deployment_id, release=ReleaseModel(**release.to_dict())
    )
    try:
        sfn.start_execution(
            stateMachineArn=state_machine_arn, name=deployment_id, input=execution_input.model_dump_json()
        )
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
            raise
    store.mark_started(name, deployment_id, execution_arn)
    return FilterResult(
        "started", f"execution {deployment_id} started for {release.deployment}", deployment_id, name
    )
