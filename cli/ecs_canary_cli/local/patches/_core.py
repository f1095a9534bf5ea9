"""What every service module shares: the emulator's options and clock, the patch installer and
publishing helpers."""

from __future__ import annotations

import datetime
import inspect
import json
import logging
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from moto.events.models import events_backends
from moto.sqs.models import sqs_backends
from moto.utilities.arns import parse_arn

from ..clock import DelayedExecutor, EmulatorClock
from ..lambda_runtime import DEFAULT_CONCURRENCY, InProcessLambdaRuntime

LOG = logging.getLogger(__name__)

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_MARK = "_ecs_canary_emulator_patch"


@dataclass
class EmulatorOptions:
    """Runtime knobs of the emulated services (for tests of at-least-once and failure paths).

    duplicates: extra copies EventBridge delivers of every event to Lambda targets.
    duplicate_probability: chance that an event gets one extra copy (seeded RNG).
    reorder_window: emulated seconds over which deliveries are spread at random, so events
        that arrive within the window reach their targets shuffled.
    target_health: target group ARN -> health state its targets report instead of ``healthy``
        (``unhealthy``, ``initial``, ``draining``, ``unavailable``); a stand-in for failing
        load balancer health checks.
    task_start_seconds: emulated seconds an ECS task stays PENDING before it is RUNNING.
    route53_propagation_seconds: emulated seconds a Route 53 change stays PENDING.
    lambda_concurrency: concurrent Lambda executions (execution environments busy at once) per
        account and region; beyond it asynchronous events wait in the queue and a synchronous
        Invoke waits for a slot, up to the function's timeout, before it is throttled.
    iam: authorise calls made with a role's session credentials (Lambda functions', the state
        machine's) against the role's policies; False lets every call through. A deployment-wide
        choice: ``reset`` keeps it.
    """

    duplicates: int = 0
    duplicate_probability: float = 0.0
    reorder_window: float = 0.0
    target_health: dict[str, str] = field(default_factory=dict)
    task_start_seconds: float = 10.0
    route53_propagation_seconds: float = 30.0
    lambda_concurrency: int = DEFAULT_CONCURRENCY
    iam: bool = True
    seed: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        self.rng.seed(self.seed)

    def reseed(self, seed: int) -> None:
        self.seed = seed
        self.rng.seed(seed)

    def reset(self) -> None:
        """Back to faithful defaults (no duplicates, no reordering, all targets healthy)."""
        self.duplicates = 0
        self.duplicate_probability = 0.0
        self.reorder_window = 0.0
        self.target_health.clear()
        self.task_start_seconds = 10.0
        self.route53_propagation_seconds = 30.0
        self.lambda_concurrency = DEFAULT_CONCURRENCY
        self.reseed(self.seed)


class _Config:
    """What the installed patches read at call time (replaced by each ``apply_all``)."""

    def __init__(self) -> None:
        self.clock = EmulatorClock()
        self.endpoint = ""
        self.options = EmulatorOptions()
        self.events: DelayedExecutor | None = None
        self.lambdas: DelayedExecutor | None = None
        self.ecs: DelayedExecutor | None = None
        self.runtime: InProcessLambdaRuntime | None = None
        self.alarm_stop = threading.Event()
        self.alarm_thread: threading.Thread | None = None
        self.alarm_period = 10.0

    def executors(self) -> list[DelayedExecutor]:
        return [e for e in (self.events, self.lambdas, self.ecs) if e is not None]


CONFIG = _Config()


def _install(
    owner: Any, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]], key: str
) -> None:
    """Replace ``owner.name`` with ``make(original)`` once per ``key``."""
    current = getattr(owner, name)
    seen: frozenset[str] = getattr(current, _MARK, frozenset())
    if key in seen:
        return
    raw = owner.__dict__.get(name)
    if raw is None:  # inherited: a bound method is an inherited classmethod
        raw = classmethod(current.__func__) if inspect.ismethod(current) else current
    if isinstance(raw, classmethod):
        replacement: Any = classmethod(make(raw.__func__))
        setattr(replacement.__func__, _MARK, seen | {key})
    elif isinstance(raw, staticmethod):
        replacement = staticmethod(make(raw.__func__))
        setattr(replacement.__func__, _MARK, seen | {key})
    else:
        replacement = make(current)
        setattr(replacement, _MARK, seen | {key})
    setattr(owner, name, replacement)


def _iso(value: Any) -> str:
    """An EventBridge/CloudWatch timestamp: ``2024-01-01T12:00:00Z``."""
    if isinstance(value, datetime.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
    elif isinstance(value, (int, float)):
        moment = datetime.datetime.fromtimestamp(float(value), tz=datetime.UTC)
    elif isinstance(value, str) and value:
        return value
    else:
        moment = datetime.datetime.now(datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch_ms(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
        return int(moment.timestamp() * 1000)
    return int(float(value) * 1000)


def _put_event(
    account_id: str, region: str, source: str, detail_type: str, *, resources: list[str], detail: Any
) -> None:
    """Publish on the default bus through moto's EventBridge backend, so rules and targets apply."""
    backend = events_backends[account_id][region]
    entry = {
        "Source": source,
        "DetailType": detail_type,
        "Resources": resources,
        "Detail": json.dumps(detail),
    }
    backend.put_events([entry])


def _sqs_send(queue_arn: str, body: str, attributes: Mapping[str, str] | None = None) -> None:

    arn = parse_arn(queue_arn)
    message_attributes = {k: {"DataType": "String", "StringValue": v} for k, v in (attributes or {}).items()}
    sqs_backends[arn.account][arn.region].send_message(
        queue_name=arn.resource_id, message_body=body, message_attributes=message_attributes or None
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
