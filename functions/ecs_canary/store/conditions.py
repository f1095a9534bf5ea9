"""The conditions every write of the store is made under, each with a name.

A condition carries its DynamoDB expression and the same test in Python, so when DynamoDB refuses
a write the store can say which named sub-condition failed on the item as it is (owner, status,
lease...) instead of a bare ``ConditionalCheckFailedException``. This is the fencing: a write from
anyone but the deployment's owner, or after a rollback intent, cannot happen.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ecs_canary.store.models import ACTIVE, OPEN, Status

__all__ = [
    "Condition",
    "Conditions",
    "deployment_exists",
    "item_absent",
    "lease_free",
    "lock_free_or_held_by",
    "lock_held_by",
    "no_rollback_intent",
    "owned_by",
    "status_in",
    "task_not_counted",
]

_COUNTER = itertools.count()

Predicate = Callable[[Mapping[str, Any] | None], bool]


@dataclass(frozen=True)
class Condition:
    """One named sub-condition: its expression (placeholders unique to it) and its Python twin."""

    name: str
    expression: str
    holds: Predicate
    values: Mapping[str, Any] = field(default_factory=dict)
    names: Mapping[str, str] = field(default_factory=dict)

    def __and__(self, other: Condition | Conditions) -> Conditions:
        return Conditions((self,)) & other


@dataclass(frozen=True)
class Conditions:
    """All of several named conditions."""

    parts: tuple[Condition, ...]

    def __and__(self, other: Condition | Conditions) -> Conditions:
        extra = (other,) if isinstance(other, Condition) else other.parts
        return Conditions(self.parts + extra)

    @property
    def expression(self) -> str:
        return " AND ".join(f"({c.expression})" for c in self.parts)

    @property
    def values(self) -> dict[str, Any]:
        return {k: v for c in self.parts for k, v in c.values.items()}

    @property
    def names(self) -> dict[str, str]:
        return {k: v for c in self.parts for k, v in c.names.items()}

    def failing(self, item: Mapping[str, Any] | None) -> Condition | None:
        """The first condition that does not hold on ``item`` (None: all hold, the item changed since)."""
        return next((c for c in self.parts if not c.holds(item)), None)


def _placeholder(stem: str) -> str:
    return f":{stem}{next(_COUNTER)}"


def as_conditions(condition: Condition | Conditions) -> Conditions:
    return condition if isinstance(condition, Conditions) else Conditions((condition,))


def deployment_exists() -> Condition:
    return Condition("exists", "attribute_exists(pk)", lambda item: item is not None)


def item_absent(name: str = "absent") -> Condition:
    return Condition(name, "attribute_not_exists(pk)", lambda item: item is None)


def owned_by(execution_arn: str) -> Condition:
    """The fencing token: only the execution named in the record may write for the deployment."""
    ph = _placeholder("owner")
    return Condition(
        "owner",
        f"execution_arn = {ph}",
        lambda item: item is not None and item.get("execution_arn") == execution_arn,
        {ph: execution_arn},
    )


def status_in(*statuses: Status | str) -> Condition:
    wanted = tuple(Status(s).value for s in statuses)
    phs = [_placeholder("st") for _ in wanted]
    return Condition(
        "status",
        f"#status IN ({', '.join(phs)})",
        lambda item: item is not None and item.get("status") in wanted,
        dict(zip(phs, wanted, strict=True)),
        {"#status": "status"},
    )


def is_open() -> Condition:
    return status_in(*OPEN)


def is_active() -> Condition:
    return status_in(*ACTIVE)


def no_rollback_intent() -> Condition:
    return Condition(
        "no_rollback_intent",
        "attribute_not_exists(#rollback)",
        lambda item: item is not None and not item.get("rollback"),
        names={"#rollback": "rollback"},
    )


def lease_free(now_iso: str, owner: str | None = None) -> Condition:
    """No weight change in flight (or only an expired one)."""
    ph = _placeholder("now")

    def holds(item: Mapping[str, Any] | None) -> bool:
        shift = (item or {}).get("shift")
        return not shift or str(shift.get("until", "")) <= now_iso

    del owner
    return Condition(
        "lease_free",
        f"attribute_not_exists(#shift) OR #shift.#until <= {ph}",
        holds,
        {ph: now_iso},
        {"#shift": "shift", "#until": "until"},
    )


def shift_unrecorded(step_index: int) -> Condition:
    """The shift of ``step_index`` was not recorded yet: its lease is still there, or the record is at
    another step (a late call whose shift a later step already adopted records nothing twice)."""
    ph = _placeholder("step")

    def holds(item: Mapping[str, Any] | None) -> bool:
        return bool((item or {}).get("shift")) or (item or {}).get("step_index") != step_index

    return Condition(
        "shift_unrecorded",
        f"attribute_exists(#shift) OR attribute_not_exists(step_index) OR step_index <> {ph}",
        holds,
        {ph: step_index},
        {"#shift": "shift"},
    )


def lock_held_by(deployment_id: str) -> Condition:
    ph = _placeholder("dep")
    return Condition(
        "lock_holder",
        f"deployment_id = {ph}",
        lambda item: item is not None and item.get("deployment_id") == deployment_id,
        {ph: deployment_id},
    )


def lock_free_or_held_by(deployment_id: str) -> Condition:
    ph = _placeholder("dep")
    return Condition(
        "lock_free_or_holder",
        f"attribute_not_exists(pk) OR deployment_id = {ph}",
        lambda item: item is None or item.get("deployment_id") == deployment_id,
        {ph: deployment_id},
    )


def task_not_counted(task_arn: str) -> Condition:
    ph = _placeholder("task")
    return Condition(
        "task_not_counted",
        f"NOT contains(stopped_tasks, {ph})",
        lambda item: task_arn not in set((item or {}).get("stopped_tasks") or ()),
        {ph: task_arn},
    )
