"""The emulator's own API, served beside the AWS APIs under ``/_emulator/``.

AWS offers no API for some things tests and demos must do to an emulated account (inject an
event only an AWS service may publish, make a container exit): each such action is a route here,
registered by the service module that emulates it, and documented in the README. Routes take and
return JSON objects; a handler raises :class:`ControlError` for a bad request. The server answers
these routes even while the stack is still deploying (AWS calls wait until it is deployed).

:func:`call` and :func:`inject_events` are the client side, for tests and scripts.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "PREFIX",
    "ControlError",
    "Handler",
    "call",
    "dispatch",
    "inject_events",
    "route",
    "routes",
]

LOG = logging.getLogger(__name__)

PREFIX = "/_emulator/"

Handler = Callable[[dict[str, Any]], dict[str, Any]]

_ROUTES: dict[tuple[str, str], Handler] = {}
_LOCK = threading.Lock()


class ControlError(Exception):
    """A request the route refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def route(method: str, path: str) -> Callable[[Handler], Handler]:
    """Register ``handler`` for ``method`` on ``/_emulator/<path>`` (idempotent)."""
    key = (method.upper(), PREFIX + path.strip("/"))

    def register(handler: Handler) -> Handler:
        with _LOCK:
            _ROUTES[key] = handler
        return handler

    return register


def routes() -> Iterable[tuple[str, str]]:
    """Every registered (method, path), sorted."""
    with _LOCK:
        return sorted(_ROUTES)


def dispatch(method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) for one control request."""
    with _LOCK:
        handler = _ROUTES.get((method.upper(), path.rstrip("/")))
    if handler is None:
        known = ", ".join(f"{m} {p}" for m, p in routes())
        return 404, {"message": f"no emulator route {method} {path}; routes: {known}"}
    try:
        payload = json.loads(body or b"{}")
    except ValueError as exc:
        return 400, {"message": f"request body is not JSON: {exc}"}
    if not isinstance(payload, dict):
        return 400, {"message": "request body must be a JSON object"}
    try:
        return 200, handler(payload)
    except ControlError as exc:
        return exc.status, {"message": str(exc)}
    except Exception as exc:  # a bug in a route: answer it rather than drop the connection
        LOG.exception("emulator route %s %s failed", method, path)
        return 500, {"message": f"{type(exc).__name__}: {exc}"}


def call(
    endpoint: str, method: str, path: str, body: Mapping[str, Any] | None = None, *, timeout: float = 60.0
) -> dict[str, Any]:
    """Call the emulator route ``method /_emulator/<path>`` at ``endpoint``; its JSON answer.

    Raises :class:`ControlError` with the route's message and status when it refuses.
    """
    url = endpoint.rstrip("/") + PREFIX + path.strip("/")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method.upper(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            message = str(json.loads(raw).get("message", raw.decode(errors="replace")))
        except (ValueError, AttributeError):
            message = raw.decode(errors="replace")
        raise ControlError(message or str(exc), exc.code) from exc
    return answer if isinstance(answer, dict) else {"value": answer}


def inject_events(
    endpoint: str, entries: Sequence[Mapping[str, Any]], *, region: str | None = None
) -> dict[str, Any]:
    """Publish PutEvents-shaped ``entries`` as the AWS services named by their Source would
    (``aws.ecs``, ``aws.cloudwatch``... which PutEvents refuses); PutEvents' answer.

    ``Detail`` may be an object or a JSON string; ``region`` defaults to us-east-1.
    """
    body: dict[str, Any] = {"Entries": [dict(e) for e in entries]}
    if region:
        body["Region"] = region
    return call(endpoint, "POST", "events", body)
