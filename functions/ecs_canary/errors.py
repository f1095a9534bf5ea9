"""Exceptions shared across the package.

Lambda reports an unhandled exception by its class name, and the state machine's
Retry/Catch clauses match on that name, so the class names here are part of the
state machine contract: renaming one breaks the workflow.
"""

from __future__ import annotations


class SpecError(ValueError):
    """A service-pair spec (or a plan inside it) is invalid.

    The message holds one ``<dotted.field.path>: <problem>`` line per problem so
    that the CLI can print all of them at once instead of one per attempt.
    """

    @property
    def problems(self) -> tuple[str, ...]:
        """The individual ``path: problem`` lines of the message."""
        return tuple(line for line in str(self).splitlines() if line.strip())


class GreenUnhealthy(Exception):
    """The health gate judged the green service as failing (an alarm fired or a threshold was crossed).

    Raised while traffic is being shifted; the workflow catches it and rolls back.
    """


class HealthInconclusive(Exception):
    """The health gate could not reach a verdict more often than ``health.max_inconclusive`` allows.

    Missing data is never treated as a pass, so a gate that stays blind rolls back
    instead of promoting.
    """


class GreenNeverSteady(Exception):
    """The green ECS service did not reach a steady state within ``steady.timeout_seconds``."""


class ShiftNotVerified(Exception):
    """The router's weights, read back after a shift, differ from the weights that were written."""


class RouterConfigError(Exception):
    """The AWS routing resources do not match the spec.

    For example a weighted record, listener, rule or target group is missing, or the
    current weights do not name exactly one live service.
    """


class UnknownServicePair(Exception):
    """No service pair is registered under the requested name."""


class DeploymentNotFound(Exception):
    """No deployment exists with the requested id for the service pair."""
