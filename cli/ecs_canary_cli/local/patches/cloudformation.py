"""CloudFormation: the SAM transform runs server-side, as AWS's managed macro does."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import boto3
from moto.cloudformation import parsing
from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.models import CloudFormationBackend
from moto.utilities.utils import get_partition
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.utils.py27hash_fix import to_py27_compatible_template, undo_mark_unicode_str_in_template
from samtranslator.yaml_helper import yaml_parse

from ._core import (
    _install,
)

# -- CloudFormation -------------------------------------------------------------------------------


SAM_TRANSFORM = "AWS::Serverless-2016-10-31"


def _expand_serverless(
    template: Any, parameters: Mapping[str, Any], *, stack_name: str, region: str, account_id: str
) -> Any:
    """The template after the SAM transform, or unchanged when it declares no such transform."""
    if not isinstance(template, str) or SAM_TRANSFORM not in template:
        return template

    parsed = yaml_parse(template)
    declared = parsed.get("Transform") if isinstance(parsed, dict) else None
    if declared != SAM_TRANSFORM and not (isinstance(declared, list) and SAM_TRANSFORM in declared):
        return template
    values: dict[str, Any] = {str(k): v for k, v in parameters.items()}
    values.update(
        {
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::Partition": get_partition(region),
            "AWS::StackName": stack_name,
            "AWS::URLSuffix": "amazonaws.com",
        }
    )
    session = boto3.session.Session(
        region_name=region, aws_access_key_id="transform", aws_secret_access_key="x"
    )
    try:
        to_py27_compatible_template(parsed, values)
        translated = Translator(None, Parser(), boto_session=session).translate(
            parsed, parameter_values=values, get_managed_policy_map=dict
        )
        translated = undo_mark_unicode_str_in_template(translated)
    except Exception as exc:
        raise ValidationError(stack_name, f"Transform {SAM_TRANSFORM} failed with: {exc}") from exc
    return json.dumps(translated)


def transform_serverless_templates() -> None:
    """AWS: CloudFormation expands the ``AWS::Serverless-2016-10-31`` transform server-side
    (a managed macro) on CreateStack, UpdateStack and CreateChangeSet, with the stack's own
    region, account and partition as pseudo parameters. moto runs templates untransformed.
    """

    def create_stack(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def wrapper(
            self: Any, name: str, template: Any, parameters: dict[str, Any], *args: Any, **kwargs: Any
        ) -> Any:
            body = _expand_serverless(
                template,
                parameters or {},
                stack_name=name,
                region=self.region_name,
                account_id=self.account_id,
            )
            return original(self, name, body, parameters, *args, **kwargs)

        return wrapper

    def update_stack(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def wrapper(
            self: Any, name: str, template: Any, role_arn: Any, parameters: Any, *args: Any, **kwargs: Any
        ) -> Any:
            stack = self.get_stack(name)
            values = self._resolve_update_parameters(instance=stack, incoming_params=parameters or [])
            body = _expand_serverless(
                template, values, stack_name=stack.name, region=self.region_name, account_id=self.account_id
            )
            return original(self, name, body, role_arn, parameters, *args, **kwargs)

        return wrapper

    def create_change_set(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def wrapper(
            self: Any,
            stack_name: str,
            change_set_name: str,
            template: Any,
            parameters: Any,
            *args: Any,
            **kwargs: Any,
        ) -> Any:
            body = _expand_serverless(
                template,
                parameters or {},
                stack_name=stack_name,
                region=self.region_name,
                account_id=self.account_id,
            )
            return original(self, stack_name, change_set_name, body, parameters, *args, **kwargs)

        return wrapper

    _install(CloudFormationBackend, "create_stack", create_stack, "sam-transform")
    _install(CloudFormationBackend, "update_stack", update_stack, "sam-transform")
    _install(CloudFormationBackend, "create_change_set", create_change_set, "sam-transform")


def _references(node: Any) -> set[str]:
    """Logical ids a resource's JSON names through Ref, Fn::GetAtt, Fn::Sub or DependsOn."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= _references(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(str(value[0] if isinstance(value, list) else str(value).split(".", 1)[0]))
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                found.update(m.split(".", 1)[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", str(text)))
                found |= _references(value[1:] if isinstance(value, list) else [])
            elif key == "DependsOn":
                found.update([value] if isinstance(value, str) else [str(v) for v in value])
            else:
                found |= _references(value)
    return found


def _dependency_order(resources: Mapping[str, Any]) -> list[str]:
    """Logical ids with every resource after those it references (template order otherwise)."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for dependency in sorted(_references(resources[name])):
            if dependency in resources:
                visit(dependency)
        order.append(name)

    for name in resources:
        visit(name)
    return order


def update_stack_resources_in_dependency_order() -> None:
    """AWS: UpdateStack creates and updates resources in dependency order, so a new resource that
    references a changed one (a new ``AWS::Lambda::Version`` of an updated function) is created
    after that change is applied. moto creates every new resource before it updates any changed
    one, so the new version would publish the function's previous code; and it keeps a removed
    resource's object, so adding its logical id back later returns the removed resource.
    """

    def make(_original: Callable[..., Any]) -> Callable[..., Any]:
        def update(self: Any, template: dict[str, Any], parameters: dict[str, Any] | None = None) -> None:
            actions = self.build_resource_diff(template, parameters)
            last: Exception | None = None
            removed = list(actions["Remove"])
            for _ in range(parsing.MAX_UPDATE_ATTEMPTS - 1):  # as moto: removals first, retried
                for logical_name in removed.copy():
                    try:
                        if logical_name in self._parsed_resources:
                            resource_json = self._resource_json_map[logical_name]
                            self._delete_resource(self._parsed_resources[logical_name], resource_json)
                    except Exception as exc:
                        last = exc
                    else:
                        removed.remove(logical_name)
                        # Out of the stack (moto keeps it, so re-adding the logical id revives it).
                        self._parsed_resources.pop(logical_name, None)
                if not removed:
                    break
            if removed and last is not None:
                raise last

            self._template = template
            if parameters:
                self.input_parameters = parameters
            self.load_mapping()
            self.load_parameters()
            self.load_conditions()
            self._resource_json_map = template["Resources"]

            added, modified = set(actions["Add"]), set(actions["Modify"])
            pending = [n for n in _dependency_order(self._resource_json_map) if n in added | modified]
            for _ in range(parsing.MAX_UPDATE_ATTEMPTS - 1):
                for logical_name in pending.copy():
                    if logical_name in added:
                        _ = self[logical_name]  # creates it (errors are not retried, as in moto)
                        pending.remove(logical_name)
                        continue
                    try:
                        changed = parsing.parse_and_update_resource(
                            logical_name,
                            self._resource_json_map[logical_name],
                            self,
                            account_id=self._account_id,
                            region_name=self._region_name,
                        )
                    except Exception as exc:
                        last = exc
                    else:
                        self._parsed_resources[logical_name] = changed
                        pending.remove(logical_name)
                if not pending:
                    break
            if pending and last is not None:
                raise last

        return update

    _install(parsing.ResourceMap, "update", make, "dependency-order")


def retain_resources_removed_by_stack_updates() -> None:
    """AWS: a resource with ``DeletionPolicy: Retain`` that an update removes from the template
    leaves the stack but is not deleted (SAM gives every ``AWS::Lambda::Version`` that policy, so
    old versions stay invocable). moto honours Retain on DeleteStack only.
    """

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def _delete_resource(self: Any, parsed_resource: Any, resource_json: dict[str, Any]) -> None:
            if resource_json.get("DeletionPolicy") == "Retain":
                return
            original(self, parsed_resource, resource_json)

        return _delete_resource

    _install(parsing.ResourceMap, "_delete_resource", make, "retain")
