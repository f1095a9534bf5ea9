"""SQS resources CloudFormation creates."""

from __future__ import annotations

import json
import uuid
from typing import Any

from moto.cloudformation import parsing
from moto.core.common_models import CloudFormationModel
from moto.sqs.models import sqs_backends


def support_sqs_queue_policies() -> None:
    """AWS: ``AWS::SQS::QueuePolicy`` sets the ``Policy`` attribute of each queue it lists.
    moto's CloudFormation does not know the type and skips it with a warning.
    """
    if "AWS::SQS::QueuePolicy" in parsing.get_model_map():
        return

    class QueuePolicy(CloudFormationModel):
        def __init__(self, queues: list[str], policy: str, account_id: str, region: str) -> None:
            self.queues = queues
            self.policy = policy
            self.account_id = account_id
            self.region = region
            self.id = f"{uuid.uuid4()}"

        @property
        def physical_resource_id(self) -> str:
            return self.id

        @staticmethod
        def cloudformation_name_type() -> str:
            return ""

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::SQS::QueuePolicy"

        def _apply(self, policy: str) -> None:
            backend = sqs_backends[self.account_id][self.region]
            for url in self.queues:
                backend.set_queue_attributes(url.rstrip("/").rsplit("/", 1)[-1], {"Policy": policy})

        @classmethod
        def create_from_cloudformation_json(
            cls,
            resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> QueuePolicy:
            props = cloudformation_json["Properties"]
            resource = cls(
                list(props["Queues"]), json.dumps(props["PolicyDocument"]), account_id, region_name
            )
            resource._apply(resource.policy)
            return resource

        @classmethod
        def update_from_cloudformation_json(
            cls,
            original_resource: Any,
            new_resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
        ) -> QueuePolicy:
            original_resource._apply("")
            return cls.create_from_cloudformation_json(
                new_resource_name, cloudformation_json, account_id, region_name
            )

        @classmethod
        def delete_from_cloudformation_json(
            cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
        ) -> None:
            return None

    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()
