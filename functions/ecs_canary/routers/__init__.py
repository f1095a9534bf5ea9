"""Traffic routers: one interface over Route53 weighted records and ALB weighted target groups."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ecs_canary import aws
from ecs_canary.errors import RouterConfigError
from ecs_canary.routers.alb import AlbRouter
from ecs_canary.routers.base import ShiftReceipt, TrafficRouter
from ecs_canary.routers.route53 import Route53Router

if TYPE_CHECKING:
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client
    from mypy_boto3_route53 import Route53Client

__all__ = ["AlbRouter", "Route53Router", "ShiftReceipt", "TrafficRouter", "build_router"]


def build_router(
    router_spec: Any,
    services: Sequence[tuple[str, str | None, str | None]],
    *,
    route53: Route53Client | None = None,
    elbv2: ElasticLoadBalancingv2Client | None = None,
) -> TrafficRouter:
    """The router a spec describes.

    ``router_spec`` is duck-typed (``type`` plus ``hosted_zone_id``/``record_name``/
    ``record_type`` or ``listener_arn``/``rule_arn``) so this package does not depend on
    the spec models. ``services`` holds ``(service name, target group ARN, set identifier)``
    for the two services.
    """
    if len(services) != 2:
        raise RouterConfigError(f"a router needs exactly two services, got {len(services)}")
    kind = getattr(router_spec.type, "value", router_spec.type)
    if kind == "route53":
        set_identifiers: dict[str, str] = {}
        for name, _tg, set_identifier in services:
            if not set_identifier:
                raise RouterConfigError(f"service {name} has no Route53 set identifier")
            set_identifiers[name] = set_identifier
        return Route53Router(
            route53 if route53 is not None else aws.client("route53"),
            hosted_zone_id=router_spec.hosted_zone_id,
            record_name=router_spec.record_name,
            record_type=router_spec.record_type,
            set_identifiers=set_identifiers,
        )
    if kind == "alb":
        target_groups: dict[str, str] = {}
        for name, target_group_arn, _sid in services:
            if not target_group_arn:
                raise RouterConfigError(f"service {name} has no target group ARN")
            target_groups[name] = target_group_arn
        return AlbRouter(
            elbv2 if elbv2 is not None else aws.client("elbv2"),
            listener_arn=getattr(router_spec, "listener_arn", None),
            rule_arn=getattr(router_spec, "rule_arn", None),
            target_groups=target_groups,
        )
    raise RouterConfigError(f"unknown router type {kind!r} (expected 'route53' or 'alb')")
