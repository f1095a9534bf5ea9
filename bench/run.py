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
import random
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
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
from ecs_canary_cli.local import EmulatorOptions, control
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


def _register(store: Store, clients: Any, spec: dict[str, Any]) -> None:
    """Register a pair as ``ecs-canary register`` does (preflight checks, then the table)."""
    register(
        store,
        parse_spec(spec),
        ecs=clients("ecs"),
        elbv2=clients("elbv2"),
        route53=clients("route53"),
        cloudwatch=clients("cloudwatch"),
        sts=clients("sts"),
        lambda_client=clients("lambda"),
    )


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
            _register(store, clients, spec)
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
            _register(store, clients, spec_for(pair, plan=PLAN))
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


# -- a burst at scale ------------------------------------------------------------------------------

BURST_PAIRS = 200
BURST_EVENTS = 10_000
BURST_THREADS = 4
BURST_BATCH = 25
BURST_TIME_SCALE = 10.0
"""Emulated time runs ten times slower than the wall clock during the burst, so the executions it
starts sit in their first waits (and the five-minute sweeper never fires) while events arrive."""
TARGET_EVENTS_PER_SECOND = 500.0
BURST_PATIENCE = 900.0
"""Real seconds the burst waits for the filter to handle every event before it reports what it did."""
FILTER_ACTIONS = (
    "EventsStarted",
    "EventsDuplicate",
    "EventsIgnored",
    "EventsSuperseding",
    "EventsRejected",
    "MalformedEvents",
)
"""The filter's EMF metrics: one of them per event it handled."""


@dataclass(frozen=True)
class Burst:
    """What 10,000 task events for 200 releases did: executions, records, and how fast."""

    pairs: int
    events: int
    executions: int
    lost_releases: int
    events_per_second: float
    seconds: float
    handled: int
    actions: dict[str, int]
    lambda_concurrency: int
    delivery_threads: int


@dataclass(frozen=True)
class _Release:
    pair: str
    service: str
    deployment: str
    tasks: tuple[dict[str, Any], ...]


def _running_detail(task: dict[str, Any], version: int) -> dict[str, Any]:
    """The detail of an ECS Task State Change event reporting ``task`` RUNNING."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "clusterArn": task["clusterArn"],
        "taskArn": task["taskArn"],
        "taskDefinitionArn": task["taskDefinitionArn"],
        "group": task["group"],
        "startedBy": task["startedBy"],
        "lastStatus": "RUNNING",
        "desiredStatus": "RUNNING",
        "launchType": task.get("launchType", "FARGATE"),
        "containers": [
            {"containerArn": c["containerArn"], "name": c["name"], "lastStatus": "RUNNING"}
            for c in task.get("containers", [])
        ],
        "createdAt": now,
        "startedAt": now,
        "updatedAt": now,
        "version": version,
    }


def _burst_events(releases: Sequence[_Release], total: int, rng: random.Random) -> list[dict[str, Any]]:
    """``total`` RUNNING events spread over the releases' tasks: each task reports RUNNING several
    times (newer versions and exact duplicates), and the whole lot is shuffled."""
    entries: list[dict[str, Any]] = []
    per_release = total // len(releases)
    extra = total - per_release * len(releases)
    for index, rel in enumerate(releases):
        count = per_release + (1 if index < extra else 0)
        for n in range(count):
            task = rel.tasks[n % len(rel.tasks)]
            version = 2 + rng.randrange(3)  # the same task reported again: duplicates and newer versions
            entries.append(
                {
                    "Source": "aws.ecs",
                    "DetailType": "ECS Task State Change",
                    "Resources": [task["taskArn"]],
                    "Detail": json.dumps(_running_detail(task, version)),
                }
            )
    rng.shuffle(entries)
    return entries


def _filter_handled(clients: Any, since: datetime) -> dict[str, int]:
    """How many events the filter handled so far, by action (its EMF metrics in CloudWatch)."""
    counts: dict[str, int] = {}
    end = datetime.now(UTC) + timedelta(minutes=5)
    for name in FILTER_ACTIONS:
        points = clients("cloudwatch").get_metric_statistics(
            Namespace="EcsCanary",
            MetricName=name,
            Dimensions=[{"Name": "service", "Value": "ecs-canary"}],
            StartTime=since,
            EndTime=end,
            Period=86_400,
            Statistics=["Sum"],
        )["Datapoints"]
        counts[name] = int(sum(p["Sum"] for p in points))
    return counts


def _deliver(endpoint: str, entries: Sequence[dict[str, Any]], threads: int) -> None:
    """POST the entries to /_emulator/events in batches, from several threads at once."""
    batches = [entries[i : i + BURST_BATCH] for i in range(0, len(entries), BURST_BATCH)]
    failures: list[BaseException] = []

    def post(share: Sequence[Sequence[dict[str, Any]]]) -> None:
        try:
            for batch in share:
                answer = control.inject_events(endpoint, batch)
                if answer.get("FailedEntryCount"):
                    raise RuntimeError(f"{answer['FailedEntryCount']} entries refused: {answer}")
        except BaseException as exc:
            failures.append(exc)

    workers = [threading.Thread(target=post, args=(batches[i::threads],)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failures:
        raise SystemExit(f"delivering the burst failed: {failures[0]}")


def _executions(clients: Any, state_machine_arn: str) -> list[dict[str, Any]]:
    sfn = clients("stepfunctions")
    found: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"stateMachineArn": state_machine_arn, "maxResults": 1000}
    while True:
        page = sfn.list_executions(**kwargs)
        found.extend(page["executions"])
        if not page.get("nextToken"):
            return found
        kwargs["nextToken"] = page["nextToken"]


def measure_burst(
    console: Console,
    *,
    pairs: int = BURST_PAIRS,
    events: int = BURST_EVENTS,
    threads: int = BURST_THREADS,
    seed: int = 7,
) -> Burst:
    """Register ``pairs`` ALB pairs, release each once, and deliver ``events`` ECS Task State Change
    events for the releases' tasks (RUNNING, repeated, shuffled, from ``threads`` threads) through the
    real EventBridge rule and filter function; count executions, records and the filter's rate.

    The releases' tasks stay PENDING (a day-long task start), so the injected events are the only
    RUNNING events the filter sees, and the executions wait for green to become steady until the
    measurement stops them.
    """
    options = EmulatorOptions(task_start_seconds=86_400, seed=seed)
    rng = random.Random(seed)
    with Emulator(
        time_scale=BURST_TIME_SCALE,
        template=repo_template(),
        parameters={"LogLevel": "ERROR"},
        options=options,
    ) as emu:
        clients = cached_clients(emu.client)
        store = Store(emu.outputs["TableName"], clients("dynamodb"))
        network = create_network(clients, cluster="burst")
        with spinner(console, f"burst: building and registering {pairs} ALB pairs …"):
            built: list[PairInfra] = []
            for index in range(pairs):
                pair = create_alb_pair(clients, network, f"burst{index:03d}")
                _register(store, clients, spec_for(pair))
                built.append(pair)
        ecs = clients("ecs")
        releases: list[_Release] = []
        with spinner(console, f"burst: releasing v2 to the idle service of {pairs} pairs …"):
            for pair in built:
                green = store.get_pair(pair.name).idle_service
                deployment = release(
                    clients, pair.cluster, green, register_revision(clients, pair.family, "v2", GOOD)
                )
                arns = ecs.list_tasks(cluster=pair.cluster, serviceName=green)["taskArns"]
                tasks = [
                    t
                    for t in ecs.describe_tasks(cluster=pair.cluster, tasks=arns)["tasks"]
                    if t.get("startedBy") == deployment
                ]
                if not tasks:
                    raise SystemExit(f"{pair.name}: release {deployment} started no tasks")
                releases.append(_Release(pair.name, green, deployment, tuple(tasks)))
        emu.wait_for_idle(60)
        entries = _burst_events(releases, events, rng)
        since = datetime.now(UTC) - timedelta(minutes=1)
        baseline = sum(_filter_handled(clients, since).values())
        with spinner(console, f"burst: {events} task events, {threads} delivery threads …"):
            began = time.monotonic()
            _deliver(emu.endpoint, entries, threads)
            delivered = time.monotonic() - began
            deadline = began + BURST_PATIENCE
            while True:
                counts = _filter_handled(clients, since)
                handled = sum(counts.values()) - baseline
                if handled >= events or time.monotonic() > deadline:
                    break
                time.sleep(1.0)  # each look is six metric queries to the emulator it measures
            seconds = time.monotonic() - began
        if handled < events:
            console.print(
                Text(
                    f"✗ burst: the filter handled {handled} of {events} events in {BURST_PATIENCE:g} s; "
                    "the figures below are for what it handled",
                    style="bold red",
                )
            )
        else:
            console.print(
                Text(
                    f"✓ burst: {events} events delivered in {delivered:.1f} s, "
                    f"handled by the filter in {seconds:.1f} s"
                )
            )
        executions = _executions(clients, emu.outputs["StateMachineArn"])
        lost = 0
        for rel in releases:
            records = store.list_deployments(rel.pair)
            if len([d for d in records if d.release.deployment == rel.deployment]) != 1 or len(records) != 1:
                lost += 1
        with spinner(console, f"burst: stopping {len(executions)} executions …"):
            sfn = clients("stepfunctions")
            for execution in executions:
                if execution["status"] == "RUNNING":
                    sfn.stop_execution(executionArn=execution["executionArn"], cause="bench: counted")
        return Burst(
            pairs=pairs,
            events=events,
            executions=len(executions),
            lost_releases=lost,
            events_per_second=handled / seconds,
            seconds=seconds,
            handled=handled,
            actions={k: v for k, v in counts.items() if v},
            lambda_concurrency=emu.options.lambda_concurrency,
            delivery_threads=threads,
        )


def report_burst(burst: Burst, console: Console) -> bool:
    """Print the burst's figures against its targets; True when all are met."""
    checks = (
        burst.executions == burst.pairs,
        burst.lost_releases == 0,
        burst.events_per_second >= TARGET_EVENTS_PER_SECOND,
        burst.handled >= burst.events,
    )
    table = Table(
        title=f"A burst: {burst.events} ECS task events for {burst.pairs} releases (one per pair)",
        title_justify="left",
    )
    for column in ("pairs", "events", "executions", "lost releases", "events / s", "filter actions"):
        table.add_column(column, justify="right" if column != "filter actions" else "left")
    table.add_row(
        str(burst.pairs),
        _cell(str(burst.events), True) if checks[3] else _cell(f"{burst.handled} of {burst.events}", False),
        _cell(str(burst.executions), checks[0]),
        _cell(str(burst.lost_releases), checks[1]),
        _cell(f"{burst.events_per_second:.0f}", checks[2]),
        ", ".join(f"{k} {v}" for k, v in sorted(burst.actions.items())),
    )
    console.print(table)
    console.print(
        Text(
            f"events / s: events injected (POST /_emulator/events, {burst.delivery_threads} threads) over "
            f"the time until the filter function's EMF metrics count all of them ({burst.seconds:.1f} s); "
            f"Lambda concurrency limit {burst.lambda_concurrency}. Targets: one execution per pair, no lost "
            f"release, ≥ {TARGET_EVENTS_PER_SECOND:g} events/s.",
            style="italic",
        )
    )
    return all(checks)


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


def _rollout_results(results: Sequence[Measurement], interrupts: Sequence[Interrupt]) -> dict[str, Any]:
    """The rollout and interrupt figures, as results.json keeps them."""
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
    return payload


def _write_results(path: Path, update: dict[str, Any]) -> None:
    """Merge ``update`` into the JSON object at ``path`` (keys this run did not measure stay)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    current: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            loaded = None
        if isinstance(loaded, dict):
            current = loaded
    path.write_text(json.dumps({**current, **update}, indent=2), encoding="utf-8")


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
    parser.add_argument(
        "--only",
        choices=("rollout", "burst"),
        default=None,
        help="run only the rollout and interrupt measurements, or only the burst (default: both)",
    )
    parser.add_argument("--burst-pairs", type=int, default=BURST_PAIRS, help=argparse.SUPPRESS)
    parser.add_argument("--burst-events", type=int, default=BURST_EVENTS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path(".bench"), help="where results.json goes")
    args = parser.parse_args(argv)
    routers: tuple[RouterKind, ...] = ("alb", "route53") if args.router == "both" else (args.router,)
    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 150)
    began = time.monotonic()
    log = Path(tempfile.mkdtemp(prefix="ecs-canary-bench-")) / "emulator.log"
    ok = True
    update: dict[str, Any] = {}
    if args.only != "burst":
        with quiet(log):
            results, interrupts = measure(routers, args.time_scale, console)
        ok = report(results, interrupts, console)
        update.update(_rollout_results(results, interrupts))
    if args.only != "rollout":
        with quiet(log):
            burst = measure_burst(console, pairs=args.burst_pairs, events=args.burst_events)
        ok = report_burst(burst, console) and ok
        update["burst"] = {
            "pairs": burst.pairs,
            "events": burst.events,
            "executions": burst.executions,
            "lost_releases": burst.lost_releases,
            "events_per_second": round(burst.events_per_second, 1),
            "handled": burst.handled,
        }
    _write_results(args.out / "results.json", update)
    console.print(
        Text(f"{time.monotonic() - began:.1f}s; results in {args.out / 'results.json'}", style="dim")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
