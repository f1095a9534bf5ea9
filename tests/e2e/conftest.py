"""One emulator, network and traffic simulator for the whole e2e package.

Every test builds its own service pair (distinct names), so tests never share traffic weights,
alarms or deployment records, and runs it through the real trigger: ``UpdateService`` → ECS task
events → EventBridge rule → filter Lambda → Step Functions execution.

A scenario that takes the ``target`` fixture instead of ``world`` runs twice: on the emulator, and
(marked ``real_account``) against a deployed stack in an AWS account, which is skipped unless
``ECS_CANARY_E2E_TARGET=aws`` (see :mod:`.targets` and :mod:`.aws_target`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
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
from ecs_canary_cli.demo.runner import cached_clients, repo_template
from ecs_canary_cli.demo.traffic import TrafficSimulator
from ecs_canary_cli.local import Emulator, control

from .aws_target import AwsAccount
from .targets import (
    EMULATOR_TIMINGS,
    SKIP_REASON,
    ConfigError,
    Target,
    Timings,
    aws_settings,
    current_target,
)

TIME_SCALE = 0.01
"""A 60 s bake lasts 0.6 s."""
STACK_PARAMETERS = {"LogLevel": "WARNING", "LockLeaseSeconds": "3"}
"""A short lease lets the sweeper (every 5 emulated minutes: 3 s) look at every lock."""
ROOT = Path(__file__).resolve().parents[2]
FAST_PLAN = EMULATOR_TIMINGS.default_plan
"""Two steps (50%, 100%): enough to see a shift, a bake and a promotion.

Bakes of at least two emulated minutes keep the health gate's metric windows above one real second
(see ``ecs_canary_cli.demo.infra.DEFAULT_PLAN``)."""
REAL_ACCOUNT = "real_account"
"""The marker of the parametrisations that run against an AWS account."""


@dataclass
class World(Target):
    """The emulated account and helpers that act as a user (IaC, CI) and observe as an operator.

    Beyond :class:`Target`, it holds the emulator's own controls (delivery options, the traffic
    simulator, containers that exit on request): only scenarios that run on the emulator alone use them.
    """

    emulator: Emulator
    clients: ClientFactory
    network: Network
    store: Store
    traffic: TrafficSimulator
    state_machine_arn: str
    pairs: list[PairInfra] = field(default_factory=list)
    timings: Timings = EMULATOR_TIMINGS

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
        document = spec_for(pair, **{"plan": FAST_PLAN, "metric_timing": self.timings.metric_timing, **spec})
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

    def cli_environment(self) -> dict[str, str]:
        """A shell pointed at the emulator, whatever AWS variables the caller's shell has."""
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            "AWS_ENDPOINT_URL": self.emulator.endpoint,
            "AWS_REGION": self.emulator.region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "ECS_CANARY_STACK": "ecs-canary",
        }

    # ---- what only the emulator can do ----------------------------------------------------------

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


def _on_aws(request: pytest.FixtureRequest) -> bool:
    callspec = getattr(request.node, "callspec", None)
    return callspec is not None and callspec.params.get("target") == "aws"


@pytest.fixture(autouse=True)
def _faithful(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each emulator test starts and ends with faithful delivery (no duplicates or reordering).

    Its pairs leave the traffic simulator when it ends. Tests that use neither ``world`` nor
    ``target``, and the AWS runs, never start the emulator.
    """
    if _on_aws(request) or not {"world", "target"} & set(request.fixturenames):
        yield
        return
    emulator: Emulator = request.getfixturevalue("emulator")
    world: World = request.getfixturevalue("world")
    emulator.options.reset()
    yield
    emulator.wait_for_idle(10)
    emulator.options.reset()
    for pair in world.pairs:
        world.traffic.remove_pair(pair.name)
    world.pairs.clear()


@pytest.fixture
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """The emulator's world, or (``real_account``) a deployed stack, whose pairs go with the test."""
    if request.param != "aws":
        yield request.getfixturevalue("world")
        return
    account: AwsAccount = request.getfixturevalue("aws_account")
    with account.scenario() as scenario:
        yield scenario


@pytest.fixture(scope="session")
def aws_account() -> Iterator[AwsAccount]:
    """The session's shared AWS test infrastructure (load balancer, listener, cluster), deleted at the end."""
    with AwsAccount(aws_settings(os.environ)) as account:
        yield account


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A scenario taking ``target`` runs on the emulator and, marked ``real_account``, against AWS."""
    if "target" in metafunc.fixturenames:
        metafunc.parametrize(
            "target",
            ["emulator", pytest.param("aws", marks=getattr(pytest.mark, REAL_ACCOUNT))],
            indirect=True,
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip or vet the real-account runs, then run this package's tests after every other test.

    Without ``ECS_CANARY_E2E_TARGET=aws`` the ``real_account`` runs are skipped with the reason; with
    it, a missing or malformed variable stops the session before any test, naming the variable.

    The emulator patches moto's classes process-wide and the patches outlive it, so tests that
    run later against moto's in-process mocks (``mock_aws``) would meet the emulator's ECS
    scheduler and CloudWatch behaviour instead of plain moto's.
    """
    real = [item for item in items if item.get_closest_marker(REAL_ACCOUNT) is not None]
    if real:
        try:
            on_aws = current_target() == "aws"
            if on_aws:
                aws_settings(os.environ)
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
        if not on_aws:
            for item in real:
                item.add_marker(pytest.mark.skip(reason=SKIP_REASON))
    here = Path(__file__).resolve().parent
    ours = [item for item in items if here in Path(str(item.path)).resolve().parents]
    if ours:
        moved = {id(item) for item in ours}
        items[:] = [item for item in items if id(item) not in moved] + ours


def history_events(dep: Deployment, event: str) -> list[Mapping[str, Any]]:
    return [h for h in dep.history if h.get("event") == event]
