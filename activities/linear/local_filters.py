"""Linear's filter and pagination arguments, applied to in-memory records.

Filters follow Linear's shape: comparators (`eq`, `in`, `gt`, `containsIgnoreCase`, `null`,
...) on fields, nested filters on relations (`team: {id: {eq: ...}}`), collection filters on
to-many relations (`labels: {name: {eq: "Bug"}}`, `some`, `every`, `length`), and `and`/`or`.
Dates compare as instants and accept ISO 8601 durations relative to now (`-P2W`).
Connections order by `orderBy` (createdAt by default), newest first, and page with
`first`/`after` or `last`/`before`; cursors are record ids.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from .local_errors import invalid_input

Record = dict[str, Any]
# (kind, record, field) -> the field's value: a scalar, a related record, or a list of them,
# and the related kind when it is a relation.
Lookup = Callable[[str, Record, str], tuple[Any, str | None]]

DEFAULT_PAGE = 50
MAX_PAGE = 250

_COMPARATORS = {
    "eq", "neq", "in", "nin", "lt", "lte", "gt", "gte", "null",
    "contains", "containsIgnoreCase", "notContains", "notContainsIgnoreCase",
    "containsIgnoreCaseAndAccent", "startsWith", "startsWithIgnoreCase", "notStartsWith",
    "endsWith", "notEndsWith", "eqIgnoreCase", "neqIgnoreCase",
}  # fmt: skip
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(T.*)?$")
_DURATION = re.compile(
    r"^(-)?P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$"
)


def matches(lookup: Lookup, kind: str, record: Record, filter: dict[str, Any] | None) -> bool:
    """Whether a record passes a Linear filter."""
    for key, condition in (filter or {}).items():
        if condition is None:
            continue
        if key == "and":
            if not all(matches(lookup, kind, record, part) for part in condition):
                return False
            continue
        if key == "or":
            if not any(matches(lookup, kind, record, part) for part in condition):
                return False
            continue
        value, related = lookup(kind, record, key)
        if not _holds(lookup, value, related, condition):
            return False
    return True


def _holds(lookup: Lookup, value: Any, related: str | None, condition: dict[str, Any]) -> bool:
    if isinstance(value, list) and related is not None:
        return _collection(lookup, value, related, condition)
    comparators = {k: v for k, v in condition.items() if k in _COMPARATORS}
    nested = {k: v for k, v in condition.items() if k not in _COMPARATORS}
    if related is not None:
        is_null = comparators.pop("null", None)
        if is_null is not None and (value is None) != bool(is_null):
            return False
        if comparators:  # a comparator straight on a relation compares its id
            value = value["id"] if value else None
        elif nested:
            return value is not None and matches(lookup, related, value, nested)
        else:
            return True
    return all(_compare(value, op, operand) for op, operand in comparators.items())


def _collection(lookup: Lookup, items: list[Record], kind: str, condition: dict[str, Any]) -> bool:
    for key, operand in condition.items():
        if operand is None:
            continue
        if key == "some":
            ok = any(matches(lookup, kind, item, operand) for item in items)
        elif key == "every":
            ok = all(matches(lookup, kind, item, operand) for item in items)
        elif key == "null":
            ok = (not items) == bool(operand)
        elif key == "length":
            ok = all(_compare(len(items), op, arg) for op, arg in operand.items())
        elif key == "and":
            ok = all(_collection(lookup, items, kind, part) for part in operand)
        elif key == "or":
            ok = any(_collection(lookup, items, kind, part) for part in operand)
        else:  # a field condition on a collection means "some item has it"
            ok = any(matches(lookup, kind, item, {key: operand}) for item in items)
        if not ok:
            return False
    return True


def _compare(value: Any, op: str, operand: Any) -> bool:
    if op == "null":
        return (value is None) == bool(operand)
    if op in ("in", "nin"):
        found = any(_equal(value, item) for item in operand or [])
        return found if op == "in" else not found
    if op in ("eq", "neq"):
        return _equal(value, operand) == (op == "eq")
    if value is None:
        return op.startswith("not") or op == "neqIgnoreCase"
    if op in ("lt", "lte", "gt", "gte"):
        left, right = _ordered(value, operand)
        if op == "lt":
            return bool(left < right)
        if op == "lte":
            return bool(left <= right)
        if op == "gt":
            return bool(left > right)
        return bool(left >= right)
    text, arg = str(value), str(operand)
    folded, arg_folded = text.casefold(), arg.casefold()
    return {
        "contains": arg in text,
        "containsIgnoreCase": arg_folded in folded,
        "containsIgnoreCaseAndAccent": arg_folded in folded,
        "notContains": arg not in text,
        "notContainsIgnoreCase": arg_folded not in folded,
        "startsWith": text.startswith(arg),
        "startsWithIgnoreCase": folded.startswith(arg_folded),
        "notStartsWith": not text.startswith(arg),
        "endsWith": text.endswith(arg),
        "notEndsWith": not text.endswith(arg),
        "eqIgnoreCase": folded == arg_folded,
        "neqIgnoreCase": folded != arg_folded,
    }[op]


def _equal(value: Any, operand: Any) -> bool:
    if isinstance(value, str) and isinstance(operand, str) and _DATE.match(value):
        left, right = _ordered(value, operand)
        return bool(left == right)
    return bool(value == operand)


def _ordered(value: Any, operand: Any) -> tuple[Any, Any]:
    if isinstance(value, str) and _DATE.match(value):
        return _instant(value), _instant(str(operand))
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(value), float(operand)
        except (TypeError, ValueError):
            raise invalid_input(f"{operand!r} is not a number") from None
    return str(value), str(operand)


def _instant(text: str) -> datetime:
    duration = _DURATION.match(text)
    if duration and text.strip("-") != "P":
        sign, years, months, weeks, days, hours, minutes, seconds = duration.groups()
        delta = timedelta(
            days=int(years or 0) * 365 + int(months or 0) * 30 + int(weeks or 0) * 7
            + int(days or 0),
            hours=int(hours or 0),
            minutes=int(minutes or 0),
            seconds=int(seconds or 0),
        )  # fmt: skip
        return datetime.now(UTC) + (-delta if sign else delta)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise invalid_input(f"{text!r} is neither a date nor an ISO 8601 duration") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def connection(items: list[Record], args: dict[str, Any]) -> dict[str, Any]:
    """A Linear connection (`nodes`, `edges`, `pageInfo`) over already-filtered records."""
    order = args.get("orderBy") or "createdAt"
    ordered = sorted(items, key=lambda item: str(item.get(order) or ""), reverse=True)
    ids = [item["id"] for item in ordered]
    start, end = 0, len(ordered)
    if after := args.get("after"):
        start = _position(ids, after) + 1
    if before := args.get("before"):
        end = _position(ids, before)
    first, last = args.get("first"), args.get("last")
    if first is None and last is None:
        first = DEFAULT_PAGE
    if first is not None:
        if first < 0:
            raise invalid_input("first must be a positive number")
        end = min(end, start + min(first, MAX_PAGE))
    if last is not None:
        if last < 0:
            raise invalid_input("last must be a positive number")
        start = max(start, end - min(last, MAX_PAGE))
    page = ordered[start:end]
    return {
        "nodes": page,
        "edges": [{"node": item, "cursor": item["id"]} for item in page],
        "pageInfo": {
            "hasNextPage": end < len(ordered),
            "hasPreviousPage": start > 0,
            "startCursor": page[0]["id"] if page else None,
            "endCursor": page[-1]["id"] if page else None,
        },
    }


def _position(ids: list[str], cursor: str) -> int:
    try:
        return ids.index(cursor)
    except ValueError:
        raise invalid_input(f"the cursor {cursor!r} is not in this list") from None
