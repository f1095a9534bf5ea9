"""``sam package`` + ``sam deploy`` through the public AWS APIs only.

Local ``CodeUri`` directories are zipped and ``DefinitionUri`` files uploaded to an artifacts
bucket, the template is rewritten to point at them, and the still-untransformed template is
created (or updated) as a stack with ``CAPABILITY_IAM`` and ``CAPABILITY_AUTO_EXPAND``: the
service expands the SAM transform, as AWS does. Works against the emulator or a real account.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError
from samtranslator.yaml_helper import yaml_parse

FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
_TEMPLATE_BODY_LIMIT = 51_200
_FAILED_SUFFIXES = ("_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED")


class DeployError(RuntimeError):
    """The stack did not reach a *_COMPLETE state."""


def _zip_dir(directory: Path) -> bytes:
    """A reproducible zip of ``directory`` (sorted entries, fixed timestamps, no caches)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            relative = path.relative_to(directory)
            if any(part == "__pycache__" or part.endswith(".egg-info") for part in relative.parts):
                continue
            if path.is_file() and path.suffix not in (".pyc", ".pyo"):
                info = zipfile.ZipInfo(relative.as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def _is_local(uri: Any) -> bool:
    return isinstance(uri, str) and not uri.startswith("s3://") and "://" not in uri


class _Packager:
    def __init__(self, s3: Any, bucket: str, prefix: str, base: Path) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self.base = base
        self._uploaded: dict[Path, str] = {}

    def upload(self, local: str, *, zip_dir: bool) -> str:
        path = (self.base / local).resolve()
        if path in self._uploaded:
            return self._uploaded[path]
        if zip_dir and path.is_dir():
            body, suffix = _zip_dir(path), ".zip"
        else:
            body, suffix = path.read_bytes(), path.suffix
        key = f"{self.prefix}/{hashlib.sha256(body).hexdigest()}{suffix}"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        self._uploaded[path] = key
        return key

    def package(self, template: dict[str, Any]) -> dict[str, Any]:
        """Rewrite local artifact paths as ``sam package`` does."""
        function_globals = (template.get("Globals") or {}).get("Function") or {}
        if _is_local(function_globals.get("CodeUri")):
            key = self.upload(function_globals["CodeUri"], zip_dir=True)
            function_globals["CodeUri"] = f"s3://{self.bucket}/{key}"
        for resource in (template.get("Resources") or {}).values():
            kind, props = resource.get("Type"), resource.get("Properties") or {}
            if kind == "AWS::Serverless::Function" and _is_local(props.get("CodeUri")):
                props["CodeUri"] = f"s3://{self.bucket}/{self.upload(props['CodeUri'], zip_dir=True)}"
            elif kind == "AWS::Serverless::StateMachine" and _is_local(props.get("DefinitionUri")):
                props["DefinitionUri"] = {
                    "Bucket": self.bucket,
                    "Key": self.upload(props["DefinitionUri"], zip_dir=False),
                }
            elif kind == "AWS::Serverless::LayerVersion" and _is_local(props.get("ContentUri")):
                props["ContentUri"] = f"s3://{self.bucket}/{self.upload(props['ContentUri'], zip_dir=True)}"
        return template


def _clients(target: str | boto3.Session, region: str) -> tuple[Any, Any, Any]:
    if isinstance(target, str):
        kwargs: dict[str, Any] = {"endpoint_url": target, "region_name": region, **FAKE_CREDENTIALS}
        return (
            boto3.client("s3", **kwargs),
            boto3.client("cloudformation", **kwargs),
            boto3.client("sts", **kwargs),
        )
    return target.client("s3"), target.client("cloudformation"), target.client("sts")


def _stack_status(cfn: Any, stack_name: str) -> str | None:
    try:
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return str(stacks[0]["StackStatus"]) if stacks else None


def deploy_stack(
    target: str | boto3.Session,
    template_path: str | os.PathLike[str],
    stack_name: str = "ecs-canary",
    parameters: Mapping[str, str] | None = None,
    *,
    region: str = "us-east-1",
    timeout: float = 600.0,
) -> dict[str, str]:
    """Package and deploy ``template_path`` as ``stack_name``; return the stack's Outputs.

    ``target`` is an endpoint URL (the emulator; fake credentials) or a boto3 Session.
    """
    path = Path(template_path)
    s3, cfn, sts = _clients(target, region)
    if not isinstance(target, str) and target.region_name:
        region = target.region_name
    account = sts.get_caller_identity()["Account"]
    bucket = f"{stack_name}-artifacts-{account}-{region}".lower()[:63]
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, **extra)

    template = yaml_parse(path.read_text())
    body = json.dumps(_Packager(s3, bucket, stack_name, path.parent).package(template), indent=1)
    if len(body.encode()) > _TEMPLATE_BODY_LIMIT:
        body = json.dumps(template, separators=(",", ":"))
    args: dict[str, Any] = {
        "StackName": stack_name,
        "TemplateBody": body,
        "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()],
    }
    status = _stack_status(cfn, stack_name)
    if (
        status is not None
        and status.endswith("ROLLBACK_COMPLETE")
        and status.startswith(("CREATE", "ROLLBACK"))
    ):
        cfn.delete_stack(StackName=stack_name)
        status = None
    if status is None:
        cfn.create_stack(**args)
    else:
        try:
            cfn.update_stack(**args)
        except ClientError as exc:
            if "No updates are to be performed" not in str(exc):
                raise
    deadline = time.monotonic() + timeout
    while True:
        stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
        status = str(stack["StackStatus"])
        if status.endswith(_FAILED_SUFFIXES):
            raise DeployError(f"{stack_name}: {status} {stack.get('StackStatusReason', '')}")
        if status.endswith("_COMPLETE"):
            return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        if time.monotonic() > deadline:
            raise DeployError(f"{stack_name}: still {status} after {timeout:.0f} s")
        time.sleep(0.5 if isinstance(target, str) else 5.0)
