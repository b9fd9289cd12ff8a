"""Time one training step at the reference gSASRec configuration.

128 sequences x 200 positions, d=128, 2 blocks, 1 head, dropout 0.5, 256 uniform
negatives, gBCE t=0.75 (Adam). Shared negatives (one batched matrix product per
sequence) and per-position negatives (the reference's (batch, length, k, dim) gather)
run in the same process on the same batch, so their ratio is meaningful on a noisy
machine. Also measures this CPU's large-GEMM throughput and derives the arithmetic
lower bound of a step, so the absolute figure can be judged against the hardware.

    python benchmarks/train_step.py --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import BENCHMARKS_MD, machine, median, update_section

from negrec.action_codes import NEGATIVE
from negrec.batching import TrainBatch
from negrec.config import ModelConfig, ObjectiveConfig
from negrec.model import ActionAwareGSASRec
from negrec.objectives import training_loss

NUM_ITEMS = 3416  # MovieLens-1M after the gSASRec preprocessing
BATCH, LENGTH = 128, 200


def reference_batch(seed: int = 0) -> TrainBatch:
    generator = torch.Generator().manual_seed(seed)
    items = torch.randint(1, NUM_ITEMS + 1, (BATCH, LENGTH), generator=generator)
    actions = (torch.rand(BATCH, LENGTH, generator=generator) < 0.2).long() * NEGATIVE
    targets = torch.randint(1, NUM_ITEMS + 1, (BATCH, LENGTH), generator=generator)
    rejected = torch.randint(1, NUM_ITEMS + 1, (BATCH, LENGTH), generator=generator)
    rejected = rejected * (torch.rand(BATCH, LENGTH, generator=generator) < 0.2)
    return TrainBatch(items, actions, targets, rejected)


def time_steps(sampling: str, steps: int, batch: TrainBatch) -> list[float]:
    torch.manual_seed(0)
    model = ActionAwareGSASRec(NUM_ITEMS, ModelConfig())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    objective = ObjectiveConfig(sampling=sampling)
    model.train()

    def step() -> None:
        loss = training_loss(model, batch, objective)
        optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        optimizer.step()

    step()  # warm-up: allocator, kernels
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def gemm_gflops(size: int = 2048, repeats: int = 5) -> float:
    """Median throughput of a large float32 matrix product: this CPU's practical peak."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / median(times) / 1e9


def step_gflop(config: ModelConfig, negatives: int) -> float:
    """Multiply-adds of forward + backward (~3x forward) of one step, in GFLOP."""
    d, tokens = config.dim, BATCH * LENGTH
    per_token = config.blocks * (6 * d * d + 2 * LENGTH * d) + (negatives + 2) * d
    return 3 * 2 * tokens * per_token / 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared-steps", type=int, default=7)
    parser.add_argument("--per-position-steps", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")
    args = parser.parse_args()

    batch = reference_batch()
    print(f"timing {args.shared_steps} shared-negative steps ...", flush=True)
    shared = time_steps("shared", args.shared_steps, batch)
    print(f"timing {args.per_position_steps} per-position steps ...", flush=True)
    per_position = time_steps("per_position", args.per_position_steps, batch)
    peak = gemm_gflops()
    flop = step_gflop(ModelConfig(), 256)

    shared_s, per_position_s = median(shared), median(per_position)
    result = {
        "shared_s_per_step": round(shared_s, 4),
        "per_position_s_per_step": round(per_position_s, 4),
        "speedup": round(per_position_s / shared_s, 2),
        "gemm_gflops": round(peak, 1),
        "step_gflop": round(flop, 1),
        "arithmetic_floor_s": round(flop / peak, 3),
    }
    table = "\n".join(
        [
            "## Training step at the reference configuration",
            "",
            "`python benchmarks/train_step.py --json` - 128 sequences x 200 positions, d=128,",
            "2 blocks, 1 head, dropout 0.5, 256 negatives, gBCE t=0.75, Adam; one batch, one run.",
            "",
            f"Machine: {machine()}",
            "",
            "| negatives | median s/step | steps timed | sequences/s |",
            "| --- | --- | --- | --- |",
            f"| shared per sequence (default) | {shared_s:.3f} | {len(shared)} | "
            f"{BATCH / shared_s:.0f} |",
            f"| per position (reference) | {per_position_s:.3f} | {len(per_position)} | "
            f"{BATCH / per_position_s:.1f} |",
            "",
            f"Speed-up of shared over per-position: **{result['speedup']}x**.",
            "",
            f"Arithmetic of one step (forward + backward): about {flop:.0f} GFLOP. This CPU's",
            f"large float32 GEMM runs at {peak:.0f} GFLOP/s (median, same run), so no",
            f"implementation can take less than about {flop / peak:.2f} s per step here; the",
            f"shared mode reaches {flop / peak / shared_s:.0%} of that bound.",
        ]
    )
    update_section(BENCHMARKS_MD, "train_step", table)
    print(table)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
