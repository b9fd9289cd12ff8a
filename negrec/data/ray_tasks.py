"""Run independent per-file or per-partition tasks on Ray Data; collect their summaries.

Why Ray Data and not bare ``ray.remote``: its streaming executor schedules the tasks
against the cluster's resources, backs off under memory pressure and shows progress,
and ``prepare`` stays a Ray Data job that a cluster operator can see in the dashboard.
Why not ``groupby().map_groups()``: the tasks read and write storage themselves and
process whole partitions with vectorised code, so the only things that travel through
Ray are each task's inputs and a small summary (pickled), never events.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from negrec.errors import NegrecError

Payload = TypeVar("Payload")
Result = TypeVar("Result")


def _outcome(function: Callable[[Payload], Result], payload: Payload) -> bytes:
    """The pickled result, or the message of a NegrecError (a user error travels as
    data: Ray's exception wrapping would otherwise lose its type on the way back)."""
    try:
        return pickle.dumps((True, function(payload)))
    except NegrecError as error:
        return pickle.dumps((False, str(error)))


def run_tasks(
    function: Callable[[Payload], Result],
    payloads: Sequence[Payload],
    name: str,
    on_result: Callable[[int, Result], None] | None = None,
) -> list[Result]:
    """``[function(p) for p in payloads]``, one Ray Data task each, results in order;
    ``name`` labels the stage. ``on_result(done, result)`` runs in this process as each
    successful result arrives (in the order they finish), for a progress display.

    A ``NegrecError`` raised by a task (bad input row, missing file) is raised again
    here as itself, so the CLI reports it as the user's error, not as a crash; when
    several tasks fail, the one with the first payload wins, so the message does not
    depend on scheduling.
    """
    import ray

    if not payloads:
        return []
    items = list(payloads)

    def apply(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = [_outcome(function, items[int(i)]) for i in batch["index"]]
        return {"index": batch["index"], "result": np.array(results, dtype=object)}

    apply.__name__ = apply.__qualname__ = name  # labels the stage in progress and logs
    rows = ray.data.from_items(
        [{"index": i} for i in range(len(items))], override_num_blocks=len(items)
    ).map_batches(apply, batch_size=1, zero_copy_batch=True)
    by_index: dict[int, tuple[bool, Result | str]] = {}
    for row in rows.iter_rows():  # streamed: each result as its task finishes
        ok, value = by_index[int(row["index"])] = pickle.loads(row["result"])
        if ok and on_result is not None:
            on_result(len(by_index), value)
    outcomes = [by_index[i] for i in range(len(items))]
    for ok, value in outcomes:
        if not ok:
            raise NegrecError(value)
    return [value for _, value in outcomes]
