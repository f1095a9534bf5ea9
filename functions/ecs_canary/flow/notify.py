"""Lifecycle events and metrics: every transition of a deployment, on EventBridge and as EMF metrics.

Each transition is put on the default event bus with source ``ecs-canary``, detail-type
``Deployment <Transition>`` and a versioned ``detail`` (:class:`LifecycleEvent`, whose JSON Schema
``ecs-canary events schema`` prints), so a rule can forward it to SNS, a chat channel or a pager.
Per-pair metrics (outcomes, rollbacks, time to roll back, time per step, hook durations, green's
share) go out in CloudWatch's embedded metric format on the function's log.

Publishing is best effort by design: a deployment never fails because a notification could not
be sent. A failure is logged and counted (metric ``EventsNotPublished``), so it is not silent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from pydantic import BaseModel, ConfigDict, Field

from ecs_canary import aws
from ecs_canary.store import Deployment, now_iso

__all__ = [
    "DETAIL_TYPES",
    "EVENT_SCHEMA_TITLE",
    "IMPORTANT",
    "SCHEMA_VERSION",
    "SOURCE",
    "LifecycleEvent",
    "MetricUnit",
    "emit",
    "event_json_schema",
    "metric",
]

logger = Logger(child=True)

SOURCE = "ecs-canary"
SCHEMA_VERSION = "1"
EVENT_SCHEMA_TITLE = "ecs-canary lifecycle event detail"
NAMESPACE = "EcsCanary"

Transition = Literal[
    "started",
    "steady",
    "test_traffic",
    "shifted",
    "hook_succeeded",
    "hook_failed",
    "awaiting_approval",
    "approved",
    "rejected",
    "paused",
    "resumed",
    "drift",
    "interrupted",
    "rolled_back",
    "succeeded",
    "failed",
    "aborted",
    "timed_out",
    "superseded",
    "rollback_failed",
    "scaled_down",
    "release_rejected",
]

DETAIL_TYPES: dict[str, str] = {
    "started": "Deployment Started",
    "steady": "Deployment Green Steady",
    "test_traffic": "Deployment Test Traffic Shifted",
    "shifted": "Deployment Traffic Shifted",
    "hook_succeeded": "Deployment Hook Succeeded",
    "hook_failed": "Deployment Hook Failed",
    "awaiting_approval": "Deployment Awaiting Approval",
    "approved": "Deployment Approved",
    "rejected": "Deployment Rejected",
    "paused": "Deployment Paused",
    "resumed": "Deployment Resumed",
    "drift": "Deployment Traffic Drift",
    "interrupted": "Deployment Interrupted",
    "rolled_back": "Deployment Rolled Back",
    "succeeded": "Deployment Succeeded",
    "failed": "Deployment Failed",
    "aborted": "Deployment Aborted",
    "timed_out": "Deployment Timed Out",
    "superseded": "Deployment Superseded",
    "rollback_failed": "Deployment Rollback Failed",
    "release_rejected": "Deployment Release Rejected",
    "scaled_down": "Deployment Old Service Scaled Down",
}
"""detail-type of each transition (what an EventBridge rule matches on besides ``detail.transition``)."""

IMPORTANT = (
    "awaiting_approval",
    "drift",
    "interrupted",
    "succeeded",
    "failed",
    "aborted",
    "timed_out",
    "superseded",
    "rollback_failed",
    "hook_failed",
)
"""Transitions the stack's optional notification rule forwards to ``NotificationTopicArn``."""


class LifecycleEvent(BaseModel):
    """The ``detail`` of every ecs-canary event (version 1). New fields may be added; none removed."""

    model_config = ConfigDict(extra="forbid")

    version: Literal["1"] = Field(description="Schema version of this detail; bumped on breaking changes.")
    transition: Transition = Field(description="What happened.")
    pair: str = Field(description="The service pair.")
    deployment_id: str = Field(description="The deployment (also the Step Functions execution name).")
    service: str = Field(description="The service receiving the release (green).")
    live_service: str = Field(description="The service holding the traffic before the deployment.")
    release: dict[str, str] = Field(description="service, deployment (ECS deployment id), task_definition.")
    status: str = Field(description="The deployment record's status after the transition.")
    step_index: int | None = Field(None, description="Index of the current plan step (-1 or null: none yet).")
    percent: int | None = Field(None, description="Green's planned share at the current step, in percent.")
    weights: dict[str, int] | None = Field(None, description="The router's weights as last recorded.")
    reason: str | None = Field(None, description="Why (for failures, interrupts, commands).")
    by: str | None = Field(None, description="Who caused it: an operator's identity, an alarm, ecs-canary.")
    at: str = Field(description="When, ISO 8601 UTC.")
    execution_arn: str | None = Field(None, description="The deployment's execution.")
    data: dict[str, Any] = Field(
        default_factory=dict,
        description="Transition-specific facts (hook name and result, approval timeout...).",
    )


def event_json_schema() -> dict[str, Any]:
    """The published JSON Schema of the events' ``detail``."""
    schema = LifecycleEvent.model_json_schema(mode="serialization")
    schema.pop("title", None)
    # Fields may be added within a version: a consumer validating with this schema must accept them.
    schema["additionalProperties"] = True
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": EVENT_SCHEMA_TITLE,
        **schema,
    }


def _detail(
    transition: Transition, record: Deployment, *, reason: str | None, by: str | None, data: Mapping[str, Any]
) -> LifecycleEvent:
    return LifecycleEvent(
        version=SCHEMA_VERSION,
        transition=transition,
        pair=record.pair,
        deployment_id=record.deployment_id,
        service=record.service,
        live_service=record.live_service,
        release=record.release.to_dict(),
        status=record.status.value,
        step_index=record.step_index,
        percent=record.percent,
        weights=record.weights,
        reason=reason if reason is not None else record.reason,
        by=by,
        at=now_iso(),
        execution_arn=record.execution_arn,
        data=dict(data),
    )


def emit(
    transition: Transition,
    record: Deployment,
    *,
    reason: str | None = None,
    by: str | None = None,
    events: Any = None,
    **data: Any,
) -> bool:
    """Put one lifecycle event on the default bus; False (logged and counted) when that failed."""
    detail = _detail(transition, record, reason=reason, by=by, data=data)
    client = events if events is not None else aws.client("events")
    try:
        response = client.put_events(
            Entries=[
                {
                    "Source": SOURCE,
                    "DetailType": DETAIL_TYPES[transition],
                    "Resources": [record.execution_arn] if record.execution_arn else [],
                    "Detail": json.dumps(detail.model_dump(mode="json")),
                }
            ]
        )
        failed = int(response.get("FailedEntryCount", 0))
    except Exception as exc:  # best effort: never fail a deployment over a notification
        logger.warning("lifecycle event not published", extra={"transition": transition, "error": str(exc)})
        failed = 1
    if failed:
        metric("EventsNotPublished", 1, record.pair)
        return False
    return True


def metric(name: str, value: float, pair: str, unit: MetricUnit = MetricUnit.Count) -> None:
    """One per-pair metric in CloudWatch's embedded metric format, flushed at once."""
    with single_metric(name=name, unit=unit, value=value, namespace=NAMESPACE) as one:
        one.add_dimension(name="Pair", value=pair)
