"""Parser models of the events and state-machine payloads the handlers accept.

Handlers parse their input into these models first, so a malformed event fails with a message
naming the bad field before anything touches traffic.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, field_validator


class EcsTaskStateChange(BaseModel):
    """The ``detail`` of an ECS "Task State Change" event (only the fields the filter reads)."""

    model_config = ConfigDict(extra="ignore")

    cluster_arn: str = Field(alias="clusterArn", min_length=1)
    task_arn: str = Field(alias="taskArn", min_length=1)
    task_definition_arn: str = Field(alias="taskDefinitionArn", min_length=1)
    group: str | None = None
    started_by: str | None = Field(default=None, alias="startedBy")
    last_status: str = Field(alias="lastStatus")
    desired_status: str = Field(alias="desiredStatus")

    @property
    def service_name(self) -> str | None:
        """``service:web-green`` → ``web-green``; None for standalone tasks."""
        if self.group and self.group.startswith("service:"):
            return self.group.split(":", 1)[1] or None
        return None


class EcsTaskStateChangeEvent(EventBridgeModel):
    detail: EcsTaskStateChange


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
    model_config = ConfigDict(extra="forbid")

    service: str = Field(min_length=1)
    deployment: str = Field(min_length=1)
    task_definition: str = Field(min_length=1)


class ExecutionInput(BaseModel):
    """What the filter starts an execution with (and what every state carries along)."""

    model_config = ConfigDict(extra="allow")

    pair: str = Field(min_length=1)
    deployment_id: str = Field(min_length=1)
    release: ReleaseModel


class CursorModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    step_index: int = -1
    inconclusive: int = 0
    shifted_at: str | None = None


class DeploymentContext(BaseModel):
    """The static facts of one run, produced by "Load spec and snapshot traffic"."""

    model_config = ConfigDict(extra="forbid")

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
    deployment: DeploymentContext
    steady: SteadyState


class AdvanceInput(BaseModel):
    deployment: DeploymentContext
    cursor: CursorModel


class StateError(BaseModel):
    """What a Catch stores at ``$.error``: the error name and its cause."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    error: str = Field(alias="Error", default="States.Unknown")
    cause: str | None = Field(alias="Cause", default=None)

    @field_validator("cause", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        return value if value is None or isinstance(value, str) else json.dumps(value)

    def reason(self) -> str:
        """Human text: a Lambda's ``errorMessage`` when the cause is its JSON error payload."""
        message = self.cause or ""
        try:
            payload = json.loads(message)
        except (json.JSONDecodeError, TypeError):
            payload = None
        if isinstance(payload, dict) and payload.get("errorMessage"):
            message = str(payload["errorMessage"])
        return f"{self.error}: {message}" if message else self.error


class RollbackInput(BaseModel):
    """The whole state at the moment a Catch fired: the run may have failed before it had a context."""

    model_config = ConfigDict(extra="ignore")

    pair: str
    deployment_id: str
    error: StateError | None = None
