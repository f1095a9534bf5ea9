"""Lambda: handlers run in sandbox processes, logs and embedded metrics ship, CloudFormation's Lambda
resources."""

from __future__ import annotations

import copy
import datetime
import functools
import json
import time
import uuid
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import unquote

from moto.awslambda.exceptions import InvalidParameterValueException, LambdaClientError
from moto.awslambda.models import (
    EventInvokeConfig,
    LambdaAlias,
    LambdaBackend,
    LambdaStorage,
    LambdaVersion,
    Permission,
)
from moto.awslambda.policy import Policy
from moto.awslambda.responses import LambdaResponse
from moto.awslambda.utils import get_backend as get_lambda_backend
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.cloudformation import parsing
from moto.cloudformation.exceptions import UnformattedGetAttTemplateException
from moto.cloudwatch.models import cloudwatch_backends
from moto.core.common_models import CloudFormationModel
from moto.core.responses import ActionResult
from moto.logs.models import logs_backends

from .. import control
from ..faults import Fault, FaultError
from ..lambda_runtime import FunctionSpec, InProcessLambdaRuntime, ThrottledError
from ._core import (
    CONFIG,
    _install,
)


def _fault_runtime() -> InProcessLambdaRuntime:
    if CONFIG.runtime is None:
        raise control.ControlError("the Lambda runtime is not running", 409)
    return CONFIG.runtime


@control.route("POST", "lambda/faults")
def inject_lambda_fault(body: dict[str, Any]) -> dict[str, Any]:
    """``POST /_emulator/lambda/faults`` ``{"function", "kind", "match"?, "calls"?, "times"?}``:
    the next ``times`` invocations (default 1; null: every one) of ``function`` whose payload
    contains ``match`` carry the fault into their sandbox, as AWS Fault Injection Service's Lambda
    actions do from inside the execution environment (see :mod:`ecs_canary_cli.local.faults`).
    Answers the fault as ``GET`` lists it.
    """
    try:
        fault = Fault.from_body(body)
    except FaultError as exc:
        raise control.ControlError(str(exc)) from exc
    return _fault_runtime().faults.add(fault).describe()


@control.route("GET", "lambda/faults")
def list_lambda_faults(_body: dict[str, Any]) -> dict[str, Any]:
    """``GET /_emulator/lambda/faults``: every fault in force, with how many invocations it was
    applied to (``invocations``) and how often it acted (``acted``)."""
    return {"faults": _fault_runtime().faults.describe()}


@control.route("DELETE", "lambda/faults")
def remove_lambda_faults(body: dict[str, Any]) -> dict[str, Any]:
    """``DELETE /_emulator/lambda/faults`` ``{"id"?}``: remove one fault, or every one."""
    fault_id = body.get("id")
    if fault_id is not None and not isinstance(fault_id, str):
        raise control.ControlError("'id' must be a fault id")
    return {"removed": _fault_runtime().faults.remove(fault_id)}


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


def _qualifier_of(function_name: str, qualifier: str | None) -> str | None:
    """The qualifier a FunctionName (``name:q``, ``arn:...:function:name:q``) or Qualifier gives."""
    tail = function_name.rsplit(":function:", maxsplit=1)[-1]
    return tail.split(":", 1)[1] if ":" in tail else qualifier


def _invoked_arn(fn: Any, function_name: str, qualifier: str | None) -> str:
    """The ARN a caller invoked: unqualified, or qualified by ``$LATEST``, a version or an alias."""
    if (_qualifier_of(function_name, qualifier) or "").upper() == "$LATEST":
        return f"{fn.function_arn}:$LATEST"
    return str(fn.function_arn)  # unqualified, a published version's, or an alias's (its view's)


def run_lambda_handlers_in_process() -> None:
    """AWS: Invoke runs the code of the version it names (``RequestResponse`` returns its result or
    an ``Unhandled`` error with errorType/errorMessage/stackTrace; ``Event`` queues the event,
    answers 202 at once and retries function errors twice, one then two minutes apart): an
    unqualified or ``$LATEST`` call runs $LATEST, a version number that version's own code and
    configuration, an alias the version it points to; ``x-amz-executed-version``, the context's
    function_version and ``AWS_LAMBDA_FUNCTION_VERSION`` report which ran, invoked_function_arn the
    ARN the caller named. Invocations run concurrently, each in an execution environment of the
    version (warm ones are reused), up to the emulator's concurrency limit
    (``EmulatorOptions.lambda_concurrency``, far below AWS's 1000): an ``Event`` stays queued until a
    slot frees, a ``RequestResponse`` call waits for one (ahead of the queue) up to the function's
    timeout and only then answers 429 ``TooManyRequestsException`` (Reason
    ``ConcurrentInvocationLimitExceeded``), so the emulator's smaller limit does not throttle calls
    that AWS would run. moto without Docker returns a canned string instead of running anything.
    """

    class TooManyRequests(LambdaClientError):
        code = 429

        def __init__(self) -> None:
            super().__init__("TooManyRequestsException", "Rate Exceeded.")
            body = {"Reason": "ConcurrentInvocationLimitExceeded", "Type": "User"}
            self.description = json.dumps({"__type": self.error_type, "message": self.message, **body})

    if CONFIG.runtime is not None:
        CONFIG.runtime.concurrency_limit = lambda: CONFIG.options.lambda_concurrency

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
            spec = FunctionSpec.from_moto(fn, _invoked_arn(fn, function_name, qualifier))
            payload = body.encode() if isinstance(body, str) else (body or b"")
            invocation_type = _header(headers, "x-amz-invocation-type") or "RequestResponse"
            response_headers["x-amz-executed-version"] = spec.version
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


# -- versions and aliases -------------------------------------------------------------------------

_LAST_VERSION = "_ecs_canary_last_version"  # in moto's per-function entry: highest number given
# What a published version must not share with $LATEST (moto's shallow copy shares them).
_VERSION_OWNED = (
    "code",
    "environment_vars",
    "tags",
    "layers",
    "tracing_config",
    "_vpc_config",
    "_architectures",
)


class _QualifiedPolicy(Policy):
    """The resource-based policy of one version or alias: its statements name that qualified ARN."""

    def __init__(self, qualified_arn: str) -> None:
        super().__init__(cast(Any, SimpleNamespace(function_arn=qualified_arn)))

    def add_statement(self, raw: str, qualifier: str | None = None) -> tuple[Any, str]:
        # The qualifier is already in the ARN this policy belongs to.
        return super().add_statement(raw, None)


def _alias_policy(alias: LambdaAlias) -> Policy:
    policy = getattr(alias, "policy", None)
    if policy is None:
        policy = _QualifiedPolicy(alias.arn)
        alias.policy = policy  # type: ignore[attr-defined]
    return cast(Policy, policy)


class _AliasView:
    """A version as an alias addresses it: the version's code and configuration under the alias's
    ARN, with the alias's own resource-based policy and asynchronous-invocation config."""

    def __init__(self, alias: LambdaAlias, version: Any) -> None:
        object.__setattr__(self, "alias", alias)
        object.__setattr__(self, "target", version)

    @property
    def function_arn(self) -> str:
        return str(self.alias.arn)

    @property
    def policy(self) -> Policy:
        return _alias_policy(self.alias)

    @property
    def event_invoke_config(self) -> list[EventInvokeConfig]:
        return cast(list[EventInvokeConfig], getattr(self.alias, "event_invoke_config", []))

    def __getattr__(self, name: str) -> Any:
        return getattr(object.__getattribute__(self, "target"), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.alias if name == "event_invoke_config" else self.target, name, value)


def publish_immutable_lambda_versions() -> None:
    """AWS: PublishVersion snapshots $LATEST's code and configuration as an immutable version that
    later code or configuration updates do not touch, with its own (initially empty) resource-based
    policy and asynchronous-invocation config; nothing is published when neither changed since the
    last version, and version numbers are never reused. moto's version is a shallow copy of $LATEST
    that shares its code location, environment, tags, policy and event-invoke config, and numbers
    it after the versions that still exist (a deleted version's number comes back).
    """

    def make(_original: Callable[..., Any]) -> Callable[..., Any]:
        def publish_version(self: Any, name_or_arn: str, description: str = "") -> Any:
            latest = self.get_function_by_name_or_arn_forbid_qualifier(name_or_arn)
            entry = self._functions.get(latest.function_name)
            if entry is None or not entry["latest"]:
                return None
            versions = entry["versions"]
            if versions and not latest.code_or_config_updated:
                return versions[-1]
            latest.code_or_config_updated = False
            number = max([entry.get(_LAST_VERSION, 0), *(int(v.version) for v in versions)]) + 1
            entry[_LAST_VERSION] = number
            fn = copy.copy(latest)
            fn.set_version(number)
            if description:
                fn.description = description
            for attr in _VERSION_OWNED:
                if hasattr(fn, attr):
                    setattr(fn, attr, copy.deepcopy(getattr(fn, attr)))
            fn.policy = _QualifiedPolicy(fn.function_arn)
            fn.event_invoke_config = []
            fn.url_config = None
            versions.append(fn)
            self._arns[fn.function_arn] = fn
            return fn

        return publish_version

    _install(LambdaStorage, "publish_version", make, "immutable")


def address_lambda_aliases() -> None:
    """AWS: an alias is a named pointer to a version with its own ARN, resource-based policy and
    asynchronous-invocation config; a call through it (``name:alias`` or the alias ARN) runs the
    version it points to at the time of the call, and permissions or configs set through it stay
    with the alias when it moves. moto resolves an alias to the version object itself, so what is
    set through the alias lands on (and stays with) that version.
    """

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def get_function_by_name_with_qualifier(self: Any, name: str, qualifier: str | None = None) -> Any:
            fn = original(self, name, qualifier)
            if ":" in name:
                name, qualifier = name.split(":", 1)
            if qualifier is None or qualifier.upper() == "$LATEST" or self._get_version(name, qualifier):
                return fn
            unqualified = f"arn:{self.partition}:lambda:{self.region_name}:{self.account_id}:function:{name}"
            alias = self._aliases[unqualified].get(qualifier)
            return _AliasView(alias, fn) if alias is not None else fn

        return get_function_by_name_with_qualifier

    _install(LambdaStorage, "get_function_by_name_with_qualifier", make, "alias-view")


def read_lambda_invoke_qualifier() -> None:
    """AWS: Invoke's ``Qualifier`` query parameter names the version or alias to run. moto reads a
    lowercase ``qualifier`` the SDKs never send, so ``Qualifier=`` invokes $LATEST.
    """

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def invoke(self: Any) -> Any:
            named = self.querystring.get("Qualifier")
            if named and "qualifier" not in self.querystring:
                self.querystring["qualifier"] = named
            return original(self)

        return invoke

    _install(LambdaResponse, "invoke", make, "qualifier")


def _qualified_name(function_name: str, querystring: Mapping[str, Any]) -> str:
    """``function_name`` with the request's ``Qualifier`` (unless it already carries one)."""
    named = (querystring.get("Qualifier") or [None])[0]
    if not named or _qualifier_of(function_name, None) is not None:
        return function_name
    return f"{function_name}:{named}"


def _all_qualified(backend: Any, function_name: str) -> list[Any]:
    """$LATEST, every published version and every alias (as its view) of one function."""
    latest = backend.get_function(function_name)
    storage = backend._lambdas
    found = [latest, *storage._functions[latest.function_name]["versions"]]
    for alias in backend.list_aliases(latest.function_name):
        found.append(backend.get_function(latest.function_name, alias.name))
    return found


def lambda_event_invoke_configs_per_qualifier() -> None:
    """AWS: each version and alias of a function (and $LATEST) has its own asynchronous-invocation
    config: Put/Get/Update/DeleteFunctionEventInvokeConfig take a ``Qualifier``, Put replaces the
    config, Update changes only the settings it names, and ListFunctionEventInvokeConfigs returns
    the configs of all of them. moto ignores the Qualifier, appends on Put and Update (Get returns
    the first) and lists the unqualified config only.
    """

    def backend_put(_original: Callable[..., Any]) -> Callable[..., Any]:
        def put_function_event_invoke_config(self: Any, function_name: str, config: dict[str, Any]) -> Any:
            fn = self.get_function(function_name)
            event_config = EventInvokeConfig(fn.function_arn, fn.last_modified, config)
            fn.event_invoke_config = [event_config]
            return event_config.response()

        return put_function_event_invoke_config

    def backend_update(_original: Callable[..., Any]) -> Callable[..., Any]:
        def update_function_event_invoke_config(self: Any, function_name: str, config: dict[str, Any]) -> Any:
            fn = self.get_function(function_name)
            merged = dict(fn.event_invoke_config[0].config) if fn.event_invoke_config else {}
            merged.update(config)
            return self.put_function_event_invoke_config(function_name, merged)

        return update_function_event_invoke_config

    def backend_list(_original: Callable[..., Any]) -> Callable[..., Any]:
        def list_function_event_invoke_configs(self: Any, function_name: str) -> dict[str, Any]:
            configs = [
                fn.event_invoke_config[0].response()
                for fn in _all_qualified(self, function_name)
                if fn.event_invoke_config
            ]
            return {"FunctionEventInvokeConfigs": configs}

        return list_function_event_invoke_configs

    def response(method: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def make(_original: Callable[..., Any]) -> Callable[..., Any]:
            def handle(self: Any) -> Any:
                name = _qualified_name(unquote(self.path.rsplit("/", 2)[1]), self.querystring)
                if method == "get":
                    return ActionResult(self.backend.get_function_event_invoke_config(name))
                if method == "delete":
                    self.backend.delete_function_event_invoke_config(name)
                    return 204, {"status": 204}, json.dumps({})
                if method == "put":
                    return ActionResult(self.backend.put_function_event_invoke_config(name, self.json_body))
                return json.dumps(self.backend.update_function_event_invoke_config(name, self.json_body))

            return handle

        return make

    _install(LambdaBackend, "put_function_event_invoke_config", backend_put, "per-qualifier")
    _install(LambdaBackend, "update_function_event_invoke_config", backend_update, "per-qualifier")
    _install(LambdaBackend, "list_function_event_invoke_configs", backend_list, "per-qualifier")
    for method in ("get", "put", "update", "delete"):
        _install(LambdaResponse, f"{method}_function_event_invoke_config", response(method), "per-qualifier")


class _PublishedVersion(LambdaVersion):
    """An ``AWS::Lambda::Version`` resource: Ref is the version's ARN."""

    def __init__(self, fn: Any, account_id: str, region: str) -> None:
        super().__init__({"Version": fn.version})
        self.function_name = str(fn.function_name)
        self.arn = str(fn.function_arn)
        self.account_id = account_id
        self.region = region

    @property
    def physical_resource_id(self) -> str:
        return self.arn

    def get_cfn_attribute(self, attribute_name: str) -> str:
        if attribute_name == "Version":
            return str(self.version)
        if attribute_name == "FunctionArn":
            return self.arn
        raise UnformattedGetAttTemplateException()

    def delete(self, account_id: str, region_name: str) -> None:
        try:
            get_lambda_backend(account_id, region_name).delete_function(self.function_name, str(self.version))
        except LambdaClientError:  # the function (and so its versions) went first
            return


def lambda_versions_from_cloudformation() -> None:
    """AWS: ``AWS::Lambda::Version`` publishes its function's current code and configuration
    (refusing when ``CodeSha256`` is given and differs), with ``Description`` as the version's; Ref
    is the version ARN (``...:function:name:N``), GetAtt Version the number ``N`` and GetAtt
    FunctionArn the version ARN. Changing a property replaces it (publishes anew); deleting it
    deletes the version. moto's resource has no Ref, GetAtt or deletion, and an update drops it.
    """

    def create(_original: Callable[..., Any]) -> Callable[..., Any]:
        def create_from_cloudformation_json(
            cls: Any,
            resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> _PublishedVersion:
            props = cloudformation_json["Properties"]
            backend = get_lambda_backend(account_id, region_name)
            function_name = str(props["FunctionName"])
            expected = props.get("CodeSha256")
            if expected and backend.get_function(function_name).code_sha_256 != expected:
                raise InvalidParameterValueException(
                    f"CodeSHA256 ({expected}) is different from current CodeSHA256 in $LATEST. "
                    "Please try again."
                )
            fn = backend.publish_version(function_name, str(props.get("Description") or ""))
            return _PublishedVersion(fn, account_id, region_name)  # type: ignore[abstract]  # moto's ABC

        return create_from_cloudformation_json

    def update(_original: Callable[..., Any]) -> Callable[..., Any]:
        def update_from_cloudformation_json(
            cls: Any,
            *,
            original_resource: Any,
            new_resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
        ) -> _PublishedVersion:
            return cast(
                _PublishedVersion,
                cls.create_from_cloudformation_json(
                    new_resource_name, cloudformation_json, account_id, region_name
                ),
            )

        return update_from_cloudformation_json

    _install(LambdaVersion, "create_from_cloudformation_json", create, "version-resource")
    _install(LambdaVersion, "update_from_cloudformation_json", update, "version-resource")


_ALIAS_TYPE = "AWS::Lambda::Alias"


def lambda_aliases_from_cloudformation() -> None:
    """AWS: ``AWS::Lambda::Alias`` (what SAM's AutoPublishAlias makes) creates the alias ``Name`` of
    ``FunctionName`` pointing at ``FunctionVersion``, with Description and RoutingConfig; Ref and
    GetAtt AliasArn are the alias ARN. An update moves the alias in place (a new Name or
    FunctionName replaces it); deleting the resource deletes the alias. moto's CloudFormation does
    not know the type and skips it with a warning.
    """
    if _ALIAS_TYPE in parsing.get_model_map():
        return

    class AliasResource(CloudFormationModel):
        def __init__(self, alias: LambdaAlias, function_name: str) -> None:
            self.alias = alias
            self.function_name = function_name

        @property
        def physical_resource_id(self) -> str:
            return str(self.alias.arn)

        @staticmethod
        def cloudformation_name_type() -> str:
            return ""

        @staticmethod
        def cloudformation_type() -> str:
            return _ALIAS_TYPE

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return attr == "AliasArn"

        def get_cfn_attribute(self, attribute_name: str) -> str:
            if attribute_name == "AliasArn":
                return str(self.alias.arn)
            raise UnformattedGetAttTemplateException()

        @staticmethod
        def _routing(props: Mapping[str, Any]) -> Any:
            weights = (props.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or []
            return {
                "AdditionalVersionWeights": {
                    str(w["FunctionVersion"]): float(w["FunctionWeight"]) for w in weights
                }
            }

        @classmethod
        def create_from_cloudformation_json(
            cls,
            resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> AliasResource:
            props = cloudformation_json["Properties"]
            backend = get_lambda_backend(account_id, region_name)
            function_name = str(props["FunctionName"])
            alias = backend.create_alias(
                name=str(props["Name"]),
                function_name=function_name,
                function_version=str(props["FunctionVersion"]),
                description=str(props.get("Description") or ""),
                routing_config=cls._routing(props) if props.get("RoutingConfig") else "",
            )
            return cls(alias, function_name)

        @classmethod
        def update_from_cloudformation_json(
            cls,
            original_resource: Any,
            new_resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
        ) -> AliasResource:
            props = cloudformation_json["Properties"]
            old: AliasResource = original_resource
            backend = get_lambda_backend(account_id, region_name)
            function = backend.get_function(str(props["FunctionName"])).function_name
            if str(props["Name"]) != old.alias.name or function != old.alias_function(backend):
                created = cls.create_from_cloudformation_json(
                    new_resource_name, cloudformation_json, account_id, region_name
                )
                old.delete(account_id, region_name)
                return created
            old.alias = backend.update_alias(
                name=old.alias.name,
                function_name=old.function_name,
                function_version=str(props["FunctionVersion"]),
                description=str(props.get("Description") or ""),
                routing_config=cls._routing(props) if props.get("RoutingConfig") else "",
            )
            return old

        def alias_function(self, backend: Any) -> str:
            """The name of the function the alias belongs to (its FunctionName may be an ARN)."""
            return str(backend.get_function(self.function_name).function_name)

        def delete(self, account_id: str, region_name: str) -> None:
            try:
                get_lambda_backend(account_id, region_name).delete_alias(self.alias.name, self.function_name)
            except LambdaClientError:  # the function went first
                return

        @classmethod
        def delete_from_cloudformation_json(
            cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
        ) -> None:
            return None

    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()


# -- CloudFormation stack updates (generic: no resource type is special) ------------------------------
