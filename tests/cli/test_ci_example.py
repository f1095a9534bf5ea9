"""The CI example: ``examples/ci/deploy-and-wait.sh`` and the GitHub Actions workflow that runs it.

The script runs for real (bash, jq) against two stand-ins on PATH: ``ecs-canary``, which parses
its arguments with this CLI's own parser and answers ``pairs`` with what the real command printed
for a moto stack; and ``aws``, which checks each call against botocore's model of the ECS API
(flags, ``--cli-input-json`` and required parameters) and applies ``--query`` with JMESPath.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from ecs_canary.store import Status
from ecs_canary_cli.main import build_parser

from .conftest import Run
from .infra import BLUE, CLUSTER, GREEN, PAIR, Stack, World, finish, start_deployment

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "ci"
SCRIPT = EXAMPLES / "deploy-and-wait.sh"
WORKFLOW = EXAMPLES / "github-actions.yml"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:abc123"
NEW_TASK_DEFINITION = "arn:aws:ecs:us-east-1:123456789012:task-definition/shop:8"
NEW_RELEASE = "ecs-svc/2222"

needs_tools = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("jq") is None, reason="needs bash and jq"
)

FAKE_ECS_CANARY = """#!{python}
import json, os, sys
from ecs_canary_cli.main import UsageError, build_parser

argv = sys.argv[1:]
try:
    args = build_parser().parse_args(argv)
except UsageError as exc:
    sys.exit(f"ecs-canary: {{exc}}")
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({{"argv": ["ecs-canary", *argv]}}) + "\\n")
if args.command == "pairs" and args.output == "json":
    sys.stdout.write(open(os.environ["FAKE_PAIRS"]).read())
    sys.exit(0)
if args.command == "wait":
    code = int(os.environ["FAKE_WAIT_EXIT"])
    print(json.dumps({{"event": "end", "release_ref": args.release.value, "exit_code": code}}))
    sys.exit(code)
sys.exit(f"ecs-canary: unexpected call {{argv}}")
"""

FAKE_AWS = """#!{python}
import json, os, sys
import botocore.session, jmespath
from botocore.validate import validate_parameters

service, operation, *rest = sys.argv[1:]
options = dict(zip(rest[::2], rest[1::2]))
assert len(rest) % 2 == 0 and all(flag.startswith("--") for flag in options), rest
model = botocore.session.get_session().get_service_model(service)
name = "".join(part.capitalize() for part in operation.split("-"))
shape = model.operation_model(name).input_shape
params = {{}}
for flag, value in options.items():
    key = flag[2:]
    if key in ("query", "output"):
        continue
    if key == "cli-input-json":
        params.update(json.loads(value))
        continue
    first, *more = key.split("-")
    member = first + "".join(part.capitalize() for part in more)
    if member not in shape.members:
        sys.exit(f"aws: unknown option {{flag}} of {{operation}}")
    kind = shape.members[member].type_name  # the AWS CLI parses scalars by the model's type
    params[member] = int(value) if kind in ("integer", "long") else value
validate_parameters(params, shape)  # unknown or missing parameters, wrong types
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({{"argv": ["aws", service, operation], "params": params}}) + "\\n")
if name == "RegisterTaskDefinition":
    arn = f"arn:aws:ecs:us-east-1:123456789012:task-definition/{{params['family']}}:8"
    response = {{"taskDefinition": {{"taskDefinitionArn": arn, "family": params["family"], "revision": 8}}}}
elif name == "UpdateService":
    old = "arn:aws:ecs:us-east-1:123456789012:task-definition/shop:7"
    response = {{"service": {{"serviceName": params["service"], "deployments": [
        {{"id": "ecs-svc/1111", "status": "ACTIVE", "taskDefinition": old}},
        {{"id": "ecs-svc/2222", "status": "PRIMARY", "taskDefinition": params["taskDefinition"]}},
    ]}}}}
else:
    sys.exit(f"aws: unexpected call {{operation}}")
result = jmespath.search(options["--query"], response) if "--query" in options else response
if options.get("--output") == "text":
    print("\\t".join(map(str, result)) if isinstance(result, list) else result)
else:
    print(json.dumps(result))
"""

DESCRIBED_TASK_DEFINITION = {
    "taskDefinition": {
        "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/shop:7",
        "family": "shop",
        "revision": 7,
        "status": "ACTIVE",
        "containerDefinitions": [
            {"name": "app", "image": "shop:v1", "memory": 128, "essential": True},
            {"name": "sidecar", "image": "envoy:1", "memory": 64, "essential": False},
        ],
        "requiresAttributes": [{"name": "com.amazonaws.ecs.capability.docker-remote-api.1.18"}],
        "compatibilities": ["EC2"],
        "registeredAt": "2024-05-01T12:00:00.000Z",
        "registeredBy": "arn:aws:iam::123456789012:role/ci",
    },
    "tags": [],
}


def commands_of_the_cli() -> set[str]:
    [subparsers] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return set(subparsers.choices)


@pytest.fixture
def fakes(tmp_path: Path) -> dict[str, str]:
    """A PATH with the stand-ins first, and the files they read and write."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, source in (("ecs-canary", FAKE_ECS_CANARY), ("aws", FAKE_AWS)):
        path = bin_dir / name
        path.write_text(source.format(python=sys.executable))
        path.chmod(0o755)
    taskdef = tmp_path / "taskdef.json"
    taskdef.write_text(json.dumps(DESCRIBED_TASK_DEFINITION))
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LOG": str(tmp_path / "calls.jsonl"),
        "FAKE_PAIRS": str(tmp_path / "pairs.json"),
        "TASKDEF": str(taskdef),
    }


def run_script(
    fakes: dict[str, str], *args: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[Any]]:
    environment = {**os.environ, **fakes, **env}
    done = subprocess.run(
        ["bash", str(SCRIPT), *args], env=environment, capture_output=True, text=True, check=False
    )
    log = Path(fakes["FAKE_LOG"])
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return done, calls


def save_pairs(run: Run, fakes: dict[str, str]) -> dict[str, Any]:
    """What the real ``ecs-canary pairs --output json`` prints for the moto stack, for the stand-in."""
    result = run("pairs", "--output", "json")
    assert result.code == 0, result.err
    Path(fakes["FAKE_PAIRS"]).write_text(result.out)
    [pair] = json.loads(result.out)
    return dict(pair)


# ---- the script ------------------------------------------------------------------------------------


def test_the_script_parses() -> None:
    assert os.access(SCRIPT, os.X_OK)
    done = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_the_commands_the_script_suggests_exist() -> None:
    code = [line for line in SCRIPT.read_text().splitlines() if not line.lstrip().startswith("#")]
    named = {m.group(1) for line in code for m in re.finditer(r"\becs-canary ([a-z]+)\b", line)}

    assert named == {"pairs", "wait", "status", "watch"}
    assert named <= commands_of_the_cli()


@needs_tools
@pytest.mark.parametrize(("wait_code", "message"), [(0, "SUCCEEDED"), (9, "gave up after 3600s")])
@pytest.mark.usefixtures("registered")
def test_the_script_deploys_to_the_idle_service_and_waits_for_that_release(
    run: Run, fakes: dict[str, str], wait_code: int, message: str
) -> None:
    pair = save_pairs(run, fakes)
    assert (pair["idle_service"], pair["cluster"]) == (GREEN, CLUSTER)

    done, calls = run_script(
        fakes, PAIR, fakes["TASKDEF"], IMAGE, CONTAINER="app", FAKE_WAIT_EXIT=str(wait_code)
    )

    assert done.returncode == wait_code, done.stderr
    assert [c["argv"][:3] for c in calls] == [
        ["ecs-canary", "pairs", "--output"],
        ["aws", "ecs", "register-task-definition"],
        ["aws", "ecs", "update-service"],
        ["ecs-canary", "wait", PAIR],
    ]
    registered_taskdef = calls[1]["params"]
    assert registered_taskdef["family"] == "shop"
    assert [c["image"] for c in registered_taskdef["containerDefinitions"]] == [IMAGE, "envoy:1"]
    assert calls[2]["params"] == {"cluster": CLUSTER, "service": GREEN, "taskDefinition": NEW_TASK_DEFINITION}
    assert calls[3]["argv"] == [
        "ecs-canary",
        "wait",
        PAIR,
        "--release",
        NEW_RELEASE,
        "--timeout",
        "3600",
        "--output",
        "text",
    ]
    # stdout is the wait's alone; the script's own narration goes to stderr.
    assert json.loads(done.stdout) == {"event": "end", "release_ref": NEW_RELEASE, "exit_code": wait_code}
    assert f"deploying to the idle service {GREEN} in cluster {CLUSTER}" in done.stderr
    assert message in done.stderr


@needs_tools
def test_the_script_refuses_to_supersede_a_running_deployment(
    run: Run, stack: Stack, registered: World, fakes: dict[str, str]
) -> None:
    deployment_id = start_deployment(stack)
    save_pairs(run, fakes)

    refused, refused_calls = run_script(fakes, PAIR, fakes["TASKDEF"], FAKE_WAIT_EXIT="0")
    finish(stack, deployment_id, Status.SUCCEEDED, "promoted")  # blue is idle now
    save_pairs(run, fakes)
    allowed, calls = run_script(fakes, PAIR, fakes["TASKDEF"], FAKE_WAIT_EXIT="0")

    assert refused.returncode == 1
    assert f"deployment {deployment_id} of {PAIR} is still running" in refused.stderr
    assert [c["argv"][1] for c in refused_calls] == ["pairs"]
    assert allowed.returncode == 0, allowed.stderr
    assert calls[-2]["params"]["service"] == BLUE
    # Without IMAGE the task definition is registered as described (minus its read-only fields).
    assert calls[-3]["params"]["containerDefinitions"][0]["image"] == "shop:v1"


@needs_tools
def test_the_script_restores_the_desired_count_of_a_service_scaled_to_zero(
    run: Run, stack: Stack, registered: World, fakes: dict[str, str]
) -> None:
    """after_promotion.scale_old_to_zero recorded GREEN's count on the pair; the release brings it back."""
    stack.store.record_retired(PAIR, GREEN, 3)
    pair = save_pairs(run, fakes)
    assert pair["retired"]["service"] == GREEN
    assert pair["retired"]["desired_count"] == 3

    done, calls = run_script(fakes, PAIR, fakes["TASKDEF"], FAKE_WAIT_EXIT="0")

    assert done.returncode == 0, done.stderr
    assert calls[2]["params"]["desiredCount"] == 3
    assert calls[2]["params"]["service"] == GREEN
    assert f"{GREEN} was scaled to zero after the last promotion: restoring its 3 tasks" in done.stderr


@needs_tools
def test_the_script_refuses_bad_arguments(
    run: Run, stack: Stack, registered: World, fakes: dict[str, str]
) -> None:
    save_pairs(run, fakes)

    unknown, _ = run_script(fakes, "nope", fakes["TASKDEF"])
    no_container, calls = run_script(fakes, PAIR, fakes["TASKDEF"], IMAGE)
    no_file, _ = run_script(fakes, PAIR, "/nonexistent/taskdef.json")

    assert unknown.returncode == 2
    assert "pair nope is not registered" in unknown.stderr
    assert no_container.returncode == 2
    assert "set CONTAINER" in no_container.stderr
    assert "aws" not in {c["argv"][0] for c in calls}
    assert no_file.returncode == 2


# ---- the workflow ----------------------------------------------------------------------------------


def test_the_workflow_runs_the_script_and_outlasts_the_wait() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    job = workflow["jobs"]["deploy"]
    [step] = [s for s in job["steps"] if "deploy-and-wait.sh" in s.get("run", "")]

    assert step["run"].split()[0] == f"ci/{SCRIPT.name}"
    assert step["run"].split()[1] == '"$PAIR"'
    assert workflow["env"]["PAIR"]
    assert {"CONTAINER", "WAIT_TIMEOUT", "IMAGE"} <= set(step["env"])
    # The job's own limit is longer than the wait, so the wait's exit code 9 is what ends it.
    assert job["timeout-minutes"] * 60 > int(step["env"]["WAIT_TIMEOUT"])
    assert workflow["concurrency"]["cancel-in-progress"] is False
    # The session outlasts the wait too.
    [credentials] = [s for s in job["steps"] if "configure-aws-credentials" in s.get("uses", "")]
    assert credentials["with"]["role-duration-seconds"] > int(step["env"]["WAIT_TIMEOUT"])
