"""check_steady and the ECS helpers against moto's ECS and ELBv2 (and stubs where moto cannot go)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from ecs_canary.errors import RouterConfigError
from ecs_canary.green import (
    SteadyReport,
    check_steady,
    current_deployment_id,
    describe_service,
    service_exists,
)

CLUSTER, SERVICE = "shop", "shop-green"


@dataclass
class Env:
    ecs: Any
    elbv2: Any
    ec2: Any
    vpc: str
    target_group: str


@pytest.fixture
def env(mocked_aws: None) -> Env:
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    elbv2 = boto3.client("elbv2")
    tg = elbv2.create_target_group(Name="green", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip")[
        "TargetGroups"
    ][0]["TargetGroupArn"]
    ecs = boto3.client("ecs")
    ecs.create_cluster(clusterName=CLUSTER)
    ecs.register_task_definition(
        family="shop", containerDefinitions=[{"name": "app", "image": "nginx", "memory": 128}]
    )
    return Env(ecs, elbv2, ec2, vpc, tg)


def _service(env: Env, monkeypatch: pytest.MonkeyPatch, *, desired: int = 2, running: int = 2) -> str:
    # moto reports MOTO_ECS_SERVICE_RUNNING tasks as running for services it creates.
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", str(running))
    env.ecs.create_service(
        cluster=CLUSTER,
        serviceName=SERVICE,
        taskDefinition="shop",
        desiredCount=desired,
        loadBalancers=[{"targetGroupArn": env.target_group, "containerName": "app", "containerPort": 80}],
    )
    deployment = current_deployment_id(env.ecs, CLUSTER, SERVICE)
    assert deployment is not None
    return deployment


def _register(env: Env, *ips: str) -> None:
    env.elbv2.register_targets(
        TargetGroupArn=env.target_group, Targets=[{"Id": ip, "Port": 80} for ip in ips]
    )


def _check(env: Env, deployment_id: str | None) -> SteadyReport:
    return check_steady(
        env.ecs,
        env.elbv2,
        cluster=CLUSTER,
        service=SERVICE,
        target_group_arn=env.target_group,
        deployment_id=deployment_id,
    )


def test_steady(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = _service(env, monkeypatch)
    _register(env, "10.0.1.5", "10.0.1.6")
    report = _check(env, deployment)
    assert report == SteadyReport(
        steady=True,
        reason="2/2 tasks running, 2/2 targets healthy",
        running=2,
        desired=2,
        healthy_targets=2,
        total_targets=2,
        primary_id=deployment,
        primary_task_definition="arn:aws:ecs:us-east-1:123456789012:task-definition/shop:1",
    )
    assert _check(env, None).steady


@dataclass(frozen=True)
class NotSteady:
    desired: int
    running: int
    targets: int
    release: str | None
    fragments: tuple[str, ...]


@pytest.mark.parametrize(
    "case",
    [
        NotSteady(2, 1, 2, None, ("1/2 tasks running", "is IN_PROGRESS")),
        NotSteady(2, 2, 0, None, ("no targets registered",)),
        NotSteady(
            2, 2, 2, "ecs-svc/0000000000", ("release ecs-svc/0000000000 is no longer the primary deployment",)
        ),
        NotSteady(0, 0, 1, None, ("desired count of shop-green is 0",)),
    ],
    ids=["tasks-starting", "no-targets", "superseded-release", "scaled-to-zero"],
)
def test_not_steady(env: Env, monkeypatch: pytest.MonkeyPatch, case: NotSteady) -> None:
    _service(env, monkeypatch, desired=case.desired, running=case.running)
    _register(env, *[f"10.0.1.{i}" for i in range(case.targets)])
    report = _check(env, case.release)
    assert not report.steady
    assert (report.running, report.desired, report.total_targets) == (
        case.running,
        case.desired,
        case.targets,
    )
    for fragment in case.fragments:
        assert fragment in report.reason


def test_stopped_instance_target_is_unhealthy(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = _service(env, monkeypatch)
    image = env.ec2.describe_images()["Images"][0]["ImageId"]
    instance = env.ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    tg = env.elbv2.create_target_group(Name="green-ec2", Protocol="HTTP", Port=80, VpcId=env.vpc)[
        "TargetGroups"
    ][0]["TargetGroupArn"]
    env.elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": instance}])
    env.target_group = tg
    assert _check(env, deployment).steady
    env.ec2.stop_instances(InstanceIds=[instance])
    report = _check(env, deployment)
    assert not report.steady
    assert report.reason == f"1 of 1 targets unhealthy ({instance}: unused)"
    assert (report.healthy_targets, report.total_targets) == (0, 1)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing_service", "ECS service shop-green does not exist in cluster shop"),
        ("deleted_service", "ECS service shop-green in cluster shop is INACTIVE"),
        ("missing_cluster", "ECS cluster nowhere does not exist"),
        ("missing_target_group", "target group .*targetgroup/gone/0123456789abcdef does not exist"),
    ],
)
def test_config_errors(env: Env, monkeypatch: pytest.MonkeyPatch, setup: str, message: str) -> None:
    cluster = CLUSTER
    target_group = env.target_group
    if setup != "missing_service":
        _service(env, monkeypatch)
    if setup == "deleted_service":
        env.ecs.delete_service(cluster=CLUSTER, service=SERVICE, force=True)
    if setup == "missing_cluster":
        cluster = "nowhere"
    if setup == "missing_target_group":
        target_group = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/gone/0123456789abcdef"
    with pytest.raises(RouterConfigError, match=message):
        check_steady(
            env.ecs,
            env.elbv2,
            cluster=cluster,
            service=SERVICE,
            target_group_arn=target_group,
            deployment_id=None,
        )


def test_helpers(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not service_exists(env.ecs, CLUSTER, SERVICE)
    with pytest.raises(RouterConfigError, match="does not exist"):
        current_deployment_id(env.ecs, CLUSTER, SERVICE)
    deployment = _service(env, monkeypatch)
    assert deployment.startswith("ecs-svc/")
    assert service_exists(env.ecs, CLUSTER, SERVICE)
    assert describe_service(env.ecs, CLUSTER, SERVICE)["serviceName"] == SERVICE
    env.ecs.delete_service(cluster=CLUSTER, service=SERVICE, force=True)
    assert not service_exists(env.ecs, CLUSTER, SERVICE)


# Deployment shapes moto cannot produce (several deployments, a failed rollout,
# no rolloutState) are fed through botocore stubs with real-API response shapes.

TG_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/green/0123456789abcdef"


@pytest.fixture
def stubs() -> Iterator[tuple[Any, Any, Stubber, Stubber]]:
    ecs, elbv2 = boto3.client("ecs"), boto3.client("elbv2")
    with Stubber(ecs) as ecs_stub, Stubber(elbv2) as elb_stub:
        yield ecs, elbv2, ecs_stub, elb_stub
        ecs_stub.assert_no_pending_responses()
        elb_stub.assert_no_pending_responses()


def _deployment(
    dep_id: str, status: str, rollout: str | None = None, reason: str | None = None
) -> dict[str, Any]:
    dep: dict[str, Any] = {"id": dep_id, "status": status, "desiredCount": 2, "runningCount": 2}
    if rollout is not None:
        dep["rolloutState"] = rollout
    if reason is not None:
        dep["rolloutStateReason"] = reason
    return dep


def _health(*states: tuple[str, str]) -> dict[str, Any]:
    return {
        "TargetHealthDescriptions": [
            {"Target": {"Id": ip, "Port": 8080}, "TargetHealth": {"State": state}} for ip, state in states
        ]
    }


@pytest.mark.parametrize(
    ("deployments", "health", "steady", "reason"),
    [
        (
            [_deployment("ecs-svc/new", "PRIMARY", "COMPLETED")],
            _health(("10.0.1.5", "unhealthy"), ("10.0.1.6", "healthy")),
            False,
            "1 of 2 targets unhealthy (10.0.1.5: unhealthy)",
        ),
        (
            [_deployment("ecs-svc/new", "PRIMARY", "FAILED", "tasks failed to start")],
            _health(("10.0.1.6", "healthy")),
            False,
            "deployment ecs-svc/new is FAILED: tasks failed to start",
        ),
        (
            [_deployment("ecs-svc/new", "PRIMARY"), _deployment("ecs-svc/old", "ACTIVE")],
            _health(("10.0.1.6", "healthy")),
            False,
            "2 deployments still active",
        ),
        (
            [_deployment("ecs-svc/new", "PRIMARY")],
            _health(("10.0.1.6", "healthy"), ("10.0.1.7", "healthy")),
            True,
            "2/2 tasks running, 2/2 targets healthy",
        ),
        (
            [_deployment("ecs-svc/old", "ACTIVE", "COMPLETED")],
            _health(("10.0.1.6", "healthy")),
            False,
            "shop-green has no PRIMARY deployment",
        ),
        (
            [_deployment("ecs-svc/new", "PRIMARY", "COMPLETED")],
            _health(*[(f"10.0.2.{i}", "initial") for i in range(7)]),
            False,
            "7 of 7 targets unhealthy (10.0.2.0: initial, 10.0.2.1: initial, 10.0.2.2: initial, "
            "10.0.2.3: initial, 10.0.2.4: initial, and 2 more)",
        ),
    ],
)
def test_deployment_shapes(
    stubs: tuple[Any, Any, Stubber, Stubber],
    deployments: list[dict[str, Any]],
    health: dict[str, Any],
    steady: bool,
    reason: str,
) -> None:
    ecs, elbv2, ecs_stub, elb_stub = stubs
    ecs_stub.add_response(
        "describe_services",
        {
            "services": [
                {
                    "serviceName": SERVICE,
                    "status": "ACTIVE",
                    "desiredCount": 2,
                    "runningCount": 2,
                    "deployments": deployments,
                }
            ],
            "failures": [],
        },
        {"cluster": CLUSTER, "services": [SERVICE]},
    )
    elb_stub.add_response("describe_target_health", health, {"TargetGroupArn": TG_ARN})
    report = check_steady(
        ecs, elbv2, cluster=CLUSTER, service=SERVICE, target_group_arn=TG_ARN, deployment_id="ecs-svc/new"
    )
    assert (report.steady, report.reason) == (steady, reason)
