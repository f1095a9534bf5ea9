"""The e2e tests' service: answers HTTP on port 8080 as its release's environment says.

``ERROR_RATE`` (0 to 1) is the share of requests answered with a 500, ``LATENCY_MS`` how long each
answer takes; ``/healthz`` always answers 200 so that ECS deploys a failing release and ecs-canary,
not the load balancer's health check, is what catches it. ``VERSION`` is echoed in each answer.
"""

from __future__ import annotations

import os
import random
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ERROR_RATE = float(os.environ.get("ERROR_RATE", "0"))
LATENCY_MS = float(os.environ.get("LATENCY_MS", "0"))
VERSION = os.environ.get("VERSION", "unknown")
PORT = int(os.environ.get("PORT", "8080"))


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._answer(200, "ok\n")
            return
        time.sleep(LATENCY_MS / 1000)
        if random.random() < ERROR_RATE:
            self._answer(500, f"{VERSION}: failing as configured\n")
        else:
            self._answer(200, f"{VERSION}\n")

    def _answer(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """One line per request is noise at the load generator's rate."""


if __name__ == "__main__":
    ThreadingHTTPServer(("", PORT), Handler).serve_forever()
