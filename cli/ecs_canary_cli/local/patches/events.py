"""EventBridge: rules deliver to Lambda targets at least once; disabled rules match nothing."""

from __future__ import annotations

import copy
import functools
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, cast

from moto.awslambda.utils import get_backend as get_lambda_backend
from moto.events.models import Rule
from moto.events.utils import EventTemplateParser
from moto.utilities.arns import parse_arn

from ._core import (
    CONFIG,
    _install,
    _iso,
    _sqs_send,
)

LOG = logging.getLogger(__name__)


# -- EventBridge ----------------------------------------------------------------------------------


def _target_input(target: Mapping[str, Any], event: dict[str, Any]) -> str:
    """What EventBridge sends a target: Input, InputPath, InputTransformer, or the whole event."""
    if "Input" in target and target["Input"] is not None:
        return str(target["Input"])
    if target.get("InputPath"):
        value: Any = event
        for part in str(target["InputPath"]).lstrip("$").strip(".").split("."):
            if part:
                value = value.get(part) if isinstance(value, dict) else None
        return json.dumps(value)
    transformer = target.get("InputTransformer")
    if transformer:
        parsed = EventTemplateParser.parse(
            input_template=transformer.get("InputTemplate"),
            input_paths_map=transformer.get("InputPathsMap", {}),
            event=cast(Any, event),
        )
        return parsed if isinstance(parsed, str) else json.dumps(parsed)
    return json.dumps(event)


def _events_may_invoke(fn: Any, rule_arn: str) -> bool:
    """Whether the function's resource policy lets EventBridge (for this rule) invoke it."""
    statements = getattr(getattr(fn, "policy", None), "statements", None) or []
    for statement in statements:
        principal = statement.get("Principal", {})
        service = principal.get("Service") if isinstance(principal, dict) else principal
        services = service if isinstance(service, list) else [service]
        if "events.amazonaws.com" not in services or statement.get("Effect", "Allow") != "Allow":
            continue
        source = (statement.get("Condition") or {}).get("ArnLike", {}).get("AWS:SourceArn")
        if source is None:
            return True
        pattern = str(source).replace("*", "")
        if rule_arn == source or (str(source).endswith("*") and rule_arn.startswith(pattern)):
            return True
    return False


def _deliver_to_lambda(rule: Any, target: Mapping[str, Any], event: dict[str, Any]) -> None:
    """One event for one target, retried as the target's RetryPolicy says, then dead-lettered."""
    executor = CONFIG.events
    if executor is None:
        return
    clock = CONFIG.clock
    policy = target.get("RetryPolicy") or {}
    max_attempts = int(policy.get("MaximumRetryAttempts", 185))
    max_age = float(policy.get("MaximumEventAgeInSeconds", 86400))
    payload = _target_input(target, event)
    first = clock.monotonic()
    rule_arn = rule.arn
    function_arn = target["Arn"]

    def attempt(number: int) -> None:

        arn = parse_arn(function_arn)
        error_code, error_message = "", ""
        try:
            backend = get_lambda_backend(arn.account, arn.region)
            fn = backend.get_function(function_arn)
            if not _events_may_invoke(fn, rule_arn):
                error_code = "NO_PERMISSIONS"
                error_message = (
                    f"Lambda function policy does not allow events.amazonaws.com to invoke {function_arn}"
                )
            else:
                backend.invoke(function_arn, None, payload, {"x-amz-invocation-type": "Event"}, {})
                return
        except Exception as exc:
            error_code = getattr(exc, "error_type", None) or type(exc).__name__
            error_message = getattr(exc, "message", None) or str(exc)
            if error_code == "ResourceNotFoundException":
                error_code = "RESOURCE_NOT_FOUND"
        age = clock.monotonic() - first
        delay = min(2.0**number, 300.0) * CONFIG.options.rng.uniform(0.5, 1.0)
        if number < max_attempts and age + delay <= max_age:
            executor.submit(lambda: attempt(number + 1), delay)
            return
        exhausted = "MaximumRetryAttempts" if number >= max_attempts else "MaximumEventAgeInSeconds"
        dlq = (target.get("DeadLetterConfig") or {}).get("Arn")
        LOG.warning(
            "EventBridge gave up on %s for %s: %s %s", function_arn, rule_arn, error_code, error_message
        )
        if dlq:
            _sqs_send(
                dlq,
                json.dumps(event),
                {
                    "RULE_ARN": rule_arn,
                    "TARGET_ARN": function_arn,
                    "ERROR_CODE": error_code,
                    "ERROR_MESSAGE": error_message,
                    "EXHAUSTED_RETRY_CONDITION": exhausted,
                    "RETRY_ATTEMPTS": str(number),
                },
            )

    options = CONFIG.options
    copies = 1 + max(0, options.duplicates)
    if options.duplicate_probability > 0 and options.rng.random() < options.duplicate_probability:
        copies += 1
    for _ in range(copies):
        delay = options.rng.uniform(0, options.reorder_window) if options.reorder_window > 0 else 0.0
        executor.submit(lambda: attempt(0), delay)


def deliver_eventbridge_to_lambda() -> None:
    """AWS: a rule whose target is a Lambda function invokes it asynchronously with the event
    (``version, id, detail-type, source, account, time, region, resources, detail``), at least
    once. The target's RetryPolicy and DeadLetterConfig cover failures to hand the event to Lambda
    (function missing, no permission, throttled); errors raised by the function are Lambda's
    asynchronous retries, not EventBridge's. moto raises NotImplementedError for Lambda targets.
    """

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
            lambdas = [t for t in self.targets if parse_arn(t["Arn"]).service == "lambda"]
            others = [t for t in self.targets if parse_arn(t["Arn"]).service != "lambda"]
            if others:
                clone = copy.copy(self)
                clone.targets = others
                original(clone, original_event, transform_input)
            if not lambdas or not self.event_pattern.matches_event(original_event):
                return
            event = {k: v for k, v in dict(original_event).items() if k != "ingestion-time"}
            event["time"] = _iso(event.get("time"))
            for target in lambdas:
                _deliver_to_lambda(self, target, copy.deepcopy(event))

        return send_to_targets

    _install(Rule, "send_to_targets", make, "lambda-targets")


def skip_disabled_event_rules() -> None:
    """AWS: a rule in the DISABLED state matches no events. moto's PutEvents ignores the state."""

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
            if getattr(self, "state", "ENABLED") != "ENABLED":
                return
            original(self, original_event, transform_input)

        return send_to_targets

    _install(Rule, "send_to_targets", make, "skip-disabled")
