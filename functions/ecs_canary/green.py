"""Is the new (green) ECS service steady enough to receive traffic?

Traffic only moves once the release being deployed owns the service, every task
it asked for is running and the load balancer reports every target healthy:
weights sent to a half-started service turn straight into errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ecs_canary.errors import RouterConfigError

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client

__all__ = [
    "SteadyReport",
    "check_steady",
    "current_deployment_id",
    "deployments_of",
    "describe_service",
    "primary_deployment",
    "service_exists",
]

# Targets listed in a reason before the rest are summarised, to keep log lines short.
_MAX_LISTED_TARGETS = 5


@dataclass(frozen=True)
class SteadyReport:
    """Verdict of one steadiness check, with the counts behind it for logs and the CLI."""

    steady: bool
    reason: str
    running: int
    desired: int
    healthy_targets: int
    total_targets: int
    primary_id: str | None = None
    primary_task_definition: str | None = None


def _describe(ecs: ECSClient, cluster: str, service: str) -> dict[str, Any] | None:
    """The service as ECS describes it, or None when ECS reports it missing."""
    try:
        response = ecs.describe_services(cluster=cluster, services=[service])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ClusterNotFoundException":
            raise RouterConfigError(f"ECS cluster {cluster} does not exist") from exc
        raise
    services = response.get("services", [])
    return dict(services[0]) if services else None


def describe_service(ecs: ECSClient, cluster: str, service: str) -> dict[str, Any]:
    """The ACTIVE service; missing, draining or deleted (INACTIVE) services are a config error."""
    described = _describe(ecs, cluster, service)
    if described is None:
        raise RouterConfigError(f"ECS service {service} does not exist in cluster {cluster}")
    status = described.get("status", "ACTIVE")
    if status != "ACTIVE":
        raise RouterConfigError(f"ECS service {service} in cluster {cluster} is {status}")
    return described


def service_exists(ecs: ECSClient, cluster: str, service: str) -> bool:
    """True when the service exists and is ACTIVE (not draining or deleted)."""
    described = _describe(ecs, cluster, service)
    return described is not None and described.get("status", "ACTIVE") == "ACTIVE"


def _primary(described: dict[str, Any]) -> dict[str, Any] | None:
    for deployment in described.get("deployments", []):
        if deployment.get("status") == "PRIMARY":
            return dict(deployment)
    return None


def current_deployment_id(ecs: ECSClient, cluster: str, service: str) -> str | None:
    """Id of the service's PRIMARY deployment (the release ECS is converging to), if any."""
    primary = _primary(describe_service(ecs, cluster, service))
    return str(primary["id"]) if primary and primary.get("id") else None


def primary_deployment(ecs: ECSClient, cluster: str, service: str) -> tuple[str, str] | None:
    """(id, task definition ARN) of the service's PRIMARY deployment, if it has one."""
    primary = _primary(describe_service(ecs, cluster, service))
    if not primary or not primary.get("id"):
        return None
    return str(primary["id"]), str(primary.get("taskDefinition", ""))


def deployments_of(ecs: ECSClient, cluster: str, service: str) -> dict[str, dict[str, Any]]:
    """The service's current ECS deployments (PRIMARY and ACTIVE ones) by id; empty if it is gone."""
    described = _describe(ecs, cluster, service)
    if described is None:
        return {}
    return {str(d["id"]): dict(d) for d in described.get("deployments", []) if d.get("id")}


def _target_health(elbv2: ElasticLoadBalancingv2Client, target_group_arn: str) -> list[tuple[str, str]]:
    """(target, state) for every target registered in the group."""
    try:
        descriptions = elbv2.describe_target_health(TargetGroupArn=target_group_arn)[
            "TargetHealthDescriptions"
        ]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "TargetGroupNotFound":
            raise RouterConfigError(f"target group {target_group_arn} does not exist") from exc
        raise
    health: list[tuple[str, str]] = []
    for description in descriptions:
        name = str(description.get("Target", {}).get("Id", "?"))
        health.append((name, str(description.get("TargetHealth", {}).get("State", "unknown"))))
    return health


def check_steady(
    ecs: ECSClient,
    elbv2: ElasticLoadBalancingv2Client,
    *,
    cluster: str,
    service: str,
    target_group_arn: str,
    deployment_id: str | None,
) -> SteadyReport:
    """Whether ``service`` runs ``deployment_id`` to completion with every target healthy.

    ``deployment_id`` is the release being rolled out; if another deployment has
    become PRIMARY since, this rollout is stale and must not shift traffic.
    """
    described = describe_service(ecs, cluster, service)
    desired = int(described.get("desiredCount", 0))
    running = int(described.get("runningCount", 0))
    problems: list[str] = []

    if desired <= 0:
        problems.append(f"desired count of {service} is 0")
    elif running != desired:
        problems.append(f"{running}/{desired} tasks running")

    primary = _primary(described)
    deployments = described.get("deployments", [])
    if primary is None:
        problems.append(f"{service} has no PRIMARY deployment")
    else:
        primary_id = primary.get("id")
        if deployment_id is not None and primary_id != deployment_id:
            problems.append(
                f"release {deployment_id} is no longer the primary deployment (primary is {primary_id})"
            )
        rollout = primary.get("rolloutState")
        if rollout is not None and rollout != "COMPLETED":
            detail = primary.get("rolloutStateReason")
            problems.append(f"deployment {primary_id} is {rollout}" + (f": {detail}" if detail else ""))
        elif rollout is None and len(deployments) > 1:
            # Without rolloutState (external or CodeDeploy controllers) older
            # deployments still listed mean tasks are still being replaced.
            problems.append(f"{len(deployments)} deployments still active")

    health = _target_health(elbv2, target_group_arn)
    total = len(health)
    not_healthy = [(name, state) for name, state in health if state != "healthy"]
    healthy = total - len(not_healthy)
    if total == 0:
        problems.append(f"no targets registered in {target_group_arn}")
    elif not_healthy:
        listed = ", ".join(f"{name}: {state}" for name, state in not_healthy[:_MAX_LISTED_TARGETS])
        if len(not_healthy) > _MAX_LISTED_TARGETS:
            listed += f", and {len(not_healthy) - _MAX_LISTED_TARGETS} more"
        problems.append(f"{len(not_healthy)} of {total} targets unhealthy ({listed})")

    if problems:
        reason = "; ".join(problems)
    else:
        reason = f"{running}/{desired} tasks running, {healthy}/{total} targets healthy"
    return SteadyReport(
        steady=not problems,
        reason=reason,
        running=running,
        desired=desired,
        healthy_targets=healthy,
        total_targets=total,
        primary_id=str(primary["id"]) if primary and primary.get("id") else None,
        primary_task_definition=str(primary.get("taskDefinition", "")) if primary else None,
    )
