"""Where the deployed stack is: its table, its state machine, and clients in the right account and region.

The CLI never asks for a table name in the common case: the SAM stack publishes it as an
Output, so ``--stack`` (default ``ecs-canary``) is enough. ``--table`` and the
``ECS_CANARY_*`` variables exist for stacks deployed under other names or for pointing
at the local emulator without CloudFormation.

Clients come from one ``boto3.Session`` so ``AWS_PROFILE``, ``AWS_REGION`` and
``AWS_ENDPOINT_URL`` behave exactly as they do for the AWS CLI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError, ProfileNotFound
from ecs_canary.aws import CLIENT_CONFIG
from ecs_canary.store import Store

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client
    from mypy_boto3_route53 import Route53Client
    from mypy_boto3_stepfunctions import SFNClient

__all__ = [
    "DEFAULT_STACK",
    "ENV_COMMAND_FUNCTION",
    "ENV_STACK",
    "ENV_STATE_MACHINE_ARN",
    "ENV_TABLE",
    "ContextError",
    "StackContext",
    "make_session",
    "resolve",
]

DEFAULT_STACK = "ecs-canary"
ENV_STACK = "ECS_CANARY_STACK"
ENV_TABLE = "ECS_CANARY_TABLE"
ENV_STATE_MACHINE_ARN = "ECS_CANARY_STATE_MACHINE_ARN"
ENV_COMMAND_FUNCTION = "ECS_CANARY_COMMAND_FUNCTION"
OUTPUT_TABLE = "TableName"
OUTPUT_STATE_MACHINE = "StateMachineArn"
OUTPUT_COMMAND_FUNCTION = "CommandFunctionArn"
OUTPUT_HOOK_PREFIX = "HookFunctionPrefix"


class ContextError(Exception):
    """The stack, table or region could not be determined; the message says what to pass instead."""


@dataclass
class StackContext:
    """A resolved stack: table name, state machine ARN (if known) and a session for its region."""

    session: boto3.Session
    region: str
    table_name: str
    state_machine_arn: str | None
    stack: str | None
    command_function: str | None = None
    hook_prefix: str | None = None
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    def client(self, service_name: str) -> Any:
        """One cached client per service, with the handlers' retry and timeout policy."""
        if service_name not in self._clients:
            self._clients[service_name] = self.session.client(
                service_name,  # type: ignore[call-overload]
                region_name=self.region,
                config=CLIENT_CONFIG,
            )
        return self._clients[service_name]

    @property
    def ecs(self) -> ECSClient:
        client: ECSClient = self.client("ecs")
        return client

    @property
    def elbv2(self) -> ElasticLoadBalancingv2Client:
        client: ElasticLoadBalancingv2Client = self.client("elbv2")
        return client

    @property
    def route53(self) -> Route53Client:
        client: Route53Client = self.client("route53")
        return client

    @property
    def cloudwatch(self) -> CloudWatchClient:
        client: CloudWatchClient = self.client("cloudwatch")
        return client

    @property
    def sfn(self) -> SFNClient:
        client: SFNClient = self.client("stepfunctions")
        return client

    def store(self) -> Store:
        return Store(self.table_name, self.client("dynamodb"))


def make_session(profile: str | None = None, region: str | None = None) -> boto3.Session:
    """A session honouring ``--profile``/``--region`` first, then the usual AWS environment and config."""
    try:
        # Like the AWS CLI, AWS_REGION counts too (botocore itself only reads AWS_DEFAULT_REGION).
        return boto3.Session(profile_name=profile, region_name=region or os.environ.get("AWS_REGION") or None)
    except ProfileNotFound as exc:
        raise ContextError(f"AWS profile {profile!r} not found: check ~/.aws/config or --profile") from exc


def _stack_outputs(session: boto3.Session, region: str, stack: str) -> dict[str, str]:
    cloudformation: CloudFormationClient = session.client(
        "cloudformation", region_name=region, config=CLIENT_CONFIG
    )
    try:
        stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "ValidationError" and "does not exist" in error.get("Message", ""):
            stacks = []
        else:
            raise
    if not stacks:
        raise ContextError(
            f"stack {stack} not found in {region}: deploy it with `sam deploy --guided` or pass --table"
        )
    return {
        str(output["OutputKey"]): str(output["OutputValue"])
        for output in stacks[0].get("Outputs", [])
        if "OutputKey" in output and "OutputValue" in output
    }


def resolve(
    *,
    stack: str | None = None,
    table: str | None = None,
    state_machine_arn: str | None = None,
    profile: str | None = None,
    region: str | None = None,
) -> StackContext:
    """Find the table and state machine: flags first, then ``ECS_CANARY_*`` variables, then stack Outputs.

    The stack is only read when no table name was given, so a table override works
    without CloudFormation permissions (the state machine ARN is then optional).
    """
    session = make_session(profile, region)
    region_name = session.region_name
    if not region_name:
        raise ContextError("no AWS region configured: pass --region, set AWS_REGION or configure a profile")
    table_name = table or os.environ.get(ENV_TABLE) or None
    machine = state_machine_arn or os.environ.get(ENV_STATE_MACHINE_ARN) or None
    command = os.environ.get(ENV_COMMAND_FUNCTION) or None
    stack_name = stack or os.environ.get(ENV_STACK) or DEFAULT_STACK
    if table_name is None:
        outputs = _stack_outputs(session, region_name, stack_name)
        table_name = outputs.get(OUTPUT_TABLE)
        if not table_name:
            raise ContextError(
                f"stack {stack_name} in {region_name} has no {OUTPUT_TABLE} output: "
                "is it an ecs-canary stack? Pass --table to name the table directly"
            )
        machine = machine or outputs.get(OUTPUT_STATE_MACHINE) or None
        command = command or outputs.get(OUTPUT_COMMAND_FUNCTION) or None
        prefix = outputs.get(OUTPUT_HOOK_PREFIX) or None
        return StackContext(session, region_name, table_name, machine, stack_name, command, prefix)
    return StackContext(session, region_name, table_name, machine, None, command)
