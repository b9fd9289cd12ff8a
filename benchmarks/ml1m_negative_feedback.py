"""Learning from rejections on real MovieLens-1M ratings, trained and evaluated by the
product: a positives-only model against the action-aware one, without and with the
not-to-recommend term.

    python benchmarks/ml1m_negative_feedback.py --data ../shared/data/ml1m

Data: the raw ratings of users 1-2,999 (``ratings_users0001-2999.dat.gz``, linked from
the workdir, never copied) go through ``negrec prepare --format movielens`` twice:

* action-aware: the format's default mapping (rating >= 4 positive, <= 2 negative, 3
  ignored), with ``item_clusters.parquet`` next to the events: one cluster per movie,
  its first genre in ``movies.dat`` (``ml1m_data.genre_clusters``), for responsiveness;
* positives only: the same ratings with ``--actions benchmarks/ml1m_positives_only.yaml``
  (ratings <= 3 ignored): the same positives, no rejected items.

Variants, each a ``negrec train`` run (Ray Train) of the cross-entropy recipe
``ml1m`` (full-catalogue softmax, SASRec+: d=64, 2 blocks, length 200, Adam
lr 1e-3, batch 128, 104 passes; ``--epochs`` / ``--budget-minutes`` change the budget):

(a) positives only: ``model.num_actions=1``, trained on the positives-only dataset;
(b) action-aware, rejected items in the input only: ``model.num_actions=2``,
    ``objective.not_to_recommend_weight=0``;
(c) (b) plus the not-to-recommend term at weight ``NTR_WEIGHT`` (``--weight``).

There is no (d) with rejected items as hard negatives: ``objective.rejected_as_negatives``
adds them to the *sampled* negatives, and cross-entropy already ranks every item against
the target, so (d) would train exactly (c).

Every variant is scored by ``negrec evaluate --split test --data <action-aware dataset>``
on its best validation weights: the same test users and held-out rejected items (those
after the test cut-off) for all; (a) is matched by original item ids, and loses the rows
and items it never saw (counted in the table's notes); ``negrec evaluate`` leaves the
rejected interactions out of (a)'s inputs, as a positives-only system never logs them.
Reported: NDCG@10 and Recall@10 of the next liked item, rejected-in-top-10 (share of the
held-out rejected items that are recommended) and responsiveness (relative change of the
top 10's share of the last item's genre when that item is rejected instead of liked; (a)
cannot take a rejection). Every row is mean ± sd over the kept seeds (``--seeds``,
default 0 1 2).

Each run is kept as JSON under ``benchmarks/results/ml1m_negative_feedback/`` with its
commands, and reused by variant name and seed (whatever the budget: keep runs of another
budget under another ``--results``); ``--only a|b|c`` and ``--seed N`` train part of
them, ``--table`` only rebuilds docs/results.md (section ``ml1m_negative_feedback``),
docs/ml1m_negative_feedback_curves.png and docs/ml1m_responsiveness.png from what is kept.
``--users N`` keeps only the first N users, for quick checks: its data, runs, results and
docs then live under the workdir, so a check never touches the committed ones.

``--sweep DIR`` reads a finished ``negrec tune --preset ml1m-ntr`` sweep (``DIR`` is its
``--storage``/``--name``), scores each trial's best checkpoint with ``negrec evaluate
--split test``, keeps the points under ``<results>/ntr-sweep/`` and plots NDCG@10 against
rejected-in-top-10, one point per weight, as docs/ml1m_ntr_tradeoff.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ml1m_data import write_ratings_events
from product_runs import (
    NEGREC,
    RunResult,
    Variant,
    cached_run,
    evaluate_checkpoint,
    kept_run,
    mean_sd,
    minutes_cell,
    plot_curves,
)
from report import update_section

from negrec import recipes
from negrec.tuning import results as sweep_results

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOCS = ROOT / "docs"
RESULTS = HERE / "results" / "ml1m_negative_feedback"
RECIPE = recipes.recipe_path("ml1m")
POSITIVES_ONLY = HERE / "ml1m_positives_only.yaml"
SECTION = "ml1m_negative_feedback"
SWEEP_POINTS = "ntr-sweep"
NTR_WEIGHT = 1.0
"""(c)'s not-to-recommend weight until the ml1m-ntr sweep says which trade-off to take."""
REJECTED_CUT, NDCG_LOSS, RESPONSIVENESS = 0.30, 0.02, -0.40
"""Targets: (c) cuts (a)'s rejected-in-top-10 by >= 30% while losing at most 2% of (a)'s
NDCG@10 (relative), and its responsiveness is <= -40%."""
KEYS = ("ndcg@10", "recall@10", "rejected_in_top10", "responsiveness")


@dataclass(frozen=True)
class Datasets:
    """The two preparations of the same ratings."""

    aware: Path
    positives: Path


def variants(weight: float, budget: list[str]) -> dict[str, Variant]:
    """(a), (b), (c) by their ``--only`` key; (c)'s name carries its weight, so runs at
    another weight are kept apart."""
    return {
        "a": Variant("(a) positives only", RECIPE, ["model.num_actions=1", *budget]),
        "b": Variant(
            "(b) action-aware, rejected items as input",
            RECIPE,
            ["model.num_actions=2", "objective.not_to_recommend_weight=0", *budget],
        ),
        "c": Variant(
            f"(c) action-aware + not-to-recommend, w={weight:g}",
            RECIPE,
            ["model.num_actions=2", f"objective.not_to_recommend_weight={weight:g}", *budget],
        ),
    }


def budget_overrides(epochs: int | None, minutes: float | None) -> list[str]:
    """The recipe's budget (104 passes) unless changed; patience follows the epochs, so
    a run stops on its budget, not on early stopping, and keeps its best weights."""
    overrides = [] if epochs is None else [f"train.max_epochs={epochs}", f"train.patience={epochs}"]
    return overrides + ([] if minutes is None else [f"train.time_budget_minutes={minutes:g}"])


def _prepare(events: Path, out: Path, actions: Path | None = None) -> Path:
    if not (out / "manifest.json").exists():
        mapping = [] if actions is None else ["--actions", str(actions)]
        command = [NEGREC, "prepare", "--format", "movielens", "--events", str(events)]
        subprocess.run([*command, *mapping, "--out", str(out)], check=True)
    return out


def prepared_datasets(data: Path, folder: Path, users: int | None) -> Datasets:
    """Both datasets, laid out by ``negrec prepare`` once per folder."""
    events = write_ratings_events(data, folder / "events", users)
    return Datasets(
        aware=_prepare(events, folder / "prepared"),
        positives=_prepare(events, folder / "positives", POSITIVES_ONLY),
    )


def train_chosen(
    arms: dict[str, Variant],
    keys: list[str],
    seeds: list[int],
    data: Datasets,
    folder: Path,
    results: Path,
) -> None:
    for key in keys:
        trained_on = data.positives if key == "a" else data.aware
        for seed in seeds:
            run = cached_run(arms[key], seed, trained_on, folder, results, data.aware)
            shown = {k: round(run.test[k], 4) for k in KEYS if k in run.test}
            print(f"{arms[key].name} seed {seed}: test {shown}", flush=True)


def kept_runs(
    arms: dict[str, Variant], seeds: list[int], results: Path
) -> dict[str, list[RunResult]]:
    return {
        key: [run for seed in seeds if (run := kept_run(results, variant, seed)) is not None]
        for key, variant in arms.items()
    }


def _mean(runs: list[RunResult], key: str) -> float:
    return statistics.mean(run.test[key] for run in runs)


def _cell(runs: list[RunResult], key: str) -> str:
    values = [run.test[key] for run in runs if key in run.test]
    return mean_sd(values) if values else "-"


def _row(name: str, runs: list[RunResult]) -> str:
    cells = " | ".join(_cell(runs, key) for key in KEYS)
    return (
        f"| {name} | {', '.join(str(r.seed) for r in runs)} |"
        f" {', '.join(str(r.steps) for r in runs)} |"
        f" {', '.join(minutes_cell(r) for r in runs)} | {runs[0].processor} | {cells} |"
    )


def _popular_row(runs: dict[str, list[RunResult]]) -> list[str]:
    """Most popular on the action-aware test rows, from a run scored in that vocabulary."""
    own = next((rs[0] for key, rs in runs.items() if key != "a" and rs), None)
    if own is None:
        return []
    cells = " | ".join(
        f"{own.test[f'popular_{k}']:.4f}" if f"popular_{k}" in own.test else "-" for k in KEYS
    )
    return [f"| most popular | - | - | - | - | {cells} |"]


def verdicts(a: list[RunResult], c: list[RunResult]) -> list[str]:
    """The three targets, each met or missed with the measured values."""
    if not a or not c:
        return ["Targets: not checked until (a) and (c) are kept."]
    rejected = _mean(a, "rejected_in_top10")
    cut = 1 - _mean(c, "rejected_in_top10") / rejected if rejected else float("nan")
    change = _mean(c, "ndcg@10") / _mean(a, "ndcg@10") - 1
    response = _mean(c, "responsiveness") if all("responsiveness" in r.test for r in c) else None

    def state(ok: bool) -> str:
        return "**met**" if ok else "**missed**"

    shown = "not measured" if response is None else f"{response:+.1%}"
    return [
        f"- (c) cuts rejected-in-top-10 by {cut:.1%} relative to (a) (target >="
        f" {REJECTED_CUT:.0%}): {state(cut >= REJECTED_CUT)}.",
        f"- (c) NDCG@10 changes by {change:+.1%} relative to (a) (target: no worse than"
        f" -{NDCG_LOSS:.0%}): {state(change >= -NDCG_LOSS)}.",
        f"- Responsiveness of (c) {shown} (target <= {RESPONSIVENESS:.0%}):"
        f" {state(response is not None and response <= RESPONSIVENESS)}.",
    ]


def _left_out(runs: list[RunResult]) -> list[str]:
    """What scoring (a) on the action-aware split left out, per seed."""
    notes = []
    for run in runs:
        counts = {
            "test rows whose target it never saw": run.test.get("unknown_to_model_target", 0),
            "held-out rejected items it never saw": run.test.get(
                "unknown_to_model_heldout_rejected", 0
            ),
            "rejected interactions in its inputs": run.test.get("negative_inputs_left_out", 0),
        }
        listed = ", ".join(f"{n} {what}" for what, n in counts.items())
        notes.append(
            f"- (a) seed {run.seed}: scored on {run.test['rows']} rows; left out {listed}."
        )
    return notes


def _commands(arms: dict[str, Variant], runs: dict[str, list[RunResult]]) -> list[str]:
    return [
        f"- {arms[key].name}, seed {run.seed} ({run.stop_reason or 'stop reason not kept'}):"
        f" `{run.command}`; `{run.evaluate_command}`"
        for key, kept in runs.items()
        for run in kept
    ]


def _sweep_lines(points: list[dict[str, Any]]) -> list[str]:
    if not points:
        return []
    lines = [
        "",
        "Not-to-recommend weight sweep (`negrec tune --preset ml1m-ntr`, every trial's best"
        " validation weights scored by `negrec evaluate --split test`):",
        "",
        "| w | stage | epochs | best val NDCG@10 | NDCG@10 | rejected-in-top-10 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for p in sorted(points, key=lambda p: p["weight"]):
        lines.append(
            f"| {p['weight']:.3g} | {p['stage']} | {p['epochs']} | {p['best_val_ndcg']:.4f} |"
            f" {p['test']['ndcg@10']:.4f} | {p['test']['rejected_in_top10']:.4f} |"
        )
    return [
        *lines,
        "",
        "![NDCG@10 against rejected-in-top-10, one point per weight](ml1m_ntr_tradeoff.png)",
    ]


def _scope(users: int | None) -> str:
    return "users 1-2,999" if users is None else f"the first {users} users"


def table(
    arms: dict[str, Variant],
    runs: dict[str, list[RunResult]],
    seeds: list[int],
    results: Path,
    points: list[dict[str, Any]],
    users: int | None,
) -> str:
    """docs/results.md section: one row per variant (mean ± sd over its kept seeds)."""
    quick = "" if users is None else f" --users {users}"
    lines = [
        "## MovieLens-1M ratings: learning from negative feedback",
        "",
        f"`python benchmarks/ml1m_negative_feedback.py --data ../shared/data/ml1m{quick}` -"
        f" the raw ratings of {_scope(users)} laid out by `negrec prepare --format movielens`"
        " (rating >= 4 positive, <= 2 negative, 3 ignored; leave-one-out; at most 512 and"
        " 10% validation users; item clusters: each movie's first genre) and, for (a),"
        " with `--actions benchmarks/ml1m_positives_only.yaml` (ratings <= 3 ignored)."
        " Every row is `negrec train` (Ray Train) on recipe `ml1m` (full-catalogue"
        " cross-entropy, SASRec+: d=64, 2 blocks, length 200, Adam lr 1e-3, batch 128)"
        " with the overrides in its command below (kept under"
        f" `{_shown_path(results)}`), scored by `negrec evaluate --split test --data` on"
        " the action-aware dataset with the best validation weights: the next liked item,"
        " the held-out rejected items after the test cut-off, genres as clusters. (a)"
        " cannot take a rejection, so it has no responsiveness; its validation curve is"
        " on the positives-only split's validation users.",
        "",
        "| variant | seeds | steps | wall minutes (mean load) | processor | NDCG@10 | Recall@10"
        " | rejected-in-top-10 | responsiveness (relative change) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *(_row(arms[key].name, kept) for key, kept in runs.items() if kept),
        *_popular_row(runs),
        "",
        *verdicts(runs["a"], runs["c"]),
    ]
    missing = [
        f"{variant.name} (seed {', '.join(absent)})"
        for key, variant in arms.items()
        if (absent := [str(s) for s in seeds if s not in {r.seed for r in runs[key]}])
    ]
    if missing:
        lines += ["", "Not run yet: " + "; ".join(missing) + "."]
    if runs["a"]:
        lines += ["", *_left_out(runs["a"])]
    if any(runs.values()):
        lines += ["", "Commands of the kept runs:", "", *_commands(arms, runs)]
    lines += [
        *_sweep_lines(points),
        "",
        "![validation NDCG@10 against optimiser steps](ml1m_negative_feedback_curves.png)",
        "![same-genre share of the top 10 after a like and after a rejection]"
        "(ml1m_responsiveness.png)",
    ]
    return "\n".join(lines)


def _shown_path(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def plot_responsiveness(
    arms: dict[str, Variant], runs: dict[str, list[RunResult]], path: Path
) -> None:
    """Same-genre share of the top 10 after a like and after a rejection, per variant
    that can take a rejection (mean over its kept seeds)."""
    from matplotlib.figure import Figure

    shown = [
        k for k, kept in runs.items() if kept and all("share_negative" in r.test for r in kept)
    ]
    figure = Figure(figsize=(7, 4))
    axes = figure.subplots()
    width = 0.38
    for offset, (share, label) in enumerate(
        (("share_positive", "last item liked"), ("share_negative", "last item rejected"))
    ):
        axes.bar(
            [i + (offset - 0.5) * width for i in range(len(shown))],
            [_mean(runs[k], share) for k in shown],
            width,
            label=label,
        )
    axes.set_xticks(range(len(shown)), [arms[k].name.split(" ", 1)[0] for k in shown])
    axes.set_ylabel("share of the top 10 in the last item's genre")
    axes.set_title("Responsiveness on genres (ML-1M ratings, test users)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def sweep_points(sweep: Path, results: Path) -> list[dict[str, Any]]:
    """Each trial of a finished sweep with a checkpoint, scored on the test split (kept
    under ``results``, so the plot is rebuilt without the sweep's storage)."""
    stages = [sweep_results.load(str(sweep / f"{stage}.json")) for stage in ("coarse", "fine")]
    trials = [t for stage in stages if stage is not None for t in stage.trials if t.checkpoint]
    if not trials:
        raise SystemExit(
            f"{sweep}: no finished stage with a trial checkpoint (coarse.json, fine.json)"
        )
    results.mkdir(parents=True, exist_ok=True)
    for trial in trials:
        path = results / f"{trial.run_name}.json"
        if path.exists():
            continue
        log = results / f"{trial.run_name}.log"
        command, test = evaluate_checkpoint(str(trial.checkpoint), log)
        point = {
            "weight": trial.config["objective.not_to_recommend_weight"],
            "stage": trial.stage,
            "trial_id": trial.trial_id,
            "epochs": trial.epochs,
            "best_val_ndcg": trial.best_ndcg,
            "stop_reason": trial.stop_reason,
            "command": command,
            "test": test,
        }
        path.write_text(json.dumps(point, indent=1) + "\n")
        print(f"w={point['weight']:.3g}: test {test['ndcg@10']:.4f}", flush=True)
    return kept_points(results)


def kept_points(results: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(results.glob("*.json"))]


def plot_tradeoff(
    points: list[dict[str, Any]], runs: dict[str, list[RunResult]], path: Path
) -> None:
    """Test NDCG@10 against rejected-in-top-10, one point per swept weight, with the kept
    (a) and (b) means for reference."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.2))
    axes = figure.subplots()
    x = [p["test"]["rejected_in_top10"] for p in points]
    y = [p["test"]["ndcg@10"] for p in points]
    axes.scatter(x, y, label="(c) at weight w")
    for p, xi, yi in zip(points, x, y, strict=True):
        axes.annotate(
            f"{p['weight']:.2g}", (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points"
        )
    for key, marker in (("a", "s"), ("b", "^")):
        if runs[key]:
            axes.scatter(
                [_mean(runs[key], "rejected_in_top10")],
                [_mean(runs[key], "ndcg@10")],
                marker=marker,
                label=runs[key][0].name,
            )
    axes.set_xlabel("rejected-in-top-10 (lower is better)")
    axes.set_ylabel("test NDCG@10")
    axes.set_title("Not-to-recommend weight sweep (ML-1M ratings, test users)")
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="the shared ml1m folder (to train)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/negrec-bench/ml1m-negative"))
    parser.add_argument(
        "--results",
        type=Path,
        help=f"kept runs (default: {_shown_path(RESULTS)}; with --users: under the workdir)",
    )
    parser.add_argument(
        "--docs",
        type=Path,
        help="where results.md and the plots go (default: docs/; with --users: under the workdir)",
    )
    parser.add_argument(
        "--users", type=int, help="only the first N users of the ratings, for quick checks"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", choices=("a", "b", "c"), help="train this variant's seeds")
    parser.add_argument("--seed", type=int, help="train this seed only")
    parser.add_argument(
        "--weight", type=float, default=NTR_WEIGHT, help="(c)'s not-to-recommend weight"
    )
    parser.add_argument("--epochs", type=int, help="passes per run (default: the recipe's 104)")
    parser.add_argument("--budget-minutes", type=float, help="wall-time budget per run")
    parser.add_argument(
        "--cpus-per-worker", type=float, help="CPUs (torch threads) of each run's worker"
    )
    parser.add_argument("--table", action="store_true", help="write the docs from kept runs only")
    parser.add_argument(
        "--sweep", type=Path, help="a finished ml1m-ntr sweep (storage/name) to plot"
    )
    args = parser.parse_args()
    if not (args.table or args.sweep) and args.data is None:
        parser.error("--data is needed to train (or give --table / --sweep)")
    return args


def main() -> int:
    args = _arguments()
    folder = args.workdir / ("all-users" if args.users is None else f"first-{args.users}-users")
    results = args.results or (RESULTS if args.users is None else folder / "results")
    docs = args.docs or (DOCS if args.users is None else folder / "docs")
    arms = variants(args.weight, budget_overrides(args.epochs, args.budget_minutes))
    if args.cpus_per_worker:
        arms = {
            k: dataclasses.replace(v, cpus_per_worker=args.cpus_per_worker) for k, v in arms.items()
        }
    points = kept_points(results / SWEEP_POINTS)
    if args.sweep:
        points = sweep_points(args.sweep, results / SWEEP_POINTS)
    elif not args.table:
        datasets = prepared_datasets(args.data, folder, args.users)
        keys = list(arms) if args.only is None else [args.only]
        seeds = args.seeds if args.seed is None else [args.seed]
        train_chosen(arms, keys, seeds, datasets, folder, results)
    runs = kept_runs(arms, args.seeds, results)
    markdown = table(arms, runs, args.seeds, results, points, args.users)
    docs.mkdir(parents=True, exist_ok=True)
    update_section(docs / "results.md", SECTION, markdown)
    named = {arms[k].name: kept for k, kept in runs.items()}
    title = f"ML-1M ratings ({_scope(args.users)}), negrec train"
    plot_curves(named, docs / "ml1m_negative_feedback_curves.png", title)
    plot_responsiveness(arms, runs, docs / "ml1m_responsiveness.png")
    if points:
        plot_tradeoff(points, runs, docs / "ml1m_ntr_tradeoff.png")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
