"""DynamoDB access for specs, locks and deployment records: every state change a conditional write.

The deployment record is owned by one execution (its ARN is the fencing token, written when the
release is claimed): every step's write names its owner and the statuses it may act in, so a copy
of the execution, a retry from a dead owner or a late in-flight call is refused by DynamoDB itself.
A rollback first records its intent (ROLLING_BACK), which no step can write past, then restores,
then closes. Duplicate and out-of-order events cannot start a deployment twice or reopen one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from ecs_canary import aws
from ecs_canary.errors import (
    DeploymentClosed,
    DeploymentNotFound,
    NotOwner,
    RollbackRequested,
    ShiftInFlight,
    UnknownServicePair,
    WriteRefused,
)
from ecs_canary.spec import ServicePairSpec, parse_spec
from ecs_canary.store import conditions as cond
from ecs_canary.store.keys import (
    LOCK_INDEX_VALUE,
    LOCKS_INDEX,
    alarm_key,
    deployment_key,
    des,
    lock_key,
    ser,
    service_key,
    spec_key,
)
from ecs_canary.store.models import (
    ACTIVE,
    OPEN,
    Claim,
    Command,
    Deployment,
    Lock,
    Pair,
    Release,
    RollbackIntent,
    Status,
    cluster_name,
    now_iso,
    plain,
)

__all__ = ["HISTORY_LIMIT", "Handover", "Store"]

HISTORY_LIMIT = 200
"""Entries a record's history keeps (oldest dropped first), so a record stays far below 400 KB."""

_CLAIM_ATTEMPTS = 3
_OPEN_STATUSES = tuple(Status(value) for value in OPEN)


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _condition_failed(err: ClientError) -> bool:
    return _code(err) == "ConditionalCheckFailedException"


def _fmt(weights: Mapping[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(weights.items()))


def _iso_in(seconds: float) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _entry(event: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"at": now_iso(), "event": event, "message": message, **extra}


@dataclass(frozen=True)
class Handover:
    """The release a closing deployment hands its pair's lock to (it superseded the closing one)."""

    deployment_id: str
    release: Release
    live_service: str
    execution_arn: str
    lease_seconds: float


class Store:
    """Typed access to the table; the table name comes from ``TABLE_NAME`` unless given."""

    def __init__(self, table_name: str | None = None, client: Any = None) -> None:
        self.table = table_name or os.environ["TABLE_NAME"]
        self.ddb = client or aws.client("dynamodb")

    # ---- pairs -----------------------------------------------------------------------------------

    def put_pair(
        self,
        spec: ServicePairSpec,
        *,
        live_service: str,
        idle_baseline: str | None,
        cluster_arn: str | None = None,
    ) -> Pair:
        """Register or re-register a pair; its service and alarm index entries are replaced exactly.

        Refused while one of its deployments is active, or when a service belongs to another pair.
        """
        now = now_iso()
        previous = self._get(spec_key(spec.name))
        spec_item = {
            "pk": f"PAIR#{spec.name}",
            "sk": "SPEC",
            "pair": spec.name,
            "spec": spec.model_dump_json(),
            "live_service": live_service,
            "idle_baseline": idle_baseline,
            "cluster": cluster_name(spec.cluster),
            "cluster_arn": cluster_arn,
            "registered_at": now,
        }
        items: list[dict[str, Any]] = [
            {"Put": {"TableName": self.table, "Item": ser(spec_item)}},
            self._check(lock_key(spec.name), cond.item_absent("no_active_deployment")),
        ]
        new_services = {(cluster_name(spec.cluster), s.name) for s in spec.services}
        new_alarms = set(_alarms_of(spec))
        for cluster, service in sorted(new_services):
            items.append(
                self._put(
                    {"pk": f"SERVICE#{cluster}#{service}", "sk": "PAIR", "pair": spec.name},
                    _free_or_mine(spec.name),
                )
            )
        for alarm in sorted(new_alarms):
            items.append({"Put": {"TableName": self.table, "Item": ser({**_alarm_item(alarm, spec.name)})}})
        if previous is not None:
            old_spec = parse_spec(json.loads(previous["spec"]))
            old_services = {(cluster_name(old_spec.cluster), s.name) for s in old_spec.services}
            for cluster, service in sorted(old_services - new_services):
                items.append(self._delete(service_key(cluster, service), _free_or_mine(spec.name)))
            for alarm in sorted(set(_alarms_of(old_spec)) - new_alarms):
                items.append({"Delete": {"TableName": self.table, "Key": alarm_key(alarm, spec.name)}})
        try:
            self.ddb.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
        except ClientError as err:
            if _code(err) != "TransactionCanceledException":
                raise
            reasons = [r.get("Code") for r in err.response.get("CancellationReasons", [])]
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                raise ValueError(
                    f"pair {spec.name!r} has an active deployment; wait for it to end before re-registering"
                ) from err
            raise ValueError(
                f"a service of pair {spec.name!r} already belongs to another registered pair"
            ) from err
        return Pair(spec, live_service, idle_baseline, now, cluster_arn)

    def record_retired(self, pair: str, service: str, desired_count: int) -> None:
        """Remember the desired count of a service scaled to zero, so a later release can restore it."""
        self.ddb.update_item(
            TableName=self.table,
            Key=spec_key(pair),
            UpdateExpression="SET retired = :retired",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=ser(
                {":retired": {"service": service, "desired_count": desired_count, "at": now_iso()}}
            ),
        )

    def delete_pair(self, name: str) -> Pair:
        """Remove a pair's spec and its index entries; refused while a deployment is active."""
        pair = self.get_pair(name)
        items: list[dict[str, Any]] = [
            {"Delete": {"TableName": self.table, "Key": spec_key(name)}},
            self._check(lock_key(name), cond.item_absent("no_active_deployment")),
        ]
        for svc in pair.spec.services:
            items.append(self._delete(service_key(pair.spec.cluster, svc.name), _free_or_mine(name)))
        for alarm in _alarms_of(pair.spec):
            items.append({"Delete": {"TableName": self.table, "Key": alarm_key(alarm, name)}})
        try:
            self.ddb.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
        except ClientError as err:
            if _code(err) != "TransactionCanceledException":
                raise
            raise ValueError(
                f"pair {name!r} has an active deployment; wait for it to end before deregistering"
            ) from err
        return pair

    def get_pair(self, name: str) -> Pair:
        pair = self.find_pair(name)
        if pair is None:
            raise UnknownServicePair(f"no service pair named {name!r} is registered")
        return pair

    def find_pair(self, name: str) -> Pair | None:
        item = self._get(spec_key(name))
        return None if item is None else _pair(item)

    def pair_for_service(self, cluster: str, service: str) -> Pair | None:
        """The pair an ECS service belongs to, or None for services nobody registered."""
        item = self._get(service_key(cluster, service))
        return None if item is None else self.find_pair(item["pair"])

    def pairs_for_alarm(self, alarm: str) -> list[str]:
        """Names of the pairs whose health gate (pair-wide or per service) names ``alarm``."""
        return sorted(
            str(i["pair"])
            for i in self._query("pk = :pk", {":pk": f"ALARM#{alarm}"})
            if i.get("pair") is not None
        )

    def list_pairs(self) -> list[Pair]:
        """All registered pairs (a scan: the table holds few pairs and the CLI calls this rarely)."""
        pairs: list[Pair] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "sk = :s",
            "ExpressionAttributeValues": ser({":s": "SPEC"}),
        }
        while True:
            page = self.ddb.scan(**kwargs)
            pairs.extend(_pair(des(raw)) for raw in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return sorted(pairs, key=lambda p: p.spec.name)
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # ---- locks -------------------------------------------------------------------------------------

    def active_deployment_id(self, pair: str) -> str | None:
        lock = self.get_lock(pair)
        return None if lock is None else lock.deployment_id

    def get_lock(self, pair: str) -> Lock | None:
        item = self._get(lock_key(pair))
        return None if item is None else _lock(item)

    def list_locks(self) -> list[Lock]:
        """Every held lock, from the sparse ``Locks`` index (no deployment record is read)."""
        locks: list[Lock] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": LOCKS_INDEX,
            "KeyConditionExpression": "lock_index = :l",
            "ExpressionAttributeValues": ser({":l": LOCK_INDEX_VALUE}),
        }
        while True:
            page = self.ddb.query(**kwargs)
            locks.extend(_lock(des(raw)) for raw in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return sorted(locks, key=lambda lock: lock.pair)
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def extend_lease(self, pair: str, deployment_id: str, seconds: float) -> bool:
        """Push the lock's lease out (the sweeper found its execution alive); False if it moved on."""
        condition = cond.as_conditions(cond.lock_held_by(deployment_id))
        try:
            self.ddb.update_item(
                TableName=self.table,
                Key=lock_key(pair),
                UpdateExpression="SET lease_until = :until",
                ConditionExpression=condition.expression,
                ExpressionAttributeValues=ser({**condition.values, ":until": _iso_in(seconds)}),
            )
        except ClientError as err:
            if _condition_failed(err):
                return False
            raise
        return True

    def release_lock(self, pair: str, deployment_id: str) -> bool:
        """Drop a lock whose deployment is already closed (the sweeper's clean-up)."""
        condition = cond.as_conditions(cond.lock_held_by(deployment_id))
        try:
            self.ddb.delete_item(
                TableName=self.table,
                Key=lock_key(pair),
                ConditionExpression=condition.expression,
                ExpressionAttributeValues=ser(condition.values),
            )
        except ClientError as err:
            if _condition_failed(err):
                return False
            raise
        return True

    # ---- claiming a release --------------------------------------------------------------------

    def _new_record(
        self, pair: str, deployment_id: str, release: Release, live: str, execution_arn: str, *, event: str
    ) -> dict[str, Any]:
        now = now_iso()
        return {
            "pk": f"PAIR#{pair}",
            "sk": f"DEPLOYMENT#{deployment_id}",
            "pair": pair,
            "deployment_id": deployment_id,
            "status": Status.STARTING.value,
            "service": release.service,
            "live_service": live,
            "release": release.to_dict(),
            "execution_arn": execution_arn,
            "created_at": now,
            "updated_at": now,
            "history": [_entry(event, f"release {release.deployment} seen")],
        }

    def _lock_item(self, pair: str, deployment_id: str, lease_seconds: float) -> dict[str, Any]:
        return {
            "pk": f"PAIR#{pair}",
            "sk": "LOCK",
            "pair": pair,
            "deployment_id": deployment_id,
            "acquired_at": now_iso(),
            "lease_until": _iso_in(lease_seconds),
            "lock_index": LOCK_INDEX_VALUE,
        }

    def claim(
        self,
        pair: str,
        deployment_id: str,
        release: Release,
        live_service: str,
        *,
        execution_arn: str,
        lease_seconds: float,
    ) -> Claim:
        """Create the deployment record (owner: ``execution_arn``) and take the pair's lock in one write.

        The same release seen again finds its record and is a duplicate; a different release while
        the lock is held is ``busy``; a release of the service that meanwhile became live is ``live``.
        """
        record = self._new_record(pair, deployment_id, release, live_service, execution_arn, event="claimed")
        live = cond.Condition(
            "live_service",
            "live_service = :live",
            lambda item: item is not None and item.get("live_service") == live_service,
            {":live": live_service},
        )
        items: list[Any] = [
            self._put(record, cond.item_absent("new_release")),
            self._put(self._lock_item(pair, deployment_id, lease_seconds), cond.item_absent("pair_idle")),
            self._check(spec_key(pair), live),
        ]
        last_error: ClientError | None = None
        for _attempt in range(_CLAIM_ATTEMPTS):
            try:
                self.ddb.transact_write_items(TransactItems=items)
            except ClientError as err:
                if _code(err) != "TransactionCanceledException":
                    raise
                existing = self.find_deployment(pair, deployment_id)
                if existing is not None:
                    return Claim("duplicate", existing=existing)
                active = self.active_deployment_id(pair)
                if active is not None:
                    return Claim("busy", active_deployment_id=active)
                spec = self._get(spec_key(pair))
                if spec is None or spec.get("live_service") != live_service:
                    return Claim("live")
                # Nothing explains the cancellation any more: the lock was released (or a concurrent
                # transaction conflicted) between the write and these reads. Dropping the release
                # here would lose it, so try again.
                last_error = err
                continue
            return Claim("claimed")
        assert last_error is not None
        raise last_error

    def record_rejected(
        self, pair: str, deployment_id: str, release: Release, live: str, reason: str
    ) -> bool:
        """Record a release that was refused, with the reason. Idempotent."""
        now = now_iso()
        item = {
            "pk": f"PAIR#{pair}",
            "sk": f"DEPLOYMENT#{deployment_id}",
            "pair": pair,
            "deployment_id": deployment_id,
            "status": Status.REJECTED.value,
            "service": release.service,
            "live_service": live,
            "release": release.to_dict(),
            "reason": reason,
            "created_at": now,
            "updated_at": now,
            "ended_at": now,
            "history": [_entry("rejected", reason)],
        }
        try:
            self.ddb.put_item(
                TableName=self.table, Item=ser(item), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as err:
            if _condition_failed(err):
                return False
            raise
        return True

    def mark_started(self, pair: str, deployment_id: str, execution_arn: str) -> None:
        """STARTING → RUNNING once the execution exists; a no-op if the execution already moved it on."""
        self._update(
            pair,
            deployment_id,
            ["#status = :running"],
            {":running": Status.RUNNING.value},
            condition=cond.owned_by(execution_arn) & cond.status_in(Status.STARTING),
            event=("started", f"execution {execution_arn.rsplit(':', 1)[-1]} started"),
            quiet=True,
        )

    # ---- deployment records ----------------------------------------------------------------------

    def find_deployment(self, pair: str, deployment_id: str) -> Deployment | None:
        item = self._get(deployment_key(pair, deployment_id))
        return None if item is None else Deployment.from_item(item)

    def get_deployment(self, pair: str, deployment_id: str) -> Deployment:
        found = self.find_deployment(pair, deployment_id)
        if found is None:
            raise DeploymentNotFound(f"no deployment {deployment_id!r} of pair {pair!r}")
        return found

    def list_deployments(self, pair: str) -> list[Deployment]:
        """The pair's deployments, newest first."""
        items = self._query("pk = :pk AND begins_with(sk, :d)", {":pk": f"PAIR#{pair}", ":d": "DEPLOYMENT#"})
        return sorted((Deployment.from_item(i) for i in items), key=lambda d: d.created_at, reverse=True)

    # ---- the owner's steps -------------------------------------------------------------------------

    def begin(
        self,
        pair: str,
        deployment_id: str,
        *,
        owner: str,
        snapshot: Mapping[str, int],
        spec: ServicePairSpec,
    ) -> Deployment:
        """Store the rollback snapshot once: a retried call keeps the first, never a mid-ramp one.

        STARTING becomes RUNNING; a deployment an operator paused before this step stays PAUSED.
        """
        current = self.get_deployment(pair, deployment_id)
        paused = current.status is Status.PAUSED
        sets = [
            "#snap = if_not_exists(#snap, :snap)",
            "weights = if_not_exists(weights, :snap)",
            "spec = if_not_exists(spec, :spec)",
        ]
        values: dict[str, Any] = {":snap": dict(snapshot), ":spec": spec.model_dump_json()}
        if not paused:
            sets.insert(0, "#status = :running")
            values[":running"] = Status.RUNNING.value
        return self._owned(
            pair,
            deployment_id,
            owner,
            sets,
            values,
            statuses=(Status.PAUSED,) if paused else (Status.STARTING, Status.RUNNING),
            event=("snapshot", f"snapshot of current weights: {_fmt(snapshot)}"),
            names={"#snap": "snapshot"},
        )

    def arm_listener(self, pair: str, deployment_id: str, *, owner: str, token: str) -> Deployment:
        """Store the task token through which alarms, crashes, new releases and operators end a bake."""
        return self._owned(
            pair,
            deployment_id,
            owner,
            ["listener_token = :token"],
            {":token": token},
            statuses=ACTIVE,
            removes=["watch_done"],
        )

    def note(self, pair: str, deployment_id: str, *, owner: str, event: str, message: str) -> None:
        """Append a progress line to a deployment the caller owns and that is still active."""
        self._owned(pair, deployment_id, owner, [], {}, statuses=ACTIVE, event=(event, message))

    def save_progress(
        self,
        pair: str,
        deployment_id: str,
        *,
        owner: str,
        inconclusive: int | None = None,
        sync_checks: int | None = None,
        pending_change: str | bool | None = False,
        clear_command: bool = False,
        judged_command: bool = False,
        watch_done: str | bool | None = False,
        event: tuple[str, str] | None = None,
    ) -> Deployment:
        """Counters and flags of the owner's loop (``pending_change=None`` clears it, False keeps it).

        ``judged_command`` marks a pending promote order as already judged (it skips the analysis
        when it is acted on again, e.g. once a Route53 change it made is INSYNC).
        """
        sets: list[str] = []
        values: dict[str, Any] = {}
        removes: list[str] = []
        if inconclusive is not None:
            sets.append("inconclusive = :inc")
            values[":inc"] = inconclusive
        if sync_checks is not None:
            sets.append("sync_checks = :sync")
            values[":sync"] = sync_checks
        if pending_change is None:
            removes.append("pending_change")
        elif isinstance(pending_change, str):
            sets.append("pending_change = :change")
            values[":change"] = pending_change
        if watch_done is None:
            removes.append("watch_done")
        elif isinstance(watch_done, str):
            sets.append("watch_done = :watch")
            values[":watch"] = watch_done
        if clear_command:
            removes.append("#command")
        elif judged_command:
            sets.append("#command.skip_analysis = :judged")
            values[":judged"] = True
        return self._owned(
            pair,
            deployment_id,
            owner,
            sets,
            values,
            statuses=ACTIVE,
            event=event,
            removes=removes,
            names={"#command": "command"} if clear_command or judged_command else None,
        )

    def begin_shift(
        self,
        pair: str,
        deployment_id: str,
        *,
        owner: str,
        weights: Mapping[str, int],
        step_index: int,
        percent: int,
        lease_seconds: float,
    ) -> Deployment:
        """Take the shift lease: recorded before the router is touched, only while RUNNING."""
        now = now_iso()
        lease = {
            "weights": dict(weights),
            "until": _iso_in(lease_seconds),
            "step_index": step_index,
            "percent": percent,
        }
        return self._owned(
            pair,
            deployment_id,
            owner,
            ["#shift = :shift"],
            {":shift": lease},
            statuses=(Status.RUNNING,),
            extra=cond.no_rollback_intent() & cond.lease_free(now),
            names={"#shift": "shift"},
        )

    def record_shift(
        self,
        pair: str,
        deployment_id: str,
        *,
        owner: str,
        step_index: int,
        percent: int,
        weights: Mapping[str, int],
        bake_seconds: int,
        change_id: str | None,
        message: str,
    ) -> Deployment:
        """Record the weights a shift wrote and drop its lease.

        Allowed during a rollback too (only for the lease's owner): a closed record must tell the
        truth about the weights, so the write that landed is recorded even when it is now unwanted.
        """
        now = now_iso()
        sets = [
            "step_index = :i",
            "#pct = :p",
            "weights = :w",
            "shifted_at = :now_shift",
            "bake_until = :until",
            "inconclusive = :zero",
            "sync_checks = :zero",
        ]
        values: dict[str, Any] = {
            ":i": step_index,
            ":p": percent,
            ":w": dict(weights),
            ":now_shift": now,
            ":until": _iso_in(bake_seconds),
            ":zero": 0,
        }
        removes = ["#shift"]
        if change_id is not None:
            sets.append("pending_change = :change")
            values[":change"] = change_id
        else:
            removes.append("pending_change")
        return self._owned(
            pair,
            deployment_id,
            owner,
            sets,
            values,
            statuses=(Status.RUNNING, Status.PAUSED, Status.ROLLING_BACK),
            event=("shifted", message, {"percent": percent}),
            extra=cond.shift_unrecorded(step_index),
            removes=removes,
            names={"#pct": "percent", "#shift": "shift"},
        )

    def drop_shift(self, pair: str, deployment_id: str, *, owner: str) -> None:
        """Release the lease of a shift that failed before the router accepted it."""
        self._owned(
            pair,
            deployment_id,
            owner,
            [],
            {},
            statuses=OPEN,
            removes=["#shift"],
            names={"#shift": "shift"},
            quiet=True,
        )

    def mark_gate(
        self,
        pair: str,
        deployment_id: str,
        *,
        owner: str,
        key: str,
        event: tuple[str, str] | None = None,
        clear_approval: bool = False,
    ) -> Deployment:
        """Record a lifecycle gate (hooks of a stage, test traffic, an approval...) as passed.

        ``clear_approval`` drops the answered approval in the same write, so a retry can never find
        the gate neither passed nor waiting.
        """
        return self._owned(
            pair,
            deployment_id,
            owner,
            [],
            {":gate": {key}},
            statuses=ACTIVE,
            event=event,
            adds=["gates_done :gate"],
            # The test-traffic gate passed: its change landed, so its lease is over.
            removes=[
                *(["approval"] if clear_approval else []),
                *(["test_lease"] if key == "test_traffic" else []),
            ],
        )

    def request_approval(
        self, pair: str, deployment_id: str, *, owner: str, approval: Mapping[str, Any]
    ) -> Deployment:
        """Record that the deployment waits for a human at ``approval["key"]`` (kept if already asked)."""
        return self._owned(
            pair,
            deployment_id,
            owner,
            # A duplicate or late call never resets the request's clock or an operator's answer.
            ["approval = if_not_exists(approval, :approval)"],
            {":approval": dict(approval)},
            statuses=ACTIVE,
            event=("awaiting_approval", f"waiting for approval at {approval['key']}"),
        )

    def decide_approval(
        self, pair: str, deployment_id: str, *, decision: str, by: str, reason: str
    ) -> Deployment:
        """An operator's answer to the pending approval (refused when none is pending)."""
        pending = cond.Condition(
            "approval_pending",
            "attribute_exists(approval) AND attribute_not_exists(approval.decision)",
            lambda item: bool((item or {}).get("approval")) and "decision" not in (item or {})["approval"],
        )
        return self._update_checked(
            pair,
            deployment_id,
            ["approval.decision = :decision", "approval.#by = :by", "approval.reason = :reason"],
            {":decision": decision, ":by": by, ":reason": reason},
            condition=cond.deployment_exists() & cond.status_in(*ACTIVE) & pending,
            event=(decision, f"{decision} by {by}: {reason}"),
            names={"#by": "by"},
        )

    def save_test_snapshot(
        self,
        pair: str,
        deployment_id: str,
        *,
        owner: str,
        snapshot: Mapping[str, Any],
        lease_seconds: float,
    ) -> Deployment:
        """What the test listener, rule or record was before it pointed at green (kept once), and a
        lease on changing it: a rollback waits for the lease (or its expiry) before it restores the
        test target, so the change cannot land after the restore."""
        return self._owned(
            pair,
            deployment_id,
            owner,
            ["test_snapshot = if_not_exists(test_snapshot, :snap)", "test_lease = :until"],
            {":snap": dict(snapshot), ":until": _iso_in(lease_seconds)},
            statuses=ACTIVE,
            extra=cond.no_rollback_intent(),
        )

    def drop_test_lease(self, pair: str, deployment_id: str, *, owner: str) -> None:
        """End the test-traffic lease of a change that was undone (or never made)."""
        self._owned(pair, deployment_id, owner, [], {}, statuses=OPEN, removes=["test_lease"], quiet=True)

    def record_test_restored(self, pair: str, deployment_id: str, message: str) -> None:
        """The test target is back as it was (any status: it is restored after promotion or rollback)."""
        self._update(
            pair,
            deployment_id,
            ["test_snapshot.restored = :yes"],
            {":yes": True},
            condition=cond.deployment_exists(),
            event=("test_traffic_restored", message),
            quiet=True,
        )

    def record_refused(self, pair: str, deployment_id: str, execution_arn: str, reason: str) -> None:
        """Note, on the deployment, an execution that was refused because it is not the owner."""
        self._update(
            pair,
            deployment_id,
            [],
            {},
            condition=cond.deployment_exists(),
            event=("refused", f"execution {execution_arn.rsplit(':', 1)[-1]} refused: {reason}"),
            quiet=True,
        )

    def append_history(self, pair: str, deployment_id: str, event: str, message: str) -> None:
        """Append a line to a deployment's history whatever its status (e.g. rollback hooks' results)."""
        self._update(
            pair,
            deployment_id,
            [],
            {},
            condition=cond.deployment_exists(),
            event=(event, message),
            quiet=True,
        )

    def note_failure(self, pair: str, deployment_id: str, event: str, message: str) -> None:
        """Append a line to an open deployment's history on behalf of no execution (the sweeper)."""
        self._update(
            pair, deployment_id, [], {}, condition=cond.is_open(), event=(event, message), quiet=True
        )

    # ---- interventions (interrupts, operators, sweeper) -------------------------------------------

    def request_rollback(
        self, pair: str, deployment_id: str, intent: RollbackIntent, *, owner: str | None = None
    ) -> Deployment:
        """Record the intent to fail back (status ROLLING_BACK) before anything is restored.

        The first intent wins (its status and reason are what the record closes with); a later
        request only adds a successor release if the first had none. ``owner`` fences a request
        made by an execution; interrupts on behalf of the deployment pass None.
        """
        extra = cond.owned_by(owner) if owner is not None else None
        try:
            return self._update_checked(
                pair,
                deployment_id,
                ["#status = :rb", "#rollback = :intent"],
                {":rb": Status.ROLLING_BACK.value, ":intent": intent.to_item()},
                condition=_combine(
                    cond.deployment_exists(),
                    extra,
                    cond.status_in(Status.STARTING, Status.RUNNING, Status.PAUSED),
                ),
                event=("rolling_back", f"rollback requested by {intent.by}: {intent.reason}"),
                names={"#rollback": "rollback"},
            )
        except RollbackRequested:
            current = self.get_deployment(pair, deployment_id)
            if (
                intent.successor is not None
                and current.rollback is not None
                and current.rollback.successor is None
            ):
                self._update(
                    pair,
                    deployment_id,
                    ["#rollback.successor = :succ"],
                    {":succ": intent.successor.to_dict()},
                    condition=cond.status_in(Status.ROLLING_BACK),
                    event=("superseded", f"release {intent.successor.deployment} waits for the rollback"),
                    names={"#rollback": "rollback"},
                    quiet=True,
                )
                return self.get_deployment(pair, deployment_id)
            return current

    def pause(self, pair: str, deployment_id: str, *, by: str, reason: str) -> Deployment:
        return self._update_checked(
            pair,
            deployment_id,
            ["#status = :paused", "paused = :who"],
            {":paused": Status.PAUSED.value, ":who": {"by": by, "reason": reason, "at": now_iso()}},
            condition=cond.deployment_exists() & cond.status_in(Status.RUNNING),
            event=("paused", f"paused by {by}: {reason}"),
        )

    def resume(self, pair: str, deployment_id: str, *, by: str, reason: str) -> Deployment:
        return self._update_checked(
            pair,
            deployment_id,
            ["#status = :running"],
            {":running": Status.RUNNING.value},
            condition=cond.deployment_exists() & cond.status_in(Status.PAUSED),
            event=("resumed", f"resumed by {by}: {reason}"),
            removes=["paused"],
        )

    def set_command(self, pair: str, deployment_id: str, command: Command) -> Deployment:
        return self._update_checked(
            pair,
            deployment_id,
            ["#command = :cmd"],
            {":cmd": command.to_item()},
            condition=cond.deployment_exists() & cond.status_in(*ACTIVE),
            event=(
                "promote_requested",
                f"promote{' --full' if command.full else ''}"
                f"{' --skip-analysis' if command.skip_analysis else ''} requested by {command.by}: "
                f"{command.reason}",
            ),
            names={"#command": "command"},
        )

    def count_stopped_task(
        self, pair: str, deployment_id: str, task_arn: str, message: str
    ) -> Deployment | None:
        """Count one unexpected stop of a task of the release under test; None if already counted."""
        item = self._update(
            pair,
            deployment_id,
            [],
            {":task": {task_arn}},
            condition=cond.is_open() & cond.task_not_counted(task_arn),
            event=("task_stopped", message),
            adds=["stopped_tasks :task"],
            quiet=True,
        )
        return None if item is None else Deployment.from_item(item)

    # ---- closing --------------------------------------------------------------------------------

    def record_restored(
        self, pair: str, deployment_id: str, weights: Mapping[str, int], message: str
    ) -> None:
        """Record the weights a rollback restored (still ROLLING_BACK; closing comes next)."""
        self._update(
            pair,
            deployment_id,
            ["weights = :w"],
            {":w": dict(weights)},
            condition=cond.status_in(Status.ROLLING_BACK),
            event=("restored", message),
            quiet=True,
        )

    def finish(
        self,
        pair: str,
        deployment_id: str,
        status: Status,
        reason: str,
        *,
        weights: Mapping[str, int] | None = None,
        promote: tuple[str, str | None] | None = None,
        successor: Handover | None = None,
        owner: str | None = None,
        from_statuses: Sequence[Status] = _OPEN_STATUSES,
        minimal: bool = False,
    ) -> bool:
        """Close a deployment (terminal status + reason) and release or hand over the pair's lock.

        ``promote=(new_live, idle_baseline)`` also swaps the pair's roles in the same transaction.
        ``successor`` hands the lock to the release that superseded this one and creates its
        record (STARTING, owned by its execution-to-be), in the same transaction.
        Returns False if the record was already terminal (another path closed it first). A record
        too large to grow (DynamoDB's 400 KB item limit) is still closed, without a history line.
        """
        if not status.terminal:
            raise ValueError(f"{status} is not a terminal status")
        now = now_iso()
        sets = ["#status = :st", "reason = :r", "ended_at = :now", "updated_at = :now"]
        values: dict[str, Any] = {
            ":st": status.value,
            ":r": reason if not minimal else reason[:1000],
            ":now": now,
        }
        if not minimal:
            sets.append("history = list_append(history, :h)")
            values[":h"] = [_entry(status.value.lower(), reason)]
        if weights is not None:
            sets.append("weights = :w")
            values[":w"] = dict(weights)
        condition = _combine(
            cond.deployment_exists(),
            cond.owned_by(owner) if owner is not None else None,
            cond.status_in(*from_statuses),
        )
        record_update = {
            "Update": {
                "TableName": self.table,
                "Key": deployment_key(pair, deployment_id),
                "UpdateExpression": "SET " + ", ".join(sets) + " REMOVE #shift, listener_token, #command",
                "ConditionExpression": condition.expression,
                "ExpressionAttributeNames": {"#shift": "shift", "#command": "command", **condition.names},
                "ExpressionAttributeValues": ser({**values, **condition.values}),
            }
        }
        items: list[dict[str, Any]] = [record_update]
        release_lock = self._delete(lock_key(pair), cond.lock_free_or_held_by(deployment_id))
        if successor is not None:
            record = self._new_record(
                pair,
                successor.deployment_id,
                successor.release,
                successor.live_service,
                successor.execution_arn,
                event="claimed",
            )
            items.append(self._put(record, cond.item_absent("new_release")))
            lock = self._lock_item(pair, successor.deployment_id, successor.lease_seconds)
            items.append(self._put(lock, cond.lock_free_or_held_by(deployment_id)))
        else:
            items.append(release_lock)
        if promote is not None:
            new_live, baseline = promote
            sets_pair = "live_service = :live, promoted_at = :now"
            pair_values: dict[str, Any] = {":live": new_live, ":now": now}
            if baseline is not None:
                sets_pair += ", idle_baseline = :b"
                pair_values[":b"] = baseline
            else:
                sets_pair += " REMOVE idle_baseline"
            items.append(
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": spec_key(pair),
                        "UpdateExpression": "SET " + sets_pair,
                        "ConditionExpression": "attribute_exists(pk)",
                        "ExpressionAttributeValues": ser(pair_values),
                    }
                }
            )
        try:
            self.ddb.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
        except ClientError as err:
            too_large = _code(err) == "ValidationException" and "size" in str(err).lower()
            if too_large and not minimal:
                return self.finish(
                    pair,
                    deployment_id,
                    status,
                    reason,
                    weights=weights,
                    promote=promote,
                    successor=successor,
                    owner=owner,
                    from_statuses=from_statuses,
                    minimal=True,
                )
            if _code(err) != "TransactionCanceledException":
                raise
            current = self.find_deployment(pair, deployment_id)
            if current is None:
                raise DeploymentNotFound(f"no deployment {deployment_id!r} of pair {pair!r}") from err
            if current.status.terminal:
                return False
            failing = condition.failing(self._get(deployment_key(pair, deployment_id)))
            if failing is not None:
                raise self._refusal(failing, pair, deployment_id, current) from err
            if successor is not None:
                # The successor's record exists already (it was seen and recorded before): close
                # without the handover; the filter or the sweeper deals with the successor.
                return self.finish(
                    pair,
                    deployment_id,
                    status,
                    reason,
                    weights=weights,
                    promote=promote,
                    owner=owner,
                    from_statuses=from_statuses,
                    minimal=minimal,
                )
            raise
        self._trim_history(pair, deployment_id)
        return True

    def release_stale_lock(
        self, pair: str, deployment_id: str, reason: str = "lock released by an operator"
    ) -> None:
        """Close the lock's deployment as ABORTED whatever the record holds (operator escape hatch)."""
        record = self._get(deployment_key(pair, deployment_id))
        if record is None or Status(record.get("status", Status.FAILED.value)).terminal:
            self.release_lock(pair, deployment_id)
            return
        self.finish(pair, deployment_id, Status.ABORTED, reason)

    # ---- helpers ----------------------------------------------------------------------------------

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        resp = self.ddb.get_item(TableName=self.table, Key=key, ConsistentRead=True)
        return des(resp["Item"]) if "Item" in resp else None

    def _query(self, key_condition: str, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": key_condition,
            "ExpressionAttributeValues": ser(values),
        }
        while True:
            page = self.ddb.query(**kwargs)
            out.extend(des(i) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return out
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _conditioned(self, condition: cond.Condition | cond.Conditions, **target: Any) -> dict[str, Any]:
        """One transaction item's table, ``target`` (its Item or Key) and named condition."""
        conditions = cond.as_conditions(condition)
        request: dict[str, Any] = {
            "TableName": self.table,
            **target,
            "ConditionExpression": conditions.expression,
        }
        if conditions.values:
            request["ExpressionAttributeValues"] = ser(conditions.values)
        if conditions.names:
            request["ExpressionAttributeNames"] = conditions.names
        return request

    def _put(self, item: Mapping[str, Any], condition: cond.Condition | cond.Conditions) -> dict[str, Any]:
        return {"Put": self._conditioned(condition, Item=ser(item))}

    def _delete(self, key: dict[str, Any], condition: cond.Condition | cond.Conditions) -> dict[str, Any]:
        return {"Delete": self._conditioned(condition, Key=key)}

    def _check(self, key: dict[str, Any], condition: cond.Condition | cond.Conditions) -> dict[str, Any]:
        return {"ConditionCheck": self._conditioned(condition, Key=key)}

    def _owned(
        self,
        pair: str,
        deployment_id: str,
        owner: str,
        sets: list[str],
        values: dict[str, Any],
        *,
        statuses: Iterable[Status | str],
        event: tuple[str, str] | tuple[str, str, Mapping[str, Any]] | None = None,
        extra: cond.Condition | cond.Conditions | None = None,
        removes: Sequence[str] = (),
        adds: Sequence[str] = (),
        names: Mapping[str, str] | None = None,
        quiet: bool = False,
    ) -> Deployment:
        """An update by the deployment's owner, in one of ``statuses`` (raises naming what failed)."""
        condition = _combine(cond.deployment_exists(), cond.owned_by(owner), cond.status_in(*statuses), extra)
        item = self._update(
            pair,
            deployment_id,
            sets,
            values,
            condition=condition,
            event=event,
            removes=removes,
            adds=adds,
            names=names,
            quiet=quiet,
        )
        return Deployment.from_item(item) if item is not None else self.get_deployment(pair, deployment_id)

    def _update_checked(
        self,
        pair: str,
        deployment_id: str,
        sets: list[str],
        values: dict[str, Any],
        *,
        condition: cond.Condition | cond.Conditions,
        event: tuple[str, str] | tuple[str, str, Mapping[str, Any]] | None = None,
        removes: Sequence[str] = (),
        names: Mapping[str, str] | None = None,
    ) -> Deployment:
        item = self._update(
            pair, deployment_id, sets, values, condition=condition, event=event, removes=removes, names=names
        )
        assert item is not None
        return Deployment.from_item(item)

    def _update(
        self,
        pair: str,
        deployment_id: str,
        sets: list[str],
        values: dict[str, Any],
        *,
        condition: cond.Condition | cond.Conditions,
        event: tuple[str, str] | tuple[str, str, Mapping[str, Any]] | None = None,
        removes: Sequence[str] = (),
        adds: Sequence[str] = (),
        names: Mapping[str, str] | None = None,
        quiet: bool = False,
    ) -> dict[str, Any] | None:
        conditions = cond.as_conditions(condition)
        values = {**values, ":now_upd": now_iso()}
        expression_sets = [*sets, "updated_at = :now_upd"]
        if event is not None:
            extra = dict(event[2]) if len(event) == 3 else {}
            values[":h"] = [_entry(event[0], event[1], **extra)]
            expression_sets.append("history = list_append(if_not_exists(history, :empty), :h)")
            values[":empty"] = []
        expression = "SET " + ", ".join(expression_sets)
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        if adds:
            expression += " ADD " + ", ".join(adds)
        all_names = {**conditions.names, **(names or {})}
        if "#status" in expression:
            all_names["#status"] = "status"
        request: dict[str, Any] = {
            "TableName": self.table,
            "Key": deployment_key(pair, deployment_id),
            "UpdateExpression": expression,
            "ConditionExpression": conditions.expression,
            "ExpressionAttributeValues": ser({**values, **conditions.values}),
            "ReturnValues": "ALL_NEW",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if all_names:
            request["ExpressionAttributeNames"] = all_names
        try:
            resp = self.ddb.update_item(**request)
        except ClientError as err:
            if not _condition_failed(err):
                raise
            if quiet:
                return None
            old: Any = err.response.get("Item")
            current = des(old) if old else self._get(deployment_key(pair, deployment_id))
            failing = conditions.failing(current)
            record = Deployment.from_item(current) if current else None
            raise self._refusal(failing, pair, deployment_id, record) from err
        item = des(resp["Attributes"])
        if len(item.get("history", [])) > HISTORY_LIMIT:
            self._trim_history(pair, deployment_id, len(item["history"]))
        return item

    def _refusal(
        self, failing: cond.Condition | None, pair: str, deployment_id: str, record: Deployment | None
    ) -> Exception:
        """The exception that names why a conditional write of a deployment was refused."""
        what = f"deployment {deployment_id!r} of pair {pair!r}"
        if record is None or (failing is not None and failing.name == "exists"):
            return DeploymentNotFound(f"no {what}")
        name = failing.name if failing is not None else "changed concurrently"
        if name == "owner":
            return NotOwner(f"{what} is owned by execution {record.execution_arn}")
        if record.status is Status.ROLLING_BACK or name == "no_rollback_intent":
            reason = record.rollback.reason if record.rollback else "rollback requested"
            return RollbackRequested(f"{what} is rolling back: {reason}")
        if record.status.terminal:
            return DeploymentClosed(f"{what} is {record.status.value}: {record.reason or ''}".rstrip(": "))
        if name == "lease_free":
            return ShiftInFlight(f"a weight change of {what} is still in flight")
        return WriteRefused(f"{what} is {record.status.value}; the write needed {name}", name)

    def _trim_history(self, pair: str, deployment_id: str, length: int | None = None) -> None:
        """Drop the oldest history entries beyond :data:`HISTORY_LIMIT` (only if nobody appended since)."""
        if length is None:
            item = self._get(deployment_key(pair, deployment_id))
            length = len((item or {}).get("history", []))
        excess = length - HISTORY_LIMIT
        if excess <= 0:
            return
        try:
            self.ddb.update_item(
                TableName=self.table,
                Key=deployment_key(pair, deployment_id),
                UpdateExpression="REMOVE " + ", ".join(f"history[{i}]" for i in range(excess)),
                ConditionExpression="size(history) = :n",
                ExpressionAttributeValues=ser({":n": length}),
            )
        except ClientError as err:
            if not _condition_failed(err):
                raise


def _combine(*parts: cond.Condition | cond.Conditions | None) -> cond.Conditions:
    present = [p for p in parts if p is not None]
    combined = cond.as_conditions(present[0])
    for part in present[1:]:
        combined = combined & part
    return combined


def _free_or_mine(pair: str) -> cond.Condition:
    return cond.Condition(
        "service_free",
        "attribute_not_exists(pk) OR pair = :pairname",
        lambda item: item is None or item.get("pair") == pair,
        {":pairname": pair},
    )


def _alarm_item(alarm: str, pair: str) -> dict[str, Any]:
    return {"pk": f"ALARM#{alarm}", "sk": f"PAIR#{pair}", "pair": pair, "alarm": alarm}


def _alarms_of(spec: ServicePairSpec) -> list[str]:
    return list(dict.fromkeys([*spec.health.alarms, *(a for s in spec.services for a in s.alarms)]))


def _pair(item: Mapping[str, Any]) -> Pair:
    return Pair(
        spec=parse_spec(json.loads(item["spec"])),
        live_service=item["live_service"],
        idle_baseline=item.get("idle_baseline"),
        registered_at=item["registered_at"],
        cluster_arn=item.get("cluster_arn"),
        retired=plain(item["retired"]) if item.get("retired") else None,
    )


def _lock(item: Mapping[str, Any]) -> Lock:
    return Lock(
        pair=str(item.get("pair") or str(item["pk"]).removeprefix("PAIR#")),
        deployment_id=str(item["deployment_id"]),
        acquired_at=str(item.get("acquired_at", "")),
        lease_until=item.get("lease_until"),
    )
