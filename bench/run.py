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
* Lambda time: seconds inside the "Check health and shift traffic" task per increment, what Lambda
  bills; no Lambda waits for a Route53 change to reach INSYNC (the next step checks it once);
* ``shift_ms``: the part of it spent writing the weights (and, for ALB, reading them back), kept by
  the state machine in ``$.cursor.shift_ms`` and read here from each call's state-exited output.

Then, for the ALB router, how fast an interrupt restores traffic: a pair ramps a three-step plan,
and at its first step an alarm goes into ALARM (SetAlarmState), green's tasks crash (the emulator's
container-exit API, twice: ``health.max_stopped_tasks`` is 1) or an operator aborts (the command
function the CLI invokes). The time from that call to the listener showing the snapshot weights again
is measured with bakes of 60 s and 3600 s (emulated), to show it does not depend on the bake.

Targets: ≤ 3 transitions and ≤ 1 Lambda invocation per increment; ≤ 1 s of Lambda time per increment;
orchestration overhead ≤ 1 % of bake time; every interrupt restores the snapshot within 2 s. Exit
status 0 when every target is met, 1 otherwise. Results are also written to ``.bench/results.json``.
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
from ecs_canary_cli.local import control
from ecs_canary_cli.local.server import Emulator
from rich.console import Console
from rich.table import Table
from rich.text import Text

PLAN = "Linear10PercentEvery1Minute"
BAKE_SECONDS = 60.0
LOOP_STATES = ("Check health and shift traffic", "Is the rollout complete?", "Bake")
SHIFT_STATE = LOOP_STATES[0]
TARGET_TRANSITIONS = 3.0
TARGET_LAMBDAS = 1.0
TARGET_LAMBDA_SECONDS = 1.0
TARGET_OVERHEAD_PERCENT = 1.0
TARGET_RESTORE_SECONDS = 2.0
INTERRUPT_BAKES = (60, 3600)
INTERRUPTS = ("alarm", "task_crash", "abort")

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
  (or rule) and reading it back, a few ms. For Route53 it is the ChangeResourceRecordSets call only: no
  Lambda waits for INSYNC any more. The next step checks the change once (GetChange, non-blocking, like
  Argo Rollouts' VerifyWeight) and waits in Step Functions if it is still PENDING (the emulator keeps a
  change PENDING {pending:g} emulated s, {pending_real:.2f} s real, less than one bake).
- TTL wait: seconds the router adds to each bake so that the bake covers the time clients may keep the
  old weights (Route53 alias records: 60 s of resolver caching; ALB: none). It is configured waiting,
  not overhead, but it lengthens a Route53 rollout by that much per step.
- interrupt → restore: from the call that raises the interrupt (SetAlarmState, the emulator's
  container-exit API, the command function's Invoke) to the listener read back with the snapshot
  weights, polled every 5 ms; the execution's watch fails, the rollout stops and "Roll back" restores."""
PROPAGATION_NOTE = (
    "Route53 propagation is AWS's, not orchestration: the flow no longer waits for it inside a Lambda; the "
    "step after a shift confirms the change is INSYNC before it judges, and waits in Step Functions if not."
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
    def lambda_seconds_per_increment(self) -> float:
        """Real seconds per increment inside the Lambda task: what Lambda bills for."""
        return self.task_seconds_per_increment

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
    def orchestration_per_increment(self) -> float:
        """Overhead per increment: what orchestration costs (no Lambda waits for Route53 any more)."""
        return self.overhead_per_increment

    @property
    def orchestration_percent(self) -> float:
        return 100.0 * self.orchestration_per_increment / BAKE_SECONDS

    @property
    def whole_orchestration_percent(self) -> float:
        """The whole execution's overhead over all bakes."""
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


@dataclass(frozen=True)
class Interrupt:
    """How long one interrupt took, from the call that raised it to the snapshot weights back."""

    kind: str
    bake_seconds: int
    restore_seconds: float
    status: str


def _alb_weights(clients: Any, listener_arn: str, names: dict[str, str]) -> dict[str, int]:
    action = clients("elbv2").describe_listeners(ListenerArns=[listener_arn])["Listeners"][0][
        "DefaultActions"
    ][0]
    return {names[g["TargetGroupArn"]]: int(g["Weight"]) for g in action["ForwardConfig"]["TargetGroups"]}


def _interrupt(emu: Emulator, clients: Any, store: Store, pair: PairInfra, *, kind: str, green: str) -> None:
    """Raise the interrupt ``kind`` against the pair's deployment on ``green``."""
    if kind == "alarm":
        clients("cloudwatch").set_alarm_state(
            AlarmName=f"{green}-5xx", StateValue="ALARM", StateReason="bench: 5xx burst"
        )
    elif kind == "task_crash":
        active = store.get_deployment(pair.name, store.active_deployment_id(pair.name) or "")
        ecs = clients("ecs")
        arns = ecs.list_tasks(cluster=pair.cluster, serviceName=green)["taskArns"]
        tasks = [
            t
            for t in ecs.describe_tasks(cluster=pair.cluster, tasks=arns)["tasks"]
            if t.get("startedBy") == active.release.deployment and t["lastStatus"] == "RUNNING"
        ]
        for task in tasks[:2]:  # health.max_stopped_tasks is 1: the second stop fails back
            control.call(
                emu.endpoint,
                "POST",
                "ecs/exit-container",
                {"cluster": pair.cluster, "task": task["taskArn"], "exitCode": 1},
            )
    else:
        payload = {"pair": pair.name, "command": "abort", "by": "bench", "reason": "bench"}
        answer = clients("lambda").invoke(
            FunctionName=emu.outputs["CommandFunctionArn"], Payload=json.dumps(payload).encode()
        )
        result = json.loads(answer["Payload"].read())
        if not result.get("accepted"):
            raise SystemExit(f"abort refused: {result}")


def measure_interrupts(
    emu: Emulator, clients: Any, store: Store, network: Any, console: Console
) -> list[Interrupt]:
    """For each interrupt and bake length, one ALB deployment interrupted at its first step."""
    results: list[Interrupt] = []
    for bake in INTERRUPT_BAKES:
        for kind in INTERRUPTS:
            pair = create_alb_pair(clients, network, f"int-{kind.replace('_', '')}-{bake}")
            assert pair.listener_arn is not None
            spec = spec_for(
                pair,
                plan={"type": "steps", "steps": [25, 50, 100], "bake_seconds": bake},
                alarms=[f"{s.name}-5xx" for s in pair.services],
                max_5xx_percent=None,
            )
            register(
                store,
                parse_spec(spec),
                ecs=clients("ecs"),
                elbv2=clients("elbv2"),
                route53=clients("route53"),
                cloudwatch=clients("cloudwatch"),
                sts=clients("sts"),
            )
            names = {s.target_group_arn: s.name for s in pair.services}
            green = store.get_pair(pair.name).idle_service
            snapshot = _alb_weights(clients, pair.listener_arn, names)
            task_definition = register_revision(clients, pair.family, "v2", GOOD)
            with spinner(console, f"interrupt: {kind} during a {bake} s bake …"):
                release(clients, pair.cluster, green, task_definition)
                deadline = time.monotonic() + 120
                while _alb_weights(clients, pair.listener_arn, names) == snapshot:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"{pair.name}: no traffic moved")
                    time.sleep(0.02)
                began = time.monotonic()
                _interrupt(emu, clients, store, pair, kind=kind, green=green)
                while _alb_weights(clients, pair.listener_arn, names) != snapshot:
                    if time.monotonic() - began > 60:
                        raise SystemExit(f"{pair.name}: the snapshot was not restored after {kind}")
                    time.sleep(0.005)
                restored = time.monotonic() - began
                dep = wait_for_deployment(store, pair.name, green, task_definition, timeout=60)
            status = dep.status.value if dep is not None else "none"
            results.append(Interrupt(kind, bake, restored, status))
            console.print(Text(f"✓ {kind} during a {bake} s bake: restored in {restored:.3f} s ({status})"))
    return results


def measure(
    routers: Sequence[RouterKind], time_scale: float, console: Console
) -> tuple[list[Measurement], list[Interrupt]]:
    """Deploy one pair per router with the 10-step plan, release a good build, analyse the history;
    then measure interrupts on ALB pairs."""
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
                sts=clients("sts"),
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
            interrupts = measure_interrupts(emu, clients, store, network, console)
    return results, interrupts


def _cell(text: str, good: bool) -> Text:
    return Text(text, style="green" if good else "bold red")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def report(results: Sequence[Measurement], interrupts: Sequence[Interrupt], console: Console) -> bool:
    """Print the figures, what they mean and the verdict per target; True when all are met.

    Only the orchestration targets count: transitions and Lambda calls per increment, and the
    overhead per increment, the interrupt restore times.
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
        "Lambda s / increment",
    ):
        counts.add_column(column, justify="left" if column == "router" else "right")
    times = Table(title="Time beyond configured waits, per increment", title_justify="left")
    for column in (
        "router",
        "total overhead",
        "in Lambda",
        "shift_ms (write + verify)",
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
            m.lambda_seconds_per_increment <= TARGET_LAMBDA_SECONDS,
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
            _cell(f"{m.lambda_seconds_per_increment:.3f}", checks[3]),
        )
        times.add_row(
            m.router,
            _ms(m.overhead_per_increment),
            _ms(m.task_seconds_per_increment),
            _ms(m.shift_per_increment) if m.shift_reports else "n/a",
            _ms(m.orchestration_per_increment),
            _cell(f"{m.orchestration_percent:.2f} %", checks[2]),
            f"{m.overhead_percent:.2f} %",
            f"{m.whole_orchestration_percent:.2f} / {m.whole_overhead_percent:.2f}",
            f"{m.propagation_seconds_per_step:.0f} s",
        )
    console.print(counts)
    console.print(times)
    restores = Table(
        title="Interrupt → snapshot weights restored (ALB), by bake length", title_justify="left"
    )
    restores.add_column("interrupt", justify="left")
    for bake in INTERRUPT_BAKES:
        restores.add_column(f"bake {bake} s", justify="right")
    for kind in INTERRUPTS:
        row: list[Text | str] = [kind]
        for bake in INTERRUPT_BAKES:
            found = [i for i in interrupts if i.kind == kind and i.bake_seconds == bake]
            if not found:
                row.append("—")
                continue
            good = found[0].restore_seconds <= TARGET_RESTORE_SECONDS
            ok = ok and good
            row.append(_cell(f"{found[0].restore_seconds:.3f} s ({found[0].status})", good))
        restores.add_row(*row)
    if interrupts:
        console.print(restores)
    console.print(Text(PROPAGATION_NOTE, style="italic"))
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
            f"≤ {TARGET_TRANSITIONS:g} transitions, ≤ {TARGET_LAMBDAS:g} Lambda invocation and "
            f"≤ {TARGET_LAMBDA_SECONDS:g} s of Lambda time per increment; orchestration overhead "
            f"≤ {TARGET_OVERHEAD_PERCENT:g} % of bake time; interrupt → snapshot "
            f"restored ≤ {TARGET_RESTORE_SECONDS:g} s.",
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
        results, interrupts = measure(routers, args.time_scale, console)
    ok = report(results, interrupts, console)
    args.out.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "deployments": [
            {
                **asdict(m),
                "transitions_per_increment": m.transitions_per_increment,
                "lambdas_per_increment": m.lambdas_per_increment,
                "lambda_seconds_per_increment": m.lambda_seconds_per_increment,
                "overhead_per_increment_seconds": m.overhead_per_increment,
                "overhead_percent_of_bake": m.overhead_percent,
                "shift_per_increment_seconds": m.shift_per_increment,
                "orchestration_overhead_per_increment_seconds": m.orchestration_per_increment,
                "orchestration_overhead_percent_of_bake": m.orchestration_percent,
                "whole_run_orchestration_overhead_percent": m.whole_orchestration_percent,
            }
            for m in results
        ],
        "lambda_seconds_per_increment": {m.router: m.lambda_seconds_per_increment for m in results},
    }
    for kind in INTERRUPTS:
        payload[f"{kind}_to_restore_seconds"] = {
            "router": "alb",
            **{f"bake_{i.bake_seconds}s": round(i.restore_seconds, 4) for i in interrupts if i.kind == kind},
        }
    (args.out / "results.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
    console.print(
        Text(f"{time.monotonic() - began:.1f}s; results in {args.out / 'results.json'}", style="dim")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
