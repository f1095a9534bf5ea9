"""One emulator, network and traffic simulator for the whole e2e package.

Every test builds its own service pair (distinct names), so tests never share traffic weights,
alarms or deployment records, and runs it through the real trigger: ``UpdateService`` → ECS task
events → EventBridge rule → filter Lambda → Step Functions execution.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ecs_canary.registration import register
from ecs_canary.spec import parse_spec
from ecs_canary.store import Deployment, Pair, Store
from ecs_canary_cli.demo.infra import (
    GOOD,
    Behaviour,
    ClientFactory,
    Network,
    PairInfra,
    create_alb_pair,
    create_network,
    create_route53_pair,
    register_revision,
    release,
    spec_for,
)
from ecs_canary_cli.demo.runner import cached_clients, repo_template, wait_for_deployment
from ecs_canary_cli.demo.traffic import TrafficSimulator, read_weights
from ecs_canary_cli.local import Emulator, control

TIME_SCALE = 0.01
"""A 60 s bake lasts 0.6 s."""
STACK_PARAMETERS = {"LogLevel": "WARNING", "LockLeaseSeconds": "3"}
"""A short lease lets the sweeper (every 5 emulated minutes: 3 s) look at every lock."""
ROOT = Path(__file__).resolve().parents[2]
FAST_PLAN = "Linear50PercentEvery2Minutes"
"""Two steps (50%, 100%): enough to see a shift, a bake and a promotion.

Bakes of at least two emulated minutes keep the health gate's metric windows above one real second
(see ``ecs_canary_cli.demo.infra.DEFAULT_PLAN``)."""


@dataclass
class World:
    """The emulated account and helpers that act as a user (IaC, CI) and observe as an operator."""

    emulator: Emulator
    clients: ClientFactory
    network: Network
    store: Store
    traffic: TrafficSimulator
    state_machine_arn: str
    pairs: list[PairInfra] = field(default_factory=list)

    # ---- what a user does -----------------------------------------------------------------------

    def alb_pair(self, name: str) -> PairInfra:
        pair = create_alb_pair(self.clients, self.network, name)
        self.pairs.append(pair)
        return pair

    def route53_pair(self, name: str) -> PairInfra:
        pair = create_route53_pair(self.clients, self.network, name)
        self.pairs.append(pair)
        return pair

    def register(self, pair: PairInfra, *, extra: Mapping[str, Any] | None = None, **spec: Any) -> Pair:
        """Register the pair with the spec ``spec_for`` writes (keyword overrides), then send it traffic.

        ``extra`` adds or replaces top-level spec fields (``on_drift``, ``on_new_release``) and
        ``health`` fields.
        """
        document = spec_for(pair, **{"plan": FAST_PLAN, **spec})
        for key, value in (extra or {}).items():
            if key == "health":
                document["health"].update(value)
            else:
                document[key] = value
        registered = register(
            self.store,
            parse_spec(document),
            ecs=self.clients("ecs"),
            elbv2=self.clients("elbv2"),
            route53=self.clients("route53"),
            cloudwatch=self.clients("cloudwatch"),
            sts=self.clients("sts"),
            lambda_client=self.clients("lambda"),
            hook_prefix=self.emulator.outputs["HookFunctionPrefix"],
        )
        self.traffic.add_pair(pair)
        return registered

    def release(
        self, pair: PairInfra, version: str, behaviour: Behaviour = GOOD, service: str | None = None
    ) -> str:
        """Register a new revision and deploy it to ``service`` (default: the pair's idle one)."""
        target = service or self.store.get_pair(pair.name).idle_service
        task_definition = register_revision(self.clients, pair.family, version, behaviour)
        release(self.clients, pair.cluster, target, task_definition)
        return task_definition

    # ---- what an operator observes --------------------------------------------------------------

    def wait(
        self,
        pair: PairInfra,
        service: str,
        task_definition: str,
        *,
        # A deadline, not a speed check: generous for a loaded 2-core CI machine.
        timeout: float = 180.0,
        until: Callable[[Deployment], bool] | None = None,
    ) -> Deployment:
        """The deployment of ``task_definition``, once it ended (or once ``until`` holds)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            dep = wait_for_deployment(
                self.store,
                pair.name,
                service,
                task_definition,
                timeout=max(0.05, remaining),
                terminal=until is None,
            )
            if dep is not None and (until is None or until(dep)):
                return dep
            if time.monotonic() >= deadline:
                shown = "none" if dep is None else f"{dep.status.value} at step {dep.step_index}"
                raise AssertionError(f"deployment of {task_definition} on {service} not as awaited: {shown}")
            time.sleep(0.02)

    def executions(self, pair: PairInfra) -> list[dict[str, Any]]:
        """Every execution of the state machine that belongs to ``pair`` (names start with it)."""
        sfn = self.clients("stepfunctions")
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"stateMachineArn": self.state_machine_arn}
        while True:
            page = sfn.list_executions(**kwargs)
            found.extend(e for e in page["executions"] if e["name"].startswith(f"{pair.name}-"))
            if not page.get("nextToken"):
                return found
            kwargs["nextToken"] = page["nextToken"]

    def execution_status(self, dep: Deployment, *, timeout: float = 30.0) -> str:
        """How the deployment's execution ended (a closed record's execution has a last state to run)."""
        assert dep.execution_arn is not None
        sfn = self.clients("stepfunctions")
        deadline = time.monotonic() + timeout
        while True:
            status = str(sfn.describe_execution(executionArn=dep.execution_arn)["status"])
            if status != "RUNNING" or not dep.status.terminal or time.monotonic() >= deadline:
                return status
            time.sleep(0.05)

    def weights(self, pair: PairInfra) -> dict[str, int]:
        return read_weights(self.clients, pair)

    def deployment(self, pair: PairInfra, task_definition: str) -> Deployment:
        """The record of the release of ``task_definition`` (any status)."""
        found = [
            d for d in self.store.list_deployments(pair.name) if d.release.task_definition == task_definition
        ]
        assert found, f"no deployment of {task_definition}"
        return found[0]

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        sfn = self.clients("stepfunctions")
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
        while True:
            page = sfn.get_execution_history(**kwargs)
            events.extend(page["events"])
            if not page.get("nextToken"):
                return events
            kwargs["nextToken"] = page["nextToken"]

    def cli(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """``ecs-canary ARGV`` as a user runs it in a shell pointed at the emulator (its own process)."""
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            "AWS_ENDPOINT_URL": self.emulator.endpoint,
            "AWS_REGION": self.emulator.region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "ECS_CANARY_STACK": "ecs-canary",
            "NO_COLOR": "1",
            "COLUMNS": "200",
        }
        return subprocess.run(
            [sys.executable, "-m", "ecs_canary_cli.main", *argv],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
            cwd=ROOT,
        )

    def release_tasks(self, pair: PairInfra, service: str, deployment: str) -> list[dict[str, Any]]:
        """The RUNNING tasks of ``service`` started by ECS deployment ``deployment``."""
        ecs = self.clients("ecs")
        arns = ecs.list_tasks(cluster=pair.cluster, serviceName=service)["taskArns"]
        if not arns:
            return []
        tasks = ecs.describe_tasks(cluster=pair.cluster, tasks=arns)["tasks"]
        return [t for t in tasks if t.get("startedBy") == deployment and t["lastStatus"] == "RUNNING"]

    def exit_container(self, pair: PairInfra, task_arn: str, exit_code: int = 1) -> dict[str, Any]:
        """Make the task's essential container exit (the emulator's API: containers never run here)."""
        return control.call(
            self.emulator.endpoint,
            "POST",
            "ecs/exit-container",
            {"cluster": pair.cluster, "task": task_arn, "exitCode": exit_code, "reason": "crashed in a test"},
        )


@pytest.fixture(scope="package")
def emulator() -> Iterator[Emulator]:
    with Emulator(time_scale=TIME_SCALE, template=repo_template(), parameters=STACK_PARAMETERS) as emu:
        yield emu


@pytest.fixture(scope="package")
def world(emulator: Emulator) -> Iterator[World]:
    clients = cached_clients(emulator.client)
    network = create_network(clients, cluster="e2e")
    traffic = TrafficSimulator(clients, [], time_scale=TIME_SCALE).start()
    try:
        yield World(
            emulator=emulator,
            clients=clients,
            network=network,
            store=Store(emulator.outputs["TableName"], clients("dynamodb")),
            traffic=traffic,
            state_machine_arn=emulator.outputs["StateMachineArn"],
        )
    finally:
        traffic.stop()


@pytest.fixture(autouse=True)
def _faithful(emulator: Emulator, world: World) -> Iterator[None]:
    """Each test starts and ends with faithful delivery (no duplicates or reordering) and only its pairs."""
    emulator.options.reset()
    yield
    emulator.wait_for_idle(10)
    emulator.options.reset()
    for pair in world.pairs:
        world.traffic.remove_pair(pair.name)
    world.pairs.clear()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run this package's tests after every other test of the session.

    The emulator patches moto's classes process-wide and the patches outlive it, so tests that
    run later against moto's in-process mocks (``mock_aws``) would meet the emulator's ECS
    scheduler and CloudWatch behaviour instead of plain moto's.
    """
    here = Path(__file__).resolve().parent
    ours = [item for item in items if here in Path(str(item.path)).resolve().parents]
    if ours:
        moved = {id(item) for item in ours}
        items[:] = [item for item in items if id(item) not in moved] + ours


def history_events(dep: Deployment, event: str) -> list[Mapping[str, Any]]:
    return [h for h in dep.history if h.get("event") == event]
