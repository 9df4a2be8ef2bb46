"""One GraphQL request against Linear's schema: read, validate, execute, and the HTTP status and
JSON body Linear would answer with.

- not JSON, or no `query`: 400, `BAD_REQUEST`;
- a syntax error: 400, `GRAPHQL_PARSE_FAILED`;
- a document the schema rejects (unknown field, wrong argument, ...): 400,
  `GRAPHQL_VALIDATION_FAILED`, with graphql-core's message naming the field;
- variables that do not fit their types: 400, `BAD_USER_INPUT`;
- otherwise 200 with `data`, and `errors` for whatever failed while executing (an entity
  not found, a duplicate id, invalid input), shaped as in `local_errors`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    execute_sync,
    parse,
    validate,
)

from . import local_mutations, local_queries  # noqa: F401  (they register the resolvers)
from .local_errors import graphql_error, request_error
from .local_resolve import Context, resolve

Answer = tuple[int, dict[str, Any]]


@dataclass
class Request:
    """A POSTed GraphQL request, read far enough to name its operation."""

    name: str = "anonymous"
    document: DocumentNode | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    operation_name: str | None = None
    refused: Answer | None = None  # the answer, when the request is not a usable operation


def read_request(raw: bytes) -> Request:
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        return Request(refused=_bad("the request body is not JSON"))
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        return Request(refused=_bad('the request body must be JSON with a "query" string'))
    variables = body.get("variables") or {}
    operation_name = body.get("operationName") or None
    if not isinstance(variables, dict):
        return Request(refused=_bad('"variables" must be a JSON object'))
    try:
        document = parse(body["query"])
    except GraphQLError as error:
        refused = (400, {"errors": [graphql_error(error, "GRAPHQL_PARSE_FAILED")]})
        return Request(name=str(operation_name or "anonymous"), refused=refused)
    name = operation_name or next(
        (
            definition.name.value
            for definition in document.definitions
            if isinstance(definition, OperationDefinitionNode) and definition.name
        ),
        "anonymous",
    )
    return Request(str(name), document, variables, operation_name)


def run(schema: GraphQLSchema, request: Request, ctx: Context) -> Answer:
    if request.refused is not None:
        return request.refused
    assert request.document is not None
    errors = validate(schema, request.document)
    if errors:
        return 400, {"errors": [graphql_error(e, "GRAPHQL_VALIDATION_FAILED") for e in errors]}
    result = execute_sync(
        schema,
        request.document,
        context_value=ctx,
        variable_values=request.variables,
        operation_name=request.operation_name,
        field_resolver=resolve,
    )
    if result.errors and result.data is None and all(e.path is None for e in result.errors):
        # Nothing ran: the variables or the operation choice did not fit.
        return 400, {"errors": [graphql_error(e, "BAD_USER_INPUT") for e in result.errors]}
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [_formatted(error) for error in result.errors]
    return 200, body


def _formatted(error: GraphQLError) -> dict[str, Any]:
    formatted: dict[str, Any] = dict(error.formatted)
    if not formatted.get("extensions"):  # an unexpected exception in a resolver
        formatted["extensions"] = {
            "type": "internal error",
            "code": "INTERNAL_SERVER_ERROR",
            "statusCode": 500,
            "userError": False,
            "userPresentableMessage": "Something went wrong.",
        }
    return formatted


def _bad(message: str) -> Answer:
    return 400, {"errors": [request_error(message)]}
