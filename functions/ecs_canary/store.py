"""DynamoDB state: registered pairs, the one-deployment-per-pair lock, deployment records.

One table, keyed ``pk``/``sk``:

==============================  ==========================  =========================================
pk                              sk                          item
==============================  ==========================  =========================================
``PAIR#<pair>``                 ``SPEC``                    spec JSON, live service, idle baseline
``PAIR#<pair>``                 ``LOCK``                    the active deployment of the pair
``PAIR#<pair>``                 ``DEPLOYMENT#<id>``         one deployment record (status, reason...)
``SERVICE#<cluster>#<service>`` ``PAIR``                    which pair an ECS service belongs to
==============================  ==========================  =========================================

Every state change is a conditional write, so duplicate and out-of-order events, retried Lambda
invocations and concurrent handlers cannot start a deployment twice or resurrect a finished one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from ecs_canary import aws
from ecs_canary.errors import DeploymentNotFound, UnknownServicePair
from ecs_canary.spec import ServicePairSpec, parse_spec

_SER = TypeSerializer()
_DES = TypeDeserializer()


class Status(StrEnum):
    """Lifecycle of a deployment record; the last four are terminal."""

    STARTING = "STARTING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    ABORTED = "ABORTED"
    TIMED_OUT = "TIMED_OUT"
    REJECTED = "REJECTED"

    @property
    def terminal(self) -> bool:
        return self not in (Status.STARTING, Status.RUNNING)


TERMINAL = tuple(s.value for s in Status if s.terminal)


def now_iso() -> str:
    """UTC timestamp with milliseconds; sorts lexically."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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

    @property
    def idle_service(self) -> str:
        return self.spec.other(self.live_service).name


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
    ended_at: str | None = None
    spec: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Deployment:
        def ints(value: Any) -> dict[str, int] | None:
            return None if value is None else {k: int(v) for k, v in value.items()}

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
            snapshot=ints(item.get("snapshot")),
            weights=ints(item.get("weights")),
            step_index=None if item.get("step_index") is None else int(item["step_index"]),
            percent=None if item.get("percent") is None else int(item["percent"]),
            ended_at=item.get("ended_at"),
            spec=json.loads(item["spec"]) if item.get("spec") else None,
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
            "history": self.history,
        }


ClaimOutcome = Literal["claimed", "duplicate", "busy", "live"]


@dataclass(frozen=True)
class Claim:
    """Result of trying to take a pair's lock for a release."""

    outcome: ClaimOutcome
    existing: Deployment | None = None
    active_deployment_id: str | None = None


def _ser(value: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _SER.serialize(v) for k, v in value.items() if v is not None}


def _des(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _DES.deserialize(v) for k, v in item.items()}


def _pair_key(pair: str, sk: str) -> dict[str, Any]:
    return _ser({"pk": f"PAIR#{pair}", "sk": sk})


def _service_key(cluster: str, service: str) -> dict[str, Any]:
    return _ser({"pk": f"SERVICE#{cluster_name(cluster)}#{service}", "sk": "PAIR"})


_CLAIM_ATTEMPTS = 3


def _condition_failed(err: ClientError) -> bool:
    return err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class Store:
    """Typed access to the table; the table name comes from ``TABLE_NAME`` unless given."""

    def __init__(self, table_name: str | None = None, client: Any = None) -> None:
        self.table = table_name or os.environ["TABLE_NAME"]
        self.ddb = client or aws.client("dynamodb")

    # ---- pairs -----------------------------------------------------------------------------------

    def put_pair(self, spec: ServicePairSpec, *, live_service: str, idle_baseline: str | None) -> Pair:
        """Register or re-register a pair. Refused while one of its deployments is active."""
        now = now_iso()
        spec_item = {
            "pk": f"PAIR#{spec.name}",
            "sk": "SPEC",
            "pair": spec.name,
            "spec": spec.model_dump_json(),
            "live_service": live_service,
            "idle_baseline": idle_baseline,
            "cluster": cluster_name(spec.cluster),
            "registered_at": now,
        }
        items: list[dict[str, Any]] = [
            {"Put": {"TableName": self.table, "Item": _ser(spec_item)}},
            {
                "ConditionCheck": {
                    "TableName": self.table,
                    "Key": _pair_key(spec.name, "LOCK"),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
        for svc in spec.services:
            index_item = {
                "pk": f"SERVICE#{cluster_name(spec.cluster)}#{svc.name}",
                "sk": "PAIR",
                "pair": spec.name,
            }
            items.append(
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": _ser(index_item),
                        "ConditionExpression": "attribute_not_exists(pk) OR pair = :p",
                        "ExpressionAttributeValues": _ser({":p": spec.name}),
                    }
                }
            )
        try:
            self.ddb.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = [r.get("Code") for r in err.response.get("CancellationReasons", [])]
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                raise ValueError(
                    f"pair {spec.name!r} has an active deployment; wait for it to end before re-registering"
                ) from err
            raise ValueError(
                f"a service of pair {spec.name!r} already belongs to another registered pair"
            ) from err
        return Pair(spec, live_service, idle_baseline, now)

    def get_pair(self, name: str) -> Pair:
        item = self._get(_pair_key(name, "SPEC"))
        if item is None:
            raise UnknownServicePair(f"no service pair named {name!r} is registered")
        return Pair(
            spec=parse_spec(json.loads(item["spec"])),
            live_service=item["live_service"],
            idle_baseline=item.get("idle_baseline"),
            registered_at=item["registered_at"],
        )

    def pair_for_service(self, cluster: str, service: str) -> Pair | None:
        """The pair an ECS service belongs to, or None for services nobody registered."""
        item = self._get(_service_key(cluster, service))
        return None if item is None else self.get_pair(item["pair"])

    def list_pairs(self) -> list[Pair]:
        """All registered pairs (a scan: the table holds few pairs and the CLI calls this rarely)."""
        pairs: list[Pair] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "sk = :s",
            "ExpressionAttributeValues": _ser({":s": "SPEC"}),
        }
        while True:
            page = self.ddb.scan(**kwargs)
            for raw in page.get("Items", []):
                item = _des(raw)
                pairs.append(
                    Pair(
                        parse_spec(json.loads(item["spec"])),
                        item["live_service"],
                        item.get("idle_baseline"),
                        item["registered_at"],
                    )
                )
            if "LastEvaluatedKey" not in page:
                return sorted(pairs, key=lambda p: p.spec.name)
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def active_deployment_id(self, pair: str) -> str | None:
        item = self._get(_pair_key(pair, "LOCK"))
        return None if item is None else str(item["deployment_id"])

    # ---- claiming a release --------------------------------------------------------------------

    def claim(self, pair: str, deployment_id: str, release: Release, live_service: str) -> Claim:
        """Create the deployment record and take the pair's lock in one transaction.

        The same release seen again finds its record and is a duplicate; a different release while
        the lock is held is ``busy``; a release of the service that meanwhile became live is ``live``.
        """
        now = now_iso()
        record = {
            "pk": f"PAIR#{pair}",
            "sk": f"DEPLOYMENT#{deployment_id}",
            "pair": pair,
            "deployment_id": deployment_id,
            "status": Status.STARTING.value,
            "service": release.service,
            "live_service": live_service,
            "release": release.to_dict(),
            "created_at": now,
            "updated_at": now,
            "history": [{"at": now, "event": "claimed", "message": f"release {release.deployment} seen"}],
        }
        lock = {
            "pk": f"PAIR#{pair}",
            "sk": "LOCK",
            "deployment_id": deployment_id,
            "acquired_at": now,
        }
        items: list[Any] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": _ser(record),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Put": {
                    "TableName": self.table,
                    "Item": _ser(lock),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "ConditionCheck": {
                    "TableName": self.table,
                    "Key": _pair_key(pair, "SPEC"),
                    "ConditionExpression": "live_service = :live",
                    "ExpressionAttributeValues": _ser({":live": live_service}),
                }
            },
        ]
        for _attempt in range(_CLAIM_ATTEMPTS):
            try:
                self.ddb.transact_write_items(TransactItems=items)
            except ClientError as err:
                if err.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                existing = self.find_deployment(pair, deployment_id)
                if existing is not None:
                    return Claim("duplicate", existing=existing)
                active = self.active_deployment_id(pair)
                if active is not None:
                    return Claim("busy", active_deployment_id=active)
                spec = self._get(_pair_key(pair, "SPEC"))
                if spec is None or spec.get("live_service") != live_service:
                    return Claim("live")
                # Nothing explains the cancellation any more: the lock was released (or a concurrent
                # transaction conflicted) between the write and these reads. Dropping the release
                # here would lose it, so try again.
                last_error = err
                continue
            return Claim("claimed")
        raise last_error

    def record_rejected(
        self, pair: str, deployment_id: str, release: Release, live: str, reason: str
    ) -> bool:
        """Record a release that was refused (another deployment holds the pair). Idempotent."""
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
            "history": [{"at": now, "event": "rejected", "message": reason}],
        }
        try:
            self.ddb.put_item(
                TableName=self.table, Item=_ser(item), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as err:
            if _condition_failed(err):
                return False
            raise
        return True

    # ---- deployment records ----------------------------------------------------------------------

    def find_deployment(self, pair: str, deployment_id: str) -> Deployment | None:
        item = self._get(_pair_key(pair, f"DEPLOYMENT#{deployment_id}"))
        return None if item is None else Deployment.from_item(item)

    def get_deployment(self, pair: str, deployment_id: str) -> Deployment:
        found = self.find_deployment(pair, deployment_id)
        if found is None:
            raise DeploymentNotFound(f"no deployment {deployment_id!r} of pair {pair!r}")
        return found

    def list_deployments(self, pair: str) -> list[Deployment]:
        """The pair's deployments, newest first."""
        out: list[Deployment] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :d)",
            "ExpressionAttributeValues": _ser({":pk": f"PAIR#{pair}", ":d": "DEPLOYMENT#"}),
        }
        while True:
            page = self.ddb.query(**kwargs)
            out.extend(Deployment.from_item(_des(i)) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return sorted(out, key=lambda d: d.created_at, reverse=True)
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def mark_started(self, pair: str, deployment_id: str, execution_arn: str) -> None:
        """STARTING → RUNNING once the execution exists; a no-op if the execution already moved it on."""
        self._update(
            pair,
            deployment_id,
            ["#s = :running", "execution_arn = :arn"],
            {":running": Status.RUNNING.value, ":arn": execution_arn, ":starting": Status.STARTING.value},
            condition="#s = :starting",
            event=("started", f"execution {execution_arn.rsplit(':', 1)[-1]} started"),
            quiet=True,
        )

    def begin(
        self, pair: str, deployment_id: str, snapshot: Mapping[str, int], spec: ServicePairSpec
    ) -> Deployment:
        """Store the rollback snapshot once: a retried call keeps the first, never a mid-ramp one."""
        item = self._update(
            pair,
            deployment_id,
            [
                "#s = :running",
                "#snap = if_not_exists(#snap, :snap)",
                "weights = if_not_exists(weights, :snap)",
                "spec = if_not_exists(spec, :spec)",
            ],
            {
                ":running": Status.RUNNING.value,
                ":snap": dict(snapshot),
                ":spec": spec.model_dump_json(),
                ":starting": Status.STARTING.value,
            },
            condition="#s IN (:starting, :running)",
            event=("snapshot", f"snapshot of current weights: {_fmt(snapshot)}"),
            names={"#snap": "snapshot"},
        )
        assert item is not None
        return Deployment.from_item(item)

    def note(self, pair: str, deployment_id: str, event: str, message: str) -> None:
        """Append a progress line to a running deployment's history."""
        self._update(
            pair,
            deployment_id,
            [],
            {":running": Status.RUNNING.value},
            condition="#s = :running",
            event=(event, message),
            quiet=True,
        )

    def record_step(
        self,
        pair: str,
        deployment_id: str,
        *,
        step_index: int,
        percent: int,
        weights: Mapping[str, int],
        message: str,
    ) -> None:
        self._update(
            pair,
            deployment_id,
            ["step_index = :i", "#pct = :p", "weights = :w"],
            {":i": step_index, ":p": percent, ":w": dict(weights), ":running": Status.RUNNING.value},
            condition="#s = :running",
            event=("shifted", message, percent),
            names={"#pct": "percent"},
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
    ) -> bool:
        """Close a deployment (terminal status + reason) and release the pair's lock atomically.

        ``promote=(new_live, idle_baseline)`` also swaps the pair's roles in the same transaction.
        Returns False if the record was already terminal (another path closed it first).
        """
        if not status.terminal:
            raise ValueError(f"{status} is not a terminal status")
        now = now_iso()
        sets = "#s = :st, reason = :r, ended_at = :now, updated_at = :now, history = list_append(history, :h)"
        values: dict[str, Any] = {
            ":st": status.value,
            ":r": reason,
            ":now": now,
            ":h": [{"at": now, "event": status.value.lower(), "message": reason}],
            ":starting": Status.STARTING.value,
            ":running": Status.RUNNING.value,
        }
        if weights is not None:
            sets += ", weights = :w"
            values[":w"] = dict(weights)
        items: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": _pair_key(pair, f"DEPLOYMENT#{deployment_id}"),
                    "UpdateExpression": "SET " + sets,
                    "ConditionExpression": "#s IN (:starting, :running)",
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": _ser(values),
                }
            },
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": _pair_key(pair, "LOCK"),
                    "ConditionExpression": "attribute_not_exists(pk) OR deployment_id = :d",
                    "ExpressionAttributeValues": _ser({":d": deployment_id}),
                }
            },
        ]
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
                        "Key": _pair_key(pair, "SPEC"),
                        "UpdateExpression": "SET " + sets_pair,
                        "ConditionExpression": "attribute_exists(pk)",
                        "ExpressionAttributeValues": _ser(pair_values),
                    }
                }
            )
        try:
            self.ddb.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            current = self.find_deployment(pair, deployment_id)
            if current is not None and current.status.terminal:
                return False
            raise
        return True

    def release_stale_lock(self, pair: str, deployment_id: str) -> None:
        """Drop the lock of a deployment that never got an execution (operator escape hatch)."""
        self.finish(pair, deployment_id, Status.ABORTED, "lock released by an operator")

    # ---- helpers ----------------------------------------------------------------------------------

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        resp = self.ddb.get_item(TableName=self.table, Key=key, ConsistentRead=True)
        return _des(resp["Item"]) if "Item" in resp else None

    def _update(
        self,
        pair: str,
        deployment_id: str,
        sets: list[str],
        values: dict[str, Any],
        *,
        condition: str,
        event: tuple[str, str] | tuple[str, str, int],
        quiet: bool = False,
        names: Mapping[str, str] | None = None,
    ) -> dict[str, Any] | None:
        # SNAPSHOT, PERCENT and STATUS are DynamoDB reserved words: callers alias such attributes
        # (``names``) instead of naming them in the expression.
        now = now_iso()
        entry: dict[str, Any] = {"at": now, "event": event[0], "message": event[1]}
        if len(event) == 3:
            entry["percent"] = event[2]
        expression = "SET " + ", ".join([*sets, "updated_at = :now", "history = list_append(history, :h)"])
        values = {**values, ":now": now, ":h": [entry]}
        try:
            resp = self.ddb.update_item(
                TableName=self.table,
                Key=_pair_key(pair, f"DEPLOYMENT#{deployment_id}"),
                UpdateExpression=expression,
                ConditionExpression=f"attribute_exists(pk) AND ({condition})",
                ExpressionAttributeNames={"#s": "status", **(names or {})},
                ExpressionAttributeValues=_ser(values),
                ReturnValues="ALL_NEW",
            )
        except ClientError as err:
            if quiet and _condition_failed(err):
                return None
            if _condition_failed(err):
                current = self.find_deployment(pair, deployment_id)
                if current is None:
                    raise DeploymentNotFound(f"no deployment {deployment_id!r} of pair {pair!r}") from err
                raise DeploymentNotFound(
                    f"deployment {deployment_id!r} is {current.status.value}, not running"
                ) from err
            raise
        return _des(resp["Attributes"])


def _fmt(weights: Mapping[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(weights.items()))
