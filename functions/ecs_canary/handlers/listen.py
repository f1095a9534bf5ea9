"""State "Watch for alarms, crashes, new releases and operators": store the task token and return.

The state waits on the token (``.waitForTaskToken``); the function itself returns at once, so no
Lambda runs while the rollout bakes.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from ecs_canary.events import ListenInput
from ecs_canary.flow import steps
from ecs_canary.store import Store

logger = Logger()
tracer = Tracer()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@event_parser(model=ListenInput)
def handler(event: ListenInput, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(deployment_id=event.deployment.deployment_id, pair=event.deployment.pair)
    result = steps.listen(Store(), event)
    logger.info("watching", extra=result)
    return result
