"""``ecs-canary demo``: a good and a faulty release per router kind, live, in the offline emulator.

The demo acts exactly as a user would: it builds ordinary AWS resources, registers the pair spec,
and releases new task definitions with ``UpdateService``. It never calls the product's Lambda
functions or state machine itself: ECS task events reach ecs-canary through EventBridge, and the
demo only watches (the deployment record, the execution status and the router's weights).

A scenario passes when the product did the right thing *as observed through AWS*: a good release
ends SUCCEEDED with all traffic on the new service and the roles swapped; a faulty release ends
FAILED with the router's weights equal, exactly, to the snapshot taken before the first shift, at
the step where it first gets more traffic than it can serve (the faulty build serves at most
``CAPACITY_RPS=30`` of the simulator's 50 req/s: fine at 25 % and 50 %, overloaded at 75 %).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from ecs_canary.registration import register
from ecs_canary.spec import ServicePairSpec, load_spec_yaml
from ecs_canary.store import Deployment, Status, Store
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from ecs_canary_cli import render
from ecs_canary_cli.demo.infra import (
    DEMO_MAX_P99_LATENCY_MS,
    FAULTY,
    GOOD,
    Behaviour,
    ClientFactory,
    PairInfra,
    RouterKind,
    build_demo,
    register_revision,
    release,
)
from ecs_canary_cli.demo.traffic import (
    ServiceTraffic,
    TrafficSimulator,
    probe_percentiles,
    read_weights,
    served_fraction,
)
from ecs_canary_cli.local.server import Emulator

__all__ = [
    "Board",
    "DemoContext",
    "ScenarioResult",
    "cached_clients",
    "expected_failure_step",
    "find_deployment",
    "main",
    "quiet",
    "repo_template",
    "run_demo",
    "run_release",
    "spinner",
    "wait_for_deployment",
]

Expectation = Literal["promote", "rollback"]

EXIT_OK = 0
EXIT_FAILED = 1
DEMO_RATE = 50.0
"""Requests per emulated second the simulated clients send to each pair."""


def repo_template() -> Path:
    """The SAM template: the repository's (the package is installed editable), else ./template.yaml."""
    candidate = Path(__file__).resolve().parents[3] / "template.yaml"
    return candidate if candidate.is_file() else Path("template.yaml")


@dataclass(frozen=True)
class DemoContext:
    """What a scenario needs: clients, the store, the state machine and the emulator's time scale."""

    clients: ClientFactory
    store: Store
    state_machine_arn: str
    time_scale: float
    traffic: TrafficSimulator | None = None


@dataclass
class ScenarioResult:
    """One release and what the product made of it, as observed through AWS."""

    router: str
    pair: str
    release: str
    service: str
    expected: Expectation
    deployment: Deployment | None = None
    execution_status: str | None = None
    weights_before: dict[str, int] = field(default_factory=dict)
    weights_after: dict[str, int] = field(default_factory=dict)
    live_after: str | None = None
    steps: int = 0
    real_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    time_scale: float = 1.0
    order: tuple[str, ...] = ()
    plan: tuple[int, ...] = ()
    expected_step: int | None = None
    """For a rollback: the index of the plan step where the release is first overloaded (None when
    no step is expected in particular: no traffic simulator, or a build that fails at any load)."""

    @property
    def status(self) -> str:
        return self.deployment.status.value if self.deployment else "NOT STARTED"

    @property
    def restored_exactly(self) -> bool | None:
        """For a rollback: do the router's weights equal the recorded snapshot and the weights before?"""
        if self.expected != "rollback" or self.deployment is None or self.deployment.snapshot is None:
            return None
        return self.weights_after == self.deployment.snapshot == self.weights_before

    @property
    def ok(self) -> bool:
        return not self.problems

    def steps_reached(self) -> str:
        dep = self.deployment
        if dep is None or dep.step_index is None:
            return f"0/{self.steps}"
        return f"{dep.step_index + 1}/{self.steps} ({dep.percent}%)"

    def step_label(self, index: int) -> str:
        """``3/4 (75%)`` for plan step ``index``."""
        percent = f" ({self.plan[index]}%)" if index < len(self.plan) else ""
        return f"{index + 1}/{self.steps}{percent}"

    def row(self) -> dict[str, Any]:
        """The summary table's row: short cells, the reason is printed under the table."""
        return {
            "router": self.router,
            "release": f"{self.release} → {self.service}",
            "result": self.status,
            "steps": (
                self.steps_reached() if self.expected == "promote" else f"failed at {self.steps_reached()}"
            ),
            "wall time": f"{self.real_seconds:.1f}s",
            "weights before": render.format_weights(self.weights_before, self.order),
            "weights after": render.format_weights(self.weights_after, self.order),
            "restored exactly": "n/a" if self.restored_exactly is None else self.restored_exactly,
            "as expected": self.ok,
        }

    def reason(self) -> str:
        dep = self.deployment
        return (dep.reason if dep is not None and dep.reason else "") or "; ".join(self.problems)


# ---- watching a release ---------------------------------------------------------------------------


def find_deployment(store: Store, pair: str, service: str, task_definition: str) -> Deployment | None:
    """The deployment record ecs-canary created for ``task_definition`` on ``service``, if any."""
    for dep in store.list_deployments(pair):
        if dep.service == service and dep.release.task_definition == task_definition:
            return dep
    return None


def wait_for_deployment(
    store: Store,
    pair: str,
    service: str,
    task_definition: str,
    *,
    timeout: float,
    terminal: bool = True,
    on_poll: Callable[[Deployment | None], None] | None = None,
    poll: float = 0.1,
) -> Deployment | None:
    """Poll the store until the release's record exists (and, with ``terminal``, has ended)."""
    deadline = time.monotonic() + timeout
    dep: Deployment | None = None
    while time.monotonic() < deadline:
        dep = find_deployment(store, pair, service, task_definition)
        if on_poll is not None:
            on_poll(dep)
        if dep is not None and (not terminal or dep.status.terminal):
            return dep
        time.sleep(poll)
    return dep


def _execution_status(ctx: DemoContext, dep: Deployment | None) -> str | None:
    if dep is None or not dep.execution_arn:
        return None
    try:
        return str(ctx.clients("stepfunctions").describe_execution(executionArn=dep.execution_arn)["status"])
    except Exception:
        return None


def _traffic_table(
    ctx: DemoContext, pair: PairInfra, since: Mapping[str, ServiceTraffic] | None = None
) -> RenderableType:
    """Requests and 5xx per service since ``since`` (a snapshot taken when the release began).

    ``load`` is what the service is sent now (its share of the simulator's rate) against the
    capacity its build declares, if any.
    """
    if ctx.traffic is None:
        return Text("")
    table = Table(title="simulated traffic since the release", title_justify="left", expand=False)
    for column in ("service", "share", "release", "load (req/s)", "requests", "5xx", "5xx %"):
        table.add_column(column, justify="left" if column in ("service", "release") else "right")
    for name, now in ctx.traffic.snapshot(pair.name).items():
        start = (since or {}).get(name)
        stats = ServiceTraffic(
            requests=now.requests - (start.requests if start else 0),
            errors=now.errors - (start.errors if start else 0),
            weight=now.weight,
            share=now.share,
            behaviour=now.behaviour,
            rps=now.rps,
        )
        behaviour = stats.behaviour
        build = "—"
        load = Text(f"{stats.rps:g}")
        if behaviour is not None:
            revision = behaviour.task_definition.rsplit("/", 1)[-1]
            build = f"{revision} ({behaviour.describe()})"
            if behaviour.capacity_rps is not None:
                over = stats.rps > behaviour.capacity_rps
                load = Text(f"{stats.rps:g} of {behaviour.capacity_rps:g}", style="red" if over else "")
        style = "red" if stats.error_percent > 5 else ""
        table.add_row(
            name,
            f"{stats.share * 100:.0f}%",
            build,
            load,
            str(stats.requests),
            str(stats.errors),
            Text(f"{stats.error_percent:.1f}", style=style),
        )
    return table


def expected_failure_step(plan: Sequence[int], rate: float, behaviour: Behaviour) -> int | None:
    """Index of the first plan step at which a release with ``behaviour`` fails under ``rate`` req/s.

    A build with a base error rate fails as soon as it gets traffic; one with a capacity limit at
    the first step whose share of ``rate`` exceeds it. None when no step should fail. This is the
    demo's expectation, worked out from the release it makes; the traffic simulator knows none of
    it and only reads the task definition each service runs.
    """
    if behaviour.error_rate > 0:
        return 0 if plan else None
    for index, percent in enumerate(plan):
        if served_fraction(rate * percent / 100.0, behaviour.capacity_rps) < 1.0:
            return index
    return None


def run_release(
    ctx: DemoContext,
    pair: PairInfra,
    *,
    version: str,
    behaviour: Behaviour,
    expected: Expectation,
    on_view: Callable[[RenderableType], None] | None = None,
    timeout: float | None = None,
) -> ScenarioResult:
    """Release ``version`` to the pair's idle service and follow ecs-canary until it is done.

    ``on_view`` receives a fresh view of the deployment (panel and traffic) a few times a second.
    """
    spec = ctx.store.get_pair(pair.name)
    target = spec.idle_service
    plan = tuple(spec.spec.resolved_plan().steps)
    steps = len(plan)
    result = ScenarioResult(
        router=pair.router,
        pair=pair.name,
        release=f"{version} ({'good' if expected == 'promote' else 'faulty'})",
        service=target,
        expected=expected,
        steps=steps,
        plan=plan,
    )
    if expected == "rollback" and ctx.traffic is not None:
        result.expected_step = expected_failure_step(plan, ctx.traffic.rate, behaviour)
    result.time_scale = ctx.time_scale
    result.order = (spec.live_service, target)
    result.weights_before = read_weights(ctx.clients, pair)
    if timeout is None:
        timeout = 60.0 + _plan_seconds(spec.spec) * ctx.time_scale * 4
    task_definition = register_revision(ctx.clients, pair.family, version, behaviour)
    since = ctx.traffic.snapshot(pair.name) if ctx.traffic is not None else None
    began = time.monotonic()
    release(ctx.clients, pair.cluster, target, task_definition)

    def view(dep: Deployment | None) -> RenderableType:
        if dep is None:
            waiting = Text(
                f"{target} ← {task_definition.rsplit('/', 1)[-1]}: waiting for ECS tasks …", style="dim"
            )
            return Group(waiting, _traffic_table(ctx, pair, since))
        panel = render.deployment_panel(
            dep,
            steps=steps,
            execution_status=_execution_status(ctx, dep),
            current_weights=read_weights(ctx.clients, pair),
            history_limit=4,
        )
        return Group(panel, _traffic_table(ctx, pair, since))

    last = [0.0]

    def refresh(current: Deployment | None) -> None:
        if on_view is not None and time.monotonic() - last[0] >= 0.15:
            last[0] = time.monotonic()
            on_view(view(current))

    dep = wait_for_deployment(ctx.store, pair.name, target, task_definition, timeout=timeout, on_poll=refresh)
    if on_view is not None:
        on_view(view(dep))
    result.real_seconds = time.monotonic() - began
    result.deployment = dep
    result.execution_status = _execution_status(ctx, dep)
    result.weights_after = read_weights(ctx.clients, pair)
    result.live_after = ctx.store.get_pair(pair.name).live_service
    result.problems = _judge(result, target)
    return result


def _plan_seconds(spec: ServicePairSpec) -> float:
    """Emulated seconds a healthy run of the plan takes (bakes plus a Route53 propagation margin)."""
    plan = spec.resolved_plan()
    return len(plan.steps) * (plan.bake_seconds + 60) + spec.steady.timeout_seconds


def _judge(result: ScenarioResult, target: str) -> list[str]:
    dep = result.deployment
    if dep is None:
        return [f"no deployment of {target} appeared (did the ECS task events reach ecs-canary?)"]
    if not dep.status.terminal:
        return [f"still {dep.status.value} when the demo stopped waiting"]
    problems: list[str] = []
    other = next(name for name in result.weights_after if name != target)
    if result.expected == "promote":
        if dep.status is not Status.SUCCEEDED:
            problems.append(f"expected SUCCEEDED, got {dep.status.value}")
        if result.weights_after != {target: 100, other: 0}:
            problems.append(f"expected all traffic on {target}, weights are {result.weights_after}")
        if result.live_after != target:
            problems.append(f"expected {target} to be the live service, it is {result.live_after}")
    else:
        if dep.status is not Status.FAILED:
            problems.append(f"expected FAILED (rolled back), got {dep.status.value}")
        elif result.expected_step is not None and dep.step_index != result.expected_step:
            reached = "before the first step" if dep.step_index is None else f"at {result.steps_reached()}"
            problems.append(
                f"expected the gate to catch it at step {result.step_label(result.expected_step)}, "
                f"the first one that overloads it; it failed {reached}"
            )
        if result.restored_exactly is not True:
            problems.append(
                f"weights {result.weights_after} differ from the snapshot {dep.snapshot} "
                f"or from the weights before {result.weights_before}"
            )
        if result.live_after == target:
            problems.append(f"{target} became live although its release failed")
    return problems


# ---- the whole demo -------------------------------------------------------------------------------


@contextlib.contextmanager
def spinner(console: Console, text: str) -> Iterator[None]:
    """``console.status`` without its stdout redirection, which would show the handlers' logs."""
    with Live(
        Spinner("dots", text=Text(text, style="dim")),
        console=console,
        transient=True,
        refresh_per_second=10,
        redirect_stdout=False,
        redirect_stderr=False,
    ):
        yield


@contextlib.contextmanager
def quiet(log_path: Path) -> Iterator[IO[str]]:
    """Send the Lambda handlers' JSON logs and library warnings to a file, away from the live view."""
    root = logging.getLogger()
    with log_path.open("a", encoding="utf-8") as sink:
        handler = logging.StreamHandler(sink)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        previous_level = root.level
        root.addHandler(handler)
        root.setLevel(logging.WARNING)
        logging.captureWarnings(True)
        try:
            with contextlib.redirect_stdout(sink), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield sink
        finally:
            logging.captureWarnings(False)
            root.removeHandler(handler)
            root.setLevel(previous_level)


def _intro(kinds: Sequence[RouterKind], time_scale: float) -> Panel:
    body = Text.assemble(
        "Builds a VPC, an ECS cluster and, per router, two ECS services behind ",
        ("ALB weighted target groups" if "alb" in kinds else ""),
        (" and " if len(kinds) == 2 else ""),
        ("Route53 weighted records" if "route53" in kinds else ""),
        "; registers each pair with ecs-canary; simulates client traffic that follows the live weights; "
        "then, per pair:\n",
        ("  1. ", "bold"),
        "releases v2 (good) to the idle service: ecs-canary shifts traffic step by step and promotes it\n",
        ("  2. ", "bold"),
        f"releases v3 ({FAULTY.describe()}) to the service that is now idle: a capacity regression, "
        f"fine while a canary step sends it at most {FAULTY.capacity_rps:g} of the clients' "
        f"{DEMO_RATE:g} req/s, failing beyond: the health gate catches it part-way and traffic fails "
        "back to the exact snapshot\n\n",
        (
            f"Emulated time runs {1 / time_scale:g} times faster than the wall clock (a 60 s bake lasts "
            f"{60 * time_scale:g} s).",
            "dim",
        ),
    )
    return Panel(body, title="ecs-canary offline demo", title_align="left", border_style="cyan")


def _router_kinds(router: str) -> tuple[RouterKind, ...]:
    if router == "both":
        return ("alb", "route53")
    if router == "alb":
        return ("alb",)
    if router == "route53":
        return ("route53",)
    raise ValueError(f"router must be alb, route53 or both, got {router!r}")


def run_demo(
    router: str = "both",
    time_scale: float = 0.01,
    port: int = 0,
    *,
    out_dir: Path | None = None,
    console: Console | None = None,
) -> int:
    """Run the demo; 0 only if every good release was promoted and every faulty one rolled back exactly."""
    kinds = _router_kinds(router)
    # Off a terminal (CI logs, `make demo | tee`) rich assumes 80 columns; the tables need more.
    # The console is bound to the real stdout now: while the demo runs, sys.stdout is the log file.
    console = console or Console(file=sys.stdout, width=None if sys.stdout.isatty() else 140)
    out = out_dir or Path(tempfile.mkdtemp(prefix="ecs-canary-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "emulator.log"
    began = time.monotonic()
    console.print(_intro(kinds, time_scale))
    results: list[ScenarioResult] = []
    with quiet(log_path):
        with spinner(console, "starting the emulator and deploying the ecs-canary stack …"):
            emulator = Emulator(
                port=port, time_scale=time_scale, template=repo_template(), parameters={"LogLevel": "ERROR"}
            ).start()
        try:
            console.print(
                Text(
                    f"✓ emulator on {emulator.endpoint}, stack deployed in {time.monotonic() - began:.1f}s",
                    style="green",
                )
            )
            results = _run_scenarios(emulator, kinds, time_scale, out, console)
        finally:
            emulator.stop()
    console.print(render.summary_table([r.row() for r in results], title="Demo summary"))
    for result in results:
        console.print(Text.assemble((f"{result.router} {result.release}: ", "bold"), result.reason()))
        caught = _caught(result)
        if caught:
            console.print(Text(f"  {caught}", style="green" if result.ok else "red"))
        for problem in result.problems:
            console.print(Text(f"  ✗ {problem}", style="red"))
    ok = bool(results) and all(r.ok for r in results)
    verdict = "every scenario behaved as expected" if ok else "some scenarios did not behave as expected"
    console.print(
        Text(
            f"{'✓' if ok else '✗'} {verdict} in {time.monotonic() - began:.1f}s",
            style="bold green" if ok else "bold red",
        )
    )
    console.print(Text(f"spec files and Lambda logs: {out}", style="dim"))
    return EXIT_OK if ok else EXIT_FAILED


def _run_scenarios(
    emulator: Emulator, kinds: Sequence[RouterKind], time_scale: float, out: Path, console: Console
) -> list[ScenarioResult]:
    clients: ClientFactory = cached_clients(emulator.client)
    with spinner(console, "building the demo environment (VPC, ECS, ALB, Route53, alarms) …"):
        # A p99 ceiling only where CloudWatch computes percentiles (the simulator then publishes
        # TargetResponseTime); elsewhere every health check would be inconclusive for want of p99.
        latency = probe_percentiles(clients("cloudwatch"), datetime.now(UTC))
        demo = build_demo(
            clients, out, routers=kinds, max_p99_latency_ms=DEMO_MAX_P99_LATENCY_MS if latency else None
        )
        emulator.wait_for_idle()
    store = Store(emulator.outputs["TableName"], clients("dynamodb"))
    for kind, pair in demo.pairs.items():
        spec = load_spec_yaml(demo.spec_paths[kind].read_text(encoding="utf-8"))
        registered = register(
            store,
            spec,
            ecs=clients("ecs"),
            elbv2=clients("elbv2"),
            route53=clients("route53"),
            cloudwatch=clients("cloudwatch"),
            sts=clients("sts"),
        )
        console.print(
            Text(f"✓ registered pair {pair.name} ({kind}) from {demo.spec_paths[kind].name}", style="green")
        )
        console.print(
            render.spec_table(spec, live=registered.live_service, idle_baseline=registered.idle_baseline)
        )
    for name in ("ecs", "elbv2", "route53", "cloudwatch", "stepfunctions"):
        clients(name)  # created here, once: the traffic thread then only shares finished clients
    traffic = TrafficSimulator(
        clients, list(demo.pairs.values()), time_scale=time_scale, rate=DEMO_RATE
    ).start()
    ctx = DemoContext(clients, store, emulator.outputs["StateMachineArn"], time_scale, traffic)
    board = Board()
    results: list[ScenarioResult] = []
    try:
        # Let the alarms see a minute of live traffic first, as in an account that has been running.
        time.sleep(max(0.3, 90 * time_scale))
        # One pair after the other: the emulator runs one Lambda invocation at a time (like an
        # account with a concurrency of 1), so deploying both pairs at once would not be faster.
        with Live(board, console=console, refresh_per_second=8, redirect_stdout=False, redirect_stderr=False):
            for pair in demo.pairs.values():
                results.extend(_run_pair(ctx, pair, board, console))
    finally:
        traffic.stop()
    return results


class Board:
    """The live view of the deployment being followed; the scenario replaces it as it progresses."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._view: RenderableType | None = None

    def update(self, view: RenderableType) -> None:
        with self._lock:
            self._view = view

    def take(self) -> RenderableType | None:
        """The current view, leaving the board empty."""
        with self._lock:
            view, self._view = self._view, None
            return view

    def __rich__(self) -> RenderableType:
        with self._lock:
            return self._view if self._view is not None else Text("")


def _run_pair(ctx: DemoContext, pair: PairInfra, board: Board, console: Console) -> list[ScenarioResult]:
    """The good release, then (if it was promoted) the faulty one, of one pair."""
    scenarios: tuple[tuple[str, Behaviour, Expectation], ...] = (
        ("v2", GOOD, "promote"),
        ("v3", FAULTY, "rollback"),
    )
    results: list[ScenarioResult] = []
    for version, behaviour, expected in scenarios:
        stored = ctx.store.get_pair(pair.name)
        console.print(
            Text.assemble(
                ("▶ ", "bold cyan"),
                (f"{pair.router} pair {pair.name}", "bold"),
                f": release {version} ({'good' if expected == 'promote' else 'faulty'}) "
                f"to {stored.idle_service}, the idle service",
            )
        )
        result = run_release(
            ctx,
            pair,
            version=version,
            behaviour=behaviour,
            expected=expected,
            on_view=board.update,
        )
        results.append(result)
        final = board.take()
        if final is not None:
            console.print(final)  # kept above the live area once the next release starts
        mark, style = ("✓", "green") if result.ok else ("✗", "red")
        console.print(
            Text(f"{mark} {pair.router} {version} {result.status}: {_outcome(result)}", style=style)
        )
        if not result.ok and expected == "promote":
            console.print(Text(f"  {'; '.join(result.problems)}", style="red"))
            console.print(Text(f"  skipping the faulty release of pair {pair.name}", style="yellow"))
            break
    return results


def _outcome(result: ScenarioResult) -> str:
    if result.expected == "promote":
        return f"{result.service} is live with weights {render.format_weights(result.weights_after)}"
    exact = "exactly" if result.restored_exactly else "NOT exactly"
    weights = render.format_weights(result.weights_after)
    return f"caught at step {result.steps_reached()}, traffic restored {exact} to {weights}"


def _caught(result: ScenarioResult) -> str | None:
    """For a rollback: at which step the gate caught the release, against the step expected."""
    dep = result.deployment
    if result.expected != "rollback" or dep is None or dep.status is not Status.FAILED:
        return None
    where = "before the first step" if dep.step_index is None else f"at step {result.steps_reached()}"
    if result.expected_step is None:
        return f"caught {where}"
    why = "the first step that sends it more than it can serve"
    if dep.step_index == result.expected_step:
        return f"✓ caught {where}, {why}"
    return f"✗ caught {where}, expected at step {result.step_label(result.expected_step)}, {why}"


def cached_clients(factory: Callable[[str], Any]) -> ClientFactory:
    """One client per service for the whole run (creating boto3 clients is slow and not needed per call)."""
    cache: dict[str, Any] = {}

    def client(name: str) -> Any:
        if name not in cache:
            cache[name] = factory(name)
        return cache[name]

    return client


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ecs_canary_cli.demo.runner [alb|route53|both] [time_scale]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    router = args[0] if args else "both"
    scale = float(args[1]) if len(args) > 1 else 0.01
    return run_demo(router=router, time_scale=scale)


if __name__ == "__main__":
    sys.exit(main())
