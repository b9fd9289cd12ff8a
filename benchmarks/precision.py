"""bf16 autocast against float32 for the training step, on this machine's CPU.

Two recipes on the real ML-1M training rows (the gSASRec split as ``negrec prepare
--format sasrec`` lays it out, batches from the product's loader, bucketed and trimmed
as ``negrec train`` makes them for the recipe): recipe ``ml1m`` (cross-entropy, d=64)
and the default architecture (d=128) with cross-entropy. For each, both precisions
train from the same initial weights on the same batches in the same process, and the
script reports the median step time, the ratio, and how far the bf16 run's training
loss and validation NDCG@10 end from the float32 run's. ``train.precision: auto`` picks
bf16 only where this says it pays.

    python benchmarks/precision.py --data ../shared/data/ml1m --steps 150
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ml1m_table import ML1M, prepared_split
from report import BENCHMARKS_MD, machine, update_section

from negrec.batching import TrainBatch, length_bucketed
from negrec.config import NegrecConfig, load_config
from negrec.data.loaders import (
    PreparedData,
    load_prepared,
    local_eval_batches,
    local_train_batches,
)
from negrec.model import ActionAwareGSASRec
from negrec.objectives import training_loss
from negrec.training.loop import LoopHooks, make_optimizer, validate
from negrec.training.precision import autocast_for, cpu_has_bf16_matrix_units

RECIPES = {
    "recipe ml1m (ce, d=64)": [],
    "ce, d=128, dropout 0.5": ["model.dim=128", "model.dropout=0.5"],
}
CPU = torch.device("cpu")
TOLERANCE = 0.03
"""Largest relative change of the final training loss and validation NDCG@10 that bf16
may cause for ``auto`` to choose it."""


def train_steps(
    overrides: list[str],
    precision: str,
    prepared: PreparedData,
    steps: int,
    device: torch.device = CPU,
    recipe: Path | None = ML1M,
) -> dict[str, float]:
    """``steps`` Adam steps of ``recipe`` + ``overrides`` from seed-0 weights on the
    batches ``negrec train`` would make; median step seconds (the first step warms
    kernels and the allocator and is not counted), final loss, validation NDCG@10."""
    config = load_config(recipe, [*overrides, f"train.precision={precision}"])
    torch.manual_seed(0)
    model = ActionAwareGSASRec(prepared.num_items, config.model).to(device)
    optimizer = make_optimizer(model, config.train)
    times, losses = [], []
    model.train()
    for index, batch in zip(range(steps), _batches(prepared, config), strict=False):
        batch = batch.to(device)
        start = time.perf_counter()
        with autocast_for(config.train, device):
            loss = training_loss(model, batch, config.objective)
        optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if index:
            times.append(time.perf_counter() - start)
        losses.append(loss.ranking)
    val = validate(model, local_eval_batches(prepared, "val", 512, 200), device, LoopHooks(), 10)
    return {
        "median_s": statistics.median(times),
        "final_loss": statistics.mean(losses[-10:]),
        "val_ndcg@10": val["ndcg@10"],
    }


def _batches(prepared: PreparedData, config: NegrecConfig) -> Iterator[TrainBatch]:
    """Epoch after epoch of the batches ``negrec train`` would make (same seed)."""
    for epoch in itertools.count(1):
        yield from length_bucketed(
            local_train_batches(prepared, config.train.batch_size, config.model.max_len, 0, epoch),
            config.train.length_buckets,
            torch.Generator().manual_seed(epoch),
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared ml1m folder")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/negrec-bench/ml1m-table"))
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    prepared = load_prepared(str(prepared_split(args.data, args.workdir)))
    rows = {}
    for name, overrides in RECIPES.items():
        rows[name] = {p: train_steps(overrides, p, prepared, args.steps) for p in ("fp32", "bf16")}
        print(name, rows[name], flush=True)
    lines = [
        "## bf16 autocast against float32 (training step, CPU)",
        "",
        f"`python benchmarks/precision.py --data ../shared/data/ml1m --steps {args.steps}` -"
        " ML-1M training rows (gSASRec split) from the product's loader, batched and"
        f" trimmed as `negrec train` does; {args.steps} Adam steps of 128 sequences per run"
        " from the same initial"
        " weights and batches; validation NDCG@10 on the 512 validation users after them.",
        "",
        f"Machine: {machine()}; AMX bf16 tiles: {cpu_has_bf16_matrix_units()}",
        "",
        "| recipe | fp32 median s/step | bf16 median s/step | bf16 speed-up |"
        " final loss fp32 / bf16 | val NDCG@10 fp32 / bf16 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, runs in rows.items():
        fp32, bf16 = runs["fp32"], runs["bf16"]
        lines.append(
            f"| {name} | {fp32['median_s']:.3f} | {bf16['median_s']:.3f} |"
            f" {fp32['median_s'] / bf16['median_s']:.2f}x |"
            f" {fp32['final_loss']:.4f} / {bf16['final_loss']:.4f} |"
            f" {fp32['val_ndcg@10']:.4f} / {bf16['val_ndcg@10']:.4f} |"
        )
    worst = max(
        abs(runs["bf16"][key] / runs["fp32"][key] - 1.0)
        for runs in rows.values()
        for key in ("final_loss", "val_ndcg@10")
    )
    faster = [
        name for name, runs in rows.items() if runs["fp32"]["median_s"] > runs["bf16"]["median_s"]
    ]
    lines += [
        "",
        f"Largest relative change bf16 made to the final loss or validation NDCG@10:"
        f" {worst:.2%} (tolerance {TOLERANCE:.0%}:"
        f" **{'within' if worst <= TOLERANCE else 'outside'}**)."
        f" bf16 was faster for: {', '.join(faster) or 'none'}. `train.precision: auto` takes"
        " bf16 on CPUs with AMX tiles (as here) and on CUDA, fp32 elsewhere: bf16 pays at the"
        " default width (d=128); recipes of width 64 (`ml1m`, `demo`,"
        " the demo and tiny presets) pin `fp32`.",
    ]
    update_section(BENCHMARKS_MD, "precision", "\n".join(lines))
    print("\n".join(lines))
    if args.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
