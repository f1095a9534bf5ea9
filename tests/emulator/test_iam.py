"""attach_managed_policies_from_cloudformation, authorise_role_session_calls,
lambda_execution_role_credentials, state_machine_role_credentials; and the proof that every
function of template.yaml (and its state machine) is held to the permissions the template gives."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import boto3
import pytest
from botocore.exceptions import ClientError
from conftest import HERE, wait_execution
from ecs_canary_cli.local import Emulator, deploy_stack
from ecs_canary_cli.local.lambda_runtime import FAKE_ACCESS_KEY
from ecs_canary_cli.local.patches.iam import Check, authorised_calls, evaluate
from moto.sts.models import sts_backends
from samtranslator.yaml_helper import yaml_parse

REPO = HERE.parent.parent
ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def iam_stack(aws: Emulator) -> dict[str, str]:
    return deploy_stack(aws.endpoint, HERE / "fixture_iam.yaml", "emulator-iam")


def _delete_stack(aws: Emulator, name: str) -> None:
    cloudformation = aws.client("cloudformation")
    cloudformation.delete_stack(StackName=name)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        stacks = cloudformation.describe_stacks()["Stacks"]
        if not any(s["StackName"] == name and s["StackStatus"] != "DELETE_COMPLETE" for s in stacks):
            return
        time.sleep(0.2)


def _invoke(aws: Emulator, function: str, payload: Any) -> tuple[str | None, dict[str, Any]]:
    answer = aws.client("lambda").invoke(FunctionName=function, Payload=json.dumps(payload).encode())
    return answer.get("FunctionError"), json.loads(answer["Payload"].read() or b"null")


def _session(aws: Emulator, role_arn: str) -> boto3.Session:
    """A session with ``role_arn``'s credentials, as AssumeRole gives them to the account."""
    credentials = aws.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="tester")["Credentials"]
    return boto3.Session(
        region_name=aws.region,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def _role_arn(aws: Emulator, name: str) -> str:
    return str(aws.client("iam").get_role(RoleName=name)["Role"]["Arn"])


# -- evaluation ------------------------------------------------------------------------------------

ROUTE53 = {
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "route53:ChangeResourceRecordSets",
            "Resource": "arn:aws:route53:::hostedzone/Z1",
            "Condition": {
                "ForAllValues:StringEquals": {
                    "route53:ChangeResourceRecordSetsActions": ["UPSERT", "DELETE"],
                    "route53:ChangeResourceRecordSetsRecordTypes": ["A", "AAAA", "CNAME"],
                }
            },
        }
    ]
}


def _change(actions: list[str], types: list[str], zone: str = "Z1") -> Check:
    return Check(
        "route53:ChangeResourceRecordSets",
        f"arn:aws:route53:::hostedzone/{zone}",
        {
            "route53:ChangeResourceRecordSetsActions": actions,
            "route53:ChangeResourceRecordSetsRecordTypes": types,
        },
    )


def test_statements_match_actions_resources_and_the_condition_keys_a_request_tells() -> None:
    assert evaluate([ROUTE53], _change(["UPSERT"], ["A", "CNAME"])).allowed
    assert not evaluate([ROUTE53], _change(["CREATE"], ["A"])).allowed
    assert not evaluate([ROUTE53], _change(["UPSERT"], ["TXT"])).allowed
    assert not evaluate([ROUTE53], _change(["UPSERT"], ["A"], zone="Z2")).allowed
    # Actions match case-insensitively and with wildcards; an unknown resource matches any Resource.
    wildcard = {"Statement": [{"Effect": "Allow", "Action": "Route53:Change*", "Resource": "arn:aws:x:::y"}]}
    assert evaluate([wildcard], Check("route53:ChangeResourceRecordSets")).allowed
    table = {
        "Statement": [
            {"Effect": "Allow", "Action": "dynamodb:Query", "Resource": "arn:aws:dynamodb:*:*:table/T"}
        ]
    }
    assert evaluate([table], Check("dynamodb:Query", "arn:aws:dynamodb:us-east-1:1:table/T")).allowed
    assert not evaluate(
        [table], Check("dynamodb:Query", "arn:aws:dynamodb:us-east-1:1:table/T/index/I")
    ).allowed
    # A condition on a key the request does not tell holds; one the request contradicts does not.
    events = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "events:PutEvents",
                "Resource": "*",
                "Condition": {"StringEquals": {"events:source": "mine", "aws:SourceVpc": "vpc-1"}},
            }
        ]
    }
    assert evaluate([events], Check("events:PutEvents", None, {"events:source": ["mine"]})).allowed
    assert not evaluate([events], Check("events:PutEvents", None, {"events:source": ["theirs"]})).allowed


def test_an_explicit_deny_wins_over_any_allow() -> None:
    allow = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    deny = {"Statement": {"Effect": "Deny", "NotAction": "sqs:*", "Resource": "*"}}
    assert evaluate([allow, deny], Check("sqs:SendMessage")).allowed
    decision = evaluate([allow, deny], Check("sns:Publish"))
    assert (decision.allowed, decision.explicit_deny) == (False, True)
    assert not evaluate([], Check("sqs:SendMessage")).allowed


# -- roles and credentials -------------------------------------------------------------------------


def test_role_gets_its_managed_policy_arns(aws: Emulator, iam_stack: dict[str, str]) -> None:
    attached = aws.client("iam").list_attached_role_policies(RoleName=iam_stack["SendFunctionRole"])
    names = [p["PolicyName"] for p in attached["AttachedPolicies"]]
    assert any(name.startswith("emulator-iam-SendToAllowed-") for name in names)


def test_functions_run_with_their_execution_roles_session_credentials(
    aws: Emulator, iam_stack: dict[str, str]
) -> None:
    error, _ = _invoke(aws, iam_stack["SendFunction"], {"queue": iam_stack["AllowedUrl"]})
    assert error is None
    function = aws.client("lambda").get_function_configuration(FunctionName=iam_stack["SendFunction"])
    role = function["Role"]
    sessions = [r for r in sts_backends[ACCOUNT]["aws"].assumed_roles if r.role_arn == role]
    assert [s.session_name for s in sessions] == [iam_stack["SendFunction"]]
    assert sessions[0].access_key_id.startswith("ASIA")
    assert sessions[0].access_key_id != FAKE_ACCESS_KEY


def test_a_function_is_denied_what_its_role_does_not_allow(aws: Emulator, iam_stack: dict[str, str]) -> None:
    error, answer = _invoke(aws, iam_stack["SendFunction"], {"queue": iam_stack["OtherUrl"]})
    assert error == "Unhandled"
    message = answer["errorMessage"]
    assert "AccessDenied" in message
    role = iam_stack["SendFunctionRole"]
    queue = iam_stack["OtherUrl"].rsplit("/", 1)[-1]
    assert (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{iam_stack['SendFunction']} is not authorized "
        f"to perform: sqs:SendMessage on resource: arn:aws:sqs:us-east-1:{ACCOUNT}:{queue} because no "
        "identity-based policy allows the sqs:SendMessage action"
    ) in message


def test_the_state_machine_role_authorises_its_tasks(aws: Emulator, iam_stack: dict[str, str]) -> None:
    sfn = aws.client("stepfunctions")
    payload = json.dumps({"queue": iam_stack["AllowedUrl"]})
    allowed = sfn.start_execution(stateMachineArn=iam_stack["InvokingMachineArn"], input=payload)
    assert wait_execution(aws, allowed["executionArn"])["status"] == "SUCCEEDED"
    denied = sfn.start_execution(stateMachineArn=iam_stack["UnauthorisedMachineArn"], input=payload)
    described = wait_execution(aws, denied["executionArn"])
    assert described["status"] == "FAILED"
    assert "AccessDenied" in described.get("error", "") + described.get("cause", "")
    assert "lambda:InvokeFunction" in described.get("cause", "")


def test_the_state_machine_role_authorises_service_integrations(
    aws: Emulator, iam_stack: dict[str, str]
) -> None:
    sfn = aws.client("stepfunctions")
    allowed = sfn.start_execution(stateMachineArn=iam_stack["PutEventsMachineArn"], input="{}")
    assert wait_execution(aws, allowed["executionArn"])["status"] == "SUCCEEDED"
    denied = sfn.start_execution(stateMachineArn=iam_stack["UnauthorisedPutEventsMachineArn"], input="{}")
    described = wait_execution(aws, denied["executionArn"])
    assert described["status"] == "FAILED"
    assert "AccessDenied" in described.get("error", "") + described.get("cause", "")
    assert "events:PutEvents on resource: arn:aws:events:us-east-1:" in described.get("cause", "")


def test_denials_answer_in_each_protocols_error_shape(aws: Emulator, iam_stack: dict[str, str]) -> None:
    session = _session(aws, _role_arn(aws, iam_stack["SendFunctionRole"]))

    def denied(service: str, call: Callable[[Any], Any]) -> tuple[str, int]:
        with pytest.raises(ClientError) as raised:
            call(cast(Any, session).client(service, endpoint_url=aws.endpoint))
        response = raised.value.response
        return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]

    assert denied("dynamodb", lambda c: c.list_tables()) == ("AccessDeniedException", 400)
    assert denied("lambda", lambda c: c.list_functions()) == ("AccessDeniedException", 403)
    assert denied("stepfunctions", lambda c: c.list_state_machines()) == ("AccessDeniedException", 400)
    assert denied("route53", lambda c: c.list_hosted_zones()) == ("AccessDenied", 403)
    assert denied("elbv2", lambda c: c.describe_load_balancers()) == ("AccessDenied", 403)
    assert "AccessDenied" in denied("cloudwatch", lambda c: c.describe_alarms())[0]
    # GetCallerIdentity needs no permission.
    identity = session.client("sts", endpoint_url=aws.endpoint).get_caller_identity()
    assert ":assumed-role/" in identity["Arn"]


def test_iam_false_lets_every_call_through(aws: Emulator, iam_stack: dict[str, str]) -> None:
    session = _session(aws, _role_arn(aws, iam_stack["SendFunctionRole"]))
    sqs = session.client("sqs", endpoint_url=aws.endpoint)
    with pytest.raises(ClientError):
        sqs.send_message(QueueUrl=iam_stack["OtherUrl"], MessageBody="{}")
    aws.options.iam = False
    try:
        sqs.send_message(QueueUrl=iam_stack["OtherUrl"], MessageBody="{}")
        aws.options.reset()
        assert not aws.options.iam  # a deployment-wide choice, not a fault to reset
    finally:
        aws.options.iam = True
    assert authorised_calls()["denied"] >= 1


# -- template.yaml ---------------------------------------------------------------------------------

_A = f"arn:aws:ecs:us-east-1:{ACCOUNT}"
_TASK = {
    "clusterArn": f"{_A}:cluster/c",
    "taskArn": f"{_A}:task/c/abc",
    "taskDefinitionArn": f"{_A}:task-definition/f:1",
    "group": "service:svc",
    "startedBy": "ecs-svc/123",
    "lastStatus": "RUNNING",
    "desiredStatus": "RUNNING",
}
_CONTEXT = {
    "pair": "p",
    "deployment_id": "d",
    "live": "a",
    "green": "b",
    "green_release": "r",
    "spec": {},
    "snapshot": {},
    "green_target_group_arn": "",
    "green_load_balancer_arn": "",
}


def _event(detail_type: str, source: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "e1",
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": "2024-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }


def _execution(stack: str) -> str:
    return f"arn:aws:states:us-east-1:{ACCOUNT}:execution:{stack}-canary:x"


# Each function, the permission its first call needs, and an event that makes it call.
FUNCTIONS: dict[str, tuple[str, Callable[[str], dict[str, Any]]]] = {
    "FilterFunction": ("dynamodb:GetItem", lambda _: _event("ECS Task State Change", "aws.ecs", _TASK)),
    "InterruptFunction": (
        "dynamodb:Query",
        lambda _: _event(
            "CloudWatch Alarm State Change", "aws.cloudwatch", {"alarmName": "a", "state": {"value": "ALARM"}}
        ),
    ),
    "CommandFunction": ("dynamodb:GetItem", lambda _: {"pair": "p", "command": "abort", "by": "me"}),
    "PrepareFunction": (
        "dynamodb:GetItem",
        lambda s: {
            "input": {
                "pair": "p",
                "deployment_id": "d",
                "release": {"service": "s", "deployment": "ecs-svc/1", "task_definition": "td"},
            },
            "execution": _execution(s),
        },
    ),
    "SteadyFunction": (
        "dynamodb:GetItem",
        lambda s: {"deployment": _CONTEXT, "steady": {}, "execution": _execution(s)},
    ),
    "ListenFunction": (
        "dynamodb:GetItem",
        lambda s: {"deployment": _CONTEXT, "token": "t", "execution": _execution(s)},
    ),
    "HookFunction": (
        "dynamodb:GetItem",
        lambda s: {
            "pair": "p",
            "deployment_id": "d",
            "hooks": {"stage": "before_test_traffic", "key": "k"},
            "execution": _execution(s),
        },
    ),
    "AdvanceFunction": (
        "dynamodb:GetItem",
        lambda s: {"deployment": _CONTEXT, "cursor": {}, "execution": _execution(s)},
    ),
    "PromoteFunction": (
        "dynamodb:GetItem",
        lambda s: {"deployment": _CONTEXT, "cursor": {}, "execution": _execution(s)},
    ),
    "RollbackFunction": (
        "dynamodb:GetItem",
        lambda s: {"pair": "p", "deployment_id": "d", "execution": _execution(s)},
    ),
    "RollbackFailedFunction": (
        "dynamodb:GetItem",
        lambda s: {"pair": "p", "deployment_id": "d", "execution": _execution(s)},
    ),
    "ReconcileFunction": (
        "dynamodb:GetItem",
        lambda s: _event(
            "Step Functions Execution Status Change",
            "aws.states",
            {
                "executionArn": _execution(s),
                "stateMachineArn": f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:{s}-canary",
                "name": "x",
                "status": "ABORTED",
                "input": json.dumps({"pair": "p", "deployment_id": "d"}),
            },
        ),
    ),
    "SweeperFunction": ("dynamodb:Query", lambda _: _event("Scheduled Event", "aws.events", {})),
}


def _template(function: str, action: str) -> dict[str, Any]:
    """template.yaml with ``action`` taken out of ``function``'s policies (the managed policies it
    references are copied inline first, so the other functions keep theirs); for the state machine,
    without its LambdaInvokePolicy on the function ``action`` names."""
    template: dict[str, Any] = yaml_parse((REPO / "template.yaml").read_text())
    resources = template["Resources"]
    # Alarms (and the dashboard that shows them) have no role; their state-change events would
    # reach the rules of the session's other stacks.
    for name in [
        n
        for n, r in resources.items()
        if r["Type"] in {"AWS::CloudWatch::Alarm", "AWS::CloudWatch::Dashboard"}
    ]:
        del resources[name]
    for output in ("RollbackFailedAlarmName", "DashboardName"):
        del template["Outputs"][output]
    template["Globals"]["Function"]["CodeUri"] = str(REPO / "functions")
    machine = resources["CanaryStateMachine"]["Properties"]
    machine["DefinitionUri"] = str(REPO / machine["DefinitionUri"])
    if function == "CanaryStateMachine":
        invoke = {"LambdaInvokePolicy": {"FunctionName": {"Ref": action}}}
        assert invoke in machine["Policies"]
        machine["Policies"] = [p for p in machine["Policies"] if p != invoke]
        return template
    properties = resources[function]["Properties"]
    kept, removed = [], 0
    for entry in properties["Policies"]:
        referenced = resources.get(entry.get("Ref", ""), {}) if isinstance(entry, dict) else {}
        policy = entry
        if referenced.get("Type") == "AWS::IAM::ManagedPolicy":
            policy = {"Statement": copy.deepcopy(referenced["Properties"]["PolicyDocument"]["Statement"])}
        if isinstance(policy, dict) and "Statement" in policy:
            statements = []
            for statement in policy["Statement"]:
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                removed += actions.count(action)
                if rest := [a for a in actions if a != action]:
                    statements.append({**statement, "Action": rest})
            if statements:
                kept.append({**policy, "Statement": statements})
        else:
            kept.append(policy)
    assert removed, f"{function} has no {action} to remove"
    properties["Policies"] = kept
    return template


Deployer = Callable[[str, str], tuple[str, dict[str, str]]]


@pytest.fixture
def stack_without(aws: Emulator, tmp_path: Path) -> Iterator[Deployer]:
    """Deploys template.yaml less one permission as its own stack (deleted afterwards)."""
    deployed: list[str] = []

    def deploy(function: str, action: str) -> tuple[str, dict[str, str]]:
        name = f"iam-{function.removesuffix('Function').lower()}"
        path = tmp_path / "template.json"
        path.write_text(json.dumps(_template(function, action)))
        deployed.append(name)
        return name, deploy_stack(aws.endpoint, path, name, {"LogLevel": "WARNING"})

    yield deploy
    for name in deployed:
        _delete_stack(aws, name)


def _function_name(aws: Emulator, stack: str, function: str) -> str:
    resources = aws.client("cloudformation").describe_stack_resources(StackName=stack)["StackResources"]
    return next(
        str(r["PhysicalResourceId"])
        for r in resources
        if r.get("LogicalResourceId") == function and r.get("ResourceType") == "AWS::Lambda::Function"
    )


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_each_function_is_held_to_its_template_permissions(
    aws: Emulator, stack_without: Deployer, function: str
) -> None:
    action, event = FUNCTIONS[function]
    stack, _ = stack_without(function, action)
    error, answer = _invoke(aws, _function_name(aws, stack, function), event(stack))
    assert error == "Unhandled", answer
    assert "AccessDenied" in answer["errorMessage"]
    assert f"{function}Role" in answer["errorMessage"]
    assert f"is not authorized to perform: {action} on resource: " in answer["errorMessage"]


def test_the_state_machine_is_held_to_its_template_permissions(
    aws: Emulator, stack_without: Deployer
) -> None:
    stack, outputs = stack_without("CanaryStateMachine", "PrepareFunction")
    started = aws.client("stepfunctions").start_execution(
        stateMachineArn=outputs["StateMachineArn"],
        input=json.dumps(
            {
                "pair": "p",
                "deployment_id": "d",
                "release": {"service": "s", "deployment": "ecs-svc/1", "task_definition": "td"},
            }
        ),
    )
    wait_execution(aws, started["executionArn"], timeout=30)
    history = aws.client("stepfunctions").get_execution_history(executionArn=started["executionArn"])
    failures = [e["taskFailedEventDetails"] for e in history["events"] if e["type"] == "TaskFailed"]
    assert failures, history["events"]
    first = failures[0]
    assert "AccessDenied" in first.get("error", "") + first.get("cause", "")
    assert f"assumed-role/{stack}-CanaryStateMachineRole-" in first.get("cause", "")
    assert "lambda:InvokeFunction" in first.get("cause", "")
