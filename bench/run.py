"""``make bench``: what one traffic increment costs in orchestration, measured in the emulator.

For each router kind, a pair is deployed with a 10-step linear plan (``Linear10PercentEvery1Minute``:
10 shifts, 60 s bake each) through the real trigger, under simulated traffic, and the execution's
history (``GetExecutionHistory``) is analysed:

* state transitions: ``*StateEntered`` events, per deployment and per increment (the loop
  "Check health and shift traffic" → "Is the rollout complete?" → "Bake" that one shift runs);
* Lambda invocations: ``LambdaFunctionScheduled`` events, plus ``TaskScheduled`` events of the
  ``lambda:invoke`` integration (how this state machine calls Lambda), per increment;
* overhead: the execution's duration minus every configured wait (the Wait states' own seconds,
  which the emulator scales by its time scale), as a share of the bake time. Handlers and Step
  Functions run at real speed in the emulator, so this overhead is real seconds, compared against
  the real 60 s bake it would sit next to in AWS;
* Route53 propagation: the part of that overhead the "Check health and shift traffic" Lambda spent
  writing the weights and verifying them (``shift_ms``, kept by the state machine in
  ``$.cursor.shift_ms`` and read here from each call's state-exited output). For Route53 that is
  waiting for the change to be INSYNC, which is Route53's own propagation, not orchestration;
* orchestration overhead: the overhead without the Route53 propagation.

Targets: ≤ 4 transitions and ≤ 1 Lambda invocation per increment; orchestration overhead (Route53
propagation excluded) ≤ 1 % of bake time. Exit status 0 when every target is met, 1 otherwise;
the total overhead and the propagation are reported, not judged. Results are also written to
``.bench/results.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
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
SHIFT_STATE = LOOP_STATES[0]
TARGET_TRANSITIONS = 4.0
TARGET_LAMBDAS = 1.0
TARGET_OVERHEAD_PERCENT = 1.0

EXPLANATION = """\
- transitions: StateEntered events in the execution history. Per increment counts only the loop one shift
  runs (Check health and shift traffic -> Is the rollout complete? -> Bake); the per-deployment total adds
  the fixed cost: snapshot, steadiness check, the final verdict at 100 %, promotion.
- Lambda calls: LambdaFunctionScheduled events, and TaskScheduled events of the lambda:invoke integration
  this state machine uses (it has no LambdaFunctionScheduled events); per increment, only inside the loop.
- overhead (total): time not spent in configured waits = execution time - sum of the Wait states' seconds
  (scaled by the emulator's time scale, {scale:g}). Handlers and the state machine run at real speed here, so
  the overhead is real seconds (Lambda work, API calls, state transitions, Route53 propagation), compared
  with the real 60 s bake it sits next to in AWS. The whole-run figures also spread the fixed cost
  (snapshot, steadiness check, final verdict, promotion) over the ten bakes.
- in Lambda: the part of the overhead spent inside the task (scheduled -> succeeded): the handler's own
  work, reading alarms and metrics, writing the weights and verifying them.
- shift_ms: what the Lambda reports spending on writing the weights and verifying them, summed over the
  loop's calls (the state machine keeps it in $.cursor.shift_ms). For ALB that is rewriting the listener
  (or rule) and reading it back, a few ms, and it stays in the orchestration overhead. For Route53 it is
  the ChangeResourceRecordSets call, polling GetChange every 2 s until the change is INSYNC, and reading
  the records back. The emulator keeps a change PENDING {pending:g} emulated s ({pending_real:.2f} s real), so
  each shift here waits one 2 s poll; in AWS it waits as long as Route53 takes, rounded up to a poll.
- Route53 INSYNC wait: Route53's shift_ms. It is propagation inside AWS, not orchestration, so the
  orchestration overhead (the target) is the total overhead without it.
- TTL wait: seconds the router adds to each bake so that the bake counts from when clients see the new
  weights (Route53 alias records: 60 s of resolver caching, counted from INSYNC; ALB: none). It is
  configured waiting, not overhead, but it lengthens a Route53 rollout by that much per step."""
PROPAGATION_NOTE = (
    "Route53 propagation is AWS's, not orchestration: a weight change reaches clients only once Route53 "
    "reports it INSYNC, and the flow must see INSYNC before the TTL clock (the bake) starts, so that wait is "
    "reported apart and left out of the orchestration target."
)


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
    loop_shift_seconds: float
    """Σ shift_ms of the loop's "Check health and shift traffic" calls, in seconds."""
    shift_seconds: float
    """Σ shift_ms of every such call of the execution, in seconds."""
    shift_reports: int
    """How many of those calls' outputs carried ``shift_ms`` (0: a state machine without it)."""
    route53_pending_seconds: float = 30.0
    """Emulated seconds the emulator kept a Route53 change PENDING (its ``route53_propagation_seconds``)."""

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

    @property
    def shift_per_increment(self) -> float:
        """Real seconds per increment the Lambda spent writing and verifying weights (shift_ms)."""
        return self.loop_shift_seconds / self.increments

    @property
    def propagation_per_increment(self) -> float:
        """Real seconds per increment spent waiting for Route53 to reach INSYNC (0 for ALB)."""
        return self.shift_per_increment if self.router == "route53" else 0.0

    @property
    def orchestration_per_increment(self) -> float:
        """Overhead per increment without the Route53 propagation: what orchestration costs."""
        return self.overhead_per_increment - self.propagation_per_increment

    @property
    def orchestration_percent(self) -> float:
        return 100.0 * self.orchestration_per_increment / BAKE_SECONDS

    @property
    def whole_orchestration_percent(self) -> float:
        """The whole execution's overhead without Route53 propagation, over all bakes."""
        propagation = self.shift_seconds if self.router == "route53" else 0.0
        return 100.0 * (self.overhead_real - propagation) / (BAKE_SECONDS * self.increments)


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

    shifts = [(i, ms) for i, e in enumerate(history) if (ms := _shift_ms(e)) is not None]
    loop_start, loop_end = first_check, last_bake_exit

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
        loop_shift_seconds=sum(ms for i, ms in shifts if loop_start <= i <= loop_end) / 1000.0,
        shift_seconds=sum(ms for _, ms in shifts) / 1000.0,
        shift_reports=len(shifts),
    )


def _shift_ms(event: dict[str, Any]) -> float | None:
    """``shift_ms`` of a "Check health and shift traffic" call, from the state's exited output.

    The state's ResultSelector keeps the Lambda's ``shift_ms`` in ``$.cursor.shift_ms``; None for
    any other event, or when the output has no such field.
    """
    if _exited(event) != SHIFT_STATE:
        return None
    output = event["stateExitedEventDetails"].get("output")
    try:
        value = json.loads(output or "{}").get("cursor", {}).get("shift_ms")
    except (ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) else None


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
                measured = analyse(
                    pair.router, _history(clients("stepfunctions"), dep.execution_arn), time_scale
                )
                pending = emu.options.route53_propagation_seconds
                results.append(replace(measured, route53_pending_seconds=pending))
                console.print(Text(f"✓ {pair.router}: {dep.reason}", style="green"))
    return results


def _cell(text: str, good: bool) -> Text:
    return Text(text, style="green" if good else "bold red")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def report(results: Sequence[Measurement], console: Console) -> bool:
    """Print the figures, what they mean and the verdict per target; True when all are met.

    Only the orchestration targets count: transitions and Lambda calls per increment, and the
    overhead per increment without Route53 propagation. Total overhead is reported, not judged.
    """
    counts = Table(
        title=f"Orchestration cost of a {PLAN} rollout (10 increments, bake 60 s)", title_justify="left"
    )
    for column in (
        "router",
        "transitions / deployment",
        "transitions / increment",
        "Lambda calls / deployment",
        "Lambda calls / increment",
    ):
        counts.add_column(column, justify="left" if column == "router" else "right")
    times = Table(title="Time beyond configured waits, per increment", title_justify="left")
    for column in (
        "router",
        "total overhead",
        "in Lambda",
        "shift_ms (write + verify)",
        "Route53 INSYNC wait",
        "orchestration overhead",
        "orchestration % of bake",
        "total % of bake",
        "whole run % (orch. / total)",
        "TTL wait / step",
    ):
        times.add_column(column, justify="left" if column == "router" else "right")
    ok = True
    for m in results:
        checks = (
            m.transitions_per_increment <= TARGET_TRANSITIONS,
            m.lambdas_per_increment <= TARGET_LAMBDAS,
            m.orchestration_percent <= TARGET_OVERHEAD_PERCENT,
        )
        ok = ok and all(checks)
        counts.add_row(
            m.router,
            str(m.transitions),
            _cell(f"{m.transitions_per_increment:.2f}", checks[0]),
            str(m.lambda_invocations),
            _cell(
                f"{m.lambdas_per_increment:.2f}" + (f" ({m.loop_retries} retried)" if m.loop_retries else ""),
                checks[1],
            ),
        )
        times.add_row(
            m.router,
            _ms(m.overhead_per_increment),
            _ms(m.task_seconds_per_increment),
            _ms(m.shift_per_increment) if m.shift_reports else "n/a",
            _ms(m.propagation_per_increment) if m.router == "route53" and m.shift_reports else "—",
            _ms(m.orchestration_per_increment),
            _cell(f"{m.orchestration_percent:.2f} %", checks[2]),
            f"{m.overhead_percent:.2f} %",
            f"{m.whole_orchestration_percent:.2f} / {m.whole_overhead_percent:.2f}",
            f"{m.propagation_seconds_per_step:.0f} s",
        )
    console.print(counts)
    console.print(times)
    console.print(Text(PROPAGATION_NOTE, style="italic"))
    missing = [m.router for m in results if m.shift_reports == 0]
    if missing:
        console.print(
            Text(
                f"! no shift_ms in the execution history of {', '.join(missing)}: nothing could be set apart "
                "as Route53 propagation, so the orchestration overhead there is the total overhead",
                style="yellow",
            )
        )
    scale = results[0].time_scale if results else 0.0
    pending = results[0].route53_pending_seconds if results else 0.0
    console.print(Text("What is measured", style="bold"))
    console.print(
        EXPLANATION.format(scale=scale, pending=pending, pending_real=pending * scale),
        highlight=False,
        markup=False,
    )
    console.print(
        Text.assemble(
            ("Targets: ", "bold"),
            f"≤ {TARGET_TRANSITIONS:g} transitions and ≤ {TARGET_LAMBDAS:g} Lambda invocation per increment; "
            "orchestration overhead (Route53 propagation excluded) "
            f"≤ {TARGET_OVERHEAD_PERCENT:g} % of bake time.",
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
            "shift_per_increment_seconds": m.shift_per_increment,
            "route53_insync_wait_per_increment_seconds": m.propagation_per_increment,
            "orchestration_overhead_per_increment_seconds": m.orchestration_per_increment,
            "orchestration_overhead_percent_of_bake": m.orchestration_percent,
            "whole_run_orchestration_overhead_percent": m.whole_orchestration_percent,
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
