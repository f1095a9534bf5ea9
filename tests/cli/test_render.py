"""render: every renderable drawn on a recording console, asserting on the text a user would read."""

from __future__ import annotations

from typing import Any

import pytest
from ecs_canary.plans import Plan
from ecs_canary.spec import parse_spec
from ecs_canary.store import Deployment, Pair, Release, Status
from ecs_canary_cli import render
from rich.console import Console, RenderableType

BLUE, GREEN = "shop-blue", "shop-green"
LISTENER = (
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2"
)
RULE = (
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/shop/50dc6c495c0c9188/"
    "f2f7dc8efc522ab2/9683b2d02a6cabee"
)
TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{}/6d0ecf831eec9f09"
EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:canary:shop-dep-1"


def text(renderable: RenderableType, width: int = 120) -> str:
    console = Console(record=True, width=width, force_terminal=False, color_system=None)
    console.print(renderable)
    return console.export_text()


def flat(renderable: RenderableType, width: int = 120) -> str:
    """The rendered text with every run of whitespace collapsed, for label/value assertions."""
    return " ".join(text(renderable, width).split())


def spec_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "shop",
        "cluster": "arn:aws:ecs:us-east-1:123456789012:cluster/prod",
        "services": [
            {"name": BLUE, "target_group_arn": TG.format("blue")},
            {"name": GREEN, "target_group_arn": TG.format("green")},
        ],
        "router": {"type": "alb", "listener_arn": LISTENER},
        "plan": {"type": "steps", "steps": [10, 50, 100], "bake_seconds": 90},
        "health": {"alarms": ["shop-5xx"], "metrics": {"max_5xx_percent": 1, "max_p99_latency_ms": 800}},
    }
    data.update(changes)
    return data


def history(*entries: tuple[str, str]) -> list[dict[str, Any]]:
    return [
        {"at": f"2024-05-01T12:00:{i:02d}.000Z", "event": e, "message": m} for i, (e, m) in enumerate(entries)
    ]


def deployment(**changes: Any) -> Deployment:
    fields: dict[str, Any] = {
        "pair": "shop",
        "deployment_id": "shop-dep-1",
        "status": Status.RUNNING,
        "service": GREEN,
        "live_service": BLUE,
        "release": Release(GREEN, "ecs-svc/123", "arn:aws:ecs:us-east-1:1:task-definition/shop:7"),
        "created_at": "2024-05-01T12:00:00.000Z",
        "updated_at": "2024-05-01T12:01:00.000Z",
        "execution_arn": EXECUTION,
        "snapshot": {BLUE: 100, GREEN: 0},
        "weights": {BLUE: 90, GREEN: 10},
        "step_index": 0,
        "percent": 10,
        "history": history(
            ("claimed", "release ecs-svc/123 seen"),
            ("steady", f"{GREEN} is steady: 2/2 tasks running"),
            ("shifted", f"step 1/3: 10% to {GREEN} (shop-blue=90, shop-green=10)"),
        ),
    }
    fields.update(changes)
    return Deployment(**fields)


# ---- small formatters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, "0s"), (45, "45s"), (60, "1m"), (90, "1m30s"), (3600, "1h"), (3900, "1h5m"), (-3, "0s")],
)
def test_format_duration(seconds: float, expected: str) -> None:
    assert render.format_duration(seconds) == expected


def test_format_time() -> None:
    assert render.format_time("2024-05-01T12:00:03.123Z") == "2024-05-01 12:00:03"
    assert render.format_time("2024-05-01T12:00:03.123Z", date=False) == "12:00:03"
    assert render.format_time(None) == "—"
    assert render.format_time("yesterday") == "yesterday"


def test_format_weights_puts_the_given_order_first() -> None:
    assert render.format_weights({"b": 1, "a": 2, "c": 3}, ("c",)) == "c=3, a=2, b=1"
    assert render.format_weights(None) == "—"


def test_console_url_uses_the_executions_region() -> None:
    assert render.execution_console_url(EXECUTION) == (
        "https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1"
        f"#/v2/executions/details/{EXECUTION}"
    )


def test_plan_summary() -> None:
    assert render.plan_summary(Plan((10, 100), 300)) == "10% → 100%, bake 5m after each step"


def test_router_summary_for_each_router_kind() -> None:
    assert render.router_summary(parse_spec(spec_data())) == (
        "alb listener app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2"
    )
    rule = parse_spec(spec_data(router={"type": "alb", "rule_arn": RULE}))
    assert (
        render.router_summary(rule) == "alb rule app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee"
    )
    dns = parse_spec(
        spec_data(
            router={"type": "route53", "hosted_zone_id": "/hostedzone/Z123", "record_name": "API.example.com"}
        )
    )
    assert render.router_summary(dns) == "route53 api.example.com. A (Z123)"


def test_status_text_colours() -> None:
    assert render.status_text(Status.SUCCEEDED).style == "bold green"
    assert render.status_text("FAILED").style == "bold red"
    assert render.status_text("SOMETHING").plain == "SOMETHING"
    assert render.status_text(None).plain == "—"


def test_weight_bars_show_share_and_raw_weight() -> None:
    out = text(render.weights_bars({GREEN: 25, BLUE: 75}, (BLUE, GREEN), width=20))

    blue_line, green_line = out.splitlines()
    assert blue_line.startswith(BLUE)
    assert "█" * 15 + "░" * 5 in blue_line
    assert blue_line.rstrip().endswith("75% (75)")
    assert "█" * 5 + "░" * 15 in green_line
    assert green_line.rstrip().endswith("25% (25)")


def test_weight_bars_with_all_zero_weights() -> None:
    out = text(render.weights_bars({BLUE: 0, GREEN: 0}, width=10))

    assert out.count("░" * 10) == 2
    assert "0% (0)" in out


# ---- deployment panel ------------------------------------------------------------------------------


def test_panel_of_a_running_deployment() -> None:
    out = flat(render.deployment_panel(deployment(), steps=3, execution_status="RUNNING"))

    assert "shop · shop-dep-1" in out
    assert "RUNNING execution RUNNING" in out
    assert f"{GREEN} ← ecs-svc/123" in out
    assert f"1/3 · 10% to {GREEN}" in out
    assert "90% (90)" in out
    assert "10% (10)" in out
    assert f"snapshot {BLUE}=100, {GREEN}=0" in out
    assert f"health step 1/3: 10% to {GREEN}" in out
    assert "started 2024-05-01 12:00:00, updated 2024-05-01 12:01:00" in out
    assert "12:00:00 claimed release ecs-svc/123 seen" in out
    assert "current" not in out
    assert "reason" not in out


def test_panel_of_a_failed_deployment_shows_reason_and_duration() -> None:
    dep = deployment(
        status=Status.FAILED,
        reason="green unhealthy: alarm shop-5xx is ALARM; traffic restored at shop-blue=100, shop-green=0",
        ended_at="2024-05-01T12:04:30.000Z",
        weights={BLUE: 100, GREEN: 0},
    )

    out = flat(render.deployment_panel(dep, steps=3, execution_status="SUCCEEDED"))

    assert "FAILED execution SUCCEEDED" in out
    assert "reason green unhealthy: alarm shop-5xx is ALARM" in out
    assert "ended 2024-05-01 12:04:30 (4m30s)" in out
    assert "100% (100)" in out


def test_panel_before_any_shift() -> None:
    dep = deployment(
        status=Status.STARTING,
        execution_arn=None,
        snapshot=None,
        weights=None,
        step_index=None,
        percent=None,
        history=history(("claimed", "release seen")),
    )

    out = flat(render.deployment_panel(dep, steps=None, execution_status=None))

    assert "STARTING" in out
    assert "execution" not in out
    assert "0/? (no traffic shifted yet)" in out
    assert "weights —" in out
    assert "health" not in out.replace("history", "")


def test_panel_keeps_the_last_history_lines_unless_asked_for_all() -> None:
    lines = [("inconclusive", f"check {i}") for i in range(12)]
    dep = deployment(history=history(*lines))

    recent = text(render.deployment_panel(dep, steps=3, execution_status=None))
    everything = text(render.deployment_panel(dep, steps=3, execution_status=None, history_limit=None))

    assert "history (last 8 of 12)" in recent
    assert "check 3" not in recent
    assert "check 4" in recent
    assert "check 11" in recent
    assert "check 0" in everything
    assert "(last" not in everything


def test_panel_with_current_weights() -> None:
    out = flat(
        render.deployment_panel(
            deployment(), steps=3, execution_status=None, current_weights={GREEN: 10, BLUE: 90}
        )
    )

    assert f"current {BLUE}=90, {GREEN}=10" in out


def test_health_line_is_the_latest_verdict() -> None:
    dep = deployment(
        history=history(
            ("shifted", "step 1/3"),
            ("inconclusive", "only 3 requests (need 20)"),
            ("note", "unrelated"),
        )
    )

    assert render.health_line(dep) == "only 3 requests (need 20)"
    assert render.health_line(deployment(history=[])) is None


# ---- tables ----------------------------------------------------------------------------------------


def test_deployments_table() -> None:
    deps = [
        deployment(deployment_id="shop-dep-2", status=Status.RUNNING, step_index=1, percent=50),
        deployment(
            deployment_id="shop-dep-1",
            status=Status.SUCCEEDED,
            reason=f"{GREEN} took all traffic after 3 healthy step(s)",
            ended_at="2024-05-01T12:10:00.000Z",
            step_index=2,
            percent=100,
        ),
        deployment(deployment_id="shop-dep-0", status=Status.REJECTED, step_index=None, percent=None),
    ]

    out = text(render.deployments_table(deps, title="deployments of shop"), width=160)

    rows = [line for line in out.splitlines() if "shop-dep-" in line]
    assert [r.split("│")[1].strip() for r in rows] == ["shop-dep-2", "shop-dep-1", "shop-dep-0"]
    assert "2 · 50%" in rows[0]
    assert "RUNNING" in rows[0]
    assert "3 · 100%" in rows[1]
    assert "took all traffic after 3 healthy step(s)" in rows[1]
    assert "2024-05-01 12:10:00" in rows[1]
    assert "REJECTED" in rows[2]
    assert "deployments of shop" in out


def test_pairs_table() -> None:
    spec = parse_spec(spec_data())
    other = parse_spec(
        spec_data(
            name="api",
            cluster="prod",
            services=[
                {"name": "api-a", "target_group_arn": TG.format("a")},
                {"name": "api-b", "target_group_arn": TG.format("b")},
            ],
            plan="AllAtOnce",
        )
    )
    pairs = [Pair(other, "api-b", None, "2024-05-01T00:00:00Z"), Pair(spec, BLUE, "ecs-svc/1", "2024-05-01Z")]

    out = text(render.pairs_table(pairs, {"shop": "shop-dep-1"}), width=200)

    api_row, shop_row = (line for line in out.splitlines() if "│ api " in line or "│ shop " in line)
    assert "api-b" in api_row.split("│")[3]
    assert "api-a" in api_row.split("│")[4]
    assert "100%, bake 5m after each step" in api_row
    assert "—" in api_row.split("│")[7]
    assert "prod" in shop_row.split("│")[2]
    assert "10% → 50% → 100%, bake 1m30s after each step" in shop_row
    assert "shop-dep-1" in shop_row


def test_plan_table_shows_exact_weights_per_step() -> None:
    spec = parse_spec(spec_data(weight_total=200))

    out = text(render.plan_table(spec, live=GREEN))

    assert f"{GREEN} (live)" in out
    assert f"{BLUE} (green)" in out
    rows = [line.split("│")[1:-1] for line in out.splitlines() if "/3" in line]
    assert [[c.strip() for c in row] for row in rows] == [
        ["1/3", "10%", "180", "20", "1m30s"],
        ["2/3", "50%", "100", "100", "1m30s"],
        ["3/3", "100%", "0", "200", "1m30s"],
    ]


def test_spec_table_before_and_after_registration() -> None:
    spec = parse_spec(spec_data())

    offline = flat(render.spec_table(spec))
    registered = flat(render.spec_table(spec, live=BLUE, idle_baseline="ecs-svc/9", router="ALB listener x"))

    assert f"services {BLUE}, {GREEN}" in offline
    assert "health alarms shop-5xx; 5xx ≤ 1%; p99 ≤ 800 ms; min 20 requests" in offline
    assert f"live service {BLUE}" in registered
    assert f"idle service {GREEN} (baseline release ecs-svc/9)" in registered
    assert "router ALB listener x" in registered


def test_summary_table_renders_mixed_values() -> None:
    rows: list[dict[str, Any]] = [
        {
            "pair": "web",
            "result": "SUCCEEDED",
            "rolled_back": False,
            "seconds": 12.5,
            "weights": {"a": 0, "b": 100},
        },
        {"pair": "api", "result": Status.FAILED, "rolled_back": True, "extra": None},
    ]

    out = text(render.summary_table(rows, title="Demo summary"))

    assert "Demo summary" in out
    header = next(line for line in out.splitlines() if "pair" in line)
    assert [h.strip() for h in header.split("┃")[1:-1]] == [
        "pair",
        "result",
        "rolled back",
        "seconds",
        "weights",
        "extra",
    ]
    web = next(line for line in out.splitlines() if "│ web" in line)
    api = next(line for line in out.splitlines() if "│ api" in line)
    assert "SUCCEEDED" in web
    assert "✗" in web
    assert "12.50s" in web
    assert "a=0, b=100" in web
    assert "FAILED" in api
    assert "✓" in api
    assert api.count("—") == 3


def test_summary_table_of_nothing() -> None:
    assert render.summary_table([]).row_count == 0
