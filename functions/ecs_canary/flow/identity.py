"""Names that tie a release, its deployment record and its one execution together."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from ecs_canary.routers import TrafficRouter, build_router
from ecs_canary.spec import ServicePairSpec
from ecs_canary.store import Release

__all__ = ["deployment_id_for", "execution_arn_for", "router_for", "state_machine_of"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def deployment_id_for(pair: str, release: Release) -> str:
    """Deterministic id (and Step Functions execution name) of a release of a pair.

    The same ECS deployment + task definition always maps to the same name, so a re-delivered
    event can never start a second execution: Step Functions refuses a duplicate name.
    """
    digest = hashlib.sha256(
        f"{pair}\n{release.service}\n{release.deployment}\n{release.task_definition}".encode()
    ).hexdigest()[:16]
    service = _UNSAFE.sub("-", release.service).strip("-")[: 80 - len(pair) - len(digest) - 2]
    return f"{pair}-{service}-{digest}" if service else f"{pair}-{digest}"


def execution_arn_for(state_machine_arn: str, name: str) -> str:
    """The ARN Step Functions gives execution ``name`` of a standard state machine.

    It is the deployment's fencing token: known before the execution exists, so the record can
    name its one owner when the release is claimed.
    """
    return state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"


def state_machine_of(execution_arn: str) -> str:
    """The state machine an execution ARN belongs to."""
    head, _, _name = execution_arn.rpartition(":")
    return head.replace(":execution:", ":stateMachine:", 1)


def router_for(spec: ServicePairSpec) -> TrafficRouter:
    return build_router(
        spec.router, [(s.name, s.target_group_arn, s.record_set_identifier) for s in spec.services]
    )


def weights_text(weights: Mapping[str, int]) -> str:
    """``web-blue=90, web-green=10``: weights as messages and reasons show them."""
    return ", ".join(f"{k}={v}" for k, v in sorted(weights.items()))


def execution_name(execution_arn: str) -> str:
    """The execution's name, the last part of its ARN."""
    return execution_arn.rsplit(":", 1)[-1]
