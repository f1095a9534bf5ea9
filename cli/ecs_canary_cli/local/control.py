"""The emulator's own API, served beside the AWS APIs under ``/_emulator/``.

AWS offers no API for some things tests and demos must do to an emulated account (inject an
event only an AWS service may publish, make a container exit): each such action is a route here,
registered by the service module that emulates it, and documented in the README. Routes take and
return JSON objects; a handler raises :class:`ControlError` for a bad request.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["PREFIX", "ControlError", "Handler", "dispatch", "route", "routes"]

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
