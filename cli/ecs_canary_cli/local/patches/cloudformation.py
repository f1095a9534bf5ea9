"""CloudFormation: the SAM transform runs server-side, as AWS's managed macro does."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

import boto3
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
