"""Benchmark runs made by the product itself: `negrec train` and `negrec evaluate`.

Why subprocesses of the real command line: a figure in docs/ must come from the stages a
user runs (Ray Train worker, the one training loop, the product's evaluation), not from
a loop written for the benchmark. Each run is kept as a JSON file (committed under
``benchmarks/results/``), keyed by its name and seed, so a table can be rebuilt - and
long runs spread over several sessions - without training again. While a run trains,
the resident memory of its Ray Train worker process is sampled (``measured.py``), and
the peak kept.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measured import json_line, run_measured, shown

from negrec import checkpoint

NEGREC = str(Path(sys.executable).parent / "negrec")
QUALITY_BAR = 0.16
"""Validation NDCG@10 whose first crossing is reported as time-to-quality."""
WORKER_SAMPLE_S = 1.0
"""Seconds between two readings of the Train worker's memory."""


@dataclass(frozen=True)
class Variant:
    """A named training configuration: a recipe file plus ``--set`` overrides."""

    name: str
    config: Path
    overrides: list[str] = field(default_factory=list)
    workers: int = 1
    cpus_per_worker: float = 2.0

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


@dataclass
class RunResult:
    name: str
    seed: int
    workers: int
    command: str
    processor: str
    evaluate_command: str = ""
    stop_reason: str = ""
    steps: int = 0
    epochs: int = 0
    minutes: float = 0.0
    best_epoch: int = 0
    steps_to_quality: int | None = None
    minutes_to_quality: float | None = None
    peak_worker_rss_mib: float | None = None
    mean_load: float | None = None
    note: str = ""
    curve: list[dict[str, float]] = field(default_factory=list)
    test: dict[str, Any] = field(default_factory=dict)


def processor() -> str:
    """The processor's name and the vector capability torch runs on: one model name
    (``AMD EPYC``) has come with AVX-512 in one session and only AVX2 in the next, about
    2.6x apart at matrix products, so the name alone does not say what a time means."""
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()} ({capability})"
    return f"unknown ({capability})"


def mean_sd(values: list[float]) -> str:
    """``mean`` for one value, ``mean ± sd`` (sample sd) for several."""
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def minutes_cell(run: RunResult, decimals: int = 0) -> str:
    """Wall minutes with the machine's mean load meanwhile (they mean little without it)."""
    load = "" if run.mean_load is None else f" (load {run.mean_load:.1f})"
    return f"{run.minutes:.{decimals}f}{load}"


def _latest_history(storage: Path, name: str) -> list[dict[str, float]]:
    """The per-epoch history of the run's latest checkpoint (it holds every epoch)."""
    saved = [checkpoint.load(str(p)) for p in (storage / name).glob("checkpoint_*") if p.is_dir()]
    if not saved:
        raise RuntimeError(f"no checkpoint under {storage / name}")
    return max(saved, key=lambda c: c.state.epoch).state.history


def evaluate_checkpoint(
    checkpoint_uri: str, log: Path, data: Path | None = None, split: str = "test"
) -> tuple[str, dict[str, Any]]:
    """``negrec evaluate --split <split>`` of a checkpoint (on ``data`` when given, else
    on the data it was trained on): the command as shown, and its metrics."""
    command = [NEGREC, "evaluate", "--checkpoint", checkpoint_uri, "--split", split]
    if data is not None:
        command += ["--data", str(data)]
    with log.open("a") as sink:
        evaluated = subprocess.run(
            [*command, "--json"], stdout=subprocess.PIPE, stderr=sink, text=True
        )
    if evaluated.returncode != 0:
        raise RuntimeError(f"{shown(command)} failed ({evaluated.returncode}); see {log}")
    return shown(command), json_line(evaluated.stdout)


def train_and_evaluate(
    variant: Variant,
    seed: int,
    prepared: Path,
    workdir: Path,
    log: Path,
    quality_bar: float = QUALITY_BAR,
    evaluate_data: Path | None = None,
    evaluate: bool = True,
) -> RunResult:
    """``negrec train`` then ``negrec evaluate --split test`` on its best weights (on
    ``evaluate_data`` when given: e.g. a model trained on positives only, scored on the
    action-aware split of the same log; none without ``evaluate``: where ranking every
    test user against the whole catalogue would take longer than the training); steps
    and minutes to ``quality_bar`` (validation NDCG@10) from the run's history."""
    name = f"{variant.slug}-seed{seed}"
    storage = workdir / "runs"
    command = [
        NEGREC,
        "train",
        "--data",
        str(prepared),
        "--storage",
        str(storage),
        "--name",
        name,
        "--workers",
        str(variant.workers),
        "--cpus-per-worker",
        f"{variant.cpus_per_worker:g}",
        "--config",
        str(variant.config),
        "--tracking-uri",
        f"sqlite:///{workdir / 'mlflow.db'}",
        *(arg for item in [*variant.overrides, f"train.seed={seed}"] for arg in ("--set", item)),
        "--json",
    ]
    trained = run_measured(command, log, match="TrainWorker", every_s=WORKER_SAMPLE_S)
    history = _latest_history(storage, name)
    result = RunResult(
        name=variant.name,
        seed=seed,
        workers=variant.workers,
        command=shown(command),
        processor=processor(),
        stop_reason=trained.summary["stop_reason"] or "",
        steps=int(history[-1]["step"]),
        epochs=int(history[-1]["epoch"]),
        minutes=float(history[-1]["minutes"]),
        best_epoch=max(history, key=lambda h: h["ndcg@10"])["epoch"],
        peak_worker_rss_mib=round(trained.peak_mib, 1),
        mean_load=round(trained.mean_load, 2),
        curve=[{k: h[k] for k in ("epoch", "step", "minutes", "ndcg@10", "loss")} for h in history],
    )
    crossing = next((h for h in history if h["ndcg@10"] >= quality_bar), None)
    if crossing is not None:
        result.steps_to_quality = int(crossing["step"])
        result.minutes_to_quality = float(crossing["minutes"])
    if evaluate:
        best = trained.summary["checkpoint"]
        result.evaluate_command, result.test = evaluate_checkpoint(best, log, evaluate_data)
    return result


def plot_curves(
    results: dict[str, list[RunResult]],
    path: Path,
    title: str,
    marks: tuple[float | None, float | None] = (None, None),
) -> None:
    """Validation NDCG@10 against optimiser steps, one line per kept run; ``marks``
    draws a quality bar (NDCG@10) and a step budget, where given."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.2))
    axes = figure.subplots()
    for name, runs in results.items():
        for run in runs:
            axes.plot(
                [p["step"] for p in run.curve],
                [p["ndcg@10"] for p in run.curve],
                label=f"{name} (seed {run.seed})",
                linewidth=1,
            )
    bar, steps = marks
    if bar is not None:
        axes.axhline(bar, color="grey", linestyle="--", linewidth=0.8)
    if steps is not None:
        axes.axvline(steps, color="grey", linestyle=":", linewidth=0.8)
    axes.set_xlabel("optimiser steps (128 sequences)")
    axes.set_ylabel("validation NDCG@10")
    axes.set_title(title)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def result_path(results: Path, variant: Variant, seed: int) -> Path:
    return results / f"{variant.slug}-seed{seed}.json"


def kept_run(results: Path, variant: Variant, seed: int) -> RunResult | None:
    """The kept result of this variant and seed, if there is one."""
    path = result_path(results, variant, seed)
    return RunResult(**json.loads(path.read_text())) if path.exists() else None


def cached_run(
    variant: Variant,
    seed: int,
    prepared: Path,
    workdir: Path,
    results: Path,
    evaluate_data: Path | None = None,
    evaluate: bool = True,
) -> RunResult:
    """The saved result of this variant and seed, or train it (and test it, with
    ``evaluate``) and save it."""
    kept = kept_run(results, variant, seed)
    if kept is not None:
        return kept
    path = result_path(results, variant, seed)
    log = workdir / f"{path.stem}.log"
    result = train_and_evaluate(
        variant, seed, prepared, workdir, log, evaluate_data=evaluate_data, evaluate=evaluate
    )
    results.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(result), indent=1) + "\n")
    return result
