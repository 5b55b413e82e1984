"""A small stdlib harness for `make bench`: repeated timings, targets, the table, the JSON.

The machines are shared and noisy, so every figure is a median over repeated runs, and a
ratio between two things is always taken from timings made side by side in the same run.
"""

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path


def timed(work: Callable[[], object]) -> float:
    """Seconds one call of `work` takes (perf_counter: monotonic, highest resolution)."""
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


@dataclass(frozen=True)
class Check:
    """One target: a measured figure against its limit, e.g. median <= 10 s."""

    figure: str
    value: float
    limit: float
    unit: str
    at_most: bool = True

    @property
    def met(self) -> bool:
        return self.value <= self.limit if self.at_most else self.value >= self.limit

    def describe(self) -> str:
        """The target alone: the figure itself is in its own column of the table."""
        sign = "<=" if self.at_most else ">="
        return f"{self.figure} {sign} {_amount(self.limit, self.unit)}"

    def to_json(self) -> dict[str, object]:
        return {
            "target": self.describe(),
            "figure": self.figure,
            "value": self.value,
            "limit": self.limit,
            "unit": self.unit,
            "met": self.met,
        }


@dataclass(frozen=True)
class Result:
    """One benchmark's timings in seconds, its targets, and what else it measured."""

    name: str
    samples: tuple[float, ...]
    description: str
    checks: tuple[Check, ...] = ()
    ratio: float | None = None
    ratio_meaning: str | None = None
    note: str = ""
    """A further figure worth seeing in the table (per-session time, MB, a reference)."""
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def meets_target(self) -> bool | None:
        """None where there is no target (a reference measurement)."""
        return all(c.met for c in self.checks) if self.checks else None

    def to_json(self) -> dict[str, object]:
        entry: dict[str, object] = {
            "name": self.name,
            "description": self.description,
            "median_s": self.median,
            "min_s": min(self.samples),
            "max_s": max(self.samples),
            "runs": len(self.samples),
            "target": "; ".join(c.describe() for c in self.checks) or None,
            "meets_target": self.meets_target,
            "checks": [c.to_json() for c in self.checks],
        }
        if self.ratio is not None:
            entry["ratio"] = self.ratio
            entry["ratio_meaning"] = self.ratio_meaning
        if self.note:
            entry["note"] = self.note
        entry["samples_s"] = list(self.samples)
        entry.update(self.extra)
        return entry


def seconds(value: float) -> str:
    """Durations readable from microseconds to minutes."""
    if value < 1e-3:
        return f"{value * 1e6:.3g} us"
    if value < 1.0:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g} s"


def _amount(value: float, unit: str) -> str:
    if unit == "s":
        return seconds(value)
    number = f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
    return f"{number}x" if unit == "x" else f"{number} {unit}"


def render_table(results: Iterable[Result]) -> str:
    headers = ("benchmark", "median", "min", "max", "runs", "ratio", "target", "ok", "note")
    rows = [
        (
            r.name,
            seconds(r.median),
            seconds(min(r.samples)),
            seconds(max(r.samples)),
            str(len(r.samples)),
            "-" if r.ratio is None else _amount(r.ratio, "x"),
            "; ".join(c.describe() for c in r.checks) or "(reference)",
            {True: "yes", False: "NO", None: "-"}[r.meets_target],
            r.note,
        )
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    lines = [
        "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def ratio_notes(results: Iterable[Result]) -> str:
    """What each ratio in the table compares."""
    return "\n".join(
        f"  {r.name}: {r.ratio_meaning}" for r in results if r.ratio_meaning is not None
    )


def write_results(
    path: Path,
    results: Iterable[Result],
    *,
    wall_seconds: float,
    load_before: tuple[float, float, float],
) -> None:
    document = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": list(load_before),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "wall_seconds": wall_seconds,
        "benchmarks": [r.to_json() for r in results],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
