"""AlbRouter against moto's ELBv2: listener default actions and listener rules."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from ecs_canary.errors import RouterConfigError, ShiftNotVerified
from ecs_canary.routers import AlbRouter, ShiftReceipt
from ecs_canary.routers.alb import _keep_oidc_secret

BLUE, GREEN = "shop-blue", "shop-green"
STICKY = {"Enabled": True, "DurationSeconds": 300}
OIDC = {
    "Type": "authenticate-oidc",
    "Order": 1,
    "AuthenticateOidcConfig": {
        "Issuer": "https://idp.example.com",
        "AuthorizationEndpoint": "https://idp.example.com/auth",
        "TokenEndpoint": "https://idp.example.com/token",
        "UserInfoEndpoint": "https://idp.example.com/user",
        "ClientId": "client",
        "ClientSecret": "secret",
    },
}


@dataclass
class Alb:
    client: Any
    listener: str
    plain_rule: str  # forward via TargetGroupArn to blue, behind an OIDC action
    split_rule: str  # ForwardConfig 30/70 with stickiness
    foreign_rule: str  # ForwardConfig split between blue and a third target group
    fixed_rule: str  # fixed-response only
    blue: str
    green: str
    other: str


def _forward(*groups: tuple[str, int], order: int | None = None, sticky: bool = False) -> dict[str, Any]:
    config: dict[str, Any] = {"TargetGroups": [{"TargetGroupArn": arn, "Weight": w} for arn, w in groups]}
    if sticky:
        config["TargetGroupStickinessConfig"] = STICKY
    action: dict[str, Any] = {"Type": "forward", "ForwardConfig": config}
    if order is not None:
        action["Order"] = order
    return action


@pytest.fixture
def alb(mocked_aws: None) -> Alb:
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-east-1{az}")["Subnet"][
            "SubnetId"
        ]
        for i, az in ((1, "a"), (2, "b"))
    ]
    elbv2: Any = boto3.client("elbv2")
    lb = elbv2.create_load_balancer(Name="shop", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
    blue, green, other = (
        elbv2.create_target_group(Name=name, Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip")[
            "TargetGroups"
        ][0]["TargetGroupArn"]
        for name in ("blue", "green", "other")
    )
    listener = elbv2.create_listener(
        LoadBalancerArn=lb,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[_forward((blue, 100), (green, 0), sticky=True)],
    )["Listeners"][0]["ListenerArn"]

    def rule(priority: int, path: str, actions: list[dict[str, Any]]) -> str:
        return str(
            elbv2.create_rule(
                ListenerArn=listener,
                Priority=priority,
                Conditions=[{"Field": "path-pattern", "Values": [path]}],
                Actions=actions,
            )["Rules"][0]["RuleArn"]
        )

    return Alb(
        client=elbv2,
        listener=listener,
        plain_rule=rule(10, "/api/*", [OIDC, {"Type": "forward", "Order": 2, "TargetGroupArn": blue}]),
        split_rule=rule(20, "/shop/*", [_forward((blue, 30), (green, 70), order=1, sticky=True)]),
        foreign_rule=rule(30, "/x/*", [_forward((blue, 50), (other, 50))]),
        fixed_rule=rule(
            40, "/gone/*", [{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "410"}}]
        ),
        blue=blue,
        green=green,
        other=other,
    )


def _router(alb: Alb, *, listener: bool = False, rule: str | None = None) -> AlbRouter:
    return AlbRouter(
        alb.client,
        listener_arn=alb.listener if listener else None,
        rule_arn=rule,
        target_groups={BLUE: alb.blue, GREEN: alb.green},
    )


def _listener_actions(alb: Alb) -> list[dict[str, Any]]:
    return list(alb.client.describe_listeners(ListenerArns=[alb.listener])["Listeners"][0]["DefaultActions"])


def _rule(alb: Alb, arn: str) -> dict[str, Any]:
    return dict(alb.client.describe_rules(RuleArns=[arn])["Rules"][0])


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("listener", {BLUE: 100, GREEN: 0}),
        ("plain_rule", {BLUE: 1, GREEN: 0}),
        ("split_rule", {BLUE: 30, GREEN: 70}),
    ],
)
def test_read_weights(alb: Alb, target: str, expected: dict[str, int]) -> None:
    router = _router(alb, listener=True) if target == "listener" else _router(alb, rule=getattr(alb, target))
    assert router.read_weights() == expected


def test_rule_wins_over_listener(alb: Alb) -> None:
    router = AlbRouter(
        alb.client,
        listener_arn=alb.listener,
        rule_arn=alb.split_rule,
        target_groups={BLUE: alb.blue, GREEN: alb.green},
    )
    assert router.read_weights() == {BLUE: 30, GREEN: 70}
    assert router.describe() == f"ALB listener rule {alb.split_rule}"


@pytest.mark.parametrize("weights", [{BLUE: 10, GREEN: 90}, {BLUE: 0, GREEN: 999}, {BLUE: 999, GREEN: 0}])
def test_set_listener_weights_keeps_stickiness(alb: Alb, weights: dict[str, int]) -> None:
    router = _router(alb, listener=True)
    rules_before = alb.client.describe_rules(ListenerArn=alb.listener)["Rules"]

    receipt = router.set_weights(weights)

    assert receipt == ShiftReceipt(change_id=None)
    (action,) = _listener_actions(alb)
    assert action["Type"] == "forward"
    assert action["ForwardConfig"]["TargetGroupStickinessConfig"] == STICKY
    assert action["ForwardConfig"]["TargetGroups"] == [
        {"TargetGroupArn": alb.blue, "Weight": weights[BLUE]},
        {"TargetGroupArn": alb.green, "Weight": weights[GREEN]},
    ]
    router.verify(weights, receipt)
    assert router.read_weights() == weights
    rules_after = alb.client.describe_rules(ListenerArn=alb.listener)["Rules"]
    assert [r for r in rules_after if not r["IsDefault"]] == [r for r in rules_before if not r["IsDefault"]]


def test_set_rule_weights_keeps_other_actions_and_conditions(alb: Alb) -> None:
    router = _router(alb, rule=alb.plain_rule)
    before = _rule(alb, alb.plain_rule)

    router.set_weights({BLUE: 95, GREEN: 5})

    after = _rule(alb, alb.plain_rule)
    assert after["Conditions"] == before["Conditions"]
    assert after["Priority"] == before["Priority"]
    oidc, forward = after["Actions"]
    assert oidc["Type"] == "authenticate-oidc"
    assert oidc["Order"] == 1
    # Real ELBv2 omits ClientSecret from describe calls (the router then sets
    # UseExistingClientSecret); moto echoes the secret back, so compare the rest.
    secretless = {"ClientSecret", "UseExistingClientSecret"}
    config = OIDC["AuthenticateOidcConfig"]
    assert isinstance(config, dict)
    assert {k: v for k, v in oidc["AuthenticateOidcConfig"].items() if k not in secretless} == {
        k: v for k, v in config.items() if k not in secretless
    }
    assert forward["Order"] == 2
    assert "TargetGroupArn" not in forward
    assert forward["ForwardConfig"]["TargetGroups"] == [
        {"TargetGroupArn": alb.blue, "Weight": 95},
        {"TargetGroupArn": alb.green, "Weight": 5},
    ]
    assert router.read_weights() == {BLUE: 95, GREEN: 5}


def test_set_split_rule_keeps_order_and_stickiness(alb: Alb) -> None:
    router = _router(alb, rule=alb.split_rule)
    router.set_weights({BLUE: 0, GREEN: 1})
    (forward,) = _rule(alb, alb.split_rule)["Actions"]
    assert forward["Order"] == 1
    assert forward["ForwardConfig"]["TargetGroupStickinessConfig"] == STICKY
    assert router.read_weights() == {BLUE: 0, GREEN: 1}


def test_foreign_target_group_is_refused(alb: Alb) -> None:
    router = _router(alb, rule=alb.foreign_rule)
    before = _rule(alb, alb.foreign_rule)
    with pytest.raises(RouterConfigError, match=r"target group .*other.* belongs to neither"):
        router.read_weights()
    with pytest.raises(RouterConfigError, match="belongs to neither"):
        router.set_weights({BLUE: 1, GREEN: 1})
    assert _rule(alb, alb.foreign_rule) == before


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("fixed_rule", "has no forward action"),
        ("missing_rule", "listener rule .* does not exist"),
        ("missing_listener", "listener .* does not exist"),
    ],
)
def test_config_errors(alb: Alb, target: str, message: str) -> None:
    if target == "missing_rule":
        router = _router(alb, rule=alb.split_rule[:-4] + "0000")
    elif target == "missing_listener":
        router = AlbRouter(
            alb.client,
            listener_arn=alb.listener[:-4] + "0000",
            rule_arn=None,
            target_groups={BLUE: alb.blue, GREEN: alb.green},
        )
    else:
        router = _router(alb, rule=getattr(alb, target))
    with pytest.raises(RouterConfigError, match=message):
        router.read_weights()
    with pytest.raises(RouterConfigError, match=message):
        router.set_weights({BLUE: 1, GREEN: 1})


@pytest.mark.parametrize(
    "weights",
    [
        {BLUE: 1},
        {GREEN: 1, "shop-purple": 1},
        {BLUE: 1, GREEN: 1, "shop-purple": 0},
        {BLUE: -1, GREEN: 1},
        {BLUE: 1000, GREEN: 0},
        {BLUE: "1", GREEN: 0},
    ],
)
def test_set_weights_rejects_bad_weights(alb: Alb, weights: dict[str, Any]) -> None:
    router = _router(alb, listener=True)
    before = _listener_actions(alb)
    with pytest.raises(ValueError, match="weight"):
        router.set_weights(weights)
    assert _listener_actions(alb) == before


def test_verify_detects_mismatch(alb: Alb) -> None:
    router = _router(alb, listener=True)
    receipt = router.set_weights({BLUE: 50, GREEN: 50})
    with pytest.raises(ShiftNotVerified, match="50"):
        router.verify({BLUE: 0, GREEN: 100}, receipt)


def test_propagation_and_describe(alb: Alb) -> None:
    router = _router(alb, listener=True)
    assert router.propagation_seconds() == 0
    assert router.describe() == f"ALB listener {alb.listener}"
    assert alb.listener in repr(router)


def test_constructor_rejects_bad_pairs(alb: Alb) -> None:
    with pytest.raises(ValueError, match="exactly two"):
        AlbRouter(alb.client, listener_arn=alb.listener, rule_arn=None, target_groups={BLUE: alb.blue})
    with pytest.raises(ValueError, match="both services"):
        AlbRouter(
            alb.client,
            listener_arn=alb.listener,
            rule_arn=None,
            target_groups={BLUE: alb.blue, GREEN: alb.blue},
        )


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ({"Type": "forward"}, {"Type": "forward"}),
        (
            {"Type": "authenticate-oidc", "AuthenticateOidcConfig": {"ClientId": "c"}},
            {
                "Type": "authenticate-oidc",
                "AuthenticateOidcConfig": {"ClientId": "c", "UseExistingClientSecret": True},
            },
        ),
        (
            {"Type": "authenticate-oidc", "AuthenticateOidcConfig": {"ClientId": "c", "ClientSecret": "s"}},
            {"Type": "authenticate-oidc", "AuthenticateOidcConfig": {"ClientId": "c", "ClientSecret": "s"}},
        ),
    ],
)
def test_keep_oidc_secret(action: dict[str, Any], expected: dict[str, Any]) -> None:
    action = copy.deepcopy(action)
    _keep_oidc_secret(action)
    assert action == expected
