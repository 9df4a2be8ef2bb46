"""What every section of the benchmark shares: progress output, percentiles, table rows."""

from __future__ import annotations

import sys
from dataclasses import dataclass


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Row:
    figure: str
    raw: float
    durable: float
    unit: str

    def line(self) -> str:
        ratio = self.durable / self.raw if self.raw else float("nan")
        digits = 2 if self.unit == "s" else 1
        raw, ours = (f"{value:.{digits}f} {self.unit}" for value in (self.raw, self.durable))
        return f"| {self.figure} | {raw} | {ours} | {ratio:.2f} |"


def p50_p95(figure: str, raw: list[float], durable: list[float], unit: str = "ms") -> list[Row]:
    """The `figure, p50` and `figure, p95` rows of two sample sets."""
    return [
        Row(f"{figure}, p{q}", pct(raw, p), pct(durable, p), unit)
        for q, p in ((50, 0.5), (95, 0.95))
    ]
