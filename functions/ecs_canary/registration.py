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
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ecs_canary import aws, green, metrics
from ecs_canary.errors import RouterConfigError
from ecs_canary.gates import HOOK_STAGES, listener_of_rule
from ecs_canary.routers import TrafficRouter, build_router
from ecs_canary.spec import AlbRouterSpec, Route53RouterSpec, ServicePairSpec
from ecs_canary.store import Pair, Store
from ecs_canary.weights import live_service

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_route53 import Route53Client
    from mypy_boto3_sts import STSClient

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
    cluster_arn: str | None = None


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


def _cluster(ecs: ECSClient, cluster: str) -> tuple[str | None, str | None]:
    """(cluster ARN, problem): the ACTIVE cluster's ARN, or why there is none."""
    response = ecs.describe_clusters(clusters=[cluster])
    clusters = response.get("clusters", [])
    if not clusters:
        return None, f"ECS cluster {cluster} does not exist"
    status = clusters[0].get("status", "ACTIVE")
    if status != "ACTIVE":
        return None, f"ECS cluster {cluster} is {status}, not ACTIVE"
    return str(clusters[0].get("clusterArn") or "") or None, None


def _caller_scope_problem(cluster_arn: str, region: str | None, account: str | None) -> str | None:
    """The cluster must be in the caller's own account and region (deployments run there)."""
    parts = cluster_arn.split(":")
    if len(parts) < 6:
        return None
    cluster_region, cluster_account = parts[3], parts[4]
    if region and cluster_region != region:
        return f"ECS cluster {cluster_arn} is in region {cluster_region}, not {region} where ecs-canary runs"
    if account and cluster_account != account:
        return (
            f"ECS cluster {cluster_arn} is in account {cluster_account}, not {account} where ecs-canary runs"
        )
    return None


def _attachment_problems(ecs: ECSClient, spec: ServicePairSpec) -> list[str]:
    """Each service must be attached (DescribeServices → loadBalancers) to the target group the spec names.

    Swapped target groups would make the wrong service read as live and the next release "ramp" by
    moving traffic onto the old service: no canary at all.
    """
    problems: list[str] = []
    for svc in spec.services:
        described = green.describe_service(ecs, spec.cluster, svc.name)
        attached = sorted(
            {
                str(lb["targetGroupArn"])
                for lb in described.get("loadBalancers", [])
                if lb.get("targetGroupArn")
            }
        )
        if svc.target_group_arn in attached:
            continue
        others = [s.name for s in spec.services if s.target_group_arn in attached and s.name != svc.name]
        found = ", ".join(attached) if attached else "no target group"
        hint = f" (that is the target group the spec names for {others[0]}: swapped?)" if others else ""
        problems.append(
            f"ECS service {svc.name} is attached to {found}, not to target group {svc.target_group_arn} "
            f"that the spec names for it{hint}"
        )
    return problems


def _forward_problems(elbv2: ElasticLoadBalancingv2Client, spec: ServicePairSpec) -> list[str]:
    """The ALB listener or rule must forward to exactly the two target groups of the spec."""
    router = spec.router
    if not isinstance(router, AlbRouterSpec):
        return []
    if router.rule_arn:
        rules = elbv2.describe_rules(RuleArns=[router.rule_arn]).get("Rules", [])
        actions = rules[0].get("Actions", []) if rules else []
        where = f"listener rule {router.rule_arn}"
    else:
        assert router.listener_arn is not None
        listeners = elbv2.describe_listeners(ListenerArns=[router.listener_arn]).get("Listeners", [])
        actions = listeners[0].get("DefaultActions", []) if listeners else []
        where = f"listener {router.listener_arn}"
    groups: set[str] = set()
    for action in actions:
        if action.get("Type") != "forward":
            continue
        weighted = (action.get("ForwardConfig") or {}).get("TargetGroups") or []
        groups |= {str(g["TargetGroupArn"]) for g in weighted}
        if action.get("TargetGroupArn"):
            groups.add(str(action["TargetGroupArn"]))
    wanted = {s.target_group_arn for s in spec.services}
    if groups == wanted:
        return []
    missing = sorted(wanted - groups)
    extra = sorted(groups - wanted)
    said = []
    if missing:
        said.append("does not forward to " + ", ".join(missing))
    if extra:
        said.append("also forwards to " + ", ".join(extra))
    return [
        f"{where} {' and '.join(said)}: it must forward to exactly the two target groups of the spec "
        "(the live one at full weight, the other at 0)"
    ]


def _normalise_dns(name: str) -> str:
    name = name.lower().rstrip(".")
    return name.removeprefix("dualstack.")


def _record_target_problems(
    elbv2: ElasticLoadBalancingv2Client, route53: Route53Client, spec: ServicePairSpec
) -> list[str]:
    """Each alias record must point at the load balancer in front of its service's target group."""
    router = spec.router
    if not isinstance(router, Route53RouterSpec):
        return []
    pages = route53.list_resource_record_sets(
        HostedZoneId=router.hosted_zone_id,
        StartRecordName=router.record_name,
        StartRecordType=router.record_type,
    ).get("ResourceRecordSets", [])
    records = {
        str(r.get("SetIdentifier")): r
        for r in pages
        if _normalise_dns(str(r["Name"])) == _normalise_dns(router.record_name)
        and r["Type"] == router.record_type
    }
    problems: list[str] = []
    for svc in spec.services:
        record: dict[str, Any] = dict(records.get(svc.record_set_identifier) or {})
        alias = record.get("AliasTarget")
        if not alias:
            continue  # plain records name addresses, which cannot be tied to a service
        groups = elbv2.describe_target_groups(TargetGroupArns=[svc.target_group_arn]).get("TargetGroups", [])
        lb_arns = list(groups[0].get("LoadBalancerArns", [])) if groups else []
        if not lb_arns:
            continue  # reported by the target group check
        balancers = elbv2.describe_load_balancers(LoadBalancerArns=lb_arns).get("LoadBalancers", [])
        names = {_normalise_dns(str(lb.get("DNSName", ""))) for lb in balancers}
        if _normalise_dns(str(alias.get("DNSName", ""))) not in names:
            problems.append(
                f"Route53 record {router.record_name} with SetIdentifier {svc.record_set_identifier!r} "
                f"(service {svc.name}) is an alias to {alias.get('DNSName')}, not to the load balancer of "
                f"the service's target group ({', '.join(sorted(names))})"
            )
    return problems


MAX_HOOK_FUNCTION_TIMEOUT = 840
"""Longest timeout a hook function may have: the hook runner (900 s) waits for its answer."""


def _hook_problems(lambda_client: LambdaClient, spec: ServicePairSpec, prefix: str | None) -> list[str]:
    """Every hook function exists, and is one the stack's hook runner may invoke (its name prefix)."""
    problems: list[str] = []
    for stage in HOOK_STAGES:
        for hook in spec.hooks.of(stage):
            where = f"hook function {hook.function} (hooks.{stage})"
            if prefix and not hook.function_name.startswith(prefix):
                problems.append(
                    f"{where} is not named with the stack's HookFunctionPrefix {prefix!r}: the hook runner "
                    "may only invoke functions whose name starts with it"
                )
                continue
            try:
                found = lambda_client.get_function(FunctionName=hook.function)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                    raise
                problems.append(f"{where} does not exist")
                continue
            timeout = int(found.get("Configuration", {}).get("Timeout", 3))
            if timeout > MAX_HOOK_FUNCTION_TIMEOUT:
                problems.append(
                    f"{where} has a timeout of {timeout} s; a hook may take at most "
                    f"{MAX_HOOK_FUNCTION_TIMEOUT} s per answer (the hook runner must outlive the call): "
                    "answer IN_PROGRESS and be asked again instead"
                )
    return problems


def _load_balancer_of(elbv2: ElasticLoadBalancingv2Client, listener_arn: str) -> str | None:
    listeners = elbv2.describe_listeners(ListenerArns=[listener_arn]).get("Listeners", [])
    return str(listeners[0]["LoadBalancerArn"]) if listeners else None


def _test_traffic_problems(elbv2: ElasticLoadBalancingv2Client, spec: ServicePairSpec) -> list[str]:
    """The test listener or rule exists, on the load balancer green's target group is behind.

    An ALB target group serves one load balancer, so a test listener elsewhere could never forward
    to green. (A Route53 test record is created when needed; the spec refuses the production one.)
    """
    test = spec.test_traffic
    if test is None or test.record_name is not None or not isinstance(spec.router, AlbRouterSpec):
        return []
    what = f"test listener rule {test.rule_arn}" if test.rule_arn else f"test listener {test.listener_arn}"
    try:
        if test.rule_arn:
            if not elbv2.describe_rules(RuleArns=[test.rule_arn]).get("Rules"):
                return [f"{what} (test_traffic) does not exist"]
            listener_arn = listener_of_rule(test.rule_arn)
        else:
            assert test.listener_arn is not None
            listener_arn = test.listener_arn
        balancer = _load_balancer_of(elbv2, listener_arn)
        router = spec.router
        production = router.listener_arn or listener_of_rule(str(router.rule_arn))
        production_balancer = _load_balancer_of(elbv2, production)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in {
            "ListenerNotFound",
            "RuleNotFound",
            "ValidationError",
        }:
            raise
        return [f"{what} (test_traffic) does not exist"]
    if balancer is None:
        return [f"{what} (test_traffic) does not exist"]
    if production_balancer is not None and balancer != production_balancer:
        return [
            f"{what} (test_traffic) is on load balancer {balancer}, not on {production_balancer} where the "
            "pair's target groups are (a target group serves one load balancer)"
        ]
    return []


def _caller_account(sts: STSClient | None) -> str | None:
    """The caller's account, or None when STS cannot say (the check is then skipped, not failed)."""
    try:
        client = sts if sts is not None else aws.client("sts")
        return str(client.get_caller_identity()["Account"])
    except (ClientError, BotoCoreError, KeyError):
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
    sts: STSClient | None = None,
    lambda_client: LambdaClient | None = None,
    hook_prefix: str | None = None,
) -> Preflight:
    """Check every resource the spec names and find the live service; raise listing every problem.

    Read-only, so ``ecs-canary register --dry-run`` can run it alone.
    """
    ecs = ecs if ecs is not None else aws.client("ecs")
    elbv2 = elbv2 if elbv2 is not None else aws.client("elbv2")
    route53 = route53 if route53 is not None else aws.client("route53")
    cloudwatch = cloudwatch if cloudwatch is not None else aws.client("cloudwatch")
    problems: list[str] = []

    cluster_arn, cluster_problem = _cluster(ecs, spec.cluster)
    services_ok = cluster_problem is None
    if cluster_problem is not None:
        problems.append(cluster_problem)
    else:
        if cluster_arn is not None:
            account = _caller_account(sts)
            scope_problem = _caller_scope_problem(cluster_arn, ecs.meta.region_name, account)
            if scope_problem is not None:
                problems.append(scope_problem)
        for name in spec.service_names:
            try:
                green.describe_service(ecs, spec.cluster, name)
            except RouterConfigError as exc:
                problems.append(str(exc))
                services_ok = False

    target_groups_ok = True
    for svc in spec.services:
        tg_problem = _target_group_problem(elbv2, svc.name, svc.target_group_arn)
        if tg_problem is not None:
            problems.append(tg_problem)
            target_groups_ok = False
    if services_ok:
        problems.extend(_attachment_problems(ecs, spec))

    router = spec_router(spec, route53=route53, elbv2=elbv2)
    weights: dict[str, int] | None = None
    try:
        weights = router.read_weights()
    except RouterConfigError as exc:
        problems.append(str(exc))
    if weights is not None:
        problems.extend(_forward_problems(elbv2, spec))
        if target_groups_ok:
            problems.extend(_record_target_problems(elbv2, route53, spec))

    if spec.hooks.all():
        # Only a spec with hooks needs Lambda (and the permission to read its functions).
        lambda_client = lambda_client if lambda_client is not None else aws.client("lambda")
        problems.extend(_hook_problems(lambda_client, spec, hook_prefix))
    problems.extend(_test_traffic_problems(elbv2, spec))

    alarms = list(dict.fromkeys([*spec.health.alarms, *(a for s in spec.services for a in s.alarms)]))
    if alarms:
        states = metrics.alarm_states(cloudwatch, alarms)
        for name in alarms:
            if name in states:
                continue
            owners = [s.name for s in spec.services if name in s.alarms]
            whose = f" (services[].alarms of {', '.join(owners)})" if owners else ""
            problems.append(f"CloudWatch alarm {name} does not exist{whose}")

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
        cluster_arn=cluster_arn,
    )


def register(
    store: Store,
    spec: ServicePairSpec,
    *,
    ecs: ECSClient | None = None,
    elbv2: ElasticLoadBalancingv2Client | None = None,
    route53: Route53Client | None = None,
    cloudwatch: CloudWatchClient | None = None,
    sts: STSClient | None = None,
    lambda_client: LambdaClient | None = None,
    hook_prefix: str | None = None,
) -> Pair:
    """Check the spec's resources, then store the pair with its live service and idle baseline.

    The idle service's current PRIMARY ECS deployment is recorded as its baseline: the tasks
    it already runs are not a new release, so their task events must not start a deployment.
    """
    found = preflight(
        spec,
        ecs=ecs,
        elbv2=elbv2,
        route53=route53,
        cloudwatch=cloudwatch,
        sts=sts,
        lambda_client=lambda_client,
        hook_prefix=hook_prefix,
    )
    try:
        return store.put_pair(
            spec,
            live_service=found.live_service,
            idle_baseline=found.idle_baseline,
            cluster_arn=found.cluster_arn,
        )
    except ValueError as exc:
        raise RegistrationConflict(spec.name, [str(exc)]) from exc
