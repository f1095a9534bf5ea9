"""What the e2e scenarios run against: the emulator (default) or a deployed stack in an AWS account.

The choice is made by environment (:data:`TARGET_VAR`), so the same scenario code runs unchanged on
either. A scenario that takes the ``target`` fixture sees only :class:`Target`: what a user and an
operator can do with public AWS APIs and the CLI. Emulator-only controls (``/_emulator`` routes,
the traffic simulator, delivery options) live on the emulator's ``World`` and are out of its reach,
which mypy checks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ecs_canary.store import Deployment, Pair, Store
from ecs_canary_cli.demo.infra import EMULATED_METRIC_TIMING, GOOD, Behaviour, ClientFactory, PairInfra
from ecs_canary_cli.demo.runner import wait_for_deployment
from ecs_canary_cli.demo.traffic import read_weights

ROOT = Path(__file__).resolve().parents[2]
TargetName = Literal["emulator", "aws"]

TARGET_VAR = "ECS_CANARY_E2E_TARGET"
"""``emulator`` (the default when unset) or ``aws``."""
REQUIRED_VARS: Mapping[str, str] = {
    "ECS_CANARY_E2E_STACK": "name of the deployed ecs-canary stack",
    "ECS_CANARY_E2E_REGION": "region of the stack and of everything the tests create",
    "ECS_CANARY_E2E_VPC_ID": "VPC to create the test load balancer and target groups in",
    "ECS_CANARY_E2E_SUBNETS": "comma-separated subnet ids in at least two Availability Zones",
    "ECS_CANARY_E2E_SECURITY_GROUP": "security group of the load balancer and the tasks",
    "ECS_CANARY_E2E_IMAGE": "image URI of examples/e2e-app, pushed to a registry the tasks can pull from",
    "ECS_CANARY_E2E_EXECUTION_ROLE_ARN": "ECS task execution role (pulls the image)",
}
"""What a run against AWS cannot do without, and what each variable is for."""
OPTIONAL_VARS: Mapping[str, str] = {
    "ECS_CANARY_E2E_CLUSTER": "ECS cluster of the test services (default ecs-canary-e2e, created if missing)",
    "ECS_CANARY_E2E_HOSTED_ZONE_ID": "Route53 hosted zone for the Route53 scenarios (unset: they skip)",
    "ECS_CANARY_E2E_ALB_SCHEME": "internet-facing (default) or internal: the runner must reach the ALB",
    "ECS_CANARY_E2E_ASSIGN_PUBLIC_IP": "ENABLED or DISABLED (default): public IPs for the tasks",
}
DEFAULT_CLUSTER = "ecs-canary-e2e"
SKIP_REASON = (
    f"real-account tier: set {TARGET_VAR}=aws and the ECS_CANARY_E2E_* variables to run it "
    "(README: Running the end-to-end tests against an AWS account)"
)
ROUTE53_SKIP_REASON = "ECS_CANARY_E2E_HOSTED_ZONE_ID is not set: the Route53 scenarios need a hosted zone"


class ConfigError(Exception):
    """The environment asks for a target it does not fully describe; the message names what is wrong."""


@dataclass(frozen=True)
class AwsSettings:
    """Where and with what a run against an AWS account creates its test infrastructure."""

    stack: str
    region: str
    vpc_id: str
    subnet_ids: tuple[str, ...]
    security_group_id: str
    image: str
    execution_role_arn: str
    cluster: str = DEFAULT_CLUSTER
    hosted_zone_id: str | None = None
    alb_scheme: Literal["internet-facing", "internal"] = "internet-facing"
    assign_public_ip: Literal["ENABLED", "DISABLED"] = "DISABLED"


def target_name(environ: Mapping[str, str]) -> TargetName:
    """The target the environment names; an unknown value is an error, not a silent emulator run."""
    value = environ.get(TARGET_VAR, "").strip().lower() or "emulator"
    if value == "emulator":
        return "emulator"
    if value == "aws":
        return "aws"
    raise ConfigError(f"{TARGET_VAR}={environ[TARGET_VAR]!r}: expected 'aws' or 'emulator'")


def aws_settings(environ: Mapping[str, str]) -> AwsSettings:
    """The AWS run's settings, or a ConfigError naming every missing or malformed variable."""
    get = {name: environ.get(name, "").strip() for name in (*REQUIRED_VARS, *OPTIONAL_VARS)}
    problems = [f"{name} is not set ({why})" for name, why in REQUIRED_VARS.items() if not get[name]]
    subnets = tuple(s.strip() for s in get["ECS_CANARY_E2E_SUBNETS"].split(",") if s.strip())
    if get["ECS_CANARY_E2E_SUBNETS"] and len(subnets) < 2:
        problems.append("ECS_CANARY_E2E_SUBNETS needs at least two subnets (an ALB spans two zones)")
    scheme = get["ECS_CANARY_E2E_ALB_SCHEME"] or "internet-facing"
    if scheme not in ("internet-facing", "internal"):
        problems.append(f"ECS_CANARY_E2E_ALB_SCHEME={scheme!r}: expected internet-facing or internal")
    public_ip = (get["ECS_CANARY_E2E_ASSIGN_PUBLIC_IP"] or "DISABLED").upper()
    if public_ip not in ("ENABLED", "DISABLED"):
        problems.append(f"ECS_CANARY_E2E_ASSIGN_PUBLIC_IP={public_ip!r}: expected ENABLED or DISABLED")
    if problems:
        raise ConfigError(f"{TARGET_VAR}=aws: " + "; ".join(problems))
    return AwsSettings(
        stack=get["ECS_CANARY_E2E_STACK"],
        region=get["ECS_CANARY_E2E_REGION"],
        vpc_id=get["ECS_CANARY_E2E_VPC_ID"],
        subnet_ids=subnets,
        security_group_id=get["ECS_CANARY_E2E_SECURITY_GROUP"],
        image=get["ECS_CANARY_E2E_IMAGE"],
        execution_role_arn=get["ECS_CANARY_E2E_EXECUTION_ROLE_ARN"],
        cluster=get["ECS_CANARY_E2E_CLUSTER"] or DEFAULT_CLUSTER,
        hosted_zone_id=get["ECS_CANARY_E2E_HOSTED_ZONE_ID"] or None,
        alb_scheme="internal" if scheme == "internal" else "internet-facing",
        assign_public_ip="ENABLED" if public_ip == "ENABLED" else "DISABLED",
    )


def current_target() -> TargetName:
    return target_name(os.environ)


@dataclass(frozen=True)
class Timings:
    """What differs in time between the targets: plans, metric windows, deadlines, polling."""

    default_plan: str | Mapping[str, Any]
    """The plan ``register`` uses when a scenario names none."""
    promotion_plan: str | Mapping[str, Any]
    """A plan whose bakes let the metric gate reach a verdict at every step."""
    promotion_steps: tuple[int, ...]
    """The percentages ``promotion_plan`` shifts through."""
    metric_timing: Mapping[str, int]
    """``health.metrics`` period, settle and lag (see the README's "How green's metrics are judged")."""
    wait_timeout: float
    """How long an operator waits for a deployment (a deadline, not a speed check)."""
    poll: float
    """Seconds between reads of the deployment record."""
    repoll: float
    """Pause before ``wait`` reads again after a record that is not as awaited."""
    execution_timeout: float
    """How long a closed record's execution may take to end."""
    cli_timeout: float
    """How long one CLI command may run."""


EMULATOR_TIMINGS = Timings(
    default_plan="Linear50PercentEvery2Minutes",
    promotion_plan="Linear25PercentEvery2Minutes",
    promotion_steps=(25, 50, 75, 100),
    metric_timing=EMULATED_METRIC_TIMING,
    wait_timeout=180.0,  # generous for a loaded 2-core CI machine
    poll=0.1,
    repoll=0.02,
    execution_timeout=30.0,
    cli_timeout=300.0,
)
"""The emulator runs Step Functions' waits 100 times faster (a 60 s bake lasts 0.6 s)."""
AWS_TIMINGS = Timings(
    default_plan={"type": "steps", "steps": [50, 100], "bake_seconds": 300},
    promotion_plan={"type": "steps", "steps": [50, 100], "bake_seconds": 300},
    promotion_steps=(50, 100),
    # One-minute periods, the AWS default settle (30 s) and lag (120 s): a 300 s bake always holds
    # a complete judged period (settle + lag + 2 x period = 270 s).
    metric_timing={"period_seconds": 60},
    # ECS starts Fargate tasks and registers them healthy in minutes; two 300 s bakes follow.
    wait_timeout=1800.0,
    poll=2.0,
    repoll=1.0,
    execution_timeout=300.0,
    cli_timeout=2400.0,
)
"""Real bakes on the real clock: the shortest plan whose every step gets a metric verdict."""


class Target(ABC):
    """A user (infrastructure-as-code, CI) and an operator, against one target.

    Everything here uses public AWS APIs (ECS, ELB, Route53, CloudWatch, Step Functions, DynamoDB)
    and the ``ecs-canary`` CLI, so it means the same in the emulator and in an account.
    """

    clients: ClientFactory
    store: Store
    state_machine_arn: str
    timings: Timings

    # ---- what a user does -----------------------------------------------------------------------

    @abstractmethod
    def alb_pair(self, name: str) -> PairInfra:
        """Two services behind one ALB listener (or rule) at weights 100/0, torn down after the test."""

    @abstractmethod
    def route53_pair(self, name: str) -> PairInfra:
        """Two services behind weighted Route53 records at 100/0, torn down after the test."""

    @abstractmethod
    def register(self, pair: PairInfra, *, extra: Mapping[str, Any] | None = None, **spec: Any) -> Pair:
        """Register the pair with the spec ``spec_for`` writes (keyword overrides), then send it traffic."""

    @abstractmethod
    def release(
        self, pair: PairInfra, version: str, behaviour: Behaviour = GOOD, service: str | None = None
    ) -> str:
        """Register a new revision and deploy it to ``service`` (default: the pair's idle one)."""

    @abstractmethod
    def cli_environment(self) -> dict[str, str]:
        """The environment of a shell pointed at this target's stack."""

    def set_alarm_state(self, alarm: str, state: str, reason: str) -> None:
        """What an alarm does when its metric breaches (``SetAlarmState``, as AWS allows for tests)."""
        self.clients("cloudwatch").set_alarm_state(AlarmName=alarm, StateValue=state, StateReason=reason)

    def caller_principal(self) -> str:
        """Who the CLI acts as (what the command function records), without the ARN's last part.

        The last part of an assumed role's ARN is its session name, which differs per process.
        """
        return str(self.clients("sts").get_caller_identity()["Arn"]).rsplit("/", 1)[0]

    # ---- what an operator observes --------------------------------------------------------------

    def wait(
        self,
        pair: PairInfra,
        service: str,
        task_definition: str,
        *,
        timeout: float | None = None,
        until: Callable[[Deployment], bool] | None = None,
    ) -> Deployment:
        """The deployment of ``task_definition``, once it ended (or once ``until`` holds)."""
        deadline = time.monotonic() + (self.timings.wait_timeout if timeout is None else timeout)
        while True:
            remaining = deadline - time.monotonic()
            dep = wait_for_deployment(
                self.store,
                pair.name,
                service,
                task_definition,
                timeout=max(0.05, remaining),
                terminal=until is None,
                poll=self.timings.poll,
            )
            if dep is not None and (until is None or until(dep)):
                return dep
            if time.monotonic() >= deadline:
                shown = "none" if dep is None else f"{dep.status.value} at step {dep.step_index}"
                raise AssertionError(f"deployment of {task_definition} on {service} not as awaited: {shown}")
            time.sleep(self.timings.repoll)

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

    def execution_status(self, dep: Deployment, *, timeout: float | None = None) -> str:
        """How the deployment's execution ended (a closed record's execution has a last state to run)."""
        assert dep.execution_arn is not None
        sfn = self.clients("stepfunctions")
        deadline = time.monotonic() + (self.timings.execution_timeout if timeout is None else timeout)
        while True:
            status = str(sfn.describe_execution(executionArn=dep.execution_arn)["status"])
            if status != "RUNNING" or not dep.status.terminal or time.monotonic() >= deadline:
                return status
            time.sleep(self.timings.poll / 2)

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
        """``ecs-canary ARGV`` as a user runs it in a shell pointed at the target (its own process)."""
        return subprocess.run(
            [sys.executable, "-m", "ecs_canary_cli.main", *argv],
            env={**self.cli_environment(), "NO_COLOR": "1", "COLUMNS": "200"},
            capture_output=True,
            text=True,
            check=False,
            timeout=self.timings.cli_timeout,
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
