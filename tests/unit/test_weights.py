"""Weight arithmetic, live-service detection and plan/weight compatibility."""

from __future__ import annotations

from itertools import pairwise

import pytest
from ecs_canary.errors import RouterConfigError
from ecs_canary.plans import linear_steps
from ecs_canary.weights import (
    green_percent,
    green_weight,
    live_service,
    plan_weight_problems,
    same_weights,
    weights_for,
)
from hypothesis import given
from hypothesis import strategies as st

LIVE, GREEN = "web-blue", "web-green"


@pytest.mark.parametrize(
    ("percent", "total", "live_w", "green_w"),
    [
        (0, 100, 100, 0),
        (10, 100, 90, 10),
        (50, 100, 50, 50),
        (99, 100, 1, 99),
        (100, 100, 0, 100),
        (10, 255, 229, 26),  # 25.5 rounds half up
        (50, 255, 127, 128),  # 127.5 rounds half up
        (33, 999, 669, 330),  # 329.67
        (1, 999, 989, 10),  # 9.99
        (50, 3, 1, 2),  # 1.5
        (50, 1, 0, 1),  # 0.5
        (49, 1, 1, 0),  # 0.49
        (100, 1, 0, 1),
        (0, 1, 1, 0),
        (5, 10, 9, 1),  # 0.5
        (15, 10, 8, 2),  # 1.5
        (25, 10, 7, 3),  # 2.5
    ],
)
def test_weights_for(percent: int, total: int, live_w: int, green_w: int) -> None:
    assert weights_for(percent, live=LIVE, green=GREEN, total=total) == {LIVE: live_w, GREEN: green_w}


@pytest.mark.parametrize(
    ("percent", "live", "green", "total", "fragment"),
    [
        (10, "a", "a", 100, "must be different services"),
        (-1, "a", "b", 100, "percent must be between 0 and 100"),
        (101, "a", "b", 100, "percent must be between 0 and 100"),
        (10, "a", "b", 0, "total must be at least 1"),
    ],
)
def test_weights_for_rejects_bad_input(
    percent: int, live: str, green: str, total: int, fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        weights_for(percent, live=live, green=green, total=total)


percents = st.integers(min_value=0, max_value=100)
totals = st.integers(min_value=1, max_value=999)


@given(percent=percents, total=totals)
def test_weights_always_sum_to_total(percent: int, total: int) -> None:
    weights = weights_for(percent, live=LIVE, green=GREEN, total=total)
    assert sum(weights.values()) == total
    assert all(w >= 0 for w in weights.values())
    assert set(weights) == {LIVE, GREEN}


@given(a=percents, b=percents, total=totals)
def test_green_weight_is_monotonic_in_percent(a: int, b: int, total: int) -> None:
    low, high = sorted((a, b))
    assert green_weight(low, total) <= green_weight(high, total)


@given(percent=st.integers(min_value=1, max_value=99), total=st.integers(min_value=100, max_value=999))
def test_a_partial_shift_with_total_at_least_100_keeps_both_services_in_traffic(
    percent: int, total: int
) -> None:
    weights = weights_for(percent, live=LIVE, green=GREEN, total=total)
    assert weights[LIVE] > 0
    assert weights[GREEN] > 0
    with pytest.raises(RouterConfigError, match="split"):
        live_service(weights)


@given(percent=percents, total=totals)
def test_rounding_error_is_at_most_half_a_weight(percent: int, total: int) -> None:
    weights = weights_for(percent, live=LIVE, green=GREEN, total=total)
    assert abs(weights[GREEN] - total * percent / 100) <= 0.5
    assert abs(green_percent(weights, GREEN) - percent) <= 50 / total + 1e-9


@given(total=totals)
def test_endpoints_leave_one_live_service(total: int) -> None:
    assert live_service(weights_for(0, live=LIVE, green=GREEN, total=total)) == LIVE
    assert live_service(weights_for(100, live=LIVE, green=GREEN, total=total)) == GREEN
    assert weights_for(100, live=LIVE, green=GREEN, total=total) == {LIVE: 0, GREEN: total}


@given(percent=percents, total=totals)
def test_green_weight_matches_exact_half_up_rounding(percent: int, total: int) -> None:
    exact = total * percent / 100
    # Floating point is exact enough here because total * percent < 2**53.
    expected = int(exact) + (1 if exact - int(exact) >= 0.5 else 0)
    assert green_weight(percent, total) == expected


@pytest.mark.parametrize(
    ("weights", "live"),
    [
        ({"a": 100, "b": 0}, "a"),
        ({"a": 0, "b": 1}, "b"),
        ({"a": 0, "b": 255}, "b"),
        ({"a": 1, "b": 0}, "a"),
    ],
)
def test_live_service(weights: dict[str, int], live: str) -> None:
    assert live_service(weights) == live


@pytest.mark.parametrize(
    ("weights", "fragment"),
    [
        ({"a": 50, "b": 50}, "traffic is split between services (a=50, b=50)"),
        ({"a": 99, "b": 1}, "traffic is split"),
        ({"a": 0, "b": 0}, "no service receives traffic, every weight is 0 (a=0, b=0)"),
        ({"a": 100}, "expected weights for exactly two services, got 1 (a)"),
        ({}, "expected weights for exactly two services, got 0 (none)"),
        ({"a": 100, "b": 0, "c": 0}, "got 3 (a, b, c)"),
        ({"a": -1, "b": 5}, "weights must not be negative: a=-1"),
    ],
)
def test_live_service_refuses_anything_but_one_holder(weights: dict[str, int], fragment: str) -> None:
    with pytest.raises(RouterConfigError) as info:
        live_service(weights)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("weights", "green", "expected"),
    [
        ({"a": 90, "b": 10}, "b", 10.0),
        ({"a": 90, "b": 10}, "a", 90.0),
        ({"a": 0, "b": 7}, "b", 100.0),
        ({"a": 229, "b": 26}, "b", 100 * 26 / 255),
        ({"a": 1, "b": 1}, "a", 50.0),
    ],
)
def test_green_percent(weights: dict[str, int], green: str, expected: float) -> None:
    assert green_percent(weights, green) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("weights", "green", "fragment"),
    [
        ({"a": 0, "b": 0}, "a", "every weight is 0"),
        ({"a": 10, "b": 0}, "c", "no weight for service 'c'"),
        ({"a": 10}, "a", "exactly two services"),
    ],
)
def test_green_percent_errors(weights: dict[str, int], green: str, fragment: str) -> None:
    with pytest.raises(RouterConfigError, match=fragment):
        green_percent(weights, green)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ({"x": 90, "y": 10}, {"x": 90, "y": 10}, True),
        ({"x": 90, "y": 10}, {"y": 10, "x": 90}, True),
        ({"x": 90, "y": 10}, {"x": 10, "y": 90}, False),
        ({"x": 1, "y": 1}, {"x": 50, "y": 50}, False),
        ({"x": 100, "y": 0}, {"x": 100}, False),
        ({"x": 100, "y": 0}, {"x": 100, "z": 0}, False),
    ],
)
def test_same_weights_is_exact(a: dict[str, int], b: dict[str, int], same: bool) -> None:
    assert same_weights(a, b) is same
    assert same_weights(b, a) is same


@pytest.mark.parametrize(
    ("steps", "total", "problems"),
    [
        ((10, 100), 100, []),
        (tuple(range(1, 101)), 100, []),
        ((5, 25, 50, 100), 10, []),
        (linear_steps(10), 10, []),
        ((100,), 1, []),
        ((1, 100), 10, ["step 1% rounds to a green weight of 0 out of 10"]),
        ((96, 100), 10, ["step 96% rounds to a live weight of 0 out of 10"]),
        ((5, 6, 100), 10, ["step 6% rounds to the same weights as the step before (total 10)"]),
        (
            (1, 2, 50, 51, 99, 100),
            10,
            [
                "steps 1%, 2% round to a green weight of 0 out of 10",
                "step 99% rounds to a live weight of 0 out of 10",
                "step 51% rounds to the same weights as the step before (total 10)",
            ],
        ),
        (
            tuple(range(1, 101)),
            10,
            [
                "steps 1%, 2%, 3%, 4% round to a green weight of 0 out of 10",
                "steps 95%, 96%, 97%, 98%, 99% round to a live weight of 0 out of 10",
                "steps 6%, 7%, 8%, 9%, 10% and 76 more round to the same weights as the step before "
                "(total 10)",
            ],
        ),
    ],
)
def test_plan_weight_problems(steps: tuple[int, ...], total: int, problems: list[str]) -> None:
    assert plan_weight_problems(steps, total) == problems


@given(
    steps=st.lists(st.integers(min_value=1, max_value=99), unique=True, max_size=20).map(
        lambda s: (*sorted(s), 100)
    ),
    total=totals,
)
def test_a_compatible_plan_gives_strictly_increasing_split_weights(
    steps: tuple[int, ...], total: int
) -> None:
    if plan_weight_problems(steps, total):
        return
    greens = [weights_for(s, live=LIVE, green=GREEN, total=total)[GREEN] for s in steps]
    assert all(a < b for a, b in pairwise(greens))
    assert all(0 < g < total for g in greens[:-1])
    assert greens[-1] == total


@given(steps=st.lists(st.integers(min_value=1, max_value=99), unique=True).map(lambda s: (*sorted(s), 100)))
def test_any_plan_fits_a_total_of_100(steps: tuple[int, ...]) -> None:
    assert plan_weight_problems(steps, 100) == []
