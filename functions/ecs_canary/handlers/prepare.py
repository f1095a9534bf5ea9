"""State "Load spec and snapshot traffic"."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from ecs_canary.events import PrepareInput
from ecs_canary.flow import steps
from ecs_canary.store import Store

logger = Logger()
tracer = Tracer()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@event_parser(model=PrepareInput)
def handler(event: PrepareInput, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(deployment_id=event.input.deployment_id, pair=event.input.pair)
    state = steps.prepare(Store(), event)
    logger.info("snapshot taken", extra={"snapshot": state["deployment"]["snapshot"]})
    return state
