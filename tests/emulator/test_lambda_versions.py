"""publish_immutable_lambda_versions, address_lambda_aliases, read_lambda_invoke_qualifier,
lambda_event_invoke_configs_per_qualifier (through an alias), lambda_versions_from_cloudformation,
lambda_aliases_from_cloudformation, update_stack_resources_in_dependency_order,
retain_resources_removed_by_stack_updates, describe_the_state_machine_an_execution_runs, and the
version-aware run_lambda_handlers_in_process (also as Step Functions' lambda:invoke target).

The module deploys tests/emulator/fixture_versions.yaml (SAM, AutoPublishAlias on every function),
starts an execution that waits before calling a function version, and updates the stack with new
code, environment and timeout while it waits.
"""

from __future__ import annotations

import io
import json
import shutil
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import HERE, purge, receive, wait_execution
from ecs_canary_cli.local import Emulator, deploy_stack

STACK = "emulator-versions"
# Emulated seconds the in-flight execution waits: long enough for the stack update to finish first.
IN_FLIGHT_WAIT = 500


def _history_types(aws: Emulator, execution_arn: str) -> list[str]:
    events = aws.client("stepfunctions").get_execution_history(executionArn=execution_arn)["events"]
    return [str(e["type"]) for e in events]


def _wait_until_waiting(aws: Emulator, execution_arn: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while "WaitStateEntered" not in _history_types(aws, execution_arn):
        assert time.monotonic() < deadline, "the execution never reached its Wait state"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def versions(aws: Emulator, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The stack at revision one, then updated to revision two while an execution waits."""
    workdir = tmp_path_factory.mktemp("versions")
    template = workdir / "fixture_versions.yaml"
    shutil.copy(HERE / "fixture_versions.yaml", template)
    shutil.copytree(HERE / "versions_fixture", workdir / "versions_fixture")
    before = deploy_stack(aws.endpoint, template, STACK, {"Revision": "one", "Timeout": "5"})
    version_ids_before = _version_resources(aws)

    sfn = aws.client("stepfunctions")
    in_flight = sfn.start_execution(
        stateMachineArn=before["PinnedMachineArn"],
        name="in-flight",
        input=json.dumps({"wait": IN_FLIGHT_WAIT}),
    )["executionArn"]
    _wait_until_waiting(aws, in_flight)

    handler = workdir / "versions_fixture" / "versions_handlers.py"
    source = handler.read_text()
    assert 'CODE_REVISION = "one"' in source
    handler.write_text(source.replace('CODE_REVISION = "one"', 'CODE_REVISION = "two"'))
    after = deploy_stack(aws.endpoint, template, STACK, {"Revision": "two", "Timeout": "9"})
    still_waiting = "WaitStateExited" not in _history_types(aws, in_flight)
    fresh = sfn.start_execution(
        stateMachineArn=after["PinnedMachineArn"], name="fresh", input=json.dumps({"wait": 0})
    )["executionArn"]
    return {
        "before": before,
        "after": after,
        "version_ids_before": version_ids_before,
        "in_flight": in_flight,
        "in_flight_waited_through_update": still_waiting,
        "fresh": fresh,
    }


def _version_resources(aws: Emulator) -> dict[str, str]:
    """Logical id -> physical id of the stack's AWS::Lambda::Version resources."""
    resources = aws.client("cloudformation").describe_stack_resources(StackName=STACK)["StackResources"]
    return {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in resources
        if r["ResourceType"] == "AWS::Lambda::Version"
    }


def _invoke(aws: Emulator, function_name: str, qualifier: str | None = None) -> tuple[str, dict[str, Any]]:
    """(x-amz-executed-version, the handler's result)."""
    kwargs = {"Qualifier": qualifier} if qualifier else {}
    response = aws.client("lambda").invoke(FunctionName=function_name, Payload=b"{}", **kwargs)
    assert "FunctionError" not in response, response["Payload"].read()
    return str(response["ExecutedVersion"]), json.loads(response["Payload"].read())


def test_version_ref_is_the_version_arn_and_the_alias_follows_the_new_version(
    aws: Emulator, versions: dict[str, Any]
) -> None:
    before, after = versions["before"], versions["after"]
    function_arn = before["DescribeFunctionArn"]
    assert before["DescribeVersion"] == f"{function_arn}:1"
    assert after["DescribeVersion"] == f"{function_arn}:2"
    assert before["DescribeAlias"] == after["DescribeAlias"] == f"{function_arn}:live"
    # SAM names each version resource by a hash of the code: the update replaced it in the template.
    now = _version_resources(aws)
    assert set(now).isdisjoint(versions["version_ids_before"])
    assert f"{function_arn}:2" in now.values()
    assert f"{function_arn}:1" in versions["version_ids_before"].values()
    kinds = {
        r["LogicalResourceId"]: (r["ResourceType"], r["PhysicalResourceId"])
        for r in aws.client("cloudformation").describe_stack_resources(StackName=STACK)["StackResources"]
    }
    assert kinds["DescribeFunctionAliaslive"] == ("AWS::Lambda::Alias", f"{function_arn}:live")
    lam = aws.client("lambda")
    alias = lam.get_alias(FunctionName=after["DescribeFunction"], Name="live")
    assert alias["FunctionVersion"] == "2"  # from the version resource's GetAtt Version
    listed = lam.list_versions_by_function(FunctionName=after["DescribeFunction"])["Versions"]
    assert [v["Version"] for v in listed] == ["$LATEST", "1", "2"]


def test_the_old_version_is_retained_with_its_own_code_and_configuration(
    aws: Emulator, versions: dict[str, Any]
) -> None:
    name = versions["after"]["DescribeFunction"]
    lam = aws.client("lambda")
    old = lam.get_function_configuration(FunctionName=name, Qualifier="1")
    new = lam.get_function_configuration(FunctionName=name, Qualifier="2")
    assert (old["Environment"]["Variables"]["REVISION"], old["Timeout"]) == ("one", 5)
    assert (new["Environment"]["Variables"]["REVISION"], new["Timeout"]) == ("two", 9)
    assert old["CodeSha256"] != new["CodeSha256"]

    executed, body = _invoke(aws, name, "1")
    assert (executed, body["code"], body["env"]) == ("1", "one", "one")
    assert body["remaining_ms"] <= 5000  # version 1's Timeout
    executed, body = _invoke(aws, name, "2")
    assert (executed, body["code"], body["env"]) == ("2", "two", "two")
    assert body["remaining_ms"] > 5000  # version 2's Timeout (9 s)


def test_every_way_of_naming_a_version_runs_it_and_reports_it(
    aws: Emulator, versions: dict[str, Any]
) -> None:
    name = versions["after"]["DescribeFunction"]
    arn = versions["after"]["DescribeFunctionArn"]
    cases = [
        # (FunctionName, Qualifier, executed version, code, invoked_function_arn)
        (name, None, "$LATEST", "two", arn),
        (arn, None, "$LATEST", "two", arn),
        (name, "$LATEST", "$LATEST", "two", f"{arn}:$LATEST"),
        (name, "1", "1", "one", f"{arn}:1"),
        (f"{name}:1", None, "1", "one", f"{arn}:1"),
        (f"{arn}:1", None, "1", "one", f"{arn}:1"),
        (name, "live", "2", "two", f"{arn}:live"),
        (f"{arn}:live", None, "2", "two", f"{arn}:live"),
    ]
    for function_name, qualifier, version, code, invoked in cases:
        executed, body = _invoke(aws, function_name, qualifier)
        assert executed == version, (function_name, qualifier)
        assert body["code"] == code, (function_name, qualifier)
        assert body["function_version"] == body["env_version"] == version, (function_name, qualifier)
        assert body["invoked_function_arn"] == invoked, (function_name, qualifier)


def test_each_version_has_its_own_sandbox(aws: Emulator, versions: dict[str, Any]) -> None:
    name = versions["after"]["DescribeFunction"]

    def calls(qualifier: str | None) -> int:
        return int(_invoke(aws, name, qualifier)[1]["calls"])

    one = calls("1")
    two = calls("2")
    latest = calls(None)
    assert calls("1") == one + 1
    assert calls("live") == two + 1  # the alias runs version 2, in version 2's sandbox
    assert calls("2") == two + 2
    assert calls(None) == latest + 1  # $LATEST has version 2's code but a sandbox of its own
    assert calls("1") == one + 2


def test_a_version_logs_under_its_own_number(aws: Emulator, versions: dict[str, Any]) -> None:
    name = versions["after"]["DescribeFunction"]
    _invoke(aws, name, "1")
    logs = aws.client("logs")
    streams = logs.describe_log_streams(logGroupName=f"/aws/lambda/{name}")["logStreams"]
    [stream] = [s["logStreamName"] for s in streams if "[1]" in s["logStreamName"]]
    events = logs.get_log_events(logGroupName=f"/aws/lambda/{name}", logStreamName=stream)["events"]
    assert events[0]["message"].startswith("START RequestId: ")
    assert events[0]["message"].endswith(" Version: 1")


def test_unknown_version_is_404(aws: Emulator, versions: dict[str, Any]) -> None:
    with pytest.raises(ClientError) as info:
        _invoke(aws, versions["after"]["DescribeFunction"], "7")
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_in_flight_execution_keeps_its_definition_and_version_a_new_one_takes_the_new(
    aws: Emulator, versions: dict[str, Any]
) -> None:
    assert versions["in_flight_waited_through_update"], "the stack update outlasted the Wait state"
    sfn = aws.client("stepfunctions")
    arn = versions["after"]["DescribeFunctionArn"]
    in_flight = wait_execution(aws, versions["in_flight"], timeout=aws.clock.scaled(IN_FLIGHT_WAIT) + 20)
    assert in_flight["status"] == "SUCCEEDED"
    output = json.loads(in_flight["output"])
    assert output["ExecutedVersion"] == "1"
    assert (output["Payload"]["code"], output["Payload"]["env"]) == ("one", "one")
    assert output["Payload"]["invoked_function_arn"] == f"{arn}:1"
    definition = json.loads(
        sfn.describe_state_machine_for_execution(executionArn=versions["in_flight"])["definition"]
    )
    assert definition["States"]["Call"]["Parameters"]["FunctionName"] == f"{arn}:1"

    fresh = wait_execution(aws, versions["fresh"])
    assert fresh["status"] == "SUCCEEDED"
    output = json.loads(fresh["output"])
    assert output["ExecutedVersion"] == "2"
    assert (output["Payload"]["code"], output["Payload"]["env"]) == ("two", "two")
    machine = sfn.describe_state_machine(stateMachineArn=versions["after"]["PinnedMachineArn"])
    assert json.loads(machine["definition"])["States"]["Call"]["Parameters"]["FunctionName"] == f"{arn}:2"


def test_rule_targeting_the_alias_runs_the_new_version_with_the_alias_config(
    aws: Emulator, versions: dict[str, Any]
) -> None:
    after = versions["after"]
    purge(aws, after["SinkUrl"])
    purge(aws, after["SuccessesUrl"])
    aws.client("events").put_events(
        Entries=[{"Source": "emulator.versions", "DetailType": "Test", "Detail": json.dumps({"n": 1})}]
    )
    [ran] = receive(aws, after["SinkUrl"], 1)
    assert (ran["body"]["code"], ran["body"]["function_version"]) == ("two", "2")
    assert ran["body"]["invoked_function_arn"] == after["RecordAlias"]
    assert ran["body"]["event"]["detail"] == {"n": 1}
    # The alias's EventInvokeConfig (set while the alias pointed at version 1) applies to version 2.
    [success] = receive(aws, after["SuccessesUrl"], 1)
    record = success["body"]
    assert record["requestContext"]["condition"] == "Success"
    assert record["requestContext"]["functionArn"] == after["RecordAlias"]
    assert record["responseContext"]["executedVersion"] == "2"
    assert record["responsePayload"]["code"] == "two"


def test_permission_and_async_config_belong_to_the_alias(aws: Emulator, versions: dict[str, Any]) -> None:
    name = versions["after"]["RecordFunction"]
    lam = aws.client("lambda")
    policy = json.loads(lam.get_policy(FunctionName=name, Qualifier="live")["Policy"])
    [statement] = policy["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Resource"] == versions["after"]["RecordAlias"]
    for qualifier in ("1", "2"):
        with pytest.raises(ClientError):
            lam.get_policy(FunctionName=name, Qualifier=qualifier)
    config = lam.get_function_event_invoke_config(FunctionName=name, Qualifier="live")
    assert config["MaximumRetryAttempts"] == 0
    assert config["FunctionArn"] == versions["after"]["RecordAlias"]
    for qualifier in ("1", "2"):
        with pytest.raises(ClientError) as info:
            lam.get_function_event_invoke_config(FunctionName=name, Qualifier=qualifier)
        assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"
    listed = lam.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"]
    assert [c["FunctionArn"] for c in listed] == [versions["after"]["RecordAlias"]]


def test_rule_targeting_the_unqualified_function_needs_a_permission_of_its_own(
    aws: Emulator, versions: dict[str, Any]
) -> None:
    """The stack's permission names the alias: EventBridge may not invoke the function itself."""
    sqs, events = aws.client("sqs"), aws.client("events")
    dead_letters = sqs.create_queue(QueueName="emulator-versions-unqualified-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dead_letters, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="emulator-versions-unqualified", EventPattern=json.dumps({"source": ["emulator.unq"]})
    )
    events.put_targets(
        Rule="emulator-versions-unqualified",
        Targets=[
            {
                "Id": "fn",
                "Arn": versions["after"]["RecordFunctionArn"],
                "RetryPolicy": {"MaximumRetryAttempts": 0},
                "DeadLetterConfig": {"Arn": dlq_arn},
            }
        ],
    )
    events.put_events(Entries=[{"Source": "emulator.unq", "DetailType": "Test", "Detail": "{}"}])
    [dead] = receive(aws, dead_letters, 1)
    assert dead["attributes"]["ERROR_CODE"]["StringValue"] == "NO_PERMISSIONS"


def _version_template(workdir: Path, code: str, *, retain: bool, with_version: bool = True) -> Path:
    """A function whose handler returns ``code`` and, optionally, a hand-written (not SAM's)
    ``AWS::Lambda::Version`` of it."""
    (workdir / "code").mkdir(exist_ok=True)
    (workdir / "code" / "index.py").write_text(f"def handler(event, context):\n    return {code!r}\n")
    version = (
        "  Version:\n"
        "    Type: AWS::Lambda::Version\n"
        + ("    DeletionPolicy: Retain\n" if retain else "")
        + "    Properties:\n"
        "      FunctionName: !Ref Fn\n"
        "      Description: published by the stack\n"
        if with_version
        else ""
    )
    template = workdir / "t.yaml"
    template.write_text(
        "Transform: AWS::Serverless-2016-10-31\n"
        "Resources:\n"
        "  Fn:\n"
        "    Type: AWS::Serverless::Function\n"
        "    Properties:\n"
        "      Runtime: python3.13\n"
        "      Handler: index.handler\n"
        "      CodeUri: code/\n"
        f"{version}"
        "Outputs:\n"
        "  Fn:\n    Value: !Ref Fn\n"
        + ("  Version:\n    Value: !GetAtt Version.Version\n" if with_version else "")
    )
    return template


@pytest.mark.parametrize("retain", [True, False])
def test_removing_a_version_resource_deletes_it_unless_retained(
    aws: Emulator, tmp_path: Path, retain: bool
) -> None:
    stack = f"emulator-version-{'retained' if retain else 'deleted'}"
    outputs = deploy_stack(aws.endpoint, _version_template(tmp_path, "a", retain=retain), stack)
    assert outputs["Version"] == "1"
    lam = aws.client("lambda")
    assert lam.get_function_configuration(FunctionName=outputs["Fn"], Qualifier="1")["Description"] == (
        "published by the stack"
    )
    deploy_stack(aws.endpoint, _version_template(tmp_path, "a", retain=retain, with_version=False), stack)
    versions = [v["Version"] for v in lam.list_versions_by_function(FunctionName=outputs["Fn"])["Versions"]]
    if retain:
        assert versions == ["$LATEST", "1"]
        assert _invoke_raw(aws, f"{outputs['Fn']}:1") == "a"
    else:
        assert versions == ["$LATEST"]
    # New code and a version again: published after the code changed, under a number never used.
    updated = deploy_stack(aws.endpoint, _version_template(tmp_path, "b", retain=retain), stack)
    assert updated["Version"] == "2"
    assert _invoke_raw(aws, f"{outputs['Fn']}:2") == "b"
    if retain:
        assert _invoke_raw(aws, f"{outputs['Fn']}:1") == "a"
    cfn = aws.client("cloudformation")
    stack_id = cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackId"]
    cfn.delete_stack(StackName=stack)
    assert cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE"
    with pytest.raises(ClientError):  # deleting the function deletes all its versions, as in AWS
        lam.get_function(FunctionName=outputs["Fn"], Qualifier="1")


def _invoke_raw(aws: Emulator, function_name: str) -> Any:
    return json.loads(aws.client("lambda").invoke(FunctionName=function_name)["Payload"].read())


def _zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", source)
    return buffer.getvalue()


def test_publish_version_snapshots_code_and_configuration(aws: Emulator, versions: dict[str, Any]) -> None:
    lam = aws.client("lambda")
    role = lam.get_function_configuration(FunctionName=versions["after"]["DescribeFunction"])["Role"]
    name = "emulator-versions-api"
    lam.create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=role,
        Handler="index.handler",
        Code={"ZipFile": _zip("import os\ndef handler(e, c):\n    return ['a', os.environ.get('X')]\n")},
        Environment={"Variables": {"X": "1"}},
    )
    assert lam.publish_version(FunctionName=name)["Version"] == "1"
    assert lam.publish_version(FunctionName=name)["Version"] == "1"  # nothing changed: no new version
    lam.update_function_code(
        FunctionName=name,
        ZipFile=_zip("import os\ndef handler(e, c):\n    return ['b', os.environ.get('X')]\n"),
    )
    lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"X": "2"}})
    assert lam.publish_version(FunctionName=name)["Version"] == "2"
    assert _invoke_raw(aws, f"{name}:1") == ["a", "1"]
    assert _invoke_raw(aws, f"{name}:2") == ["b", "2"]
    lam.create_alias(FunctionName=name, Name="stable", FunctionVersion="1")
    assert _invoke_raw(aws, f"{name}:stable") == ["a", "1"]
    lam.update_alias(FunctionName=name, Name="stable", FunctionVersion="2")
    assert _invoke_raw(aws, f"{name}:stable") == ["b", "2"]
