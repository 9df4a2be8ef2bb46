"""Traces from the client through the workflow to every step, store spans inside them, worker
metrics for Prometheus, and nothing at all when telemetry is off."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import asyncpg
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from adapters.temporal import TemporalDurableClient, build_worker, ensure_search_attributes
from store import EventStore
from workers.embedded import EmbeddedTemporal, free_port
from workers.runtime import connect_temporal, worker_registry
from workers.settings import Settings
from workers.telemetry import (
    Telemetry,
    TelemetryError,
    exporter_names,
    metrics_runtime,
    span_exporter,
    start_telemetry,
)

from ..conformance.workflows import REGISTRY, Key

ROOT = Path(__file__).parent.parent.parent
# What tracing costs at import: none of it may load while it is off.
HEAVY = ("opentelemetry.sdk", "opentelemetry.exporter", "temporalio.contrib.opentelemetry")


def settings_for(server: EmbeddedTemporal, **values: object) -> Settings:
    """Settings for the test server; telemetry off unless `values` turn it on."""
    given: dict[str, object] = {"OTEL_TRACES_EXPORTER": "none", "DURABLE_METRICS_PORT": None}
    return Settings.model_validate({**given, "TEMPORAL_ADDRESS": server.address, **values})


def recording() -> tuple[TracerProvider, InMemorySpanExporter]:
    """A tracer provider of the test's own (the global one stays unset) that keeps its spans."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def attribute(span: ReadableSpan, key: str) -> object:
    return (span.attributes or {}).get(key)


async def test_one_run_is_one_connected_trace_with_a_span_per_step(
    dev_server: EmbeddedTemporal, pool: asyncpg.Pool, task_queue: str
) -> None:
    provider, exporter = recording()
    client = await connect_temporal(settings_for(dev_server), Telemetry(tracer_provider=provider))
    await ensure_search_attributes(client, create=True)
    registry = worker_registry(pool)
    async with build_worker(client, registry, task_queue):  # inherits the client's interceptor
        durable = TemporalDurableClient(client, registry, task_queue)
        handle = await durable.start(
            "rensei/example.run", {"topic": "alpha beta", "cool_down": "100ms"}
        )
        await handle.result()
    spans = exporter.get_finished_spans()

    assert len({s.context.trace_id for s in spans}) == 1, "the whole run is one trace"
    ids = {s.context.span_id for s in spans}
    roots = [s for s in spans if s.parent is None]
    assert [r.name for r in roots] == ["StartWorkflow:rensei/example.run"]
    assert roots[0].kind == SpanKind.CLIENT
    orphans = [s.name for s in spans if s.parent is not None and s.parent.span_id not in ids]
    assert orphans == [], "every span's parent is in the trace"

    names = {s.name for s in spans}
    assert {"RunWorkflow:rensei/example.run", "RunWorkflow:rensei/example.summarise"} <= names
    steps = {
        str(attribute(s, "temporalActivityID")): s.name
        for s in spans
        if s.name.startswith("RunActivity:")
    }
    assert steps == {
        "plan": "RunActivity:example.plan",  # a local activity
        "research-1": "RunActivity:example.research",
        "research-2": "RunActivity:example.research",
        "compose": "RunActivity:example.compose",  # the child run's step
        "record": "RunActivity:example.record-note",
    }
    assert all(
        attribute(s, "temporalWorkflowID") for s in spans if s.name.startswith("RunActivity:")
    )


async def test_store_calls_are_spans_in_the_callers_trace(pool: asyncpg.Pool) -> None:
    provider, exporter = recording()
    store = EventStore(pool, tracer_provider=provider)
    with provider.get_tracer("test").start_as_current_span("caller") as caller:
        await store.get("no-such-event", org_id="")
        await store.stale()
    await store.get("no-such-event", org_id="")  # outside a trace: a root span of its own
    await store.stale()  # a poll outside a trace: no span

    db = [s for s in exporter.get_finished_spans() if s.name.startswith("db.")]
    assert [s.name for s in db] == ["db.events.get", "db.events.stale", "db.events.get"]
    inside = db[:2]
    assert all(s.parent and s.parent.span_id == caller.get_span_context().span_id for s in inside)
    assert all(s.context.trace_id == caller.get_span_context().trace_id for s in inside)
    assert db[2].parent is None
    assert [(attribute(s, "db.system"), attribute(s, "db.operation")) for s in db] == [
        ("postgresql", "get"),
        ("postgresql", "stale"),
        ("postgresql", "get"),
    ]
    assert {s.kind for s in db} == {SpanKind.CLIENT}


async def test_a_failing_store_call_records_the_error_on_its_span(pool: asyncpg.Pool) -> None:
    provider, exporter = recording()
    store = EventStore(pool, tracer_provider=provider)
    with pytest.raises(asyncpg.PostgresError):
        await store.ingest("nan", "tests/x.y", {"a": float("nan")}, [])  # jsonb refuses NaN
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "db.events.ingest"]
    assert not span.status.is_ok
    assert [e.name for e in span.events] == ["exception"]


async def test_worker_metrics_are_served_for_prometheus(
    dev_server: EmbeddedTemporal, task_queue: str
) -> None:
    port = free_port()
    settings = settings_for(dev_server, DURABLE_METRICS_PORT=port)
    telemetry = start_telemetry(settings, metrics=True)
    assert telemetry.metrics_address == f"127.0.0.1:{port}"
    assert telemetry.tracer_provider is None
    client = await connect_temporal(settings, telemetry)
    async with build_worker(client, REGISTRY, task_queue):
        durable = TemporalDurableClient(client, REGISTRY, task_queue, search_attributes=False)
        handle = await durable.start("conformance/memo.run", Key(key=task_queue, seconds=0.1))
        await handle.result()
        url = f"http://{telemetry.metrics_address}/metrics"
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read())
    text = body.decode()
    for metric in (
        "temporal_request",  # client and worker calls to the server
        "temporal_workflow_completed",
        "temporal_activity_execution_latency",
        "temporal_worker_task_slots_available",
    ):
        assert f"\n{metric}" in text, f"{metric} missing from /metrics"
    completed = [
        line
        for line in text.splitlines()
        if line.startswith("temporal_workflow_completed{")
        and f'task_queue="{task_queue}"' in line
        and 'workflow_type="conformance/memo.run"' in line
    ]
    assert [line.rsplit(" ", 1)[1] for line in completed] == ["1"], completed


def test_a_metrics_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(TelemetryError, match=rf"127\.0\.0\.1:{port} .*DURABLE_METRICS_PORT"):
            metrics_runtime(Settings.model_validate({"DURABLE_METRICS_PORT": port}))


async def test_with_telemetry_off_a_client_has_no_interceptor_and_the_default_runtime(
    dev_server: EmbeddedTemporal, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "DURABLE_METRICS_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.model_validate({"TEMPORAL_ADDRESS": dev_server.address})
    assert exporter_names(settings) == []
    client = await connect_temporal(settings)
    assert list(client.config()["interceptors"]) == []
    assert client.service_client.config.runtime is None, "the default runtime: no metrics port"


def test_with_telemetry_off_the_opentelemetry_sdk_is_never_imported() -> None:
    code = (
        "import sys\n"
        "import cli.main, store, workers.dev, workers.main, workers.runtime\n"
        "from workers.settings import Settings\n"
        "from workers.telemetry import start_telemetry\n"
        "t = start_telemetry(Settings(), metrics=True)\n"
        "assert t.client_interceptors() == [] and t.runtime is None\n"
        f"print(sorted(m for m in sys.modules if m.startswith({HEAVY!r})))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DURABLE_METRICS"))}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_exporters_follow_otel_traces_exporter() -> None:
    def names(value: str, disabled: bool = False) -> list[str]:
        given = {"OTEL_TRACES_EXPORTER": value, "OTEL_SDK_DISABLED": disabled}
        return exporter_names(Settings.model_validate(given))

    assert names("none") == []
    assert names("console") == ["console"]
    assert names("otlp, console") == ["otlp", "console"]
    assert names("otlp", disabled=True) == []
    with pytest.raises(TelemetryError, match="OTEL_TRACES_EXPORTER='jaeger'"):
        names("jaeger")
    assert isinstance(span_exporter("console"), ConsoleSpanExporter)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    assert isinstance(span_exporter("otlp"), OTLPSpanExporter)


async def test_the_embedded_server_ignores_our_tracing_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The dev server reads OTEL_* itself and refuses to start on `console`.
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    server = EmbeddedTemporal(port=free_port(), log_file=tmp_path / "temporal.log")
    await server.start()
    await server.stop()
