"""What ``negrec prepare`` shows while it works: its stages, and the rows each has done.

Why a class of its own: the preparation code reports what happened (a file read, a
partition written) and this decides how a person sees it: on a terminal one live bar
over the stages whose text follows every task; off a terminal (CI, ``ray job submit``
logs) one plain line per finished stage, so a log of a thousand files stays short. With
``enabled`` off (a library call, ``--verbose`` where Ray Data draws its own bars) it
shows nothing.
"""

from __future__ import annotations

from negrec.console import StageProgress


class PrepareProgress:
    """Progress over ``stages`` (their names in order); use as a context manager."""

    def __init__(self, stages: list[str], enabled: bool) -> None:
        self.stages = stages
        self.display = StageProgress("prepare", len(stages), "stages") if enabled else None

    def __enter__(self) -> PrepareProgress:
        if self.display is not None:
            self.display.start()
            if self.display.live:  # Ray's start-up takes seconds before the first task
                self.display.update(0, "starting")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.display is not None:
            self.display.stop()

    def task(self, stage: str, done: int, total: int, counts: str) -> None:
        """``done`` of the stage's ``total`` tasks have finished; ``counts`` says what
        they processed so far (rows, users). The stage counts as done with its last task."""
        if self.display is None:
            return
        finished = done >= total
        if not (finished or self.display.live):
            return
        position = self.stages.index(stage)
        tasks = f" {done}/{total}" if total > 1 else ""
        self.display.update(position + int(finished), f"{stage}{tasks}: {counts}")

    def stage_done(self, stage: str, counts: str) -> None:
        """A stage of one step (the vocabulary, the commit) has finished."""
        self.task(stage, 1, 1, counts)
