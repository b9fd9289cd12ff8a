"""The driver's view of a training run in progress, read from the run's MLflow metrics.

Why MLflow and not the workers' own lines: Ray Train runs its controller and workers in
other processes, whose output reaches the driver prefixed and interleaved with Ray's
own; rank 0 already logs every epoch to the tracking store, so the driver polls it and
draws one progress display (``negrec.console``) that reads at a glance.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from negrec import metrics, tracking
from negrec.console import StageProgress, duration

POLL_S = 2.0


def _status(uri: str, run_id: str, k: int, epochs: int) -> tuple[int, str] | None:
    """(epochs done, status text) from the run's metric histories, None before epoch 1."""
    client = tracking.client(uri)
    val = client.get_metric_history(run_id, metrics.val_ndcg(k))
    if not val:
        return None
    by_epoch = {m.step: m for m in val}
    last = max(by_epoch)
    loss = {m.step: m.value for m in client.get_metric_history(run_id, "train_loss")}
    best = max(m.value for m in val)
    stamps = sorted(m.timestamp for m in by_epoch.values())
    per_epoch_s = (stamps[-1] - stamps[0]) / 1000 / (len(stamps) - 1) if len(stamps) > 1 else 0
    eta = f" ETA {duration(per_epoch_s * (epochs - last))}" if per_epoch_s else ""
    return last, (
        f"loss {loss.get(last, float('nan')):.4f} val ndcg@{k} {by_epoch[last].value:.4f} "
        f"(best {best:.4f}){eta}"
    )


@contextmanager
def watch_run(uri: str, run_id: str, title: str, epochs: int, k: int) -> Iterator[None]:
    """Show the run's epochs while the body (``trainer.fit()``) runs."""
    stop = threading.Event()

    def poll(progress: StageProgress) -> None:
        while not stop.wait(POLL_S):
            status = _status(uri, run_id, k, epochs)
            if status is not None:
                progress.update(*status)

    with StageProgress(title, epochs, "epoch") as progress:
        watcher = threading.Thread(target=poll, args=(progress,), daemon=True)
        watcher.start()
        try:
            yield
        finally:
            stop.set()
            watcher.join()
            final = _status(uri, run_id, k, epochs)
            if final is not None:
                progress.update(*final)
