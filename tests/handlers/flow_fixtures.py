"""A complete ecs-canary world in moto for handler-level flow tests.

Loaded by the flow test modules with ``pytest_plugins = ["flow_fixtures"]``. It builds REAL
(moto) resources: the DynamoDB table with the key schema read from ``template.yaml``, the state
machine from ``statemachine/canary.asl.json`` (moto only records its executions), an ECS cluster
with two services, an ALB whose listener forwards to two target groups, a hosted zone with two
weighted records and the CloudWatch alarms of the health gate. Pairs are registered with
``Store.put_pair`` and the handlers are called as Lambda would call them.

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
from boto3.dynamodb.types import TypeDeserializer
from ecs_canary import aws
from ecs_canary.spec import ServicePairSpec, parse_spec
from ecs_canary.store import Pair, Store
from moto.core.botocore_stubber import BotocoreStubber

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
ASL = ROOT / "statemachine" / "canary.asl.json"

ACCOUNT = "123456789012"
REGION = "us-east-1"
TABLE = "ecs-canary-test"
PAIR = "web"
CLUSTER = "prod"
BLUE, GREEN = "web-blue", "web-green"
SET_IDS = {BLUE: "blue", GREEN: "green"}
RECORD = "api.example.com."
ALARMS = {BLUE: "web-blue-5xx", GREEN: "web-green-5xx"}  # each service's own (services[].alarms)
PAIR_ALARM = "web-latency"  # the pair's (health.alarms), judged whichever service is green
STEPS = (10, 50, 100)

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
    """KeySchema, AttributeDefinitions and BillingMode of the template's CanaryTable."""
    props = template()["Resources"]["CanaryTable"]["Properties"]
    return {k: props[k] for k in ("KeySchema", "AttributeDefinitions", "BillingMode")}


def state_machine_definition() -> str:
    """The ASL with its DefinitionSubstitutions replaced: the integration ARN, (fake) Lambda ARNs."""
    props = template()["Resources"]["CanaryStateMachine"]["Properties"]
    text = ASL.read_text()
    for key in props["DefinitionSubstitutions"]:
        value = (
            f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{key}"
            if key.endswith("FunctionArn")
            else "arn:aws:states:::lambda:invoke"
        )
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


HANDLERS = ("filter", "prepare", "steady", "advance", "promote", "rollback", "reconcile")


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
    handlers: dict[str, ModuleType] = field(default_factory=dict)
    router: str = "alb"
    _tasks: int = 0
    _releases: int = 0

    # -- invoking handlers ----------------------------------------------------------------------

    def invoke(self, name: str, event: Any) -> Any:
        return self.handlers[name].handler(event, FakeContext(aws_request_id=f"req-{name}"))

    # -- registration -----------------------------------------------------------------------------

    def spec(
        self,
        router: str = "alb",
        *,
        steps: tuple[int, ...] = STEPS,
        alarms: tuple[str, ...] = (PAIR_ALARM,),
        service_alarms: bool = True,
        metrics: Mapping[str, Any] | None = None,
        max_inconclusive: int = 3,
        weight_total: int = 100,
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
        return parse_spec(
            {
                "name": name,
                "cluster": CLUSTER,
                "services": services,
                "router": router_spec,
                "plan": {"type": "steps", "steps": list(steps), "bake_seconds": 60},
                "health": health,
                "weight_total": weight_total,
            }
        )

    def register(
        self,
        router: str = "alb",
        *,
        snapshot: Mapping[str, int] | None = None,
        live: str = BLUE,
        **spec_kwargs: Any,
    ) -> Pair:
        """Register the pair with ``live`` live, green's current ECS deployment as its baseline.

        ``snapshot`` sets the router's weights first (default: all on ``live``, 100/0).
        """
        self.router = router
        idle = GREEN if live == BLUE else BLUE
        self.set_weights(snapshot if snapshot is not None else {live: 100, idle: 0})
        return self.store.put_pair(
            self.spec(router, **spec_kwargs), live_service=live, idle_baseline=self.deployment_of(idle)
        )

    # -- ECS ----------------------------------------------------------------------------------------

    def deployment_of(self, service: str) -> str:
        described = self.ecs.describe_services(cluster=CLUSTER, services=[service])["services"][0]
        return str(next(d["id"] for d in described["deployments"] if d["status"] == "PRIMARY"))

    def new_release(self, service: str) -> str:
        """Roll ``service`` to a new task definition revision; returns the new ECS deployment id.

        Real ECS starts a new ``ecs-svc/<n>`` deployment on UpdateService; moto keeps the old
        one, so the id is minted here (it is what the release's tasks carry as ``startedBy``).
        """
        revision = self.ecs.register_task_definition(
            family=service,
            containerDefinitions=[{"name": "app", "image": f"nginx:{self._tasks}", "memory": 128}],
        )["taskDefinition"]["taskDefinitionArn"]
        self.task_definitions[service] = revision
        self.ecs.update_service(cluster=CLUSTER, service=service, taskDefinition=revision)
        self._releases += 1
        return f"ecs-svc/{9_000_000_000_000_000_000 + self._releases}"

    def task_event(
        self,
        service: str | None,
        started_by: str,
        *,
        task_definition: str | None = None,
        last_status: str = "RUNNING",
        task_id: str | None = None,
        cluster: str | None = None,
    ) -> dict[str, Any]:
        """An EventBridge "ECS Task State Change" event as the filter's rule delivers it."""
        self._tasks += 1
        task_id = task_id or f"{self._tasks:032x}"
        cluster_arn = cluster or f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER}"
        detail: dict[str, Any] = {
            "clusterArn": cluster_arn,
            "taskArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{CLUSTER}/{task_id}",
            "taskDefinitionArn": task_definition or self.task_definitions.get(service or "", "td:1"),
            "startedBy": started_by,
            "lastStatus": last_status,
            "desiredStatus": "RUNNING",
            "launchType": "FARGATE",
            "containers": [{"name": "app", "lastStatus": last_status}],
        }
        if service is not None:
            detail["group"] = f"service:{service}"
        else:
            detail["group"] = "family:batch"
        return eventbridge_event("aws.ecs", "ECS Task State Change", detail, resources=[detail["taskArn"]])

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

    def item(self, sk: str, pair: str = PAIR) -> dict[str, Any] | None:
        des = TypeDeserializer()
        got = self.ddb.get_item(TableName=TABLE, Key={"pk": {"S": f"PAIR#{pair}"}, "sk": {"S": sk}})
        return None if "Item" not in got else {k: des.deserialize(v) for k, v in got["Item"].items()}

    def lock(self, pair: str = PAIR) -> str | None:
        got = self.item("LOCK", pair)
        return None if got is None else str(got["deployment_id"])

    # -- driving the flow -------------------------------------------------------------------------------

    def start(self, service: str = GREEN) -> tuple[str, dict[str, Any]]:
        """Release ``service``, run the filter; returns the deployment id and the execution input."""
        release = self.new_release(service)
        result = self.invoke("filter", self.task_event(service, release))
        assert result["action"] == "started", result
        (execution,) = [e for e in self.executions() if e["name"] == result["deployment_id"]]
        return result["deployment_id"], self.execution_input(execution["executionArn"])

    def prepared(self, service: str = GREEN) -> dict[str, Any]:
        """``start`` plus the "Load spec and snapshot traffic" state; returns the state's output."""
        _, execution_input = self.start(service)
        return dict(self.invoke("prepare", execution_input))

    def advance(self, state: Mapping[str, Any], *, baked_seconds: int = 120) -> dict[str, Any]:
        """One "Check health and shift traffic" state, as if the Bake before it lasted ``baked_seconds``."""
        cursor = dict(state["cursor"])
        if cursor.get("shifted_at"):
            shifted = datetime.now(UTC) - timedelta(seconds=baked_seconds)
            cursor["shifted_at"] = shifted.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        out = dict(self.invoke("advance", {"deployment": state["deployment"], "cursor": cursor}))
        # The state machine's ResultSelector keeps exactly these keys as the new $.cursor.
        asl = json.loads((ROOT / "statemachine" / "canary.asl.json").read_text())
        selector = asl["States"]["Check health and shift traffic"]["ResultSelector"]
        keys = {key.removesuffix(".$") for key in selector}
        assert set(out) == keys, out
        return {**state, "cursor": out}

    def rollback_input(
        self, state: Mapping[str, Any], error: str, message: str, **extra: Any
    ) -> dict[str, Any]:
        """The whole state as a Catch (ResultPath ``$.error``) hands it to "Roll back"."""
        cause = json.dumps({"errorMessage": message, "errorType": error, "stackTrace": [], **extra})
        return {**state, "error": {"Error": error, "Cause": cause}}

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


@pytest.fixture
def flow(mocked_aws: None, monkeypatch: pytest.MonkeyPatch) -> Flow:
    """Every AWS resource of one pair, the environment the functions get, and the handlers."""
    monkeypatch.setenv("TABLE_NAME", TABLE)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "ecs-canary")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "EcsCanaryTest")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
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


def fake_spec(
    name: str = PAIR,
    services: tuple[str, str] = (BLUE, GREEN),
    cluster: str = CLUSTER,
) -> ServicePairSpec:
    """A valid ALB spec whose ARNs point nowhere (for tests of the table alone)."""
    prefix = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}"
    return parse_spec(
        {
            "name": name,
            "cluster": cluster,
            "services": [
                {"name": svc, "target_group_arn": f"{prefix}:targetgroup/{svc[:20]}/{i:016x}"}
                for i, svc in enumerate(services, start=1)
            ],
            "router": {"type": "alb", "listener_arn": f"{prefix}:listener/app/{name}/{1:016x}/{2:016x}"},
            "plan": "Canary10Percent5Minutes",
            "health": {"alarms": [PAIR_ALARM]},
        }
    )


@pytest.fixture
def table(mocked_aws: None, monkeypatch: pytest.MonkeyPatch) -> Store:
    """Only the DynamoDB table (template key schema), for Store tests."""
    monkeypatch.setenv("TABLE_NAME", TABLE)
    _fast_clients(monkeypatch)
    _atomic_requests(monkeypatch)
    _client("dynamodb").create_table(TableName=TABLE, **table_schema())
    return Store()
