"""EventBridge target for Step Functions "Execution Status Change" (ABORTED, TIMED_OUT, FAILED).

An execution stopped in the console or timed out never reaches "Roll back"; this restores its
traffic and closes its record. For executions that closed their record themselves it is a no-op.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from ecs_canary.events import ExecutionStatusChangeEvent
from ecs_canary.flow import rollback
from ecs_canary.store import Store

logger = Logger()
tracer = Tracer()


@logger.inject_lambda_context(correlation_id_path="id")
@tracer.capture_lambda_handler
@event_parser(model=ExecutionStatusChangeEvent)
def handler(event: ExecutionStatusChangeEvent, context: LambdaContext) -> dict[str, Any]:
    result = rollback.reconcile(Store(), event.detail)
    logger.info("execution ended", extra={"execution": event.detail.name, **result})
    return result
