"""Plan presets, object forms and the resolved Plan's invariants."""

from __future__ import annotations

import re

import pytest
from ecs_canary.errors import SpecError
from ecs_canary.plans import (
    MAX_PRESET_MINUTES,
    PRESET_PATTERN,
    AllAtOncePlanSpec,
    CanaryPlanSpec,
    LinearPlanSpec,
    Plan,
    PlanInput,
    StepsPlanSpec,
    describe_plan,
    linear_steps,
    parse_preset,
    preset_names,
    resolve_plan,
    step_problems,
)
from hypothesis import given
from hypothesis import strategies as st

TENS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)


@pytest.mark.parametrize(
    ("name", "steps", "bake"),
    [
        # AllAtOnce shifts everything at once, then keeps the gate open for the default 300s.
        ("AllAtOnce", (100,), 300),
        ("CodeDeployDefault.ECSAllAtOnce", (100,), 300),
        ("Canary10Percent5Minutes", (10, 100), 300),
        ("Canary10Percent15Minutes", (10, 100), 900),
        ("CodeDeployDefault.ECSCanary10Percent5Minutes", (10, 100), 300),
        ("CodeDeployDefault.ECSCanary10Percent15Minutes", (10, 100), 900),
        ("Linear10PercentEvery1Minute", TENS, 60),
        ("Linear10PercentEvery3Minutes", TENS, 180),
        ("CodeDeployDefault.ECSLinear10PercentEvery1Minutes", TENS, 60),
        ("CodeDeployDefault.ECSLinear10PercentEvery3Minutes", TENS, 180),
        ("Canary25Percent30Minutes", (25, 100), 1800),
        ("Canary1Percent1Minute", (1, 100), 60),
        ("Canary99Percent2880Minutes", (99, 100), 172_800),
        ("Linear30PercentEvery2Minutes", (30, 60, 90, 100), 120),
        ("Linear33PercentEvery1Minute", (33, 66, 99, 100), 60),
        ("Linear50PercentEvery10Minutes", (50, 100), 600),
        ("Linear99PercentEvery1Minute", (99, 100), 60),
        ("Linear1PercentEvery1Minute", tuple(range(1, 101)), 60),
    ],
)
def test_preset_resolves(name: str, steps: tuple[int, ...], bake: int) -> None:
    assert resolve_plan(name) == Plan(steps=steps, bake_seconds=bake)
    assert parse_preset(name) == Plan(steps=steps, bake_seconds=bake)


@pytest.mark.parametrize("name", preset_names())
def test_every_well_known_preset_resolves_and_matches_the_schema_pattern(name: str) -> None:
    plan = resolve_plan(name)
    assert plan.steps[-1] == 100
    assert re.fullmatch(PRESET_PATTERN, name)


def test_preset_names_lists_the_codedeploy_defaults() -> None:
    assert set(preset_names()) == {
        "AllAtOnce",
        "Canary10Percent5Minutes",
        "Canary10Percent15Minutes",
        "Linear10PercentEvery1Minute",
        "Linear10PercentEvery3Minutes",
    }


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("allatonce", "unknown plan preset"),
        ("ALLATONCE", "unknown plan preset"),
        ("canary10Percent5Minutes", "unknown plan preset"),
        ("", "unknown plan preset"),
        (" AllAtOnce", "unknown plan preset"),
        ("AllAtOnce ", "unknown plan preset"),
        ("CodeDeployDefault.ECS", "unknown plan preset"),
        ("CodeDeployDefault.LambdaAllAtOnce", "unknown plan preset"),
        ("CodeDeployDefault.ECS.AllAtOnce", "unknown plan preset"),
        ("Canary10Percent5Mins", "unknown plan preset"),
        ("Canary10Percent", "unknown plan preset"),
        ("Canary10.5Percent5Minutes", "unknown plan preset"),
        ("Linear10PercentEvery", "unknown plan preset"),
        ("Linear10Percent1Minute", "unknown plan preset"),
        ("Linear-10PercentEvery1Minute", "unknown plan preset"),
        ("BlueGreen", "unknown plan preset"),
        ("Canary0Percent5Minutes", "percent 0 must be 1-99"),
        ("Canary100Percent5Minutes", "percent 100 must be 1-99"),
        ("Canary010Percent5Minutes", "percent 010 must be 1-99"),
        ("Canary10Percent0Minutes", "minutes 0 must be 1-2880"),
        ("Canary10Percent2881Minutes", "minutes 2881 must be 1-2880"),
        ("Linear0PercentEvery1Minute", "percent 0 must be 1-99"),
        ("Linear100PercentEvery1Minute", "percent 100 must be 1-99"),
        ("Linear10PercentEvery05Minutes", "minutes 05 must be 1-2880"),
        ("Linear10PercentEvery99999Minutes", "minutes 99999 must be 1-2880"),
    ],
)
def test_bad_preset_names_are_rejected_listing_accepted_forms(name: str, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        resolve_plan(name)
    message = str(info.value)
    assert message.startswith("plan: ")
    assert fragment in message
    assert "accepted forms: AllAtOnce, Canary<P>Percent<M>Minutes, Linear<P>PercentEvery<M>Minutes" in message
    assert "Canary10Percent5Minutes" in message


def test_both_range_problems_are_reported_together() -> None:
    with pytest.raises(SpecError, match="percent 0 must be 1-99; minutes 0 must be 1-2880"):
        parse_preset("Canary0Percent0Minutes")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (AllAtOncePlanSpec(type="all_at_once"), Plan((100,), 300)),
        (AllAtOncePlanSpec(type="all_at_once", bake_seconds=0), Plan((100,), 0)),
        (CanaryPlanSpec(type="canary", percent=20), Plan((20, 100), 300)),
        (CanaryPlanSpec(type="canary", percent=5, bake_seconds=86_400), Plan((5, 100), 86_400)),
        (LinearPlanSpec(type="linear", percent=30, bake_seconds=60), Plan((30, 60, 90, 100), 60)),
        (LinearPlanSpec(type="linear", percent=25), Plan((25, 50, 75, 100), 300)),
        (LinearPlanSpec(type="linear", percent=40), Plan((40, 80, 100), 300)),
        (StepsPlanSpec(type="steps", steps=(5, 25, 50, 100)), Plan((5, 25, 50, 100), 300)),
        (StepsPlanSpec(type="steps", steps=(100,), bake_seconds=10), Plan((100,), 10)),
    ],
)
def test_object_forms_resolve(value: PlanInput, expected: Plan) -> None:
    assert resolve_plan(value) == expected


@pytest.mark.parametrize(
    ("percent", "steps"),
    [
        (10, TENS),
        (30, (30, 60, 90, 100)),
        (33, (33, 66, 99, 100)),
        (34, (34, 68, 100)),
        (50, (50, 100)),
        (60, (60, 100)),
        (99, (99, 100)),
        (100, (100,)),
    ],
)
def test_linear_steps(percent: int, steps: tuple[int, ...]) -> None:
    assert linear_steps(percent) == steps


@pytest.mark.parametrize("percent", [0, -5, 101])
def test_linear_steps_rejects_out_of_range_percent(percent: int) -> None:
    with pytest.raises(SpecError, match=r"^plan\.percent: "):
        linear_steps(percent)


@pytest.mark.parametrize(
    ("steps", "bake", "expected_lines"),
    [
        ((), 300, ["plan.steps: steps must not be empty"]),
        ((50, 20, 100), 300, ["plan.steps: steps must be strictly ascending"]),
        ((10, 10, 100), 300, ["plan.steps: steps must be strictly ascending"]),
        ((0, 100), 300, ["plan.steps: every step must be in (0, 100], got 0"]),
        ((-5, 100), 300, ["plan.steps: every step must be in (0, 100], got -5"]),
        ((10, 50), 300, ["plan.steps: the last step must be 100, got 50"]),
        (
            (10, 110),
            300,
            [
                "plan.steps: every step must be in (0, 100], got 110",
                "plan.steps: the last step must be 100, got 110",
            ],
        ),
        ((100,), -1, ["plan.bake_seconds: must be between 0 and 172800, got -1"]),
        ((100,), 172_801, ["plan.bake_seconds: must be between 0 and 172800, got 172801"]),
        (
            (60, 50),
            -1,
            [
                "plan.steps: steps must be strictly ascending",
                "plan.steps: the last step must be 100, got 50",
                "plan.bake_seconds: must be between 0 and 172800, got -1",
            ],
        ),
    ],
)
def test_plan_validation_names_every_bad_field(
    steps: tuple[int, ...], bake: int, expected_lines: list[str]
) -> None:
    with pytest.raises(SpecError) as info:
        Plan(steps=steps, bake_seconds=bake)
    assert list(info.value.problems) == expected_lines


def test_plan_accepts_a_list_and_stores_a_tuple() -> None:
    plan = Plan(steps=[10, 100], bake_seconds=5)  # type: ignore[arg-type]
    assert plan.steps == (10, 100)
    assert hash(plan) == hash(Plan((10, 100), 5))


def test_plan_dict_round_trip() -> None:
    plan = Plan((5, 25, 50, 100), 600)
    assert plan.to_dict() == {"steps": [5, 25, 50, 100], "bake_seconds": 600}
    assert Plan.from_dict(plan.to_dict()) == plan
    assert plan.last_index == 3


def test_step_problems_is_empty_for_a_valid_ramp() -> None:
    assert step_problems((1, 2, 3, 100)) == []


def test_describe_plan() -> None:
    assert describe_plan(Plan((10, 100), 300)) == "10% -> 100%, bake 300s"


percents = st.integers(min_value=1, max_value=99)
minutes = st.integers(min_value=1, max_value=MAX_PRESET_MINUTES)


@given(percent=percents, mins=minutes, prefix=st.sampled_from(["", "CodeDeployDefault.ECS"]))
def test_every_canary_preset_is_two_steps(percent: int, mins: int, prefix: str) -> None:
    suffix = "Minute" if mins == 1 else "Minutes"
    name = f"{prefix}Canary{percent}Percent{mins}{suffix}"
    assert re.fullmatch(PRESET_PATTERN, name)
    assert resolve_plan(name) == Plan((percent, 100), mins * 60)


@given(percent=percents, mins=minutes, prefix=st.sampled_from(["", "CodeDeployDefault.ECS"]))
def test_every_linear_preset_is_equal_increments_then_the_rest(percent: int, mins: int, prefix: str) -> None:
    name = f"{prefix}Linear{percent}PercentEvery{mins}Minutes"
    assert re.fullmatch(PRESET_PATTERN, name)
    plan = resolve_plan(name)
    assert plan.bake_seconds == mins * 60
    assert plan.steps[0] == percent
    assert plan.steps[-1] == 100
    increments = [b - a for a, b in zip((0, *plan.steps), plan.steps, strict=False)]
    assert all(inc == percent for inc in increments[:-1])
    assert 0 < increments[-1] <= percent
    assert step_problems(plan.steps) == []


@given(st.lists(st.integers(min_value=-10, max_value=120), max_size=12))
def test_plan_is_valid_exactly_when_step_problems_is_empty(steps: list[int]) -> None:
    problems = step_problems(steps)
    if problems:
        with pytest.raises(SpecError):
            Plan(tuple(steps), 0)
    else:
        plan = Plan(tuple(steps), 0)
        assert list(plan.steps) == sorted(set(steps))
        assert plan.steps[-1] == 100
        assert all(0 < s <= 100 for s in plan.steps)
