"""How fast each loss learns on the generated log, against most-popular, in one run.

Trains the demo-sized model (recipe ``demo``) with ``negrec train`` (Ray Train, one
worker) on the same prepared data with: full-catalogue cross-entropy, gBCE (256 uniform
negatives, t=0.75, the reference recipe), SASRec's BCE (one negative) and sampled
softmax (128 negatives), each for the same number of epochs, and records validation
NDCG@10 and the wall minutes after every epoch (from the run's checkpointed history);
``negrec evaluate`` scores each run's best weights on the test users. Together with the
ML-1M table it is the measurement behind the default loss (docs/configuration.md).

    python benchmarks/losses.py --epochs 8
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from product_runs import NEGREC, RunResult, Variant, train_and_evaluate
from report import machine, update_section

from negrec import recipes

RESULTS_MD = Path(__file__).resolve().parent.parent / "docs" / "results.md"
DEMO_CONFIG = recipes.recipe_path("demo")
QUALITY = 0.30
"""Validation NDCG@10 whose first crossing is reported (about twice most-popular)."""
LOSSES = {
    "full cross-entropy (ce)": ["objective.loss=ce"],
    "gBCE, k=256, t=0.75": ["objective.loss=gbce", "objective.negatives=256"],
    "BCE, k=1": ["objective.loss=bce", "objective.negatives=1"],
    "sampled softmax, k=128": ["objective.loss=softmax", "objective.negatives=128"],
}


def prepared_log(workdir: Path) -> Path:
    """The generated log (3,000 users, 1,000 items) laid out by ``negrec prepare``."""
    out = workdir / "prepared"
    if not (out / "manifest.json").exists():
        log = workdir / "log"
        generate = [NEGREC, "generate", "--out", str(log), "--users=3000", "--items=1000"]
        subprocess.run([*generate, "--events=150000"], check=True, capture_output=True)
        prepare = [NEGREC, "prepare", "--events", str(log), "--out", str(out)]
        subprocess.run(prepare, check=True, capture_output=True)
    return out


def table(runs: dict[str, RunResult], epochs: int) -> str:
    marks = sorted({1, 2, 4, 8, epochs} & set(range(1, epochs + 1)))
    header = " | ".join(f"epoch {e}" for e in marks)
    lines = [
        "## Loss functions on the generated log (demo scale)",
        "",
        f"`python benchmarks/losses.py --epochs {epochs}` - 3,000 users, 1,000 items,"
        " 150,000 events; the model of recipe `demo` (d=64, 2 blocks, length 50),"
        " Adam lr 3e-3, batch 128, trained by `negrec train` (1 Ray Train worker, 2 CPUs),"
        " seed 0. Validation NDCG@10 after the given epoch, the training-loop seconds"
        " (training and validation, Ray start-up excluded) in all and until validation"
        f" NDCG@10 first reached {QUALITY}, and `negrec evaluate --split test` on the best"
        " weights.",
        "",
        f"Machine: {machine()}",
        "",
        f"| loss | {header} | best | loop seconds | seconds to {QUALITY} | test NDCG@10 |",
        "| --- | " + " | ".join("---" for _ in marks) + " | --- | --- | --- | --- |",
    ]
    for name, run in runs.items():
        curve = [point["ndcg@10"] for point in run.curve]
        cells = " | ".join(f"{curve[e - 1]:.4f}" for e in marks)
        reached = run.minutes_to_quality
        shown = "not reached" if reached is None else f"{60 * reached:.0f}"
        lines.append(
            f"| {name} | {cells} | {max(curve):.4f} | {60 * run.minutes:.0f} | {shown} |"
            f" {run.test['ndcg@10']:.4f} |"
        )
    popular = next(iter(runs.values())).test["popular_ndcg@10"]
    lines += ["", f"Most-popular baseline on the test rows: NDCG@10 {popular:.4f}."]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/negrec-bench/losses"))
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    prepared = prepared_log(args.workdir)
    fixed = [f"train.max_epochs={args.epochs}", f"train.patience={args.epochs}"]
    runs: dict[str, RunResult] = {}
    for name, overrides in LOSSES.items():
        variant = Variant(name, DEMO_CONFIG, [*overrides, *fixed])
        log = args.workdir / f"{variant.slug}.log"
        runs[name] = train_and_evaluate(variant, 0, prepared, args.workdir, log, QUALITY)
        best = max(point["ndcg@10"] for point in runs[name].curve)
        print(f"{name}: best val NDCG@10 {best:.4f}", flush=True)
    markdown = table(runs, args.epochs)
    update_section(RESULTS_MD, "losses_synthetic", markdown)
    print(markdown)
    print(json.dumps({name: run.test["ndcg@10"] for name, run in runs.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
