"""Finding the stack: stack outputs, overrides by flag and environment, sessions and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ecs_canary_cli.context import ContextError, resolve
from moto import mock_aws

from .conftest import Run
from .infra import STACK, TABLE, Stack, client


def test_table_and_state_machine_come_from_the_stack_outputs(stack: Stack) -> None:
    ctx = resolve()

    assert ctx.table_name == TABLE
    assert ctx.state_machine_arn == stack.state_machine_arn
    assert ctx.stack == STACK
    assert ctx.region == "us-east-1"


def test_stack_named_by_flag_or_environment(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    template = {"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}, "Outputs": {"TableName": {"Value": "other"}}}
    client("cloudformation").create_stack(StackName="canary-staging", TemplateBody=json.dumps(template))

    assert resolve(stack="canary-staging").table_name == "other"
    monkeypatch.setenv("ECS_CANARY_STACK", "canary-staging")
    ctx = resolve()
    assert (ctx.table_name, ctx.state_machine_arn, ctx.stack) == ("other", None, "canary-staging")


def test_missing_stack_says_how_to_fix_it(stack: Stack) -> None:
    with pytest.raises(ContextError) as caught:
        resolve(stack="nope")

    assert str(caught.value) == (
        "stack nope not found in us-east-1: deploy it with `sam deploy --guided` or pass --table"
    )


def test_stack_without_table_output(stack: Stack) -> None:
    template = {"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}, "Outputs": {"Other": {"Value": "x"}}}
    client("cloudformation").create_stack(StackName="unrelated", TemplateBody=json.dumps(template))

    with pytest.raises(ContextError, match="stack unrelated in us-east-1 has no TableName output"):
        resolve(stack="unrelated")


def test_table_override_skips_cloudformation(monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_aws():
        ctx = resolve(stack="does-not-exist", table="t1")
        assert (ctx.table_name, ctx.state_machine_arn, ctx.stack) == ("t1", None, None)

        monkeypatch.setenv("ECS_CANARY_TABLE", "t2")
        monkeypatch.setenv("ECS_CANARY_STATE_MACHINE_ARN", "arn:aws:states:us-east-1:1:stateMachine:m")
        ctx = resolve()
        assert (ctx.table_name, ctx.state_machine_arn) == ("t2", "arn:aws:states:us-east-1:1:stateMachine:m")
        assert resolve(table="t3").table_name == "t3"


def test_state_machine_override_wins_over_the_stack_output(stack: Stack) -> None:
    ctx = resolve(state_machine_arn="arn:aws:states:us-east-1:1:stateMachine:custom")

    assert ctx.table_name == TABLE
    assert ctx.state_machine_arn == "arn:aws:states:us-east-1:1:stateMachine:custom"


def test_region_flag_reaches_session_and_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_aws():
        ctx = resolve(table="t", region="eu-west-1")

        assert ctx.region == "eu-west-1"
        assert ctx.session.region_name == "eu-west-1"
        assert ctx.client("dynamodb").meta.region_name == "eu-west-1"
        assert ctx.sfn is ctx.client("stepfunctions")


def test_stack_is_looked_up_in_the_requested_region(stack: Stack) -> None:
    with pytest.raises(ContextError, match="not found in eu-west-1"):
        resolve(region="eu-west-1")


def test_no_region_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")

    with pytest.raises(ContextError, match="no AWS region configured"):
        resolve(table="t")


@pytest.fixture
def profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config"
    config.write_text("[profile staging]\nregion = ap-southeast-2\n")
    credentials = tmp_path / "credentials"
    credentials.write_text("[staging]\naws_access_key_id = a\naws_secret_access_key = b\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")


@pytest.mark.usefixtures("profiles")
def test_profile_flag_selects_the_profile_and_its_region(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = resolve(table="t", profile="staging")

    assert ctx.session.profile_name == "staging"
    assert ctx.region == "ap-southeast-2"

    monkeypatch.setenv("AWS_PROFILE", "staging")
    assert resolve(table="t").region == "ap-southeast-2"
    assert resolve(table="t", profile="staging", region="us-west-2").region == "us-west-2"


@pytest.mark.usefixtures("profiles")
def test_unknown_profile() -> None:
    with pytest.raises(ContextError, match="AWS profile 'prod' not found"):
        resolve(table="t", profile="prod")


def test_endpoint_url_from_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")

    ctx = resolve(table="t")

    assert ctx.client("dynamodb").meta.endpoint_url == "http://127.0.0.1:4566"


# ---- through main -----------------------------------------------------------------------------------


def test_missing_stack_through_the_cli(run: Run, stack: Stack) -> None:
    result = run("pairs", "--stack", "nope")

    assert result.code == 2
    assert result.err.strip() == (
        "stack nope not found in us-east-1: deploy it with `sam deploy --guided` or pass --table"
    )


def test_global_options_before_or_after_the_command(run: Run, stack: Stack) -> None:
    assert run("--stack", "nope", "pairs").code == 2
    assert run("pairs", "--stack", "nope").code == 2
    assert run("--stack", "nope", "pairs", "--table", TABLE).code == 0
    assert run("--table", TABLE, "pairs").code == 0


def test_table_that_does_not_exist(run: Run, stack: Stack) -> None:
    result = run("pairs", "--table", "missing")

    assert result.code == 1
    assert result.err.startswith("Scan failed: ResourceNotFoundException")


def test_no_credentials(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    result = run("pairs", "--table", "t")

    assert result.code == 1
    assert "no AWS credentials found" in result.err
