"""Learning from rejections on the generated log, trained and evaluated by the product:
a positives-only model against the action-aware one, without and with the
not-to-recommend term (variants, scoring and targets: ``negative_feedback.py``).

    python benchmarks/generated_negative_feedback.py

Why a generated log beside ML-1M: its clusters are the generator's ground truth, and a
run of the demo recipe is short (8 epochs at demo scale), so all three variants, three
seeds and the weight sweep fit in one sitting; it is also the kind of log `make demo`
trains on, so it is the measurement the demo's not-to-recommend weight rests on.

Data: ``negrec generate`` of 3,000 users, 1,000 items and 150,000 events (seed 0; the
size of ``losses.py``), under the workdir, laid out by ``negrec prepare`` twice: with the
synthetic format's default mapping (skips and dislikes negative) and, for (a), with
``--actions benchmarks/generated_positives_only.yaml`` (skips and dislikes ignored);
both with half the users validating (``VALIDATION``).
Every variant trains the demo recipe (``negrec/recipes/demo.yaml``: cross-entropy, d=64,
length 50, lr 3e-3, 8 epochs, patience 3); (a) keeps the recipe's not-to-recommend
weight, which has nothing to act on without rejected items. Runs are kept under
``benchmarks/results/generated_negative_feedback/``; the table is docs/results.md's
section ``generated_negative_feedback``. The weight sweep::

    negrec tune --data /tmp/negrec-bench/generated-negative/prepared \\
      --storage /tmp/negrec-bench/generated-ntr-sweep --name demo-ntr --preset demo-ntr
    python benchmarks/generated_negative_feedback.py \\
      --sweep /tmp/negrec-bench/generated-ntr-sweep/demo-ntr
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generated import generated_log
from negative_feedback import VALIDATION, Datasets, Study, arguments, run
from product_runs import NEGREC

from negrec import recipes
from negrec.data.manifest import MANIFEST

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "generated_negative_feedback"
POSITIVES_ONLY = HERE / "generated_positives_only.yaml"
USERS, ITEMS, EVENTS = 3_000, 1_000, 150_000
NTR_WEIGHT = 8.0
"""(c)'s weight, and the demo recipe's: the demo-ntr sweep's choice (w=8.14, the largest
weight within 2% of the best validation NDCG@10), rounded."""


def _prepare(log: Path, out: Path, actions: Path | None = None) -> Path:
    if not (out / MANIFEST).exists():
        mapping = [] if actions is None else ["--actions", str(actions)]
        command = [NEGREC, "prepare", "--events", str(log), *mapping, *VALIDATION]
        command += ["--out", str(out)]
        subprocess.run(command, check=True)
    return out


def prepared_datasets(workdir: Path) -> Datasets:
    """The generated log and both of its datasets, made once per workdir."""
    log = generated_log(workdir, USERS, ITEMS, EVENTS).path
    return Datasets(
        aware=_prepare(log, workdir / "prepared"),
        positives=_prepare(log, workdir / "positives", POSITIVES_ONLY),
    )


def study(workdir: Path, results: Path | None, docs: Path | None) -> Study:
    return Study(
        title="generated log",
        stem="generated",
        section="generated_negative_feedback",
        recipe=recipes.recipe_path("demo"),
        recipe_name="demo",
        command="python benchmarks/generated_negative_feedback.py",
        preamble=f"`negrec generate` of {USERS:,} users, {ITEMS:,} items and {EVENTS:,} events"
        " (seed 0) laid out by `negrec prepare` (clicks, carts and purchases positive, skips"
        " and dislikes negative; item clusters: the generator's) and, for (a), with"
        " `--actions benchmarks/generated_positives_only.yaml` (skips and dislikes"
        " ignored); both with `--set val_fraction=0.5 --set val_users=1500` (half the"
        " users validate, so the weight's choice on validation is not noise). Recipe"
        " `demo`: full-catalogue cross-entropy, d=64, 2 blocks, length 50,"
        " Adam lr 3e-3, batch 128, 8 epochs, patience 3.",
        cluster="cluster",
        preset="demo-ntr",
        results=results or RESULTS,
        docs=docs or HERE.parent / "docs",
        workdir=workdir,
    )


def main() -> int:
    parser = arguments(
        __doc__.splitlines()[0],
        Path("/tmp/negrec-bench/generated-negative"),
        NTR_WEIGHT,
        "demo-ntr",
    )
    args = parser.parse_args()
    chosen = study(args.workdir, args.results, args.docs)
    print(run(chosen, args, lambda: prepared_datasets(chosen.workdir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
