"""Static checks of template.yaml: wiring to the state machine definition, packaging, least privilege.

The IAM checks run on the template as CloudFormation will see it: the SAM transform is applied
offline (samtranslator, no AWS calls), so the roles SAM generates for functions and the state
machine, policy templates included, are checked too.
"""

from __future__ import annotations

import ast
import copy
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
CODE_URI = "functions/"
RUNTIME = "python3.13"

# Actions that may be granted on Resource "*": APIs that do not support resource-level
# permissions (IAM's Service Authorization Reference lists no resource type for them), so "*" is
# the only possible scope. Add an action here only after checking it in that reference; anything
# that can be scoped to an ARN must be.
STAR_RESOURCE_ALLOWED = frozenset(
    {
        # Elastic Load Balancing v2 Describe* calls.
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeRules",
        "elasticloadbalancing:DescribeTargetGroups",
        "elasticloadbalancing:DescribeTargetHealth",
        # CloudWatch metric reads.
        "cloudwatch:GetMetricData",
        "cloudwatch:GetMetricStatistics",
        "cloudwatch:ListMetrics",
        # Route53 account-level listing.
        "route53:ListHostedZones",
        "route53:ListHostedZonesByName",
        # Vended log delivery, used by Step Functions to write execution logs.
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
        # Task-token calls: the token, not an ARN, names the waiting task, and IAM's reference lists
        # no resource type for them.
        "states:SendTaskSuccess",
        "states:SendTaskFailure",
        # X-Ray tracing.
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "xray:GetSamplingStatisticSummaries",
    }
)

# AWS managed policies a generated role may carry (SAM attaches these for Lambda logging and
# Tracing: Active). Anything broader must be written out as a scoped statement instead.
AWS_MANAGED_POLICIES_ALLOWED = frozenset(
    {
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    }
)


class CfnLoader(yaml.SafeLoader):
    """A YAML loader that reads CloudFormation short-form tags (!Ref, !GetAtt, !Sub, ...)."""


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = tag_suffix if tag_suffix in ("Ref", "Condition") else f"Fn::{tag_suffix}"
    value: Any
    if tag_suffix == "GetAtt" and isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node).split(".", 1)
    elif isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template() -> dict[str, Any]:
    template: dict[str, Any] = yaml.load(TEMPLATE_PATH.read_text(encoding="utf-8"), Loader=CfnLoader)
    return template


TEMPLATE = load_template()
RESOURCES: dict[str, dict[str, Any]] = TEMPLATE["Resources"]
FUNCTIONS = {n: r for n, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::Function"}
STATE_MACHINES = {n: r for n, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::StateMachine"}


def transformed_template() -> dict[str, Any]:
    """The template after the SAM transform, as CloudFormation would receive it."""
    template = copy.deepcopy(TEMPLATE)
    # The transform wants S3 locations for code; sam package would upload them there.
    template.get("Globals", {}).get("Function", {}).pop("CodeUri", None)
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://bucket/functions.zip"
        elif (
            resource["Type"] == "AWS::Serverless::StateMachine" and "DefinitionUri" in resource["Properties"]
        ):
            resource["Properties"]["DefinitionUri"] = "s3://bucket/definition.asl.json"
    # The translator reads only region_name (for AWS::Region and the partition of generated ARNs)
    # and calls nothing; a stand-in keeps AWS_PROFILE or ~/.aws config from mattering.
    session = SimpleNamespace(region_name="us-east-1")
    translated: dict[str, Any] = Translator({}, Parser(), boto_session=session).translate(template, {})
    return translated


def policy_documents(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, PolicyDocument) for every identity and resource policy in a CloudFormation template."""
    for name, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                yield f"{name}/{policy.get('PolicyName', '?')}", policy["PolicyDocument"]
        elif "PolicyDocument" in props:
            yield name, props["PolicyDocument"]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def allow_statements() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for where, document in policy_documents(transformed_template()):
        for i, statement in enumerate(as_list(document["Statement"])):
            if statement.get("Effect") == "Allow":
                found.append((f"{where} statement {i}", statement))
    return found


ALLOW_STATEMENTS = allow_statements()


def test_template_has_functions_and_a_state_machine() -> None:
    assert FUNCTIONS, "no AWS::Serverless::Function in template.yaml"
    assert STATE_MACHINES, "no AWS::Serverless::StateMachine in template.yaml"
    assert ALLOW_STATEMENTS, "the transformed template has no IAM statements: is the transform working?"


@pytest.mark.parametrize("name", sorted(STATE_MACHINES))
def test_definition_substitutions_match_placeholders(name: str) -> None:
    props = STATE_MACHINES[name]["Properties"]
    definition = (ROOT / props["DefinitionUri"]).read_text(encoding="utf-8")
    placeholders = set(re.findall(r"\$\{([^}]+)\}", definition))
    keys = set(props.get("DefinitionSubstitutions", {}))
    assert placeholders, f"{props['DefinitionUri']} has no ${{...}} placeholders: are the ARNs hard-coded?"
    assert not placeholders - keys, (
        f"placeholders with no DefinitionSubstitutions key: {sorted(placeholders - keys)}"
    )
    assert not keys - placeholders, f"DefinitionSubstitutions keys never used: {sorted(keys - placeholders)}"


def test_functions_share_code_and_runtime_via_globals() -> None:
    globals_ = TEMPLATE.get("Globals", {}).get("Function", {})
    assert globals_.get("CodeUri") == CODE_URI, "Globals.Function.CodeUri must be the shared package"
    assert globals_.get("Runtime") == RUNTIME, f"Globals.Function.Runtime must be {RUNTIME}"
    for name, function in FUNCTIONS.items():
        props = function["Properties"]
        for key in ("CodeUri", "Runtime", "InlineCode", "PackageType", "ImageUri"):
            assert key not in props, f"{name} overrides {key}: every function ships the one package"


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_handlers_exist(name: str) -> None:
    handler = FUNCTIONS[name]["Properties"]["Handler"]
    module, _, attribute = handler.rpartition(".")
    path = ROOT / CODE_URI / (module.replace(".", "/") + ".py")
    assert path.is_file(), f"{name}'s handler module {module} is not at {path.relative_to(ROOT)}"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    defined |= {
        t.id
        for n in tree.body
        if isinstance(n, ast.Assign | ast.AnnAssign)
        for t in _targets(n)
        if isinstance(t, ast.Name)
    }
    assert attribute in defined, f"{path.relative_to(ROOT)} defines no top-level {attribute!r} for {name}"


def _targets(node: ast.Assign | ast.AnnAssign) -> list[ast.expr]:
    return node.targets if isinstance(node, ast.Assign) else [node.target]


def _requirements(lines: list[str]) -> dict[str, str]:
    """{normalized name: version specifier} of simple requirement lines (extras dropped)."""
    found = {}
    for raw in lines:
        requirement = raw.split("#", 1)[0].replace(" ", "")
        match = re.match(r"^([A-Za-z0-9._-]+)(?:\[[^\]]*\])?(.*)$", requirement)
        if requirement and match:
            found[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return found


def test_lambda_requirements_match_the_project_pins() -> None:
    """The deployed package resolves the same versions the tests run against."""
    path = ROOT / CODE_URI / "requirements.txt"
    assert path.is_file(), "functions/requirements.txt is missing: sam build would package no dependencies"
    deployed = _requirements(path.read_text(encoding="utf-8").splitlines())
    project = _requirements(
        tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    )
    differ = {
        name: (spec, project[name])
        for name, spec in deployed.items()
        if name in project and spec != project[name]
    }
    assert not differ, (
        f"functions/requirements.txt and pyproject.toml disagree (functions, project): {differ}"
    )


@pytest.mark.parametrize(("where", "statement"), ALLOW_STATEMENTS, ids=[w for w, _ in ALLOW_STATEMENTS])
def test_no_wildcard_actions(where: str, statement: dict[str, Any]) -> None:
    assert "NotAction" not in statement, f"{where}: Allow with NotAction grants everything else"
    actions = [a for a in as_list(statement["Action"]) if isinstance(a, str)]
    wild = [a for a in actions if a == "*" or a.endswith(":*")]
    assert not wild, f"{where} grants every action of a service: {wild}"


@pytest.mark.parametrize(("where", "statement"), ALLOW_STATEMENTS, ids=[w for w, _ in ALLOW_STATEMENTS])
def test_star_resource_only_for_apis_without_resource_level_permissions(
    where: str, statement: dict[str, Any]
) -> None:
    assert "NotResource" not in statement, f"{where}: Allow with NotResource"
    if "*" not in as_list(statement.get("Resource", [])):
        return
    scoped = sorted(set(as_list(statement["Action"])) - STAR_RESOURCE_ALLOWED)
    assert not scoped, (
        f"{where} grants {scoped} on Resource '*'; scope them to ARNs, or, if the API really has no "
        "resource-level permissions, add it to STAR_RESOURCE_ALLOWED in this test"
    )


def test_roles_carry_only_narrow_aws_managed_policies() -> None:
    transformed = transformed_template()
    for name, resource in transformed["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for arn in resource["Properties"].get("ManagedPolicyArns", []):
            if isinstance(arn, str):
                assert arn in AWS_MANAGED_POLICIES_ALLOWED, f"{name} attaches the AWS managed policy {arn}"
            else:
                assert set(arn) == {"Ref"}, f"{name} attaches {arn}"
                assert arn["Ref"] in RESOURCES, f"{name} attaches {arn}, not a policy of this template"


# The store's DynamoDB calls, and the IAM action each needs. TransactWriteItems has no action of its
# own: AWS authorises each item of the transaction by its kind.
_DDB_CALL_ACTIONS = {
    "get_item": "dynamodb:GetItem",
    "put_item": "dynamodb:PutItem",
    "update_item": "dynamodb:UpdateItem",
    "delete_item": "dynamodb:DeleteItem",
    "query": "dynamodb:Query",
    "scan": "dynamodb:Scan",
}
_TRANSACT_ITEM_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}
# Used only by the CLI (listing pairs), which runs with the operator's credentials.
_CLI_ONLY_ACTIONS = {"dynamodb:Scan"}


def test_table_policy_allows_every_call_the_store_makes() -> None:
    source = "\n".join(
        path.read_text() for path in sorted((ROOT / "functions" / "ecs_canary" / "store").glob("*.py"))
    )
    needed = {action for call, action in _DDB_CALL_ACTIONS.items() if f"self.ddb.{call}(" in source}
    if "self.ddb.transact_write_items(" in source:
        needed |= {action for kind, action in _TRANSACT_ITEM_ACTIONS.items() if f'"{kind}":' in source}
    needed -= _CLI_ONLY_ACTIONS
    policy = TEMPLATE["Resources"]["DeploymentTablePolicy"]["Properties"]["PolicyDocument"]
    granted = {action for statement in policy["Statement"] for action in as_list(statement["Action"])}
    assert needed <= granted, f"DeploymentTablePolicy lacks {sorted(needed - granted)}"


def test_route53_changes_are_limited_to_the_actions_and_types_the_routers_write() -> None:
    changes = [s for _, s in ALLOW_STATEMENTS if "route53:ChangeResourceRecordSets" in as_list(s["Action"])]
    assert changes, "no statement allows ChangeResourceRecordSets"
    for statement in changes:
        assert as_list(statement["Action"]) == ["route53:ChangeResourceRecordSets"]
        limits = statement["Condition"]["ForAllValues:StringEquals"]
        assert sorted(limits["route53:ChangeResourceRecordSetsActions"]) == ["DELETE", "UPSERT"]
        assert sorted(limits["route53:ChangeResourceRecordSetsRecordTypes"]) == ["A", "AAAA", "CNAME"]


@pytest.mark.parametrize(
    ("parameter", "value", "accepted"),
    [
        ("HostedZoneIds", "*", True),
        ("HostedZoneIds", "Z0123456789ABC", True),
        ("HostedZoneIds", "Z1,Z2,Z3,Z4,Z5", True),
        ("HostedZoneIds", "Z1,Z2,Z3,Z4,Z5,Z6", False),
        ("HostedZoneIds", "Z1, Z2", False),
        ("HostedZoneIds", "Z1,", False),
        ("HostedZoneIds", "*,Z1", False),
        ("LoadBalancerNames", "*", True),
        ("LoadBalancerNames", "web-prod", True),
        ("LoadBalancerNames", "a,b-2,c,d,e", True),
        ("LoadBalancerNames", "a,b,c,d,e,f", False),
        ("LoadBalancerNames", "web/prod", False),
    ],
)
def test_scope_parameters_take_star_or_up_to_five_names(parameter: str, value: str, accepted: bool) -> None:
    """The policies select five entries from each list: CloudFormation must refuse a sixth."""
    pattern = TEMPLATE["Parameters"][parameter]["AllowedPattern"]
    assert (re.fullmatch(pattern, value) is not None) is accepted


@pytest.mark.parametrize("parameter", ["HostedZoneIds", "LoadBalancerNames"])
def test_each_scope_parameter_is_read_as_five_padded_entries(parameter: str) -> None:
    """Every ARN built from the list selects one of five entries of the padded list, none beyond."""
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    selected = re.findall(r"!Select \[(\d), !Split \[\",\", !Sub \"\$\{" + parameter + r"\},,,,\"\]\]", text)
    assert selected, f"{parameter} is not read as a padded list"
    assert set(selected) == {"0", "1", "2", "3", "4"}
    assert "${" + parameter + '}"' not in text.replace(',,,,"', ""), f"{parameter} is used unpadded"
