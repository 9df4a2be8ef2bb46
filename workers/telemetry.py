"""Traces and worker metrics, set up once per process by a composition root.

Traces follow the standard OpenTelemetry variables: OTEL_TRACES_EXPORTER is `none` (the
default), `console` or `otlp` (OTLP over HTTP, which reads OTEL_EXPORTER_OTLP_ENDPOINT,
OTEL_EXPORTER_OTLP_HEADERS, ... itself), or several comma-separated; OTEL_SERVICE_NAME names the
service (default `durable`). When on, spans go to a global SDK tracer provider, and every client
gets Temporal's tracing interceptor, which workers built from that client inherit: one trace
runs from the client's StartWorkflow through the workflow to every step, and the store's
`db.*` spans join it. When off, nothing is set up and the OpenTelemetry SDK is never imported.

Metrics: with DURABLE_METRICS_PORT set, workers serve Temporal's runtime metrics (polls, task
latencies, slots, workflow and activity outcomes) for Prometheus at
`http://{DURABLE_METRICS_HOST}:{port}/metrics`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from temporalio.client import Interceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from .settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger("durable.telemetry")

EXPORTERS = ("console", "otlp")


class TelemetryError(ValueError):
    """A telemetry setting that cannot be honoured; the message names the variable."""


@dataclass
class Telemetry:
    """What a process traces with and where its worker metrics go.

    Attributes:
        tracer_provider: Where spans go; None when tracing is off.
        runtime: The Temporal runtime clients connect with; None for the default one.
        metrics_address: `host:port` serving Prometheus metrics, when on.
        owns_provider: Whether `shutdown` shuts the provider down (False for one set up
            elsewhere, e.g. by a test or by `opentelemetry-instrument`).
    """

    tracer_provider: TracerProvider | None = None
    runtime: Runtime | None = None
    metrics_address: str | None = None
    owns_provider: bool = False

    def client_interceptors(self) -> list[Interceptor]:
        """Temporal's tracing interceptor when tracing is on; nothing otherwise."""
        if self.tracer_provider is None:
            return []
        from temporalio.contrib.opentelemetry import TracingInterceptor

        return [TracingInterceptor(self.tracer_provider.get_tracer("temporalio"))]

    def shutdown(self) -> None:
        """Flush spans still queued and stop the exporters (once; later calls do nothing)."""
        if self.tracer_provider is not None and self.owns_provider:
            self.owns_provider = False
            self.tracer_provider.shutdown()


def exporter_names(settings: Settings) -> list[str]:
    """The exporters OTEL_TRACES_EXPORTER asks for; empty when tracing is off."""
    if settings.otel_sdk_disabled:
        return []
    names = [n.strip().lower() for n in settings.traces_exporter.split(",") if n.strip()]
    unknown = [n for n in names if n not in (*EXPORTERS, "none")]
    if unknown:
        raise TelemetryError(
            f"OTEL_TRACES_EXPORTER={settings.traces_exporter!r}: unsupported {unknown}; "
            f"use none, {', '.join(EXPORTERS)} or a comma-separated list of them"
        )
    return [n for n in names if n != "none"]


def span_exporter(name: str) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def tracer_provider(settings: Settings, exporters: list[SpanExporter]) -> TracerProvider:
    """An SDK tracer provider for this service that batches spans to each of `exporters`."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: settings.service_name}))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def metrics_runtime(settings: Settings) -> tuple[Runtime, str] | None:
    """A Temporal runtime serving its metrics for Prometheus, and its address; None when off."""
    if settings.metrics_port is None:
        return None
    address = f"{settings.metrics_host}:{settings.metrics_port}"
    try:
        runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))
    except ValueError as err:
        raise TelemetryError(
            f"cannot serve metrics on {address} (DURABLE_METRICS_HOST/DURABLE_METRICS_PORT): {err}"
        ) from err
    return runtime, address


def start_telemetry(settings: Settings, *, metrics: bool = False) -> Telemetry:
    """Set up tracing as the settings ask, and with `metrics` (worker processes) the
    Prometheus endpoint. Call `shutdown()` on the result when the process is done."""
    telemetry = Telemetry()
    names = exporter_names(settings)
    if names:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            # Already set up in this process (a second client, or an OTel distro): share it.
            telemetry.tracer_provider = current
        else:
            provider = tracer_provider(settings, [span_exporter(n) for n in names])
            trace.set_tracer_provider(provider)
            telemetry.tracer_provider, telemetry.owns_provider = provider, True
            log.info("tracing on", extra={"exporters": names, "service": settings.service_name})
    if metrics:
        served = metrics_runtime(settings)
        if served is not None:
            telemetry.runtime, telemetry.metrics_address = served
            log.info("metrics on", extra={"address": f"http://{served[1]}/metrics"})
    return telemetry
