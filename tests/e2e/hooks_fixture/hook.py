"""A lifecycle hook for the end-to-end tests: it answers what its ``hookDetails`` script says.

``hookDetails.answers`` is a list of answers, one per attempt (the last one repeats): a hookStatus
(``SUCCEEDED``, ``FAILED``, ``IN_PROGRESS``), ``CRASH`` (raise) or ``GARBAGE`` (no hookStatus).
``hookDetails.delay`` is the callBackDelay of IN_PROGRESS answers. The reason it gives echoes what it
was told (stage, step, test endpoint), so the deployment's history shows what the hook saw.
"""

from __future__ import annotations

import json
from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    details = event.get("hookDetails") or {}
    answers = details.get("answers") or ["SUCCEEDED"]
    attempt = int(event.get("attempt", 1))
    answer = answers[min(attempt, len(answers)) - 1]
    seen = {
        "stage": event.get("lifecycleStage"),
        "attempt": attempt,
        "step": event.get("step"),
        "test": (event.get("testEndpoint") or {}).get("type"),
        "green": event.get("greenService"),
    }
    if answer == "CRASH":
        raise RuntimeError(f"hook crashed on purpose: {json.dumps(seen)}")
    if answer == "GARBAGE":
        return {"status": "fine, thanks"}
    response: dict[str, Any] = {"hookStatus": answer, "reason": json.dumps(seen, sort_keys=True)}
    if answer == "IN_PROGRESS":
        response["callBackDelay"] = int(details.get("delay", 30))
    return response
