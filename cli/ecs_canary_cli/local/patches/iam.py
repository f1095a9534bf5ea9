"""IAM: roles as CloudFormation creates them, execution roles' session credentials, and the
authorisation of every call made with a role's session credentials against that role's policies.

The emulator's own credentials (``testing``, the fake keys of a function whose role is not in the
emulated IAM) act as the account's root user, which identity-based policies do not restrict: the
CLI, the tests' set-up and the demo keep working. A call signed with an assumed role's session
credentials (a Lambda sandbox's, a Step Functions Task's, or any AssumeRole's) is allowed only if
an Allow statement of the role's inline or attached managed policies matches its action, its
resource (when the emulator can tell the resource from the request; otherwise any statement's
Resource matches) and its conditions (those whose key the emulator can tell from the request;
any other condition holds), and no Deny statement matches.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, cast
from urllib.parse import unquote

import boto3
from botocore.config import Config
from moto.core.exceptions import ServiceException
from moto.core.models import botocore_stubber
from moto.core.responses import ActionResult, BaseResponse
from moto.core.utils import get_service_model
from moto.iam.aws_managed_policies import aws_managed_policies_data
from moto.iam.models import Role, iam_backends
from moto.settings import moto_server_port
from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds
from moto.sts.models import sts_backends
from moto.utilities.utils import get_partition

from ..lambda_runtime import FunctionSpec
from ._core import CONFIG, _install

LOG = logging.getLogger(__name__)

__all__ = [
    "Check",
    "Decision",
    "attach_managed_policies_from_cloudformation",
    "authorise_role_session_calls",
    "authorised_calls",
    "evaluate",
    "lambda_execution_role_credentials",
    "role_session",
    "state_machine_role_credentials",
]

# -- sessions --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Session:
    access_key: str
    secret_key: str
    token: str
    role_arn: str
    arn: str  # arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION


_SESSIONS_LOCK = threading.Lock()
_SESSIONS: dict[tuple[str, str], _Session] = {}  # (role ARN, session name) -> credentials
_BY_KEY: dict[str, _Session] = {}
_COUNTS = {"allowed": 0, "denied": 0}


def _reset_sessions() -> None:
    """A new emulator starts with fresh backends: sessions of the last one are gone."""
    with _SESSIONS_LOCK:
        _SESSIONS.clear()
        _BY_KEY.clear()
        _COUNTS.update(allowed=0, denied=0)


def authorised_calls() -> dict[str, int]:
    """How many role-session calls were allowed and denied since the emulator started."""
    with _SESSIONS_LOCK:
        return dict(_COUNTS)


def _role(role_arn: str) -> Role | None:
    match = re.match(r"^arn:([^:]+):iam::(\d{12}):role/(?:.*/)?([^/]+)$", role_arn)
    if match is None:
        return None
    partition, account, name = match.groups()
    roles = list(iam_backends[account][partition].roles.values())
    return next((role for role in roles if role.name == name), None)


def role_session(role_arn: str, session_name: str, region: str) -> tuple[str, str, str] | None:
    """Session credentials (key, secret, token) of ``role_arn`` as AssumeRole gives them, one
    session per role and name for the emulator's lifetime; None if the role is not in IAM."""
    role = _role(role_arn)
    if role is None:
        return None
    with _SESSIONS_LOCK:
        found = _SESSIONS.get((role_arn, session_name))
        if found is None:
            account = role_arn.split(":")[4]
            backend = sts_backends[account][get_partition(region)]
            assumed = backend.assume_role(
                region_name=region,
                role_session_name=session_name,
                role_arn=role_arn,
                policy="",
                duration=43200,
                external_id="",
            )
            found = _Session(
                assumed.access_key_id,
                assumed.secret_access_key,
                assumed.session_token,
                role_arn,
                f"arn:{role.partition}:sts::{account}:assumed-role/{role.name}/{session_name}",
            )
            _SESSIONS[(role_arn, session_name)] = found
            _BY_KEY[found.access_key] = found
    return found.access_key, found.secret_key, found.token


def _session_of(access_key: str, account: str, region: str) -> _Session | None:
    """The role session an access key belongs to (None: not a role session, so the account)."""
    with _SESSIONS_LOCK:
        found = _BY_KEY.get(access_key)
    if found is not None or not access_key.startswith("ASIA"):
        return found
    try:
        assumed = sts_backends[account][get_partition(region)].get_assumed_role_from_access_key(access_key)
    except Exception:
        return None
    if assumed is None:
        return None
    role = _role(assumed.role_arn)
    name = role.name if role is not None else assumed.role_arn.rsplit("/", 1)[-1]
    return _Session(
        access_key,
        "",
        "",
        assumed.role_arn,
        f"arn:{get_partition(region)}:sts::{account}:assumed-role/{name}/{assumed.session_name}",
    )


# -- policies --------------------------------------------------------------------------------------


@functools.cache
def _aws_managed_documents() -> dict[str, Any]:
    """AWS managed policies' documents by ARN (moto ships them; its IAM loads them only on demand)."""
    parsed = json.loads(aws_managed_policies_data)
    return {
        f"arn:aws:iam::aws:policy{data.get('Path', '/')}{name}": data["Document"]
        for name, data in parsed.items()
    }


def _document(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):
        raw = json.loads(unquote(raw) if raw.lstrip().startswith("%") else raw)
    return raw if isinstance(raw, dict) else {}


def _managed_document(policy: Any) -> dict[str, Any]:
    for version in getattr(policy, "versions", []):
        if getattr(version, "is_default", False):
            return _document(version.document)
    return _document(getattr(policy, "document", None) or "{}")


def _role_documents(role: Role) -> list[dict[str, Any]]:
    """The role's identity-based policies: inline, then attached managed ones."""
    documents = [_document(doc) for doc in role.policies.values()]
    documents += [_managed_document(p) for p in role.managed_policies.values()]
    documents += [
        _document(doc)
        for arn, doc in _aws_managed_documents().items()
        if arn in getattr(role, "_emulator_aws_managed", ())
    ]
    return documents


def attach_managed_policies_from_cloudformation() -> None:
    """AWS: an ``AWS::IAM::Role``'s ``ManagedPolicyArns`` attaches those customer or AWS managed
    policies, an update of the role's ``Policies``, ``ManagedPolicyArns`` or
    ``AssumeRolePolicyDocument`` changes them in place, and deleting the role detaches them. moto
    ignores ``ManagedPolicyArns`` and applies no update but the description.
    """

    def sync(role: Role, properties: Mapping[str, Any], account_id: str, region_name: str) -> None:
        backend = iam_backends[account_id][get_partition(region_name)]
        wanted = [str(arn) for arn in properties.get("ManagedPolicyArns") or []]
        for arn in list(role.managed_policies):
            if arn not in wanted:
                role.managed_policies[arn].detach_from(role)
        aws_managed: set[str] = set()
        for arn in wanted:
            if arn in role.managed_policies:
                continue
            policy = backend.managed_policies.get(arn)
            if policy is not None:
                policy.attach_to(role)
            elif arn in _aws_managed_documents():
                aws_managed.add(arn)
            else:
                LOG.warning("role %s: managed policy %s does not exist", role.name, arn)
        role._emulator_aws_managed = frozenset(aws_managed)  # type: ignore[attr-defined]

    def create(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def create_from_cloudformation_json(
            cls: Any,
            resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> Any:
            role = original(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
            sync(role, cloudformation_json.get("Properties") or {}, account_id, region_name)
            return role

        return create_from_cloudformation_json

    def update(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def update_from_cloudformation_json(  # noqa: PLR0917 - the signature of the moto method
            cls: Any,
            original_resource: Any,
            new_resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
        ) -> Any:
            role = original(
                cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
            )
            properties = cloudformation_json.get("Properties") or {}
            inline = {p["PolicyName"]: p["PolicyDocument"] for p in properties.get("Policies") or []}
            for name in [n for n in role.policies if n not in inline]:
                role.delete_policy(name)
            for name, document in inline.items():
                role.put_policy(name, document if isinstance(document, str) else json.dumps(document))
            trust = properties.get("AssumeRolePolicyDocument")
            if trust is not None:
                role.assume_role_policy_document = trust if isinstance(trust, str) else json.dumps(trust)
            sync(role, properties, account_id, region_name)
            return role

        return update_from_cloudformation_json

    def delete(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def delete_from_cloudformation_json(
            cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
        ) -> None:
            backend = iam_backends[account_id][get_partition(region_name)]
            for role in list(backend.roles.values()):
                if role.name == resource_name:
                    for policy in list(role.managed_policies.values()):
                        policy.detach_from(role)
            original(cls, resource_name, cloudformation_json, account_id, region_name)

        return delete_from_cloudformation_json

    _install(Role, "create_from_cloudformation_json", create, "managed-policy-arns")
    _install(Role, "update_from_cloudformation_json", update, "managed-policy-arns")
    _install(Role, "delete_from_cloudformation_json", delete, "managed-policy-arns")


# -- evaluation ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One authorisation a request needs: an action, on a resource (None: not known here), with
    the condition keys known for it."""

    action: str
    resource: str | None = None
    context: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """Whether a check is allowed, and if not, whether a Deny statement said so."""

    allowed: bool
    explicit_deny: bool = False


@functools.lru_cache(maxsize=4096)
def _wildcard(pattern: str, case_sensitive: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{regex}$", 0 if case_sensitive else re.IGNORECASE | re.DOTALL)


def _action_matches(patterns: Any, action: str) -> bool:
    return any(_wildcard(str(p), False).match(action) for p in _as_list(patterns))


def _resource_matches(patterns: Any, resource: str | None) -> bool:
    """ARNs compare part by part (partition, service, region, account, then the rest)."""
    if resource is None:
        return True
    for pattern in _as_list(patterns):
        text = str(pattern)
        if text == "*":
            return True
        want, have = text.split(":", 5), resource.split(":", 5)
        if len(want) == len(have) and all(
            _wildcard(w, True).match(h) for w, h in zip(want, have, strict=True)
        ):
            return True
    return False


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _string_matches(operator: str, wanted: Sequence[str], value: str) -> bool:
    if operator in {"StringEquals", "ArnEquals"}:
        return value in wanted
    if operator == "StringEqualsIgnoreCase":
        return value.lower() in {w.lower() for w in wanted}
    if operator in {"StringLike", "ArnLike"}:
        return any(_wildcard(w, True).match(value) for w in wanted)
    if operator == "Bool":
        return value.lower() in {w.lower() for w in wanted}
    raise KeyError(operator)


_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}


def _condition_holds(operator: str, key: str, wanted: Any, context: Mapping[str, Sequence[str]]) -> bool:
    """One condition; a key the request does not tell, or an operator not modelled, holds."""
    qualifier, _, name = operator.rpartition(":")
    name = name.removesuffix("IfExists")  # a present key is tested as without; an absent one holds
    values = next((v for k, v in context.items() if k.lower() == key.lower()), None)
    if name == "Null":
        if values is None:
            return True
        return (str(_as_list(wanted)[0]).lower() == "true") == (len(values) == 0)
    if values is None:
        return True  # a key the emulator does not read from the request (an approximation)
    negated = name in _NEGATED
    base = _NEGATED.get(name, name)
    wanted_values = [str(w) for w in _as_list(wanted)]
    try:
        matches = [_string_matches(base, wanted_values, str(v)) for v in values]
    except KeyError:
        return True  # an operator the emulator does not evaluate (numeric, date, IP...)
    if negated:
        matches = [not m for m in matches]
    if qualifier == "ForAllValues":
        return all(matches)
    if qualifier == "ForAnyValue":
        return any(matches)
    return bool(matches) and (all(matches) if negated else any(matches))


def _conditions_hold(conditions: Any, context: Mapping[str, Sequence[str]]) -> bool:
    if not isinstance(conditions, dict):
        return True
    return all(
        _condition_holds(operator, key, wanted, context)
        for operator, pairs in conditions.items()
        if isinstance(pairs, dict)
        for key, wanted in pairs.items()
    )


def _statement_applies(statement: Mapping[str, Any], check: Check) -> bool:
    if "Action" in statement:
        if not _action_matches(statement["Action"], check.action):
            return False
    elif "NotAction" in statement:
        if _action_matches(statement["NotAction"], check.action):
            return False
    else:
        return False
    if "Resource" in statement:
        if not _resource_matches(statement["Resource"], check.resource):
            return False
    elif (
        "NotResource" in statement
        and check.resource is not None
        and _resource_matches(statement["NotResource"], check.resource)
    ):
        return False
    return _conditions_hold(statement.get("Condition"), check.context)


def evaluate(documents: Iterable[Mapping[str, Any]], check: Check) -> Decision:
    """IAM's identity-based evaluation: an explicit Deny wins, else an Allow is needed."""
    allowed = False
    for document in documents:
        for statement in _as_list(document.get("Statement")):
            if not isinstance(statement, dict) or not _statement_applies(statement, check):
                continue
            if statement.get("Effect") == "Deny":
                return Decision(False, explicit_deny=True)
            if statement.get("Effect") == "Allow":
                allowed = True
    return Decision(allowed)


# -- what a request asks for -----------------------------------------------------------------------

_IAM_PREFIX = {"monitoring": "cloudwatch"}
"""Signing names whose IAM action prefix differs."""
_IAM_ACTION = {
    ("lambda", "Invoke"): "InvokeFunction",
    ("lambda", "InvokeAsync"): "InvokeFunction",
    ("lambda", "InvokeWithResponseStream"): "InvokeFunction",
}
"""Operations authorised as an action of another name."""
_DYNAMODB_TRANSACT = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}
_ALWAYS_ALLOWED = frozenset({"sts:GetCallerIdentity"})


@dataclass(frozen=True)
class _Scope:
    partition: str
    region: str
    account: str

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        return (
            f"arn:{self.partition}:{service}:{self.region if region else ''}:"
            f"{self.account if account else ''}:{resource}"
        )


def _name_or_arn(value: Any, scope: _Scope, service: str, prefix: str) -> str | None:
    if not value:
        return None
    text = str(value)
    return text if text.startswith("arn:") else scope.arn(service, prefix + text)


def _dynamodb(operation: str, params: Mapping[str, Any], scope: _Scope) -> list[Check]:
    def table(name: Any, index: Any = None) -> str | None:
        arn = _name_or_arn(name, scope, "dynamodb", "table/")
        return f"{arn}/index/{index}" if arn and index else arn

    if operation in {"TransactWriteItems", "TransactGetItems"}:
        checks = []
        for item in params.get("TransactItems") or []:
            for kind, body in dict(item).items():
                if kind in _DYNAMODB_TRANSACT:
                    checks.append(Check(f"dynamodb:{_DYNAMODB_TRANSACT[kind]}", table(body.get("TableName"))))
        return checks
    if operation in {"BatchGetItem", "BatchWriteItem"}:
        return [Check(f"dynamodb:{operation}", table(name)) for name in params.get("RequestItems") or {}]
    return [Check(f"dynamodb:{operation}", table(params.get("TableName"), params.get("IndexName")))]


def _states(operation: str, params: Mapping[str, Any], _scope: _Scope) -> list[Check]:
    arn = params.get("executionArn") or params.get("stateMachineArn") or params.get("resourceArn")
    return [Check(f"states:{operation}", str(arn) if arn else None)]


def _events(operation: str, params: Mapping[str, Any], scope: _Scope) -> list[Check]:
    if operation != "PutEvents":
        bus = params.get("EventBusName") if "EventBus" in operation else None
        return [Check(f"events:{operation}", _name_or_arn(bus, scope, "events", "event-bus/"))]
    checks = []
    for entry in params.get("Entries") or []:
        bus = _name_or_arn(entry.get("EventBusName") or "default", scope, "events", "event-bus/")
        context = {
            "events:source": [str(entry.get("Source") or "")],
            "events:detail-type": [str(entry.get("DetailType") or "")],
        }
        checks.append(Check("events:PutEvents", bus, context))
    return checks or [Check("events:PutEvents")]


def _lambda(operation: str, params: Mapping[str, Any], scope: _Scope) -> list[Check]:
    action = _IAM_ACTION.get(("lambda", operation), operation)
    name = unquote(str(params.get("FunctionName") or ""))
    if not name:
        return [Check(f"lambda:{action}")]
    tail = name.rsplit(":function:", 1)[-1] if ":function:" in name else name
    function, _, qualifier = tail.partition(":")
    qualifier = qualifier or str(params.get("Qualifier") or "")
    resource = scope.arn("lambda", f"function:{function}") + (f":{qualifier}" if qualifier else "")
    return [Check(f"lambda:{action}", resource)]


def _ecs(operation: str, params: Mapping[str, Any], scope: _Scope) -> list[Check]:
    cluster = str(params.get("cluster") or "default").rsplit("/", 1)[-1]

    def service(name: Any) -> str | None:
        text = str(name)
        return text if text.startswith("arn:") else scope.arn("ecs", f"service/{cluster}/{text}")

    if operation == "DescribeServices":
        return [Check("ecs:DescribeServices", service(s)) for s in params.get("services") or []] or [
            Check("ecs:DescribeServices")
        ]
    if operation in {"UpdateService", "DeleteService"} and params.get("service"):
        return [Check(f"ecs:{operation}", service(params["service"]))]
    return [Check(f"ecs:{operation}")]


def _elbv2(operation: str, params: Mapping[str, Any], _scope: _Scope) -> list[Check]:
    arn = None if operation.startswith("Describe") else params.get("ListenerArn") or params.get("RuleArn")
    return [Check(f"elasticloadbalancing:{operation}", str(arn) if arn else None)]


def _route53(operation: str, params: Mapping[str, Any], scope: _Scope) -> list[Check]:
    action = f"route53:{operation}"
    if operation == "GetChange":
        change = str(params.get("Id") or "").rsplit("/", 1)[-1]
        return [Check(action, scope.arn("route53", f"change/{change}", region=False, account=False))]
    zone = str(params.get("HostedZoneId") or params.get("Id") or "").rsplit("/", 1)[-1]
    resource = scope.arn("route53", f"hostedzone/{zone}", region=False, account=False) if zone else None
    context: dict[str, list[str]] = {}
    if operation == "ChangeResourceRecordSets":
        changes = list((params.get("ChangeBatch") or {}).get("Changes") or [])
        records = [dict(c.get("ResourceRecordSet") or {}) for c in changes]
        context = {
            "route53:ChangeResourceRecordSetsActions": sorted({str(c.get("Action")) for c in changes}),
            "route53:ChangeResourceRecordSetsRecordTypes": sorted({str(r.get("Type")) for r in records}),
            "route53:ChangeResourceRecordSetsNormalizedRecordNames": sorted(
                {str(r.get("Name") or "").lower().rstrip(".") for r in records}
            ),
        }
    return [Check(action, resource, context)]


def _cloudwatch(operation: str, params: Mapping[str, Any], scope: _Scope) -> list[Check]:
    names = params.get("AlarmNames") if operation in {"DescribeAlarms", "DeleteAlarms"} else None
    if names:
        return [Check(f"cloudwatch:{operation}", scope.arn("cloudwatch", f"alarm:{n}")) for n in names]
    if operation in {"PutMetricAlarm", "SetAlarmState"} and params.get("AlarmName"):
        return [Check(f"cloudwatch:{operation}", scope.arn("cloudwatch", f"alarm:{params['AlarmName']}"))]
    return [Check(f"cloudwatch:{operation}")]


def _sqs(operation: str, params: Mapping[str, Any], scope: _Scope) -> list[Check]:
    url = str(params.get("QueueUrl") or "")
    parts = url.rstrip("/").rsplit("/", 2)
    if len(parts) == 3 and parts[1].isdigit():
        return [Check(f"sqs:{operation}", f"arn:{scope.partition}:sqs:{scope.region}:{parts[1]}:{parts[2]}")]
    return [Check(f"sqs:{operation}")]


_RESOURCES: dict[str, Callable[[str, Mapping[str, Any], _Scope], list[Check]]] = {
    "dynamodb": _dynamodb,
    "states": _states,
    "events": _events,
    "lambda": _lambda,
    "ecs": _ecs,
    "elasticloadbalancing": _elbv2,
    "route53": _route53,
    "cloudwatch": _cloudwatch,
    "sqs": _sqs,
}
"""Per IAM service prefix: the checks an operation needs, with the resources and condition keys
read from its parameters. Services not listed are checked on the action alone."""


def _parameters(response: Any) -> Mapping[str, Any]:
    """The request's parameters, parsed against the service model (empty if that fails)."""
    if getattr(response, "automated_parameter_parsing", False) and isinstance(
        getattr(response, "params", None), Mapping
    ):
        found: Mapping[str, Any] = response.params
    else:
        try:
            response.parse_parameters(response.normalized_request)
            found = response.params
        except Exception:
            found = {}
        if not found and isinstance(response.body, (str, bytes)) and response.body:
            try:
                loaded = json.loads(response.body)
            except ValueError:
                loaded = None
            found = loaded if isinstance(loaded, dict) else {}
    merged = dict(found)
    for key, value in (getattr(response, "uri_match", None) or {}).items():
        merged.setdefault(key, unquote(str(value)))
    for key, values in (getattr(response, "querystring", None) or {}).items():
        if isinstance(values, list) and len(values) == 1:
            merged.setdefault(key, values[0])
    return merged


def _checks(response: Any, signing_name: str, scope: _Scope) -> list[Check]:
    prefix = _IAM_PREFIX.get(signing_name, signing_name)
    operation = str(response._get_action() or "")
    describe = _RESOURCES.get(prefix)
    if describe is None:
        return [Check(f"{prefix}:{_IAM_ACTION.get((prefix, operation), operation)}")]
    try:
        return describe(operation, _parameters(response), scope)
    except Exception:  # an unexpected request shape: check the action alone
        LOG.debug("resource of %s:%s not determined", prefix, operation, exc_info=True)
        return [Check(f"{prefix}:{_IAM_ACTION.get((prefix, operation), operation)}")]


class _AccessDenied(ServiceException):
    code = "AccessDeniedException"


_QUERY_PROTOCOLS = frozenset({"query", "query-json", "rest-xml", "ec2"})


def _credential_scope(headers: Any) -> list[str]:
    auth = str(headers.get("Authorization") or headers.get("authorization") or "")
    if "Credential=" not in auth:
        return []
    return auth.split("Credential=", 1)[1].split(",", 1)[0].split("/")


def _denied(response: Any, message: str) -> Any:
    try:
        protocol = response.determine_response_protocol(get_service_model(response.boto3_service_name))
    except Exception:
        protocol = "json"
    error = _AccessDenied(message)
    if protocol in _QUERY_PROTOCOLS:
        error.code = "AccessDenied"
    with warnings.catch_warnings():  # moto warns when a service's model names no such error
        warnings.simplefilter("ignore")
        _status, headers, body = response.serialized(ActionResult(error))
    headers = {k: v for k, v in headers.items() if str(k).lower() != "status"}
    headers, body = response._enrich_response(headers, body)  # the request id, as every answer
    # JSON-protocol services answer 400; Lambda (REST-JSON) and the query and REST-XML services 403.
    return (403 if protocol in _QUERY_PROTOCOLS or protocol == "rest-json" else 400), headers, body


def authorise_role_session_calls() -> None:
    """AWS: a request signed with a role session's credentials is allowed only if the role's
    identity-based policies allow every action it needs on its resources (TransactWriteItems:
    each item's PutItem/UpdateItem/DeleteItem/ConditionCheckItem; PutEvents: each entry, with
    ``events:source``; ChangeResourceRecordSets: with its ``route53:ChangeResourceRecordSets*``
    keys) and no statement denies one; otherwise it answers AccessDeniedException (AccessDenied in
    query and REST-XML protocols) naming the session, action and resource. moto authorises nothing
    unless told to, and then matches every statement's Resource against ``*`` and ignores
    conditions it cannot read from the request.
    """

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def call_action(self: Any) -> Any:
            if not CONFIG.options.iam:
                return original(self)
            credential = _credential_scope(self.headers)
            if len(credential) < 4:
                return original(self)
            access_key, region, signing_name = credential[0], credential[2], credential[3]
            session = _session_of(access_key, str(self.current_account), region)
            if session is None:
                return original(self)
            partition = get_partition(region)
            scope = _Scope(partition, region, session.role_arn.split(":")[4])
            checks = _checks(self, signing_name, scope)
            role = _role(session.role_arn)
            documents = _role_documents(role) if role is not None else []
            for check in checks:
                if check.action in _ALWAYS_ALLOWED:
                    continue
                decision = evaluate(documents, check)
                if not decision.allowed:
                    with _SESSIONS_LOCK:
                        _COUNTS["denied"] += 1
                    on = f" on resource: {check.resource}" if check.resource else ""
                    why = (
                        "with an explicit deny in an identity-based policy"
                        if decision.explicit_deny
                        else f"because no identity-based policy allows the {check.action} action"
                    )
                    message = f"User: {session.arn} is not authorized to perform: {check.action}{on} {why}"
                    LOG.info("IAM denied: %s", message)
                    return _denied(self, message)
            with _SESSIONS_LOCK:
                _COUNTS["allowed"] += 1
            LOG.debug("IAM allowed: %s %s", session.arn, checks)
            return original(self)

        return call_action

    _reset_sessions()
    _install(BaseResponse, "call_action", make, "iam")


# -- whose credentials -----------------------------------------------------------------------------


def lambda_execution_role_credentials() -> None:
    """AWS: Lambda runs each execution environment with session credentials of its function's
    execution role (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``;
    the session is named after the function). A function whose role is not in the emulated IAM
    gets the emulator's fake credentials, which are not restricted.
    """

    def credentials(spec: FunctionSpec) -> tuple[str, str, str] | None:
        if not spec.role:
            return None
        return role_session(spec.role, spec.name, spec.region)

    if CONFIG.runtime is not None:
        CONFIG.runtime.credentials = credentials


_SFN_CLIENT_MODULES = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_batch",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_dynamodb",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_ecs",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_events",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_glue",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sns",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sqs",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_unsupported",
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval.resource_eval_s3",
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval.resource_eval_s3",
)
"""The interpreter's modules that call AWS through ``boto_client_for`` (each holds its own name)."""

SFN_SESSION_NAME = "StepFunctions"


def state_machine_role_credentials() -> None:
    """AWS: Step Functions makes a Task's service calls (``lambda:invoke``, ``events:putEvents``,
    SDK integrations...) with session credentials of the state machine's role, or of the Task's
    ``Credentials.RoleArn``. moto's interpreter signs them with fixed keys that stand for no one.
    A role that is not in the emulated IAM keeps those (unrestricted) keys.
    """

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
            role_arn = str(getattr(state_credentials, "role_arn", "") or "")
            session = role_session(role_arn, SFN_SESSION_NAME, region) if role_arn else None
            if session is None:
                return original(region=region, service=service, state_credentials=state_credentials)
            kwargs: dict[str, Any] = {}
            if not botocore_stubber.enabled:
                kwargs["endpoint_url"] = f"http://localhost:{moto_server_port()}"
            return cast(Any, boto3).client(
                service_name=service,
                region_name=region,
                aws_access_key_id=session[0],
                aws_secret_access_key=session[1],
                aws_session_token=session[2],
                config=Config(
                    parameter_validation=False,
                    retries={"max_attempts": 0, "total_max_attempts": 1},
                    connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                    read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                ),
                **kwargs,
            )

        return boto_client_for

    for name in _SFN_CLIENT_MODULES:
        try:
            module = sys.modules.get(name) or import_module(name)
        except ImportError:  # a module this moto version does not have
            continue
        if hasattr(module, "boto_client_for"):
            _install(module, "boto_client_for", make, "role-credentials")
