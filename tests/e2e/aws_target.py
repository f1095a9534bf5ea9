"""The e2e target in a real AWS account: a deployed ecs-canary stack and test infrastructure made per run.

Only public APIs and default credentials (``boto3``'s chain: ``AWS_PROFILE``, environment, SSO, ...).
A session creates one internal or internet-facing ALB with an HTTP:80 listener in the given subnets;
each test adds its own pair: two target groups, listener rules matched on a host name of its own,
two Fargate services running the image of ``examples/e2e-app``, one 5xx alarm per service and (for
Route53 pairs) two weighted alias records. Everything a test made is deleted when it ends (its
deployment aborted first, its pair deregistered); the load balancer when the session ends. The ECS
cluster is created if missing and kept (an empty cluster costs nothing).

Real traffic comes from :class:`LoadGenerator`, a thread sending requests to the load balancer with
each ALB pair's host name; releases behave as their environment says (``ERROR_RATE``,
``LATENCY_MS``), which the e2e app honours.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from ecs_canary.aws import CLIENT_CONFIG
from ecs_canary.errors import UnknownServicePair
from ecs_canary.registration import register
from ecs_canary.spec import parse_spec
from ecs_canary.store import Pair, Store
from ecs_canary_cli.context import ENV_COMMAND_FUNCTION, ENV_STATE_MACHINE_ARN, ENV_TABLE, resolve
from ecs_canary_cli.demo.infra import (
    GOOD,
    Behaviour,
    ClientFactory,
    PairInfra,
    ServiceInfra,
    release,
    spec_for,
)
from ecs_canary_cli.demo.runner import cached_clients

from .targets import AWS_TIMINGS, ROUTE53_SKIP_REASON, AwsSettings, Target, Timings

LOAD_BALANCER = "ecs-canary-e2e"
"""The session's load balancer; deploy the stack with ``LoadBalancerNames`` ``*`` or this name."""
CONTAINER = "app"
CONTAINER_PORT = 8080
DESIRED_COUNT = 2
HOST_SUFFIX = "ecs-canary-e2e.test"
"""Listener rules match host names under it: ``<pair>.`` holds an ALB pair's weights (the load generator
sends that ``Host`` header), ``<service>.`` puts a Route53 pair's service behind the load balancer."""
REQUESTS_PER_SECOND = 5.0
"""Per ALB pair: at 50 % that is 150 requests a minute to green, far above ``min_requests`` (20)."""


class LoadGenerator:
    """Sends steady HTTP traffic to the load balancer for each registered ALB pair's host name."""

    def __init__(self, dns_name: str, rate: float = REQUESTS_PER_SECOND) -> None:
        self.dns_name = dns_name
        self.rate = rate
        self.hosts: set[str] = set()
        self.sent = 0
        self.failed = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="e2e-load", daemon=True)

    def start(self) -> LoadGenerator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def add(self, host: str) -> None:
        with self._lock:
            self.hosts.add(host)

    def remove(self, host: str) -> None:
        with self._lock:
            self.hosts.discard(host)

    def _request(self, host: str) -> None:
        connection = http.client.HTTPConnection(self.dns_name, 80, timeout=5)
        try:
            connection.request("GET", "/", headers={"Host": host})
            connection.getresponse().read()
            self.sent += 1
        except OSError:
            self.failed += 1
        finally:
            connection.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            with self._lock:
                hosts = sorted(self.hosts)
            for host in hosts:
                self._request(host)
            self._stop.wait(max(0.0, 1.0 / self.rate - (time.monotonic() - started)))


class AwsAccount:
    """The session's shared infrastructure in the account: cluster, load balancer, listener, load."""

    def __init__(self, settings: AwsSettings) -> None:
        self.settings = settings
        session = boto3.Session(region_name=settings.region)
        self.clients: ClientFactory = cached_clients(
            lambda name: session.client(
                name,  # type: ignore[call-overload]
                region_name=settings.region,
                config=CLIENT_CONFIG,
            )
        )
        self.run_id = uuid.uuid4().hex[:6]
        self.table = ""
        self.state_machine_arn = ""
        self.hook_prefix: str | None = None
        self.cluster_arn = ""
        self.load_balancer: dict[str, Any] = {}
        self.listener_arn = ""
        self.load: LoadGenerator | None = None
        self._priorities: Iterator[int] = iter(())

    def __enter__(self) -> AwsAccount:
        stack = resolve(stack=self.settings.stack, region=self.settings.region)
        if stack.state_machine_arn is None:
            raise RuntimeError(f"stack {self.settings.stack} has no StateMachineArn output")
        self.table, self.state_machine_arn, self.hook_prefix = (
            stack.table_name,
            stack.state_machine_arn,
            stack.hook_prefix,
        )
        ecs, elbv2 = self.clients("ecs"), self.clients("elbv2")
        found = ecs.describe_clusters(clusters=[self.settings.cluster])["clusters"]
        active = [c["clusterArn"] for c in found if c.get("status") == "ACTIVE"]
        self.cluster_arn = (
            active[0]
            if active
            else ecs.create_cluster(clusterName=self.settings.cluster)["cluster"]["clusterArn"]
        )
        self.load_balancer = elbv2.create_load_balancer(
            Name=LOAD_BALANCER,
            Subnets=list(self.settings.subnet_ids),
            SecurityGroups=[self.settings.security_group_id],
            Scheme=self.settings.alb_scheme,
            Type="application",
            IpAddressType="ipv4",
        )["LoadBalancers"][0]
        try:
            lb_arn = self.load_balancer["LoadBalancerArn"]
            elbv2.get_waiter("load_balancer_available").wait(LoadBalancerArns=[lb_arn])
            listeners = elbv2.describe_listeners(LoadBalancerArn=lb_arn)["Listeners"]
            existing = [item for item in listeners if item["Port"] == 80]
            if existing:  # left by an earlier run that could not clean up
                self.listener_arn = existing[0]["ListenerArn"]
            else:
                self.listener_arn = elbv2.create_listener(
                    LoadBalancerArn=lb_arn,
                    Protocol="HTTP",
                    Port=80,
                    DefaultActions=[
                        {
                            "Type": "fixed-response",
                            "FixedResponseConfig": {"StatusCode": "404", "ContentType": "text/plain"},
                        }
                    ],
                )["Listeners"][0]["ListenerArn"]
            used = {
                int(rule["Priority"])
                for rule in self._rules()
                if str(rule.get("Priority", "default")).isdigit()
            }
            self._priorities = itertools.count(max(used, default=0) + 1)
            self.load = LoadGenerator(self.load_balancer["DNSName"]).start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_: object) -> None:
        if self.load is not None:
            self.load.stop()
        elbv2 = self.clients("elbv2")
        lb_arn = self.load_balancer.get("LoadBalancerArn")
        if lb_arn:
            # Deleting the load balancer deletes its listeners and their rules.
            elbv2.delete_load_balancer(LoadBalancerArn=lb_arn)
            elbv2.get_waiter("load_balancers_deleted").wait(LoadBalancerArns=[lb_arn])

    def _rules(self) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"ListenerArn": self.listener_arn}
        while True:
            page = self.clients("elbv2").describe_rules(**kwargs)
            rules.extend(page["Rules"])
            if not page.get("NextMarker"):
                return rules
            kwargs["Marker"] = page["NextMarker"]

    def next_priority(self) -> int:
        return next(self._priorities)

    @contextlib.contextmanager
    def scenario(self) -> Iterator[AwsWorld]:
        """A world for one test, whose pairs are deleted when it ends."""
        world = AwsWorld(
            account=self,
            clients=self.clients,
            store=Store(self.table, self.clients("dynamodb")),
            state_machine_arn=self.state_machine_arn,
        )
        try:
            yield world
        finally:
            world.teardown()


@dataclass
class _Made:
    """What one pair's creation made so far: a half-built pair is torn down as far as it got."""

    name: str
    host: str | None = None
    target_groups: list[str] = field(default_factory=list)
    rule_arns: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    alarms: list[str] = field(default_factory=list)
    hosted_zone_id: str | None = None
    record_name: str | None = None


@dataclass
class AwsWorld(Target):
    """A user and an operator of a deployed ecs-canary stack, for one test."""

    account: AwsAccount
    clients: ClientFactory
    store: Store
    state_machine_arn: str
    timings: Timings = AWS_TIMINGS
    made: list[_Made] = field(default_factory=list)

    # ---- what a user does -----------------------------------------------------------------------

    def _start(self, name: str) -> _Made:
        """Unique per run, so an earlier run's leftovers never collide (target groups: 32 characters)."""
        made = _Made(name=f"e2e{self.account.run_id}-{name}")
        self.made.append(made)
        return made

    def alb_pair(self, name: str) -> PairInfra:
        made = self._start(name)
        made.host = f"{made.name}.{HOST_SUFFIX}"
        first_td = self._revision(made.name, "v1", GOOD)
        names = (f"{made.name}-a", f"{made.name}-b")
        tgs = [self._target_group(made, f"{svc}-tg") for svc in names]
        rule_arn = self._rule(made, made.host, [(tgs[0], 100), (tgs[1], 0)])
        services = self._services(made, names, tgs, first_td)
        return PairInfra(
            name=made.name,
            router="alb",
            cluster=self.account.settings.cluster,
            family=made.name,
            services=services,
            live=names[0],
            idle=names[1],
            first_task_definition=first_td,
            listener_arn=self.account.listener_arn,
            rule_arn=rule_arn,
        )

    def route53_pair(self, name: str) -> PairInfra:
        zone_id = self.account.settings.hosted_zone_id
        if zone_id is None:
            pytest.skip(ROUTE53_SKIP_REASON)
        made = self._start(name)
        zone = str(self.clients("route53").get_hosted_zone(Id=zone_id)["HostedZone"]["Name"])
        first_td = self._revision(made.name, "v1", GOOD)
        names = (f"{made.name}-a", f"{made.name}-b")
        tgs = [self._target_group(made, f"{svc}-tg") for svc in names]
        # ECS registers a service's tasks only in a target group a load balancer uses: one rule each.
        for svc, tg in zip(names, tgs, strict=True):
            self._rule(made, f"{svc}.{HOST_SUFFIX}", [(tg, 1)])
        services = self._services(made, names, tgs, first_td)
        lb = self.account.load_balancer
        made.hosted_zone_id, made.record_name = zone_id, f"{made.name}.{zone}"
        self.clients("route53").change_resource_record_sets(
            HostedZoneId=zone_id,
            ChangeBatch={
                "Comment": f"ecs-canary e2e pair {made.name}",
                "Changes": [
                    {
                        "Action": "CREATE",
                        "ResourceRecordSet": {
                            "Name": made.record_name,
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
                    for svc, weight in zip(names, (100, 0), strict=True)
                ],
            },
        )
        return PairInfra(
            name=made.name,
            router="route53",
            cluster=self.account.settings.cluster,
            family=made.name,
            services=services,
            live=names[0],
            idle=names[1],
            first_task_definition=first_td,
            hosted_zone_id=zone_id,
            record_name=made.record_name,
        )

    def register(self, pair: PairInfra, *, extra: Mapping[str, Any] | None = None, **spec: Any) -> Pair:
        """Register as the emulator's world does, with real bakes and the AWS metric timing."""
        document = spec_for(
            pair, **{"plan": self.timings.default_plan, "metric_timing": self.timings.metric_timing, **spec}
        )
        for key, value in (extra or {}).items():
            if key == "health":
                document["health"].update(value)
            else:
                document[key] = value
        self._alarms_settled(pair)
        registered = register(
            self.store,
            parse_spec(document),
            ecs=self.clients("ecs"),
            elbv2=self.clients("elbv2"),
            route53=self.clients("route53"),
            cloudwatch=self.clients("cloudwatch"),
            sts=self.clients("sts"),
            lambda_client=self.clients("lambda"),
            hook_prefix=self.account.hook_prefix,
        )
        host = self._made(pair).host
        if host is not None and self.account.load is not None:
            self.account.load.add(host)
        return registered

    def release(
        self, pair: PairInfra, version: str, behaviour: Behaviour = GOOD, service: str | None = None
    ) -> str:
        target = service or self.store.get_pair(pair.name).idle_service
        task_definition = self._revision(pair.family, version, behaviour)
        release(self.clients, pair.cluster, target, task_definition)
        return task_definition

    def cli_environment(self) -> dict[str, str]:
        """The caller's shell (its credentials) pointed at the stack under test, and only by its name."""
        overrides = (ENV_TABLE, ENV_STATE_MACHINE_ARN, ENV_COMMAND_FUNCTION)
        return {
            **{k: v for k, v in os.environ.items() if k not in overrides},
            "AWS_REGION": self.account.settings.region,
            "ECS_CANARY_STACK": self.account.settings.stack,
        }

    # ---- building blocks ------------------------------------------------------------------------

    def _made(self, pair: PairInfra) -> _Made:
        return next(m for m in self.made if m.name == pair.name)

    def _revision(self, family: str, version: str, behaviour: Behaviour) -> str:
        settings = self.account.settings
        response = self.clients("ecs").register_task_definition(
            family=family,
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            executionRoleArn=settings.execution_role_arn,
            containerDefinitions=[
                {
                    "name": CONTAINER,
                    "image": settings.image,
                    "essential": True,
                    "portMappings": [{"containerPort": CONTAINER_PORT, "protocol": "tcp"}],
                    "environment": behaviour.environment(version),
                }
            ],
        )
        return str(response["taskDefinition"]["taskDefinitionArn"])

    def _target_group(self, made: _Made, name: str) -> str:
        elbv2 = self.clients("elbv2")
        arn = str(
            elbv2.create_target_group(
                Name=name,
                Protocol="HTTP",
                Port=CONTAINER_PORT,
                VpcId=self.account.settings.vpc_id,
                TargetType="ip",
                HealthCheckProtocol="HTTP",
                HealthCheckPath="/healthz",
                HealthCheckIntervalSeconds=10,
                HealthyThresholdCount=2,
            )["TargetGroups"][0]["TargetGroupArn"]
        )
        made.target_groups.append(arn)
        # Short draining keeps releases and teardown quick (the default is 300 s).
        elbv2.modify_target_group_attributes(
            TargetGroupArn=arn, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "10"}]
        )
        return arn

    def _rule(self, made: _Made, host: str, weights: list[tuple[str, int]]) -> str:
        rule = self.clients("elbv2").create_rule(
            ListenerArn=self.account.listener_arn,
            Priority=self.account.next_priority(),
            Conditions=[{"Field": "host-header", "HostHeaderConfig": {"Values": [host]}}],
            Actions=[
                {
                    "Type": "forward",
                    "ForwardConfig": {
                        "TargetGroups": [{"TargetGroupArn": tg, "Weight": w} for tg, w in weights],
                        "TargetGroupStickinessConfig": {"Enabled": False},
                    },
                }
            ],
        )["Rules"][0]
        made.rule_arns.append(str(rule["RuleArn"]))
        return str(rule["RuleArn"])

    def _services(
        self, made: _Made, names: tuple[str, str], tgs: list[str], first_td: str
    ) -> tuple[ServiceInfra, ServiceInfra]:
        """Both services on the first revision, each in its target group with its alarm; once stable."""
        settings = self.account.settings
        ecs = self.clients("ecs")
        lb_arn = str(self.account.load_balancer["LoadBalancerArn"])
        built: list[ServiceInfra] = []
        for svc, tg in zip(names, tgs, strict=True):
            arn = ecs.create_service(
                cluster=settings.cluster,
                serviceName=svc,
                taskDefinition=first_td,
                desiredCount=DESIRED_COUNT,
                launchType="FARGATE",
                networkConfiguration={
                    "awsvpcConfiguration": {
                        "subnets": list(settings.subnet_ids),
                        "securityGroups": [settings.security_group_id],
                        "assignPublicIp": settings.assign_public_ip,
                    }
                },
                loadBalancers=[
                    {"targetGroupArn": tg, "containerName": CONTAINER, "containerPort": CONTAINER_PORT}
                ],
                deploymentConfiguration={"maximumPercent": 200, "minimumHealthyPercent": 100},
            )["service"]["serviceArn"]
            made.services.append(svc)
            alarm = self._alarm(svc, tg, lb_arn)
            made.alarms.append(alarm)
            built.append(ServiceInfra(svc, str(arn), tg, lb_arn, (alarm,)))
        ecs.get_waiter("services_stable").wait(
            cluster=settings.cluster, services=list(names), WaiterConfig={"Delay": 15, "MaxAttempts": 60}
        )
        return (built[0], built[1])

    def _alarm(self, service: str, tg_arn: str, lb_arn: str) -> str:
        """``<service>-5xx`` as the demo's: more than 5 target 5xx answers in one minute."""
        name = f"{service}-5xx"
        self.clients("cloudwatch").put_metric_alarm(
            AlarmName=name,
            AlarmDescription=f"ecs-canary e2e: {service} answers with 5xx errors",
            Namespace="AWS/ApplicationELB",
            MetricName="HTTPCode_Target_5XX_Count",
            Dimensions=[
                {"Name": "TargetGroup", "Value": tg_arn.split(":", 5)[5]},
                {"Name": "LoadBalancer", "Value": lb_arn.split(":", 5)[5].removeprefix("loadbalancer/")},
            ],
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            DatapointsToAlarm=1,
            Threshold=5,
            ComparisonOperator="GreaterThanThreshold",
            TreatMissingData="notBreaching",
        )
        return name

    def _alarms_settled(self, pair: PairInfra, timeout: float = 600.0) -> None:
        """A new alarm has INSUFFICIENT_DATA until first evaluated, which the gate calls inconclusive."""
        names = list(pair.alarm_names)
        deadline = time.monotonic() + timeout
        while True:
            alarms = self.clients("cloudwatch").describe_alarms(AlarmNames=names)["MetricAlarms"]
            if alarms and all(a["StateValue"] != "INSUFFICIENT_DATA" for a in alarms):
                return
            if time.monotonic() >= deadline:
                raise AssertionError(f"alarms {names} still have INSUFFICIENT_DATA after {timeout:.0f} s")
            time.sleep(10)

    # ---- teardown -------------------------------------------------------------------------------

    def teardown(self) -> None:
        """Delete everything this test made, newest pair first; fail the test naming what is left."""
        left: list[str] = []
        for made in reversed(self.made):
            for step in _teardown_steps(self, made):
                try:
                    step()
                except Exception as exc:
                    left.append(f"{made.name}: {step.__name__}: {exc}")
        self.made.clear()
        if left:
            raise AssertionError("teardown left resources behind:\n" + "\n".join(left))


def _teardown_steps(world: AwsWorld, made: _Made) -> list[Callable[[], None]]:
    """Abort, deregister, stop traffic, then delete services, rules, records, alarms, groups, revisions."""
    clients, settings = world.clients, world.account.settings

    def abort_deployment() -> None:
        if world.store.active_deployment_id(made.name) is not None:
            result = world.cli("abort", made.name, "--reason", "e2e teardown")
            # A deployment that ended on its own meanwhile leaves nothing to abort.
            if result.returncode != 0 and world.store.active_deployment_id(made.name) is not None:
                raise RuntimeError(result.stderr.strip() or result.stdout.strip())

    def deregister_pair() -> None:
        with contextlib.suppress(UnknownServicePair):
            world.store.delete_pair(made.name)

    def stop_traffic() -> None:
        if made.host is not None and world.account.load is not None:
            world.account.load.remove(made.host)

    def delete_services() -> None:
        if not made.services:
            return
        ecs = clients("ecs")
        for svc in made.services:
            ecs.delete_service(cluster=settings.cluster, service=svc, force=True)
        ecs.get_waiter("services_inactive").wait(
            cluster=settings.cluster,
            services=made.services,
            WaiterConfig={"Delay": 15, "MaxAttempts": 40},
        )

    def delete_rules() -> None:
        for arn in made.rule_arns:
            clients("elbv2").delete_rule(RuleArn=arn)

    def delete_records() -> None:
        if made.hosted_zone_id is None or made.record_name is None:
            return
        route53 = clients("route53")
        page = route53.list_resource_record_sets(
            HostedZoneId=made.hosted_zone_id, StartRecordName=made.record_name, StartRecordType="A"
        )
        ours = set(made.services)
        wanted = made.record_name.lower().rstrip(".")
        # A DELETE must name the record exactly as it is now (its weight has moved since).
        changes = [
            {"Action": "DELETE", "ResourceRecordSet": record}
            for record in page["ResourceRecordSets"]
            if record["Name"].lower().rstrip(".") == wanted
            and record["Type"] == "A"
            and record.get("SetIdentifier") in ours
        ]
        if changes:
            route53.change_resource_record_sets(
                HostedZoneId=made.hosted_zone_id, ChangeBatch={"Changes": changes}
            )

    def delete_alarms() -> None:
        if made.alarms:
            clients("cloudwatch").delete_alarms(AlarmNames=made.alarms)

    def delete_target_groups() -> None:
        for arn in made.target_groups:
            for attempt in range(12):  # a just-deleted rule may still hold the group for a moment
                try:
                    clients("elbv2").delete_target_group(TargetGroupArn=arn)
                    break
                except ClientError as exc:
                    if exc.response["Error"]["Code"] != "ResourceInUse" or attempt == 11:
                        raise
                    time.sleep(5)

    def deregister_revisions() -> None:
        ecs = clients("ecs")
        pages = ecs.get_paginator("list_task_definitions").paginate(familyPrefix=made.name, status="ACTIVE")
        for page in pages:
            for arn in page["taskDefinitionArns"]:
                # familyPrefix matches prefixes: deregister only this family's revisions.
                if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] == made.name:
                    ecs.deregister_task_definition(taskDefinition=arn)

    return [
        abort_deployment,
        deregister_pair,
        stop_traffic,
        delete_services,
        delete_rules,
        delete_records,
        delete_alarms,
        delete_target_groups,
        deregister_revisions,
    ]
