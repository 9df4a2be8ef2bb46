"""`durable stuck`: the runs that need an operator, why, and what to do."""

from __future__ import annotations

from typing import Annotated

import typer

from durable import DurableClient, StuckRun

from .main import app, print_json, with_client


def show(found: list[StuckRun]) -> None:
    if not found:
        typer.echo("no stuck runs")
        return
    for run in found:
        org = f"  org {run.org_id}" if run.org_id else ""
        typer.echo(f"{run.kind:<22} {run.workflow_id}{org}")
        typer.echo(f"{'':<22} why:  {run.detail}")
        typer.echo(f"{'':<22} do:   {run.remedy}")


@app.command()
def stuck(
    org: Annotated[
        str | None, typer.Option("--org", help="Only this org's runs (default: every org).")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10_000, help="Open runs to examine, newest first.")
    ] = 500,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List runs that will not move on by themselves: a workflow task that keeps failing (a bug,
    a nondeterminism after a deploy), a step retrying past 5 attempts, an agent session waiting
    for capacity, a wait open past its timeout; each with why and what to do. Exits 1 when
    there is any."""

    async def go(client: DurableClient) -> list[StuckRun]:
        return await client.stuck(org_id=org, limit=limit)

    found = with_client(go, events=True)
    if as_json:
        print_json([s.model_dump(mode="json") for s in found])
    else:
        show(found)
    if found:
        raise typer.Exit(1)
