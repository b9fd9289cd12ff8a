"""GPU readiness in one short run, for whenever a GPU machine is at hand (CI never runs it).

    python benchmarks/gpu_check.py

Three checks, each through the product's own code:

1. **bf16 autocast on CUDA**: ``precision.train_steps`` trains the reference shape
   (d=128, 2 blocks, length 200, batch 128, the default objective) in float32 and in
   bf16 from the same weights on the same batches; median step seconds, speed-up, and
   how far bf16 moves the final loss (tolerance ``precision.TOLERANCE``).
2. **DDP with NCCL**: ``negrec train`` (Ray Train, one GPU per worker) on one GPU and on
   every visible GPU; the process-group backend each run used is read back from its
   MLflow tag (``tags.DDP_BACKEND``), so a run that fell back to gloo shows as such.
3. **Throughput**: sequences per second and the share of step time spent waiting for
   data, from the same runs (``train_throughput.measure``).

It writes the ``gpu_check`` section of docs/benchmarks.md. Without CUDA it measures
nothing, says so and leaves the docs as they are: until it has run on a GPU, the GPU
figures are not measured.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from precision import TOLERANCE, train_steps
from report import BENCHMARKS_MD, machine, update_section
from train_throughput import measure, prepared_log

from negrec import tags, tracking
from negrec.data.loaders import load_prepared

REFERENCE = ["model.dim=128", "model.blocks=2", "model.max_len=200", "train.batch_size=128"]


def bf16_check(data: str, steps: int) -> dict[str, Any]:
    """float32 against bf16 autocast on the first GPU, same weights and batches."""
    prepared = load_prepared(data)
    device = torch.device("cuda:0")
    runs = {
        p: train_steps(REFERENCE, p, prepared, steps, device, recipe=None) for p in ("fp32", "bf16")
    }
    change = abs(runs["bf16"]["final_loss"] / runs["fp32"]["final_loss"] - 1.0)
    return {
        **runs,
        "speed_up": runs["fp32"]["median_s"] / runs["bf16"]["median_s"],
        "change": change,
    }


def ddp_check(data: str, workdir: Path, gpus: int, steps: int) -> dict[str, Any]:
    """``negrec train`` on ``gpus`` GPUs; its throughput and the backend it used."""
    row = measure(data, workdir, gpus, True, steps)
    uri = f"sqlite:///{workdir}/mlflow.db"
    run_id = tracking.find_run(uri, f"throughput-{gpus}gpu")
    backend = tracking.client(uri).get_run(run_id).data.tags.get(tags.DDP_BACKEND, "not recorded")
    return {**row, "backend": backend}


def section(bf16: dict[str, Any], ddp: list[dict[str, Any]], steps: int) -> str:
    names = ", ".join(f"{torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count()))
    lines = [
        "## GPU readiness",
        "",
        f"`python benchmarks/gpu_check.py --steps {steps}` - reference shape (d=128, 2 blocks,"
        " length 200, batch 128 per worker, the default objective) on a generated log.",
        "",
        f"Machine: {machine()}; GPUs: {names}",
        "",
        "| check | float32 | bf16 autocast | result |",
        "| --- | --- | --- | --- |",
        f"| training step on cuda:0, median s | {bf16['fp32']['median_s']:.4f} |"
        f" {bf16['bf16']['median_s']:.4f} | bf16 speed-up {bf16['speed_up']:.2f}x |",
        f"| final training loss | {bf16['fp32']['final_loss']:.4f} |"
        f" {bf16['bf16']['final_loss']:.4f} | change {bf16['change']:.2%}"
        f" (tolerance {TOLERANCE:.0%}: {'within' if bf16['change'] <= TOLERANCE else 'outside'}) |",
        "",
        "| `negrec train` GPUs | DDP backend | sequences/s | share of step time waiting for data |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['workers']} | {r['backend']} | {r['seq_per_s']:.1f} | {r['data_wait_share']:.1%} |"
        for r in ddp
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/negrec-bench/gpu-check"))
    parser.add_argument("--steps", type=int, default=20, help="optimiser steps per check")
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; nothing measured, docs/benchmarks.md unchanged")
        return 0
    args.workdir.mkdir(parents=True, exist_ok=True)
    data = prepared_log(args.workdir)
    bf16 = bf16_check(data, args.steps)
    counts = sorted({1, torch.cuda.device_count()})
    ddp = [ddp_check(data, args.workdir, gpus, args.steps) for gpus in counts]
    text = section(bf16, ddp, args.steps)
    update_section(BENCHMARKS_MD, "gpu_check", text)
    print(text)
    if args.json:
        print(json.dumps({"bf16": bf16, "ddp": ddp}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
