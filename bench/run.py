"""``make bench``: what one traffic increment costs in orchestration, measured in the emulator.

For each router kind, a pair is deployed with a 10-step linear plan (``Linear10PercentEvery1Minute``:
10 shifts, 60 s bake each) through the real trigger, under simulated traffic, and the execution's
history (``GetExecutionHistory``) is analysed:

* state transitions: ``*StateEntered`` events, per deployment and per increment (the loop
  "Check health and shift traffic" → "Is the rollout complete?" → "Bake" that one shift runs);
* Lambda invocations: ``LambdaFunctionScheduled`` events, plus ``TaskScheduled`` events of the
  ``lambda:invoke`` integration (how this state machine calls Lambda), per increment;
* orchestration overhead: the execution's duration minus every configured wait (the Wait states'
  own seconds, which the emulator scales by its time scale), as a share of the bake time. Handlers
  and Step Functions run at real speed in the emulator, so this overhead is real seconds, compared
  against the real 60 s bake it would sit next to in AWS.

Targets: ≤ 4 transitions and ≤ 1 Lambda invocation per increment; overhead ≤ 1 % of bake time.
Exit status 0 when every target is met, 1 otherwise. Results are also written to
``.bench/results.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ecs_canary.registration import register
from ecs_canary.spec import parse_spec
from ecs_canary.store import Status, Store
from ecs_canary_cli.demo.infra import (
    GOOD,
    PairInfra,
    RouterKind,
    create_alb_pair,
    create_network,
    create_route53_pair,
    register_revision,
    release,
    spec_for,
)
from ecs_canary_cli.demo.runner import cached_clients, quiet, repo_template, spinner, wait_for_deployment
from ecs_canary_cli.demo.traffic import TrafficSimulator
from ecs_canary_cli.local.server import Emulator
from rich.console import Console
from rich.table import Table
from rich.text import Text

PLAN = "Linear10PercentEvery1Minute"
BAKE_SECONDS = 60.0
LOOP_STATES = ("Check health and shift traffic", "Is the rollout complete?", "Bake")
TARGET_TRANSITIONS = 4.0
TARGET_LAMBDAS = 1.0
TARGET_OVERHEAD_PERCENT = 1.0

EXPLANATION = """\
- transitions: StateEntered events in the execution history. Per increment counts only the loop one shift
  runs (Check health and shift traffic -> Is the rollout complete? -> Bake); the per-deployment total adds
  the fixed cost: snapshot, steadiness check, the final verdict at 100 %, promotion.
- Lambda calls: LambdaFunctionScheduled events, and TaskScheduled events of the lambda:invoke integration
  this state machine uses (it has no LambdaFunctionScheduled events); per increment, only inside the loop.
- overhead: time not spent in configured waits = execution time - sum of the Wait states' seconds (scaled
  by the emulator's time scale, {scale:g}). Handlers and the state machine run at real speed here, so the
  overhead is real seconds (Lambda work, API calls, state transitions), compared with the real 60 s bake it
  sits next to in AWS. The whole-run figure also spreads the fixed cost over the ten bakes.
- in Lambda: the part of the overhead spent inside the task (scheduled -> succeeded): the handler's own
  work, reading alarms and metrics, writing the weights and verifying them. For Route53 that includes
  polling GetChange until the change is INSYNC, every 5 s, which dominates that router's figure.
- router propagation wait: seconds the router adds to each bake so that the bake counts from when clients
  see the new weights (Route53 alias records: 60 s of resolver caching; ALB: none). It is configured
  waiting, not overhead, but it lengthens a Route53 rollout by that much per step."""


@dataclass(frozen=True)
class Measurement:
    """One deployment's execution history, reduced to the figures the targets are about."""

    router: str
    status: str
    increments: int
    transitions: int
    loop_transitions: int
    lambda_invocations: int
    loop_lambda_invocations: int
    duration_real: float
    configured_wait_seconds: float
    propagation_seconds_per_step: float
    overhead_real: float
    loop_overhead_real: float
    loop_task_seconds: float
    loop_retries: int
    time_scale: float

    @property
    def transitions_per_increment(self) -> float:
        return self.loop_transitions / self.increments

    @property
    def lambdas_per_increment(self) -> float:
        return self.loop_lambda_invocations / self.increments

    @property
    def overhead_per_increment(self) -> float:
        """Real seconds per increment spent outside configured waits (loop states only)."""
        return self.loop_overhead_real / self.increments

    @property
    def task_seconds_per_increment(self) -> float:
        """Real seconds per increment inside the Lambda task (scheduled → succeeded or failed)."""
        return self.loop_task_seconds / self.increments

    @property
    def overhead_percent(self) -> float:
        return 100.0 * self.overhead_per_increment / BAKE_SECONDS

    @property
    def whole_overhead_percent(self) -> float:
        """The whole execution's overhead (prepare, steadiness, promotion included) over all bakes."""
        return 100.0 * self.overhead_real / (BAKE_SECONDS * self.increments)


def _stamp(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def analyse(router: str, history: Sequence[dict[str, Any]], time_scale: float) -> Measurement:
    """Reduce an execution history (oldest first) to a :class:`Measurement`.

    An increment is one traffic shift: the "Check health and shift traffic" call that moved the
    weights, its Choice and the Bake that followed. The final call that judges the 100 % step and
    leads to promotion is not an increment, so it is counted with the fixed per-deployment cost.
    """
    entered = [e for e in history if e["type"].endswith("StateEntered")]
    names = [e["stateEnteredEventDetails"]["name"] for e in entered]
    bakes = [e for e in entered if e["stateEnteredEventDetails"]["name"] == "Bake"]
    increments = len(bakes)
    if increments == 0:
        raise ValueError(f"{router}: the execution shifted no traffic")

    def is_lambda(event: dict[str, Any]) -> bool:
        if event["type"] == "LambdaFunctionScheduled":
            return True
        details = event.get("taskScheduledEventDetails") or {}
        return event["type"] == "TaskScheduled" and details.get("resourceType") == "lambda"

    # The loop of increment i starts when its Check state is entered and ends when its Bake ends.
    first_check = next(i for i, e in enumerate(history) if _entered(e) == LOOP_STATES[0])
    last_bake_exit = max(i for i, e in enumerate(history) if _exited(e) == "Bake")
    loop = history[first_check : last_bake_exit + 1]
    loop_entered = [e for e in loop if e["type"].endswith("StateEntered")]

    waits: list[float] = []
    bake_waits: list[float] = []
    propagation: list[float] = []
    for event in entered:
        if not event["type"].startswith("Wait"):
            continue
        details = event["stateEnteredEventDetails"]
        state = json.loads(details.get("input") or "{}")
        if details["name"] == "Bake":
            seconds = float(state["cursor"]["wait_seconds"])
            bake_waits.append(seconds)
            propagation.append(seconds - BAKE_SECONDS)
        else:
            seconds = float(state["steady"]["wait_seconds"])
        waits.append(seconds)

    task_seconds = 0.0
    scheduled_at: float | None = None
    for event in loop:
        if event["type"] in ("TaskScheduled", "LambdaFunctionScheduled"):
            scheduled_at = _stamp(event["timestamp"])
        elif event["type"] in (
            "TaskSucceeded",
            "TaskFailed",
            "LambdaFunctionSucceeded",
            "LambdaFunctionFailed",
        ):
            if scheduled_at is not None:
                task_seconds += _stamp(event["timestamp"]) - scheduled_at
            scheduled_at = None

    duration = _stamp(history[-1]["timestamp"]) - _stamp(history[0]["timestamp"])
    loop_duration = _stamp(loop[-1]["timestamp"]) - _stamp(loop[0]["timestamp"])
    return Measurement(
        router=router,
        status=history[-1]["type"],
        increments=increments,
        transitions=len(names),
        loop_transitions=len(loop_entered),
        lambda_invocations=sum(1 for e in history if is_lambda(e)),
        loop_lambda_invocations=sum(1 for e in loop if is_lambda(e)),
        duration_real=duration,
        configured_wait_seconds=sum(waits),
        propagation_seconds_per_step=sum(propagation) / len(propagation),
        overhead_real=duration - sum(waits) * time_scale,
        loop_overhead_real=loop_duration - sum(bake_waits) * time_scale,
        loop_task_seconds=task_seconds,
        loop_retries=sum(1 for e in loop if e["type"] in ("TaskFailed", "LambdaFunctionFailed")),
        time_scale=time_scale,
    )


def _entered(event: dict[str, Any]) -> str | None:
    if not event["type"].endswith("StateEntered"):
        return None
    return str(event["stateEnteredEventDetails"]["name"])


def _exited(event: dict[str, Any]) -> str | None:
    if not event["type"].endswith("StateExited"):
        return None
    return str(event["stateExitedEventDetails"]["name"])


def _history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events.extend(page["events"])
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def measure(routers: Sequence[RouterKind], time_scale: float, console: Console) -> list[Measurement]:
    """Deploy one pair per router with the 10-step plan, release a good build, analyse the history."""
    results: list[Measurement] = []
    with Emulator(time_scale=time_scale, template=repo_template(), parameters={"LogLevel": "ERROR"}) as emu:
        clients = cached_clients(emu.client)
        store = Store(emu.outputs["TableName"], clients("dynamodb"))
        network = create_network(clients, cluster="bench")
        pairs: list[PairInfra] = []
        for kind in routers:
            pair = (create_alb_pair if kind == "alb" else create_route53_pair)(
                clients, network, f"bench-{kind}"
            )
            register(
                store,
                parse_spec(spec_for(pair, plan=PLAN)),
                ecs=clients("ecs"),
                elbv2=clients("elbv2"),
                route53=clients("route53"),
                cloudwatch=clients("cloudwatch"),
            )
            pairs.append(pair)
        emu.wait_for_idle()
        with TrafficSimulator(clients, pairs, time_scale=time_scale):
            time.sleep(max(0.3, 90 * time_scale))
            for pair in pairs:
                green = store.get_pair(pair.name).idle_service
                task_definition = register_revision(clients, pair.family, "v2", GOOD)
                with spinner(console, f"{pair.router}: releasing v2 to {green} ({PLAN}) …"):
                    release(clients, pair.cluster, green, task_definition)
                    timeout = 120 + 10 * (BAKE_SECONDS + 60) * time_scale * 3
                    dep = wait_for_deployment(store, pair.name, green, task_definition, timeout=timeout)
                if dep is None or dep.status is not Status.SUCCEEDED or dep.execution_arn is None:
                    state = "no deployment" if dep is None else f"{dep.status.value}: {dep.reason}"
                    raise SystemExit(f"{pair.router}: the benchmark deployment did not succeed ({state})")
                results.append(
                    analyse(pair.router, _history(clients("stepfunctions"), dep.execution_arn), time_scale)
                )
                console.print(Text(f"✓ {pair.router}: {dep.reason}", style="green"))
    return results


def report(results: Sequence[Measurement], console: Console) -> bool:
    """Print the figures, what they mean and the verdict per target; True when all are met."""
    table = Table(
        title=f"Orchestration cost of a {PLAN} rollout (10 increments, bake 60 s)", title_justify="left"
    )
    for column in (
        "router",
        "transitions / deployment",
        "transitions / increment",
        "Lambda calls / deployment",
        "Lambda calls / increment",
        "overhead / increment",
        "in Lambda",
        "overhead % of bake",
        "whole-run overhead %",
        "router propagation wait / step",
    ):
        table.add_column(column, justify="left" if column == "router" else "right")
    ok = True
    for m in results:
        checks = (
            m.transitions_per_increment <= TARGET_TRANSITIONS,
            m.lambdas_per_increment <= TARGET_LAMBDAS,
            m.overhead_percent <= TARGET_OVERHEAD_PERCENT,
        )
        ok = ok and all(checks)

        def cell(text: str, good: bool) -> Text:
            return Text(text, style="green" if good else "bold red")

        table.add_row(
            m.router,
            str(m.transitions),
            cell(f"{m.transitions_per_increment:.2f}", checks[0]),
            str(m.lambda_invocations),
            cell(
                f"{m.lambdas_per_increment:.2f}" + (f" ({m.loop_retries} retried)" if m.loop_retries else ""),
                checks[1],
            ),
            f"{m.overhead_per_increment * 1000:.0f} ms",
            f"{m.task_seconds_per_increment * 1000:.0f} ms",
            cell(f"{m.overhead_percent:.2f} %", checks[2]),
            f"{m.whole_overhead_percent:.2f} %",
            f"{m.propagation_seconds_per_step:.0f} s",
        )
    console.print(table)
    scale = results[0].time_scale if results else 0.0
    console.print(Text("What is measured", style="bold"))
    console.print(EXPLANATION.format(scale=scale), highlight=False, markup=False)
    console.print(
        Text.assemble(
            ("Targets: ", "bold"),
            f"≤ {TARGET_TRANSITIONS:g} transitions and ≤ {TARGET_LAMBDAS:g} Lambda invocation per increment; "
            f"overhead ≤ {TARGET_OVERHEAD_PERCENT:g} % of bake time.",
        )
    )
    console.print(
        Text(
            "✓ every target met" if ok else "✗ some targets missed", style="bold green" if ok else "bold red"
        )
    )
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--router", choices=("alb", "route53", "both"), default="both")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=0.025,
        help="emulated time factor (default 0.025: a 60 s bake lasts 1.5 s, above the one-second resolution "
        "of the emulated CloudWatch's metric windows)",
    )
    parser.add_argument("--out", type=Path, default=Path(".bench"), help="where results.json goes")
    args = parser.parse_args(argv)
    routers: tuple[RouterKind, ...] = ("alb", "route53") if args.router == "both" else (args.router,)
    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 150)
    began = time.monotonic()
    log = Path(tempfile.mkdtemp(prefix="ecs-canary-bench-")) / "emulator.log"
    with quiet(log):
        results = measure(routers, args.time_scale, console)
    ok = report(results, console)
    args.out.mkdir(parents=True, exist_ok=True)
    payload = [
        {
            **asdict(m),
            "transitions_per_increment": m.transitions_per_increment,
            "lambdas_per_increment": m.lambdas_per_increment,
            "overhead_per_increment_seconds": m.overhead_per_increment,
            "overhead_percent_of_bake": m.overhead_percent,
        }
        for m in results
    ]
    (args.out / "results.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
    console.print(
        Text(f"{time.monotonic() - began:.1f}s; results in {args.out / 'results.json'}", style="dim")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
