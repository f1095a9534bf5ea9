"""Lifecycle hooks: reading a hook's answer, one invocation per call, and the stage's gate.

Hooks are Lambda functions; moto runs Lambda functions only in Docker, so the Lambda client the hook
loop invokes them with is replaced by :class:`FakeLambda`, which answers ``Invoke`` the way AWS does
(a ``Payload`` stream, ``FunctionError: Unhandled`` when the function raised). Everything else is moto.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from ecs_canary.errors import HookFailed, NotOwner, RollbackRequested
from ecs_canary.events import HookInput
from ecs_canary.flow import hooks as hook_flow
from ecs_canary.flow.hooks import DEFAULT_CALLBACK_DELAY, first_cursor, hook_payload, run_hooks
from ecs_canary.gates import HookSpec
from ecs_canary.handlers import hooks as hook_handler
from ecs_canary.spec import ServicePairSpec, parse_spec
from ecs_canary.store import RollbackIntent, Status, now_iso
from flow_fixtures import BLUE, GREEN, PAIR, TOKEN, FakeContext, Flow, Run, catch
from pydantic import ValidationError

pytest_plugins = ["flow_fixtures"]
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

SMOKE = "ecs-canary-hook-smoke"
LOAD = "arn:aws:lambda:us-east-1:123456789012:function:ecs-canary-hook-load:live"
NOTIFY = "ecs-canary-hook-notify"
RAMP0 = {BLUE: 90, GREEN: 10}


# ---- the Lambda boundary ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """What one Invoke returns: the function's response body, and FunctionError if it raised."""

    body: bytes
    function_error: str | None = None


def answer(status: str, **extra: Any) -> Reply:
    return Reply(json.dumps({"hookStatus": status, **extra}).encode())


def crash(kind: str = "RuntimeError", message: str = "boom") -> Reply:
    return Reply(json.dumps({"errorType": kind, "errorMessage": message}).encode(), "Unhandled")


@dataclass
class FakeLambda:
    """Answers each function's invocations from its script (the last reply repeats)."""

    scripts: dict[str, list[Reply]] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    observe: Callable[[], Any] | None = None
    """Called at each invocation: what the world looked like while the hook ran (in ``seen``)."""
    seen: list[Any] = field(default_factory=list)

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append({**kwargs, "Payload": json.loads(kwargs["Payload"])})
        if self.observe is not None:
            self.seen.append(self.observe())
        script = self.scripts[kwargs["FunctionName"]]
        reply = script.pop(0) if len(script) > 1 else script[0]
        response: dict[str, Any] = {
            "StatusCode": 200,
            "ExecutedVersion": "$LATEST",
            "Payload": io.BytesIO(reply.body),
        }
        if reply.function_error is not None:
            response["FunctionError"] = reply.function_error
        return response

    def payloads(self) -> list[dict[str, Any]]:
        return [c["Payload"] for c in self.calls]


@pytest.fixture
def lam(monkeypatch: pytest.MonkeyPatch) -> FakeLambda:
    fake = FakeLambda()
    monkeypatch.setattr(hook_flow, "_invoke_client", lambda: fake)
    return fake


# ---- helpers ------------------------------------------------------------------------------------------


def _register(flow: Flow, router: str = "alb", **gates: Any) -> ServicePairSpec:
    doc = json.loads(flow.spec(router).model_dump_json())
    doc.update(gates)
    spec = parse_spec(doc)
    flow.router = router
    flow.set_weights({BLUE: 100, GREEN: 0})
    flow.store.put_pair(spec, live_service=BLUE, idle_baseline=flow.deployment_of(GREEN))
    return spec


def _hook_input(run: Run, cursor: dict[str, Any], execution: str | None = None) -> HookInput:
    return HookInput.model_validate(
        {
            "pair": PAIR,
            "deployment_id": run.deployment_id,
            "hooks": cursor,
            "execution": execution or run.execution,
        }
    )


def _call(flow: Flow, run: Run, cursor: dict[str, Any], execution: str | None = None) -> dict[str, Any]:
    """ "Run the stage's hooks" as Lambda invokes it (through the handler)."""
    event = _hook_input(run, cursor, execution).model_dump(mode="json")
    return dict(hook_handler.handler(event, FakeContext(aws_request_id="req-hooks")))


def _loop(flow: Flow, run: Run, cursor: dict[str, Any], limit: int = 20) -> list[dict[str, Any]]:
    """The state machine's hook loop: call until done (waits pass at once); every cursor returned."""
    cursors = []
    for _ in range(limit):
        cursor = _call(flow, run, cursor)
        cursors.append(cursor)
        if cursor["done"]:
            return cursors
    raise AssertionError(f"the hook loop never ended: {cursors[-3:]}")


def _stage_cursor(stage: str, key: str | None = None, then: str = "tick") -> dict[str, Any]:
    return first_cursor(stage, key or f"hooks:{stage}", then)


# ---- the answer of a hook (pure) ----------------------------------------------------------------------


VERDICTS = [
    pytest.param({}, {"hookStatus": "SUCCEEDED"}, ("SUCCEEDED", 30, "hook answered SUCCEEDED"), id="ok"),
    pytest.param(
        {}, {"hookStatus": "SUCCEEDED", "reason": "smoke ok"}, ("SUCCEEDED", 30, "smoke ok"), id="reason"
    ),
    pytest.param(
        {},
        {"hookStatus": "SUCCEEDED", "reason": ""},
        ("SUCCEEDED", 30, "hook answered SUCCEEDED"),
        id="empty",
    ),
    pytest.param({}, {"hookStatus": "FAILED"}, ("FAILED", 30, "hook answered FAILED"), id="failed"),
    pytest.param(
        {},
        {"hookStatus": "IN_PROGRESS", "callBackDelay": 5},
        ("IN_PROGRESS", 5, "hook answered IN_PROGRESS"),
        id="delay",
    ),
    pytest.param(
        {},
        {"hookStatus": "IN_PROGRESS", "callBackDelay": 0},
        ("IN_PROGRESS", 0, "hook answered IN_PROGRESS"),
        id="delay-0",
    ),
    pytest.param(
        {},
        {"hookStatus": "IN_PROGRESS", "callBackDelay": 3600},
        ("IN_PROGRESS", 3600, "hook answered IN_PROGRESS"),
        id="delay-max",
    ),
    pytest.param(
        {},
        {"hookStatus": "IN_PROGRESS", "callBackDelay": 3601},
        ("IN_PROGRESS", 30, "hook answered IN_PROGRESS"),
        id="delay-too-long",
    ),
    pytest.param(
        {},
        {"hookStatus": "IN_PROGRESS", "callBackDelay": -1},
        ("IN_PROGRESS", 30, "hook answered IN_PROGRESS"),
        id="delay-negative",
    ),
    pytest.param(
        {},
        {"hookStatus": "IN_PROGRESS", "callBackDelay": True},
        ("IN_PROGRESS", 30, "hook answered IN_PROGRESS"),
        id="delay-bool",
    ),
    pytest.param(
        {},
        {"hookStatus": "IN_PROGRESS", "callBackDelay": "10"},
        ("IN_PROGRESS", 30, "hook answered IN_PROGRESS"),
        id="delay-text",
    ),
    pytest.param(
        {},
        {"hookStatus": "IN_PROGRESS", "callBackDelay": 2.9},
        ("IN_PROGRESS", 2, "hook answered IN_PROGRESS"),
        id="delay-float",
    ),
    pytest.param(
        {},
        {"hookStatus": "succeeded"},
        ("FAILED", 0, 'the hook\'s response has no valid hookStatus (got "succeeded")'),
        id="lower-case",
    ),
    pytest.param(
        {},
        {"status": "fine, thanks"},
        ("FAILED", 0, "the hook's response has no valid hookStatus (got null)"),
        id="no-status",
    ),
    pytest.param(
        {}, [1, 2], ("FAILED", 0, "the hook's response has no valid hookStatus (got [1, 2])"), id="list"
    ),
    pytest.param(
        {}, None, ("FAILED", 0, "the hook's response has no valid hookStatus (got null)"), id="null"
    ),
    pytest.param(
        {},
        {"hookStatus": "x" * 500},
        ("FAILED", 0, f"the hook's response has no valid hookStatus (got {json.dumps('x' * 500)[:200]})"),
        id="long-garbage-cut",
    ),
]


@pytest.mark.parametrize(("response", "body", "expected"), VERDICTS)
def test_verdict_of_an_answer(response: dict[str, Any], body: Any, expected: tuple[str, int, str]) -> None:
    assert hook_flow._verdict({"StatusCode": 200, **response}, json.dumps(body).encode()) == expected


@pytest.mark.parametrize(
    ("body", "why"),
    [
        pytest.param(b"<html>502</html>", "the hook's response is not JSON", id="html"),
        pytest.param(b"", "the hook's response has no valid hookStatus (got null)", id="empty-body"),
    ],
)
def test_verdict_of_a_body_that_is_not_an_answer(body: bytes, why: str) -> None:
    assert hook_flow._verdict({"StatusCode": 200}, body) == ("FAILED", 0, why)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        pytest.param(
            b'{"errorType": "RuntimeError", "errorMessage": "db down"}',
            "the hook crashed: RuntimeError: db down",
            id="error-payload",
        ),
        pytest.param(b'{"errorType": "Timeout"}', "the hook crashed: Timeout", id="no-message"),
        pytest.param(b"Task timed out", "the hook crashed: Unhandled", id="not-json"),
        pytest.param(b'"a string"', "the hook crashed: error", id="json-not-object"),
        pytest.param(b"", "the hook crashed: Unhandled", id="empty"),
        # A crash whose body looks like a success is still a crash.
        pytest.param(b'{"hookStatus": "SUCCEEDED"}', "the hook crashed: Unhandled", id="looks-ok"),
    ],
)
def test_verdict_of_a_crash_is_failed(body: bytes, why: str) -> None:
    assert hook_flow._verdict({"StatusCode": 200, "FunctionError": "Unhandled"}, body) == ("FAILED", 0, why)


@pytest.mark.parametrize(
    ("stage", "key", "then"),
    [
        ("before_test_traffic", "hooks:before_test_traffic", "tick"),
        ("after_each_shift", "hooks:after_each_shift:2", "bake"),
        ("on_rollback", "hooks:on_rollback", "end"),
    ],
)
def test_first_cursor_starts_at_the_first_hook(stage: str, key: str, then: str) -> None:
    cursor = first_cursor(stage, key, then)

    assert cursor == {
        "stage": stage,
        "key": key,
        "index": 0,
        "attempt": 0,
        "waited": 0,
        "then": then,
        "done": False,
        "wait_seconds": 0,
    }
    assert HookInput.model_validate({"pair": PAIR, "deployment_id": "d", "hooks": cursor, "execution": "x"})


def test_default_callback_delay_is_thirty_seconds() -> None:
    assert DEFAULT_CALLBACK_DELAY == 30


# ---- what a hook is invoked with -------------------------------------------------------------------------


@pytest.mark.parametrize("test_traffic", [False, True], ids=["no-test-traffic", "route53-test-record"])
def test_hook_payload_carries_the_deployment_context(flow: Flow, test_traffic: bool) -> None:
    gates: dict[str, Any] = {"test_traffic": {"record_name": "test.example.com"}} if test_traffic else {}
    spec = _register(flow, "route53", **gates)
    run, _ = flow.rolling(GREEN)
    record = run.record()
    hook = HookSpec(function=SMOKE, details={"url": "/health", "expect": [200]})

    payload = hook_payload(spec, record, "after_test_traffic", hook, 3)

    assert payload == {
        "lifecycleStage": "after_test_traffic",
        "pair": PAIR,
        "deploymentId": run.deployment_id,
        "executionArn": run.execution,
        "release": run.input["release"],
        "greenService": GREEN,
        "liveService": BLUE,
        "step": {"index": record.step_index, "percent": record.percent},
        "weights": {BLUE: 100, GREEN: 0},
        "testEndpoint": {"type": "route53", "record_name": "test.example.com."} if test_traffic else None,
        "hookDetails": {"url": "/health", "expect": [200]},
        "attempt": 3,
    }
    json.dumps(payload)  # what is sent to Lambda is JSON


# ---- one invocation per call --------------------------------------------------------------------------


def test_every_hook_of_a_stage_runs_in_order_then_the_gate_is_passed(flow: Flow, lam: FakeLambda) -> None:
    _register(
        flow,
        hooks={"before_test_traffic": [{"function": SMOKE, "details": {"n": 1}}, {"function": LOAD}]},
    )
    lam.scripts = {SMOKE: [answer("SUCCEEDED", reason="smoke ok")], LOAD: [answer("SUCCEEDED")]}
    run, state = flow.rolling(GREEN)
    state = run.advance(state)
    cursor = state["cursor"]["hooks"]
    assert state["cursor"]["action"] == "hooks"
    assert cursor == _stage_cursor("before_test_traffic")

    cursors = _loop(flow, run, cursor)

    assert [(c["index"], c["attempt"], c["waited"], c["wait_seconds"], c["done"]) for c in cursors] == [
        (1, 0, 0, 0, False),
        (2, 0, 0, 0, False),
        (2, 0, 0, 0, True),  # past the last hook: nothing invoked, the gate is recorded
    ]
    assert all(
        (c["stage"], c["key"], c["then"]) == ("before_test_traffic", cursor["key"], "tick") for c in cursors
    )
    assert [c["FunctionName"] for c in lam.calls] == [SMOKE, LOAD]
    assert {c["InvocationType"] for c in lam.calls} == {"RequestResponse"}
    assert [(p["lifecycleStage"], p["attempt"], p["hookDetails"]) for p in lam.payloads()] == [
        ("before_test_traffic", 1, {"n": 1}),
        ("before_test_traffic", 1, {}),
    ]
    record = run.record()
    assert record.gates_done == {"hooks:before_test_traffic"}
    succeeded = [h["message"] for h in record.history if h["event"] == "hook_succeeded"]
    assert succeeded == [
        f"hook {SMOKE} at before_test_traffic succeeded: smoke ok",
        f"hook {LOAD} at before_test_traffic succeeded: hook answered SUCCEEDED",
    ]
    assert flow.weights() == {BLUE: 100, GREEN: 0}  # hooks never move traffic

    # The next tick finds the gate passed and goes on to the first production shift.
    state = run.advance(state)
    assert state["cursor"]["action"] == "shift"
    assert flow.weights() == RAMP0
    assert len(lam.calls) == 2


def test_preproduction_hooks_and_test_traffic_meet_in_order(flow: Flow, lam: FakeLambda) -> None:
    stages = ("before_test_traffic", "after_test_traffic", "before_production_traffic")
    _register(
        flow,
        "route53",
        hooks={stage: [{"function": SMOKE}] for stage in stages},
        test_traffic={"record_name": "test.example.com"},
    )
    lam.scripts = {SMOKE: [answer("SUCCEEDED")]}

    def test_record() -> list[str]:
        listing = flow.route53.list_resource_record_sets(HostedZoneId=flow.zone_id)["ResourceRecordSets"]
        return [v["Value"] for r in listing if r["Name"] == "test.example.com." for v in r["ResourceRecords"]]

    lam.observe = lambda: (test_record(), flow.weights())
    run, state = flow.rolling(GREEN)

    met = []
    for _ in range(len(stages)):
        state = run.advance(state)
        assert state["cursor"]["action"] == "hooks"
        met.append(state["cursor"]["hooks"]["key"])
        _loop(flow, run, state["cursor"]["hooks"])
    state = run.advance(state)

    assert met == [f"hooks:{stage}" for stage in stages]
    assert state["cursor"]["action"] == "shift"
    assert [p["lifecycleStage"] for p in lam.payloads()] == list(stages)
    assert {json.dumps(p["testEndpoint"]) for p in lam.payloads()} == {
        json.dumps({"type": "route53", "record_name": "test.example.com."})
    }
    untouched = {BLUE: 100, GREEN: 0}
    # The test record points at green only from after_test_traffic on; production traffic stays put.
    assert lam.seen == [([], untouched), (["10.0.0.2"], untouched), (["10.0.0.2"], untouched)]
    assert run.record().gates_done == {
        "hooks:before_test_traffic",
        "test_traffic",
        "hooks:after_test_traffic",
        "hooks:before_production_traffic",
        "capacity",
    }


def test_in_progress_waits_its_callback_delay_and_asks_again(flow: Flow, lam: FakeLambda) -> None:
    _register(flow, hooks={"before_production_traffic": [{"function": SMOKE, "timeout_seconds": 100}]})
    lam.scripts = {
        SMOKE: [
            answer("IN_PROGRESS", callBackDelay=20),
            answer("IN_PROGRESS"),  # the default delay
            answer("SUCCEEDED"),
        ]
    }
    run, _ = flow.rolling(GREEN)

    cursors = _loop(flow, run, _stage_cursor("before_production_traffic"))

    assert [(c["index"], c["attempt"], c["waited"], c["wait_seconds"]) for c in cursors] == [
        (0, 1, 20, 20),
        (0, 2, 50, 30),
        (1, 0, 0, 0),
        (1, 0, 0, 0),
    ]
    assert [p["attempt"] for p in lam.payloads()] == [1, 2, 3]
    assert "hooks:before_production_traffic" in run.record().gates_done


FAILURES = [
    # (the hook's replies, its timeout_seconds), (why it failed, invocations)
    pytest.param(([answer("FAILED", reason="5xx on /health")], 600), ("5xx on /health", 1), id="failed"),
    pytest.param(
        ([crash("RuntimeError", "db down")], 600),
        ("the hook crashed: RuntimeError: db down", 1),
        id="crashed",
    ),
    pytest.param(
        ([Reply(b'{"status": "ok"}')], 600),
        ("the hook's response has no valid hookStatus (got null)", 1),
        id="garbage",
    ),
    pytest.param(([Reply(b"<html>")], 600), ("the hook's response is not JSON", 1), id="not-json"),
    pytest.param(
        ([answer("IN_PROGRESS", callBackDelay=30)], 60),
        ("still IN_PROGRESS after 60 s (timeout_seconds)", 3),
        id="timed-out",
    ),
    pytest.param(
        ([answer("IN_PROGRESS", callBackDelay=30), answer("FAILED")], 600),
        ("hook answered FAILED", 2),
        id="failed-later",
    ),
]


@pytest.mark.parametrize(("hook", "expected"), FAILURES)
def test_a_failing_hook_fails_the_deployment_back(
    flow: Flow, lam: FakeLambda, hook: tuple[list[Reply], int], expected: tuple[str, int]
) -> None:
    (replies, timeout), (why, calls) = hook, expected
    _register(
        flow,
        hooks={"after_test_traffic": [{"function": SMOKE, "timeout_seconds": timeout}, {"function": LOAD}]},
    )
    lam.scripts = {SMOKE: list(replies), LOAD: [answer("SUCCEEDED")]}
    run, _ = flow.rolling(GREEN)
    cursor = _stage_cursor("after_test_traffic")
    reason = f"hook {SMOKE} at after_test_traffic failed: {why}"

    with pytest.raises(HookFailed) as failed:
        _loop(flow, run, cursor)

    assert str(failed.value) == reason
    assert [c["FunctionName"] for c in lam.calls] == [SMOKE] * calls  # the next hook never runs
    record = run.record()
    assert record.status is Status.ROLLING_BACK
    assert record.rollback is not None
    assert (record.rollback.status, record.rollback.reason) == (Status.FAILED, reason)
    assert record.rollback.by == f"execution {run.deployment_id}"
    assert "hooks:after_test_traffic" not in record.gates_done
    assert [h["message"] for h in record.history if h["event"] == "hook_failed"] == [reason]
    # The loop's next call (a retry) refuses to invoke anything once the rollback is recorded.
    with pytest.raises(RollbackRequested):
        _call(flow, run, cursor)
    assert len(lam.calls) == calls


def test_a_failing_hook_also_ends_the_watch_at_once(flow: Flow, lam: FakeLambda) -> None:
    """An answer to a call the state machine already gave up on still fails the deployment back now:
    the intent fails the armed watch's token, as an alarm or an abort does."""
    _register(flow, hooks={"after_test_traffic": [{"function": SMOKE}]})
    lam.scripts = {SMOKE: [answer("FAILED", reason="smoke test failed")]}
    run, _ = flow.rolling(GREEN)  # the watch is armed: its token is stored

    with pytest.raises(HookFailed):
        _loop(flow, run, _stage_cursor("after_test_traffic"))

    (signal,) = flow.tokens.failures(TOKEN)
    assert signal["error"] == "HookFailed"
    assert "smoke test failed" in signal["cause"]
    assert run.record().status is Status.ROLLING_BACK


def test_a_failing_hook_fails_back_even_when_the_watch_cannot_be_signalled(
    flow: Flow, lam: FakeLambda
) -> None:
    """Ending the watch early is a speed-up: a refused SendTaskFailure still ends in HookFailed."""
    _register(flow, hooks={"after_test_traffic": [{"function": SMOKE}]})
    lam.scripts = {SMOKE: [answer("FAILED", reason="smoke test failed")]}
    run, _ = flow.rolling(GREEN)
    flow.tokens.gone[TOKEN] = "ThrottlingException"

    with pytest.raises(HookFailed):
        _loop(flow, run, _stage_cursor("after_test_traffic"))

    assert [c["error"] for c in flow.tokens.failures(TOKEN)] == ["HookFailed"]
    assert run.record().status is Status.ROLLING_BACK


def test_an_in_progress_hook_may_wait_exactly_its_timeout(flow: Flow, lam: FakeLambda) -> None:
    _register(flow, hooks={"before_test_traffic": [{"function": SMOKE, "timeout_seconds": 60}]})
    lam.scripts = {SMOKE: [answer("IN_PROGRESS", callBackDelay=30)] * 2 + [answer("SUCCEEDED")]}
    run, _ = flow.rolling(GREEN)

    cursors = _loop(flow, run, _stage_cursor("before_test_traffic"))

    assert [c["waited"] for c in cursors] == [30, 60, 0, 0]
    assert cursors[-1]["done"] is True


def test_an_empty_stage_is_passed_without_invoking_anything(flow: Flow, lam: FakeLambda) -> None:
    _register(flow)
    run, _ = flow.rolling(GREEN)

    cursor = _call(flow, run, _stage_cursor("after_production_traffic"))

    assert cursor == {**_stage_cursor("after_production_traffic"), "done": True}
    assert lam.calls == []
    assert run.record().gates_done == {"hooks:after_production_traffic"}
    again = _call(flow, run, _stage_cursor("after_production_traffic"))  # a retried call
    assert again == cursor
    assert run.record().gates_done == {"hooks:after_production_traffic"}


def test_after_each_shift_hooks_run_after_the_shift_and_then_the_bake(flow: Flow, lam: FakeLambda) -> None:
    _register(flow, hooks={"after_each_shift": [{"function": SMOKE}]})
    lam.scripts = {SMOKE: [answer("SUCCEEDED")]}
    run, state = flow.rolling(GREEN)

    state = run.advance(state)

    assert flow.weights() == RAMP0
    assert state["cursor"]["action"] == "hooks"
    assert state["cursor"]["step_index"] == 0
    assert state["cursor"]["wait_seconds"] == 60  # the step's bake, waited once the hooks are done
    assert state["cursor"]["hooks"] == _stage_cursor("after_each_shift", "hooks:after_each_shift:0", "bake")

    cursors = _loop(flow, run, state["cursor"]["hooks"])

    assert cursors[-1]["then"] == "bake"
    (payload,) = lam.payloads()
    assert payload["step"] == {"index": 0, "percent": 10}
    assert payload["weights"] == RAMP0
    assert "hooks:after_each_shift:0" in run.record().gates_done

    state = run.advance(state)  # after the bake: the next shift, and the hooks of that step
    assert state["cursor"]["hooks"]["key"] == "hooks:after_each_shift:1"
    assert flow.weights() == {BLUE: 50, GREEN: 50}


def test_a_rollout_re_entered_before_the_shift_hooks_finished_runs_them_first(
    flow: Flow, lam: FakeLambda
) -> None:
    _register(flow, hooks={"after_each_shift": [{"function": SMOKE}]})
    lam.scripts = {SMOKE: [answer("IN_PROGRESS", callBackDelay=600)]}
    run, prepared = flow.rolling(GREEN)
    state = run.advance(prepared)
    _call(flow, run, state["cursor"]["hooks"])  # the hook is still at work
    assert flow.command("pause", reason="look")["accepted"] is True
    assert flow.command("resume", reason="go on")["accepted"] is True  # ends the watch: "Roll out" again
    run.backdate(3600)

    state = run.advance(run.reenter(prepared))

    assert state["cursor"]["action"] == "hooks"
    assert state["cursor"]["hooks"]["key"] == "hooks:after_each_shift:0"
    assert flow.weights() == RAMP0


# ---- who may run hooks, and on_rollback ----------------------------------------------------------------


def test_only_the_owner_runs_hooks(flow: Flow, lam: FakeLambda) -> None:
    _register(flow, hooks={"before_test_traffic": [{"function": SMOKE}]})
    lam.scripts = {SMOKE: [answer("SUCCEEDED")]}
    run, _ = flow.rolling(GREEN)
    stranger = flow.execution_arn("manual-rerun-1")

    with pytest.raises(NotOwner):
        _call(flow, run, _stage_cursor("before_test_traffic"), execution=stranger)

    assert lam.calls == []
    assert run.events()[-1] == "refused"
    assert run.record().gates_done == frozenset()


def test_hooks_of_a_deployment_that_is_rolling_back_are_not_run(flow: Flow, lam: FakeLambda) -> None:
    _register(flow, hooks={"before_production_traffic": [{"function": SMOKE}]})
    lam.scripts = {SMOKE: [answer("SUCCEEDED")]}
    run, _ = flow.rolling(GREEN)
    intent = RollbackIntent(Status.ABORTED, "aborted by jane", "jane", now_iso())
    flow.store.request_rollback(PAIR, run.deployment_id, intent)

    with pytest.raises(RollbackRequested):
        run_hooks(flow.store, _hook_input(run, _stage_cursor("before_production_traffic")))

    assert lam.calls == []


def test_rollback_hooks_run_after_the_restore_and_a_failure_is_only_recorded(
    flow: Flow, lam: FakeLambda
) -> None:
    _register(flow, hooks={"on_rollback": [{"function": SMOKE}, {"function": NOTIFY}]})
    lam.scripts = {SMOKE: [crash("ValueError", "page failed")], NOTIFY: [answer("SUCCEEDED", reason="paged")]}
    run, state = flow.rolling(GREEN)
    run.advance(state)
    assert flow.weights() == RAMP0

    result = run.rollback(catch("GreenUnhealthy", "5xx"))

    assert flow.weights() == {BLUE: 100, GREEN: 0}  # restored before any rollback hook runs
    assert lam.calls == []
    assert result["hooks"] == _stage_cursor("on_rollback", then="end")
    closed = run.record()
    assert closed.status is Status.FAILED

    cursors = _loop(flow, run, result["hooks"])

    assert [c["index"] for c in cursors] == [1, 2, 2]
    assert cursors[-1]["done"] is True
    assert [c["FunctionName"] for c in lam.calls] == [SMOKE, NOTIFY]
    assert {p["lifecycleStage"] for p in lam.payloads()} == {"on_rollback"}
    record = run.record()
    assert record.status is Status.FAILED  # unchanged: the rollback completed
    assert record.reason == closed.reason
    assert record.gates_done == closed.gates_done  # on_rollback is no gate
    assert [h["message"] for h in record.history[-2:]] == [
        f"hook {SMOKE} at on_rollback failed: the hook crashed: ValueError: page failed",
        f"hook {NOTIFY} at on_rollback succeeded: paged",
    ]
    assert flow.weights() == {BLUE: 100, GREEN: 0}


def test_a_rollback_without_rollback_hooks_has_no_hook_loop(flow: Flow) -> None:
    _register(flow, hooks={"before_test_traffic": [{"function": SMOKE}]})
    run, _ = flow.rolling(GREEN)

    assert run.rollback(catch("GreenUnhealthy", "5xx"))["hooks"] is None


# ---- the handler ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hooks",
    [
        pytest.param({"stage": "whenever", "key": "k"}, id="unknown-stage"),
        pytest.param({"stage": "on_rollback", "key": "k", "index": -1}, id="negative-index"),
        pytest.param({"stage": "on_rollback", "key": "k", "then": "somewhere"}, id="unknown-then"),
        pytest.param({"key": "k"}, id="no-stage"),
    ],
)
def test_the_handler_refuses_a_malformed_cursor_before_invoking_anything(
    flow: Flow, lam: FakeLambda, hooks: dict[str, Any]
) -> None:
    event = {"pair": PAIR, "deployment_id": "d", "hooks": hooks, "execution": "arn:x"}

    with pytest.raises(ValidationError):
        hook_handler.handler(event, FakeContext())

    assert lam.calls == []
