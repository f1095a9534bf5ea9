"""``events schema``: the published contract of the lifecycle events, offline."""

from __future__ import annotations

import json

import jsonschema
from ecs_canary.flow.notify import DETAIL_TYPES, LifecycleEvent

from .conftest import Run


def _sample(**changes: object) -> dict[str, object]:
    detail: dict[str, object] = {
        "version": "1",
        "transition": "shifted",
        "pair": "checkout",
        "deployment_id": "checkout-checkout-green-0123",
        "service": "checkout-green",
        "live_service": "checkout-blue",
        "release": {"service": "checkout-green", "deployment": "ecs-svc/1", "task_definition": "arn:td:42"},
        "status": "RUNNING",
        "step_index": 0,
        "percent": 10,
        "weights": {"checkout-blue": 90, "checkout-green": 10},
        "reason": None,
        "by": None,
        "at": "2026-11-28T10:00:00.000Z",
        "execution_arn": None,
        "data": {},
    }
    detail.update(changes)
    return detail


def test_the_schema_validates_what_the_product_emits_and_lists_every_detail_type(run: Run) -> None:
    result = run("events", "schema")

    assert result.code == 0, result.err
    schema = json.loads(result.out)
    assert schema["x-ecs-canary"] == {"source": "ecs-canary", "detail-types": DETAIL_TYPES}
    jsonschema.validate(LifecycleEvent.model_validate(_sample()).model_dump(mode="json"), schema)
    # Within a version fields may be added, so consumers validating with it must accept new ones.
    jsonschema.validate(_sample(added_later=1), schema)
    for bad in (_sample(version="2"), _sample(transition="exploded"), {"version": "1"}):
        try:
            jsonschema.validate(bad, schema)
        except jsonschema.ValidationError:
            continue
        raise AssertionError(f"the schema accepted {bad}")
