"""DynamoDB: every request applies atomically and in isolation from every other one."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models import DynamoDBBackend

from ._core import _install

_DATA_PLANE = (
    "put_item",
    "get_item",
    "update_item",
    "delete_item",
    "query",
    "scan",
    "batch_get_item",
    "batch_write_item",
    "transact_write_items",
    "transact_get_items",
    "execute_statement",
    "execute_transaction",
    "batch_execute_statement",
    "create_table",
    "update_table",
    "delete_table",
    "describe_table",
)
"""The backend methods that read or change tables (a transaction calls some of them itself)."""

_LOCKS_LOCK = threading.Lock()


def _lock_of(backend: Any) -> threading.RLock:
    with _LOCKS_LOCK:
        lock: threading.RLock | None = backend.__dict__.get("_emulator_request_lock")
        if lock is None:
            lock = threading.RLock()
            backend.__dict__["_emulator_request_lock"] = lock
        return lock


def isolate_dynamodb_requests() -> None:
    """AWS: a write to an item is atomic, a ``TransactWriteItems`` call is all or nothing and
    isolated from every other request (no read sees part of it, and a refused transaction leaves
    everything else as it was), and a read returns a consistent item. moto serves requests on many
    threads without a lock: a transaction deep-copies its tables first and, when one of its
    conditions fails, puts those copies back, so every write other threads made in between is
    undone (an item that was just created disappears), and a copy or a scan can meet a table that
    is changing under it. Here each backend serves one table request at a time.
    """

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def isolated(self: Any, *args: Any, **kwargs: Any) -> Any:
            with _lock_of(self):
                return original(self, *args, **kwargs)

        return isolated

    for name in _DATA_PLANE:
        _install(DynamoDBBackend, name, make, "isolated")
