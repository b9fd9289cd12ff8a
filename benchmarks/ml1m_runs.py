"""One ML-1M training run under a wall-time budget, its learning curve, and its test metrics.

Why shared: both paper benchmarks train the same model with the one training loop,
stop on validation NDCG@10 or the budget, and evaluate the best weights; only the
variants and the tables differ. Each finished run is saved as JSON under the workdir,
keyed by its name, seed and budget, so a table can be rebuilt (or two variants run in
parallel processes with ``--only``) without training again.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from ml1m_data import BenchmarkSplit, Sequences
from product_runs import QUALITY_BAR

from negrec.batching import eval_arrays
from negrec.config import NegrecConfig, load_config
from negrec.evaluation import evaluate, model_scorer, popularity_scorer, responsiveness
from negrec.model import ActionAwareGSASRec
from negrec.model.scoring import top_k
from negrec.training import EpochReport, LoopHooks, TrainState, train


@dataclass(frozen=True)
class Variant:
    """A named configuration; ``inputs`` rewrites rows the model sees (e.g. drop negatives)."""

    name: str
    overrides: list[str]
    inputs: Callable[[Sequences], Sequences] | None = None
    negative_branch_drops_item: bool = False
    """Responsiveness for a model without actions: the rejected item leaves the history."""


@dataclass
class RunResult:
    name: str
    seed: int
    budget_minutes: float
    curve: list[dict[str, float]] = field(default_factory=list)
    minutes_to_quality: float | None = None
    best_epoch: int = 0
    steps: int = 0
    minutes: float = 0.0
    stopped_by: str = ""
    test: dict[str, dict[str, float]] = field(default_factory=dict)


class CurveHooks(LoopHooks):
    """Records validation NDCG@10 against wall time and prints a progress line."""

    def __init__(self, result: RunResult, started: float) -> None:
        self.result = result
        self.started = started

    def on_epoch_end(self, report: EpochReport, state: TrainState) -> None:
        minutes = (time.perf_counter() - self.started) / 60
        ndcg = report.val["ndcg@10"]
        self.result.curve.append(
            {"epoch": report.epoch, "step": report.step, "minutes": minutes, "ndcg@10": ndcg}
        )
        if self.result.minutes_to_quality is None and ndcg >= QUALITY_BAR:
            self.result.minutes_to_quality = minutes
        print(
            f"[{self.result.name} seed {self.result.seed}] epoch {report.epoch} step {report.step} "
            f"{minutes:.1f} min loss {report.train_loss:.4f} val ndcg@10 {ndcg:.4f} "
            f"(best {report.best_ndcg:.4f} @ {report.best_epoch})",
            flush=True,
        )


def _responsiveness(
    model: ActionAwareGSASRec, rows: Sequences, genres: torch.Tensor, variant: Variant, max_len: int
) -> dict[str, float]:
    """Top-10 same-genre share when the last item is rejected vs liked (brief, Evaluation)."""
    assert rows.targets is not None
    arrays = eval_arrays(rows.items, rows.actions, rows.targets, [], max_len)
    items, actions = torch.as_tensor(arrays["items"]), torch.as_tensor(arrays["actions"])

    def recommend(histories: torch.Tensor, branched: torch.Tensor) -> torch.Tensor:
        model.eval()
        if variant.negative_branch_drops_item:
            rejected = branched[:, -1] == 1
            shifted = torch.cat([torch.zeros_like(histories[:, :1]), histories[:, :-1]], 1)
            histories = torch.where(rejected.unsqueeze(1), shifted, histories)
            branched = torch.zeros_like(branched)
        with torch.no_grad():
            return torch.cat(
                [
                    top_k(model, h, a, 10)[0]
                    for h, a in zip(histories.split(512), branched.split(512), strict=True)
                ]
            )

    return responsiveness(recommend, items, actions, genres)


def run_variant(
    split: BenchmarkSplit,
    variant: Variant,
    base_config: Path,
    seed: int,
    budget_minutes: float,
    workdir: Path,
) -> RunResult:
    """Train one variant (or load its saved result) and evaluate it on every test set."""
    saved = workdir / f"{variant.name}-seed{seed}-{budget_minutes:g}min.json"
    if saved.exists():
        return RunResult(**json.loads(saved.read_text()))
    config: NegrecConfig = load_config(
        base_config,
        [*variant.overrides, f"train.seed={seed}", f"train.time_budget_minutes={budget_minutes}"],
    )
    rewrite = variant.inputs or (lambda rows: rows)
    train_rows = rewrite(split.train)
    data = BenchmarkSplit(split.num_items, train_rows, rewrite(split.val), split.tests)
    max_len = config.model.max_len
    torch.manual_seed(seed)
    model = ActionAwareGSASRec(split.num_items, config.model)
    result = RunResult(variant.name, seed, budget_minutes)
    started = time.perf_counter()
    outcome = train(
        model,
        lambda epoch: data.train_batches(config.train.batch_size, max_len, seed, epoch),
        lambda: data.eval_batches(data.val, config.train.eval_batch_size, max_len),
        config,
        hooks=CurveHooks(result, started),
    )
    state = outcome.state
    result.minutes = (time.perf_counter() - started) / 60
    result.steps, result.best_epoch = state.step, state.best_epoch
    result.stopped_by = (
        "patience"
        if state.epochs_without_gain >= config.train.patience
        else "max_epochs"
        if state.epoch >= config.train.max_epochs
        else "budget"
    )
    for name, rows in split.tests.items():
        rows = rewrite(rows)
        sums = evaluate(model_scorer(model), data.eval_batches(rows, 512, max_len), ks=(1, 10))
        result.test[name] = sums.metrics()
        if split.item_genres is not None:
            result.test[name].update(
                _responsiveness(model, rows, split.item_genres, variant, max_len)
            )
    workdir.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(asdict(result), indent=1))
    return result


def most_popular(split: BenchmarkSplit) -> dict[str, dict[str, float]]:
    """The most-popular baseline on every test set (counts of positive training items)."""
    counts = torch.zeros(split.num_items + 1, dtype=torch.int64)
    for items, actions in zip(split.train.items, split.train.actions, strict=True):
        counts += torch.bincount(
            torch.as_tensor(items[actions == 0]), minlength=split.num_items + 1
        )
    scorer = popularity_scorer(counts)
    return {
        name: evaluate(scorer, split.eval_batches(rows, 512, 200), ks=(1, 10)).metrics()
        for name, rows in split.tests.items()
    }


def plot_curves(results: list[RunResult], path: Path, title: str) -> None:
    """Validation NDCG@10 against wall-clock minutes, one line per run, with the quality bar."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.2))
    axes = figure.subplots()
    for result in results:
        axes.plot(
            [p["minutes"] for p in result.curve],
            [p["ndcg@10"] for p in result.curve],
            label=f"{result.name} (seed {result.seed})",
        )
    axes.axhline(QUALITY_BAR, color="grey", linestyle="--", linewidth=0.8, label="NDCG@10 0.16")
    axes.set_xlabel("wall-clock minutes on this machine")
    axes.set_ylabel("validation NDCG@10")
    axes.set_title(title)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def mean_spread(values: list[float]) -> str:
    """``mean`` for one value, ``mean ± sd`` for several."""
    tensor = torch.tensor(values, dtype=torch.float64)
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{tensor.mean():.4f} ± {tensor.std():.4f}"


def metric(results: list[RunResult], test: str, key: str) -> list[float]:
    return [r.test[test][key] for r in results if key in r.test.get(test, {})]


def as_json(results: dict[str, list[RunResult]]) -> dict[str, Any]:
    return {name: [asdict(r) for r in runs] for name, runs in results.items()}


def parse_arguments(description: str, variants: list[Variant], workdir: str) -> argparse.Namespace:
    """The command line both ML-1M benchmarks share; applies ``--threads`` at once."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=Path, required=True, help="the shared ml1m folder")
    parser.add_argument("--workdir", type=Path, default=Path(workdir))
    parser.add_argument("--budget-minutes", type=float, default=90.0, help="per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--only", choices=[v.name for v in variants], help="train one variant")
    parser.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def run_chosen(
    split: BenchmarkSplit, variants: list[Variant], base_config: Path, args: argparse.Namespace
) -> dict[str, list[RunResult]]:
    """Every seed of the variants ``--only`` selects (all of them without it)."""
    return {
        v.name: [
            run_variant(split, v, base_config, s, args.budget_minutes, args.workdir)
            for s in args.seeds
        ]
        for v in variants
        if args.only in (None, v.name)
    }
