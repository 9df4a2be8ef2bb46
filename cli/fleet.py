"""`durable fleet`: execution pools, project routes, registration tokens, fleet status, and the
worker host daemon."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any, TypeVar

import typer

from store import PROVIDERS, FleetError, FleetStore
from workers.settings import Settings

from .main import Exit, app, fail, print_json, run

T = TypeVar("T")

fleet_app = typer.Typer(
    help="The worker fleet: execution pools per org, each project's route over them, "
    "registration tokens for worker hosts, fleet status, and the worker daemon itself.",
    no_args_is_help=True,
)
pools_app = typer.Typer(help="An org's execution provider pools.", no_args_is_help=True)
route_app = typer.Typer(help="A project's execution route.", no_args_is_help=True)
tokens_app = typer.Typer(help="Registration tokens for worker hosts.", no_args_is_help=True)
fleet_app.add_typer(pools_app, name="pools")
fleet_app.add_typer(route_app, name="route")
fleet_app.add_typer(tokens_app, name="tokens")
app.add_typer(fleet_app, name="fleet")

Org = Annotated[str, typer.Option("--org", help="The org the pools belong to.")]
Project = Annotated[str, typer.Option("--project", help="The project.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _with_fleet(action: Callable[[FleetStore], Awaitable[T]]) -> T:
    """Run `action` against the fleet tables (DATABASE_URL, or `durable dev`'s database); a
    request that cannot be done as asked exits 2 with why."""
    from store import create_pool
    from workers.runtime import database_url

    async def go() -> T:
        pool = await create_pool(database_url(Settings()), max_size=1)
        try:
            return await action(FleetStore(pool))
        finally:
            await pool.close()

    try:
        return run(go())
    except FleetError as err:
        raise fail(Exit.USAGE, str(err)) from None


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


@pools_app.command("create")
def pools_create(
    name: Annotated[str, typer.Argument(help="The pool's name, unique in the org.")],
    org: Org,
    provider: Annotated[str, typer.Option("--provider", help=f"One of: {', '.join(PROVIDERS)}.")],
    mode: Annotated[str, typer.Option("--mode", help="The provider's mode.")] = "managed",
    max_sessions: Annotated[
        int | None,
        typer.Option("--max-sessions", min=1, help="Capacity policy: sessions at once, at most."),
    ] = None,
    credential_ref: Annotated[
        str | None, typer.Option("--credential-ref", help="Where the pool's credential lives.")
    ] = None,
) -> None:
    """Create an execution provider pool in an org."""
    capacity = {"max_sessions": max_sessions} if max_sessions else {}
    pool = _with_fleet(
        lambda f: f.create_pool(
            org, name, provider, mode=mode, capacity=capacity, credential_ref=credential_ref
        )
    )
    typer.echo(f"created pool {pool.name} ({pool.provider}, {pool.mode}) id {pool.id}")


@pools_app.command("list")
def pools_list(org: Org, as_json: AsJson = False) -> None:
    """List an org's pools."""
    pools = _with_fleet(lambda f: f.pools(org))
    if as_json:
        print_json([p.__dict__ for p in pools])
        return
    if not pools:
        typer.echo(f"org {org!r} has no pools yet (`durable fleet pools create`)")
    for p in pools:
        typer.echo(f"{p.name:<24}{p.provider:<12}{p.mode:<12}{p.capacity or ''}  {p.id}")


@route_app.command("set")
def route_set(
    org: Org,
    project: Project,
    preferred: Annotated[str, typer.Option(help="Pools tried first (comma-separated).")] = "",
    allowed: Annotated[str, typer.Option(help="Pools tried next.")] = "",
    forbidden: Annotated[str, typer.Option(help="Pools never used.")] = "",
    fallback: Annotated[
        str | None, typer.Option(help="The pool used when the others are full.")
    ] = None,
) -> None:
    """Set a project's execution route (pools by name or id)."""
    from workers.fleet.admin import route_json

    async def go(f: FleetStore) -> dict[str, Any] | None:
        route = await f.set_route(
            org,
            project,
            preferred=_names(preferred),
            allowed=_names(allowed),
            forbidden=_names(forbidden),
            fallback=fallback or None,
        )
        return route_json(route, await f.pools(org))

    print_json(_with_fleet(go) or {})


@route_app.command("show")
def route_show(org: Org, project: Project) -> None:
    """Show a project's execution route (a project with only legacy sandbox settings is
    given one first)."""
    from workers.fleet.admin import route_json

    async def go(f: FleetStore) -> dict[str, Any] | None:
        return route_json(await f.route(org, project), await f.pools(org))

    found = _with_fleet(go)
    if found is None:
        raise fail(
            Exit.NOT_FOUND,
            f"project {project!r} has no execution route; its sessions run on the worker's own "
            "queue (`durable fleet route set`)",
        )
    print_json(found)


@fleet_app.command("legacy-sandbox")
def legacy_sandbox(
    org: Org,
    project: Project,
    provider: Annotated[str, typer.Option("--provider", help=f"One of: {', '.join(PROVIDERS)}.")],
    mode: Annotated[str, typer.Option("--mode")] = "managed",
    credential_id: Annotated[str | None, typer.Option("--credential-id")] = None,
) -> None:
    """Write a project's legacy sandbox settings (the old model). A project with these and no
    route is given a pool and a route when its next session is dispatched."""
    _with_fleet(lambda f: f.set_legacy_sandbox(org, project, provider, mode, credential_id))
    typer.echo(f"legacy sandbox settings of {project!r}: {provider} ({mode})")


@tokens_app.command("create")
def tokens_create(
    org: Org,
    project: Project,
    pool: Annotated[str, typer.Option("--pool", help="The pool its workers serve.")],
    name: Annotated[str, typer.Option("--name", help="A name to know it by.")] = "",
    expires_days: Annotated[
        float, typer.Option("--expires-days", min=0.001, help="Days it can be used.")
    ] = 30,
) -> None:
    """Create a registration token for worker hosts of a project on a pool. The token is
    printed once: only its hash is kept."""
    from workers.fleet.admin import create_registration_token

    created = _with_fleet(
        lambda f: create_registration_token(
            f, org, project, pool, name=name, ttl=timedelta(days=expires_days)
        )
    )
    typer.echo(created.token.plaintext)
    typer.echo(
        f"registration token {created.id} for project {project} on pool {created.pool.name}, "
        f"expires {created.expires_at.isoformat(timespec='seconds')}; it is shown only now",
        err=True,
    )


@tokens_app.command("revoke")
def tokens_revoke(
    org: Org, token_id: Annotated[str, typer.Argument(help="The token's id.")]
) -> None:
    """Revoke a registration token: its workers' next JWT refresh is refused, and their JWTs
    stop being accepted."""
    if not _with_fleet(lambda f: f.revoke(token_id, org_id=org)):
        raise fail(Exit.NOT_FOUND, f"org {org!r} has no unrevoked registration token {token_id!r}")
    typer.echo(f"revoked {token_id}")


@fleet_app.command("status")
def status(org: Org, project: Project, as_json: AsJson = False) -> None:
    """A project's fleet: its route, each pool's workers online, slots and sessions in use, and
    every worker with its last heartbeat."""
    from workers.fleet.admin import fleet_status

    grace = Settings().fleet_heartbeat_grace
    found = _with_fleet(lambda f: fleet_status(f, org, project, grace))
    if as_json:
        print_json(found)
        return
    route = found["route"]
    if route is None:
        typer.echo(f"project {project!r} has no execution route (sessions run on the own queue)")
    else:
        typer.echo(
            f"route: preferred {route['preferred']} allowed {route['allowed']} "
            f"forbidden {route['forbidden']} fallback {route['fallback']}"
        )
    for p in found["pools"]:
        typer.echo(
            f"pool {p['name']:<20}{p['provider']:<10}{p['workers_online']} online  "
            f"{p['in_use']}/{p['slots']} in use"
        )
    for w in found["workers"]:
        typer.echo(
            f"worker {w['id']:<22}{w['pool']:<20}{w['status']:<13}"
            f"heartbeat {w['last_heartbeat_seconds_ago']}s ago  "
            f"{w['active']}/{w['max_concurrency']} active  {w['hostname']}"
        )
    if not found["workers"]:
        typer.echo("no workers registered for this project")


@fleet_app.command("worker")
def worker(
    api: Annotated[str, typer.Option("--api", help="The platform API, e.g. http://host:8400.")],
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="The registration token (default: DURABLE_REGISTRATION_TOKEN; prefer it, "
            "so the token is not in the process list).",
        ),
    ] = None,
    max_concurrency: Annotated[
        int, typer.Option("--max-concurrency", min=1, help="Sessions at once (activity slots).")
    ] = 4,
    capability: Annotated[
        list[str] | None, typer.Option("--capability", help="What this host offers (repeat).")
    ] = None,
    heartbeat_seconds: Annotated[
        float | None,
        typer.Option("--heartbeat-seconds", min=0.1, help="Default: what the platform says."),
    ] = None,
) -> None:
    """Run a worker host daemon: register with a registration token, run sessions routed to its
    pool on TEMPORAL_ADDRESS, heartbeat, refresh its runtime JWT, and deregister on SIGTERM or
    Ctrl-C."""
    from pydantic import SecretStr

    from workers import logs
    from workers.fleet.daemon import DaemonConfig, DaemonStopped, run_daemon

    secret = token or os.environ.get("DURABLE_REGISTRATION_TOKEN")
    if not secret:
        raise fail(
            Exit.USAGE, "give the registration token (DURABLE_REGISTRATION_TOKEN or --token)"
        )
    settings = Settings()
    logs.configure(settings.log_format, settings.log_level)
    config = DaemonConfig(
        api=api,
        token=SecretStr(secret),
        max_concurrency=max_concurrency,
        capabilities=capability or ["local"],
        heartbeat_seconds=heartbeat_seconds,
    )
    try:
        run(run_daemon(settings, config))
    except DaemonStopped as err:
        raise fail(Exit.UNAVAILABLE, str(err)) from None
