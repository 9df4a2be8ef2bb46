"""Spans around the store's database work.

Only the OpenTelemetry API is used here: without a tracer provider (the default) every span is
a no-op, so the store costs nothing extra until a composition root turns tracing on.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from opentelemetry import trace

INSTRUMENTATION = "durable.store"

P = ParamSpec("P")
T = TypeVar("T")


class Traced(Protocol):
    """What a decorated method's object has: the tracer its spans come from."""

    _tracer: trace.Tracer


S = TypeVar("S", bound=Traced)

Method = Callable[Concatenate[S, P], Awaitable[T]]
TracedMethod = Callable[Concatenate[S, P], Coroutine[Any, Any, T]]


def store_tracer(provider: trace.TracerProvider | None = None) -> trace.Tracer:
    """The store's tracer: from `provider`, else from the global provider (once one is set)."""
    return trace.get_tracer(INSTRUMENTATION, tracer_provider=provider)


def db_spans(
    component: str, *, root: bool = True
) -> Callable[[Method[S, P, T]], TracedMethod[S, P, T]]:
    """A decorator that runs an async method in a span `db.{component}.{method name}`.

    The span is a client span with `db.system=postgresql` and `db.operation` = the method's
    name; an exception is recorded on it. With `root=False` a span is made only inside an
    active trace, for calls made on a timer that would otherwise start a trace each time.
    """

    def decorate(method: Method[S, P, T]) -> TracedMethod[S, P, T]:
        name = f"db.{component}.{method.__name__}"
        attributes = {"db.system": "postgresql", "db.operation": method.__name__}

        @functools.wraps(method)
        async def traced(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
            if not root and not trace.get_current_span().get_span_context().is_valid:
                return await method(self, *args, **kwargs)
            with self._tracer.start_as_current_span(
                name, kind=trace.SpanKind.CLIENT, attributes=attributes
            ):
                return await method(self, *args, **kwargs)

        return traced

    return decorate
