"""State "Promote green": record success, release the lock, swap the pair's roles."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from ecs_canary.events import AdvanceInput
from ecs_canary.flow import steps
from ecs_canary.store import Store

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=AdvanceInput)
def handler(event: AdvanceInput, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(deployment_id=event.deployment.deployment_id, pair=event.deployment.pair)
    result = steps.promote(Store(), event)
    metrics.add_dimension(name="Pair", value=event.deployment.pair)
    metrics.add_metric(name="DeploymentsSucceeded", unit=MetricUnit.Count, value=1)
    logger.info("promoted", extra=result)
    return result
