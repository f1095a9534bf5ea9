"""``pairs``, ``deployments``, ``status``, ``watch`` and ``unlock``: reading (and unsticking) the store."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from ecs_canary.errors import RouterConfigError, SpecError
from ecs_canary.flow.identity import execution_arn_for
from ecs_canary.registration import spec_router
from ecs_canary.spec import parse_spec
from ecs_canary.store import Deployment, Pair, Status, Store
from rich.console import Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from ecs_canary_cli import render
from ecs_canary_cli.commands.base import EXIT_FAILURE, EXIT_OK, App, CliError
from ecs_canary_cli.context import StackContext

__all__ = [
    "deployments_command",
    "pairs_command",
    "plan_steps",
    "status_command",
    "unlock_command",
    "watch_command",
]

# Module attributes rather than direct calls so tests can drive ``watch`` without real waiting.
sleep = time.sleep
monotonic = time.monotonic


def plan_steps(dep: Deployment, pair: Pair | None) -> int | None:
    """Step count of the plan the deployment runs: its own spec copy first, else the registered spec."""
    if dep.spec is not None:
        try:
            return len(parse_spec(dep.spec).resolved_plan().steps)
        except SpecError:
            pass
    return len(pair.spec.resolved_plan().steps) if pair is not None else None


def _execution_arn(ctx: StackContext, dep: Deployment) -> str | None:
    """The record's execution, or the one its deterministic name would have (a STARTING record has none)."""
    if dep.execution_arn:
        return dep.execution_arn
    if ctx.state_machine_arn:
        return execution_arn_for(ctx.state_machine_arn, dep.deployment_id)
    return None


def _execution_status(ctx: StackContext, arn: str | None) -> str | None:
    """Best effort for display: unknown (None) when the execution cannot be read."""
    if arn is None:
        return None
    try:
        return str(ctx.sfn.describe_execution(executionArn=arn)["status"])
    except (ClientError, BotoCoreError):
        return None


def _current_weights(ctx: StackContext, pair: Pair) -> tuple[dict[str, int] | None, str | None]:
    """The router's weights now, or why they could not be read."""
    try:
        return spec_router(pair.spec, route53=ctx.route53, elbv2=ctx.elbv2).read_weights(), None
    except RouterConfigError as exc:
        return None, str(exc)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        return None, f"{error.get('Code', 'error')}: {error.get('Message', exc)}"


def _pick(store: Store, pair: str, deployment_id: str | None) -> Deployment:
    """The named deployment, else the active one, else the newest."""
    if deployment_id is not None:
        return store.get_deployment(pair, deployment_id)
    active = store.active_deployment_id(pair)
    if active is not None:
        found = store.find_deployment(pair, active)
        if found is not None:
            return found
    deployments = store.list_deployments(pair)
    if not deployments:
        raise CliError(f"pair {pair} has no deployments yet")
    return deployments[0]


# ---- pairs / deployments ---------------------------------------------------------------------------


def pairs_command(app: App) -> int:
    store = app.context().store()
    pairs = store.list_pairs()
    active = {p.spec.name: store.active_deployment_id(p.spec.name) for p in pairs}
    if app.json_output:
        app.emit_json(
            [
                {
                    "name": p.spec.name,
                    "cluster": p.spec.cluster,
                    "live_service": p.live_service,
                    "idle_service": p.idle_service,
                    "idle_baseline": p.idle_baseline,
                    "router": p.spec.router.model_dump(mode="json"),
                    "plan": p.spec.resolved_plan().to_dict(),
                    "active_deployment": active[p.spec.name],
                    "retired": p.retired,
                    "registered_at": p.registered_at,
                }
                for p in pairs
            ]
        )
        return EXIT_OK
    if not pairs:
        app.out.print("No pairs registered yet: run `ecs-canary register SPEC.yaml`.")
        return EXIT_OK
    app.out.print(render.pairs_table(pairs, active))
    return EXIT_OK


def deployments_command(app: App) -> int:
    store = app.context().store()
    store.get_pair(app.args.pair)
    deployments = store.list_deployments(app.args.pair)[: app.args.limit]
    if app.json_output:
        app.emit_json([d.to_dict() for d in deployments])
        return EXIT_OK
    if not deployments:
        app.out.print(f"No deployments of pair {app.args.pair} yet.")
        return EXIT_OK
    app.out.print(
        render.deployments_table(deployments, title=f"deployments of {app.args.pair}, newest first")
    )
    return EXIT_OK


# ---- status ----------------------------------------------------------------------------------------


def status_command(app: App) -> int:
    ctx = app.context()
    store = ctx.store()
    pair = store.get_pair(app.args.pair)
    dep = _pick(store, app.args.pair, app.args.deployment_id)
    arn = _execution_arn(ctx, dep)
    execution_status = _execution_status(ctx, arn)
    weights, weights_error = _current_weights(ctx, pair)
    # The record names its execution from the claim on; while STARTING it may not exist yet.
    known = arn is not None and (execution_status is not None or dep.status is not Status.STARTING)
    console_url = render.execution_console_url(arn) if arn is not None and known else None
    if app.json_output:
        app.emit_json(
            {
                **dep.to_dict(),
                "steps": plan_steps(dep, pair),
                "execution_status": execution_status,
                "current_weights": weights,
                "current_weights_error": weights_error,
                "console_url": console_url,
            }
        )
        return EXIT_OK
    app.out.print(
        render.deployment_panel(
            dep,
            steps=plan_steps(dep, pair),
            execution_status=execution_status,
            current_weights=weights,
            history_limit=None,
        )
    )
    if weights_error is not None:
        app.warn(f"current weights unavailable: {weights_error}")
    if console_url is not None:
        app.out.print(f"console: {console_url}", soft_wrap=True)
    return EXIT_OK


# ---- watch -----------------------------------------------------------------------------------------


def _waiting(pair: Pair, started: float) -> RenderableType:
    elapsed = render.format_duration(monotonic() - started)
    return Spinner(
        "dots",
        Text(
            f"waiting for the next deployment of {pair.spec.name} (a new release of {pair.idle_service}) "
            f"… {elapsed}"
        ),
    )


def _next_deployment(store: Store, pair: str, known: set[str]) -> str | None:
    """The active deployment, or one created since the watch began (it may already have ended)."""
    active = store.active_deployment_id(pair)
    if active is not None:
        return active
    fresh = [d for d in store.list_deployments(pair) if d.deployment_id not in known]
    return fresh[0].deployment_id if fresh else None


def _watch_view(dep: Deployment, steps: int | None, execution_status: str | None) -> RenderableType:
    panel = render.deployment_panel(dep, steps=steps, execution_status=execution_status)
    if dep.status.terminal:
        return panel
    note = "ended, the record is being closed" if execution_status not in (None, "RUNNING") else "in progress"
    return Group(panel, Text(f"execution {note}; refreshing…", style="dim"))


class _WatchOutput:
    """Where ``watch`` shows what it reads: a live panel, or one JSON document per change."""

    def __init__(self, app: App, live: Live | None) -> None:
        self.app = app
        self.live = live
        self.last: str | None = None
        self.announced = False

    def waiting(self, pair: Pair, started: float) -> None:
        if self.live is not None:
            self.live.update(_waiting(pair, started))
        elif not self.announced:
            self.announced = True
            self.app.emit_json_line(
                {"event": "waiting", "pair": pair.spec.name, "service": pair.idle_service, "status": None}
            )

    def show(self, dep: Deployment, steps: int | None, execution_status: str | None) -> None:
        if self.live is not None:
            self.live.update(_watch_view(dep, steps, execution_status))
            return
        if dep.status.terminal:
            return  # the final document reports it
        doc = render.deployment_event(dep, event="change", steps=steps, execution_status=execution_status)
        key = render.event_key(doc)
        if key != self.last:
            self.last = key
            self.app.emit_json_line(doc)


def watch_command(app: App) -> int:
    """Follow one deployment until it ends; 0 only if it SUCCEEDED."""
    ctx = app.context()
    store = ctx.store()
    name = app.args.pair
    pair = store.get_pair(name)
    interval = max(0.0, float(app.args.interval))
    started = monotonic()
    deadline = started + app.args.timeout if app.args.timeout else None
    deployment_id: str | None = app.args.deployment_id
    if deployment_id is not None:
        store.get_deployment(name, deployment_id)
    dep: Deployment | None = None
    steps: int | None = None
    execution_status: str | None = None
    timed_out = False
    with contextlib.ExitStack() as stack:
        live = (
            None
            if app.json_output
            else stack.enter_context(Live(console=app.out, refresh_per_second=4, transient=False))
        )
        output = _WatchOutput(app, live)
        if deployment_id is None:
            deployment_id = store.active_deployment_id(name)
        if deployment_id is None:
            known = {d.deployment_id for d in store.list_deployments(name)}
            while deployment_id is None:
                output.waiting(pair, started)
                if deadline is not None and monotonic() >= deadline:
                    timed_out = True
                    break
                sleep(interval)
                deployment_id = _next_deployment(store, name, known)
        if deployment_id is not None:
            while True:
                dep = store.get_deployment(name, deployment_id)
                if steps is None:
                    steps = plan_steps(dep, pair)
                execution_status = _execution_status(ctx, _execution_arn(ctx, dep))
                output.show(dep, steps, execution_status)
                if dep.status.terminal:
                    break
                if deadline is not None and monotonic() >= deadline:
                    timed_out = True
                    break
                sleep(interval)
    waited = render.format_duration(app.args.timeout or 0)
    if timed_out and dep is None:
        if app.json_output:
            app.emit_json_line(
                {"event": "timeout", "pair": name, "deployment_id": None, "status": None, "exit_code": 1}
            )
        raise CliError(f"timed out after {waited}: no deployment of pair {name} started")
    assert dep is not None
    if timed_out:
        if app.json_output:
            app.emit_json_line(
                render.deployment_event(
                    dep, event="timeout", steps=steps, execution_status=execution_status, exit_code=1
                )
            )
        raise CliError(
            f"timed out after {waited}: deployment {dep.deployment_id} is still {dep.status.value}"
        )
    code = EXIT_OK if dep.status is Status.SUCCEEDED else EXIT_FAILURE
    if app.json_output:
        app.emit_json_line(
            render.deployment_event(
                dep, event="end", steps=steps, execution_status=execution_status, exit_code=code
            )
        )
        return code
    style = "green" if dep.status is Status.SUCCEEDED else "red"
    line = f"deployment {dep.deployment_id} {dep.status.value}"
    app.out.print(Text(f"{line}: {dep.reason}" if dep.reason else line, style=style), soft_wrap=True)
    return code


# ---- unlock ----------------------------------------------------------------------------------------


def _stop_hint(arn: str) -> str:
    return (
        f"stop the execution to roll it back: aws stepfunctions stop-execution --execution-arn {arn} "
        "(the reconciler then restores the weights and releases the lock)"
    )


def unlock_command(app: App) -> int:
    """Release a lock no execution will ever release; refuse while the execution still runs."""
    ctx = app.context()
    store = ctx.store()
    name = app.args.pair
    pair = store.get_pair(name)
    deployment_id = store.active_deployment_id(name)
    if deployment_id is None:
        app.out.print(f"pair {name} is not locked: nothing to unlock")
        return EXIT_OK
    dep = store.find_deployment(name, deployment_id)
    if dep is None:
        raise CliError(
            f"the lock of pair {name} names deployment {deployment_id}, which has no record; "
            "delete the lock item (pk PAIR#<pair>, sk LOCK) from the table by hand"
        )
    arn = _execution_arn(ctx, dep)
    why: str
    if arn is None:
        if dep.status is not Status.STARTING:
            raise CliError(
                f"deployment {deployment_id} is {dep.status.value} but its execution is unknown: "
                "pass --state-machine-arn (or --stack) so its execution can be checked"
            )
        why = f"deployment {deployment_id} is STARTING and no state machine is known to have run it"
    else:
        try:
            execution: dict[str, Any] = dict(ctx.sfn.describe_execution(executionArn=arn))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ExecutionDoesNotExist":
                raise
            execution = {}
        if not execution:
            if dep.status is Status.STARTING:
                why = f"deployment {deployment_id} is STARTING and its execution was never started"
            else:
                why = f"its execution {arn} does not exist"
        elif execution.get("status") == "RUNNING":
            raise CliError(
                [
                    f"refusing to unlock {name}: deployment {deployment_id} is still running ({arn})",
                    _stop_hint(arn),
                ]
            )
        else:
            why = f"its execution ended as {execution.get('status')}"
    if not store.finish(name, deployment_id, Status.ABORTED, f"lock released by an operator: {why}"):
        current = store.get_deployment(name, deployment_id)
        raise CliError(
            f"could not release the lock of {name}: deployment {deployment_id} is already "
            f"{current.status.value}; the lock item must be removed by hand"
        )
    app.out.print(Text(f"✓ released the lock of {name}: {why}", style="green"), soft_wrap=True)
    weights, weights_error = _current_weights(ctx, pair)
    if weights is not None:
        shown = render.format_weights(weights, pair.spec.service_names)
        app.out.print(f"traffic was not changed; current weights: {shown}")
    else:
        app.warn(f"traffic was not changed; current weights unavailable: {weights_error}")
    return EXIT_OK
