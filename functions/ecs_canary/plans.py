"""Traffic-shifting plans: CodeDeploy-style preset names, object forms, and the resolved step list.

Every form resolves to a :class:`Plan`: the ascending green percentages to shift
to, and how long to bake (watch the health gate) after each shift. The bake also
follows the final shift to 100%, so every plan, ``AllAtOnce`` included, ends with
a health gate before the green service is promoted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from ecs_canary.errors import SpecError

DEFAULT_BAKE_SECONDS = 300
MAX_BAKE_SECONDS = 86_400
"""Upper bound of ``bake_seconds`` in the object forms."""
MAX_PRESET_MINUTES = 2_880
"""Upper bound of a preset's minutes, as in CodeDeploy (48 hours)."""
MAX_PLAN_BAKE_SECONDS = MAX_PRESET_MINUTES * 60
"""Upper bound of a resolved plan's bake, which presets may push past :data:`MAX_BAKE_SECONDS`."""
PRESET_PREFIX = "CodeDeployDefault.ECS"

_ALL_AT_ONCE_RE = re.compile(r"(?:CodeDeployDefault\.ECS)?AllAtOnce")
_CANARY_RE = re.compile(r"(?:CodeDeployDefault\.ECS)?Canary(?P<percent>\d+)Percent(?P<minutes>\d+)Minutes?")
_LINEAR_RE = re.compile(
    r"(?:CodeDeployDefault\.ECS)?Linear(?P<percent>\d+)PercentEvery(?P<minutes>\d+)Minutes?"
)

PRESET_PATTERN = (
    r"^(?:CodeDeployDefault\.ECS)?(?:AllAtOnce"
    r"|Canary[1-9][0-9]?Percent[1-9][0-9]{0,3}Minutes?"
    r"|Linear[1-9][0-9]?PercentEvery[1-9][0-9]{0,3}Minutes?)$"
)
"""ECMA-262 pattern for preset names, published in the JSON Schema (ranges are checked in code)."""

_WELL_KNOWN_PRESETS = (
    "AllAtOnce",
    "Canary10Percent5Minutes",
    "Canary10Percent15Minutes",
    "Linear10PercentEvery1Minute",
    "Linear10PercentEvery3Minutes",
)

ACCEPTED_PRESET_FORMS = (
    "accepted forms: AllAtOnce, Canary<P>Percent<M>Minutes, Linear<P>PercentEvery<M>Minutes "
    f"(P 1-99, M 1-{MAX_PRESET_MINUTES}, 'Minute' or 'Minutes', optional '{PRESET_PREFIX}' prefix), "
    f"e.g. {', '.join(_WELL_KNOWN_PRESETS)}"
)


def step_problems(steps: Sequence[int]) -> list[str]:
    """Every reason ``steps`` is not a usable ramp, so one error can report them all."""
    problems: list[str] = []
    if not steps:
        return ["steps must not be empty"]
    outside = [s for s in steps if not 0 < s <= 100]
    if outside:
        problems.append(f"every step must be in (0, 100], got {', '.join(str(s) for s in outside)}")
    if any(later <= earlier for earlier, later in pairwise(steps)):
        problems.append("steps must be strictly ascending")
    if steps[-1] != 100:
        problems.append(f"the last step must be 100, got {steps[-1]}")
    return problems


def linear_steps(percent: int) -> tuple[int, ...]:
    """Equal increments of ``percent``; the last one is smaller when 100 is not a multiple."""
    if not 1 <= percent <= 100:
        raise SpecError(f"plan.percent: must be between 1 and 100, got {percent}")
    return (*range(percent, 100, percent), 100)


@dataclass(frozen=True)
class Plan:
    """A resolved plan: shift green to each percentage in turn, baking ``bake_seconds`` after each."""

    steps: tuple[int, ...]
    bake_seconds: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(self.steps))
        problems = [f"plan.steps: {p}" for p in step_problems(self.steps)]
        if not 0 <= self.bake_seconds <= MAX_PLAN_BAKE_SECONDS:
            problems.append(
                f"plan.bake_seconds: must be between 0 and {MAX_PLAN_BAKE_SECONDS}, got {self.bake_seconds}"
            )
        if problems:
            raise SpecError("\n".join(problems))

    @property
    def last_index(self) -> int:
        """Index of the final (100%) step."""
        return len(self.steps) - 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form, for Step Functions state."""
        return {"steps": list(self.steps), "bake_seconds": self.bake_seconds}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        """Inverse of :meth:`to_dict`."""
        return cls(steps=tuple(int(s) for s in data["steps"]), bake_seconds=int(data["bake_seconds"]))


def _preset_or_problem(name: str) -> Plan | str:
    """Resolve a preset name, or describe why it is not one (without a field path)."""
    if _ALL_AT_ONCE_RE.fullmatch(name):
        return Plan(steps=(100,), bake_seconds=DEFAULT_BAKE_SECONDS)
    match = _CANARY_RE.fullmatch(name) or _LINEAR_RE.fullmatch(name)
    if match is None:
        return f"unknown plan preset {name!r}; {ACCEPTED_PRESET_FORMS}"
    percent, minutes = int(match["percent"]), int(match["minutes"])
    problems: list[str] = []
    if match["percent"].startswith("0") or not 1 <= percent <= 99:
        problems.append(f"percent {match['percent']} must be 1-99")
    if match["minutes"].startswith("0") or not 1 <= minutes <= MAX_PRESET_MINUTES:
        problems.append(f"minutes {match['minutes']} must be 1-{MAX_PRESET_MINUTES}")
    if problems:
        return f"invalid plan preset {name!r}: {'; '.join(problems)}; {ACCEPTED_PRESET_FORMS}"
    steps = (percent, 100) if match.re is _CANARY_RE else linear_steps(percent)
    return Plan(steps=steps, bake_seconds=minutes * 60)


def parse_preset(name: str) -> Plan:
    """Resolve a CodeDeploy-style preset name such as ``Canary10Percent5Minutes``."""
    result = _preset_or_problem(name)
    if isinstance(result, str):
        raise SpecError(f"plan: {result}")
    return result


def preset_names() -> tuple[str, ...]:
    """The well-known preset names (any P/M combination of the same patterns is accepted too)."""
    return _WELL_KNOWN_PRESETS


def _check_preset(name: str) -> str:
    result = _preset_or_problem(name)
    if isinstance(result, str):
        raise ValueError(result)
    return name


_BAKE_DESCRIPTION = (
    "Seconds to watch the health gate after each shift, including the final shift to 100% "
    "(the last gate before promotion)."
)


class AllAtOncePlanSpec(BaseModel):
    """Shift all traffic in one step, then bake once before promoting."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["all_at_once"] = Field(description="Plan kind: one shift straight to 100%.")
    bake_seconds: int = Field(DEFAULT_BAKE_SECONDS, ge=0, le=MAX_BAKE_SECONDS, description=_BAKE_DESCRIPTION)

    def to_plan(self) -> Plan:
        """The resolved plan."""
        return Plan(steps=(100,), bake_seconds=self.bake_seconds)


class CanaryPlanSpec(BaseModel):
    """Shift ``percent`` first, then everything."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["canary"] = Field(description="Plan kind: two increments, `percent` then 100.")
    percent: int = Field(ge=1, le=99, description="Percentage of traffic the canary step sends to green.")
    bake_seconds: int = Field(DEFAULT_BAKE_SECONDS, ge=0, le=MAX_BAKE_SECONDS, description=_BAKE_DESCRIPTION)

    def to_plan(self) -> Plan:
        """The resolved plan."""
        return Plan(steps=(self.percent, 100), bake_seconds=self.bake_seconds)


class LinearPlanSpec(BaseModel):
    """Shift in equal increments; the last increment is smaller if 100 is not a multiple."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["linear"] = Field(
        description="Plan kind: equal increments of `percent` (e.g. 30 gives 30, 60, 90, 100)."
    )
    percent: int = Field(ge=1, le=99, description="Size of each increment, in percent of traffic.")
    bake_seconds: int = Field(DEFAULT_BAKE_SECONDS, ge=0, le=MAX_BAKE_SECONDS, description=_BAKE_DESCRIPTION)

    def to_plan(self) -> Plan:
        """The resolved plan."""
        return Plan(steps=linear_steps(self.percent), bake_seconds=self.bake_seconds)


class StepsPlanSpec(BaseModel):
    """Shift through an explicit list of percentages."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["steps"] = Field(description="Plan kind: an explicit list of green percentages.")
    steps: tuple[int, ...] = Field(
        description="Green percentages to shift to, strictly ascending, each in (0, 100], ending at 100."
    )
    bake_seconds: int = Field(DEFAULT_BAKE_SECONDS, ge=0, le=MAX_BAKE_SECONDS, description=_BAKE_DESCRIPTION)

    @field_validator("steps")
    @classmethod
    def _valid_steps(cls, steps: tuple[int, ...]) -> tuple[int, ...]:
        problems = step_problems(steps)
        if problems:
            raise ValueError("; ".join(problems))
        return steps

    def to_plan(self) -> Plan:
        """The resolved plan."""
        return Plan(steps=self.steps, bake_seconds=self.bake_seconds)


PlanObject = AllAtOncePlanSpec | CanaryPlanSpec | LinearPlanSpec | StepsPlanSpec
PlanInput = str | PlanObject
PLAN_TYPES = ("all_at_once", "canary", "linear", "steps")
PLAN_TAGS = ("preset", *PLAN_TYPES)
"""Union tags pydantic inserts into error locations under ``plan``."""


def _plan_tag(value: Any) -> str | None:
    if isinstance(value, str):
        return "preset"
    if isinstance(value, Mapping):
        kind = value.get("type")
        return kind if isinstance(kind, str) else None
    if isinstance(value, BaseModel):
        kind = getattr(value, "type", None)
        return kind if isinstance(kind, str) else None
    return None


PresetName = Annotated[
    str,
    AfterValidator(_check_preset),
    Field(
        description="A CodeDeploy-style preset name, e.g. Canary10Percent5Minutes.",
        json_schema_extra={"pattern": PRESET_PATTERN},
    ),
]

PlanValue = Annotated[
    Annotated[PresetName, Tag("preset")]
    | Annotated[AllAtOncePlanSpec, Tag("all_at_once")]
    | Annotated[CanaryPlanSpec, Tag("canary")]
    | Annotated[LinearPlanSpec, Tag("linear")]
    | Annotated[StepsPlanSpec, Tag("steps")],
    Discriminator(
        _plan_tag,
        custom_error_type="plan_kind",
        custom_error_message=(
            "must be a preset name such as Canary10Percent5Minutes, or an object whose type is "
            "one of all_at_once, canary, linear, steps"
        ),
    ),
]
"""Pydantic type of a spec's ``plan`` field: a preset name or one of the object forms."""


def resolve_plan(plan_value: PlanInput) -> Plan:
    """Resolve a preset name or a plan object to its steps and bake time."""
    if isinstance(plan_value, str):
        return parse_preset(plan_value)
    return plan_value.to_plan()


def describe_plan(plan: Plan) -> str:
    """One-line human summary, e.g. ``10% -> 100%, bake 300s``."""
    ramp = " -> ".join(f"{s}%" for s in plan.steps)
    return f"{ramp}, bake {plan.bake_seconds}s"
