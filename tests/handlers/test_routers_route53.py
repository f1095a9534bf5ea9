"""Route53Router against moto's Route53: weighted alias and plain records, errors, paging."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import WaiterError
from botocore.stub import Stubber
from ecs_canary import aws
from ecs_canary.errors import RouterConfigError, ShiftNotVerified
from ecs_canary.routers import AlbRouter, Route53Router, ShiftReceipt, build_router
from ecs_canary.routers.route53 import normalise_record_name

BLUE, GREEN = "shop-blue", "shop-green"
SET_IDS = {BLUE: "blue", GREEN: "green"}


@dataclass
class Zone:
    client: Any
    zone_id: str
    health_check_id: str


def _weighted(name: str, rtype: str, sid: str, weight: int, **extra: Any) -> dict[str, Any]:
    return {
        "Action": "CREATE",
        "ResourceRecordSet": {"Name": name, "Type": rtype, "SetIdentifier": sid, "Weight": weight, **extra},
    }


def _alias(dns: str) -> dict[str, Any]:
    return {"AliasTarget": {"HostedZoneId": "Z35SXDOTRQ7X7K", "DNSName": dns, "EvaluateTargetHealth": True}}


@pytest.fixture
def zone(mocked_aws: None) -> Zone:
    client: Any = boto3.client("route53")
    zone_id = client.create_hosted_zone(Name="example.com", CallerReference="zone")["HostedZone"]["Id"]
    health_check_id = client.create_health_check(
        CallerReference="hc",
        HealthCheckConfig={"Type": "HTTP", "FullyQualifiedDomainName": "blue.example.net", "Port": 80},
    )["HealthCheck"]["Id"]
    changes = [
        _weighted("api.example.com", "A", "blue", 100, **_alias("blue-lb.us-east-1.elb.amazonaws.com")),
        _weighted("api.example.com", "A", "green", 0, **_alias("green-lb.us-east-1.elb.amazonaws.com")),
        # Same set identifiers under a longer name: must never be picked up for api.example.com.
        _weighted("x.api.example.com", "A", "blue", 7, TTL=10, ResourceRecords=[{"Value": "10.0.0.7"}]),
        _weighted("x.api.example.com", "A", "green", 8, TTL=10, ResourceRecords=[{"Value": "10.0.0.8"}]),
        _weighted(
            "web.example.com",
            "CNAME",
            "blue",
            200,
            TTL=30,
            HealthCheckId=health_check_id,
            ResourceRecords=[{"Value": "blue.example.net"}],
        ),
        _weighted(
            "web.example.com", "CNAME", "green", 55, TTL=45, ResourceRecords=[{"Value": "green.example.net"}]
        ),
        {
            "Action": "CREATE",
            "ResourceRecordSet": {
                "Name": "lat.example.com",
                "Type": "A",
                "SetIdentifier": "blue",
                "Region": "us-east-1",
                "TTL": 60,
                "ResourceRecords": [{"Value": "10.0.1.1"}],
            },
        },
        {
            "Action": "CREATE",
            "ResourceRecordSet": {
                "Name": "lat.example.com",
                "Type": "A",
                "SetIdentifier": "green",
                "Region": "us-west-2",
                "TTL": 60,
                "ResourceRecords": [{"Value": "10.0.1.2"}],
            },
        },
    ]
    client.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})
    return Zone(client, zone_id, health_check_id)


def _router(zone: Zone, name: str = "api.example.com", rtype: str = "A", **kw: Any) -> Route53Router:
    return Route53Router(
        zone.client,
        hosted_zone_id=kw.get("hosted_zone_id", zone.zone_id),
        record_name=name,
        record_type=rtype,
        set_identifiers=kw.get("set_identifiers", SET_IDS),
    )


def _record_sets(zone: Zone, name: str) -> dict[str, dict[str, Any]]:
    listing = zone.client.list_resource_record_sets(HostedZoneId=zone.zone_id)["ResourceRecordSets"]
    return {
        r["SetIdentifier"]: r
        for r in listing
        if r["Name"] == normalise_record_name(name) and "SetIdentifier" in r
    }


@pytest.mark.parametrize(
    ("name", "rtype", "expected"),
    [
        ("api.example.com", "A", {BLUE: 100, GREEN: 0}),
        ("api.example.com.", "A", {BLUE: 100, GREEN: 0}),
        ("API.Example.COM", "A", {BLUE: 100, GREEN: 0}),
        ("web.example.com", "CNAME", {BLUE: 200, GREEN: 55}),
        ("x.api.example.com", "A", {BLUE: 7, GREEN: 8}),
    ],
)
def test_read_weights(zone: Zone, name: str, rtype: str, expected: dict[str, int]) -> None:
    assert _router(zone, name, rtype).read_weights() == expected


@pytest.mark.parametrize(
    ("name", "rtype", "weights"),
    [
        ("api.example.com", "A", {BLUE: 10, GREEN: 90}),
        ("api.example.com", "A", {BLUE: 0, GREEN: 255}),
        ("web.example.com", "CNAME", {BLUE: 1, GREEN: 0}),
    ],
)
def test_set_weights_changes_only_weight(zone: Zone, name: str, rtype: str, weights: dict[str, int]) -> None:
    router = _router(zone, name, rtype)
    before = _record_sets(zone, name)
    other_before = _record_sets(zone, "x.api.example.com")

    receipt = router.set_weights(weights)

    assert receipt.change_id
    after = _record_sets(zone, name)
    for svc, sid in SET_IDS.items():
        expected = copy.deepcopy(before[sid])
        expected["Weight"] = weights[svc]
        assert after[sid] == expected
    assert _record_sets(zone, "x.api.example.com") == other_before
    router.verify(weights, receipt)
    assert router.read_weights() == weights


def test_set_weights_keeps_health_check_and_ttl(zone: Zone) -> None:
    router = _router(zone, "web.example.com", "CNAME")
    router.set_weights({BLUE: 3, GREEN: 4})
    blue = _record_sets(zone, "web.example.com")["blue"]
    assert blue["HealthCheckId"] == zone.health_check_id
    assert blue["TTL"] == 30
    assert blue["ResourceRecords"] == [{"Value": "blue.example.net"}]


def test_verify_detects_mismatch(zone: Zone) -> None:
    router = _router(zone)
    receipt = router.set_weights({BLUE: 50, GREEN: 50})
    with pytest.raises(ShiftNotVerified, match="50"):
        router.verify({BLUE: 0, GREEN: 100}, receipt)


def test_verify_waiter_failure_is_not_verified(zone: Zone, monkeypatch: pytest.MonkeyPatch) -> None:
    router = _router(zone)
    receipt = router.set_weights({BLUE: 50, GREEN: 50})
    calls: list[dict[str, Any]] = []

    class StuckWaiter:
        def wait(self, **kwargs: Any) -> None:
            calls.append(kwargs)
            raise WaiterError("ResourceRecordSetsChanged", "Max attempts exceeded", {})

    monkeypatch.setattr(router.client, "get_waiter", lambda name: StuckWaiter())
    with pytest.raises(ShiftNotVerified, match="INSYNC"):
        router.verify({BLUE: 50, GREEN: 50}, receipt)
    assert calls == [{"Id": receipt.change_id, "WaiterConfig": {"Delay": 2, "MaxAttempts": 150}}]


@pytest.mark.parametrize(
    ("name", "rtype", "seconds"),
    [
        ("api.example.com", "A", 60),  # alias records: resolvers cache 60 s
        ("web.example.com", "CNAME", 45),  # max of TTL 30 and 45
        ("x.api.example.com", "A", 10),
    ],
)
def test_propagation_seconds(zone: Zone, name: str, rtype: str, seconds: int) -> None:
    assert _router(zone, name, rtype).propagation_seconds() == seconds


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "missing.example.com"}, "SetIdentifier 'blue'.*does not exist"),
        ({"rtype": "AAAA"}, "AAAA record api.example.com. with SetIdentifier 'blue'.*does not exist"),
        (
            {"set_identifiers": {BLUE: "blue", GREEN: "purple"}},
            "SetIdentifier 'purple' \\(service shop-green\\).*does not exist",
        ),
        ({"name": "lat.example.com"}, "lat.example.com. .*is not a weighted record"),
        ({"hosted_zone_id": "/hostedzone/ZNOSUCHZONE"}, "hosted zone /hostedzone/ZNOSUCHZONE does not exist"),
    ],
)
def test_config_errors(zone: Zone, kwargs: dict[str, Any], message: str) -> None:
    name = kwargs.pop("name", "api.example.com")
    rtype = kwargs.pop("rtype", "A")
    router = _router(zone, name, rtype, **kwargs)
    with pytest.raises(RouterConfigError, match=message):
        router.read_weights()
    with pytest.raises(RouterConfigError, match=message):
        router.set_weights({BLUE: 1, GREEN: 1})


@pytest.mark.parametrize(
    "weights",
    [
        {BLUE: 1},
        {BLUE: 1, GREEN: 1, "other": 1},
        {BLUE: 1, "other": 1},
        {BLUE: -1, GREEN: 1},
        {BLUE: 256, GREEN: 0},
        {BLUE: True, GREEN: 0},
        {BLUE: 1.5, GREEN: 0},
    ],
)
def test_set_weights_rejects_bad_weights(zone: Zone, weights: dict[str, Any]) -> None:
    router = _router(zone)
    with pytest.raises(ValueError, match="weight"):
        router.set_weights(weights)
    assert router.read_weights() == {BLUE: 100, GREEN: 0}


def test_constructor_rejects_bad_identifiers(zone: Zone) -> None:
    with pytest.raises(ValueError, match="exactly two"):
        _router(zone, set_identifiers={BLUE: "blue"})
    with pytest.raises(ValueError, match="SetIdentifier"):
        _router(zone, set_identifiers={BLUE: "same", GREEN: "same"})


def test_describe(zone: Zone) -> None:
    text = _router(zone).describe()
    assert "api.example.com." in text
    assert zone.zone_id in text
    assert "shop-green=green" in text


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("api.example.com", "api.example.com."),
        ("API.example.com.", "api.example.com."),
        ("\\052.example.com.", "*.example.com."),
    ],
)
def test_normalise_record_name(raw: str, normal: str) -> None:
    assert normalise_record_name(raw) == normal


def _rr(name: str, sid: str, weight: int) -> dict[str, Any]:
    return {
        "Name": name,
        "Type": "A",
        "SetIdentifier": sid,
        "Weight": weight,
        "TTL": 20,
        "ResourceRecords": [{"Value": "10.0.0.1"}],
    }


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("route53")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def test_paging_follows_record_identifier(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response(
        "list_resource_record_sets",
        {
            "ResourceRecordSets": [
                _rr("api.example.com.", "canary-old", 1),
                _rr("api.example.com.", "blue", 9),
            ],
            "IsTruncated": True,
            "NextRecordName": "api.example.com.",
            "NextRecordType": "A",
            "NextRecordIdentifier": "green",
            "MaxItems": "2",
        },
        {"HostedZoneId": "Z1", "StartRecordName": "api.example.com.", "StartRecordType": "A"},
    )
    stubber.add_response(
        "list_resource_record_sets",
        {
            "ResourceRecordSets": [_rr("api.example.com.", "green", 4)],
            "IsTruncated": False,
            "MaxItems": "2",
        },
        {
            "HostedZoneId": "Z1",
            "StartRecordName": "api.example.com.",
            "StartRecordType": "A",
            "StartRecordIdentifier": "green",
        },
    )
    router = Route53Router(
        client, hosted_zone_id="Z1", record_name="api.example.com", record_type="A", set_identifiers=SET_IDS
    )
    assert router.read_weights() == {BLUE: 9, GREEN: 4}


def test_paging_stops_past_the_name(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response(
        "list_resource_record_sets",
        {
            "ResourceRecordSets": [_rr("api.example.com.", "blue", 9), _rr("b.api.example.com.", "green", 4)],
            "IsTruncated": True,
            "NextRecordName": "c.api.example.com.",
            "NextRecordType": "A",
            "MaxItems": "2",
        },
    )
    router = Route53Router(
        client, hosted_zone_id="Z1", record_name="api.example.com", record_type="A", set_identifiers=SET_IDS
    )
    with pytest.raises(RouterConfigError, match="'green'"):
        router.read_weights()


def test_verify_without_change_id_reads_back(zone: Zone) -> None:
    router = _router(zone)
    router.verify({BLUE: 100, GREEN: 0}, ShiftReceipt())


class RouterType(Enum):
    ROUTE53 = "route53"
    ALB = "alb"


@pytest.mark.parametrize("kind", ["route53", RouterType.ROUTE53])
def test_build_router_route53(zone: Zone, kind: Any) -> None:
    spec = SimpleNamespace(
        type=kind, hosted_zone_id=zone.zone_id, record_name="api.example.com", record_type="A"
    )
    router = build_router(spec, [(BLUE, None, "blue"), (GREEN, "arn:unused", "green")])
    assert isinstance(router, Route53Router)
    assert router.services == (BLUE, GREEN)
    assert router.read_weights() == {BLUE: 100, GREEN: 0}


def test_build_router_alb_uses_given_client(mocked_aws: None) -> None:
    elbv2 = boto3.client("elbv2")
    spec = SimpleNamespace(type=RouterType.ALB, listener_arn="arn:listener", rule_arn=None)
    router = build_router(spec, [(BLUE, "arn:tg/blue", None), (GREEN, "arn:tg/green", None)], elbv2=elbv2)
    assert isinstance(router, AlbRouter)
    assert router.client is elbv2
    assert router.target_groups == {BLUE: "arn:tg/blue", GREEN: "arn:tg/green"}
    assert router.describe() == "ALB listener arn:listener"


@pytest.mark.parametrize(
    ("spec", "services", "message"),
    [
        (
            SimpleNamespace(type="route53", hosted_zone_id="Z", record_name="a", record_type="A"),
            [(BLUE, "tg", None), (GREEN, "tg2", "green")],
            "shop-blue has no Route53 set identifier",
        ),
        (
            SimpleNamespace(type="alb", listener_arn="l", rule_arn=None),
            [(BLUE, "tg", None), (GREEN, None, None)],
            "shop-green has no target group ARN",
        ),
        (
            SimpleNamespace(type="alb", listener_arn=None, rule_arn=None),
            [(BLUE, "tg", None), (GREEN, "tg2", None)],
            "listener ARN or a listener rule ARN",
        ),
        (SimpleNamespace(type="appmesh"), [(BLUE, "tg", "b"), (GREEN, "tg2", "g")], "unknown router type"),
        (SimpleNamespace(type="alb"), [(BLUE, "tg", "b")], "exactly two services"),
    ],
)
def test_build_router_errors(spec: Any, services: list[Any], message: str) -> None:
    with pytest.raises(RouterConfigError, match=message):
        build_router(spec, services, route53=object(), elbv2=object())  # type: ignore[arg-type]


def test_default_clients_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    first = aws.client("route53")
    assert aws.client("route53") is first
    assert aws.client("ecs").meta.region_name == "us-east-1"
    config: Any = first.meta.config
    # botocore counts max_attempts as retries, so 8 of them make 9 attempts in total.
    assert config.retries == {"mode": "standard", "total_max_attempts": 9}
    assert (config.connect_timeout, config.read_timeout) == (5, 30)

    monkeypatch.setenv("AWS_ENDPOINT_URL_ROUTE_53", "http://127.0.0.1:4566")
    redirected = aws.client("route53")
    assert redirected is not first
    assert redirected.meta.endpoint_url == "http://127.0.0.1:4566"
    assert aws.client("ecs").meta.endpoint_url == "https://ecs.us-east-1.amazonaws.com"

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    ecs = aws.client("ecs")
    assert (ecs.meta.endpoint_url, ecs.meta.region_name) == ("http://127.0.0.1:5000", "eu-west-1")
    assert aws.client("route53").meta.endpoint_url == "http://127.0.0.1:4566"

    aws.reset_clients()
    assert aws.client("ecs") is not ecs
