"""``local up`` and ``demo`` hand over to the emulator and demo modules, loaded only when they run."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from ecs_canary_cli.commands import offline

from .conftest import Run


class FakeEmulator:
    """Stands in for ``ecs_canary_cli.local.server.Emulator``."""

    instances: list[FakeEmulator] = []

    def __init__(
        self, port: int = 0, time_scale: float = 1.0, template: Path | None = None, options: Any = None
    ) -> None:
        self.kwargs: dict[str, Any] = {"port": port, "time_scale": time_scale, "template": template}
        self.options = options
        self.endpoint = "http://127.0.0.1:4599"
        self.region = "us-east-1"
        self.outputs = {"TableName": "ecs-canary-CanaryTable-1", "StateMachineArn": "arn:aws:states:sm"}
        self.stopped = False
        FakeEmulator.instances.append(self)

    def __enter__(self) -> FakeEmulator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stopped = True


def install(monkeypatch: pytest.MonkeyPatch, name: str, **attributes: Any) -> None:
    module = types.ModuleType(name)
    for key, value in attributes.items():
        setattr(module, key, value)
    monkeypatch.setitem(sys.modules, name, module)


def interrupt(seconds: float) -> None:
    raise KeyboardInterrupt


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    FakeEmulator.instances = []
    install(monkeypatch, "ecs_canary_cli.local.server", Emulator=FakeEmulator)
    monkeypatch.setattr(offline, "sleep", interrupt)
    template = tmp_path / "template.yaml"
    template.write_text("Resources: {}\n")
    monkeypatch.chdir(tmp_path)
    return template


def test_local_up_prints_the_endpoint_and_blocks_until_ctrl_c(run: Run, emulator: Path) -> None:
    result = run("local", "up", "--port", "4599", "--time-scale", "0.1")

    assert result.code == 0, result.err
    [instance] = FakeEmulator.instances
    assert instance.kwargs == {"port": 4599, "time_scale": 0.1, "template": Path("template.yaml")}
    assert instance.stopped
    out = " ".join(result.out.split())
    assert "endpoint http://127.0.0.1:4599" in out
    assert "TableName ecs-canary-CanaryTable-1" in out
    assert "export AWS_ENDPOINT_URL=http://127.0.0.1:4599" in out
    assert "export AWS_REGION=us-east-1" in out
    assert "export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing" in out
    assert "a 60 s wait lasts 6 s" in out
    assert "stopping the emulator" in result.err


def test_local_up_passes_event_delivery_options(run: Run, emulator: Path) -> None:
    result = run("local", "up", "--duplicate-events", "3", "--reorder-window", "30")

    assert result.code == 0, result.err
    options = FakeEmulator.instances[0].options
    assert (options.duplicates, options.reorder_window) == (3, 30.0)


def test_local_up_defaults(run: Run, emulator: Path) -> None:
    assert run("local", "up").code == 0
    assert FakeEmulator.instances[0].kwargs == {
        "port": 4566,
        "time_scale": 1.0,
        "template": Path("template.yaml"),
    }
    options = FakeEmulator.instances[0].options
    assert (options.duplicates, options.reorder_window, options.iam) == (0, 0.0, True)


def test_local_up_no_iam_turns_the_authorisation_off(run: Run, emulator: Path) -> None:
    assert run("local", "up", "--no-iam").code == 0
    assert FakeEmulator.instances[0].options.iam is False


def test_local_up_needs_the_template(run: Run, emulator: Path) -> None:
    emulator.unlink()

    result = run("local", "up")

    assert result.code == 2
    assert (
        result.err.strip()
        == "template.yaml: no such template; run from the repository root or pass --template"
    )
    assert FakeEmulator.instances == []


def test_local_up_without_the_local_extra(run: Run, emulator: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ecs_canary_cli.local.server", None)

    result = run("local", "up")

    assert result.code == 1
    assert "pip install 'ecs-canary[local]'" in result.err


def test_demo_passes_its_options_and_returns_the_demo_exit_code(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []

    def run_demo(router: str = "both", time_scale: float = 0.01, port: int = 0) -> int:
        calls.append({"router": router, "time_scale": time_scale, "port": port})
        return 3

    install(monkeypatch, "ecs_canary_cli.demo.runner", run_demo=run_demo)

    assert run("demo").code == 3
    assert run("demo", "--router", "alb", "--time-scale", "0.5", "--port", "4600").code == 3
    assert calls == [
        {"router": "both", "time_scale": 0.01, "port": 0},
        {"router": "alb", "time_scale": 0.5, "port": 4600},
    ]


def test_the_rest_of_the_cli_does_not_import_moto() -> None:
    code = (
        "import sys, ecs_canary_cli.main; print(sorted(m for m in sys.modules if m.split('.')[0] == 'moto'))"
    )

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "[]"
