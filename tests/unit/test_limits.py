"""Limits a spec cannot exceed: one deployment must fit one Step Functions execution.

The budget (``plans.execution_budget``) restates the state machine's loops; the tests below keep
its constants equal to ``statemachine/canary.asl.json`` and to the flow's own, and check that a
spec whose worst case would not fit is refused at parse time with the numbers and what to change.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import ecs_canary.flow.steps as flow_steps
import pytest
from ecs_canary.errors import SpecError
from ecs_canary.plans import (
    ARM_POLL_SECONDS,
    EVENTS_PER_STATE,
    EXECUTION_TIMEOUT_SECONDS,
    HISTORY_EVENT_LIMIT,
    MAX_SYNC_CHECKS,
    ROLLBACK_RETRIES,
    ROLLBACK_TIMEOUT_SECONDS,
    ROUTE53_PROPAGATION_SECONDS,
    SYNC_POLL_SECONDS,
    TASK_RETRIES,
    TASK_TIMEOUT_SECONDS,
    Plan,
    execution_budget,
)
from ecs_canary.routers.route53 import ALIAS_CACHE_SECONDS
from ecs_canary.spec import ServicePairSpec, load_spec_yaml, parse_spec, spec_warnings
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
ASL = json.loads((ROOT / "statemachine" / "canary.asl.json").read_text(encoding="utf-8"))
ROLL_OUT = ASL["States"]["Roll out"]
RAMP = ROLL_OUT["Branches"][0]["States"]
WATCH = ROLL_OUT["Branches"][1]["States"]

TG = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup"
LISTENER = (
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/prod/50dc6c495c0c9188/f2f7dc8efc522ab2"
)


def doc(router: str = "alb", **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "web",
        "cluster": "prod",
        "services": [
            {"name": "web-blue", "target_group_arn": f"{TG}/web-blue/6d0ecf831eec9f09"},
            {"name": "web-green", "target_group_arn": f"{TG}/web-green/3a5b9c2d1e4f6a7b"},
        ],
        "router": {"type": "alb", "listener_arn": LISTENER},
        "plan": "Canary10Percent5Minutes",
        "health": {"alarms": ["web-5xx"]},
    }
    if router == "route53":
        base["router"] = {"type": "route53", "hosted_zone_id": "Z0123", "record_name": "web.example.com"}
    result = copy.deepcopy(base)
    result.update(changes)
    return result


def _retries(state: dict[str, Any]) -> int:
    (catch_all,) = [r for r in state["Retry"] if "States.ALL" in r["ErrorEquals"]]
    return int(catch_all["MaxAttempts"])


# ---- the constants are the state machine's ------------------------------------------------------------


def test_execution_timeout_is_the_state_machines() -> None:
    assert ASL["TimeoutSeconds"] == EXECUTION_TIMEOUT_SECONDS


@pytest.mark.parametrize(
    ("states", "name", "timeout", "retries"),
    [
        (ASL["States"], "Load spec and snapshot traffic", TASK_TIMEOUT_SECONDS, TASK_RETRIES),
        (RAMP, "Wait for green to be steady", TASK_TIMEOUT_SECONDS, TASK_RETRIES),
        (RAMP, "Check health and shift traffic", TASK_TIMEOUT_SECONDS, TASK_RETRIES),
        (ASL["States"], "Promote green", TASK_TIMEOUT_SECONDS, TASK_RETRIES),
        (ASL["States"], "Roll back", ROLLBACK_TIMEOUT_SECONDS, ROLLBACK_RETRIES),
        (ASL["States"], "Record that the rollback failed", TASK_TIMEOUT_SECONDS, TASK_RETRIES),
    ],
)
def test_task_timeouts_and_retries_are_the_state_machines(
    states: dict[str, Any], name: str, timeout: int, retries: int
) -> None:
    assert states[name]["Type"] == "Task"
    assert states[name]["TimeoutSeconds"] == timeout
    assert _retries(states[name]) == retries


@pytest.mark.parametrize(
    ("call", "choice", "wait"),
    [
        ("Wait for green to be steady", "Is green steady?", "Give green time to settle"),
        ("Check health and shift traffic", "Is the rollout complete?", "Bake"),
    ],
)
def test_each_loop_is_a_task_a_choice_and_a_wait(call: str, choice: str, wait: str) -> None:
    """One trip around either loop is what the budget counts per poll or health check."""
    assert (RAMP[call]["Type"], RAMP[call]["Next"]) == ("Task", choice)
    assert (RAMP[choice]["Type"], RAMP[choice]["Default"]) == ("Choice", wait)
    assert (RAMP[wait]["Type"], RAMP[wait]["Next"]) == ("Wait", call)


def test_the_watch_waits_on_a_task_token_and_retries_only_its_call() -> None:
    (name,) = [n for n, s in WATCH.items() if s["Type"] == "Task"]
    watch = WATCH[name]
    assert watch["Resource"] == "${LambdaInvokeWaitIntegration}"
    assert [r["MaxAttempts"] for r in watch["Retry"]] == [TASK_RETRIES]
    assert ROLL_OUT["Type"] == "Parallel"
    assert len(ROLL_OUT["Branches"]) == 2


def _all_states(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = dict(definition["States"])
    for state in definition["States"].values():
        for branch in state.get("Branches", []):
            found.update(_all_states(branch))
    return found


COUNTED = {
    "Load spec and snapshot traffic",
    "Roll out",
    "Wait for green to be steady",
    "Is green steady?",
    "Give green time to settle",
    "Check health and shift traffic",
    "Is the rollout complete?",
    "Bake",
    "Rollout complete",
    "Stop ramping",
    "Watch for alarms, crashes, new releases and operators",
    "Stop watching",
    "Promote green",
    "Deployment succeeded",
    "Roll back",
    "Why did it end?",
    "Deployment failed",
    "Deployment aborted",
    "Deployment superseded",
    "Record that the rollback failed",
    "Rollback failed",
    "Refuse an execution that does not own the deployment",
    "Are there rollback hooks?",
}
OPERATOR_DRIVEN = {"Act on the operator's command"}
"""Re-entering the rollout after resume, promote or an approval: as often as operators act."""
GATES = {
    "Run the stage's hooks",
    "Are the hooks done?",
    "Wait for the hook to call back",
    "Wait for approval",
    "Run the rollback hooks",
    "Are the rollback hooks done?",
    "Wait for the rollback hook to call back",
}
"""Lifecycle hooks and approvals (``ecs_canary.gates``): counted per configured hook and approval by
``ServicePairSpec._gates_budget`` (tested below)."""


def test_every_state_is_counted_or_named_as_not_counted() -> None:
    """A new state must be added to the budget (or named here with why it is not)."""
    states = _all_states(ASL)
    unknown = set(states) - COUNTED - OPERATOR_DRIVEN - GATES
    assert not unknown, f"states the execution budget does not know: {sorted(unknown)}"
    assert {s["Type"] for s in states.values()} <= set(EVENTS_PER_STATE)


def test_the_flows_own_constants_are_the_budgets() -> None:
    assert (flow_steps.SYNC_POLL_SECONDS, flow_steps.MAX_SYNC_CHECKS, flow_steps.ARM_POLL_SECONDS) == (
        SYNC_POLL_SECONDS,
        MAX_SYNC_CHECKS,
        ARM_POLL_SECONDS,
    )
    assert ALIAS_CACHE_SECONDS == ROUTE53_PROPAGATION_SECONDS


# ---- the worst case, counted by hand -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("router", "changes", "events", "seconds"),
    # Every spec also carries the default capacity gate (capacity.wait_seconds 300, polled every 10 s):
    # 31 polls x 9 events = 279 events, 300 + 31 x 5 = 455 s, added to each hand count below.
    [
        # ticks = 10 arm checks + preflight + 2 steps x (1 verdict + 3 rechecks) = 19
        # events = 2 execution + 17 load spec + 4 parallel + 18 watch + 60 x 9 steady + 19 x 9 ticks
        #          + 47 rollback that fails and is recorded + 2,500 reserve
        # seconds = 59 x 15 + 10 + 71 x 5 + 3 x 120 before the steps, 2 x (300 + 3 x 30 + 4 x 5),
        #           420 rollback, 3,600 reserve
        pytest.param("alb", {}, 3_299 + 279, 6_450 + 455, id="alb-canary"),
        # 4 steps x (1 + 5 rechecks + 60 INSYNC checks) = 264 checks; each step also waits the 60 s
        # alias cache, 5 x 30 s of rechecks and 60 x 5 s of INSYNC polls.
        pytest.param(
            "route53",
            {
                "plan": {"type": "steps", "steps": [5, 25, 50, 100], "bake_seconds": 600},
                "health": {"alarms": ["web-5xx"], "max_inconclusive": 5},
            },
            5_603 + 279,
            11_390 + 455,
            id="route53-steps",
        ),
    ],
)
def test_worst_case(router: str, changes: dict[str, Any], events: int, seconds: int) -> None:
    budget = parse_spec(doc(router, **changes)).execution_budget()
    assert (budget.events, budget.seconds) == (events, seconds)
    assert budget.problems() == []


# ---- refused with the numbers and what to change -------------------------------------------------------


@pytest.mark.parametrize(
    ("router", "changes", "fragments"),
    [
        pytest.param(
            "route53",
            {"plan": "Linear1PercentEvery1Minute"},
            [
                "plan: a deployment could need 61,106 Step Functions history events, more than the 25,000",
                "100 step(s) x 64 health check(s) (1 verdict, 3 inconclusive recheck(s), "
                "60 Route53 INSYNC checks) x 9 events",
                "use fewer plan steps, a lower health.max_inconclusive",
            ],
            id="route53-one-percent-steps",
        ),
        pytest.param(
            "alb",
            {"steady": {"poll_seconds": 1, "timeout_seconds": 86_400}},
            [
                "86,400 steady poll(s) x 9 events",
                "a longer steady.poll_seconds or a shorter steady.timeout_seconds",
            ],
            id="steady-polls",
        ),
        pytest.param(
            "alb",
            {"health": {"alarms": ["web-5xx"], "recheck_seconds": 3600, "max_inconclusive": 100}},
            [
                "plan: a deployment could take 8 days 10 h (727,695 s), longer than the state machine's "
                "7 days (TimeoutSeconds 604,800)",
                "2 step(s) x 360,805 s",
                "health.max_inconclusive x health.recheck_seconds",
            ],
            id="rechecks",
        ),
        pytest.param(
            "alb",
            {"plan": {"type": "steps", "steps": [10, 25, 50, 75, 90, 95, 100], "bake_seconds": 86_400}},
            ["a deployment could take 7 days", "use fewer plan steps, a shorter plan.bake_seconds"],
            id="long-bakes",
        ),
    ],
)
def test_refused_naming_the_numbers(router: str, changes: dict[str, Any], fragments: list[str]) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(doc(router, **changes))
    message = "\n".join(info.value.problems)
    for fragment in fragments:
        assert fragment in message


def test_refused_when_read_from_yaml_too() -> None:
    text = json.dumps(doc("route53", plan="Linear1PercentEvery1Minute"))
    with pytest.raises(SpecError, match="history events"):
        load_spec_yaml(text)


@pytest.mark.parametrize(
    "changes",
    [
        {"plan": {"type": "steps", "steps": [25, 50, 75, 100], "bake_seconds": 86_400}},  # four days
        {"plan": "Linear1PercentEvery1Minute"},  # ALB: 100 steps fit
        {"plan": "Canary10Percent2880Minutes"},  # two 48-hour bakes
    ],
)
def test_long_but_possible_plans_are_accepted(changes: dict[str, Any]) -> None:
    assert parse_spec(doc(**changes)).execution_budget().problems() == []


@given(
    steps=st.integers(min_value=1, max_value=100),
    bake=st.integers(min_value=0, max_value=86_400),
    inconclusive=st.integers(min_value=0, max_value=100),
    recheck=st.integers(min_value=5, max_value=3600),
    polls=st.integers(min_value=1, max_value=2_000),
    route53=st.booleans(),
)
def test_refused_exactly_when_a_limit_is_passed(
    *, steps: int, bake: int, inconclusive: int, recheck: int, polls: int, route53: bool
) -> None:
    plan = Plan(tuple(range(100 - steps + 1, 101)), bake)
    budget = execution_budget(
        plan,
        max_inconclusive=inconclusive,
        recheck_seconds=recheck,
        steady_polls=polls,
        steady_poll_seconds=15,
        route53=route53,
    )
    problems = budget.problems()
    assert any("history events" in p for p in problems) is (budget.events > HISTORY_EVENT_LIMIT)
    assert any("could take" in p for p in problems) is (budget.seconds > EXECUTION_TIMEOUT_SECONDS)
    # More of anything never makes the worst case smaller.
    more = execution_budget(
        plan,
        max_inconclusive=inconclusive + 1,
        recheck_seconds=recheck,
        steady_polls=polls + 1,
        steady_poll_seconds=15,
        route53=route53,
    )
    assert (more.events, more.seconds) > (budget.events, budget.seconds)


def test_extra_states_add_to_the_budget() -> None:
    plan = Plan((10, 100), 300)
    base = execution_budget(
        plan, max_inconclusive=3, recheck_seconds=30, steady_polls=60, steady_poll_seconds=15, route53=False
    )
    more = execution_budget(
        plan,
        max_inconclusive=3,
        recheck_seconds=30,
        steady_polls=60,
        steady_poll_seconds=15,
        route53=False,
        extra_events=100,
        extra_seconds=EXECUTION_TIMEOUT_SECONDS,
    )
    assert (more.events, more.seconds) == (base.events + 100, base.seconds + EXECUTION_TIMEOUT_SECONDS)
    assert any("could take" in p for p in more.problems())


# ---- spec validate's warnings about the metric rule ------------------------------------------------------


def _metrics_spec(plan: Any, **metrics: Any) -> ServicePairSpec:
    return parse_spec(doc(plan=plan, health={"metrics": {"max_5xx_percent": 1, **metrics}}))


@pytest.mark.parametrize(
    ("plan", "metrics", "warnings"),
    [
        pytest.param("Canary10Percent5Minutes", {}, [], id="default-bake-fits"),
        pytest.param(
            "Linear10PercentEvery3Minutes",
            {},
            [
                "plan.bake_seconds: bakes of 180 s are shorter than the 270 s the health gate needs to see "
                "health.metrics.min_periods = 1 complete 60 s metric period(s) wherever the shift falls "
                "(settle_seconds 30 + up to one period to the next boundary + 1 x 60 s + lag_seconds 120); "
                "a step's first verdict may be inconclusive and wait for rechecks (every 30 s, at most 3). "
                "Raise plan.bake_seconds to 270 or more"
            ],
            id="short-bake-relies-on-rechecks",
        ),
        pytest.param(
            "Linear10PercentEvery1Minute",
            {},
            [
                "plan.bake_seconds: the health gate can never see health.metrics.min_periods = 1 complete "
                "60 s metric period(s) after a shift: that takes at least 210 s (270 s wherever the shift "
                "falls: settle_seconds 30 + up to one period to the next boundary + 1 x 60 s + lag_seconds "
                "120), but a step's last recheck comes 150 s after it (bake 60 s + 3 x 30 s); every "
                "deployment would fail as inconclusive. Raise plan.bake_seconds to 270 or more"
            ],
            id="bake-too-short-ever",
        ),
        pytest.param(
            {"type": "canary", "percent": 10, "bake_seconds": 600},
            {"min_periods": 8},
            ["plan.bake_seconds: bakes of 600 s are shorter than the 690 s"],
            id="min-periods",
        ),
        pytest.param(
            "Linear25PercentEvery2Minutes",
            {"period_seconds": 1, "settle_seconds": 0, "lag_seconds": 0},
            ["health.metrics.period_seconds: 1 s periods are shorter than the minute ALB publishes"],
            id="emulator-timing",
        ),
        pytest.param(
            "Canary10Percent5Minutes",
            {"lag_seconds": 30},
            ["health.metrics.lag_seconds: 30 s may judge periods CloudWatch does not have all datapoints of"],
            id="short-lag",
        ),
    ],
)
def test_warnings(plan: Any, metrics: dict[str, Any], warnings: list[str]) -> None:
    found = spec_warnings(_metrics_spec(plan, **metrics))
    assert len(found) == len(warnings)
    for expected, warning in zip(warnings, found, strict=True):
        assert warning.startswith(expected)


def test_no_metric_warnings_without_metrics() -> None:
    assert spec_warnings(parse_spec(doc(plan="Linear10PercentEvery1Minute"))) == []


@pytest.mark.parametrize(
    ("period", "ok"),
    [(1, True), (5, True), (30, True), (60, True), (300, True), (7, False), (90, False), (59, False)],
)
def test_metric_periods_are_ones_cloudwatch_accepts(period: int, ok: bool) -> None:
    document = doc(health={"metrics": {"max_5xx_percent": 1, "period_seconds": period}})
    if ok:
        assert parse_spec(document).health.metrics is not None
    else:
        with pytest.raises(
            SpecError, match=r"health\.metrics\.period_seconds: must be 1, 5, 10, 20, 30 or a multiple"
        ):
            parse_spec(document)


# ---- hooks and approvals -------------------------------------------------------------------------------

HOOK = "ecs-canary-hook-smoke"


def test_hooks_and_approvals_add_their_worst_case() -> None:
    base = parse_spec(doc()).execution_budget()
    hooked = parse_spec(
        doc(
            plan={"type": "steps", "steps": [10, {"approve": {"timeout_seconds": 600}}, 100]},
            hooks={
                "before_test_traffic": [{"function": HOOK, "timeout_seconds": 50}],
                "after_each_shift": [{"function": HOOK, "timeout_seconds": 600}],
            },
            approvals={"after_production_traffic": {"timeout_seconds": 3600}},
        )
    ).execution_budget()
    # before_test_traffic: 50 + 2 checks; after_each_shift: 2 steps x (100 + 2) checks; each 9 events,
    # plus one health-check trip per stage run (3); two approvals x 2 trips.
    loop = 9
    hook_events = (52 + 2 * 102 + 3) * loop
    approval_events = 2 * 2 * loop
    assert hooked.events - base.events == hook_events + approval_events
    # Each hook: its timeout plus one invocation's 960 s; each approval: its timeout plus two calls.
    hook_seconds = (50 + 960) + 2 * (600 + 960)
    approval_seconds = (600 + 10) + (3600 + 10)
    assert hooked.seconds - base.seconds == hook_seconds + approval_seconds
    assert hooked.problems() == []


def test_hooks_that_could_not_finish_in_one_execution_are_refused() -> None:
    hooks = {"after_each_shift": [{"function": HOOK, "timeout_seconds": 86_400}] * 10}
    with pytest.raises(SpecError) as info:
        parse_spec(doc(plan="Linear10PercentEvery5Minutes", hooks=hooks))
    message = "\n".join(info.value.problems)
    assert "for hooks, approvals and gates" in message
    assert "or fewer hooks" in message
    assert "shorter gate waits (hook and approval timeout_seconds" in message
