"""`durable keys`: the HTTP API's keys per org (made, listed, revoked with database access), and
how the CLI sends events and approvals with one (DURABLE_API_KEY, or the key `durable dev`
wrote for org `local`)."""

from __future__ import annotations

import getpass
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer

from durable import parse_duration
from store import KeyRefused, KeyStore
from workers.settings import Settings

from .main import Exit, app, fail, print_json, run

T = TypeVar("T")

keys_app = typer.Typer(
    help="API keys: each acts for one org with the scopes it was given. The secret is shown "
    "once, when made; the database keeps only its hash.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")

Org = Annotated[str, typer.Option("--org", help="The org the key acts for.")]


def _with_keys(action: Callable[[KeyStore], Awaitable[T]]) -> T:
    from store import create_pool
    from workers.runtime import database_url

    async def go() -> T:
        pool = await create_pool(database_url(Settings()), max_size=1)
        try:
            return await action(KeyStore(pool))
        finally:
            await pool.close()

    try:
        return run(go())
    except KeyRefused as err:
        raise fail(Exit.USAGE, str(err)) from None


@keys_app.command("create")
def keys_create(
    org: Org,
    name: Annotated[str, typer.Option("--name", help="What the key is for (unique per org).")],
    scope: Annotated[
        list[str],
        typer.Option(
            "--scope",
            help="A scope, repeatable: events:send, runs:start, runs:read, approve, admin, "
            "cross-org:read.",
        ),
    ],
    expires_in: Annotated[
        str | None, typer.Option("--expires-in", help="Lifetime, e.g. 90d; default: none.")
    ] = None,
) -> None:
    """Make a key and print it once: store it where the caller keeps secrets."""
    from api.auth import unknown_scopes

    scopes = [s for part in scope for s in re.split(r"[,\s]+", part) if s]
    unknown = unknown_scopes(scopes)
    if unknown:
        raise fail(Exit.USAGE, f"unknown scope(s) {', '.join(unknown)}")
    expires = datetime.now(UTC) + parse_duration(expires_in) if expires_in else None
    made = _with_keys(
        lambda keys: keys.create(
            org, name, scopes, created_by=f"cli:{getpass.getuser()}", expires_at=expires
        )
    )
    typer.echo(made.secret)
    typer.echo(
        f"made key {made.key.prefix} ({made.key.name}) for org {org!r} with scopes "
        f"{', '.join(made.key.scopes)}; it is shown only now",
        err=True,
    )


@keys_app.command("list")
def keys_list(
    org: Org, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
) -> None:
    """The org's keys by prefix and name (never their secrets)."""
    found = _with_keys(lambda keys: keys.list(org))
    rows: list[dict[str, Any]] = [
        {
            "prefix": k.prefix,
            "name": k.name,
            "scopes": list(k.scopes),
            "created_at": k.created_at.isoformat(timespec="seconds"),
            "expires_at": k.expires_at.isoformat(timespec="seconds") if k.expires_at else None,
            "revoked_at": k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else None,
        }
        for k in found
    ]
    if as_json:
        print_json(rows)
        return
    now = datetime.now(UTC)
    for key, row in zip(found, rows, strict=True):
        state = "active" if key.usable_at(now) else ("revoked" if key.revoked_at else "expired")
        typer.echo(f"{row['prefix']:<40} {row['name']:<20} {state:<8} {','.join(row['scopes'])}")
    if not rows:
        typer.echo(f"org {org!r} has no keys (durable keys create --org {org} ...)")


@keys_app.command("revoke")
def keys_revoke(
    org: Org, key: Annotated[str, typer.Argument(help="The key's name or prefix.")]
) -> None:
    """Revoke a key: the API refuses it within 10 seconds (its cache of verified keys)."""
    revoked = _with_keys(lambda keys: keys.revoke(org, key))
    if revoked is None:
        raise fail(Exit.NOT_FOUND, f"org {org!r} has no key {key!r}")
    typer.echo(f"revoked {revoked.prefix} ({revoked.name})")


def send_over_api(settings: Settings, key: str, event_type: str, payload: dict[str, Any]) -> None:
    """POST an event to the API as the key's principal and print the receipt; a refusal
    exits with the API's own message."""
    import httpx

    url = f"{settings.effective_api_url}/events"
    try:
        response = httpx.post(
            url,
            json={"type": event_type, **payload},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
    except httpx.HTTPError as err:
        raise fail(
            Exit.UNAVAILABLE, f"cannot reach the API at {url}: {err} (is `durable dev` running?)"
        ) from None
    try:
        body = response.json()
    except json.JSONDecodeError:
        body = {"error": response.text[:500]}
    if response.status_code >= 400:
        code = {404: Exit.NOT_FOUND, 503: Exit.UNAVAILABLE}.get(response.status_code, Exit.USAGE)
        raise fail(code, f"the API refused it ({response.status_code}): {body.get('error', body)}")
    print_json(body)
