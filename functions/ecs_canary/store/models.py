"""What the table holds, as typed values: statuses, releases, pairs, deployment records."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from ecs_canary.spec import ServicePairSpec

__all__ = [
    "ACTIVE",
    "OPEN",
    "TERMINAL",
    "Claim",
    "ClaimOutcome",
    "Command",
    "Deployment",
    "Pair",
    "Release",
    "RollbackIntent",
    "ShiftLease",
    "Status",
    "cluster_name",
    "now_iso",
    "parse_iso",
    "plain",
]


class Status(StrEnum):
    """Lifecycle of a deployment record.

    STARTING → RUNNING ⇄ PAUSED → (ROLLING_BACK →) a terminal status. ROLLING_BACK is the recorded
    intent to fail back: once written, no step may shift traffic or write progress, so whatever
    races the rollback cannot land after it.
    """

    STARTING = "STARTING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    ROLLING_BACK = "ROLLING_BACK"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    ABORTED = "ABORTED"
    TIMED_OUT = "TIMED_OUT"
    REJECTED = "REJECTED"
    SUPERSEDED = "SUPERSEDED"
    ROLLBACK_FAILED = "ROLLBACK_FAILED"

    @property
    def terminal(self) -> bool:
        return self not in OPEN_STATUSES


OPEN_STATUSES = frozenset({Status.STARTING, Status.RUNNING, Status.PAUSED, Status.ROLLING_BACK})
OPEN = tuple(s.value for s in Status if not s.terminal)
"""Statuses of a deployment that still holds its pair's lock."""
ACTIVE = (Status.RUNNING.value, Status.PAUSED.value)
"""Statuses in which the owner's steps may act (PAUSED: judge, but not shift)."""
TERMINAL = tuple(s.value for s in Status if s.terminal)


def now_iso() -> str:
    """UTC timestamp with milliseconds; sorts lexically."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def cluster_name(cluster: str) -> str:
    """``arn:aws:ecs:r:a:cluster/prod`` and ``prod`` both name cluster ``prod``."""
    return cluster.rsplit("/", 1)[-1] if cluster.startswith("arn:") else cluster


@dataclass(frozen=True)
class Release:
    """A new release of a service: the ECS deployment that started its tasks and their task definition."""

    service: str
    deployment: str
    task_definition: str

    def to_dict(self) -> dict[str, str]:
        return {
            "service": self.service,
            "deployment": self.deployment,
            "task_definition": self.task_definition,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Release:
        return cls(str(data["service"]), str(data["deployment"]), str(data["task_definition"]))


@dataclass(frozen=True)
class Pair:
    """A registered service pair as stored: the spec plus which service holds the traffic."""

    spec: ServicePairSpec
    live_service: str
    idle_baseline: str | None
    registered_at: str
    cluster_arn: str | None = None
    retired: dict[str, Any] | None = None
    """The service scaled to zero after the last promotion, and the desired count it had."""

    @property
    def idle_service(self) -> str:
        return self.spec.other(self.live_service).name


@dataclass(frozen=True)
class RollbackIntent:
    """What a rollback was asked to do: the terminal status to record, why, and by whom.

    ``successor`` is the release that superseded this one; the rollback hands the pair's lock to it.
    """

    status: Status
    reason: str
    by: str
    at: str
    successor: Release | None = None

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "status": self.status.value,
            "reason": self.reason,
            "by": self.by,
            "at": self.at,
        }
        if self.successor is not None:
            item["successor"] = self.successor.to_dict()
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> RollbackIntent:
        successor = item.get("successor")
        return cls(
            status=Status(item["status"]),
            reason=str(item["reason"]),
            by=str(item.get("by", "")),
            at=str(item.get("at", "")),
            successor=Release.from_dict(successor) if successor else None,
        )


@dataclass(frozen=True)
class ShiftLease:
    """A weight change in flight: written before the router call, cleared when its result is recorded.

    A rollback waits for the lease (or its expiry) before restoring, so a late write of the shift
    cannot land after the restore.
    """

    weights: dict[str, int]
    until: str
    step_index: int = -1
    percent: int = 0

    def expired(self, now: datetime) -> bool:
        return parse_iso(self.until) <= now


@dataclass(frozen=True)
class Command:
    """An operator's request waiting for the owner's next step (promote)."""

    action: Literal["promote"]
    full: bool
    skip_analysis: bool
    by: str
    reason: str
    at: str

    def to_item(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "full": self.full,
            "skip_analysis": self.skip_analysis,
            "by": self.by,
            "reason": self.reason,
            "at": self.at,
        }

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Command:
        return cls(
            action="promote",
            full=bool(item.get("full")),
            skip_analysis=bool(item.get("skip_analysis")),
            by=str(item.get("by", "")),
            reason=str(item.get("reason", "")),
            at=str(item.get("at", "")),
        )


def _ints(value: Any) -> dict[str, int] | None:
    return None if value is None else {str(k): int(v) for k, v in value.items()}


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def plain(value: Any) -> Any:
    """DynamoDB's Decimals as ints or floats, recursively (maps and lists kept)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


@dataclass(frozen=True)
class Deployment:
    """One deployment record, as the CLI and the handlers read it."""

    pair: str
    deployment_id: str
    status: Status
    service: str
    live_service: str
    release: Release
    created_at: str
    updated_at: str
    reason: str | None = None
    execution_arn: str | None = None
    snapshot: dict[str, int] | None = None
    weights: dict[str, int] | None = None
    step_index: int | None = None
    percent: int | None = None
    shifted_at: str | None = None
    bake_until: str | None = None
    inconclusive: int = 0
    sync_checks: int = 0
    ended_at: str | None = None
    spec: dict[str, Any] | None = None
    rollback: RollbackIntent | None = None
    listener_token: str | None = None
    watch_done: str | None = None
    shift: ShiftLease | None = None
    pending_change: str | None = None
    command: Command | None = None
    paused: dict[str, str] | None = None
    stopped_tasks: frozenset[str] = frozenset()
    gates_done: frozenset[str] = frozenset()
    approval: dict[str, Any] | None = None
    test_snapshot: dict[str, Any] | None = None
    test_lease: str | None = None
    """Until when a change of the test listener, rule or record may be in flight (ISO 8601)."""
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def expected_weights(self) -> dict[str, int] | None:
        """What the router should show: the last recorded shift, else the snapshot."""
        return self.weights if self.weights is not None else self.snapshot

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Deployment:
        shift = item.get("shift")
        return cls(
            pair=item["pair"],
            deployment_id=item["deployment_id"],
            status=Status(item["status"]),
            service=item["service"],
            live_service=item["live_service"],
            release=Release.from_dict(item["release"]),
            created_at=item["created_at"],
            updated_at=item["updated_at"],
            reason=item.get("reason"),
            execution_arn=item.get("execution_arn"),
            snapshot=_ints(item.get("snapshot")),
            weights=_ints(item.get("weights")),
            step_index=_int(item.get("step_index")),
            percent=_int(item.get("percent")),
            shifted_at=item.get("shifted_at"),
            bake_until=item.get("bake_until"),
            inconclusive=int(item.get("inconclusive", 0)),
            sync_checks=int(item.get("sync_checks", 0)),
            ended_at=item.get("ended_at"),
            spec=json.loads(item["spec"]) if item.get("spec") else None,
            rollback=RollbackIntent.from_item(item["rollback"]) if item.get("rollback") else None,
            listener_token=item.get("listener_token"),
            watch_done=item.get("watch_done"),
            shift=ShiftLease(
                weights=_ints(shift["weights"]) or {},
                until=str(shift["until"]),
                step_index=int(shift.get("step_index", -1)),
                percent=int(shift.get("percent", 0)),
            )
            if shift
            else None,
            pending_change=item.get("pending_change"),
            command=Command.from_item(item["command"]) if item.get("command") else None,
            paused={str(k): str(v) for k, v in item["paused"].items()} if item.get("paused") else None,
            stopped_tasks=frozenset(str(t) for t in item.get("stopped_tasks", ()) or ()),
            gates_done=frozenset(str(g) for g in item.get("gates_done", ()) or ()),
            approval=plain(item.get("approval")),
            test_snapshot=plain(item.get("test_snapshot")),
            test_lease=str(item["test_lease"]) if item.get("test_lease") else None,
            history=[
                {k: (int(v) if k == "percent" and v is not None else v) for k, v in h.items()}
                for h in item.get("history", [])
            ],
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view for the CLI."""
        return {
            "pair": self.pair,
            "deployment_id": self.deployment_id,
            "status": self.status.value,
            "service": self.service,
            "live_service": self.live_service,
            "release": self.release.to_dict(),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "ended_at": self.ended_at,
            "reason": self.reason,
            "execution_arn": self.execution_arn,
            "snapshot": self.snapshot,
            "weights": self.weights,
            "step_index": self.step_index,
            "percent": self.percent,
            "paused": self.paused,
            "approval": self.approval,
            "gates_done": sorted(self.gates_done),
            "rollback": self.rollback.to_item() if self.rollback else None,
            "stopped_tasks": len(self.stopped_tasks),
            "history": self.history,
        }


ClaimOutcome = Literal["claimed", "duplicate", "busy", "live"]


@dataclass(frozen=True)
class Claim:
    """Result of trying to take a pair's lock for a release."""

    outcome: ClaimOutcome
    existing: Deployment | None = None
    active_deployment_id: str | None = None


@dataclass(frozen=True)
class Lock:
    """A pair's lock: which deployment holds it and until when the sweeper leaves it alone."""

    pair: str
    deployment_id: str
    acquired_at: str
    lease_until: str | None

    def leased(self, now: datetime) -> bool:
        return self.lease_until is not None and parse_iso(self.lease_until) > now
