"""Gate spec models (hooks, test traffic, approvals, after promotion, capacity); fitting the router."""

from __future__ import annotations

import json
import typing
from typing import Any

import pytest
from ecs_canary.errors import SpecError
from ecs_canary.gates import (
    HOOK_STAGES,
    MAX_DETAILS_BYTES,
    AfterPromotionSpec,
    ApprovalSpec,
    ApprovalsSpec,
    CapacitySpec,
    HookSpec,
    HooksSpec,
    HookStage,
    TestTrafficSpec,
)
from ecs_canary.spec import ServicePairSpec, parse_spec
from pydantic import ValidationError

ELB = "arn:aws:elasticloadbalancing:eu-west-1:123456789012"
TG_BLUE = f"{ELB}:targetgroup/web-blue/6d0ecf831eec9f09"
TG_GREEN = f"{ELB}:targetgroup/web-green/3a5b9c2d1e4f6a7b"
LISTENER = f"{ELB}:listener/app/prod/50dc6c495c0c9188/f2f7dc8efc522ab2"
TEST_LISTENER = f"{ELB}:listener/app/prod/50dc6c495c0c9188/0000000000008080"
RULE = f"{ELB}:listener-rule/app/prod/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee"
TEST_RULE = f"{ELB}:listener-rule/app/prod/50dc6c495c0c9188/0000000000008080/00000000000000aa"
NLB_LISTENER = f"{ELB}:listener/net/prod/50dc6c495c0c9188/f2f7dc8efc522ab2"
LAMBDA = "arn:aws:lambda:eu-west-1:123456789012:function"


def _doc(router: str = "alb", *, rule: bool = False, **gates: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "web",
        "cluster": "prod",
        "services": [
            {"name": "web-blue", "target_group_arn": TG_BLUE},
            {"name": "web-green", "target_group_arn": TG_GREEN},
        ],
        "plan": "Canary10Percent5Minutes",
        "health": {"alarms": ["web-5xx"]},
    }
    if router == "alb":
        doc["router"] = {"type": "alb", **({"rule_arn": RULE} if rule else {"listener_arn": LISTENER})}
    else:
        doc["router"] = {
            "type": "route53",
            "hosted_zone_id": "Z0123456789ABC",
            "record_name": "api.example.com",
        }
    doc.update(gates)
    return doc


def _problems(doc: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(SpecError) as refused:
        parse_spec(doc)
    return refused.value.problems


# ---- HookSpec ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "name"),
    [
        pytest.param("my-hook", "my-hook", id="name"),
        pytest.param("My_Hook_2", "My_Hook_2", id="underscores-digits"),
        pytest.param("h" * 64, "h" * 64, id="64-chars"),
        pytest.param("my-hook:live", "my-hook", id="alias"),
        pytest.param("my-hook:$LATEST", "my-hook", id="latest"),
        pytest.param("my-hook:17", "my-hook", id="version"),
        pytest.param(f"{LAMBDA}:my-hook", "my-hook", id="arn"),
        pytest.param(f"{LAMBDA}:my-hook:live", "my-hook", id="arn-alias"),
        pytest.param("arn:aws-cn:lambda:cn-north-1:123456789012:function:my-hook", "my-hook", id="china"),
        pytest.param(
            "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:my-hook:2", "my-hook", id="govcloud"
        ),
    ],
)
def test_hook_function_names_and_arns_are_accepted(function: str, name: str) -> None:
    hook = HookSpec(function=function)

    assert hook.function == function
    assert hook.function_name == name  # what the HookFunctionPrefix is checked against
    assert (hook.details, hook.timeout_seconds) == ({}, 600)


@pytest.mark.parametrize(
    "function",
    [
        pytest.param("", id="empty"),
        pytest.param("h" * 65, id="65-chars"),
        pytest.param("my hook", id="space"),
        pytest.param("my.hook", id="dot"),
        pytest.param("my-hook:", id="empty-qualifier"),
        pytest.param("my-hook:a:b", id="two-qualifiers"),
        pytest.param("my-hook:" + "q" * 129, id="qualifier-too-long"),
        pytest.param(f"{LAMBDA}:", id="arn-without-name"),
        pytest.param("arn:aws:lambda:eu-west-1:12345:function:my-hook", id="short-account"),
        pytest.param("arn:aws:lambda:euwest1:123456789012:function:my-hook", id="bad-region"),
        pytest.param("arn:aws:s3:::my-hook", id="not-lambda"),
        pytest.param("123456789012:function:my-hook", id="partial-arn"),
    ],
)
def test_hook_functions_that_are_not_lambda_names_are_refused(function: str) -> None:
    with pytest.raises(ValidationError, match="function"):
        HookSpec(function=function)


def _details_of_size(size: int) -> dict[str, Any]:
    details = {"k": "x" * (size - len(json.dumps({"k": ""})))}
    assert len(json.dumps(details).encode()) == size
    return details


@pytest.mark.parametrize(
    ("details", "error"),
    [
        pytest.param({}, None, id="empty"),
        pytest.param({"url": "/health", "expect": [200, 204], "nested": {"a": None}}, None, id="json"),
        pytest.param(_details_of_size(MAX_DETAILS_BYTES), None, id="exactly-8KiB"),
        pytest.param(
            _details_of_size(MAX_DETAILS_BYTES + 1),
            f"must be at most {MAX_DETAILS_BYTES} bytes of JSON, got {MAX_DETAILS_BYTES + 1}",
            id="one-byte-over",
        ),
        pytest.param(
            {"k": "é" * 1400},  # JSON escapes each as \\u00e9: 6 bytes apiece
            f"must be at most {MAX_DETAILS_BYTES} bytes of JSON, got {len(json.dumps({'k': 'é' * 1400}))}",
            id="escaped-non-ascii-counts",
        ),
    ],
)
def test_hook_details_are_at_most_8_kib_of_json(details: dict[str, Any], error: str | None) -> None:
    if error is None:
        assert HookSpec(function="my-hook", details=details).details == details
        return
    with pytest.raises(ValidationError, match=error):
        HookSpec(function="my-hook", details=details)


@pytest.mark.parametrize(("timeout", "ok"), [(0, False), (1, True), (86_400, True), (86_401, False)])
def test_hook_timeout_bounds(timeout: int, ok: bool) -> None:
    if ok:
        assert HookSpec(function="my-hook", timeout_seconds=timeout).timeout_seconds == timeout
    else:
        with pytest.raises(ValidationError, match="timeout_seconds"):
            HookSpec(function="my-hook", timeout_seconds=timeout)


def test_hook_specs_are_frozen_and_refuse_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="retries"):
        HookSpec.model_validate({"function": "my-hook", "retries": 3})
    hook = HookSpec(function="my-hook")
    with pytest.raises(ValidationError):
        hook.function = "other"


# ---- HooksSpec --------------------------------------------------------------------------------------------


def test_hook_stages_are_the_stage_literal_in_lifecycle_order() -> None:
    assert typing.get_args(HookStage) == HOOK_STAGES
    assert tuple(HooksSpec.model_fields) == HOOK_STAGES


def test_hooks_of_a_stage_and_all_hooks_in_stage_order() -> None:
    hooks = HooksSpec.model_validate(
        {
            "on_rollback": [{"function": "page"}],
            "before_test_traffic": [{"function": "smoke"}, {"function": "warm"}],
            "after_each_shift": [{"function": "probe"}],
        }
    )

    assert [h.function for h in hooks.of("before_test_traffic")] == ["smoke", "warm"]
    assert hooks.of("after_promotion") == ()
    assert [h.function for h in hooks.all()] == ["smoke", "warm", "probe", "page"]


@pytest.mark.parametrize(("count", "ok"), [(0, True), (10, True), (11, False)])
def test_at_most_ten_hooks_per_stage(count: int, ok: bool) -> None:
    doc = {"after_test_traffic": [{"function": f"hook-{i}"} for i in range(count)]}
    if ok:
        assert len(HooksSpec.model_validate(doc).after_test_traffic) == count
    else:
        with pytest.raises(ValidationError, match="after_test_traffic"):
            HooksSpec.model_validate(doc)


def test_an_unknown_stage_is_refused() -> None:
    with pytest.raises(ValidationError, match="before_everything"):
        HooksSpec.model_validate({"before_everything": [{"function": "x"}]})


def test_hook_problems_name_their_path_in_the_spec() -> None:
    doc = _doc(hooks={"after_each_shift": [{"function": "ok"}, {"function": "not ok"}]})

    (problem,) = _problems(doc)

    assert problem.startswith("hooks.after_each_shift.1.function: ")


# ---- TestTrafficSpec --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "ok"),
    [
        pytest.param({"listener_arn": TEST_LISTENER}, True, id="listener"),
        pytest.param({"rule_arn": TEST_RULE}, True, id="rule"),
        pytest.param({"record_name": "test.example.com"}, True, id="record"),
        pytest.param({}, False, id="none"),
        pytest.param({"listener_arn": TEST_LISTENER, "rule_arn": TEST_RULE}, False, id="listener-and-rule"),
        pytest.param(
            {"listener_arn": TEST_LISTENER, "record_name": "t.example.com"}, False, id="alb-and-dns"
        ),
        pytest.param(
            {"listener_arn": TEST_LISTENER, "rule_arn": TEST_RULE, "record_name": "t.example.com"},
            False,
            id="all-three",
        ),
    ],
)
def test_test_traffic_names_exactly_one_target(fields: dict[str, Any], ok: bool) -> None:
    if ok:
        spec = TestTrafficSpec.model_validate(fields)
        assert spec.model_dump(exclude_none=True) == fields
    else:
        with pytest.raises(ValidationError, match="set exactly one of listener_arn, rule_arn or record_name"):
            TestTrafficSpec.model_validate(fields)


@pytest.mark.parametrize(("length", "ok"), [(0, False), (1, True), (255, True), (256, False)])
def test_test_record_name_length(length: int, ok: bool) -> None:
    # Labels of at most 63 characters (a DNS name's limit) up to the length asked for.
    name = ".".join("a" * 63 for _ in range(length // 64 + 1))[:length].rstrip(".").ljust(length, "a")
    if ok:
        assert TestTrafficSpec(record_name=name).record_name == name
    else:
        with pytest.raises(ValidationError, match="record_name"):
            TestTrafficSpec(record_name=name)


def test_test_traffic_spec_is_not_collected_as_a_test_class() -> None:
    assert TestTrafficSpec.__test__ is False


# ---- ApprovalSpec and friends ------------------------------------------------------------------------------


def test_approval_defaults() -> None:
    approval = ApprovalSpec()

    assert (approval.timeout_seconds, approval.on_timeout) == (3600, "rollback")
    assert ApprovalsSpec() == ApprovalsSpec(before_production_traffic=None, after_production_traffic=None)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        pytest.param({"timeout_seconds": 60}, None, id="one-minute"),
        pytest.param({"timeout_seconds": 7 * 86_400}, None, id="one-week"),
        pytest.param({"on_timeout": "continue"}, None, id="continue"),
        pytest.param({"timeout_seconds": 59}, "timeout_seconds", id="too-short"),
        pytest.param({"timeout_seconds": 7 * 86_400 + 1}, "timeout_seconds", id="too-long"),
        pytest.param({"on_timeout": "approve"}, "on_timeout", id="unknown-on-timeout"),
        pytest.param({"on_timeout": None}, "on_timeout", id="null-on-timeout"),
        pytest.param({"approvers": ["jane"]}, "approvers", id="unknown-field"),
    ],
)
def test_approval_bounds(fields: dict[str, Any], error: str | None) -> None:
    if error is None:
        approval = ApprovalSpec.model_validate(fields)
        assert approval.model_dump(include=set(fields)) == fields
    else:
        with pytest.raises(ValidationError, match=error):
            ApprovalSpec.model_validate(fields)


def test_approvals_only_at_their_two_stages() -> None:
    approvals = ApprovalsSpec.model_validate(
        {"before_production_traffic": {}, "after_production_traffic": {"on_timeout": "continue"}}
    )
    assert approvals.before_production_traffic == ApprovalSpec()
    assert approvals.after_production_traffic == ApprovalSpec(on_timeout="continue")

    with pytest.raises(ValidationError, match="after_test_traffic"):
        ApprovalsSpec.model_validate({"after_test_traffic": {}})


@pytest.mark.parametrize(
    ("model", "fields", "ok"),
    [
        pytest.param(AfterPromotionSpec, {"bake_seconds": 0}, True, id="no-bake"),
        pytest.param(AfterPromotionSpec, {"bake_seconds": 86_400}, True, id="day-bake"),
        pytest.param(AfterPromotionSpec, {"bake_seconds": 86_401}, False, id="bake-too-long"),
        pytest.param(AfterPromotionSpec, {"bake_seconds": -1}, False, id="negative-bake"),
        pytest.param(CapacitySpec, {"min_healthy_percent": 0, "wait_seconds": 0}, True, id="capacity-off"),
        pytest.param(
            CapacitySpec, {"min_healthy_percent": 200, "wait_seconds": 3600}, True, id="capacity-max"
        ),
        pytest.param(CapacitySpec, {"min_healthy_percent": 201}, False, id="percent-too-high"),
        pytest.param(CapacitySpec, {"wait_seconds": 3601}, False, id="wait-too-long"),
    ],
)
def test_after_promotion_and_capacity_bounds(model: type[Any], fields: dict[str, Any], ok: bool) -> None:
    if ok:
        assert model.model_validate(fields).model_dump(include=set(fields)) == fields
    else:
        with pytest.raises(ValidationError, match=next(iter(fields))):
            model.model_validate(fields)


def test_gate_defaults_of_a_spec() -> None:
    spec = parse_spec(_doc())

    assert spec.hooks.all() == []
    assert spec.test_traffic is None
    assert spec.approvals == ApprovalsSpec()
    assert spec.after_promotion == AfterPromotionSpec(bake_seconds=0, scale_old_to_zero=False)
    assert spec.capacity == CapacitySpec(min_healthy_percent=100, wait_seconds=300)


def test_gates_survive_the_stored_round_trip() -> None:
    spec = parse_spec(
        _doc(
            "route53",
            hooks={"before_test_traffic": [{"function": f"{LAMBDA}:smoke:live", "details": {"n": [1, 2]}}]},
            test_traffic={"record_name": "test.example.com"},
            approvals={"after_production_traffic": {"timeout_seconds": 120, "on_timeout": "continue"}},
            after_promotion={"bake_seconds": 60, "scale_old_to_zero": True},
            capacity={"min_healthy_percent": 50, "wait_seconds": 30},
        )
    )

    assert ServicePairSpec.model_validate_json(spec.model_dump_json()) == spec
    assert parse_spec(json.loads(spec.model_dump_json())) == spec


# ---- test traffic must fit the router (_gates_fit_the_router) --------------------------------------------


FITS = [
    pytest.param(_doc(test_traffic={"listener_arn": TEST_LISTENER}), id="alb-test-listener"),
    pytest.param(_doc(test_traffic={"rule_arn": TEST_RULE}), id="alb-test-rule"),
    pytest.param(_doc(rule=True, test_traffic={"rule_arn": TEST_RULE}), id="alb-rule-router-test-rule"),
    pytest.param(
        _doc(rule=True, test_traffic={"listener_arn": TEST_LISTENER}), id="alb-rule-router-test-listener"
    ),
    pytest.param(_doc("route53", test_traffic={"record_name": "test.example.com"}), id="route53-test-record"),
    pytest.param(
        _doc("route53", test_traffic={"record_name": "api.example.com.test"}), id="route53-longer-name"
    ),
]


@pytest.mark.parametrize("doc", FITS)
def test_test_traffic_that_fits_the_router(doc: dict[str, Any]) -> None:
    spec = parse_spec(doc)

    assert spec.test_traffic is not None
    assert spec.test_traffic.model_dump(exclude_none=True) == doc["test_traffic"]


MISFITS = [
    pytest.param(
        _doc("route53", test_traffic={"listener_arn": TEST_LISTENER}),
        ["test_traffic: with a route53 router, set record_name (a test record)"],
        id="route53-with-listener",
    ),
    pytest.param(
        _doc("route53", test_traffic={"rule_arn": TEST_RULE}),
        ["test_traffic: with a route53 router, set record_name (a test record)"],
        id="route53-with-rule",
    ),
    pytest.param(
        _doc("route53", test_traffic={"record_name": "api.example.com"}),
        ["test_traffic.record_name: must not be the production record"],
        id="route53-production-record",
    ),
    pytest.param(
        _doc("route53", test_traffic={"record_name": "API.Example.COM."}),
        ["test_traffic.record_name: must not be the production record"],
        id="route53-production-record-other-spelling",
    ),
    pytest.param(
        _doc(test_traffic={"record_name": "test.example.com"}),
        ["test_traffic: with an alb router, set listener_arn or rule_arn"],
        id="alb-with-record",
    ),
    pytest.param(
        _doc(test_traffic={"listener_arn": LISTENER}),
        ["test_traffic.listener_arn: must not be the production listener"],
        id="alb-production-listener",
    ),
    pytest.param(
        _doc(rule=True, test_traffic={"rule_arn": RULE}),
        ["test_traffic.rule_arn: must not be the production rule"],
        id="alb-production-rule",
    ),
    pytest.param(
        _doc(test_traffic={"listener_arn": NLB_LISTENER}),
        [f"test_traffic.listener_arn: must be an ALB listener ARN, got {NLB_LISTENER!r}"],
        id="alb-nlb-listener",
    ),
    pytest.param(
        _doc(test_traffic={"rule_arn": TEST_LISTENER}),
        [f"test_traffic.rule_arn: must be an ALB rule ARN, got {TEST_LISTENER!r}"],
        id="alb-listener-as-rule",
    ),
    pytest.param(
        _doc(test_traffic={"listener_arn": "my-test-listener"}),
        ["test_traffic.listener_arn: must be an ALB listener ARN, got 'my-test-listener'"],
        id="alb-not-an-arn",
    ),
]


@pytest.mark.parametrize(("doc", "problems"), MISFITS)
def test_test_traffic_that_does_not_fit_the_router_is_refused(
    doc: dict[str, Any], problems: list[str]
) -> None:
    assert list(_problems(doc)) == problems


def test_every_gate_problem_is_reported_at_once() -> None:
    doc = _doc(
        test_traffic={"listener_arn": TEST_LISTENER, "rule_arn": TEST_RULE},
        hooks={"before_test_traffic": [{"function": "bad name"}]},
        approvals={"before_production_traffic": {"timeout_seconds": 1}},
    )

    problems = _problems(doc)

    assert {p.split(":", 1)[0] for p in problems} == {
        "test_traffic",
        "hooks.before_test_traffic.0.function",
        "approvals.before_production_traffic.timeout_seconds",
    }


@pytest.mark.parametrize(
    "name", ["test..example.com", "a" * 64 + ".example.com"], ids=["empty-label", "long-label"]
)
def test_a_test_record_that_is_not_a_dns_name_is_refused(name: str) -> None:
    router_problems = _problems(
        _doc("route53") | {"router": {**_doc("route53")["router"], "record_name": name}}
    )
    assert any(
        p.startswith("router.record_name") for p in router_problems
    )  # the production record is checked

    problems = _problems(_doc("route53", test_traffic={"record_name": name}))

    assert any(p.startswith("test_traffic.record_name") for p in problems)
