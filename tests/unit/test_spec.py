"""Service-pair spec parsing: normalisation, every validation error by field path, schema, round trip."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from ecs_canary.errors import SpecError
from ecs_canary.plans import Plan, execution_budget
from ecs_canary.spec import (
    AlbRouterSpec,
    CanaryPlanSpec,
    HealthSpec,
    MetricThresholds,
    Route53RouterSpec,
    ServicePairSpec,
    ServiceSpec,
    SteadySpec,
    load_spec_yaml,
    parse_spec,
    spec_json_schema,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))

TG_BLUE = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web-blue/6d0ecf831eec9f09"
TG_GREEN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web-green/3a5b9c2d1e4f6a7b"
TG_OTHER_REGION = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-green/3a5b9c2d1e4f6a7b"
TG_OTHER_ACCOUNT = (
    "arn:aws:elasticloadbalancing:eu-west-1:210987654321:targetgroup/web-green/3a5b9c2d1e4f6a7b"
)
LISTENER = (
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/prod/50dc6c495c0c9188/f2f7dc8efc522ab2"
)
RULE = (
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener-rule/app/prod/50dc6c495c0c9188/"
    "f2f7dc8efc522ab2/9683b2d02a6cabee"
)
NLB_LISTENER = (
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/net/prod/50dc6c495c0c9188/f2f7dc8efc522ab2"
)

CN_ELB = "arn:aws-cn:elasticloadbalancing:cn-north-1:123456789012"

DELETE = object()


def alb_doc() -> dict[str, Any]:
    return {
        "name": "web",
        "cluster": "prod",
        "services": [
            {"name": "web-blue", "target_group_arn": TG_BLUE},
            {"name": "web-green", "target_group_arn": TG_GREEN},
        ],
        "router": {"type": "alb", "listener_arn": LISTENER},
        "plan": "Canary10Percent5Minutes",
        "health": {"alarms": ["web-5xx"]},
    }


def route53_doc() -> dict[str, Any]:
    return {
        "name": "api",
        "cluster": "arn:aws:ecs:us-east-1:123456789012:cluster/prod",
        "services": [
            {"name": "api-blue", "target_group_arn": TG_BLUE},
            {"name": "api-green", "target_group_arn": TG_GREEN},
        ],
        "router": {
            "type": "route53",
            "hosted_zone_id": "Z0123456789ABCDEFGHIJ",
            "record_name": "api.example.com",
        },
        "plan": {"type": "steps", "steps": [5, 25, 50, 100], "bake_seconds": 600},
        "health": {"metrics": {"max_5xx_percent": 0.5}},
    }


def changed(doc: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``doc`` with dotted paths set (or removed with DELETE)."""
    result = copy.deepcopy(doc)
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node: Any = result
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key: Any = int(leaf) if isinstance(node, list) else leaf
        if value is DELETE:
            del node[key]
        else:
            node[key] = value
    return result


def problems_of(doc: Any) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(doc)
    return list(info.value.problems)


# --- valid specs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_examples_parse_and_round_trip(path: Path) -> None:
    spec = load_spec_yaml(path.read_text())
    assert parse_spec(spec.model_dump(mode="json")) == spec
    assert spec.resolved_plan().steps[-1] == 100


def test_both_examples_exist() -> None:
    assert {p.name for p in EXAMPLE_FILES} >= {"alb-pair.yaml", "route53-pair.yaml"}


def test_alb_defaults() -> None:
    spec = parse_spec(alb_doc())
    assert spec.steady == SteadySpec(poll_seconds=15, timeout_seconds=900)
    assert spec.weight_total == 100
    assert spec.health == HealthSpec(
        alarms=("web-5xx",), metrics=None, recheck_seconds=30, max_inconclusive=3
    )
    assert spec.resolved_plan() == Plan((10, 100), 300)
    assert isinstance(spec.router, AlbRouterSpec)
    assert spec.router.arn == LISTENER
    assert spec.services[0].set_identifier is None


def test_route53_defaults_and_normalisation() -> None:
    doc = changed(route53_doc(), {"router.hosted_zone_id": "/hostedzone/Z0123456789ABCDEFGHIJ"})
    spec = parse_spec(doc)
    assert isinstance(spec.router, Route53RouterSpec)
    assert spec.router.hosted_zone_id == "Z0123456789ABCDEFGHIJ"
    assert spec.router.record_name == "api.example.com."
    assert spec.router.record_type == "A"
    assert [s.record_set_identifier for s in spec.services] == ["api-blue", "api-green"]
    assert spec.health.metrics == MetricThresholds(
        max_5xx_percent=0.5, max_p99_latency_ms=None, min_requests=20
    )


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("api.example.com", "api.example.com."),
        ("api.example.com.", "api.example.com."),
        ("API.Example.COM", "api.example.com."),
        (" api.example.com ", "api.example.com."),
        ("*.example.com", "*.example.com."),
        ("\\052.example.com.", "*.example.com."),
        ("_svc.example.com", "_svc.example.com."),
        ("xn--bcher-kva.example", "xn--bcher-kva.example."),
        ("example.com", "example.com."),
    ],
)
def test_record_name_is_normalised(written: str, stored: str) -> None:
    spec = parse_spec(changed(route53_doc(), {"router.record_name": written}))
    assert isinstance(spec.router, Route53RouterSpec)
    assert spec.router.record_name == stored


def test_explicit_set_identifiers_are_used() -> None:
    doc = changed(route53_doc(), {"services.0.set_identifier": "blue", "services.1.set_identifier": "green"})
    spec = parse_spec(doc)
    assert [s.record_set_identifier for s in spec.services] == ["blue", "green"]


@pytest.mark.parametrize(
    "changes",
    [
        {"router": {"type": "alb", "rule_arn": RULE}},
        {
            "router.listener_arn": f"{CN_ELB}:listener/app/a/1/2",
            "services.0.target_group_arn": f"{CN_ELB}:targetgroup/a/1",
            "services.1.target_group_arn": f"{CN_ELB}:targetgroup/b/2",
        },
        {"cluster": "arn:aws:ecs:eu-west-1:123456789012:cluster/prod_2"},
        {"cluster": "my_cluster-1"},
        {"name": "a"},
        {"name": "A" * 40},
        {"name": "9_lives-x"},
        {"plan": "CodeDeployDefault.ECSLinear10PercentEvery3Minutes"},
        {"plan": {"type": "all_at_once"}},
        {"plan": {"type": "canary", "percent": 1, "bake_seconds": 0}},
        {"plan": {"type": "linear", "percent": 30, "bake_seconds": 86_400}},
        {"plan": {"type": "steps", "steps": [100]}},
        {"plan": "Linear1PercentEvery1Minute"},
        {"weight_total": 999},
        {"weight_total": 1000 // 10, "plan": "AllAtOnce"},
        {"weight_total": 1, "plan": "AllAtOnce"},
        {"weight_total": 2, "plan": {"type": "canary", "percent": 50}},
        {"health": {"metrics": {"max_p99_latency_ms": 0.5, "min_requests": 1}}},
        {"health": {"alarms": ["a"], "metrics": {"max_5xx_percent": 0}}},
        {"health": {"alarms": ["a"], "recheck_seconds": 5, "max_inconclusive": 0}},
        {"plan": "AllAtOnce", "health": {"alarms": ["a"], "recheck_seconds": 3600, "max_inconclusive": 100}},
        {"steady": {"poll_seconds": 600, "timeout_seconds": 600}},
        {"steady": {"poll_seconds": 60, "timeout_seconds": 86_400}},
        {"steady": {"poll_seconds": 1, "timeout_seconds": 1_800}},
        {"steady": {"timeout_seconds": 15}},
        {"services.0.name": "s" * 255},
    ],
)
def test_valid_variants(changes: dict[str, Any]) -> None:
    spec = parse_spec(changed(alb_doc(), changes))
    assert parse_spec(spec.model_dump(mode="json")) == spec


@pytest.mark.parametrize(
    "changes",
    [
        {"weight_total": 255},
        {"router.record_type": "AAAA"},
        {"router.record_type": "CNAME"},
        {"services.0.set_identifier": "x" * 128},
        {"services.0.name": "s" * 200, "services.0.set_identifier": "blue"},
    ],
)
def test_valid_route53_variants(changes: dict[str, Any]) -> None:
    spec = parse_spec(changed(route53_doc(), changes))
    assert parse_spec(spec.model_dump(mode="json")) == spec


# --- invalid specs: every error names its field -------------------------------------------------

INVALID_ALB: list[tuple[dict[str, Any], str]] = [
    ({"name": "bad name!"}, "name: String should match pattern"),
    ({"name": "-leading"}, "name: String should match pattern"),
    ({"name": "A" * 41}, "name: String should match pattern"),
    ({"name": ""}, "name: String should match pattern"),
    ({"name": DELETE}, "name: Field required"),
    ({"cluster": "prod cluster"}, "cluster: must be an ECS cluster name"),
    (
        {"cluster": "arn:aws:ecs:eu-west-1:123456789012:service/prod/web"},
        "cluster: must be an ECS cluster name",
    ),
    ({"cluster": DELETE}, "cluster: Field required"),
    ({"services": []}, "services: exactly two services are required, got 0"),
    (
        {"services": [{"name": "a", "target_group_arn": TG_BLUE}]},
        "services: exactly two services are required, got 1",
    ),
    (
        {"services.1.name": "web-blue"},
        "services: the two services must have different names, both are 'web-blue'",
    ),
    ({"services.1.target_group_arn": TG_BLUE}, "services: the two services must use different target groups"),
    ({"services.1.target_group_arn": "web-green"}, "services.1.target_group_arn: must be a target group ARN"),
    ({"services.0.target_group_arn": LISTENER}, "services.0.target_group_arn: must be a target group ARN"),
    (
        {"services.0.target_group_arn": "arn:aws:elasticloadbalancing:eu-west-1:1234:targetgroup/a/1"},
        "services.0.target_group_arn: must be a target group ARN",
    ),
    ({"services.1.target_group_arn": DELETE}, "services.1.target_group_arn: Field required"),
    ({"services.0.name": "web blue"}, "services.0.name: String should match pattern"),
    ({"services.0.name": "s" * 256}, "services.0.name: String should have at most 255 characters"),
    ({"services.0.name": ""}, "services.0.name: String should have at least 1 character"),
    ({"services.1.port": 80}, "services.1.port: Extra inputs are not permitted"),
    ({"services.0.set_identifier": "blue"}, "services.0.set_identifier: only used with a route53 router"),
    (
        {"services.1.target_group_arn": TG_OTHER_REGION},
        "services.1.target_group_arn: is in aws/us-east-1/123456789012 but the router is in "
        "aws/eu-west-1/123456789012",
    ),
    (
        {"services.1.target_group_arn": TG_OTHER_ACCOUNT},
        "services.1.target_group_arn: is in aws/eu-west-1/210987654321",
    ),
    ({"router.type": DELETE}, "router.type: Unable to extract tag using discriminator 'type'"),
    (
        {"router.type": "nlb"},
        "router.type: Input tag 'nlb' found using 'type' does not match any of the expected tags",
    ),
    ({"router": "alb"}, "router: Input should be a valid dictionary"),
    ({"router.rule_arn": RULE}, "router: set exactly one of listener_arn or rule_arn (got both)"),
    ({"router.listener_arn": DELETE}, "router: set exactly one of listener_arn or rule_arn (got neither)"),
    (
        {"router.listener_arn": NLB_LISTENER},
        "router.listener_arn: must be an application load balancer listener ARN",
    ),
    ({"router.listener_arn": RULE}, "router.listener_arn: must be an application load balancer listener ARN"),
    (
        {"router": {"type": "alb", "rule_arn": LISTENER}},
        "router.rule_arn: must be an application load balancer listener rule ARN",
    ),
    ({"router.hosted_zone_id": "Z1"}, "router.hosted_zone_id: Extra inputs are not permitted"),
    ({"plan": DELETE}, "plan: Field required"),
    ({"plan": "Canary10Percent5Mins"}, "plan: unknown plan preset 'Canary10Percent5Mins'; accepted forms:"),
    (
        {"plan": "Canary100Percent5Minutes"},
        "plan: invalid plan preset 'Canary100Percent5Minutes': percent 100",
    ),
    ({"plan": 10}, "plan: must be a preset name such as Canary10Percent5Minutes, or an object whose type is"),
    ({"plan": {"percent": 10}}, "plan: must be a preset name"),
    ({"plan": {"type": "bluegreen"}}, "plan: must be a preset name"),
    ({"plan": {"type": "steps", "steps": [50, 20, 100]}}, "plan.steps: steps must be strictly ascending"),
    ({"plan": {"type": "steps", "steps": [10, 10, 100]}}, "plan.steps: steps must be strictly ascending"),
    ({"plan": {"type": "steps", "steps": [10, 50]}}, "plan.steps: the last step must be 100, got 50"),
    ({"plan": {"type": "steps", "steps": [0, 100]}}, "plan.steps: every step must be in (0, 100], got 0"),
    ({"plan": {"type": "steps", "steps": [50, 150]}}, "plan.steps: every step must be in (0, 100], got 150"),
    ({"plan": {"type": "steps", "steps": []}}, "plan.steps: steps must not be empty"),
    ({"plan": {"type": "steps"}}, "plan.steps: Field required"),
    ({"plan": {"type": "steps", "steps": [12.5, 100]}}, "plan.steps.0: Input should be a valid integer"),
    ({"plan": {"type": "canary", "percent": 0}}, "plan.percent: Input should be greater than or equal to 1"),
    ({"plan": {"type": "canary", "percent": 100}}, "plan.percent: Input should be less than or equal to 99"),
    ({"plan": {"type": "canary"}}, "plan.percent: Field required"),
    ({"plan": {"type": "linear", "percent": 100}}, "plan.percent: Input should be less than or equal to 99"),
    (
        {"plan": {"type": "linear", "percent": 10, "bake_seconds": -1}},
        "plan.bake_seconds: Input should be greater",
    ),
    (
        {"plan": {"type": "all_at_once", "bake_seconds": 86_401}},
        "plan.bake_seconds: Input should be less than",
    ),
    (
        {"plan": {"type": "canary", "percent": 10, "steps": [10]}},
        "plan.steps: Extra inputs are not permitted",
    ),
    ({"health": {}}, "health: configure alarms, metrics or both: a health gate that checks nothing"),
    ({"health": {"alarms": []}}, "health: configure alarms, metrics or both"),
    ({"health": DELETE}, "health: Field required"),
    ({"health.alarms": ["a", "b", "a"]}, "health.alarms: alarm names must be unique, repeated: a"),
    ({"health.alarms": ["a", ""]}, "health.alarms.1: String should have at least 1 character"),
    ({"health.alarms": "web-5xx"}, "health.alarms: Input should be a valid tuple"),
    ({"health.metrics": {}}, "health.metrics: set at least one of max_5xx_percent or max_p99_latency_ms"),
    ({"health.metrics": {"min_requests": 10}}, "health.metrics: set at least one of"),
    (
        {"health.metrics": {"max_5xx_percent": 101}},
        "health.metrics.max_5xx_percent: Input should be less than",
    ),
    ({"health.metrics": {"max_5xx_percent": -1}}, "health.metrics.max_5xx_percent: Input should be greater"),
    (
        {"health.metrics": {"max_5xx_percent": float("nan")}},
        "health.metrics.max_5xx_percent: Input should be a finite",
    ),
    (
        {"health.metrics": {"max_p99_latency_ms": 0}},
        "health.metrics.max_p99_latency_ms: Input should be greater than 0",
    ),
    (
        {"health.metrics": {"max_p99_latency_ms": float("inf")}},
        "health.metrics.max_p99_latency_ms: Input should be a finite number",
    ),
    (
        {"health.metrics": {"max_5xx_percent": 1, "min_requests": 0}},
        "health.metrics.min_requests: Input should be greater than or equal to 1",
    ),
    (
        {"health.metrics": {"max_5xx_percent": 1, "window": 60}},
        "health.metrics.window: Extra inputs are not permitted",
    ),
    ({"health.recheck_seconds": 4}, "health.recheck_seconds: Input should be greater than or equal to 5"),
    ({"health.recheck_seconds": 3601}, "health.recheck_seconds: Input should be less than or equal to 3600"),
    ({"health.max_inconclusive": -1}, "health.max_inconclusive: Input should be greater than or equal to 0"),
    ({"health.max_inconclusive": 101}, "health.max_inconclusive: Input should be less than or equal to 100"),
    ({"steady": {"poll_seconds": 0}}, "steady.poll_seconds: Input should be greater than or equal to 1"),
    ({"steady": {"poll_seconds": 601}}, "steady.poll_seconds: Input should be less than or equal to 600"),
    (
        {"steady": {"poll_seconds": 30, "timeout_seconds": 10}},
        "steady.timeout_seconds: must be at least poll_seconds",
    ),
    (
        {"steady": {"timeout_seconds": 86_401}},
        "steady.timeout_seconds: Input should be less than or equal to 86400",
    ),
    ({"weight_total": 0}, "weight_total: Input should be greater than or equal to 1"),
    ({"weight_total": 1000}, "weight_total: Input should be less than or equal to 999"),
    ({"weight_total": "lots"}, "weight_total: Input should be a valid integer"),
    (
        {"weight_total": 10, "plan": {"type": "canary", "percent": 1}},
        "weight_total: step 1% rounds to a green weight of 0 out of 10; use a larger weight_total or coarser",
    ),
    (
        {"weight_total": 10, "plan": "Linear5PercentEvery1Minute"},
        "weight_total: step 95% rounds to a live weight of 0 out of 10; "
        "steps 10%, 20%, 30%, 40%, 50% and 4 more round to the same weights as the step before",
    ),
    ({"owner": "team-a"}, "owner: Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("changes", "expected"), INVALID_ALB)
def test_invalid_alb_spec_names_the_field(changes: dict[str, Any], expected: str) -> None:
    problems = problems_of(changed(alb_doc(), changes))
    assert any(p.startswith(expected) for p in problems), problems


INVALID_ROUTE53: list[tuple[dict[str, Any], str]] = [
    ({"router.hosted_zone_id": "zone-1"}, "router.hosted_zone_id: must be a hosted zone ID"),
    ({"router.hosted_zone_id": "/hostedzone/"}, "router.hosted_zone_id: must be a hosted zone ID"),
    ({"router.hosted_zone_id": DELETE}, "router.hosted_zone_id: Field required"),
    ({"router.record_name": "bad..name"}, "router.record_name: must be a DNS name"),
    ({"router.record_name": "."}, "router.record_name: must be a DNS name"),
    ({"router.record_name": "a.*.example.com"}, "router.record_name: must be a DNS name"),
    ({"router.record_name": "*"}, "router.record_name: must be a DNS name"),
    ({"router.record_name": "-api.example.com"}, "router.record_name: must be a DNS name"),
    ({"router.record_name": "a" * 64 + ".example.com"}, "router.record_name: must be a DNS name"),
    ({"router.record_name": "api example.com"}, "router.record_name: must be a DNS name"),
    ({"router.record_name": ""}, "router.record_name: String should have at least 1 character"),
    ({"router.record_type": "MX"}, "router.record_type: Input should be 'A', 'AAAA' or 'CNAME'"),
    ({"router.listener_arn": LISTENER}, "router.listener_arn: Extra inputs are not permitted"),
    ({"weight_total": 256}, "weight_total: must be at most 255 with a route53 router, got 256"),
    (
        {"services.1.set_identifier": "api-blue"},
        "services.1.set_identifier: both services resolve to the Route53 set identifier 'api-blue'",
    ),
    (
        {"services.0.set_identifier": "same", "services.1.set_identifier": "same"},
        "services.1.set_identifier: both services resolve to the Route53 set identifier 'same'",
    ),
    ({"services.0.set_identifier": ""}, "services.0.set_identifier: String should have at least 1 character"),
    ({"services.0.set_identifier": "x" * 129}, "services.0.set_identifier: String should have at most 128"),
    (
        {"services.0.name": "s" * 129},
        "services.0.set_identifier: required because the service name is longer than 128 characters",
    ),
]


@pytest.mark.parametrize(("changes", "expected"), INVALID_ROUTE53)
def test_invalid_route53_spec_names_the_field(changes: dict[str, Any], expected: str) -> None:
    problems = problems_of(changed(route53_doc(), changes))
    assert any(p.startswith(expected) for p in problems), problems


def test_every_problem_is_reported_at_once() -> None:
    doc = changed(
        alb_doc(),
        {
            "name": "bad name",
            "services.1.target_group_arn": "nope",
            "router.rule_arn": "nope",
            "plan": {"type": "steps", "steps": [50, 20, 100]},
            "health": {},
            "steady": {"poll_seconds": 30, "timeout_seconds": 10},
            "weight_total": 0,
            "extra": True,
        },
    )
    paths = [p.split(":", 1)[0] for p in problems_of(doc)]
    assert paths == [
        "name",
        "services.1.target_group_arn",
        "router.rule_arn",
        "plan.steps",
        "health",
        "steady.timeout_seconds",
        "weight_total",
        "extra",
    ]


def test_problem_lines_have_no_pydantic_prefixes() -> None:
    for line in problems_of(changed(alb_doc(), {"plan": {"type": "steps", "steps": [2, 1]}, "health": {}})):
        assert "Value error" not in line
        assert "https://errors.pydantic.dev" not in line


def test_spec_error_is_a_value_error_with_one_line_per_problem() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(changed(alb_doc(), {"name": "bad name", "cluster": "bad cluster"}))
    assert isinstance(info.value, ValueError)
    assert str(info.value).splitlines() == list(info.value.problems)
    assert len(info.value.problems) == 2


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ([1, 2], "spec: must be a mapping of fields, got list"),
        ("name: x", "spec: must be a mapping of fields, got str"),
        (None, "spec: must be a mapping of fields, got NoneType"),
    ],
)
def test_parse_spec_refuses_non_mappings(doc: Any, expected: str) -> None:
    assert problems_of(doc) == [expected]


# --- YAML ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: [x",
            "spec: invalid YAML: while parsing a flow sequence, expected ',' or ']', but got '<stream end>' "
            "(line 1, column 9)",
        ),
        (
            "name: x\n  cluster: y\n",
            "spec: invalid YAML: mapping values are not allowed here (line 2, column 10)",
        ),
        ("name: a\nname: b\n", "spec: invalid YAML: duplicate key 'name' (line 2, column 1)"),
        (
            "health:\n  alarms: [a]\n  alarms: [b]\n",
            "spec: invalid YAML: duplicate key 'alarms' (line 3, column 3)",
        ),
        (
            "name: x\n---\nname: y\n",
            "spec: invalid YAML: expected a single document in the stream, "
            "but found another document (line 2, column 1)",
        ),
        ("key: !!python/object:os.system x", "spec: invalid YAML: could not determine a constructor"),
        ("", "spec: the document is empty"),
        ("# only a comment\n", "spec: the document is empty"),
        ("- a\n- b\n", "spec: must be a mapping of fields, got list"),
        ("just text", "spec: must be a mapping of fields, got str"),
    ],
)
def test_yaml_problems_become_spec_errors(text: str, expected: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec_yaml(text)
    assert str(info.value).startswith(expected)


def test_yaml_merge_keys_may_be_overridden() -> None:
    text = f"""
name: web
cluster: prod
services:
  - &blue
    name: web-blue
    target_group_arn: {TG_BLUE}
  - <<: *blue
    name: web-green
    target_group_arn: {TG_GREEN}
router: {{type: alb, listener_arn: "{LISTENER}"}}
plan: AllAtOnce
health: {{alarms: [a]}}
"""
    spec = load_spec_yaml(text)
    assert spec.service_names == ("web-blue", "web-green")
    assert spec.services[1].target_group_arn == TG_GREEN


def test_yaml_validation_errors_use_the_same_paths() -> None:
    text = (EXAMPLES / "alb-pair.yaml").read_text().replace("Canary10Percent5Minutes", "Canary10Percent5Mins")
    with pytest.raises(SpecError, match=r"^plan: unknown plan preset 'Canary10Percent5Mins'"):
        load_spec_yaml(text)


# --- accessors ------------------------------------------------------------------------------------


def test_service_lookup() -> None:
    spec = parse_spec(alb_doc())
    assert spec.service_names == ("web-blue", "web-green")
    assert spec.service("web-green").target_group_arn == TG_GREEN
    assert spec.other("web-blue").name == "web-green"
    assert spec.other("web-green").name == "web-blue"
    with pytest.raises(KeyError, match="service 'web-red' is not part of service pair 'web'"):
        spec.service("web-red")
    with pytest.raises(KeyError, match="web-blue, web-green"):
        spec.other("web-red")


@pytest.mark.parametrize(
    ("poll", "timeout", "polls"),
    [(15, 900, 60), (7, 100, 15), (10, 10, 1), (600, 601, 2), (1, 86_400, 86_400)],
)
def test_max_polls_rounds_up(poll: int, timeout: int, polls: int) -> None:
    assert SteadySpec(poll_seconds=poll, timeout_seconds=timeout).max_polls == polls


def test_models_are_frozen_and_hashable() -> None:
    spec = parse_spec(alb_doc())
    with pytest.raises(ValidationError):
        spec.name = "other"
    assert hash(spec) == hash(parse_spec(alb_doc()))


def test_plan_objects_may_be_passed_as_models() -> None:
    spec = ServicePairSpec.model_validate({**alb_doc(), "plan": CanaryPlanSpec(type="canary", percent=20)})
    assert spec.resolved_plan() == Plan((20, 100), 300)


def test_service_spec_record_set_identifier() -> None:
    assert ServiceSpec(name="a", target_group_arn=TG_BLUE).record_set_identifier == "a"
    assert ServiceSpec(name="a", target_group_arn=TG_BLUE, set_identifier="b").record_set_identifier == "b"


# --- serialisation ------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [alb_doc, route53_doc])
def test_round_trip_through_json_text(make: Any) -> None:
    spec = parse_spec(make())
    stored = json.dumps(spec.model_dump(mode="json"))
    assert parse_spec(json.loads(stored)) == spec
    assert parse_spec(spec.model_dump()) == spec


def test_round_trip_through_dynamodb_numbers() -> None:
    """DynamoDB's resource API returns numbers as Decimal."""
    spec = load_spec_yaml((EXAMPLES / "alb-pair.yaml").read_text())

    def to_decimal(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: to_decimal(v) for k, v in value.items()}
        if isinstance(value, list):
            return [to_decimal(v) for v in value]
        if isinstance(value, int | float) and not isinstance(value, bool):
            return Decimal(str(value))
        return value

    assert parse_spec(to_decimal(spec.model_dump(mode="json"))) == spec


plan_values = st.one_of(
    st.sampled_from(["AllAtOnce", "Canary10Percent5Minutes", "Linear10PercentEvery1Minute"]),
    st.builds(lambda b: {"type": "all_at_once", "bake_seconds": b}, st.integers(0, 86_400)),
    st.builds(
        lambda p, b: {"type": "canary", "percent": p, "bake_seconds": b},
        st.integers(1, 99),
        st.integers(0, 600),
    ),
    st.builds(lambda p: {"type": "linear", "percent": p}, st.integers(1, 99)),
    st.lists(st.integers(1, 99), unique=True, max_size=8).map(
        lambda s: {"type": "steps", "steps": [*sorted(s), 100]}
    ),
)
health_values = st.one_of(
    st.builds(
        lambda a: {"alarms": a}, st.lists(st.text("abcxyz-", min_size=1, max_size=8), min_size=1, unique=True)
    ),
    st.builds(
        lambda e, p, r: {"metrics": {"max_5xx_percent": e, "max_p99_latency_ms": p, "min_requests": r}},
        st.floats(0, 100),
        st.one_of(st.none(), st.floats(0.001, 10_000)),
        st.integers(1, 1000),
    ),
)
routers = st.one_of(
    st.just({"type": "alb", "listener_arn": LISTENER}),
    st.just({"type": "alb", "rule_arn": RULE}),
    st.builds(
        lambda name, kind: {
            "type": "route53",
            "hosted_zone_id": "/hostedzone/ZABC",
            "record_name": name,
            "record_type": kind,
        },
        st.sampled_from(["API.example.com", "api.example.com.", "*.example.org"]),
        st.sampled_from(["A", "AAAA", "CNAME"]),
    ),
)


def _over_budget(doc: dict[str, Any]) -> bool:
    """Whether the document's worst case would not fit one execution (health and steady defaults)."""
    budget = execution_budget(
        parse_spec({**alb_doc(), "plan": doc["plan"]}).resolved_plan(),  # ALB plans always fit
        max_inconclusive=3,
        recheck_seconds=30,
        steady_polls=SteadySpec().max_polls,
        steady_poll_seconds=SteadySpec().poll_seconds,
        route53=doc["router"]["type"] == "route53",
    )
    return bool(budget.problems())


@settings(max_examples=150)
@given(plan=plan_values, health=health_values, router=routers)
def test_any_valid_spec_round_trips(plan: Any, health: Any, router: Any) -> None:
    doc = {**alb_doc(), "plan": plan, "health": health, "router": router}
    if _over_budget(doc):
        # Only a plan whose worst case cannot fit one Step Functions execution is refused here.
        with pytest.raises(SpecError, match=r"^plan: a deployment could "):
            parse_spec(doc)
        return
    spec = parse_spec(doc)
    dumped = spec.model_dump(mode="json")
    again = parse_spec(json.loads(json.dumps(dumped)))
    assert again == spec
    assert again.model_dump(mode="json") == dumped
    assert again.resolved_plan() == spec.resolved_plan()


# --- JSON Schema ----------------------------------------------------------------------------------


def _objects(node: Any) -> list[dict[str, Any]]:
    """Every sub-schema that declares properties."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "properties" in node:
            found.append(node)
        for value in node.values():
            found.extend(_objects(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_objects(value))
    return found


def test_schema_header() -> None:
    schema = spec_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "ecs-canary service pair spec"
    assert list(schema)[:2] == ["$schema", "title"]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"name", "cluster", "services", "router", "plan", "health"}


def test_every_schema_property_has_a_description() -> None:
    schema = spec_json_schema()
    objects = _objects(schema)
    assert len(objects) >= 10
    missing = [
        f"{obj.get('title')}.{name}"
        for obj in objects
        for name, prop in obj["properties"].items()
        if not prop.get("description")
    ]
    assert missing == []


def test_schema_covers_every_model_field() -> None:
    schema = spec_json_schema()
    defs = schema["$defs"]
    for model in (ServiceSpec, Route53RouterSpec, AlbRouterSpec, MetricThresholds, HealthSpec, SteadySpec):
        assert set(defs[model.__name__]["properties"]) == set(model.model_fields)
    assert set(schema["properties"]) == set(ServicePairSpec.model_fields)


def test_schema_describes_router_and_plan_choices() -> None:
    schema = spec_json_schema()
    router = schema["properties"]["router"]
    assert router["discriminator"]["propertyName"] == "type"
    assert set(router["discriminator"]["mapping"]) == {"route53", "alb"}
    plan_choices = schema["properties"]["plan"]["oneOf"]
    preset = next(choice for choice in plan_choices if choice.get("type") == "string")
    assert "pattern" in preset
    refs = {choice["$ref"].rsplit("/", 1)[-1] for choice in plan_choices if "$ref" in choice}
    assert refs == {"AllAtOncePlanSpec", "CanaryPlanSpec", "LinearPlanSpec", "StepsPlanSpec"}


def test_schema_is_json_serialisable_and_stable() -> None:
    assert json.dumps(spec_json_schema(), sort_keys=True) == json.dumps(spec_json_schema(), sort_keys=True)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_examples_validate_against_the_published_schema(path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(spec_json_schema())
    jsonschema.validate(yaml.safe_load(path.read_text()), spec_json_schema())


@pytest.mark.parametrize(
    ("changes", "schema_rejects"),
    [
        ({}, False),
        ({"plan": "Linear10PercentEvery3Minutes"}, False),
        ({"plan": "CodeDeployDefault.ECSAllAtOnce"}, False),
        ({"plan": "Canary10Percent5Mins"}, True),
        ({"services.0.target_group_arn": "nope"}, True),
        ({"router.listener_arn": NLB_LISTENER}, True),
        ({"owner": "x"}, True),
    ],
)
def test_schema_agrees_with_the_parser_on_shapes(changes: dict[str, Any], schema_rejects: bool) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    doc = changed(alb_doc(), changes)
    errors = list(jsonschema.Draft202012Validator(spec_json_schema()).iter_errors(doc))
    assert bool(errors) is schema_rejects
    if schema_rejects:
        with pytest.raises(SpecError):
            parse_spec(doc)
    else:
        parse_spec(doc)


def test_service_alarms_alone_are_a_gate_and_join_the_pair_alarms_for_green() -> None:
    doc = alb_doc()
    doc["health"] = {"alarms": ["pair-wide"]}
    doc["services"][0]["alarms"] = ["blue-5xx", "pair-wide"]
    doc["services"][1]["alarms"] = ["green-5xx"]
    spec = parse_spec(doc)
    first, second = spec.service_names
    assert spec.health_for(first).alarms == ("pair-wide", "blue-5xx")
    assert spec.health_for(second).alarms == ("pair-wide", "green-5xx")

    doc["health"] = {}
    spec = parse_spec(doc)
    assert spec.health_for(second).alarms == ("green-5xx",)


def test_a_service_without_any_check_is_refused() -> None:
    doc = alb_doc()
    doc["health"] = {}
    doc["services"][0]["alarms"] = ["blue-5xx"]
    problems = problems_of(doc)
    assert any(p.startswith("health: configure alarms, metrics or both") for p in problems), problems
    assert any("nothing judges" in p for p in problems), problems


def test_service_alarm_names_must_be_unique() -> None:
    doc = alb_doc()
    doc["services"][1]["alarms"] = ["x", "x"]
    problems = problems_of(doc)
    assert any(p.startswith("services.1.alarms") and "repeated: x" in p for p in problems), problems


# --- reactions: drift, new releases, crashing tasks -------------------------------------------------


def test_reaction_defaults() -> None:
    spec = parse_spec(alb_doc())
    assert spec.on_drift == "fail"
    assert spec.on_new_release == "supersede"
    assert spec.health.max_stopped_tasks == 1


@pytest.mark.parametrize(
    ("changes", "read"),
    [
        pytest.param({"on_drift": "hold"}, lambda s: s.on_drift == "hold", id="on_drift-hold"),
        pytest.param({"on_drift": "fail"}, lambda s: s.on_drift == "fail", id="on_drift-fail"),
        pytest.param(
            {"on_new_release": "reject"}, lambda s: s.on_new_release == "reject", id="on_new_release-reject"
        ),
        pytest.param(
            {"on_new_release": "supersede"},
            lambda s: s.on_new_release == "supersede",
            id="on_new_release-supersede",
        ),
        pytest.param(
            {"health.max_stopped_tasks": 0}, lambda s: s.health.max_stopped_tasks == 0, id="no-stop-tolerated"
        ),
        pytest.param(
            {"health.max_stopped_tasks": 1000}, lambda s: s.health.max_stopped_tasks == 1000, id="max-stops"
        ),
    ],
)
def test_reaction_settings_parse_and_round_trip(changes: dict[str, Any], read: Any) -> None:
    spec = parse_spec(changed(alb_doc(), changes))
    assert read(spec)
    again = parse_spec(json.loads(spec.model_dump_json()))
    assert again == spec
    assert read(again)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"on_drift": "ignore"}, "on_drift: Input should be 'fail' or 'hold'"),
        ({"on_drift": ""}, "on_drift: Input should be 'fail' or 'hold'"),
        ({"on_drift": None}, "on_drift: Input should be 'fail' or 'hold'"),
        ({"on_new_release": "queue"}, "on_new_release: Input should be 'supersede' or 'reject'"),
        ({"on_new_release": "Reject"}, "on_new_release: Input should be 'supersede' or 'reject'"),
        (
            {"health.max_stopped_tasks": -1},
            "health.max_stopped_tasks: Input should be greater than or equal to 0",
        ),
        (
            {"health.max_stopped_tasks": 1001},
            "health.max_stopped_tasks: Input should be less than or equal to 1000",
        ),
        ({"health.max_stopped_tasks": "many"}, "health.max_stopped_tasks: Input should be a valid integer"),
        ({"health.max_stopped_tasks": 1.5}, "health.max_stopped_tasks: Input should be a valid integer"),
    ],
)
def test_invalid_reaction_settings_name_the_field(changes: dict[str, Any], expected: str) -> None:
    problems = problems_of(changed(alb_doc(), changes))
    assert any(p.startswith(expected) for p in problems), problems


def test_reaction_settings_are_in_the_schema() -> None:
    properties = spec_json_schema()["properties"]
    assert properties["on_drift"]["enum"] == ["fail", "hold"]
    assert properties["on_new_release"]["enum"] == ["supersede", "reject"]
    assert properties["on_drift"]["default"] == "fail"
    assert properties["on_new_release"]["default"] == "supersede"
    health = HealthSpec.model_json_schema()["properties"]["max_stopped_tasks"]
    assert (health["minimum"], health["maximum"], health["default"]) == (0, 1000, 1)


# ---- approval gates between the steps of a steps plan ---------------------------------------------------


def test_steps_plan_approval_items_hold_the_next_step() -> None:
    doc = alb_doc()
    doc["plan"] = {
        "type": "steps",
        "steps": [
            10,
            {"approve": {"timeout_seconds": 900, "on_timeout": "continue"}},
            50,
            {"approve": {}},
            100,
        ],
    }
    spec = parse_spec(doc)
    assert spec.resolved_plan().steps == (10, 50, 100)
    gates = spec.step_approvals()
    assert sorted(gates) == [1, 2]  # before the 50 % shift (index 1) and before 100 % (index 2)
    assert (gates[1].timeout_seconds, gates[1].on_timeout) == (900, "continue")
    assert (gates[2].timeout_seconds, gates[2].on_timeout) == (3600, "rollback")


@pytest.mark.parametrize(
    ("steps", "problem"),
    [
        ([10, {"approve": {}}, {"approve": {}}, 100], "plan.steps: two approval gates in a row"),
        ([10, 100, {"approve": {}}], "plan.steps: an approval gate must be followed by a step"),
        ([10, {"approve": {"timeout_seconds": 5}}, 100], "plan.steps.1.approve.timeout_seconds"),
        ([10, {"approv": {}}, 100], "plan.steps.1.approv: Extra inputs are not permitted"),
        ([12.5, 100], "plan.steps.0: Input should be a valid integer"),
        ([{"approve": {}}, 50, 10], "plan.steps: steps must be strictly ascending"),
    ],
)
def test_steps_plan_approval_items_are_checked(steps: list[Any], problem: str) -> None:
    doc = alb_doc()
    doc["plan"] = {"type": "steps", "steps": steps}
    with pytest.raises(SpecError) as info:
        parse_spec(doc)
    assert any(problem in line for line in info.value.problems), info.value.problems


def test_other_plans_have_no_step_approvals() -> None:
    assert parse_spec(alb_doc()).step_approvals() == {}
