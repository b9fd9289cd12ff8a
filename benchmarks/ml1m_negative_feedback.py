"""Learning from rejections on real MovieLens-1M ratings, trained and evaluated by the
product: a positives-only model against the action-aware one, without and with the
not-to-recommend term (variants, scoring and targets: ``negative_feedback.py``).

    python benchmarks/ml1m_negative_feedback.py --data ../shared/data/ml1m

Data: the raw ratings of users 1-2,999 (``ratings_users0001-2999.dat.gz``, linked from
the workdir, never copied) go through ``negrec prepare --format movielens`` twice:

* action-aware: the format's default mapping (rating >= 4 positive, <= 2 negative, 3
  ignored), with ``item_clusters.parquet`` next to the events: one cluster per movie,
  its first genre in ``movies.dat`` (``ml1m_data.genre_clusters``), for responsiveness;
* positives only: the same ratings with ``--actions benchmarks/ml1m_positives_only.yaml``
  (ratings <= 3 ignored): the same positives, no rejected items.

Both preparations take ``negative_feedback.VALIDATION`` (half the users validate, at most
1,500), as the generated log's do: the weight is chosen on validation NDCG@10.
Every variant trains the cross-entropy recipe ``ml1m`` (full-catalogue softmax, SASRec+:
d=64, 2 blocks, length 200, Adam lr 1e-3, batch 128) for ``EPOCHS`` passes, not the
recipe's 104 (``--epochs`` / ``--budget-minutes`` change the budget). Runs are kept under
``benchmarks/results/ml1m_negative_feedback/`` (whatever the budget: keep runs of another
budget under another ``--results``); the table is docs/results.md's section
``ml1m_negative_feedback``. ``--users N`` keeps only the first N users, for quick checks:
its data, runs, results and docs then live under the workdir, so a check never touches
the committed ones. The weight sweep: ``negrec tune --preset ml1m-ntr`` (the preset's
header has the commands, and trains the same budget), then ``--sweep``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ml1m_data import write_ratings_events
from negative_feedback import VALIDATION, Datasets, Study, arguments, run
from product_runs import NEGREC

from negrec import recipes

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "ml1m_negative_feedback"
POSITIVES_ONLY = HERE / "ml1m_positives_only.yaml"
NTR_WEIGHT = 0.89
"""(c)'s weight: the ml1m-ntr sweep's choice (w=0.891, the largest weight within 2% of the
best validation NDCG@10; w=8.14 was 2.1% below it), rounded."""
WINDOW_PROBES = ((200, 30.0), (200, 100.0), (200, 300.0))
"""(c) with ``objective.not_to_recommend_window=200`` (each position also learns not to
recommend every later rejection of its row, which is where the held-out rejected items
of a test row are: after its target) at three weights. Why these weights: the term's
gradient is about w x the rejected items' mean probability (~1e-3) against
cross-entropy's ~1, so the one-step sweep's weights (0.11-55) barely moved it; and the
window's pairs cost a gather each, so the full window is as fast as one step. One seed
each: ``--only probe-window200-w100 --seed 0``."""
EPOCHS = 32
"""Passes per run: 768 steps (2,999 training rows, 24 batches of 128 a pass). Why not the
recipe's 104 (set on all 6,040 users, 48 steps a pass): at 32 passes the ml1m-ntr sweep
trained two weights at a time in 18-21 minutes on 2 AVX2 cores, so its 8 weights took
about 80 minutes; at 104 the sweep or the 9 rows would each take more than a sitting.
At pass 32 the small weights' validation NDCG@10 still rose slowly (0.133-0.134 at pass
22, 0.140 at 32), and every variant gets the same budget."""


def _prepare(events: Path, out: Path, actions: Path | None = None) -> Path:
    if not (out / "manifest.json").exists():
        mapping = [] if actions is None else ["--actions", str(actions)]
        command = [NEGREC, "prepare", "--format", "movielens", "--events", str(events)]
        subprocess.run([*command, *mapping, *VALIDATION, "--out", str(out)], check=True)
    return out


def prepared_datasets(data: Path, folder: Path, users: int | None) -> Datasets:
    """Both datasets, laid out by ``negrec prepare`` once per folder."""
    events = write_ratings_events(data, folder / "events", users)
    return Datasets(
        aware=_prepare(events, folder / "prepared"),
        positives=_prepare(events, folder / "positives", POSITIVES_ONLY),
    )


def study(users: int | None, workdir: Path, results: Path | None, docs: Path | None) -> Study:
    """The ML-1M comparison; with ``users``, a quick one that keeps everything under the
    workdir."""
    folder = workdir / ("all-users" if users is None else f"first-{users}-users")
    scope = "users 1-2,999" if users is None else f"the first {users} users"
    quick = "" if users is None else f" --users {users}"
    return Study(
        title=f"ML-1M ratings ({scope})",
        stem="ml1m",
        section="ml1m_negative_feedback",
        recipe=recipes.recipe_path("ml1m"),
        recipe_name="ml1m",
        command=f"python benchmarks/ml1m_negative_feedback.py --data ../shared/data/ml1m{quick}",
        preamble=f"the raw ratings of {scope} laid out by `negrec prepare --format movielens`"
        " (rating >= 4 positive, <= 2 negative, 3 ignored; leave-one-out; item clusters:"
        " each movie's first genre) and, for (a), with `--actions"
        " benchmarks/ml1m_positives_only.yaml` (ratings <= 3 ignored); both with `--set"
        " val_fraction=0.5 --set val_users=1500` (half the users validate, so the weight's"
        " choice on validation is not noise). Recipe `ml1m`: full-catalogue cross-entropy,"
        f" SASRec+: d=64, 2 blocks, length 200, Adam lr 1e-3, batch 128, here {EPOCHS}"
        " passes (768 steps), not its 104, so that the sweep and the rows each fit a"
        " sitting on 2 cores (the script's EPOCHS says more).",
        cluster="genre",
        preset="ml1m-ntr",
        results=results or (RESULTS if users is None else folder / "results"),
        docs=docs or (HERE.parent / "docs" if users is None else folder / "docs"),
        workdir=folder,
        window_probes=WINDOW_PROBES,
    )


def main() -> int:
    parser = arguments(
        __doc__.splitlines()[0],
        Path("/tmp/negrec-bench/ml1m-negative"),
        NTR_WEIGHT,
        "ml1m-ntr",
        EPOCHS,
    )
    parser.add_argument("--data", type=Path, help="the shared ml1m folder (to train)")
    parser.add_argument(
        "--users", type=int, help="only the first N users of the ratings, for quick checks"
    )
    args = parser.parse_args()
    if not (args.table or args.sweep) and args.data is None:
        parser.error("--data is needed to train (or give --table / --sweep)")
    chosen = study(args.users, args.workdir, args.results, args.docs)
    print(run(chosen, args, lambda: prepared_datasets(args.data, chosen.workdir, args.users)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
