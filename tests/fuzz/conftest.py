"""Fixtures for the fuzz suite: moto's in-process AWS, the flow world of tests/handlers, a tally.

The suite drives the handlers with Hypothesis-generated events against one moto world per test
(the ``flow`` fixture of ``tests/handlers/flow_fixtures.py``, loaded by each test module with
``pytest_plugins = ["flow_fixtures"]``). Every example checks that the world is unchanged, so the
world is shared by the examples of a test on purpose. What the examples saw (cases per target,
unexpected exceptions, executions started and traffic moved by bad input) is tallied in
:data:`fuzz_support.TALLY` and printed at the end of the run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ecs_canary import aws
from moto import mock_aws

HANDLERS_DIR = Path(__file__).resolve().parents[1] / "handlers"
if str(HANDLERS_DIR) not in sys.path:  # flow_fixtures lives there; pytest adds it only when it collects it
    sys.path.insert(0, str(HANDLERS_DIR))

import fuzz_support  # noqa: E402 - needs tests/handlers on sys.path first
from fuzz_support import watch  # noqa: E402, F401 - the fixture, for every fuzz test

REGION = "us-east-1"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials in one region, and no endpoint or profile leaking in from the shell."""
    for name in list(os.environ):
        if name.startswith(("AWS_ENDPOINT_URL", "ECS_CANARY_")) or name in {
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
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
    aws.reset_clients()
    yield
    aws.reset_clients()


@pytest.fixture
def mocked_aws(aws_env: None) -> Iterator[None]:
    """Everything inside the test talks to moto's in-process backends (what ``flow`` needs)."""
    with mock_aws():
        yield


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the tally: generated cases per target and what bad input did (all zero but cases)."""
    lines = fuzz_support.TALLY.report() if fuzz_support.TALLY else []
    if lines:
        terminalreporter.write_sep("=", "fuzz tally")
        for line in lines:
            terminalreporter.write_line(line)
