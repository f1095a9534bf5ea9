"""State "Wait for green to be steady": one poll of green's tasks and targets."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from ecs_canary.events import SteadyInput
from ecs_canary.flow import steps
from ecs_canary.store import Store

logger = Logger()
tracer = Tracer()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@event_parser(model=SteadyInput)
def handler(event: SteadyInput, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(deployment_id=event.deployment.deployment_id, pair=event.deployment.pair)
    result = steps.check_green_steady(Store(), event)
    logger.info(result["reason"], extra={"steady": result["steady"], "polls": result["polls"]})
    return result
