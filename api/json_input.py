"""JSON from a caller, parsed with limits, so that no document makes a 500 or fills memory.

`parse_json` refuses (BadJson, a 400 for the caller, the message saying what is wrong):

- nesting deeper than MAX_JSON_DEPTH (64) arrays and objects: measured over the raw bytes
  before the parser runs, so neither Python's parser nor pydantic's recursion guard (about 255
  levels) ever meets a deeper document (brackets that never close reach the parser, which
  stops at Python's recursion limit: "not valid JSON");
- NaN, Infinity and numbers that overflow a float (1e400), which are not JSON (RFC 8259) and
  break comparisons and PostgreSQL's jsonb;
- integers of more than MAX_INTEGER_DIGITS digits (Python refuses past 4,300 anyway);
- with `nul=False`, a NUL character (`\\u0000`) in any string or key, as a 422 (the document
  is JSON; its content cannot be stored): PostgreSQL text and jsonb cannot hold it, so it
  would fail only once stored. The message names where it is.
"""

from __future__ import annotations

import functools
import json
import math
import re
from typing import Any

MAX_JSON_DEPTH = 64
MAX_INTEGER_DIGITS = 100

# A JSON string, escapes included; what is left without them holds the structure.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))


class BadJson(ValueError):
    """The body is not JSON this API takes; the message says why, for the caller. `status`:
    400 for a document refused as such, 422 for a NUL character (valid JSON, unstorable)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@functools.cache
def _nested_at_most(limit: int) -> re.Pattern[bytes]:
    """Brackets (only) of containers nested at most `limit` deep: a pattern of `limit` nested
    groups, possessive, so matching is linear and a deeper container fails where it starts."""
    container = rb"[\[{][\]}]"
    for _ in range(limit - 1):
        container = rb"[\[{](?:" + container + rb")*+[\]}]"
    return re.compile(rb"(?:" + container + rb")*+")


def too_deep(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the arrays and objects of `raw` nest deeper than `limit`, without parsing it:
    its brackets outside strings, matched in linear time. False for brackets that do not pair
    up (not JSON: the parser says where)."""
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKET)
    fits = _nested_at_most(limit).match(brackets)
    end = fits.end() if fits else 0
    if end == len(brackets) or brackets[end] in b"]}":
        return False
    # Everything before `end` pairs up; if the rest does too, the container that starts
    # there closes, and did not fit: it is deeper than `limit`.
    opens = brackets.count(b"[") + brackets.count(b"{")
    return opens * 2 == len(brackets)


def _constant(name: str) -> Any:
    raise BadJson(f"body is not valid JSON: {name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadJson(f"body is not valid JSON: the number {text[:40]} is out of range")
    return value


def _int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INTEGER_DIGITS:
        raise BadJson(
            f"body has an integer of {digits} digits; at most {MAX_INTEGER_DIGITS} are taken"
        )
    return int(text)


def _where(path: list[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def nul_at(value: Any) -> str | None:
    """Where the first NUL character in `value`'s strings or keys is (`data.notes[2]`;
    `body` for a top-level string), or None."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return _where(path) or "body"
        elif isinstance(item, dict):
            for key, inner in item.items():
                if "\x00" in key:
                    return f"a key in {_where(path) or 'the body'}"
                stack.append((inner, [*path, key]))
        elif isinstance(item, list):
            stack.extend((inner, [*path, i]) for i, inner in enumerate(item))
    return None


def refuse_nul(value: Any, what: str = "") -> None:
    """BadJson when a string of `value` holds a NUL character (`what`: where `value` is)."""
    found = nul_at(value)
    if found is not None:
        where = f"{what}.{found}" if what and found != "body" else what or found
        raise BadJson(f"{where} contains a NUL character (\\u0000), which cannot be stored", 422)


def _too_deep(limit: int) -> BadJson:
    return BadJson(f"body nests arrays and objects deeper than {limit} levels")


def parse_json(raw: bytes, *, nul: bool = False, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The document in `raw`. Raises BadJson (see the module)."""
    if too_deep(raw, max_depth):
        raise BadJson(f"body nests arrays and objects deeper than {max_depth} levels")
    try:
        document = json.loads(raw, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except BadJson:
        raise
    except RecursionError:  # brackets that never close: Python's own guard stops it
        raise BadJson("body is not valid JSON: its brackets do not pair up") from None
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
        raise BadJson(f"body is not valid JSON: {err}") from None
    if not nul and b"\\u0000" in raw:
        refuse_nul(document)
    return document
