"""stop_tasks_whose_essential_container_exits and replace_tasks_failing_load_balancer_health_checks.

Some tests pause the emulated ECS scheduler (its one worker waits) while they look: it cannot bring
a replacement task up meanwhile, so the PENDING state is observed without racing the clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from conftest import purge, receive
from ecs_canary_cli.local import Emulator, control
from ecs_canary_cli.local.patches import CONFIG

CLUSTER = "exits"


@pytest.fixture(scope="module")
def network(aws: Emulator) -> dict[str, str]:
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.43.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.43.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="exits", Description="tasks", VpcId=vpc)["GroupId"]
    aws.client("ecs").create_cluster(clusterName=CLUSTER)
    return {"vpc": vpc, "subnet": subnet, "group": group}


@contextmanager
def _scheduler_paused() -> Iterator[None]:
    """Keep the scheduler's single worker busy, so no queued task start runs until the block ends."""
    assert CONFIG.ecs is not None
    busy, release = threading.Event(), threading.Event()

    def hold() -> None:
        busy.set()
        release.wait(60)

    CONFIG.ecs.submit(hold)
    assert busy.wait(10)
    try:
        yield
    finally:
        release.set()


def _control(aws: Emulator, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """(HTTP status, answer) of the emulator route ``POST /_emulator/<path>``."""
    try:
        return 200, control.call(aws.endpoint, "POST", path, body)
    except control.ControlError as exc:
        return exc.status, {"message": str(exc)}


def _task_definition(aws: Emulator, image: str, *, sidecar: bool = False) -> str:
    web = {"name": "web", "image": image, "memory": 512, "portMappings": [{"containerPort": 8080}]}
    containers = (
        [{"name": "log-router", "image": "fluent-bit", "essential": False}, web] if sidecar else [web]
    )
    response = aws.client("ecs").register_task_definition(
        family="exits-web",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=containers,
    )
    return str(response["taskDefinition"]["taskDefinitionArn"])


def _target_group(aws: Emulator, network: dict[str, str], name: str) -> str:
    group = aws.client("elbv2").create_target_group(
        Name=name, Protocol="HTTP", Port=8080, VpcId=network["vpc"], TargetType="ip"
    )
    return str(group["TargetGroups"][0]["TargetGroupArn"])


def _create(
    aws: Emulator, network: dict[str, str], name: str, target_group: str, *, count: int, sidecar: bool = False
) -> None:
    aws.client("ecs").create_service(
        cluster=CLUSTER,
        serviceName=name,
        taskDefinition=_task_definition(aws, "web:1", sidecar=sidecar),
        desiredCount=count,
        launchType="FARGATE",
        loadBalancers=[{"targetGroupArn": target_group, "containerName": "web", "containerPort": 8080}],
        networkConfiguration={
            "awsvpcConfiguration": {"subnets": [network["subnet"]], "securityGroups": [network["group"]]}
        },
    )
    assert aws.wait_for_idle(10)


def _task_events(
    aws: Emulator, queue_url: str, task_arns: set[str], until: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """The Task State Change events (details) of ``task_arns`` the sink records, each once, as soon
    as ``until`` holds for them. The sink may still hold other tests' events, and delivery to the
    recording function is at least once (a retried delivery records an event twice)."""
    unique: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for message in receive(aws, queue_url, 1, timeout=0.5, source="aws.ecs"):
            event = message["body"]["event"]
            if event["detail"]["taskArn"] in task_arns:
                unique.setdefault(event["id"], event["detail"])
        if until(list(unique.values())):
            break
    return sorted(unique.values(), key=lambda d: (d["taskArn"], d["version"]))


def _has(details: list[dict[str, Any]], arn: str, status: str) -> bool:
    return any(d["taskArn"] == arn and d["lastStatus"] == status for d in details)


def _service(aws: Emulator, name: str) -> dict[str, Any]:
    return dict(aws.client("ecs").describe_services(cluster=CLUSTER, services=[name])["services"][0])


def _tasks(aws: Emulator, name: str, desired: str = "RUNNING") -> list[dict[str, Any]]:
    ecs = aws.client("ecs")
    arns = ecs.list_tasks(cluster=CLUSTER, serviceName=name, desiredStatus=desired)["taskArns"]
    return list(ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"]) if arns else []


def _describe_task(aws: Emulator, arn: str) -> dict[str, Any]:
    return dict(aws.client("ecs").describe_tasks(cluster=CLUSTER, tasks=[arn])["tasks"][0])


def _targets(aws: Emulator, target_group: str) -> list[dict[str, Any]]:
    health = aws.client("elbv2").describe_target_health(TargetGroupArn=target_group)
    return list(health["TargetHealthDescriptions"])


def _task_ip(task: dict[str, Any]) -> str:
    details = task["attachments"][0]["details"]
    return str(next(d["value"] for d in details if d["name"] == "privateIPv4Address"))


def test_essential_container_exit_stops_the_task_and_a_replacement_starts(
    aws: Emulator, stack: dict[str, str], network: dict[str, str]
) -> None:
    target_group = _target_group(aws, network, "crashy-tg")
    _create(aws, network, "crashy", target_group, count=2)
    [deployment] = _service(aws, "crashy")["deployments"]
    victim, survivor = _tasks(aws, "crashy")
    purge(aws, stack["SinkUrl"])

    with _scheduler_paused():
        status, answer = _control(
            aws,
            "ecs/exit-container",
            {"cluster": CLUSTER, "task": victim["taskArn"], "exitCode": 137, "reason": "OutOfMemoryError"},
        )
        assert status == 200, answer
        assert answer == {
            "taskArn": victim["taskArn"],
            "stopCode": "EssentialContainerExited",
            "replacementScheduled": True,
        }
        during = _service(aws, "crashy")
        [current] = during["deployments"]
        assert current["rolloutState"] == "COMPLETED"  # a replacement is no new rollout
        assert (current["runningCount"], current["pendingCount"], current["failedTasks"]) == (1, 1, 1)
        assert (during["runningCount"], during["pendingCount"]) == (1, 1)
        [replacement] = [t for t in _tasks(aws, "crashy") if t["taskArn"] != survivor["taskArn"]]
        assert replacement["lastStatus"] == "PENDING"
        assert replacement["startedBy"] == deployment["id"]
        assert [t["Target"]["Id"] for t in _targets(aws, target_group)] == [_task_ip(survivor)]

    stopped = _describe_task(aws, victim["taskArn"])
    assert (stopped["lastStatus"], stopped["desiredStatus"]) == ("STOPPED", "STOPPED")
    assert stopped["stopCode"] == "EssentialContainerExited"
    assert stopped["stoppedReason"] == "Essential container in task exited"
    assert stopped["stoppedAt"] >= stopped["startedAt"]
    [container] = stopped["containers"]
    assert (container["lastStatus"], container["exitCode"], container["reason"]) == (
        "STOPPED",
        137,
        "OutOfMemoryError",
    )

    assert aws.wait_for_idle(10)
    service = _service(aws, "crashy")
    [settled] = service["deployments"]
    assert settled["id"] == deployment["id"]
    assert settled["rolloutState"] == "COMPLETED"
    assert (settled["runningCount"], settled["pendingCount"], settled["failedTasks"]) == (2, 0, 1)
    assert (service["runningCount"], service["pendingCount"]) == (2, 0)
    running = _tasks(aws, "crashy")
    assert {t["taskArn"] for t in running} == {survivor["taskArn"], replacement["taskArn"]}
    assert all(t["lastStatus"] == "RUNNING" and "exitCode" not in t["containers"][0] for t in running)
    assert sorted(t["Target"]["Id"] for t in _targets(aws, target_group)) == sorted(
        _task_ip(t) for t in running
    )
    messages = [e["message"] for e in service["events"]]
    victim_id = victim["taskArn"].rsplit("/", 1)[-1]
    assert f"(service crashy) has stopped 1 running tasks: (task {victim_id})." in messages
    assert messages[0] == "(service crashy) has reached a steady state."
    assert sum("deployment completed" in m for m in messages) == 1

    events = _task_events(
        aws,
        stack["SinkUrl"],
        {victim["taskArn"], replacement["taskArn"]},
        lambda found: (
            _has(found, victim["taskArn"], "STOPPED") and _has(found, replacement["taskArn"], "RUNNING")
        ),
    )
    [stop_event] = [d for d in events if d["taskArn"] == victim["taskArn"] and d["lastStatus"] == "STOPPED"]
    assert (stop_event["lastStatus"], stop_event["desiredStatus"]) == ("STOPPED", "STOPPED")
    assert stop_event["stopCode"] == "EssentialContainerExited"
    assert stop_event["stoppedReason"] == "Essential container in task exited"
    assert stop_event["containers"][0]["exitCode"] == 137
    assert stop_event["containers"][0]["reason"] == "OutOfMemoryError"
    started = [d for d in events if d["taskArn"] == replacement["taskArn"]]
    assert [d["lastStatus"] for d in started] == ["PENDING", "RUNNING"]
    assert {d["startedBy"] for d in started} == {deployment["id"]}


def test_failed_health_checks_stop_the_task_and_a_replacement_starts(
    aws: Emulator, stack: dict[str, str], network: dict[str, str]
) -> None:
    target_group = _target_group(aws, network, "flaky-tg")
    _create(aws, network, "flaky", target_group, count=1)
    [deployment] = _service(aws, "flaky")["deployments"]
    [victim] = _tasks(aws, "flaky")
    purge(aws, stack["SinkUrl"])

    with _scheduler_paused():
        status, answer = _control(
            aws,
            "ecs/fail-health-checks",
            {"cluster": f"arn:aws:ecs:us-east-1:123456789012:cluster/{CLUSTER}", "task": victim["taskArn"]},
        )
        assert status == 200, answer
        assert answer == {
            "taskArn": victim["taskArn"],
            "stopCode": "ServiceSchedulerInitiated",
            "replacementScheduled": True,
        }
        assert _targets(aws, target_group) == []
        during = _service(aws, "flaky")
        assert (during["runningCount"], during["pendingCount"]) == (0, 1)

    reason = f"Task failed ELB health checks in (target-group {target_group})"
    stopped = _describe_task(aws, victim["taskArn"])
    assert (stopped["lastStatus"], stopped["stopCode"], stopped["stoppedReason"]) == (
        "STOPPED",
        "ServiceSchedulerInitiated",
        reason,
    )
    assert aws.wait_for_idle(10)
    service = _service(aws, "flaky")
    [settled] = service["deployments"]
    assert (settled["id"], settled["runningCount"], settled["failedTasks"]) == (deployment["id"], 1, 1)
    [replacement] = _tasks(aws, "flaky")
    assert replacement["taskArn"] != victim["taskArn"]
    assert replacement["startedBy"] == deployment["id"]
    [target] = _targets(aws, target_group)
    assert (target["Target"]["Id"], target["TargetHealth"]["State"]) == (_task_ip(replacement), "healthy")
    messages = [e["message"] for e in service["events"]]
    assert (
        f"(service flaky) (port 8080) is unhealthy in (target-group {target_group}) "
        "due to (reason Health checks failed)." in messages
    )
    events = _task_events(
        aws, stack["SinkUrl"], {victim["taskArn"]}, lambda found: _has(found, victim["taskArn"], "STOPPED")
    )
    [stop_event] = [d for d in events if d["lastStatus"] == "STOPPED"]
    assert (stop_event["stopCode"], stop_event["stoppedReason"]) == ("ServiceSchedulerInitiated", reason)


def test_an_old_deployments_task_exiting_mid_rollout_does_not_complete_it_twice(
    aws: Emulator, network: dict[str, str]
) -> None:
    target_group = _target_group(aws, network, "rolling-tg")
    _create(aws, network, "rolling", target_group, count=2)
    [old] = _service(aws, "rolling")["deployments"]
    old_task = _tasks(aws, "rolling")[0]

    with _scheduler_paused():
        aws.client("ecs").update_service(
            cluster=CLUSTER, service="rolling", taskDefinition=_task_definition(aws, "web:2")
        )
        status, answer = _control(
            aws, "ecs/exit-container", {"cluster": CLUSTER, "task": old_task["taskArn"]}
        )
        assert (status, answer["replacementScheduled"]) == (200, True)
        primary, active = _service(aws, "rolling")["deployments"]
        assert (primary["status"], primary["rolloutState"], primary["failedTasks"]) == (
            "PRIMARY",
            "IN_PROGRESS",
            0,
        )
        assert (active["id"], active["runningCount"], active["pendingCount"]) == (old["id"], 1, 1)
        assert active["failedTasks"] == 1
        assert _describe_task(aws, old_task["taskArn"])["containers"][0]["exitCode"] == 1

    assert aws.wait_for_idle(10)
    service = _service(aws, "rolling")
    [settled] = service["deployments"]
    assert (settled["id"], settled["rolloutState"]) == (primary["id"], "COMPLETED")
    assert (settled["runningCount"], service["runningCount"], service["pendingCount"]) == (2, 2, 0)
    assert {t["startedBy"] for t in _tasks(aws, "rolling")} == {primary["id"]}
    stopped = _tasks(aws, "rolling", "STOPPED")  # both old tasks and the old deployment's replacement
    assert len(stopped) == 3
    assert {t["startedBy"] for t in stopped} == {old["id"]}
    messages = [e["message"] for e in service["events"]]
    assert messages.count(f"(service rolling) deployment completed: {primary['id']}.") == 1
    assert len(_targets(aws, target_group)) == 2


def test_a_non_essential_container_exit_leaves_the_task_running(
    aws: Emulator, stack: dict[str, str], network: dict[str, str]
) -> None:
    target_group = _target_group(aws, network, "sidecar-tg")
    _create(aws, network, "sidecar", target_group, count=1, sidecar=True)
    [task] = _tasks(aws, "sidecar")

    body = {"cluster": CLUSTER, "task": task["taskArn"].rsplit("/", 1)[-1], "container": "log-router"}
    status, answer = _control(aws, "ecs/exit-container", {**body, "exitCode": 0})
    assert (status, answer) == (
        200,
        {"taskArn": task["taskArn"], "stopCode": None, "replacementScheduled": False},
    )
    described = _describe_task(aws, task["taskArn"])
    assert (described["lastStatus"], described["desiredStatus"]) == ("RUNNING", "RUNNING")
    containers = {c["name"]: c for c in described["containers"]}
    assert (containers["log-router"]["lastStatus"], containers["log-router"]["exitCode"]) == ("STOPPED", 0)
    assert containers["web"]["lastStatus"] == "RUNNING"
    events = _task_events(aws, stack["SinkUrl"], {task["taskArn"]}, lambda found: len(found) >= 3)
    assert [(d["lastStatus"], d["version"]) for d in events] == [
        ("PENDING", 1),
        ("RUNNING", 2),
        ("RUNNING", 3),
    ]
    assert [c["lastStatus"] for c in events[-1]["containers"]] == ["STOPPED", "RUNNING"]
    assert events[-1]["containers"][0]["exitCode"] == 0
    assert _control(aws, "ecs/exit-container", body)[0] == 409  # it has exited already

    # Without "container", the first essential container exits (not the sidecar listed before it).
    status, answer = _control(aws, "ecs/exit-container", {"cluster": CLUSTER, "task": task["taskArn"]})
    assert (status, answer["stopCode"]) == (200, "EssentialContainerExited")
    described = _describe_task(aws, task["taskArn"])
    assert {c["name"]: c["exitCode"] for c in described["containers"]} == {"log-router": 0, "web": 1}
    assert aws.wait_for_idle(10)
    assert _service(aws, "sidecar")["deployments"][0]["failedTasks"] == 1


def test_a_standalone_task_is_not_replaced(aws: Emulator, network: dict[str, str]) -> None:
    ecs = aws.client("ecs")
    [task] = ecs.run_task(
        cluster=CLUSTER,
        taskDefinition=_task_definition(aws, "batch:1"),
        launchType="FARGATE",
        networkConfiguration={
            "awsvpcConfiguration": {"subnets": [network["subnet"]], "securityGroups": [network["group"]]}
        },
    )["tasks"]
    status, answer = _control(
        aws, "ecs/exit-container", {"cluster": CLUSTER, "task": task["taskArn"], "exitCode": 2}
    )
    assert (status, answer["stopCode"], answer["replacementScheduled"]) == (
        200,
        "EssentialContainerExited",
        False,
    )
    stopped = _describe_task(aws, task["taskArn"])
    assert (stopped["lastStatus"], stopped["containers"][0]["exitCode"]) == ("STOPPED", 2)
    status, answer = _control(aws, "ecs/fail-health-checks", {"cluster": CLUSTER, "task": task["taskArn"]})
    assert status == 409
    assert "not RUNNING" in answer["message"]


def test_bad_requests_are_refused(aws: Emulator, network: dict[str, str]) -> None:
    target_group = _target_group(aws, network, "refuse-tg")
    _create(aws, network, "refuse", target_group, count=1)
    [task] = _tasks(aws, "refuse")
    arn = task["taskArn"]

    status, answer = _control(aws, "ecs/exit-container", {"cluster": "nowhere", "task": arn})
    assert (status, answer["message"]) == (404, "cluster nowhere not found")
    status, answer = _control(aws, "ecs/exit-container", {"cluster": CLUSTER, "task": "0123456789abcdef"})
    assert (status, answer["message"]) == (404, f"task 0123456789abcdef not found in cluster {CLUSTER}")
    status, answer = _control(aws, "ecs/exit-container", {"cluster": CLUSTER, "task": arn, "container": "db"})
    assert status == 404
    assert "has no container db (it has: web)" in answer["message"]
    assert _control(aws, "ecs/exit-container", {"cluster": CLUSTER, "task": arn, "exitCode": "1"})[0] == 400
    assert _control(aws, "ecs/exit-container", {"task": arn})[0] == 400
    status, answer = _control(
        aws, "ecs/fail-health-checks", {"cluster": CLUSTER, "task": arn, "targetGroupArn": "arn:aws:other"}
    )
    assert status == 409
    assert target_group in answer["message"]
    assert _describe_task(aws, arn)["lastStatus"] == "RUNNING"  # a refused request changes nothing

    aws.client("ecs").stop_task(cluster=CLUSTER, task=arn, reason="by hand")
    status, answer = _control(aws, "ecs/exit-container", {"cluster": CLUSTER, "task": arn})
    assert status == 409
    assert answer["message"] == f"task {arn} is STOPPED (desired STOPPED), not RUNNING"
