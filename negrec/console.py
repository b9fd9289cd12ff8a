"""What a person watching a long stage sees: one progress display per stage, with rich.

Why one module: training, a sweep and the pipeline all show progress, and each must
read at a glance on a terminal (a live bar that rewrites itself) and still make a short
log where stdout is a file (CI, ``ray job submit``): there every update becomes one
plain line, at most :data:`WIDTH` characters, and only when something changed.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

WIDTH = 120
"""The widest line a stage prints when stdout is not a terminal."""


def console(stream: TextIO | None = None) -> Console:
    """A rich console on ``stream`` (stdout by default); plain text off a terminal."""
    target = stream or sys.stdout
    return Console(file=target, width=WIDTH if not target.isatty() else None, highlight=False)


def clip(line: str) -> str:
    """``line`` cut to :data:`WIDTH` characters (an ellipsis marks the cut)."""
    return line if len(line) <= WIDTH else line[: WIDTH - 1] + "…"


def duration(seconds: float) -> str:
    """``75`` -> ``1m15s``: how long, as a person says it."""
    seconds = max(0, round(seconds))
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


class StageProgress:
    """Progress of one stage towards ``total`` units (epochs, trials): a live bar with a
    status text on a terminal, else one plain line per :meth:`update` that changes it."""

    def __init__(self, title: str, total: int, unit: str, stream: TextIO | None = None) -> None:
        self.title, self.total, self.unit = title, total, unit
        self.out = console(stream)
        self.live = self.out.is_terminal
        self._last = ""
        self._progress: Progress | None = None
        self._task = 0

    def __enter__(self) -> StageProgress:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Draw the bar (on a terminal); a plain log starts with the first update."""
        if self.live:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=24),
                MofNCompleteColumn(),
                TextColumn(self.unit),
                TimeElapsedColumn(),
                TextColumn("{task.fields[status]}"),
                console=self.out,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.title, total=self.total, status="")

    def update(self, done: int, status: str) -> None:
        """``done`` of ``total`` units finished; ``status`` says what they gave."""
        if self._progress is not None:
            self._progress.update(self._task, completed=done, status=status)
            return
        line = clip(f"{self.title}: {self.unit} {done}/{self.total} {status}")
        if line != self._last:
            self.out.print(line, soft_wrap=True, markup=False)
            self._last = line

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
