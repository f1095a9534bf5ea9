"""Rich renderables for deployments, pairs and plans, shared by the CLI commands and the demo.

Every function here is pure: it takes records already read from the store (or plain data)
and returns a renderable, so the same views appear in ``status``, ``watch`` and the demo,
and tests can render them to a recording console without touching AWS. ``deployment_event``
is the JSON counterpart of a followed deployment (``watch``/``wait --output json``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from ecs_canary.plans import Plan
from ecs_canary.spec import AlbRouterSpec, Route53RouterSpec, ServicePairSpec
from ecs_canary.store import Deployment, Pair, Status, cluster_name
from ecs_canary.weights import weights_for
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

__all__ = [
    "HEALTH_EVENTS",
    "STATUS_STYLES",
    "deployment_event",
    "deployment_panel",
    "deployments_table",
    "event_key",
    "execution_console_url",
    "format_duration",
    "format_time",
    "format_weights",
    "health_line",
    "pairs_table",
    "plan_summary",
    "plan_table",
    "progress_line",
    "router_summary",
    "spec_table",
    "status_text",
    "summary_table",
    "weights_bars",
]

STATUS_STYLES: dict[str, str] = {
    Status.STARTING.value: "yellow",
    Status.RUNNING.value: "bold cyan",
    Status.PAUSED.value: "yellow",
    Status.ROLLING_BACK.value: "bold yellow",
    Status.SUCCEEDED.value: "bold green",
    Status.FAILED.value: "bold red",
    Status.ABORTED.value: "magenta",
    Status.TIMED_OUT.value: "red",
    Status.REJECTED.value: "dim yellow",
    Status.SUPERSEDED.value: "yellow",
    Status.ROLLBACK_FAILED.value: "bold white on red",
}
"""Style of each deployment status; Step Functions execution statuses reuse the same names."""

HEALTH_EVENTS = ("healthy", "inconclusive", "unhealthy", "shifted", "steady", "waiting")
"""History events that carry a health gate or steadiness verdict."""

_BAR_WIDTH = 30
_HISTORY_LINES = 8
_NONE = "—"


def _status_value(status: Status | str | None) -> str:
    if status is None:
        return ""
    return status.value if isinstance(status, Status) else str(status)


def status_text(status: Status | str | None) -> Text:
    """A status name in its colour (unknown names unstyled, None as a dash)."""
    value = _status_value(status)
    if not value:
        return Text(_NONE, style="dim")
    return Text(value, style=STATUS_STYLES.get(value, ""))


def format_time(stamp: str | None, *, date: bool = True) -> str:
    """``2024-05-01T12:00:03.123Z`` as ``2024-05-01 12:00:03`` (or ``12:00:03``); bad stamps as given."""
    if not stamp:
        return _NONE
    try:
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    return parsed.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S")


def format_duration(seconds: float) -> str:
    """Compact duration: ``45s``, ``5m``, ``1m30s``, ``2h``, ``1h5m``."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


def _elapsed(start: str | None, end: str | None) -> str | None:
    if not start or not end:
        return None
    try:
        began = datetime.fromisoformat(start.replace("Z", "+00:00"))
        ended = datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return None
    return format_duration((ended - began).total_seconds())


def format_weights(weights: Mapping[str, int] | None, order: Sequence[str] = ()) -> str:
    """``blue=90, green=10`` in ``order`` first, then alphabetically; a dash for no weights."""
    if not weights:
        return _NONE
    names = [n for n in order if n in weights] + sorted(n for n in weights if n not in order)
    return ", ".join(f"{name}={weights[name]}" for name in names)


def execution_console_url(execution_arn: str) -> str:
    """Step Functions console page of an execution, in the execution's own region."""
    parts = execution_arn.split(":")
    region = parts[3] if len(parts) > 3 and parts[3] else "us-east-1"
    return (
        f"https://{region}.console.aws.amazon.com/states/home?region={region}"
        f"#/v2/executions/details/{execution_arn}"
    )


def plan_summary(plan: Plan) -> str:
    """``10% → 100%, bake 5m after each step``."""
    steps = " → ".join(f"{s}%" for s in plan.steps)
    return f"{steps}, bake {format_duration(plan.bake_seconds)} after each step"


def router_summary(spec: ServicePairSpec) -> str:
    """Where the pair's weights live, short enough for a table cell."""
    router = spec.router
    if isinstance(router, Route53RouterSpec):
        return f"route53 {router.record_name} {router.record_type} ({router.hosted_zone_id})"
    assert isinstance(router, AlbRouterSpec)
    if router.rule_arn is not None:
        return f"alb rule {router.rule_arn.split(':', 5)[-1].removeprefix('listener-rule/')}"
    return f"alb listener {router.arn.split(':', 5)[-1].removeprefix('listener/')}"


def weights_bars(
    weights: Mapping[str, int] | None, order: Sequence[str] = (), *, width: int = _BAR_WIDTH
) -> RenderableType:
    """One bar per service: its share of the total weight, the percentage and the raw weight."""
    if not weights:
        return Text(_NONE, style="dim")
    total = sum(weights.values())
    names = [n for n in order if n in weights] + sorted(n for n in weights if n not in order)
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column(justify="right", no_wrap=True)
    grid.add_column(justify="right", style="dim", no_wrap=True)
    for index, name in enumerate(names):
        share = weights[name] / total if total else 0.0
        filled = round(share * width)
        colour = "green" if index == 0 else "cyan"
        bar = Text("█" * filled, style=colour) + Text("░" * (width - filled), style="dim")
        grid.add_row(name, bar, f"{share * 100:.0f}%", f"({weights[name]})")
    return grid


def health_line(dep: Deployment) -> str | None:
    """The latest health gate or steadiness message in the deployment's history."""
    for entry in reversed(dep.history):
        if entry.get("event") in HEALTH_EVENTS:
            return str(entry.get("message", ""))
    return None


def _history_text(history: Iterable[Mapping[str, Any]]) -> Text:
    text = Text()
    for index, entry in enumerate(history):
        if index:
            text.append("\n")
        event = str(entry.get("event", ""))
        text.append(format_time(entry.get("at"), date=False), style="dim")
        text.append(" ")
        text.append(f"{event:<12}", style=STATUS_STYLES.get(event.upper(), "bold"))
        text.append(" ")
        text.append(str(entry.get("message", "")))
    return text


def _step_text(dep: Deployment, steps: int | None) -> str:
    total = str(steps) if steps is not None else "?"
    if dep.step_index is None:
        return f"0/{total} (no traffic shifted yet)"
    percent = f" · {dep.percent}% to {dep.service}" if dep.percent is not None else ""
    return f"{dep.step_index + 1}/{total}{percent}"


def approval_line(dep: Deployment) -> str | None:
    """What an approval gate the deployment waits at needs (None when none is pending)."""
    pending = dep.approval
    if not pending or pending.get("decision") or dep.status not in (Status.RUNNING, Status.PAUSED):
        return None  # a deployment rolling back or ended waits for no one
    gate = str(pending.get("key", "")).split(":", 1)[-1]
    where = f"before {gate.replace(':', ' ')}" if gate.startswith("step:") else f"at {gate}"
    return (
        f"waiting {where} since {format_time(str(pending.get('requested_at', '')))}: "
        f"ecs-canary approve {dep.pair} | reject {dep.pair} --reason TEXT "
        f"(after {pending.get('timeout_seconds')} s: {pending.get('on_timeout')})"
    )


def deployment_panel(
    dep: Deployment,
    *,
    steps: int | None,
    execution_status: str | None,
    current_weights: Mapping[str, int] | None = None,
    history_limit: int | None = _HISTORY_LINES,
) -> RenderableType:
    """One deployment at a glance: status, step, weight bars, last health verdict and recent history.

    ``steps`` is the plan's step count (None when unknown), ``execution_status`` the Step
    Functions execution status if it was read. ``current_weights`` adds the router's live
    reading next to the recorded weights; ``history_limit=None`` shows the whole history.
    """
    order = (dep.live_service, dep.service)
    style = STATUS_STYLES.get(dep.status.value, "")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()

    status = status_text(dep.status)
    if execution_status is not None:
        status.append("  execution ", style="dim")
        status.append_text(status_text(execution_status))
    grid.add_row("status", status)
    grid.add_row("release", f"{dep.service} ← {dep.release.deployment}  ({dep.release.task_definition})")
    grid.add_row("live", dep.live_service)
    grid.add_row("step", _step_text(dep, steps))
    grid.add_row("weights", weights_bars(dep.weights or dep.snapshot, order))
    grid.add_row("snapshot", format_weights(dep.snapshot, order))
    if current_weights is not None:
        grid.add_row("current", format_weights(current_weights, order))
    health = health_line(dep)
    if health is not None:
        grid.add_row("health", health)
    if dep.reason:
        grid.add_row("reason", Text(dep.reason, style=style))
    approval = approval_line(dep)
    if approval is not None:
        grid.add_row("approval", Text(approval, style="bold yellow"))
    timing = f"started {format_time(dep.created_at)}"
    if dep.ended_at:
        timing += f", ended {format_time(dep.ended_at)}"
        took = _elapsed(dep.created_at, dep.ended_at)
        if took is not None:
            timing += f" ({took})"
    else:
        timing += f", updated {format_time(dep.updated_at)}"
    grid.add_row("time", timing)

    history = dep.history if history_limit is None else dep.history[-history_limit:]
    parts: list[RenderableType] = [grid]
    if history:
        hidden = len(dep.history) - len(history)
        title = "history" if not hidden else f"history (last {len(history)} of {len(dep.history)})"
        parts += [Text(""), Text(title, style="bold"), _history_text(history)]
    return Panel(
        Group(*parts),
        title=Text.assemble((dep.pair, "bold"), f" · {dep.deployment_id}"),
        title_align="left",
        border_style=style or "white",
    )


def deployment_event(
    dep: Deployment,
    *,
    event: str,
    steps: int | None,
    execution_status: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One JSON Lines document of a followed deployment (``watch``/``wait --output json``).

    ``step`` counts from 1 (None before the first shift); ``weights`` are the last recorded ones
    (the snapshot before the first shift). ``extra`` adds fields such as ``exit_code``.
    """
    doc: dict[str, Any] = {
        "event": event,
        "pair": dep.pair,
        "deployment_id": dep.deployment_id,
        "release": dep.release.to_dict(),
        "service": dep.service,
        "live_service": dep.live_service,
        "status": dep.status.value,
        "step": None if dep.step_index is None else dep.step_index + 1,
        "steps": steps,
        "percent": dep.percent,
        "weights": dep.expected_weights,
        "reason": dep.reason,
        "health": health_line(dep),
        "approval": approval_line(dep),
        "updated_at": dep.updated_at,
        "ended_at": dep.ended_at,
    }
    if execution_status is not None:
        doc["execution_status"] = execution_status
    doc.update(extra)
    return doc


EVENT_CHANGE_FIELDS = ("status", "step", "percent", "weights", "reason", "approval", "execution_status")
"""Fields of a followed deployment's document whose change is worth a new line."""


def event_key(doc: Mapping[str, Any]) -> str:
    """What makes two documents of one deployment the same state (timestamps and health aside)."""
    return json.dumps({k: doc.get(k) for k in EVENT_CHANGE_FIELDS}, sort_keys=True, default=str)


def progress_line(dep: Deployment, steps: int | None) -> Text:
    """One log line of a followed deployment: time, status, step, weights and the reason, if any."""
    order = (dep.live_service, dep.service)
    line = Text()
    line.append(format_time(dep.updated_at, date=False), style="dim")
    line.append(" ")
    line.append_text(status_text(dep.status))
    line.append(f"  step {_step_text(dep, steps)}  weights {format_weights(dep.expected_weights, order)}")
    if dep.reason:
        line.append(f"  {dep.reason}", style=STATUS_STYLES.get(dep.status.value, ""))
    return line


def deployments_table(deps: Sequence[Deployment], *, title: str | None = None) -> Table:
    """Deployments in the order given (the store lists them newest first)."""
    table = Table(title=title, title_justify="left")
    table.add_column("id", no_wrap=True, overflow="fold")
    table.add_column("service", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("step", justify="right", no_wrap=True)
    table.add_column("reason", ratio=1, overflow="fold")
    table.add_column("started", no_wrap=True)
    table.add_column("ended", no_wrap=True)
    for dep in deps:
        step = _NONE
        if dep.step_index is not None:
            step = (
                f"{dep.step_index + 1} · {dep.percent}%"
                if dep.percent is not None
                else str(dep.step_index + 1)
            )
        table.add_row(
            dep.deployment_id,
            dep.service,
            status_text(dep.status),
            step,
            dep.reason or "",
            format_time(dep.created_at),
            format_time(dep.ended_at),
        )
    return table


def pairs_table(pairs: Sequence[Pair], active: Mapping[str, str | None]) -> Table:
    """Registered pairs; ``active`` maps a pair name to its active deployment id (missing or None: idle)."""
    table = Table()
    table.add_column("pair", style="bold", no_wrap=True)
    table.add_column("cluster", no_wrap=True)
    table.add_column("live", style="green", no_wrap=True)
    table.add_column("idle", no_wrap=True)
    table.add_column("router", overflow="fold")
    table.add_column("plan", overflow="fold")
    table.add_column("active deployment", overflow="fold")
    for pair in pairs:
        spec = pair.spec
        running = active.get(spec.name)
        table.add_row(
            spec.name,
            cluster_name(spec.cluster),
            pair.live_service,
            pair.idle_service,
            router_summary(spec),
            plan_summary(spec.resolved_plan()),
            Text(running, style="cyan") if running else Text(_NONE, style="dim"),
        )
    return table


def plan_table(spec: ServicePairSpec, live: str | None = None) -> Table:
    """Each step of the resolved plan with the exact weights written for it."""
    plan = spec.resolved_plan()
    live_name = live or spec.service_names[0]
    green_name = spec.other(live_name).name
    table = Table(title=f"plan: {plan_summary(plan)}", title_justify="left")
    table.add_column("step", justify="right")
    table.add_column("to green", justify="right")
    table.add_column(f"{live_name} (live)", justify="right")
    table.add_column(f"{green_name} (green)", justify="right")
    table.add_column("then bake", justify="right")
    for index, percent in enumerate(plan.steps):
        weights = weights_for(percent, live=live_name, green=green_name, total=spec.weight_total)
        table.add_row(
            f"{index + 1}/{len(plan.steps)}",
            f"{percent}%",
            str(weights[live_name]),
            str(weights[green_name]),
            format_duration(plan.bake_seconds),
        )
    return table


def spec_table(
    spec: ServicePairSpec,
    *,
    live: str | None = None,
    idle_baseline: str | None = None,
    router: str | None = None,
) -> Table:
    """Key facts of a spec (and, once registered, which service is live)."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")

    def add_row(label: str, value: RenderableType) -> None:
        # Names come from the user's spec: shown as written, never read as rich markup.
        grid.add_row(label, Text(value) if isinstance(value, str) else value)

    add_row("pair", spec.name)
    add_row("cluster", spec.cluster)
    if live is not None:
        add_row("live service", Text(live, style="green"))
        idle = spec.other(live).name
        baseline = f"  (baseline release {idle_baseline})" if idle_baseline else ""
        add_row("idle service", f"{idle}{baseline}")
    else:
        add_row("services", ", ".join(spec.service_names))
    add_row("router", router or router_summary(spec))
    add_row("plan", plan_summary(spec.resolved_plan()))
    gate: list[str] = []
    if spec.health.alarms:
        gate.append(f"alarms {', '.join(spec.health.alarms)}")
    thresholds = spec.health.metrics
    if thresholds is not None:
        if thresholds.max_5xx_percent is not None:
            gate.append(f"5xx ≤ {thresholds.max_5xx_percent:g}%")
        if thresholds.max_p99_latency_ms is not None:
            gate.append(f"p99 ≤ {thresholds.max_p99_latency_ms:g} ms")
        gate.append(f"min {thresholds.min_requests} requests")
    add_row("health", "; ".join(gate))
    add_row("weight total", str(spec.weight_total))
    return grid


def _cell(column: str, value: Any) -> RenderableType:
    if value is None:
        return Text(_NONE, style="dim")
    if isinstance(value, Status) or (isinstance(value, str) and value in STATUS_STYLES):
        return status_text(value)
    if isinstance(value, bool):
        return Text("✓", style="green") if value else Text("✗", style="red")
    if isinstance(value, float):
        return f"{value:.2f}s" if column.endswith("seconds") else f"{value:g}"
    if isinstance(value, Mapping):
        return format_weights(value)
    return Text(str(value))  # user-supplied text is never rich markup


def summary_table(rows: Sequence[Mapping[str, Any]], *, title: str | None = "Summary") -> Table:
    """An end-of-run table: one row per mapping, columns in first-seen key order.

    Status names are coloured, booleans shown as ✓/✗, weight mappings as ``a=1, b=2`` and
    missing values as a dash, so callers can pass whatever facts each run produced.
    """
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column.replace("_", " "), overflow="fold")
    for row in rows:
        table.add_row(*(_cell(column, row.get(column)) for column in columns))
    return table
