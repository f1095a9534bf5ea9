"""``local up`` and ``demo``: the offline emulator and the scripted demo.

Both need moto (the ``local`` extra), so their modules are imported only when one of these
commands runs; every other command works with the base install.
"""

from __future__ import annotations

import errno
import time
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ecs_canary_cli.commands.base import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, App, CliError

__all__ = ["demo_command", "local_up_command"]

# A module attribute so tests can end the foreground wait.
sleep = time.sleep

_EXTRA_HINT = "install the emulator's dependencies: pip install 'ecs-canary[local]'"


def _missing(exc: ModuleNotFoundError) -> CliError:
    return CliError(f"cannot start: module {exc.name or exc} is not installed; {_EXTRA_HINT}", EXIT_FAILURE)


def _hints(endpoint: str, region: str) -> Text:
    """Shell lines that point the AWS CLI, boto3 and ``ecs-canary`` at the emulator."""
    return Text(
        "\n".join(
            [
                f"export AWS_ENDPOINT_URL={endpoint}",
                f"export AWS_REGION={region}",
                "export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing",
            ]
        )
    )


def local_up_command(app: App) -> int:
    """Run the emulator in the foreground until Ctrl-C."""
    template = Path(app.args.template)
    if not template.is_file():
        raise CliError(
            f"{template}: no such template; run from the repository root or pass --template", EXIT_USAGE
        )
    try:
        from ecs_canary_cli.local import EmulatorOptions  # noqa: PLC0415 - needs moto, loaded on demand
        from ecs_canary_cli.local.deploy import DeployError  # noqa: PLC0415 - needs moto, loaded on demand
        from ecs_canary_cli.local.server import Emulator  # noqa: PLC0415 - needs moto, loaded on demand
    except ModuleNotFoundError as exc:
        raise _missing(exc) from exc

    where = f" on http://127.0.0.1:{app.args.port}" if app.args.port else ""
    app.err.print(
        Text(
            f"starting the emulator{where} and deploying {template} … "
            "(AWS calls to it wait until the stack is deployed)",
            style="dim",
        )
    )
    options = EmulatorOptions(
        duplicates=max(0, app.args.duplicate_events),
        reorder_window=max(0.0, app.args.reorder_window),
        iam=not app.args.no_iam,
    )
    try:
        # Entering returns once the stack is deployed, so the panel only ever announces a ready endpoint.
        with Emulator(
            port=app.args.port, time_scale=app.args.time_scale, template=template, options=options
        ) as emulator:
            app.out.print(_ready_panel(app, emulator))
            try:
                while True:
                    sleep(3600)
            except KeyboardInterrupt:
                app.err.print(Text("stopping the emulator …", style="dim"))
    except DeployError as exc:
        raise CliError(f"the emulated stack did not deploy: {exc}", EXIT_FAILURE) from exc
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise CliError(
            f"cannot listen on port {app.args.port}: {exc.strerror}; pass --port", EXIT_FAILURE
        ) from exc
    return EXIT_OK


def _ready_panel(app: App, emulator: Any) -> Panel:
    """The endpoint, the stack's outputs and the shell lines to use them."""
    endpoint = str(emulator.endpoint)
    region = str(emulator.region)
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column(overflow="fold")
    facts.add_row("endpoint", endpoint)
    facts.add_row("region", region)
    facts.add_row("time scale", f"{app.args.time_scale:g} (a 60 s wait lasts {60 * app.args.time_scale:g} s)")
    for key, value in sorted(dict(emulator.outputs).items()):
        facts.add_row(key, str(value))
    body = Group(
        facts,
        Text.assemble(
            "\n",
            ("In another shell (ecs-canary then finds the emulated stack as usual):\n", "bold"),
            _hints(endpoint, region),
            "\n\n",
            ("Press Ctrl-C to stop.", "dim"),
        ),
    )
    return Panel(body, title="ecs-canary local emulator", title_align="left", border_style="green")


def demo_command(app: App) -> int:
    try:
        from ecs_canary_cli.demo.runner import run_demo  # noqa: PLC0415 - needs moto, loaded on demand
    except ModuleNotFoundError as exc:
        raise _missing(exc) from exc
    return int(run_demo(router=app.args.router, time_scale=app.args.time_scale, port=app.args.port))
