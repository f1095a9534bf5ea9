"""``sam package`` + ``sam deploy`` through the public AWS APIs only.

Local ``CodeUri`` directories are zipped and ``DefinitionUri`` files uploaded to an artifacts
bucket, the template is rewritten to point at them, and the still-untransformed template is
created (or updated) as a stack with ``CAPABILITY_IAM`` and ``CAPABILITY_AUTO_EXPAND``: the
service expands the SAM transform, as AWS does. Works against the emulator or a real account.

Deploying is idempotent: the submitted template carries a fingerprint of itself and the
parameters in its ``Metadata``, so deploying what a stack already runs changes nothing (no
UpdateStack), and deploys of one stack from one process are serialised so two of them never both
create it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
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
# Template-level Metadata key holding the fingerprint of what was deployed (free-form in AWS).
FINGERPRINT_KEY = "EcsCanaryDeployment"
_CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]

_LOCKS: dict[tuple[str, str, str], threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


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


def _describe(cfn: Any, stack_name: str) -> dict[str, Any] | None:
    try:
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return dict(stacks[0]) if stacks else None


def _settled(cfn: Any, stack_name: str, deadline: float, poll: float) -> dict[str, Any] | None:
    """The stack once no operation is in progress on it (None if it does not exist)."""
    while True:
        stack = _describe(cfn, stack_name)
        if stack is None or not str(stack["StackStatus"]).endswith("_IN_PROGRESS"):
            return stack
        if time.monotonic() > deadline:
            raise DeployError(f"{stack_name}: still {stack['StackStatus']} after waiting for it")
        time.sleep(poll)


def _deployed_fingerprint(cfn: Any, stack_name: str) -> str | None:
    """The fingerprint in the stack's current template, if it has one."""
    try:
        body = cfn.get_template(StackName=stack_name)["TemplateBody"]
    except ClientError:
        return None
    template = body if isinstance(body, dict) else yaml_parse(str(body))
    metadata = (template.get("Metadata") or {}) if isinstance(template, dict) else {}
    entry = metadata.get(FINGERPRINT_KEY) if isinstance(metadata, dict) else None
    return str(entry.get("Fingerprint")) if isinstance(entry, dict) else None


def _outputs(stack: Mapping[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _lock_for(target: str | boto3.Session, region: str, stack_name: str) -> threading.Lock:
    key = (target if isinstance(target, str) else "session", region, stack_name)
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(key, threading.Lock())


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

    ``target`` is an endpoint URL (the emulator; fake credentials) or a boto3 Session. A stack
    that already runs this template with these parameters is left alone.
    """
    if not isinstance(target, str) and target.region_name:
        region = target.region_name
    with _lock_for(target, region, stack_name):
        return _deploy(
            target,
            Path(template_path),
            stack_name,
            parameters=parameters or {},
            region=region,
            timeout=timeout,
        )


def _deploy(
    target: str | boto3.Session,
    path: Path,
    stack_name: str,
    *,
    parameters: Mapping[str, str],
    region: str,
    timeout: float,
) -> dict[str, str]:
    s3, cfn, sts = _clients(target, region)
    poll = 0.5 if isinstance(target, str) else 5.0
    deadline = time.monotonic() + timeout
    account = sts.get_caller_identity()["Account"]
    bucket = f"{stack_name}-artifacts-{account}-{region}".lower()[:63]
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, **extra)

    template = _Packager(s3, bucket, stack_name, path.parent).package(yaml_parse(path.read_text()))
    fingerprint = hashlib.sha256(
        json.dumps(
            {"template": template, "parameters": dict(parameters), "capabilities": _CAPABILITIES},
            sort_keys=True,
        ).encode()
    ).hexdigest()
    metadata = template.get("Metadata")
    template["Metadata"] = {
        **(metadata if isinstance(metadata, dict) else {}),
        FINGERPRINT_KEY: {"Fingerprint": fingerprint},
    }
    body = json.dumps(template, indent=1)
    if len(body.encode()) > _TEMPLATE_BODY_LIMIT:
        body = json.dumps(template, separators=(",", ":"))
    args: dict[str, Any] = {
        "StackName": stack_name,
        "TemplateBody": body,
        "Capabilities": _CAPABILITIES,
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
    }
    stack = _settled(cfn, stack_name, deadline, poll)
    status = None if stack is None else str(stack["StackStatus"])
    if (
        status is not None
        and status.endswith("ROLLBACK_COMPLETE")
        and status.startswith(("CREATE", "ROLLBACK"))
    ):
        cfn.delete_stack(StackName=stack_name)
        _settled(cfn, stack_name, deadline, poll)
        stack = status = None
    if (
        stack is not None
        and status is not None
        and status.endswith("_COMPLETE")
        and not status.startswith("DELETE")
        and _deployed_fingerprint(cfn, stack_name) == fingerprint
    ):
        return _outputs(stack)
    if status is None or status == "DELETE_COMPLETE":
        try:
            cfn.create_stack(**args)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "AlreadyExistsException":
                raise
            # Created by someone else meanwhile: bring it to this template instead.
            _settled(cfn, stack_name, deadline, poll)
            _update(cfn, args)
    else:
        _update(cfn, args)
    while True:
        stack = _describe(cfn, stack_name)
        if stack is None:
            raise DeployError(f"{stack_name}: the stack disappeared while deploying")
        status = str(stack["StackStatus"])
        if status.endswith(_FAILED_SUFFIXES):
            raise DeployError(f"{stack_name}: {status} {stack.get('StackStatusReason', '')}")
        if status.endswith("_COMPLETE"):
            return _outputs(stack)
        if time.monotonic() > deadline:
            raise DeployError(f"{stack_name}: still {status} after {timeout:.0f} s")
        time.sleep(poll)


def _update(cfn: Any, args: Mapping[str, Any]) -> None:
    try:
        cfn.update_stack(**args)
    except ClientError as exc:
        if "No updates are to be performed" not in str(exc):
            raise
