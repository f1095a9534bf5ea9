"""Lambda: handlers run in-process, logs and embedded metrics ship, CloudFormation's Lambda resources."""

from __future__ import annotations

import copy
import datetime
import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda.models import EventInvokeConfig, Permission
from moto.awslambda.utils import get_backend as get_lambda_backend
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.cloudformation import parsing
from moto.cloudwatch.models import cloudwatch_backends
from moto.core.common_models import CloudFormationModel
from moto.logs.models import logs_backends

from ..lambda_runtime import FunctionSpec, ThrottledError
from ._core import (
    CONFIG,
    _install,
)


def name_lambda_permissions() -> None:
    """AWS: an ``AWS::Lambda::Permission`` has a physical id (its generated name), which is also
    the Sid of the statement it adds to the function's policy. moto's has none, so
    DescribeStackResources omits its PhysicalResourceId.
    """

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def create_from_cloudformation_json(
            cls: Any,
            resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> Any:
            spec = copy.deepcopy(cloudformation_json)
            spec["Properties"].setdefault("StatementId", resource_name)
            resource = original(cls, resource_name, spec, account_id, region_name, **kwargs)
            resource.physical_resource_id = resource_name
            return resource

        return create_from_cloudformation_json

    _install(Permission, "create_from_cloudformation_json", make, "physical-id")


# -- Lambda ---------------------------------------------------------------------------------------


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    for key, value in dict(headers).items():
        if str(key).lower() == name:
            return str(value)
    return None


def run_lambda_handlers_in_process() -> None:
    """AWS: Invoke runs the function's code (``RequestResponse`` returns its result or an
    ``Unhandled`` error with errorType/errorMessage/stackTrace; ``Event`` queues the event, answers
    202 at once and retries function errors twice, one then two minutes apart). moto without
    Docker returns a canned string instead of running anything.
    """

    class TooManyRequests(LambdaClientError):
        code = 429

        def __init__(self) -> None:
            super().__init__("TooManyRequestsException", "Rate Exceeded.")

    def make(_original: Callable[..., Any]) -> Callable[..., Any]:
        def invoke(  # noqa: PLR0917 - the signature of the moto method it replaces
            self: Any,
            function_name: str,
            qualifier: str | None,
            body: Any,
            headers: Any,
            response_headers: Any,
        ) -> bytes:
            runtime = CONFIG.runtime
            if runtime is None:
                raise RuntimeError("the in-process Lambda runtime is not running")
            fn = self.get_function(function_name, qualifier)
            spec = FunctionSpec.from_moto(fn)
            payload = body.encode() if isinstance(body, str) else (body or b"")
            invocation_type = _header(headers, "x-amz-invocation-type") or "RequestResponse"
            response_headers["x-amz-executed-version"] = "$LATEST"
            if invocation_type == "DryRun":
                return b""
            if invocation_type == "Event":
                response_headers["x-amzn-RequestId"] = runtime.invoke_async(spec, payload)
                response_headers["Content-Length"] = "0"
                return b""
            try:
                result = runtime.invoke(spec, payload, wait=spec.timeout)
            except ThrottledError as exc:
                raise TooManyRequests() from exc
            if result.function_error:
                response_headers["x-amz-function-error"] = result.function_error
            response_headers["Content-Length"] = str(len(result.payload))
            return result.payload

        return invoke

    _install(LambdaSimpleBackend, "invoke", make, "in-process")


def _emf_metrics(line: str) -> list[tuple[str, dict[str, Any]]]:
    """(namespace, PutMetricData datum) for each metric of an embedded-metric-format log line."""
    try:
        record = json.loads(line)
    except ValueError:
        return []
    meta = record.get("_aws") if isinstance(record, dict) else None
    if not isinstance(meta, dict):
        return []
    stamp = datetime.datetime.fromtimestamp(
        float(meta.get("Timestamp", time.time() * 1000)) / 1000, tz=datetime.UTC
    )
    data = []
    for directive in meta.get("CloudWatchMetrics", []):
        for metric in directive.get("Metrics", []):
            raw = record.get(metric.get("Name"))
            values = [
                float(v) for v in (raw if isinstance(raw, list) else [raw]) if isinstance(v, (int, float))
            ]
            if not values:
                continue
            for dimension_set in directive.get("Dimensions", [[]]) or [[]]:
                dimensions = [{"Name": d, "Value": str(record[d])} for d in dimension_set if d in record]
                datum: dict[str, Any] = {
                    "MetricName": metric["Name"],
                    "Dimensions": dimensions,
                    "Values": values,
                    "Timestamp": stamp.replace(tzinfo=None),
                }
                if metric.get("Unit"):
                    datum["Unit"] = metric["Unit"]
                data.append((str(directive.get("Namespace", "aws-embedded-metrics")), datum))
    return data


def _ship_lambda_output(spec: FunctionSpec, log_stream: str, lines: list[str]) -> None:
    logs = logs_backends[spec.account_id][spec.region]
    group = f"/aws/lambda/{spec.name}"
    if group not in logs.groups:
        logs.create_log_group(group, {})
    if log_stream not in logs.groups[group].streams:
        logs.create_log_stream(group, log_stream)
    now = int(time.time() * 1000)
    logs.put_log_events(group, log_stream, [{"timestamp": now, "message": line} for line in lines])
    metrics = cloudwatch_backends[spec.account_id][spec.region]
    for line in lines:
        for namespace, datum in _emf_metrics(line):
            metrics.put_metric_data(namespace, [datum])


def ship_lambda_logs_and_embedded_metrics() -> None:
    """AWS: Lambda sends a function's stdout/stderr, framed by START/END/REPORT lines, to the
    log group ``/aws/lambda/<name>``, and CloudWatch turns embedded-metric-format lines (what
    Powertools Metrics prints) into metrics. moto does neither for code it does not run.
    """
    if CONFIG.runtime is not None:
        CONFIG.runtime.log_sink = _ship_lambda_output


_EVENT_INVOKE_CONFIG_TYPE = "AWS::Lambda::EventInvokeConfig"


def _event_invoke_target(properties: Mapping[str, Any], account_id: str, region: str) -> Any:
    """The function version (or alias target) an EventInvokeConfig's FunctionName/Qualifier name."""
    backend = get_lambda_backend(account_id, region)
    return backend.get_function(str(properties["FunctionName"]), str(properties["Qualifier"]))


def _event_invoke_options(properties: Mapping[str, Any]) -> dict[str, Any]:
    """The PutFunctionEventInvokeConfig request body a resource's properties stand for."""
    options: dict[str, Any] = {}
    for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds"):
        if properties.get(key) is not None:
            options[key] = int(properties[key])
    destinations = {
        kind: {"Destination": str(target["Destination"])}
        for kind, target in (properties.get("DestinationConfig") or {}).items()
        if kind in ("OnSuccess", "OnFailure") and isinstance(target, Mapping) and target.get("Destination")
    }
    if destinations:
        options["DestinationConfig"] = destinations
    return options


def lambda_event_invoke_configs_from_cloudformation() -> None:
    """AWS: ``AWS::Lambda::EventInvokeConfig`` (what SAM makes of a function's ``EventInvokeConfig``)
    sets the asynchronous-invocation options of the version or alias its FunctionName and
    Qualifier name, as PutFunctionEventInvokeConfig does: MaximumRetryAttempts (0-2),
    MaximumEventAgeInSeconds (60-21600) and the OnSuccess/OnFailure destinations that receive
    Lambda's invocation records. An update replaces the options; deleting the resource removes
    them, so Lambda's defaults (two retries, six hours, no destination) apply again. moto's
    CloudFormation does not know the type and skips it with a warning.
    """
    if _EVENT_INVOKE_CONFIG_TYPE in parsing.get_model_map():
        return

    class EventInvokeConfigResource(CloudFormationModel):
        def __init__(self, properties: Mapping[str, Any], account_id: str, region: str) -> None:
            self.function_name = str(properties["FunctionName"])
            self.qualifier = str(properties["Qualifier"])
            self.account_id = account_id
            self.region = region
            self.id = f"{uuid.uuid4()}"

        @property
        def physical_resource_id(self) -> str:
            return self.id

        @staticmethod
        def cloudformation_name_type() -> str:
            return ""

        @staticmethod
        def cloudformation_type() -> str:
            return _EVENT_INVOKE_CONFIG_TYPE

        def _remove(self) -> None:
            try:
                fn = _event_invoke_target(
                    {"FunctionName": self.function_name, "Qualifier": self.qualifier},
                    self.account_id,
                    self.region,
                )
            except LambdaClientError:  # the function went first
                return
            fn.event_invoke_config = []

        @classmethod
        def create_from_cloudformation_json(
            cls,
            resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> EventInvokeConfigResource:
            props = cloudformation_json["Properties"]
            fn = _event_invoke_target(props, account_id, region_name)
            # What PutFunctionEventInvokeConfig stores (and validates), replacing any earlier one.
            fn.event_invoke_config = [
                EventInvokeConfig(fn.function_arn, fn.last_modified, _event_invoke_options(props))
            ]
            return cls(props, account_id, region_name)

        @classmethod
        def update_from_cloudformation_json(
            cls,
            original_resource: Any,
            new_resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
        ) -> EventInvokeConfigResource:
            original_resource._remove()
            return cls.create_from_cloudformation_json(
                new_resource_name, cloudformation_json, account_id, region_name
            )

        def delete(self, account_id: str, region_name: str) -> None:
            self._remove()

        @classmethod
        def delete_from_cloudformation_json(
            cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
        ) -> None:
            return None

    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()
