"""Step Functions: definitions from CloudFormation, status-change events, scaled Wait and Retry."""

from __future__ import annotations

import datetime
import functools
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from moto.cloudformation.exceptions import ValidationError
from moto.core.responses import ActionResult
from moto.s3.models import s3_backends
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
from moto.utilities.utils import get_partition

from ._core import (
    CONFIG,
    _epoch_ms,
    _install,
    _now,
    _put_event,
)


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


def reset_status_events() -> None:
    """Forget which executions announced their end (a new emulator starts with fresh backends)."""
    with _EMIT_LOCK:
        _ENDED.clear()


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


def describe_the_state_machine_an_execution_runs() -> None:
    """AWS: an execution keeps running the definition it started with when its state machine is
    updated ("executions that are already running continue to use the previous definition"), and
    DescribeStateMachineForExecution returns that definition, role and configuration. moto's
    interpreter already runs a snapshot taken at StartExecution, but the API answers with the state
    machine's current definition.
    """

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def describe_state_machine_for_execution(self: Any) -> Any:
            execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
            machine = getattr(execution, "state_machine", None)
            if machine is None:
                return original(self)
            response = {
                "stateMachineArn": getattr(machine, "source_arn", None) or machine.arn,
                "name": machine.name,
                "definition": machine.definition,
                "roleArn": machine.roleArn,
                "updateDate": machine.update_date,
                "loggingConfiguration": machine.loggingConfiguration,
                "tracingConfiguration": machine.tracingConfiguration,
                "encryptionConfiguration": machine.encryptionConfiguration,
            }
            return ActionResult(response)

        return describe_state_machine_for_execution

    _install(StepFunctionResponse, "describe_state_machine_for_execution", make, "as-it-runs")


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
