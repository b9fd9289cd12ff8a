"""Quality at equal wall time for large catalogues: full cross-entropy (where it fits),
sampled softmax and gBCE, each trained by ``negrec train`` under one time budget.

    python benchmarks/large_catalogue.py
    python benchmarks/large_catalogue.py --table      # rebuild the table from kept runs
    python benchmarks/large_catalogue.py --quick      # toy sizes, 1 minute; docs in workdir

Two generated logs (``negrec generate`` + ``negrec prepare``, made once under
``--workdir``): one shaped like the seed paper's larger datasets (200,000 sequences,
70,000 items, 10^7 events) and one of 10^6 items (2 x 10^7 events, so that about nine
in ten items occur under the generator's Zipf popularity). On each, one ``negrec
train`` run (1 worker, recipe ``benchmarks/large_catalogue.yaml``: d=64, 2 blocks,
length 200, batch 128) per loss, all under the same ``train.time_budget_minutes``
(``--minutes``, default 10):

* full cross-entropy where a step's logits are at most ``CE_MAX_GIB`` (built chunk by
  chunk, so memory is not what limits it; compute is), else the row says how many GiB
  of logits a step it would build (negrec.objectives.choice);
* sampled softmax: in-batch candidates + 256 uniform draws, log-Q corrected;
* gBCE: 256 negatives shared per sequence, t=0.75.

Reported per run: optimiser steps done, median seconds per step (per-epoch wall time,
validation included, over steps, from the run's history), the peak RSS of the Ray
Train worker (sampled every second) and the best validation NDCG@10 reached. No test
evaluation (``train.test_at_end: false`` in the recipe): ranking every test user against
10^6 items would outlast the training.
Each finished run is kept under ``benchmarks/results/large_catalogue/`` (``--quick``:
under the workdir) and reused, so ``--table`` rebuilds the ``large_catalogue`` section
of docs/benchmarks.md without training.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generated import prepared_log
from large_catalogue_step import BATCH, LENGTH
from product_runs import RunResult, Variant, cached_run, kept_run, minutes_cell
from report import docs_folder, machine, median, update_section

from negrec.config import ObjectiveConfig
from negrec.data.manifest import read_manifest
from negrec.objectives.choice import batch_logits_mib, resolve_objective

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RECIPE = HERE / "large_catalogue.yaml"
SECTION = "large_catalogue"
SIZES = "datasets.json"
SEED = 0
DEFAULT_MINUTES, DEFAULT_CPUS = 10.0, 2.0
CE = "full cross-entropy"
CE_MAX_GIB = 8.0
"""Full cross-entropy runs where a step's logits are at most this (70,000 items: 6.7 GiB).
It builds them chunk by chunk (``objective.logits_chunk_mib``), so memory does not
limit it, but its compute grows with them: at 10^6 items (95 GiB) it is not run."""
LOSSES = {
    CE: ["objective.loss=ce"],
    "sampled softmax (in-batch + 256 uniform, log-Q)": [
        "objective.loss=softmax",
        "objective.sampling=in_batch",
        "objective.negative_distribution=uniform",
        "objective.negatives=256",
    ],
    "gBCE (256 shared negatives, t=0.75)": [
        "objective.loss=gbce",
        "objective.sampling=shared",
        "objective.negatives=256",
        "objective.gbce_t=0.75",
    ],
}


@dataclass(frozen=True)
class Dataset:
    """A generated log and the epoch length its runs validate after (the budget is
    checked at epoch ends, so an epoch must be short next to it)."""

    name: str
    users: int
    items: int
    events: int
    steps_per_epoch: int


FULL = (
    Dataset("paper-sized", 200_000, 70_000, 10_000_000, 25),
    Dataset("10^6 items", 200_000, 1_000_000, 20_000_000, 10),
)
QUICK = (
    Dataset("quick, 2,000 items", 3_000, 2_000, 150_000, 10),
    Dataset("quick, 10^5 items", 3_000, 100_000, 150_000, 10),
)


def variant(dataset: Dataset, loss: str, minutes: float, cpus: float) -> Variant:
    """The run of ``loss`` on ``dataset``; budget and CPUs are in its name, so that a
    run kept under other ones is not reused."""
    overrides = [
        *LOSSES[loss],
        f"train.time_budget_minutes={minutes:g}",
        f"train.steps_per_epoch={dataset.steps_per_epoch}",
    ]
    name = f"{dataset.name}: {loss}, {minutes:g} min x {cpus:g} CPU"
    return Variant(name, RECIPE, overrides, cpus_per_worker=cpus)


def ce_logits_gib(num_items: int) -> float:
    """GiB of full-catalogue logits a step of ``BATCH`` x ``LENGTH`` positions."""
    return batch_logits_mib(num_items, BATCH * LENGTH) / 1024


def auto_takes_ce(num_items: int) -> bool:
    choice = resolve_objective(ObjectiveConfig(loss="auto"), num_items, BATCH, LENGTH)
    return choice.objective.loss == "ce"


def seconds_per_step(run: RunResult) -> float:
    """Median over epochs of the epoch's wall seconds (its validation included) per step."""
    previous = {"step": 0, "minutes": 0.0}
    ratios = []
    for epoch in run.curve:
        ratios.append(
            60 * (epoch["minutes"] - previous["minutes"]) / (epoch["step"] - previous["step"])
        )
        previous = epoch
    return median(ratios)


def kept_sizes(results: Path) -> dict[str, dict[str, int]]:
    """Sequences and items of each prepared log, kept beside the runs for ``--table``."""
    path = results / SIZES
    return json.loads(path.read_text()) if path.exists() else {}


def train(datasets: tuple[Dataset, ...], args: argparse.Namespace, results: Path) -> None:
    """Every run not kept yet (full cross-entropy only where it fits)."""
    sizes = kept_sizes(results)
    for dataset in datasets:
        prepared = prepared_log(args.workdir, dataset.users, dataset.items, dataset.events)
        manifest = read_manifest(str(prepared))
        sizes[dataset.name] = {
            "items": manifest.num_items,
            "sequences": manifest.splits["train"].rows,
        }
        results.mkdir(parents=True, exist_ok=True)
        (results / SIZES).write_text(json.dumps(sizes, indent=1) + "\n")
        for loss in LOSSES:
            if loss == CE and ce_logits_gib(manifest.num_items) > CE_MAX_GIB:
                continue
            run = variant(dataset, loss, args.minutes, args.cpus_per_worker)
            result = cached_run(run, SEED, prepared, args.workdir, results, evaluate=False)
            print(f"{run.name}: {result.steps} steps, {result.minutes:.1f} min", flush=True)


def table(datasets: tuple[Dataset, ...], args: argparse.Namespace, results: Path) -> str:
    """The docs section: one row per log and loss, from the kept runs."""
    sizes = kept_sizes(results)
    kept = results.relative_to(ROOT) if results.is_relative_to(ROOT) else results
    flags = " --quick" if args.quick else ""
    if not args.quick and args.minutes != DEFAULT_MINUTES:
        flags += f" --minutes {args.minutes:g}"
    if args.cpus_per_worker != DEFAULT_CPUS:
        flags += f" --cpus-per-worker {args.cpus_per_worker:g}"
    lines = [
        "## Large catalogues: quality at equal wall time",
        "",
        f"`python benchmarks/large_catalogue.py{flags}` - generated logs (`negrec generate`,"
        " prepared with the defaults); each row is one `negrec train` run (1 worker,"
        f" {args.cpus_per_worker:g} CPU(s), recipe `benchmarks/large_catalogue.yaml`: d=64,"
        f" 2 blocks, length {LENGTH}, batch {BATCH}, not-to-recommend w=0.5, float32) under"
        f" `train.time_budget_minutes={args.minutes:g}`; the loop stops after the epoch that"
        " uses up the budget, so the minutes column says what each run had. Seconds a step:"
        " median over epochs of the epoch's wall time (its validation on at most 512 users"
        " included) per step, from the run's history. Peak RSS: the Ray Train worker,"
        " sampled every second. NDCG@10: the best on validation (full-catalogue ranking,"
        f" input items excluded). The command of each run is in its file under `{kept}/`.",
        "",
        f"Machine: {machine()} (each run's processor and command are in its file; its"
        " mean load is in the table)",
        "",
        "| log | sequences | items | loss | steps (epochs) | median s/step | peak worker RSS MiB |"
        " best val NDCG@10 (step) | wall minutes (mean load) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for dataset in datasets:
        size = sizes.get(dataset.name)
        head = f"| {dataset.name} |" + (
            f" {size['sequences']:,} | {size['items']:,} |" if size else " not prepared yet | - |"
        )
        for loss in LOSSES:
            gib = ce_logits_gib(size["items"]) if size and loss == CE else None
            run = kept_run(
                results, variant(dataset, loss, args.minutes, args.cpus_per_worker), SEED
            )
            label = loss
            if gib is not None and not auto_takes_ce(size["items"]):
                label += (
                    f" ({gib:,.1f} GiB of logits a step, chunked; `auto` takes sampled softmax)"
                )
            if gib is not None and gib > CE_MAX_GIB:
                lines.append(f"{head} {label} | not run: over {CE_MAX_GIB:g} GiB | - | - | - | - |")
            elif run is None:
                lines.append(f"{head} {label} | not run yet | - | - | - | - |")
            else:
                best = max(run.curve, key=lambda epoch: epoch["ndcg@10"])
                lines.append(
                    f"{head} {label} | {run.steps:,} ({run.epochs}) | {seconds_per_step(run):.2f} |"
                    f" {run.peak_worker_rss_mib:,.0f} | {best['ndcg@10']:.4f} ({best['step']:,}) |"
                    f" {minutes_cell(run, decimals=1)} |"
                )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=DEFAULT_MINUTES, help="time budget a run")
    parser.add_argument("--quick", action="store_true", help="toy logs, 1 minute; docs in workdir")
    parser.add_argument(
        "--table", action="store_true", help="only rebuild the table from kept runs"
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/negrec-bench/large-catalogue"))
    parser.add_argument("--docs", type=Path, help="folder of benchmarks.md (default: docs/)")
    parser.add_argument(
        "--cpus-per-worker",
        type=float,
        default=DEFAULT_CPUS,
        help="CPUs (torch threads) of the worker",
    )
    args = parser.parse_args()
    if args.quick:
        args.minutes = 1.0
    datasets = QUICK if args.quick else FULL
    results = args.workdir / "results" if args.quick else HERE / "results" / SECTION
    if not args.table:
        train(datasets, args, results)
    markdown = table(datasets, args, results)
    update_section(
        docs_folder(args.docs, args.quick, args.workdir) / "benchmarks.md", SECTION, markdown
    )
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
