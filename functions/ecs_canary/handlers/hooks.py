"""States "Run the stage's hooks" and "Run the rollback hooks": invoke the current hook once."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from ecs_canary.events import HookInput
from ecs_canary.flow import hooks
from ecs_canary.store import Store

logger = Logger()
tracer = Tracer()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@event_parser(model=HookInput)
def handler(event: HookInput, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(deployment_id=event.deployment_id, pair=event.pair, stage=event.hooks.stage)
    cursor = hooks.run_hooks(Store(), event)
    logger.info("hooks", extra={"cursor": cursor})
    return cursor
