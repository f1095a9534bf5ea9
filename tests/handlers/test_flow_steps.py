"""The state machine's task handlers, in flow order: prepare, advance, promote and roll back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ecs_canary.errors import (
    DeploymentNotFound,
    GreenUnhealthy,
    HealthInconclusive,
    RouterConfigError,
    UnknownServicePair,
)
from ecs_canary.metrics import lb_dimension, tg_dimension
from ecs_canary.store import Status
from flow_fixtures import ALARMS, BLUE, GREEN, PAIR, PAIR_ALARM, ROUTERS, STEPS, Flow
from pydantic import ValidationError

pytest_plugins = ["flow_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

PROPAGATION = {"alb": 0, "route53": 30}  # the records' TTL; an ALB applies changes at once
BAKE = 60


def _record(flow: Flow, state: dict[str, Any]) -> dict[str, Any]:
    record = flow.item(f"DEPLOYMENT#{state['deployment_id']}")
    assert record is not None
    return record


def _events(record: dict[str, Any]) -> list[str]:
    return [h["event"] for h in record["history"]]


def _to_step(flow: Flow, state: dict[str, Any], step_index: int) -> dict[str, Any]:
    while state["cursor"]["step_index"] < step_index:
        state = flow.advance(state)
    return state


# ---- prepare ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("router", ROUTERS)
def test_prepare_snapshots_weights_and_builds_the_context(flow: Flow, router: str) -> None:
    flow.register(router)
    deployment_id, execution_input = flow.start(GREEN)

    state = flow.invoke("prepare", execution_input)

    assert {k: state[k] for k in ("pair", "deployment_id", "release")} == execution_input
    ctx = state["deployment"]
    assert ctx["pair"] == PAIR
    assert ctx["deployment_id"] == deployment_id
    assert (ctx["live"], ctx["green"]) == (BLUE, GREEN)
    assert ctx["green_release"] == execution_input["release"]["deployment"]
    assert ctx["snapshot"] == {BLUE: 100, GREEN: 0}
    assert ctx["green_target_group_arn"] == flow.target_groups[GREEN]
    assert ctx["green_load_balancer_arn"] == flow.load_balancer_arn
    assert ctx["spec"] == json.loads(flow.spec(router).model_dump_json())
    assert state["cursor"] == {
        "step_index": -1,
        "inconclusive": 0,
        "shifted_at": None,
        "percent": 0,
        "wait_seconds": 0,
        "complete": False,
        "verdict": None,
    }
    assert state["steady"]["steady"] is False
    record = _record(flow, state)
    assert record["status"] == "RUNNING"
    assert record["snapshot"] == record["weights"] == {BLUE: 100, GREEN: 0}
    assert json.loads(record["spec"]) == ctx["spec"]
    assert _events(record) == ["claimed", "started", "snapshot"]
    assert flow.weights() == {BLUE: 100, GREEN: 0}


@pytest.mark.parametrize(
    ("router", "snapshot", "moved"),
    [
        pytest.param("alb", {BLUE: 100, GREEN: 0}, {BLUE: 40, GREEN: 0}, id="alb-live-weight-changed"),
        pytest.param("alb", {BLUE: 7, GREEN: 0}, {BLUE: 60, GREEN: 40}, id="alb-split"),
        pytest.param("route53", {BLUE: 255, GREEN: 0}, {BLUE: 90, GREEN: 10}, id="route53-split"),
        pytest.param("route53", {BLUE: 100, GREEN: 0}, {BLUE: 0, GREEN: 100}, id="route53-all-on-green"),
    ],
)
def test_prepare_again_keeps_the_first_snapshot(
    flow: Flow, router: str, snapshot: dict[str, int], moved: dict[str, int]
) -> None:
    flow.register(router, snapshot=snapshot)
    _, execution_input = flow.start(GREEN)
    first = flow.invoke("prepare", execution_input)
    flow.set_weights(moved)

    second = flow.invoke("prepare", execution_input)

    assert first["deployment"]["snapshot"] == second["deployment"]["snapshot"] == snapshot
    assert second["deployment"] == first["deployment"]
    record = _record(flow, second)
    assert record["snapshot"] == record["weights"] == snapshot
    assert record["status"] == "RUNNING"
    assert flow.weights() == moved  # prepare reads, never writes


ON_GREEN = f"sends all traffic to {GREEN}, but {BLUE} is the"


@pytest.mark.parametrize(
    ("router", "weights", "message"),
    [
        pytest.param("alb", {BLUE: 0, GREEN: 100}, ON_GREEN, id="alb-on-green"),
        pytest.param("route53", {BLUE: 0, GREEN: 255}, ON_GREEN, id="route53-on-green"),
        pytest.param("alb", {BLUE: 70, GREEN: 30}, "traffic is split between services", id="alb-split"),
        pytest.param("route53", {BLUE: 0, GREEN: 0}, "every weight is 0", id="route53-all-zero"),
    ],
)
def test_prepare_refuses_traffic_not_on_the_registered_live_service(
    flow: Flow, router: str, weights: dict[str, int], message: str
) -> None:
    flow.register(router)
    _, execution_input = flow.start(GREEN)
    flow.set_weights(weights)

    with pytest.raises(RouterConfigError, match=message):
        flow.invoke("prepare", execution_input)

    assert flow.weights() == weights
    record = flow.item(f"DEPLOYMENT#{execution_input['deployment_id']}")
    assert record is not None
    assert record["status"] == "RUNNING"
    assert "snapshot" not in record
    assert "weights" not in record
    assert _events(record) == ["claimed", "started"]


def test_prepare_of_an_unregistered_pair(flow: Flow) -> None:
    flow.register()
    _, execution_input = flow.start(GREEN)
    with pytest.raises(UnknownServicePair, match="no service pair named 'gone'"):
        flow.invoke("prepare", {**execution_input, "pair": "gone"})


def test_prepare_of_a_deployment_already_closed(flow: Flow) -> None:
    flow.register()
    _, execution_input = flow.start(GREEN)
    flow.store.finish(PAIR, execution_input["deployment_id"], Status.ABORTED, "stopped")
    with pytest.raises(DeploymentNotFound, match="is ABORTED, not running"):
        flow.invoke("prepare", execution_input)
    assert flow.weights() == {BLUE: 100, GREEN: 0}


@pytest.mark.parametrize(
    "execution_input",
    [
        pytest.param({"pair": PAIR, "deployment_id": "x"}, id="no-release"),
        pytest.param({"pair": "", "deployment_id": "x", "release": {}}, id="empty"),
    ],
)
def test_prepare_rejects_a_malformed_input(flow: Flow, execution_input: dict[str, Any]) -> None:
    flow.register()
    with pytest.raises(ValidationError):
        flow.invoke("prepare", execution_input)


# ---- advance: preflight ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("router", "alarm"), [("alb", ALARMS[GREEN]), ("route53", ALARMS[GREEN]), ("alb", PAIR_ALARM)]
)
def test_preflight_with_an_alarm_in_alarm_moves_nothing(flow: Flow, router: str, alarm: str) -> None:
    flow.register(router)
    state = flow.prepared(GREEN)
    flow.alarm("ALARM", alarm)

    with pytest.raises(GreenUnhealthy, match=f"preflight.*alarm {alarm} is in ALARM"):
        flow.advance(state)

    assert flow.weights() == {BLUE: 100, GREEN: 0}
    record = _record(flow, state)
    assert record["weights"] == {BLUE: 100, GREEN: 0}
    assert "step_index" not in record
    assert "shifted" not in _events(record)


def test_preflight_ignores_the_live_services_own_alarm(flow: Flow) -> None:
    flow.register()
    state = flow.prepared(GREEN)
    flow.alarm("ALARM", ALARMS[BLUE])  # blue is live: its alarm is not the gate on green

    state = flow.advance(state)

    assert state["cursor"]["step_index"] == 0
    assert flow.weights() == {BLUE: 90, GREEN: 10}


def test_preflight_with_a_missing_alarm_fails(flow: Flow) -> None:
    flow.cloudwatch.delete_alarms(AlarmNames=[PAIR_ALARM])
    flow.register()
    state = flow.prepared(GREEN)
    with pytest.raises(GreenUnhealthy, match=f"alarm {PAIR_ALARM} does not exist"):
        flow.advance(state)
    assert flow.weights() == {BLUE: 100, GREEN: 0}


# ---- advance: the ramp -----------------------------------------------------------------------------


@pytest.mark.parametrize("router", ROUTERS)
def test_ramp_shifts_step_by_step_then_completes(flow: Flow, router: str) -> None:
    flow.register(router)
    state = flow.prepared(GREEN)
    expected = {0: {BLUE: 90, GREEN: 10}, 1: {BLUE: 50, GREEN: 50}, 2: {BLUE: 0, GREEN: 100}}

    for index, percent in enumerate(STEPS):
        state = flow.advance(state)
        cursor = state["cursor"]
        assert cursor["step_index"] == index
        assert cursor["percent"] == percent
        assert cursor["complete"] is False
        assert cursor["verdict"] == "pass"
        assert cursor["inconclusive"] == 0
        assert cursor["shifted_at"]
        assert cursor["wait_seconds"] == BAKE + PROPAGATION[router]
        assert flow.weights() == expected[index]
        record = _record(flow, state)
        assert (record["step_index"], record["percent"], record["weights"]) == (
            index,
            percent,
            expected[index],
        )

    state = flow.advance(state)

    assert state["cursor"]["complete"] is True
    assert state["cursor"]["step_index"] == 2
    assert state["cursor"]["percent"] == 100
    assert state["cursor"]["wait_seconds"] == 0
    assert flow.weights() == {BLUE: 0, GREEN: 100}
    record = _record(flow, state)
    assert record["status"] == "RUNNING"
    assert record["snapshot"] == {BLUE: 100, GREEN: 0}
    assert _events(record)[2:] == ["snapshot", "shifted", "shifted", "shifted", "healthy"]
    assert [h.get("percent") for h in record["history"] if h["event"] == "shifted"] == list(STEPS)


@pytest.mark.parametrize(
    ("router", "alarm"), [("alb", ALARMS[GREEN]), ("route53", ALARMS[GREEN]), ("route53", PAIR_ALARM)]
)
def test_alarm_after_a_shift_is_unhealthy_and_advance_changes_nothing(
    flow: Flow, router: str, alarm: str
) -> None:
    flow.register(router)
    state = flow.advance(flow.prepared(GREEN))
    flow.alarm("ALARM", alarm)

    with pytest.raises(GreenUnhealthy, match=rf"step 1/3 \(10% to green\).*alarm {alarm} is in ALARM"):
        flow.advance(state)

    assert flow.weights() == {BLUE: 90, GREEN: 10}  # the "Roll back" state restores, not advance


@pytest.mark.parametrize("router", ROUTERS)
def test_inconclusive_without_datapoints_rechecks_then_gives_up(flow: Flow, router: str) -> None:
    flow.register(router, metrics={"max_5xx_percent": 1, "min_requests": 20}, max_inconclusive=2)
    state = flow.advance(flow.prepared(GREEN))
    assert flow.weights() == {BLUE: 90, GREEN: 10}

    for attempt in (1, 2):
        state = flow.advance(state)
        assert state["cursor"] | {"shifted_at": None} == {
            "step_index": 0,
            "percent": 10,
            "inconclusive": attempt,
            "shifted_at": None,
            "wait_seconds": 30,  # health.recheck_seconds
            "complete": False,
            "shift_ms": 0,  # nothing shifted on a recheck
            "verdict": "inconclusive",
        }
        assert flow.weights() == {BLUE: 90, GREEN: 10}

    with pytest.raises(
        HealthInconclusive, match=r"inconclusive 3 times in a row at step 1/3.*only 0 requests"
    ):
        flow.advance(state)

    assert flow.weights() == {BLUE: 90, GREEN: 10}
    record = _record(flow, state)
    assert _events(record).count("inconclusive") == 2
    assert record["step_index"] == 0


def test_insufficient_data_alarm_is_inconclusive_not_a_pass(flow: Flow) -> None:
    flow.register(max_inconclusive=0)
    state = flow.advance(flow.prepared(GREEN))
    flow.alarm("INSUFFICIENT_DATA")
    with pytest.raises(HealthInconclusive, match=f"alarm {ALARMS[GREEN]} has INSUFFICIENT_DATA"):
        flow.advance(state)
    assert flow.weights() == {BLUE: 90, GREEN: 10}


def _put_green_metrics(flow: Flow, requests: int, errors: int) -> None:
    dimensions = [
        {"Name": "TargetGroup", "Value": tg_dimension(flow.target_groups[GREEN])},
        {"Name": "LoadBalancer", "Value": lb_dimension(flow.load_balancer_arn)},
    ]
    at = datetime.now(UTC) - timedelta(seconds=30)
    flow.cloudwatch.put_metric_data(
        Namespace="AWS/ApplicationELB",
        MetricData=[
            {"MetricName": "RequestCount", "Dimensions": dimensions, "Timestamp": at, "Value": requests},
            {
                "MetricName": "HTTPCode_Target_5XX_Count",
                "Dimensions": dimensions,
                "Timestamp": at,
                "Value": errors,
            },
        ],
    )


@pytest.mark.parametrize(
    ("requests", "errors", "outcome"),
    [
        pytest.param(500, 2, "shift", id="0.4%-passes"),
        pytest.param(500, 25, r"5xx 5% > 1% \(25 of 500 requests\)", id="5%-fails"),
    ],
)
def test_metrics_gate_judges_green_target_group(flow: Flow, requests: int, errors: int, outcome: str) -> None:
    flow.register(metrics={"max_5xx_percent": 1, "min_requests": 100})
    state = flow.advance(flow.prepared(GREEN))
    _put_green_metrics(flow, requests, errors)

    if outcome == "shift":
        state = flow.advance(state)
        assert state["cursor"]["step_index"] == 1
        assert flow.weights() == {BLUE: 50, GREEN: 50}
    else:
        with pytest.raises(GreenUnhealthy, match=outcome):
            flow.advance(state)
        assert flow.weights() == {BLUE: 90, GREEN: 10}


# ---- promote --------------------------------------------------------------------------------------


def _ramp(flow: Flow) -> dict[str, Any]:
    state = flow.prepared(GREEN)
    while not state["cursor"]["complete"]:
        state = flow.advance(state)
    return state


@pytest.mark.parametrize("router", ROUTERS)
def test_promote_records_success_and_swaps_roles(flow: Flow, router: str) -> None:
    flow.register(router)
    state = _ramp(flow)
    old_live_release = flow.deployment_of(BLUE)
    promote_input = {"deployment": state["deployment"], "cursor": state["cursor"]}

    assert flow.invoke("promote", promote_input) == {"live_service": GREEN}

    record = _record(flow, state)
    assert record["status"] == "SUCCEEDED"
    assert record["reason"] == f"{GREEN} took all traffic after 3 healthy step(s)"
    assert record["weights"] == {BLUE: 0, GREEN: 100}
    assert record["ended_at"]
    assert _events(record)[-1] == "succeeded"
    assert flow.lock() is None
    pair = flow.item("SPEC")
    assert pair is not None
    assert pair["live_service"] == GREEN
    assert pair["idle_baseline"] == old_live_release
    assert pair["promoted_at"]
    assert flow.store.get_pair(PAIR).idle_service == BLUE
    assert flow.weights() == {BLUE: 0, GREEN: 100}

    before = flow.items()
    assert flow.invoke("promote", promote_input) == {"live_service": GREEN}
    assert flow.items() == before


def test_promote_after_the_deployment_was_rolled_back_is_refused(flow: Flow) -> None:
    flow.register()
    state = _ramp(flow)
    flow.invoke("rollback", flow.rollback_input(state, "States.Timeout", "stopped"))
    before = flow.items()

    with pytest.raises(DeploymentNotFound, match="closed as FAILED before promotion"):
        flow.invoke("promote", {"deployment": state["deployment"], "cursor": state["cursor"]})

    assert flow.items() == before
    pair = flow.item("SPEC")
    assert pair is not None
    assert pair["live_service"] == BLUE


# ---- roll back -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("router", "snapshot"),
    [
        pytest.param("alb", {BLUE: 100, GREEN: 0}, id="alb-100/0"),
        pytest.param("alb", {BLUE: 7, GREEN: 0}, id="alb-7/0"),
        pytest.param("alb", {BLUE: 999, GREEN: 0}, id="alb-999/0"),
        pytest.param("route53", {BLUE: 255, GREEN: 0}, id="route53-255/0"),
        pytest.param("route53", {BLUE: 1, GREEN: 0}, id="route53-1/0"),
    ],
)
def test_rollback_restores_the_exact_snapshot(flow: Flow, router: str, snapshot: dict[str, int]) -> None:
    flow.register(router, snapshot=snapshot)
    state = _to_step(flow, flow.prepared(GREEN), 1)
    assert flow.weights() == {BLUE: 50, GREEN: 50}
    message = "green is unhealthy at step 2/3 (50% to green): alarm web-green-5xx is in ALARM"

    result = flow.invoke("rollback", flow.rollback_input(state, "GreenUnhealthy", message))

    split = ", ".join(f"{k}={v}" for k, v in sorted(snapshot.items()))
    assert result == {"reason": f"GreenUnhealthy: {message}; traffic restored at {split}", "restored": True}
    assert flow.weights() == snapshot
    record = _record(flow, state)
    assert record["status"] == "FAILED"
    assert record["reason"] == result["reason"]
    assert record["weights"] == record["snapshot"] == snapshot
    assert record["ended_at"]
    assert flow.lock() is None
    pair = flow.item("SPEC")
    assert pair is not None
    assert pair["live_service"] == BLUE

    # Step Functions retries the task; meanwhile someone moved traffic on. Nothing is touched.
    flow.set_weights({BLUE: 30, GREEN: 70})
    before = flow.items()
    again = flow.invoke("rollback", flow.rollback_input(state, "GreenUnhealthy", message))
    assert again == {"reason": record["reason"], "restored": False}
    assert flow.items() == before
    assert flow.weights() == {BLUE: 30, GREEN: 70}


def test_rollback_at_the_snapshot_already_changes_nothing(flow: Flow) -> None:
    flow.register()
    state = flow.prepared(GREEN)
    flow.alarm("ALARM")
    with pytest.raises(GreenUnhealthy) as failed:
        flow.advance(state)

    result = flow.invoke("rollback", flow.rollback_input(state, "GreenUnhealthy", str(failed.value)))

    assert result["restored"] is False
    assert result["reason"].endswith(f"; traffic unchanged at {BLUE}=100, {GREEN}=0")
    assert str(failed.value) in result["reason"]
    assert _record(flow, state)["status"] == "FAILED"
    assert flow.lock() is None


@pytest.mark.parametrize("router", ROUTERS)
def test_rollback_before_any_snapshot_says_no_traffic_moved(flow: Flow, router: str) -> None:
    flow.register(router)
    _, execution_input = flow.start(GREEN)
    flow.set_weights({BLUE: 0, GREEN: 100})  # the router disagrees with the registration
    with pytest.raises(RouterConfigError) as failed:
        flow.invoke("prepare", execution_input)
    catch = {"Error": "RouterConfigError", "Cause": json.dumps({"errorMessage": str(failed.value)})}

    result = flow.invoke("rollback", {**execution_input, "error": catch})

    assert result["restored"] is False
    assert result["reason"] == f"RouterConfigError: {failed.value}; no traffic had moved"
    record = flow.item(f"DEPLOYMENT#{execution_input['deployment_id']}")
    assert record is not None
    assert record["status"] == "FAILED"
    assert record["reason"] == result["reason"]
    assert "weights" not in record
    assert flow.lock() is None
    assert flow.weights() == {BLUE: 0, GREEN: 100}


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        pytest.param(
            {"Error": "GreenNeverSteady", "Cause": json.dumps({"errorMessage": "0/2 tasks running"})},
            "GreenNeverSteady: 0/2 tasks running",
            id="lambda-error-json",
        ),
        pytest.param(
            {"Error": "States.Timeout", "Cause": "Task timed out after 120.00 seconds"},
            "States.Timeout: Task timed out after 120.00 seconds",
            id="plain-cause",
        ),
        pytest.param({"Error": "States.TaskFailed"}, "States.TaskFailed", id="no-cause"),
        pytest.param(
            {"Error": "Lambda.Unknown", "Cause": {"errorMessage": "out of memory"}},
            "Lambda.Unknown: out of memory",
            id="cause-object",
        ),
        pytest.param(None, "rollback requested", id="no-error"),
    ],
)
def test_rollback_reason_from_the_catch(flow: Flow, error: dict[str, Any] | None, reason: str) -> None:
    flow.register()
    _, execution_input = flow.start(GREEN)
    event = dict(execution_input) if error is None else {**execution_input, "error": error}

    result = flow.invoke("rollback", event)

    assert result == {"reason": f"{reason}; no traffic had moved", "restored": False}
    record = flow.item(f"DEPLOYMENT#{execution_input['deployment_id']}")
    assert record is not None
    assert record["reason"] == result["reason"]


def test_rollback_of_an_unknown_deployment_writes_nothing(flow: Flow) -> None:
    flow.register()
    before = flow.items()
    result = flow.invoke("rollback", {"pair": PAIR, "deployment_id": "web-nothing-0000", "error": None})
    assert result == {"reason": "rollback requested (no deployment record)", "restored": False}
    assert flow.items() == before


@pytest.mark.parametrize("router", ROUTERS)
def test_a_shift_in_flight_when_the_deployment_is_closed_puts_the_snapshot_back(
    flow: Flow, router: str
) -> None:
    """A stop reconciled while "Check health and shift traffic" runs must not leave its weights behind."""
    flow.register(router)
    state = flow.prepared(GREEN)
    snapshot = dict(state["deployment"]["snapshot"])
    state = flow.advance(state)
    assert flow.weights() != snapshot

    # The execution was stopped and reconciled: traffic restored, record closed.
    flow.store.finish(PAIR, state["deployment_id"], Status.ABORTED, "stopped in the console")
    flow.set_weights(snapshot)

    # The invocation that was already running writes the next step, then finds the record closed.
    with pytest.raises(DeploymentNotFound, match="ABORTED"):
        flow.advance(state)
    assert flow.weights() == snapshot
    assert _record(flow, state)["status"] == "ABORTED"
