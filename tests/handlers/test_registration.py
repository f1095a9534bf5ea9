"""registration: every resource check against moto's ECS, ELBv2, Route53 and CloudWatch, then the store."""

from __future__ import annotations

import copy
import functools
import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any, cast

import boto3
import pytest
from ecs_canary.registration import RegistrationConflict, RegistrationError, preflight, register
from ecs_canary.spec import ServicePairSpec, parse_spec
from ecs_canary.store import Release, Store
from flow_fixtures import table_schema

BLUE, GREEN = "shop-blue", "shop-green"
CLUSTER = "prod"
RECORD = "api.example.com."
ALARMS = ("shop-5xx", "shop-latency")


@functools.cache
def _session() -> boto3.Session:
    return boto3.Session(region_name="us-east-1")


def client(service: str) -> Any:
    """A client of the one session these tests share: moto intercepts it like any other, and
    service models load once per run instead of once per test (moto resets boto3's default session)."""
    return _session().client(service)  # type: ignore[call-overload]


@dataclass
class World:
    """Real (moto) resources a pair spec can name."""

    store: Store
    ecs: Any
    elbv2: Any
    route53: Any
    cloudwatch: Any
    listener: str
    rule: str
    blue_tg: str
    green_tg: str
    lonely_tg: str
    zone_id: str

    def alb_spec(self, **changes: Any) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": "shop",
            "cluster": CLUSTER,
            "services": [
                {"name": BLUE, "target_group_arn": self.blue_tg},
                {"name": GREEN, "target_group_arn": self.green_tg},
            ],
            "router": {"type": "alb", "listener_arn": self.listener},
            "plan": "Canary10Percent5Minutes",
            "health": {"alarms": list(ALARMS)},
        }
        data.update(changes)
        return data

    def route53_spec(self, **changes: Any) -> dict[str, Any]:
        data = self.alb_spec(
            router={
                "type": "route53",
                "hosted_zone_id": self.zone_id,
                "record_name": RECORD,
                "record_type": "A",
            }
        )
        data["services"][0]["set_identifier"] = "blue"
        data["services"][1]["set_identifier"] = "green"
        data.update(changes)
        return data

    def set_listener(self, blue: int, green: int) -> None:
        self.elbv2.modify_listener(ListenerArn=self.listener, DefaultActions=[_forward(self, blue, green)])

    def set_records(self, blue: int, green: int) -> None:
        self.route53.change_resource_record_sets(
            HostedZoneId=self.zone_id,
            ChangeBatch={"Changes": [_record("UPSERT", "blue", blue), _record("UPSERT", "green", green)]},
        )

    def deploy(self, service: str) -> str:
        """A new ECS deployment of ``service`` (new task definition revision); returns its id."""
        task_def = self.ecs.register_task_definition(
            family="shop", containerDefinitions=[{"name": "app", "image": "shop:v2", "memory": 128}]
        )["taskDefinition"]["taskDefinitionArn"]
        self.ecs.update_service(cluster=CLUSTER, service=service, taskDefinition=task_def)
        return _primary(self.ecs, service)


def _forward(world: World, blue: int, green: int) -> Any:
    return {
        "Type": "forward",
        "ForwardConfig": {
            "TargetGroups": [
                {"TargetGroupArn": world.blue_tg, "Weight": blue},
                {"TargetGroupArn": world.green_tg, "Weight": green},
            ]
        },
    }


def _record(action: str, sid: str, weight: int) -> dict[str, Any]:
    return {
        "Action": action,
        "ResourceRecordSet": {
            "Name": RECORD,
            "Type": "A",
            "SetIdentifier": sid,
            "Weight": weight,
            "TTL": 30,
            "ResourceRecords": [{"Value": "10.0.0.1" if sid == "blue" else "10.0.0.2"}],
        },
    }


def _primary(ecs: Any, service: str) -> str:
    described = ecs.describe_services(cluster=CLUSTER, services=[service])["services"][0]
    return str(next(d["id"] for d in described["deployments"] if d["status"] == "PRIMARY"))


@pytest.fixture(autouse=True)
def _no_default_amis(monkeypatch: pytest.MonkeyPatch) -> None:
    """The VPC needs no AMIs; loading moto's catalogue costs about a second per test."""
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")


@pytest.fixture
def world(mocked_aws: None) -> World:
    ddb = client("dynamodb")
    ddb.create_table(TableName="canary", **table_schema())  # the template's layout, Locks index included
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-east-1{az}")["Subnet"][
            "SubnetId"
        ]
        for i, az in ((1, "a"), (2, "b"))
    ]
    elbv2 = client("elbv2")
    lb = elbv2.create_load_balancer(Name="shop", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
    blue_tg, green_tg, lonely_tg = (
        elbv2.create_target_group(Name=name, Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip")[
            "TargetGroups"
        ][0]["TargetGroupArn"]
        for name in ("shop-blue", "shop-green", "lonely")
    )
    partial = World(
        store=Store("canary", ddb),
        ecs=client("ecs"),
        elbv2=elbv2,
        route53=client("route53"),
        cloudwatch=client("cloudwatch"),
        listener="",
        rule="",
        blue_tg=blue_tg,
        green_tg=green_tg,
        lonely_tg=lonely_tg,
        zone_id="",
    )
    partial.listener = elbv2.create_listener(
        LoadBalancerArn=lb, Protocol="HTTP", Port=80, DefaultActions=[_forward(partial, 100, 0)]
    )["Listeners"][0]["ListenerArn"]
    partial.rule = elbv2.create_rule(
        ListenerArn=partial.listener,
        Priority=10,
        Conditions=[{"Field": "path-pattern", "Values": ["/shop/*"]}],
        Actions=[_forward(partial, 0, 100)],
    )["Rules"][0]["RuleArn"]

    ecs = partial.ecs
    ecs.create_cluster(clusterName=CLUSTER)
    ecs.register_task_definition(
        family="shop", containerDefinitions=[{"name": "app", "image": "shop:v1", "memory": 128}]
    )
    for name, tg in ((BLUE, blue_tg), (GREEN, green_tg)):
        ecs.create_service(
            cluster=CLUSTER,
            serviceName=name,
            taskDefinition="shop",
            desiredCount=1,
            loadBalancers=[{"targetGroupArn": tg, "containerName": "app", "containerPort": 80}],
        )

    zone = partial.route53.create_hosted_zone(Name="example.com", CallerReference="zone")["HostedZone"]["Id"]
    partial.zone_id = zone.removeprefix("/hostedzone/")
    partial.route53.change_resource_record_sets(
        HostedZoneId=partial.zone_id,
        ChangeBatch={"Changes": [_record("CREATE", "blue", 100), _record("CREATE", "green", 0)]},
    )
    for alarm in ALARMS:
        partial.cloudwatch.put_metric_alarm(
            AlarmName=alarm,
            MetricName="HTTPCode_Target_5XX_Count",
            Namespace="AWS/ApplicationELB",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanThreshold",
        )
    return partial


def _register(world: World, data: dict[str, Any]) -> Any:
    return register(
        world.store,
        parse_spec(data),
        ecs=world.ecs,
        elbv2=world.elbv2,
        route53=world.route53,
        cloudwatch=world.cloudwatch,
    )


def _problems(world: World, data: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(RegistrationError) as caught:
        _register(world, data)
    assert world.store.list_pairs() == []
    return caught.value.problems


# ---- success ------------------------------------------------------------------------------------


def test_alb_listener_pair_is_stored_with_live_service_and_idle_baseline(world: World) -> None:
    pair = _register(world, world.alb_spec())

    assert pair.live_service == BLUE
    assert pair.idle_service == GREEN
    assert pair.idle_baseline == _primary(world.ecs, GREEN)
    stored = world.store.get_pair("shop")
    assert (stored.live_service, stored.idle_baseline) == (BLUE, pair.idle_baseline)
    assert stored.spec == parse_spec(world.alb_spec())
    assert world.store.pair_for_service(CLUSTER, GREEN) is not None


def test_alb_rule_pair_finds_green_live(world: World) -> None:
    pair = _register(world, world.alb_spec(router={"type": "alb", "rule_arn": world.rule}))

    assert pair.live_service == GREEN
    assert pair.idle_baseline == _primary(world.ecs, BLUE)


def test_route53_pair_reads_the_weighted_records(world: World) -> None:
    world.set_records(0, 255)

    pair = _register(world, world.route53_spec())

    assert pair.live_service == GREEN
    assert pair.idle_baseline == _primary(world.ecs, BLUE)


def test_cluster_given_as_arn(world: World) -> None:
    arn = world.ecs.describe_clusters(clusters=[CLUSTER])["clusters"][0]["clusterArn"]

    pair = _register(world, world.alb_spec(cluster=arn))

    assert pair.live_service == BLUE


def test_baseline_is_the_idle_services_current_primary_deployment(world: World) -> None:
    release = world.deploy(GREEN)

    pair = _register(world, world.alb_spec())

    assert pair.idle_baseline == release


def test_preflight_reports_without_storing(world: World) -> None:
    found = preflight(
        parse_spec(world.alb_spec()),
        ecs=world.ecs,
        elbv2=world.elbv2,
        route53=world.route53,
        cloudwatch=world.cloudwatch,
    )

    assert (found.live_service, found.idle_service) == (BLUE, GREEN)
    assert found.weights == {BLUE: 100, GREEN: 0}
    assert found.router.startswith("ALB listener arn:aws:elasticloadbalancing:")
    assert world.store.list_pairs() == []


def test_re_registering_records_the_new_live_service(world: World) -> None:
    _register(world, world.alb_spec())
    world.set_listener(0, 100)

    pair = _register(world, world.alb_spec(plan="AllAtOnce"))

    assert pair.live_service == GREEN
    stored = world.store.get_pair("shop")
    assert stored.live_service == GREEN
    assert stored.spec.resolved_plan().steps == (100,)


def test_without_alarms_no_cloudwatch_lookup_is_needed(world: World) -> None:
    data = world.alb_spec(health={"metrics": {"max_5xx_percent": 1}})

    assert _register(world, data).live_service == BLUE


# ---- ECS ------------------------------------------------------------------------------------------


def test_missing_cluster(world: World) -> None:
    problems = _problems(world, world.alb_spec(cluster="staging"))

    assert "ECS cluster staging does not exist" in problems
    assert not any("ECS service" in p for p in problems)


def test_inactive_cluster(world: World) -> None:
    world.ecs.create_cluster(clusterName="old")
    world.ecs.delete_cluster(cluster="old")

    problems = _problems(world, world.alb_spec(cluster="old"))

    assert "ECS cluster old is INACTIVE, not ACTIVE" in problems


def test_missing_service(world: World) -> None:
    data = world.alb_spec()
    data["services"][1]["name"] = "shop-purple"

    problems = _problems(world, data)

    assert problems == (f"ECS service shop-purple does not exist in cluster {CLUSTER}",)


def test_deleted_service(world: World) -> None:
    world.ecs.update_service(cluster=CLUSTER, service=GREEN, desiredCount=0)
    world.ecs.delete_service(cluster=CLUSTER, service=GREEN)

    problems = _problems(world, world.alb_spec())

    assert problems == (f"ECS service {GREEN} in cluster {CLUSTER} is INACTIVE",)


# ---- target groups ---------------------------------------------------------------------------------


def test_missing_target_group(world: World) -> None:
    missing = world.green_tg.rsplit("/", 1)[0] + "/0123456789abcdef"
    data = world.alb_spec()
    data["services"][1]["target_group_arn"] = missing

    problems = _problems(world, data)

    assert f"target group {missing} (service {GREEN}) does not exist" in problems


def test_target_group_without_load_balancer(world: World) -> None:
    data = world.route53_spec()
    data["services"][1]["target_group_arn"] = world.lonely_tg

    problems = _problems(world, data)

    assert problems == (
        f"target group {world.lonely_tg} (service {GREEN}) is not attached to a load balancer; "
        "the health gate reads its metrics through the load balancer",
        # The service itself still sends its tasks to its own target group.
        f"ECS service {GREEN} is attached to {world.green_tg}, not to target group {world.lonely_tg} "
        "that the spec names for it",
    )


# ---- routers ----------------------------------------------------------------------------------------


def test_missing_listener(world: World) -> None:
    missing = world.listener.rsplit("/", 1)[0] + "/0123456789abcdef"

    problems = _problems(world, world.alb_spec(router={"type": "alb", "listener_arn": missing}))

    assert len(problems) == 1
    assert problems[0].startswith(f"ALB listener {missing} does not exist")


def test_missing_rule(world: World) -> None:
    missing = world.rule.rsplit("/", 1)[0] + "/0123456789abcdef"

    problems = _problems(world, world.alb_spec(router={"type": "alb", "rule_arn": missing}))

    assert len(problems) == 1
    assert missing in problems[0]
    assert "does not exist" in problems[0]


def test_listener_forwarding_to_a_foreign_target_group(world: World) -> None:
    world.elbv2.modify_listener(
        ListenerArn=world.listener,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": world.lonely_tg}],
    )

    problems = _problems(world, world.alb_spec())

    assert problems == (
        f"the forward action of ALB listener {world.listener} sends traffic to target group "
        f"{world.lonely_tg}, which belongs to neither {BLUE} nor {GREEN}",
    )


def test_missing_hosted_zone(world: World) -> None:
    data = world.route53_spec()
    data["router"]["hosted_zone_id"] = "Z0000000000000000000"

    problems = _problems(world, data)

    assert problems == ("hosted zone Z0000000000000000000 does not exist",)


def test_missing_weighted_record(world: World) -> None:
    data = world.route53_spec()
    data["services"][1]["set_identifier"] = "purple"

    problems = _problems(world, data)

    assert problems == (
        f"A record {RECORD} with SetIdentifier 'purple' (service {GREEN}) in hosted zone {world.zone_id} "
        "does not exist",
    )


# ---- weights ------------------------------------------------------------------------------------


def test_split_alb_traffic(world: World) -> None:
    world.set_listener(50, 50)

    problems = _problems(world, world.alb_spec())

    assert problems == (
        f"traffic is split ({BLUE}=50, {GREEN}=50): route all traffic to one service before registering",
    )


def test_split_route53_traffic(world: World) -> None:
    world.set_records(90, 10)

    problems = _problems(world, world.route53_spec())

    assert problems == (
        f"traffic is split ({BLUE}=90, {GREEN}=10): route all traffic to one service before registering",
    )


def test_no_traffic_at_all(world: World) -> None:
    world.set_records(0, 0)

    problems = _problems(world, world.route53_spec())

    assert problems == (
        f"no service receives traffic ({BLUE}=0, {GREEN}=0): "
        "route all traffic to one service before registering",
    )


# ---- alarms ---------------------------------------------------------------------------------------


def test_missing_alarms_are_each_named(world: World) -> None:
    data = world.alb_spec(health={"alarms": ["shop-5xx", "shop-typo", "shop-other"]})

    problems = _problems(world, data)

    assert problems == (
        "CloudWatch alarm shop-typo does not exist",
        "CloudWatch alarm shop-other does not exist",
    )


# ---- everything at once, conflicts --------------------------------------------------------------------


def test_every_problem_is_reported_at_once(world: World) -> None:
    world.set_listener(30, 70)
    data = world.alb_spec(health={"alarms": ["nope"]})
    data["services"][0]["name"] = "shop-gone"
    data["services"][1]["target_group_arn"] = world.green_tg.rsplit("/", 1)[0] + "/0123456789abcdef"

    problems = _problems(world, data)

    assert any("ECS service shop-gone does not exist" in p for p in problems)
    assert any(f"(service {GREEN}) does not exist" in p for p in problems)
    assert any("sends traffic to target group" in p for p in problems)
    assert "CloudWatch alarm nope does not exist" in problems
    assert len(problems) == 4


def test_error_message_lists_every_problem_line(world: World) -> None:
    with pytest.raises(RegistrationError) as caught:
        _register(world, world.alb_spec(cluster="gone", health={"alarms": ["x"]}))

    assert isinstance(caught.value, ValueError)
    assert str(caught.value).splitlines() == list(caught.value.problems)
    assert caught.value.pair == "shop"


def test_refused_while_a_deployment_is_active(world: World) -> None:
    _register(world, world.alb_spec())
    claim = world.store.claim(
        "shop",
        "dep-1",
        Release(GREEN, "ecs-svc/1", "td:2"),
        BLUE,
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:canary:dep-1",
        lease_seconds=900,
    )
    assert claim.outcome == "claimed"

    with pytest.raises(RegistrationConflict) as caught:
        _register(world, world.alb_spec(plan="AllAtOnce"))

    assert "active deployment" in caught.value.problems[0]
    assert world.store.get_pair("shop").spec.plan == "Canary10Percent5Minutes"


def test_refused_when_a_service_belongs_to_another_pair(world: World) -> None:
    _register(world, world.alb_spec())
    other = copy.deepcopy(world.alb_spec(name="shop2"))

    with pytest.raises(RegistrationConflict) as caught:
        _register(world, other)

    assert "another registered pair" in caught.value.problems[0]
    assert [p.spec.name for p in world.store.list_pairs()] == ["shop"]


def test_default_clients_come_from_the_environment(world: World) -> None:
    spec: ServicePairSpec = parse_spec(world.alb_spec())

    pair = register(world.store, spec)

    assert pair.live_service == BLUE


# ---- the wiring: each service on its own target group, the router on exactly those two -------------


def test_swapped_target_groups_are_refused_naming_the_mismatch(world: World) -> None:
    """Each service's target group is the other's: the wrong service would read as live."""
    data = world.alb_spec()
    data["services"][0]["target_group_arn"], data["services"][1]["target_group_arn"] = (
        world.green_tg,
        world.blue_tg,
    )
    world.set_listener(0, 100)  # so the traffic check alone would accept it

    problems = _problems(world, data)

    assert (
        f"ECS service {BLUE} is attached to {world.blue_tg}, not to target group {world.green_tg} that the "
        f"spec names for it (that is the target group the spec names for {GREEN}: swapped?)"
    ) in problems
    assert (
        f"ECS service {GREEN} is attached to {world.green_tg}, not to target group {world.blue_tg} that the "
        f"spec names for it (that is the target group the spec names for {BLUE}: swapped?)"
    ) in problems
    assert world.store.pair_for_service(CLUSTER, BLUE) is None


def test_a_service_attached_to_no_target_group_is_refused(world: World) -> None:
    world.ecs.create_service(cluster=CLUSTER, serviceName="shop-bare", taskDefinition="shop", desiredCount=1)
    data = world.alb_spec()
    data["services"][1]["name"] = "shop-bare"

    problems = _problems(world, data)

    assert (
        f"ECS service shop-bare is attached to no target group, not to target group {world.green_tg} "
        "that the spec names for it"
    ) in problems


def test_a_missing_per_service_alarm_is_refused_naming_its_service(world: World) -> None:
    data = world.alb_spec()
    data["services"][0]["alarms"] = ["shop-5xx"]
    data["services"][1]["alarms"] = ["shop-green-errors"]

    problems = _problems(world, data)

    assert problems == (f"CloudWatch alarm shop-green-errors does not exist (services[].alarms of {GREEN})",)


def test_a_listener_forwarding_to_only_one_of_the_target_groups_is_refused(world: World) -> None:
    world.elbv2.modify_listener(
        ListenerArn=world.listener,
        DefaultActions=[
            {
                "Type": "forward",
                "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": world.blue_tg, "Weight": 1}]},
            }
        ],
    )

    problems = _problems(world, world.alb_spec())

    assert problems == (
        f"listener {world.listener} does not forward to {world.green_tg}: it must forward to exactly the two "
        "target groups of the spec (the live one at full weight, the other at 0)",
    )


def test_alias_records_must_point_at_their_own_services_load_balancer(world: World) -> None:
    (balancer,) = world.elbv2.describe_load_balancers()["LoadBalancers"]
    dns = balancer["DNSName"]

    def alias(sid: str, weight: int, target: str) -> dict[str, Any]:
        return {
            "Action": "UPSERT",
            "ResourceRecordSet": {
                "Name": "alias.example.com.",
                "Type": "A",
                "SetIdentifier": sid,
                "Weight": weight,
                "AliasTarget": {
                    "HostedZoneId": balancer["CanonicalHostedZoneId"],
                    "DNSName": target,
                    "EvaluateTargetHealth": False,
                },
            },
        }

    world.route53.change_resource_record_sets(
        HostedZoneId=world.zone_id,
        ChangeBatch={
            "Changes": [alias("blue", 100, f"dualstack.{dns}."), alias("green", 0, "other.example.net.")]
        },
    )
    data = world.route53_spec()
    data["router"]["record_name"] = "alias.example.com"

    problems = _problems(world, data)

    assert problems == (
        "Route53 record alias.example.com. with SetIdentifier 'green' (service shop-green) is an alias to "
        f"other.example.net., not to the load balancer of the service's target group ({dns.lower()})",
    )

    world.route53.change_resource_record_sets(
        HostedZoneId=world.zone_id, ChangeBatch={"Changes": [alias("green", 0, dns)]}
    )
    assert _register(world, data).live_service == BLUE


class _OtherAccount:
    """STS as it answers a caller in another account than the cluster's."""

    def get_caller_identity(self) -> dict[str, str]:
        return {"Account": "999999999999", "Arn": "arn:aws:iam::999999999999:user/ops"}


def test_a_cluster_outside_the_callers_account_is_refused(world: World) -> None:
    with pytest.raises(RegistrationError) as caught:
        register(
            world.store,
            parse_spec(world.alb_spec()),
            ecs=world.ecs,
            elbv2=world.elbv2,
            route53=world.route53,
            cloudwatch=world.cloudwatch,
            sts=cast(Any, _OtherAccount()),
        )

    assert caught.value.problems == (
        f"ECS cluster arn:aws:ecs:us-east-1:123456789012:cluster/{CLUSTER} is in account 123456789012, "
        "not 999999999999 where ecs-canary runs",
    )
    assert world.store.list_pairs() == []


def test_the_registered_cluster_arn_is_stored(world: World) -> None:
    pair = _register(world, world.alb_spec())

    assert pair.cluster_arn == f"arn:aws:ecs:us-east-1:123456789012:cluster/{CLUSTER}"
    assert world.store.get_pair("shop").cluster_arn == pair.cluster_arn


# ---- gates: hooks and test traffic --------------------------------------------------------------


def _hook_function(name: str, timeout: int = 3) -> None:
    iam = client("iam")
    role = iam.create_role(
        RoleName=f"{name}-role",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("hook.py", "def handler(event, context):\n    return {'hookStatus': 'SUCCEEDED'}\n")
    client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=role,
        Handler="hook.handler",
        Code={"ZipFile": archive.getvalue()},
        Timeout=timeout,
    )


def _register_gated(world: World, data: dict[str, Any], prefix: str = "ecs-canary-hook-") -> Any:
    return register(
        world.store,
        parse_spec(data),
        ecs=world.ecs,
        elbv2=world.elbv2,
        route53=world.route53,
        cloudwatch=world.cloudwatch,
        lambda_client=client("lambda"),
        hook_prefix=prefix,
    )


def _gated_problems(world: World, data: dict[str, Any], prefix: str = "ecs-canary-hook-") -> tuple[str, ...]:
    with pytest.raises(RegistrationError) as caught:
        _register_gated(world, data, prefix)
    assert world.store.list_pairs() == []
    return caught.value.problems


def test_hooks_that_exist_and_carry_the_prefix_are_accepted(world: World) -> None:
    _hook_function("ecs-canary-hook-smoke")
    data = world.alb_spec(hooks={"after_test_traffic": [{"function": "ecs-canary-hook-smoke"}]})
    assert _register_gated(world, data).spec.name == "shop"


def test_a_missing_hook_and_one_without_the_prefix_are_each_named(world: World) -> None:
    _hook_function("smoke-tests")  # exists, but the stack may not invoke it
    data = world.alb_spec(
        hooks={
            "before_test_traffic": [{"function": "ecs-canary-hook-gone"}],
            "on_rollback": [{"function": "smoke-tests"}],
        }
    )
    problems = _gated_problems(world, data)
    assert "hook function ecs-canary-hook-gone (hooks.before_test_traffic) does not exist" in problems
    assert any(
        p.startswith(
            "hook function smoke-tests (hooks.on_rollback) is not named with the stack's HookFunctionPrefix"
        )
        for p in problems
    ), problems


def test_a_hook_that_could_outlive_the_hook_runner_is_refused(world: World) -> None:
    _hook_function("ecs-canary-hook-slow", timeout=900)
    data = world.alb_spec(hooks={"after_production_traffic": [{"function": "ecs-canary-hook-slow"}]})
    (problem,) = _gated_problems(world, data)
    assert problem.startswith(
        "hook function ecs-canary-hook-slow (hooks.after_production_traffic) has a timeout of 900 s; "
        "a hook may take at most 840 s per answer"
    )


def test_a_test_listener_on_the_pairs_load_balancer_is_accepted(world: World) -> None:
    lb = world.elbv2.describe_listeners(ListenerArns=[world.listener])["Listeners"][0]["LoadBalancerArn"]
    test = world.elbv2.create_listener(
        LoadBalancerArn=lb, Protocol="HTTP", Port=8080, DefaultActions=[_forward(world, 100, 0)]
    )["Listeners"][0]["ListenerArn"]
    assert _register_gated(world, world.alb_spec(test_traffic={"listener_arn": test})).spec.name == "shop"


def test_a_missing_test_listener_is_refused(world: World) -> None:
    gone = world.listener.rsplit("/", 1)[0] + "/0123456789abcdef"
    problems = _gated_problems(world, world.alb_spec(test_traffic={"listener_arn": gone}))
    assert problems == (f"test listener {gone} (test_traffic) does not exist",)


def test_a_test_listener_on_another_load_balancer_is_refused(world: World) -> None:
    subnets = [s["SubnetId"] for s in client("ec2").describe_subnets()["Subnets"]][:2]
    other = world.elbv2.create_load_balancer(Name="elsewhere", Subnets=subnets)["LoadBalancers"][0]
    test = world.elbv2.create_listener(
        LoadBalancerArn=other["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}],
    )["Listeners"][0]["ListenerArn"]
    (problem,) = _gated_problems(world, world.alb_spec(test_traffic={"listener_arn": test}))
    assert problem.startswith(
        f"test listener {test} (test_traffic) is on load balancer {other['LoadBalancerArn']}"
    )
    assert "a target group serves one load balancer" in problem
