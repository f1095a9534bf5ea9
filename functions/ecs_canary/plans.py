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
from ecs_canary.gates import ApprovalSpec

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


class StepApproval(BaseModel):
    """An approval gate between two steps of a ``steps`` plan: ``{approve: {timeout_seconds, ...}}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    approve: ApprovalSpec = Field(
        description="Hold the rollout before the next step's shift (after the previous step's bake and "
        "health gate passed) until ecs-canary approve or reject, or the timeout."
    )


STEP_TAGS = ("percent", "approve")
"""Union tags pydantic inserts into error locations under ``plan.steps.<i>``."""


def _step_tag(value: Any) -> str:
    return "approve" if isinstance(value, Mapping | StepApproval) else "percent"


StepItem = Annotated[
    Annotated[int, Tag("percent")] | Annotated[StepApproval, Tag("approve")], Discriminator(_step_tag)
]
"""A percentage, or an approval gate before the next one."""


class StepsPlanSpec(BaseModel):
    """Shift through an explicit list of percentages, optionally with approval gates between them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["steps"] = Field(description="Plan kind: an explicit list of green percentages.")
    steps: tuple[StepItem, ...] = Field(
        description="Green percentages to shift to, strictly ascending, each in (0, 100], ending at 100. An "
        "item {approve: {timeout_seconds, on_timeout}} between two percentages (or before the first) is an "
        "approval gate: the shift after it waits for ecs-canary approve."
    )
    bake_seconds: int = Field(DEFAULT_BAKE_SECONDS, ge=0, le=MAX_BAKE_SECONDS, description=_BAKE_DESCRIPTION)

    @field_validator("steps")
    @classmethod
    def _valid_steps(cls, steps: tuple[int | StepApproval, ...]) -> tuple[int | StepApproval, ...]:
        percents = [s for s in steps if isinstance(s, int)]
        problems = step_problems(percents)
        for before, after in pairwise(steps):
            if isinstance(before, StepApproval) and isinstance(after, StepApproval):
                problems.append("two approval gates in a row: merge them into one")
                break
        if steps and isinstance(steps[-1], StepApproval):
            problems.append("an approval gate must be followed by a step (put it before the step it holds)")
        if problems:
            raise ValueError("; ".join(problems))
        return steps

    def approvals(self) -> dict[int, ApprovalSpec]:
        """Approval gates by the index (in :attr:`Plan.steps`) of the step whose shift they hold."""
        gates: dict[int, ApprovalSpec] = {}
        index = 0
        for item in self.steps:
            if isinstance(item, StepApproval):
                gates[index] = item.approve
            else:
                index += 1
        return gates

    def to_plan(self) -> Plan:
        """The resolved plan (percentages only; the approval gates are read from the spec)."""
        return Plan(steps=tuple(s for s in self.steps if isinstance(s, int)), bake_seconds=self.bake_seconds)


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


# ---- what one deployment can cost in Step Functions -----------------------------------------------

HISTORY_EVENT_LIMIT = 25_000
"""Step Functions' hard quota of events in one Standard execution's history; past it the execution
fails, and with it the rollout (the reconcile function then restores the snapshot)."""
EXECUTION_TIMEOUT_SECONDS = 604_800
"""``TimeoutSeconds`` of the state machine (statemachine/canary.asl.json; a unit test keeps them equal).
Past it the execution times out and the deployment ends TIMED_OUT, never promoted."""
TASK_TIMEOUT_SECONDS = 120
"""``TimeoutSeconds`` of every Lambda Task but the rollback: a call that takes longer fails."""
ROLLBACK_TIMEOUT_SECONDS = 420
"""``TimeoutSeconds`` of *Roll back*: counted in full, the rollback is what must still fit."""
CALL_SECONDS = 5
"""Time counted per loop call (a steady poll, a health check): one DynamoDB read, a few describe
calls and one GetMetricData take about a second; five allows for a cold start and the SDK's own
retries. A call that hangs until its Task times out is an error, retried from the reserve below."""
TASK_RETRIES = 4
"""``MaxAttempts`` of the transient-error retrier of the Lambda Tasks (and of the watch's call)."""
ROLLBACK_RETRIES = 8
"""``MaxAttempts`` of *Roll back*'s retrier."""
SYNC_POLL_SECONDS = 5
"""Seconds between checks of a Route53 change not yet INSYNC (``flow.steps.SYNC_POLL_SECONDS``)."""
MAX_SYNC_CHECKS = 60
"""Route53 INSYNC checks after a shift before the step fails (``flow.steps.MAX_SYNC_CHECKS``)."""
ARM_POLL_SECONDS = 1
"""Seconds between checks that the watch stored its token (``flow.steps.ARM_POLL_SECONDS``)."""
ARM_POLLS = 10
"""Checks allowed for the watch to store its token: its call runs beside the first check, so it is
armed within moments; ten covers a cold start."""
ROUTE53_PROPAGATION_SECONDS = 60
"""Added to every Route53 bake: alias records are cached 60 s (``routers.route53.ALIAS_CACHE_SECONDS``).
A plain record's longer TTL makes each step longer by the difference."""
RETRY_RESERVE_EVENTS = 2_500
"""History kept free for retried calls (three events each: scheduled, started, failed), about 800
throttled or failed Lambda calls: the loop's calls are retried on transient errors and cannot be
bounded ahead, so a tenth of the quota is set aside for them."""
RETRY_RESERVE_SECONDS = 3_600
"""Time kept free for those retries and their back-off (up to 60 s each) and for a rollback that
retries."""

EVENTS_PER_STATE = {
    "Execution": 2,  # ExecutionStarted, ExecutionSucceeded / ExecutionFailed
    "Task": 5,  # TaskStateEntered, TaskScheduled, TaskStarted, TaskSucceeded, TaskStateExited
    "TaskWithToken": 6,  # ... TaskStarted, TaskSubmitted, TaskSucceeded / TaskFailed, TaskStateExited
    "Retry": 3,  # one more attempt: TaskScheduled, TaskStarted, TaskFailed
    "Wait": 2,  # WaitStateEntered, WaitStateExited
    "Choice": 2,  # ChoiceStateEntered, ChoiceStateExited
    "Pass": 2,  # PassStateEntered, PassStateExited
    "Succeed": 2,  # SucceedStateEntered, SucceedStateExited
    "Fail": 1,  # FailStateEntered
    "Parallel": 4,  # ParallelStateEntered, ParallelStateStarted, ParallelStateSucceeded, ParallelStateExited
}
"""History events Step Functions writes for one pass through each kind of state."""

_LOOP = EVENTS_PER_STATE["Task"] + EVENTS_PER_STATE["Choice"] + EVENTS_PER_STATE["Wait"]
"""One trip around a polling loop: the call, the Choice on its answer and the Wait before the next."""
LOOP_EVENTS = _LOOP
HOOK_CALL_SECONDS = 960
"""``TimeoutSeconds`` of *Run the stage's hooks*: a hook is invoked synchronously and may run its
function's full 900 s."""
_ONE_OFF_TASK = EVENTS_PER_STATE["Task"] + TASK_RETRIES * EVENTS_PER_STATE["Retry"]


@dataclass(frozen=True)
class ExecutionBudget:
    """The worst case of one deployment's Step Functions execution that still ends on its own.

    Every bounded loop runs to its bound: green is steady only at the last poll, every step needs
    every inconclusive recheck ``max_inconclusive`` allows, and with Route53 every change needs every
    INSYNC check. An operator's pause (a hold every ``recheck_seconds``) and resume or promote (the
    rollout re-entered) add to it and are not counted.
    """

    steps: int
    checks_per_step: int
    """Health checks after each step's bake at worst: rechecks, Route53 INSYNC checks, the verdict."""
    sync_checks: int
    """Of those, Route53 INSYNC checks (0 with an ALB)."""
    steady_polls: int
    events: int
    seconds: int
    seconds_per_step: int
    """A step at worst: its bake (with Route53's propagation), every recheck and INSYNC wait, its calls."""
    gate_events: int = 0
    """Of ``events``, the lifecycle hooks', approvals', capacity wait's and watched bake's."""
    gate_seconds: int = 0
    """Of ``seconds``, theirs."""

    @property
    def ticks(self) -> int:
        """Calls of *Check health and shift traffic*: the watch arming, preflight, then every step's."""
        return ARM_POLLS + 1 + self.steps * self.checks_per_step

    def problems(self) -> list[str]:
        """Why an execution with this worst case might not run to its end, each naming what to change."""
        found: list[str] = []
        if self.events > HISTORY_EVENT_LIMIT:
            found.append(
                f"plan: a deployment could need {self.events:,} Step Functions history events, more "
                f"than the {HISTORY_EVENT_LIMIT:,} one execution may have: {self.steps} step(s) x "
                f"{self.checks_per_step} health check(s){self._checks_detail()} x {_LOOP} events, "
                f"{self.steady_polls:,} steady "
                f"poll(s) x {_LOOP} events, {self._gates_events()}{RETRY_RESERVE_EVENTS:,} kept for retries; "
                "use fewer plan steps, a lower health.max_inconclusive, or fewer steady polls (a longer "
                "steady.poll_seconds or a shorter steady.timeout_seconds)"
                + (", or fewer hooks (each may be asked up to 102 times)" if self.gate_events else "")
            )
        if self.seconds > EXECUTION_TIMEOUT_SECONDS:
            found.append(
                f"plan: a deployment could take {_duration(self.seconds)} ({self.seconds:,} s), longer "
                f"than the state machine's {_duration(EXECUTION_TIMEOUT_SECONDS)} (TimeoutSeconds "
                f"{EXECUTION_TIMEOUT_SECONDS:,}), after which it times out unpromoted: {self.steps} "
                f"step(s) x {self.seconds_per_step:,} s"
                + (f", {self.gate_seconds:,} s for hooks, approvals and gates" if self.gate_seconds else "")
                + "; use fewer plan steps, a shorter plan.bake_seconds, or fewer or shorter inconclusive "
                "rechecks (health.max_inconclusive x health.recheck_seconds)"
                + (
                    ", or shorter gate waits (hook and approval timeout_seconds, capacity.wait_seconds)"
                    if self.gate_seconds
                    else ""
                )
            )
        return found

    def _gates_events(self) -> str:
        return f"{self.gate_events:,} for hooks, approvals and gates, " if self.gate_events else ""

    def _checks_detail(self) -> str:
        """`` (1 verdict, 3 inconclusive rechecks, 60 Route53 INSYNC checks)``."""
        rechecks = self.checks_per_step - 1 - self.sync_checks
        parts = ["1 verdict", f"{rechecks} inconclusive recheck(s)"]
        if self.sync_checks:
            parts.append(f"{self.sync_checks} Route53 INSYNC checks")
        return f" ({', '.join(parts)})"


def execution_budget(
    plan: Plan,
    *,
    max_inconclusive: int,
    recheck_seconds: int,
    steady_polls: int,
    steady_poll_seconds: int,
    route53: bool,
    extra_events: int = 0,
    extra_seconds: int = 0,
) -> ExecutionBudget:
    """The worst case of one deployment of ``plan`` (see :class:`ExecutionBudget`), as the ASL runs it.

    Events: the execution, *Load spec and snapshot traffic* and *Promote green* (or *Roll back* and
    *Record that the rollback failed*) with all their retries, the *Roll out* Parallel, the watch
    with its retries, ``steady_polls`` trips around the steady loop and one trip around the
    check-and-bake loop per health check, plus :data:`RETRY_RESERVE_EVENTS`. Seconds: every Wait at
    its bound, every loop call at :data:`CALL_SECONDS` and every other call at its Task's
    ``TimeoutSeconds``, plus :data:`RETRY_RESERVE_SECONDS`.
    ``extra_events`` and ``extra_seconds`` add the worst case of states outside this loop.
    """
    steps = len(plan.steps)
    sync_checks = MAX_SYNC_CHECKS if route53 else 0
    checks_per_step = 1 + max_inconclusive + sync_checks
    ticks = ARM_POLLS + 1 + steps * checks_per_step
    ends = {
        "promote": _ONE_OFF_TASK + EVENTS_PER_STATE["Succeed"],
        "rollback failed": EVENTS_PER_STATE["Task"]
        + ROLLBACK_RETRIES * EVENTS_PER_STATE["Retry"]
        + _ONE_OFF_TASK
        + EVENTS_PER_STATE["Fail"],
    }
    events = (
        EVENTS_PER_STATE["Execution"]
        + _ONE_OFF_TASK  # Load spec and snapshot traffic
        + EVENTS_PER_STATE["Parallel"]  # Roll out
        + EVENTS_PER_STATE["TaskWithToken"]
        + TASK_RETRIES * EVENTS_PER_STATE["Retry"]  # Watch for alarms, crashes, ...
        + steady_polls * _LOOP
        + ticks * _LOOP
        + max(ends.values())
        + RETRY_RESERVE_EVENTS
    )
    propagation = ROUTE53_PROPAGATION_SECONDS if route53 else 0
    per_step = (
        plan.bake_seconds
        + propagation
        + max_inconclusive * recheck_seconds
        + sync_checks * SYNC_POLL_SECONDS
        + checks_per_step * CALL_SECONDS
    )
    before_steps = (
        (steady_polls - 1) * steady_poll_seconds
        + ARM_POLLS * ARM_POLL_SECONDS
        + (steady_polls + ARM_POLLS + 1) * CALL_SECONDS  # the steady polls, the arm checks, preflight
        + 3 * TASK_TIMEOUT_SECONDS  # load spec, the watch's call, promote
    )
    seconds = before_steps + steps * per_step + ROLLBACK_TIMEOUT_SECONDS + RETRY_RESERVE_SECONDS
    return ExecutionBudget(
        steps=steps,
        checks_per_step=checks_per_step,
        sync_checks=sync_checks,
        steady_polls=steady_polls,
        events=events + extra_events,
        seconds=seconds + extra_seconds,
        seconds_per_step=per_step,
        gate_events=extra_events,
        gate_seconds=extra_seconds,
    )


def _duration(seconds: int) -> str:
    """``7 days``, ``8 days 2 h``, ``5 h 30 min``: a long duration at a glance."""
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    parts = [f"{days} day{'s' if days != 1 else ''}"] if days else []
    if hours:
        parts.append(f"{hours} h")
    if minutes and not days:
        parts.append(f"{minutes} min")
    return " ".join(parts) or f"{seconds} s"
