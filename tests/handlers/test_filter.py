"""The filter handler: ECS task events of a registered pair's idle service → exactly one deployment."""

from __future__ import annotations

import copy
import json
import re
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError
from ecs_canary import aws
from ecs_canary.canary import deployment_id_for
from ecs_canary.store import Release
from flow_fixtures import BLUE, CLUSTER, GREEN, PAIR, REGION, Flow

pytest_plugins = ["flow_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


def _records(flow: Flow) -> list[dict[str, Any]]:
    return [i for i in flow.items() if i["sk"].startswith("DEPLOYMENT#")]


# ---- events that must not start anything ----------------------------------------------------------


def _unregistered(flow: Flow) -> dict[str, Any]:
    return flow.task_event("payments", "ecs-svc/1234")


def _other_cluster(flow: Flow) -> dict[str, Any]:
    return flow.task_event(
        GREEN, "ecs-svc/1234", cluster=f"arn:aws:ecs:{REGION}:123456789012:cluster/staging"
    )


def _live_task(flow: Flow) -> dict[str, Any]:
    return flow.task_event(BLUE, flow.deployment_of(BLUE))


def _live_new_release(flow: Flow) -> dict[str, Any]:
    return flow.task_event(BLUE, "ecs-svc/5555")


def _idle_baseline(flow: Flow) -> dict[str, Any]:
    return flow.task_event(GREEN, flow.deployment_of(GREEN))


def _standalone_task(flow: Flow) -> dict[str, Any]:
    return flow.task_event(None, "ecs-svc/1234")


def _not_by_deployment(flow: Flow) -> dict[str, Any]:
    return flow.task_event(GREEN, "events-rule/nightly")


def _pending(flow: Flow) -> dict[str, Any]:
    return flow.task_event(GREEN, "ecs-svc/1234", last_status="PENDING")


@pytest.mark.parametrize(
    ("make_event", "reason"),
    [
        pytest.param(_unregistered, "payments is not part of a registered pair", id="unregistered-service"),
        pytest.param(
            _other_cluster, "web-green is not part of a registered pair", id="same-name-other-cluster"
        ),
        pytest.param(_live_task, "web-blue is the live service of web", id="live-service-task"),
        pytest.param(_live_new_release, "web-blue is the live service of web", id="live-service-release"),
        pytest.param(_idle_baseline, "already ran when it became idle", id="idle-baseline-release"),
        pytest.param(_standalone_task, "was not started by a service", id="non-service-task"),
        pytest.param(_not_by_deployment, "not started by an ECS service deployment", id="not-ecs-svc"),
        pytest.param(_pending, "not RUNNING", id="not-running"),
    ],
)
def test_ignored_events_write_nothing(
    flow: Flow, make_event: Callable[[Flow], dict[str, Any]], reason: str
) -> None:
    flow.register()
    before = flow.items()

    result = flow.invoke("filter", make_event(flow))

    assert result["action"] == "ignored"
    assert reason in result["reason"]
    assert flow.items() == before
    assert flow.executions() == []


# ---- malformed events ------------------------------------------------------------------------------


def _without(*path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(event: dict[str, Any]) -> None:
        target = event
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


def _with(value: Any, *path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(event: dict[str, Any]) -> None:
        target = event
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        pytest.param(_without("detail", "taskArn"), "detail.taskArn", id="missing-taskArn"),
        pytest.param(_with(12345, "detail", "taskArn"), "detail.taskArn", id="taskArn-int"),
        pytest.param(
            _with("", "detail", "taskDefinitionArn"), "detail.taskDefinitionArn", id="empty-taskdef"
        ),
        pytest.param(_with(["ecs-svc/1"], "detail", "startedBy"), "detail.startedBy", id="startedBy-list"),
        pytest.param(_with("RUNNING", "detail"), "detail", id="detail-string"),
        pytest.param(_without("detail-type"), "detail-type", id="missing-detail-type"),
        pytest.param(_with("yesterday", "time"), "time", id="bad-time"),
    ],
)
def test_malformed_event_is_rejected_naming_the_field(
    flow: Flow, mutate: Callable[[dict[str, Any]], None], field: str
) -> None:
    flow.register()
    before = flow.items()
    event = flow.task_event(GREEN, flow.new_release(GREEN))
    mutate(event)

    result = flow.invoke("filter", event)

    assert result["action"] == "rejected"
    assert result["reason"].startswith("malformed ECS Task State Change event: ")
    fields = [
        line.split(": ", 1)[0]
        for line in result["reason"].removeprefix("malformed ECS Task State Change event: ").split("; ")
    ]
    assert any(f.endswith(field) for f in fields), result["reason"]
    assert set(result) == {"action", "reason"}
    assert flow.items() == before
    assert flow.executions() == []


# ---- a new release ---------------------------------------------------------------------------------


def test_new_release_starts_exactly_one_execution(flow: Flow) -> None:
    flow.register()
    release = flow.new_release(GREEN)
    event = flow.task_event(GREEN, release)
    expected_id = deployment_id_for(PAIR, Release(GREEN, release, flow.task_definitions[GREEN]))

    result = flow.invoke("filter", event)

    assert result == {
        "action": "started",
        "reason": f"execution {expected_id} started for {release}",
        "deployment_id": expected_id,
        "pair": PAIR,
    }
    assert expected_id.startswith(f"{PAIR}-{GREEN}-")
    (execution,) = flow.executions()
    assert execution["name"] == expected_id
    assert execution["status"] == "RUNNING"
    assert flow.execution_input(execution["executionArn"]) == {
        "pair": PAIR,
        "deployment_id": expected_id,
        "release": {"service": GREEN, "deployment": release, "task_definition": flow.task_definitions[GREEN]},
    }
    (record,) = _records(flow)
    assert record["sk"] == f"DEPLOYMENT#{expected_id}"
    assert record["status"] == "RUNNING"
    assert record["execution_arn"] == execution["executionArn"]
    assert record["service"] == GREEN
    assert record["live_service"] == BLUE
    assert [h["event"] for h in record["history"]] == ["claimed", "started"]
    assert flow.lock() == expected_id


def test_same_release_redelivered_and_reordered_starts_once(
    flow: Flow, shuffled: Callable[[list[Any]], list[Any]]
) -> None:
    flow.register()
    release = flow.new_release(GREEN)
    event = flow.task_event(GREEN, release)
    siblings = [flow.task_event(GREEN, release) for _ in range(5)]  # the release's other tasks
    events = shuffled([copy.deepcopy(event) for _ in range(20)] + siblings)

    results = [flow.invoke("filter", e) for e in events]

    actions = Counter(r["action"] for r in results)
    assert actions == {"started": 1, "duplicate": 24}
    assert {r["deployment_id"] for r in results} == {results[0]["deployment_id"]}
    assert all(
        r["reason"] == "release already handled (RUNNING)" for r in results if r["action"] == "duplicate"
    )
    (execution,) = flow.executions()
    (record,) = _records(flow)
    assert record["status"] == "RUNNING"
    assert record["execution_arn"] == execution["executionArn"]
    assert flow.lock() == execution["name"] == record["deployment_id"]


def test_same_release_from_8_threads_starts_once(flow: Flow) -> None:
    flow.register()
    release = flow.new_release(GREEN)
    events = [flow.task_event(GREEN, release) for _ in range(4)]
    barrier = threading.Barrier(8)

    def deliver(i: int) -> dict[str, Any]:
        barrier.wait(timeout=10)
        return dict(flow.invoke("filter", copy.deepcopy(events[i % len(events)])))

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(deliver, range(8)))

    assert {r["action"] for r in results} <= {"started", "duplicate"}, results
    assert any(r["action"] == "started" for r in results)
    (execution,) = flow.executions()
    (record,) = _records(flow)
    assert record["status"] == "RUNNING"
    assert record["execution_arn"] == execution["executionArn"]
    assert flow.lock() == record["deployment_id"] == execution["name"]


# ---- one deployment per pair ----------------------------------------------------------------------


def test_other_release_while_active_is_rejected(flow: Flow) -> None:
    flow.register()
    active_id, _ = flow.start(GREEN)
    second = flow.new_release(GREEN)
    event = flow.task_event(GREEN, second)

    result = flow.invoke("filter", event)

    assert result["action"] == "rejected"
    assert active_id in result["reason"]
    assert second in result["reason"]
    rejected_id = result["deployment_id"]
    assert rejected_id != active_id
    rejected = flow.item(f"DEPLOYMENT#{rejected_id}")
    assert rejected is not None
    assert rejected["status"] == "REJECTED"
    assert rejected["reason"] == result["reason"]
    assert rejected["ended_at"]
    assert flow.lock() == active_id
    assert [e["name"] for e in flow.executions()] == [active_id]

    # The rejected release's other tasks do not overwrite the record or start anything.
    again = flow.invoke("filter", flow.task_event(GREEN, second))
    assert again["action"] == "duplicate"
    assert "REJECTED" in again["reason"]
    assert flow.item(f"DEPLOYMENT#{rejected_id}") == rejected
    assert len(flow.executions()) == 1
    active = flow.item(f"DEPLOYMENT#{active_id}")
    assert active is not None
    assert active["status"] == "RUNNING"


def _throttled(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, operation)


@pytest.mark.parametrize("crash", ["before-start", "after-start"])
def test_start_execution_failure_leaves_a_retryable_claim(
    flow: Flow, monkeypatch: pytest.MonkeyPatch, crash: str
) -> None:
    """The Lambda fails (EventBridge retries it): the claim stays STARTING, the retry starts it."""
    flow.register()
    sfn = aws.client("stepfunctions")
    real = sfn.start_execution
    calls: list[dict[str, Any]] = []

    def flaky(**kwargs: Any) -> Any:
        calls.append(kwargs)
        if len(calls) == 1:
            if crash == "after-start":
                real(**kwargs)
            raise _throttled("StartExecution")
        return real(**kwargs)

    monkeypatch.setattr(sfn, "start_execution", flaky)
    event = flow.task_event(GREEN, flow.new_release(GREEN))

    with pytest.raises(ClientError, match="ThrottlingException"):
        flow.invoke("filter", event)

    (record,) = _records(flow)
    deployment_id = record["deployment_id"]
    assert record["status"] == "STARTING"
    assert "execution_arn" not in record
    assert flow.lock() == deployment_id
    assert len(flow.executions()) == (1 if crash == "after-start" else 0)

    retried = flow.invoke("filter", event)

    assert retried["action"] == "started"
    assert retried["deployment_id"] == deployment_id
    assert len(calls) == 2
    assert calls[0] == calls[1]  # same name and input: Step Functions dedupes
    (execution,) = flow.executions()
    assert execution["name"] == deployment_id
    record = flow.item(f"DEPLOYMENT#{deployment_id}") or {}
    assert record["status"] == "RUNNING"
    assert record["execution_arn"] == execution["executionArn"]
    assert flow.lock() == deployment_id
    # A third delivery is now a plain duplicate.
    assert flow.invoke("filter", event)["action"] == "duplicate"
    assert len(flow.executions()) == 1


def test_retry_after_the_execution_already_ended_records_its_arn(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started, crashed before recording it, execution closed: the retry gets ExecutionAlreadyExists."""
    flow.register()
    sfn = aws.client("stepfunctions")
    real = sfn.start_execution
    calls: list[str] = []

    def started_then_closed(**kwargs: Any) -> Any:
        calls.append(kwargs["name"])
        if len(calls) == 1:
            real(**kwargs)
            raise _throttled("StartExecution")
        raise ClientError(
            {"Error": {"Code": "ExecutionAlreadyExists", "Message": "Execution Already Exists"}},
            "StartExecution",
        )

    monkeypatch.setattr(sfn, "start_execution", started_then_closed)
    event = flow.task_event(GREEN, flow.new_release(GREEN))
    with pytest.raises(ClientError):
        flow.invoke("filter", event)

    result = flow.invoke("filter", event)

    assert result["action"] == "started"
    (execution,) = flow.executions()
    record = flow.item(f"DEPLOYMENT#{result['deployment_id']}") or {}
    assert record["status"] == "RUNNING"
    assert record["execution_arn"] == execution["executionArn"]  # derived, and equal to the real one


@pytest.mark.parametrize(
    ("pair", "service"),
    [
        ("web", GREEN),
        ("a" * 40, "s" * 255),
        ("p", "svc_with_underscores-and-dashes"),
        ("checkout", "___"),
    ],
)
def test_deployment_id_is_a_valid_execution_name(pair: str, service: str) -> None:
    release = Release(service, "ecs-svc/123", "arn:aws:ecs:us-east-1:123456789012:task-definition/x:1")
    name = deployment_id_for(pair, release)
    assert name == deployment_id_for(pair, release)
    assert len(name) <= 80
    assert re.fullmatch(r"[A-Za-z0-9_-]+", name)
    assert name.startswith(f"{pair}-")
    others = {
        deployment_id_for(pair, Release(service, "ecs-svc/124", release.task_definition)),
        deployment_id_for(pair, Release(service, release.deployment, release.task_definition + "0")),
        deployment_id_for(pair + "x", release),
    }
    assert name not in others
    assert len(others) == 3


def test_non_retryable_start_error_propagates(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    flow.register()
    sfn = aws.client("stepfunctions")

    def denied(**kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "StartExecution")

    monkeypatch.setattr(sfn, "start_execution", denied)
    with pytest.raises(ClientError, match="AccessDenied"):
        flow.invoke("filter", flow.task_event(GREEN, flow.new_release(GREEN)))
    (record,) = _records(flow)
    assert record["status"] == "STARTING"


# ---- after a promotion ---------------------------------------------------------------------------


def _promote(flow: Flow) -> str:
    state = flow.prepared(GREEN)
    while not state["cursor"]["complete"]:
        state = flow.advance(state)
    assert flow.invoke("promote", {"deployment": state["deployment"], "cursor": state["cursor"]}) == {
        "live_service": GREEN
    }
    return str(state["deployment"]["deployment_id"])


def test_release_after_promotion_goes_to_the_other_service(flow: Flow) -> None:
    flow.register()
    blue_release = flow.deployment_of(BLUE)
    first = _promote(flow)
    pair = flow.item("SPEC")
    assert pair is not None
    assert pair["live_service"] == GREEN
    assert pair["idle_baseline"] == blue_release
    assert flow.lock() is None

    # Old live service, now idle: its running release (scaling, replacements) is not a deployment.
    old = flow.invoke("filter", flow.task_event(BLUE, blue_release))
    assert old["action"] == "ignored"
    assert "already ran when it became idle" in old["reason"]
    # The new live service's tasks are ignored too, even of the release just promoted.
    promoted = flow.invoke("filter", flow.task_event(GREEN, flow.deployment_of(GREEN)))
    assert promoted["action"] == "ignored"
    assert "live service" in promoted["reason"]
    assert len(flow.executions()) == 1

    release = flow.new_release(BLUE)
    result = flow.invoke("filter", flow.task_event(BLUE, release))

    assert result["action"] == "started"
    second = result["deployment_id"]
    assert second != first
    assert second.startswith(f"{PAIR}-{BLUE}-")
    assert sorted(e["name"] for e in flow.executions()) == sorted([first, second])
    record = flow.item(f"DEPLOYMENT#{second}") or {}
    assert (record["service"], record["live_service"], record["status"]) == (BLUE, GREEN, "RUNNING")
    assert flow.lock() == second
    execution = next(e for e in flow.executions() if e["name"] == second)
    assert json.loads(flow.sfn.describe_execution(executionArn=execution["executionArn"])["input"])[
        "release"
    ] == {"service": BLUE, "deployment": release, "task_definition": flow.task_definitions[BLUE]}


def test_cluster_name_and_arn_name_the_same_pair(flow: Flow) -> None:
    flow.register()
    release = flow.new_release(GREEN)
    by_arn = flow.invoke("filter", flow.task_event(GREEN, release))
    by_name = flow.invoke("filter", flow.task_event(GREEN, release, cluster=CLUSTER))
    assert (by_arn["action"], by_name["action"]) == ("started", "duplicate")
    assert by_arn["deployment_id"] == by_name["deployment_id"]
