"""Faults injected into Lambda invocations, for fault-matrix tests and game days.

AWS offers this through Fault Injection Service, whose Lambda actions run inside the execution
environment (a layer/extension) and act on the invocations of a targeted function. The emulator
does the same from its Lambda runtime: a fault names a function, optionally a substring the
invocation's payload must contain (to single out one deployment among many) and how many
invocations it applies to; each invocation it applies to carries it into its sandbox, which then

* ``crash``: the runtime process exits as the handler starts (Lambda reports ``Runtime.ExitError``);
* ``timeout``: the handler hangs past the function's timeout (``Sandbox.Timedout``);
* ``throttle``: each AWS call the handler makes that matches ``calls`` is answered with the
  service's throttling error (HTTP 400 ``ThrottlingException``, or ``Throttling`` for the query and
  REST-XML protocols), as a throttled account sees it; the SDK's retries see it too;
* ``server-error``: the same with an HTTP 500 from the service (``InternalFailure``, DynamoDB's
  ``InternalServerError``);
* ``exit-after-call``: the process exits right after the first matching call *succeeded*: the
  AWS write landed, whatever the handler meant to record after it did not.

``calls`` are ``service:Operation`` patterns (``fnmatch``), the service as boto3 names it
(``elbv2:ModifyListener``, ``dynamodb:*``, ``*:Put*``); by default every call matches, except for
``exit-after-call``, whose default is the first call that writes (see
:data:`~ecs_canary_cli.local.lambda_worker.WRITE_PREFIXES`).

This module is the emulator's side (the registry and the control API's shapes); the sandbox's
side is :func:`ecs_canary_cli.local.lambda_worker.apply_call_faults`.
"""

from __future__ import annotations

import fnmatch
import itertools
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

from .lambda_worker import WRITE_PREFIXES, call_matches

__all__ = [
    "CALL_FAULTS",
    "WRITE_PREFIXES",
    "Fault",
    "FaultError",
    "FaultKind",
    "FaultRegistry",
    "call_matches",
]

FaultKind = Literal["crash", "timeout", "throttle", "server-error", "exit-after-call"]
KINDS: tuple[str, ...] = get_args(FaultKind)
CALL_FAULTS = frozenset({"throttle", "server-error", "exit-after-call"})
"""Faults that act on the AWS calls the handler makes rather than on the invocation itself."""


class FaultError(ValueError):
    """A fault definition the control API refuses; the message names the field."""


_IDS = itertools.count(1)


@dataclass
class Fault:
    """One fault: what it does, to which invocations, how many times, and how often it acted."""

    function: str
    kind: FaultKind
    match: str = ""
    calls: tuple[str, ...] = ()
    times: int | None = 1
    id: str = field(default_factory=lambda: f"fault-{next(_IDS)}")
    invocations: int = 0
    """Invocations it was applied to."""
    acted: int = 0
    """Times it acted: calls refused or followed by an exit, invocations crashed or hung."""

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Fault:
        """A fault from a control request, or a :class:`FaultError` naming the bad field."""
        known = {"function", "kind", "match", "calls", "times"}
        unknown = sorted(set(body) - known)
        if unknown:
            raise FaultError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        function = body.get("function")
        if not isinstance(function, str) or not function:
            raise FaultError("'function' must be a function name (or an fnmatch pattern)")
        kind = body.get("kind")
        if kind not in KINDS:
            raise FaultError(f"'kind' must be one of {', '.join(KINDS)}; got {kind!r}")
        match = body.get("match", "")
        if not isinstance(match, str):
            raise FaultError("'match' must be a string the invocation payload contains")
        calls = body.get("calls", [])
        if not isinstance(calls, list) or not all(isinstance(c, str) and ":" in c for c in calls):
            raise FaultError("'calls' must be a list of 'service:Operation' patterns")
        if calls and kind not in CALL_FAULTS:
            raise FaultError(f"'calls' applies to {', '.join(sorted(CALL_FAULTS))}, not {kind}")
        times = body.get("times", 1)
        if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
            raise FaultError("'times' must be a positive number of invocations, or null for every one")
        if not calls and kind in ("throttle", "server-error"):
            calls = ["*:*"]
        return cls(function, cast(FaultKind, kind), match, tuple(calls), times)

    def applies(self, function_name: str, payload: bytes) -> bool:
        if self.times is not None and self.invocations >= self.times:
            return False
        if not fnmatch.fnmatchcase(function_name, self.function):
            return False
        return not self.match or self.match.encode() in payload

    def wire(self) -> dict[str, Any]:
        """What the sandbox needs to act (sent with the invocation)."""
        return {"id": self.id, "kind": self.kind, "calls": list(self.calls)}

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "function": self.function,
            "kind": self.kind,
            "match": self.match,
            "calls": list(self.calls),
            "times": self.times,
            "invocations": self.invocations,
            "acted": self.acted,
        }


class FaultRegistry:
    """The faults in force; thread-safe (invocations start from many threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove(self, fault_id: str | None = None) -> int:
        """Remove one fault (or all of them); how many were removed."""
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if fault_id is not None and f.id != fault_id]
            return before - len(self._faults)

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.describe() for f in self._faults]

    def take(self, function_name: str, payload: bytes) -> dict[str, Any] | None:
        """The first fault that applies to this invocation (counted as applied), for its sandbox."""
        with self._lock:
            for fault in self._faults:
                if fault.applies(function_name, payload):
                    fault.invocations += 1
                    return fault.wire()
        return None

    def acted(self, fault_id: str) -> None:
        """The sandbox reports that the fault acted."""
        with self._lock:
            for fault in self._faults:
                if fault.id == fault_id:
                    fault.acted += 1
