"""``wait``: follow one release to its end, for CI; the exit code says how it ended.

Unlike ``watch`` (the pair's active or next deployment, on a live panel), ``wait`` names the
release it follows: the ECS deployment id ``update-service`` answered, or the task definition.
It waits for ecs-canary to pick the release up, then for its record to end, printing one line
(or one JSON document) per change. It only reads the table (GetItem and Query).
"""

from __future__ import annotations

import argparse
import re
import time
from dataclasses import dataclass
from typing import Any, Literal

from ecs_canary.store import Deployment, Release, Status, Store
from rich.text import Text

from ecs_canary_cli import render
from ecs_canary_cli.commands.base import EXIT_FAILURE, App, CliError
from ecs_canary_cli.commands.deployments import plan_steps

__all__ = [
    "EXIT_CODES",
    "EXIT_WAIT_TIMEOUT",
    "ReleaseRef",
    "exit_code_for",
    "exit_codes_help",
    "find_release",
    "release_ref",
    "wait_command",
]

# Module attributes rather than direct calls so tests can drive the wait without real waiting.
sleep = time.sleep
monotonic = time.monotonic

EXIT_CODES: dict[Status, int] = {
    Status.SUCCEEDED: 0,
    Status.FAILED: 3,
    Status.REJECTED: 4,
    Status.ABORTED: 5,
    Status.TIMED_OUT: 6,
    Status.SUPERSEDED: 7,
    Status.ROLLBACK_FAILED: 8,
}
"""Exit code of ``wait`` for each terminal status (1 and 2 stay the CLI's runtime and usage errors)."""

EXIT_WAIT_TIMEOUT = 9
"""``--timeout`` passed before the release ended (or before ecs-canary saw it)."""

_DEPLOYMENT_ID = re.compile(r"^ecs-svc/[A-Za-z0-9]+$")
_TASK_DEFINITION_ARN = re.compile(
    r"^arn:[a-z-]+:ecs:[a-z0-9-]+:\d{12}:task-definition/[A-Za-z0-9_-]{1,255}:\d+$"
)
_FAMILY_REVISION = re.compile(r"^[A-Za-z0-9_-]{1,255}:\d+$")


def exit_code_for(status: Status) -> int:
    """The exit code of a terminal status; a status this CLI does not know yet is a plain failure."""
    return EXIT_CODES.get(status, EXIT_FAILURE)


def exit_codes_help() -> str:
    """The exit-code table, for ``wait --help``."""
    rows = [(str(code), status.value) for status, code in EXIT_CODES.items()]
    rows += [
        ("1", "error (AWS call failed, credentials, ...)"),
        ("2", "bad usage (unknown pair, malformed --release)"),
        (str(EXIT_WAIT_TIMEOUT), "--timeout passed first"),
    ]
    rows.sort(key=lambda row: int(row[0]))
    return "exit codes:\n" + "\n".join(f"  {code:>2}  {meaning}" for code, meaning in rows)


@dataclass(frozen=True)
class ReleaseRef:
    """What ``--release`` names: an ECS deployment id, a task definition ARN, or ``family:revision``."""

    kind: Literal["deployment", "task_definition", "family_revision"]
    value: str

    def matches(self, release: Release) -> bool:
        if self.kind == "deployment":
            return release.deployment == self.value
        if self.kind == "task_definition":
            return release.task_definition == self.value
        return release.task_definition.endswith(f":task-definition/{self.value}")

    def describe(self) -> str:
        return f"release {self.value}" if self.kind == "deployment" else f"task definition {self.value}"


def release_ref(text: str) -> ReleaseRef:
    """Parse ``--release`` (an argparse ``type``: a malformed value is a usage error)."""
    value = text.strip()
    if _DEPLOYMENT_ID.match(value):
        return ReleaseRef("deployment", value)
    if _TASK_DEFINITION_ARN.match(value):
        return ReleaseRef("task_definition", value)
    if _FAMILY_REVISION.match(value):
        return ReleaseRef("family_revision", value)
    raise argparse.ArgumentTypeError(
        f"{text!r} is neither an ECS deployment id (ecs-svc/...) nor a task definition "
        "(arn:aws:ecs:REGION:ACCOUNT:task-definition/FAMILY:REVISION or FAMILY:REVISION)"
    )


def find_release(store: Store, pair: str, ref: ReleaseRef) -> tuple[Deployment | None, int]:
    """The newest deployment record of the release, and how many records match."""
    matching = [d for d in store.list_deployments(pair) if ref.matches(d.release)]
    return (matching[0] if matching else None), len(matching)


class _Output:
    """Text lines or JSON Lines: one on start, one per change of the release, one at the end."""

    def __init__(self, app: App, pair: str, ref: ReleaseRef) -> None:
        self.app = app
        self.pair = pair
        self.ref = ref
        self.last: str | None = None
        self.announced = False

    def waiting(self) -> None:
        if self.announced:
            return
        self.announced = True
        if self.app.json_output:
            self.app.emit_json_line(
                {"event": "waiting", "pair": self.pair, "release_ref": self.ref.value, "status": None}
            )
        else:
            self.app.out.print(
                f"waiting for ecs-canary to pick up {self.ref.describe()} of pair {self.pair} …",
                soft_wrap=True,
            )

    def found(self, dep: Deployment, matches: int) -> None:
        if matches > 1:
            self.app.warn(
                f"{matches} deployments of pair {self.pair} ran {self.ref.describe()}: following the newest, "
                f"{dep.deployment_id} (pass its ECS deployment id to name one exactly)"
            )
        if not self.app.json_output:
            release = dep.release
            self.app.out.print(
                f"{self.ref.describe()} is deployment {dep.deployment_id}: "
                f"{release.service} ← {release.deployment} ({release.task_definition})",
                soft_wrap=True,
            )

    def change(self, dep: Deployment, steps: int | None) -> None:
        doc = render.deployment_event(dep, event="change", steps=steps)
        key = render.event_key(doc)
        if key == self.last:
            return
        self.last = key
        if self.app.json_output:
            self.app.emit_json_line(doc)
        else:
            self.app.out.print(render.progress_line(dep, steps), soft_wrap=True)

    def end(self, dep: Deployment, steps: int | None, code: int) -> None:
        if self.app.json_output:
            self.app.emit_json_line(render.deployment_event(dep, event="end", steps=steps, exit_code=code))
            return
        line = f"deployment {dep.deployment_id} {dep.status.value}"
        style = "green" if dep.status is Status.SUCCEEDED else "red"
        self.app.out.print(Text(f"{line}: {dep.reason}" if dep.reason else line, style=style), soft_wrap=True)

    def timeout(self, dep: Deployment | None, steps: int | None) -> None:
        if not self.app.json_output:
            return
        doc: dict[str, Any]
        if dep is None:
            doc = {
                "event": "timeout",
                "pair": self.pair,
                "release_ref": self.ref.value,
                "deployment_id": None,
                "status": None,
            }
        else:
            doc = render.deployment_event(dep, event="timeout", steps=steps, release_ref=self.ref.value)
        doc["exit_code"] = EXIT_WAIT_TIMEOUT
        self.app.emit_json_line(doc)


def wait_command(app: App) -> int:
    """Wait for a release to be seen, then to end; the exit code is its terminal status's."""
    store = app.context().store()
    name: str = app.args.pair
    ref: ReleaseRef = app.args.release
    pair = store.get_pair(name)
    interval = max(0.0, float(app.args.interval))
    deadline = monotonic() + app.args.timeout if app.args.timeout else None
    output = _Output(app, name, ref)
    dep: Deployment | None = None
    steps: int | None = None
    while True:
        if dep is None:
            dep, matches = find_release(store, name, ref)
            if dep is None:
                output.waiting()
            else:
                output.found(dep, matches)
                steps = plan_steps(dep, pair)
        else:
            dep = store.get_deployment(name, dep.deployment_id)
        if dep is not None:
            if dep.status.terminal:
                code = exit_code_for(dep.status)
                output.end(dep, steps, code)
                return code
            output.change(dep, steps)
        if deadline is not None and monotonic() >= deadline:
            output.timeout(dep, steps)
            waited = render.format_duration(app.args.timeout)
            if dep is None:
                raise CliError(
                    f"timed out after {waited}: ecs-canary has not picked up {ref.describe()} of pair {name} "
                    f"(is it deployed to the idle service, {pair.idle_service}?)",
                    EXIT_WAIT_TIMEOUT,
                )
            raise CliError(
                f"timed out after {waited}: deployment {dep.deployment_id} is still {dep.status.value}",
                EXIT_WAIT_TIMEOUT,
            )
        sleep(interval)
