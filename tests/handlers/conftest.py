"""Fixtures for tests that run package code against moto's in-process AWS."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from ecs_canary import aws
from moto import mock_aws

REGION = "us-east-1"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials in one region, and no endpoint or profile leaking in from the shell."""
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name in {"AWS_PROFILE", "AWS_DEFAULT_PROFILE"}:
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    aws.reset_clients()
    yield
    aws.reset_clients()


@pytest.fixture
def mocked_aws(aws_env: None) -> Iterator[None]:
    """Everything inside the test talks to moto's in-process backends."""
    with mock_aws():
        yield
