"""Events: typed, named `{source}/{entity}.{action}`, with a pydantic `data` model."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._errors import DurableError, InvalidDefinition, validation_message
from ._tenancy import Tenancy
from ._trigger import validate_event_name

D = TypeVar("D", bound=BaseModel)

# Larger events are refused before anything is stored (Temporal's payload limit is 2 MB, and an
# event travels in signals and inputs).
MAX_EVENT_BYTES = 256 * 1024
MAX_EVENT_ID = 200
# JSON nested deeper than this is refused before it is parsed into models (pydantic gives up at
# about 255 levels, after the event was taken).
MAX_JSON_DEPTH = 64
# What a derived id keeps of its readable parts when it has to be shortened.
_KEPT_PREFIX = MAX_EVENT_ID - 65


# Event types no caller may send, and who alone produces them: the HTTP API and a run's own
# `durable.resolve` Update and `durable.event` signal refuse them alike.
RESERVED_SOURCES: dict[str, str] = {
    "linear/": "come only from Linear's signed webhook (POST /webhooks/linear)",
    "rensei/pm.agent-session.": "come only from the platform's own agent-session workers",
    "durable/": "come only from the platform itself",
}


def reserved_producer(event_type: str) -> tuple[str, str] | None:
    """(prefix, who produces it) if `event_type` is one only the platform sends."""
    for prefix, producer in RESERVED_SOURCES.items():
        if event_type.startswith(prefix):
            return prefix, producer
    return None


def scoped_event_id(org_id: str, event_id: str) -> str:
    """The stored id of an event a caller of an org sent (over HTTP, or to a run through
    Temporal): ids are per org, and no platform id looks like this."""
    return f"@{org_id}/{event_id}"


def contains(document: Any, match: Any) -> bool:
    """JSON containment, as PostgreSQL's `@>` tests a wait's match document: every key of
    `match` is in `document` with a value that contains it; a list contains each element of
    `match`'s list in some element."""
    if isinstance(match, dict):
        return isinstance(document, dict) and all(
            k in document and contains(document[k], v) for k, v in match.items()
        )
    if isinstance(match, list):
        return isinstance(document, list) and all(
            any(contains(d, m) for d in document) for m in match
        )
    return bool(document == match and type(document) is type(match)) or (
        isinstance(document, int | float)
        and isinstance(match, int | float)
        and not isinstance(document, bool)
        and not isinstance(match, bool)
        and document == match
    )


def derived_event_id(*parts: str) -> str:
    """An event id made from parts (a run id, an execution id, a step id), the same every time:
    the parts joined by "/", or, when that would be longer than an event id may be (runs started
    by events started by runs...), its first characters and the SHA-256 of the whole."""
    whole = "/".join(parts)
    if len(whole) <= MAX_EVENT_ID:
        return whole
    return f"{whole[:_KEPT_PREFIX]}~{hashlib.sha256(whole.encode()).hexdigest()}"


class EventError(DurableError, ValueError):
    """An event was refused: malformed, too large, or of an unknown type. Nothing was stored."""


class EventConflict(EventError):
    """An event id that was stored before came again with another type, other data or another
    org. Nothing was stored; the first event stands. Send new content under a new id."""

    def __init__(self, event_id: str) -> None:
        self.event_id = event_id
        super().__init__(
            f"event id {event_id!r} was already used for an event of another type, data or org;"
            f" nothing was stored (the same id with the same content is an idempotent duplicate;"
            f" new content needs a new id)"
        )


class EventNotAcknowledged(DurableError):
    """The event store could not be reached, so the event was not acknowledged. It may or may
    not have been stored: send it again with the same id (a duplicate is acted on once)."""

    def __init__(self, event_id: str, event_type: str, reason: str) -> None:
        self.event_id = event_id
        super().__init__(
            f"event {event_id!r} ({event_type}) was not acknowledged: the event store "
            f"(PostgreSQL) is unreachable ({reason}). Send it again with the same id; a "
            f"duplicate is acted on once"
        )


class Event(BaseModel, Generic[D]):
    """Base of every event type.

    Subclass it with a type name and a data model::

        class ApprovalResolved(Event[ApprovalData]):
            type: ClassVar[str] = "rensei/approval.resolved"

    Attributes:
        id: Given by the sender for deduplication (the same id is stored and acted on once),
            or generated.
        data: The payload model.
        received_at: Set by the store when the event is first received.
        tenancy: The org (workspace, project) the event belongs to; runs it starts inherit it.
    """

    model_config = ConfigDict(extra="forbid")

    type: ClassVar[str] = ""
    id: str = Field(
        default_factory=lambda: str(uuid.uuid4()), min_length=1, max_length=MAX_EVENT_ID
    )
    data: D
    received_at: datetime | None = None
    tenancy: Tenancy | None = None

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if cls.type:
            validate_event_name(cls.type)


def event_type_name(event_type: type[Event[Any]]) -> str:
    if not event_type.type:
        raise InvalidDefinition(f"{event_type.__name__} has no `type` name")
    return event_type.type


def path_exists(event_type: type[BaseModel], path: str) -> bool:
    """Whether a dotted path such as `data.workflow_id` names a field of the event model."""
    model: Any = event_type
    for part in path.split("."):
        fields = getattr(model, "model_fields", None)
        if not isinstance(fields, dict) or part not in fields:
            return False
        model = fields[part].annotation
    return True


def value_at(document: dict[str, Any], path: str) -> Any:
    value: Any = document
    for part in path.split("."):
        value = value[part]
    return value


def nest(path: str, value: Any) -> dict[str, Any]:
    """`nest("data.x", 1)` -> `{"data": {"x": 1}}`: a containment document."""
    parts = path.split(".")
    doc: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        doc = {part: doc}
    return doc


def merge(docs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for doc in docs:
        for key, value in doc.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge([out[key], value])
            else:
                out[key] = value
    return out


def json_depth(value: Any) -> int:
    """How deep JSON-like data nests (a scalar is 0), without recursing."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list | tuple):
            stack.extend((v, depth + 1) for v in item)
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_JSON_DEPTH:
            break
    return deepest


def check_depth(value: Any, what: str) -> None:
    """Raise EventError if `value` nests deeper than MAX_JSON_DEPTH."""
    if json_depth(value) > MAX_JSON_DEPTH:
        raise EventError(
            f"{what} nests deeper than {MAX_JSON_DEPTH} levels of objects and lists; flatten it"
        )


def parse_event(event_type: type[Event[Any]], payload: dict[str, Any]) -> Event[Any]:
    """Validate a payload as `event_type`, checking its size; raises EventError."""
    check_depth(payload, f"event {event_type.type!r}")
    try:
        event = event_type.model_validate(payload)
    except ValidationError as err:
        raise EventError(
            f"event {event_type.type!r} is malformed: {validation_message(err)}"
        ) from None
    check_size(event)
    return event


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


def check_size(event: Event[Any]) -> int:
    """The event's size in bytes; raises EventError if it is over the limit, or holds a NUL
    character, which no store of text keeps (PostgreSQL refuses it)."""
    check_depth(event.data.model_dump(mode="json"), f"event {event.type!r}")
    document = event.model_dump_json()
    if "\\u0000" in document and _holds_nul(event.model_dump(mode="json")):
        raise EventError(
            f"event {event.type!r} holds a NUL character (\\u0000) in its id or data; remove it"
        )
    size = len(document.encode())
    if size > MAX_EVENT_BYTES:
        raise EventError(
            f"event {event.type!r} is {size} bytes; the limit is {MAX_EVENT_BYTES} bytes "
            f"(256 KiB): store large content elsewhere and send a reference"
        )
    return size


@dataclass(frozen=True)
class Wait:
    """A declared wait, checked when the workflow is defined: `match` must name a field of both
    the awaited event type and the workflow's trigger event type."""

    event: type[Event[Any]]
    match: str


@dataclass(frozen=True)
class On:
    """One choice of `ctx.step.wait_for_any`: an event type and how it must match."""

    event: type[Event[Any]]
    match: str | None = None
    where: dict[str, Any] | None = None


class EventReceipt(BaseModel):
    """What `send_event` did with an event."""

    id: str
    type: str
    duplicate: bool  # the id was stored before; nothing new was done
    started: list[str] = []  # run ids started by this event's trigger
    delivered: list[str] = []  # run ids whose waits it resolved
    undeliverable: list[str] = []  # runs that had already finished
    throttled: list[str] = []  # starts a throttle with excess="skip" did not make
    pending: list[str] = []  # deliveries left to the dispatcher (the store or Temporal blinked)
