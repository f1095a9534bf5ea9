"""Scheduled sweeper: close deployments whose execution ended without closing them, free their locks."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from ecs_canary.flow import sweeper
from ecs_canary.store import Store

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    swept = sweeper.sweep(Store())
    for item in swept:
        logger.info(item.reason, extra=item.to_dict())
        if item.action == "rollback_failed":
            metrics.add_metric(name="RollbacksFailed", unit=MetricUnit.Count, value=1)
        elif item.action == "closed":
            metrics.add_metric(name="SweptDeployments", unit=MetricUnit.Count, value=1)
    return {"swept": [s.to_dict() for s in swept]}
