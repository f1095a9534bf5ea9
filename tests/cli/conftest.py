"""Fixtures for CLI tests: a clean AWS environment, moto, the deployed stack and a runner for ``main``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import boto3
import pytest
from ecs_canary import aws
from ecs_canary.registration import register
from ecs_canary.spec import parse_spec
from ecs_canary_cli import context
from ecs_canary_cli.main import main
from moto import mock_aws

from .infra import Stack, World, client, create_stack, create_world

REGION = "us-east-1"


@dataclass(frozen=True)
class Result:
    """What one ``main([...])`` call returned and printed."""

    code: int
    out: str
    err: str


Run = Callable[..., Result]


_SESSIONS: dict[tuple[object, ...], boto3.Session] = {}
_make_session = context.make_session


def _cached_session(profile: str | None = None, region: str | None = None) -> boto3.Session:
    """``make_session`` reusing one session per profile, region and AWS environment across tests.

    A fresh session reloads every service model from disk, which dominated these tests' run time.
    """
    key = (profile, region, tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))))
    if key not in _SESSIONS:
        _SESSIONS[key] = _make_session(profile, region)
    return _SESSIONS[key]


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials in one region, a wide console, and nothing leaking in from the shell."""
    for name in list(os.environ):
        if name.startswith(("AWS_ENDPOINT_URL", "ECS_CANARY_")) or name in {
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "FORCE_COLOR",
            "TTY_COMPATIBLE",
        }:
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("COLUMNS", "200")
    # The VPC these tests create needs no AMIs; loading moto's catalogue costs a second per test.
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    monkeypatch.setattr(context, "make_session", _cached_session)
    aws.reset_clients()
    yield
    aws.reset_clients()


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """``run("pairs", "--json")`` calls ``main`` and captures its exit code, stdout and stderr."""

    def invoke(*argv: str) -> Result:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


@pytest.fixture
def stack() -> Iterator[Stack]:
    """moto with the product deployed: table, state machine and the ``ecs-canary`` stack outputs."""
    with mock_aws():
        yield create_stack()


@pytest.fixture
def world(stack: Stack) -> World:
    """The stack plus an ALB service pair (not registered)."""
    return create_world()


@pytest.fixture
def registered(stack: Stack, world: World) -> World:
    """The pair ``shop`` registered with blue live."""
    register(
        stack.store,
        parse_spec(world.spec()),
        ecs=world.ecs,
        elbv2=world.elbv2,
        route53=client("route53"),
        cloudwatch=client("cloudwatch"),
    )
    return world
