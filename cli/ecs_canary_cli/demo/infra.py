"""The demo's AWS environment, built with ordinary AWS API calls.

Everything here is what a user's own infrastructure-as-code would already have created before
they adopt ecs-canary: a VPC, an ECS cluster with two services per pair, load balancers, a
Route53 zone, CloudWatch alarms. Nothing is product-internal, so the demo exercises the product
exactly as a real account would: the only thing ecs-canary is told is the pair spec written here.

Two kinds of pair are built:

* ALB pair ``web``: one ALB whose HTTP:80 listener forwards to ``web-a-tg`` (weight 100) and
  ``web-b-tg`` (weight 0); ECS services ``web-a`` (live) and ``web-b`` (idle), each registered
  in its own target group.
* Route53 pair ``api``: ECS services ``api-a`` and ``api-b``, each behind its own ALB and target
  group, and two weighted alias A records ``api.demo.internal.`` (SetIdentifier = service name)
  pointing at the two ALBs with weights 100 and 0.

* ALB pair ``shop`` (the gates pair, built with the ALB router): like ``web``, plus a *test
  listener* (HTTP:8080) on the same load balancer forwarding to the live service, and a spec with
  gates: ``test_traffic`` on that listener, an ``after_test_traffic`` hook (the smoke check of
  :mod:`ecs_canary_cli.demo.hooks.smoke`, deployed as an ordinary Lambda function named with the
  stack's ``HookFunctionPrefix``) and the approval ``approvals.before_production_traffic``.

A release is a new task definition revision: its container environment (``ERROR_RATE``,
``LATENCY_MS``, ``CAPACITY_RPS``) is what the traffic simulator reads to decide how the service
behaves. The demo's faulty release is a capacity regression: a revision that serves at most
``CAPACITY_RPS=30`` requests per second. It looks perfect while canary steps give it little
traffic and starts failing (5xx for the excess, slow answers) once its share of the clients'
load exceeds that, which is what a canary rollout exists to catch part-way.
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

__all__ = [
    "BROKEN",
    "CLUSTER",
    "DEFAULT_PLAN",
    "DEMO_MAX_P99_LATENCY_MS",
    "FAULTY",
    "GATES_PLAN",
    "GOOD",
    "HOSTED_ZONE",
    "REGION",
    "SMOKE_HOOK_DETAILS",
    "TEST_PORT",
    "Behaviour",
    "ClientFactory",
    "DemoInfra",
    "Network",
    "PairInfra",
    "RouterKind",
    "ServiceInfra",
    "build_demo",
    "create_alb_pair",
    "create_network",
    "create_route53_pair",
    "create_test_listener",
    "deploy_smoke_hook",
    "gates_for",
    "register_revision",
    "release",
    "spec_for",
    "write_spec",
]

REGION = "us-east-1"
CLUSTER = "demo"
HOSTED_ZONE = "demo.internal."
DEFAULT_PLAN = "Linear25PercentEvery2Minutes"
"""Four steps of 25 %, two-minute bakes.

Two minutes rather than one because the emulator compresses time but the health gate's metric
window is measured on the real clock: at ``time_scale=0.01`` a 60 s bake lasts 0.6 s, shorter than
the one-second resolution of moto's ``GetMetricData`` window (StartTime and EndTime are truncated
to whole seconds, and equal ones are refused). A 120 s bake keeps every window above a second.
"""
GATES_PLAN: Mapping[str, Any] = {"type": "steps", "steps": [50, 100], "bake_seconds": 120}
"""The gates pair's plan: two steps are enough to show a release promoted after its approval."""
CONTAINER = "app"
CONTAINER_PORT = 8080
DESIRED_COUNT = 2
TEST_PORT = 8080
"""The gates pair's test listener port (HTTP), on the same load balancer as production (HTTP:80)."""
SMOKE_HOOK = "smoke-test"
"""The smoke hook's function name, after the stack's ``HookFunctionPrefix``."""
SMOKE_HOOK_SOURCE = Path(__file__).resolve().parent / "hooks" / "smoke.py"
SMOKE_HOOK_DETAILS: Mapping[str, Any] = {
    "window_seconds": 60,
    "min_requests": 5,
    "max_error_percent": 5,
    "callback_seconds": 20,
}
"""The smoke hook's ``hookDetails`` (plus ``cluster``), chosen for the emulator's compressed clock.

The hook runs on the real clock and reads CloudWatch datapoints stamped with real time, while
``callback_seconds`` is waited in Step Functions, scaled by ``--time-scale``. The traffic simulator's
synthetic test client sends one request every 20 emulated seconds (0.2 s of wall clock at
``time_scale=0.01``), so 5 requests arrive in about a second of wall clock: a 60 s window (clipped
by the hook to the release's start) always holds them. In an AWS account the same hook would use a
window of some minutes and ``min_requests`` sized to the real test client.
"""

RouterKind = Literal["alb", "route53"]
ClientFactory = Callable[[str], Any]
"""Returns a boto3 client for a service name, pointed at the emulator (``Emulator.client``)."""


@dataclass(frozen=True)
class Behaviour:
    """How a release behaves under traffic; stored as its task definition's container environment.

    ``capacity_rps`` is the most requests per second the service can serve (None: unconstrained);
    the traffic simulator fails what is sent beyond it with 5xx and slows answers near it.
    """

    error_rate: float
    latency_ms: float
    capacity_rps: float | None = None

    def environment(self, version: str) -> list[dict[str, str]]:
        env = [
            {"name": "VERSION", "value": version},
            {"name": "ERROR_RATE", "value": f"{self.error_rate:g}"},
            {"name": "LATENCY_MS", "value": f"{self.latency_ms:g}"},
        ]
        if self.capacity_rps is not None:
            env.append({"name": "CAPACITY_RPS", "value": f"{self.capacity_rps:g}"})
        return env

    def describe(self) -> str:
        """``ERROR_RATE=0, CAPACITY_RPS=30``: what sets this build apart, as its environment says it."""
        parts = [f"ERROR_RATE={self.error_rate:g}"]
        if self.capacity_rps is not None:
            parts.append(f"CAPACITY_RPS={self.capacity_rps:g}")
        return ", ".join(parts)


GOOD = Behaviour(error_rate=0.0, latency_ms=60.0)
"""A healthy release: no 5xx, no capacity limit, p99 about 100 ms (median 60 ms)."""
BROKEN = Behaviour(error_rate=1.0, latency_ms=60.0)
"""A release that answers every request with a 5xx (say, a missing configuration value): it fails
the first test request it gets, before any production traffic could reach it."""
FAULTY = Behaviour(error_rate=0.0, latency_ms=60.0, capacity_rps=30.0)
"""A capacity regression: no bug shows at low load, but it serves at most 30 requests per second.

Under the demo's 50 req/s it is fine at 25 % (12.5 req/s) and 50 % (25 req/s) of the traffic and
overloaded at 75 % (37.5 req/s: the 7.5 req/s beyond capacity, 20 %, fail with 5xx).
"""
EMULATED_METRIC_TIMING = {"period_seconds": 1, "settle_seconds": 0, "lag_seconds": 0}
"""The health gate's metric timing for the emulator (health.metrics period_seconds, settle_seconds,
lag_seconds). The emulator runs Step Functions' waits on a faster clock, but the functions and
CloudWatch see real time: a 120 s bake lasts 1.2 s at ``time_scale=0.01``, far shorter than the
AWS defaults (60 s periods, 30 s settle, 120 s lag). CloudWatch here has every datapoint at once,
so whole real seconds after the shift are judged, with no settle time and no lag."""
EMULATED_MAX_INCONCLUSIVE = 10
"""Rechecks a metric-gated demo spec allows: a 1.2 s bake does not always hold a whole real second
(the shift may fall just after one), and rechecks 0.1 s apart wait for it."""
DEMO_MAX_P99_LATENCY_MS = 500.0
"""The demo spec's p99 ceiling: well above a healthy build's p99 (about 100 ms) and what the faulty
build answers at 50 % load (about 230 ms), far below what it answers overloaded (about 1.4 s)."""


@dataclass(frozen=True)
class Network:
    """The shared VPC pieces and the ECS cluster every demo service runs in."""

    vpc_id: str
    subnet_ids: tuple[str, str]
    security_group_id: str
    cluster: str
    cluster_arn: str
    hosted_zone_ids: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ServiceInfra:
    """One ECS service of a pair and what measures it (its target group, load balancer, alarms)."""

    name: str
    service_arn: str
    target_group_arn: str
    load_balancer_arn: str
    alarm_names: tuple[str, ...]


@dataclass(frozen=True)
class PairInfra:
    """A built service pair: both services, where their weights live, and who is live."""

    name: str
    router: RouterKind
    cluster: str
    family: str
    services: tuple[ServiceInfra, ServiceInfra]
    live: str
    idle: str
    first_task_definition: str
    listener_arn: str | None = None
    rule_arn: str | None = None
    """ALB pairs whose weights live in a listener rule instead of the listener's default action."""
    hosted_zone_id: str | None = None
    record_name: str | None = None
    test_listener_arn: str | None = None
    """ALB pairs with gates: the test listener (see :func:`create_test_listener`)."""

    def service(self, name: str) -> ServiceInfra:
        for svc in self.services:
            if svc.name == name:
                return svc
        raise KeyError(f"{name} is not a service of pair {self.name}")

    @property
    def service_names(self) -> tuple[str, str]:
        return (self.services[0].name, self.services[1].name)

    @property
    def alarm_names(self) -> tuple[str, ...]:
        return tuple(a for svc in self.services for a in svc.alarm_names)


@dataclass(frozen=True)
class DemoInfra:
    """Everything :func:`build_demo` created, with the spec file written for each pair."""

    network: Network
    pairs: dict[str, PairInfra]
    spec_paths: dict[str, Path]


# ---- network and cluster ---------------------------------------------------------------------------


def create_network(clients: ClientFactory, *, cluster: str = CLUSTER) -> Network:
    """A VPC with two subnets in two zones (an ALB needs two), a security group, an ECS cluster."""
    ec2 = clients("ec2")
    vpc_id = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    # A private hosted zone resolves only in a VPC with DNS support (on by default). DNS hostnames
    # are left at their default (off): the emulator's awsvpc tasks need no public DNS names.
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": True})
    subnets = tuple(
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.42.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")[
            "Subnet"
        ]["SubnetId"]
        for i, zone in ((1, "a"), (2, "b"))
    )
    sg_id = ec2.create_security_group(
        GroupName=f"{cluster}-services", Description="demo services and load balancers", VpcId=vpc_id
    )["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=sg_id,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "10.42.0.0/16"}]},
            {
                "IpProtocol": "tcp",
                "FromPort": CONTAINER_PORT,
                "ToPort": CONTAINER_PORT,
                "IpRanges": [{"CidrIp": "10.42.0.0/16"}],
            },
        ],
    )
    cluster_arn = clients("ecs").create_cluster(clusterName=cluster)["cluster"]["clusterArn"]
    return Network(vpc_id, (subnets[0], subnets[1]), sg_id, cluster, cluster_arn)


# ---- releases ---------------------------------------------------------------------------------------


def register_revision(clients: ClientFactory, family: str, version: str, behaviour: Behaviour) -> str:
    """Register the next revision of ``family`` (what a CI pipeline does for each build); its ARN."""
    response = clients("ecs").register_task_definition(
        family=family,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[
            {
                "name": CONTAINER,
                "image": f"public.ecr.aws/demo/{family}:{version}",
                "essential": True,
                "portMappings": [{"containerPort": CONTAINER_PORT, "protocol": "tcp"}],
                "environment": behaviour.environment(version),
            }
        ],
    )
    return str(response["taskDefinition"]["taskDefinitionArn"])


def release(clients: ClientFactory, cluster: str, service: str, task_definition: str) -> str:
    """Deploy ``task_definition`` to ``service`` as a user would; returns the new deployment id.

    This is the only thing a release does: ECS starts the new tasks, their RUNNING events reach
    ecs-canary through EventBridge, and ecs-canary takes it from there.
    """
    described = clients("ecs").update_service(
        cluster=cluster, service=service, taskDefinition=task_definition, forceNewDeployment=True
    )["service"]
    for deployment in described.get("deployments", []):
        if deployment.get("status") == "PRIMARY":
            return str(deployment["id"])
    return ""


# ---- load balancers, services, alarms ----------------------------------------------------------------


def _load_balancer(clients: ClientFactory, network: Network, name: str) -> dict[str, Any]:
    lb = clients("elbv2").create_load_balancer(
        Name=name,
        Subnets=list(network.subnet_ids),
        SecurityGroups=[network.security_group_id],
        Scheme="internal",
        Type="application",
        IpAddressType="ipv4",
    )["LoadBalancers"][0]
    return dict(lb)


def _target_group(clients: ClientFactory, network: Network, name: str) -> str:
    group = clients("elbv2").create_target_group(
        Name=name,
        Protocol="HTTP",
        Port=CONTAINER_PORT,
        VpcId=network.vpc_id,
        TargetType="ip",
        HealthCheckProtocol="HTTP",
        HealthCheckPath="/healthz",
        HealthCheckIntervalSeconds=10,
        HealthyThresholdCount=2,
    )["TargetGroups"][0]
    return str(group["TargetGroupArn"])


def _listener(clients: ClientFactory, lb_arn: str, weights: Sequence[tuple[str, int]]) -> str:
    """HTTP:80 listener whose default action forwards to the given target groups with weights."""
    listener = clients("elbv2").create_listener(
        LoadBalancerArn=lb_arn,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [{"TargetGroupArn": tg, "Weight": w} for tg, w in weights],
                    "TargetGroupStickinessConfig": {"Enabled": False},
                },
            }
        ],
    )["Listeners"][0]
    return str(listener["ListenerArn"])


def _dimension(arn: str, prefix: str) -> str:
    resource = arn.split(":", 5)[5]
    return resource.removeprefix(prefix)


def _alarms(clients: ClientFactory, service: str, tg_arn: str, lb_arn: str) -> tuple[str, ...]:
    """``<service>-5xx``: more than 5 target 5xx responses in one minute, watching only this TG."""
    name = f"{service}-5xx"
    clients("cloudwatch").put_metric_alarm(
        AlarmName=name,
        AlarmDescription=f"{service} answers with 5xx errors",
        Namespace="AWS/ApplicationELB",
        MetricName="HTTPCode_Target_5XX_Count",
        Dimensions=[
            {"Name": "TargetGroup", "Value": _dimension(tg_arn, "")},
            {"Name": "LoadBalancer", "Value": _dimension(lb_arn, "loadbalancer/")},
        ],
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        DatapointsToAlarm=1,
        Threshold=5,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching",
    )
    return (name,)


def _service(clients: ClientFactory, network: Network, name: str, task_definition: str, tg_arn: str) -> str:
    described = clients("ecs").create_service(
        cluster=network.cluster,
        serviceName=name,
        taskDefinition=task_definition,
        desiredCount=DESIRED_COUNT,
        launchType="FARGATE",
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": list(network.subnet_ids),
                "securityGroups": [network.security_group_id],
                "assignPublicIp": "DISABLED",
            }
        },
        loadBalancers=[
            {"targetGroupArn": tg_arn, "containerName": CONTAINER, "containerPort": CONTAINER_PORT}
        ],
        deploymentConfiguration={"maximumPercent": 200, "minimumHealthyPercent": 100},
    )["service"]
    return str(described["serviceArn"])


def create_alb_pair(clients: ClientFactory, network: Network, name: str = "web") -> PairInfra:
    """One ALB, one listener forwarding to two target groups at 100/0, two services on ``<name>:1``."""
    first_td = register_revision(clients, name, "v1", GOOD)
    lb = _load_balancer(clients, network, f"{network.cluster}-{name}")
    lb_arn = str(lb["LoadBalancerArn"])
    names = (f"{name}-a", f"{name}-b")
    tgs = tuple(_target_group(clients, network, f"{svc}-tg") for svc in names)
    listener_arn = _listener(clients, lb_arn, [(tgs[0], 100), (tgs[1], 0)])
    services = tuple(
        ServiceInfra(
            name=svc,
            service_arn=_service(clients, network, svc, first_td, tg),
            target_group_arn=tg,
            load_balancer_arn=lb_arn,
            alarm_names=_alarms(clients, svc, tg, lb_arn),
        )
        for svc, tg in zip(names, tgs, strict=True)
    )
    return PairInfra(
        name=name,
        router="alb",
        cluster=network.cluster,
        family=name,
        services=(services[0], services[1]),
        live=names[0],
        idle=names[1],
        first_task_definition=first_td,
        listener_arn=listener_arn,
    )


def create_test_listener(clients: ClientFactory, pair: PairInfra, port: int = TEST_PORT) -> PairInfra:
    """A test listener (HTTP:``port``) on the pair's load balancer, forwarding to the live service.

    Testers and synthetic checks reach the service under test through it; ecs-canary points it at
    green for the test-traffic stage and puts it back exactly afterwards.
    """
    live = pair.service(pair.live)
    listener = clients("elbv2").create_listener(
        LoadBalancerArn=live.load_balancer_arn,
        Protocol="HTTP",
        Port=port,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": live.target_group_arn}],
    )["Listeners"][0]
    return replace(pair, test_listener_arn=str(listener["ListenerArn"]))


LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}
"""The trust policy of a Lambda function's execution role."""


def deploy_function(
    clients: ClientFactory,
    name: str,
    files: Mapping[str, str | Path],
    handler: str,
    *,
    statements: Sequence[Mapping[str, Any]] = (),
    timeout: int = 30,
    description: str = "",
) -> str:
    """Deploy a Python function as a user would: its own execution role (``<name>-role``) allowed
    exactly ``statements`` (IAM is enforced, in an account as in the emulator), then the function.

    ``files`` maps each name in the code archive to its source: text, or the path of a file.
    Returns the function's name.
    """
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for arcname, source in files.items():
            if isinstance(source, Path):
                zipped.write(source, arcname)
            else:
                zipped.writestr(arcname, source)
    iam = clients("iam")
    role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST))
    if statements:
        iam.put_role_policy(
            RoleName=f"{name}-role",
            PolicyName="function",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [dict(s) for s in statements]}),
        )
    clients("lambda").create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=role["Role"]["Arn"],
        Handler=handler,
        Code={"ZipFile": archive.getvalue()},
        Description=description,
        Timeout=timeout,
    )
    return name


def deploy_smoke_hook(clients: ClientFactory, prefix: str) -> str:
    """Deploy :mod:`ecs_canary_cli.demo.hooks.smoke` as a Lambda function named ``<prefix>smoke-test``,
    whose role may read what the hook reads (ECS services, target groups, CloudWatch metrics)."""
    return deploy_function(
        clients,
        f"{prefix}{SMOKE_HOOK}",
        {"smoke.py": SMOKE_HOOK_SOURCE},
        "smoke.handler",
        statements=[
            {
                "Effect": "Allow",
                "Action": [
                    "ecs:DescribeServices",
                    "elasticloadbalancing:DescribeTargetGroups",
                    "cloudwatch:GetMetricData",
                ],
                "Resource": "*",
            }
        ],
        description="ecs-canary demo: judge green on the test traffic it served",
    )


def gates_for(pair: PairInfra, hook_function: str) -> dict[str, Any]:
    """The gates part of the gates pair's spec: test traffic, the smoke hook, an approval."""
    if pair.test_listener_arn is None:
        raise ValueError(f"pair {pair.name} has no test listener")
    return {
        "test_traffic": {"listener_arn": pair.test_listener_arn},
        "hooks": {
            "after_test_traffic": [
                {
                    "function": hook_function,
                    "details": {"cluster": pair.cluster, **SMOKE_HOOK_DETAILS},
                    "timeout_seconds": 600,
                }
            ]
        },
        "approvals": {"before_production_traffic": {"timeout_seconds": 3600, "on_timeout": "rollback"}},
    }


def _hosted_zone(clients: ClientFactory, network: Network, zone: str) -> str:
    if zone in network.hosted_zone_ids:
        return network.hosted_zone_ids[zone]
    created = clients("route53").create_hosted_zone(
        Name=zone,
        CallerReference=str(uuid.uuid4()),
        HostedZoneConfig={"Comment": "ecs-canary demo", "PrivateZone": True},
        VPC={"VPCRegion": REGION, "VPCId": network.vpc_id},
    )
    zone_id = str(created["HostedZone"]["Id"]).removeprefix("/hostedzone/")
    network.hosted_zone_ids[zone] = zone_id
    return zone_id


def create_route53_pair(
    clients: ClientFactory, network: Network, name: str = "api", zone: str = HOSTED_ZONE
) -> PairInfra:
    """Two services, each behind its own ALB, and two weighted alias records (100/0) to the ALBs."""
    first_td = register_revision(clients, name, "v1", GOOD)
    zone_id = _hosted_zone(clients, network, zone)
    record = f"{name}.{zone}"
    names = (f"{name}-a", f"{name}-b")
    built: list[ServiceInfra] = []
    changes: list[dict[str, Any]] = []
    for svc, weight in zip(names, (100, 0), strict=True):
        lb = _load_balancer(clients, network, f"{network.cluster}-{svc}")
        lb_arn = str(lb["LoadBalancerArn"])
        tg = _target_group(clients, network, f"{svc}-tg")
        _listener(clients, lb_arn, [(tg, 1)])
        built.append(
            ServiceInfra(
                name=svc,
                service_arn=_service(clients, network, svc, first_td, tg),
                target_group_arn=tg,
                load_balancer_arn=lb_arn,
                alarm_names=_alarms(clients, svc, tg, lb_arn),
            )
        )
        changes.append(
            {
                "Action": "CREATE",
                "ResourceRecordSet": {
                    "Name": record,
                    "Type": "A",
                    "SetIdentifier": svc,
                    "Weight": weight,
                    "AliasTarget": {
                        "HostedZoneId": lb["CanonicalHostedZoneId"],
                        "DNSName": lb["DNSName"],
                        "EvaluateTargetHealth": False,
                    },
                },
            }
        )
    clients("route53").change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Comment": f"{name} weighted records", "Changes": changes}
    )
    return PairInfra(
        name=name,
        router="route53",
        cluster=network.cluster,
        family=name,
        services=(built[0], built[1]),
        live=names[0],
        idle=names[1],
        first_task_definition=first_td,
        hosted_zone_id=zone_id,
        record_name=record,
    )


# ---- the pair spec ------------------------------------------------------------------------------------


def spec_for(
    pair: PairInfra,
    *,
    plan: str | Mapping[str, Any] = DEFAULT_PLAN,
    max_5xx_percent: float | None = 5,
    max_p99_latency_ms: float | None = None,
    min_requests: int = 20,
    alarms: Sequence[str] | None = None,
    recheck_seconds: int = 10,
    max_inconclusive: int | None = None,
    steady_poll_seconds: int = 5,
    metric_timing: Mapping[str, int] | None = EMULATED_METRIC_TIMING,
    gates: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The pair spec a user would write for this pair.

    The alarms of both services are listed: each alarm watches only its own target group, so the
    old (live) service's alarm cannot fire because of the new release's faults, while listing both
    keeps the one spec correct whichever service is idle after roles swap.
    ``max_5xx_percent=None`` and ``max_p99_latency_ms=None`` (the default) leave the metric
    thresholds out (alarms only). A p99 ceiling needs ``TargetResponseTime`` data: without it
    every health check is inconclusive. ``metric_timing`` sets the metric window for the emulator
    (:data:`EMULATED_METRIC_TIMING`; None keeps the AWS defaults). ``gates`` adds the gate
    sections (``test_traffic``, ``hooks``, ``approvals``: see :func:`gates_for`).
    """
    router: dict[str, Any]
    if pair.router == "alb" and pair.rule_arn is not None:
        router = {"type": "alb", "rule_arn": pair.rule_arn}
    elif pair.router == "alb":
        router = {"type": "alb", "listener_arn": pair.listener_arn}
    else:
        router = {
            "type": "route53",
            "hosted_zone_id": pair.hosted_zone_id,
            "record_name": pair.record_name,
            "record_type": "A",
        }
    health: dict[str, Any] = {"alarms": list(pair.alarm_names if alarms is None else alarms)}
    thresholds: dict[str, Any] = {}
    if max_5xx_percent is not None:
        thresholds["max_5xx_percent"] = max_5xx_percent
    if max_p99_latency_ms is not None:
        thresholds["max_p99_latency_ms"] = max_p99_latency_ms
    if thresholds:
        health["metrics"] = {**thresholds, "min_requests": min_requests, **(metric_timing or {})}
    if max_inconclusive is None:
        max_inconclusive = EMULATED_MAX_INCONCLUSIVE if thresholds and metric_timing else 3
    health.update(recheck_seconds=recheck_seconds, max_inconclusive=max_inconclusive)
    services: list[dict[str, Any]] = []
    for svc in pair.services:
        entry: dict[str, Any] = {"name": svc.name, "target_group_arn": svc.target_group_arn}
        if pair.router == "route53":
            entry["set_identifier"] = svc.name
        services.append(entry)
    return {
        "name": pair.name,
        "cluster": pair.cluster,
        "services": services,
        "router": router,
        "plan": plan if isinstance(plan, str) else dict(plan),
        "health": health,
        "steady": {"poll_seconds": steady_poll_seconds, "timeout_seconds": 300},
        "weight_total": 100,
        **dict(gates or {}),
    }


def write_spec(spec: Mapping[str, Any], path: Path) -> Path:
    """Write the spec as the YAML file a user would commit next to their IaC."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# ecs-canary pair spec for {spec['name']} (written by the demo)\n"
    path.write_text(header + yaml.safe_dump(json.loads(json.dumps(spec)), sort_keys=False), encoding="utf-8")
    return path


def build_demo(
    clients: ClientFactory,
    out_dir: Path,
    *,
    routers: Sequence[RouterKind] = ("alb", "route53"),
    plan: str | Mapping[str, Any] = DEFAULT_PLAN,
    max_p99_latency_ms: float | None = None,
    hook_prefix: str | None = None,
) -> DemoInfra:
    """The network, one pair per router kind, and each pair's spec file in ``out_dir``.

    ``max_p99_latency_ms`` adds a p99 ceiling to the specs (only where latency is published). With
    ``hook_prefix`` (the stack's HookFunctionPrefix) and the ALB router, the gates pair ``shop`` is
    built too (key ``gates``): its test listener, the smoke hook function and a spec with gates.
    """
    network = create_network(clients)
    pairs: dict[str, PairInfra] = {}
    paths: dict[str, Path] = {}
    for kind in routers:
        pair = create_alb_pair(clients, network) if kind == "alb" else create_route53_pair(clients, network)
        pairs[kind] = pair
        spec = spec_for(pair, plan=plan, max_p99_latency_ms=max_p99_latency_ms)
        paths[kind] = write_spec(spec, out_dir / f"{pair.name}-pair.yaml")
    if hook_prefix is not None and "alb" in routers:
        pair = create_test_listener(clients, create_alb_pair(clients, network, "shop"))
        hook = deploy_smoke_hook(clients, hook_prefix)
        spec = spec_for(
            pair, plan=GATES_PLAN, max_p99_latency_ms=max_p99_latency_ms, gates=gates_for(pair, hook)
        )
        pairs["gates"] = pair
        paths["gates"] = write_spec(spec, out_dir / f"{pair.name}-pair.yaml")
    return DemoInfra(network=network, pairs=pairs, spec_paths=paths)
