"""``ecs-canary demo``: a good and a faulty release per router kind, and the gates, live, offline.

The demo acts exactly as a user would: it builds ordinary AWS resources, registers the pair spec,
and releases new task definitions with ``UpdateService``. It never calls the product's Lambda
functions or state machine itself: ECS task events reach ecs-canary through EventBridge, and the
demo only watches (the deployment record, the execution status and the router's weights).

A scenario passes when the product did the right thing *as observed through AWS*: a good release
ends SUCCEEDED with all traffic on the new service and the roles swapped; a faulty release ends
FAILED with the router's weights equal, exactly, to the snapshot taken before the first shift, at
the step where it first gets more traffic than it can serve (the faulty build serves at most
``CAPACITY_RPS=30`` of the simulator's 50 req/s: fine at 25 % and 50 %, overloaded at 75 %).

With the ALB router the gates pair ``shop`` follows (its spec has test traffic on a test listener,
an ``after_test_traffic`` smoke hook and an approval before production traffic):

* a broken release (every request fails) is caught by the hook on test traffic: FAILED with the
  hook's reason, no production shift ever recorded or observed (the production weights never moved
  and green served no production request), the test listener put back exactly;
* a good release passes the hook and waits at the approval, with no production traffic; the demo
  then approves it the way a user does, by running ``ecs-canary approve shop --reason ...`` in its
  own process against the emulator's endpoint, and the release is promoted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
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
    BROKEN,
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
    read_test_listener,
    read_test_targets,
    read_weights,
    served_fraction,
)
from ecs_canary_cli.local.server import Emulator

__all__ = [
    "Board",
    "CliRun",
    "DemoContext",
    "ScenarioResult",
    "cached_clients",
    "expected_failure_step",
    "find_deployment",
    "main",
    "quiet",
    "repo_template",
    "run_cli",
    "run_demo",
    "run_release",
    "spinner",
    "wait_for_deployment",
]

Expectation = Literal["promote", "rollback", "test-catch", "approve"]
"""What a scenario's release should come to: promoted, rolled back by the health gate part-way,
caught by the test-traffic hook before any production traffic, or promoted once approved."""

EXIT_OK = 0
EXIT_FAILED = 1
DEMO_RATE = 50.0
"""Requests per emulated second the simulated clients send to each pair."""
APPROVAL_REASON = "smoke test passed on the test listener"
"""What the demo's ``ecs-canary approve --reason`` says (it is recorded in the history)."""


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
    endpoint: str | None = None
    """The emulator's endpoint, for the CLI commands the demo runs as a user would (``approve``)."""
    region: str = "us-east-1"
    stack: str = "ecs-canary"


@dataclass(frozen=True)
class CliRun:
    """One ``ecs-canary`` command the demo ran in its own process, and what it printed."""

    argv: tuple[str, ...]
    exit_code: int
    output: str

    @property
    def command(self) -> str:
        return " ".join(f'"{a}"' if " " in a else a for a in ("ecs-canary", *self.argv))


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
    test_listener_before: list[dict[str, Any]] | None = None
    """The pair's test listener actions before the release (None: the pair has no test listener)."""
    test_listener_after: list[dict[str, Any]] | None = None
    test_listener_on_green: bool = False
    """Whether the demo saw the test listener forward to the release's service while it ran."""
    weights_seen: list[dict[str, int]] = field(default_factory=list)
    """Every distinct set of weights the demo read from the router while the release ran."""
    weights_reads: int = 0
    """How many times the demo read the router's weights while the release ran."""
    production_requests: int | None = None
    """Production requests the release's service served during the release (traffic simulator)."""
    test_requests: int | None = None
    test_errors: int | None = None
    approval_seen: dict[str, Any] | None = None
    """The pending approval the record showed while the release waited at the gate."""
    weights_at_approval: dict[str, int] | None = None
    cli: CliRun | None = None

    @property
    def status(self) -> str:
        return self.deployment.status.value if self.deployment else "NOT STARTED"

    @property
    def test_listener_restored(self) -> bool | None:
        """Are the test listener's actions exactly what they were before (None: no test listener)?"""
        if self.test_listener_before is None:
            return None
        return self.test_listener_after == self.test_listener_before

    @property
    def restored_exactly(self) -> bool | None:
        """For a failure: do the router's weights equal the weights before (and the snapshot)?

        A rollback's weights must equal the recorded snapshot; a release caught on test traffic
        failed before production traffic was ever shifted, so it is judged against the weights read
        before the release (and the snapshot, if one was taken). None for a promotion. The test
        listener is judged on its own (:attr:`test_listener_restored`).
        """
        dep = self.deployment
        if dep is None or self.expected in ("promote", "approve"):
            return None
        if self.expected == "rollback":
            if dep.snapshot is None:
                return None
            return self.weights_after == dep.snapshot == self.weights_before
        snapshot_ok = dep.snapshot is None or dep.snapshot == self.weights_before
        return snapshot_ok and self.weights_after == self.weights_before

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

    def steps_cell(self) -> str:
        if self.expected == "rollback":
            return f"failed at {self.steps_reached()}"
        if self.expected == "test-catch":
            dep = self.deployment
            if dep is not None and dep.status is Status.FAILED and dep.step_index is None:
                return "caught on test traffic"
            return f"failed at {self.steps_reached()}"
        if self.expected == "approve":
            return f"approved, {self.steps_reached()}"
        return self.steps_reached()

    def row(self) -> dict[str, Any]:
        """The summary table's row: short cells, the reason is printed under the table."""
        return {
            "router": self.router,
            "release": f"{self.release} → {self.service}",
            "result": self.status,
            "steps": self.steps_cell(),
            "wall time": f"{self.real_seconds:.1f}s",
            "weights before": render.format_weights(self.weights_before, self.order),
            "weights after": render.format_weights(self.weights_after, self.order),
            "restored exactly": "n/a" if self.restored_exactly is None else self.restored_exactly,
            "test listener restored": self.test_listener_restored,
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
    until: Callable[[Deployment], bool] | None = None,
) -> Deployment | None:
    """Poll the store until the release's record exists (and, with ``terminal``, has ended).

    ``until`` also ends the wait, as soon as the record satisfies it (a pending approval, say).
    """
    deadline = time.monotonic() + timeout
    dep: Deployment | None = None
    while time.monotonic() < deadline:
        dep = find_deployment(store, pair, service, task_definition)
        if on_poll is not None:
            on_poll(dep)
        if dep is not None and (not terminal or dep.status.terminal or (until is not None and until(dep))):
            return dep
        time.sleep(poll)
    return dep


def run_cli(ctx: DemoContext, *argv: str, timeout: float = 120.0) -> CliRun:
    """``ecs-canary ARGV`` run as a user runs it in a second terminal: its own process, its output.

    The process gets the environment a user pointed at the emulator has (``AWS_ENDPOINT_URL``,
    region, dummy credentials, the stack name) and nothing of the demo's state: it finds the
    stack's outputs, identifies the caller and invokes the stack's command function itself.
    """
    if ctx.endpoint is None:
        raise ValueError("the demo context has no emulator endpoint to point the CLI at")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ENDPOINT_URL": ctx.endpoint,
        "AWS_REGION": ctx.region,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "ECS_CANARY_STACK": ctx.stack,
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "ecs_canary_cli.main", *argv],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        return CliRun(tuple(argv), -1, f"timed out after {timeout:g} s: {exc.output or ''}")
    output = "\n".join(part.strip() for part in (done.stdout, done.stderr) if part.strip())
    return CliRun(tuple(argv), done.returncode, output)


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
    columns = ["service", "share", "release", "load (req/s)", "requests", "5xx", "5xx %"]
    tested = pair.test_listener_arn is not None
    if tested:
        columns += ["test requests", "test 5xx"]
    for column in columns:
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
            test_requests=now.test_requests - (start.test_requests if start else 0),
            test_errors=now.test_errors - (start.test_errors if start else 0),
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
        cells: list[RenderableType] = [
            name,
            f"{stats.share * 100:.0f}%",
            build,
            load,
            str(stats.requests),
            str(stats.errors),
            Text(f"{stats.error_percent:.1f}", style=style),
        ]
        if tested:
            cells += [
                str(stats.test_requests),
                Text(str(stats.test_errors), style="red" if stats.test_errors else ""),
            ]
        table.add_row(*cells)
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


LABELS: dict[Expectation, str] = {
    "promote": "good",
    "rollback": "faulty",
    "test-catch": "broken",
    "approve": "good, approval",
}


def run_release(
    ctx: DemoContext,
    pair: PairInfra,
    *,
    version: str,
    behaviour: Behaviour,
    expected: Expectation,
    on_view: Callable[[RenderableType], None] | None = None,
    on_note: Callable[[RenderableType], None] | None = None,
    timeout: float | None = None,
) -> ScenarioResult:
    """Release ``version`` to the pair's idle service and follow ecs-canary until it is done.

    ``on_view`` receives a fresh view of the deployment (panel and traffic) a few times a second;
    ``on_note`` the lines worth keeping (the CLI command the demo runs and what it answered). For
    ``expected="approve"`` the demo waits until the record shows the pending approval, then runs
    ``ecs-canary approve PAIR --reason ...`` (see :func:`run_cli`) and follows the release to its end.
    """
    spec = ctx.store.get_pair(pair.name)
    target = spec.idle_service
    plan = tuple(spec.spec.resolved_plan().steps)
    steps = len(plan)
    result = ScenarioResult(
        router=pair.router,
        pair=pair.name,
        release=f"{version} ({LABELS[expected]})",
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
    result.weights_seen = [dict(result.weights_before)]
    if pair.test_listener_arn is not None:
        result.test_listener_before = read_test_listener(ctx.clients, pair)
    if timeout is None:
        timeout = 60.0 + _plan_seconds(spec.spec) * ctx.time_scale * 4
    task_definition = register_revision(ctx.clients, pair.family, version, behaviour)
    since = ctx.traffic.snapshot(pair.name) if ctx.traffic is not None else None
    began = time.monotonic()
    release(ctx.clients, pair.cluster, target, task_definition)

    def view(dep: Deployment | None, weights: dict[str, int] | None = None) -> RenderableType:
        if dep is None:
            waiting = Text(
                f"{target} ← {task_definition.rsplit('/', 1)[-1]}: waiting for ECS tasks …", style="dim"
            )
            return Group(waiting, _traffic_table(ctx, pair, since))
        panel = render.deployment_panel(
            dep,
            steps=steps,
            execution_status=_execution_status(ctx, dep),
            current_weights=weights if weights is not None else read_weights(ctx.clients, pair),
            history_limit=4,
        )
        return Group(panel, _traffic_table(ctx, pair, since))

    last = [0.0]

    def observe(current: Deployment | None) -> None:
        """Each poll: what the router and the test listener say now; a fresh view a few times a second."""
        weights = read_weights(ctx.clients, pair)
        result.weights_reads += 1
        if weights not in result.weights_seen:
            result.weights_seen.append(weights)
        if pair.test_listener_arn is not None and not result.test_listener_on_green:
            targets = read_test_targets(pair, read_test_listener(ctx.clients, pair))
            result.test_listener_on_green = target in targets
        if on_view is not None and time.monotonic() - last[0] >= 0.15:
            last[0] = time.monotonic()
            on_view(view(current, weights))

    dep: Deployment | None
    if expected == "approve":
        dep = wait_for_deployment(
            ctx.store,
            pair.name,
            target,
            task_definition,
            timeout=timeout,
            on_poll=observe,
            until=lambda d: d.approval is not None,
        )
        if dep is not None and dep.approval is not None and not dep.status.terminal:
            result.approval_seen = dict(dep.approval)
            result.weights_at_approval = read_weights(ctx.clients, pair)
            if on_view is not None:
                on_view(view(dep, result.weights_at_approval))
            if on_note is not None:
                on_note(_approval_note(dep, result.weights_at_approval))
            result.cli = run_cli(ctx, "approve", pair.name, "--reason", APPROVAL_REASON)
            if on_note is not None:
                on_note(_cli_note(result.cli))
            dep = wait_for_deployment(
                ctx.store, pair.name, target, task_definition, timeout=timeout, on_poll=observe
            )
    else:
        dep = wait_for_deployment(
            ctx.store, pair.name, target, task_definition, timeout=timeout, on_poll=observe
        )
    if on_view is not None:
        on_view(view(dep))
    result.real_seconds = time.monotonic() - began
    result.deployment = dep
    result.execution_status = _execution_status(ctx, dep)
    result.weights_after = read_weights(ctx.clients, pair)
    if pair.test_listener_arn is not None:
        result.test_listener_after = read_test_listener(ctx.clients, pair)
    if ctx.traffic is not None and since is not None:
        now = ctx.traffic.snapshot(pair.name)[target]
        start = since[target]
        result.production_requests = now.requests - start.requests
        result.test_requests = now.test_requests - start.test_requests
        result.test_errors = now.test_errors - start.test_errors
    result.live_after = ctx.store.get_pair(pair.name).live_service
    result.problems = _judge(result, target)
    return result


def _approval_note(dep: Deployment, weights: Mapping[str, int]) -> RenderableType:
    pending = dep.approval or {}
    return Text.assemble(
        ("⏸ ", "bold yellow"),
        f"{dep.pair}: deployment {dep.deployment_id} is {dep.status.value}, awaiting approval "
        f"at {pending.get('key', '?')} (timeout {pending.get('timeout_seconds', '?')} s, then "
        f"{pending.get('on_timeout', '?')}); production weights {render.format_weights(weights)}",
    )


def _cli_note(run: CliRun) -> RenderableType:
    style = "green" if run.exit_code == 0 else "red"
    lines = [Text(f"$ {run.command}", style="bold")]
    lines += [Text(f"  {line}", style=style) for line in run.output.splitlines() or ["(no output)"]]
    if run.exit_code != 0:
        lines.append(Text(f"  exit code {run.exit_code}", style="red"))
    return Group(*lines)


def _plan_seconds(spec: ServicePairSpec) -> float:
    """Emulated seconds a healthy run of the plan takes (bakes plus a Route53 propagation margin)."""
    plan = spec.resolved_plan()
    return len(plan.steps) * (plan.bake_seconds + 60) + spec.steady.timeout_seconds


def _judge(result: ScenarioResult, target: str) -> list[str]:
    dep = result.deployment
    if dep is None:
        return [f"no deployment of {target} appeared (did the ECS task events reach ecs-canary?)"]
    if result.expected == "approve" and result.approval_seen is None:
        return [f"the release never waited at an approval (status {dep.status.value}: {dep.reason or ''})"]
    if not dep.status.terminal:
        return [f"still {dep.status.value} when the demo stopped waiting"]
    problems: list[str] = []
    other = next(name for name in result.weights_after if name != target)
    if result.expected in ("promote", "approve"):
        if dep.status is not Status.SUCCEEDED:
            problems.append(f"expected SUCCEEDED, got {dep.status.value}")
        if result.weights_after != {target: 100, other: 0}:
            problems.append(f"expected all traffic on {target}, weights are {result.weights_after}")
        if result.live_after != target:
            problems.append(f"expected {target} to be the live service, it is {result.live_after}")
        if result.expected == "approve":
            problems.extend(_judge_approval(result, dep))
    elif result.expected == "rollback":
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
    else:
        problems.extend(_judge_test_catch(result, dep, target))
    if result.test_listener_restored is False:
        problems.append(
            f"the test listener was not put back exactly: {result.test_listener_after} "
            f"instead of {result.test_listener_before}"
        )
    return problems


def _events(dep: Deployment, name: str) -> list[dict[str, Any]]:
    return [entry for entry in dep.history if entry.get("event") == name]


def _judge_test_catch(result: ScenarioResult, dep: Deployment, target: str) -> list[str]:
    """Caught by the after_test_traffic hook, before any production traffic ever reached the release."""
    problems: list[str] = []
    if dep.status is not Status.FAILED:
        problems.append(f"expected FAILED (caught on test traffic), got {dep.status.value}")
    if "at after_test_traffic failed" not in (dep.reason or ""):
        problems.append(f"expected the after_test_traffic hook's reason, got {dep.reason!r}")
    if not _events(dep, "test_traffic") or not result.test_listener_on_green:
        problems.append(f"test traffic never reached {target} (no test_traffic event, or never seen)")
    if not result.test_requests:
        problems.append(f"{target} served no test request")
    shifted = _events(dep, "shifted")
    if shifted or dep.step_index is not None:
        problems.append(f"production traffic was shifted ({len(shifted)} shift(s) recorded)")
    moved = [w for w in result.weights_seen if w != result.weights_before]
    if moved:
        problems.append(f"the production weights moved: {moved}")
    if result.production_requests:
        problems.append(f"{target} served {result.production_requests} production requests")
    if result.restored_exactly is not True:
        problems.append(
            f"weights {result.weights_after} are not exactly the weights before {result.weights_before}"
        )
    if result.live_after == target:
        problems.append(f"{target} became live although its release failed")
    return problems


def _judge_approval(result: ScenarioResult, dep: Deployment) -> list[str]:
    """It waited at the approval with no production traffic, the CLI approved it, then it shifted."""
    problems: list[str] = []
    if result.weights_at_approval != result.weights_before:
        problems.append(
            f"production traffic moved before the approval: {result.weights_at_approval} "
            f"(before: {result.weights_before})"
        )
    cli = result.cli
    if cli is None or cli.exit_code != 0:
        problems.append(f"`ecs-canary approve` failed: {cli.output if cli else 'not run'}")
    approved = [e for e in _events(dep, "approved") if APPROVAL_REASON in str(e.get("message", ""))]
    if not approved:
        problems.append(f"no 'approved' event with the reason {APPROVAL_REASON!r} in the history")
    events = [str(e.get("event")) for e in dep.history]
    if approved and "shifted" in events and events.index("shifted") < events.index("approved"):
        problems.append("a production shift was recorded before the approval")
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
        "back to the exact snapshot\n",
        *(_gates_intro() if "alb" in kinds else ()),
        "\n",
        (
            f"Emulated time runs {1 / time_scale:g} times faster than the wall clock (a 60 s bake lasts "
            f"{60 * time_scale:g} s).",
            "dim",
        ),
    )
    return Panel(body, title="ecs-canary offline demo", title_align="left", border_style="cyan")


def _gates_intro() -> tuple[str | tuple[str, str], ...]:
    return (
        "then, on the ALB pair shop, whose spec adds gates (test traffic on a test listener, HTTP:8080, "
        "an after_test_traffic smoke-test hook Lambda reading green's 5xx share from CloudWatch, an "
        "approval before production traffic):\n",
        ("  3. ", "bold"),
        f"releases v2 ({BROKEN.describe()}, broken): the hook sees its test requests fail and fails it "
        "before any production traffic; the test listener is put back exactly\n",
        ("  4. ", "bold"),
        "releases v3 (good): the hook passes it, it waits at the approval with no production traffic, "
        f'the demo runs `ecs-canary approve shop --reason "{APPROVAL_REASON}"` and it is promoted\n',
    )


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
            clients,
            out,
            routers=kinds,
            max_p99_latency_ms=DEMO_MAX_P99_LATENCY_MS if latency else None,
            hook_prefix=emulator.outputs["HookFunctionPrefix"],
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
            lambda_client=clients("lambda"),
            hook_prefix=emulator.outputs.get("HookFunctionPrefix"),
        )
        console.print(
            Text(
                f"✓ registered pair {pair.name} ({pair.router}) from {demo.spec_paths[kind].name}",
                style="green",
            )
        )
        console.print(
            render.spec_table(spec, live=registered.live_service, idle_baseline=registered.idle_baseline)
        )
    for name in ("ecs", "elbv2", "route53", "cloudwatch", "stepfunctions"):
        clients(name)  # created here, once: the traffic thread then only shares finished clients
    # The gates pair joins the traffic when its turn comes: the emulator serves every pair's traffic
    # on the same two cores, and the other pairs' scenarios run exactly as without it.
    plain = [pair for kind, pair in demo.pairs.items() if kind != "gates"]
    traffic = TrafficSimulator(clients, plain, time_scale=time_scale, rate=DEMO_RATE).start()
    ctx = DemoContext(
        clients,
        store,
        emulator.outputs["StateMachineArn"],
        time_scale,
        traffic,
        endpoint=emulator.endpoint,
        region=emulator.region,
        stack=emulator.stack_name,
    )
    board = Board()
    results: list[ScenarioResult] = []
    try:
        # Let the alarms see a minute of live traffic first, as in an account that has been running.
        time.sleep(max(0.3, 90 * time_scale))
        # One pair after the other, so each scenario's live view and verdict read as a story (the
        # emulator could run them side by side: its Lambda runs concurrently).
        with Live(board, console=console, refresh_per_second=8, redirect_stdout=False, redirect_stderr=False):
            for pair in plain:
                results.extend(_run_pair(ctx, pair, board, console))
            gates = demo.pairs.get("gates")
            if gates is not None:
                traffic.add_pair(gates)
                time.sleep(max(0.3, 90 * time_scale))  # its alarms, too, see live traffic first
                results.extend(_run_pair(ctx, gates, board, console, scenarios=GATE_SCENARIOS))
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


Scenario = tuple[str, Behaviour, Expectation]
RELEASE_SCENARIOS: tuple[Scenario, ...] = (("v2", GOOD, "promote"), ("v3", FAULTY, "rollback"))
"""Each plain pair's releases: a good one promoted, then a faulty one rolled back part-way."""
GATE_SCENARIOS: tuple[Scenario, ...] = (("v2", BROKEN, "test-catch"), ("v3", GOOD, "approve"))
"""The gates pair's releases: a broken one caught on test traffic, then a good one approved."""


def _run_pair(
    ctx: DemoContext,
    pair: PairInfra,
    board: Board,
    console: Console,
    scenarios: Sequence[Scenario] = RELEASE_SCENARIOS,
) -> list[ScenarioResult]:
    """The pair's releases in order; after a good release that was not promoted, the rest are skipped."""
    results: list[ScenarioResult] = []
    for version, behaviour, expected in scenarios:
        stored = ctx.store.get_pair(pair.name)
        console.print(
            Text.assemble(
                ("▶ ", "bold cyan"),
                (f"{pair.router} pair {pair.name}", "bold"),
                f": release {version} ({LABELS[expected]}) to {stored.idle_service}, the idle service",
            )
        )
        result = run_release(
            ctx,
            pair,
            version=version,
            behaviour=behaviour,
            expected=expected,
            on_view=board.update,
            on_note=console.print,
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
            console.print(Text(f"  skipping the next releases of pair {pair.name}", style="yellow"))
            break
    return results


def _outcome(result: ScenarioResult) -> str:
    if result.expected == "promote":
        return f"{result.service} is live with weights {render.format_weights(result.weights_after)}"
    if result.expected == "approve":
        return (
            f"approved with the CLI, then promoted: {result.service} is live with weights "
            f"{render.format_weights(result.weights_after)}"
        )
    if result.expected == "test-catch":
        exact = "exactly" if result.restored_exactly else "NOT exactly"
        seen = "never moved" if len(result.weights_seen) == 1 else "MOVED"
        return (
            f"caught on test traffic ({result.test_errors} of {result.test_requests} test requests failed); "
            f"production weights {seen}, test listener restored {exact}"
        )
    exact = "exactly" if result.restored_exactly else "NOT exactly"
    weights = render.format_weights(result.weights_after)
    return f"caught at step {result.steps_reached()}, traffic restored {exact} to {weights}"


def _caught(result: ScenarioResult) -> str | None:
    """For a rollback: at which step the gate caught the release, against the step expected."""
    dep = result.deployment
    if result.expected == "test-catch" and dep is not None and dep.status is Status.FAILED:
        weights = "; ".join(render.format_weights(w) for w in result.weights_seen)
        return (
            f"{'✓' if result.ok else '✗'} caught before production traffic: the router's weights read "
            f"{result.weights_reads} times during the release: {weights}; {result.service} served "
            f"{result.production_requests or 0} production and {result.test_requests} test requests"
        )
    if result.expected == "approve" and result.approval_seen is not None:
        code = result.cli.exit_code if result.cli is not None else None
        return (
            f"{'✓' if result.ok else '✗'} waited at {result.approval_seen.get('key')} with weights "
            f"{render.format_weights(result.weights_at_approval or {})}; `ecs-canary approve` exited {code}"
        )
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
