"""Traffic split through two Route53 weighted records that share a name and type."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, WaiterError

from ecs_canary.errors import RouterConfigError, ShiftNotVerified
from ecs_canary.routers.base import ShiftReceipt, TrafficRouter

if TYPE_CHECKING:
    from mypy_boto3_route53 import Route53Client

__all__ = ["ALIAS_CACHE_SECONDS", "Route53Router"]

#: Alias records carry no TTL; resolvers cache their answers for 60 seconds.
ALIAS_CACHE_SECONDS = 60

# Polled every 2 s for up to 300 s (inside the function's 360 s timeout): changes usually reach
# INSYNC within a minute, and every second spent here delays the start of the TTL wait.
_WAITER_DELAY_SECONDS = 2
_WAITER_MAX_ATTEMPTS = 150
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def normalise_record_name(name: str) -> str:
    """Canonical form for comparing names: Route53 answers lower-case, dot-terminated, octal-escaped."""
    unescaped = _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), name)
    return unescaped.lower().rstrip(".") + "."


class Route53Router(TrafficRouter):
    """Shifts traffic by rewriting the ``Weight`` of two weighted records in one change batch."""

    max_weight = 255

    def __init__(
        self,
        client: Route53Client,
        *,
        hosted_zone_id: str,
        record_name: str,
        record_type: str,
        set_identifiers: Mapping[str, str],
    ) -> None:
        names = tuple(set_identifiers)
        if len(names) != 2:
            raise ValueError(f"set_identifiers must map exactly two services, got {sorted(names)}")
        super().__init__((names[0], names[1]))
        if set_identifiers[names[0]] == set_identifiers[names[1]]:
            raise ValueError(f"both services use SetIdentifier {set_identifiers[names[0]]!r}")
        self.client = client
        self.hosted_zone_id = hosted_zone_id
        self.record_name = record_name
        self.record_type = record_type
        self.set_identifiers: dict[str, str] = dict(set_identifiers)

    def describe(self) -> str:
        ids = ", ".join(f"{svc}={self.set_identifiers[svc]}" for svc in self.services)
        return (
            f"Route53 {self.record_type} record {normalise_record_name(self.record_name)} "
            f"in hosted zone {self.hosted_zone_id} (set identifiers {ids})"
        )

    def _listing(self) -> Iterator[dict[str, Any]]:
        """Record sets from (record_name, record_type) onwards in Route53's order, page by page."""
        request: dict[str, Any] = {
            "HostedZoneId": self.hosted_zone_id,
            "StartRecordName": normalise_record_name(self.record_name),
            "StartRecordType": self.record_type,
        }
        try:
            while True:
                page = self.client.list_resource_record_sets(**request)
                for record in page["ResourceRecordSets"]:
                    yield dict(record)
                if not page.get("IsTruncated"):
                    return
                position = {
                    "StartRecordName": page["NextRecordName"],
                    "StartRecordType": page["NextRecordType"],
                }
                if page.get("NextRecordIdentifier"):
                    position["StartRecordIdentifier"] = page["NextRecordIdentifier"]
                if position == {k: v for k, v in request.items() if k.startswith("Start")}:
                    return  # an API that does not advance would otherwise page forever
                request = {"HostedZoneId": self.hosted_zone_id, **position}
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchHostedZone":
                raise RouterConfigError(f"hosted zone {self.hosted_zone_id} does not exist") from exc
            raise

    def _records(self) -> dict[str, dict[str, Any]]:
        """The two weighted record sets, keyed by service name, exactly as Route53 returns them."""
        wanted = normalise_record_name(self.record_name)
        service_of = {sid: svc for svc, sid in self.set_identifiers.items()}
        found: dict[str, dict[str, Any]] = {}
        for record in self._listing():
            # The listing starts at our name, so the first other name means every
            # record set of ours has been seen.
            if normalise_record_name(record["Name"]) != wanted:
                break
            svc = service_of.get(record.get("SetIdentifier", ""))
            if record["Type"] == self.record_type and svc is not None:
                found[svc] = record
                if len(found) == len(self.services):
                    break
        for svc in self.services:
            found_record = found.get(svc)
            label = (
                f"{self.record_type} record {normalise_record_name(self.record_name)} with "
                f"SetIdentifier {self.set_identifiers[svc]!r} (service {svc}) "
                f"in hosted zone {self.hosted_zone_id}"
            )
            if found_record is None:
                raise RouterConfigError(f"{label} does not exist")
            if "Weight" not in found_record:
                raise RouterConfigError(f"{label} is not a weighted record (it has no Weight)")
        return found

    def read_weights(self) -> dict[str, int]:
        records = self._records()
        return {svc: int(records[svc]["Weight"]) for svc in self.services}

    def set_weights(
        self, weights: Mapping[str, int], *, expected: Mapping[str, int] | None = None
    ) -> ShiftReceipt:
        """UPSERT both records in one batch, changing only ``Weight``: aliases, TTLs, health checks stay."""
        clean = self.validate_weights(weights)
        records = self._records()
        self.check_expected({svc: int(records[svc]["Weight"]) for svc in self.services}, expected)
        changes: list[Any] = []
        for svc in self.services:
            record = copy.deepcopy(records[svc])
            record["Weight"] = clean[svc]
            changes.append({"Action": "UPSERT", "ResourceRecordSet": record})
        split = ", ".join(f"{svc}={clean[svc]}" for svc in self.services)
        response = self.client.change_resource_record_sets(
            HostedZoneId=self.hosted_zone_id,
            ChangeBatch={"Comment": f"ecs-canary: {split}", "Changes": changes},
        )
        return ShiftReceipt(change_id=response["ChangeInfo"]["Id"])

    def verify(self, weights: Mapping[str, int], receipt: ShiftReceipt) -> None:
        """Wait for the change to reach every Route53 name server, then read the weights back."""
        if receipt.change_id is not None:
            waiter = self.client.get_waiter("resource_record_sets_changed")
            try:
                waiter.wait(
                    Id=receipt.change_id,
                    WaiterConfig={"Delay": _WAITER_DELAY_SECONDS, "MaxAttempts": _WAITER_MAX_ATTEMPTS},
                )
            except WaiterError as exc:
                raise ShiftNotVerified(
                    f"Route53 change {receipt.change_id} for {self.describe()} did not reach INSYNC: {exc}"
                ) from exc
        actual = self.read_weights()
        expected = {svc: weights.get(svc) for svc in self.services}
        if actual != expected:
            raise ShiftNotVerified(f"{self.describe()} has weights {actual} after writing {expected}")

    def propagated(self, receipt: ShiftReceipt) -> bool:
        """One GetChange: True once the change is INSYNC on every Route53 name server."""
        if receipt.change_id is None:
            return True
        status = self.client.get_change(Id=receipt.change_id)["ChangeInfo"]["Status"]
        return status == "INSYNC"

    def propagation_seconds(self) -> int:
        """The longest TTL of the two records; alias records count as the 60 s resolvers cache them."""
        records = self._records()
        return max(
            ALIAS_CACHE_SECONDS if "AliasTarget" in record else int(record.get("TTL", 0))
            for record in records.values()
        )
