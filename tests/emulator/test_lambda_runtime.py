"""run_lambda_handlers_in_process: deployed code runs in-process with Lambda's env and context."""

from __future__ import annotations

import datetime
import json
import os
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import purge, receive
from ecs_canary_cli.local import Emulator


def _invoke(aws: Emulator, name: str, payload: object) -> tuple[str | None, Any]:
    response = aws.client("lambda").invoke(FunctionName=name, Payload=json.dumps(payload).encode())
    return response.get("FunctionError"), json.loads(response["Payload"].read() or b"null")


def test_handler_gets_function_env_runtime_vars_and_context(aws: Emulator, stack: dict[str, str]) -> None:
    os.environ["EMULATOR_TEST_HOST_ONLY"] = "1"
    try:
        error, body = _invoke(aws, stack["EchoFunction"], {"hello": "world"})
    finally:
        del os.environ["EMULATOR_TEST_HOST_ONLY"]
    assert error is None
    assert body["event"] == {"hello": "world"}
    env = body["env"]
    assert env["GREETING"] == "bonjour"  # template parameter, through Globals
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == stack["EchoFunction"]
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "192"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.13"
    assert env["_HANDLER"] == "fixture_handlers.echo"
    assert env["AWS_ENDPOINT_URL"] == aws.endpoint
    assert env["POWERTOOLS_TRACE_DISABLED"] == "true"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"  # an unqualified call runs $LATEST
    assert body["host_env_leaked"] is False
    context = body["context"]
    assert context["function_name"] == stack["EchoFunction"]
    assert context["invoked_function_arn"].endswith(f":function:{stack['EchoFunction']}")
    assert context["memory_limit_in_mb"] == "192"
    assert context["function_version"] == "$LATEST"
    assert 0 < context["remaining_ms"] <= 5000
    assert "EMULATOR_TEST_HOST_ONLY" not in body["env"]
    assert os.environ.get("AWS_LAMBDA_FUNCTION_NAME") is None  # the host env is back


def test_unhandled_error_reports_exception_class_as_error_type(aws: Emulator, stack: dict[str, str]) -> None:
    error, body = _invoke(aws, stack["FailFunction"], {"n": 1})
    assert error == "Unhandled"
    assert body["errorType"] == "FlakyError"
    assert body["errorMessage"] == 'boom: {"n": 1}'
    assert any("fixture_handlers.py" in line for line in body["stackTrace"])


def test_each_function_has_its_own_warm_modules(aws: Emulator, stack: dict[str, str]) -> None:
    first = _invoke(aws, stack["EchoFunction"], {})[1]["calls"]
    assert _invoke(aws, stack["EchoFunction"], {})[1]["calls"] == first + 1
    assert _invoke(aws, stack["SecondEchoFunction"], {})[1]["calls"] == 1


def test_timeout_reports_sandbox_timedout(aws: Emulator, stack: dict[str, str]) -> None:
    error, body = _invoke(aws, stack["SlowFunction"], {"seconds": 1.3})
    assert error == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in body["errorMessage"]


def test_event_invocation_returns_202_at_once_and_runs_later(aws: Emulator, stack: dict[str, str]) -> None:
    purge(aws, stack["SinkUrl"])
    client = aws.client("lambda")
    started = time.monotonic()
    response = client.invoke(
        FunctionName=stack["RecordFunction"], InvocationType="Event", Payload=b'{"async": true}'
    )
    assert response["StatusCode"] == 202
    assert response["Payload"].read() == b""
    assert time.monotonic() - started < 1.0
    [message] = receive(aws, stack["SinkUrl"], 1)
    assert message["body"]["event"] == {"async": True}


def test_async_function_errors_are_retried_then_sent_to_on_failure_destination(
    aws: Emulator, stack: dict[str, str]
) -> None:
    purge(aws, stack["SinkUrl"])
    lam = aws.client("lambda")
    lam.put_function_event_invoke_config(
        FunctionName=stack["RecordThenFailFunction"],
        MaximumRetryAttempts=1,
        DestinationConfig={"OnFailure": {"Destination": stack["FailuresArn"]}},
    )
    lam.invoke(FunctionName=stack["RecordThenFailFunction"], InvocationType="Event", Payload=b'{"k": 7}')
    assert aws.wait_for_idle(15)
    attempts = receive(aws, stack["SinkUrl"], 2)
    assert [a["body"]["kind"] for a in attempts] == ["attempt", "attempt"]
    [failure] = receive(aws, stack["FailuresUrl"], 1)
    record = failure["body"]
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["requestPayload"] == {"k": 7}
    assert record["responsePayload"]["errorType"] == "FlakyError"
    assert record["responseContext"]["functionError"] == "Unhandled"


def test_unknown_function_is_404(aws: Emulator, stack: dict[str, str]) -> None:
    with pytest.raises(ClientError) as info:
        aws.client("lambda").invoke(FunctionName="no-such-function", Payload=b"{}")
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_output_goes_to_cloudwatch_logs_and_embedded_metrics_become_metrics(
    aws: Emulator, stack: dict[str, str]
) -> None:
    error, body = _invoke(aws, stack["MetricFunction"], {})
    assert error is None
    assert body == "ok"
    group = f"/aws/lambda/{stack['MetricFunction']}"
    messages = [e["message"] for e in aws.client("logs").filter_log_events(logGroupName=group)["events"]]
    assert messages[0].startswith("START RequestId: ")
    assert messages[0].endswith(" Version: $LATEST")
    assert messages[1].startswith("handling ")
    assert messages[-2].startswith("END RequestId: ")
    assert messages[-1].startswith("REPORT RequestId: ")
    stats = aws.client("cloudwatch").get_metric_statistics(
        Namespace="EmulatorTest",
        MetricName="Hits",
        Dimensions=[{"Name": "service", "Value": "fixture"}],
        StartTime=datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5),
        EndTime=datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=1),
        Period=600,
        Statistics=["Sum", "SampleCount"],
    )["Datapoints"]
    assert [(d["Sum"], d["SampleCount"]) for d in stats] == [(3.0, 2.0)]
