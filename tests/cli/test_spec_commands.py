"""``spec schema``, ``spec validate`` and the parser's own errors: offline, no AWS involved."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from ecs_canary.spec import spec_json_schema

from .conftest import Run

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BAD_SPEC = """\
name: shop
cluster: "not a cluster"
services:
  - name: a
    target_group_arn: nope
plan: Canary10Percent99999Minutes
"""


def test_schema_is_plain_json_on_stdout(run: Run) -> None:
    result = run("spec", "schema")

    assert result.code == 0
    assert result.err == ""
    assert json.loads(result.out) == spec_json_schema()
    assert "\x1b[" not in result.out


def test_validate_prints_the_resolved_plan(run: Run) -> None:
    result = run("spec", "validate", str(EXAMPLES / "route53-pair.yaml"))

    assert result.code == 0, result.err
    out = " ".join(result.out.split())
    assert "route53-pair.yaml: pair api is valid" in out
    assert "5% → 25% → 50% → 100%, bake 10m after each step" in out
    assert "router route53 api.example.com. A (Z0123456789ABCDEFGHIJ)" in out
    assert "│ 1/4 │ 5% │ 95 │ 5 │ 10m │" in out
    assert "│ 4/4 │ 100% │ 0 │ 100 │ 10m │" in out


def test_validate_lists_every_problem_on_its_own_line(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_SPEC)

    result = run("spec", "validate", str(path))

    assert result.code == 2
    assert result.out == ""
    lines = result.err.splitlines()
    assert lines[0] == f"{path} is invalid ({len(lines) - 1} problems):"
    problems = [line.strip() for line in lines[1:]]
    assert any(p.startswith("cluster: must be an ECS cluster name") for p in problems)
    assert any(p.startswith("services: exactly two services are required, got 1") for p in problems)
    assert "router: Field required" in problems
    assert "health: Field required" in problems
    assert any(p.startswith("plan:") for p in problems)
    assert "Traceback" not in result.err


def test_validate_reports_yaml_syntax_errors(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")

    result = run("spec", "validate", str(path))

    assert result.code == 2
    assert "spec: invalid YAML" in result.err


def test_validate_missing_file(run: Run, tmp_path: Path) -> None:
    result = run("spec", "validate", str(tmp_path / "nope.yaml"))

    assert result.code == 2
    assert result.err.strip() == f"{tmp_path / 'nope.yaml'}: no such file"


def test_validate_a_directory(run: Run, tmp_path: Path) -> None:
    result = run("spec", "validate", str(tmp_path))

    assert result.code == 2
    assert f"{tmp_path}: cannot read" in result.err


def test_validate_reads_stdin(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO((EXAMPLES / "alb-pair.yaml").read_text()))

    result = run("spec", "validate", "-")

    assert result.code == 0
    assert "-: pair checkout is valid" in result.out


def test_validate_needs_no_aws(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)

    assert run("spec", "validate", str(EXAMPLES / "alb-pair.yaml")).code == 0
    assert run("spec", "schema").code == 0


# ---- argparse -------------------------------------------------------------------------------------


def test_no_command_is_a_usage_error(run: Run) -> None:
    result = run()

    assert result.code == 2
    assert "usage: ecs-canary" in result.err
    assert "error: the following arguments are required: COMMAND" in result.err


def test_unknown_command(run: Run) -> None:
    result = run("deploy")

    assert result.code == 2
    assert "invalid choice: 'deploy'" in result.err


def test_subcommand_usage_error_shows_that_commands_usage(run: Run) -> None:
    result = run("deployments", "shop", "--limit", "0")

    assert result.code == 2
    assert "usage: ecs-canary deployments" in result.err
    assert "argument --limit: must be at least 1, got 0" in result.err


def test_help_exits_zero(run: Run) -> None:
    result = run("watch", "--help")

    assert result.code == 0
    assert "--interval S" in result.out
    assert "--timeout S" in result.out


def test_version(run: Run) -> None:
    result = run("--version")

    assert result.code == 0
    assert result.out.startswith("ecs-canary ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["watch", "shop", "--interval", "-1"], "must not be negative"),
        (["local", "up", "--time-scale", "0"], "must be positive"),
        (["local", "up", "--port", "70000"], "must be between 0 and 65535"),
        (["demo", "--router", "nlb"], "invalid choice: 'nlb'"),
    ],
)
def test_flag_values_are_checked(run: Run, argv: list[str], message: str) -> None:
    result = run(*argv)

    assert result.code == 2
    assert message in result.err
