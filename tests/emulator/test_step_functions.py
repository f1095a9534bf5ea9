"""scale_wait_states, scale_retry_backoff, emit_step_functions_status_events,
describe_the_state_machine_an_execution_runs."""

from __future__ import annotations

import json
import time

from conftest import receive, wait_execution
from ecs_canary_cli.local import Emulator


def test_sixty_second_wait_takes_under_three_seconds(aws: Emulator, stack: dict[str, str]) -> None:
    started = time.monotonic()
    execution = aws.client("stepfunctions").start_execution(
        stateMachineArn=stack["WaitMachineArn"], name="wait-60", input="{}"
    )
    assert wait_execution(aws, execution["executionArn"])["status"] == "SUCCEEDED"
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 3.0


def test_retry_backoff_runs_on_the_clock_and_catch_sees_error_type(
    aws: Emulator, stack: dict[str, str]
) -> None:
    started = time.monotonic()
    sfn = aws.client("stepfunctions")
    execution = sfn.start_execution(
        stateMachineArn=stack["RetryMachineArn"], name="retry-1", input='{"x": 1}'
    )
    described = wait_execution(aws, execution["executionArn"])
    # Back-off of 30 s then 60 s emulated: 0.9 s at time scale 0.01.
    assert 0.8 <= time.monotonic() - started < 4.0
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == {"caught": "FlakyError", "greeting": "bonjour"}
    history = sfn.get_execution_history(executionArn=execution["executionArn"])["events"]
    assert sum(1 for e in history if e["type"] == "TaskFailed") == 3


def test_stop_execution_aborts_at_once_and_emits_status_events(aws: Emulator, stack: dict[str, str]) -> None:
    sfn = aws.client("stepfunctions")
    execution = sfn.start_execution(
        stateMachineArn=stack["LongWaitMachineArn"], name="stopped-1", input='{"a": 1}'
    )
    stopped = sfn.stop_execution(executionArn=execution["executionArn"], error="Manual", cause="operator")
    assert "stopDate" in stopped
    described = sfn.describe_execution(executionArn=execution["executionArn"])
    assert described["status"] == "ABORTED"
    events = receive(aws, stack["SinkUrl"], 2, source="aws.states")
    by_status = {m["body"]["event"]["detail"]["status"]: m["body"]["event"] for m in events}
    assert set(by_status) == {"RUNNING", "ABORTED"}
    aborted = by_status["ABORTED"]
    assert aborted["source"] == "aws.states"
    assert aborted["detail-type"] == "Step Functions Execution Status Change"
    assert aborted["resources"] == [execution["executionArn"]]
    detail = aborted["detail"]
    assert detail["executionArn"] == execution["executionArn"]
    assert detail["stateMachineArn"] == stack["LongWaitMachineArn"]
    assert detail["name"] == "stopped-1"
    assert detail["input"] == '{"a":1}'
    assert detail["error"] == "Manual"
    assert detail["cause"] == "operator"
    assert isinstance(detail["startDate"], int)
    assert detail["stopDate"] >= detail["startDate"]
    assert by_status["RUNNING"]["detail"]["stopDate"] is None
    time.sleep(0.3)
    assert receive(aws, stack["SinkUrl"], 1, timeout=0.5, source="aws.states") == []  # exactly one end event


def _machine(result: str) -> str:
    return json.dumps(
        {
            "StartAt": "Wait",
            "States": {
                "Wait": {"Type": "Wait", "Seconds": 100, "Next": "Done"},
                "Done": {"Type": "Pass", "Result": {"definition": result}, "End": True},
            },
        }
    )


def test_running_execution_keeps_the_definition_it_started_with(aws: Emulator) -> None:
    sfn = aws.client("stepfunctions")
    machine = sfn.create_state_machine(
        name="emulator-updated-mid-execution",
        definition=_machine("old"),
        roleArn="arn:aws:iam::123456789012:role/emulator-test",
    )["stateMachineArn"]
    started = sfn.start_execution(stateMachineArn=machine, name="before-update")["executionArn"]
    deadline = time.monotonic() + 10
    while not any(
        e["type"] == "WaitStateEntered" for e in sfn.get_execution_history(executionArn=started)["events"]
    ):
        assert time.monotonic() < deadline, "the execution never reached its Wait state"
        time.sleep(0.02)
    sfn.update_state_machine(stateMachineArn=machine, definition=_machine("new"))
    history = sfn.get_execution_history(executionArn=started)["events"]
    assert not any(e["type"] == "WaitStateExited" for e in history), "the update outlasted the Wait state"

    described = sfn.describe_state_machine_for_execution(executionArn=started)
    assert described["stateMachineArn"] == machine
    assert json.loads(described["definition"])["States"]["Done"]["Result"] == {"definition": "old"}
    assert json.loads(sfn.describe_state_machine(stateMachineArn=machine)["definition"])["States"]["Done"][
        "Result"
    ] == {"definition": "new"}
    finished = wait_execution(aws, started)
    assert (finished["status"], json.loads(finished["output"])) == ("SUCCEEDED", {"definition": "old"})

    after = sfn.start_execution(stateMachineArn=machine, name="after-update")["executionArn"]
    assert json.loads(sfn.describe_state_machine_for_execution(executionArn=after)["definition"])["States"][
        "Done"
    ]["Result"] == {"definition": "new"}
    finished = wait_execution(aws, after)
    assert (finished["status"], json.loads(finished["output"])) == ("SUCCEEDED", {"definition": "new"})
