"""``ecs-canary``: register service pairs and follow their deployments.

Expected failures (bad specs, missing resources, unknown pairs, AWS errors) are printed
as red lines, one per problem, with exit code 2 for bad input and 1 for runtime
failures; only genuine bugs produce a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from importlib import metadata
from typing import NoReturn

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError
from ecs_canary.errors import DeploymentNotFound, SpecError, UnknownServicePair
from ecs_canary.registration import RegistrationConflict, RegistrationError
from rich.console import Console
from rich.text import Text

from ecs_canary_cli.commands import deployments, offline, operate, specs
from ecs_canary_cli.commands import events as event_commands
from ecs_canary_cli.commands import wait as wait_commands
from ecs_canary_cli.commands.base import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, App, CliError
from ecs_canary_cli.context import DEFAULT_STACK, ENV_STACK, ENV_STATE_MACHINE_ARN, ENV_TABLE, ContextError

__all__ = ["build_parser", "main"]

Handler = Callable[[App], int]


class UsageError(Exception):
    """argparse rejected the command line; carries the usage of the (sub)command that failed."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    """Raises instead of exiting, so ``main`` prints the error through rich and returns 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self.format_usage())


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535, got {value}")
    return value


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Stack and AWS options, accepted before or after the command name.

    Subcommands declare them with SUPPRESS defaults so a value given before the command is
    not overwritten by the subcommand's default.
    """
    default = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("stack and AWS options")
    group.add_argument(
        "--stack",
        default=default,
        metavar="NAME",
        help=f"CloudFormation stack of ecs-canary (default: ${ENV_STACK} or {DEFAULT_STACK})",
    )
    group.add_argument(
        "--table",
        default=default,
        metavar="NAME",
        help=f"DynamoDB table, skipping the stack (env {ENV_TABLE})",
    )
    group.add_argument(
        "--state-machine-arn",
        default=default,
        metavar="ARN",
        help=f"state machine ARN when --table is given (env {ENV_STATE_MACHINE_ARN})",
    )
    group.add_argument("--profile", default=default, help="AWS profile (default: $AWS_PROFILE)")
    group.add_argument("--region", default=default, help="AWS region (default: $AWS_REGION or the profile's)")


def _output_options(parser: argparse.ArgumentParser, *, following: bool = False) -> None:
    """``--output text|json`` of the read commands, and ``--json``, its deprecated alias."""
    shape = "one JSON document per line as it follows, and a final one" if following else "one JSON document"
    parser.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help=f"text (default) or json: {shape}",
    )
    parser.add_argument(
        "--json", dest="output", action="store_const", const="json", help="deprecated: same as --output json"
    )


def _version() -> str:
    try:
        return metadata.version("ecs-canary")
    except metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ecs-canary",
        description="Canary and blue/green traffic shifting for Amazon ECS service pairs.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    _global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    def command(
        subparsers: argparse._SubParsersAction[_Parser], name: str, handler: Handler, help_text: str
    ) -> argparse.ArgumentParser:
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        _global_options(sub, suppress=True)
        return sub

    spec = commands.add_parser(
        "spec", help="work with spec files offline", description="Spec files, offline."
    )
    spec_commands = spec.add_subparsers(
        dest="spec_command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    command(spec_commands, "schema", specs.spec_schema, "print the JSON Schema of a spec file")
    events = commands.add_parser(
        "events", help="ecs-canary's lifecycle events", description="ecs-canary's lifecycle events."
    )
    events_commands = events.add_subparsers(
        dest="events_command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    command(
        events_commands,
        "schema",
        event_commands.events_schema,
        "print the JSON Schema of the events' detail, with each transition's detail-type",
    )
    validate = command(
        spec_commands,
        "validate",
        specs.spec_validate,
        "validate a spec file and show the plan it resolves to",
    )
    validate.add_argument("spec", metavar="SPEC.yaml", help="spec file ('-' for stdin)")

    register = command(
        commands,
        "register",
        specs.register_command,
        "check a spec's AWS resources and register (or re-register) the pair",
    )
    register.add_argument("spec", metavar="SPEC.yaml", help="spec file ('-' for stdin)")
    register.add_argument("--dry-run", action="store_true", help="run every check but store nothing")

    deregister = command(
        commands,
        "deregister",
        specs.deregister_command,
        "remove a registered pair (refused while one of its deployments is active)",
    )
    deregister.add_argument("pair", metavar="PAIR")

    pairs = command(commands, "pairs", deployments.pairs_command, "list registered pairs")
    _output_options(pairs)

    history = command(
        commands, "deployments", deployments.deployments_command, "list a pair's deployments, newest first"
    )
    history.add_argument("pair", metavar="PAIR")
    history.add_argument(
        "--limit", type=_positive_int, default=20, metavar="N", help="at most N (default 20)"
    )
    _output_options(history)

    status = command(
        commands,
        "status",
        deployments.status_command,
        "show one deployment in detail (default: the active one, else the newest)",
    )
    status.add_argument("pair", metavar="PAIR")
    status.add_argument("deployment_id", metavar="DEPLOYMENT_ID", nargs="?")
    _output_options(status)

    watch = command(
        commands,
        "watch",
        deployments.watch_command,
        "follow a deployment live until it ends (exit 0 only if it succeeded); "
        "with no deployment active, wait for the next one",
    )
    watch.add_argument("pair", metavar="PAIR")
    watch.add_argument("deployment_id", metavar="DEPLOYMENT_ID", nargs="?")
    watch.add_argument(
        "--interval",
        type=_non_negative,
        default=2.0,
        metavar="S",
        help="seconds between refreshes (default 2)",
    )
    watch.add_argument(
        "--timeout",
        type=_non_negative,
        default=0.0,
        metavar="S",
        help="give up after S seconds (default: never)",
    )
    _output_options(watch, following=True)

    wait = command(
        commands,
        "wait",
        wait_commands.wait_command,
        "wait for one release (not the active deployment) to be picked up and to end; "
        "the exit code says how it ended (for CI)",
    )
    wait.formatter_class = argparse.RawDescriptionHelpFormatter
    wait.description = (
        "Wait for one release (not the active deployment) to be picked up by ecs-canary and to end.\n"
        "It prints one line (or, with --output json, one JSON document) per change, and exits with\n"
        "the code of the release's terminal status (0 only if it SUCCEEDED). For CI."
    )
    wait.epilog = wait_commands.exit_codes_help()
    wait.add_argument("pair", metavar="PAIR")
    wait.add_argument(
        "--release",
        required=True,
        type=wait_commands.release_ref,
        metavar="ID",
        help="the ECS deployment id (ecs-svc/..., from update-service) or the task definition "
        "(ARN or FAMILY:REVISION; the newest deployment of it if there are several)",
    )
    wait.add_argument(
        "--timeout",
        type=_non_negative,
        default=0.0,
        metavar="S",
        help=f"give up after S seconds with exit code {wait_commands.EXIT_WAIT_TIMEOUT} (default: never)",
    )
    wait.add_argument(
        "--interval",
        type=_positive,
        default=5.0,
        metavar="S",
        help="seconds between reads of the table (default 5)",
    )
    _output_options(wait, following=True)

    unlock = command(
        commands,
        "unlock",
        deployments.unlock_command,
        "release a pair's lock whose execution never started or has ended (operator escape hatch)",
    )
    unlock.add_argument("pair", metavar="PAIR")

    def operator(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        sub = command(commands, name, handler, help_text)
        sub.add_argument("pair", metavar="PAIR")
        sub.add_argument(
            "--reason", default="", metavar="TEXT", help="why (recorded in the deployment's history)"
        )
        return sub

    abort = operator(
        "abort", operate.abort_command, "fail the pair's active deployment back now (exit 0 once ABORTED)"
    )
    abort.add_argument("--no-wait", action="store_true", help="return once the abort is recorded")
    abort.add_argument(
        "--timeout",
        type=_non_negative,
        default=120.0,
        metavar="S",
        help="seconds to wait for the deployment to end (default 120)",
    )
    operator(
        "pause",
        operate.pause_command,
        "stop progressing (the health gate, alarms and crash detection stay armed)",
    )
    operator("resume", operate.resume_command, "go on with a paused deployment now")
    promote = operator(
        "promote", operate.promote_command, "skip the rest of the current bake and go to the next step now"
    )
    promote.add_argument(
        "--full",
        action="store_true",
        help="go to 100 %% and promote now, skipping the remaining steps and bakes (for emergencies)",
    )
    promote.add_argument(
        "--skip-analysis",
        action="store_true",
        help="do not judge health before moving on (the gate is otherwise checked first)",
    )

    operator("approve", operate.approve_command, "let a deployment waiting at an approval gate go on")
    reject = command(
        commands,
        "reject",
        operate.reject_command,
        "fail a deployment waiting at an approval gate back to its snapshot",
    )
    reject.add_argument("pair", metavar="PAIR")
    reject.add_argument("--reason", required=True, metavar="TEXT", help="why (recorded in the history)")

    local = commands.add_parser(
        "local", help="the offline AWS emulator", description="The offline AWS emulator."
    )
    local_commands = local.add_subparsers(
        dest="local_command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    up = command(
        local_commands, "up", offline.local_up_command, "run the emulator in the foreground until Ctrl-C"
    )
    up.add_argument("--port", type=_port, default=4566, metavar="N", help="port to listen on (default 4566)")
    up.add_argument(
        "--time-scale",
        type=_positive,
        default=1.0,
        metavar="X",
        help="emulated waits last X times as long (default 1.0; 0.01 makes a minute 0.6 s)",
    )
    up.add_argument(
        "--template", default="template.yaml", metavar="PATH", help="SAM template (default template.yaml)"
    )
    up.add_argument(
        "--duplicate-events",
        type=int,
        default=0,
        metavar="N",
        help="deliver N extra copies of every EventBridge event to Lambda targets (default 0)",
    )
    up.add_argument(
        "--reorder-window",
        type=float,
        default=0.0,
        metavar="S",
        help="spread deliveries over S emulated seconds, so close events arrive shuffled (default 0)",
    )
    up.add_argument(
        "--no-iam",
        action="store_true",
        help="let the functions and the state machine make any call (default: their roles' policies apply)",
    )

    demo = command(commands, "demo", offline.demo_command, "run the scripted offline demo")
    demo.add_argument(
        "--router", choices=("alb", "route53", "both"), default="both", help="which pair kinds (default both)"
    )
    demo.add_argument(
        "--time-scale", type=_positive, default=0.01, metavar="X", help="emulated time factor (default 0.01)"
    )
    demo.add_argument(
        "--port", type=_port, default=0, metavar="N", help="emulator port (default 0: any free port)"
    )
    return parser


def _client_error_line(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    operation = getattr(exc, "operation_name", "AWS call")
    return f"{operation} failed: {error.get('Code', 'error')}: {error.get('Message', exc)}"


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (0 ok, 1 runtime failure, 2 bad input, 130 interrupted)."""
    out = Console(highlight=False)
    err = Console(stderr=True, highlight=False)

    def fail(code: int, *lines: str) -> int:
        for line in lines:
            err.print(Text(line, style="red"), soft_wrap=True)
        return code

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        err.print(exc.usage.rstrip(), style="dim", highlight=False, markup=False)
        return fail(EXIT_USAGE, f"error: {exc}")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else EXIT_USAGE)

    app = App(args=args, out=out, err=err)
    handler: Handler = args.handler
    try:
        return handler(app)
    except CliError as exc:
        return fail(exc.exit_code, *exc.lines)
    except SpecError as exc:
        return fail(EXIT_USAGE, *exc.problems)
    except RegistrationConflict as exc:
        return fail(EXIT_FAILURE, *exc.problems)
    except RegistrationError as exc:
        return fail(EXIT_USAGE, *exc.problems)
    except (UnknownServicePair, DeploymentNotFound, ContextError) as exc:
        return fail(EXIT_USAGE, str(exc))
    except NoCredentialsError:
        return fail(
            EXIT_FAILURE, "no AWS credentials found: configure a profile, pass --profile or set AWS_PROFILE"
        )
    except NoRegionError:
        return fail(EXIT_FAILURE, "no AWS region configured: pass --region or set AWS_REGION")
    except ClientError as exc:
        return fail(EXIT_FAILURE, _client_error_line(exc))
    except BotoCoreError as exc:
        return fail(EXIT_FAILURE, f"AWS error: {exc}")
    except KeyboardInterrupt:
        return fail(130, "interrupted")


if __name__ == "__main__":
    sys.exit(main())
