"""How the local server resolves any field of Linear's schema from in-memory records.

One field resolver serves every type. It looks the field up in `FIELDS` (root queries and
mutations, relations such as `Issue.team`, computed fields such as `Issue.url`); otherwise it
reads the record's key of the same name. A list returned for a `...Connection` field is
filtered, ordered and paged there. A non-null field the workspace has no value for gets a
neutral default (`""`, `0`, `false`, `[]`, an empty connection, ...), so a client may select
any field the schema declares without the response breaking; a root field the server does not
implement answers a clear error instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    get_named_type,
    is_list_type,
    is_non_null_type,
)

from .local_errors import not_implemented
from .local_filters import Lookup, connection, matches
from .local_state import Record, Workspace, iso

ROOT_TYPES = ("Query", "Mutation")


@dataclass
class Context:
    """What one request acts as: the org's workspace and the authenticated user."""

    ws: Workspace
    viewer_id: str

    @property
    def viewer(self) -> Record:
        return self.ws.get("User", self.viewer_id)


Resolver = Callable[[Context, Any, dict[str, Any]], Any]


@dataclass(frozen=True)
class Field:
    fn: Resolver
    kind: str | None = None  # the record kind a relation or list points to


FIELDS: dict[tuple[str, str], Field] = {}


def field(parent: str, name: str, kind: str | None = None) -> Callable[[Resolver], Resolver]:
    """Register the resolver of `parent.name` (a root field, relation or computed field)."""

    def register(fn: Resolver) -> Resolver:
        FIELDS[(parent, name)] = Field(fn, kind)
        return fn

    return register


def to_one(parent: str, name: str, kind: str, key: str) -> None:
    """`parent.name` is the `kind` record whose id is in the `key` of the record."""
    FIELDS[(parent, name)] = Field(lambda ctx, src, args: ctx.ws.find(kind, src.get(key)), kind)


def to_many(parent: str, name: str, kind: str, related: Callable[[Record, Record], bool]) -> None:
    """`parent.name` lists the `kind` records for which `related(record, candidate)` holds."""
    FIELDS[(parent, name)] = Field(
        lambda ctx, src, args: [r for r in ctx.ws.all(kind) if related(src, r)], kind
    )


def lookup(ctx: Context) -> Lookup:
    """Field access for filters: the same relations and computed fields as the resolver."""

    def get(kind: str, record: Record, name: str) -> tuple[Any, str | None]:
        spec = FIELDS.get((kind, name))
        if spec is None:
            return record.get(name), None
        return spec.fn(ctx, record, {}), spec.kind

    return get


def resolve(source: Any, info: GraphQLResolveInfo[Context], **args: Any) -> Any:
    ctx = info.context
    parent = info.parent_type.name
    spec = FIELDS.get((parent, info.field_name))
    if spec is not None:
        value = spec.fn(ctx, source, args)
    elif parent in ROOT_TYPES:
        raise not_implemented(f"{parent}.{info.field_name}")
    elif isinstance(source, dict):
        value = source.get(info.field_name)
    else:
        value = None
    if isinstance(value, list) and get_named_type(info.return_type).name.endswith("Connection"):
        if spec is not None and spec.kind is not None and args.get("filter"):
            match = lookup(ctx)
            value = [r for r in value if matches(match, spec.kind, r, args["filter"])]
        value = connection(value, args)
    if value is None and is_non_null_type(info.return_type):
        value = default_for(info.return_type, source)
    return value


_SCALAR_DEFAULTS: dict[str, Any] = {
    "String": "",
    "ID": "",
    "Int": 0,
    "Float": 0.0,
    "Boolean": False,
    "JSON": {},
    "JSONObject": {},
    "Duration": "PT0S",
}


def default_for(type_: GraphQLOutputType, source: Any) -> Any:
    """A neutral value for a non-null field the workspace does not model."""
    inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    if is_list_type(inner):
        return []
    if isinstance(inner, GraphQLObjectType):
        return connection([], {}) if inner.name.endswith("Connection") else {}
    if isinstance(inner, GraphQLEnumType):
        return next(iter(inner.values.values())).value
    if isinstance(inner, GraphQLScalarType):
        if inner.name == "DateTime":
            created = source.get("createdAt") if isinstance(source, dict) else None
            return created or iso(datetime.now(UTC))
        if inner.name == "TimelessDate":
            return date.today().isoformat()
        return _SCALAR_DEFAULTS.get(inner.name, "")
    return None  # an interface or union: nothing sensible to invent
