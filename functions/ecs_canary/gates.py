"""The gates people and tests hold: lifecycle hooks, test traffic, approvals, retiring blue, capacity.

Spec models only (pure); the flow that runs them lives in ``ecs_canary.flow``. Stages, in the order
a deployment meets them:

``before_test_traffic`` → (test traffic to green) → ``after_test_traffic`` → ``before_production_traffic``
(and its approval gate) → each production shift, then ``after_each_shift`` before its bake counts →
``after_production_traffic`` (at 100 %, before promotion) → ``after_promotion`` (then the optional
post-promotion bake and scaling the old service to zero); ``on_rollback`` after traffic was restored.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

__all__ = [
    "HOOK_STAGES",
    "AfterPromotionSpec",
    "ApprovalSpec",
    "ApprovalsSpec",
    "CapacitySpec",
    "HookSpec",
    "HookStage",
    "HooksSpec",
    "TestTrafficSpec",
]

_CONFIG = ConfigDict(extra="forbid", frozen=True)

HookStage = Literal[
    "before_test_traffic",
    "after_test_traffic",
    "before_production_traffic",
    "after_each_shift",
    "after_production_traffic",
    "after_promotion",
    "on_rollback",
]
HOOK_STAGES: tuple[HookStage, ...] = get_args(HookStage)

FUNCTION_PATTERN = (
    r"^(?:arn:aws(?:-[a-z]+)*:lambda:[a-z]{2}(?:-[a-z]+)+-[0-9]+:[0-9]{12}:function:)?"
    r"[A-Za-z0-9_-]{1,64}(?::[A-Za-z0-9_$-]{1,128})?$"
)
"""A Lambda function name or ARN, optionally with a version or alias."""

MAX_DETAILS_BYTES = 8192

MAX_HOOK_CHECKS = 100
"""A hook answering IN_PROGRESS is re-invoked after its ``callBackDelay``, but never sooner than
``timeout_seconds / MAX_HOOK_CHECKS`` (nor than 1 s) and never later than its timeout, so it is
asked at most ``MAX_HOOK_CHECKS`` + 2 times whatever it answers."""
CAPACITY_POLL_SECONDS = 10
"""Green short of capacity before the first production shift is checked again this often."""


def listener_of_rule(rule_arn: str) -> str:
    """A rule's listener ARN (``...:listener-rule/app/n/lb/l/r`` → ``...:listener/app/n/lb/l``)."""
    return rule_arn.replace(":listener-rule/", ":listener/", 1).rsplit("/", 1)[0]


def hook_min_delay(timeout_seconds: int) -> int:
    """Shortest wait before a hook that answered IN_PROGRESS is asked again."""
    return max(1, -(-timeout_seconds // MAX_HOOK_CHECKS))


FunctionName = Annotated[str, StringConstraints(pattern=FUNCTION_PATTERN)]


class HookSpec(BaseModel):
    """One Lambda function a stage invokes; it answers ``hookStatus`` SUCCEEDED, FAILED or IN_PROGRESS."""

    model_config = _CONFIG

    function: FunctionName = Field(
        description="Lambda function name or ARN (optionally :version or :alias) to invoke. The stack may "
        "only invoke functions whose name starts with its HookFunctionPrefix parameter."
    )
    details: dict[str, Any] = Field(
        default_factory=dict,
        description="Passed to the function as hookDetails (any JSON object, at most 8 KiB).",
    )
    timeout_seconds: int = Field(
        600,
        ge=1,
        le=86_400,
        description="Longest the hook may keep answering IN_PROGRESS (counting its callBackDelay waits); "
        "past it, the hook counts as FAILED.",
    )

    @field_validator("details")
    @classmethod
    def _small(cls, details: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(details, default=str).encode())
        if size > MAX_DETAILS_BYTES:
            raise ValueError(f"must be at most {MAX_DETAILS_BYTES} bytes of JSON, got {size}")
        return details

    @property
    def function_name(self) -> str:
        """The bare function name (for IAM prefix checks)."""
        name = self.function.split(":function:", 1)[-1] if ":function:" in self.function else self.function
        return name.split(":", 1)[0]


def _hooks(stage: str) -> Any:
    return Field((), max_length=10, description=f"Hooks run at the {stage} stage, in order (at most 10).")


class HooksSpec(BaseModel):
    """Lambda hooks per lifecycle stage (ECS-native semantics, more stages)."""

    model_config = _CONFIG

    before_test_traffic: tuple[HookSpec, ...] = _hooks("before_test_traffic (green steady, no traffic yet)")
    after_test_traffic: tuple[HookSpec, ...] = _hooks(
        "after_test_traffic (test traffic reaches green; the hook gets the test endpoint)"
    )
    before_production_traffic: tuple[HookSpec, ...] = _hooks("before_production_traffic")
    after_each_shift: tuple[HookSpec, ...] = _hooks(
        "after_each_shift (after every production shift, before its bake counts)"
    )
    after_production_traffic: tuple[HookSpec, ...] = _hooks(
        "after_production_traffic (green at 100 %, before promotion)"
    )
    after_promotion: tuple[HookSpec, ...] = _hooks("after_promotion")
    on_rollback: tuple[HookSpec, ...] = _hooks(
        "on_rollback (after traffic was restored; a failure is recorded, the rollback still completes)"
    )

    def of(self, stage: HookStage) -> tuple[HookSpec, ...]:
        hooks: tuple[HookSpec, ...] = getattr(self, stage)
        return hooks

    def all(self) -> list[HookSpec]:
        return [hook for stage in HOOK_STAGES for hook in self.of(stage)]


class TestTrafficSpec(BaseModel):
    """Where test traffic goes to green before any production shift (restored exactly afterwards)."""

    __test__ = False  # not a pytest test class despite the name

    model_config = _CONFIG

    listener_arn: str | None = Field(
        None,
        description="ALB router: a test listener whose default action is pointed at green's target group.",
    )
    rule_arn: str | None = Field(
        None,
        description="ALB router: a test listener rule whose forward action is pointed at green's target "
        "group.",
    )
    record_name: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        description="Route53 router: a test record (its own name, in the pair's zone and of its type) "
        "pointed at green (a copy of green's weighted record without weight).",
    )

    @field_validator("record_name")
    @classmethod
    def _dns_name(cls, name: str | None) -> str | None:
        """A name Route53 accepts: labels of 1-63 characters (a trailing dot is optional)."""
        if name is None:
            return None
        labels = name.rstrip(".").split(".") if name != "." else [""]
        bad = [label for label in labels if not 1 <= len(label) <= 63]
        if bad:
            raise ValueError(f"{name!r} is not a DNS name: every label (between dots) needs 1-63 characters")
        return name

    @model_validator(mode="after")
    def _exactly_one(self) -> TestTrafficSpec:
        given = [v for v in (self.listener_arn, self.rule_arn, self.record_name) if v is not None]
        if len(given) != 1:
            raise ValueError("set exactly one of listener_arn, rule_arn or record_name")
        return self


class ApprovalSpec(BaseModel):
    """A human's go: the rollout waits (alarms and crash detection stay armed) until approved or rejected."""

    model_config = _CONFIG

    timeout_seconds: int = Field(3600, ge=60, le=7 * 86_400, description="How long to wait for a decision.")
    on_timeout: Literal["rollback", "continue"] = Field(
        "rollback", description="What a timed-out approval does: fail back (rollback) or go on (continue)."
    )


class ApprovalsSpec(BaseModel):
    """Approval gates at stages (steps of a `steps` plan can be gates too)."""

    model_config = _CONFIG

    before_production_traffic: ApprovalSpec | None = Field(
        None,
        description="Wait for approval before the first production shift (after test traffic and its hooks).",
    )
    after_production_traffic: ApprovalSpec | None = Field(
        None, description="Wait for approval at 100 %, before promotion."
    )


class AfterPromotionSpec(BaseModel):
    """What happens once green took all traffic."""

    model_config = _CONFIG

    bake_seconds: int = Field(
        0,
        ge=0,
        le=86_400,
        description="Keep watching (health gate, alarms, crashing tasks) for this long after 100 %; a "
        "failure in this window still fails back to the old service, which is still running.",
    )
    scale_old_to_zero: bool = Field(
        False,
        description="After that bake, scale the old live service to 0 tasks (its desired count is recorded "
        "on the pair so a later release can restore it).",
    )


class CapacitySpec(BaseModel):
    """Before the first production shift, green must be able to carry all the traffic."""

    model_config = _CONFIG

    min_healthy_percent: int = Field(
        100,
        ge=0,
        le=200,
        description="Green's running tasks must be at least this share of the live service's running tasks.",
    )
    wait_seconds: int = Field(
        300,
        ge=0,
        le=3600,
        description="How long to wait for that capacity before failing with the reason.",
    )
