"""Lifecycle gates that are not hooks: their order, test traffic (applied and restored exactly), capacity,
the bake after promotion and retiring the old service."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from botocore.exceptions import ClientError
from ecs_canary import aws
from ecs_canary.errors import CapacityShort, RouterConfigError
from ecs_canary.flow import stages
from ecs_canary.flow.stages import Gate
from ecs_canary.spec import ServicePairSpec, parse_spec
from ecs_canary.store import Deployment, Release, Status
from flow_fixtures import (
    ACCOUNT,
    BLUE,
    CLUSTER,
    GREEN,
    PAIR,
    RECORD,
    REGION,
    TOKEN,
    Flow,
    Run,
    catch,
    fake_spec,
)

pytest_plugins = ["flow_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

HOOK = {"function": "ecs-canary-hook-smoke"}
TEST_RECORD = "test.example.com."
ELB = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}"
OTHER_LISTENER = f"{ELB}:listener/app/web/{1:016x}/{9:016x}"
RAMP0 = {BLUE: 90, GREEN: 10}

GateFinder = Callable[[ServicePairSpec, Deployment], Gate | None]


# ---- helpers ------------------------------------------------------------------------------------------


def _pure_spec(**gates: Any) -> ServicePairSpec:
    """The table-only spec (ARNs point nowhere) with ``gates`` set."""
    doc = fake_spec().model_dump(mode="json")
    doc.update(gates)
    return parse_spec(doc)


def _record(gates_done: frozenset[str] = frozenset(), **fields: Any) -> Deployment:
    release = Release(GREEN, "ecs-svc/1", f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web-green:2")
    base = Deployment(
        pair=PAIR,
        deployment_id="web-1",
        status=Status.RUNNING,
        service=GREEN,
        live_service=BLUE,
        release=release,
        created_at="2026-01-01T00:00:00.000Z",
        updated_at="2026-01-01T00:00:00.000Z",
        gates_done=gates_done,
    )
    return dataclasses.replace(base, **fields)


def _walk(find: GateFinder, spec: ServicePairSpec, record: Deployment) -> list[Gate]:
    """Every gate ``find`` hands out, in order, each recorded as passed before asking again."""
    met: list[Gate] = []
    while (gate := find(spec, record)) is not None:
        met.append(gate)
        assert len(met) <= 10, f"gates never run out: {met}"
        record = dataclasses.replace(record, gates_done=record.gates_done | {gate.key})
    return met


def _register(flow: Flow, router: str = "alb", **gates: Any) -> ServicePairSpec:
    """Register the pair of the moto world with gates added to its spec (all traffic on blue)."""
    doc = json.loads(flow.spec(router).model_dump_json())
    doc.update(gates)
    spec = parse_spec(doc)
    flow.router = router
    flow.set_weights({BLUE: 100, GREEN: 0})
    flow.store.put_pair(spec, live_service=BLUE, idle_baseline=flow.deployment_of(GREEN))
    return spec


def _test_listener(flow: Flow, actions: list[dict[str, Any]] | None = None, port: int = 8080) -> str:
    """A test listener on the pair's load balancer, forwarding to the live service unless told otherwise."""
    default = [{"Type": "forward", "TargetGroupArn": flow.target_groups[BLUE]}]
    listener = flow.elbv2.create_listener(
        LoadBalancerArn=flow.load_balancer_arn, Protocol="HTTP", Port=port, DefaultActions=actions or default
    )
    return str(listener["Listeners"][0]["ListenerArn"])


def _test_rule(flow: Flow, listener_arn: str) -> str:
    rule = flow.elbv2.create_rule(
        ListenerArn=listener_arn,
        Priority=5,
        Conditions=[{"Field": "path-pattern", "Values": ["/canary/*"]}],
        Actions=[
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [{"TargetGroupArn": flow.target_groups[BLUE], "Weight": 1}],
                    "TargetGroupStickinessConfig": {"Enabled": True, "DurationSeconds": 120},
                },
            }
        ],
    )
    return str(rule["Rules"][0]["RuleArn"])


def _listener(flow: Flow, arn: str) -> dict[str, Any]:
    return dict(flow.elbv2.describe_listeners(ListenerArns=[arn])["Listeners"][0])


def _rule(flow: Flow, arn: str) -> dict[str, Any]:
    return dict(flow.elbv2.describe_rules(RuleArns=[arn])["Rules"][0])


def _forwarded_to(actions: list[dict[str, Any]]) -> list[tuple[str, int]]:
    (forward,) = [a for a in actions if a["Type"] == "forward"]
    groups = forward.get("ForwardConfig", {}).get("TargetGroups")
    if groups:
        return [(g["TargetGroupArn"], int(g.get("Weight", 1))) for g in groups]
    return [(forward["TargetGroupArn"], 1)]


def _zone(flow: Flow) -> list[dict[str, Any]]:
    """Every record set of the hosted zone, sorted."""
    listing = flow.route53.list_resource_record_sets(HostedZoneId=flow.zone_id)["ResourceRecordSets"]
    return sorted(
        (dict(r) for r in listing), key=lambda r: (r["Name"], r["Type"], r.get("SetIdentifier", ""))
    )


def _named(flow: Flow, name: str) -> list[dict[str, Any]]:
    return [r for r in _zone(flow) if r["Name"] == name]


def _put_test_record(flow: Flow, value: str = "10.9.9.9", ttl: int = 300) -> dict[str, Any]:
    record = {"Name": TEST_RECORD, "Type": "A", "TTL": ttl, "ResourceRecords": [{"Value": value}]}
    flow.route53.change_resource_record_sets(
        HostedZoneId=flow.zone_id,
        ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": record}]},
    )
    return record


def _apply(spec: ServicePairSpec, record: Deployment) -> dict[str, Any]:
    """What the test-traffic gate does: snapshot the test target (read only), then point it at green."""
    snapshot = stages.snapshot_test_traffic(spec, record)
    stages.apply_test_traffic(spec, record, snapshot)
    return snapshot


def _complete(run: Run, state: dict[str, Any]) -> dict[str, Any]:
    for _ in range(12):
        if state["cursor"]["complete"]:
            return state
        state = run.advance(state)
    raise AssertionError(f"the rollout never completed: {state['cursor']}")


# ---- the order of the gates (pure) ---------------------------------------------------------------------


PREPRODUCTION_ORDER = [
    pytest.param({}, ["capacity"], id="no-gates-only-capacity"),
    pytest.param(
        {
            "hooks": {
                "before_test_traffic": [HOOK],
                "after_test_traffic": [HOOK],
                "before_production_traffic": [HOOK],
            },
            "test_traffic": {"listener_arn": OTHER_LISTENER},
            "approvals": {"before_production_traffic": {}},
        },
        [
            "hooks:before_test_traffic",
            "test_traffic",
            "hooks:after_test_traffic",
            "hooks:before_production_traffic",
            "approval:before_production_traffic",
            "capacity",
        ],
        id="every-gate",
    ),
    pytest.param(
        {"test_traffic": {"listener_arn": OTHER_LISTENER}}, ["test_traffic", "capacity"], id="test-traffic"
    ),
    pytest.param(
        {"hooks": {"after_test_traffic": [HOOK]}, "approvals": {"before_production_traffic": {}}},
        ["hooks:after_test_traffic", "approval:before_production_traffic", "capacity"],
        id="stages-without-hooks-skipped",
    ),
    pytest.param(
        {
            "hooks": {
                "after_each_shift": [HOOK],
                "after_production_traffic": [HOOK],
                "after_promotion": [HOOK],
                "on_rollback": [HOOK],
            },
            "approvals": {"after_production_traffic": {}},
        },
        ["capacity"],
        id="later-stages-are-not-preproduction",
    ),
]


@pytest.mark.parametrize(("gates", "expected"), PREPRODUCTION_ORDER)
def test_preproduction_gates_come_in_order_and_skip_what_is_not_configured(
    gates: dict[str, Any], expected: list[str]
) -> None:
    spec = _pure_spec(**gates)

    met = _walk(stages.preproduction_gate, spec, _record())

    assert [g.key for g in met] == expected
    for gate in met:
        kind = gate.key.split(":", 1)[0]
        assert gate.kind == ("hooks" if kind == "hooks" else kind)
        if gate.kind == "hooks":
            assert gate.stage == gate.key.split(":", 1)[1]
            assert spec.hooks.of(gate.stage)  # a stage is only met when it has hooks
        else:
            assert gate.stage is None
        assert (gate.approval is not None) is (gate.kind == "approval")
    if "approval:before_production_traffic" in expected:
        (approval,) = [g for g in met if g.kind == "approval"]
        assert approval.approval == spec.approvals.before_production_traffic


@pytest.mark.parametrize(
    ("done", "expected"),
    [
        pytest.param(set(), "hooks:before_test_traffic", id="nothing-passed"),
        pytest.param({"hooks:before_test_traffic"}, "test_traffic", id="after-first-hooks"),
        pytest.param({"capacity", "test_traffic"}, "hooks:before_test_traffic", id="earliest-missing-first"),
        pytest.param(
            {"hooks:before_test_traffic", "test_traffic", "approval:before_production_traffic"},
            "capacity",
            id="only-capacity-left",
        ),
        pytest.param(
            {"hooks:before_test_traffic", "test_traffic", "approval:before_production_traffic", "capacity"},
            None,
            id="all-passed",
        ),
    ],
)
def test_the_next_preproduction_gate_is_the_first_not_recorded_as_passed(
    done: set[str], expected: str | None
) -> None:
    spec = _pure_spec(
        hooks={"before_test_traffic": [HOOK]},
        test_traffic={"listener_arn": OTHER_LISTENER},
        approvals={"before_production_traffic": {"timeout_seconds": 120}},
    )

    gate = stages.preproduction_gate(spec, _record(frozenset(done)))

    assert (gate.key if gate else None) == expected


FINAL_ORDER = [
    pytest.param({}, [], id="no-gates"),
    pytest.param(
        {
            "hooks": {"after_production_traffic": [HOOK], "after_promotion": [HOOK, HOOK]},
            "approvals": {"after_production_traffic": {"timeout_seconds": 300, "on_timeout": "continue"}},
            "after_promotion": {"bake_seconds": 120},
        },
        [
            ("hooks:after_production_traffic", 0),
            ("approval:after_production_traffic", 0),
            ("hooks:after_promotion", 0),
            ("bake:after_promotion", 120),
        ],
        id="every-gate",
    ),
    pytest.param(
        {"after_promotion": {"bake_seconds": 0, "scale_old_to_zero": True}}, [], id="no-bake-no-gate"
    ),
    pytest.param({"after_promotion": {"bake_seconds": 1}}, [("bake:after_promotion", 1)], id="bake-only"),
    pytest.param(
        {
            "hooks": {"before_test_traffic": [HOOK], "after_each_shift": [HOOK], "on_rollback": [HOOK]},
            "approvals": {"before_production_traffic": {}},
        },
        [],
        id="other-stages-are-not-final",
    ),
]


@pytest.mark.parametrize(("gates", "expected"), FINAL_ORDER)
def test_final_gates_come_in_order(gates: dict[str, Any], expected: list[tuple[str, int]]) -> None:
    spec = _pure_spec(**gates)

    met = _walk(stages.final_gate, spec, _record())

    assert [(g.key, g.seconds) for g in met] == expected
    for gate in met:
        if gate.kind == "approval":
            assert gate.approval == spec.approvals.after_production_traffic


@pytest.mark.parametrize(
    ("hooks", "step", "done", "expected"),
    [
        pytest.param(True, 0, set(), "hooks:after_each_shift:0", id="first-shift"),
        pytest.param(
            True, 1, {"hooks:after_each_shift:0"}, "hooks:after_each_shift:1", id="each-step-own-key"
        ),
        pytest.param(True, 0, {"hooks:after_each_shift:0"}, None, id="passed-once"),
        pytest.param(False, 0, set(), None, id="no-hooks"),
    ],
)
def test_shift_gate_is_per_step(hooks: bool, step: int, done: set[str], expected: str | None) -> None:
    spec = _pure_spec(hooks={"after_each_shift": [HOOK]} if hooks else {})

    gate = stages.shift_gate(spec, _record(frozenset(done)), step)

    assert (gate.key if gate else None) == expected
    if gate is not None:
        assert (gate.kind, gate.stage) == ("hooks", "after_each_shift")


# ---- test traffic: ALB listener and rule ----------------------------------------------------------------


def test_alb_test_listener_points_at_green_then_is_restored_exactly(flow: Flow) -> None:
    listener = _test_listener(flow)
    spec = _register(flow, test_traffic={"listener_arn": listener})
    before = _listener(flow, listener)
    production = _listener(flow, flow.listener_arn)

    snapshot = _apply(spec, _record())

    applied = _listener(flow, listener)
    assert _forwarded_to(applied["DefaultActions"]) == [(flow.target_groups[GREEN], 1)]
    assert {k: v for k, v in applied.items() if k != "DefaultActions"} == {
        k: v for k, v in before.items() if k != "DefaultActions"
    }
    assert snapshot == {
        "kind": "alb",
        "listener_arn": listener,
        "rule_arn": None,
        "actions": json.dumps(before["DefaultActions"]),
        "green_target_group_arn": flow.target_groups[GREEN],
    }
    assert _listener(flow, flow.listener_arn) == production  # production traffic untouched

    assert stages.restore_test_traffic(snapshot) == "test traffic restored"

    assert _listener(flow, listener) == before
    assert _listener(flow, flow.listener_arn) == production


@pytest.mark.parametrize(
    "actions",
    [
        pytest.param(
            lambda tg: [
                {
                    "Type": "forward",
                    "ForwardConfig": {
                        "TargetGroups": [{"TargetGroupArn": tg[BLUE], "Weight": 3}],
                        "TargetGroupStickinessConfig": {"Enabled": True, "DurationSeconds": 300},
                    },
                }
            ],
            id="weighted-forward-with-stickiness",
        ),
        pytest.param(
            lambda tg: [
                {
                    "Type": "fixed-response",
                    "FixedResponseConfig": {
                        "StatusCode": "404",
                        "ContentType": "text/plain",
                        "MessageBody": "no",
                    },
                }
            ],
            id="no-forward-at-all",
        ),
    ],
)
def test_alb_test_listener_with_other_actions_is_restored_exactly(
    flow: Flow, actions: Callable[[Mapping[str, str]], list[dict[str, Any]]]
) -> None:
    listener = _test_listener(flow, actions(flow.target_groups))
    spec = _register(flow, test_traffic={"listener_arn": listener})
    before = _listener(flow, listener)

    snapshot = _apply(spec, _record())

    (forward,) = _listener(flow, listener)["DefaultActions"]
    assert forward["Type"] == "forward"
    assert _forwarded_to([forward]) == [(flow.target_groups[GREEN], 1)]
    original_stickiness = (
        before["DefaultActions"][0].get("ForwardConfig", {}).get("TargetGroupStickinessConfig")
    )
    if original_stickiness is not None:  # the forward's other settings are kept while it points at green
        assert forward["ForwardConfig"]["TargetGroupStickinessConfig"] == original_stickiness

    stages.restore_test_traffic(snapshot)

    assert _listener(flow, listener) == before


def test_alb_test_rule_points_at_green_then_is_restored_exactly(flow: Flow) -> None:
    listener = _test_listener(flow)
    rule = _test_rule(flow, listener)
    spec = _register(flow, test_traffic={"rule_arn": rule})
    before_rule, before_listener = _rule(flow, rule), _listener(flow, listener)

    snapshot = _apply(spec, _record())

    applied = _rule(flow, rule)
    assert _forwarded_to(applied["Actions"]) == [(flow.target_groups[GREEN], 1)]
    assert applied["Actions"][0]["ForwardConfig"]["TargetGroupStickinessConfig"] == {
        "Enabled": True,
        "DurationSeconds": 120,
    }
    assert (applied["Conditions"], applied["Priority"]) == (
        before_rule["Conditions"],
        before_rule["Priority"],
    )
    assert _listener(flow, listener) == before_listener  # only the rule changed
    assert (snapshot["kind"], snapshot["listener_arn"], snapshot["rule_arn"]) == ("alb", None, rule)

    stages.restore_test_traffic(snapshot)

    assert _rule(flow, rule) == before_rule
    assert _listener(flow, listener) == before_listener


@pytest.mark.parametrize("router", ["alb", "route53"])
def test_taking_the_snapshot_changes_nothing(flow: Flow, router: str) -> None:
    if router == "alb":
        listener = _test_listener(flow)
        spec = _register(flow, test_traffic={"listener_arn": listener})
    else:
        _put_test_record(flow)
        spec = _register(flow, "route53", test_traffic={"record_name": TEST_RECORD})
    before = (_zone(flow), _listener(flow, listener) if router == "alb" else None)

    snapshot = stages.snapshot_test_traffic(spec, _record())

    assert (_zone(flow), _listener(flow, listener) if router == "alb" else None) == before
    assert snapshot["kind"] == router
    assert "restored" not in snapshot


def test_a_restored_snapshot_is_not_written_again(flow: Flow) -> None:
    listener = _test_listener(flow)
    spec = _register(flow, test_traffic={"listener_arn": listener})
    snapshot = _apply(spec, _record())
    pointed = _listener(flow, listener)

    outcome = stages.restore_test_traffic({**snapshot, "restored": True})

    assert outcome == "test traffic already restored"
    assert _listener(flow, listener) == pointed  # nothing was written


@pytest.mark.parametrize("target", ["listener", "rule"])
def test_a_test_listener_or_rule_that_does_not_exist_is_a_router_config_error(
    flow: Flow, target: str
) -> None:
    listener = _test_listener(flow)
    rule = _test_rule(flow, listener)
    spec = _register(
        flow, test_traffic={"listener_arn": listener} if target == "listener" else {"rule_arn": rule}
    )
    if target == "listener":
        flow.elbv2.delete_listener(ListenerArn=listener)
    else:
        flow.elbv2.delete_rule(RuleArn=rule)

    with pytest.raises(RouterConfigError, match="does not exist"):
        stages.snapshot_test_traffic(spec, _record())


# ---- test traffic: Route53 test record ----------------------------------------------------------------


def test_route53_test_record_that_did_not_exist_is_created_then_deleted(flow: Flow) -> None:
    spec = _register(flow, "route53", test_traffic={"record_name": "Test.Example.com"})
    before = _zone(flow)
    (green_record,) = [r for r in _named(flow, RECORD) if r.get("SetIdentifier") == "green"]

    snapshot = _apply(spec, _record())

    (created,) = _named(flow, TEST_RECORD)
    # A copy of green's weighted record under the test name, without weight or set identifier.
    assert created == {
        **{k: v for k, v in green_record.items() if k not in ("SetIdentifier", "Weight")},
        "Name": TEST_RECORD,
    }
    assert [r for r in _zone(flow) if r["Name"] != TEST_RECORD] == before  # production records untouched
    assert snapshot["kind"] == "route53"
    assert snapshot["zone"] == flow.zone_id
    assert snapshot["record"] is None

    assert stages.restore_test_traffic(snapshot) == "test traffic restored"

    assert _named(flow, TEST_RECORD) == []
    assert _zone(flow) == before
    # Restored a second time (the mark was lost): the record is already gone and nothing changes.
    assert stages.restore_test_traffic(snapshot) == "test record already gone"
    assert _zone(flow) == before


def test_route53_test_record_that_existed_is_put_back_as_it_was(flow: Flow) -> None:
    original = _put_test_record(flow, "10.9.9.9", ttl=300)
    spec = _register(flow, "route53", test_traffic={"record_name": TEST_RECORD})
    before = _zone(flow)

    snapshot = _apply(spec, _record())

    (pointed,) = _named(flow, TEST_RECORD)
    assert pointed["ResourceRecords"] == [{"Value": "10.0.0.2"}]  # green's address
    assert json.loads(snapshot["record"]) == {**original}

    stages.restore_test_traffic(snapshot)

    assert _named(flow, TEST_RECORD) == [original]
    assert _zone(flow) == before


def test_route53_without_a_weighted_record_for_green_is_a_router_config_error(flow: Flow) -> None:
    spec = _register(flow, "route53", test_traffic={"record_name": TEST_RECORD})
    (green_record,) = [r for r in _named(flow, RECORD) if r.get("SetIdentifier") == "green"]
    flow.route53.change_resource_record_sets(
        HostedZoneId=flow.zone_id,
        ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": green_record}]},
    )
    before = _zone(flow)

    with pytest.raises(RouterConfigError, match=f"no weighted record {RECORD} for {GREEN}"):
        stages.snapshot_test_traffic(spec, _record())

    assert _zone(flow) == before


# ---- test traffic in the owner's loop ---------------------------------------------------------------


@pytest.mark.parametrize("end", ["rollback", "promote"])
def test_the_test_traffic_gate_then_its_restore_after_rollback_or_promotion(flow: Flow, end: str) -> None:
    listener = _test_listener(flow)
    _register(flow, test_traffic={"listener_arn": listener})
    before = _listener(flow, listener)
    run, state = flow.rolling(GREEN)

    state = run.advance(state)

    # The gate passes at once, then capacity, then the first production shift, in one tick.
    assert state["cursor"]["action"] == "shift"
    assert flow.weights() == RAMP0
    record = run.record()
    assert record.gates_done == {"test_traffic", "capacity"}
    assert _forwarded_to(_listener(flow, listener)["DefaultActions"]) == [(flow.target_groups[GREEN], 1)]
    assert record.test_snapshot is not None
    assert record.test_snapshot["actions"] == json.dumps(before["DefaultActions"])
    assert "restored" not in record.test_snapshot
    (noted,) = [h for h in record.history if h["event"] == "test_traffic"]
    assert GREEN in noted["message"]
    assert listener in noted["message"]  # the endpoint it points at

    if end == "rollback":
        result = run.rollback(catch("GreenUnhealthy", "5xx"))
        assert result["status"] == "FAILED"
    else:
        state = _complete(run, state)
        assert run.promote(state) == {"live_service": GREEN}

    assert _listener(flow, listener) == before
    record = run.record()
    assert record.test_snapshot is not None
    assert record.test_snapshot["restored"] is True
    assert run.events().count("test_traffic_restored") == 1
    # Retried (the state machine's Retry): nothing restored twice.
    if end == "rollback":
        run.rollback(catch("GreenUnhealthy", "5xx"))
    else:
        run.promote(state)
    assert run.events().count("test_traffic_restored") == 1


def test_a_route53_test_record_created_for_the_deployment_is_gone_after_the_rollback(flow: Flow) -> None:
    _register(flow, "route53", test_traffic={"record_name": TEST_RECORD})
    run, state = flow.rolling(GREEN)
    before = _zone(flow)

    run.advance(state)
    assert len(_named(flow, TEST_RECORD)) == 1
    stored = run.record().test_snapshot
    assert stored is not None
    assert stored["record"] is None  # it did not exist: that survives the round trip through DynamoDB

    run.rollback(catch("GreenUnhealthy", "5xx"))

    assert _zone(flow) == before  # weights restored and the test record deleted


TICK_WRITES = {
    "snapshot": "test_snapshot = if_not_exists",  # storing the snapshot, before the target is touched
    "gate": "ADD gates_done",  # recording the gate, after the target points at green
}


@pytest.mark.parametrize("write", sorted(TICK_WRITES))
@pytest.mark.parametrize("router", ["alb", "route53"])
def test_a_tick_retried_after_a_failed_write_still_restores_the_test_target_exactly(
    flow: Flow, monkeypatch: pytest.MonkeyPatch, router: str, write: str
) -> None:
    if router == "alb":
        listener = _test_listener(flow)
        _register(flow, test_traffic={"listener_arn": listener})
        before: Any = _listener(flow, listener)
    else:
        _register(flow, "route53", test_traffic={"record_name": TEST_RECORD})
        before = []
    run, state = flow.rolling(GREEN)
    ddb = aws.client("dynamodb")
    real = ddb.update_item
    failed: list[str] = []

    def throttled_once(**kwargs: Any) -> Any:
        if TICK_WRITES[write] in kwargs["UpdateExpression"] and not failed:
            failed.append(kwargs["UpdateExpression"])
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "UpdateItem"
            )
        return real(**kwargs)

    monkeypatch.setattr(ddb, "update_item", throttled_once)
    with pytest.raises(ClientError, match="ThrottlingException"):
        run.advance(state)
    state = run.advance(state)  # the state machine's Retry
    assert failed
    assert state["cursor"]["action"] == "shift"
    assert "test_traffic" in run.record().gates_done

    run.rollback(catch("GreenUnhealthy", "5xx"))

    if router == "alb":
        assert _listener(flow, listener) == before
    else:
        assert _named(flow, TEST_RECORD) == before


# ---- test endpoint ----------------------------------------------------------------------------------------


def test_test_endpoint_without_test_traffic_is_none(flow: Flow) -> None:
    assert stages.test_endpoint(_register(flow)) is None


def test_test_endpoint_of_a_route53_test_record(flow: Flow) -> None:
    spec = _register(flow, "route53", test_traffic={"record_name": "TEST.example.com"})

    assert stages.test_endpoint(spec) == {"type": "route53", "record_name": TEST_RECORD}


@pytest.mark.parametrize("target", ["listener", "rule"])
def test_test_endpoint_of_an_alb_listener_or_rule_names_where_to_send_requests(
    flow: Flow, target: str
) -> None:
    listener = _test_listener(flow, port=8443)
    rule = _test_rule(flow, listener) if target == "rule" else None
    spec = _register(flow, test_traffic={"listener_arn": listener} if rule is None else {"rule_arn": rule})
    dns = flow.elbv2.describe_load_balancers(LoadBalancerArns=[flow.load_balancer_arn])["LoadBalancers"][0][
        "DNSName"
    ]

    endpoint = stages.test_endpoint(spec)

    assert endpoint == {
        "type": "alb",
        "listener_arn": listener,  # a rule's listener is derived from the rule's ARN
        "rule_arn": rule,
        "dns_name": dns,
        "port": 8443,
        "protocol": "HTTP",
    }


# ---- capacity --------------------------------------------------------------------------------------------


def _running(flow: Flow, service: str, count: int) -> None:
    """ECS runs ``count`` tasks of ``service`` (moto reports the desired count as running)."""
    flow.ecs.update_service(cluster=CLUSTER, service=service, desiredCount=count)


@pytest.mark.parametrize(
    ("live", "green", "percent", "needed"),
    [
        pytest.param(2, 2, 100, None, id="equal"),
        pytest.param(2, 1, 100, 2, id="half"),
        pytest.param(3, 1, 50, 2, id="rounds-up"),
        pytest.param(3, 2, 50, None, id="rounded-up-met"),
        pytest.param(2, 2, 150, 3, id="headroom-missing"),
        pytest.param(2, 3, 150, None, id="headroom-met"),
        pytest.param(5, 0, 0, None, id="check-off"),
        pytest.param(0, 0, 100, None, id="live-runs-nothing"),
    ],
)
def test_capacity_problem(flow: Flow, live: int, green: int, percent: int, needed: int | None) -> None:
    spec = _register(flow, capacity={"min_healthy_percent": percent})
    _running(flow, BLUE, live)
    _running(flow, GREEN, green)

    problem = stages.capacity_problem(spec, _record())

    if needed is None:
        assert problem is None
    else:
        assert problem == (
            f"{GREEN} runs {green} tasks, but carrying all of {BLUE}'s traffic needs {needed} "
            f"({percent}% of its {live})"
        )


def test_short_capacity_waits_then_fails_back_with_the_reason(flow: Flow) -> None:
    _register(flow, capacity={"min_healthy_percent": 100, "wait_seconds": 20})
    run, state = flow.rolling(GREEN)
    _running(flow, GREEN, 1)
    problem = f"{GREEN} runs 1 tasks, but carrying all of {BLUE}'s traffic needs 2 (100% of its 2)"

    waits = []
    for _ in range(2):
        state = run.advance(state)
        waits.append(
            (state["cursor"]["action"], state["cursor"]["wait_seconds"], state["cursor"]["gate_waits"])
        )
        assert run.last["reason"] == problem

    assert waits == [("capacity", 10, 10), ("capacity", 10, 20)]
    assert flow.weights() == {BLUE: 100, GREEN: 0}
    assert run.events().count("capacity") == 1  # noted once, not per poll
    with pytest.raises(CapacityShort) as short:
        run.advance(state)
    assert str(short.value) == f"{problem} after waiting 20 s (capacity.wait_seconds)"
    record = run.record()
    assert record.status is Status.ROLLING_BACK
    assert record.rollback is not None
    assert (record.rollback.status, record.rollback.reason) == (Status.FAILED, str(short.value))
    assert flow.weights() == {BLUE: 100, GREEN: 0}


def test_capacity_that_catches_up_passes_the_gate_and_traffic_moves(flow: Flow) -> None:
    _register(flow, capacity={"wait_seconds": 600})
    run, state = flow.rolling(GREEN)
    _running(flow, GREEN, 1)
    state = run.advance(state)
    assert state["cursor"]["action"] == "capacity"

    _running(flow, GREEN, 2)
    state = run.advance(state)

    assert state["cursor"]["action"] == "shift"
    assert flow.weights() == RAMP0
    assert "capacity" in run.record().gates_done


def test_a_capacity_wait_of_another_gate_does_not_count(flow: Flow) -> None:
    """gate_waits only counts while the cursor says the machine waited for capacity."""
    _register(flow, capacity={"wait_seconds": 20})
    run, state = flow.rolling(GREEN)
    _running(flow, GREEN, 1)

    state = run.advance({**state, "cursor": {**state["cursor"], "action": "hooks", "gate_waits": 500}})

    assert (state["cursor"]["action"], state["cursor"]["gate_waits"]) == ("capacity", 10)
    assert run.record().status is Status.RUNNING


# ---- after promotion: watched bake, retiring the old service ---------------------------------------------


def test_the_bake_after_promotion_is_one_more_watched_wait_before_completing(flow: Flow) -> None:
    _register(flow, after_promotion={"bake_seconds": 300})
    run, state = flow.rolling(GREEN)
    for _ in range(3):
        state = run.advance(state)
    assert flow.weights() == {BLUE: 0, GREEN: 100}

    state = run.advance(state)

    assert (state["cursor"]["action"], state["cursor"]["wait_seconds"]) == ("bake", 300)
    assert state["cursor"]["complete"] is False
    assert "bake:after_promotion" in run.record().gates_done
    assert run.events()[-1] == "watching"
    assert flow.tokens.successes() == []  # the watch stays armed through the bake

    state = run.advance(state)

    assert state["cursor"]["complete"] is True
    assert flow.tokens.successes(TOKEN) != []


@pytest.mark.parametrize("retire", [True, False], ids=["scale-old-to-zero", "keep-old"])
def test_promotion_retires_the_old_service_only_when_asked(flow: Flow, retire: bool) -> None:
    _register(flow, after_promotion={"scale_old_to_zero": retire})
    _running(flow, BLUE, 3)
    _running(flow, GREEN, 3)
    run, state = flow.rolling(GREEN)
    state = _complete(run, state)

    assert run.promote(state) == {"live_service": GREEN}

    blue = flow.ecs.describe_services(cluster=CLUSTER, services=[BLUE])["services"][0]
    pair = flow.store.get_pair(PAIR)
    assert pair.live_service == GREEN
    if retire:
        assert blue["desiredCount"] == 0
        assert pair.retired is not None
        assert (pair.retired["service"], pair.retired["desired_count"]) == (BLUE, 3)
        (line,) = [h for h in run.record().history if h["event"] == "scaled_down"]
        assert line["message"] == f"{BLUE} scaled to 0 tasks (it ran 3; recorded on the pair)"
    else:
        assert blue["desiredCount"] == 3
        assert pair.retired is None
        assert "scaled_down" not in run.events()

    # A retried promotion changes nothing more: the recorded count stays the one blue had.
    before = flow.items()
    assert run.promote(state) == {"live_service": GREEN}
    assert flow.items() == before
