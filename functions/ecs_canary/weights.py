"""Router weights for a service pair, keyed by ECS service name.

Route53 weighted records and ALB weighted target groups both take integer
weights; traffic share is each weight over the sum. During a ramp the sum is
kept at the spec's ``weight_total`` so that a percentage maps to one exact pair
of integers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ecs_canary.errors import RouterConfigError

Weights = dict[str, int]


def green_weight(percent: int, total: int) -> int:
    """``total * percent / 100`` rounded half up, in exact integer arithmetic."""
    return (2 * total * percent + 100) // 200


def weights_for(percent: int, *, live: str, green: str, total: int) -> Weights:
    """Weights that send ``percent`` of traffic to ``green`` and the rest to ``live``."""
    if live == green:
        raise ValueError(f"live and green must be different services, both are {live!r}")
    if not 0 <= percent <= 100:
        raise ValueError(f"percent must be between 0 and 100, got {percent}")
    if total < 1:
        raise ValueError(f"total must be at least 1, got {total}")
    green_w = green_weight(percent, total)
    return {live: total - green_w, green: green_w}


def plan_weight_problems(steps: Sequence[int], total: int) -> list[str]:
    """Why ``total`` cannot express the plan's steps as distinct, genuinely split weights.

    A step below 100% that rounds to zero green (or zero live) weight, or that rounds
    to the same weights as the step before it, would shift nothing, so the plan would
    not do what it says.
    """
    no_green: list[int] = []
    no_live: list[int] = []
    repeated: list[int] = []
    previous = 0
    for step in steps:
        weight = green_weight(step, total)
        if 0 < step < 100 and weight == 0:
            no_green.append(step)
        elif 0 < step < 100 and weight == total:
            no_live.append(step)
        elif weight <= previous < total:
            repeated.append(step)
        previous = max(previous, weight)
    problems: list[str] = []
    if no_green:
        problems.append(f"{_steps_round(no_green)} to a green weight of 0 out of {total}")
    if no_live:
        problems.append(f"{_steps_round(no_live)} to a live weight of 0 out of {total}")
    if repeated:
        problems.append(f"{_steps_round(repeated)} to the same weights as the step before (total {total})")
    return problems


def _steps_round(steps: Sequence[int], limit: int = 5) -> str:
    """``"step 5% rounds"`` or ``"steps 1%, 2% round"``, listing at most ``limit`` steps."""
    shown = ", ".join(f"{s}%" for s in steps[:limit])
    more = f" and {len(steps) - limit} more" if len(steps) > limit else ""
    return f"step {shown} rounds" if len(steps) == 1 else f"steps {shown}{more} round"


def _check_shape(weights: Mapping[str, int]) -> None:
    if len(weights) != 2:
        names = ", ".join(sorted(weights)) or "none"
        raise RouterConfigError(f"expected weights for exactly two services, got {len(weights)} ({names})")
    negative = {name: w for name, w in weights.items() if w < 0}
    if negative:
        raise RouterConfigError(f"weights must not be negative: {_show(negative)}")


def _show(weights: Mapping[str, int]) -> str:
    return ", ".join(f"{name}={weight}" for name, weight in sorted(weights.items()))


def live_service(weights: Mapping[str, int]) -> str:
    """The one service that receives all traffic.

    Deployments start only from a settled state, so split or all-zero weights are a
    configuration problem (or a deployment still in flight), not something to guess at.
    """
    _check_shape(weights)
    holders = [name for name, weight in weights.items() if weight > 0]
    if not holders:
        raise RouterConfigError(f"no service receives traffic, every weight is 0 ({_show(weights)})")
    if len(holders) > 1:
        raise RouterConfigError(
            f"traffic is split between services ({_show(weights)}), expected one live service"
        )
    return holders[0]


def green_percent(weights: Mapping[str, int], green: str) -> float:
    """Share of traffic, in percent, that ``green`` receives."""
    _check_shape(weights)
    if green not in weights:
        raise RouterConfigError(f"no weight for service {green!r} ({_show(weights)})")
    total = sum(weights.values())
    if total == 0:
        raise RouterConfigError(f"every weight is 0 ({_show(weights)}), so the traffic share is undefined")
    return 100.0 * weights[green] / total


def same_weights(a: Mapping[str, int], b: Mapping[str, int]) -> bool:
    """Exact equality of services and weights (not merely the same proportions).

    Used to verify a shift by reading the weights back, so proportional matches such
    as ``1:1`` versus ``50:50`` count as different.
    """
    return dict(a) == dict(b)
