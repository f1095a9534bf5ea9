"""One Lambda execution environment per process, and the zygote that forks them.

Run as a script (``python lambda_worker.py --zygote FD``), this module is the *zygote*: a
single-threaded process that imports what the Lambda Python runtime itself provides (``boto3``)
once, then forks one child per execution environment the emulator asks for. Each child is a
sandbox of one function version: its ``os.environ`` is that version's environment, its working
directory and first ``sys.path`` entry the version's extracted code, its stdout/stderr the stream
the emulator ships to CloudWatch Logs. It imports the handler (Lambda's INIT phase), then serves
invocations one at a time until the emulator closes its socket or kills it.

Only the standard library is imported at module level: the emulator imports this module too, for
the wire protocol. Messages are JSON objects framed by a 4-byte big-endian length, over a Unix
stream socket (a socketpair whose other end the emulator keeps):

* emulator → sandbox: ``{"op": "init", "env", "code_dir", "handler"}`` once, then
  ``{"op": "invoke", "id", "payload", "timeout", "invoked_arn", "trace_id"?, "fault"?}``;
* sandbox → emulator: ``{"op": "ready"}`` after INIT, ``{"op": "out", "lines"}`` as the code
  writes to stdout or stderr, ``{"op": "fault", "id", "what"}`` when an injected fault acts (see
  :mod:`ecs_canary_cli.local.faults`), ``{"op": "result", "id", "payload", "error", "exit"?}`` per
  invocation (``error`` is ``"Unhandled"`` for a function error; ``exit`` means the sandbox is
  gone after this answer).
"""

from __future__ import annotations

import contextlib
import decimal
import fnmatch
import importlib
import io
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

_HEADER = struct.Struct("!I")
_PID = struct.Struct("!q")
MAX_MESSAGE = 256 * 1024 * 1024
"""Larger than any Lambda payload (6 MB) plus its framing; a longer frame is a broken stream."""

# What the Lambda Python runtime ships with, imported once in the zygote so forked sandboxes do
# not each pay for it. Nothing here reads the environment at import time.
RUNTIME_MODULES = ("json", "logging", "decimal", "uuid", "urllib.request", "http.client", "ssl", "boto3")


WRITE_PREFIXES = (
    "Put", "Update", "Delete", "Create", "Modify", "Change", "Set", "Register", "Deregister",
    "Start", "Stop", "Send", "TransactWrite", "BatchWrite", "Publish", "Invoke", "Tag", "Untag",
)  # fmt: skip
"""Operation-name prefixes of the calls that change something (``exit-after-call``'s default)."""


def call_matches(patterns: Sequence[str], service: str, operation: str) -> bool:
    """Whether the AWS call ``service:operation`` matches one of the fnmatch ``patterns``.

    No patterns means "a call that writes" (an operation named with a :data:`WRITE_PREFIXES` prefix).
    """
    if not patterns:
        return operation.startswith(WRITE_PREFIXES)
    name = f"{service}:{operation}"
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


_INJECTED = threading.local()
"""The response an injected call fault answers with, for the call being sent on this thread."""

_THROTTLE = {"json": "ThrottlingException", "rest-json": "TooManyRequestsException"}
"""Each protocol's throttling error code (the query and REST-XML services say ``Throttling``)."""


_SERVER_ERROR = {"dynamodb": "InternalServerError"}
"""A service's own code for an internal error, where it is not ``InternalFailure``."""


def _error_response(kind: str, protocol: str, url: str, service: str = "") -> Any:
    """An AWS error response as the service would send it, in the service's protocol."""
    from botocore.awsrequest import AWSResponse  # noqa: PLC0415 - botocore only in sandboxes

    if kind == "throttle":
        status = 429 if protocol == "rest-json" else 400
        code, message = _THROTTLE.get(protocol, "Throttling"), "Rate exceeded"
    else:
        status, message = 500, "We encountered an internal error. Please try again."
        code = _SERVER_ERROR.get(service, "InternalFailure")
    request_id = f"injected-{time.monotonic_ns():x}"
    if protocol in ("json", "rest-json"):
        headers = {
            "x-amzn-ErrorType": code,
            "x-amzn-RequestId": request_id,
            "Content-Type": "application/json",
        }
        body = json.dumps({"__type": code, "message": message}).encode()
    else:
        headers = {"x-amzn-RequestId": request_id, "Content-Type": "text/xml"}
        body = (
            f"<ErrorResponse><Error><Type>{'Sender' if status < 500 else 'Receiver'}</Type>"
            f"<Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
    response: Any = AWSResponse(url, status, headers, raw=None)  # type: ignore[arg-type]
    response._content = body  # a response whose body is already read
    return response


@contextlib.contextmanager
def apply_call_faults(fault: Mapping[str, Any], acted: Callable[[str], None]) -> Iterator[None]:
    """While the handler runs, the injected call fault acts on the AWS calls it makes.

    It sits where the SDK sends a request (``botocore.endpoint.Endpoint``), so every client the
    handler builds sees it and the SDK's own retries meet it as they would meet the service's.
    """
    from botocore.endpoint import Endpoint  # noqa: PLC0415 - botocore only in sandboxes

    kind = str(fault["kind"])
    patterns = [str(p) for p in fault.get("calls") or []]
    original_get, original_send = getattr(Endpoint, "_do_get_response"), getattr(Endpoint, "_send")  # noqa: B009

    def do_get_response(self: Any, request: Any, operation_model: Any, context: Any) -> Any:
        service, operation = operation_model.service_model.service_name, operation_model.name
        if not call_matches(patterns, service, operation):
            return original_get(self, request, operation_model, context)
        if kind in ("throttle", "server-error"):
            acted(f"{kind} {service}:{operation}")
            protocol = operation_model.service_model.resolved_protocol
            _INJECTED.response = _error_response(kind, protocol, request.url, service)
        try:
            result = original_get(self, request, operation_model, context)
        finally:
            _INJECTED.response = None
        if kind == "exit-after-call" and result[0] is not None and result[0][0].status_code < 300:
            acted(f"exit after {service}:{operation}")
            sys.stdout.flush()
            os._exit(1)
        return result

    def send(self: Any, request: Any) -> Any:
        injected = getattr(_INJECTED, "response", None)
        return injected if injected is not None else original_send(self, request)

    setattr(Endpoint, "_do_get_response", do_get_response)  # noqa: B010 - private to botocore
    setattr(Endpoint, "_send", send)  # noqa: B010
    try:
        yield
    finally:
        setattr(Endpoint, "_do_get_response", original_get)  # noqa: B010
        setattr(Endpoint, "_send", original_send)  # noqa: B010


class ChannelClosed(Exception):
    """The other end closed the socket (or a frame was cut short)."""


def encode_payload(data: bytes) -> str:
    """Bytes as a JSON-safe string (lossless: undecodable bytes become lone surrogates)."""
    return data.decode("utf-8", "surrogateescape")


def decode_payload(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def send_message(sock: socket.socket, message: Mapping[str, Any]) -> None:
    """Write one framed message."""
    data = json.dumps(message, separators=(",", ":")).encode()
    sock.sendall(_HEADER.pack(len(data)) + data)


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            raise ChannelClosed("the other end closed the channel")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def recv_message(sock: socket.socket) -> dict[str, Any]:
    """Read one framed message (the socket's timeout applies to each read)."""
    (size,) = _HEADER.unpack(_read_exactly(sock, _HEADER.size))
    if size > MAX_MESSAGE:
        raise ChannelClosed(f"frame of {size} bytes")
    message = json.loads(_read_exactly(sock, size))
    if not isinstance(message, dict):
        raise ChannelClosed("a frame that is not an object")
    return message


# -- inside a sandbox ---------------------------------------------------------------------------------


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


class SandboxOutput(io.TextIOBase):
    """The sandbox's stdout and stderr: complete lines go to the emulator as they are written.

    One object for the sandbox's life, so loggers that bound the stream at import keep using it.
    """

    def __init__(self, sock: socket.socket, lock: threading.Lock) -> None:
        super().__init__()
        self._sock = sock
        self._lock = lock
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self._partial += text
            if "\n" in self._partial:
                *complete, self._partial = self._partial.split("\n")
                send_message(self._sock, {"op": "out", "lines": complete})
        return len(text)

    def flush(self) -> None:
        """Send a trailing partial line too (called before each answer)."""
        with self._lock:
            if self._partial:
                send_message(self._sock, {"op": "out", "lines": [self._partial]})
                self._partial = ""


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def error_body(error_type: str, message: str, request_id: str, stack: list[str] | None = None) -> str:
    """The payload of an ``Unhandled`` error, as the Python runtime formats it."""
    body = {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": stack or [],
    }
    return json.dumps(body)


class Sandbox:
    """One function version's execution environment: INIT once, then one invocation at a time."""

    def __init__(self, sock: socket.socket, init: Mapping[str, Any]) -> None:
        self.sock = sock
        self.lock = threading.Lock()
        self.env: dict[str, str] = {str(k): str(v) for k, v in dict(init["env"]).items()}
        self.handler_name = str(init["handler"])
        self.handler: Callable[[Any, Any], Any] | None = None
        self.init_error: tuple[str, str, list[str]] | None = None

    def initialize(self, code_dir: str) -> None:
        """Lambda's INIT: the environment, the code directory, the handler's module imported."""
        os.environ.clear()
        os.environ.update(self.env)
        if hasattr(time, "tzset"):
            time.tzset()
        os.chdir(code_dir)
        sys.path.insert(0, code_dir)
        importlib.invalidate_caches()
        output = SandboxOutput(self.sock, self.lock)
        sys.stdout = sys.stderr = output
        module_name, _, func_name = self.handler_name.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            message = f"Unable to import module '{module_name}': {exc}"
            self.init_error = ("Runtime.ImportModuleError", message, [])
            return
        finally:
            output.flush()
        handler = getattr(module, func_name, None)
        if not callable(handler):
            message = f"Handler '{func_name}' missing on module '{module_name}'"
            self.init_error = ("Runtime.HandlerNotFound", message, [])
            return
        self.handler = handler

    def send(self, message: Mapping[str, Any]) -> None:
        with self.lock:
            send_message(self.sock, message)

    def invoke(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Run the handler once; the answer (``exit`` set when the sandbox must end)."""
        request_id = str(request["id"])
        answer: dict[str, Any] = {"op": "result", "id": request_id, "error": "Unhandled"}
        if self.init_error is not None or self.handler is None:
            error_type, message, stack = self.init_error or ("Runtime.HandlerNotFound", "no handler", [])
            return answer | {"payload": error_body(error_type, message, request_id, stack), "exit": True}
        if request.get("trace_id"):
            os.environ["_X_AMZN_TRACE_ID"] = str(request["trace_id"])
        try:
            event = json.loads(decode_payload(str(request.get("payload") or "")) or b"{}")
        except ValueError as exc:
            body = error_body("Runtime.UnmarshalError", f"Unable to unmarshal input: {exc}", request_id)
            return answer | {"payload": body}
        context = LambdaContext(
            function_name=self.env.get("AWS_LAMBDA_FUNCTION_NAME", ""),
            function_version=self.env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            invoked_function_arn=str(request.get("invoked_arn") or ""),
            memory_limit_in_mb=self.env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            aws_request_id=request_id,
            log_group_name=self.env.get("AWS_LAMBDA_LOG_GROUP_NAME", ""),
            log_stream_name=self.env.get("AWS_LAMBDA_LOG_STREAM_NAME", ""),
            timeout_seconds=float(request.get("timeout") or 3),
        )
        fault = request.get("fault")
        calls: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
        if isinstance(fault, Mapping):
            fault_id = str(fault.get("id"))

            def acted(what: str) -> None:
                self.send({"op": "fault", "id": fault_id, "what": what})

            if fault.get("kind") == "crash":
                acted("crash")
                sys.stdout.flush()
                os._exit(1)
            if fault.get("kind") == "timeout":
                acted("hang")
                while True:  # until the runtime stops the sandbox at the function's timeout
                    time.sleep(3600)
            calls = apply_call_faults(fault, acted)
        try:
            with calls:
                output = self.handler(event, context)
        except SystemExit as exc:
            message = f"RequestId: {request_id} Error: Runtime exited with error: exit status {exc.code}"
            return answer | {"payload": error_body("Runtime.ExitError", message, request_id), "exit": True}
        except Exception as exc:
            stack = traceback.format_list(traceback.extract_tb(exc.__traceback__)[1:])
            return answer | {"payload": error_body(type(exc).__name__, str(exc), request_id, stack)}
        try:
            body = json.dumps(output, default=_json_default)
        except (TypeError, ValueError) as exc:
            message = f"Unable to marshal response: {exc}"
            return answer | {"payload": error_body("Runtime.MarshalError", message, request_id)}
        return answer | {"payload": encode_payload(body.encode()), "error": None}

    def serve(self) -> None:
        """Answer invocations until the emulator closes the channel."""
        self.send({"op": "ready"})
        while True:
            try:
                request = recv_message(self.sock)
            except (ChannelClosed, OSError):
                return
            if request.get("op") != "invoke":
                continue
            answer = self.invoke(request)
            sys.stdout.flush()
            self.send(answer)
            if answer.get("exit"):
                return


def _die_with_parent(parent: int) -> None:
    """Linux: the sandbox is killed when the zygote goes (the emulator stopped or crashed)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes  # noqa: PLC0415 - Linux only

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(0)


def _run_sandbox(fd: int, zygote: int) -> None:
    """In a forked child: become the sandbox the emulator describes in its first message."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    _die_with_parent(zygote)
    sock = socket.socket(fileno=fd)
    try:
        init = recv_message(sock)
    except (ChannelClosed, OSError):
        return
    sandbox = Sandbox(sock, init)
    sandbox.initialize(str(init["code_dir"]))
    sandbox.serve()


def zygote(control_fd: int) -> None:
    """Import the runtime's modules once, then fork a sandbox per request until the emulator goes.

    Each request is one byte carrying (SCM_RIGHTS) the sandbox's end of a socketpair; the answer
    is the child's pid.
    """
    control = socket.socket(fileno=control_fd)
    for name in RUNTIME_MODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    me = os.getpid()
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(control, 1, 1)
        except OSError:
            return
        if not data:
            return
        if not fds:
            continue
        pid = os.fork()
        if pid == 0:
            control.close()
            code = 0
            try:
                _run_sandbox(fds[0], me)
            except BaseException:
                traceback.print_exc(file=sys.__stderr__)
                code = 1
            finally:
                os._exit(code)
        os.close(fds[0])
        control.sendall(_PID.pack(pid))


def read_pid(sock: socket.socket) -> int:
    """The zygote's answer to one fork request."""
    (pid,) = _PID.unpack(_read_exactly(sock, _PID.size))
    return int(pid)


if __name__ == "__main__":
    # Run as a script: the directory of this file must not shadow a function's modules.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    if len(sys.argv) == 3 and sys.argv[1] == "--zygote":
        zygote(int(sys.argv[2]))
    else:
        sys.exit("usage: lambda_worker.py --zygote FD")
