"""Memory and time of a training step with a 10^6-item catalogue (in-batch sampled softmax).

1,000,000 items, d=64, 2 blocks, 1 head, dropout 0.1, length 200, separate output
table, action-aware input; 128 random sequences x 200 positions a step (a fifth of the
interactions negative); ``softmax`` with ``in_batch`` sampling and 256 uniform draws
(log-Q corrected) - what ``objective.loss: auto`` resolves to at this size - plus the
not-to-recommend term; Adam with gradient clipping, float32. The step is the product's
own: the model class, ``training_loss`` and the optimiser the training loop makes.
Reports the median step time after a warm-up step and the process's peak RSS.

    python benchmarks/large_catalogue_step.py --threads 1 --json
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import BENCHMARKS_MD, machine, median, update_section

from negrec.action_codes import NEGATIVE, POSITIVE
from negrec.batching import TrainBatch, train_batch_from_arrays, training_arrays
from negrec.config import ModelConfig, ObjectiveConfig, TrainConfig
from negrec.model import ActionAwareGSASRec
from negrec.objectives.choice import batch_logits_mib, describe, resolve_objective
from negrec.objectives.sampled_candidates import (
    TargetFrequencies,
    count_targets,
    draw_negatives,
    in_batch_candidates,
)
from negrec.objectives.training_loss import needs_target_frequencies, training_loss
from negrec.training.loop import make_optimizer

BATCH, LENGTH = 128, 200
MODEL = ModelConfig(max_len=LENGTH, dim=64, blocks=2, heads=1, dropout=0.1)
NTR_WEIGHT = 0.5
TARGET_MIB = 6 * 1024


def random_batch(num_items: int, rng: np.random.Generator) -> TrainBatch:
    """128 random sequences of 201 interactions, laid out by the product's batching."""
    items = rng.integers(1, num_items + 1, (BATCH, LENGTH + 1))
    actions = np.where(rng.random((BATCH, LENGTH + 1)) < 0.2, NEGATIVE, POSITIVE)
    return train_batch_from_arrays(training_arrays(list(items), list(actions), LENGTH))


def peak_rss_mib() -> float:
    """The process's peak resident set so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sampled_softmax(negatives: int) -> ObjectiveConfig:
    """In-batch candidates plus ``negatives`` uniform draws, log-Q corrected, with the
    not-to-recommend term: what ``objective.loss: auto`` resolves to past its budget."""
    return ObjectiveConfig(
        loss="softmax",
        sampling="in_batch",
        negatives=negatives,
        not_to_recommend_weight=NTR_WEIGHT,
    )


def time_steps(
    num_items: int, objective: ObjectiveConfig, steps: int, threads: int | None = None
) -> dict[str, Any]:
    """One warm-up and ``steps`` timed optimiser steps of the product's training step
    (model class, ``training_loss``, the loop's optimiser and clipping) on random
    batches, with ``objective`` resolved as the training loop resolves it for this
    catalogue at 128 x 200 positions (``auto``: ce or in-batch softmax). The peak RSS
    is this process's whole life's, so compare peaks of calls in separate processes."""
    if threads is not None:
        torch.set_num_threads(threads)
    choice = resolve_objective(objective, num_items, BATCH, LENGTH)
    resolved = choice.objective
    rng = np.random.default_rng(0)
    batches = [random_batch(num_items, rng) for _ in range(steps + 1)]
    frequencies = None
    if needs_target_frequencies(resolved):
        frequencies = TargetFrequencies.from_counts(count_targets(batches, num_items))
    train = TrainConfig(batch_size=BATCH)
    torch.manual_seed(0)
    model = ActionAwareGSASRec(num_items, MODEL)
    optimizer = make_optimizer(model, train)
    state_mib = 4 * sum(p.numel() for p in model.parameters()) * 4 / 2**20
    generator = torch.Generator().manual_seed(0)
    model.train()
    times = []
    for batch in batches:
        start = time.perf_counter()
        loss = training_loss(model, batch, resolved, generator, frequencies=frequencies)
        optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
        optimizer.step()
        times.append(time.perf_counter() - start)
        print(f"step {len(times)}: {times[-1]:.2f} s, loss {loss.ranking:.3f}", flush=True)
    candidates = None
    if frequencies is not None:
        kind = resolved.negative_distribution
        draws = draw_negatives(kind, frequencies, resolved.negatives, generator)
        columns = [
            len(in_batch_candidates(b.targets, b.rejected, draws, frequencies, kind).items)
            for b in batches
        ]
        candidates = int(median(columns))
    seconds = median(times[1:])  # the first step warms up
    return {
        "items": num_items,
        "objective": describe(resolved),
        "choice": choice.reason,
        "median_s_per_step": round(seconds, 3),
        "sequences_per_s": round(BATCH / seconds, 1),
        "step_seconds": [round(t, 2) for t in times],
        "steps_timed": steps,
        "peak_rss_mib": round(peak_rss_mib()),
        "state_mib": round(state_mib),
        "candidates_per_step": candidates,
        "threads": torch.get_num_threads(),
        "full_logits_gib": round(batch_logits_mib(num_items, BATCH * LENGTH) / 1024, 1),
    }


def section(result: dict[str, Any]) -> str:
    """The docs/benchmarks.md section of one run's ``result``."""
    timed = result["step_seconds"][1:]
    verdict = "**under**" if result["peak_rss_mib"] < TARGET_MIB else "**over**"
    return "\n".join(
        [
            "## Training step at 10^6 items (in-batch sampled softmax)",
            "",
            f"`python benchmarks/large_catalogue_step.py --threads {result['threads']} --json`"
            f" - {result['items']:,} items, d=64, 2 blocks, 1 head, dropout 0.1, length 200,",
            "separate output table, action-aware input; 128 random sequences x 200 positions a",
            "step (a fifth of the interactions negative); `softmax`, `in_batch` + "
            f"{result['negatives']} uniform draws,",
            f"log-Q corrected, not-to-recommend w={NTR_WEIGHT}; Adam, gradient clipping 1.0, "
            "float32; one process,",
            "median of the steps after a warm-up one.",
            "",
            f"Machine: {machine()}",
            "",
            "| items | candidates a step (median) | median s/step | steps timed | "
            "peak RSS MiB | parameters + gradients + Adam MiB |",
            "| --- | --- | --- | --- | --- | --- |",
            f"| {result['items']:,} | {result['candidates_per_step']:,} | "
            f"{result['median_s_per_step']:.2f} | {result['steps_timed']} | "
            f"{result['peak_rss_mib']:,} | {result['state_mib']:,} |",
            "",
            f"The timed steps took {min(timed):.1f} to {max(timed):.1f} s: with "
            f"{result['threads']} torch thread(s) beside other jobs (the load",
            "average above) the step time is an upper bound; the memory does not depend on it.",
            f"`objective.loss: auto` at this size: `{result['auto']}`.",
            f"Full-catalogue cross-entropy would build {result['full_logits_gib']:,} GiB of "
            "logits a step (chunk by chunk);",
            "the sampled softmax builds positions x candidates, chunked the same way",
            f"(`objective.logits_chunk_mib`). Peak memory against the 6 GiB target: {verdict}.",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=5, help="steps timed (after one warm-up)")
    parser.add_argument("--negatives", type=int, default=256)
    parser.add_argument(
        "--threads", type=int, help="torch threads (default: torch's; 1 beside another job)"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")
    args = parser.parse_args()

    objective = sampled_softmax(args.negatives)
    result = time_steps(args.items, objective, args.steps, args.threads)
    auto = objective.model_copy(update={"loss": "auto"})
    result["negatives"] = args.negatives
    result["auto"] = resolve_objective(auto, args.items, BATCH, LENGTH).line()
    table = section(result)
    update_section(BENCHMARKS_MD, "large_catalogue_step", table)
    print(table)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
