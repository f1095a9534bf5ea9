"""Where moto 5.2.5 falls short of the AWS behaviour ecs-canary relies on, one function per gap.

Every ``patch`` function below is idempotent and generic: it stands in for one documented AWS
behaviour, never for anything of ecs-canary's own (no handler, state, table or service names).
``apply_all`` installs them all and starts the background workers they need.
"""

from __future__ import annotations

import copy
import datetime
import functools
import inspect
import json
import logging
import math
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import boto3
from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda.models import EventInvokeConfig, Permission
from moto.awslambda.utils import get_backend as get_lambda_backend
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.cloudformation import parsing
from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.models import CloudFormationBackend
from moto.cloudwatch.models import CloudWatchBackend, Statistics, cloudwatch_backends
from moto.cloudwatch.responses import CloudWatchResponse
from moto.core.common_models import CloudFormationModel
from moto.core.responses import ActionResult
from moto.ec2.models.elastic_network_interfaces import NetworkInterface
from moto.ecs.models import Container, EC2ContainerServiceBackend, Task
from moto.elbv2.models import FakeHealthStatus, FakeTargetGroup, elbv2_backends
from moto.events.models import Rule, events_backends
from moto.events.utils import EventTemplateParser
from moto.logs.models import logs_backends
from moto.moto_api import state_manager
from moto.route53.exceptions import Route53ClientError
from moto.route53.responses import Route53 as Route53Response
from moto.s3.models import s3_backends
from moto.sqs.models import sqs_backends
from moto.stepfunctions.exceptions import ExecutionDoesNotExist
from moto.stepfunctions.models import StateMachine, StepFunctionBackend
from moto.stepfunctions.parser.api import ExecutionStatus
from moto.stepfunctions.parser.asl.component.common.retry.max_attempts_decl import MaxAttemptsOutcome
from moto.stepfunctions.parser.asl.component.common.retry.retrier_decl import RetrierDecl
from moto.stepfunctions.parser.asl.component.common.retry.retrier_outcome import RetrierOutcome
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str
from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication, Execution
from moto.stepfunctions.responses import StepFunctionResponse
from moto.stepfunctions.responses import get_backend as get_stepfunctions_backend
from moto.utilities.arns import parse_arn
from moto.utilities.utils import get_partition
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.utils.py27hash_fix import to_py27_compatible_template, undo_mark_unicode_str_in_template
from samtranslator.yaml_helper import yaml_parse

from .clock import DelayedExecutor, EmulatorClock
from .lambda_runtime import FunctionSpec, InProcessLambdaRuntime, ThrottledError

LOG = logging.getLogger(__name__)

SAM_TRANSFORM = "AWS::Serverless-2016-10-31"
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_MARK = "_ecs_canary_emulator_patch"


@dataclass
class EmulatorOptions:
    """Runtime knobs of the emulated services (for tests of at-least-once and failure paths).

    duplicates: extra copies EventBridge delivers of every event to Lambda targets.
    duplicate_probability: chance that an event gets one extra copy (seeded RNG).
    reorder_window: emulated seconds over which deliveries are spread at random, so events
        that arrive within the window reach their targets shuffled.
    target_health: target group ARN -> health state its targets report instead of ``healthy``
        (``unhealthy``, ``initial``, ``draining``, ``unavailable``); a stand-in for failing
        load balancer health checks.
    task_start_seconds: emulated seconds an ECS task stays PENDING before it is RUNNING.
    route53_propagation_seconds: emulated seconds a Route 53 change stays PENDING.
    """

    duplicates: int = 0
    duplicate_probability: float = 0.0
    reorder_window: float = 0.0
    target_health: dict[str, str] = field(default_factory=dict)
    task_start_seconds: float = 10.0
    route53_propagation_seconds: float = 30.0
    seed: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        self.rng.seed(self.seed)

    def reseed(self, seed: int) -> None:
        self.seed = seed
        self.rng.seed(seed)

    def reset(self) -> None:
        """Back to faithful defaults (no duplicates, no reordering, all targets healthy)."""
        self.duplicates = 0
        self.duplicate_probability = 0.0
        self.reorder_window = 0.0
        self.target_health.clear()
        self.task_start_seconds = 10.0
        self.route53_propagation_seconds = 30.0
        self.reseed(self.seed)


class _Config:
    """What the installed patches read at call time (replaced by each ``apply_all``)."""

    def __init__(self) -> None:
        self.clock = EmulatorClock()
        self.endpoint = ""
        self.options = EmulatorOptions()
        self.events: DelayedExecutor | None = None
        self.lambdas: DelayedExecutor | None = None
        self.ecs: DelayedExecutor | None = None
        self.runtime: InProcessLambdaRuntime | None = None
        self.alarm_stop = threading.Event()
        self.alarm_thread: threading.Thread | None = None
        self.alarm_period = 10.0

    def executors(self) -> list[DelayedExecutor]:
        return [e for e in (self.events, self.lambdas, self.ecs) if e is not None]


CONFIG = _Config()


def _install(
    owner: Any, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]], key: str
) -> None:
    """Replace ``owner.name`` with ``make(original)`` once per ``key``."""
    current = getattr(owner, name)
    seen: frozenset[str] = getattr(current, _MARK, frozenset())
    if key in seen:
        return
    raw = owner.__dict__.get(name)
    if raw is None:  # inherited: a bound method is an inherited classmethod
        raw = classmethod(current.__func__) if inspect.ismethod(current) else current
    if isinstance(raw, classmethod):
        replacement: Any = classmethod(make(raw.__func__))
        setattr(replacement.__func__, _MARK, seen | {key})
    elif isinstance(raw, staticmethod):
        replacement = staticmethod(make(raw.__func__))
        setattr(replacement.__func__, _MARK, seen | {key})
    else:
        replacement = make(current)
        setattr(replacement, _MARK, seen | {key})
    setattr(owner, name, replacement)


def _iso(value: Any) -> str:
    """An EventBridge/CloudWatch timestamp: ``2024-01-01T12:00:00Z``."""
    if isinstance(value, datetime.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
    elif isinstance(value, (int, float)):
        moment = datetime.datetime.fromtimestamp(float(value), tz=datetime.UTC)
    elif isinstance(value, str) and value:
        return value
    else:
        moment = datetime.datetime.now(datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch_ms(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
        return int(moment.timestamp() * 1000)
    return int(float(value) * 1000)


def _put_event(
    account_id: str, region: str, source: str, detail_type: str, *, resources: list[str], detail: Any
) -> None:
    """Publish on the default bus through moto's EventBridge backend, so rules and targets apply."""
    backend = events_backends[account_id][region]
    entry = {
        "Source": source,
        "DetailType": detail_type,
        "Resources": resources,
        "Detail": json.dumps(detail),
    }
    backend.put_events([entry])


def _sqs_send(queue_arn: str, body: str, attributes: Mapping[str, str] | None = None) -> None:

    arn = parse_arn(queue_arn)
    message_attributes = {k: {"DataType": "String", "StringValue": v} for k, v in (attributes or {}).items()}
    sqs_backends[arn.account][arn.region].send_message(
        queue_name=arn.resource_id, message_body=body, message_attributes=message_attributes or None
    )


# -- CloudFormation -------------------------------------------------------------------------------


def _expand_serverless(
    template: Any, parameters: Mapping[str, Any], *, stack_name: str, region: str, account_id: str
) -> Any:
    """The template after the SAM transform, or unchanged when it declares no such transform."""
    if not isinstance(template, str) or SAM_TRANSFORM not in template:
        return template

    parsed = yaml_parse(template)
    declared = parsed.get("Transform") if isinstance(parsed, dict) else None
    if declared != SAM_TRANSFORM and not (isinstance(declared, list) and SAM_TRANSFORM in declared):
        return template
    values: dict[str, Any] = {str(k): v for k, v in parameters.items()}
    values.update(
        {
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::Partition": get_partition(region),
            "AWS::StackName": stack_name,
            "AWS::URLSuffix": "amazonaws.com",
        }
    )
    session = boto3.session.Session(
        region_name=region, aws_access_key_id="transform", aws_secret_access_key="x"
    )
    try:
        to_py27_compatible_template(parsed, values)
        translated = Translator(None, Parser(), boto_session=session).translate(
            parsed, parameter_values=values, get_managed_policy_map=dict
        )
        translated = undo_mark_unicode_str_in_template(translated)
    except Exception as exc:
        raise ValidationError(stack_name, f"Transform {SAM_TRANSFORM} failed with: {exc}") from exc
    return json.dumps(translated)


def transform_serverless_templates() -> None:
    """AWS: CloudFormation expands the ``AWS::Serverless-2016-10-31`` transform server-side
    (a managed macro) on CreateStack, UpdateStack and CreateChangeSet, with the stack's own
    region, account and partition as pseudo parameters. moto runs templates untransformed.
    """

    def create_stack(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def wrapper(
            self: Any, name: str, template: Any, parameters: dict[str, Any], *args: Any, **kwargs: Any
        ) -> Any:
            body = _expand_serverless(
                template,
                parameters or {},
                stack_name=name,
                region=self.region_name,
                account_id=self.account_id,
            )
            return original(self, name, body, parameters, *args, **kwargs)

        return wrapper

    def update_stack(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def wrapper(
            self: Any, name: str, template: Any, role_arn: Any, parameters: Any, *args: Any, **kwargs: Any
        ) -> Any:
            stack = self.get_stack(name)
            values = self._resolve_update_parameters(instance=stack, incoming_params=parameters or [])
            body = _expand_serverless(
                template, values, stack_name=stack.name, region=self.region_name, account_id=self.account_id
            )
            return original(self, name, body, role_arn, parameters, *args, **kwargs)

        return wrapper

    def create_change_set(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def wrapper(
            self: Any,
            stack_name: str,
            change_set_name: str,
            template: Any,
            parameters: Any,
            *args: Any,
            **kwargs: Any,
        ) -> Any:
            body = _expand_serverless(
                template,
                parameters or {},
                stack_name=stack_name,
                region=self.region_name,
                account_id=self.account_id,
            )
            return original(self, stack_name, change_set_name, body, parameters, *args, **kwargs)

        return wrapper

    _install(CloudFormationBackend, "create_stack", create_stack, "sam-transform")
    _install(CloudFormationBackend, "update_stack", update_stack, "sam-transform")
    _install(CloudFormationBackend, "create_change_set", create_change_set, "sam-transform")


def _lower_camel(value: Any) -> Any:
    """CloudFormation's PascalCase property shapes as the Step Functions API's camelCase."""
    if isinstance(value, dict):
        return {k[:1].lower() + k[1:]: _lower_camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_camel(v) for v in value]
    return value


def _definition_from_properties(properties: Mapping[str, Any], account_id: str, region: str) -> str:
    if properties.get("DefinitionString") is not None:
        definition = properties["DefinitionString"]
        if not isinstance(definition, str):
            definition = json.dumps(definition)
    elif properties.get("Definition") is not None:
        definition = json.dumps(properties["Definition"], indent=2)
    elif properties.get("DefinitionS3Location"):
        location = properties["DefinitionS3Location"]
        backend = s3_backends[account_id][get_partition(region)]
        key = backend.get_object(location["Bucket"], location["Key"], version_id=location.get("Version"))
        if key is None:
            raise ValidationError(
                message=f"DefinitionS3Location s3://{location['Bucket']}/{location['Key']} not found"
            )
        definition = key.value.decode("utf-8")
    else:
        definition = ""
    for name, value in (properties.get("DefinitionSubstitutions") or {}).items():
        text = json.dumps(value) if isinstance(value, bool) else str(value)
        definition = definition.replace("${" + str(name) + "}", text)
    return str(definition)


def state_machine_definitions_from_cloudformation() -> None:
    """AWS: ``AWS::StepFunctions::StateMachine`` takes its definition from ``Definition`` (an
    object), ``DefinitionString`` or ``DefinitionS3Location``, replaces ``${key}`` with each
    ``DefinitionSubstitutions`` value, and keeps ``StateMachineType``, ``LoggingConfiguration``
    and ``TracingConfiguration``. moto reads only ``DefinitionString`` and creates the machine in a
    backend the executing interpreter does not see.
    """

    def backend_for(account_id: str, region: str) -> Any:
        return get_stepfunctions_backend(account_id, region)

    def create(_original: Callable[..., Any]) -> Callable[..., Any]:
        def create_from_cloudformation_json(
            cls: Any,
            resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> Any:
            props = cloudformation_json["Properties"]
            backend = backend_for(account_id, region_name)
            tags = [{"key": t["Key"], "value": t["Value"]} for t in props.get("Tags", [])]
            return backend.create_state_machine(
                name=props.get("StateMachineName", resource_name),
                definition=_definition_from_properties(props, account_id, region_name),
                roleArn=props.get("RoleArn", ""),
                tags=tags or None,
                loggingConfiguration=_lower_camel(props.get("LoggingConfiguration")),
                tracingConfiguration=_lower_camel(props.get("TracingConfiguration")),
                sm_type=props.get("StateMachineType", "STANDARD"),
            )

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
        ) -> Any:
            props = cloudformation_json.get("Properties", {})
            name = props.get("StateMachineName", original_resource.name)
            backend = backend_for(account_id, region_name)
            if name != original_resource.name:
                created = cls.create_from_cloudformation_json(
                    name, cloudformation_json, account_id, region_name
                )
                backend.delete_state_machine(original_resource.arn)
                return created
            return backend.update_state_machine(
                original_resource.arn,
                definition=_definition_from_properties(props, account_id, region_name),
                role_arn=props.get("RoleArn") or None,
                logging_configuration=_lower_camel(props.get("LoggingConfiguration")),
                tracing_configuration=_lower_camel(props.get("TracingConfiguration")),
            )

        return update_from_cloudformation_json

    def delete(_original: Callable[..., Any]) -> Callable[..., Any]:
        def delete_from_cloudformation_json(
            cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
        ) -> None:
            backend_for(account_id, region_name).delete_state_machine(resource_name)

        return delete_from_cloudformation_json

    _install(StateMachine, "create_from_cloudformation_json", create, "sfn-definition")
    _install(StateMachine, "update_from_cloudformation_json", update, "sfn-definition")
    _install(StateMachine, "delete_from_cloudformation_json", delete, "sfn-definition")


def support_sqs_queue_policies() -> None:
    """AWS: ``AWS::SQS::QueuePolicy`` sets the ``Policy`` attribute of each queue it lists.
    moto's CloudFormation does not know the type and skips it with a warning.
    """
    if "AWS::SQS::QueuePolicy" in parsing.get_model_map():
        return

    class QueuePolicy(CloudFormationModel):
        def __init__(self, queues: list[str], policy: str, account_id: str, region: str) -> None:
            self.queues = queues
            self.policy = policy
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
            return "AWS::SQS::QueuePolicy"

        def _apply(self, policy: str) -> None:
            backend = sqs_backends[self.account_id][self.region]
            for url in self.queues:
                backend.set_queue_attributes(url.rstrip("/").rsplit("/", 1)[-1], {"Policy": policy})

        @classmethod
        def create_from_cloudformation_json(
            cls,
            resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> QueuePolicy:
            props = cloudformation_json["Properties"]
            resource = cls(
                list(props["Queues"]), json.dumps(props["PolicyDocument"]), account_id, region_name
            )
            resource._apply(resource.policy)
            return resource

        @classmethod
        def update_from_cloudformation_json(
            cls,
            original_resource: Any,
            new_resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
        ) -> QueuePolicy:
            original_resource._apply("")
            return cls.create_from_cloudformation_json(
                new_resource_name, cloudformation_json, account_id, region_name
            )

        @classmethod
        def delete_from_cloudformation_json(
            cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
        ) -> None:
            return None

    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()


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


# -- Step Functions -------------------------------------------------------------------------------


def _execution_status_detail(execution: Any) -> dict[str, Any]:

    status = execution.exec_status.value if execution.exec_status is not None else "RUNNING"
    machine = execution.state_machine
    machine_arn = getattr(machine, "source_arn", None) or machine.arn
    output = None
    if status == "SUCCEEDED" and execution.output is not None:
        output = to_json_str(execution.output, separators=(",", ":"))
    return {
        "executionArn": execution.exec_arn,
        "stateMachineArn": machine_arn,
        "name": execution.name,
        "status": status,
        "startDate": _epoch_ms(execution.start_date),
        "stopDate": _epoch_ms(execution.stop_date) if status != "RUNNING" else None,
        "input": to_json_str(execution.input_data, separators=(",", ":")),
        "output": output,
        "inputDetails": {"included": True},
        "outputDetails": {"included": True} if output is not None else None,
        "error": execution.error or None,
        "cause": execution.cause or None,
        "redriveCount": 0,
        "redriveStatus": "NOT_REDRIVABLE",
    }


_EMIT_LOCK = threading.Lock()
_ENDED: set[str] = set()  # executions whose end event went out (one per execution, as AWS)


def _emit_execution_status(execution: Any) -> None:
    """Standard workflows' executions only (Express and synchronous ones emit no events)."""
    if type(execution) is not Execution or getattr(execution.state_machine, "type", "STANDARD") != "STANDARD":
        return
    detail = _execution_status_detail(execution)
    if detail["status"] != "RUNNING":
        with _EMIT_LOCK:
            if execution.exec_arn in _ENDED:
                return
            _ENDED.add(execution.exec_arn)
    _put_event(
        execution.account_id,
        execution.region_name,
        "aws.states",
        "Step Functions Execution Status Change",
        resources=[execution.exec_arn],
        detail=detail,
    )


def emit_step_functions_status_events() -> None:
    """AWS: Step Functions puts ``Step Functions Execution Status Change`` events (source
    ``aws.states``) on the default bus when a standard execution starts and when it ends
    (SUCCEEDED, FAILED, TIMED_OUT, ABORTED); StopExecution aborts at once and answers with the
    stop date. moto emits no events and reports a stopped execution RUNNING until its interpreter
    thread notices.
    """

    def start(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def wrapper(self: Any) -> None:
            original(self)
            _emit_execution_status(self)

        return wrapper

    def reflect(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def wrapper(self: Any) -> None:
            execution = self.execution
            stopped_at = execution.stop_date if execution.exec_status == ExecutionStatus.ABORTED else None
            original(self)
            if stopped_at is not None:
                execution.exec_status = ExecutionStatus.ABORTED
                execution.stop_date = stopped_at
            _emit_execution_status(execution)

        return wrapper

    def stop(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def wrapper(self: Any, stop_date: datetime.datetime, error: str | None, cause: str | None) -> None:
            if self.exec_status != ExecutionStatus.RUNNING:
                return
            moment = datetime.datetime.now(tz=datetime.UTC)
            self.exec_status = ExecutionStatus.ABORTED
            self.stop_date = moment
            self.error = error or None
            self.cause = cause or None
            original(self, moment, error, cause)
            _emit_execution_status(self)

        return wrapper

    def backend_stop(_original: Callable[..., Any]) -> Callable[..., Any]:
        def stop_execution(
            self: Any, execution_arn: str, error: str | None = None, cause: str | None = None
        ) -> Any:
            self._validate_execution_arn(execution_arn)
            machine = self._get_state_machine_for_execution(execution_arn)
            execution = next((x for x in machine.executions if x.execution_arn == execution_arn), None)
            if execution is None:
                raise ExecutionDoesNotExist("Execution Does Not Exist: '" + execution_arn + "'")
            execution.stop(stop_date=_now(), error=error, cause=cause)
            return execution

        return stop_execution

    def response_stop(_original: Callable[..., Any]) -> Callable[..., Any]:
        def stop_execution(self: Any) -> Any:

            execution = self.stepfunction_backend.stop_execution(
                self._get_param("executionArn"),
                error=self._get_param("error"),
                cause=self._get_param("cause"),
            )
            return ActionResult({"stopDate": execution.stop_date})

        return stop_execution

    _install(StepFunctionBackend, "stop_execution", backend_stop, "status-events")
    _install(StepFunctionResponse, "stop_execution", response_stop, "status-events")
    _install(Execution, "start", start, "status-events")
    _install(Execution, "stop", stop, "status-events")
    _install(BaseExecutionWorkerCommunication, "_reflect_execution_status", reflect, "status-events")


def scale_wait_states() -> None:
    """AWS: a Wait state pauses for its Seconds/Timestamp; here that pause runs on the emulator
    clock (and ends early when the execution stops), instead of moto's real-time wait.
    """

    def make(_original: Callable[..., Any]) -> Callable[..., Any]:
        def _wait_interval(self: Any, env: Any, wait_seconds: float) -> None:
            deadline = time.monotonic() + CONFIG.clock.scaled(float(wait_seconds))
            while env.is_running():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                env.program_state_event.wait(min(remaining, 0.25))

        return _wait_interval

    _install(WaitFunction, "_wait_interval", make, "clock")


def scale_retry_backoff() -> None:
    """AWS: a Retrier waits IntervalSeconds * BackoffRate^n (capped, jittered) before the next
    attempt; here on the emulator clock and interruptible by StopExecution (moto sleeps in real
    time and cannot be stopped).
    """

    def make(_original: Callable[..., Any]) -> Callable[..., Any]:
        def _eval_body(self: Any, env: Any) -> None:
            self.error_equals.eval(env)
            if not env.stack.pop():
                env.stack.append(RetrierOutcome.Skipped)
                return
            self.max_attempts.eval(env=env)
            if env.stack.pop() == MaxAttemptsOutcome.EXHAUSTED:
                env.stack.append(RetrierOutcome.Failed)
                return
            self.interval_seconds.eval(env=env)
            self.backoff_rate.eval(env=env)
            self.max_delay_seconds.eval(env=env)
            self.jitter_strategy.eval(env=env)
            interval: float = env.stack.pop()
            deadline = time.monotonic() + CONFIG.clock.scaled(float(interval))
            while env.is_running() and time.monotonic() < deadline:
                env.program_state_event.wait(min(deadline - time.monotonic(), 0.25))
            env.stack.append(RetrierOutcome.Executed)

        return _eval_body

    _install(RetrierDecl, "_eval_body", make, "clock")


# -- Route 53 -------------------------------------------------------------------------------------

_ROUTE53_CHANGES: dict[str, tuple[float, datetime.datetime]] = {}


def propagate_route53_changes() -> None:
    """AWS: ChangeResourceRecordSets answers with a change of its own id in status PENDING, and
    GetChange reports it INSYNC once the change has reached every Route 53 name server (usually
    within 60 s); an unknown id is NoSuchChange. moto answers INSYNC at once, always with the same
    change id. Here a change is PENDING for ``route53_propagation_seconds`` on the emulator clock.
    """

    class NoSuchChange(Route53ClientError):
        def __init__(self, change_id: str) -> None:
            super().__init__("NoSuchChange", f"Could not find resource with ID: {change_id}")

    def change(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def change_resource_record_sets(self: Any) -> Any:
            original(self)
            change_id = "C" + "".join(CONFIG.options.rng.choice(_ALNUM) for _ in range(20))
            submitted = _now()
            _ROUTE53_CHANGES[change_id] = (CONFIG.clock.monotonic(), submitted)
            return ActionResult(
                {"ChangeInfo": {"Id": f"/change/{change_id}", "Status": "PENDING", "SubmittedAt": submitted}}
            )

        return change_resource_record_sets

    def get(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def get_change(self: Any) -> Any:
            change_id = str(self._get_param("Id")).rsplit("/", 1)[-1]
            known = _ROUTE53_CHANGES.get(change_id)
            if known is None:
                raise NoSuchChange(change_id)
            started, submitted = known
            elapsed = CONFIG.clock.monotonic() - started
            status = "INSYNC" if elapsed >= CONFIG.options.route53_propagation_seconds else "PENDING"
            return ActionResult(
                {"ChangeInfo": {"Id": f"/change/{change_id}", "Status": status, "SubmittedAt": submitted}}
            )

        return get_change

    _install(Route53Response, "change_resource_record_sets", change, "propagation")
    _install(Route53Response, "get_change", get, "propagation")


# -- ECS and Elastic Load Balancing ---------------------------------------------------------------


_ECS_LOCK = threading.RLock()


def _ecs_locked(func: Callable[..., Any]) -> Callable[..., Any]:
    """Serialize the emulated ECS scheduler's changes to services and tasks."""

    @functools.wraps(func)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _ECS_LOCK:
            return func(*args, **kwargs)

    return locked


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def _task_ip(task: Any) -> str:
    for attachment in getattr(task, "attachments", []) or []:
        for detail in attachment.get("details", []):
            if detail.get("name") == "privateIPv4Address":
                return str(detail["value"])
    ip = getattr(task, "_emulator_ip", None)
    if ip is None:
        rng = CONFIG.options.rng
        ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        task._emulator_ip = ip
    return str(ip)


def _task_event(backend: Any, task: Any) -> None:
    """Publish an ``ECS Task State Change`` event shaped as ECS's."""
    task._emulator_version = getattr(task, "_emulator_version", 0) + 1
    now = _now()
    task._emulator_updated = now
    definition = backend.describe_task_definition(task.task_definition_arn)
    task_id = task.task_arn.rsplit("/", 1)[-1]
    containers = []
    for container in task.containers:
        containers.append(
            {
                "containerArn": container.container_arn,
                "lastStatus": container.last_status,
                "name": container.name,
                "image": container.image,
                "taskArn": task.task_arn,
                "networkInterfaces": [
                    {"attachmentId": a["id"], "privateIpv4Address": _task_ip(task)} for a in task.attachments
                ],
                "cpu": str(container.cpu or 0),
                **({"memory": str(container.memory)} if container.memory else {}),
                **({"exitCode": 0} if container.last_status == "STOPPED" else {}),
            }
        )
    detail: dict[str, Any] = {
        "attachments": copy.deepcopy(task.attachments),
        "attributes": [{"name": "ecs.cpu-architecture", "value": "x86_64"}],
        "availabilityZone": f"{task.region_name}a",
        "clusterArn": task.cluster_arn,
        "containers": containers,
        "createdAt": _iso(getattr(task, "_emulator_created", now)),
        "launchType": task.launch_type or "EC2",
        "cpu": str(definition.cpu) if definition.cpu else None,
        "memory": str(definition.memory) if definition.memory else None,
        "desiredStatus": task.desired_status,
        "enableExecuteCommand": False,
        "group": task.group,
        "lastStatus": task.last_status,
        "overrides": {"containerOverrides": [{"name": c.name} for c in task.containers]},
        "startedBy": task.started_by,
        "taskArn": task.task_arn,
        "taskDefinitionArn": task.task_definition_arn,
        "updatedAt": _iso(now),
        "version": task._emulator_version,
    }
    if task.launch_type == "FARGATE":
        detail["platformVersion"] = task.platform_version or "1.4.0"
    if task.last_status in ("RUNNING", "STOPPED") and getattr(task, "_emulator_started", None):
        detail["startedAt"] = _iso(task._emulator_started)
        detail["connectivity"] = "CONNECTED"
        detail["connectivityAt"] = _iso(task._emulator_started)
    if task.last_status == "STOPPED":
        detail["stoppedAt"] = _iso(now)
        detail["stoppingAt"] = _iso(now)
        detail["executionStoppedAt"] = _iso(now)
        detail["stoppedReason"] = task.stopped_reason
        detail["stopCode"] = getattr(task, "_emulator_stop_code", "UserInitiated")
    detail = {k: v for k, v in detail.items() if v is not None}
    _put_event(
        backend.account_id,
        backend.region_name,
        "aws.ecs",
        "ECS Task State Change",
        resources=[task.task_arn],
        detail=detail,
    )
    LOG.debug("ECS task %s %s (%s)", task_id, task.last_status, task.group)


def _service_event(service: Any, message: str) -> None:
    service.events.insert(
        0, {"id": str(uuid.uuid4()), "createdAt": _now(), "message": f"(service {service.name}) {message}"}
    )
    del service.events[100:]


def _register_targets(backend: Any, service: Any, task: Any) -> None:

    elb = elbv2_backends[backend.account_id][backend.region_name]
    task._emulator_targets = []
    for lb in service.load_balancers or []:
        arn = lb.get("targetGroupArn")
        group = elb.target_groups.get(arn) if arn else None
        if group is None:
            continue
        if group.target_type == "ip":
            target = {"Id": _task_ip(task), "Port": int(lb.get("containerPort") or group.port or 80)}
        else:
            instance = getattr(task, "_emulator_instance", None)
            if instance is None:
                instance = "i-" + "".join(CONFIG.options.rng.choice("0123456789abcdef") for _ in range(17))
                task._emulator_instance = instance
            target = {"Id": instance, "Port": 32768 + CONFIG.options.rng.randrange(28000)}
        elb.register_targets(arn, [target])
        task._emulator_targets.append((arn, target))


def _deregister_targets(backend: Any, task: Any) -> None:

    elb = elbv2_backends[backend.account_id][backend.region_name]
    for arn, target in getattr(task, "_emulator_targets", []):
        try:
            elb.deregister_targets(arn, [target])
        except Exception:
            LOG.debug("target %s already gone from %s", target, arn)
    task._emulator_targets = []


def _service_tasks(backend: Any, service: Any, *, deployment_id: str | None = None) -> list[Any]:
    tasks = backend.tasks.get(service.cluster_name, {}).values()
    return [
        t
        for t in tasks
        if t.group == f"service:{service.name}"
        and t.desired_status == "RUNNING"
        and (deployment_id is None or t.started_by == deployment_id)
    ]


def _stop_task(backend: Any, task: Any, reason: str, code: str = "ServiceSchedulerInitiated") -> None:
    _deregister_targets(backend, task)
    task.desired_status = "STOPPED"
    task.last_status = "STOPPED"
    task.stopped_reason = reason
    task._emulator_stop_code = code
    for container in task.containers:
        container.last_status = "STOPPED"
    _task_event(backend, task)


def _start_tasks(backend: Any, service: Any, deployment: dict[str, Any], count: int) -> list[Any]:

    cluster = backend._get_cluster(service.cluster_name)
    definition = backend.describe_task_definition(deployment["taskDefinition"])
    network = service.network_configuration or None
    if definition.network_mode != "awsvpc":
        network = None
    started = []
    for _ in range(count):
        task: Any = Task(
            cluster,
            definition,
            None,
            None,
            backend=backend,
            group=f"service:{service.name}",
            launch_type=service.launch_type or "",
            started_by=deployment["id"],
            networking_configuration=network,
            platform_version=service.platform_version,
        )
        task.last_status = "PENDING"
        task._emulator_created = _now()
        containers = []
        task_id = task.task_arn.rsplit("/", 1)[-1]
        for container_def in definition.container_definitions or [{}]:
            container = cast(Any, Container)(definition)
            container.name = container_def.get("name")
            container.image = container_def.get("image")
            container.cpu = container_def.get("cpu", 0)
            container.memory = container_def.get("memory")
            container.container_arn = (
                f"arn:{definition.arn.split(':')[1]}:ecs:{task.region_name}:{backend.account_id}:"
                f"container/{cluster.name}/{task_id}/{uuid.uuid4()}"
            )
            container.task_arn = task.task_arn
            container.last_status = "PENDING"
            containers.append(container)
        task.containers = containers
        backend.tasks.setdefault(cluster.name, {})[task.task_arn] = task
        _task_event(backend, task)
        started.append(task)
    return started


@_ecs_locked
def _run_tasks(backend: Any, service: Any, tasks: list[Any]) -> None:
    """PENDING tasks come up: RUNNING, in their target groups; the rollout then completes."""
    now = _now()
    running = []
    for task in tasks:
        if task.desired_status != "RUNNING":
            continue
        task.last_status = "RUNNING"
        task._emulator_started = now
        for container in task.containers:
            container.last_status = "RUNNING"
        _register_targets(backend, service, task)
        _task_event(backend, task)
        running.append(task)
    if running:
        names = ", ".join(f"(task {t.task_arn.rsplit('/', 1)[-1]})" for t in running)
        _service_event(service, f"has started {len(running)} tasks: {names}.")
    _settle(backend, service)


def _settle(backend: Any, service: Any) -> None:
    """When the PRIMARY deployment runs its desired count, older deployments drain and go."""
    primary = next((d for d in service.deployments if d["status"] == "PRIMARY"), None)
    if primary is None:
        return
    mine = _service_tasks(backend, service, deployment_id=primary["id"])
    running = [t for t in mine if t.last_status == "RUNNING"]
    primary["runningCount"] = len(running)
    primary["pendingCount"] = len(mine) - len(running)
    primary["updatedAt"] = _now()
    if len(running) < primary["desiredCount"]:
        return
    for old in [d for d in service.deployments if d is not primary]:
        for task in _service_tasks(backend, service, deployment_id=old["id"]):
            _stop_task(backend, task, f"Scaling activity initiated by (deployment {primary['id']})")
    service.deployments = [primary]
    primary["rolloutState"] = "COMPLETED"
    primary["rolloutStateReason"] = f"ECS deployment {primary['id']} completed."
    service.running_count = len(running)
    service.pending_count = 0
    _service_event(service, f"deployment completed: {primary['id']}.")
    _service_event(service, "has reached a steady state.")


def _new_deployment(backend: Any, service: Any) -> None:
    now = _now()
    for old in service.deployments:
        old["status"] = "ACTIVE"
        old["updatedAt"] = now
    deployment = {
        "id": "ecs-svc/" + "".join(str(CONFIG.options.rng.randrange(10)) for _ in range(19)),
        "status": "PRIMARY",
        "taskDefinition": service.task_definition,
        "desiredCount": service.desired_count,
        "pendingCount": 0,
        "runningCount": 0,
        "failedTasks": 0,
        "createdAt": now,
        "updatedAt": now,
        "launchType": service.launch_type,
        "platformVersion": service.platform_version,
        "networkConfiguration": service.network_configuration or None,
        "rolloutState": "IN_PROGRESS",
        "rolloutStateReason": "ECS deployment in progress.",
    }
    deployment = {k: v for k, v in deployment.items() if v is not None}
    service.deployments = [deployment, *service.deployments]
    _scale(backend, service, deployment)


def _scale(backend: Any, service: Any, deployment: dict[str, Any]) -> None:
    """Start or stop tasks of ``deployment`` until it has its desired count."""
    mine = _service_tasks(backend, service, deployment_id=deployment["id"])
    missing = deployment["desiredCount"] - len(mine)
    if missing < 0:
        for task in sorted(mine, key=lambda t: t.last_status == "RUNNING")[:-missing]:
            _stop_task(backend, task, "Service scaled in")
    started = _start_tasks(backend, service, deployment, missing) if missing > 0 else []
    deployment["pendingCount"] = len(started) + len([t for t in mine if t.last_status == "PENDING"])
    service.pending_count = deployment["pendingCount"]
    executor = CONFIG.ecs
    if started and executor is not None:
        executor.submit(lambda: _run_tasks(backend, service, started), CONFIG.options.task_start_seconds)
    else:
        _settle(backend, service)


def run_ecs_service_deployments() -> None:
    """AWS: the ECS service scheduler turns CreateService and UpdateService (new task definition
    or forceNewDeployment) into a new PRIMARY deployment (``ecs-svc/<19 digits>``) whose tasks
    (``startedBy`` = deployment id, ``group`` = ``service:<name>``) go PENDING then RUNNING,
    join the service's target groups, and replace the previous deployment's tasks, which are
    deregistered and STOPPED; a desiredCount change scales the PRIMARY deployment in place. Every
    task state change is an ``ECS Task State Change`` event. moto starts no tasks and its tasks
    read as STOPPED as soon as they are described.
    """
    # Tasks keep the status the scheduler gives them (moto would advance them to STOPPED).
    state_manager.set_transition(
        model_name="ecs::task", transition={"progression": "manual", "times": 10**12}
    )

    def create_service(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        @_ecs_locked
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            service = original(self, *args, **kwargs)
            service.running_count = 0
            service.pending_count = 0
            if service.deployment_controller.get("type", "ECS") == "ECS" and service.task_definition:
                service.deployments = []
                _new_deployment(self, service)
            return service

        return wrapper

    def update_service(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        @_ecs_locked
        def wrapper(self: Any, service_properties: dict[str, Any]) -> Any:
            cluster = service_properties.get("cluster", "default")
            name = str(service_properties.get("service", "")).split("/")[-1]
            before = self._get_service(cluster, name)
            deployments = copy.deepcopy(before.deployments)
            running, pending = before.running_count, before.pending_count
            old_definition, old_count = before.task_definition, before.desired_count
            force = bool(service_properties.get("force_new_deployment"))
            service = original(self, service_properties)
            service.deployments = deployments
            service.running_count, service.pending_count = running, pending
            if service.deployment_controller.get("type", "ECS") != "ECS" or not service.task_definition:
                return service
            if service.task_definition != old_definition or force or not deployments:
                _new_deployment(self, service)
            elif service.desired_count != old_count:
                primary = next(d for d in service.deployments if d["status"] == "PRIMARY")
                primary["desiredCount"] = service.desired_count
                _scale(self, service, primary)
            return service

        return wrapper

    def delete_service(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        @_ecs_locked
        def wrapper(self: Any, cluster_name: str, service_name: str, force: bool) -> Any:
            service = self._get_service(cluster_name, service_name)
            if service.desired_count == 0 or force:
                for task in _service_tasks(self, service):
                    _stop_task(self, task, "Service deleted")
            return original(self, cluster_name, service_name, force)

        return wrapper

    def stop_task(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        @_ecs_locked
        def wrapper(self: Any, cluster_str: str, task_str: str, reason: str) -> Any:
            task = original(self, cluster_str, task_str, reason)
            task.desired_status = "RUNNING"
            task.last_status = "RUNNING"
            _stop_task(self, task, reason, "UserInitiated")
            return task

        return wrapper

    _install(EC2ContainerServiceBackend, "create_service", create_service, "scheduler")
    _install(EC2ContainerServiceBackend, "update_service", update_service, "scheduler")
    _install(EC2ContainerServiceBackend, "delete_service", delete_service, "scheduler")
    _install(EC2ContainerServiceBackend, "stop_task", stop_task, "scheduler")


def give_network_interfaces_private_dns_names() -> None:
    """AWS: every ENI has a private DNS name (``ip-10-0-1-2.ec2.internal`` in us-east-1,
    ``ip-10-0-1-2.<region>.compute.internal`` elsewhere), which an awsvpc task's attachment lists.
    moto's network interfaces have none, so starting an awsvpc task fails.
    """
    if isinstance(NetworkInterface.__dict__.get("private_dns_name"), property):
        return

    def private_dns_name(self: Any) -> str:
        given = self.__dict__.get("_private_dns_name")
        if given:
            return str(given)
        region = self.ec2_backend.region_name
        host = "ip-" + str(self.private_ip_address or "0.0.0.0").replace(".", "-")
        return f"{host}.ec2.internal" if region == "us-east-1" else f"{host}.{region}.compute.internal"

    def set_private_dns_name(self: Any, value: str) -> None:
        # moto assigns one itself in VPCs with DNS hostnames enabled; keep it.
        self.__dict__["_private_dns_name"] = value

    cast(Any, NetworkInterface).private_dns_name = property(private_dns_name, set_private_dns_name)


def list_tasks_like_ecs() -> None:
    """AWS: ListTasks lists tasks whose desired status is RUNNING unless ``desiredStatus`` says
    otherwise, and ``serviceName`` keeps the tasks of that service. moto lists every task and
    ignores ``serviceName``.
    """

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def list_tasks(  # noqa: PLR0917 - the signature of the moto method it wraps
            self: Any,
            cluster_str: str | None = None,
            container_instance: str | None = None,
            family: str | None = None,
            started_by: str | None = None,
            service_name: str | None = None,
            desiredStatus: str | None = None,
        ) -> Any:
            tasks = original(
                self, cluster_str, container_instance, family, started_by, None, desiredStatus or "RUNNING"
            )
            if service_name:
                group = "service:" + service_name.rsplit("/", 1)[-1]
                tasks = [t for t in tasks if t.group == group]
            return tasks

        return list_tasks

    _install(EC2ContainerServiceBackend, "list_tasks", make, "filters")


_HEALTH_REASONS = {
    "unhealthy": ("Target.FailedHealthChecks", "Health checks failed"),
    "initial": ("Elb.RegistrationInProgress", "Target registration is in progress"),
    "draining": ("Target.DeregistrationInProgress", "Target deregistration is in progress"),
    "unavailable": ("Target.HealthCheckDisabled", "Health checks disabled"),
}


def apply_target_health_overrides() -> None:
    """AWS: a load balancer reports each registered target's health from its health checks.
    moto runs no health checks (every registered target is ``healthy``); a target group listed
    in the emulator's ``target_health`` option reports that state for its registered targets,
    standing in for targets that fail their checks.
    """

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def health_for(self: Any, target: dict[str, Any], ec2_backend: Any) -> Any:
            status = original(self, target, ec2_backend)
            state = CONFIG.options.target_health.get(self.arn)
            if state and status.status == "healthy":
                reason, description = _HEALTH_REASONS.get(state, (None, None))
                return FakeHealthStatus(
                    status.instance_id, status.port, status.health_check_port, state, reason, description
                )
            return status

        return health_for

    _install(FakeTargetGroup, "health_for", make, "overrides")


# -- CloudWatch -----------------------------------------------------------------------------------

_COMPARISONS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}


def _utc_seconds(moment: Any) -> float:
    if isinstance(moment, datetime.datetime):
        aware = moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)
        return aware.timestamp()
    return float(moment)


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    rank = max(0, math.ceil(pct / 100.0 * len(ordered)) - 1)
    return ordered[min(rank, len(ordered) - 1)]


def _statistic(data: list[Any], statistic: str | None, extended: str | None) -> float | None:
    """One period's value of the alarm's statistic, or None when it has no datapoint."""
    singles = [float(d.value) for d in data if hasattr(d, "value")]
    aggregates = [d for d in data if hasattr(d, "sample_count")]
    if not singles and not aggregates:
        return None
    if extended:
        if not singles or not extended.lower().startswith("p"):
            return None
        return _percentile(singles, float(extended[1:]))
    count = len(singles) + sum(float(a.sample_count) for a in aggregates)
    total = sum(singles) + sum(float(a.sum) for a in aggregates)
    if statistic == "SampleCount":
        return count
    if statistic == "Sum":
        return total
    if statistic == "Minimum":
        return min(singles + [float(a.min) for a in aggregates])
    if statistic == "Maximum":
        return max(singles + [float(a.max) for a in aggregates])
    return total / count if count else None


def _fmt(value: float) -> str:
    return repr(float(value))


def evaluate_alarm(
    alarm: Any, metric_data: Iterable[Any], now: float, period_seconds: float
) -> tuple[str, str, str] | None:
    """(state, reason, reason data) for a single-metric alarm, or None to keep its state.

    ``now`` is the evaluation time (epoch seconds) and ``period_seconds`` the real length of one
    of the alarm's periods; the most recent EvaluationPeriods periods ending at ``now`` count.
    """
    comparison = _COMPARISONS.get(alarm.comparison_operator)
    if comparison is None or not alarm.metric_name or alarm.metric_data_queries:
        return None
    compare, words = comparison
    wanted = {(d.name, d.value) for d in alarm.dimensions}
    points = [
        d
        for d in metric_data
        if d.namespace == alarm.namespace
        and d.name == alarm.metric_name
        and {(x.name, x.value) for x in d.dimensions} == wanted
        and (not alarm.unit or d.unit == alarm.unit)
    ]
    periods = int(alarm.evaluation_periods)
    needed = int(alarm.datapoints_to_alarm or periods)
    values: list[float | None] = []
    stamps: list[float] = []
    for index in range(periods):
        end = now - index * period_seconds
        start = end - period_seconds
        window = [d for d in points if start <= _utc_seconds(d.timestamp) < end]
        values.append(_statistic(window, alarm.statistic, alarm.extended_statistic))
        stamps.append(start)
    threshold = float(alarm.threshold)
    present = [(v, s) for v, s in zip(values, stamps, strict=True) if v is not None]
    treat = (alarm.treat_missing_data or "missing").lower()
    missing = periods - len(present)
    breaching = [(v, s) for v, s in present if compare(v, threshold)]
    breach_count = len(breaching) + (missing if treat == "breaching" else 0)
    good_count = len(present) - len(breaching) + (missing if treat == "notbreaching" else 0)

    def stamp(seconds: float) -> str:
        return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC).strftime("%d/%m/%y %H:%M:%S")

    listed = ", ".join(f"{_fmt(v)} ({stamp(s)})" for v, s in present)
    data = {
        "version": "1.0",
        "queryDate": datetime.datetime.fromtimestamp(now, tz=datetime.UTC).strftime(
            "%Y-%m-%dT%H:%M:%S.000+0000"
        ),
        "statistic" if not alarm.extended_statistic else "extendedStatistic": alarm.extended_statistic
        or alarm.statistic,
        "period": int(alarm.period),
        "recentDatapoints": [v for v, _ in present],
        "threshold": threshold,
        "evaluatedDatapoints": [
            {
                "timestamp": datetime.datetime.fromtimestamp(s, tz=datetime.UTC).strftime(
                    "%Y-%m-%dT%H:%M:%S.000+0000"
                ),
                "value": v,
            }
            for v, s in present
        ],
    }
    reason_data = json.dumps(data)
    if breach_count >= needed and (present or treat == "breaching"):
        if periods == 1:
            reason = (
                f"Threshold Crossed: 1 datapoint [{listed}] was {words} the threshold ({_fmt(threshold)})."
            )
        else:
            reason = (
                f"Threshold Crossed: {breach_count} out of the last {periods} datapoints [{listed}] "
                f"were {words} "
                f"the threshold ({_fmt(threshold)}) (minimum {needed} datapoint{'s' if needed > 1 else ''} "
                "for OK -> ALARM transition)."
            )
        return "ALARM", reason, reason_data
    if not present:
        if treat == "ignore":
            return None
        if treat == "notbreaching":
            return (
                "OK",
                f"Threshold Crossed: no datapoints were received for {periods} periods and {periods} "
                "missing datapoints were treated as [NonBreaching].",
                reason_data,
            )
        return (
            "INSUFFICIENT_DATA",
            f"Insufficient Data: {periods} datapoint{'s were' if periods > 1 else ' was'} unknown.",
            reason_data,
        )
    if good_count > periods - needed or treat in ("missing", "ignore"):
        count = len(present)
        verb = "was" if count == 1 else "were"
        plural = "datapoint" if count == 1 else "datapoints"
        return (
            "OK",
            f"Threshold Crossed: {count} {plural} [{listed}] {verb} not {words} "
            f"the threshold ({_fmt(threshold)}).",
            reason_data,
        )
    return None


def _evaluate_all_alarms() -> None:

    now = time.time()
    for account_id, regions in list(cloudwatch_backends.items()):
        for region, backend in list(regions.items()):
            for alarm in list(backend.alarms.values()):
                try:
                    period = CONFIG.clock.scaled(float(alarm.period or 60))
                    verdict = evaluate_alarm(alarm, list(backend.metric_data), now, period)
                except Exception:
                    LOG.exception("evaluating alarm %s", getattr(alarm, "name", "?"))
                    continue
                if verdict is None or verdict[0] == alarm.state_value:
                    continue
                previous = {
                    "value": alarm.state_value,
                    "reason": alarm.state_reason,
                    "timestamp": _iso(alarm.state_updated_timestamp),
                }
                backend.set_alarm_state(alarm.name, verdict[1], verdict[2], verdict[0])
                _put_event(
                    account_id,
                    region,
                    "aws.cloudwatch",
                    "CloudWatch Alarm State Change",
                    resources=[alarm.alarm_arn],
                    detail={
                        "alarmName": alarm.name,
                        "state": {
                            "value": verdict[0],
                            "reason": verdict[1],
                            "reasonData": verdict[2],
                            "timestamp": _iso(_now()),
                        },
                        "previousState": previous,
                        "configuration": {
                            "description": alarm.description,
                            "metrics": [
                                {
                                    "id": str(uuid.uuid5(uuid.NAMESPACE_URL, alarm.alarm_arn)),
                                    "metricStat": {
                                        "metric": {
                                            "namespace": alarm.namespace,
                                            "name": alarm.metric_name,
                                            "dimensions": {d.name: d.value for d in alarm.dimensions},
                                        },
                                        "period": int(alarm.period),
                                        "stat": alarm.extended_statistic or alarm.statistic,
                                    },
                                    "returnData": True,
                                }
                            ],
                        },
                    },
                )


def evaluate_cloudwatch_alarms() -> None:
    """AWS: CloudWatch evaluates each metric alarm against its metric every period and moves it
    between OK, ALARM and INSUFFICIENT_DATA (StateReason "Threshold Crossed: ..."), honouring
    EvaluationPeriods, DatapointsToAlarm and TreatMissingData, and publishes a ``CloudWatch Alarm
    State Change`` event on each transition. A new alarm starts INSUFFICIENT_DATA; an updated one
    keeps its state. moto never evaluates alarms and creates them OK.
    """

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def put_metric_alarm(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
            previous = self.alarms.get(name)
            alarm = original(self, name, *args, **kwargs)
            if previous is not None:
                alarm.state_value = previous.state_value
                alarm.state_reason = previous.state_reason
                alarm.state_reason_data = previous.state_reason_data
                alarm.state_updated_timestamp = previous.state_updated_timestamp
            else:
                alarm.state_value = "INSUFFICIENT_DATA"
            return alarm

        return put_metric_alarm

    _install(CloudWatchBackend, "put_metric_alarm", make, "initial-state")
    if CONFIG.alarm_thread is not None and CONFIG.alarm_thread.is_alive():
        return
    stop = CONFIG.alarm_stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                _evaluate_all_alarms()
            except Exception:
                LOG.exception("alarm evaluation failed")
            stop.wait(max(0.05, CONFIG.clock.scaled(CONFIG.alarm_period)))

    CONFIG.alarm_thread = threading.Thread(target=loop, name="cloudwatch-alarms", daemon=True)
    CONFIG.alarm_thread.start()


# pNN or pNN.NN, 0 to 100: the percentile statistics CloudWatch accepts.
_PERCENTILE_STAT = re.compile(r"p(?:100(?:\.0{1,2})?|\d{1,2}(?:\.\d{1,2})?)")


def _is_percentile(stat: Any) -> bool:
    return isinstance(stat, str) and _PERCENTILE_STAT.fullmatch(stat) is not None


def percentile_statistics_in_metric_queries() -> None:
    """AWS: GetMetricData with a percentile ``Stat`` (``p99``, ``p99.9``) and GetMetricStatistics
    with ``ExtendedStatistics`` return, for each period, that percentile of the raw values
    published in it (a value sent with ``Values``/``Counts`` counts as often as its count). A
    percentile needs raw values: a period that only has statistic sets (``StatisticValues``) has
    no percentile, so GetMetricData leaves that period out and GetMetricStatistics gives its
    datapoint no ``ExtendedStatistics``. moto computes only Sum, Average, Minimum, Maximum and
    SampleCount, answers None for a percentile and fails to serialize the response.
    """

    def statistic(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def get_statistics_for_type(self: Any, stat: str) -> Any:
            if _is_percentile(stat):
                return _statistic(list(self.metric_data), None, stat)
            return original(self, stat)

        return get_statistics_for_type

    def metric_data(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def get_metric_data(
            self: Any,
            queries: list[dict[str, Any]],
            start_time: datetime.datetime,
            end_time: datetime.datetime,
            scan_by: str = "TimestampAscending",
        ) -> list[dict[str, Any]]:
            results: list[dict[str, Any]] = original(
                self, queries=queries, start_time=start_time, end_time=end_time, scan_by=scan_by
            )
            ids = {q["Id"] for q in queries if _is_percentile((q.get("MetricStat") or {}).get("Stat"))}
            ids |= {q["Id"] for q in queries if q.get("Expression") in ids}  # a bare reference
            for result in results:
                if result["id"] not in ids:
                    continue
                kept = [
                    (value, stamp)
                    for value, stamp in zip(result["values"], result["timestamps"], strict=True)
                    if value is not None
                ]
                result["values"] = [value for value, _ in kept]
                result["timestamps"] = [stamp for _, stamp in kept]
            return results

        return get_metric_data

    def metric_statistics(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def get_metric_statistics(self: Any) -> Any:
            response = original(self)
            wanted = [s for s in self._get_param("ExtendedStatistics", []) or [] if _is_percentile(s)]
            if not wanted or not isinstance(response, ActionResult):
                return response
            body = dict(cast(Mapping[str, Any], response.result))
            simple = bool(self._get_param("Statistics", []))
            datapoints = []
            for datapoint in body.get("Datapoints", []):
                values = {s: _statistic(list(datapoint.metric_data), None, s) for s in wanted}
                present = {s: v for s, v in values.items() if v is not None}
                if present:
                    datapoint.extended_statistics = present
                elif not simple:
                    continue
                datapoints.append(datapoint)
            body["Datapoints"] = datapoints
            return ActionResult(body)

        return get_metric_statistics

    _install(Statistics, "get_statistics_for_type", statistic, "percentiles")
    _install(CloudWatchBackend, "get_metric_data", metric_data, "percentiles")
    _install(CloudWatchResponse, "get_metric_statistics", metric_statistics, "percentiles")


# -- installation ---------------------------------------------------------------------------------

PATCHES: tuple[Callable[[], None], ...] = (
    transform_serverless_templates,
    state_machine_definitions_from_cloudformation,
    support_sqs_queue_policies,
    name_lambda_permissions,
    run_lambda_handlers_in_process,
    ship_lambda_logs_and_embedded_metrics,
    lambda_event_invoke_configs_from_cloudformation,
    deliver_eventbridge_to_lambda,
    skip_disabled_event_rules,
    emit_step_functions_status_events,
    scale_wait_states,
    scale_retry_backoff,
    propagate_route53_changes,
    give_network_interfaces_private_dns_names,
    run_ecs_service_deployments,
    list_tasks_like_ecs,
    apply_target_health_overrides,
    evaluate_cloudwatch_alarms,
    percentile_statistics_in_metric_queries,
)


def apply_all(clock: EmulatorClock, endpoint: str, options: EmulatorOptions) -> None:
    """Install every patch and (re)start the workers they use, reading ``clock`` and ``options``."""
    stop_workers()
    _ENDED.clear()
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
    CONFIG.alarm_stop.set()
    if CONFIG.alarm_thread is not None:
        CONFIG.alarm_thread.join(timeout=5)
        CONFIG.alarm_thread = None
    for executor in CONFIG.executors():
        executor.stop()
    CONFIG.events = CONFIG.lambdas = CONFIG.ecs = None
    if CONFIG.runtime is not None:
        CONFIG.runtime.close()
        CONFIG.runtime = None
