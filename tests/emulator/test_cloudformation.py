"""transform_serverless_templates, state_machine_definitions_from_cloudformation,
support_sqs_queue_policies, and deploy_stack on the real template."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import HERE
from ecs_canary_cli.local import Emulator, deploy_stack

REPO = HERE.parent.parent


def test_sam_transform_runs_server_side(aws: Emulator, stack: dict[str, str]) -> None:
    cfn = aws.client("cloudformation")
    resources = cfn.describe_stack_resources(StackName="emulator-fixture")["StackResources"]
    kinds = {r["LogicalResourceId"]: r["ResourceType"] for r in resources}
    assert kinds["EchoFunction"] == "AWS::Lambda::Function"
    assert kinds["EchoFunctionRole"] == "AWS::IAM::Role"
    assert kinds["RecordFunctionTestEvents"] == "AWS::Events::Rule"
    assert kinds["RetryMachine"] == "AWS::StepFunctions::StateMachine"
    assert not any(kind.startswith("AWS::Serverless::") for kind in kinds.values())


def test_state_machine_definition_from_s3_with_substitutions(aws: Emulator, stack: dict[str, str]) -> None:
    sfn = aws.client("stepfunctions")
    definition = json.loads(
        sfn.describe_state_machine(stateMachineArn=stack["RetryMachineArn"])["definition"]
    )
    call = definition["States"]["Call"]["Parameters"]["FunctionName"]
    assert call.startswith("arn:aws:lambda:us-east-1:123456789012:function:emulator-fixture-FailFunction-")
    assert definition["States"]["Caught"]["Parameters"]["greeting"] == "bonjour"
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in aws.client("cloudformation").describe_stack_resources(StackName="emulator-fixture")[
            "StackResources"
        ]
    }
    assert physical["RetryMachine"] == stack["RetryMachineArn"]


def test_state_machine_definition_object(aws: Emulator, stack: dict[str, str]) -> None:
    described = aws.client("stepfunctions").describe_state_machine(stateMachineArn=stack["WaitMachineArn"])
    assert json.loads(described["definition"])["States"]["Wait"]["Seconds"] == 60
    assert described["type"] == "STANDARD"


def test_real_template_deploys(aws: Emulator, real_stack: dict[str, str]) -> None:
    outputs = real_stack
    assert set(outputs) >= {"StateMachineArn", "TableName", "EventDeadLetterQueueUrl"}
    described = aws.client("stepfunctions").describe_state_machine(stateMachineArn=outputs["StateMachineArn"])
    assert "${" not in described["definition"]
    assert described["loggingConfiguration"]["level"] == "ERROR"
    assert described["tracingConfiguration"] == {"enabled": True}
    events = aws.client("events")
    targets = [
        target
        for rule in events.list_rules(NamePrefix="ecs-canary-under-test-")["Rules"]
        for target in events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    ]
    # The filter, the interrupt function (alarms, stopped tasks), reconcile and the sweeper's schedule.
    assert len(targets) == 5
    assert all(
        t["DeadLetterConfig"]["Arn"].endswith(":" + outputs["EventDeadLetterQueueUrl"].rsplit("/", 1)[-1])
        for t in targets
    )
    queue = aws.client("sqs").get_queue_attributes(
        QueueUrl=outputs["EventDeadLetterQueueUrl"], AttributeNames=["Policy"]
    )
    assert json.loads(queue["Attributes"]["Policy"])["Statement"][0]["Principal"] == {
        "Service": "events.amazonaws.com"
    }
    alarms = aws.client("cloudwatch").describe_alarms(AlarmNames=[outputs["RollbackFailedAlarmName"]])
    (alarm,) = alarms["MetricAlarms"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("EcsCanary", "RollbacksFailed")
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "ecs-canary"}]
    # A second deploy of the same template is an update with nothing to do.
    assert deploy_stack(aws.endpoint, REPO / "template.yaml", "ecs-canary-under-test") == outputs


def test_transform_uses_the_stack_region_not_the_host(aws: Emulator, tmp_path: Path) -> None:
    template = tmp_path / "t.yaml"
    template.write_text(
        "Transform: AWS::Serverless-2016-10-31\n"
        "Resources:\n"
        "  Queue:\n    Type: AWS::SQS::Queue\n"
        "Outputs:\n  Where:\n    Value: !Sub '${AWS::Region}/${AWS::AccountId}'\n"
    )
    outputs = deploy_stack(aws.endpoint, template, "emulator-region", region="eu-west-1")
    assert outputs == {"Where": "eu-west-1/123456789012"}


def test_real_template_scopes_router_writes_to_the_listed_zones_and_load_balancers(aws: Emulator) -> None:
    """HostedZoneIds and LoadBalancerNames take lists: one ARN per entry, no wildcard left."""
    name = "ecs-canary-scoped"
    parameters = {"HostedZoneIds": "Z111,Z222", "LoadBalancerNames": "web-prod,api-prod"}
    deploy_stack(aws.endpoint, REPO / "template.yaml", name, parameters)
    cloudformation = aws.client("cloudformation")
    try:
        iam = aws.client("iam")
        arn = next(
            r["PhysicalResourceId"]
            for r in cloudformation.describe_stack_resources(StackName=name)["StackResources"]
            if r.get("LogicalResourceId") == "TrafficRouterPolicy"
        )
        version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
        statements = (json.loads(document) if isinstance(document, str) else document)["Statement"]
        by_action = {tuple(s["Action"]): s["Resource"] for s in statements}
        zones = "arn:aws:route53:::hostedzone/"
        assert {r for r in by_action[("route53:ChangeResourceRecordSets",)] if r != zones} == {
            f"{zones}Z111",
            f"{zones}Z222",
        }
        prefix = "arn:aws:elasticloadbalancing:us-east-1:123456789012:"
        writes = by_action[("elasticloadbalancing:ModifyListener", "elasticloadbalancing:ModifyRule")]
        assert {r for r in writes if "/app//" not in r} == {
            f"{prefix}{kind}/app/{lb}/*"
            for kind in ("listener", "listener-rule")
            for lb in ("web-prod", "api-prod")
        }
    finally:
        cloudformation.delete_stack(StackName=name)
