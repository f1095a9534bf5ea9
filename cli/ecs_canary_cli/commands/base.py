"""What every command gets: parsed arguments, the two consoles and the lazily resolved stack."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecs_canary.errors import SpecError
from ecs_canary.spec import ServicePairSpec, load_spec_yaml
from rich.console import Console
from rich.text import Text

from ecs_canary_cli.context import StackContext, resolve

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "App", "CliError", "read_spec"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class CliError(Exception):
    """An expected failure: printed as red lines (one per problem), never as a traceback."""

    def __init__(self, lines: str | Sequence[str], exit_code: int = EXIT_FAILURE) -> None:
        self.lines: tuple[str, ...] = (lines,) if isinstance(lines, str) else tuple(lines)
        self.exit_code = exit_code
        super().__init__("\n".join(self.lines))


@dataclass
class App:
    """One CLI invocation; the stack is resolved on first use so offline commands never call AWS."""

    args: argparse.Namespace
    out: Console
    err: Console
    _context: StackContext | None = field(default=None, repr=False)

    def context(self) -> StackContext:
        if self._context is None:
            self._context = resolve(
                stack=getattr(self.args, "stack", None),
                table=getattr(self.args, "table", None),
                state_machine_arn=getattr(self.args, "state_machine_arn", None),
                profile=getattr(self.args, "profile", None),
                region=getattr(self.args, "region", None),
            )
        return self._context

    @property
    def json_output(self) -> bool:
        """Whether the command was asked for JSON (``--output json`` or the older ``--json``)."""
        return getattr(self.args, "output", None) == "json" or bool(getattr(self.args, "json", False))

    def emit_json(self, data: Any) -> None:
        """JSON on stdout: highlighted on a terminal, byte-for-byte plain when piped."""
        text = json.dumps(data, indent=2, default=str)
        if self.out.is_terminal:
            self.out.print_json(text)
        else:
            self.out.out(text, highlight=False)

    def emit_json_line(self, data: Any) -> None:
        """One compact JSON document on its own line of stdout, flushed at once (JSON Lines)."""
        self.out.out(json.dumps(data, default=str), highlight=False)

    def error(self, *lines: str) -> None:
        for line in lines:
            self.err.print(Text(line, style="red"), soft_wrap=True)

    def warn(self, *lines: str) -> None:
        for line in lines:
            self.err.print(Text(line, style="yellow"), soft_wrap=True)


def read_spec(path: str) -> ServicePairSpec:
    """Load a spec file (``-`` reads stdin); an unreadable or invalid file is a usage error."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise CliError(f"{path}: no such file", EXIT_USAGE) from exc
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CliError(f"{path}: cannot read: {reason}", EXIT_USAGE) from exc
    try:
        return load_spec_yaml(text)
    except SpecError as exc:
        count = len(exc.problems)
        header = f"{path} is invalid ({count} problem{'s' if count != 1 else ''}):"
        raise CliError([header, *(f"  {p}" for p in exc.problems)], EXIT_USAGE) from exc
