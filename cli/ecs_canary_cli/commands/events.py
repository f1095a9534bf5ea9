"""``events schema``: the published JSON Schema of ecs-canary's lifecycle events (their ``detail``)."""

from __future__ import annotations

from ecs_canary.flow.notify import DETAIL_TYPES, SOURCE, event_json_schema

from ecs_canary_cli.commands.base import EXIT_OK, App

__all__ = ["events_schema"]


def events_schema(app: App) -> int:
    """The detail's schema, plus the source and detail-type of each transition a rule can match on."""
    schema = event_json_schema()
    schema["x-ecs-canary"] = {"source": SOURCE, "detail-types": DETAIL_TYPES}
    app.emit_json(schema)
    return EXIT_OK
