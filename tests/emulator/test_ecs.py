"""run_ecs_service_deployments and apply_target_health_overrides."""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import purge, receive
from ecs_canary_cli.local import Emulator


@pytest.fixture(scope="module")
def network(aws: Emulator) -> dict[str, str]:
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="tasks", Description="tasks", VpcId=vpc)["GroupId"]
    aws.client("ecs").create_cluster(clusterName="emulated")
    return {"vpc": vpc, "subnet": subnet, "group": group}


def _task_definition(aws: Emulator, image: str) -> str:
    response = aws.client("ecs").register_task_definition(
        family="web",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[{"name": "web", "image": image, "portMappings": [{"containerPort": 8080}]}],
    )
    return str(response["taskDefinition"]["taskDefinitionArn"])


def _target_group(aws: Emulator, network: dict[str, str], name: str) -> str:
    elb = aws.client("elbv2")
    group = elb.create_target_group(
        Name=name, Protocol="HTTP", Port=8080, VpcId=network["vpc"], TargetType="ip"
    )
    return str(group["TargetGroups"][0]["TargetGroupArn"])


def _service(aws: Emulator, name: str) -> dict[str, Any]:
    return dict(aws.client("ecs").describe_services(cluster="emulated", services=[name])["services"][0])


def _running_tasks(aws: Emulator, name: str) -> list[dict[str, Any]]:
    ecs = aws.client("ecs")
    arns = ecs.list_tasks(cluster="emulated", serviceName=name)["taskArns"]
    tasks = ecs.describe_tasks(cluster="emulated", tasks=arns)["tasks"] if arns else []
    assert all(t["group"] == f"service:{name}" and t["desiredStatus"] == "RUNNING" for t in tasks)
    return list(tasks)


def _create(
    aws: Emulator, network: dict[str, str], name: str, *, target_group: str, image: str, count: int = 2
) -> None:
    aws.client("ecs").create_service(
        cluster="emulated",
        serviceName=name,
        taskDefinition=_task_definition(aws, image),
        desiredCount=count,
        launchType="FARGATE",
        loadBalancers=[{"targetGroupArn": target_group, "containerName": "web", "containerPort": 8080}],
        networkConfiguration={
            "awsvpcConfiguration": {"subnets": [network["subnet"]], "securityGroups": [network["group"]]}
        },
    )


def test_create_service_starts_tasks_registers_targets_and_emits_events(
    aws: Emulator, stack: dict[str, str], network: dict[str, str]
) -> None:
    purge(aws, stack["SinkUrl"])
    aws.options.task_start_seconds = 60.0
    target_group = _target_group(aws, network, "green-tg")
    _create(aws, network, "green", target_group=target_group, image="web:1")

    pending = _service(aws, "green")
    [deployment] = pending["deployments"]
    assert re.fullmatch(r"ecs-svc/\d{19}", deployment["id"])
    assert deployment["rolloutState"] == "IN_PROGRESS"
    assert aws.wait_for_idle(10)

    service = _service(aws, "green")
    [deployment] = service["deployments"]
    assert deployment["status"] == "PRIMARY"
    assert deployment["rolloutState"] == "COMPLETED"
    assert service["runningCount"] == deployment["runningCount"] == 2
    tasks = _running_tasks(aws, "green")
    assert len(tasks) == 2
    assert all(t["lastStatus"] == "RUNNING" and t["startedBy"] == deployment["id"] for t in tasks)
    health = aws.client("elbv2").describe_target_health(TargetGroupArn=target_group)[
        "TargetHealthDescriptions"
    ]
    assert sorted(h["TargetHealth"]["State"] for h in health) == ["healthy", "healthy"]
    assert {h["Target"]["Port"] for h in health} == {8080}
    assert all(h["Target"]["Id"].startswith("10.") for h in health)
    assert "has reached a steady state" in service["events"][0]["message"]

    events = [m["body"]["event"] for m in receive(aws, stack["SinkUrl"], 4, source="aws.ecs")]
    assert {e["source"] for e in events} == {"aws.ecs"}
    running = [e["detail"] for e in events if e["detail"]["lastStatus"] == "RUNNING"]
    assert len(running) == 2
    detail = running[0]
    assert detail["group"] == "service:green"
    assert detail["startedBy"] == deployment["id"]
    assert detail["desiredStatus"] == "RUNNING"
    assert detail["launchType"] == "FARGATE"
    assert detail["clusterArn"].endswith(":cluster/emulated")
    assert detail["containers"][0]["name"] == "web"
    assert detail["containers"][0]["lastStatus"] == "RUNNING"
    assert detail["version"] == 2
    assert {e["detail"]["lastStatus"] for e in events} == {"PENDING", "RUNNING"}


def test_update_service_replaces_the_deployment(
    aws: Emulator, stack: dict[str, str], network: dict[str, str]
) -> None:
    target_group = _target_group(aws, network, "blue-tg")
    _create(aws, network, "blue", target_group=target_group, image="web:1", count=1)
    assert aws.wait_for_idle(10)
    [old_deployment] = _service(aws, "blue")["deployments"]
    [old_task] = _running_tasks(aws, "blue")
    purge(aws, stack["SinkUrl"])
    aws.options.task_start_seconds = 60.0

    aws.client("ecs").update_service(
        cluster="emulated", service="blue", taskDefinition=_task_definition(aws, "web:2")
    )
    during = _service(aws, "blue")["deployments"]
    assert [d["status"] for d in during] == ["PRIMARY", "ACTIVE"]
    assert aws.wait_for_idle(10)

    [deployment] = _service(aws, "blue")["deployments"]
    assert deployment["id"] != old_deployment["id"]
    [task] = _running_tasks(aws, "blue")
    assert task["startedBy"] == deployment["id"]
    assert task["taskArn"] != old_task["taskArn"]
    stopped_arns = aws.client("ecs").list_tasks(
        cluster="emulated", serviceName="blue", desiredStatus="STOPPED"
    )
    assert stopped_arns["taskArns"] == [old_task["taskArn"]]
    stopped = aws.client("ecs").describe_tasks(cluster="emulated", tasks=[old_task["taskArn"]])["tasks"][0]
    assert stopped["lastStatus"] == "STOPPED"
    assert stopped["desiredStatus"] == "STOPPED"
    health = aws.client("elbv2").describe_target_health(TargetGroupArn=target_group)[
        "TargetHealthDescriptions"
    ]
    assert len(health) == 1
    events = [m["body"]["event"]["detail"] for m in receive(aws, stack["SinkUrl"], 3, source="aws.ecs")]
    assert [e["lastStatus"] for e in events if e["taskArn"] == old_task["taskArn"]] == ["STOPPED"]

    aws.client("ecs").update_service(cluster="emulated", service="blue", desiredCount=3)
    assert aws.wait_for_idle(10)
    [scaled] = _service(aws, "blue")["deployments"]
    assert scaled["id"] == deployment["id"]
    assert scaled["runningCount"] == 3

    aws.client("ecs").update_service(cluster="emulated", service="blue", forceNewDeployment=True)
    assert aws.wait_for_idle(10)
    [forced] = _service(aws, "blue")["deployments"]
    assert forced["id"] != deployment["id"]
    assert len(_running_tasks(aws, "blue")) == 3


def test_target_health_override(aws: Emulator, network: dict[str, str]) -> None:
    target_group = _target_group(aws, network, "sick-tg")
    aws.options.target_health[target_group] = "unhealthy"
    _create(aws, network, "sick", target_group=target_group, image="web:1", count=1)
    assert aws.wait_for_idle(10)
    [health] = aws.client("elbv2").describe_target_health(TargetGroupArn=target_group)[
        "TargetHealthDescriptions"
    ]
    assert health["TargetHealth"]["State"] == "unhealthy"
    assert health["TargetHealth"]["Reason"] == "Target.FailedHealthChecks"
    aws.options.target_health.clear()
    [health] = aws.client("elbv2").describe_target_health(TargetGroupArn=target_group)[
        "TargetHealthDescriptions"
    ]
    assert health["TargetHealth"]["State"] == "healthy"
