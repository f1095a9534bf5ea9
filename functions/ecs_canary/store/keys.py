"""The table's layout: item keys and (de)serialisation, in one place.

==============================  ==========================  =========================================
pk                              sk                          item
==============================  ==========================  =========================================
``PAIR#<pair>``                 ``SPEC``                    spec JSON, live service, idle baseline
``PAIR#<pair>``                 ``LOCK``                    the active deployment of the pair (lease)
``PAIR#<pair>``                 ``DEPLOYMENT#<id>``         one deployment record
``SERVICE#<cluster>#<service>`` ``PAIR``                    which pair an ECS service belongs to
``ALARM#<alarm name>``          ``PAIR#<pair>``             a pair whose health gate names the alarm
==============================  ==========================  =========================================

Lock items also carry ``lock_index`` so the sparse ``Locks`` index lists every held lock (the
sweeper's work list) without scanning deployment records.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from ecs_canary.store.models import cluster_name

__all__ = [
    "LOCKS_INDEX",
    "LOCK_INDEX_VALUE",
    "alarm_key",
    "deployment_key",
    "des",
    "lock_key",
    "pair_key",
    "ser",
    "service_key",
    "spec_key",
]

LOCKS_INDEX = "Locks"
LOCK_INDEX_VALUE = "LOCK"

_SER = TypeSerializer()
_DES = TypeDeserializer()


def ser(value: Mapping[str, Any]) -> dict[str, Any]:
    """A mapping as DynamoDB attribute values; None values are left out (DynamoDB has no null keys)."""
    return {k: _SER.serialize(v) for k, v in value.items() if v is not None}


def des(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _DES.deserialize(v) for k, v in item.items()}


def pair_key(pair: str, sk: str) -> dict[str, Any]:
    return ser({"pk": f"PAIR#{pair}", "sk": sk})


def spec_key(pair: str) -> dict[str, Any]:
    return pair_key(pair, "SPEC")


def lock_key(pair: str) -> dict[str, Any]:
    return pair_key(pair, "LOCK")


def deployment_key(pair: str, deployment_id: str) -> dict[str, Any]:
    return pair_key(pair, f"DEPLOYMENT#{deployment_id}")


def service_key(cluster: str, service: str) -> dict[str, Any]:
    return ser({"pk": f"SERVICE#{cluster_name(cluster)}#{service}", "sk": "PAIR"})


def alarm_key(alarm: str, pair: str) -> dict[str, Any]:
    return ser({"pk": f"ALARM#{alarm}", "sk": f"PAIR#{pair}"})
