"""The error shapes the local Linear server answers with, modelled on Linear's.

Linear formats every GraphQL error with `extensions.type` (the string the official SDK maps to
its error classes: "authentication error", "invalid input", "ratelimited", ...),
`extensions.code`, `extensions.statusCode`, `extensions.userError` and
`extensions.userPresentableMessage`; errors that set the HTTP status also carry
`extensions.http.status` (Apollo Server's convention, which Linear runs on). Errors raised
while executing an operation answer HTTP 200 with `data: null`, as Linear does.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError


def error_body(
    message: str,
    *,
    type: str,
    code: str,
    status: int,
    presentable: str | None = None,
    user_error: bool = True,
    http: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """One entry of a response's `errors` list."""
    extensions: dict[str, Any] = {
        "type": type,
        "code": code,
        "statusCode": status,
        "userError": user_error,
        "userPresentableMessage": presentable or message,
        **extra,
    }
    if http:
        extensions["meta"] = {}
        extensions["http"] = {"status": status}
    return {"message": message, "extensions": extensions}


def authentication_error(detail: str | None = None) -> dict[str, Any]:
    return error_body(
        detail or "Authentication required, not authenticated",
        type="authentication error",
        code="AUTHENTICATION_ERROR",
        status=401,
        presentable="You need to authenticate to access this operation.",
        http=True,
    )


def rate_limited_error(status: int, limit: int) -> dict[str, Any]:
    return error_body(
        f"Rate limit exceeded. Only {limit} requests are allowed per 1 hour.",
        type="ratelimited",
        code="RATELIMITED",
        status=status,
        presentable="You have made too many requests. Please wait before trying again.",
        http=True,
    )


def server_error(status: int) -> dict[str, Any]:
    """What an injected failure answers: Linear's forbidden error for 403, otherwise an
    internal (500) or upstream (other statuses) error."""
    if status == 403:
        return error_body(
            "Forbidden",
            type="forbidden",
            code="FORBIDDEN",
            status=403,
            presentable="You don't have permission to access this resource.",
            http=True,
        )
    return error_body(
        "Internal server error" if status == 500 else f"Upstream error (HTTP {status})",
        type="internal error" if status == 500 else "network error",
        code="INTERNAL_SERVER_ERROR",
        status=status,
        presentable="Something went wrong on Linear's side. Please try again.",
        user_error=False,
        http=True,
    )


def request_error(message: str, code: str = "BAD_REQUEST") -> dict[str, Any]:
    """A request that is not a GraphQL operation at all (no JSON, no query)."""
    return error_body(message, type="graphql error", code=code, status=400, http=True)


def graphql_error(error: GraphQLError, code: str) -> dict[str, Any]:
    """A parse, validation or variable error from graphql-core, shaped like Linear's."""
    formatted: dict[str, Any] = dict(error.formatted)
    formatted["extensions"] = {
        "type": "graphql error",
        "code": code,
        "statusCode": 400,
        "userError": True,
        "userPresentableMessage": error.message,
        **(formatted.get("extensions") or {}),
    }
    return formatted


class LinearFault(GraphQLError):
    """An error a resolver raises; graphql-core keeps its extensions in the response."""

    def __init__(self, message: str, *, code: str, presentable: str, **meta: Any) -> None:
        extensions: dict[str, Any] = {
            "type": "invalid input",
            "code": code,
            "statusCode": 400,
            "userError": True,
            "userPresentableMessage": presentable,
        }
        if meta:
            extensions["meta"] = meta
        super().__init__(message, extensions=extensions)


def not_found(kind: str) -> LinearFault:
    return LinearFault(
        f"Entity not found: {kind}",
        code="INPUT_ERROR",
        presentable=f"Could not find referenced {kind}.",
    )


def already_exists(kind: str, id: str) -> LinearFault:
    """What a create with a client-supplied id that is already taken answers. Linear's own
    wording for this case is undocumented, so the code is its generic `INPUT_ERROR`: a client
    should treat any user error on a create that carried an id as "maybe mine already" and look
    the id up (see local_server's docstring)."""
    return LinearFault(
        f"Entity already exists: {kind} with id {id}",
        code="INPUT_ERROR",
        presentable=f"An entity of type {kind} with this id already exists.",
        entity=kind,
        id=id,
    )


def invalid_input(message: str) -> LinearFault:
    return LinearFault(
        f"Argument Validation Error: {message}", code="INVALID_INPUT", presentable=message
    )


def not_implemented(field: str) -> LinearFault:
    return LinearFault(
        f"The local Linear server does not implement {field}",
        code="NOT_IMPLEMENTED",
        presentable=f"{field} is not available on the local Linear server.",
    )
