"""An in-process stand-in for the Lambda service's Python runtime.

Each function version runs the code of its own zip (extracted once per version and code hash), with
its own module namespace (like its own sandbox: a module imported by one function or version is not
the one another sees), that version's environment plus what the Lambda runtime sets, and a context
object. Invocations are serialized through one lock because ``os.environ`` and ``sys.modules``
are process-wide: the emulator behaves like an account whose functions share a concurrency of 1.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import decimal
import importlib
import io
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TextIO

from .clock import DelayedExecutor

LOG = logging.getLogger(__name__)

# Host variables a Python process needs (or that the test runner and moto rewrite concurrently);
# everything else of the host environment is hidden from handlers.
_HOST_ENV_KEEP = frozenset(
    {"PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "TEMP", "TMP", "VIRTUAL_ENV", "PYTHONPATH", "SYSTEMROOT"}
)
_HOST_ENV_KEEP_PREFIXES = ("MOTO_", "PYTEST_", "COV_", "COVERAGE_")

# Lambda's defaults for asynchronous invocation (EventInvokeConfig when none is configured).
_ASYNC_DEFAULT_RETRIES = 2
_ASYNC_DEFAULT_MAX_AGE = 21600
_ASYNC_RETRY_DELAYS = (60.0, 120.0)

FAKE_ACCESS_KEY = "ASIAEMULATEDLAMBDA00"
FAKE_SECRET_KEY = "emulated-lambda-secret"


class ThrottledError(Exception):
    """The single in-process sandbox stayed busy past the caller's patience (a 429 in AWS)."""


@dataclass
class InvocationResult:
    payload: bytes
    function_error: str | None = None
    request_id: str = ""


class LambdaContext:
    """The ``context`` argument of the Python runtime (attribute names and types as AWS's)."""

    def __init__(
        self,
        *,
        function_name: str,
        function_version: str,
        invoked_function_arn: str,
        memory_limit_in_mb: str,
        aws_request_id: str,
        log_group_name: str,
        log_stream_name: str,
        timeout_seconds: float,
    ) -> None:
        self.function_name = function_name
        self.function_version = function_version
        self.invoked_function_arn = invoked_function_arn
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = aws_request_id
        self.log_group_name = log_group_name
        self.log_stream_name = log_stream_name
        self.identity: Any = None
        self.client_context: Any = None
        self.tenant_id: str | None = None
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class _SandboxOutput(io.TextIOBase):
    """The stdout/stderr a function's code sees: echoed to the host's stdout, kept per invocation.

    One object per sandbox, so loggers that bound the stream at import keep writing here.
    """

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] | None = None
        self.echo: TextIO | None = None  # the host's stdout when the invocation began
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.echo is not None:
            self.echo.write(text)
            self.echo.flush()
        if self.lines is not None:
            self._partial += text
            *complete, self._partial = self._partial.split("\n")
            self.lines.extend(complete)
        return len(text)

    def collect(self) -> list[str]:
        lines = list(self.lines or [])
        if self._partial:
            lines.append(self._partial)
        self.lines, self._partial = None, ""
        return lines


@dataclass
class _Sandbox:
    """One function version's code directory and the modules it has imported (its warm state)."""

    code_dir: str
    top_names: frozenset[str]
    modules: dict[str, ModuleType] = field(default_factory=dict)
    log_stream: str = ""
    output: _SandboxOutput = field(default_factory=_SandboxOutput)


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

    def __post_init__(self) -> None:
        self.invoked_arn = self.invoked_arn or self.arn

    @property
    def qualified_arn(self) -> str:
        """The invoked ARN with the qualifier Lambda reports for an unqualified call (``$LATEST``)."""
        return self.invoked_arn if self.invoked_arn != self.arn else f"{self.arn}:$LATEST"

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
        )


def _top_name(module_name: str) -> str:
    return module_name.split(".", 1)[0]


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _error_payload(error_type: str, message: str, request_id: str, stack: list[str] | None = None) -> bytes:
    body: dict[str, Any] = {"errorMessage": message, "errorType": error_type, "requestId": request_id}
    body["stackTrace"] = stack or []
    return json.dumps(body).encode()


class InProcessLambdaRuntime:
    """Runs Python handlers in this process against the emulator's endpoint."""

    def __init__(self, endpoint: str, executor: DelayedExecutor, destinations: Callable[[str, str], None]):
        self.endpoint = endpoint
        self._executor = executor
        self._send_to_destination = destinations
        self._lock = threading.Lock()
        self._sandboxes: dict[tuple[str, str, str], _Sandbox] = {}  # (function, version, code)
        self._root = tempfile.mkdtemp(prefix="ecs-canary-lambda-")
        self.invocations: list[tuple[str, str]] = []  # (function name, request id), for diagnostics
        # Receives (function, log stream, lines) after each invocation: Lambda ships them to Logs.
        self.log_sink: Callable[[FunctionSpec, str, list[str]], None] | None = None

    def close(self) -> None:
        shutil.rmtree(self._root, ignore_errors=True)

    # -- sandboxes ---------------------------------------------------------------------------

    def _sandbox(self, spec: FunctionSpec) -> _Sandbox:
        key = (spec.arn, spec.version, spec.code_sha256)
        box = self._sandboxes.get(key)
        if box is None:
            code_dir = tempfile.mkdtemp(prefix=f"{spec.name[:40]}-", dir=self._root)
            names: set[str] = set()
            if spec.code_bytes:
                with zipfile.ZipFile(io.BytesIO(spec.code_bytes)) as archive:
                    archive.extractall(code_dir)
                    for member in archive.namelist():
                        first = member.split("/", 1)[0]
                        names.add(first[:-3] if first.endswith(".py") else first)
            box = _Sandbox(code_dir=code_dir, top_names=frozenset(n for n in names if n.isidentifier()))
            box.log_stream = (
                f"{datetime.datetime.now(datetime.UTC):%Y/%m/%d}/[{spec.version}]{uuid.uuid4().hex}"
            )
            self._sandboxes[key] = box
        return box

    def _runtime_env(self, spec: FunctionSpec, box: _Sandbox, request_id: str) -> dict[str, str]:
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
                "AWS_LAMBDA_LOG_STREAM_NAME": box.log_stream,
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "AWS_REGION": spec.region,
                "AWS_DEFAULT_REGION": spec.region,
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
                "_HANDLER": spec.handler,
                "LAMBDA_TASK_ROOT": box.code_dir,
                "TZ": ":UTC",
                # The execution role's session credentials; the emulator accepts any.
                "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_KEY,
                "AWS_SESSION_TOKEN": "emulated-session-token",
                # Keep boto3 away from the host's profiles; point every client at the emulator.
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_ENDPOINT_URL": self.endpoint,
                # No X-Ray daemon runs here: Powertools Tracer must not try to emit segments.
                "POWERTOOLS_TRACE_DISABLED": "true",
            }
        )
        if spec.tracing_mode == "Active":
            env["_X_AMZN_TRACE_ID"] = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0"
        return env

    # -- invocation ----------------------------------------------------------------------------

    def invoke(self, spec: FunctionSpec, payload: bytes, *, wait: float | None = None) -> InvocationResult:
        """Run the handler once; ``wait`` bounds (real seconds) the wait for the busy sandbox."""
        request_id = str(uuid.uuid4())
        acquired = self._lock.acquire(timeout=-1 if wait is None else wait)
        if not acquired:
            raise ThrottledError("Rate Exceeded.")
        done = threading.Event()
        result: list[InvocationResult] = []

        def run() -> None:
            try:
                result.append(self._run_locked(spec, payload, request_id))
            finally:
                self._lock.release()
                done.set()

        worker = threading.Thread(target=run, name=f"lambda-{spec.name[:30]}", daemon=True)
        worker.start()
        if not done.wait(spec.timeout + 0.1):
            # Lambda stops waiting at the function's Timeout; the sandbox stays busy until the
            # handler returns (it cannot be killed in-process).
            message = f"RequestId: {request_id} Error: Task timed out after {spec.timeout:.2f} seconds"
            return InvocationResult(
                _error_payload("Sandbox.Timedout", message, request_id), "Unhandled", request_id
            )
        return result[0]

    def _run_locked(self, spec: FunctionSpec, payload: bytes, request_id: str) -> InvocationResult:
        self.invocations.append((spec.name, request_id))
        box = self._sandbox(spec)
        env = self._runtime_env(spec, box, request_id)
        env_undo = _swap_environ(env)
        host_modules = _enter_modules(box)
        host_streams = sys.stdout, sys.stderr
        box.output.lines = [f"START RequestId: {request_id} Version: {spec.version}"]
        box.output.echo = host_streams[0]
        sys.stdout = sys.stderr = box.output
        started = time.monotonic()
        result = InvocationResult(b"", "Unhandled", request_id)
        try:
            result = self._call_handler(spec, box, payload, request_id)
            return result
        finally:
            sys.stdout, sys.stderr = host_streams
            _leave_modules(box, host_modules)
            _restore_environ(env_undo)
            self._ship_output(spec, box, request_id, result, time.monotonic() - started)

    def _ship_output(
        self, spec: FunctionSpec, box: _Sandbox, request_id: str, result: InvocationResult, seconds: float
    ) -> None:
        lines = box.output.collect()
        if result.function_error:
            lines.append(result.payload.decode(errors="replace"))
        millis = seconds * 1000
        billed = max(1, int(millis + 0.999))
        lines.append(f"END RequestId: {request_id}")
        lines.append(
            f"REPORT RequestId: {request_id}\tDuration: {millis:.2f} ms\tBilled Duration: {billed} ms"
            f"\tMemory Size: {spec.memory_size} MB\tMax Memory Used: {min(spec.memory_size, 64)} MB"
        )
        if self.log_sink is not None:
            try:
                self.log_sink(spec, box.log_stream, lines)
            except Exception:
                LOG.exception("shipping the logs of %s", spec.name)

    def _call_handler(
        self, spec: FunctionSpec, box: _Sandbox, payload: bytes, request_id: str
    ) -> InvocationResult:
        module_name, _, func_name = spec.handler.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            message = f"Unable to import module '{module_name}': {exc}"
            return InvocationResult(
                _error_payload("Runtime.ImportModuleError", message, request_id), "Unhandled", request_id
            )
        handler = getattr(module, func_name, None)
        if not callable(handler):
            message = f"Handler '{func_name}' missing on module '{module_name}'"
            return InvocationResult(
                _error_payload("Runtime.HandlerNotFound", message, request_id), "Unhandled", request_id
            )
        try:
            event = json.loads(payload or b"{}")
        except ValueError as exc:
            return InvocationResult(
                _error_payload("Runtime.UnmarshalError", f"Unable to unmarshal input: {exc}", request_id),
                "Unhandled",
                request_id,
            )
        context = LambdaContext(
            function_name=spec.name,
            function_version=spec.version,
            invoked_function_arn=spec.invoked_arn,
            memory_limit_in_mb=str(spec.memory_size),
            aws_request_id=request_id,
            log_group_name=f"/aws/lambda/{spec.name}",
            log_stream_name=box.log_stream,
            timeout_seconds=spec.timeout,
        )
        try:
            output = handler(event, context)
        except Exception as exc:
            stack = traceback.format_list(traceback.extract_tb(exc.__traceback__)[1:])
            LOG.info("%s %s raised %s: %s", spec.name, request_id, type(exc).__name__, exc)
            return InvocationResult(
                _error_payload(type(exc).__name__, str(exc), request_id, stack), "Unhandled", request_id
            )
        try:
            body = json.dumps(output, default=_json_default).encode()
        except (TypeError, ValueError) as exc:
            message = f"Unable to marshal response: {exc}"
            return InvocationResult(
                _error_payload("Runtime.MarshalError", message, request_id), "Unhandled", request_id
            )
        return InvocationResult(body, None, request_id)

    # -- asynchronous invocation ------------------------------------------------------------------

    def invoke_async(self, spec: FunctionSpec, payload: bytes) -> str:
        """Queue an ``Event`` invocation as Lambda's internal queue does; returns its request id."""
        request_id = str(uuid.uuid4())
        queued_at = self._executor.clock.monotonic()
        retries = int(spec.async_config.get("MaximumRetryAttempts", _ASYNC_DEFAULT_RETRIES))
        max_age = float(spec.async_config.get("MaximumEventAgeInSeconds", _ASYNC_DEFAULT_MAX_AGE))

        def attempt(number: int) -> None:
            result = self.invoke(spec, payload)
            if result.function_error is None:
                self._destination(
                    spec=spec,
                    kind="OnSuccess",
                    condition="Success",
                    payload=payload,
                    result=result,
                    count=number + 1,
                    request_id=request_id,
                )
                return
            age = self._executor.clock.monotonic() - queued_at
            delay = _ASYNC_RETRY_DELAYS[min(number, len(_ASYNC_RETRY_DELAYS) - 1)]
            if number < retries and age + delay <= max_age:
                self._executor.submit(lambda: attempt(number + 1), delay)
                return
            condition = "RetriesExhausted" if number >= retries else "EventAgeExceeded"
            self._destination(
                spec=spec,
                kind="OnFailure",
                condition=condition,
                payload=payload,
                result=result,
                count=number + 1,
                request_id=request_id,
            )

        self._executor.submit(lambda: attempt(0))
        return request_id

    def _destination(
        self,
        *,
        spec: FunctionSpec,
        kind: str,
        condition: str,
        payload: bytes,
        result: InvocationResult,
        count: int,
        request_id: str,
    ) -> None:
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
            "timestamp": datetime.datetime.now(datetime.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "requestContext": {
                "requestId": request_id,
                "functionArn": spec.qualified_arn,
                "condition": condition,
                "approximateInvokeCount": count,
            },
            "requestPayload": json.loads(payload or b"{}"),
            "responseContext": {"statusCode": 200, "executedVersion": spec.version}
            | ({"functionError": result.function_error} if result.function_error else {}),
            "responsePayload": response,
        }
        self._send_to_destination(target, json.dumps(record))


def _swap_environ(env: Mapping[str, str]) -> dict[str, str | None]:
    """Make ``os.environ`` equal ``env`` plus the kept host keys; return what to undo.

    Keys are set before others are removed so the kept ones (MOTO_PORT) never disappear.
    """
    undo: dict[str, str | None] = {}
    for key, value in env.items():
        if os.environ.get(key) != value:
            undo[key] = os.environ.get(key)
            os.environ[key] = value
    for key in list(os.environ):
        if key not in env and not (key in _HOST_ENV_KEEP or key.startswith(_HOST_ENV_KEEP_PREFIXES)):
            undo[key] = os.environ.pop(key)
    return undo


def _restore_environ(undo: Mapping[str, str | None]) -> None:
    for key, value in undo.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _enter_modules(box: _Sandbox) -> dict[str, ModuleType]:
    """Swap the sandbox's modules (and code dir) in place of same-named host modules."""
    host = {name: mod for name, mod in sys.modules.items() if _top_name(name) in box.top_names}
    for name in host:
        sys.modules.pop(name, None)
    sys.modules.update(box.modules)
    sys.path.insert(0, box.code_dir)
    importlib.invalidate_caches()
    return host


def _leave_modules(box: _Sandbox, host: Mapping[str, ModuleType]) -> None:
    box.modules = {name: mod for name, mod in sys.modules.items() if _top_name(name) in box.top_names}
    for name in box.modules:
        sys.modules.pop(name, None)
    sys.modules.update(host)
    with contextlib.suppress(ValueError):
        sys.path.remove(box.code_dir)
