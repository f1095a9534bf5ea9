"""The fault matrix: every Task state of the canary state machine under every kind of failure.

Each case is one deployment of its own ALB service pair, through the real trigger (``UpdateService``
→ task events → filter → execution), in the emulator with this repository's template. Before the
release, a fault is injected into the Lambda function behind one Task state (the emulator's
``/_emulator/lambda/faults`` API), scoped to that pair's invocations:

* ``throttle`` / ``server-error``: every AWS call the function makes is refused with the service's
  throttling error or an HTTP 500 (the SDK's retries meet it too);
* ``crash``: the function's runtime exits as the handler starts;
* ``timeout``: the handler hangs past the function's timeout (real seconds: 60, the hook runner 900,
  the rollback 360);
* ``exit-after-call``: the process dies right after the Task's AWS write succeeded, before it
  records anything (the router write for shifts and rollbacks, the hook's invocation for the hook
  runner, the first write otherwise).

On the forward path (load, steady, shift, hooks, watch, promote) refusals and crashes last for the
whole deployment, so the Task's retries run out and the deployment must fail back; a timeout and an
exit happen once, so the retry must pick up where the dead call left off. On the rollback path
every fault happens once (the deployment is aborted by an operator at its first step), and
"Record that the rollback failed" runs because the rollback itself fails for good (its function
crashes on every attempt).

A case **holds** when the fault acted and an attempt of its Task state failed (the execution's
history says so), the deployment's record reached the terminal status the case calls for (``FAILED``
for a lasting fault, ``SUCCEEDED`` for one that happens once, ``ABORTED`` on the rollback path,
``ROLLBACK_FAILED`` when the rollback always crashes), its execution ended accordingly, the pair's
lock is free, and the router's weights are exact: 100 % green after a promotion, the snapshot
taken before the release otherwise, and, when the rollback failed for good, what the record says
they are (``ROLLBACK_FAILED`` is recorded, the pair's ``RollbacksFailed`` is counted and the
stack's alarm fires: nothing is silent).

Run it with ``make faults`` (the full matrix, about 20 minutes: the hook runner's 900 s timeout is
waited out in real time) or ``python -m tests.faults.matrix --reduced``; ``tests/faults`` runs the
reduced matrix (every Task and every fault kind at least once, no timeout longer than 60 s) in
``make test``.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ecs_canary.registration import register
from ecs_canary.spec import parse_spec
from ecs_canary.store import Deployment, Status, Store
from ecs_canary_cli.demo.infra import (
    GOOD,
    ClientFactory,
    Network,
    PairInfra,
    create_alb_pair,
    create_network,
    deploy_function,
    register_revision,
    release,
    spec_for,
)
from ecs_canary_cli.demo.runner import cached_clients, repo_template, wait_for_deployment
from ecs_canary_cli.demo.traffic import read_weights
from ecs_canary_cli.local import Emulator, control

TIME_SCALE = 0.01
STACK_PARAMETERS = {"LogLevel": "WARNING", "LockLeaseSeconds": "3"}
KINDS = ("throttle", "server-error", "crash", "timeout", "exit-after-call")
ROUTER_WRITES = ("elbv2:ModifyListener", "elbv2:ModifyRule")
RAMP = {"type": "steps", "steps": [50, 100], "bake_seconds": 120}
"""Two shifts with a 1.2 s bake (at the time scale): a shift, a watched bake and a promotion."""
HELD = {"type": "steps", "steps": [50, 100], "bake_seconds": 86_400}
"""The first step holds until an operator aborts (the rollback-path cases)."""
DEADLINE = 1500.0
"""Seconds a case may take before it counts as hung: above the hook runner's 900 s timeout plus
its retry, and a deadline, not a speed check."""

HOOK_SOURCE = """
def handler(event, context):
    return {"hookStatus": "SUCCEEDED", "reason": "checked " + str(event.get("lifecycleStage"))}
"""


@dataclass(frozen=True)
class TaskUnderTest:
    """A Task state of the machine and the function behind it."""

    key: str
    state: str
    function: str
    """The function's logical id in template.yaml."""
    timeout: int
    """The function's timeout (real seconds: what a ``timeout`` case waits out)."""
    writes: tuple[str, ...] = ()
    """The calls ``exit-after-call`` dies after (empty: the first call that writes)."""
    rollback_path: bool = False
    hook_stage: str | None = None
    """A hook the case's spec runs (so the hook runner has work)."""


TASKS: tuple[TaskUnderTest, ...] = (
    TaskUnderTest("prepare", "Load spec and snapshot traffic", "PrepareFunction", 60),
    TaskUnderTest("steady", "Wait for green to be steady", "SteadyFunction", 60),
    TaskUnderTest("advance", "Check health and shift traffic", "AdvanceFunction", 60, ROUTER_WRITES),
    TaskUnderTest(
        "hooks",
        "Run the stage's hooks",
        "HookFunction",
        900,
        ("lambda:Invoke",),
        hook_stage="after_each_shift",
    ),
    TaskUnderTest("watch", "Watch for alarms, crashes, new releases and operators", "ListenFunction", 60),
    TaskUnderTest("promote", "Promote green", "PromoteFunction", 60),
    TaskUnderTest("rollback", "Roll back", "RollbackFunction", 360, ROUTER_WRITES, rollback_path=True),
    TaskUnderTest(
        "rollback-hooks",
        "Run the rollback hooks",
        "HookFunction",
        900,
        ("lambda:Invoke",),
        rollback_path=True,
        hook_stage="on_rollback",
    ),
    TaskUnderTest(
        "record-rollback-failed",
        "Record that the rollback failed",
        "RollbackFailedFunction",
        60,
        rollback_path=True,
    ),
)


@dataclass(frozen=True)
class Case:
    task: TaskUnderTest
    kind: str

    @property
    def id(self) -> str:
        return f"{self.task.key}/{self.kind}"

    @property
    def lasting(self) -> bool:
        """Whether the fault lasts the whole deployment (else it happens once)."""
        return not self.task.rollback_path and self.kind in ("throttle", "server-error", "crash")

    @property
    def expected_status(self) -> str:
        """How the deployment must end: a lasting fault fails it back, one that happens once is
        recovered from, an abort stays an abort, and a rollback that always crashes is recorded."""
        if self.task.key == "record-rollback-failed":
            return "ROLLBACK_FAILED"
        if self.task.rollback_path:
            return "ABORTED"
        return "FAILED" if self.lasting else "SUCCEEDED"

    def fault(self, function: str, pair: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "function": function,
            "kind": self.kind,
            "match": json.dumps(pair),
            "times": None if self.lasting else 1,
        }
        if self.kind == "exit-after-call" and self.task.writes:
            body["calls"] = list(self.task.writes)
        return body


def all_cases() -> list[Case]:
    return [Case(task, kind) for task in TASKS for kind in KINDS]


def reduced_cases() -> list[Case]:
    """Every Task and every fault kind at least once; timeouts only where they last 60 s."""
    picks = {
        "prepare": ("crash", "timeout"),
        "steady": ("crash",),
        "advance": ("exit-after-call", "server-error"),
        "hooks": ("crash",),
        "watch": ("throttle",),
        "promote": ("exit-after-call",),
        "rollback": ("exit-after-call", "crash"),
        "rollback-hooks": ("server-error",),
        "record-rollback-failed": ("throttle",),
    }
    return [Case(task, kind) for task in TASKS for kind in picks[task.key]]


@dataclass
class Outcome:
    case: Case
    pair: str = ""
    status: str = "-"
    execution: str = "-"
    snapshot: dict[str, int] = field(default_factory=dict)
    weights: dict[str, int] = field(default_factory=dict)
    expected: dict[str, int] = field(default_factory=dict)
    acted: int = 0
    alarmed: bool | None = None
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def holds(self) -> bool:
        return not self.problems


def _weights_text(weights: dict[str, int]) -> str:
    return " / ".join(f"{weights[name]}" for name in sorted(weights)) if weights else "-"


class Matrix:
    """One emulator, the stack's functions, and what every case needs."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.clients: ClientFactory = cached_clients(emulator.client)
        self.network: Network = create_network(self.clients, cluster="faults")
        self.store = Store(emulator.outputs["TableName"], self.clients("dynamodb"))
        self.physical: dict[str, str] = {}
        pages = self.clients("cloudformation").get_paginator("list_stack_resources")
        for page in pages.paginate(StackName=emulator.stack_name):
            for resource in page["StackResourceSummaries"]:
                self.physical[resource["LogicalResourceId"]] = resource.get("PhysicalResourceId", "")
        self.hook = self._hook_function()
        self._lock = threading.Lock()

    def _hook_function(self) -> str:
        name = f"{self.emulator.outputs['HookFunctionPrefix']}fault-matrix"
        return deploy_function(self.clients, name, {"hook.py": HOOK_SOURCE}, "hook.handler")

    # ---- one case ----------------------------------------------------------------------------------

    def run(self, case: Case, index: int) -> Outcome:
        outcome = Outcome(case, pair=f"fm{index:02d}")
        started = time.monotonic()
        faults: list[str] = []
        try:
            self._run(case, outcome, faults)
        except Exception as exc:  # a case that cannot even run is a failed case, with the reason
            outcome.problems.append(f"{type(exc).__name__}: {exc}")
        finally:
            for fault_id in faults:
                with suppress(control.ControlError):
                    control.call(self.emulator.endpoint, "DELETE", "lambda/faults", {"id": fault_id})
            outcome.seconds = time.monotonic() - started
        return outcome

    def _fault(self, body: dict[str, Any], faults: list[str]) -> str:
        fault_id = str(control.call(self.emulator.endpoint, "POST", "lambda/faults", body)["id"])
        faults.append(fault_id)
        return fault_id

    def _acted(self, fault_id: str) -> int:
        listed = control.call(self.emulator.endpoint, "GET", "lambda/faults")["faults"]
        return sum(int(f["acted"]) for f in listed if f["id"] == fault_id)

    def _run(self, case: Case, outcome: Outcome, faults: list[str]) -> None:
        with self._lock:  # pair creation touches shared network resources
            pair = create_alb_pair(self.clients, self.network, outcome.pair)
        task = case.task
        gates: dict[str, Any] = {}
        if task.hook_stage is not None:
            gates["hooks"] = {task.hook_stage: [{"function": self.hook, "timeout_seconds": 60}]}
        document = spec_for(
            pair,
            plan=HELD if task.rollback_path else RAMP,
            alarms=[f"{s.name}-5xx" for s in pair.services],
            max_5xx_percent=None,
            gates=gates or None,
        )
        register(
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
        green = self.store.get_pair(pair.name).idle_service
        outcome.snapshot = read_weights(self.clients, pair)
        fault_id = self._fault(case.fault(self.physical[task.function], pair.name), faults)
        if task.key == "record-rollback-failed":
            # The rollback fails for good: its function crashes on every attempt.
            crash = {
                "function": self.physical["RollbackFunction"],
                "kind": "crash",
                "match": json.dumps(pair.name),
            }
            self._fault({**crash, "times": None}, faults)
        task_definition = register_revision(self.clients, pair.family, "v2", GOOD)
        release(self.clients, pair.cluster, green, task_definition)
        deadline = time.monotonic() + DEADLINE
        if task.rollback_path:
            at_step = wait_for_deployment(
                self.store,
                pair.name,
                green,
                task_definition,
                timeout=DEADLINE,
                until=lambda d: d.step_index == 0 and d.status is Status.RUNNING,
            )
            if at_step is None or at_step.status.terminal:
                shown = "no record" if at_step is None else at_step.status.value
                outcome.problems.append(f"never reached its first step to be aborted ({shown})")
            else:
                refused = self._abort(pair.name)
                if refused:
                    latest = self.store.get_deployment(pair.name, at_step.deployment_id)
                    outcome.problems.append(
                        f"abort refused ({refused}); the record is {latest.status.value}: {latest.reason}"
                    )
        dep = wait_for_deployment(
            self.store, pair.name, green, task_definition, timeout=max(1.0, deadline - time.monotonic())
        )
        if dep is not None and dep.status.terminal:
            # The rollback hooks and the last states run after the record closed.
            outcome.execution = self._execution_status(dep, deadline)
        self._judge(case, outcome, pair, green, dep, fault_id)

    def _abort(self, pair: str) -> str:
        """What ``ecs-canary abort`` does: invoke the stack's command function; why it was refused."""
        answer = self.clients("lambda").invoke(
            FunctionName=self.emulator.outputs["CommandFunctionArn"],
            Payload=json.dumps(
                {"pair": pair, "command": "abort", "by": "fault-matrix", "reason": "fault matrix"}
            ).encode(),
        )
        body = json.loads(answer["Payload"].read() or b"{}")
        if answer.get("FunctionError") or not body.get("accepted"):
            return str(body.get("reason") or body)
        return ""

    def _judge(  # noqa: PLR0917 - one call site, every argument a different thing
        self,
        case: Case,
        outcome: Outcome,
        pair: PairInfra,
        green: str,
        dep: Deployment | None,
        fault_id: str,
    ) -> None:
        outcome.acted = self._acted(fault_id)
        if outcome.acted == 0:
            outcome.problems.append("the fault never acted")
        outcome.weights = read_weights(self.clients, pair)
        if dep is None:
            outcome.problems.append("no deployment record")
            return
        outcome.status = dep.status.value
        if not dep.status.terminal:
            outcome.problems.append(f"record not terminal: {dep.status.value}")
        if dep.status.value != case.expected_status:
            outcome.problems.append(f"ended {dep.status.value}, expected {case.expected_status}")
        wanted_execution = "SUCCEEDED" if case.expected_status == "SUCCEEDED" else "FAILED"
        if outcome.execution != wanted_execution:
            outcome.problems.append(f"execution {outcome.execution}, expected {wanted_execution}")
        failed = self._failed_attempts(dep, case.task.state)
        if failed == 0:
            outcome.problems.append(f"no attempt of {case.task.state!r} failed: the fault missed the state")
        if self.store.active_deployment_id(pair.name) is not None:
            outcome.problems.append("the pair's lock is still held")
        if dep.status is Status.SUCCEEDED:
            outcome.expected = {name: (100 if name == green else 0) for name in outcome.snapshot}
        elif dep.status is Status.ROLLBACK_FAILED:
            outcome.expected = dict(dep.weights or {})
            outcome.alarmed = self._counted(pair.name) and self._counted(None)
            if not outcome.alarmed:
                outcome.problems.append(
                    "ROLLBACK_FAILED but RollbacksFailed (the pair's, and the series the stack's alarm "
                    "watches) has no datapoint"
                )
        else:
            outcome.expected = dict(outcome.snapshot)
        if outcome.weights != outcome.expected:
            outcome.problems.append(
                f"weights {_weights_text(outcome.weights)}, expected {_weights_text(outcome.expected)}"
            )

    def _failed_attempts(self, dep: Deployment, state: str) -> int:
        """How many attempts of the Task state ``state`` failed or timed out in the execution.

        Branches of the Parallel interleave their events, so each failure is traced back through
        ``previousEventId`` to the state it happened in.
        """
        if dep.execution_arn is None:
            return 0
        sfn = self.clients("stepfunctions")
        events: dict[int, dict[str, Any]] = {}
        kwargs: dict[str, Any] = {"executionArn": dep.execution_arn, "maxResults": 1000}
        while True:
            page = sfn.get_execution_history(**kwargs)
            events.update({int(e["id"]): e for e in page["events"]})
            if not page.get("nextToken"):
                break
            kwargs["nextToken"] = page["nextToken"]

        def state_of(event: dict[str, Any]) -> str | None:
            seen: set[int] = set()
            while event is not None and int(event["id"]) not in seen:
                seen.add(int(event["id"]))
                entered = event.get("stateEnteredEventDetails")
                if entered is not None:
                    return str(entered.get("name"))
                event = events.get(int(event.get("previousEventId") or 0))  # type: ignore[assignment]
            return None

        failures = (e for e in events.values() if e["type"] in ("TaskFailed", "TaskTimedOut"))
        return sum(1 for e in failures if state_of(e) == state)

    def _execution_status(self, dep: Deployment, deadline: float) -> str:
        """How the deployment's execution ended (waiting for it until ``deadline``)."""
        if dep.execution_arn is None:
            return "-"
        sfn = self.clients("stepfunctions")
        while True:
            status = str(sfn.describe_execution(executionArn=dep.execution_arn)["status"])
            if status != "RUNNING" or time.monotonic() >= deadline:
                return status
            time.sleep(0.1)

    def _counted(self, pair: str | None) -> bool:
        """A RollbacksFailed datapoint: the pair's own, or (``None``) in the series the stack's alarm
        watches (every pair's; the alarm's state itself lasts only one scaled period)."""
        now = datetime.now(UTC)
        cloudwatch = self.clients("cloudwatch")
        deadline = time.monotonic() + 60  # logs ship after the invocation ends
        while time.monotonic() < deadline:
            points = cloudwatch.get_metric_statistics(
                Namespace="EcsCanary",
                MetricName="RollbacksFailed",
                Dimensions=[
                    *([{"Name": "Pair", "Value": pair}] if pair is not None else []),
                    {"Name": "service", "Value": "ecs-canary"},
                ],
                StartTime=now - timedelta(hours=1),
                EndTime=now + timedelta(minutes=5),
                Period=60,
                Statistics=["Sum"],
            )["Datapoints"]
            if sum(float(p["Sum"]) for p in points) >= 1:
                return True
            time.sleep(0.5)
        return False


@contextmanager
def matrix_emulator() -> Iterator[Emulator]:
    with Emulator(time_scale=TIME_SCALE, template=repo_template(), parameters=STACK_PARAMETERS) as emulator:
        # Hung environments (timeout cases) hold slots; AWS's default limit is 1000.
        emulator.options.lambda_concurrency = 40
        yield emulator


def run_matrix(
    emulator: Emulator,
    cases: Sequence[Case],
    *,
    workers: int = 6,
    on_done: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Run ``cases`` (``workers`` at a time, each on its own pair); their outcomes, in order."""
    matrix = Matrix(emulator)
    outcomes: list[Outcome | None] = [None] * len(cases)

    def one(index: int) -> None:
        outcome = matrix.run(cases[index], index)
        outcomes[index] = outcome
        if on_done is not None:
            on_done(outcome)

    # The long timeouts first, so they overlap with everything else.
    order = sorted(
        range(len(cases)), key=lambda i: -(cases[i].task.timeout if cases[i].kind == "timeout" else 0)
    )
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fault-case") as pool:
        list(pool.map(one, order))
    return [o for o in outcomes if o is not None]


def render(outcomes: Sequence[Outcome]) -> str:
    """The table, then the summary line."""
    from rich.console import Console  # noqa: PLC0415 - only the report needs rich
    from rich.table import Table  # noqa: PLC0415

    table = Table(title="Fault matrix (weights: blue / green, in percent)")
    for column in (
        "Task state",
        "Fault",
        "Acted",
        "Status",
        "Execution",
        "Snapshot",
        "Final",
        "Expected",
        "Holds",
    ):
        table.add_column(column)
    for o in outcomes:
        fault = o.case.kind + ("" if o.case.lasting else " (once)")
        table.add_row(
            o.case.task.state,
            fault,
            str(o.acted),
            o.status,
            o.execution,
            _weights_text(o.snapshot),
            _weights_text(o.weights),
            _weights_text(o.expected) + (" as recorded" if o.status == "ROLLBACK_FAILED" else ""),
            "yes" if o.holds else "NO: " + "; ".join(o.problems),
        )
    buffer = io.StringIO()
    Console(file=buffer, width=220, no_color=True).print(table)
    held = sum(o.holds for o in outcomes)
    buffer.write(f"{held} of {len(outcomes)} cases ended with exact weights and a terminal record\n")
    return buffer.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reduced", action="store_true", help="the reduced matrix (as in make test)")
    parser.add_argument("--only", default="", help="comma-separated case ids (task/kind) to run")
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--out", type=Path, help="also write the outcomes as JSON here")
    args = parser.parse_args(argv)
    cases = reduced_cases() if args.reduced else all_cases()
    if args.only:
        wanted = set(args.only.split(","))
        cases = [c for c in all_cases() if c.id in wanted]
    print(f"running {len(cases)} fault cases, {args.workers} at a time", flush=True)

    def progress(o: Outcome) -> None:
        print(
            f"  {o.case.id:<36} {o.status:<16} {'holds' if o.holds else 'FAILS'} ({o.seconds:.0f} s)",
            flush=True,
        )

    with matrix_emulator() as emulator:
        outcomes = run_matrix(emulator, cases, workers=args.workers, on_done=progress)
    print(render(outcomes), end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                [
                    {
                        "case": o.case.id,
                        "state": o.case.task.state,
                        "status": o.status,
                        "execution": o.execution,
                        "snapshot": o.snapshot,
                        "weights": o.weights,
                        "expected": o.expected,
                        "acted": o.acted,
                        "holds": o.holds,
                        "problems": o.problems,
                        "seconds": round(o.seconds, 1),
                    }
                    for o in outcomes
                ],
                indent=2,
            )
        )
    return 0 if all(o.holds for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
