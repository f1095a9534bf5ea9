"""Elastic Load Balancing: target health overrides for failing health checks."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from moto.elbv2.models import FakeHealthStatus, FakeTargetGroup

from ._core import (
    CONFIG,
    _install,
)

_HEALTH_REASONS = {
    "unhealthy": ("Target.FailedHealthChecks", "Health checks failed"),
    "initial": ("Elb.RegistrationInProgress", "Target registration is in progress"),
    "draining": ("Target.DeregistrationInProgress", "Target deregistration is in progress"),
    "unavailable": ("Target.HealthCheckDisabled", "Health checks disabled"),
}


def apply_target_health_overrides() -> None:
    """AWS: a load balancer reports each registered target's health from its health checks.
    moto runs no health checks (every registered target is ``healthy``); a target group listed
    in the emulator's ``target_health`` option reports that state for its registered targets,
    standing in for targets that fail their checks.
    """

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def health_for(self: Any, target: dict[str, Any], ec2_backend: Any) -> Any:
            status = original(self, target, ec2_backend)
            state = CONFIG.options.target_health.get(self.arn)
            if state and status.status == "healthy":
                reason, description = _HEALTH_REASONS.get(state, (None, None))
                return FakeHealthStatus(
                    status.instance_id, status.port, status.health_check_port, state, reason, description
                )
            return status

        return health_for

    _install(FakeTargetGroup, "health_for", make, "overrides")
