"""Shared boto3 clients with the retry and timeout policy every handler uses.

Endpoint, profile and credential resolution is left entirely to botocore, so
``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_<SERVICE>``, ``AWS_PROFILE`` and the
shared config files behave exactly as they do for the AWS CLI (that is what lets
the offline emulator redirect every call without code changes).
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any, Literal, overload

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_route53 import Route53Client
    from mypy_boto3_stepfunctions import SFNClient
    from mypy_boto3_sts import STSClient

__all__ = ["CLIENT_CONFIG", "client", "region", "reset_clients"]

# Standard retry mode backs off on throttling, which the Route53 and ELBv2 control
# planes hand out readily when several rollouts run at once.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 8},
    connect_timeout=5,
    read_timeout=30,
)


def region() -> str | None:
    """Region from the environment (Lambda sets ``AWS_REGION``); None lets the profile decide."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def _endpoint_env() -> tuple[tuple[str, str], ...]:
    """Every endpoint override in the environment, so a change of any of them yields a new client."""
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_ENDPOINT_URL")))


@functools.cache
def _build(
    service_name: str,
    region_name: str | None,
    endpoints: tuple[tuple[str, str], ...],
    profile: str | None,
) -> Any:
    """Build one client; ``endpoints`` and ``profile`` only key the cache, botocore reads them itself."""
    del endpoints, profile
    session = boto3.session.Session()
    return session.client(service_name, region_name=region_name, config=CLIENT_CONFIG)  # type: ignore[call-overload]


@overload
def client(service_name: Literal["cloudwatch"]) -> CloudWatchClient: ...
@overload
def client(service_name: Literal["dynamodb"]) -> DynamoDBClient: ...
@overload
def client(service_name: Literal["ecs"]) -> ECSClient: ...
@overload
def client(service_name: Literal["elbv2"]) -> ElasticLoadBalancingv2Client: ...
@overload
def client(service_name: Literal["events"]) -> EventBridgeClient: ...
@overload
def client(service_name: Literal["lambda"]) -> LambdaClient: ...
@overload
def client(service_name: Literal["logs"]) -> CloudWatchLogsClient: ...
@overload
def client(service_name: Literal["route53"]) -> Route53Client: ...
@overload
def client(service_name: Literal["stepfunctions"]) -> SFNClient: ...
@overload
def client(service_name: Literal["sts"]) -> STSClient: ...
@overload
def client(service_name: str) -> Any: ...
def client(service_name: str) -> Any:
    """A cached client for ``service_name`` in the current region and endpoint configuration.

    Clients are reused across warm Lambda invocations; the cache key includes the
    region, endpoint overrides and profile so tests that change them get fresh ones.
    """
    return _build(service_name, region(), _endpoint_env(), os.environ.get("AWS_PROFILE"))


def reset_clients() -> None:
    """Drop every cached client (tests switch credentials and mocks between cases)."""
    _build.cache_clear()
