"""The offline emulated AWS: moto in server mode on 127.0.0.1, patched, with the stack deployed.

Two listeners share moto's backends. The public one (``Emulator.endpoint``) holds every AWS call
until the stack is deployed, so a client that connects early never sees a half-built account (nor
deploys a second copy of the stack); it answers the emulator's own ``/_emulator/`` routes at once.
The internal one, on a port no client is told about, serves the deployment itself and moto's Step
Functions interpreter (``MOTO_PORT``): both are AWS's own traffic and must never wait on the gate.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import boto3
from botocore.config import Config
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request

from . import control, patches
from .clock import EmulatorClock
from .deploy import FAKE_CREDENTIALS, deploy_stack
from .patches import EmulatorOptions

LOG = logging.getLogger(__name__)

MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}

# Services that speak rest-xml; the others get a JSON error body (query protocols are told apart
# by their form-encoded requests, smithy-rpc-v2-cbor ones by their header).
_REST_XML_SERVICES = frozenset({"s3", "route53", "cloudfront"})

StartResponse = Any  # wsgiref's StartResponse protocol; werkzeug passes its own callable
Environ = dict[str, Any]


def _post(url: str, body: Any = None) -> None:
    data = json.dumps(body).encode() if body is not None else b""
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


class _Readiness:
    """Whether the public endpoint serves AWS calls yet; calls made before then wait here."""

    STARTING, READY, FAILED = "starting", "ready", "failed"

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.state = self.STARTING
        self.error: str | None = None
        self.waiting = 0

    def wait(self) -> str | None:
        """Block until the stack is deployed; None then, else why the call cannot be served."""
        with self._cond:
            self.waiting += 1
            try:
                while self.state == self.STARTING:
                    self._cond.wait()
            finally:
                self.waiting -= 1
                self._cond.notify_all()
            return None if self.state == self.READY else self.error

    def ready(self) -> None:
        with self._cond:
            if self.state == self.STARTING:
                self.state = self.READY
            self._cond.notify_all()

    def fail(self, error: str) -> None:
        """Answer every waiting and later call with ``error`` (a failed deploy, a stop)."""
        with self._cond:
            if self.state != self.FAILED:
                self.state, self.error = self.FAILED, error
            self._cond.notify_all()

    def drain(self, timeout: float) -> None:
        """Give the calls released by :meth:`fail` up to ``timeout`` s to take their answer."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.waiting and (remaining := deadline - time.monotonic()) > 0:
                self._cond.wait(remaining)


def _cbor_head(major: int, length: int) -> bytes:
    if length < 24:
        return bytes([major << 5 | length])
    if length < 0x100:
        return bytes([major << 5 | 24, length])
    if length < 0x10000:
        return bytes([major << 5 | 25]) + length.to_bytes(2, "big")
    return bytes([major << 5 | 26]) + length.to_bytes(4, "big")


def _cbor_text_map(items: Mapping[str, str]) -> bytes:
    """A CBOR map of text to text: the error body smithy-rpc-v2-cbor clients read."""
    out = bytearray(_cbor_head(5, len(items)))
    for key, value in items.items():
        for text in (key, value):
            data = text.encode()
            out += _cbor_head(3, len(data)) + data
    return bytes(out)


def _service_unavailable(environ: Environ, start_response: StartResponse, message: str) -> Iterable[bytes]:
    """503 in the error shape of the request's protocol, so SDKs report ``message`` as the error."""
    request_id = str(uuid.uuid4())
    headers = [("x-amzn-RequestId", request_id), ("x-amzn-ErrorType", "ServiceUnavailableException")]
    content_type = str(environ.get("CONTENT_TYPE") or "")
    auth = str(environ.get("HTTP_AUTHORIZATION") or "")
    scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/") if "Credential=" in auth else []
    service = scope[3] if len(scope) > 3 else ""
    if environ.get("HTTP_SMITHY_PROTOCOL") == "rpc-v2-cbor":
        body = _cbor_text_map({"__type": "ServiceUnavailableException", "message": message})
        headers += [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")]
    elif environ.get("HTTP_X_AMZ_TARGET") or not (
        content_type.startswith("application/x-www-form-urlencoded") or service in _REST_XML_SERVICES
    ):
        body = json.dumps({"__type": "ServiceUnavailableException", "message": message}).encode()
        headers.append(("Content-Type", "application/x-amz-json-1.1"))
    else:
        escaped = message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        body = (
            "<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code>"
            f"<Message>{escaped}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        headers.append(("Content-Type", "text/xml"))
    start_response("503 Service Unavailable", [*headers, ("Content-Length", str(len(body)))])
    return [body]


class _Gate:
    """WSGI middleware of the public listener: ``/_emulator/`` routes at once, AWS once ready."""

    def __init__(self, app: Any, readiness: _Readiness) -> None:
        self._app = app
        self._readiness = readiness

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO") or "")
        if path.startswith(control.PREFIX) or path == control.PREFIX.rstrip("/"):
            request = Request(environ)
            status, answer = control.dispatch(request.method, path, request.get_data())
            body = json.dumps(answer).encode()
            start_response(
                f"{status} {HTTPStatus(status).phrase}",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            )
            return [body]
        error = self._readiness.wait()
        if error is not None:
            return _service_unavailable(environ, start_response, error)
        return cast(Iterable[bytes], self._app(environ, start_response))


class _Listener:
    """One threaded werkzeug server on 127.0.0.1 (bound at construction; port 0 picks one)."""

    def __init__(self, port: int, app: Any, name: str) -> None:
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()


class Emulator:
    """Start with ``with Emulator() as aws: aws.client("stepfunctions")...``.

    One emulator runs per process at a time (moto's backends and the patches are process-wide);
    it can be stopped and started again. ``template=None`` starts it without deploying a stack.
    ``start()`` returns once the stack is deployed; the endpoint accepts connections before that
    and holds AWS calls until then (``GET /_emulator/health`` says whether it is ready).
    """

    def __init__(
        self,
        port: int = 0,
        *,
        time_scale: float = 1.0,
        region: str = "us-east-1",
        template: Path | None = Path("template.yaml"),
        stack_name: str = "ecs-canary",
        parameters: dict[str, str] | None = None,
        options: EmulatorOptions | None = None,
    ) -> None:
        self.port = port
        self.clock = EmulatorClock(time_scale)
        self.region = region
        self.template = template
        self.stack_name = stack_name
        self.parameters = parameters or {}
        self.options = options or EmulatorOptions()
        self.outputs: dict[str, str] = {}
        self.timings: dict[str, float] = {}
        self._public: _Listener | None = None
        self._internal: _Listener | None = None
        self._readiness = _Readiness()
        self._previous_moto_port: str | None = None
        self._moto_port_set = False
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ready(self) -> bool:
        """Whether the endpoint serves AWS calls (the stack is deployed)."""
        return self._readiness.state == _Readiness.READY

    def start(self) -> Emulator:
        began = time.monotonic()
        self._clients.clear()
        self.outputs = {}
        self._readiness = readiness = _Readiness()
        # One access-log line per request would drown the demo's output.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        # moto's ASL interpreter logs every state failure (each Catch, every rollback) as an ERROR
        # with the whole state tree; the execution history records them, so only keep crashes.
        logging.getLogger("moto.stepfunctions.parser.asl.component.eval_component").setLevel(logging.CRITICAL)
        app = DomainDispatcherApplication(create_backend_app)
        try:
            self._internal = _Listener(0, app, "moto-internal")
            self._internal.start()
            internal = f"http://127.0.0.1:{self._internal.port}"
            # moto's Step Functions interpreter calls other services at localhost:$MOTO_PORT.
            self._previous_moto_port = os.environ.get("MOTO_PORT")
            self._moto_port_set = True
            os.environ["MOTO_PORT"] = str(self._internal.port)
            _post(f"{internal}/moto-api/reset")
            _post(f"{internal}/moto-api/config", MOTO_CONFIG)
            self._public = _Listener(self.port, _Gate(app, readiness), "moto-public")
            self.port = self._public.port
            patches.apply_all(self.clock, self.endpoint, self.options)
            control.route("GET", "health")(self._health)
            self._public.start()
            self.timings["server"] = time.monotonic() - began
            if self.template is not None:
                deployed = time.monotonic()
                self.outputs = deploy_stack(
                    internal, self.template, self.stack_name, self.parameters, region=self.region
                )
                self.timings["deploy"] = time.monotonic() - deployed
        except BaseException as exc:
            what = f"stack {self.stack_name}" if self.template is not None else "the emulator"
            readiness.fail(f"{what} failed to deploy: {type(exc).__name__}: {exc}")
            readiness.drain(5.0)
            self.stop()
            raise
        readiness.ready()
        LOG.info("emulator on %s ready in %.1f s", self.endpoint, time.monotonic() - began)
        return self

    def stop(self) -> None:
        self._readiness.fail("the emulator is stopping")
        self._readiness.drain(5.0)
        patches.stop_workers()
        for listener in (self._public, self._internal):
            if listener is not None:
                listener.stop()
        self._public = self._internal = None
        if self._moto_port_set:
            if self._previous_moto_port is None:
                os.environ.pop("MOTO_PORT", None)
            else:
                os.environ["MOTO_PORT"] = self._previous_moto_port
            self._moto_port_set = False

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _health(self, _body: dict[str, Any]) -> dict[str, Any]:
        """``GET /_emulator/health``: ready, the stack and its outputs (and why not, if failed)."""
        readiness = self._readiness
        return {
            "ready": readiness.state == _Readiness.READY,
            "stack": self.stack_name if self.template is not None else None,
            "outputs": dict(self.outputs) if readiness.state == _Readiness.READY else {},
            "error": readiness.error,
            "waiting": readiness.waiting,
        }

    def health(self) -> dict[str, Any]:
        """What ``GET /_emulator/health`` answers."""
        return control.call(self.endpoint, "GET", "health")

    def inject_events(self, entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Publish events as the AWS services named by their Source would (``aws.ecs``...)."""
        return control.inject_events(self.endpoint, entries, region=self.region)

    def session(self) -> boto3.Session:
        """A session with fake credentials; pass ``endpoint_url=aws.endpoint`` to its clients."""
        return boto3.Session(
            region_name=self.region,
            aws_access_key_id=FAKE_CREDENTIALS["aws_access_key_id"],
            aws_secret_access_key=FAKE_CREDENTIALS["aws_secret_access_key"],
        )

    def client(self, service: str) -> Any:
        """A boto3 client of ``service`` pointed at the emulator (one per service, thread-safe)."""
        with self._clients_lock:
            client = self._clients.get(service)
            if client is None:
                client = cast(Any, self.session()).client(
                    service,
                    endpoint_url=self.endpoint,
                    config=Config(retries={"max_attempts": 2, "mode": "standard"}),
                )
                self._clients[service] = client
            return client

    def wait_for_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no event delivery, Lambda retry or ECS task start is pending."""
        return patches.wait_for_idle(timeout)
