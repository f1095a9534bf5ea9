"""The real-account tier's switch: skipped without its variables, refused with some missing, never partial.

These tests run here (no AWS needed, no emulator started): the configuration parsing, what pytest
does with the ``real_account`` parametrisations for each environment, and the e2e app's behaviour.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from ecs_canary.spec import AlbRouterSpec, parse_spec
from ecs_canary_cli.demo.infra import PairInfra, ServiceInfra, spec_for
from ecs_canary_cli.demo.traffic import read_weights

from .aws_target import LOAD_BALANCER
from .targets import (
    DEFAULT_CLUSTER,
    OPTIONAL_VARS,
    REQUIRED_VARS,
    ROOT,
    SKIP_REASON,
    TARGET_VAR,
    AwsSettings,
    ConfigError,
    aws_settings,
    target_name,
)

COMPLETE: Mapping[str, str] = {
    TARGET_VAR: "aws",
    "ECS_CANARY_E2E_STACK": "ecs-canary",
    "ECS_CANARY_E2E_REGION": "eu-west-1",
    "ECS_CANARY_E2E_VPC_ID": "vpc-0123",
    "ECS_CANARY_E2E_SUBNETS": "subnet-a, subnet-b",
    "ECS_CANARY_E2E_SECURITY_GROUP": "sg-0123",
    "ECS_CANARY_E2E_IMAGE": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/e2e-app:1",
    "ECS_CANARY_E2E_EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/ecsTaskExecutionRole",
}


def test_the_target_is_the_emulator_unless_aws_is_named() -> None:
    assert target_name({}) == "emulator"
    assert target_name({TARGET_VAR: ""}) == "emulator"
    assert target_name({TARGET_VAR: "emulator"}) == "emulator"
    assert target_name({TARGET_VAR: " AWS "}) == "aws"
    with pytest.raises(ConfigError, match=f"{TARGET_VAR}='prod': expected 'aws' or 'emulator'"):
        target_name({TARGET_VAR: "prod"})


def test_every_missing_variable_is_named() -> None:
    with pytest.raises(ConfigError) as refused:
        aws_settings({TARGET_VAR: "aws"})
    for name in REQUIRED_VARS:
        assert f"{name} is not set" in str(refused.value)


def test_only_the_missing_variable_is_named() -> None:
    partial = {k: v for k, v in COMPLETE.items() if k != "ECS_CANARY_E2E_IMAGE"}
    with pytest.raises(ConfigError) as refused:
        aws_settings(partial)
    message = str(refused.value)
    assert message.startswith(f"{TARGET_VAR}=aws: ECS_CANARY_E2E_IMAGE is not set")
    assert [name for name in REQUIRED_VARS if name in message] == ["ECS_CANARY_E2E_IMAGE"]


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("ECS_CANARY_E2E_SUBNETS", "subnet-a", "needs at least two subnets"),
        ("ECS_CANARY_E2E_ALB_SCHEME", "public", "expected internet-facing or internal"),
        ("ECS_CANARY_E2E_ASSIGN_PUBLIC_IP", "yes", "expected ENABLED or DISABLED"),
    ],
)
def test_a_malformed_variable_is_named(name: str, value: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=f"{name}.*{problem}"):
        aws_settings({**COMPLETE, name: value})


def test_complete_settings_with_their_defaults() -> None:
    assert aws_settings(COMPLETE) == AwsSettings(
        stack="ecs-canary",
        region="eu-west-1",
        vpc_id="vpc-0123",
        subnet_ids=("subnet-a", "subnet-b"),
        security_group_id="sg-0123",
        image=COMPLETE["ECS_CANARY_E2E_IMAGE"],
        execution_role_arn=COMPLETE["ECS_CANARY_E2E_EXECUTION_ROLE_ARN"],
        cluster="ecs-canary-e2e",
        hosted_zone_id=None,
        alb_scheme="internet-facing",
        assign_public_ip="DISABLED",
    )
    chosen = aws_settings(
        {
            **COMPLETE,
            "ECS_CANARY_E2E_CLUSTER": "tests",
            "ECS_CANARY_E2E_HOSTED_ZONE_ID": "Z0123",
            "ECS_CANARY_E2E_ALB_SCHEME": "internal",
            "ECS_CANARY_E2E_ASSIGN_PUBLIC_IP": "enabled",
        }
    )
    assert (chosen.cluster, chosen.hosted_zone_id, chosen.alb_scheme, chosen.assign_public_ip) == (
        "tests",
        "Z0123",
        "internal",
        "ENABLED",
    )


def test_the_readme_documents_every_variable_as_the_code_reads_it() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    after = readme.split("## Running the end-to-end tests against an AWS account", 1)[1]
    section = after.split("\n## ", 1)[0]
    for name in (TARGET_VAR, *REQUIRED_VARS):
        assert f"| `{name}` | yes |" in section, name
    for name in OPTIONAL_VARS:
        assert f"| `{name}` | no |" in section, name
    assert f"default `{DEFAULT_CLUSTER}`" in section
    assert f"load balancer named\n`{LOAD_BALANCER}`" in section
    assert "-m real_account tests/e2e" in section


def test_the_readme_lists_exactly_the_scenarios_that_run_on_both_targets() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    after = readme.split("## Running the end-to-end tests against an AWS account", 1)[1]
    table = "\n".join(line for line in after.split("\n## ", 1)[0].splitlines() if line.startswith("| `test_"))
    listed = set(re.findall(r"`(test_\w+\.py)::(test_\w+)`", table))
    listed |= {(module, "*") for module in re.findall(r"`(test_\w+\.py)` \(all", table)}
    both: set[tuple[str, str]] = set()
    for path in sorted((ROOT / "tests" / "e2e").glob("test_*.py")):
        module = importlib.import_module(f"{__package__}.{path.stem}")
        tests = {n: f for n, f in vars(module).items() if n.startswith("test_") and callable(f)}
        on_both = {n for n, f in tests.items() if "target" in inspect.signature(f).parameters}
        if on_both and on_both == set(tests):
            both.add((path.name, "*"))
        else:
            both |= {(path.name, n) for n in on_both}
    assert listed == both


# ---- ALB pairs whose weights live in a listener rule (how the AWS target shares one load balancer) ------

RULE = (
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:"
    "listener-rule/app/ecs-canary-e2e/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee"
)
TG = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/{}/73e2d6bc24d8a067"


def _rule_pair() -> PairInfra:
    services = tuple(ServiceInfra(name, "", TG.format(f"{name}-tg"), "", (f"{name}-5xx",)) for name in "ab")
    return PairInfra("p", "alb", "c", "p", (services[0], services[1]), "a", "b", "p:1", rule_arn=RULE)


def test_a_rule_pair_spec_names_the_rule() -> None:
    spec = spec_for(_rule_pair())
    assert spec["router"] == {"type": "alb", "rule_arn": RULE}
    router = parse_spec(spec).router
    assert isinstance(router, AlbRouterSpec)
    assert router.rule_arn == RULE


def test_a_rule_pair_weights_are_read_from_the_rule() -> None:
    pair = _rule_pair()
    forward = {
        "Type": "forward",
        "ForwardConfig": {
            "TargetGroups": [
                {"TargetGroupArn": pair.services[0].target_group_arn, "Weight": 75},
                {"TargetGroupArn": pair.services[1].target_group_arn, "Weight": 25},
            ]
        },
    }

    class Elbv2:
        def describe_rules(self, RuleArns: list[str]) -> dict[str, Any]:
            assert RuleArns == [RULE]
            return {"Rules": [{"RuleArn": RULE, "Actions": [forward]}]}

    assert read_weights(lambda name: Elbv2(), pair) == {"a": 75, "b": 25}


# ---- what pytest does with the marker, in a pytest of its own ------------------------------------------


def _pytest(extra_env: Mapping[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    """Collect and run ``tests/e2e/test_wait.py`` in a pytest process with only ``extra_env`` set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECS_CANARY_E2E_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "tests/e2e/test_wait.py", "-p", "no:cacheprovider", "-rs", *argv],
        env={**env, "COLUMNS": "400", **extra_env},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=ROOT,
    )


def test_without_the_environment_the_real_account_runs_are_skipped_with_the_reason() -> None:
    run = _pytest({}, "-m", "real_account")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 skipped, 3 deselected" in run.stdout
    assert SKIP_REASON in run.stdout.replace("\n", "")


def test_aws_with_a_variable_missing_stops_before_any_test_naming_it() -> None:
    partial = {k: v for k, v in COMPLETE.items() if k != "ECS_CANARY_E2E_SECURITY_GROUP"}
    run = _pytest(partial, "-m", "real_account")
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, run.stdout + run.stderr
    assert "ECS_CANARY_E2E_SECURITY_GROUP is not set" in run.stderr
    assert "no tests ran" in run.stdout


# ---- the image the tier deploys ------------------------------------------------------------------------


@pytest.fixture
def app_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """``examples/e2e-app/app.py`` serving on a free local port with the environment ``request.param``."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "e2e-app" / "app.py")],
        env={**os.environ, "PORT": str(port), **request.param},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                    break
            except OSError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(10)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as failed:
        return int(failed.code)


@pytest.mark.parametrize("app_url", [{"ERROR_RATE": "1", "VERSION": "v2"}], indirect=True)
def test_the_e2e_app_fails_as_its_environment_says_but_stays_healthy(app_url: str) -> None:
    assert _status(f"{app_url}/") == 500
    assert _status(f"{app_url}/healthz") == 200


@pytest.mark.parametrize("app_url", [{"ERROR_RATE": "0", "LATENCY_MS": "200"}], indirect=True)
def test_the_e2e_app_answers_slowly_when_told(app_url: str) -> None:
    started = time.monotonic()
    assert _status(f"{app_url}/") == 200
    assert time.monotonic() - started >= 0.2
