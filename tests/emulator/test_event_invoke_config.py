"""lambda_event_invoke_configs_from_cloudformation: a stack's AWS::Lambda::EventInvokeConfig is the
function's asynchronous-invocation config, so a function error from an EventBridge-invoked
function ends, after Lambda's retries, in the on-failure destination (not the rule's DLQ).
lambda_event_invoke_configs_per_qualifier: each version and alias has a config of its own."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import HERE, receive
from ecs_canary_cli.local import Emulator, deploy_stack

REPO = HERE.parent.parent


@pytest.fixture(scope="module")
def failing(aws: Emulator) -> dict[str, str]:
    """tests/emulator/fixture_async_failures.yaml, deployed once for this module."""
    return deploy_stack(aws.endpoint, HERE / "fixture_async_failures.yaml", "emulator-async-failures")


def _physical_ids(aws: Emulator, stack_name: str) -> dict[str, tuple[str, str]]:
    resources = aws.client("cloudformation").describe_stack_resources(StackName=stack_name)["StackResources"]
    # moto lists a resource of a type it cannot create as an empty entry: not this module's concern.
    return {
        r["LogicalResourceId"]: (r["ResourceType"], r.get("PhysicalResourceId", ""))
        for r in resources
        if "LogicalResourceId" in r
    }


def test_stack_resource_sets_the_functions_async_config(aws: Emulator, failing: dict[str, str]) -> None:
    kind, physical_id = _physical_ids(aws, "emulator-async-failures")["AlwaysFailsFunctionEventInvokeConfig"]
    assert kind == "AWS::Lambda::EventInvokeConfig"
    assert physical_id
    config = aws.client("lambda").get_function_event_invoke_config(
        FunctionName=failing["AlwaysFailsFunction"]
    )
    assert config["MaximumRetryAttempts"] == 2
    assert config["MaximumEventAgeInSeconds"] == 21600
    assert config["DestinationConfig"]["OnFailure"] == {"Destination": failing["FailuresArn"]}


def test_function_error_from_a_rule_ends_in_the_on_failure_destination(
    aws: Emulator, failing: dict[str, str]
) -> None:
    receive(aws, failing["FailuresUrl"], 10_000, timeout=0.2)
    started = time.monotonic()
    aws.client("events").put_events(
        Entries=[{"Source": "emulator.async-failure", "DetailType": "Test", "Detail": json.dumps({"n": 1})}]
    )
    [failure] = receive(aws, failing["FailuresUrl"], 1, timeout=15)
    elapsed = time.monotonic() - started
    record: dict[str, Any] = failure["body"]
    assert set(record) == {
        "version",
        "timestamp",
        "requestContext",
        "requestPayload",
        "responseContext",
        "responsePayload",
    }
    context = record["requestContext"]
    assert context["condition"] == "RetriesExhausted"
    assert context["approximateInvokeCount"] == 3  # the first attempt and MaximumRetryAttempts: 2
    assert context["functionArn"] == f"{failing['AlwaysFailsFunctionArn']}:$LATEST"
    event = record["requestPayload"]
    assert event["source"] == "emulator.async-failure"
    assert event["detail-type"] == "Test"
    assert event["detail"] == {"n": 1}
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert record["responsePayload"]["errorType"] == "FlakyError"
    # Lambda retries one, then two minutes apart (emulated): 180 s at the tests' time scale.
    assert elapsed >= aws.clock.scaled(180) * 0.9
    # The rule handed the event to Lambda: its own retry policy and dead-letter queue are not involved.
    assert aws.wait_for_idle(10)
    assert receive(aws, failing["RuleDeadLettersUrl"], 1, timeout=0.2) == []


def _invoke_config_template(path: Path, options: str) -> Path:
    path.write_text(
        "Transform: AWS::Serverless-2016-10-31\n"
        "Resources:\n"
        "  Sink:\n    Type: AWS::SQS::Queue\n"
        "  Fn:\n"
        "    Type: AWS::Serverless::Function\n"
        "    Properties:\n"
        "      Runtime: python3.13\n"
        "      Handler: index.handler\n"
        "      InlineCode: 'def handler(event, context):\\n    return event\\n'\n"
        f"{options}"
        "Outputs:\n"
        "  Fn:\n    Value: !Ref Fn\n"
        "  SinkArn:\n    Value: !GetAtt Sink.Arn\n"
    )
    return path


def test_update_replaces_and_removal_deletes_the_config(aws: Emulator, tmp_path: Path) -> None:
    template = tmp_path / "t.yaml"
    lam = aws.client("lambda")
    first = (
        "      EventInvokeConfig:\n"
        "        MaximumRetryAttempts: 1\n"
        "        DestinationConfig:\n"
        "          OnFailure:\n"
        "            Type: SQS\n"
        "            Destination: !GetAtt Sink.Arn\n"
    )
    outputs = deploy_stack(aws.endpoint, _invoke_config_template(template, first), "emulator-invoke-config")
    config = lam.get_function_event_invoke_config(FunctionName=outputs["Fn"])
    assert config["MaximumRetryAttempts"] == 1
    assert config["DestinationConfig"]["OnFailure"] == {"Destination": outputs["SinkArn"]}

    second = (
        "      EventInvokeConfig:\n        MaximumRetryAttempts: 0\n        MaximumEventAgeInSeconds: 60\n"
    )
    deploy_stack(aws.endpoint, _invoke_config_template(template, second), "emulator-invoke-config")
    listed = lam.list_function_event_invoke_configs(FunctionName=outputs["Fn"])
    [config] = listed["FunctionEventInvokeConfigs"]
    assert config["MaximumRetryAttempts"] == 0
    assert config["MaximumEventAgeInSeconds"] == 60
    assert "OnFailure" not in (config.get("DestinationConfig") or {})

    deploy_stack(aws.endpoint, _invoke_config_template(template, ""), "emulator-invoke-config")
    with pytest.raises(ClientError) as info:
        lam.get_function_event_invoke_config(FunctionName=outputs["Fn"])
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_real_template_sends_failed_events_of_rule_targets_to_the_dead_letter_queue(
    aws: Emulator, real_stack: dict[str, str]
) -> None:
    outputs = real_stack
    queue_arn = aws.client("sqs").get_queue_attributes(
        QueueUrl=outputs["EventDeadLetterQueueUrl"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    physical = _physical_ids(aws, "ecs-canary-under-test")
    for function in ("FilterFunction", "ReconcileFunction"):
        assert physical[f"{function}EventInvokeConfig"][0] == "AWS::Lambda::EventInvokeConfig"
        # On $LATEST, or on the alias with AutoPublishAlias: the listing has every qualifier's.
        [config] = aws.client("lambda").list_function_event_invoke_configs(
            FunctionName=physical[function][1]
        )["FunctionEventInvokeConfigs"]
        assert config["MaximumRetryAttempts"] == 2
        assert config["MaximumEventAgeInSeconds"] == 21600
        assert config["DestinationConfig"]["OnFailure"] == {"Destination": queue_arn}


def test_each_qualifier_has_its_own_config(aws: Emulator, failing: dict[str, str]) -> None:
    lam = aws.client("lambda")
    name = "emulator-invoke-config-qualifiers"
    role = lam.get_function_configuration(FunctionName=failing["AlwaysFailsFunction"])["Role"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", "def handler(event, context):\n    return event\n")
    arn = lam.create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=role,
        Handler="index.handler",
        Code={"ZipFile": buffer.getvalue()},
    )["FunctionArn"]
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")

    lam.put_function_event_invoke_config(FunctionName=name, Qualifier="live", MaximumRetryAttempts=1)
    lam.put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=0, MaximumEventAgeInSeconds=60
    )
    # Update changes only what it names; Put replaces the whole config.
    lam.update_function_event_invoke_config(FunctionName=name, Qualifier="live", MaximumEventAgeInSeconds=120)
    live = lam.get_function_event_invoke_config(FunctionName=name, Qualifier="live")
    assert (live["FunctionArn"], live["MaximumRetryAttempts"], live["MaximumEventAgeInSeconds"]) == (
        f"{arn}:live",
        1,
        120,
    )
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=2)
    latest = lam.get_function_event_invoke_config(FunctionName=name)
    assert latest["MaximumRetryAttempts"] == 2
    assert "MaximumEventAgeInSeconds" not in latest
    with pytest.raises(ClientError) as info:
        lam.get_function_event_invoke_config(FunctionName=name, Qualifier="1")
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"
    listed = lam.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"]
    assert sorted(c["FunctionArn"] for c in listed) == sorted([arn, f"{arn}:live"])

    lam.delete_function_event_invoke_config(FunctionName=name, Qualifier="live")
    listed = lam.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"]
    assert [c["FunctionArn"] for c in listed] == [arn]
