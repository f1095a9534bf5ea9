"""``spec schema``, ``spec validate`` and ``register``: from a YAML file to a registered pair."""

from __future__ import annotations

from ecs_canary.errors import UnknownServicePair
from ecs_canary.registration import RegistrationConflict, RegistrationError, preflight, register
from ecs_canary.spec import spec_json_schema, spec_warnings
from rich.text import Text

from ecs_canary_cli import render
from ecs_canary_cli.commands.base import EXIT_OK, EXIT_USAGE, App, CliError, read_spec

__all__ = ["deregister_command", "register_command", "spec_schema", "spec_validate"]


def spec_schema(app: App) -> int:
    app.emit_json(spec_json_schema())
    return EXIT_OK


def spec_validate(app: App) -> int:
    """Offline: parse the file and show the plan it resolves to, with the exact weights per step.

    Warnings (a bake too short for the metric rule, emulator-only metric timing) follow the tables;
    they do not change the exit code, since the spec runs as written.
    """
    spec = read_spec(app.args.spec)
    app.out.print(Text(f"✓ {app.args.spec}: pair {spec.name} is valid", style="green"))
    app.out.print(render.spec_table(spec))
    app.out.print(render.plan_table(spec))
    for warning in spec_warnings(spec):
        app.out.print(Text(f"warning: {warning}", style="yellow"))
    return EXIT_OK


def register_command(app: App) -> int:
    """Validate, check every named resource, then store the pair (``--dry-run`` stops before storing)."""
    spec = read_spec(app.args.spec)
    ctx = app.context()
    store = ctx.store()
    try:
        if app.args.dry_run:
            found = preflight(
                spec,
                ecs=ctx.ecs,
                elbv2=ctx.elbv2,
                route53=ctx.route53,
                cloudwatch=ctx.cloudwatch,
                sts=ctx.client("sts"),
                lambda_client=ctx.client("lambda"),
                hook_prefix=ctx.hook_prefix,
            )
            live, baseline, router = found.live_service, found.idle_baseline, found.router
            headline = f"✓ pair {spec.name} can be registered (dry run: nothing stored)"
        else:
            try:
                store.get_pair(spec.name)
                verb = "re-registered"
            except UnknownServicePair:
                verb = "registered"
            pair = register(
                store,
                spec,
                ecs=ctx.ecs,
                elbv2=ctx.elbv2,
                route53=ctx.route53,
                cloudwatch=ctx.cloudwatch,
                sts=ctx.client("sts"),
                lambda_client=ctx.client("lambda"),
                hook_prefix=ctx.hook_prefix,
            )
            live, baseline, router = pair.live_service, pair.idle_baseline, None
            headline = f"✓ {verb} pair {spec.name}"
    except RegistrationConflict as exc:
        raise CliError([f"cannot register pair {spec.name}:", *(f"  {p}" for p in exc.problems)]) from exc
    except RegistrationError as exc:
        count = len(exc.problems)
        header = f"cannot register pair {spec.name} ({count} problem{'s' if count != 1 else ''}):"
        raise CliError([header, *(f"  {p}" for p in exc.problems)], EXIT_USAGE) from exc

    app.out.print(Text(headline, style="green"))
    app.out.print(render.spec_table(spec, live=live, idle_baseline=baseline, router=router))
    app.out.print(render.plan_table(spec, live=live))
    idle = spec.other(live).name
    app.out.print(
        Text(f"The next release of {idle} (a new ECS deployment) is rolled out with this plan.", style="dim")
    )
    return EXIT_OK


def deregister_command(app: App) -> int:
    """Remove a pair's spec and its index entries; refused while one of its deployments is active."""
    store = app.context().store()
    name = app.args.pair
    try:
        pair = store.delete_pair(name)
    except ValueError as exc:
        raise CliError(f"cannot deregister pair {name}: {exc}") from exc
    app.out.print(Text(f"✓ deregistered pair {name}", style="green"))
    app.out.print(
        f"releases of {' and '.join(pair.spec.service_names)} no longer start deployments; "
        "traffic and the services were not changed, and past deployment records are kept"
    )
    return EXIT_OK
