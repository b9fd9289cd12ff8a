"""Training throughput on Ray Train: sequences/s for 1 and 2 CPU workers (and 1 GPU).

Runs ``negrec train`` (the real TorchTrainer path: Ray Data shards, DDP over gloo,
per-epoch validation and checkpoints) at the reference model shape (d=128, 2 blocks,
length 200, 256 negatives, gBCE) on a generated log, in one process, one
configuration after the other, and reads each epoch's training throughput (validation
excluded) and the share of training time spent waiting for data from the per-rank
reports. The first epoch (start-up, allocator warm-up) is not counted.

    python benchmarks/train_throughput.py --json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from ray.train import UserCallback

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import BENCHMARKS_MD, machine, median, update_section

from negrec.config import load_config
from negrec.data import generated_log
from negrec.data.preparation import prepare
from negrec.data.prepare_config import PrepareConfig
from negrec.distributed.trainer import TrainJob, run


class EpochMetrics(UserCallback):
    """Runs in the Train controller: appends rank 0's epoch metrics to a file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def after_report(self, run_context, metrics, checkpoint) -> None:
        if "epoch" in metrics[0]:
            with open(self.path, "a") as handle:
                handle.write(json.dumps(metrics[0]) + "\n")


def prepared_log(workdir: Path) -> str:
    """A log whose users have about 250 events, so inputs fill 200 positions."""
    out = workdir / "prepared"
    if (out / "manifest.json").exists():
        return str(out)
    generated_log.run(
        generated_log.GenerateConfig(
            out=str(workdir / "log"), users=3000, items=3000, events=750_000
        )
    )
    prepare(PrepareConfig(events=str(workdir / "log"), out=str(out)))
    return str(out)


def measure(data: str, workdir: Path, workers: int, gpu: bool, steps: int) -> dict[str, Any]:
    name = f"throughput-{workers}{'gpu' if gpu else 'cpu'}"
    shutil.rmtree(workdir / "runs" / name, ignore_errors=True)
    log = workdir / f"{name}.jsonl"
    log.unlink(missing_ok=True)
    config = load_config(
        overrides=[f"train.steps_per_epoch={steps}", "train.max_epochs=3", "train.patience=3"]
    )
    run(
        TrainJob(
            data=data,
            storage=str(workdir / "runs"),
            name=name,
            workers=workers,
            gpu=gpu,
            config=config,
            tracking_uri=f"sqlite:///{workdir}/mlflow.db",
        ),
        callbacks=[EpochMetrics(str(log))],
    )
    epochs = [json.loads(line) for line in log.read_text().splitlines()][1:]
    return {
        "workers": workers,
        "device": "GPU (bf16 autocast)" if gpu else "CPU",
        "seq_per_s": median([e["samples_per_s"] for e in epochs]),
        "data_wait_share": median([e["data_wait_share"] for e in epochs]),
        "epochs_counted": len(epochs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/negrec-bench/throughput")
    parser.add_argument("--steps", type=int, default=6, help="optimiser steps per epoch")
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    data = prepared_log(workdir)
    rows = [measure(data, workdir, w, False, args.steps) for w in (1, 2)]
    if torch.cuda.is_available():
        rows.append(measure(data, workdir, 1, True, args.steps))

    lines = [
        "## Training throughput on Ray Train",
        "",
        "`python benchmarks/train_throughput.py --json` - the `negrec train` path (Ray Data",
        "shards, DDP, per-epoch validation and checkpoints) at the reference shape: d=128,",
        "2 blocks, length 200, 256 negatives, gBCE, 128 sequences per worker per step.",
        f"Median over epochs 2-3 of {args.steps} steps each; validation time excluded.",
        "",
        f"Machine: {machine()}",
        "",
        "| workers | device | sequences/s | share of step time waiting for data |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['workers']} | {r['device']} | {r['seq_per_s']:.1f} | {r['data_wait_share']:.1%} |"
        for r in rows
    ]
    ratio = rows[1]["seq_per_s"] / rows[0]["seq_per_s"]
    lines += [
        "",
        f"2 workers / 1 worker: {ratio:.2f}x. Each CPU worker holds one Ray CPU, and Ray",
        "limits a worker's torch threads to its CPU count, so 1 worker computes on one",
        "core and 2 workers on both cores of this machine, plus a gloo all-reduce per step.",
        "The ratio is therefore core scaling on one machine, not multi-node scaling.",
        "No GPU was available for this run." if not torch.cuda.is_available() else "",
    ]
    update_section(BENCHMARKS_MD, "train_throughput", "\n".join(lines))
    print("\n".join(lines))
    if args.json:
        result = {
            f"workers_{r['workers']}_{r['device'][:3].lower()}_seq_per_s": r["seq_per_s"]
            for r in rows
        }
        result["two_over_one"] = round(ratio, 3)
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
