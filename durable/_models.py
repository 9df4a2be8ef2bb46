"""Helpers for reading pydantic models off function signatures."""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from ._errors import InvalidDefinition


def io_models(fn: Callable[..., Any], what: str, skip: int) -> tuple[type[Any], type[Any]]:
    """Return the (input, output) pydantic models of `fn`'s last parameter and its return type.

    `skip` is the number of leading parameters that are not the input (self, ctx).
    """
    try:
        hints = typing.get_type_hints(fn)
    except NameError as err:
        raise InvalidDefinition(f"{what}: cannot resolve type hints: {err}") from err
    params = [p for p in hints if p != "return"]
    code_params = list(fn.__code__.co_varnames[: fn.__code__.co_argcount])
    if len(code_params) != skip + 1:
        raise InvalidDefinition(
            f"{what} must take exactly one input model after {skip} leading parameter(s), "
            f"takes {code_params}"
        )
    input_name = code_params[skip]
    if input_name not in params:
        raise InvalidDefinition(
            f"{what}: parameter {input_name!r} needs a pydantic model type hint"
        )
    input_type, output_type = hints[input_name], hints.get("return", None)
    for label, model in (("input", input_type), ("output", output_type)):
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise InvalidDefinition(
                f"{what}: the {label} type must be a pydantic BaseModel subclass, got {model!r}"
            )
    assert output_type is not None
    return input_type, output_type
