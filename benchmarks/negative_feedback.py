"""Learning from rejections, one comparison for any event log: a positives-only model
against the action-aware one, without and with the not-to-recommend term, each trained
by ``negrec train`` and scored by ``negrec evaluate``.

Why one module: the ML-1M ratings (``ml1m_negative_feedback.py``) and the generated log
(``generated_negative_feedback.py``) differ only in how their two datasets are made, the
recipe and the words of the docs; the variants, the kept runs, the table, the targets
and the plots are the same, so they live here once, and a ``Study`` says what differs.

Variants (``variants``):

(a) positives only: ``model.num_actions=1``, trained on the positives-only dataset;
(b) action-aware, rejected items in the input only: ``model.num_actions=2``,
    ``objective.not_to_recommend_weight=0``;
(c) (b) plus the not-to-recommend term at weight ``--weight``.

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
top 10's share of the last item's cluster when that item is rejected instead of liked;
(a) cannot take a rejection). Every row is mean ± sd over the kept seeds.

Each run is kept as JSON under the study's results folder with its commands, and reused
by variant name and seed; ``--only a|b|c`` and ``--seed N`` train part of them,
``--table`` only rebuilds the docs from what is kept. ``--sweep DIR`` reads a finished
``negrec tune`` sweep of the weight (``DIR`` is its ``--storage``/``--name``), scores
each trial's best checkpoint with ``negrec evaluate --split test``, keeps the points under
``<results>/ntr-sweep/`` and plots NDCG@10 against rejected-in-top-10, one point per
weight.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from product_runs import (
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

from negrec.tuning import results as sweep_results

ROOT = Path(__file__).resolve().parent.parent
SWEEP_POINTS = "ntr-sweep"
REJECTED_CUT, NDCG_LOSS, RESPONSIVENESS = 0.30, 0.02, -0.40
"""Targets: (c) cuts (a)'s rejected-in-top-10 by >= 30% while losing at most 2% of (a)'s
NDCG@10 (relative), and its responsiveness is <= -40%."""
KEYS = ("ndcg@10", "recall@10", "rejected_in_top10", "responsiveness")
VALIDATION = ["--set", "val_fraction=0.5", "--set", "val_users=1500"]
"""``negrec prepare`` overrides of both studies: half the users validate (at most 1,500),
not the default 10% (at most 512): the weight is chosen on validation NDCG@10 within a 2%
tolerance (``chosen_point``), and on the generated log's 298 default validation users
that rule took w=15.4, whose validation NDCG was within 0.4% of the best while its test
NDCG was 6.5% below the small weights' (docs/configuration.md)."""


@dataclass(frozen=True)
class Datasets:
    """The two preparations of the same log."""

    aware: Path
    positives: Path


@dataclass(frozen=True)
class Study:
    """What one log's comparison says and where it keeps things."""

    title: str
    """The log in plot titles, e.g. "ML-1M ratings (users 1-2,999)"."""
    stem: str
    """File-name stem of the plots in docs/: ``<stem>_negative_feedback_curves.png``..."""
    section: str
    """The docs/results.md section the table is written to."""
    recipe: Path
    recipe_name: str
    command: str
    """The benchmark's command as the docs show it."""
    preamble: str
    """What the data is and how it was prepared (one paragraph of the table's text)."""
    cluster: str
    """What the clusters of responsiveness are: "genre", "cluster"."""
    preset: str
    """The ``negrec tune`` preset of the weight sweep."""
    results: Path
    docs: Path
    workdir: Path
    window_probes: tuple[tuple[int, float], ...] = ()
    """(window, weight) of (c)-like runs with ``objective.not_to_recommend_window``, one
    seed each, shown as rows of their own and in the "Tried" line; ``--only`` key
    ``probe-window<W>-w<weight>``."""


PROBE = "probe-"
"""The ``--only`` key prefix of a study's probes: trained only when asked, seed 0 only."""


def variants(study: Study, weight: float, budget: list[str]) -> dict[str, Variant]:
    """(a), (b), (c) and the study's probes by their ``--only`` key; (c)'s name carries
    its weight, so runs at another weight are kept apart."""
    probes = {
        f"{PROBE}window{window}-w{w:g}": Variant(
            f"(c) probe: not-to-recommend window {window}, w={w:g}",
            study.recipe,
            [
                "model.num_actions=2",
                f"objective.not_to_recommend_weight={w:g}",
                f"objective.not_to_recommend_window={window}",
                *budget,
            ],
        )
        for window, w in study.window_probes
    }
    return {
        "a": Variant("(a) positives only", study.recipe, ["model.num_actions=1", *budget]),
        "b": Variant(
            "(b) action-aware, rejected items as input",
            study.recipe,
            ["model.num_actions=2", "objective.not_to_recommend_weight=0", *budget],
        ),
        "c": Variant(
            f"(c) action-aware + not-to-recommend, w={weight:g}",
            study.recipe,
            ["model.num_actions=2", f"objective.not_to_recommend_weight={weight:g}", *budget],
        ),
        **probes,
    }


def budget_overrides(epochs: int | None, minutes: float | None) -> list[str]:
    """The recipe's budget unless changed; patience follows the epochs, so a run stops
    on its budget, not on early stopping, and keeps its best weights."""
    overrides = [] if epochs is None else [f"train.max_epochs={epochs}", f"train.patience={epochs}"]
    return overrides + ([] if minutes is None else [f"train.time_budget_minutes={minutes:g}"])


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
        for seed in expected_seeds(key, seeds):
            run = cached_run(arms[key], seed, trained_on, folder, results, data.aware)
            shown = {k: round(run.test[k], 4) for k in KEYS if k in run.test}
            print(f"{arms[key].name} seed {seed}: test {shown}", flush=True)


def expected_seeds(key: str, seeds: list[int]) -> list[int]:
    """The seeds a row is reported over: all for (a), (b), (c); the first for a probe."""
    return seeds[:1] if key.startswith(PROBE) else seeds


def kept_runs(
    arms: dict[str, Variant], seeds: list[int], results: Path
) -> dict[str, list[RunResult]]:
    return {
        key: [
            run
            for seed in expected_seeds(key, seeds)
            if (run := kept_run(results, variant, seed)) is not None
        ]
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
        f" {', '.join(minutes_cell(r, 1) for r in runs)} | {runs[0].processor} | {cells} |"
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


def tried(a: list[RunResult], points: list[dict[str, Any]]) -> list[str]:
    """What the weight sweep offered against the targets (one seed per weight, test
    split, against (a)'s mean), so a missed target says what else was tried."""
    if not a or not points:
        return []
    ndcg, rejected = _mean(a, "ndcg@10"), _mean(a, "rejected_in_top10")

    def cut(p: dict[str, Any]) -> float:
        return 1 - p["test"]["rejected_in_top10"] / rejected if rejected else float("nan")

    def change(p: dict[str, Any]) -> float:
        return p["test"]["ndcg@10"] / ndcg - 1

    weights = sorted(p["weight"] for p in points)
    inside = [p for p in points if change(p) >= -NDCG_LOSS]
    deepest = max(points, key=cut)
    if inside:
        best = max(inside, key=cut)
        kept = (
            f"of those within {NDCG_LOSS:.0%} of (a)'s NDCG@10, the fewest rejected items"
            f" came at w={best['weight']:.3g} (rejected-in-top-10 {-cut(best):+.1%})"
        )
    else:
        kept = f"none stayed within {NDCG_LOSS:.0%} of (a)'s NDCG@10"
    responses = [p["test"]["responsiveness"] for p in points if "responsiveness" in p["test"]]
    spread = (
        f"; responsiveness ranged {min(responses):+.1%} to {max(responses):+.1%}"
        if responses
        else ""
    )
    return [
        f"- Tried: the sweep below, {len(points)} weights from {weights[0]:.3g} to"
        f" {weights[-1]:.3g} (one seed each, test split, relative to (a)): {kept}; the fewest"
        f" of all at w={deepest['weight']:.3g} (rejected-in-top-10 {-cut(deepest):+.1%}, NDCG@10"
        f" {change(deepest):+.1%}){spread}."
    ]


def tried_probes(
    arms: dict[str, Variant], a: list[RunResult], runs: dict[str, list[RunResult]]
) -> list[str]:
    """Each kept probe against (a)'s mean, in the words of the verdicts."""
    if not a:
        return []
    ndcg, rejected = _mean(a, "ndcg@10"), _mean(a, "rejected_in_top10")
    lines = []
    for key, kept in runs.items():
        if key.startswith(PROBE) and kept:
            rise = _mean(kept, "rejected_in_top10") / rejected - 1 if rejected else float("nan")
            change = _mean(kept, "ndcg@10") / ndcg - 1
            lines.append(
                f"- Tried also: {arms[key].name} (seed {kept[0].seed}, relative to (a)):"
                f" rejected-in-top-10 {rise:+.1%}, NDCG@10 {change:+.1%}."
            )
    return lines


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


def chosen_point(points: list[dict[str, Any]]) -> dict[str, Any]:
    """The weight docs/configuration.md tells a user to take from a sweep: the largest
    whose best validation NDCG@10 is within ``NDCG_LOSS`` (relative) of the sweep's best.
    Why on validation: the choice must not see the test users it is reported on. Why the
    largest: the term only exists to show fewer rejected items and pays for them in
    ranking quality, so the NDCG tolerance is the budget and the largest weight inside
    it spends it."""
    best = max(p["best_val_ndcg"] for p in points)
    inside = [p for p in points if p["best_val_ndcg"] >= (1 - NDCG_LOSS) * best]
    return max(inside, key=lambda p: p["weight"])


def _responsiveness_cell(test: dict[str, Any]) -> str:
    return f"{test['responsiveness']:+.4f}" if "responsiveness" in test else "-"


def _sweep_lines(study: Study, points: list[dict[str, Any]]) -> list[str]:
    if not points:
        return []
    lines = [
        "",
        f"Not-to-recommend weight sweep (`negrec tune --preset {study.preset}`, one seed per"
        " weight, every trial's best validation weights scored by `negrec evaluate --split"
        " test`):",
        "",
        "| w | stage | epochs | best val NDCG@10 | NDCG@10 | rejected-in-top-10 | responsiveness |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in sorted(points, key=lambda p: p["weight"]):
        lines.append(
            f"| {p['weight']:.3g} | {p['stage']} | {p['epochs']} | {p['best_val_ndcg']:.4f} |"
            f" {p['test']['ndcg@10']:.4f} | {p['test']['rejected_in_top10']:.4f} |"
            f" {_responsiveness_cell(p['test'])} |"
        )
    chosen = chosen_point(points)
    best = max(p["best_val_ndcg"] for p in points)
    return [
        *lines,
        "",
        f"Chosen weight (the largest whose best validation NDCG@10 is within {NDCG_LOSS:.0%}"
        f" of the sweep's best, {best:.4f}; docs/configuration.md): **w={chosen['weight']:.3g}**"
        f" (validation {chosen['best_val_ndcg']:.4f}).",
        "",
        "![NDCG@10 against rejected-in-top-10, one point per weight]"
        f"({study.stem}_ntr_tradeoff.png)",
    ]


def table(
    study: Study,
    arms: dict[str, Variant],
    runs: dict[str, list[RunResult]],
    seeds: list[int],
    points: list[dict[str, Any]],
) -> str:
    """The docs section: one row per variant (mean ± sd over its kept seeds)."""
    lines = [
        f"## {study.title}: learning from negative feedback",
        "",
        f"`{study.command}` - {study.preamble} Every row is `negrec train` (Ray Train) on"
        f" recipe `{study.recipe_name}` with the overrides in its command below (kept under"
        f" `{shown_path(study.results)}`), scored by `negrec evaluate --split test --data` on"
        " the action-aware dataset with the best validation weights: the next liked item,"
        f" the held-out rejected items after the test cut-off, {study.cluster}s as clusters."
        " (a) cannot take a rejection, so it has no responsiveness; its validation curve is"
        " on the positives-only split's validation users.",
        "",
        "| variant | seeds | steps | wall minutes (mean load) | processor | NDCG@10 | Recall@10"
        " | rejected-in-top-10 | responsiveness (relative change) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *(_row(arms[key].name, kept) for key, kept in runs.items() if kept),
        *_popular_row(runs),
        "",
        *verdicts(runs["a"], runs["c"]),
        *tried(runs["a"], points),
        *tried_probes(arms, runs["a"], runs),
    ]
    missing = [
        f"{variant.name} (seed {', '.join(absent)})"
        for key, variant in arms.items()
        if (
            absent := [
                str(s) for s in expected_seeds(key, seeds) if s not in {r.seed for r in runs[key]}
            ]
        )
    ]
    if missing:
        lines += ["", "Not run yet: " + "; ".join(missing) + "."]
    if runs["a"]:
        lines += ["", *_left_out(runs["a"])]
    if any(runs.values()):
        lines += ["", "Commands of the kept runs:", "", *_commands(arms, runs)]
    lines += [
        *_sweep_lines(study, points),
        "",
        f"![validation NDCG@10 against optimiser steps]({study.stem}_negative_feedback_curves.png)",
        f"![same-{study.cluster} share of the top 10 after a like and after a rejection]"
        f"({study.stem}_responsiveness.png)",
    ]
    return "\n".join(lines)


def shown_path(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def plot_responsiveness(
    study: Study, arms: dict[str, Variant], runs: dict[str, list[RunResult]]
) -> None:
    """Same-cluster share of the top 10 after a like and after a rejection, per variant
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
    axes.set_ylabel(f"share of the top 10 in the last item's {study.cluster}")
    axes.set_title(f"Responsiveness on {study.cluster}s ({study.title}, test users)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(study.docs / f"{study.stem}_responsiveness.png", dpi=110)


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
        if log.stat().st_size == 0:  # kept only when evaluate said something
            log.unlink()
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
    study: Study, points: list[dict[str, Any]], runs: dict[str, list[RunResult]]
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
    chosen = chosen_point(points)
    axes.scatter(
        [chosen["test"]["rejected_in_top10"]],
        [chosen["test"]["ndcg@10"]],
        s=120,
        facecolors="none",
        edgecolors="black",
        label=f"chosen, w={chosen['weight']:.2g}",
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
    axes.set_title(f"Not-to-recommend weight sweep ({study.title}, test users)")
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(study.docs / f"{study.stem}_ntr_tradeoff.png", dpi=110)


def arguments(
    description: str, workdir: Path, weight: float, preset: str, epochs: int | None = None
) -> argparse.ArgumentParser:
    """The options every study takes, ``epochs`` the study's budget (None: the recipe's);
    a study adds those of its own data."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--workdir", type=Path, default=workdir)
    parser.add_argument("--results", type=Path, help="kept runs (default: the study's)")
    parser.add_argument("--docs", type=Path, help="where results.md and the plots go")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--only", help="train this variant's seeds: a, b, c, or a probe's key (probe-...)"
    )
    parser.add_argument("--seed", type=int, help="train this seed only")
    parser.add_argument(
        "--weight", type=float, default=weight, help=f"(c)'s not-to-recommend weight ({weight:g})"
    )
    budget = "the recipe's" if epochs is None else str(epochs)
    parser.add_argument(
        "--epochs", type=int, default=epochs, help=f"passes per run (default: {budget})"
    )
    parser.add_argument("--budget-minutes", type=float, help="wall-time budget per run")
    parser.add_argument(
        "--cpus-per-worker", type=float, help="CPUs (torch threads) of each run's worker"
    )
    parser.add_argument("--table", action="store_true", help="write the docs from kept runs only")
    parser.add_argument(
        "--sweep", type=Path, help=f"a finished {preset} sweep (storage/name) to plot"
    )
    return parser


def run(study: Study, args: argparse.Namespace, datasets: Callable[[], Datasets]) -> str:
    """Train what ``args`` choose (``datasets`` makes the data only then), score a sweep
    when given, and write the section and plots from the kept runs; the markdown."""
    arms = variants(study, args.weight, budget_overrides(args.epochs, args.budget_minutes))
    if args.cpus_per_worker:
        arms = {
            k: dataclasses.replace(v, cpus_per_worker=args.cpus_per_worker) for k, v in arms.items()
        }
    points = kept_points(study.results / SWEEP_POINTS)
    if args.sweep:
        points = sweep_points(args.sweep, study.results / SWEEP_POINTS)
    elif not args.table:
        if args.only is not None and args.only not in arms:
            raise SystemExit(f"--only {args.only}: choose one of {', '.join(arms)}")
        keys = [k for k in arms if not k.startswith(PROBE)] if args.only is None else [args.only]
        seeds = args.seeds if args.seed is None else [args.seed]
        train_chosen(arms, keys, seeds, datasets(), study.workdir, study.results)
    runs = kept_runs(arms, args.seeds, study.results)
    markdown = table(study, arms, runs, args.seeds, points)
    study.docs.mkdir(parents=True, exist_ok=True)
    update_section(study.docs / "results.md", study.section, markdown)
    named = {arms[k].name: kept for k, kept in runs.items()}
    curves = study.docs / f"{study.stem}_negative_feedback_curves.png"
    plot_curves(named, curves, f"{study.title}, negrec train")
    plot_responsiveness(study, arms, runs)
    if points:
        plot_tradeoff(study, points, runs)
    return markdown
