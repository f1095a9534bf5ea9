"""Which lifecycle gate a deployment meets next, and the gates that are not hooks.

A gate is passed once (its key is recorded on the deployment) and met in a fixed order, so the
owner's tick can always tell, from the record alone, what comes next: level-triggered like the
rest of the loop. Hooks run in the state machine's own hook loop (``flow.hooks``); test traffic
and capacity are handled here; approvals wait for ``ecs-canary approve`` / ``reject``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import ClientError

from ecs_canary import aws, green
from ecs_canary.errors import RouterConfigError
from ecs_canary.gates import ApprovalSpec, HookStage, listener_of_rule
from ecs_canary.routers.route53 import normalise_record_name
from ecs_canary.spec import AlbRouterSpec, ServicePairSpec
from ecs_canary.store import Deployment, Store

__all__ = [
    "Gate",
    "apply_test_traffic",
    "capacity_problem",
    "final_gate",
    "preproduction_gate",
    "restore_test_traffic",
    "shift_gate",
    "snapshot_test_traffic",
    "test_endpoint",
]

GateKind = Literal["hooks", "test_traffic", "approval", "capacity", "bake"]


@dataclass(frozen=True)
class Gate:
    """The next thing the deployment must pass: hooks of a stage, test traffic, an approval, capacity."""

    kind: GateKind
    key: str
    stage: HookStage | None = None
    approval: ApprovalSpec | None = None
    seconds: int = 0


def _pending(spec: ServicePairSpec, record: Deployment, candidates: list[Gate]) -> Gate | None:
    for gate in candidates:
        if gate.key in record.gates_done:
            continue
        if gate.kind == "hooks" and gate.stage is not None and not spec.hooks.of(gate.stage):
            continue
        return gate
    return None


def preproduction_gate(spec: ServicePairSpec, record: Deployment) -> Gate | None:
    """Before the first production shift: hooks, test traffic, more hooks, an approval, capacity."""
    candidates = [Gate("hooks", "hooks:before_test_traffic", "before_test_traffic")]
    if spec.test_traffic is not None:
        candidates.append(Gate("test_traffic", "test_traffic"))
    candidates += [
        Gate("hooks", "hooks:after_test_traffic", "after_test_traffic"),
        Gate("hooks", "hooks:before_production_traffic", "before_production_traffic"),
    ]
    if spec.approvals.before_production_traffic is not None:
        candidates.append(
            Gate(
                "approval",
                "approval:before_production_traffic",
                approval=spec.approvals.before_production_traffic,
            )
        )
    candidates.append(Gate("capacity", "capacity"))
    return _pending(spec, record, candidates)


def shift_gate(spec: ServicePairSpec, record: Deployment, step_index: int) -> Gate | None:
    """Right after production shift ``step_index``: its after_each_shift hooks, before its bake counts."""
    return _pending(spec, record, [Gate("hooks", f"hooks:after_each_shift:{step_index}", "after_each_shift")])


def step_approval_gate(spec: ServicePairSpec, record: Deployment, step_index: int) -> Gate | None:
    """Before production shift ``step_index``: the approval a ``steps`` plan puts in front of it."""
    approval = spec.step_approvals().get(step_index)
    if approval is None:
        return None
    return _pending(spec, record, [Gate("approval", f"approval:step:{step_index + 1}", approval=approval)])


def final_gate(spec: ServicePairSpec, record: Deployment) -> Gate | None:
    """At 100 % after its bake passed, before the deployment is recorded a success."""
    candidates = [Gate("hooks", "hooks:after_production_traffic", "after_production_traffic")]
    if spec.approvals.after_production_traffic is not None:
        candidates.append(
            Gate(
                "approval",
                "approval:after_production_traffic",
                approval=spec.approvals.after_production_traffic,
            )
        )
    candidates.append(Gate("hooks", "hooks:after_promotion", "after_promotion"))
    if spec.after_promotion.bake_seconds > 0:
        candidates.append(Gate("bake", "bake:after_promotion", seconds=spec.after_promotion.bake_seconds))
    return _pending(spec, record, candidates)


# ---- test traffic ------------------------------------------------------------------------------------


def test_endpoint(spec: ServicePairSpec) -> dict[str, Any] | None:
    """What a hook is told about the test endpoint (None without test traffic)."""
    test = spec.test_traffic
    if test is None:
        return None
    if test.record_name is not None:
        return {"type": "route53", "record_name": normalise_record_name(test.record_name)}
    elbv2 = aws.client("elbv2")
    listener_arn = test.listener_arn
    if listener_arn is None and test.rule_arn is not None:
        listener_arn = listener_of_rule(test.rule_arn)
    bare = {"type": "alb", "listener_arn": listener_arn, "rule_arn": test.rule_arn}
    try:
        listeners = elbv2.describe_listeners(ListenerArns=[listener_arn])["Listeners"] if listener_arn else []
        if not listeners:
            return bare
        listener = listeners[0]
        described = elbv2.describe_load_balancers(LoadBalancerArns=[listener["LoadBalancerArn"]])
        balancers = described["LoadBalancers"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
            return bare  # the gate itself names the missing listener
        raise
    balancer = balancers[0] if balancers else {}
    return {
        "type": "alb",
        "listener_arn": listener_arn,
        "rule_arn": test.rule_arn,
        "dns_name": balancer.get("DNSName"),
        "port": listener.get("Port"),
        "protocol": listener.get("Protocol"),
    }


_NOT_FOUND = ("ListenerNotFound", "RuleNotFound", "LoadBalancerNotFound")


def _alb_actions(elbv2: Any, listener_arn: str | None, rule_arn: str | None) -> list[dict[str, Any]]:
    """The test listener's default actions or the test rule's actions; a missing one is final."""
    what = f"test listener rule {rule_arn}" if rule_arn else f"test listener {listener_arn}"
    try:
        if rule_arn:
            found = elbv2.describe_rules(RuleArns=[rule_arn])["Rules"]
            key = "Actions"
        else:
            found = elbv2.describe_listeners(ListenerArns=[listener_arn])["Listeners"]
            key = "DefaultActions"
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
            raise RouterConfigError(f"{what} (test_traffic) does not exist: {exc}") from exc
        raise
    if not found:
        raise RouterConfigError(f"{what} (test_traffic) does not exist")
    return [dict(a) for a in found[0].get(key, [])]


def _write_alb_actions(
    elbv2: Any, listener_arn: str | None, rule_arn: str | None, actions: list[Any]
) -> None:
    for action in actions:
        config = action.get("AuthenticateOidcConfig")
        if isinstance(config, dict) and "ClientSecret" not in config:
            action["AuthenticateOidcConfig"] = {**config, "UseExistingClientSecret": True}
    if rule_arn:
        elbv2.modify_rule(RuleArn=rule_arn, Actions=actions)
    else:
        elbv2.modify_listener(ListenerArn=listener_arn, DefaultActions=actions)


def _green_forward(actions: list[dict[str, Any]], green_tg: str) -> list[dict[str, Any]]:
    """The actions with their (one) forward sending everything to green's target group."""
    updated = copy.deepcopy(actions)
    forwards = [a for a in updated if a.get("Type") == "forward"]
    order = min((int(a.get("Order", 1)) for a in updated), default=1)
    if not forwards:
        return [
            {
                "Type": "forward",
                "Order": order,
                "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": green_tg, "Weight": 1}]},
            }
        ]
    forward = forwards[0]
    forward.pop("TargetGroupArn", None)
    forward["ForwardConfig"] = {
        **{k: v for k, v in (forward.get("ForwardConfig") or {}).items() if k != "TargetGroups"},
        "TargetGroups": [{"TargetGroupArn": green_tg, "Weight": 1}],
    }
    return updated


def _route53_records(route53: Any, zone: str, name: str, record_type: str) -> list[dict[str, Any]]:
    listing = route53.list_resource_record_sets(
        HostedZoneId=zone, StartRecordName=name, StartRecordType=record_type, MaxItems="100"
    )["ResourceRecordSets"]
    wanted = normalise_record_name(name)
    return [
        dict(r) for r in listing if normalise_record_name(r["Name"]) == wanted and r["Type"] == record_type
    ]


def snapshot_test_traffic(spec: ServicePairSpec, record: Deployment) -> dict[str, Any]:
    """What the test listener, rule or record is now, and what pointing it at green writes (read only)."""
    test = spec.test_traffic
    assert test is not None
    green_spec = spec.service(record.service)
    if isinstance(spec.router, AlbRouterSpec):
        actions = _alb_actions(aws.client("elbv2"), test.listener_arn, test.rule_arn)
        return {
            "kind": "alb",
            "listener_arn": test.listener_arn,
            "rule_arn": test.rule_arn,
            "actions": json.dumps(actions),
            "green_target_group_arn": green_spec.target_group_arn,
        }
    router = spec.router
    route53: Any = aws.client("route53")
    assert test.record_name is not None
    name = normalise_record_name(test.record_name)
    existing = _route53_records(route53, router.hosted_zone_id, name, router.record_type)
    greens = [
        r
        for r in _route53_records(route53, router.hosted_zone_id, router.record_name, router.record_type)
        if r.get("SetIdentifier") == green_spec.record_set_identifier
    ]
    if not greens:
        raise RouterConfigError(f"no weighted record {router.record_name} for {record.service} to copy")
    pointed = {k: v for k, v in greens[0].items() if k not in ("SetIdentifier", "Weight")}
    pointed["Name"] = name
    return {
        "kind": "route53",
        "zone": router.hosted_zone_id,
        "record": json.dumps(existing[0]) if existing else None,
        "created": json.dumps(pointed),
    }


def apply_test_traffic(spec: ServicePairSpec, record: Deployment, snapshot: Mapping[str, Any]) -> None:
    """Point the test listener, rule or record at green, from the stored snapshot (so a retry is exact)."""
    if snapshot.get("kind") == "alb":
        elbv2 = aws.client("elbv2")
        actions = json.loads(str(snapshot["actions"]))
        green_tg = snapshot.get("green_target_group_arn") or spec.service(record.service).target_group_arn
        forward = _green_forward(actions, str(green_tg))
        _write_alb_actions(elbv2, snapshot.get("listener_arn"), snapshot.get("rule_arn"), forward)
        return
    route53: Any = aws.client("route53")
    route53.change_resource_record_sets(
        HostedZoneId=str(snapshot["zone"]),
        ChangeBatch={
            "Comment": f"ecs-canary: test traffic to {record.service}",
            "Changes": [{"Action": "UPSERT", "ResourceRecordSet": json.loads(str(snapshot["created"]))}],
        },
    )


def restore_test_traffic(snapshot: Mapping[str, Any]) -> str:
    """Put the test listener, rule or record back exactly as the snapshot says; what was done."""
    if snapshot.get("restored"):
        return "test traffic already restored"
    if snapshot.get("kind") == "alb":
        elbv2 = aws.client("elbv2")
        actions = json.loads(str(snapshot["actions"]))
        _write_alb_actions(elbv2, snapshot.get("listener_arn"), snapshot.get("rule_arn"), actions)
        return "test traffic restored"
    route53: Any = aws.client("route53")
    zone = str(snapshot["zone"])
    if snapshot.get("record"):
        change = {"Action": "UPSERT", "ResourceRecordSet": json.loads(str(snapshot["record"]))}
    else:
        created = json.loads(str(snapshot["created"]))
        current = _route53_records(route53, zone, created["Name"], created["Type"])
        if not current:
            return "test record already gone"
        change = {"Action": "DELETE", "ResourceRecordSet": current[0]}
    route53.change_resource_record_sets(
        HostedZoneId=zone, ChangeBatch={"Comment": "ecs-canary: test traffic restored", "Changes": [change]}
    )
    return "test traffic restored"


# ---- capacity ------------------------------------------------------------------------------------------


def restore_test_target(store: Store, record: Deployment) -> None:
    """Put the test listener, rule or record back as its snapshot says, once (a retry finds it done)."""
    snapshot = record.test_snapshot
    if snapshot and not snapshot.get("restored"):
        store.record_test_restored(record.pair, record.deployment_id, restore_test_traffic(snapshot))


def capacity_problem(spec: ServicePairSpec, record: Deployment) -> str | None:
    """Why green cannot carry all of the live service's traffic yet (None when it can)."""
    ecs = aws.client("ecs")
    green_running = int(green.describe_service(ecs, spec.cluster, record.service).get("runningCount", 0))
    live_running = int(green.describe_service(ecs, spec.cluster, record.live_service).get("runningCount", 0))
    needed = -(-live_running * spec.capacity.min_healthy_percent // 100)
    if green_running >= needed:
        return None
    return (
        f"{record.service} runs {green_running} tasks, but carrying all of {record.live_service}'s traffic "
        f"needs {needed} ({spec.capacity.min_healthy_percent}% of its {live_running})"
    )
