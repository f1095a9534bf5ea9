"""A complete ecs-canary world in moto for handler-level flow tests.

Loaded by the flow test modules with ``pytest_plugins = ["flow_fixtures"]``. It builds REAL
(moto) resources: the DynamoDB table (key schema and the sparse ``Locks`` index read from
``template.yaml``), the state machine from ``statemachine/canary.asl.json`` (moto only records its
executions, it does not run them), an ECS cluster with two services, an ALB whose listener forwards
to two target groups, a hosted zone with two weighted records and the CloudWatch alarms of the
health gate. Pairs are registered with ``Store.put_pair`` and the handlers are called as Lambda
would call them, with the payloads the state machine builds (``$$.Execution.Id`` as ``execution``).

moto's ECS keeps one deployment per service whatever UpdateService does, so :meth:`Flow.new_release`
shapes the service's deployments in moto's backend the way ECS reports a new release (a new PRIMARY
with its task definition, the previous one ACTIVE while it drains). That is the AWS side of the
world; the product code only ever sees it through DescribeServices.

PYTEST_DONT_REWRITE (test modules import constants from here before pytest_plugins loads it).
"""

from __future__ import annotations

import functools
import importlib
import json
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import botocore.session
import moto  # noqa: F401 - registers moto's botocore hook before the shared session below exists
import pytest
import yaml
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from ecs_canary import aws
from ecs_canary.flow.identity import execution_arn_for
from ecs_canary.spec import ServicePairSpec, parse_spec
from ecs_canary.store import Deployment, Pair, Store
from moto.core.botocore_stubber import BotocoreStubber
from moto.ecs.models import ecs_backends

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
ASL = ROOT / "statemachine" / "canary.asl.json"

ACCOUNT = "123456789012"
REGION = "us-east-1"
TABLE = "ecs-canary-test"
PAIR = "web"
CLUSTER = "prod"
CLUSTER_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER}"
BLUE, GREEN = "web-blue", "web-green"
SET_IDS = {BLUE: "blue", GREEN: "green"}
RECORD = "api.example.com."
ALARMS = {BLUE: "web-blue-5xx", GREEN: "web-green-5xx"}  # each service's own (services[].alarms)
PAIR_ALARM = "web-latency"  # the pair's (health.alarms), judged whichever service is green
STEPS = (10, 50, 100)
BAKE = 60
PROPAGATION = {"alb": 0, "route53": 30}  # the records' TTL; an ALB applies changes at once
TOKEN = "watch-token-1"

ROUTERS = ("alb", "route53")


# ---- template-derived resources -------------------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """Reads a CloudFormation template, turning intrinsic tags (!Ref, !Sub...) into plain values."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node)}
    return {suffix: loader.construct_mapping(node)}  # type: ignore[arg-type]


_CfnLoader.add_multi_constructor("!", _intrinsic)


@functools.cache
def template() -> dict[str, Any]:
    return dict(yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader))


def table_schema() -> dict[str, Any]:
    """KeySchema, AttributeDefinitions, BillingMode and the indexes of the template's CanaryTable."""
    props = template()["Resources"]["CanaryTable"]["Properties"]
    keys = ("KeySchema", "AttributeDefinitions", "BillingMode", "GlobalSecondaryIndexes")
    return {k: props[k] for k in keys if k in props}


@functools.cache
def asl() -> dict[str, Any]:
    return dict(json.loads(ASL.read_text()))


def _branch_state(name: str) -> dict[str, Any]:
    for branch in asl()["States"]["Roll out"]["Branches"]:
        if name in branch["States"]:
            return dict(branch["States"][name])
    return dict(asl()["States"][name])


def result_keys(state: str) -> tuple[str, ...]:
    """The keys a state's ResultSelector keeps from its function's payload."""
    return tuple(key.removesuffix(".$") for key in _branch_state(state)["ResultSelector"])


def state_machine_definition() -> str:
    """The ASL with its DefinitionSubstitutions replaced: the integration ARN, (fake) Lambda ARNs."""
    props = template()["Resources"]["CanaryStateMachine"]["Properties"]
    text = ASL.read_text()
    for key in props["DefinitionSubstitutions"]:
        if key.endswith("FunctionArn"):
            value = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{key}"
        elif "Wait" in key:
            value = "arn:aws:states:::lambda:invoke.waitForTaskToken"
        else:
            value = "arn:aws:states:::lambda:invoke"
        text = text.replace("${" + key + "}", value)
    assert "${" not in text, "unsubstituted placeholder left in the state machine definition"
    return text


# ---- Lambda plumbing ----------------------------------------------------------------------------


@dataclass
class FakeContext:
    """The parts of ``LambdaContext`` Powertools reads."""

    function_name: str = "ecs-canary-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ecs-canary-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    log_group_name: str = "/aws/lambda/ecs-canary-test"
    log_stream_name: str = "stream"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


HANDLERS = (
    "filter",
    "prepare",
    "steady",
    "listen",
    "advance",
    "promote",
    "rollback",
    "rollback_failed",
    "reconcile",
    "interrupt",
    "command",
    "sweeper",
)


def catch(error: str, message: str | None = None) -> dict[str, Any]:
    """What a Catch stores at ``$.error`` for a Lambda error: its name and its JSON error payload."""
    if message is None:
        return {"Error": error}
    return {"Error": error, "Cause": json.dumps({"errorMessage": message, "errorType": error})}


# ---- Step Functions task tokens -------------------------------------------------------------------


@dataclass
class TaskTokens:
    """Every SendTaskSuccess/SendTaskFailure the product makes, answered as Step Functions would.

    moto's Step Functions (which records executions without running them) accepts any token. A
    token in ``gone`` is answered with the error code it maps to, as real Step Functions answers
    once the waiting task has ended (TaskDoesNotExist, TaskTimedOut, InvalidToken), or with any
    other error a test needs (AccessDeniedException). Answered calls carry ``answered``.
    """

    calls: list[dict[str, Any]] = field(default_factory=list)
    gone: dict[str, str] = field(default_factory=dict)

    def failures(self, token: str | None = None) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["op"] == "failure" and (token is None or c["token"] == token)]

    def successes(self, token: str | None = None) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["op"] == "success" and (token is None or c["token"] == token)]


def _spy_task_tokens(monkeypatch: pytest.MonkeyPatch, sfn: Any) -> TaskTokens:
    tokens = TaskTokens()
    real_failure, real_success = sfn.send_task_failure, sfn.send_task_success

    def answer(token: str, operation: str) -> None:
        if token in tokens.gone:
            tokens.calls[-1]["answered"] = tokens.gone[token]
            code = tokens.gone[token]
            raise ClientError({"Error": {"Code": code, "Message": f"{code}: {token}"}}, operation)

    def send_task_failure(**kwargs: Any) -> Any:
        tokens.calls.append({"op": "failure", "token": kwargs["taskToken"], **kwargs})
        answer(kwargs["taskToken"], "SendTaskFailure")
        return real_failure(**kwargs)

    def send_task_success(**kwargs: Any) -> Any:
        tokens.calls.append(
            {"op": "success", "token": kwargs["taskToken"], "output": json.loads(kwargs["output"])}
        )
        answer(kwargs["taskToken"], "SendTaskSuccess")
        return real_success(**kwargs)

    monkeypatch.setattr(sfn, "send_task_failure", send_task_failure)
    monkeypatch.setattr(sfn, "send_task_success", send_task_success)
    return tokens


# ---- one deployment's execution -------------------------------------------------------------------


@dataclass
class Run:
    """One execution of the state machine, whose states the tests invoke one by one.

    ``execution`` is the execution's ARN (``$$.Execution.Id``), which the deployment record names as
    its owner; pass another one to play a copy of the execution.
    """

    flow: Flow
    deployment_id: str
    input: dict[str, Any]
    execution: str
    last: dict[str, Any] = field(default_factory=dict)
    """The last full payload a state's function returned (before its ResultSelector)."""

    # -- the states ------------------------------------------------------------------------------

    def prepare(self, *, execution: str | None = None) -> dict[str, Any]:
        """ "Load spec and snapshot traffic" (OutputPath ``$.Payload``: its output is the new state)."""
        out = dict(
            self.flow.invoke("prepare", {"input": self.input, "execution": execution or self.execution})
        )
        self.last = out
        return out

    def steady(self, state: Mapping[str, Any], *, execution: str | None = None) -> dict[str, Any]:
        """ "Wait for green to be steady": the new state (ResultSelector into ``$.steady``)."""
        payload = {
            "deployment": state["deployment"],
            "steady": state["steady"],
            "execution": execution or self.execution,
        }
        out = dict(self.flow.invoke("steady", payload))
        self.last = out
        keys = result_keys("Wait for green to be steady")
        assert set(keys) <= set(out), out
        return {**state, "steady": {k: out[k] for k in keys}}

    def listen(
        self, state: Mapping[str, Any], token: str = TOKEN, *, execution: str | None = None
    ) -> dict[str, Any]:
        """ "Watch for alarms, crashes, new releases and operators": stores the task token."""
        payload = {
            "deployment": state["deployment"],
            "token": token,
            "execution": execution or self.execution,
        }
        out = dict(self.flow.invoke("listen", payload))
        self.last = out
        return out

    def advance(self, state: Mapping[str, Any], *, execution: str | None = None) -> dict[str, Any]:
        """ "Check health and shift traffic": the new state (ResultSelector into ``$.cursor``)."""
        payload = {
            "deployment": state["deployment"],
            "cursor": state["cursor"],
            "execution": execution or self.execution,
        }
        out = dict(self.flow.invoke("advance", payload))
        self.last = out
        keys = result_keys("Check health and shift traffic")
        assert set(keys) <= set(out), out
        return {**state, "cursor": {k: out[k] for k in keys}}

    def reenter(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """ "Act on the operator's command": ``$.cursor.reentered`` set, then "Roll out" again."""
        return {**state, "cursor": {**state["cursor"], "reentered": True}}

    def promote(self, state: Mapping[str, Any], *, execution: str | None = None) -> dict[str, Any]:
        payload = {
            "deployment": state["deployment"],
            "cursor": state["cursor"],
            "execution": execution or self.execution,
        }
        out = dict(self.flow.invoke("promote", payload))
        self.last = out
        assert set(result_keys("Promote green")) <= set(out), out
        return out

    def rollback(
        self, error: Mapping[str, Any] | None = None, *, execution: str | None = None
    ) -> dict[str, Any]:
        """ "Roll back" with the state's pair and deployment id and what the Catch stored."""
        payload = {
            "pair": self.input["pair"],
            "deployment_id": self.deployment_id,
            "error": None if error is None else dict(error),
            "execution": execution or self.execution,
        }
        out = dict(self.flow.invoke("rollback", payload))
        self.last = out
        assert set(result_keys("Roll back")) <= set(out), out
        return out

    def rollback_failed(
        self,
        error: Mapping[str, Any] | None,
        rollback_error: Mapping[str, Any] | None,
        *,
        execution: str | None = None,
    ) -> dict[str, Any]:
        payload = {
            "pair": self.input["pair"],
            "deployment_id": self.deployment_id,
            "error": None if error is None else dict(error),
            "rollback_error": None if rollback_error is None else dict(rollback_error),
            "execution": execution or self.execution,
        }
        out = dict(self.flow.invoke("rollback_failed", payload))
        self.last = out
        return out

    def rolling(self) -> dict[str, Any]:
        """Prepare, pass the steady check and arm the watch: the state the first tick gets."""
        state = self.prepare()
        state = self.steady(state)
        assert state["steady"]["steady"] is True, state["steady"]
        self.listen(state)
        return state

    def to_step(self, state: dict[str, Any], step_index: int) -> dict[str, Any]:
        """Tick until the record's ramp is at ``step_index``."""
        for _ in range(10):
            if state["cursor"]["step_index"] >= step_index:
                return state
            state = self.advance(state)
        raise AssertionError(f"never reached step {step_index}: {state['cursor']}")

    # -- the record ------------------------------------------------------------------------------

    def record(self) -> Deployment:
        return self.flow.store.get_deployment(self.input["pair"], self.deployment_id)

    def item(self) -> dict[str, Any]:
        got = self.flow.item(f"DEPLOYMENT#{self.deployment_id}", self.input["pair"])
        assert got is not None
        return got

    def events(self) -> list[str]:
        return [str(h["event"]) for h in self.record().history]

    def backdate(self, seconds: int) -> None:
        """Time passes: the record's last shift (and its bake) happened ``seconds`` earlier."""
        record = self.record()
        values: dict[str, Any] = {}
        sets: list[str] = []
        for name in ("shifted_at", "bake_until"):
            current = getattr(record, name)
            if current is not None:
                moved = datetime.fromisoformat(current.replace("Z", "+00:00")) - timedelta(seconds=seconds)
                values[f":{name}"] = _iso(moved)
                sets.append(f"{name} = :{name}")
        assert sets, "nothing to backdate: no shift recorded"
        self.flow.update_record(self.deployment_id, "SET " + ", ".join(sets), values)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---- the world -----------------------------------------------------------------------------------


@dataclass
class Flow:
    store: Store
    ddb: Any
    sfn: Any
    ecs: Any
    elbv2: Any
    route53: Any
    cloudwatch: Any
    state_machine_arn: str
    load_balancer_arn: str
    listener_arn: str
    target_groups: dict[str, str]
    zone_id: str
    task_definitions: dict[str, str]
    tokens: TaskTokens
    handlers: dict[str, ModuleType] = field(default_factory=dict)
    router: str = "alb"
    release_task_definitions: dict[str, str] = field(default_factory=dict)
    """The task definition of every ECS deployment ``new_release`` made (its tasks run it)."""
    _tasks: int = 0
    _releases: int = 0

    # -- invoking handlers ----------------------------------------------------------------------

    def invoke(self, name: str, event: Any) -> Any:
        return self.handlers[name].handler(event, FakeContext(aws_request_id=f"req-{name}"))

    def execution_arn(self, deployment_id: str) -> str:
        return execution_arn_for(self.state_machine_arn, deployment_id)

    # -- registration -----------------------------------------------------------------------------

    def spec(
        self,
        router: str = "alb",
        *,
        steps: tuple[int, ...] = STEPS,
        bake_seconds: int = BAKE,
        alarms: tuple[str, ...] = (PAIR_ALARM,),
        service_alarms: bool = True,
        metrics: Mapping[str, Any] | None = None,
        max_inconclusive: int = 3,
        max_stopped_tasks: int | None = None,
        weight_total: int = 100,
        on_drift: str | None = None,
        on_new_release: str | None = None,
        name: str = PAIR,
    ) -> ServicePairSpec:
        services: list[dict[str, Any]] = [
            {"name": svc, "target_group_arn": self.target_groups[svc]} for svc in (BLUE, GREEN)
        ]
        if service_alarms:
            for svc in services:
                svc["alarms"] = [ALARMS[svc["name"]]]
        router_spec: dict[str, Any]
        if router == "alb":
            router_spec = {"type": "alb", "listener_arn": self.listener_arn}
        else:
            router_spec = {"type": "route53", "hosted_zone_id": self.zone_id, "record_name": RECORD}
            for svc in services:
                svc["set_identifier"] = SET_IDS[svc["name"]]
        health: dict[str, Any] = {"alarms": list(alarms), "max_inconclusive": max_inconclusive}
        if metrics is not None:
            health["metrics"] = dict(metrics)
        if max_stopped_tasks is not None:
            health["max_stopped_tasks"] = max_stopped_tasks
        doc: dict[str, Any] = {
            "name": name,
            "cluster": CLUSTER,
            "services": services,
            "router": router_spec,
            "plan": {"type": "steps", "steps": list(steps), "bake_seconds": bake_seconds},
            "health": health,
            "weight_total": weight_total,
        }
        if on_drift is not None:
            doc["on_drift"] = on_drift
        if on_new_release is not None:
            doc["on_new_release"] = on_new_release
        return parse_spec(doc)

    def register(
        self,
        router: str = "alb",
        *,
        snapshot: Mapping[str, int] | None = None,
        live: str = BLUE,
        cluster_arn: str | None = None,
        **spec_kwargs: Any,
    ) -> Pair:
        """Register the pair with ``live`` live, green's current ECS deployment as its baseline.

        ``snapshot`` sets the router's weights first (default: all on ``live``, 100/0).
        """
        self.router = router
        idle = GREEN if live == BLUE else BLUE
        self.set_weights(snapshot if snapshot is not None else {live: 100, idle: 0})
        return self.store.put_pair(
            self.spec(router, **spec_kwargs),
            live_service=live,
            idle_baseline=self.deployment_of(idle),
            cluster_arn=cluster_arn,
        )

    # -- ECS ----------------------------------------------------------------------------------------

    def _service(self, service: str) -> Any:
        """moto's model of the ECS service (to shape its deployments as ECS reports them)."""
        return ecs_backends[ACCOUNT][REGION].services[f"{CLUSTER}:{service}"]

    def deployment_of(self, service: str) -> str:
        described = self.ecs.describe_services(cluster=CLUSTER, services=[service])["services"][0]
        return str(next(d["id"] for d in described["deployments"] if d["status"] == "PRIMARY"))

    def deployments(self, service: str) -> list[tuple[str, str, str]]:
        """(id, status, task definition) of the service's deployments as DescribeServices reports them."""
        described = self.ecs.describe_services(cluster=CLUSTER, services=[service])["services"][0]
        return [(d["id"], d["status"], d["taskDefinition"]) for d in described["deployments"]]

    def new_release(self, service: str, *, keep_previous: bool = False) -> str:
        """Roll ``service`` to a new task definition revision; returns the new ECS deployment id.

        ECS starts a new ``ecs-svc/<n>`` PRIMARY deployment on UpdateService and keeps the previous
        one ACTIVE while its tasks drain (``keep_previous``); its tasks carry the id as ``startedBy``.
        """
        revision = self.ecs.register_task_definition(
            family=service,
            containerDefinitions=[{"name": "app", "image": f"nginx:{self._tasks}", "memory": 128}],
        )["taskDefinition"]["taskDefinitionArn"]
        self.task_definitions[service] = revision
        self.ecs.update_service(cluster=CLUSTER, service=service, taskDefinition=revision)
        self._releases += 1
        release = f"ecs-svc/{9_000_000_000_000_000_000 + self._releases}"
        self.release_task_definitions[release] = revision
        model = self._service(service)
        template_deployment = dict(model.deployments[0])
        previous = [{**d, "status": "ACTIVE"} for d in model.deployments] if keep_previous else []
        model.deployments = [
            {
                **template_deployment,
                "id": release,
                "taskDefinition": revision,
                "status": "PRIMARY",
                "rolloutState": "COMPLETED",
                "rolloutStateReason": f"ECS deployment {release} completed.",
            },
            *previous,
        ]
        return release

    def set_primary(self, service: str, deployment_id: str, task_definition: str) -> None:
        """ECS rolled ``service`` to (or back to) ``deployment_id`` running ``task_definition``."""
        model = self._service(service)
        model.deployments = [
            {
                **dict(model.deployments[0]),
                "id": deployment_id,
                "taskDefinition": task_definition,
                "status": "PRIMARY",
                "rolloutState": "COMPLETED",
            }
        ]

    def drop_deployments(self, service: str) -> None:
        """The service reports no deployment at all (e.g. it is being replaced)."""
        self._service(service).deployments = []

    def task_event(
        self,
        service: str | None,
        started_by: str | None,
        *,
        task_definition: str | None = None,
        last_status: str = "RUNNING",
        desired_status: str | None = None,
        task_id: str | None = None,
        cluster: str | None = None,
        stop_code: str | None = None,
        stopped_reason: str | None = None,
        exit_code: int | None = None,
    ) -> dict[str, Any]:
        """An EventBridge "ECS Task State Change" event as the rules deliver it."""
        self._tasks += 1
        task_id = task_id or f"{self._tasks:032x}"
        cluster_arn = cluster or CLUSTER_ARN
        container: dict[str, Any] = {"name": "app", "lastStatus": last_status}
        if exit_code is not None:
            container["exitCode"] = exit_code
        detail: dict[str, Any] = {
            "clusterArn": cluster_arn,
            "taskArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{CLUSTER}/{task_id}",
            "taskDefinitionArn": task_definition
            or self.release_task_definitions.get(started_by or "")
            or self.task_definitions.get(
                service or "", f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/x:1"
            ),
            "lastStatus": last_status,
            "desiredStatus": desired_status or ("STOPPED" if last_status == "STOPPED" else "RUNNING"),
            "launchType": "FARGATE",
            "containers": [container],
        }
        if started_by is not None:
            detail["startedBy"] = started_by
        if stop_code is not None:
            detail["stopCode"] = stop_code
        if stopped_reason is not None:
            detail["stoppedReason"] = stopped_reason
        detail["group"] = f"service:{service}" if service is not None else "family:batch"
        return eventbridge_event("aws.ecs", "ECS Task State Change", detail, resources=[detail["taskArn"]])

    def alarm_event(self, name: str, state: str, reason: str = "Threshold Crossed") -> dict[str, Any]:
        """An EventBridge "CloudWatch Alarm State Change" event."""
        detail = {
            "alarmName": name,
            "state": {"value": state, "reason": reason, "timestamp": "2026-01-01T00:00:00.000+0000"},
            "previousState": {"value": "OK", "reason": "quiet", "timestamp": "2026-01-01T00:00:00.000+0000"},
            "configuration": {"metrics": []},
        }
        arn = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"
        return eventbridge_event("aws.cloudwatch", "CloudWatch Alarm State Change", detail, resources=[arn])

    def command(self, command: str, *, by: str = "arn:aws:iam::123456789012:user/jane", **extra: Any) -> Any:
        """The command function as the CLI invokes it."""
        return self.invoke("command", {"pair": PAIR, "command": command, "by": by, **extra})

    # -- traffic -------------------------------------------------------------------------------------

    def set_weights(self, weights: Mapping[str, int], router: str | None = None) -> None:
        """Write weights straight through the AWS API (the "someone else moved traffic" lever)."""
        if (router or self.router) == "alb":
            self.elbv2.modify_listener(
                ListenerArn=self.listener_arn,
                DefaultActions=[_forward({self.target_groups[s]: w for s, w in weights.items()})],
            )
        else:
            self.route53.change_resource_record_sets(
                HostedZoneId=self.zone_id,
                ChangeBatch={
                    "Changes": [
                        {"Action": "UPSERT", "ResourceRecordSet": _record(svc, weight)}
                        for svc, weight in weights.items()
                    ]
                },
            )

    def weights(self, router: str | None = None) -> dict[str, int]:
        """Weights read back straight from the listener or the records (not through the router code)."""
        if (router or self.router) == "alb":
            (action,) = self.elbv2.describe_listeners(ListenerArns=[self.listener_arn])["Listeners"][0][
                "DefaultActions"
            ]
            service_of = {arn: svc for svc, arn in self.target_groups.items()}
            return {
                service_of[g["TargetGroupArn"]]: int(g["Weight"])
                for g in action["ForwardConfig"]["TargetGroups"]
            }
        service_of = {sid: svc for svc, sid in SET_IDS.items()}
        records = self.route53.list_resource_record_sets(HostedZoneId=self.zone_id)["ResourceRecordSets"]
        return {
            service_of[r["SetIdentifier"]]: int(r["Weight"])
            for r in records
            if r["Name"] == RECORD and r.get("SetIdentifier") in service_of
        }

    # -- health ---------------------------------------------------------------------------------------

    def alarm(self, state: str, name: str = ALARMS[GREEN]) -> None:
        self.cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason="test")

    # -- state ------------------------------------------------------------------------------------------

    def executions(self) -> list[dict[str, Any]]:
        return list(self.sfn.list_executions(stateMachineArn=self.state_machine_arn)["executions"])

    def execution_input(self, execution_arn: str) -> dict[str, Any]:
        return dict(json.loads(self.sfn.describe_execution(executionArn=execution_arn)["input"]))

    def items(self) -> list[dict[str, Any]]:
        """Every table item, plain Python values, sorted by key."""
        des = TypeDeserializer()
        raw = self.ddb.scan(TableName=TABLE)["Items"]
        out = [{k: des.deserialize(v) for k, v in item.items()} for item in raw]
        return sorted(out, key=lambda i: (i["pk"], i["sk"]))

    def records(self) -> list[dict[str, Any]]:
        return [i for i in self.items() if str(i["sk"]).startswith("DEPLOYMENT#")]

    def item(self, sk: str, pair: str = PAIR) -> dict[str, Any] | None:
        des = TypeDeserializer()
        got = self.ddb.get_item(TableName=TABLE, Key={"pk": {"S": f"PAIR#{pair}"}, "sk": {"S": sk}})
        return None if "Item" not in got else {k: des.deserialize(v) for k, v in got["Item"].items()}

    def lock(self, pair: str = PAIR) -> str | None:
        got = self.item("LOCK", pair)
        return None if got is None else str(got["deployment_id"])

    def update_record(
        self, deployment_id: str, expression: str, values: Mapping[str, Any], pair: str = PAIR
    ) -> None:
        """Change a record behind the product's back (time passing, or a state set up for a test)."""
        ser = TypeSerializer()
        self.ddb.update_item(
            TableName=TABLE,
            Key={"pk": {"S": f"PAIR#{pair}"}, "sk": {"S": f"DEPLOYMENT#{deployment_id}"}},
            UpdateExpression=expression,
            ExpressionAttributeValues={k: ser.serialize(v) for k, v in values.items()},
        )

    def expire_lock(self, pair: str = PAIR, seconds_ago: int = 60) -> None:
        """Time passes: the lock's lease ran out ``seconds_ago``."""
        past = _iso(datetime.now(UTC) - timedelta(seconds=seconds_ago))
        self.ddb.update_item(
            TableName=TABLE,
            Key={"pk": {"S": f"PAIR#{pair}"}, "sk": {"S": "LOCK"}},
            UpdateExpression="SET lease_until = :past",
            ExpressionAttributeValues={":past": {"S": past}},
        )

    # -- driving the flow -------------------------------------------------------------------------------

    def start(self, service: str = GREEN, *, release: str | None = None) -> Run:
        """Release ``service`` (or take ``release``), run the filter; returns the run it started."""
        release = release or self.new_release(service)
        result = self.invoke("filter", self.task_event(service, release))
        assert result["action"] == "started", result
        deployment_id = str(result["deployment_id"])
        arn = self.execution_arn(deployment_id)
        (execution,) = [e for e in self.executions() if e["name"] == deployment_id]
        assert execution["executionArn"] == arn
        return Run(self, deployment_id, self.execution_input(arn), arn)

    def rolling(self, service: str = GREEN) -> tuple[Run, dict[str, Any]]:
        """``start`` plus prepare, steady and the armed watch: ready for the first tick."""
        run = self.start(service)
        return run, run.rolling()

    def execution_status_event(
        self,
        status: str,
        *,
        execution_input: Mapping[str, Any] | str | None,
        name: str,
        error: str | None = None,
        cause: str | None = None,
        state_machine_arn: str | None = None,
    ) -> dict[str, Any]:
        """An EventBridge "Step Functions Execution Status Change" event."""
        sm = state_machine_arn or self.state_machine_arn
        execution_arn = sm.replace(":stateMachine:", ":execution:") + f":{name}"
        raw_input = (
            execution_input
            if execution_input is None or isinstance(execution_input, str)
            else json.dumps(execution_input)
        )
        detail = {
            "executionArn": execution_arn,
            "stateMachineArn": sm,
            "name": name,
            "status": status,
            "startDate": 1_700_000_000_000,
            "stopDate": 1_700_000_100_000,
            "input": raw_input,
            "output": None,
            "inputDetails": {"included": True},
            "error": error,
            "cause": cause,
        }
        return eventbridge_event(
            "aws.states", "Step Functions Execution Status Change", detail, resources=[execution_arn]
        )


def eventbridge_event(
    source: str, detail_type: str, detail: Any, *, resources: list[str] | None = None
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": f"{random.getrandbits(128):032x}",
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": "2026-01-01T00:00:00Z",
        "region": REGION,
        "resources": resources or [],
        "detail": detail,
    }


def _forward(weights: Mapping[str, int]) -> dict[str, Any]:
    return {
        "Type": "forward",
        "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": a, "Weight": w} for a, w in weights.items()]},
    }


def _record(service: str, weight: int) -> dict[str, Any]:
    return {
        "Name": RECORD,
        "Type": "A",
        "SetIdentifier": SET_IDS[service],
        "Weight": weight,
        "TTL": 30,
        "ResourceRecords": [{"Value": "10.0.0.1" if service == BLUE else "10.0.0.2"}],
    }


@functools.cache
def _session() -> boto3.session.Session:
    """One session for the whole run: service models and endpoints are parsed once.

    A fresh session per client (what ``aws.client`` does, right for Lambda) costs a few hundred
    milliseconds of JSON parsing per client, which would dominate these tests. moto intercepts
    requests when they are sent, so clients outlive the ``mock_aws`` context they were made in.
    """
    return boto3.session.Session(botocore_session=botocore.session.get_session())


@functools.cache
def _client(service_name: str, region_name: str | None = REGION, product: bool = False) -> Any:
    config = aws.CLIENT_CONFIG if product else None
    make: Any = _session().client  # typed per service literal; names here are plain strings
    return make(service_name, region_name=region_name, config=config)


def _product_client(service_name: str, region_name: str | None, endpoints: Any, profile: Any) -> Any:
    """Stands in for ``aws._build``: same cache key inputs, region and CLIENT_CONFIG, shared session."""
    del endpoints, profile
    return _client(service_name, region_name, product=True)


_product_client.cache_clear = lambda: None  # type: ignore[attr-defined]


def _fast_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aws, "_build", _product_client)


_MOTO_LOCK = threading.RLock()
_process_request = BotocoreStubber.process_request


def _atomic_process_request(self: BotocoreStubber, request: Any) -> Any:
    with _MOTO_LOCK:
        return _process_request(self, request)


def _atomic_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Serve one request at a time, like the real services' atomic writes.

    moto's in-process backends are not thread-safe (two threads' conditional writes can both pass,
    dicts change size mid-iteration). Every AWS call of ours is atomic in AWS; what tests with
    threads check is how the calls of concurrent handlers interleave, and that stays free.
    """
    monkeypatch.setattr(BotocoreStubber, "process_request", _atomic_process_request)


def _load_handlers(monkeypatch: pytest.MonkeyPatch) -> dict[str, ModuleType]:
    modules: dict[str, ModuleType] = {}
    for name in HANDLERS:
        module = importlib.import_module(f"ecs_canary.handlers.{name}")
        metrics = getattr(module, "metrics", None)
        # Powertools reads the namespace when the module is first imported; if another test
        # imported the handlers before the environment was set, give them one now.
        provider = getattr(metrics, "provider", None)
        if provider is not None and getattr(provider, "namespace", None) is None:
            monkeypatch.setattr(provider, "namespace", "EcsCanaryTest")
        modules[name] = module
    return modules


def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TABLE_NAME", TABLE)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "ecs-canary")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "EcsCanaryTest")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    for name in ("LOCK_LEASE_SECONDS", "SHIFT_LEASE_SECONDS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def flow(mocked_aws: None, monkeypatch: pytest.MonkeyPatch) -> Flow:
    """Every AWS resource of one pair, the environment the functions get, and the handlers."""
    _environment(monkeypatch)
    _fast_clients(monkeypatch)
    _atomic_requests(monkeypatch)

    ddb = _client("dynamodb")
    ddb.create_table(TableName=TABLE, **table_schema())

    sfn = _client("stepfunctions")
    state_machine_arn = sfn.create_state_machine(
        name="CanaryStateMachine",
        definition=state_machine_definition(),
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/canary-state-machine",
    )["stateMachineArn"]
    monkeypatch.setenv("STATE_MACHINE_ARN", state_machine_arn)

    ec2 = _client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{az}")["Subnet"][
            "SubnetId"
        ]
        for i, az in ((1, "a"), (2, "b"))
    ]
    elbv2 = _client("elbv2")
    lb = elbv2.create_load_balancer(Name="web", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
    target_groups = {
        svc: elbv2.create_target_group(Name=svc, Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip")[
            "TargetGroups"
        ][0]["TargetGroupArn"]
        for svc in (BLUE, GREEN)
    }
    for i, svc in enumerate((BLUE, GREEN), start=1):
        elbv2.register_targets(
            TargetGroupArn=target_groups[svc],
            Targets=[{"Id": f"10.0.{i}.{n}", "Port": 80} for n in (10, 11)],
        )
    listener = elbv2.create_listener(
        LoadBalancerArn=lb,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[_forward({target_groups[BLUE]: 100, target_groups[GREEN]: 0})],
    )["Listeners"][0]["ListenerArn"]

    route53 = _client("route53")
    zone_id = route53.create_hosted_zone(Name="example.com", CallerReference="zone")["HostedZone"]["Id"]
    zone_id = zone_id.removeprefix("/hostedzone/")
    route53.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={
            "Changes": [
                {"Action": "CREATE", "ResourceRecordSet": _record(BLUE, 100)},
                {"Action": "CREATE", "ResourceRecordSet": _record(GREEN, 0)},
            ]
        },
    )

    ecs = _client("ecs")
    ecs.create_cluster(clusterName=CLUSTER)
    task_definitions: dict[str, str] = {}
    # Both services run all their tasks (moto reports this many as running), so green is steady.
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "2")
    for svc in (BLUE, GREEN):
        task_definitions[svc] = ecs.register_task_definition(
            family=svc, containerDefinitions=[{"name": "app", "image": "nginx:1", "memory": 128}]
        )["taskDefinition"]["taskDefinitionArn"]
        ecs.create_service(
            cluster=CLUSTER, serviceName=svc, taskDefinition=task_definitions[svc], desiredCount=2
        )

    cloudwatch = _client("cloudwatch")
    for name in (*ALARMS.values(), PAIR_ALARM):
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            Namespace="AWS/ApplicationELB",
            MetricName="HTTPCode_Target_5XX_Count",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=5,
            ComparisonOperator="GreaterThanThreshold",
        )
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="quiet")

    return Flow(
        store=Store(TABLE),
        ddb=ddb,
        sfn=sfn,
        ecs=ecs,
        elbv2=elbv2,
        route53=route53,
        cloudwatch=cloudwatch,
        state_machine_arn=state_machine_arn,
        load_balancer_arn=lb,
        listener_arn=listener,
        target_groups=target_groups,
        zone_id=zone_id,
        task_definitions=task_definitions,
        tokens=_spy_task_tokens(monkeypatch, aws.client("stepfunctions")),
        handlers=_load_handlers(monkeypatch),
    )


@pytest.fixture
def shuffled() -> Callable[[list[Any]], list[Any]]:
    """A seeded shuffle, so an ordering that fails can be replayed."""
    rng = random.Random(20240601)

    def shuffle(items: list[Any]) -> list[Any]:
        out = list(items)
        rng.shuffle(out)
        return out

    return shuffle


class VirtualClock:
    """A monotonic clock whose sleeps pass at once (for bounded in-process waits of the product)."""

    def __init__(self, on_sleep: Callable[[int], None] | None = None) -> None:
        self.now = 1_000.0
        self.sleeps = 0
        self.on_sleep = on_sleep

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep(self.sleeps)


def fake_spec(
    name: str = PAIR,
    services: tuple[str, str] = (BLUE, GREEN),
    cluster: str = CLUSTER,
    *,
    alarms: tuple[str, ...] = (PAIR_ALARM,),
    service_alarms: Mapping[str, tuple[str, ...]] | None = None,
) -> ServicePairSpec:
    """A valid ALB spec whose ARNs point nowhere (for tests of the table alone)."""
    prefix = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}"
    services_doc: list[dict[str, Any]] = []
    for i, svc in enumerate(services, start=1):
        doc: dict[str, Any] = {"name": svc, "target_group_arn": f"{prefix}:targetgroup/{svc[:20]}/{i:016x}"}
        if service_alarms and svc in service_alarms:
            doc["alarms"] = list(service_alarms[svc])
        services_doc.append(doc)
    return parse_spec(
        {
            "name": name,
            "cluster": cluster,
            "services": services_doc,
            "router": {"type": "alb", "listener_arn": f"{prefix}:listener/app/{name}/{1:016x}/{2:016x}"},
            "plan": "Canary10Percent5Minutes",
            "health": {"alarms": list(alarms)},
        }
    )


@pytest.fixture
def table(mocked_aws: None, monkeypatch: pytest.MonkeyPatch) -> Store:
    """Only the DynamoDB table (template key schema and indexes), for Store tests."""
    monkeypatch.setenv("TABLE_NAME", TABLE)
    _fast_clients(monkeypatch)
    _atomic_requests(monkeypatch)
    _client("dynamodb").create_table(TableName=TABLE, **table_schema())
    return Store()
