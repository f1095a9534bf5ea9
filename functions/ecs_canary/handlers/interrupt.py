"""EventBridge target for CloudWatch alarm and ECS task-stopped events: end bakes in seconds.

An alarm a deployment gates on going into ALARM, or green's tasks of the release under test
stopping unexpectedly beyond the spec's limit, records the intent to fail back and ends the owner
execution's watch, so it rolls back now instead of at the end of its bake.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from ecs_canary.events import AlarmStateChangeEvent, EcsTaskStateChangeEvent
from ecs_canary.flow import interrupts
from ecs_canary.spec import format_validation_error
from ecs_canary.store import Store

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path="id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    if not isinstance(event, dict):
        reason = f"malformed event: expected a JSON object, got {type(event).__name__}"
        logger.error(reason)
        metrics.add_metric(name="MalformedEvents", unit=MetricUnit.Count, value=1)
        return {"action": "rejected", "reason": reason}
    try:
        if event.get("source") == "aws.cloudwatch":
            alarm = parse(event=event, model=AlarmStateChangeEvent)
            outcomes = interrupts.on_alarm(Store(), alarm.detail)
        else:
            task = parse(event=event, model=EcsTaskStateChangeEvent)
            outcomes = [interrupts.on_task_stopped(Store(), task.detail)]
    except ValidationError as err:
        reason = f"malformed {event.get('detail-type', 'event')}: " + "; ".join(format_validation_error(err))
        logger.error(reason)
        metrics.add_metric(name="MalformedEvents", unit=MetricUnit.Count, value=1)
        return {"action": "rejected", "reason": reason}
    for outcome in outcomes:
        if outcome.action == "rolling_back":
            metrics.add_metric(name="Interrupts", unit=MetricUnit.Count, value=1)
        logger.info(outcome.reason, extra=outcome.to_dict())
    return {"outcomes": [o.to_dict() for o in outcomes]}
