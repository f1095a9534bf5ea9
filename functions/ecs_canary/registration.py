"""Registering a service pair: prove the spec names real, usable AWS resources, then store it.

A spec that parses can still point at a cluster in another region, a deleted service, a
mistyped alarm or records whose weights are split. Those mistakes would otherwise surface
only on the next release, as a failed deployment in the middle of someone's rollout, so
every resource is checked here first and every problem is reported at once. Nothing is
stored unless all checks pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from ecs_canary import aws, green, metrics
from ecs_canary.errors import RouterConfigError
from ecs_canary.routers import TrafficRouter, build_router
from ecs_canary.spec import ServicePairSpec
from ecs_canary.store import Pair, Store
from ecs_canary.weights import live_service

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client
    from mypy_boto3_route53 import Route53Client

__all__ = ["Preflight", "RegistrationConflict", "RegistrationError", "preflight", "register", "spec_router"]

_MISSING_TARGET_GROUP_CODES = {"TargetGroupNotFound", "ValidationError"}


class RegistrationError(ValueError):
    """The spec cannot be registered; ``problems`` holds one line per problem, each naming its resource."""

    def __init__(self, pair: str, problems: Sequence[str]) -> None:
        self.pair = pair
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__("\n".join(self.problems))


class RegistrationConflict(RegistrationError):
    """The table refused the pair: one of its deployments is active, or a service belongs to another pair.

    Kept apart from :class:`RegistrationError` because the spec itself is fine; the same
    command succeeds once the conflicting state is gone.
    """


@dataclass(frozen=True)
class Preflight:
    """What the checks found: the router's weights, who holds the traffic and the idle baseline."""

    spec: ServicePairSpec
    router: str
    weights: dict[str, int]
    live_service: str
    idle_service: str
    idle_baseline: str | None


def spec_router(
    spec: ServicePairSpec,
    *,
    route53: Route53Client | None = None,
    elbv2: ElasticLoadBalancingv2Client | None = None,
) -> TrafficRouter:
    """The router ``canary.router_for`` builds, on the caller's clients (the CLI's profile and region)."""
    return build_router(
        spec.router,
        [(s.name, s.target_group_arn, s.record_set_identifier) for s in spec.services],
        route53=route53,
        elbv2=elbv2,
    )


def _cluster_problem(ecs: ECSClient, cluster: str) -> str | None:
    response = ecs.describe_clusters(clusters=[cluster])
    clusters = response.get("clusters", [])
    if not clusters:
        return f"ECS cluster {cluster} does not exist"
    status = clusters[0].get("status", "ACTIVE")
    if status != "ACTIVE":
        return f"ECS cluster {cluster} is {status}, not ACTIVE"
    return None


def _target_group_problem(elbv2: ElasticLoadBalancingv2Client, service: str, arn: str) -> str | None:
    """A missing group, or one no load balancer uses (its metrics then have no LoadBalancer dimension)."""
    try:
        groups = elbv2.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _MISSING_TARGET_GROUP_CODES:
            return f"target group {arn} (service {service}) does not exist"
        raise
    if not groups:
        return f"target group {arn} (service {service}) does not exist"
    if not groups[0].get("LoadBalancerArns"):
        return (
            f"target group {arn} (service {service}) is not attached to a load balancer; "
            "the health gate reads its metrics through the load balancer"
        )
    return None


def _show(spec: ServicePairSpec, weights: Mapping[str, int]) -> str:
    return ", ".join(f"{name}={weights.get(name, 0)}" for name in spec.service_names)


def _live_problem(spec: ServicePairSpec, weights: Mapping[str, int]) -> str | None:
    holders = [name for name in spec.service_names if weights.get(name, 0) > 0]
    if len(holders) > 1:
        return (
            f"traffic is split ({_show(spec, weights)}): route all traffic to one service before registering"
        )
    if not holders:
        return (
            f"no service receives traffic ({_show(spec, weights)}): "
            "route all traffic to one service before registering"
        )
    return None


def preflight(
    spec: ServicePairSpec,
    *,
    ecs: ECSClient | None = None,
    elbv2: ElasticLoadBalancingv2Client | None = None,
    route53: Route53Client | None = None,
    cloudwatch: CloudWatchClient | None = None,
) -> Preflight:
    """Check every resource the spec names and find the live service; raise listing every problem.

    Read-only, so ``ecs-canary register --dry-run`` can run it alone.
    """
    ecs = ecs if ecs is not None else aws.client("ecs")
    elbv2 = elbv2 if elbv2 is not None else aws.client("elbv2")
    cloudwatch = cloudwatch if cloudwatch is not None else aws.client("cloudwatch")
    problems: list[str] = []

    cluster_problem = _cluster_problem(ecs, spec.cluster)
    services_ok = cluster_problem is None
    if cluster_problem is not None:
        problems.append(cluster_problem)
    else:
        for name in spec.service_names:
            try:
                green.describe_service(ecs, spec.cluster, name)
            except RouterConfigError as exc:
                problems.append(str(exc))
                services_ok = False

    for svc in spec.services:
        tg_problem = _target_group_problem(elbv2, svc.name, svc.target_group_arn)
        if tg_problem is not None:
            problems.append(tg_problem)

    router = spec_router(spec, route53=route53, elbv2=elbv2)
    weights: dict[str, int] | None = None
    try:
        weights = router.read_weights()
    except RouterConfigError as exc:
        problems.append(str(exc))

    if spec.health.alarms:
        states = metrics.alarm_states(cloudwatch, spec.health.alarms)
        problems.extend(
            f"CloudWatch alarm {name} does not exist" for name in spec.health.alarms if name not in states
        )

    live: str | None = None
    if weights is not None:
        split_problem = _live_problem(spec, weights)
        if split_problem is not None:
            problems.append(split_problem)
        else:
            live = live_service(weights)

    baseline: str | None = None
    if live is not None and services_ok:
        idle = spec.other(live).name
        try:
            baseline = green.current_deployment_id(ecs, spec.cluster, idle)
        except RouterConfigError as exc:
            problems.append(str(exc))

    if problems:
        raise RegistrationError(spec.name, problems)
    assert live is not None
    assert weights is not None
    return Preflight(
        spec=spec,
        router=router.describe(),
        weights=weights,
        live_service=live,
        idle_service=spec.other(live).name,
        idle_baseline=baseline,
    )


def register(
    store: Store,
    spec: ServicePairSpec,
    *,
    ecs: ECSClient | None = None,
    elbv2: ElasticLoadBalancingv2Client | None = None,
    route53: Route53Client | None = None,
    cloudwatch: CloudWatchClient | None = None,
) -> Pair:
    """Check the spec's resources, then store the pair with its live service and idle baseline.

    The idle service's current PRIMARY ECS deployment is recorded as its baseline: the tasks
    it already runs are not a new release, so their task events must not start a deployment.
    """
    found = preflight(spec, ecs=ecs, elbv2=elbv2, route53=route53, cloudwatch=cloudwatch)
    try:
        return store.put_pair(spec, live_service=found.live_service, idle_baseline=found.idle_baseline)
    except ValueError as exc:
        raise RegistrationConflict(spec.name, [str(exc)]) from exc
