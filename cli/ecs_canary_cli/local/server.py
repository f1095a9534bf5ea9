"""The offline emulated AWS: moto in server mode on 127.0.0.1, patched, with the stack deployed."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

from . import patches
from .clock import EmulatorClock
from .deploy import FAKE_CREDENTIALS, deploy_stack
from .patches import EmulatorOptions

LOG = logging.getLogger(__name__)

MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(url: str, body: Any = None) -> None:
    data = json.dumps(body).encode() if body is not None else b""
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


class Emulator:
    """Start with ``with Emulator() as aws: aws.client("stepfunctions")...``.

    One emulator runs per process at a time (moto's backends and the patches are process-wide);
    it can be stopped and started again. ``template=None`` starts it without deploying a stack.
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
        self._server: Any = None
        self._previous_moto_port: str | None = None
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Emulator:
        began = time.monotonic()
        if not self.port:
            self.port = _free_port()
        self._clients.clear()
        # moto's Step Functions interpreter calls other services at localhost:$MOTO_PORT.
        self._previous_moto_port = os.environ.get("MOTO_PORT")
        os.environ["MOTO_PORT"] = str(self.port)
        # One access-log line per request would drown the demo's output.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        _post(f"{self.endpoint}/moto-api/reset")
        _post(f"{self.endpoint}/moto-api/config", MOTO_CONFIG)
        patches.apply_all(self.clock, self.endpoint, self.options)
        self.timings["server"] = time.monotonic() - began
        if self.template is not None:
            deployed = time.monotonic()
            self.outputs = deploy_stack(
                self.endpoint, self.template, self.stack_name, self.parameters, region=self.region
            )
            self.timings["deploy"] = time.monotonic() - deployed
        LOG.info("emulator on %s ready in %.1f s", self.endpoint, time.monotonic() - began)
        return self

    def stop(self) -> None:
        patches.stop_workers()
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._previous_moto_port is None:
            os.environ.pop("MOTO_PORT", None)
        else:
            os.environ["MOTO_PORT"] = self._previous_moto_port

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

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
