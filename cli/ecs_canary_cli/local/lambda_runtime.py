"""A stand-in for the Lambda service's Python runtime: sandboxes in worker processes.

Each function version runs in execution environments of its own: worker processes (forked by
:mod:`.lambda_worker`'s zygote) whose ``os.environ`` is that version's environment plus what the
Lambda runtime sets, whose code is that version's zip (extracted once per code hash), and whose
module state survives from one invocation to the next (warm starts). A sandbox serves one
invocation at a time, so concurrent invocations of a version run in as many sandboxes, started
on demand and kept warm for reuse.

The account has a concurrency limit (``EmulatorOptions.lambda_concurrency``, 10 by default): a
synchronous invocation beyond it is throttled (``TooManyRequestsException``), an asynchronous one
waits in Lambda's internal queue until a slot frees. The queue, retries, destinations, timeouts
(a sandbox past its function's timeout is killed and replaced) and log shipping (START, END and
REPORT lines and what the code printed, to CloudWatch Logs) stay in the emulator's process.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import lambda_worker
from .clock import DelayedExecutor
from .faults import FaultRegistry
from .lambda_worker import ChannelClosed, LambdaContext, error_body, recv_message, send_message

__all__ = [
    "DEFAULT_CONCURRENCY",
    "FunctionSpec",
    "InProcessLambdaRuntime",
    "InvocationResult",
    "LambdaContext",
    "LambdaRuntime",
    "ThrottledError",
]

LOG = logging.getLogger(__name__)

# Host variables a Python process needs; everything else of the host environment is hidden from
# handlers. Coverage's variables let a measured test run measure the sandboxes too.
_HOST_ENV_KEEP = frozenset(
    {"PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "TEMP", "TMP", "VIRTUAL_ENV", "PYTHONPATH", "SYSTEMROOT"}
)
_HOST_ENV_KEEP_PREFIXES = ("COV_", "COVERAGE_")

# Lambda's defaults for asynchronous invocation (EventInvokeConfig when none is configured).
_ASYNC_DEFAULT_RETRIES = 2
_ASYNC_DEFAULT_MAX_AGE = 21600
_ASYNC_RETRY_DELAYS = (60.0, 120.0)

DEFAULT_CONCURRENCY = 10
"""Concurrent executions per account and region (AWS's default quota is 1000; a laptop's is less)."""
_MAX_DISPATCHERS = 100
"""Threads that run queued asynchronous invocations: the most of them that can run at once."""
_INIT_TIMEOUT = 10.0
"""Real seconds Lambda gives a new execution environment's INIT phase (importing the handler).

An INIT that takes longer is not an error in itself: as Lambda does for on-demand functions, it
goes on within the invocation, whose timeout the time past these seconds counts against."""
_MAX_IDLE_SANDBOXES = 40
"""Warm sandboxes kept across all functions; the least recently used beyond that are shut down."""
_HEARTBEAT_SECONDS = 0.02
"""Real seconds between the marks the queue leaves on its executor while it holds events."""

FAKE_ACCESS_KEY = "ASIAEMULATEDLAMBDA00"
FAKE_SECRET_KEY = "emulated-lambda-secret"

_WORKER_SCRIPT = str(Path(lambda_worker.__file__).resolve())


class ThrottledError(Exception):
    """The account's concurrency limit is reached (a 429 ``TooManyRequestsException`` in AWS)."""


@dataclass
class InvocationResult:
    payload: bytes
    function_error: str | None = None
    request_id: str = ""


@dataclass
class FunctionSpec:
    """What the runtime needs to know of the function version it runs (read from moto's model).

    ``arn`` is the unqualified function ARN, ``version`` the version that runs (``$LATEST`` or a
    published number) and ``invoked_arn`` the ARN the caller named (unqualified, or qualified by
    ``$LATEST``, a version or an alias), as the context object reports it.
    """

    name: str
    arn: str
    handler: str
    runtime: str
    memory_size: int
    timeout: float
    environment: Mapping[str, str]
    code_sha256: str
    code_bytes: bytes
    tracing_mode: str
    region: str
    account_id: str
    async_config: Mapping[str, Any]
    version: str = "$LATEST"
    invoked_arn: str = ""
    role: str = ""
    """The execution role's ARN: the sandbox runs with its session credentials."""

    def __post_init__(self) -> None:
        self.invoked_arn = self.invoked_arn or self.arn

    @property
    def qualified_arn(self) -> str:
        """The invoked ARN with the qualifier Lambda reports for an unqualified call (``$LATEST``)."""
        return self.invoked_arn if self.invoked_arn != self.arn else f"{self.arn}:$LATEST"

    @property
    def code_key(self) -> str:
        """Identifies the code (the zip's hash)."""
        return self.code_sha256 or hashlib.sha256(self.code_bytes).hexdigest()

    @property
    def config_key(self) -> str:
        """Identifies the configuration a sandbox is created with (a change means new sandboxes)."""
        config = [
            self.handler,
            self.runtime,
            self.memory_size,
            self.timeout,
            sorted((str(k), str(v)) for k, v in self.environment.items()),
            self.tracing_mode,
            self.role,
        ]
        return hashlib.sha256(json.dumps(config).encode()).hexdigest()

    @classmethod
    def from_moto(cls, fn: Any, invoked_arn: str = "") -> FunctionSpec:
        """``fn`` is moto's $LATEST, a published version, or a version as an alias addresses it."""
        configs = getattr(fn, "event_invoke_config", None) or []
        partition = getattr(fn, "partition", "aws")
        return cls(
            name=fn.function_name,
            arn=f"arn:{partition}:lambda:{fn.region}:{fn.account_id}:function:{fn.function_name}",
            handler=fn.handler or "",
            runtime=fn.run_time or "python3.13",
            memory_size=int(fn.memory_size or 128),
            timeout=float(fn.timeout or 3),
            environment=dict(fn.environment_vars or {}),
            code_sha256=getattr(fn, "code_sha_256", "") or "",
            code_bytes=getattr(fn, "code_bytes", b"") or b"",
            tracing_mode=(fn.tracing_config or {}).get("Mode", "PassThrough"),
            region=fn.region,
            account_id=fn.account_id,
            async_config=dict(configs[-1].config) if configs else {},
            version=str(getattr(fn, "version", "$LATEST")),
            invoked_arn=invoked_arn,
            role=str(getattr(fn, "role", "") or ""),
        )


def _now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error(error_type: str, message: str, request_id: str) -> InvocationResult:
    return InvocationResult(error_body(error_type, message, request_id).encode(), "Unhandled", request_id)


class _SandboxGone(Exception):
    """A sandbox could not be started, or died."""

    def __init__(self, result: InvocationResult) -> None:
        super().__init__(result.payload.decode(errors="replace"))
        self.result = result


# -- processes ------------------------------------------------------------------------------------


class _Zygote:
    """The process that forks sandboxes (it has imported the runtime's own modules once)."""

    def __init__(self, cwd: str) -> None:
        ours, theirs = socket.socketpair()
        self._control = ours
        self._lock = threading.Lock()
        try:
            self.process = subprocess.Popen(
                [sys.executable, _WORKER_SCRIPT, "--zygote", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                cwd=cwd,
            )
        finally:
            theirs.close()

    def alive(self) -> bool:
        return self.process.poll() is None

    def fork(self) -> tuple[int, socket.socket]:
        """A new child of the zygote: its pid and the emulator's end of its channel."""
        ours, theirs = socket.socketpair()
        try:
            with self._lock:
                socket.send_fds(self._control, [b"f"], [theirs.fileno()])
                pid = lambda_worker.read_pid(self._control)
        except (OSError, ChannelClosed):
            ours.close()
            raise
        finally:
            theirs.close()
        return pid, ours

    def close(self) -> None:
        self._control.close()  # the zygote exits on EOF; its children die with it (Linux)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


class _Sandbox:
    """The emulator's handle on one sandbox process."""

    def __init__(self, pid: int, sock: socket.socket, log_stream: str) -> None:
        self.pid = pid
        self.sock = sock
        self.log_stream = log_stream
        self.init_seconds: float | None = None  # reported once, by the first invocation's REPORT
        self.init_lines: list[str] = []  # printed during INIT, shipped with the first invocation
        self.last_used = time.monotonic()
        self.dead = False
        self._pidfd: int | None = None
        if hasattr(os, "pidfd_open"):
            try:
                self._pidfd = os.pidfd_open(pid)
            except OSError:  # already gone (or no pidfd support): kill by pid while it answers
                self._pidfd = None

    def receive(self, deadline: float) -> dict[str, Any]:
        """The next message, by ``deadline`` (time.monotonic); TimeoutError past it."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        return recv_message(self.sock)

    def kill(self) -> None:
        """Stop the process (if still there) and close the channel."""
        if not self.dead:
            self.dead = True
            try:
                if self._pidfd is not None:
                    signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
                else:
                    os.kill(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError, OSError):
                pass
        self.close()

    def close(self) -> None:
        self.dead = True
        self.sock.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


@dataclass(eq=False)
class _Pool:
    """The sandboxes of one function version with one code and configuration."""

    code_dir: str
    idle: list[_Sandbox] = field(default_factory=list)
    members: set[_Sandbox] = field(default_factory=set)
    retired: bool = False


@dataclass(frozen=True)
class _AsyncEvent:
    """An event in Lambda's internal queue (the same request id through every attempt)."""

    spec: FunctionSpec
    payload: bytes
    request_id: str
    queued_at: float  # emulated seconds (clock.monotonic)
    attempt: int = 0

    @property
    def scope(self) -> tuple[str, str]:
        return (self.spec.account_id, self.spec.region)


class LambdaRuntime:
    """Runs Python handlers in sandbox processes against the emulator's endpoint."""

    def __init__(self, endpoint: str, executor: DelayedExecutor, destinations: Callable[[str, str], None]):
        self.endpoint = endpoint
        self._executor = executor
        self._send_to_destination = destinations
        self._root = tempfile.mkdtemp(prefix="ecs-canary-lambda-")
        self.invocations: list[tuple[str, str]] = []  # (function name, request id), for diagnostics
        # Receives (function, log stream, lines) after each invocation: Lambda ships them to Logs.
        self.log_sink: Callable[[FunctionSpec, str, list[str]], None] | None = None
        # The execution role's session credentials for a new sandbox (access key, secret, token);
        # None (or no answer) gives fake credentials.
        self.credentials: Callable[[FunctionSpec], tuple[str, str, str] | None] | None = None
        # Concurrent executions allowed per account and region (read at each invocation).
        self.concurrency_limit: Callable[[], int] = lambda: DEFAULT_CONCURRENCY
        # Injected faults (the emulator's API): each invocation they apply to carries one.
        self.faults = FaultRegistry()
        self._pools_lock = threading.Lock()
        self._pools: dict[tuple[str, str, str, str], _Pool] = {}
        self._current: dict[tuple[str, str], tuple[str, str, str, str]] = {}
        self._code_dirs: dict[str, str] = {}
        self._sandboxes: set[_Sandbox] = set()  # every sandbox up, retired pools' included
        self._zygote_lock = threading.Lock()
        self._zygote: _Zygote | None = _Zygote(self._root)
        self._ship_lock = threading.Lock()
        # Concurrency slots and the asynchronous queue share one lock.
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # dispatchers: an event or a slot to take
        self._freed = threading.Condition(self._lock)  # synchronous callers that wait for a slot
        self._running: dict[tuple[str, str], int] = {}
        self._waiting: dict[tuple[str, str], int] = {}  # synchronous callers waiting for a slot
        self._queues: dict[tuple[str, str], deque[_AsyncEvent]] = {}
        self._outstanding = 0  # asynchronous events queued or running
        self._dispatchers: list[threading.Thread] = []
        self._heartbeat = False
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Kill every sandbox and the zygote; queued asynchronous events are dropped."""
        with self._lock:
            self._closed = True
            self._queues.clear()
            self._work.notify_all()
            self._freed.notify_all()
        with self._pools_lock:
            sandboxes = list(self._sandboxes)
            self._sandboxes.clear()
            self._pools.clear()
        for sandbox in sandboxes:
            sandbox.kill()
        with self._zygote_lock:
            if self._zygote is not None:
                self._zygote.close()
                self._zygote = None
        for thread in self._dispatchers:
            thread.join(timeout=2)
        shutil.rmtree(self._root, ignore_errors=True)

    def sandbox_pids(self) -> list[int]:
        """The process ids of the sandboxes that are up (for diagnostics and tests)."""
        with self._pools_lock:
            return sorted(s.pid for s in self._sandboxes if not s.dead)

    # -- concurrency ---------------------------------------------------------------------------------

    def _limit(self) -> int:
        return max(1, int(self.concurrency_limit()))

    def in_flight(self, account_id: str, region: str) -> int:
        """Invocations running now in the account and region."""
        with self._lock:
            return self._running.get((account_id, region), 0)

    def waiting(self, account_id: str, region: str) -> int:
        """Synchronous invocations waiting for a slot now in the account and region."""
        with self._lock:
            return self._waiting.get((account_id, region), 0)

    def _release_slot(self, scope: tuple[str, str]) -> None:
        with self._lock:
            self._running[scope] -= 1
            self._freed.notify_all()
            self._work.notify()

    # -- synchronous invocation ----------------------------------------------------------------------

    def invoke(self, spec: FunctionSpec, payload: bytes, *, wait: float = 0.0) -> InvocationResult:
        """Run the handler once (``RequestResponse``).

        Beyond the concurrency limit the call is throttled (ThrottledError) once it has waited
        ``wait`` real seconds for a slot (0: at once, as Lambda does). A synchronous caller that
        waits goes before the asynchronous queue: the queue takes a slot only when no caller waits.
        """
        scope = (spec.account_id, spec.region)
        deadline = time.monotonic() + max(0.0, wait)
        with self._lock:
            self._waiting[scope] = self._waiting.get(scope, 0) + 1
            try:
                while self._closed or self._running.get(scope, 0) >= self._limit():
                    remaining = deadline - time.monotonic()
                    if self._closed or remaining <= 0:
                        raise ThrottledError("Rate Exceeded.")
                    self._freed.wait(remaining)
            finally:
                self._waiting[scope] -= 1
                self._work.notify()  # a slot this caller kept from the queue may be free again
            self._running[scope] = self._running.get(scope, 0) + 1
        try:
            return self._run(spec, payload, str(uuid.uuid4()))
        finally:
            self._release_slot(scope)

    # -- sandboxes -----------------------------------------------------------------------------------

    def _code_dir(self, spec: FunctionSpec) -> str:
        """The code's directory, extracted once per code hash (read-only to the sandboxes)."""
        key = spec.code_key
        found = self._code_dirs.get(key)
        if found is None:
            found = tempfile.mkdtemp(prefix=f"{spec.name[:40]}-", dir=self._root)
            if spec.code_bytes:
                with zipfile.ZipFile(io.BytesIO(spec.code_bytes)) as archive:
                    archive.extractall(found)
            self._code_dirs[key] = found
        return found

    def _pool(self, spec: FunctionSpec) -> _Pool:
        key = (spec.arn, spec.version, spec.code_key, spec.config_key)
        with self._pools_lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = _Pool(code_dir=self._code_dir(spec))
                self._pools[key] = pool
            previous = self._current.get((spec.arn, spec.version))
            if previous != key:
                self._current[(spec.arn, spec.version)] = key
                old = self._pools.pop(previous, None) if previous is not None else None
                if old is not None:  # new code or configuration: new sandboxes from now on
                    old.retired = True
                    idle, old.idle = old.idle, []
                    for sandbox in idle:
                        old.members.discard(sandbox)
                        self._sandboxes.discard(sandbox)
                        sandbox.kill()
            return pool

    def _session_credentials(self, spec: FunctionSpec) -> tuple[str, str, str]:
        """What Lambda gives an execution environment: its execution role's session credentials."""
        found = self.credentials(spec) if self.credentials is not None else None
        return found or (FAKE_ACCESS_KEY, FAKE_SECRET_KEY, "emulated-session-token")

    def _runtime_env(self, spec: FunctionSpec, code_dir: str, log_stream: str) -> dict[str, str]:
        access_key, secret_key, session_token = self._session_credentials(spec)
        env = {
            k: v
            for k, v in os.environ.items()
            if k in _HOST_ENV_KEEP or k.startswith(_HOST_ENV_KEEP_PREFIXES)
        }
        env.update({str(k): str(v) for k, v in spec.environment.items()})
        env.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": spec.name,
                "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "AWS_REGION": spec.region,
                "AWS_DEFAULT_REGION": spec.region,
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
                "_HANDLER": spec.handler,
                "LAMBDA_TASK_ROOT": code_dir,
                "TZ": ":UTC",
                # The execution role's session credentials.
                "AWS_ACCESS_KEY_ID": access_key,
                "AWS_SECRET_ACCESS_KEY": secret_key,
                "AWS_SESSION_TOKEN": session_token,
                # Keep boto3 away from the host's profiles; point every client at the emulator.
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_ENDPOINT_URL": self.endpoint,
                # No X-Ray daemon runs here: Powertools Tracer must not try to emit segments.
                "POWERTOOLS_TRACE_DISABLED": "true",
            }
        )
        return env

    def _fork(self) -> tuple[int, socket.socket]:
        with self._zygote_lock:
            if self._closed:
                raise OSError("the Lambda runtime is closed")
            if self._zygote is None or not self._zygote.alive():
                if self._zygote is not None:
                    LOG.warning("the Lambda sandbox zygote died; starting a new one")
                self._zygote = _Zygote(self._root)
            zygote = self._zygote
        return zygote.fork()

    def _start_sandbox(self, spec: FunctionSpec, pool: _Pool, request_id: str) -> _Sandbox:
        """A new sandbox of ``pool``, through its INIT phase (raises _SandboxGone if it fails)."""
        log_stream = f"{datetime.datetime.now(datetime.UTC):%Y/%m/%d}/[{spec.version}]{uuid.uuid4().hex}"
        started = time.monotonic()
        try:
            pid, sock = self._fork()
        except (OSError, ChannelClosed) as exc:
            raise _SandboxGone(
                _error("Runtime.Unknown", f"could not start an execution environment: {exc}", request_id)
            ) from exc
        sandbox = _Sandbox(pid, sock, log_stream)
        with self._pools_lock:
            pool.members.add(sandbox)
            self._sandboxes.add(sandbox)
        env = self._runtime_env(spec, pool.code_dir, log_stream)
        try:
            send_message(sock, {"op": "init", "env": env, "code_dir": pool.code_dir, "handler": spec.handler})
            # Past _INIT_TIMEOUT the INIT goes on in the invocation, within the function's timeout.
            deadline = started + _INIT_TIMEOUT + spec.timeout
            while True:
                frame = sandbox.receive(deadline)
                if frame.get("op") == "out":
                    sandbox.init_lines.extend(frame.get("lines") or [])
                elif frame.get("op") == "ready":
                    break
        except TimeoutError as exc:
            self._discard(pool, sandbox)
            message = f"RequestId: {request_id} Error: Task timed out after {spec.timeout:.2f} seconds"
            raise _SandboxGone(_error("Sandbox.Timedout", message, request_id)) from exc
        except (OSError, ChannelClosed) as exc:
            self._discard(pool, sandbox)
            message = f"RequestId: {request_id} Error: Runtime exited without providing a reason"
            raise _SandboxGone(_error("Runtime.ExitError", message, request_id)) from exc
        sandbox.init_seconds = time.monotonic() - started
        if sandbox.init_seconds > _INIT_TIMEOUT:
            sandbox.init_lines.append(
                f"INIT_REPORT Init Duration: {_INIT_TIMEOUT * 1000:.2f} ms\tPhase: init\tStatus: timeout"
            )
        return sandbox

    def _take(self, spec: FunctionSpec, pool: _Pool, request_id: str) -> _Sandbox:
        """A warm sandbox of the pool if one is idle, else a new one."""
        with self._pools_lock:
            if pool.idle:
                return pool.idle.pop()  # the most recently used: keeps few sandboxes hot
        return self._start_sandbox(spec, pool, request_id)

    def _discard(self, pool: _Pool, sandbox: _Sandbox) -> None:
        with self._pools_lock:
            pool.members.discard(sandbox)
            self._sandboxes.discard(sandbox)
        sandbox.kill()

    def _give_back(self, pool: _Pool, sandbox: _Sandbox) -> None:
        """Keep the sandbox warm (unless its version moved on); shut down the coldest beyond the cap."""
        sandbox.last_used = time.monotonic()
        evicted: list[_Sandbox] = []
        with self._pools_lock:
            if pool.retired or self._closed:
                pool.members.discard(sandbox)
                self._sandboxes.discard(sandbox)
                evicted.append(sandbox)
            else:
                pool.idle.append(sandbox)
                idle = [(s.last_used, id(s), s, p) for p in self._pools.values() for s in p.idle]
                if len(idle) > _MAX_IDLE_SANDBOXES:
                    idle.sort(key=lambda entry: (entry[0], entry[1]))
                    for _, _, coldest, owner in idle[: len(idle) - _MAX_IDLE_SANDBOXES]:
                        owner.idle.remove(coldest)
                        owner.members.discard(coldest)
                        self._sandboxes.discard(coldest)
                        evicted.append(coldest)
        for gone in evicted:
            gone.kill()

    # -- one invocation ------------------------------------------------------------------------------

    def _run(self, spec: FunctionSpec, payload: bytes, request_id: str) -> InvocationResult:
        """Run one invocation in a sandbox of the spec's version (the caller holds a slot)."""
        self.invocations.append((spec.name, request_id))
        pool = self._pool(spec)
        try:
            sandbox = self._take(spec, pool, request_id)
        except _SandboxGone as gone:
            self._ship_output(spec, "", gone.result, [], [])
            return gone.result
        init_lines, sandbox.init_lines = sandbox.init_lines, []
        init_seconds, sandbox.init_seconds = sandbox.init_seconds, None
        # An INIT longer than Lambda's INIT timeout went on in this invocation: it used up that much
        # of the function's timeout.
        budget = spec.timeout - max(0.0, (init_seconds or 0.0) - _INIT_TIMEOUT)
        output: list[str] = []
        started = time.monotonic()
        result, keep = self._call(spec, sandbox, payload, request_id, lines=output, budget=budget)
        seconds = time.monotonic() - started
        if keep:
            self._give_back(pool, sandbox)
        else:
            self._discard(pool, sandbox)
        self._ship_output(
            spec, sandbox.log_stream, result, init_lines, output, seconds=seconds, init_seconds=init_seconds
        )
        return result

    def _call(
        self,
        spec: FunctionSpec,
        sandbox: _Sandbox,
        payload: bytes,
        request_id: str,
        *,
        lines: list[str],
        budget: float,
    ) -> tuple[InvocationResult, bool]:
        """Send the invocation and read the sandbox's output and answer; (result, sandbox reusable).

        ``budget`` is the real seconds the handler has (the function's timeout, less what an
        overlong INIT used of it).
        """
        request: dict[str, Any] = {
            "op": "invoke",
            "id": request_id,
            "payload": lambda_worker.encode_payload(payload),
            "timeout": max(0.0, budget),
            "invoked_arn": spec.invoked_arn,
        }
        if spec.tracing_mode == "Active":
            request["trace_id"] = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0"
        fault = self.faults.take(spec.name, payload)
        if fault is not None:
            request["fault"] = fault
        deadline = time.monotonic() + max(0.0, budget)
        try:
            send_message(sandbox.sock, request)
            while True:
                frame = sandbox.receive(deadline)
                if frame.get("op") == "out":
                    lines.extend(frame.get("lines") or [])
                elif frame.get("op") == "fault":
                    self.faults.acted(str(frame.get("id")))
                    lines.append(
                        f"{_now_iso()} {request_id} injected fault {frame.get('id')}: {frame.get('what')}"
                    )
                elif frame.get("op") == "result" and frame.get("id") == request_id:
                    body = lambda_worker.decode_payload(str(frame.get("payload") or ""))
                    error = frame.get("error")
                    result = InvocationResult(body, str(error) if error else None, request_id)
                    return result, not frame.get("exit")
        except TimeoutError:
            # Lambda stops the sandbox at the function's timeout; the next invocation gets a new one.
            lines.append(f"{_now_iso()} {request_id} Task timed out after {spec.timeout:.2f} seconds")
            message = f"RequestId: {request_id} Error: Task timed out after {spec.timeout:.2f} seconds"
            return _error("Sandbox.Timedout", message, request_id), False
        except (OSError, ChannelClosed):
            message = f"RequestId: {request_id} Error: Runtime exited without providing a reason"
            return _error("Runtime.ExitError", message, request_id), False

    def _ship_output(
        self,
        spec: FunctionSpec,
        log_stream: str,
        result: InvocationResult,
        init_lines: list[str],
        output: list[str],
        *,
        seconds: float = 0.0,
        init_seconds: float | None = None,
    ) -> None:
        """Ship the invocation's log (what the code printed, framed by START, END and REPORT lines)
        to its log stream; echo what the code printed, and only that, to the host's stdout.
        """
        request_id = result.request_id
        lines = [*init_lines, f"START RequestId: {request_id} Version: {spec.version}", *output]
        if result.function_error:
            lines.append(result.payload.decode(errors="replace"))
        millis = seconds * 1000
        billed = max(1, int(millis + 0.999))
        lines.append(f"END RequestId: {request_id}")
        report = (
            f"REPORT RequestId: {request_id}\tDuration: {millis:.2f} ms\tBilled Duration: {billed} ms"
            f"\tMemory Size: {spec.memory_size} MB\tMax Memory Used: {min(spec.memory_size, 64)} MB"
        )
        if init_seconds is not None:
            report += f"\tInit Duration: {init_seconds * 1000:.2f} ms"
        lines.append(report)
        log_stream = log_stream or (
            f"{datetime.datetime.now(datetime.UTC):%Y/%m/%d}/[{spec.version}]{uuid.uuid4().hex}"
        )
        printed = [line for line in init_lines if not line.startswith("INIT_REPORT ")] + output
        with self._ship_lock:
            if printed:
                try:
                    sys.stdout.write("".join(f"{line}\n" for line in printed))
                    sys.stdout.flush()
                except (OSError, ValueError):
                    pass
            if self.log_sink is not None:
                try:
                    self.log_sink(spec, log_stream, lines)
                except Exception:
                    LOG.exception("shipping the logs of %s", spec.name)

    # -- asynchronous invocation ------------------------------------------------------------------

    def invoke_async(self, spec: FunctionSpec, payload: bytes) -> str:
        """Queue an ``Event`` invocation as Lambda's internal queue does; returns its request id."""
        event = _AsyncEvent(spec, payload, str(uuid.uuid4()), self._executor.clock.monotonic())
        self._enqueue(event)
        return event.request_id

    def queued(self) -> int:
        """Asynchronous events queued or running."""
        with self._lock:
            return self._outstanding

    def _enqueue(self, event: _AsyncEvent) -> None:
        with self._lock:
            if self._closed:
                return
            self._queues.setdefault(event.scope, deque()).append(event)
            self._outstanding += 1
            wanted = min(self._limit(), _MAX_DISPATCHERS)
            while len(self._dispatchers) < wanted:
                thread = threading.Thread(
                    target=self._dispatch, name=f"lambda-async-{len(self._dispatchers)}", daemon=True
                )
                self._dispatchers.append(thread)
                thread.start()
            self._keep_executor_busy()
            self._work.notify()

    def _keep_executor_busy(self) -> None:
        """While events are queued or running, keep a mark on the Lambda executor (lock held).

        ``Emulator.wait_for_idle`` watches the emulator's executors; the mark tells it the queue
        still has work.
        """
        if self._heartbeat or not self._outstanding or self._closed:
            return
        self._heartbeat = True
        self._executor.submit(self._beat, self._executor.clock.unscaled(_HEARTBEAT_SECONDS))

    def _beat(self) -> None:
        with self._lock:
            self._heartbeat = False
            self._keep_executor_busy()

    def _next_event(self) -> _AsyncEvent | None:
        """The oldest queued event of an account with a slot no synchronous caller waits for (lock held)."""
        limit = self._limit()
        for scope, queue in self._queues.items():
            if queue and self._running.get(scope, 0) + self._waiting.get(scope, 0) < limit:
                return queue.popleft()
        return None

    def _dispatch(self) -> None:
        """A poller of the internal queue: takes an event when its account has a free slot."""
        while True:
            with self._lock:
                while True:
                    if self._closed:
                        return
                    event = self._next_event()
                    if event is not None:
                        break
                    self._work.wait()
                self._running[event.scope] = self._running.get(event.scope, 0) + 1
            try:
                self._attempt(event)
            except Exception:
                LOG.exception("asynchronous invocation of %s", event.spec.name)
            finally:
                with self._lock:
                    self._running[event.scope] -= 1
                    self._outstanding -= 1
                    self._freed.notify_all()
                    self._work.notify()

    def _attempt(self, event: _AsyncEvent) -> None:
        """One attempt of a queued event; schedules the retry or sends it to its destination."""
        spec = event.spec
        retries = int(spec.async_config.get("MaximumRetryAttempts", _ASYNC_DEFAULT_RETRIES))
        max_age = float(spec.async_config.get("MaximumEventAgeInSeconds", _ASYNC_DEFAULT_MAX_AGE))
        clock = self._executor.clock
        if clock.monotonic() - event.queued_at > max_age:  # throttled in the queue for too long
            self._destination(event, "OnFailure", "EventAgeExceeded", InvocationResult(b""), event.attempt)
            return
        result = self._run(spec, event.payload, event.request_id)
        if result.function_error is None:
            self._destination(event, "OnSuccess", "Success", result, event.attempt + 1)
            return
        age = clock.monotonic() - event.queued_at
        delay = _ASYNC_RETRY_DELAYS[min(event.attempt, len(_ASYNC_RETRY_DELAYS) - 1)]
        if event.attempt < retries and age + delay <= max_age:
            retry = replace(event, attempt=event.attempt + 1)
            self._executor.submit(lambda: self._enqueue(retry), delay)
            return
        condition = "RetriesExhausted" if event.attempt >= retries else "EventAgeExceeded"
        self._destination(event, "OnFailure", condition, result, event.attempt + 1)

    def _destination(
        self, event: _AsyncEvent, kind: str, condition: str, result: InvocationResult, count: int
    ) -> None:
        """Send Lambda's invocation record to the event's OnSuccess or OnFailure destination."""
        spec = event.spec
        target = (spec.async_config.get("DestinationConfig") or {}).get(kind, {}).get("Destination")
        if not target:
            if kind == "OnFailure":
                LOG.warning(
                    "%s: asynchronous event dropped after %d attempts (%s)", spec.name, count, condition
                )
            return
        response: Any
        try:
            response = json.loads(result.payload or b"null")
        except ValueError:
            response = base64.b64encode(result.payload).decode()
        record = {
            "version": "1.0",
            "timestamp": _now_iso(),
            "requestContext": {
                "requestId": event.request_id,
                "functionArn": spec.qualified_arn,
                "condition": condition,
                "approximateInvokeCount": count,
            },
            "requestPayload": json.loads(event.payload or b"{}"),
            "responseContext": {"statusCode": 200, "executedVersion": spec.version}
            | ({"functionError": result.function_error} if result.function_error else {}),
            "responsePayload": response,
        }
        self._send_to_destination(target, json.dumps(record))


InProcessLambdaRuntime = LambdaRuntime
"""The name the patches knew it by (handlers once ran in the emulator's own process)."""
