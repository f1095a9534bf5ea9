"""Moto resources for CLI tests: a stack (table, state machine, CloudFormation outputs) and one ALB pair."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import boto3
from ecs_canary.flow.identity import deployment_id_for, execution_arn_for
from ecs_canary.store import Release, Status, Store

STACK = "ecs-canary"
TABLE = "canary-table"
CLUSTER = "prod"
PAIR = "shop"
BLUE, GREEN = "shop-blue", "shop-green"
ALARM = "shop-5xx"
REGION = "us-east-1"


@functools.cache
def _session() -> boto3.Session:
    return boto3.Session(region_name=REGION)


def client(service: str) -> Any:
    """A client of the one session these tests share: moto intercepts it like any other, and
    service models load once per run instead of once per test (moto resets boto3's default session)."""
    return _session().client(service)  # type: ignore[call-overload]


@dataclass
class Stack:
    """The deployed product as the CLI finds it: table and state machine named by stack outputs."""

    store: Store
    sfn: Any
    state_machine_arn: str


@dataclass
class World:
    """An ECS service pair behind one ALB listener (blue live), plus its alarm."""

    ecs: Any
    elbv2: Any
    listener: str
    blue_tg: str
    green_tg: str

    def spec(self, **changes: Any) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": PAIR,
            "cluster": CLUSTER,
            "services": [
                {"name": BLUE, "target_group_arn": self.blue_tg},
                {"name": GREEN, "target_group_arn": self.green_tg},
            ],
            "router": {"type": "alb", "listener_arn": self.listener},
            "plan": {"type": "steps", "steps": [10, 50, 100], "bake_seconds": 60},
            "health": {"alarms": [ALARM]},
        }
        data.update(changes)
        return data

    def set_weights(self, blue: int, green: int) -> None:
        self.elbv2.modify_listener(ListenerArn=self.listener, DefaultActions=[self.forward(blue, green)])

    def forward(self, blue: int, green: int) -> Any:
        return {
            "Type": "forward",
            "ForwardConfig": {
                "TargetGroups": [
                    {"TargetGroupArn": self.blue_tg, "Weight": blue},
                    {"TargetGroupArn": self.green_tg, "Weight": green},
                ]
            },
        }


def create_stack() -> Stack:
    ddb = client("dynamodb")
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    sfn = client("stepfunctions")
    machine = sfn.create_state_machine(
        name="canary",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/canary",
    )["stateMachineArn"]
    template = {
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {"TableName": {"Value": TABLE}, "StateMachineArn": {"Value": machine}},
    }
    client("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps(template))
    return Stack(store=Store(TABLE, ddb), sfn=sfn, state_machine_arn=machine)


def create_world() -> World:
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-east-1{az}")["Subnet"][
            "SubnetId"
        ]
        for i, az in ((1, "a"), (2, "b"))
    ]
    elbv2 = client("elbv2")
    lb = elbv2.create_load_balancer(Name="shop", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
    blue_tg, green_tg = (
        elbv2.create_target_group(Name=name, Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip")[
            "TargetGroups"
        ][0]["TargetGroupArn"]
        for name in (BLUE, GREEN)
    )
    world = World(ecs=client("ecs"), elbv2=elbv2, listener="", blue_tg=blue_tg, green_tg=green_tg)
    world.listener = elbv2.create_listener(
        LoadBalancerArn=lb, Protocol="HTTP", Port=80, DefaultActions=[world.forward(100, 0)]
    )["Listeners"][0]["ListenerArn"]
    world.ecs.create_cluster(clusterName=CLUSTER)
    world.ecs.register_task_definition(
        family="shop", containerDefinitions=[{"name": "app", "image": "shop:v1", "memory": 128}]
    )
    for name in (BLUE, GREEN):
        world.ecs.create_service(
            cluster=CLUSTER,
            serviceName=name,
            taskDefinition="shop",
            desiredCount=1,
            loadBalancers=[
                {
                    "targetGroupArn": world.blue_tg if name == BLUE else world.green_tg,
                    "containerName": "app",
                    "containerPort": 80,
                }
            ],
        )
    client("cloudwatch").put_metric_alarm(
        AlarmName=ALARM,
        MetricName="HTTPCode_Target_5XX_Count",
        Namespace="AWS/ApplicationELB",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
    )
    return world


def start_deployment(
    stack: Stack, *, release: str = "ecs-svc/2", execution: bool = True, service: str = GREEN
) -> str:
    """Claim a release of ``service`` as the filter would, optionally starting its execution."""
    rel = Release(service, release, f"arn:aws:ecs:us-east-1:123456789012:task-definition/shop:{release[-1]}")
    deployment_id = deployment_id_for(PAIR, rel)
    live = BLUE if service == GREEN else GREEN
    arn = execution_arn_for(stack.state_machine_arn, deployment_id)
    claim = stack.store.claim(PAIR, deployment_id, rel, live, execution_arn=arn, lease_seconds=900)
    assert claim.outcome == "claimed", claim
    if execution:
        started = stack.sfn.start_execution(stateMachineArn=stack.state_machine_arn, name=deployment_id)
        assert started["executionArn"] == arn
        stack.store.mark_started(PAIR, deployment_id, arn)
    return deployment_id


def ramp(stack: Stack, deployment_id: str, *, steps: int = 1) -> None:
    """Snapshot the weights and record ``steps`` shifts of the 10/50/100 plan."""
    pair = stack.store.get_pair(PAIR)
    owner = execution_arn_for(stack.state_machine_arn, deployment_id)
    stack.store.begin(PAIR, deployment_id, owner=owner, snapshot={BLUE: 100, GREEN: 0}, spec=pair.spec)
    stack.store.note(
        PAIR, deployment_id, owner=owner, event="steady", message=f"{GREEN} is steady: 1/1 tasks running"
    )
    for index, percent in enumerate((10, 50, 100)[:steps]):
        weights = {BLUE: 100 - percent, GREEN: percent}
        stack.store.begin_shift(
            PAIR,
            deployment_id,
            owner=owner,
            weights=weights,
            step_index=index,
            percent=percent,
            lease_seconds=90,
        )
        stack.store.record_shift(
            PAIR,
            deployment_id,
            owner=owner,
            step_index=index,
            percent=percent,
            weights=weights,
            bake_seconds=60,
            change_id=None,
            message=f"step {index + 1}/3: {percent}% to {GREEN}",
        )


def finish(stack: Stack, deployment_id: str, status: Status, reason: str) -> None:
    """Close the deployment as the state machine would; a success also makes its service live."""
    service = stack.store.get_deployment(PAIR, deployment_id).service
    promote = (service, None) if status is Status.SUCCEEDED else None
    assert stack.store.finish(PAIR, deployment_id, status, reason, promote=promote)
