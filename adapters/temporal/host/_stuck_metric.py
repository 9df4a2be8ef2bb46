"""The stuck-run count as a metric: `durable_stuck_runs{kind=...}`, a gauge on the worker's
Temporal runtime (served with its other metrics for Prometheus, DURABLE_METRICS_PORT)."""

from __future__ import annotations

import asyncio
import logging
from typing import get_args

from temporalio.runtime import Runtime

from durable import DurableClient
from durable._client import StuckKind

log = logging.getLogger("durable.stuck")

METRIC = "durable_stuck_runs"
EVERY_SECONDS = 60.0


async def report_stuck_once(client: DurableClient, runtime: Runtime) -> dict[str, int]:
    """Count the stuck runs of every org by kind and set the gauge; returns the counts."""
    found = await client.stuck()
    counts = {kind: 0 for kind in get_args(StuckKind)}
    for run in found:
        counts[run.kind] += 1
    gauge = runtime.metric_meter.create_gauge(
        METRIC, "Open runs that will not move on by themselves, by kind", "runs"
    )
    for kind, count in counts.items():
        gauge.with_additional_attributes({"kind": kind}).set(count)
    return counts


async def report_stuck(
    client: DurableClient, runtime: Runtime, every_seconds: float = EVERY_SECONDS
) -> None:
    """Keep the gauge current, forever; run it beside a worker that serves metrics."""
    while True:
        try:
            counts = await report_stuck_once(client, runtime)
            if any(counts.values()):
                log.warning("runs need an operator: see `durable stuck`", extra=counts)
        except Exception:
            log.exception("counting stuck runs failed")
        await asyncio.sleep(every_seconds)
