"""State "Roll back": record the intent, restore the snapshot, close the record (owner only)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from ecs_canary.events import RollbackInput
from ecs_canary.flow import rollback
from ecs_canary.store import Store

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=RollbackInput)
def handler(event: RollbackInput, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(deployment_id=event.deployment_id, pair=event.pair)
    result = rollback.fail_back(
        Store(), event.pair, event.deployment_id, execution=event.execution, error=event.error
    )
    metrics.add_dimension(name="Pair", value=event.pair)
    metrics.add_metric(name="Rollbacks", unit=MetricUnit.Count, value=1)
    metrics.add_metric(
        name=f"Deployments{result['status'].title().replace('_', '')}", unit=MetricUnit.Count, value=1
    )
    logger.warning("rolled back", extra=result)
    return result
