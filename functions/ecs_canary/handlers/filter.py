"""EventBridge target for ECS "Task State Change" events: start one deployment per new release."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from ecs_canary import aws
from ecs_canary.events import EcsTaskStateChangeEvent
from ecs_canary.flow import trigger
from ecs_canary.spec import format_validation_error
from ecs_canary.store import Store

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path="id")
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        parsed = parse(event=event, model=EcsTaskStateChangeEvent)
    except ValidationError as err:
        # Retrying cannot fix a malformed event: say which fields are wrong and drop it.
        reason = "malformed ECS Task State Change event: " + "; ".join(format_validation_error(err))
        logger.error(reason)
        metrics.add_metric(name="MalformedEvents", unit=MetricUnit.Count, value=1)
        return {"action": "rejected", "reason": reason}
    arn = context.invoked_function_arn.split(":")
    result = trigger.on_task_running(
        Store(),
        aws.client("stepfunctions"),
        aws.client("ecs"),
        os.environ["STATE_MACHINE_ARN"],
        parsed.detail,
        region=arn[3] if len(arn) > 4 else aws.region(),
        account=arn[4] if len(arn) > 4 else None,
    )
    metrics.add_metric(name=f"Events{result.action.capitalize()}", unit=MetricUnit.Count, value=1)
    logger.info(result.reason, extra=result.to_dict())
    return result.to_dict()
