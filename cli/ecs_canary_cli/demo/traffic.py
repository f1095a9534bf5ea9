"""Simulated client traffic that follows the live weights and publishes ALB metrics.

The simulator knows nothing about deployments. Every tick it asks the real APIs two questions,
exactly as the outside world would observe the system:

* where does traffic go now? (the ALB listener's forward weights, or the Route53 weighted
  records), and
* what is each service running? (its PRIMARY ECS deployment's task definition, whose container
  environment says how that build behaves: ``ERROR_RATE``, ``LATENCY_MS``, ``CAPACITY_RPS``).

It then splits a virtual request rate across the services by weight and publishes what the ALB
would, per target group (dimensions ``TargetGroup`` and ``LoadBalancer``): ``RequestCount``,
``HTTPCode_Target_5XX_Count``, ``TargetConnectionErrorCount`` (only when nonzero, as ALB reports
it), ``TargetResponseTime`` and ``UnHealthyHostCount`` (every tick, traffic or not, from the target
group's health as ELB reports it, as ALB reports it whenever health checks are enabled). A faulty
release therefore shows up in CloudWatch only in proportion to the traffic it is given, which is
what the health gate and the alarms must notice.

A pair with a test listener (``PairInfra.test_listener_arn``) also has a synthetic test client: one
request every ``test_interval`` emulated seconds (20 by default: 3 a minute, like a synthetic
canary; a tick that came late sends one, never a burst) to whichever target group that listener
forwards to now (read from ELB each tick, as the production weights are). ALB counts test listener
requests in the target group's metrics like any other, so they are published in the same
``RequestCount`` and ``HTTPCode_Target_5XX_Count`` datapoints; the totals keep them apart
(``test_requests``, ``test_errors``) for the dashboard. At most one test request per 20 emulated
seconds can never, alone, take a demo alarm (more than 5 5xx in a minute) into ALARM.

How a build answers (see :func:`served_fraction` and :func:`latency_factor`):

* ``ERROR_RATE`` (default 0): the share of served requests that fail with a 5xx, at any load.
* ``CAPACITY_RPS`` (default: unlimited): the most requests per second the service serves. Its
  share of the virtual rate beyond that fails with 5xx; with 50 req/s and ``CAPACITY_RPS=30`` a
  service is fine at 25 % and 50 % of the traffic and fails 20 % of its requests at 75 %. The
  offered rate is the virtual rate times the weight share, not a count of this tick's requests,
  so how long a tick lasts cannot push a service over its capacity. ``CAPACITY_RPS=0`` is a build
  that cannot serve at all (nothing listens): the load balancer cannot connect to its targets, so
  every request it is sent counts in ``TargetConnectionErrorCount`` instead.
* ``LATENCY_MS`` (default 50): the median response time at low load; answers slow down as the
  load nears capacity, like a pool of workers whose queue only builds once nearly all are busy.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ecs_canary_cli.demo.infra import ClientFactory, PairInfra

__all__ = [
    "ServiceBehaviour",
    "ServiceTraffic",
    "TrafficSimulator",
    "latency_factor",
    "probe_percentiles",
    "read_test_listener",
    "read_test_targets",
    "read_weights",
    "served_fraction",
]

LOG = logging.getLogger(__name__)

NAMESPACE = "AWS/ApplicationELB"
LATENCY_SAMPLES_PER_TICK = 25
"""Response times published per service and tick.

moto stores every counted value of ``Values``/``Counts`` as its own data point, and every
CloudWatch query scans all of them, so publishing one value per simulated request would make
each health check slower as the demo runs. A sample of this size per tick keeps p99 meaningful.
"""
LATENCY_SPREAD = 0.25
"""Sigma of the log-normal response times: p99 is about 1.8 times the median."""
QUEUE_KNEE = 8
"""How late queueing delay sets in as utilisation u grows: answers take 1 + u^8 / (1 - u) times as long.

Negligible below u = 0.5 (+0.2 % at u = 0.42), noticeable from u = 0.8 (x2.4 at u = 0.83), steep
beyond: a crude stand-in for many workers sharing one queue, which stays fast until nearly every
worker is busy and then degrades like a single queue (1 / (1 - u))."""
MAX_UTILISATION = 0.95
"""Utilisation the latency model saturates at: an overloaded service answers what it serves about
14 times slower than at low load (requests beyond capacity fail instead of queueing forever)."""


@dataclass(frozen=True)
class ServiceBehaviour:
    """What a service's current build does with a request, read from its task definition."""

    task_definition: str
    error_rate: float
    latency_ms: float
    capacity_rps: float | None = None
    """Requests per second it serves at most; None when its environment sets no limit."""

    def describe(self) -> str:
        """``ERROR_RATE=0, CAPACITY_RPS=30``, as its environment says."""
        parts = [f"ERROR_RATE={self.error_rate:g}"]
        if self.capacity_rps is not None:
            parts.append(f"CAPACITY_RPS={self.capacity_rps:g}")
        return ", ".join(parts)


def served_fraction(offered_rps: float, capacity_rps: float | None) -> float:
    """The share of an offered load a service serves; the rest fails with 5xx."""
    if capacity_rps is None or offered_rps <= capacity_rps:
        return 1.0
    return max(0.0, capacity_rps) / offered_rps


def latency_factor(offered_rps: float, capacity_rps: float | None) -> float:
    """How many times slower than at low load a service answers under ``offered_rps``.

    ``1 + u^QUEUE_KNEE / (1 - u)`` with utilisation u = offered / capacity, capped at
    :data:`MAX_UTILISATION`; 1 for a service without a capacity limit.
    """
    if capacity_rps is None:
        return 1.0
    if capacity_rps <= 0:
        utilisation = MAX_UTILISATION
    else:
        utilisation = min(max(0.0, offered_rps) / capacity_rps, MAX_UTILISATION)
    return 1.0 + utilisation**QUEUE_KNEE / (1.0 - utilisation)


@dataclass
class ServiceTraffic:
    """Running totals for one service (what a dashboard would show)."""

    requests: int = 0
    errors: int = 0
    weight: int = 0
    share: float = 0.0
    behaviour: ServiceBehaviour | None = None
    rps: float = 0.0
    """Requests per (emulated) second sent to the service now: its share of the virtual rate."""
    carry: float = 0.0
    connection_errors: int = 0
    """Of ``errors``, the requests whose connection to a target failed (a build that cannot serve)."""
    unhealthy_hosts: int = 0
    """Targets of its target group ELB reports unhealthy, at the last tick."""
    test_requests: int = 0
    """Requests the synthetic test client sent it through the test listener (not in ``requests``)."""
    test_errors: int = 0
    """Of ``test_requests``, those answered with a 5xx or not answered (not in ``errors``)."""

    @property
    def error_percent(self) -> float:
        return 100.0 * self.errors / self.requests if self.requests else 0.0


@dataclass
class _Pair:
    infra: PairInfra
    services: dict[str, ServiceTraffic] = field(default_factory=dict)
    test_elapsed: float = 0.0
    """Emulated seconds since the synthetic test client's last request."""


def read_weights(clients: ClientFactory, pair: PairInfra) -> dict[str, int]:
    """The pair's weights as the router API reports them now, keyed by service name.

    Independent of the product's router code on purpose: the demo checks the product against
    what AWS says, not against the product's own reading.
    """
    if pair.router == "alb":
        if pair.rule_arn is not None:
            actions = clients("elbv2").describe_rules(RuleArns=[pair.rule_arn])["Rules"][0].get("Actions", [])
        else:
            listeners = clients("elbv2").describe_listeners(ListenerArns=[pair.listener_arn])["Listeners"]
            actions = listeners[0].get("DefaultActions", [])
        service_of = {svc.target_group_arn: svc.name for svc in pair.services}
        weights = dict.fromkeys(pair.service_names, 0)
        for action in actions:
            if action.get("Type") != "forward":
                continue
            groups = action.get("ForwardConfig", {}).get("TargetGroups")
            if groups:
                for group in groups:
                    name = service_of.get(group["TargetGroupArn"])
                    if name is not None:
                        weights[name] = int(group.get("Weight", 1))
            elif action.get("TargetGroupArn") in service_of:
                weights[service_of[action["TargetGroupArn"]]] = 1
        return weights
    assert pair.record_name is not None
    page = clients("route53").list_resource_record_sets(
        HostedZoneId=pair.hosted_zone_id, StartRecordName=pair.record_name, StartRecordType="A"
    )
    weights = dict.fromkeys(pair.service_names, 0)
    wanted = pair.record_name.lower().rstrip(".")
    for record in page["ResourceRecordSets"]:
        if record["Name"].lower().rstrip(".") != wanted or record["Type"] != "A":
            continue
        if record.get("SetIdentifier") in weights:
            weights[record["SetIdentifier"]] = int(record.get("Weight", 0))
    return weights


def read_test_listener(clients: ClientFactory, pair: PairInfra) -> list[dict[str, Any]]:
    """The test listener's default actions as ELB reports them ([] for a pair without one)."""
    if pair.test_listener_arn is None:
        return []
    listener = clients("elbv2").describe_listeners(ListenerArns=[pair.test_listener_arn])["Listeners"][0]
    return list(listener.get("DefaultActions", []))


def read_test_targets(pair: PairInfra, actions: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """The services a test listener with ``actions`` forwards to, with their weights (only > 0)."""
    service_of = {svc.target_group_arn: svc.name for svc in pair.services}
    targets: dict[str, int] = {}
    for action in actions:
        if action.get("Type") != "forward":
            continue
        groups = (action.get("ForwardConfig") or {}).get("TargetGroups")
        if groups:
            for group in groups:
                name = service_of.get(group["TargetGroupArn"])
                if name is not None and int(group.get("Weight", 1)) > 0:
                    targets[name] = int(group.get("Weight", 1))
        elif action.get("TargetGroupArn") in service_of:
            targets[service_of[action["TargetGroupArn"]]] = 1
    return targets


class TrafficSimulator:
    """A daemon thread sending virtual requests to the pairs' services by their current weights.

    ``rate`` is requests per emulated second for each pair; a tick of ``tick`` real seconds
    stands for ``tick / time_scale`` emulated seconds. The RNG is seeded so request and error
    counts are reproducible for a given sequence of ticks.
    """

    def __init__(
        self,
        clients: ClientFactory,
        pairs: Sequence[PairInfra],
        *,
        time_scale: float,
        rate: float = 50.0,
        tick: float = 0.2,
        seed: int = 7,
        test_interval: float = 20.0,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self._clients = clients
        self._pairs = {p.name: _Pair(p, {s: ServiceTraffic() for s in p.service_names}) for p in pairs}
        self.time_scale = time_scale
        self.rate = rate
        self.tick = tick
        self.test_interval = test_interval
        """Emulated seconds between two requests of the synthetic test client (pairs with a test listener)."""
        self._rng = random.Random(seed)
        self._now = now or (lambda: datetime.now(UTC))
        self._task_definitions: dict[str, ServiceBehaviour] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)
        self.ticks = 0
        self.failures = 0
        self.last_error: str | None = None
        self.publish_latency = True
        """False when CloudWatch here cannot answer percentile queries (see :meth:`probe_percentiles`)."""

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> TrafficSimulator:
        self.publish_latency = probe_percentiles(self._clients("cloudwatch"), self._now())
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> TrafficSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_pair(self, pair: PairInfra) -> None:
        with self._lock:
            self._pairs[pair.name] = _Pair(pair, {s: ServiceTraffic() for s in pair.service_names})

    def remove_pair(self, name: str) -> None:
        with self._lock:
            self._pairs.pop(name, None)

    # ---- what a dashboard reads ---------------------------------------------------------------------

    def snapshot(self, pair: str) -> dict[str, ServiceTraffic]:
        """Copies of the per-service totals of ``pair``."""
        with self._lock:
            return {
                name: ServiceTraffic(
                    requests=s.requests,
                    errors=s.errors,
                    weight=s.weight,
                    share=s.share,
                    behaviour=s.behaviour,
                    rps=s.rps,
                    connection_errors=s.connection_errors,
                    unhealthy_hosts=s.unhealthy_hosts,
                    test_requests=s.test_requests,
                    test_errors=s.test_errors,
                )
                for name, s in self._pairs[pair].services.items()
            }

    # ---- the loop ------------------------------------------------------------------------------------

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.tick):
            now = time.monotonic()
            emulated = (now - last) / self.time_scale
            last = now
            with self._lock:
                pairs = list(self._pairs.values())
            for pair in pairs:
                try:
                    self._send(pair, emulated)
                except Exception as exc:  # the emulator may be shutting down or briefly busy
                    self.failures += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    LOG.debug("traffic tick for %s failed", pair.infra.name, exc_info=True)
            self.ticks += 1

    def _behaviours(self, pair: PairInfra) -> dict[str, ServiceBehaviour]:
        """Each service's PRIMARY deployment's task definition, as its behaviour."""
        ecs = self._clients("ecs")
        described = ecs.describe_services(cluster=pair.cluster, services=list(pair.service_names))
        found: dict[str, ServiceBehaviour] = {}
        for svc in described.get("services", []):
            primary = next((d for d in svc.get("deployments", []) if d.get("status") == "PRIMARY"), None)
            arn = str(primary["taskDefinition"]) if primary else str(svc["taskDefinition"])
            found[svc["serviceName"]] = self._behaviour_of(arn)
        return found

    def _behaviour_of(self, task_definition: str) -> ServiceBehaviour:
        cached = self._task_definitions.get(task_definition)
        if cached is not None:
            return cached
        definition = self._clients("ecs").describe_task_definition(taskDefinition=task_definition)
        env: dict[str, str] = {}
        for container in definition["taskDefinition"].get("containerDefinitions", []):
            env.update({e["name"]: e["value"] for e in container.get("environment", [])})
        capacity = env.get("CAPACITY_RPS", "").strip()
        behaviour = ServiceBehaviour(
            task_definition=task_definition,
            error_rate=min(1.0, max(0.0, float(env.get("ERROR_RATE", "0")))),
            latency_ms=max(1.0, float(env.get("LATENCY_MS", "50"))),
            capacity_rps=max(0.0, float(capacity)) if capacity else None,
        )
        self._task_definitions[task_definition] = behaviour
        return behaviour

    def _unhealthy_targets(self, target_group_arn: str) -> int:
        """Targets ELB reports ``unhealthy`` in the target group, as its health checks see them."""
        described = self._clients("elbv2").describe_target_health(TargetGroupArn=target_group_arn)
        return sum(
            1
            for target in described.get("TargetHealthDescriptions", [])
            if target.get("TargetHealth", {}).get("State") == "unhealthy"
        )

    def _send(self, pair: _Pair, emulated_seconds: float) -> None:
        weights = read_weights(self._clients, pair.infra)
        behaviours = self._behaviours(pair.infra)
        tested = self._test_target(pair, emulated_seconds)
        total = sum(weights.values())
        stamp = self._now()
        data: list[dict[str, Any]] = []
        with self._lock:
            for name, stats in pair.services.items():
                stats.weight = weights.get(name, 0)
                stats.share = stats.weight / total if total else 0.0
                stats.rps = self.rate * stats.share
                stats.behaviour = behaviours.get(name)
        for name, stats in pair.services.items():
            behaviour = behaviours.get(name)
            if behaviour is not None:
                # Reported whenever health checks run, whether or not the service gets traffic.
                unhealthy = self._unhealthy_targets(pair.infra.service(name).target_group_arn)
                data.append(self._host_datum(pair.infra, name, unhealthy=unhealthy, stamp=stamp))
                with self._lock:
                    stats.unhealthy_hosts = unhealthy
            test = 1 if name == tested and behaviour is not None else 0
            if stats.share <= 0 or behaviour is None:
                stats.carry = 0.0
                requests = 0
            else:
                expected = self.rate * emulated_seconds * stats.share + stats.carry
                requests = int(expected)
                stats.carry = expected - requests
            if (requests == 0 and test == 0) or behaviour is None:
                continue
            # The offered rate is the virtual rate's share, not this tick's count over its length:
            # a short or long tick (a busy emulator) changes how many requests a tick holds, never
            # whether the service is over capacity.
            if behaviour.capacity_rps == 0:
                # Nothing listens: every connection the load balancer tries fails; no target answers.
                errors, refused = 0, requests
                test_errors, test_refused = 0, test
            else:
                served = round(requests * served_fraction(stats.rps, behaviour.capacity_rps))
                errors, refused = (requests - served) + self._errors(served, behaviour.error_rate), 0
                test_errors, test_refused = self._errors(test, behaviour.error_rate), 0
            slowdown = latency_factor(stats.rps, behaviour.capacity_rps)
            data.extend(
                self._datums(
                    pair.infra,
                    name,
                    requests=requests + test,
                    errors=errors + test_errors,
                    connection_errors=refused + test_refused,
                    latency_ms=behaviour.latency_ms * slowdown,
                    stamp=stamp,
                )
            )
            with self._lock:
                stats.requests += requests
                stats.errors += errors + refused
                stats.connection_errors += refused
                stats.test_requests += test
                stats.test_errors += test_errors + test_refused
        if data:
            cloudwatch = self._clients("cloudwatch")
            for offset in range(0, len(data), 20):
                cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=data[offset : offset + 20])

    def _test_target(self, pair: _Pair, emulated_seconds: float) -> str | None:
        """The service the synthetic test client sends a request to this tick, if it sends one.

        One request once ``test_interval`` emulated seconds have passed since the last; a late tick
        still sends only one (a synthetic check skips the runs it missed).
        """
        if pair.infra.test_listener_arn is None:
            return None
        pair.test_elapsed += emulated_seconds
        if pair.test_elapsed < self.test_interval:
            return None
        pair.test_elapsed = 0.0
        targets = read_test_targets(pair.infra, read_test_listener(self._clients, pair.infra))
        if not targets:
            return None
        if len(targets) == 1:
            return next(iter(targets))
        names = sorted(targets)
        return self._rng.choices(names, weights=[targets[n] for n in names])[0]

    def _errors(self, requests: int, rate: float) -> int:
        if rate <= 0:
            return 0
        if rate >= 1:
            return requests
        return sum(1 for _ in range(requests) if self._rng.random() < rate)

    def _datums(
        self,
        pair: PairInfra,
        name: str,
        *,
        requests: int,
        errors: int,
        latency_ms: float,
        stamp: datetime,
        connection_errors: int = 0,
    ) -> list[dict[str, Any]]:
        """What the ALB reports for one tick of one target group; ``latency_ms`` is the median.

        ``errors`` are the targets' own 5xx answers; ``connection_errors`` the requests whose
        connection to a target failed (no target answered them, so no response time either).
        """
        svc = pair.service(name)
        dimensions = _dimensions(svc.target_group_arn, svc.load_balancer_arn)
        samples = min(requests - connection_errors, LATENCY_SAMPLES_PER_TICK)
        mu = math.log(latency_ms / 1000.0)
        latencies = [round(self._rng.lognormvariate(mu, LATENCY_SPREAD), 4) for _ in range(samples)]
        counts: dict[float, int] = {}
        for value in latencies:
            counts[value] = counts.get(value, 0) + 1
        datums: list[dict[str, Any]] = [
            {
                "MetricName": "RequestCount",
                "Dimensions": dimensions,
                "Timestamp": stamp,
                "Value": float(requests),
                "Unit": "Count",
            },
            {
                "MetricName": "HTTPCode_Target_5XX_Count",
                "Dimensions": dimensions,
                "Timestamp": stamp,
                "Value": float(errors),
                "Unit": "Count",
            },
        ]
        if connection_errors:
            datums.append(
                {
                    "MetricName": "TargetConnectionErrorCount",
                    "Dimensions": dimensions,
                    "Timestamp": stamp,
                    "Value": float(connection_errors),
                    "Unit": "Count",
                }
            )
        if self.publish_latency and counts:
            datums.append(
                {
                    "MetricName": "TargetResponseTime",
                    "Dimensions": dimensions,
                    "Timestamp": stamp,
                    "Values": list(counts),
                    "Counts": [float(c) for c in counts.values()],
                    "Unit": "Seconds",
                }
            )
        return datums

    def _host_datum(self, pair: PairInfra, name: str, *, unhealthy: int, stamp: datetime) -> dict[str, Any]:
        """``UnHealthyHostCount`` of one target group at one tick."""
        svc = pair.service(name)
        return {
            "MetricName": "UnHealthyHostCount",
            "Dimensions": _dimensions(svc.target_group_arn, svc.load_balancer_arn),
            "Timestamp": stamp,
            "Value": float(unhealthy),
            "Unit": "Count",
        }


def probe_percentiles(cloudwatch: Any, now: datetime) -> bool:
    """Whether ``GetMetricData`` answers a ``p99`` query on data that has values.

    Plain moto (5.2.5) fails such a query with a 500 (it computes no percentiles; the emulator
    patches that in), and the health gate always asks for green's p99 alongside its counts:
    publishing ``TargetResponseTime`` there would make every health check fail for a reason that
    has nothing to do with the release. So latency is published only where percentiles work, and
    a spec should only set ``max_p99_latency_ms`` there; the 5xx gate is unaffected.
    """
    dimensions = [{"Name": "Probe", "Value": "percentiles"}]
    try:
        cloudwatch.put_metric_data(
            Namespace="EcsCanaryDemo/Probe",
            MetricData=[{"MetricName": "Latency", "Dimensions": dimensions, "Timestamp": now, "Value": 0.1}],
        )
        cloudwatch.get_metric_data(
            MetricDataQueries=[
                {
                    "Id": "p99",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "EcsCanaryDemo/Probe",
                            "MetricName": "Latency",
                            "Dimensions": dimensions,
                        },
                        "Period": 60,
                        "Stat": "p99",
                    },
                }
            ],
            StartTime=now - timedelta(minutes=1),
            EndTime=now + timedelta(minutes=1),
        )
    except Exception:
        LOG.info("CloudWatch cannot compute percentiles here; TargetResponseTime is not published")
        return False
    return True


def _dimensions(target_group_arn: str, load_balancer_arn: str) -> list[Mapping[str, str]]:
    """The ``TargetGroup`` and ``LoadBalancer`` dimensions ALB publishes per-target-group metrics with."""
    tg = target_group_arn.split(":", 5)[5]
    lb = load_balancer_arn.split(":", 5)[5].removeprefix("loadbalancer/")
    return [{"Name": "TargetGroup", "Value": tg}, {"Name": "LoadBalancer", "Value": lb}]
