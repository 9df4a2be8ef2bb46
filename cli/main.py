"""`durable`: run the embedded stack or a worker, and start, watch and cancel runs."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from durable import (
    DurableClient,
    DurableError,
    Event,
    EventNotAcknowledged,
    InputValidationError,
    RunAlreadyStarted,
    RunCancelled,
    RunDescription,
    RunHandle,
    Tenancy,
    UnknownRun,
    UnknownWorkflow,
    WorkflowFailed,
    parse_event,
    validation_message,
)
from store import DatabaseUnreachable, EventStore, ProgressLine, SessionRecord, result_ref
from workers.runtime import TemporalUnreachable, database_unreachable
from workers.settings import Settings

T = TypeVar("T")


class Exit(IntEnum):
    OK = 0
    RUN_FAILED = 1  # the run failed or was cancelled
    USAGE = 2  # bad arguments or input
    NOT_FOUND = 3  # unknown workflow or run
    UNAVAILABLE = 4  # Temporal or Postgres unreachable


app = typer.Typer(
    help=(
        "Durable workflows for long-running AI agents, on Temporal.\n\n"
        "Start everything locally with `durable dev`, then `durable start rensei/example.run "
        "--wait` in another terminal."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(code: Exit, message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(int(code))


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine, turning the errors a user can act on into a message and an exit code."""
    try:
        return asyncio.run(coro)
    except (UnknownWorkflow, UnknownRun) as err:
        raise fail(Exit.NOT_FOUND, str(err)) from None
    except InputValidationError as err:
        raise fail(Exit.USAGE, str(err)) from None
    except RunAlreadyStarted as err:
        raise fail(Exit.USAGE, f"{err}; pick another --id") from None
    except (WorkflowFailed, RunCancelled) as err:
        raise fail(Exit.RUN_FAILED, str(err)) from None
    except DatabaseUnreachable as err:  # names the setting that led to that database
        raise fail(Exit.UNAVAILABLE, database_unreachable(err, Settings())) from None
    except (TemporalUnreachable, EventNotAcknowledged) as err:
        raise fail(Exit.UNAVAILABLE, str(err)) from None
    except DurableError as err:
        raise fail(Exit.USAGE, str(err)) from None
    except OSError as err:  # e.g. the embedded database's socket is not there
        raise fail(
            Exit.UNAVAILABLE, f"{err}; is `durable dev` running, or DATABASE_URL set?"
        ) from None


def with_client(action: Callable[[DurableClient], Awaitable[T]], *, events: bool = False) -> T:
    async def go() -> T:
        from workers.runtime import durable_client

        client = await durable_client(Settings(), events=events)
        return await action(client)

    return run(go())


async def org_of_run(workflow_id: str, org: str | None) -> str:
    """`org` if given, else the org the run belongs to (from its Temporal memo); '' for a run of
    no org or one Temporal does not know. Store reads run as that org, under row-level
    security."""
    if org is not None:
        return org
    from workers.runtime import durable_client

    try:
        client = await durable_client(Settings())
    except TemporalUnreachable as err:
        raise fail(Exit.UNAVAILABLE, f"{err}; or name the run's org with --org") from None
    try:
        tenancy = (await client.get(workflow_id).describe()).tenancy
    except UnknownRun:
        return ""
    return tenancy.org_id if tenancy is not None else ""


WORKFLOW_ID = typer.Argument(help="The run's workflow id (Temporal's), as `start` printed it.")

ORG_OPTION = typer.Option(
    "--org",
    help="The run's org; by default the org its Temporal memo names ('' for none).",
)


def print_json(value: BaseModel | dict[str, Any] | list[Any]) -> None:
    if isinstance(value, BaseModel):
        typer.echo(value.model_dump_json(indent=2))
    else:
        typer.echo(json.dumps(value, indent=2, default=str))


def read_input(inline: str | None, file: Path | None) -> dict[str, Any]:
    if inline is not None and file is not None:
        raise fail(Exit.USAGE, "give --input or --input-file, not both")
    text = "{}"
    if file is not None:
        if str(file) == "-":
            text = sys.stdin.read()
        elif not file.exists():
            raise fail(Exit.USAGE, f"input file {file} does not exist")
        else:
            text = file.read_text()
    elif inline is not None:
        text = inline
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise fail(Exit.USAGE, f"input is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise fail(Exit.USAGE, 'input must be a JSON object, e.g. \'{"topic": "x"}\'')
    return data


def check_start(workflow_id: str, data: dict[str, Any]) -> None:
    """Fail fast, before connecting anywhere, on an unknown workflow or input that won't fit."""
    from workflows import registry

    def check() -> None:
        wf = registry().workflow(workflow_id)
        try:
            wf.input_type.model_validate(data)
        except ValidationError as err:
            raise InputValidationError(f"workflow {wf.id!r}", validation_message(err)) from None

    async def checked() -> None:
        check()

    run(checked())


def show_status(desc: RunDescription) -> None:
    typer.echo(f"workflow id   {desc.workflow_id}")
    typer.echo(f"run id        {desc.run_id}")
    typer.echo(f"workflow type {desc.workflow}")
    typer.echo(f"status        {desc.status.value}")
    if desc.current_steps:
        typer.echo(f"step          {', '.join(desc.current_steps)}")
    if desc.waiting_on:
        typer.echo(f"waiting on    {desc.waiting_on}")
    for command in desc.resolve_with:
        typer.echo(f"resolve with  {command}")
    for line in desc.ignored:
        typer.echo(f"ignored       {line}")
    for retrying in desc.retrying:
        typer.echo(f"retrying      {retrying}")
    if desc.completed_steps is not None:
        typer.echo(f"steps done    {desc.completed_steps}")
    if desc.started_at:
        typer.echo(f"started       {desc.started_at.isoformat(timespec='seconds')}")
    if desc.closed_at:
        typer.echo(f"closed        {desc.closed_at.isoformat(timespec='seconds')}")
    if desc.failure:
        typer.echo(f"failure       {desc.failure}")


@app.command()
def dev(
    run_example: Annotated[
        bool, typer.Option("--run-example", help="Start the example workflow once ready.")
    ] = False,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo/--no-demo",
            help="With the local Linear, run the backlog-triage PM agent's demo once ready.",
        ),
    ] = True,
) -> None:
    """Run the whole product locally: Temporal dev server (UI on :8233), PostgreSQL and the
    worker, keeping data in DURABLE_DATA_DIR (default ./.durable). Ctrl-C stops it all. While
    it runs, the other commands find its data folder from any directory: DURABLE_DATA_DIR if
    set, else a .durable folder with a running stack in the current directory or above it,
    else the record it writes in $XDG_STATE_HOME/durable/dev.json (default
    ~/.local/state/durable/dev.json, owner-only; a record of a stopped stack is ignored).

    TEMPORAL_ADDRESS and DATABASE_URL use existing infrastructure instead."""
    from api.serve import NotStarting, check_config
    from workers import logs
    from workers.dev import Interrupted, run_dev, say
    from workers.embedded import StackNotStarting

    settings = Settings()
    logs.configure("text" if sys.stderr.isatty() else settings.log_format, settings.log_level)
    try:
        oidc = check_config(settings)
    except NotStarting as err:
        raise fail(Exit.USAGE, f"not starting: {err}") from None

    async def serve(client: DurableClient, store: EventStore) -> None:
        from api.serve import build_app
        from api.server import ApiServer

        http_app = await build_app(settings, client, store, oidc)
        api = ApiServer(http_app, settings.api_port, settings.api_host)
        await api.start()
        say(f"  HTTP API         {api.address}  (POST /events, GET /events/{{id}})")
        say(f"  worker fleet     {api.address}/api/workers  (`durable fleet --help`)")
        if settings.codec_keys is not None:
            say(f"  codec endpoint   {api.address}/codec  (payloads are encrypted)")
        if run_example:
            handle: RunHandle[Any] = await client.start("rensei/example.run", {})
            say(f"started the example run {handle.workflow_id}; waiting for its result ...")
            say((await handle.result()).model_dump_json(indent=2))

    try:
        run(run_dev(settings, serve, demo=demo))
    except (NotStarting, StackNotStarting) as err:
        raise fail(Exit.USAGE, f"not starting: {err}") from None
    except Interrupted as err:  # everything it had started is stopped
        typer.echo(f"interrupted ({err}): stopped everything it had started", err=True)
        raise typer.Exit(128 + err.signum) from None


@app.command()
def api(
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on (DURABLE_API_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Port to listen on (DURABLE_API_PORT).")
    ] = None,
) -> None:
    """Serve the HTTP API against TEMPORAL_ADDRESS and DATABASE_URL: events, approvals, reads,
    Linear's webhook, the codec endpoint and the worker fleet, with /healthz and /readyz.
    SIGTERM or Ctrl-C stops it gracefully. Run workers with `durable worker`."""
    from api.serve import NotStarting, check_config, run_api
    from workers import logs

    updates = {k: v for k, v in {"api_host": host, "api_port": port}.items() if v is not None}
    settings = Settings().model_copy(update=updates)
    logs.configure(settings.log_format, settings.log_level)
    if settings.database_url is None:
        raise fail(Exit.USAGE, "DATABASE_URL is not set (the API keeps events and keys there)")
    try:
        oidc = check_config(settings)
    except NotStarting as err:
        raise fail(Exit.USAGE, f"not starting: {err}") from None
    try:
        run(run_api(settings, oidc))
    except NotStarting as err:
        raise fail(Exit.USAGE, f"not starting: {err}") from None


@app.command()
def worker() -> None:
    """Run a worker for every registered workflow against TEMPORAL_ADDRESS and DATABASE_URL.
    SIGTERM or Ctrl-C stops it gracefully."""
    from workers import logs
    from workers.main import run_worker

    settings = Settings()
    logs.configure(settings.log_format, settings.log_level)
    run(run_worker(settings))


@app.command()
def migrate() -> None:
    """Apply database migrations to DATABASE_URL (idempotent)."""
    from workers.main import run_migrations

    applied = run(run_migrations(Settings()))
    typer.echo(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none needed'}")


@app.command("sync-schedules")
def sync_schedules() -> None:
    """Create, update or delete the Temporal Schedules of cron-triggered workflows to match the
    code (workers also do this when they start). Prints what changed."""
    from workers.main import sync

    print_json(run(sync(Settings())))


@app.command("workflows")
def list_workflows(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List registered workflows, their triggers and input fields."""
    from workflows import registry

    rows = [
        {
            "id": wf.id,
            "trigger": None
            if wf.trigger is None
            else str(getattr(wf.trigger, "cron", None) or getattr(wf.trigger, "event", "")),
            "description": wf.description,
            "input": wf.input_type.model_json_schema(),
            "throttle": wf.throttle
            and {
                "key": wf.throttle.key,
                "limit": wf.throttle.limit,
                "period_seconds": wf.throttle.window.total_seconds(),
                "excess": wf.throttle.excess,
            },
            "concurrency": wf.concurrency
            and {"key": wf.concurrency.key, "limit": wf.concurrency.limit},
        }
        for wf in registry().workflows
    ]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        fields = ", ".join(row["input"].get("properties", {}))
        limits = "".join(
            f"  {name}={value['key']}:{value['limit']}"
            + (f"/{value['period_seconds']:g}s,{value['excess']}" if name == "throttle" else "")
            for name in ("throttle", "concurrency")
            if (value := row[name])
        )
        typer.echo(
            f"{row['id']:<32} trigger={row['trigger'] or 'manual'}{limits}  input: {{{fields}}}"
        )
        if row["description"]:
            typer.echo(f"{'':<32} {row['description']}")


@app.command()
def start(
    workflow: Annotated[str, typer.Argument(help="Workflow id, e.g. rensei/example.run.")],
    input: Annotated[
        str | None, typer.Option("--input", "-i", help="Input as inline JSON.")
    ] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input-file", "-f", help="Input JSON file ('-' for stdin).")
    ] = None,
    workflow_id: Annotated[
        str | None,
        typer.Option("--workflow-id", "--id", help="Temporal workflow id (default: generated)."),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", "-w", help="Wait and print the result.")] = False,
    org: Annotated[str, typer.Option("--org", help="The org the run belongs to.")] = "",
    workspace: Annotated[str, typer.Option("--workspace", help="Its workspace.")] = "",
    project: Annotated[str, typer.Option("--project", help="Its project.")] = "",
) -> None:
    """Start a run of WORKFLOW and print its workflow id (or, with --wait, its result)."""
    data = read_input(input, input_file)
    check_start(workflow, data)
    try:
        tenancy = Tenancy(org_id=org, workspace_id=workspace, project_id=project)
    except ValidationError as err:
        raise fail(Exit.USAGE, f"bad --org/--workspace/--project: {err}") from None

    async def go(client: DurableClient) -> None:
        handle: RunHandle[Any] = await client.start(workflow, data, id=workflow_id, tenancy=tenancy)
        typer.echo(handle.workflow_id)
        if wait:
            print_json(await handle.result())

    with_client(go)


@app.command()
def result(workflow_id: Annotated[str, WORKFLOW_ID]) -> None:
    """Wait for a run to finish and print its result as JSON."""

    async def go(client: DurableClient) -> None:
        print_json(await client.get(workflow_id).result())

    with_client(go)


@app.command()
def status(
    workflow_id: Annotated[str, WORKFLOW_ID],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a run's status, current step and what it waits on."""

    async def go(client: DurableClient) -> None:
        desc = await client.get(workflow_id).describe()
        print_json(desc) if as_json else show_status(desc)

    with_client(go)


@app.command()
def cancel(
    workflow_id: Annotated[str, WORKFLOW_ID],
    reason: Annotated[str, typer.Option("--reason", help="Recorded in the run's history.")] = "",
) -> None:
    """Cancel a run: a running step sees the cancellation and can clean up."""

    async def go(client: DurableClient) -> None:
        handle: RunHandle[Any] = client.get(workflow_id)
        await handle.describe()  # UnknownRun if there is none
        await handle.cancel(reason)
        typer.echo(f"cancellation requested for {workflow_id}")

    with_client(go)


def send(event: Event[Any]) -> None:
    async def go(client: DurableClient) -> None:
        print_json(await client.send_event(event))

    with_client(go, events=True)


@app.command("send-event")
def send_event(
    event_type: Annotated[str, typer.Argument(help="Event type, e.g. rensei/approval.resolved.")],
    data: Annotated[str, typer.Option("--data", "-d", help="The event's data as JSON.")] = "{}",
    event_id: Annotated[
        str | None, typer.Option("--id", help="Event id; sending one id twice acts once.")
    ] = None,
    org: Annotated[
        str, typer.Option("--org", help="The org the event belongs to (runs it starts too).")
    ] = "",
    workspace: Annotated[str, typer.Option("--workspace", help="Its workspace.")] = "",
    project: Annotated[str, typer.Option("--project", help="Its project.")] = "",
) -> None:
    """Send an event: start the workflows it triggers and resolve the waits it matches. Prints
    what it did (runs started, waits resolved)."""
    from workflows import registry

    payload: dict[str, Any] = {"data": read_input(data, None)}
    if event_id:
        payload["id"] = event_id
    if org or workspace or project:
        payload["tenancy"] = {"org_id": org, "workspace_id": workspace, "project_id": project}
    settings = Settings()
    key = settings.cli_api_key()
    if key is not None:  # as the key's principal, through the API
        from .keys import send_over_api

        if not org:
            payload.pop("tenancy", None)
        send_over_api(settings, key, event_type, payload)
        return

    async def parse() -> Event[Any]:
        return parse_event(registry().event_type(event_type), payload)

    send(run(parse()))


@app.command()
def approve(
    workflow_id: Annotated[str, typer.Argument(help="The workflow id of the waiting run.")],
    decision: Annotated[
        str, typer.Option("--decision", help="approve, reject or revise.")
    ] = "approve",
    notes: Annotated[str, typer.Option("--notes", help="Reviewer's notes.")] = "",
    by: Annotated[str, typer.Option("--by", help="Who decided.")] = "",
    item: Annotated[
        str,
        typer.Option(
            "--item", help="The item decided, for runs that ask per item (an audit's finding id)."
        ),
    ] = "",
) -> None:
    """Resolve a run's approval wait: sends rensei/approval.resolved with
    data.workflow_id = WORKFLOW_ID.

    With an API key (DURABLE_API_KEY, or the one `durable dev` made for org `local`) it goes
    through the HTTP API, which records the key as who approved. Without one, it needs direct
    database access and records `--by` (default: your user name) as an operator's decision."""
    from workflows.events import ApprovalResolved

    data = {"workflow_id": workflow_id, "decision": decision, "notes": notes, "item": item}
    settings = Settings()
    key = settings.cli_api_key()
    if key is not None:
        from .keys import send_over_api

        send_over_api(settings, key, ApprovalResolved.type, {"data": data})
        return

    operator = by or f"operator:{getpass.getuser()}"
    event = run(_parse(ApprovalResolved, {"data": {**data, "by": operator, "via": "cli"}}))

    async def of_the_runs_org(client: DurableClient) -> None:
        try:  # the approval belongs to the run's org; a run not started yet: to none
            tenancy = (await client.get(workflow_id).describe()).tenancy
        except UnknownRun:
            tenancy = None
        print_json(await client.send_event(event.model_copy(update={"tenancy": tenancy})))

    with_client(of_the_runs_org, events=True)


async def _parse(event_type: type[Event[Any]], payload: dict[str, Any]) -> Event[Any]:
    return parse_event(event_type, payload)


@app.command()
def waits(
    workflow_id: Annotated[str, WORKFLOW_ID],
    org: Annotated[str | None, ORG_OPTION] = None,
) -> None:
    """List the events a run is waiting for."""
    from store import EventStore, create_pool
    from workers.runtime import database_url

    async def go() -> list[dict[str, Any]]:
        pool = await create_pool(database_url(Settings()), max_size=1)
        try:
            org_id = await org_of_run(workflow_id, org)
            return await EventStore(pool).open_waits(workflow_id, org_id=org_id)
        finally:
            await pool.close()

    found = run(go())
    if not found:
        typer.echo(f"{workflow_id} waits for no event")
    for wait in found:
        typer.echo(
            f"{wait['step_id']:<24} {wait['event_type']:<32} match={json.dumps(wait['match'])}"
        )


@app.command()
def steps(
    workflow_id: Annotated[str, WORKFLOW_ID],
    org: Annotated[str, typer.Option("--org", help="The org whose audit you read.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List a run's step attempts from the step audit: attempt, status, timings, error. Only
    the given org's rows are visible; another org's run shows nothing."""
    from api.app import step_json
    from store import StepAudit, create_pool
    from workers.runtime import database_url

    async def go() -> list[dict[str, Any]]:
        pool = await create_pool(database_url(Settings()), max_size=1)
        try:
            return [step_json(a) for a in await StepAudit(pool).steps(org, workflow_id)]
        finally:
            await pool.close()

    found = run(go())
    if as_json:
        print_json(found)
        return
    if not found:
        typer.echo(f"no steps recorded for workflow id {workflow_id} in org {org!r}")
    for row in found:
        took = f"{row['duration_ms']:.0f} ms" if row["duration_ms"] is not None else "-"
        line = f"{row['step_id']:<24} #{row['attempt']:<2} {row['status']:<10} {took:>9}"
        line += f"  {row['action']}  {row['started_at']}"
        typer.echo(line + (f"\n{'':<28}{row['error']}" if row["error"] else ""))


def session_json(record: SessionRecord, progress: list[ProgressLine]) -> dict[str, Any]:
    return {
        "session_id": record.session_id,
        "status": record.status,
        "project": record.project,
        "runtime": record.runtime,
        "requested_by": record.requested_by,
        "agent_id": record.agent_id,
        "pool": record.pool,
        "worker_id": record.worker_id,
        "placement": record.placement,
        "started_at": record.started_at.isoformat(),
        "finished_at": record.finished_at.isoformat() if record.finished_at else None,
        "error": record.error,
        "result_ref": result_ref(record.session_id),
        "progress": [
            {"attempt": p.attempt, "seq": p.seq, "line": p.line, "at": p.at.isoformat()}
            for p in progress
        ],
        "result": record.result,
        "transcript": record.transcript,
    }


@app.command()
def session(
    session_id: Annotated[str, typer.Argument(help="The session id (the session run's id).")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Print progress lines as they come, to the end.")
    ] = False,
    show_result: Annotated[bool, typer.Option("--result", help="Print the result JSON.")] = False,
    transcript: Annotated[bool, typer.Option("--transcript", help="Print the transcript.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    org: Annotated[str | None, ORG_OPTION] = None,
) -> None:
    """Show an agent session: status, the progress lines its agent reported (while it runs,
    too), its error, and where its result and transcript are stored."""
    from store import SessionStore, create_pool
    from workers.runtime import database_url

    def line(p: ProgressLine) -> str:
        retry = f" (attempt {p.attempt})" if p.attempt > 1 else ""
        return f"  {p.at.strftime('%H:%M:%S')}  {p.line}{retry}"

    async def go() -> None:
        pool = await create_pool(database_url(Settings()), max_size=1)
        try:
            store = SessionStore(pool)
            org_id = await org_of_run(session_id, org)
            record = await store.get(session_id, org_id=org_id, transcript=transcript or as_json)
            if record is None:
                raise fail(
                    Exit.NOT_FOUND,
                    f"no agent session {session_id!r} is recorded; one dispatched a moment ago "
                    f"may not have started yet (`durable status {session_id}`)",
                )
            if as_json:
                print_json(session_json(record, record.progress))
                return
            for label, value in (
                ("session", record.session_id),
                ("status", record.status),
                ("project", record.project or "-"),
                ("runtime", record.runtime),
                ("requested by", record.requested_by or "-"),
                ("agent", record.agent_id or "-"),
                ("pool", record.pool or "-"),
                ("placement", record.placement or "-"),
                ("started", record.started_at.isoformat(timespec="seconds")),
            ):
                typer.echo(f"{label:<13}{value}")
            typer.echo("progress")
            seen = 0
            for p in record.progress:
                typer.echo(line(p))
                seen = p.id
            while follow and not record.is_terminal:
                await asyncio.sleep(1.0)
                for p in await store.progress(session_id, after=seen, org_id=org_id):
                    typer.echo(line(p))
                    seen = p.id
                found = await store.get(session_id, org_id=org_id, transcript=transcript)
                record = found or record
            if follow:
                typer.echo(f"{'status':<13}{record.status}")
            if record.finished_at:
                typer.echo(f"{'finished':<13}{record.finished_at.isoformat(timespec='seconds')}")
            if record.error:
                typer.echo(f"{'error':<13}{record.error}")
            typer.echo(f"{'result ref':<13}{result_ref(record.session_id)}")
            if show_result:
                typer.echo(json.dumps(record.result, indent=2))
            if transcript:
                for entry in record.transcript or []:
                    typer.echo(f"[{entry['stream']}] {entry['text'].rstrip()}")
        finally:
            await pool.close()

    run(go())


@app.command()
def memory(
    org: Annotated[str, typer.Option("--org", help="The org whose memory you read.")],
    project: Annotated[
        str | None, typer.Option("--project", help="Only this project ('' for no project).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the memory notes memory consolidation wrote for an org's projects. Only the given
    org's notes are visible."""
    from store import MemoryStore, create_pool
    from workers.runtime import database_url

    async def go() -> list[dict[str, Any]]:
        pool = await create_pool(database_url(Settings()), max_size=1)
        try:
            notes = await MemoryStore(pool).notes(org)
        finally:
            await pool.close()
        return [
            {
                "project": n.project,
                "sessions": n.sessions,
                "updated_by": n.updated_by,
                "updated_at": n.updated_at.isoformat(),
                "note": n.note,
            }
            for n in notes
            if project is None or n.project == project
        ]

    found = run(go())
    if as_json:
        print_json(found)
        return
    if not found:
        typer.echo(f"no memory notes for org {org!r} yet (memory consolidation runs nightly)")
    for note in found:
        typer.echo(
            f"== {note['project'] or '(no project)'}: {note['sessions']} session(s), "
            f"updated {note['updated_at']}"
        )
        typer.echo(note["note"])


linear_app = typer.Typer(
    help="Look at Linear as the workflows see it: the configured Linear, or in `durable dev` "
    "without Linear credentials, the local Linear.",
    no_args_is_help=True,
)
app.add_typer(linear_app, name="linear")

PRIORITY_NAMES = {0: "none", 1: "urgent", 2: "high", 3: "medium", 4: "low"}


def linear_issues_json(issue: dict[str, Any]) -> dict[str, Any]:
    return {
        "identifier": issue["identifier"],
        "title": issue["title"],
        "state": (issue.get("state") or {}).get("name", ""),
        "priority": issue["priority"],
        "labels": [label["name"] for label in (issue.get("labels") or {}).get("nodes", [])],
        "assignee": (issue.get("assignee") or {}).get("name", ""),
        "url": issue.get("url") or "",
        "updated_at": issue.get("updatedAt") or "",
    }


@linear_app.command("issues")
def linear_issues(
    team: Annotated[str, typer.Option("--team", help="A team key such as ENG.")] = "",
    org: Annotated[
        str, typer.Option("--org", help="The org whose Linear credential to use.")
    ] = "local",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List issues: identifier, state, priority, owner, labels and title."""
    import httpx

    from activities.linear.client import LinearClient, LinearCredential, LinearError
    from activities.linear.steps import LinearCredentials
    from workers.dev import LOCAL_KEY, LOCAL_ORG

    settings = Settings()
    if settings.linear_configured:
        keys, tokens = settings.linear_api_keys, settings.linear_oauth_tokens
        credentials = LinearCredentials(
            api_keys=keys.get_secret_value() if keys else None,
            oauth_tokens=tokens.get_secret_value() if tokens else None,
        )
        url = settings.linear_api_url
        if org not in credentials.orgs:
            known = ", ".join(credentials.orgs)
            raise fail(Exit.USAGE, f"no Linear credential for org {org!r} (configured: {known})")
        credential = credentials.for_org(org)
    elif org == LOCAL_ORG:
        url = f"http://127.0.0.1:{settings.linear_local_port}/graphql"
        credential = LinearCredential(LOCAL_KEY)
    else:
        raise fail(
            Exit.USAGE,
            f"no Linear credential is configured; only the local Linear's org {LOCAL_ORG!r} "
            "is known (set LINEAR_API_KEYS for others)",
        )

    async def go() -> list[dict[str, Any]]:
        async with LinearClient(org, credential, url) as client:
            team_id = None
            if team:
                found = [t for t in await client.teams() if team in (t["key"], t["id"])]
                if not found:
                    raise fail(Exit.NOT_FOUND, f"Linear has no team {team!r}")
                team_id = found[0]["id"]
            return await client.list_issues(team_id=team_id)

    try:
        found = asyncio.run(go())
    except (LinearError, httpx.HTTPError) as err:
        hint = "" if settings.linear_configured else " (is `durable dev` running?)"
        raise fail(Exit.UNAVAILABLE, f"cannot read Linear at {url}: {err}{hint}") from None
    rows = sorted(
        (linear_issues_json(issue) for issue in found),
        key=lambda i: (i["identifier"].split("-")[0], int(i["identifier"].split("-")[-1])),
    )
    if as_json:
        print_json(rows)
        return
    for row in rows:
        typer.echo(
            f"{row['identifier']:<8} {row['state']:<12} "
            f"{PRIORITY_NAMES.get(row['priority'], '?'):<7}"
            f" {row['assignee'] or '-':<14} [{', '.join(row['labels'])}]  {row['title']}"
        )


def main() -> None:
    code: int = 0
    try:
        app()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except ValidationError as err:
        if err.title != Settings.__name__:
            raise
        typer.echo(f"error: bad configuration: {err}", err=True)  # names variables, no values
        code = int(Exit.USAGE)
    # Skip interpreter teardown: the Temporal client's Rust threads can abort a finalizing
    # interpreter (temporalio/sdk-python#300). Everything we started is stopped by now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# `durable fleet ...` (it uses this module's helpers and adds itself to `app`)
from . import fleet as _fleet  # noqa: E402, F401
from . import keys as _keys  # noqa: E402, F401
from . import stuck as _stuck  # noqa: E402, F401
