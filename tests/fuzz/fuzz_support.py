"""Shared pieces of the fuzz suite: the Hypothesis profile, the tally, the world and what it watches.

``flow_fixtures`` (tests/handlers) is loaded by name: mypy checks this directory in a run of its
own (see scripts/run_mypy.py), where tests/handlers is not on the path, so the few parts of the
flow world the fuzz tests use are typed here as protocols.
"""

from __future__ import annotations

import importlib
import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import astuple, dataclass, field
from typing import Any, Protocol

import pytest
from botocore.exceptions import ClientError
from ecs_canary import aws
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

flow_fixtures: Any = importlib.import_module("flow_fixtures")

ACCOUNT: str = flow_fixtures.ACCOUNT
REGION: str = flow_fixtures.REGION
TABLE: str = flow_fixtures.TABLE
PAIR: str = flow_fixtures.PAIR
CLUSTER: str = flow_fixtures.CLUSTER
CLUSTER_ARN: str = flow_fixtures.CLUSTER_ARN
BLUE: str = flow_fixtures.BLUE
GREEN: str = flow_fixtures.GREEN
ALARMS: dict[str, str] = dict(flow_fixtures.ALARMS)
PAIR_ALARM: str = flow_fixtures.PAIR_ALARM
TOKEN: str = flow_fixtures.TOKEN


def eventbridge_event(
    source: str, detail_type: str, detail: Any, *, resources: list[str] | None = None
) -> dict[str, Any]:
    """An EventBridge envelope around ``detail`` (as the rules deliver it)."""
    return dict(flow_fixtures.eventbridge_event(source, detail_type, detail, resources=resources))


# ---- the Hypothesis profile ------------------------------------------------------------------------

EXAMPLES = 1000
"""Generated inputs per main target (filter, reconcile, spec validate, register)."""
SIDE_EXAMPLES = 400
"""Generated inputs per side target (interrupt events, operator commands)."""

PROFILE = "ecs-canary-fuzz"
settings.register_profile(
    PROFILE,
    derandomize=True,  # the same inputs on every run and every machine
    deadline=None,  # moto's latency varies with the machine's load; no wall-clock bounds
    database=None,  # nothing replayed from earlier runs: each run is exactly the derandomized one
    print_blob=False,
    max_examples=EXAMPLES,
    # The examples of a test share one moto world on purpose (building it costs about a second)
    # and each example asserts that the world did not change; some inputs are 200,000-character
    # strings on purpose.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)


def fuzz_settings(max_examples: int = EXAMPLES) -> settings:
    """The suite's profile with this test's number of examples (the profile is never loaded globally)."""
    return settings(settings.get_profile(PROFILE), max_examples=max_examples)


# ---- the tally -------------------------------------------------------------------------------------


KNOWN_BUG = "known bug"
"""Targets whose name holds this are the xfail tests of known product bugs: reported apart."""


@dataclass(frozen=True)
class Row:
    """One target's counts at one moment (to compare a test's run with what it started from)."""

    cases: int
    rejections: int
    exceptions: int
    executions: int
    traffic: int
    writes: int


@dataclass
class Tally:
    """What the examples did, per target: printed at the end of the run, asserted by each fuzz test.

    ``rejections`` counts the examples that were refused (rejected, ignored, exit 2, refused,
    or a loud parser error) *and* whose refusal was checked to name the problem: for every target
    it must equal ``cases``.
    """

    cases: Counter[str] = field(default_factory=Counter)
    rejections: Counter[str] = field(default_factory=Counter)
    exceptions: Counter[str] = field(default_factory=Counter)
    envelope_failures: Counter[str] = field(default_factory=Counter)
    executions: Counter[str] = field(default_factory=Counter)
    traffic: Counter[str] = field(default_factory=Counter)
    writes: Counter[str] = field(default_factory=Counter)
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    offline: set[str] = field(default_factory=set)
    """Targets that run without AWS (``spec validate``): no executions or traffic to count."""

    def outcome(self, target: str, what: str) -> None:
        self.outcomes.setdefault(target, Counter())[what] += 1

    def rejected(self, target: str, what: str) -> None:
        """The example was refused and its refusal named the problem (call once every check passed)."""
        self.rejections[target] += 1
        self.outcome(target, what)

    def row(self, target: str) -> Row:
        return Row(
            self.cases[target],
            self.rejections[target],
            self.exceptions[target],
            self.executions[target],
            self.traffic[target],
            self.writes[target],
        )

    def assert_clean(self, target: str, before: Row, minimum: int) -> Row:
        """Since ``before``: at least ``minimum`` cases, each one refused naming its problem, and
        no exception, execution, traffic change or write. Returns what this run added."""
        now = self.row(target)
        run = Row(*(a - b for a, b in zip(astuple(now), astuple(before), strict=True)))
        assert run.cases >= minimum, f"{target}: only {run.cases} generated cases (want >= {minimum})"
        assert run.rejections == run.cases, (
            f"{target}: {run.cases - run.rejections} not refused naming a problem"
        )
        assert run.exceptions == 0, f"{target}: {run.exceptions} unhandled exception(s)"
        assert run.executions == 0, f"{target}: {run.executions} execution(s) started"
        assert run.traffic == 0, f"{target}: {run.traffic} traffic change(s)"
        assert run.writes == 0, f"{target}: {run.writes} write(s)"
        return run

    def report(self) -> list[str]:
        targets = sorted(t for t in self.cases if KNOWN_BUG not in t)
        bugs = sorted(t for t in self.cases if KNOWN_BUG in t)
        if not targets and not bugs:
            return []
        width = max(len(t) for t in [*targets, *bugs, "target"])
        head = (
            f"{'target':<{width}}  {'examples':>8}  {'rejections (problem named)':>26}  "
            f"{'unhandled exceptions':>20}  {'executions started':>18}  {'traffic changes':>15}  "
            f"{'other writes':>12}"
        )
        lines = [head]

        def line(target: str) -> str:
            offline = target in self.offline
            executions = "n/a" if offline else str(self.executions[target])
            traffic = "n/a" if offline else str(self.traffic[target])
            return (
                f"{target:<{width}}  {self.cases[target]:>8}  {self.rejections[target]:>26}  "
                f"{self.exceptions[target]:>20}  {executions:>18}  {traffic:>15}  {self.writes[target]:>12}"
            )

        lines += [line(t) for t in targets]
        total = [sum(c[t] for t in targets) for c in (self.cases, self.rejections, self.exceptions)]
        lines.append(
            f"{'total':<{width}}  {total[0]:>8}  {total[1]:>26}  {total[2]:>20}  "
            f"{sum(self.executions[t] for t in targets):>18}  {sum(self.traffic[t] for t in targets):>15}  "
            f"{sum(self.writes[t] for t in targets):>12}"
        )
        for target in targets:
            if self.envelope_failures[target]:
                lines.append(
                    f"{target}: {self.envelope_failures[target]} of the rejections are the parser's loud "
                    "ValidationError (naming the field) for a structurally invalid event"
                )
        for target in targets:
            seen = self.outcomes.get(target)
            if seen:
                lines.append(f"{target}: " + ", ".join(f"{k} {v}" for k, v in sorted(seen.items())))
        if bugs:
            lines.append("known product bugs (strict xfail tests; not part of the totals above):")
            lines += [line(t) for t in bugs]
        return lines


TALLY = Tally()


# ---- the world ---------------------------------------------------------------------------------------


class Store(Protocol):
    def put_pair(
        self, spec: Any, *, live_service: str, idle_baseline: str | None, cluster_arn: str | None = None
    ) -> Any: ...
    def delete_pair(self, name: str) -> Any: ...
    def find_pair(self, name: str) -> Any: ...


class Run(Protocol):
    """One execution of the state machine (flow_fixtures.Run)."""

    deployment_id: str
    execution: str
    input: dict[str, Any]

    def to_step(self, state: dict[str, Any], step_index: int) -> dict[str, Any]: ...


class Flow(Protocol):
    """The moto world of one pair (flow_fixtures.Flow): the parts the fuzz tests use."""

    store: Store
    ddb: Any
    sfn: Any
    ecs: Any
    elbv2: Any
    route53: Any
    cloudwatch: Any
    state_machine_arn: str
    listener_arn: str
    target_groups: dict[str, str]
    task_definitions: dict[str, str]
    zone_id: str

    def invoke(self, name: str, event: Any) -> Any: ...
    def register(self, router: str = "alb", *, cluster_arn: str | None = None, **spec_kwargs: Any) -> Any: ...
    def new_release(self, service: str, *, keep_previous: bool = False) -> str: ...
    def deployment_of(self, service: str) -> str: ...
    def task_event(self, service: str | None, started_by: str | None, **kwargs: Any) -> dict[str, Any]: ...
    def alarm_event(self, name: str, state: str, reason: str = "Threshold Crossed") -> dict[str, Any]: ...
    def execution_status_event(
        self, status: str, *, execution_input: Mapping[str, Any] | str | None, name: str, **kwargs: Any
    ) -> dict[str, Any]: ...
    def rolling(self, service: str = GREEN) -> tuple[Run, dict[str, Any]]: ...
    def weights(self, router: str | None = None) -> dict[str, int]: ...
    def items(self) -> list[dict[str, Any]]: ...
    def executions(self) -> list[dict[str, Any]]: ...


HALF = {BLUE: 50, GREEN: 50}


def mid_ramp(flow: Flow, *, cluster_arn: str | None = None) -> Run:
    """Register the pair and run a deployment of green to 50 % (its owner's watch armed)."""
    flow.register(cluster_arn=cluster_arn)
    run, state = flow.rolling(GREEN)
    run.to_step(state, 1)
    assert flow.weights() == HALF
    return run


# ---- watching the world ----------------------------------------------------------------------------

# Every call of the product's clients that changes something: starting executions, moving traffic,
# writing the table, signalling a waiting execution, publishing lifecycle events.
_EXECUTIONS = {("stepfunctions", "start_execution")}
_TRAFFIC = {
    ("elbv2", "modify_listener"),
    ("elbv2", "modify_rule"),
    ("route53", "change_resource_record_sets"),
}
_WRITES = {
    ("dynamodb", "put_item"),
    ("dynamodb", "update_item"),
    ("dynamodb", "delete_item"),
    ("dynamodb", "transact_write_items"),
    ("dynamodb", "batch_write_item"),
    ("stepfunctions", "stop_execution"),
    ("stepfunctions", "send_task_failure"),
    ("stepfunctions", "send_task_success"),
    ("events", "put_events"),
}

# DynamoDB's key limits, which moto enforces on writes but not on reads: AWS answers a GetItem or
# Query whose partition key exceeds 2048 bytes (or sort key 1024 bytes) with a ValidationException.
HASH_KEY_MAX_BYTES = 2048
RANGE_KEY_MAX_BYTES = 1024


def _key_bytes(value: Any) -> int:
    if isinstance(value, Mapping) and "S" in value:
        return len(str(value["S"]).encode("utf-8", "surrogatepass"))
    return 0


def _key_too_long(operation: str, pk: Any, sk: Any = None) -> ClientError | None:
    if _key_bytes(pk) > HASH_KEY_MAX_BYTES:
        message = (
            "One or more parameter values were invalid: Size of hashkey has exceeded the maximum size "
            "limit of2048 bytes"
        )
    elif _key_bytes(sk) > RANGE_KEY_MAX_BYTES:
        message = (
            "One or more parameter values were invalid: Aggregated size of all range keys has exceeded "
            "the size limit of 1024 bytes"
        )
    else:
        return None
    return ClientError({"Error": {"Code": "ValidationException", "Message": message}}, operation)


@dataclass(frozen=True)
class State:
    """What bad input must leave alone: the table, the executions and the router's weights."""

    items: list[dict[str, Any]]
    executions: list[str]
    weights: dict[str, int]


FULL_CHECK_EVERY = 50
"""Every this many examples (and after the last), the whole world is compared with how it started."""


@dataclass(repr=False)
class Watch:
    """Counts the product's state-changing AWS calls, and compares the world with how it started.

    The spies see every call of the product's clients (``aws.client``), so each example is checked
    exactly and for free; the full comparison (a table scan, the executions, the weights read back)
    costs a few moto calls, so it runs on the first example, every :data:`FULL_CHECK_EVERY`
    examples and when the test ends.
    """

    flow: Flow
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    baseline: State | None = None
    examples: int = 0
    target: str = ""
    final_check: bool = True
    """Whether the fixture compares the world once more when the test ends (off for known-bug tests)."""

    def __repr__(self) -> str:
        return f"Watch(examples={self.examples})"

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for service, method in sorted(_EXECUTIONS | _TRAFFIC | _WRITES):
            client = aws.client(service)
            monkeypatch.setattr(client, method, self._spy(service, method, getattr(client, method)))
        ddb = aws.client("dynamodb")
        monkeypatch.setattr(ddb, "get_item", self._limited_get(ddb.get_item))
        monkeypatch.setattr(ddb, "query", self._limited_query(ddb.query))

    def _spy(self, service: str, method: str, real: Callable[..., Any]) -> Callable[..., Any]:
        """Count the call once it succeeded (a conditional write AWS refused changed nothing)."""

        def spy(**kwargs: Any) -> Any:
            answer = real(**kwargs)
            self.calls[(service, method)] += 1
            return answer

        return spy

    @staticmethod
    def _limited_get(real: Callable[..., Any]) -> Callable[..., Any]:
        def get_item(**kwargs: Any) -> Any:
            key = kwargs.get("Key", {})
            error = _key_too_long("GetItem", key.get("pk"), key.get("sk"))
            if error is not None:
                raise error
            return real(**kwargs)

        return get_item

    @staticmethod
    def _limited_query(real: Callable[..., Any]) -> Callable[..., Any]:
        def query(**kwargs: Any) -> Any:
            error = _key_too_long("Query", kwargs.get("ExpressionAttributeValues", {}).get(":pk"))
            if error is not None:
                raise error
            return real(**kwargs)

        return query

    def state(self) -> State:
        names = sorted(e["executionArn"] for e in self.flow.executions())
        return State(self.flow.items(), names, self.flow.weights())

    def counts(self) -> tuple[int, int, int]:
        """(executions started, traffic changes, other writes) so far."""
        executions = sum(self.calls[c] for c in _EXECUTIONS)
        traffic = sum(self.calls[c] for c in _TRAFFIC)
        writes = sum(self.calls[c] for c in _WRITES)
        return executions, traffic, writes

    def check_world(self, target: str) -> None:
        """The table, the executions and the weights are exactly as before the first example."""
        assert self.baseline is not None
        now = self.state()
        if now.executions != self.baseline.executions:
            TALLY.executions[target] += 1
        if now.weights != self.baseline.weights:
            TALLY.traffic[target] += 1
        if now.items != self.baseline.items:
            TALLY.writes[target] += 1
        assert now.executions == self.baseline.executions, "the state machine's executions changed"
        assert now.weights == self.baseline.weights, f"weights moved: {self.baseline.weights} → {now.weights}"
        assert now.items == self.baseline.items, "the table changed"

    @contextmanager
    def unchanged(self, target: str) -> Iterator[None]:
        """Run one example: tally it, and fail if it raised or changed anything."""
        if self.baseline is None:
            self.baseline = self.state()
        self.target = target
        TALLY.cases[target] += 1
        self.examples += 1
        counts = self.counts()
        try:
            yield
        except Exception:
            TALLY.exceptions[target] += 1
            raise
        finally:
            started, moved, wrote = (now - then for now, then in zip(self.counts(), counts, strict=True))
            TALLY.executions[target] += started
            TALLY.traffic[target] += moved
            TALLY.writes[target] += wrote
        assert started == 0, f"{started} execution(s) started"
        assert moved == 0, f"{moved} traffic change(s) requested"
        assert wrote == 0, f"{wrote} write(s): {dict(self.calls)}"
        if self.examples % FULL_CHECK_EVERY == 1:
            self.check_world(target)


@pytest.fixture
def watch(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> Iterator[Watch]:
    """Spies on the product's clients of the ``flow`` world; when the test ends, checks it once more."""
    watched = Watch(flow)
    watched.install(monkeypatch)
    yield watched
    if watched.final_check and watched.baseline is not None:
        watched.check_world(watched.target)


# ---- hostile values ----------------------------------------------------------------------------------

OVERSIZED_LENGTHS = (256, 264, 1025, 4097, 65_537, 200_000)
"""Just past each bound the models enforce, then far past them (up to 200,000 characters)."""


def oversized(prefix: str = "") -> st.SearchStrategy[str]:
    """A string of ``prefix`` plus filler, of one of :data:`OVERSIZED_LENGTHS` characters."""

    def build(unit: str, length: int) -> str:
        body = prefix + unit * (length // len(unit) + 1)
        return body[:length]

    return st.builds(
        build,
        st.sampled_from(["x", "9", "ab-", "é", "💥", "\u202e", "\x00", "ecs-svc/"]),
        st.sampled_from(OVERSIZED_LENGTHS),
    )


def long_text(alphabet: str, min_size: int, max_size: int) -> st.SearchStrategy[str]:
    """A long string of ``alphabet``: a short drawn pattern repeated to a drawn length (cheap to draw)."""

    def build(unit: str, length: int) -> str:
        return (unit * (length // len(unit) + 1))[:length]

    return st.builds(build, st.text(alphabet, min_size=1, max_size=8), st.integers(min_size, max_size))


SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
"""Lone surrogates: valid in a JSON escape (``"\\ud800"``), not in UTF-8."""

HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=20),
    st.lists(SURROGATE, min_size=1, max_size=3).map("".join),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "null",
            "None",
            "\u202eevil",
            "../../etc/passwd",
            "${jndi:ldap://x}",
            "'; DROP TABLE x; --",
            "[/]",
            "[bold]x[/bold]",
            "%s%s%n",
            "{{7*7}}",
            "ecs-svc/",
            "service:",
            "arn:",
        ]
    ),
)
"""Unicode of every category, control characters, surrogates and classic injection strings."""

TEXT = HOSTILE_TEXT.filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s))
"""Hostile text that is still a valid string (no lone surrogates): what a well-formed field may hold."""


SINGLE_LINE = HOSTILE_TEXT.filter(lambda s: len(s.splitlines()) <= 1 and not s.endswith(("\n", "\r")))
"""Hostile text without line breaks (for mapping keys whose names are printed one per line)."""


def json_values(max_leaves: int = 12, keys: st.SearchStrategy[str] = HOSTILE_TEXT) -> st.SearchStrategy[Any]:
    """Any JSON document (what EventBridge or Lambda could hand over)."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        HOSTILE_TEXT,
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
        max_leaves=max_leaves,
    )


WRONG_TYPES: st.SearchStrategy[Any] = st.one_of(
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.lists(st.integers(), min_size=0, max_size=3),
    st.dictionaries(st.sampled_from(["a", "S", "0"]), st.integers(), max_size=2),
)
"""Values of a JSON type other than a string (for string fields; None is left to each caller)."""


def problems_of(reason: str, prefix: str) -> list[tuple[str, str]]:
    """``(path, message)`` of each problem a rejection lists after ``prefix``."""
    assert reason.startswith(prefix), reason[:300]
    problems = []
    for part in reason.removeprefix(prefix).split("; "):
        path, sep, message = part.partition(": ")
        assert sep, f"a problem without a field path: {part[:300]!r}"
        assert path, f"a problem without a field path: {part[:300]!r}"
        assert message, f"a problem without a message: {part[:300]!r}"
        problems.append((path, message))
    return problems


def short(value: Any, limit: int = 300) -> str:
    """``repr`` of a value, cut for assertion messages."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"
