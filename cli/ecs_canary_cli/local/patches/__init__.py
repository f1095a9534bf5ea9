"""Where moto 5.2.5 falls short of the AWS behaviour ecs-canary relies on, one function per gap.

Organised as moto organises its backends: one module per AWS service, each holding the named
``patch`` functions for that service. Every patch is idempotent and generic: it stands in for one
documented AWS behaviour (its docstring says which), never for anything of ecs-canary's own (no
handler, state, table or service names). ``apply_all`` installs them in :data:`PATCHES` order and
starts the background workers they need.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..clock import DelayedExecutor, EmulatorClock
from ..lambda_runtime import InProcessLambdaRuntime
from . import (
    awslambda,
    cloudformation,
    cloudwatch,
    dynamodb,
    ec2,
    ecs,
    elbv2,
    events,
    iam,
    route53,
    sqs,
    stepfunctions,
)
from ._core import CONFIG, EmulatorOptions, _sqs_send

LOG = logging.getLogger(__name__)

__all__ = ["CONFIG", "PATCHES", "EmulatorOptions", "apply_all", "stop_workers", "wait_for_idle"]


PATCHES: tuple[Callable[[], None], ...] = (
    cloudformation.transform_serverless_templates,
    iam.attach_managed_policies_from_cloudformation,
    iam.authorise_role_session_calls,
    iam.lambda_execution_role_credentials,
    iam.state_machine_role_credentials,
    stepfunctions.state_machine_definitions_from_cloudformation,
    sqs.support_sqs_queue_policies,
    dynamodb.isolate_dynamodb_requests,
    awslambda.name_lambda_permissions,
    awslambda.run_lambda_handlers_in_process,
    awslambda.ship_lambda_logs_and_embedded_metrics,
    awslambda.lambda_event_invoke_configs_from_cloudformation,
    awslambda.publish_immutable_lambda_versions,
    awslambda.address_lambda_aliases,
    awslambda.read_lambda_invoke_qualifier,
    awslambda.lambda_event_invoke_configs_per_qualifier,
    awslambda.lambda_versions_from_cloudformation,
    awslambda.lambda_aliases_from_cloudformation,
    cloudformation.update_stack_resources_in_dependency_order,
    cloudformation.retain_resources_removed_by_stack_updates,
    events.deliver_eventbridge_to_lambda,
    events.deliver_full_envelope_to_sqs,
    events.skip_disabled_event_rules,
    events.refuse_aws_sources_in_put_events,
    events.fire_scheduled_rules,
    stepfunctions.emit_step_functions_status_events,
    stepfunctions.describe_the_state_machine_an_execution_runs,
    stepfunctions.scale_wait_states,
    stepfunctions.scale_retry_backoff,
    route53.propagate_route53_changes,
    ec2.give_network_interfaces_private_dns_names,
    ecs.run_ecs_service_deployments,
    ecs.list_tasks_like_ecs,
    ecs.stop_tasks_whose_essential_container_exits,
    ecs.replace_tasks_failing_load_balancer_health_checks,
    elbv2.apply_target_health_overrides,
    cloudwatch.cloudwatch_alarms_from_cloudformation,
    cloudwatch.evaluate_cloudwatch_alarms,
    cloudwatch.publish_set_alarm_state_changes,
    cloudwatch.percentile_statistics_in_metric_queries,
)

"""Every patch, in installation order (a later patch may wrap what an earlier one installed)."""


def apply_all(clock: EmulatorClock, endpoint: str, options: EmulatorOptions) -> None:
    """Install every patch and (re)start the workers they use, reading ``clock`` and ``options``."""
    stop_workers()
    stepfunctions.reset_status_events()
    CONFIG.clock = clock
    CONFIG.endpoint = endpoint
    CONFIG.options = options
    CONFIG.events = DelayedExecutor(clock, "eventbridge")
    CONFIG.lambdas = DelayedExecutor(clock, "lambda-async")
    CONFIG.ecs = DelayedExecutor(clock, "ecs-scheduler", workers=1)
    CONFIG.runtime = InProcessLambdaRuntime(endpoint, CONFIG.lambdas, _send_to_destination)
    for patch in PATCHES:
        patch()


def _send_to_destination(target_arn: str, body: str) -> None:
    """Lambda's asynchronous-invocation destinations (SQS queues; other kinds are logged)."""
    if ":sqs:" in target_arn:
        _sqs_send(target_arn, body)
    else:
        LOG.warning("destination %s is not emulated; record dropped", target_arn)


def wait_for_idle(timeout: float = 30.0) -> bool:
    """Wait until no delivery, retry or scheduled task start is queued or running."""
    deadline = time.monotonic() + timeout
    while True:
        if all(e.idle() for e in CONFIG.executors()):
            time.sleep(0.02)
            if all(e.idle() for e in CONFIG.executors()):
                return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        for executor in CONFIG.executors():
            executor.wait_for_idle(min(remaining, 0.5))


def stop_workers() -> None:
    """Stop the background workers of the last ``apply_all`` (the patches stay installed)."""
    cloudwatch.stop_alarm_evaluator()
    events.stop_scheduled_rules()
    for executor in CONFIG.executors():
        executor.stop()
    CONFIG.events = CONFIG.lambdas = CONFIG.ecs = None
    if CONFIG.runtime is not None:
        CONFIG.runtime.close()
        CONFIG.runtime = None
