"""Parser models of the events and state-machine payloads the handlers accept.

Handlers parse their input into these models first, so a malformed event fails with a message
naming the bad field before anything touches traffic. Every field of an AWS event is bounded to
what the service can send (ECS's documented limits), so an oversized or hostile value is refused
before any write. State payloads ignore fields they do not know: a stack update may add some while
executions started by the previous version are still running.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from ecs_canary.gates import HookStage

_PARTITION = r"aws(?:-[a-z]+)*"
_REGION = r"[a-z]{2}(?:-[a-z]+)+-[0-9]+"
_ACCOUNT = r"[0-9]{12}"
_NAME = r"[A-Za-z0-9_-]{1,255}"

CLUSTER_ARN = rf"^arn:{_PARTITION}:ecs:{_REGION}:{_ACCOUNT}:cluster/{_NAME}$"
TASK_ARN = rf"^arn:{_PARTITION}:ecs:{_REGION}:{_ACCOUNT}:task/(?:{_NAME}/)?[A-Za-z0-9-]{{1,64}}$"
TASK_DEFINITION_ARN = rf"^arn:{_PARTITION}:ecs:{_REGION}:{_ACCOUNT}:task-definition/{_NAME}:[0-9]{{1,9}}$"
STARTED_BY = r"^[A-Za-z0-9_/-]{1,128}$"
"""ECS: ``startedBy`` is up to 128 letters, numbers, hyphens, forward slashes and underscores."""

TaskStatus = Literal[
    "PROVISIONING",
    "PENDING",
    "ACTIVATING",
    "RUNNING",
    "DEACTIVATING",
    "STOPPING",
    "DEPROVISIONING",
    "STOPPED",
    "DELETED",
]
Text255 = Annotated[str, StringConstraints(max_length=255)]
Text1024 = Annotated[str, StringConstraints(max_length=1024)]


class EcsContainer(BaseModel):
    """A container of an ECS task event (what the crash detector reads)."""

    model_config = ConfigDict(extra="ignore")

    name: Text255 | None = None
    last_status: Text255 | None = Field(default=None, alias="lastStatus")
    exit_code: int | None = Field(default=None, alias="exitCode", ge=-(2**31), le=2**31 - 1)
    reason: Text1024 | None = None


class EcsTaskStateChange(BaseModel):
    """The ``detail`` of an ECS "Task State Change" event (only the fields ecs-canary reads)."""

    model_config = ConfigDict(extra="ignore")

    cluster_arn: str = Field(alias="clusterArn", pattern=CLUSTER_ARN)
    task_arn: str = Field(alias="taskArn", pattern=TASK_ARN)
    task_definition_arn: str = Field(alias="taskDefinitionArn", pattern=TASK_DEFINITION_ARN)
    group: str | None = Field(default=None, max_length=8 + 255)
    started_by: str | None = Field(default=None, alias="startedBy", pattern=STARTED_BY)
    last_status: TaskStatus = Field(alias="lastStatus")
    desired_status: TaskStatus = Field(alias="desiredStatus")
    stop_code: Text255 | None = Field(default=None, alias="stopCode")
    stopped_reason: Text1024 | None = Field(default=None, alias="stoppedReason")
    containers: list[EcsContainer] = Field(default_factory=list, max_length=100)

    @property
    def service_name(self) -> str | None:
        """``service:web-green`` → ``web-green``; None for standalone tasks."""
        if self.group and self.group.startswith("service:"):
            return self.group.split(":", 1)[1] or None
        return None

    @property
    def cluster_region_account(self) -> tuple[str, str]:
        """(region, account) of the task's cluster."""
        parts = self.cluster_arn.split(":")
        return parts[3], parts[4]

    @property
    def cluster_partition_region_account(self) -> tuple[str, str, str]:
        """(partition, region, account) of the task's cluster."""
        parts = self.cluster_arn.split(":")
        return parts[1], parts[3], parts[4]


class EcsTaskStateChangeEvent(EventBridgeModel):
    detail: EcsTaskStateChange


class AlarmState(BaseModel):
    model_config = ConfigDict(extra="ignore")

    value: Literal["OK", "ALARM", "INSUFFICIENT_DATA"]
    reason: str | None = Field(default=None, max_length=1023)


class AlarmStateChange(BaseModel):
    """The ``detail`` of a CloudWatch "Alarm State Change" event."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    alarm_name: str = Field(alias="alarmName", min_length=1, max_length=255)
    state: AlarmState
    previous_state: AlarmState | None = Field(default=None, alias="previousState")


class AlarmStateChangeEvent(EventBridgeModel):
    detail: AlarmStateChange


class ExecutionStatusChange(BaseModel):
    """The ``detail`` of a Step Functions "Execution Status Change" event."""

    model_config = ConfigDict(extra="ignore")

    execution_arn: str = Field(alias="executionArn")
    state_machine_arn: str = Field(alias="stateMachineArn")
    name: str
    status: str
    input: str | None = None
    error: str | None = None
    cause: str | None = None

    def input_json(self) -> dict[str, Any]:
        """The execution input; empty when absent or not an object."""
        if not self.input:
            return {}
        try:
            data = json.loads(self.input)
        except json.JSONDecodeError:
            return {}
        return data if isinstance(data, dict) else {}


class ExecutionStatusChangeEvent(EventBridgeModel):
    detail: ExecutionStatusChange


class ReleaseModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    service: str = Field(min_length=1)
    deployment: str = Field(min_length=1)
    task_definition: str = Field(min_length=1)


class ExecutionInput(BaseModel):
    """What the filter starts an execution with (and what every state carries along)."""

    model_config = ConfigDict(extra="allow")

    pair: str = Field(min_length=1)
    deployment_id: str = Field(min_length=1)
    release: ReleaseModel


class PrepareInput(BaseModel):
    """ "Load spec and snapshot traffic": the execution input and the execution's own ARN."""

    model_config = ConfigDict(extra="ignore")

    input: ExecutionInput
    execution: str = Field(min_length=1)


class CursorModel(BaseModel):
    """What the state machine carries between ticks (the record holds the truth; this is a hint)."""

    model_config = ConfigDict(extra="ignore")

    step_index: int = -1
    inconclusive: int = 0
    shifted_at: str | None = None
    reentered: bool = False
    action: str | None = None
    gate_waits: int = 0


class DeploymentContext(BaseModel):
    """The static facts of one run, produced by "Load spec and snapshot traffic"."""

    model_config = ConfigDict(extra="ignore")

    pair: str
    deployment_id: str
    live: str
    green: str
    green_release: str
    spec: dict[str, Any]
    snapshot: dict[str, int]
    green_target_group_arn: str
    green_load_balancer_arn: str


class SteadyState(BaseModel):
    model_config = ConfigDict(extra="ignore")

    polls: int = 0


class SteadyInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    deployment: DeploymentContext
    steady: SteadyState
    execution: str = Field(min_length=1)


class AdvanceInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    deployment: DeploymentContext
    cursor: CursorModel
    execution: str = Field(min_length=1)


class ListenInput(BaseModel):
    """ "Watch for alarms, crashes, new releases and operators": the token to store."""

    model_config = ConfigDict(extra="ignore")

    deployment: DeploymentContext
    token: str = Field(min_length=1)
    execution: str = Field(min_length=1)


class HookCursor(BaseModel):
    """Where a stage's hook loop is (carried in the state machine between calls)."""

    model_config = ConfigDict(extra="ignore")

    stage: HookStage
    key: str
    index: int = Field(0, ge=0)
    attempt: int = Field(0, ge=0)
    waited: int = Field(0, ge=0)
    then: Literal["tick", "bake", "end"] = "tick"
    done: bool = False
    wait_seconds: int = Field(0, ge=0)


class HookInput(BaseModel):
    """ "Run the stage's hooks" / "Run the rollback hooks": which deployment, which hook loop."""

    model_config = ConfigDict(extra="ignore")

    pair: str
    deployment_id: str
    hooks: HookCursor
    execution: str = Field(min_length=1)


class StateError(BaseModel):
    """What a Catch stores at ``$.error``: the error name and its cause."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    error: str = Field(alias="Error", default="States.Unknown")
    cause: str | None = Field(alias="Cause", default=None)

    @field_validator("cause", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        return value if value is None or isinstance(value, str) else json.dumps(value)

    def message(self) -> str:
        """The cause as text: a Lambda's ``errorMessage`` when the cause is its JSON error payload."""
        message = self.cause or ""
        try:
            payload = json.loads(message)
        except (json.JSONDecodeError, TypeError):
            payload = None
        if isinstance(payload, dict) and payload.get("errorMessage"):
            message = str(payload["errorMessage"])
        return message

    def reason(self) -> str:
        """Human text: the error name and its message."""
        message = self.message()
        return f"{self.error}: {message}" if message else self.error


class RollbackInput(BaseModel):
    """The whole state at the moment a Catch fired: the run may have failed before it had a context."""

    model_config = ConfigDict(extra="ignore")

    pair: str
    deployment_id: str
    error: StateError | None = None
    execution: str = Field(min_length=1)


class RollbackFailedInput(BaseModel):
    """ "Record that the rollback failed": the state plus what made "Roll back" give up."""

    model_config = ConfigDict(extra="ignore")

    pair: str
    deployment_id: str
    error: StateError | None = None
    rollback_error: StateError | None = None
    execution: str = Field(min_length=1)


CommandName = Literal["abort", "pause", "resume", "promote", "approve", "reject"]


class CommandInput(BaseModel):
    """An operator command, as the CLI sends it (``by`` is the caller's identity from STS)."""

    model_config = ConfigDict(extra="forbid")

    pair: str = Field(min_length=1, max_length=40)
    command: CommandName
    by: str = Field(min_length=1, max_length=2048)
    reason: str = Field(default="", max_length=1024)
    full: bool = False
    skip_analysis: bool = False
    deployment_id: str | None = Field(default=None, max_length=128)
