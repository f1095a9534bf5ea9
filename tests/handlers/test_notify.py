"""Lifecycle events on EventBridge (read back through a rule into SQS, in moto) and EMF metrics."""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass, replace
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber
from ecs_canary import aws
from ecs_canary.flow import notify
from ecs_canary.flow.notify import DETAIL_TYPES, IMPORTANT, SOURCE, LifecycleEvent, emit, event_json_schema
from ecs_canary.spec import parse_spec
from ecs_canary.store import Deployment, Release, Status
from flow_fixtures import ACCOUNT, BLUE, GREEN, PAIR, REGION, Flow, catch

pytest_plugins = ["flow_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

TRANSITIONS: tuple[str, ...] = typing.get_args(notify.Transition)
EXECUTION = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:CanaryStateMachine:web-1"
RELEASE = Release(GREEN, "ecs-svc/7", f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web-green:7")
RECORD = Deployment(
    pair=PAIR,
    deployment_id="web-1",
    status=Status.RUNNING,
    service=GREEN,
    live_service=BLUE,
    release=RELEASE,
    created_at="2026-01-01T00:00:00.000Z",
    updated_at="2026-01-01T00:05:00.000Z",
    reason="the record's own reason",
    execution_arn=EXECUTION,
    weights={BLUE: 90, GREEN: 10},
    step_index=0,
    percent=10,
)


@dataclass
class Bus:
    """What a rule matching ``source: ecs-canary`` delivers (to an SQS queue)."""

    sqs: Any
    queue_url: str

    def received(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
            messages = got.get("Messages", [])
            if not messages:
                return out
            for message in messages:
                out.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


def _bus() -> Bus:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="ecs-canary-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = boto3.client("events", region_name=REGION)
    events.put_rule(Name="ecs-canary-events", EventPattern=json.dumps({"source": [SOURCE]}))
    events.put_targets(Rule="ecs-canary-events", Targets=[{"Id": "queue", "Arn": arn}])
    return Bus(sqs, url)


@pytest.fixture
def bus(mocked_aws: None) -> Bus:
    return _bus()


def _jsonschema() -> Any:
    return pytest.importorskip("jsonschema")


# ---- the detail types ----------------------------------------------------------------------------------


def test_every_transition_has_its_own_detail_type() -> None:
    assert set(DETAIL_TYPES) == set(TRANSITIONS)
    assert len(set(DETAIL_TYPES.values())) == len(DETAIL_TYPES)
    assert all(v.startswith("Deployment ") for v in DETAIL_TYPES.values())
    assert set(IMPORTANT) <= set(TRANSITIONS)


# ---- emit ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transition", TRANSITIONS)
def test_emit_puts_one_event_per_transition(bus: Bus, transition: Any) -> None:
    assert emit(transition, RECORD, reason="because", by="jane", gate="approval:x", seconds=3) is True

    (event,) = bus.received()
    assert event["source"] == SOURCE
    assert event["detail-type"] == DETAIL_TYPES[transition]
    assert event["resources"] == [EXECUTION]
    detail = LifecycleEvent.model_validate(event["detail"])
    assert detail.transition == transition
    assert detail.model_dump(exclude={"at", "transition"}) == {
        "version": "1",
        "pair": PAIR,
        "deployment_id": "web-1",
        "service": GREEN,
        "live_service": BLUE,
        "release": RELEASE.to_dict(),
        "status": "RUNNING",
        "step_index": 0,
        "percent": 10,
        "weights": {BLUE: 90, GREEN: 10},
        "reason": "because",
        "by": "jane",
        "execution_arn": EXECUTION,
        "data": {"gate": "approval:x", "seconds": 3},
    }
    assert detail.at.endswith("Z")


@pytest.mark.parametrize(
    ("record", "reason", "expected"),
    [
        pytest.param(RECORD, None, "the record's own reason", id="record-reason"),
        pytest.param(RECORD, "", "", id="empty-reason-kept"),
        pytest.param(replace(RECORD, reason=None), None, None, id="no-reason"),
    ],
)
def test_emit_falls_back_to_the_records_reason(
    bus: Bus, record: Deployment, reason: str | None, expected: str | None
) -> None:
    emit("failed", record, reason=reason)

    (event,) = bus.received()
    assert event["detail"]["reason"] == expected
    assert event["detail"]["by"] is None
    assert event["detail"]["data"] == {}


def test_an_event_of_a_record_without_an_execution_names_no_resource(bus: Bus) -> None:
    record = replace(RECORD, execution_arn=None, status=Status.STARTING, step_index=None, percent=None)

    assert emit("started", record) is True

    (event,) = bus.received()
    assert event["resources"] == []
    assert event["detail"]["execution_arn"] is None
    assert (event["detail"]["step_index"], event["detail"]["percent"]) == (None, None)


def _metrics(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param("AccessDeniedException", id="access-denied"),
        pytest.param("ThrottlingException", id="throttled"),
        pytest.param("entry-failed", id="failed-entry"),
    ],
)
def test_a_failing_put_events_returns_false_and_is_counted(
    mocked_aws: None, capsys: pytest.CaptureFixture[str], failure: str
) -> None:
    client = boto3.client("events", region_name=REGION)
    with Stubber(client) as stub:
        if failure == "entry-failed":
            stub.add_response(
                "put_events",
                {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "x"}]},
            )
        else:
            stub.add_client_error("put_events", failure, "no")

        assert emit("failed", RECORD, reason="x", events=client) is False

        stub.assert_no_pending_responses()
    (counted,) = [m for m in _metrics(capsys.readouterr().out) if "EventsNotPublished" in m]
    assert counted["Pair"] == PAIR
    assert counted["EventsNotPublished"] in (1, 1.0, [1.0])


def test_an_unreachable_event_bus_never_fails_the_caller(
    mocked_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = aws.client("events")

    def unreachable(**kwargs: Any) -> Any:
        raise EndpointConnectionError(endpoint_url="https://events.us-east-1.amazonaws.com")

    monkeypatch.setattr(client, "put_events", unreachable)

    assert emit("succeeded", RECORD) is False


# ---- the published JSON Schema ---------------------------------------------------------------------------


def test_event_json_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema = _jsonschema()
    schema = event_json_schema()

    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == notify.EVENT_SCHEMA_TITLE
    assert set(schema["properties"]["transition"]["enum"]) == set(TRANSITIONS)
    assert set(schema["required"]) >= {"version", "transition", "pair", "deployment_id", "status", "at"}


def test_event_json_schema_validates_a_real_detail_and_refuses_broken_ones(bus: Bus) -> None:
    jsonschema = _jsonschema()
    validator = jsonschema.Draft202012Validator(event_json_schema())
    emit("hook_failed", RECORD, reason="hook x failed", hook="ecs-canary-hook", stage="after_test_traffic")
    (event,) = bus.received()
    detail = event["detail"]

    assert list(validator.iter_errors(detail)) == []

    broken: list[dict[str, Any]] = [
        {k: v for k, v in detail.items() if k != "transition"},
        {**detail, "version": "2"},
        {**detail, "transition": "exploded"},
        {**detail, "weights": {BLUE: "ninety"}},
    ]
    for doc in broken:
        assert list(validator.iter_errors(doc)) != [], doc
    # Fields may be added within a version: a consumer validating with the schema keeps accepting them.
    assert list(validator.iter_errors({**detail, "added_in_1_1": {"x": 1}})) == []


# ---- transitions of a real deployment --------------------------------------------------------------------


def test_an_approval_gate_emits_awaiting_approval_then_approved(flow: Flow) -> None:
    bus = _bus()
    doc = json.loads(flow.spec("alb").model_dump_json())
    doc["approvals"] = {"before_production_traffic": {"timeout_seconds": 900, "on_timeout": "continue"}}
    flow.set_weights({BLUE: 100, GREEN: 0})
    flow.store.put_pair(parse_spec(doc), live_service=BLUE, idle_baseline=flow.deployment_of(GREEN))
    run, prepared = flow.rolling(GREEN)
    run.advance(prepared)
    flow.command("approve", reason="lgtm")
    run.advance(run.reenter(prepared))

    events = bus.received()

    assert [e["detail"]["transition"] for e in events] == [
        "started",
        "steady",
        "awaiting_approval",
        "approved",
        "shifted",
    ]
    assert all(e["detail-type"] == DETAIL_TYPES[e["detail"]["transition"]] for e in events)
    asked, approved = events[2]["detail"], events[3]["detail"]
    assert asked["data"] == {
        "gate": "approval:before_production_traffic",
        "timeout_seconds": 900,
        "on_timeout": "continue",
    }
    assert asked["reason"] == "waiting up to 900 s for approval at before_production_traffic"
    assert (approved["by"], approved["reason"]) == ("arn:aws:iam::123456789012:user/jane", "lgtm")
    assert approved["data"] == {"gate": "approval:before_production_traffic"}
    assert {e["detail"]["deployment_id"] for e in events} == {run.deployment_id}


# ---- metrics ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "unit"),
    [
        pytest.param("HookSeconds", 2.5, notify.MetricUnit.Seconds, id="seconds"),
        pytest.param("GreenPercent", 50, notify.MetricUnit.Percent, id="percent"),
        pytest.param("Rollbacks", 1, None, id="count-by-default"),
    ],
)
def test_metric_prints_one_emf_document_with_the_pair_dimension(
    capsys: pytest.CaptureFixture[str], name: str, value: float, unit: notify.MetricUnit | None
) -> None:
    if unit is None:
        notify.metric(name, value, "checkout")
    else:
        notify.metric(name, value, "checkout", unit)

    (doc,) = _metrics(capsys.readouterr().out)
    (directive,) = doc["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "EcsCanary"
    (dimensions,) = directive["Dimensions"]
    assert "Pair" in dimensions
    assert directive["Metrics"] == [{"Name": name, "Unit": (unit or notify.MetricUnit.Count).value}]
    assert doc["Pair"] == "checkout"
    assert doc[name] in (value, [value], float(value), [float(value)])
    assert isinstance(doc["_aws"]["Timestamp"], int)


# ---- a retry after the close emits the terminal event again (at least once) -------------------------------


def _terminal(events: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    return [(e["detail"]["transition"], bool(e["detail"]["data"].get("repeated"))) for e in events]


def test_a_rollback_retried_after_the_close_emits_the_terminal_event_again(flow: Flow) -> None:
    """The call that closed the record may have died before it emitted: the retry emits it again."""
    bus = _bus()
    flow.register("alb")
    run, state = flow.rolling(GREEN)
    run.to_step(state, 1)
    run.rollback(catch("GreenUnhealthy", "alarm"))
    first = bus.received()
    assert ("failed", False) in _terminal(first)

    run.rollback(catch("GreenUnhealthy", "alarm"))

    assert _terminal(bus.received()) == [("failed", True)]
    assert run.record().status is Status.FAILED


def test_a_rollback_failure_recorded_twice_emits_and_counts_again(
    flow: Flow, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stack's alarm watches RollbacksFailed: a retry after the record must count it again."""
    bus = _bus()
    flow.register("alb")
    run, state = flow.rolling(GREEN)
    run.to_step(state, 1)
    run.rollback_failed(None, catch("ShiftNotVerified", "weights did not take"))
    assert _terminal(bus.received())[-1] == ("rollback_failed", False)
    capsys.readouterr()

    again = run.rollback_failed(None, catch("ShiftNotVerified", "weights did not take"))

    assert again["status"] == "ROLLBACK_FAILED"
    assert again["weights"] == run.record().weights
    assert _terminal(bus.received()) == [("rollback_failed", True)]
    assert any("RollbacksFailed" in doc for doc in _metrics(capsys.readouterr().out))


def test_a_promotion_retried_after_the_close_emits_succeeded_again(flow: Flow) -> None:
    bus = _bus()
    flow.register("alb")
    run, state = flow.rolling(GREEN)
    state = run.to_step(state, 2)
    run.promote(state)
    assert _terminal(bus.received())[-1] == ("succeeded", False)

    run.promote(state)

    assert _terminal(bus.received()) == [("succeeded", True)]
    assert run.record().status is Status.SUCCEEDED


def test_recording_a_rollback_failure_after_the_rollback_closed_counts_nothing(
    flow: Flow, capsys: pytest.CaptureFixture[str]
) -> None:
    """The rollback closed the record FAILED: a late "Record that the rollback failed" is no failure."""
    flow.register("alb")
    run, state = flow.rolling(GREEN)
    run.to_step(state, 1)
    run.rollback(catch("GreenUnhealthy", "alarm"))
    capsys.readouterr()

    result = run.rollback_failed(None, catch("X", "y"))

    assert result["status"] == "FAILED"
    assert not any("RollbacksFailed" in doc for doc in _metrics(capsys.readouterr().out))
