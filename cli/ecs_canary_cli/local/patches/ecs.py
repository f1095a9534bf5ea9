"""ECS: the service scheduler runs deployments and tasks; ListTasks filters as ECS does."""

from __future__ import annotations

import copy
import functools
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any, cast

from moto.ecs.models import Container, EC2ContainerServiceBackend, Task
from moto.elbv2.models import elbv2_backends
from moto.moto_api import state_manager

from ._core import (
    CONFIG,
    _install,
    _iso,
    _now,
    _put_event,
)

LOG = logging.getLogger(__name__)


# -- ECS and Elastic Load Balancing ---------------------------------------------------------------


_ECS_LOCK = threading.RLock()


def _ecs_locked(func: Callable[..., Any]) -> Callable[..., Any]:
    """Serialize the emulated ECS scheduler's changes to services and tasks."""

    @functools.wraps(func)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _ECS_LOCK:
            return func(*args, **kwargs)

    return locked


def _task_ip(task: Any) -> str:
    for attachment in getattr(task, "attachments", []) or []:
        for detail in attachment.get("details", []):
            if detail.get("name") == "privateIPv4Address":
                return str(detail["value"])
    ip = getattr(task, "_emulator_ip", None)
    if ip is None:
        rng = CONFIG.options.rng
        ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        task._emulator_ip = ip
    return str(ip)


def _task_event(backend: Any, task: Any) -> None:
    """Publish an ``ECS Task State Change`` event shaped as ECS's."""
    task._emulator_version = getattr(task, "_emulator_version", 0) + 1
    now = _now()
    task._emulator_updated = now
    definition = backend.describe_task_definition(task.task_definition_arn)
    task_id = task.task_arn.rsplit("/", 1)[-1]
    containers = []
    for container in task.containers:
        containers.append(
            {
                "containerArn": container.container_arn,
                "lastStatus": container.last_status,
                "name": container.name,
                "image": container.image,
                "taskArn": task.task_arn,
                "networkInterfaces": [
                    {"attachmentId": a["id"], "privateIpv4Address": _task_ip(task)} for a in task.attachments
                ],
                "cpu": str(container.cpu or 0),
                **({"memory": str(container.memory)} if container.memory else {}),
                **({"exitCode": 0} if container.last_status == "STOPPED" else {}),
            }
        )
    detail: dict[str, Any] = {
        "attachments": copy.deepcopy(task.attachments),
        "attributes": [{"name": "ecs.cpu-architecture", "value": "x86_64"}],
        "availabilityZone": f"{task.region_name}a",
        "clusterArn": task.cluster_arn,
        "containers": containers,
        "createdAt": _iso(getattr(task, "_emulator_created", now)),
        "launchType": task.launch_type or "EC2",
        "cpu": str(definition.cpu) if definition.cpu else None,
        "memory": str(definition.memory) if definition.memory else None,
        "desiredStatus": task.desired_status,
        "enableExecuteCommand": False,
        "group": task.group,
        "lastStatus": task.last_status,
        "overrides": {"containerOverrides": [{"name": c.name} for c in task.containers]},
        "startedBy": task.started_by,
        "taskArn": task.task_arn,
        "taskDefinitionArn": task.task_definition_arn,
        "updatedAt": _iso(now),
        "version": task._emulator_version,
    }
    if task.launch_type == "FARGATE":
        detail["platformVersion"] = task.platform_version or "1.4.0"
    if task.last_status in ("RUNNING", "STOPPED") and getattr(task, "_emulator_started", None):
        detail["startedAt"] = _iso(task._emulator_started)
        detail["connectivity"] = "CONNECTED"
        detail["connectivityAt"] = _iso(task._emulator_started)
    if task.last_status == "STOPPED":
        detail["stoppedAt"] = _iso(now)
        detail["stoppingAt"] = _iso(now)
        detail["executionStoppedAt"] = _iso(now)
        detail["stoppedReason"] = task.stopped_reason
        detail["stopCode"] = getattr(task, "_emulator_stop_code", "UserInitiated")
    detail = {k: v for k, v in detail.items() if v is not None}
    _put_event(
        backend.account_id,
        backend.region_name,
        "aws.ecs",
        "ECS Task State Change",
        resources=[task.task_arn],
        detail=detail,
    )
    LOG.debug("ECS task %s %s (%s)", task_id, task.last_status, task.group)


def _service_event(service: Any, message: str) -> None:
    service.events.insert(
        0, {"id": str(uuid.uuid4()), "createdAt": _now(), "message": f"(service {service.name}) {message}"}
    )
    del service.events[100:]


def _register_targets(backend: Any, service: Any, task: Any) -> None:

    elb = elbv2_backends[backend.account_id][backend.region_name]
    task._emulator_targets = []
    for lb in service.load_balancers or []:
        arn = lb.get("targetGroupArn")
        group = elb.target_groups.get(arn) if arn else None
        if group is None:
            continue
        if group.target_type == "ip":
            target = {"Id": _task_ip(task), "Port": int(lb.get("containerPort") or group.port or 80)}
        else:
            instance = getattr(task, "_emulator_instance", None)
            if instance is None:
                instance = "i-" + "".join(CONFIG.options.rng.choice("0123456789abcdef") for _ in range(17))
                task._emulator_instance = instance
            target = {"Id": instance, "Port": 32768 + CONFIG.options.rng.randrange(28000)}
        elb.register_targets(arn, [target])
        task._emulator_targets.append((arn, target))


def _deregister_targets(backend: Any, task: Any) -> None:

    elb = elbv2_backends[backend.account_id][backend.region_name]
    for arn, target in getattr(task, "_emulator_targets", []):
        try:
            elb.deregister_targets(arn, [target])
        except Exception:
            LOG.debug("target %s already gone from %s", target, arn)
    task._emulator_targets = []


def _service_tasks(backend: Any, service: Any, *, deployment_id: str | None = None) -> list[Any]:
    tasks = backend.tasks.get(service.cluster_name, {}).values()
    return [
        t
        for t in tasks
        if t.group == f"service:{service.name}"
        and t.desired_status == "RUNNING"
        and (deployment_id is None or t.started_by == deployment_id)
    ]


def _stop_task(backend: Any, task: Any, reason: str, code: str = "ServiceSchedulerInitiated") -> None:
    _deregister_targets(backend, task)
    task.desired_status = "STOPPED"
    task.last_status = "STOPPED"
    task.stopped_reason = reason
    task._emulator_stop_code = code
    for container in task.containers:
        container.last_status = "STOPPED"
    _task_event(backend, task)


def _start_tasks(backend: Any, service: Any, deployment: dict[str, Any], count: int) -> list[Any]:

    cluster = backend._get_cluster(service.cluster_name)
    definition = backend.describe_task_definition(deployment["taskDefinition"])
    network = service.network_configuration or None
    if definition.network_mode != "awsvpc":
        network = None
    started = []
    for _ in range(count):
        task: Any = Task(
            cluster,
            definition,
            None,
            None,
            backend=backend,
            group=f"service:{service.name}",
            launch_type=service.launch_type or "",
            started_by=deployment["id"],
            networking_configuration=network,
            platform_version=service.platform_version,
        )
        task.last_status = "PENDING"
        task._emulator_created = _now()
        containers = []
        task_id = task.task_arn.rsplit("/", 1)[-1]
        for container_def in definition.container_definitions or [{}]:
            container = cast(Any, Container)(definition)
            container.name = container_def.get("name")
            container.image = container_def.get("image")
            container.cpu = container_def.get("cpu", 0)
            container.memory = container_def.get("memory")
            container.container_arn = (
                f"arn:{definition.arn.split(':')[1]}:ecs:{task.region_name}:{backend.account_id}:"
                f"container/{cluster.name}/{task_id}/{uuid.uuid4()}"
            )
            container.task_arn = task.task_arn
            container.last_status = "PENDING"
            containers.append(container)
        task.containers = containers
        backend.tasks.setdefault(cluster.name, {})[task.task_arn] = task
        _task_event(backend, task)
        started.append(task)
    return started


@_ecs_locked
def _run_tasks(backend: Any, service: Any, tasks: list[Any]) -> None:
    """PENDING tasks come up: RUNNING, in their target groups; the rollout then completes."""
    now = _now()
    running = []
    for task in tasks:
        if task.desired_status != "RUNNING":
            continue
        task.last_status = "RUNNING"
        task._emulator_started = now
        for container in task.containers:
            container.last_status = "RUNNING"
        _register_targets(backend, service, task)
        _task_event(backend, task)
        running.append(task)
    if running:
        names = ", ".join(f"(task {t.task_arn.rsplit('/', 1)[-1]})" for t in running)
        _service_event(service, f"has started {len(running)} tasks: {names}.")
    _settle(backend, service)


def _settle(backend: Any, service: Any) -> None:
    """When the PRIMARY deployment runs its desired count, older deployments drain and go."""
    primary = next((d for d in service.deployments if d["status"] == "PRIMARY"), None)
    if primary is None:
        return
    mine = _service_tasks(backend, service, deployment_id=primary["id"])
    running = [t for t in mine if t.last_status == "RUNNING"]
    primary["runningCount"] = len(running)
    primary["pendingCount"] = len(mine) - len(running)
    primary["updatedAt"] = _now()
    if len(running) < primary["desiredCount"]:
        return
    for old in [d for d in service.deployments if d is not primary]:
        for task in _service_tasks(backend, service, deployment_id=old["id"]):
            _stop_task(backend, task, f"Scaling activity initiated by (deployment {primary['id']})")
    service.deployments = [primary]
    primary["rolloutState"] = "COMPLETED"
    primary["rolloutStateReason"] = f"ECS deployment {primary['id']} completed."
    service.running_count = len(running)
    service.pending_count = 0
    _service_event(service, f"deployment completed: {primary['id']}.")
    _service_event(service, "has reached a steady state.")


def _new_deployment(backend: Any, service: Any) -> None:
    now = _now()
    for old in service.deployments:
        old["status"] = "ACTIVE"
        old["updatedAt"] = now
    deployment = {
        "id": "ecs-svc/" + "".join(str(CONFIG.options.rng.randrange(10)) for _ in range(19)),
        "status": "PRIMARY",
        "taskDefinition": service.task_definition,
        "desiredCount": service.desired_count,
        "pendingCount": 0,
        "runningCount": 0,
        "failedTasks": 0,
        "createdAt": now,
        "updatedAt": now,
        "launchType": service.launch_type,
        "platformVersion": service.platform_version,
        "networkConfiguration": service.network_configuration or None,
        "rolloutState": "IN_PROGRESS",
        "rolloutStateReason": "ECS deployment in progress.",
    }
    deployment = {k: v for k, v in deployment.items() if v is not None}
    service.deployments = [deployment, *service.deployments]
    _scale(backend, service, deployment)


def _scale(backend: Any, service: Any, deployment: dict[str, Any]) -> None:
    """Start or stop tasks of ``deployment`` until it has its desired count."""
    mine = _service_tasks(backend, service, deployment_id=deployment["id"])
    missing = deployment["desiredCount"] - len(mine)
    if missing < 0:
        for task in sorted(mine, key=lambda t: t.last_status == "RUNNING")[:-missing]:
            _stop_task(backend, task, "Service scaled in")
    started = _start_tasks(backend, service, deployment, missing) if missing > 0 else []
    deployment["pendingCount"] = len(started) + len([t for t in mine if t.last_status == "PENDING"])
    service.pending_count = deployment["pendingCount"]
    executor = CONFIG.ecs
    if started and executor is not None:
        executor.submit(lambda: _run_tasks(backend, service, started), CONFIG.options.task_start_seconds)
    else:
        _settle(backend, service)


def run_ecs_service_deployments() -> None:
    """AWS: the ECS service scheduler turns CreateService and UpdateService (new task definition
    or forceNewDeployment) into a new PRIMARY deployment (``ecs-svc/<19 digits>``) whose tasks
    (``startedBy`` = deployment id, ``group`` = ``service:<name>``) go PENDING then RUNNING,
    join the service's target groups, and replace the previous deployment's tasks, which are
    deregistered and STOPPED; a desiredCount change scales the PRIMARY deployment in place. Every
    task state change is an ``ECS Task State Change`` event. moto starts no tasks and its tasks
    read as STOPPED as soon as they are described.
    """
    # Tasks keep the status the scheduler gives them (moto would advance them to STOPPED).
    state_manager.set_transition(
        model_name="ecs::task", transition={"progression": "manual", "times": 10**12}
    )

    def create_service(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        @_ecs_locked
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            service = original(self, *args, **kwargs)
            service.running_count = 0
            service.pending_count = 0
            if service.deployment_controller.get("type", "ECS") == "ECS" and service.task_definition:
                service.deployments = []
                _new_deployment(self, service)
            return service

        return wrapper

    def update_service(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        @_ecs_locked
        def wrapper(self: Any, service_properties: dict[str, Any]) -> Any:
            cluster = service_properties.get("cluster", "default")
            name = str(service_properties.get("service", "")).split("/")[-1]
            before = self._get_service(cluster, name)
            deployments = copy.deepcopy(before.deployments)
            running, pending = before.running_count, before.pending_count
            old_definition, old_count = before.task_definition, before.desired_count
            force = bool(service_properties.get("force_new_deployment"))
            service = original(self, service_properties)
            service.deployments = deployments
            service.running_count, service.pending_count = running, pending
            if service.deployment_controller.get("type", "ECS") != "ECS" or not service.task_definition:
                return service
            if service.task_definition != old_definition or force or not deployments:
                _new_deployment(self, service)
            elif service.desired_count != old_count:
                primary = next(d for d in service.deployments if d["status"] == "PRIMARY")
                primary["desiredCount"] = service.desired_count
                _scale(self, service, primary)
            return service

        return wrapper

    def delete_service(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        @_ecs_locked
        def wrapper(self: Any, cluster_name: str, service_name: str, force: bool) -> Any:
            service = self._get_service(cluster_name, service_name)
            if service.desired_count == 0 or force:
                for task in _service_tasks(self, service):
                    _stop_task(self, task, "Service deleted")
            return original(self, cluster_name, service_name, force)

        return wrapper

    def stop_task(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        @_ecs_locked
        def wrapper(self: Any, cluster_str: str, task_str: str, reason: str) -> Any:
            task = original(self, cluster_str, task_str, reason)
            task.desired_status = "RUNNING"
            task.last_status = "RUNNING"
            _stop_task(self, task, reason, "UserInitiated")
            return task

        return wrapper

    _install(EC2ContainerServiceBackend, "create_service", create_service, "scheduler")
    _install(EC2ContainerServiceBackend, "update_service", update_service, "scheduler")
    _install(EC2ContainerServiceBackend, "delete_service", delete_service, "scheduler")
    _install(EC2ContainerServiceBackend, "stop_task", stop_task, "scheduler")


def list_tasks_like_ecs() -> None:
    """AWS: ListTasks lists tasks whose desired status is RUNNING unless ``desiredStatus`` says
    otherwise, and ``serviceName`` keeps the tasks of that service. moto lists every task and
    ignores ``serviceName``.
    """

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def list_tasks(  # noqa: PLR0917 - the signature of the moto method it wraps
            self: Any,
            cluster_str: str | None = None,
            container_instance: str | None = None,
            family: str | None = None,
            started_by: str | None = None,
            service_name: str | None = None,
            desiredStatus: str | None = None,
        ) -> Any:
            tasks = original(
                self, cluster_str, container_instance, family, started_by, None, desiredStatus or "RUNNING"
            )
            if service_name:
                group = "service:" + service_name.rsplit("/", 1)[-1]
                tasks = [t for t in tasks if t.group == group]
            return tasks

        return list_tasks

    _install(EC2ContainerServiceBackend, "list_tasks", make, "filters")
