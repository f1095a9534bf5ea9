"""ECS: the service scheduler runs deployments and tasks; ListTasks filters as ECS does."""

from __future__ import annotations

import copy
import functools
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast

from moto.ecs.models import Container, EC2ContainerServiceBackend, Task, ecs_backends
from moto.elbv2.models import elbv2_backends
from moto.moto_api import state_manager

from ..control import ControlError, route
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
                **({"exitCode": _exit_code(container)} if container.last_status == "STOPPED" else {}),
                **({"reason": container.reason} if getattr(container, "reason", None) else {}),
            }
        )
    detail: dict[str, Any] = {
        "attachments": copy.deepcopy(task.attachments),
        "attributes": [{"name": "ecs.cpu-architecture", "value": "x86_64"}],
        "availabilityZone": f"{task.region_name}a",
        "clusterArn": task.cluster_arn,
        "containers": containers,
        "createdAt": _iso(getattr(task, "created_at", now)),
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
    if task.last_status in ("RUNNING", "STOPPED") and getattr(task, "started_at", None):
        detail["startedAt"] = _iso(task.started_at)
        detail["connectivity"] = "CONNECTED"
        detail["connectivityAt"] = _iso(task.started_at)
    if task.last_status == "STOPPED":
        stopped = getattr(task, "stopped_at", None) or now
        detail["stoppedAt"] = _iso(stopped)
        detail["stoppingAt"] = _iso(stopped)
        detail["executionStoppedAt"] = _iso(stopped)
        detail["stoppedReason"] = task.stopped_reason
        detail["stopCode"] = getattr(task, "stop_code", None) or "UserInitiated"
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


def _exit_code(container: Any) -> int:
    """A stopped container's exit code (0 when the agent stopped it and it exited cleanly)."""
    code = getattr(container, "exitCode", None)
    return 0 if code is None else int(code)


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
    """Stop ``task`` (DescribeTasks and its event show ``stopCode``, ``stoppedReason``, ``stoppedAt``)."""
    _deregister_targets(backend, task)
    now = _now()
    task.desired_status = "STOPPED"
    task.last_status = "STOPPED"
    task.stopped_reason = reason
    task.stop_code = code
    task.stopping_at = task.stopped_at = task.execution_stopped_at = now
    for container in task.containers:
        if container.last_status != "STOPPED":
            container.last_status = "STOPPED"
            container.exitCode = _exit_code(container)
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
        task.created_at = _now()
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
            container.exitCode = None  # a container has an exit code once it has stopped
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
        task.started_at = now
        for container in task.containers:
            container.last_status = "RUNNING"
        _register_targets(backend, service, task)
        _task_event(backend, task)
        running.append(task)
    if running:
        names = ", ".join(f"(task {t.task_arn.rsplit('/', 1)[-1]})" for t in running)
        _service_event(service, f"has started {len(running)} tasks: {names}.")
    _settle(backend, service)


def _recount(backend: Any, service: Any) -> None:
    """Each deployment's and the service's running and pending counts, from the tasks themselves."""
    now = _now()
    running_total = pending_total = 0
    for deployment in service.deployments:
        mine = _service_tasks(backend, service, deployment_id=deployment["id"])
        running = len([t for t in mine if t.last_status == "RUNNING"])
        if (deployment.get("runningCount"), deployment.get("pendingCount")) != (running, len(mine) - running):
            deployment["updatedAt"] = now
        deployment["runningCount"] = running
        deployment["pendingCount"] = len(mine) - running
        running_total += running
        pending_total += len(mine) - running
    service.running_count = running_total
    service.pending_count = pending_total


def _settle(backend: Any, service: Any) -> None:
    """When the PRIMARY deployment runs its desired count, older deployments drain and go; the
    rollout completes once (a replaced task brings the service back to a steady state, no more)."""
    _recount(backend, service)
    primary = next((d for d in service.deployments if d["status"] == "PRIMARY"), None)
    if primary is None or primary["runningCount"] < primary["desiredCount"]:
        return
    for old in [d for d in service.deployments if d is not primary]:
        for task in _service_tasks(backend, service, deployment_id=old["id"]):
            _stop_task(backend, task, f"Scaling activity initiated by (deployment {primary['id']})")
    service.deployments = [primary]
    _recount(backend, service)
    if primary["rolloutState"] != "COMPLETED":
        primary["rolloutState"] = "COMPLETED"
        primary["rolloutStateReason"] = f"ECS deployment {primary['id']} completed."
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


def _scale(backend: Any, service: Any, deployment: dict[str, Any]) -> list[Any]:
    """Start or stop tasks of ``deployment`` until it has its desired count; the tasks started."""
    mine = _service_tasks(backend, service, deployment_id=deployment["id"])
    missing = deployment["desiredCount"] - len(mine)
    if missing < 0:
        for task in sorted(mine, key=lambda t: t.last_status == "RUNNING")[:-missing]:
            _stop_task(backend, task, "Service scaled in")
    started = _start_tasks(backend, service, deployment, missing) if missing > 0 else []
    _recount(backend, service)
    executor = CONFIG.ecs
    if started and executor is not None:
        executor.submit(lambda: _run_tasks(backend, service, started), CONFIG.options.task_start_seconds)
    else:
        _settle(backend, service)
    return started


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


# -- Tasks that fail: the emulator API stands in for containers and health checks -------------------


def _text(body: dict[str, Any], key: str) -> str | None:
    """``body[key]`` as a non-empty string, None when absent; anything else is a bad request."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ControlError(f'"{key}" must be a non-empty string')
    return value


def _required(body: dict[str, Any], key: str) -> str:
    value = _text(body, key)
    if value is None:
        raise ControlError(f'"{key}" is required')
    return value


def _ecs_backends() -> Iterator[Any]:
    for regions in list(ecs_backends.values()):
        yield from list(regions.values())


def _arn_scope(reference: str) -> tuple[str, str] | None:
    """(account, region) of an ARN, None for a bare name or id."""
    parts = reference.split(":", 5)
    return (parts[4], parts[3]) if reference.startswith("arn:") and len(parts) == 6 else None


def _find_task(body: dict[str, Any]) -> tuple[Any, Any]:
    """(backend, task) that ``body["cluster"]`` and ``body["task"]`` (names, ids or ARNs) name."""
    cluster_ref, task_ref = _required(body, "cluster"), _required(body, "task")
    scopes = {scope for scope in (_arn_scope(cluster_ref), _arn_scope(task_ref)) if scope}
    cluster_name, task_id = cluster_ref.rsplit("/", 1)[-1], task_ref.rsplit("/", 1)[-1]
    backends = [
        b
        for b in _ecs_backends()
        if cluster_name in b.clusters and all((b.account_id, b.region_name) == s for s in scopes)
    ]
    if not backends:
        raise ControlError(f"cluster {cluster_ref} not found", 404)
    for backend in backends:
        for arn, task in backend.tasks.get(cluster_name, {}).items():
            if arn.rsplit("/", 1)[-1] == task_id:
                return backend, task
    raise ControlError(f"task {task_ref} not found in cluster {cluster_ref}", 404)


def _require_running(task: Any) -> None:
    if task.last_status != "RUNNING" or task.desired_status != "RUNNING":
        raise ControlError(
            f"task {task.task_arn} is {task.last_status} (desired {task.desired_status}), not RUNNING", 409
        )


def _task_service(backend: Any, task: Any) -> Any | None:
    """The service whose scheduler started ``task`` (its ``group`` is ``service:<name>``)."""
    group = str(task.group or "")
    if not group.startswith("service:"):
        return None
    name = group.split(":", 1)[1]
    return next(
        (s for s in backend.services.values() if s.cluster_name == task.cluster_name and s.name == name), None
    )


def _replace_failed_task(backend: Any, task: Any, reason: str, code: str) -> bool:
    """Stop a task that failed; its service counts the failure and starts a replacement in the same
    deployment (True when one was started)."""
    service = _task_service(backend, task)
    _stop_task(backend, task, reason, code)
    if service is None:
        return False
    _service_event(service, f"has stopped 1 running tasks: (task {task.task_arn.rsplit('/', 1)[-1]}).")
    deployment = next((d for d in service.deployments if d["id"] == task.started_by), None)
    if deployment is None:
        _recount(backend, service)
        return False
    deployment["failedTasks"] = int(deployment.get("failedTasks", 0)) + 1
    deployment["updatedAt"] = _now()
    return bool(_scale(backend, service, deployment))


def _exit_container(body: dict[str, Any]) -> dict[str, Any]:
    """``POST /_emulator/ecs/exit-container``: a container of a RUNNING task exits."""
    exit_code = body.get("exitCode", 1)
    if isinstance(exit_code, bool) or not isinstance(exit_code, int):
        raise ControlError('"exitCode" must be an integer')
    reason, name = _text(body, "reason"), _text(body, "container")
    with _ECS_LOCK:
        backend, task = _find_task(body)
        _require_running(task)
        definition = backend.describe_task_definition(task.task_definition_arn)
        essential = {
            d.get("name"): d.get("essential", True) is not False
            for d in definition.container_definitions or []
        }
        if name is None:
            container = next((c for c in task.containers if essential.get(c.name, True)), None)
        else:
            container = next((c for c in task.containers if c.name == name), None)
        if container is None:
            names = ", ".join(str(c.name) for c in task.containers)
            raise ControlError(f"task {task.task_arn} has no container {name} (it has: {names})", 404)
        if container.last_status == "STOPPED":
            raise ControlError(f"container {container.name} of task {task.task_arn} has already exited", 409)
        container.last_status = "STOPPED"
        container.exitCode = exit_code
        if reason is not None:
            container.reason = reason
        if not essential.get(container.name, True):
            _task_event(backend, task)
            return {"taskArn": task.task_arn, "stopCode": None, "replacementScheduled": False}
        replaced = _replace_failed_task(
            backend, task, "Essential container in task exited", "EssentialContainerExited"
        )
        return {"taskArn": task.task_arn, "stopCode": task.stop_code, "replacementScheduled": replaced}


def _fail_health_checks(body: dict[str, Any]) -> dict[str, Any]:
    """``POST /_emulator/ecs/fail-health-checks``: a RUNNING task fails a target group's health checks."""
    wanted = _text(body, "targetGroupArn")
    with _ECS_LOCK:
        backend, task = _find_task(body)
        _require_running(task)
        targets: list[tuple[str, dict[str, Any]]] = list(getattr(task, "_emulator_targets", []))
        if not targets:
            raise ControlError(f"task {task.task_arn} is registered in no target group", 409)
        match = next(((arn, target) for arn, target in targets if wanted in (None, arn)), None)
        if match is None:
            groups = ", ".join(arn for arn, _ in targets)
            raise ControlError(
                f"task {task.task_arn} is not registered in {wanted} (it is in: {groups})", 409
            )
        arn, target = match
        service = _task_service(backend, task)
        if service is not None:
            unhealthy = f"(port {target['Port']}) is unhealthy in (target-group {arn})"
            _service_event(service, f"{unhealthy} due to (reason Health checks failed).")
        replaced = _replace_failed_task(
            backend,
            task,
            f"Task failed ELB health checks in (target-group {arn})",
            "ServiceSchedulerInitiated",
        )
        return {"taskArn": task.task_arn, "stopCode": task.stop_code, "replacementScheduled": replaced}


def stop_tasks_whose_essential_container_exits() -> None:
    """AWS: when an essential container exits, ECS stops its task: stopCode
    ``EssentialContainerExited``, stoppedReason "Essential container in task exited", the container's
    ``exitCode`` (and ``reason``) set, the task deregistered from its target groups and a STOPPED
    ``ECS Task State Change`` event published; a service counts it in the deployment's
    ``failedTasks`` and its scheduler starts a replacement for the same deployment. A non-essential
    container's exit stops only that container. moto runs no containers, so none ever exits: the
    emulator API route ``POST /_emulator/ecs/exit-container`` makes one exit.
    """
    route("POST", "ecs/exit-container")(_exit_container)


def replace_tasks_failing_load_balancer_health_checks() -> None:
    """AWS: when a service's task fails its target group's health checks, the ECS service scheduler
    stops it (stopCode ``ServiceSchedulerInitiated``, stoppedReason "Task failed ELB health checks in
    (target-group <arn>)"), counts it in the deployment's ``failedTasks`` and starts a replacement.
    moto has no health checks: the emulator API route ``POST /_emulator/ecs/fail-health-checks`` makes
    a task fail them.
    """
    route("POST", "ecs/fail-health-checks")(_fail_health_checks)
