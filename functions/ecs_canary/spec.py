"""The service-pair spec: which two ECS services share traffic, how it is routed, shifted and gated.

A spec is a YAML file registered with the CLI and stored as JSON. Parsing reports
every problem at once, each as a ``<dotted.field.path>: <problem>`` line, because a
user fixing a spec should not have to discover its errors one run at a time.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ecs_canary.errors import SpecError
from ecs_canary.gates import (
    CAPACITY_POLL_SECONDS,
    HOOK_STAGES,
    MAX_HOOK_CHECKS,
    AfterPromotionSpec,
    ApprovalSpec,
    ApprovalsSpec,
    CapacitySpec,
    HooksSpec,
    TestTrafficSpec,
)
from ecs_canary.plans import (
    CALL_SECONDS,
    HOOK_CALL_SECONDS,
    LOOP_EVENTS,
    PLAN_TAGS,
    STEP_TAGS,
    AllAtOncePlanSpec,
    CanaryPlanSpec,
    ExecutionBudget,
    LinearPlanSpec,
    Plan,
    PlanValue,
    StepsPlanSpec,
    execution_budget,
    resolve_plan,
)
from ecs_canary.weights import plan_weight_problems

__all__ = [
    "JSON_SCHEMA_DIALECT",
    "SPEC_SCHEMA_TITLE",
    "AlbRouterSpec",
    "AllAtOncePlanSpec",
    "CanaryPlanSpec",
    "HealthSpec",
    "LinearPlanSpec",
    "MetricThresholds",
    "Route53RouterSpec",
    "RouterSpec",
    "ServicePairSpec",
    "ServiceSpec",
    "SteadySpec",
    "StepsPlanSpec",
    "format_validation_error",
    "load_spec_yaml",
    "parse_spec",
    "spec_json_schema",
    "spec_warnings",
]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SPEC_SCHEMA_TITLE = "ecs-canary service pair spec"

ROUTE53_MAX_WEIGHT = 255
ALB_MAX_WEIGHT = 999
SET_IDENTIFIER_MAX_LENGTH = 128

_PARTITION = r"aws(?:-[a-z]+)*"
_REGION = r"[a-z]{2}(?:-[a-z]+)+-[0-9]+"
_ACCOUNT = r"[0-9]{12}"
_ELB_NAME = r"[A-Za-z0-9-]{1,32}"
_ELB_ID = r"[A-Za-z0-9]+"
_ELB_PREFIX = (
    rf"arn:(?P<partition>{_PARTITION}):elasticloadbalancing:(?P<region>{_REGION}):(?P<account>{_ACCOUNT})"
)

TARGET_GROUP_ARN_PATTERN = rf"^{_ELB_PREFIX}:targetgroup/{_ELB_NAME}/{_ELB_ID}$"
LISTENER_ARN_PATTERN = rf"^{_ELB_PREFIX}:listener/app/{_ELB_NAME}/{_ELB_ID}/{_ELB_ID}$"
RULE_ARN_PATTERN = rf"^{_ELB_PREFIX}:listener-rule/app/{_ELB_NAME}/{_ELB_ID}/{_ELB_ID}/{_ELB_ID}$"
ECS_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,255}$"
CLUSTER_PATTERN = (
    rf"^(?:[A-Za-z0-9_-]{{1,255}}|arn:{_PARTITION}:ecs:{_REGION}:{_ACCOUNT}:cluster/[A-Za-z0-9_-]{{1,255}})$"
)
HOSTED_ZONE_ID_PATTERN = r"^(?:/hostedzone/)?[A-Za-z0-9]{1,32}$"
PAIR_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$"

_TARGET_GROUP_ARN_RE = re.compile(TARGET_GROUP_ARN_PATTERN)
_LISTENER_ARN_RE = re.compile(LISTENER_ARN_PATTERN)
_RULE_ARN_RE = re.compile(RULE_ARN_PATTERN)
_CLUSTER_RE = re.compile(CLUSTER_PATTERN)
_HOSTED_ZONE_ID_RE = re.compile(HOSTED_ZONE_ID_PATTERN)
_DNS_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


def _schema_pattern(pattern: str) -> dict[str, Any]:
    """Publish a pattern in the JSON Schema while the validator gives a readable error.

    Python named groups are not ECMA-262, so they are reduced to plain groups.
    """
    return {"pattern": re.sub(r"\(\?P<[a-z_]+>", "(", pattern)}


_MODEL_CONFIG = ConfigDict(extra="forbid", frozen=True)

AlarmName = Annotated[str, StringConstraints(min_length=1, max_length=255)]


def _unique(alarms: tuple[str, ...]) -> tuple[str, ...]:
    duplicates = sorted({a for a in alarms if alarms.count(a) > 1})
    if duplicates:
        raise ValueError(f"alarm names must be unique, repeated: {', '.join(duplicates)}")
    return alarms


class ServiceSpec(BaseModel):
    """One of the two ECS services in the pair."""

    model_config = _MODEL_CONFIG

    name: str = Field(
        min_length=1,
        max_length=255,
        pattern=ECS_NAME_PATTERN,
        description="ECS service name (1-255 letters, digits, hyphens, underscores); "
        "weights are keyed by it.",
    )
    target_group_arn: str = Field(
        description=(
            "ARN of the ALB target group this service registers with, "
            "arn:<partition>:elasticloadbalancing:<region>:<account>:targetgroup/<name>/<id>. "
            "Its target health and CloudWatch metrics are judged as this service's."
        ),
        json_schema_extra=_schema_pattern(TARGET_GROUP_ARN_PATTERN),
    )
    set_identifier: str | None = Field(
        None,
        min_length=1,
        max_length=SET_IDENTIFIER_MAX_LENGTH,
        description=(
            "Route53 only: SetIdentifier of this service's weighted record. Defaults to the service name."
        ),
    )
    alarms: tuple[AlarmName, ...] = Field(
        (),
        description="CloudWatch alarms on this service's own metrics; they are judged (with health.alarms) "
        "while this service is the one receiving the new release. Roles swap after every promotion, so "
        "give each service its own alarms here rather than naming one service's alarms in health.alarms.",
    )

    @field_validator("alarms")
    @classmethod
    def _unique_alarms(cls, alarms: tuple[str, ...]) -> tuple[str, ...]:
        return _unique(alarms)

    @field_validator("target_group_arn")
    @classmethod
    def _target_group_arn_shape(cls, value: str) -> str:
        if not _TARGET_GROUP_ARN_RE.fullmatch(value):
            raise ValueError(
                "must be a target group ARN like "
                f"arn:aws:elasticloadbalancing:<region>:<account>:targetgroup/<name>/<id>, got {value!r}"
            )
        return value

    @property
    def record_set_identifier(self) -> str:
        """SetIdentifier of this service's Route53 weighted record."""
        return self.set_identifier if self.set_identifier is not None else self.name


class Route53RouterSpec(BaseModel):
    """Traffic split by two weighted Route53 records with the same name and type."""

    model_config = _MODEL_CONFIG

    type: Literal["route53"] = Field(description="Router kind: Route53 weighted records.")
    hosted_zone_id: str = Field(
        description="ID of the hosted zone holding the records; a leading /hostedzone/ is removed.",
        json_schema_extra=_schema_pattern(HOSTED_ZONE_ID_PATTERN),
    )
    record_name: str = Field(
        min_length=1,
        max_length=255,
        description="DNS name of the weighted records; stored lower-case with a trailing dot.",
    )
    record_type: Literal["A", "AAAA", "CNAME"] = Field("A", description="DNS type of the weighted records.")

    @field_validator("hosted_zone_id")
    @classmethod
    def _normalise_zone_id(cls, value: str) -> str:
        if not _HOSTED_ZONE_ID_RE.fullmatch(value):
            raise ValueError(f"must be a hosted zone ID such as Z0123456789ABCDEFGHIJ, got {value!r}")
        return value.removeprefix("/hostedzone/")

    @field_validator("record_name")
    @classmethod
    def _normalise_record_name(cls, value: str) -> str:
        name = value.strip().lower().replace("\\052", "*")
        name = name if name.endswith(".") else name + "."
        labels = name[:-1].split(".")
        bad = [
            label
            for i, label in enumerate(labels)
            if not (_DNS_LABEL_RE.fullmatch(label) or (i == 0 and label == "*" and len(labels) > 1))
        ]
        if name == "." or bad or len(name) > 254:
            raise ValueError(
                f"must be a DNS name such as api.example.com (labels of 1-63 letters, digits, "
                f"hyphens, underscores; '*' only as the first label), got {value!r}"
            )
        return name


class AlbRouterSpec(BaseModel):
    """Traffic split by the weighted forward action of one ALB listener (default action) or rule."""

    model_config = _MODEL_CONFIG

    type: Literal["alb"] = Field(description="Router kind: ALB weighted target groups.")
    listener_arn: str | None = Field(
        None,
        description="ARN of the listener whose default action forwards to the two target groups. "
        "Set exactly one of listener_arn and rule_arn.",
        json_schema_extra=_schema_pattern(LISTENER_ARN_PATTERN),
    )
    rule_arn: str | None = Field(
        None,
        description="ARN of the listener rule whose forward action holds the two target groups. "
        "Set exactly one of listener_arn and rule_arn.",
        json_schema_extra=_schema_pattern(RULE_ARN_PATTERN),
    )

    @field_validator("listener_arn")
    @classmethod
    def _listener_arn_shape(cls, value: str | None) -> str | None:
        if value is not None and not _LISTENER_ARN_RE.fullmatch(value):
            raise ValueError(
                "must be an application load balancer listener ARN like "
                f"arn:aws:elasticloadbalancing:<region>:<account>:listener/app/<lb>/<id>/<id>, got {value!r}"
            )
        return value

    @field_validator("rule_arn")
    @classmethod
    def _rule_arn_shape(cls, value: str | None) -> str | None:
        if value is not None and not _RULE_ARN_RE.fullmatch(value):
            raise ValueError(
                "must be an application load balancer listener rule ARN like "
                "arn:aws:elasticloadbalancing:<region>:<account>:listener-rule/app/<lb>/<id>/<id>/<id>, "
                f"got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _exactly_one_target(self) -> AlbRouterSpec:
        if (self.listener_arn is None) == (self.rule_arn is None):
            got = "both" if self.listener_arn is not None else "neither"
            raise ValueError(f"set exactly one of listener_arn or rule_arn (got {got})")
        return self

    @property
    def arn(self) -> str:
        """The listener or rule ARN, whichever is set."""
        arn = self.listener_arn if self.listener_arn is not None else self.rule_arn
        assert arn is not None
        return arn


RouterSpec = Annotated[Route53RouterSpec | AlbRouterSpec, Field(discriminator="type")]
ROUTER_TAGS = ("route53", "alb")


METRIC_PERIOD_SECONDS = 60
"""Length of one judged metric period. ALB publishes its metrics once every 60 s per load balancer
node, each datapoint stamped at the start of its minute, so 60 s is the finest period that holds whole
datapoints (CloudWatch refuses periods that are not a multiple of 60 for such regular-resolution
metrics)."""
METRIC_SETTLE_SECONDS = 30
"""Seconds after a shift before the first judged period may start, unless the spec sets its own. A
listener change reaches every load balancer node within seconds, but connections opened before it
and green's first requests at the new share (cold caches, pools growing) are not the step's steady
traffic. With Route53 the records' TTL is added (clients keep resolving the old weights that long)."""
METRIC_LAG_SECONDS = 120
"""Seconds a period must be over before it is judged. ALB nodes send a minute's datapoints at its
end and CloudWatch makes one-minute data available about one to two minutes after the minute;
a period read earlier may lack some nodes' datapoints (too few requests, a p99 without the slow
node). Two minutes keeps a judged period complete in the usual case."""
MIN_METRIC_PERIODS = 1
"""Complete periods with green traffic needed by default. One fits the default 300 s bake with the
defaults above (30 + 2 * 60 + 120 = 270 s); longer bakes judge every complete period they hold."""
HIGH_RESOLUTION_PERIODS = (1, 5, 10, 20, 30)
"""The sub-minute periods CloudWatch accepts (for high-resolution metrics only)."""


MAX_ALARMS = 90
"""Distinct alarms one spec may gate on: registration stores the pair, its services and one item per
alarm in one DynamoDB transaction (at most 100 items)."""


class MetricThresholds(BaseModel):
    """Limits on the green target group's CloudWatch metrics during each bake.

    Only whole metric periods that start at least ``settle_seconds`` after the shift and ended at
    least ``lag_seconds`` ago are judged: a period that straddles the shift mixes the previous step's
    traffic in, and one that is too recent may still miss datapoints.
    """

    model_config = _MODEL_CONFIG

    max_5xx_percent: float | None = Field(
        None,
        ge=0,
        le=100,
        allow_inf_nan=False,
        description="Highest acceptable share of failed requests, in percent of green's requests: target "
        "5xx responses (HTTPCode_Target_5XX_Count) plus connections the load balancer could not open to "
        "green's targets (TargetConnectionErrorCount).",
    )
    max_p99_latency_ms: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="Highest acceptable p99 target response time (TargetResponseTime of green's target "
        "group), in milliseconds.",
    )
    min_requests: int = Field(
        20,
        ge=1,
        description="Fewest requests green must have served in the judged periods for the metrics to "
        "count; fewer is inconclusive.",
    )
    min_periods: int = Field(
        MIN_METRIC_PERIODS,
        ge=1,
        le=60,
        description="Fewest complete metric periods with green traffic (see settle_seconds and "
        "lag_seconds) a verdict needs; fewer is inconclusive, never a pass. A bake must last at least "
        "settle_seconds + lag_seconds + (min_periods + 1) * period_seconds for its first verdict to "
        "have them, whatever the clock; spec validate warns about shorter bakes.",
    )
    max_unhealthy_hosts: int | None = Field(
        0,
        ge=0,
        le=1000,
        description="Most unhealthy targets (UnHealthyHostCount, maximum over the judged periods) green's "
        "target group may report; one more fails the step. null turns the check off.",
    )
    period_seconds: int = Field(
        METRIC_PERIOD_SECONDS,
        ge=1,
        le=3600,
        description="Length of one judged period, aligned to the clock as CloudWatch aligns them. ALB "
        "metrics have one datapoint a minute: keep 60 (or a multiple of it) in AWS; 1, 5, 10, 20 or 30 "
        "only suit an emulator whose clock runs faster than the functions' (spec validate warns).",
    )
    settle_seconds: int | None = Field(
        None,
        ge=0,
        le=3600,
        description="Seconds after a shift before the first judged period may start, so no judged period "
        f"holds the previous step's traffic. Unset: {METRIC_SETTLE_SECONDS}, plus the records' TTL with "
        "Route53 (clients use the old weights that long; 60 for alias records). Set, it is used as is.",
    )
    lag_seconds: int = Field(
        METRIC_LAG_SECONDS,
        ge=0,
        le=3600,
        description="Seconds a period must be over before it is judged: ALB metrics reach CloudWatch a "
        "minute or two after their minute, and an incomplete period is not judged.",
    )

    @field_validator("period_seconds")
    @classmethod
    def _cloudwatch_period(cls, value: int) -> int:
        if value not in HIGH_RESOLUTION_PERIODS and value % 60:
            raise ValueError(
                f"must be 1, 5, 10, 20, 30 or a multiple of 60 (the periods CloudWatch accepts), got {value}"
            )
        return value

    @model_validator(mode="after")
    def _some_threshold(self) -> MetricThresholds:
        if self.max_5xx_percent is None and self.max_p99_latency_ms is None:
            raise ValueError("set at least one of max_5xx_percent or max_p99_latency_ms")
        return self

    def settle(self, propagation_seconds: int = 0) -> int:
        """Seconds from a shift to the first period that may be judged, given the router's propagation."""
        if self.settle_seconds is not None:
            return self.settle_seconds
        return METRIC_SETTLE_SECONDS + propagation_seconds

    @property
    def earliest_verdict_seconds(self) -> int:
        """Seconds after a shift (and its propagation) before ``min_periods`` complete periods can exist.

        Reached only when the settle time after the shift falls on a period boundary. With Route53 the
        bake's wait and the default settle time both grow by the records' TTL, so it is left out.
        """
        return self.settle() + self.min_periods * self.period_seconds + self.lag_seconds

    @property
    def sure_verdict_seconds(self) -> int:
        """Seconds after a shift after which ``min_periods`` complete periods exist, wherever the shift
        falls: one more period covers the wait for the first boundary after the settle time."""
        return self.earliest_verdict_seconds + self.period_seconds


class HealthSpec(BaseModel):
    """The health gate judged after every bake; missing data is never a pass."""

    model_config = _MODEL_CONFIG

    alarms: tuple[AlarmName, ...] = Field(
        (),
        description="CloudWatch alarm names that must all be OK "
        "(ALARM fails, INSUFFICIENT_DATA is inconclusive).",
    )
    metrics: MetricThresholds | None = Field(
        None,
        description="Thresholds on the green target group's own ALB metrics (failed-request share, p99 "
        "latency, unhealthy targets), judged over complete metric periods after each shift.",
    )
    recheck_seconds: int = Field(
        30, ge=5, le=3600, description="Seconds to wait before judging again after an inconclusive verdict."
    )
    max_inconclusive: int = Field(
        3,
        ge=0,
        le=100,
        description="Consecutive inconclusive verdicts tolerated at one step before rolling back.",
    )
    max_stopped_tasks: int = Field(
        1,
        ge=0,
        le=1000,
        description="Tasks of the release under test that may stop unexpectedly during a deployment "
        "(essential container exited, failed to start, failed health checks); one more fails back at "
        "once, without waiting for the end of the bake. Stops by the ECS scheduler (scaling, a new "
        "deployment) and by users do not count.",
    )

    @field_validator("alarms")
    @classmethod
    def _unique_alarms(cls, alarms: tuple[str, ...]) -> tuple[str, ...]:
        return _unique(alarms)


class SteadySpec(BaseModel):
    """How long to wait for the green ECS service to reach a steady state before shifting traffic."""

    model_config = _MODEL_CONFIG

    poll_seconds: int = Field(15, ge=1, le=600, description="Seconds between ECS service state polls.")
    timeout_seconds: int = Field(
        900,
        ge=1,
        le=86_400,
        description="Give up (and fail the deployment) if green is not steady after this many seconds; "
        "at least poll_seconds.",
    )

    @field_validator("timeout_seconds")
    @classmethod
    def _not_below_poll(cls, value: int, info: ValidationInfo) -> int:
        poll = info.data.get("poll_seconds")
        if isinstance(poll, int) and value < poll:
            raise ValueError(f"must be at least poll_seconds ({poll}), got {value}")
        return value

    @property
    def max_polls(self) -> int:
        """Polls that fit in the timeout, rounded up."""
        return math.ceil(self.timeout_seconds / self.poll_seconds)


class ServicePairSpec(BaseModel):
    """Two ECS services that take turns serving one endpoint, and how to move traffic between them."""

    model_config = _MODEL_CONFIG

    name: str = Field(
        pattern=PAIR_NAME_PATTERN,
        description="Name of the pair: 1-40 letters, digits, hyphens, underscores, starting with a letter "
        "or digit. It is part of Step Functions execution names.",
    )
    cluster: str = Field(
        description="Name or ARN of the ECS cluster running both services.",
        json_schema_extra=_schema_pattern(CLUSTER_PATTERN),
    )
    services: tuple[ServiceSpec, ServiceSpec] = Field(
        description="Exactly two services with distinct names and target groups; "
        "whichever holds all traffic is live, the other becomes green."
    )
    router: RouterSpec = Field(description="Where the traffic weights live: Route53 records or an ALB.")
    plan: PlanValue = Field(
        description="How traffic moves to green: a CodeDeploy-style preset name "
        "(e.g. Canary10Percent5Minutes, Linear10PercentEvery1Minute, AllAtOnce) "
        "or an object with type all_at_once, canary, linear or steps."
    )
    health: HealthSpec = Field(
        description="The health gate checked before the first shift and after each bake."
    )
    steady: SteadySpec = Field(
        SteadySpec(), description="Waiting for green to become steady in ECS before shifting traffic."
    )
    on_drift: Literal["fail", "hold"] = Field(
        "fail",
        description="What to do when the router's weights are not the ones this deployment last wrote "
        "(someone changed them by hand): fail back to the snapshot (fail), or pause the deployment "
        "(hold) until an operator resumes or aborts it.",
    )
    on_new_release: Literal["supersede", "reject"] = Field(
        "supersede",
        description="What to do when green gets a different release mid-deployment. Either way the "
        "current deployment fails back at once (green no longer runs what was judged) and ends "
        "SUPERSEDED; then supersede starts a deployment of the new release from the restored weights, "
        "reject records the new release REJECTED and leaves it idle.",
    )
    hooks: HooksSpec = Field(
        HooksSpec(),
        description="Lambda hooks per lifecycle stage; each answers SUCCEEDED, FAILED or IN_PROGRESS.",
    )
    test_traffic: TestTrafficSpec | None = Field(
        None,
        description="Point a test listener, rule or record at green before any production traffic (restored "
        "exactly after promotion or rollback).",
    )
    approvals: ApprovalsSpec = Field(ApprovalsSpec(), description="Approval gates at lifecycle stages.")
    after_promotion: AfterPromotionSpec = Field(
        AfterPromotionSpec(), description="A watched bake after 100 %, and scaling the old service to zero."
    )
    capacity: CapacitySpec = Field(
        CapacitySpec(),
        description="Green must be able to carry all traffic before the first production shift.",
    )
    weight_total: int = Field(
        100,
        ge=1,
        le=ALB_MAX_WEIGHT,
        description="Sum of the two weights written during a ramp (at most 255 for route53, 999 for alb). "
        "Every plan step must map to distinct weights with both services above zero.",
    )

    @field_validator("cluster")
    @classmethod
    def _cluster_shape(cls, value: str) -> str:
        if not _CLUSTER_RE.fullmatch(value):
            raise ValueError(
                "must be an ECS cluster name (1-255 letters, digits, hyphens, underscores) "
                f"or an ECS cluster ARN, got {value!r}"
            )
        return value

    @field_validator("services", mode="before")
    @classmethod
    def _exactly_two(cls, value: Any) -> Any:
        if isinstance(value, list | tuple) and len(value) != 2:
            raise ValueError(f"exactly two services are required, got {len(value)}")
        return value

    @field_validator("services")
    @classmethod
    def _distinct_services(cls, services: tuple[ServiceSpec, ServiceSpec]) -> tuple[ServiceSpec, ServiceSpec]:
        first, second = services
        problems = []
        if first.name == second.name:
            problems.append(f"the two services must have different names, both are {first.name!r}")
        if first.target_group_arn == second.target_group_arn:
            problems.append("the two services must use different target groups")
        if problems:
            raise ValueError("; ".join(problems))
        return services

    @field_validator("weight_total")
    @classmethod
    def _weight_total_fits(cls, total: int, info: ValidationInfo) -> int:
        router = info.data.get("router")
        if isinstance(router, Route53RouterSpec) and total > ROUTE53_MAX_WEIGHT:
            raise ValueError(f"must be at most {ROUTE53_MAX_WEIGHT} with a route53 router, got {total}")
        plan_value = info.data.get("plan")
        if plan_value is not None:
            problems = plan_weight_problems(resolve_plan(plan_value).steps, total)
            if problems:
                raise ValueError(f"{'; '.join(problems)}; use a larger weight_total or coarser plan steps")
        return total

    @field_validator("health")
    @classmethod
    def _gate_checks_something(cls, health: HealthSpec, info: ValidationInfo) -> HealthSpec:
        services = info.data.get("services") or ()
        if health.alarms or health.metrics is not None:
            return health
        unjudged = [svc.name for svc in services if not svc.alarms]
        if unjudged or not services:
            who = f" (nothing judges {', '.join(unjudged)}; per-service alarms go in services[].alarms)"
            raise ValueError(
                "configure alarms, metrics or both: a health gate that checks nothing would pass every "
                "deployment" + (who if unjudged else "")
            )
        return health

    @model_validator(mode="after")
    def _router_consistency(self) -> ServicePairSpec:
        problems: list[str] = []
        if isinstance(self.router, Route53RouterSpec):
            for i, svc in enumerate(self.services):
                if svc.set_identifier is None and len(svc.name) > SET_IDENTIFIER_MAX_LENGTH:
                    problems.append(
                        f"services.{i}.set_identifier: required because the service name is longer than "
                        f"{SET_IDENTIFIER_MAX_LENGTH} characters (the Route53 SetIdentifier limit)"
                    )
            first, second = (s.record_set_identifier for s in self.services)
            if first == second:
                problems.append(
                    "services.1.set_identifier: both services resolve to the Route53 set identifier "
                    f"{first!r}"
                )
        else:
            router_match = _LISTENER_ARN_RE.fullmatch(self.router.arn) or _RULE_ARN_RE.fullmatch(
                self.router.arn
            )
            for i, svc in enumerate(self.services):
                if svc.set_identifier is not None:
                    problems.append(f"services.{i}.set_identifier: only used with a route53 router")
                tg_match = _TARGET_GROUP_ARN_RE.fullmatch(svc.target_group_arn)
                if router_match and tg_match and _arn_scope(tg_match) != _arn_scope(router_match):
                    problems.append(
                        f"services.{i}.target_group_arn: is in {_arn_scope(tg_match)} but the router is in "
                        f"{_arn_scope(router_match)}; an ALB can only forward to target groups in its own "
                        "account and region"
                    )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @model_validator(mode="after")
    def _few_enough_alarms(self) -> ServicePairSpec:
        """Registration writes the pair with one item per alarm in one transaction (100 items at most)."""
        names = {*self.health.alarms, *(a for svc in self.services for a in svc.alarms)}
        if len(names) > MAX_ALARMS:
            raise ValueError(
                f"health.alarms: at most {MAX_ALARMS} distinct alarms in all (health.alarms and "
                f"services[].alarms together), got {len(names)}; use a composite alarm to combine them"
            )
        return self

    @model_validator(mode="after")
    def _fits_one_execution(self) -> ServicePairSpec:
        """Refuse a spec whose worst case could not run to its end in one Step Functions execution."""
        problems = self.execution_budget().problems()
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def execution_budget(self) -> ExecutionBudget:
        """Worst-case history events and duration of one deployment of this spec."""
        plan = self.resolved_plan()
        events, seconds = self._gates_budget(len(plan.steps))
        return execution_budget(
            plan,
            max_inconclusive=self.health.max_inconclusive,
            recheck_seconds=self.health.recheck_seconds,
            steady_polls=self.steady.max_polls,
            steady_poll_seconds=self.steady.poll_seconds,
            route53=isinstance(self.router, Route53RouterSpec),
            extra_events=events,
            extra_seconds=seconds,
        )

    def _gates_budget(self, steps: int) -> tuple[int, int]:
        """Worst-case history events and seconds of the hooks, approvals, capacity wait and watched bake.

        A hook that keeps answering IN_PROGRESS is asked at most ``MAX_HOOK_CHECKS`` + 2 times (each a
        trip around the hook loop: Task, Choice, Wait) and for at most its ``timeout_seconds`` (which
        counts the time its answers took) plus one invocation's Task timeout; a stage with hooks costs
        one more health-check trip. An approval is a Wait of its ``timeout_seconds`` and two
        health-check trips. The capacity wait polls every ``CAPACITY_POLL_SECONDS``; the watched bake
        after promotion is one bake with every inconclusive recheck.
        """
        loop = LOOP_EVENTS
        events = seconds = 0
        for stage in HOOK_STAGES:
            hooks = self.hooks.of(stage)
            if not hooks:
                continue
            runs = steps if stage == "after_each_shift" else 1
            for hook in hooks:
                # floor-length waits, one cut to what is left of the timeout, then the last answer
                checks = min(MAX_HOOK_CHECKS, hook.timeout_seconds) + 2
                events += runs * checks * loop
                # Each answer's time counts against timeout_seconds, so only the last can run past it.
                seconds += runs * (hook.timeout_seconds + HOOK_CALL_SECONDS)
            events += runs * loop
        approvals = [self.approvals.before_production_traffic, self.approvals.after_production_traffic]
        for approval in [*approvals, *self.step_approvals().values()]:
            if approval is not None:
                events += 2 * loop
                seconds += approval.timeout_seconds + 2 * CALL_SECONDS
        if self.test_traffic is not None:
            events += loop
            seconds += CALL_SECONDS
        polls = -(-self.capacity.wait_seconds // CAPACITY_POLL_SECONDS) + 1
        events += polls * loop
        seconds += self.capacity.wait_seconds + polls * CALL_SECONDS
        if self.after_promotion.bake_seconds:
            checks = 2 + self.health.max_inconclusive
            events += checks * loop
            seconds += (
                self.after_promotion.bake_seconds
                + self.health.max_inconclusive * self.health.recheck_seconds
                + checks * CALL_SECONDS
            )
        return events, seconds

    @model_validator(mode="after")
    def _gates_fit_the_router(self) -> ServicePairSpec:
        test = self.test_traffic
        if test is None:
            return self
        problems: list[str] = []
        if isinstance(self.router, Route53RouterSpec):
            if test.record_name is None:
                problems.append("test_traffic: with a route53 router, set record_name (a test record)")
            elif (
                _DNS_LABEL_RE is not None
                and test.record_name.lower().rstrip(".") + "." == self.router.record_name
            ):
                problems.append("test_traffic.record_name: must not be the production record")
        else:
            if test.record_name is not None:
                problems.append("test_traffic: with an alb router, set listener_arn or rule_arn")
            for field, value, pattern in (
                ("listener_arn", test.listener_arn, _LISTENER_ARN_RE),
                ("rule_arn", test.rule_arn, _RULE_ARN_RE),
            ):
                if value is not None and not pattern.fullmatch(value):
                    problems.append(
                        f"test_traffic.{field}: must be an ALB {field.split('_')[0]} ARN, got {value!r}"
                    )
                if value is not None and value == self.router.arn:
                    problems.append(f"test_traffic.{field}: must not be the production {field.split('_')[0]}")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def service_names(self) -> tuple[str, str]:
        """Names of both services, in spec order."""
        return (self.services[0].name, self.services[1].name)

    def health_for(self, green: str) -> HealthSpec:
        """The gate that judges ``green``: the pair's alarms plus that service's own."""
        alarms = tuple(dict.fromkeys((*self.health.alarms, *self.service(green).alarms)))
        return self.health.model_copy(update={"alarms": alarms})

    def resolved_plan(self) -> Plan:
        """The plan as steps and bake time."""
        return resolve_plan(self.plan)

    def step_approvals(self) -> dict[int, ApprovalSpec]:
        """Approval gates of a ``steps`` plan, by the index of the step whose shift they hold."""
        return self.plan.approvals() if isinstance(self.plan, StepsPlanSpec) else {}

    def service(self, name: str) -> ServiceSpec:
        """The service called ``name``."""
        for svc in self.services:
            if svc.name == name:
                return svc
        raise KeyError(
            f"service {name!r} is not part of service pair {self.name!r} "
            f"(services: {', '.join(self.service_names)})"
        )

    def other(self, name: str) -> ServiceSpec:
        """The service in the pair that is not ``name``."""
        current = self.service(name)
        return self.services[1] if current is self.services[0] else self.services[0]


def _arn_scope(match: re.Match[str]) -> str:
    return f"{match['partition']}/{match['region']}/{match['account']}"


_TAGGED_UNION_FIELDS: dict[str, tuple[str, ...]] = {"router": ROUTER_TAGS, "plan": PLAN_TAGS}


def _path_part(part: object) -> str:
    """A location part as the user wrote it; a key that would garble the ``path: message`` line (empty,
    holding ``: `` or a line break, or with whitespace at either end) is quoted."""
    text = str(part)
    garbles = not text or ": " in text or text != text.strip() or any(not c.isprintable() for c in text)
    return json.dumps(text, ensure_ascii=False) if garbles else text


def format_validation_error(exc: ValidationError) -> list[str]:
    """One ``<dotted.field.path>: <message>`` line per error.

    Pydantic inserts the union tag of a discriminated union into error locations
    (``plan.steps.steps``); those are removed so paths match the YAML the user wrote.
    Errors raised by whole-spec checks already carry their own paths.
    """
    lines: list[str] = []
    for error in exc.errors(include_url=False):
        loc = list(error["loc"])
        if len(loc) >= 2 and loc[0] in _TAGGED_UNION_FIELDS and loc[1] in _TAGGED_UNION_FIELDS[str(loc[0])]:
            del loc[1]
        if len(loc) >= 4 and loc[0] == "plan" and loc[1] == "steps" and loc[3] in STEP_TAGS:
            del loc[3]
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc.append("type")
        message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        path = ".".join(_path_part(part) for part in loc)
        if not path and error["type"] == "value_error":
            lines.extend(message.splitlines())
        else:
            lines.extend(f"{path or 'spec'}: {line}" for line in message.splitlines())
    return lines


def spec_warnings(spec: ServicePairSpec) -> list[str]:
    """What a valid spec may not do as its author expects, one ``<field>: <why>`` line each.

    Warnings, not errors: a bake shorter than the metric rule needs still ends (inconclusive
    verdicts are rechecked, then fail), and sub-minute periods are right for the emulator.
    """
    metrics = spec.health.metrics
    if metrics is None:
        return []
    found: list[str] = []
    bake = spec.resolved_plan().bake_seconds
    health = spec.health
    periods = f"{metrics.min_periods} complete {metrics.period_seconds} s metric period(s)"
    timing = (
        f"settle_seconds {metrics.settle()} + up to one period to the next boundary + "
        f"{metrics.min_periods} x {metrics.period_seconds} s + lag_seconds {metrics.lag_seconds}"
    )
    last_check = bake + health.max_inconclusive * health.recheck_seconds
    if last_check < metrics.earliest_verdict_seconds:
        found.append(
            f"plan.bake_seconds: the health gate can never see health.metrics.min_periods = {periods} "
            f"after a shift: that takes at least {metrics.earliest_verdict_seconds} s "
            f"({metrics.sure_verdict_seconds} s wherever the shift falls: {timing}), but a step's last "
            f"recheck comes {last_check} s after it (bake {bake} s + {health.max_inconclusive} x "
            f"{health.recheck_seconds} s); every deployment would fail as inconclusive. Raise "
            f"plan.bake_seconds to {metrics.sure_verdict_seconds} or more"
        )
    elif bake < metrics.sure_verdict_seconds:
        found.append(
            f"plan.bake_seconds: bakes of {bake} s are shorter than the {metrics.sure_verdict_seconds} s "
            f"the health gate needs to see health.metrics.min_periods = {periods} wherever the shift "
            f"falls ({timing}); a step's first verdict may be inconclusive and wait for rechecks (every "
            f"{health.recheck_seconds} s, at most {health.max_inconclusive}). Raise plan.bake_seconds to "
            f"{metrics.sure_verdict_seconds} or more"
        )
    if metrics.period_seconds < METRIC_PERIOD_SECONDS:
        found.append(
            f"health.metrics.period_seconds: {metrics.period_seconds} s periods are shorter than the "
            f"minute ALB publishes its metrics at; in AWS use {METRIC_PERIOD_SECONDS} (or a multiple): "
            "shorter periods only suit an emulator whose clock runs faster than the functions'"
        )
    elif metrics.lag_seconds < METRIC_PERIOD_SECONDS:
        found.append(
            f"health.metrics.lag_seconds: {metrics.lag_seconds} s may judge periods CloudWatch does not "
            f"have all datapoints of yet (ALB's arrive a minute or two after their minute; the default "
            f"is {METRIC_LAG_SECONDS})"
        )
    return found


def parse_spec(data: Mapping[str, Any]) -> ServicePairSpec:
    """Validate a spec document, raising :class:`SpecError` that lists every problem."""
    if not isinstance(data, Mapping):
        raise SpecError(f"spec: must be a mapping of fields, got {type(data).__name__}")
    try:
        return ServicePairSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise SpecError("\n".join(format_validation_error(exc))) from exc


class _SpecLoader(yaml.SafeLoader):
    """Safe loader that rejects duplicate keys instead of silently keeping the last one."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
    return loader.construct_mapping(node, deep=True)


_SpecLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def load_spec_yaml(text: str) -> ServicePairSpec:
    """Parse and validate a YAML spec; YAML syntax problems are reported as :class:`SpecError` too."""
    try:
        data = yaml.load(text, Loader=_SpecLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = ", ".join(part for part in (exc.context, exc.problem) if part) or "malformed document"
        raise SpecError(f"spec: invalid YAML: {problem}{where}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"spec: invalid YAML: {exc}") from exc
    if data is None:
        raise SpecError("spec: the document is empty")
    return parse_spec(data)


def spec_json_schema() -> dict[str, Any]:
    """The published JSON Schema of a spec file."""
    schema = ServicePairSpec.model_json_schema(mode="validation")
    schema.pop("title", None)
    return {"$schema": JSON_SCHEMA_DIALECT, "title": SPEC_SCHEMA_TITLE, **schema}
