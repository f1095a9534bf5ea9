"""The one interface every traffic router implements.

Like Flagger's router package, the rollout logic only ever talks to this
interface: it reads the current split, writes a new split in one API call,
proves the write took effect and learns how long stale clients may linger.
Weights are always keyed by ECS service name, never by record or target group.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass

from ecs_canary.errors import TrafficDrift

__all__ = ["ShiftReceipt", "TrafficRouter"]


@dataclass(frozen=True)
class ShiftReceipt:
    """What ``set_weights`` hands to ``verify``: the Route53 change id, None for ALB."""

    change_id: str | None = None


class TrafficRouter(abc.ABC):
    """Splits traffic between exactly two ECS services."""

    #: Largest weight the backing API accepts.
    max_weight: int = 255

    def __init__(self, services: tuple[str, str]) -> None:
        if len(services) != 2 or services[0] == services[1]:
            raise ValueError(f"a router needs two distinct services, got {services!r}")
        self.services: tuple[str, str] = services

    @abc.abstractmethod
    def read_weights(self) -> dict[str, int]:
        """Current weights of both services as the API reports them now."""

    @abc.abstractmethod
    def set_weights(
        self, weights: Mapping[str, int], *, expected: Mapping[str, int] | None = None
    ) -> ShiftReceipt:
        """Write both weights in one atomic API call.

        With ``expected``, refuse (``TrafficDrift``) when the weights read just before the write are
        not those: a change made by someone else since the caller last looked is never overwritten.
        """

    @abc.abstractmethod
    def verify(self, weights: Mapping[str, int], receipt: ShiftReceipt) -> None:
        """Raise ``ShiftNotVerified`` unless the change took effect (blocks until it has propagated)."""

    def propagated(self, receipt: ShiftReceipt) -> bool:
        """Whether a written change has reached every server, without waiting (Argo's ``VerifyWeight``).

        The rollout calls this on its next step instead of blocking a Lambda while the change
        propagates; routers whose writes apply synchronously always answer True.
        """
        del receipt
        return True

    @abc.abstractmethod
    def propagation_seconds(self) -> int:
        """How long clients may keep using the old weights after ``verify`` passed."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Human-readable location of the split, for logs and the CLI."""

    def validate_weights(self, weights: Mapping[str, int]) -> dict[str, int]:
        """Reject a split that names other services or that the API would refuse.

        Checked before any call so a bad split never reaches the API half-applied.
        """
        if set(weights) != set(self.services):
            raise ValueError(f"weights must name exactly {sorted(self.services)}, got {sorted(weights)}")
        clean: dict[str, int] = {}
        for name in self.services:
            value = weights[name]
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"weight of {name} must be an integer, got {value!r}")
            if not 0 <= value <= self.max_weight:
                raise ValueError(f"weight of {name} must be between 0 and {self.max_weight}, got {value}")
            clean[name] = value
        return clean

    def check_expected(self, current: Mapping[str, int], expected: Mapping[str, int] | None) -> None:
        """Raise ``TrafficDrift`` when ``current`` is not ``expected`` (None: no expectation)."""
        if expected is not None and dict(current) != dict(expected):
            raise TrafficDrift(
                f"{self.describe()} has weights {_show(current)}, not the expected {_show(expected)}; "
                "someone else changed them"
            )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


def _show(weights: Mapping[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(weights.items()))
