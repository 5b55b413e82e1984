"""Progress of long work (a replay, a soak, a backfill) where the person waiting sees it.

On a terminal: a bar that redraws in place, with the count, the rate and the time left. Not
on a terminal (a CI log, a file): a plain line now and then, about twenty for the whole
work, each with the same facts, so a log shows that the work moves and how fast without a
thousand lines.
"""

import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TextIO

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

PLAIN_LINES = 20
"""About how many lines the plain form writes for the whole work."""


class Progress(Protocol):
    def advance(self, done: int, note: str = "") -> None:
        """`done` of the total are done; `note` says where (a session, a count)."""
        ...


def duration(seconds: float) -> str:
    """A short human duration: 45 s, 3 min 05 s, 2 h 07 min."""
    whole = max(0, math.ceil(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@dataclass
class PlainProgress:
    """A line every ~1/PLAIN_LINES of the work, and at the end."""

    label: str
    total: int
    unit: str
    stream: TextIO
    clock: Callable[[], float] = time.monotonic
    started: float = field(init=False)
    _next: int = field(init=False)
    _every: int = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()
        self._every = max(1, math.ceil(self.total / PLAIN_LINES))
        self._next = self._every

    def advance(self, done: int, note: str = "") -> None:
        if done < self._next and done != self.total:
            return
        while self._next <= done:
            self._next += self._every
        self.stream.write(self.line(done, note) + "\n")
        self.stream.flush()

    def line(self, done: int, note: str = "") -> str:
        elapsed = self.clock() - self.started
        share = done / self.total if self.total else 1.0
        text = f"{self.label}: {done}/{self.total} {self.unit} ({share:.0%})"
        if done and elapsed > 0:
            rate = done / elapsed
            text += f", {rate:.2f} {self.unit}/s"
            if done < self.total:
                text += f", {duration((self.total - done) / rate)} left"
        if done == self.total:
            text += f", done in {duration(elapsed)}"
        return f"{text} - {note}" if note else text


@dataclass
class BarProgress:
    """rich's bar, told the count and where the work is."""

    bar: "RichProgress"
    task: "TaskID"
    unit: str

    def advance(self, done: int, note: str = "") -> None:
        self.bar.update(self.task, completed=done, note=note)
        # The speed is rich's estimate over the recent updates, this one included.
        [task] = [task for task in self.bar.tasks if task.id == self.task]
        rate = "" if task.speed is None else f"{task.speed:.2f} {self.unit}/s"
        self.bar.update(self.task, rate=rate)


@contextmanager
def progress(label: str, total: int, unit: str, stream: TextIO | None = None) -> Iterator[Progress]:
    """Progress of `total` units of work, shown on `stream` (stderr by default): a bar on a
    terminal, plain lines otherwise."""
    out = sys.stderr if stream is None else stream
    if not out.isatty():
        yield PlainProgress(label, total, unit, out)
        return
    # Imported here: only a terminal needs it, and the CLI starts without it.
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as RichProgress

    columns = (
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        TextColumn("left {task.fields[note]}"),
    )
    with RichProgress(*columns, console=Console(file=out)) as bar:
        yield BarProgress(bar, bar.add_task(label, total=total, rate="", note=""), unit)


@contextmanager
def working(what: str, stream: TextIO | None = None) -> Iterator[None]:
    """Work that cannot count its steps (one Dagster run): on a terminal, what it is and the
    time spent, until it ends. Nothing in a log, where the command's own lines (its
    summary, or its one line of error) are all there is to read."""
    out = sys.stderr if stream is None else stream
    if not out.isatty():
        yield
        return
    out.write(f"{what} ...\n")
    out.flush()
    from rich.console import Console
    from rich.progress import Progress as RichProgress
    from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("working"), TimeElapsedColumn())
    with RichProgress(*columns, console=Console(file=out), transient=True) as bar:
        bar.add_task(what, total=None)
        yield
