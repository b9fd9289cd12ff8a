"""Learning curves: validation NDCG@k and training loss per epoch, drawn as a PNG.

A training run logs both numbers to MLflow once per epoch (``worker.py``, step = the
epoch); :func:`log_run_curve` reads those histories back after the fit, draws them in
two panels with the best epoch marked, logs the PNG as an artifact of the run and
writes it beside the run's checkpoints. A sweep draws every trial in the same two
panels (``tuning/report.py``), so both use the drawing helpers here. Matplotlib is
used through its ``Figure`` API (no pyplot, no GUI backend, safe in Ray workers).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from negrec import metrics, storage, tracking
from negrec.storage import StorageOptions

FILENAME = "learning_curve.png"
"""The run's artifact, and the file beside the run (``<storage>/<name>/``)."""
TRAIN_LOSS = "train_loss"
"""The training loss logged per epoch (``distributed/worker.py``)."""
FIGSIZE = (8.0, 6.5)
DPI = 120
PIXELS = (round(FIGSIZE[0] * DPI), round(FIGSIZE[1] * DPI))
"""Width and height of every learning-curve PNG."""
BEST_STYLE = {"marker": "*", "markersize": 16, "color": "gold", "markeredgecolor": "black"}
STOP_MARKER = "x"

Curve = list[tuple[int, float]]
"""(epoch, value) pairs, epochs ascending."""


def curve(uri: str, run_id: str, metric: str) -> Curve:
    """The per-epoch history of ``metric`` on the run: its last value at each epoch
    (step >= 1; step 0 holds once-per-run numbers)."""
    latest: dict[int, tuple[int, float]] = {}
    for point in tracking.client(uri).get_metric_history(run_id, metric):
        if point.step >= 1 and point.timestamp >= latest.get(point.step, (-1, 0.0))[0]:
            latest[point.step] = (point.timestamp, point.value)
    return [(epoch, value) for epoch, (_, value) in sorted(latest.items())]


def best_point(ndcg: Curve) -> tuple[int, float] | None:
    """The epoch the run keeps as best: the first with the highest NDCG (the loop only
    counts a strict gain)."""
    return max(ndcg, key=lambda point: (point[1], -point[0])) if ndcg else None


def two_panels(title: str, k: int) -> tuple[Any, Any, Any]:
    """A figure with validation NDCG@k above and training loss below, sharing epochs."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=FIGSIZE, layout="constrained")
    ndcg_axes, loss_axes = figure.subplots(2, 1, sharex=True)
    ndcg_axes.set_ylabel(f"validation NDCG@{k}")
    loss_axes.set_ylabel("training loss")
    loss_axes.set_xlabel("epoch")
    loss_axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    for axes in (ndcg_axes, loss_axes):
        axes.grid(alpha=0.3)
    figure.suptitle(title)
    return figure, ndcg_axes, loss_axes


def draw(axes: Any, points: Curve, colour: str, stopped: bool = False, **style: Any) -> None:
    """One curve; ``stopped`` ends it with an x (a trial ASHA stopped)."""
    if not points:
        return
    epochs, values = zip(*points, strict=True)
    axes.plot(epochs, values, color=colour, marker=".", **style)
    if stopped:
        axes.plot(epochs[-1], values[-1], color=colour, marker=STOP_MARKER, markersize=9)


def mark_best(ndcg_axes: Any, loss_axes: Any, epoch: int, ndcg: float, label: str) -> Any:
    """A star at the best epoch's NDCG and a dotted line through both panels; returns
    the star (for a legend)."""
    (star,) = ndcg_axes.plot(epoch, ndcg, linestyle="none", label=label, zorder=5, **BEST_STYLE)
    for axes in (ndcg_axes, loss_axes):
        axes.axvline(epoch, color="grey", linestyle=":", linewidth=1)
    return star


def save(figure: Any, path: Path) -> None:
    figure.savefig(path, dpi=DPI)


def plot_run(ndcg: Curve, loss: Curve, k: int, title: str, path: Path) -> None:
    """One run's learning curve, its best epoch marked."""
    figure, ndcg_axes, loss_axes = two_panels(title, k)
    draw(ndcg_axes, ndcg, "tab:blue", label=f"validation NDCG@{k}")
    draw(loss_axes, loss, "tab:red", label="training loss")
    best = best_point(ndcg)
    if best is not None:
        epoch, value = best
        mark_best(ndcg_axes, loss_axes, epoch, value, f"best epoch {epoch}: {value:.4f}")
    ndcg_axes.legend(loc="best")
    loss_axes.legend(loc="best")
    save(figure, path)


def publish(
    uri: str, run_id: str, path: Path, out_uri: str, options: StorageOptions | None = None
) -> str:
    """Log the PNG at ``path`` as an artifact of the run and copy it to ``out_uri``."""
    tracking.client(uri).log_artifact(run_id, str(path))
    storage.write_bytes(out_uri, path.read_bytes(), options)
    return out_uri


def log_run_curve(
    uri: str, run_id: str, k: int, out_uri: str, options: StorageOptions | None = None
) -> str:
    """Draw the run's learning curve from its MLflow histories, log it as the run's
    ``learning_curve.png`` and write it to ``out_uri``; returns ``out_uri``."""
    name = tracking.client(uri).get_run(run_id).info.run_name
    with tempfile.TemporaryDirectory(prefix="negrec-curve-") as directory:
        path = Path(directory) / FILENAME
        plot_run(
            curve(uri, run_id, metrics.val_ndcg(k)),
            curve(uri, run_id, TRAIN_LOSS),
            k,
            f"{name}: validation NDCG@{k} and training loss per epoch",
            path,
        )
        return publish(uri, run_id, path, out_uri, options)
