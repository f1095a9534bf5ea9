"""State "Record that the rollback failed": ROLLBACK_FAILED with the actual weights, alarmed."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from ecs_canary.events import RollbackFailedInput
from ecs_canary.flow import rollback
from ecs_canary.store import Store

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=RollbackFailedInput)
def handler(event: RollbackFailedInput, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(deployment_id=event.deployment_id, pair=event.pair)
    result = rollback.record_rollback_failed(
        Store(),
        event.pair,
        event.deployment_id,
        execution=event.execution,
        error=event.error,
        rollback_error=event.rollback_error,
    )
    if result["status"] == "ROLLBACK_FAILED":
        # The stack's RollbackFailedAlarm watches this metric (a record another path closed, say
        # FAILED after all, is no rollback failure).
        metrics.add_metric(name="RollbacksFailed", unit=MetricUnit.Count, value=1)
        logger.error("rollback failed", extra=result)
    else:
        logger.warning("the deployment was already closed", extra=result)
    return result
