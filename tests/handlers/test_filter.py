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
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError
from ecs_canary import aws
from ecs_canary.flow.identity import deployment_id_for
from ecs_canary.store import Release, Status
from flow_fixtures import ACCOUNT, BLUE, CLUSTER, CLUSTER_ARN, GREEN, PAIR, REGION, TOKEN, Flow

pytest_plugins = ["flow_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


# ---- events that must not start anything ----------------------------------------------------------


def _unregistered(flow: Flow) -> dict[str, Any]:
    return flow.task_event("payments", flow.new_release(GREEN))


def _other_cluster_name(flow: Flow) -> dict[str, Any]:
    return flow.task_event(
        GREEN, flow.new_release(GREEN), cluster=f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/staging"
    )


def _other_account(flow: Flow) -> dict[str, Any]:
    return flow.task_event(
        GREEN, flow.new_release(GREEN), cluster=f"arn:aws:ecs:{REGION}:999999999999:cluster/{CLUSTER}"
    )


def _other_region(flow: Flow) -> dict[str, Any]:
    return flow.task_event(
        GREEN, flow.new_release(GREEN), cluster=f"arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/{CLUSTER}"
    )


def _live_task(flow: Flow) -> dict[str, Any]:
    return flow.task_event(BLUE, flow.deployment_of(BLUE))


def _live_new_release(flow: Flow) -> dict[str, Any]:
    return flow.task_event(BLUE, flow.new_release(BLUE))


def _idle_baseline(flow: Flow) -> dict[str, Any]:
    return flow.task_event(GREEN, flow.deployment_of(GREEN))


def _standalone_task(flow: Flow) -> dict[str, Any]:
    return flow.task_event(None, "ecs-svc/1234")


def _not_by_deployment(flow: Flow) -> dict[str, Any]:
    flow.new_release(GREEN)
    return flow.task_event(GREEN, "events-rule/nightly")


def _no_started_by(flow: Flow) -> dict[str, Any]:
    flow.new_release(GREEN)
    return flow.task_event(GREEN, None)


def _forged_deployment(flow: Flow) -> dict[str, Any]:
    flow.new_release(GREEN)
    return flow.task_event(GREEN, "ecs-svc/1234")  # looks like a deployment, ECS never issued it


def _replaced_release(flow: Flow) -> dict[str, Any]:
    old = flow.new_release(GREEN)
    flow.new_release(GREEN)  # ECS replaced it and no longer lists it
    return flow.task_event(GREEN, old)


def _draining_release(flow: Flow) -> dict[str, Any]:
    old = flow.new_release(GREEN)
    flow.new_release(GREEN, keep_previous=True)  # still listed (ACTIVE, draining), not PRIMARY
    return flow.task_event(GREEN, old)


def _pending(flow: Flow) -> dict[str, Any]:
    return flow.task_event(GREEN, flow.new_release(GREEN), last_status="PENDING")


def _stopping(flow: Flow) -> dict[str, Any]:
    return flow.task_event(GREEN, flow.new_release(GREEN), desired_status="STOPPED")


@pytest.mark.parametrize(
    ("make_event", "reason"),
    [
        pytest.param(_unregistered, "payments is not part of a registered pair", id="unregistered-service"),
        pytest.param(
            _other_cluster_name, "web-green is not part of a registered pair", id="same-service-other-cluster"
        ),
        pytest.param(
            _other_account,
            "is in account 999999999999, not 123456789012; not a release of web",
            id="other-account",
        ),
        pytest.param(_other_region, "is in region eu-west-1, not us-east-1", id="other-region"),
        pytest.param(_live_task, "web-blue is the live service of web", id="live-service-task"),
        pytest.param(_live_new_release, "web-blue is the live service of web", id="live-service-release"),
        pytest.param(_idle_baseline, "already ran when it became idle", id="idle-baseline-release"),
        pytest.param(_standalone_task, "was not started by a service", id="non-service-task"),
        pytest.param(_not_by_deployment, "not started by an ECS service deployment", id="not-ecs-svc"),
        pytest.param(_no_started_by, "not started by an ECS service deployment", id="no-started-by"),
        pytest.param(
            _forged_deployment,
            "ecs-svc/1234 is not a current ECS deployment of web-green",
            id="not-an-ecs-deployment",
        ),
        pytest.param(
            _replaced_release, "is not a current ECS deployment of web-green", id="replaced-release"
        ),
        pytest.param(
            _draining_release, "is no longer the primary deployment of web-green", id="non-primary-release"
        ),
        pytest.param(_pending, "not RUNNING", id="not-running"),
        pytest.param(_stopping, "RUNNING/STOPPED, not RUNNING", id="being-stopped"),
    ],
)
def test_ignored_events_write_nothing(
    flow: Flow, make_event: Callable[[Flow], dict[str, Any]], reason: str
) -> None:
    flow.register()
    event = make_event(flow)
    before = flow.items()

    result = flow.invoke("filter", event)

    assert result["action"] == "ignored", result
    assert reason in result["reason"]
    assert flow.items() == before
    assert flow.executions() == []


@pytest.mark.parametrize(
    ("cluster", "started"),
    [
        pytest.param(CLUSTER_ARN, True, id="the-registered-arn"),
        pytest.param(f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER}x", False, id="other-name"),
        pytest.param(f"arn:aws-us-gov:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER}", False, id="other-partition"),
    ],
)
def test_a_pair_registered_with_its_cluster_arn_only_takes_that_cluster(
    flow: Flow, cluster: str, started: bool
) -> None:
    flow.register(cluster_arn=CLUSTER_ARN)
    release = flow.new_release(GREEN)

    result = flow.invoke("filter", flow.task_event(GREEN, release, cluster=cluster))

    if started:
        assert result["action"] == "started"
        assert len(flow.executions()) == 1
    else:
        assert result["action"] == "ignored"
        assert flow.executions() == []
        assert flow.records() == []


def test_describe_services_failure_is_an_ignore_naming_it(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow.register()
    release = flow.new_release(GREEN)

    def cluster_gone(**kwargs: Any) -> Any:
        raise ClientError(
            {"Error": {"Code": "ClusterNotFoundException", "Message": "Cluster not found."}},
            "DescribeServices",
        )

    monkeypatch.setattr(aws.client("ecs"), "describe_services", cluster_gone)

    result = flow.invoke("filter", flow.task_event(GREEN, release))

    assert result["action"] == "ignored"
    assert f"cannot confirm release {release}: ECS cluster {CLUSTER} does not exist" in result["reason"]
    assert flow.records() == []
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


TD = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web-green:2"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        pytest.param(_without("detail", "taskArn"), "detail.taskArn", id="missing-taskArn"),
        pytest.param(_with(12345, "detail", "taskArn"), "detail.taskArn", id="taskArn-int"),
        pytest.param(_with("task/1", "detail", "taskArn"), "detail.taskArn", id="taskArn-not-an-arn"),
        pytest.param(
            _with("", "detail", "taskDefinitionArn"), "detail.taskDefinitionArn", id="empty-taskdef"
        ),
        pytest.param(
            _with(TD + "x" * 300, "detail", "taskDefinitionArn"),
            "detail.taskDefinitionArn",
            id="oversized-taskdef",
        ),
        pytest.param(_with(CLUSTER, "detail", "clusterArn"), "detail.clusterArn", id="cluster-name-not-arn"),
        pytest.param(
            _with(f"arn:aws:ecs:{REGION}:12345:cluster/{CLUSTER}", "detail", "clusterArn"),
            "detail.clusterArn",
            id="cluster-short-account",
        ),
        pytest.param(_with(["ecs-svc/1"], "detail", "startedBy"), "detail.startedBy", id="startedBy-list"),
        pytest.param(
            _with("ecs-svc/" + "1" * 121, "detail", "startedBy"), "detail.startedBy", id="startedBy-129"
        ),
        pytest.param(
            _with("ecs-svc/1;drop", "detail", "startedBy"), "detail.startedBy", id="startedBy-charset"
        ),
        pytest.param(_with("service:" + "g" * 256, "detail", "group"), "detail.group", id="group-oversized"),
        pytest.param(_with("HAPPY", "detail", "lastStatus"), "detail.lastStatus", id="unknown-lastStatus"),
        pytest.param(
            _with("x" * 1025, "detail", "stoppedReason"), "detail.stoppedReason", id="oversized-reason"
        ),
        pytest.param(
            _with([{"name": "app"}] * 101, "detail", "containers"),
            "detail.containers",
            id="too-many-containers",
        ),
        pytest.param(
            _with([{"name": "app", "exitCode": 2**40}], "detail", "containers"),
            "detail.containers.0.exitCode",
            id="exit-code-out-of-range",
        ),
        pytest.param(_with("RUNNING", "detail"), "detail", id="detail-string"),
        pytest.param(_without("detail-type"), "detail-type", id="missing-detail-type"),
        pytest.param(_with("yesterday", "time"), "time", id="bad-time"),
    ],
)
def test_malformed_event_is_rejected_naming_the_field(
    flow: Flow, mutate: Callable[[dict[str, Any]], None], field: str
) -> None:
    flow.register()
    event = flow.task_event(GREEN, flow.new_release(GREEN))
    before = flow.items()
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


def test_new_release_starts_exactly_one_owned_execution(flow: Flow) -> None:
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
    assert execution["executionArn"] == flow.execution_arn(expected_id)
    assert flow.execution_input(execution["executionArn"]) == {
        "pair": PAIR,
        "deployment_id": expected_id,
        "release": {"service": GREEN, "deployment": release, "task_definition": flow.task_definitions[GREEN]},
    }
    (record,) = flow.records()
    assert record["sk"] == f"DEPLOYMENT#{expected_id}"
    assert record["status"] == "RUNNING"
    assert record["execution_arn"] == execution["executionArn"]  # the owner, named at claim
    assert record["service"] == GREEN
    assert record["live_service"] == BLUE
    assert [h["event"] for h in record["history"]] == ["claimed", "started"]
    assert flow.lock() == expected_id
    (lock,) = flow.store.list_locks()
    assert lock.deployment_id == expected_id
    assert lock.lease_until is not None


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
    (record,) = flow.records()
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
    (record,) = flow.records()
    assert record["status"] == "RUNNING"
    assert record["execution_arn"] == execution["executionArn"]
    assert flow.lock() == record["deployment_id"] == execution["name"]


# ---- a new release while a deployment is active -----------------------------------------------------


def test_new_primary_release_supersedes_the_active_deployment(flow: Flow) -> None:
    flow.register()
    run, state = flow.rolling(GREEN)
    state = run.advance(state)
    assert flow.weights() == {BLUE: 90, GREEN: 10}
    second = flow.new_release(GREEN)
    successor = Release(GREEN, second, flow.task_definitions[GREEN])
    successor_id = deployment_id_for(PAIR, successor)

    result = flow.invoke("filter", flow.task_event(GREEN, second))

    assert result["action"] == "superseding"
    assert result["deployment_id"] == successor_id
    assert f"deployment {run.deployment_id} fails back first" in result["reason"]
    record = run.record()
    assert record.status is Status.ROLLING_BACK
    assert record.rollback is not None
    assert record.rollback.status is Status.SUPERSEDED
    assert record.rollback.successor == successor
    assert record.rollback.by == "filter (new release)"
    assert f"now runs release {second}" in record.rollback.reason
    # The owner's watch is ended at once with the error the state machine routes to "Roll back".
    (failure,) = flow.tokens.failures(TOKEN)
    assert failure["error"] == "NewRelease"
    assert failure["cause"] == record.rollback.reason
    # Nothing else happens until the owner has failed back: no traffic moves, no second execution.
    assert flow.weights() == {BLUE: 90, GREEN: 10}
    assert [e["name"] for e in flow.executions()] == [run.deployment_id]
    assert flow.lock() == run.deployment_id
    assert flow.store.find_deployment(PAIR, successor_id) is None

    # The release's other tasks say the same; the first intent stays.
    again = flow.invoke("filter", flow.task_event(GREEN, second))
    assert again["action"] == "superseding"
    assert run.record().rollback == record.rollback
    assert len(flow.executions()) == 1


def test_new_release_adds_itself_as_successor_to_a_rollback_already_underway(flow: Flow) -> None:
    flow.register()
    run, state = flow.rolling(GREEN)
    run.advance(state)
    flow.invoke("interrupt", flow.alarm_event("web-green-5xx", "ALARM"))
    alarm_intent = run.record().rollback
    assert alarm_intent is not None
    second = flow.new_release(GREEN)

    result = flow.invoke("filter", flow.task_event(GREEN, second))

    assert result["action"] == "superseding"
    rollback = run.record().rollback
    assert rollback is not None
    assert (rollback.status, rollback.reason) == (alarm_intent.status, alarm_intent.reason)
    assert rollback.successor == Release(GREEN, second, flow.task_definitions[GREEN])


def test_task_of_the_release_under_test_is_a_duplicate_even_once_it_drains(flow: Flow) -> None:
    flow.register()
    first = flow.new_release(GREEN)
    run = flow.start(GREEN, release=first)
    run.rolling()
    old_task = flow.task_event(GREEN, first)
    flow.new_release(GREEN, keep_previous=True)
    flow.new_release(GREEN, keep_previous=True)
    # The release under test is now ACTIVE (draining); a late task of it is not a new release.
    assert (first, "ACTIVE") in [(d[0], d[1]) for d in flow.deployments(GREEN)]
    before = flow.items()

    result = flow.invoke("filter", old_task)

    assert result["action"] == "duplicate"  # it is the release under test
    assert flow.items() == before


def test_non_primary_other_release_while_active_is_ignored(flow: Flow) -> None:
    flow.register()
    older = flow.new_release(GREEN)
    flow.new_release(GREEN, keep_previous=True)  # `older` is still listed, ACTIVE
    run = flow.start(GREEN, release=flow.deployment_of(GREEN))
    before = flow.items()

    result = flow.invoke("filter", flow.task_event(GREEN, older))

    assert result["action"] == "ignored"
    assert (
        f"{older} is not the primary deployment of {GREEN}; deployment {run.deployment_id} goes on"
        in (result["reason"])
    )
    assert flow.items() == before
    assert run.record().status is Status.RUNNING


def test_release_while_a_closed_deployment_still_holds_the_lock_is_rejected(flow: Flow) -> None:
    """A lock left behind (the sweeper has not run yet) makes the claim busy: the release is REJECTED."""
    flow.register()
    run = flow.start(GREEN)
    lock = flow.item("LOCK")
    assert lock is not None
    flow.store.finish(PAIR, run.deployment_id, Status.FAILED, "failed")
    flow.ddb.put_item(TableName="ecs-canary-test", Item={k: _attr(v) for k, v in lock.items()})
    second = flow.new_release(GREEN)

    result = flow.invoke("filter", flow.task_event(GREEN, second))

    assert result["action"] == "rejected"
    assert run.deployment_id in result["reason"]
    assert second in result["reason"]
    rejected = flow.item(f"DEPLOYMENT#{result['deployment_id']}")
    assert rejected is not None
    assert rejected["status"] == "REJECTED"
    assert rejected["reason"] == result["reason"]
    assert flow.lock() == run.deployment_id
    assert len(flow.executions()) == 1

    again = flow.invoke("filter", flow.task_event(GREEN, second))
    assert again["action"] == "duplicate"
    assert "REJECTED" in again["reason"]


def _attr(value: Any) -> dict[str, Any]:
    return dict(TypeSerializer().serialize(value))


# ---- starting the execution fails -----------------------------------------------------------------


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

    (record,) = flow.records()
    deployment_id = record["deployment_id"]
    assert record["status"] == "STARTING"
    assert record["execution_arn"] == flow.execution_arn(deployment_id)  # the owner-to-be
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


def test_retry_after_the_execution_already_exists(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    """Started, crashed before recording it: the retry gets ExecutionAlreadyExists and goes on."""
    flow.register()
    sfn = aws.client("stepfunctions")
    real = sfn.start_execution
    calls: list[str] = []

    def started_then_exists(**kwargs: Any) -> Any:
        calls.append(kwargs["name"])
        if len(calls) == 1:
            real(**kwargs)
            raise _throttled("StartExecution")
        raise ClientError(
            {"Error": {"Code": "ExecutionAlreadyExists", "Message": "Execution Already Exists"}},
            "StartExecution",
        )

    monkeypatch.setattr(sfn, "start_execution", started_then_exists)
    event = flow.task_event(GREEN, flow.new_release(GREEN))
    with pytest.raises(ClientError):
        flow.invoke("filter", event)

    result = flow.invoke("filter", event)

    assert result["action"] == "started"
    (execution,) = flow.executions()
    record = flow.item(f"DEPLOYMENT#{result['deployment_id']}") or {}
    assert record["status"] == "RUNNING"
    assert record["execution_arn"] == execution["executionArn"]


def test_non_retryable_start_error_propagates(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    flow.register()
    sfn = aws.client("stepfunctions")

    def denied(**kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "StartExecution")

    monkeypatch.setattr(sfn, "start_execution", denied)
    with pytest.raises(ClientError, match="AccessDenied"):
        flow.invoke("filter", flow.task_event(GREEN, flow.new_release(GREEN)))
    (record,) = flow.records()
    assert record["status"] == "STARTING"


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


# ---- after a promotion ---------------------------------------------------------------------------


def test_release_after_promotion_goes_to_the_other_service(flow: Flow) -> None:
    flow.register()
    blue_release = flow.deployment_of(BLUE)
    run, state = flow.rolling(GREEN)
    while not state["cursor"]["complete"]:
        state = run.advance(state)
    assert run.promote(state) == {"live_service": GREEN}
    first = run.deployment_id
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
    arn = flow.execution_arn(second)
    assert json.loads(flow.sfn.describe_execution(executionArn=arn)["input"])["release"] == {
        "service": BLUE,
        "deployment": release,
        "task_definition": flow.task_definitions[BLUE],
    }
