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


class NotOwner(Exception):
    """This execution does not own the deployment (its ARN is not the record's fencing token).

    A copy of a deployment's input started as a new execution, or an execution of an older
    deployment, is refused before it touches traffic; the state machine ends it without rolling back.
    """


class RollbackRequested(Exception):
    """The deployment's record holds an intent to fail back (status ROLLING_BACK): stop and roll back."""


class DeploymentClosed(DeploymentNotFound):
    """The deployment already has a terminal status; nothing more may change for it."""


class NewRelease(Exception):
    """Green's primary ECS deployment is no longer the release under test: what was judged is gone."""


class TrafficDrift(Exception):
    """The router's weights differ from the ones this deployment last wrote (someone changed them)."""


class GreenTasksStopped(Exception):
    """Tasks of the release under test stopped unexpectedly more often than the spec tolerates."""


class Aborted(Exception):
    """An operator aborted the deployment (``ecs-canary abort``)."""


class ShiftInFlight(Exception):
    """A weight change of this deployment is still in flight; the rollback waits for it to land."""


class OperatorSignal(Exception):
    """Base of the operator commands that end a bake early without failing the deployment."""


class PromoteRequested(OperatorSignal):
    """``ecs-canary promote``: end the current bake now and act on the command."""


class ResumeRequested(OperatorSignal):
    """``ecs-canary resume``: go on now instead of at the next hold check."""


class CommandRefused(ValueError):
    """An operator command that does not apply (no active deployment, not paused, ...)."""


class WriteRefused(Exception):
    """A conditional write of the store was refused; ``condition`` names the sub-condition that failed."""

    def __init__(self, message: str, condition: str) -> None:
        super().__init__(message)
        self.condition = condition


class HookFailed(Exception):
    """A lifecycle hook answered FAILED, crashed, answered nonsense or stayed IN_PROGRESS too long."""


class CapacityShort(Exception):
    """Green cannot carry all of the live service's traffic, and did not catch up in time."""


class ApprovalRejected(Exception):
    """An operator rejected the deployment at an approval gate, or it timed out (on_timeout: rollback)."""
