"""What the fleet's routes take: each request body as a model, checked where it enters (a 422
naming the field and what is wrong), and the project id in a path.

Integers end in PostgreSQL `integer` columns, so none may pass INT32_MAX; counts and sequence
numbers are never negative. Names and ids are of ID_CHARS (as org and project ids are,
`durable.Tenancy`); no string anywhere may hold a NUL character (`api/json_input.py`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from store import PROJECT_ID

from .bodies import read_json

MAX_BODY_BYTES = 2 * 1024 * 1024  # a session's transcript and result come through here
INT32_MAX = 2**31 - 1
ID_CHARS = "A-Z a-z 0-9 . _ : -"
NAME = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")

Name = Annotated[str, Field(min_length=1, max_length=100, pattern=NAME.pattern)]
Ref = Annotated[str, Field(min_length=1, max_length=200)]  # a pool's name or id
Count = Annotated[int, Field(ge=0, le=INT32_MAX)]


class Register(BaseModel):
    version: str = Field(default="", max_length=100)
    capabilities: list[Annotated[str, Field(max_length=50)]] = Field(
        default_factory=list, max_length=20
    )
    max_concurrency: int = Field(alias="maxConcurrency", ge=1, le=1000)
    hostname: str = Field(default="", max_length=255)


class Heartbeat(BaseModel):
    # The sessions it runs; None (not said): nothing is released.
    sessions: list[Annotated[str, Field(max_length=500)]] | None = Field(
        default=None, max_length=1000
    )
    active: Count | None = None  # sessions running now (default: len(sessions))


class Progress(BaseModel):
    seq: int = Field(ge=1, le=INT32_MAX)
    line: str = Field(max_length=4000)
    claim: Count | None = None  # the claim it writes under (a worker must say, and be current)
    attempt: int = Field(default=1, ge=1, le=INT32_MAX)  # only from the legacy key


class Output(BaseModel):
    transcript: list[dict[str, Any]]
    result: Any = None
    claim: Count | None = None


class CapacityPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_sessions: int | None = Field(default=None, ge=1, le=INT32_MAX, strict=True)


class NewPool(BaseModel):
    name: Name
    provider: str = Field(max_length=50)
    mode: Name = "managed"
    capacity: CapacityPolicy = CapacityPolicy()
    credential_ref: str | None = Field(default=None, alias="credentialRef", max_length=500)


class RouteBody(BaseModel):
    preferred: list[Ref] = Field(default=[], max_length=100)
    allowed: list[Ref] = Field(default=[], max_length=100)
    forbidden: list[Ref] = Field(default=[], max_length=100)
    fallback: Ref | None = None


class NewToken(BaseModel):
    pool: Ref
    name: str = Field(default="", max_length=100)
    expires_in_days: float = Field(
        default=30, alias="expiresInDays", gt=0, le=365, allow_inf_nan=False
    )


M = TypeVar("M", bound=BaseModel)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def parse_body(request: Request, model: type[M]) -> M | Response:
    """The body as `model` (an empty body is `{}`), or the refusal: 413, 400 (not JSON, too
    deeply nested, a NUL character), 422 (what the model refuses, by field)."""
    document = await read_json(request, MAX_BODY_BYTES, empty=b"{}")
    if isinstance(document, Response):
        return document
    try:
        return model.model_validate(document)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in err.errors()
        )
        return _error(422, problems)


def project_refused(request: Request) -> Response | None:
    """A 422 when the path names a project whose id is not one (PROJECT_ID, as
    `durable.Tenancy`'s)."""
    project = request.path_params.get("project_id")
    if project is None or PROJECT_ID.match(project):
        return None
    return _error(
        422, f"project id {project!r} is not one: 1-200 characters of {ID_CHARS}, no spaces"
    )
