"""DynamoDB state: registered pairs, the one-deployment-per-pair lock, deployment records.

Shaped like Powertools' idempotency persistence layer: ``models`` (what an item means),
``keys`` (where it lives), ``conditions`` (the named conditions every write is made under) and
``dynamodb`` (the :class:`Store` that reads and writes them).
"""

from __future__ import annotations

from ecs_canary.store.dynamodb import HISTORY_LIMIT, Handover, Store
from ecs_canary.store.models import (
    ACTIVE,
    OPEN,
    TERMINAL,
    Claim,
    ClaimOutcome,
    Command,
    Deployment,
    Lock,
    Pair,
    Release,
    RollbackIntent,
    ShiftLease,
    Status,
    cluster_name,
    now_iso,
    parse_iso,
)

__all__ = [
    "ACTIVE",
    "HISTORY_LIMIT",
    "OPEN",
    "TERMINAL",
    "Claim",
    "ClaimOutcome",
    "Command",
    "Deployment",
    "Handover",
    "Lock",
    "Pair",
    "Release",
    "RollbackIntent",
    "ShiftLease",
    "Status",
    "Store",
    "cluster_name",
    "now_iso",
    "parse_iso",
]
