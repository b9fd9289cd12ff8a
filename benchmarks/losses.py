"""How fast each loss learns on the generated log, against most-popular, in one run.

Trains the demo-sized model (configs/demo.yaml) in process on the same prepared data
with: full-catalogue cross-entropy, gBCE (256 uniform negatives, t=0.75, the reference
recipe), SASRec's BCE (one negative) and sampled softmax (128 negatives), each for the
same number of epochs, and records validation NDCG@10 and the wall time after every
epoch. Together with the ML-1M table it is the measurement behind the default loss
(docs/configuration.md).

    python benchmarks/losses.py --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, update_section

from negrec import generate, prepare
from negrec.config import load_config
from negrec.data.loaders import item_counts, load_prepared, local_eval_batches, local_train_batches
from negrec.data.prepare_config import PrepareConfig
from negrec.evaluation import evaluate, popularity_scorer
from negrec.model import ActionAwareGSASRec
from negrec.pipeline import DEMO_CONFIG
from negrec.runtime import ensure_ray
from negrec.training import EpochReport, LoopHooks, TrainState, train

RESULTS_MD = Path(__file__).resolve().parent.parent / "docs" / "results.md"
QUALITY = 0.30
"""Validation NDCG@10 whose first crossing is reported (about twice most-popular)."""
LOSSES = {
    "full cross-entropy (ce)": ["objective.loss=ce"],
    "gBCE, k=256, t=0.75": ["objective.loss=gbce", "objective.negatives=256"],
    "BCE, k=1": ["objective.loss=bce", "objective.negatives=1"],
    "sampled softmax, k=128": ["objective.loss=softmax", "objective.negatives=128"],
}


class Curve(LoopHooks):
    def __init__(self) -> None:
        self.ndcg: list[float] = []
        self.seconds = 0.0
        self.to_quality: float | None = None

    def on_epoch_end(self, report: EpochReport, state: TrainState) -> None:
        self.ndcg.append(report.val["ndcg@10"])
        self.seconds += report.seconds
        if self.to_quality is None and self.ndcg[-1] >= QUALITY:
            self.to_quality = self.seconds


def prepared_log(workdir: Path) -> str:
    out = workdir / "prepared"
    if not (out / "manifest.json").exists():
        generate.run(
            generate.GenerateConfig(
                out=str(workdir / "log"), users=3000, items=1000, events=150_000
            )
        )
        ensure_ray()
        prepare.run(PrepareConfig(events=str(workdir / "log"), out=str(out)))
    return str(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/negrec-bench/losses")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")
    args = parser.parse_args()
    prepared = load_prepared(prepared_log(Path(args.workdir)))

    curves: dict[str, list[float]] = {}
    seconds: dict[str, float] = {}
    to_quality: dict[str, float | None] = {}
    for name, overrides in LOSSES.items():
        config = load_config(
            DEMO_CONFIG, [*overrides, f"train.max_epochs={args.epochs}", "train.patience=1000"]
        )
        max_len = config.model.max_len
        torch.manual_seed(0)
        model = ActionAwareGSASRec(prepared.num_items, config.model)
        curve = Curve()
        start = time.perf_counter()
        train(
            model,
            lambda epoch, c=config, m=max_len: local_train_batches(
                prepared, c.train.batch_size, m, 0, epoch
            ),
            lambda m=max_len: local_eval_batches(prepared, "val", 512, m),
            config,
            hooks=curve,
        )
        seconds[name] = time.perf_counter() - start
        curves[name] = curve.ndcg
        to_quality[name] = curve.to_quality
        print(f"{name}: best val NDCG@10 {max(curve.ndcg):.4f} in {seconds[name]:.0f}s", flush=True)
    popular = evaluate(
        popularity_scorer(item_counts(prepared)), local_eval_batches(prepared, "val", 512, 50)
    ).metrics()["ndcg@10"]

    marks = sorted({1, 2, 4, 8, args.epochs})
    header = " | ".join(f"epoch {e}" for e in marks)
    lines = [
        "## Loss functions on the generated log (demo scale)",
        "",
        f"`python benchmarks/losses.py --epochs {args.epochs} --json` - 3,000 users, 1,000"
        " items, 150,000 events;",
        "the model of `configs/demo.yaml` (d=64, 2 blocks, length 50), Adam lr 3e-3, batch",
        "128, in process, seed 0. Validation NDCG@10 after the given epoch, and the wall",
        f"seconds (training and validation) until validation NDCG@10 first reached {QUALITY}.",
        "",
        f"Machine: {machine()}",
        "",
        f"| loss | {header} | best | seconds | seconds to {QUALITY} |",
        "| --- | " + " | ".join("---" for _ in marks) + " | --- | --- | --- |",
    ]
    for name, curve in curves.items():
        cells = " | ".join(f"{curve[e - 1]:.4f}" for e in marks)
        reached = to_quality[name]
        shown = "not reached" if reached is None else f"{reached:.0f}"
        lines.append(f"| {name} | {cells} | {max(curve):.4f} | {seconds[name]:.0f} | {shown} |")
    lines += ["", f"Most-popular baseline on the same rows: NDCG@10 {popular:.4f}."]
    update_section(RESULTS_MD, "losses_synthetic", "\n".join(lines))
    print("\n".join(lines))
    if args.json:
        result = {name: max(curve) for name, curve in curves.items()}
        print(json.dumps({"best_val_ndcg_at_10": result, "most_popular": popular}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
