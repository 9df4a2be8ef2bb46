"""A local Linear-compatible GraphQL server: a real HTTP server on 127.0.0.1 that validates every
operation against Linear's published schema (see `local_schema`) and keeps one in-memory
workspace per org (teams, workflow states, labels, projects, users, issues, comments, agent
sessions and activities; seeded by `local_seed`). Tests use it, and the embedded dev stack
starts it when no Linear key is configured.

    async with LocalLinear(keys={"lin_api_test": "org-acme"}) as linear:
        linear.url          # http://127.0.0.1:<port>/graphql
        linear.state()      # the org's workspace as JSON-ready data (also GET /state)

How it answers (as Linear does):

- `POST /graphql` with `{query, variables, operationName}`.
- Authentication: `Authorization: <API key>` for the configured `keys`, or
  `Authorization: Bearer <token>` for the configured `tokens`. A missing, unknown or revoked
  credential answers HTTP 401 with `errors[0].extensions` = `{type: "authentication error",
  code: "AUTHENTICATION_ERROR", statusCode: 401, userError: true, userPresentableMessage: ...,
  http: {status: 401}}`. An API key acts as the workspace's first user, a token as its app
  user (the agent).
- A document the schema rejects answers HTTP 400, `extensions.code =
  "GRAPHQL_VALIDATION_FAILED"`, graphql-core's message naming the field; other request errors
  are in `local_graphql`.
- Execution errors answer HTTP 200 with `data: null` and Linear-shaped errors: an unknown id is
  `"Entity not found: Issue"` (`code: "INPUT_ERROR"`).
- Creates honour a client-supplied `input.id` (`issueCreate`, `commentCreate`,
  `issueLabelCreate`, `agentActivityCreate`). A second create with an id already taken changes
  nothing and answers HTTP 200, `data: null`, one error: message
  `"Entity already exists: Issue with id <id>"`, `extensions: {type: "invalid input",
  code: "INPUT_ERROR", statusCode: 400, userError: true, userPresentableMessage: ...,
  meta: {entity: "Issue", id: "<id>"}}`, `path: ["issueCreate"]`. (Linear does not document
  its answer to this case, so clients should treat any user error on a create that carried an
  id as "look the id up", not match this message.) A malformed id is an `INVALID_INPUT` error.
- Every authenticated answer carries `X-RateLimit-Requests-Limit` (5000), `-Remaining` and
  `-Reset` (epoch ms, the end of the current hour).

Control, from the test's process or from outside through `POST /control`:
`rate_limit(times, form="http429"|"ratelimited400", reset_in_seconds)` (HTTP 429, or HTTP 400,
both with `code: "RATELIMITED"`, `X-RateLimit-Requests-Remaining: 0`, the reset header and
`Retry-After`), `fail(times, status=500)`, `slow(times, seconds)`, `revoke(key)`,
`open_agent_session(issue)`, `reset()`; `calls(operation)` counts the requests per operation
name. Run it alone with `python -m activities.linear.local_server --port 8500`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Generator, Mapping
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .local_errors import LinearFault, authentication_error
from .local_faults import (
    REQUESTS_PER_HOUR,
    Fault,
    Faults,
    RateLimitForm,
    failed,
    rate_limit_headers,
    rate_limited,
)
from .local_graphql import read_request, run
from .local_mutations import open_agent_session
from .local_resolve import Context
from .local_schema import linear_schema
from .local_seed import seeded_workspace
from .local_state import Record, Workspace

DEFAULT_KEYS = {"lin_api_local_dev_key": "local"}
HOUR_MS = 3_600_000


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # Ctrl-C belongs to the process that runs us; it stops us with `stop`.


class LocalLinear:
    """The server, its workspaces and its fault injection.

    Args:
        keys: API key -> org id. Defaults to one key for org "local".
        tokens: OAuth access token -> org id (sent as `Bearer <token>`).
        port: 0 picks a free port.
    """

    def __init__(
        self,
        keys: Mapping[str, str] | None = None,
        tokens: Mapping[str, str] | None = None,
        port: int = 0,
    ) -> None:
        self.keys = dict(DEFAULT_KEYS if keys is None and not tokens else keys or {})
        self.tokens = dict(tokens or {})
        self.port = port
        self.revoked: set[str] = set()
        self.faults = Faults()
        self.requests: Counter[str] = Counter()
        self._used: Counter[str] = Counter()  # per credential, this hour: the budget headers
        self._window = 0
        self._workspaces: dict[str, Workspace] = {}
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.app = Starlette(
            routes=[
                Route("/graphql", self._graphql, methods=["POST"]),
                Route("/state", self._state, methods=["GET"]),
                Route("/control", self._control, methods=["POST"]),
                Route("/reset", self._reset, methods=["POST"]),
                Route("/{url_key}/issue/{identifier}", self._issue_page, methods=["GET"]),
                Route("/{url_key}/issue/{identifier}/{slug}", self._issue_page, methods=["GET"]),
            ]
        )

    # --- running ------------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The GraphQL endpoint, like https://api.linear.app/graphql."""
        return f"{self.origin}/graphql"

    @property
    def orgs(self) -> list[str]:
        return sorted(set(self.keys.values()) | set(self.tokens.values()))

    async def start(self) -> None:
        # Build the schema (once per process) off the loop; fail now, naming the path, if the
        # file is missing.
        await asyncio.to_thread(linear_schema)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            access_log=False,
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve())
        for _ in range(200):
            if self._server.started:
                sockets = self._server.servers[0].sockets
                self.port = int(sockets[0].getsockname()[1])
                return
            if self._task.done():
                self._task.result()  # raise why it could not start
            await asyncio.sleep(0.025)
        raise TimeoutError(f"the local Linear server did not start on port {self.port}")

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            await self._task
            self._task = None

    async def __aenter__(self) -> LocalLinear:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- inspecting ---------------------------------------------------------------------------

    def workspace(self, org: str | None = None) -> Workspace:
        """An org's workspace (the only org's when there is one), made and seeded on first use."""
        if org is None:
            if len(self.orgs) != 1:
                raise ValueError(f"name the org: this server has {', '.join(self.orgs)}")
            org = self.orgs[0]
        if org not in self.orgs:
            raise KeyError(f"no key or token is configured for org {org!r}")
        if org not in self._workspaces:
            self._workspaces[org] = seeded_workspace(org, lambda: self.origin)
        return self._workspaces[org]

    def state(self, org: str | None = None) -> dict[str, Any]:
        """The workspace as JSON-ready data: `teams`, `workflowStates`, `issueLabels`,
        `projects`, `users`, `issues`, `comments`, `agentSessions`, `agentActivities`, plus
        `requests` (requests received per operation name, all orgs)."""
        snapshot = self.workspace(org).snapshot()
        snapshot["requests"] = dict(self.requests)
        return snapshot

    def calls(self, operation: str | None = None) -> int:
        """How many requests reached /graphql, in all or for one operation name (the request's
        `operationName`, else the document's first operation name, else "anonymous"); requests
        answered with an injected fault or an auth error count too."""
        return self.requests.total() if operation is None else self.requests[operation]

    # --- controlling --------------------------------------------------------------------------

    def rate_limit(
        self,
        times: int = 1,
        form: RateLimitForm = "http429",
        reset_in_seconds: float = 60.0,
        operation: str | None = None,
    ) -> None:
        """Answer the next `times` requests (of `operation`, if given) with Linear's rate-limit
        error: HTTP 429 (`http429`) or HTTP 400 (`ratelimited400`)."""
        self.faults.add(Fault("rate_limit", times, operation, form, reset_in_seconds))

    def fail(self, times: int = 1, status: int = 500, operation: str | None = None) -> None:
        """Answer the next `times` requests with an HTTP error (500 by default)."""
        self.faults.add(Fault("fail", times, operation, status=status))

    def slow(
        self,
        times: int = 1,
        seconds: float = 1.0,
        operation: str | None = None,
        after: bool = False,
    ) -> None:
        """Delay the next `times` requests by `seconds`, then answer them normally. With
        `after`, the request is carried out at once and only the answer is delayed (a create
        that is made, then the caller dies before it hears back)."""
        self.faults.add(Fault("slow", times, operation, seconds=seconds, after=after))

    def revoke(self, credential: str) -> None:
        """From now on, answer this API key or token with the authentication error."""
        self.revoked.add(credential)

    def open_agent_session(
        self, issue: str, org: str | None = None, session_id: str | None = None
    ) -> Record:
        """Start an agent session on an issue (id or identifier), as Linear does when a user
        delegates the issue to the agent or mentions it; returns the session."""
        ws = self.workspace(org)
        creator = next(u["id"] for u in ws.all("User") if not u["app"])
        return open_agent_session(ws, issue, creator, session_id)

    def reset(self) -> None:
        """Fresh seeded workspaces, no faults, no revocations, no request counts."""
        self._workspaces.clear()
        self.faults.clear()
        self.revoked.clear()
        self.requests.clear()
        self._used.clear()

    # --- HTTP ---------------------------------------------------------------------------------

    def _budget_headers(self, credential: str) -> dict[str, str]:
        window = int(time.time() * 1000) // HOUR_MS
        if window != self._window:
            self._window = window
            self._used.clear()
        self._used[credential] += 1
        remaining = REQUESTS_PER_HOUR - self._used[credential]
        return rate_limit_headers(remaining, (window + 1) * HOUR_MS)

    async def _graphql(self, request: Request) -> Response:
        body = read_request(await request.body())
        self.requests[body.name] += 1
        fault = self.faults.take(body.name)
        if fault is not None and fault.kind == "rate_limit":
            status, payload, headers = rate_limited(fault)
            return JSONResponse(payload, status, headers)
        if fault is not None and fault.kind == "fail":
            status, payload = failed(fault)
            return JSONResponse(payload, status)
        if fault is not None and fault.kind == "slow" and not fault.after:
            await asyncio.sleep(fault.seconds)
        authenticated = self._authenticate(request.headers.get("authorization", ""))
        if isinstance(authenticated, str):
            return JSONResponse({"errors": [authentication_error(authenticated or None)]}, 401)
        ws, viewer_id, credential = authenticated
        status, payload = run(linear_schema(), body, Context(ws, viewer_id))
        if fault is not None and fault.kind == "slow" and fault.after:
            await asyncio.sleep(fault.seconds)
        return JSONResponse(payload, status, self._budget_headers(credential))

    def _authenticate(self, header: str) -> tuple[Workspace, str, str] | str:
        """The workspace, viewer and credential of a request, or why it is refused."""
        scheme, _, rest = header.strip().partition(" ")
        if scheme.lower() == "bearer":
            credential, orgs, app = rest.strip(), self.tokens, True
            if credential in self.keys:
                return (
                    "API keys are sent without a scheme: use `Authorization: <API key>`, "
                    "not `Bearer <API key>`"
                )
        else:
            credential, orgs, app = header.strip(), self.keys, False
        org = orgs.get(credential)
        if not credential or org is None or credential in self.revoked:
            return ""
        ws = self.workspace(org)
        viewer = next(user for user in ws.all("User") if user["app"] == app)
        return ws, viewer["id"], credential

    async def _state(self, request: Request) -> Response:
        try:
            return JSONResponse(self.state(request.query_params.get("org")))
        except (KeyError, ValueError) as error:
            return JSONResponse({"error": str(error).strip("'\"")}, 404)

    async def _issue_page(self, request: Request) -> Response:
        """An issue's URL resolves to its JSON, with its comments and agent activity."""
        for org in self.orgs:
            ws = self.workspace(org)
            if ws.organization["urlKey"] == request.path_params["url_key"]:
                with contextlib.suppress(LinearFault):
                    return JSONResponse(ws.issue_view(request.path_params["identifier"]))
        return JSONResponse({"error": "no such issue"}, 404)

    async def _reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"ok": True})

    async def _control(self, request: Request) -> Response:
        """`{"action": "rate_limit" | "fail" | "slow" | "revoke" | "agent_session" | "reset"
        | "clear_faults", ...the method's arguments}`."""
        try:
            command = json.loads(await request.body() or b"{}")
            action = command.pop("action")
            answer: dict[str, Any] = {"ok": True}
            if action == "rate_limit":
                self.rate_limit(**command)
            elif action == "fail":
                self.fail(**command)
            elif action == "slow":
                self.slow(**command)
            elif action == "revoke":
                self.revoke(command["key"])
            elif action == "agent_session":
                answer["agentSession"] = self.open_agent_session(**command)
            elif action == "reset":
                self.reset()
            elif action == "clear_faults":
                self.faults.clear()
            else:
                raise ValueError(f"unknown action {action!r}")
        except Exception as error:  # a bad command: say why, as a 400
            return JSONResponse({"ok": False, "error": f"{type(error).__name__}: {error}"}, 400)
        answer["faults"] = self.faults.pending()
        return JSONResponse(answer)


# --- command line -----------------------------------------------------------------------------


def _pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values or []:
        secret, sep, org = value.partition("=")
        if not sep or not secret or not org:
            raise SystemExit(f"{flag} takes SECRET=ORG, got {value!r}")
        pairs[secret] = org
    return pairs


async def _serve(keys: dict[str, str], tokens: dict[str, str], port: int) -> None:
    server = LocalLinear(keys=keys or None, tokens=tokens, port=port)
    await server.start()
    lines = [
        f"local Linear  {server.url}",
        f"  state       {server.origin}/state",
        f"  control     POST {server.origin}/control",
        *(f"  API key     {key}  (org {org})" for key, org in server.keys.items()),
        *(f"  OAuth token {token}  (org {org})" for token, org in server.tokens.items()),
    ]
    print("\n".join(lines), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m activities.linear.local_server",
        description="Serve a local Linear-compatible GraphQL API on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=8500, help="0 picks a free port")
    parser.add_argument("--key", action="append", help="KEY=ORG: an accepted API key")
    parser.add_argument("--token", action="append", help="TOKEN=ORG: an accepted OAuth token")
    args = parser.parse_args(argv)
    keys, tokens = _pairs(args.key, "--key"), _pairs(args.token, "--token")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(keys, tokens, args.port))


if __name__ == "__main__":
    main()
