"""Operator commands from the CLI: abort, pause, resume, promote a pair's active deployment.

Invoked synchronously (``lambda:InvokeFunction``); ``by`` is the caller's identity as STS gave it
to the CLI. A command that does not apply is answered ``accepted: false`` with the reason.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from ecs_canary.errors import CommandRefused, DeploymentNotFound, UnknownServicePair
from ecs_canary.events import CommandInput
from ecs_canary.flow import interrupts
from ecs_canary.spec import format_validation_error
from ecs_canary.store import Store

logger = Logger()
tracer = Tracer()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        command = parse(event=event, model=CommandInput)
    except ValidationError as err:
        return {"accepted": False, "reason": "malformed command: " + "; ".join(format_validation_error(err))}
    logger.append_keys(pair=command.pair, command=command.command, by=command.by)
    try:
        result = interrupts.on_command(Store(), command)
    except (CommandRefused, UnknownServicePair, DeploymentNotFound) as exc:
        logger.info("refused", extra={"reason": str(exc)})
        return {"accepted": False, "command": command.command, "pair": command.pair, "reason": str(exc)}
    logger.info("accepted", extra=result)
    return result
