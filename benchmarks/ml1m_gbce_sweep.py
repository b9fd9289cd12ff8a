"""gBCE's fair hearing on MovieLens-1M: does any gBCE recipe leave most-popular level
within 30 minutes? A `negrec tune` sweep, read and scored through the product.

    python benchmarks/ml1m_gbce_sweep.py --data ../shared/data/ml1m

Runs ``negrec tune --preset ml1m-gbce`` (ASHA, coarse then fine, over the learning
rate, dropout and gBCE's t; every trial capped at 30 minutes of training and given both
cores) on the gSASRec split that ``benchmarks/ml1m_table.py`` lays out, unless the
sweep has finished already (same ``--storage``/``--name``: a resumed sweep skips what
it did). Then every trial is kept as JSON under ``benchmarks/results/ml1m_gbce_sweep/``
(its configuration, validation NDCG@10 per epoch, and the steps and minutes its best
checkpoint records), and the best trial's checkpoint is scored by ``negrec evaluate``
on the validation and test splits, next to the most-popular baseline that command
reports. ``--table`` only rebuilds the docs/results.md section from what is kept.

A trial *leaves most-popular level* when its best validation NDCG@10 is at least
``LEAVES_POPULAR`` times most-popular's on the same 512 validation users: a margin of
several standard errors of that mean, so that noise on 512 users does not count.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measured import shown
from ml1m_table import prepared_split
from product_runs import NEGREC, evaluate_checkpoint, processor
from report import update_section

from negrec import checkpoint
from negrec.tuning import results as sweep_results
from negrec.tuning.preset import load_plan
from negrec.tuning.space import Choice

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent / "docs"
RESULTS = HERE / "results" / "ml1m_gbce_sweep"
SECTION = "ml1m_gbce_sweep"
PRESET = "ml1m-gbce"
LEAVES_POPULAR = 1.5
SEARCHED = ("train.lr", "model.dropout", "objective.gbce_t")
BEST = "best-trial.json"


def run_sweep(prepared: Path, storage: Path, name: str, log: Path) -> list[str]:
    """``negrec tune`` (resumes a sweep of the same name); the command as shown."""
    command = [NEGREC, "tune", "--data", str(prepared), "--storage", str(storage)]
    command += ["--name", name, "--preset", PRESET]
    with log.open("a") as sink:
        subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, check=True)
    return command


def trial_point(trial: sweep_results.TrialRecord, command: str) -> dict[str, Any]:
    """What the table needs of one trial, with the steps and minutes of its best epoch
    as its checkpoint recorded them."""
    point: dict[str, Any] = {
        "trial": trial.run_name,
        "stage": trial.stage,
        "config": {key: trial.config[key] for key in SEARCHED},
        "val_ndcg_by_epoch": trial.history,
        "best_val_ndcg": trial.best_ndcg,
        "best_epoch": trial.best_epoch,
        "stop_reason": trial.stop_reason,
        "error": trial.error,
        "checkpoint": trial.checkpoint,
        "sweep_command": command,
        "processor": processor(),
    }
    if trial.checkpoint:
        history = checkpoint.load(trial.checkpoint).state.history
        point["step_minutes_by_epoch"] = {
            int(h["epoch"]): (int(h["step"]), float(h["minutes"])) for h in history
        }
    return point


def keep_trials(sweep: Path, command: str) -> list[dict[str, Any]]:
    """Every trial of the sweep's finished stages, kept as JSON (an existing file wins)."""
    stages = [sweep_results.load(str(sweep / f"{stage}.json")) for stage in ("coarse", "fine")]
    trials = [t for stage in stages if stage is not None for t in stage.trials]
    if not trials:
        raise SystemExit(f"{sweep}: no finished stage (coarse.json, fine.json)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    for trial in trials:
        path = RESULTS / f"{trial.run_name}.json"
        if not path.exists():
            path.write_text(json.dumps(trial_point(trial, command), indent=1) + "\n")
    return kept_trials()


def kept_trials() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json")) if p.name != BEST]


def score_best(points: list[dict[str, Any]], log: Path) -> dict[str, Any]:
    """``negrec evaluate`` of the best trial on val and test (kept, and redone only when
    another trial, e.g. of a resumed fine stage, has become the best)."""
    scored = [p for p in points if p["checkpoint"] and p["best_val_ndcg"] is not None]
    best = max(scored, key=lambda p: p["best_val_ndcg"])
    path = RESULTS / BEST
    if path.exists() and (kept := json.loads(path.read_text()))["trial"] == best["trial"]:
        return kept
    val_command, val = evaluate_checkpoint(best["checkpoint"], log, split="val")
    test_command, test = evaluate_checkpoint(best["checkpoint"], log)
    kept = {"trial": best["trial"], "commands": [val_command, test_command]}
    kept.update(val=val, test=test)
    path.write_text(json.dumps(kept, indent=1) + "\n")
    return kept


def _left_popular(point: dict[str, Any], popular_val: float) -> str:
    """The first epoch (and its minutes) with validation NDCG@10 above the bar, or "no"."""
    by_epoch = point.get("step_minutes_by_epoch", {})
    for epoch, ndcg in point["val_ndcg_by_epoch"]:
        if ndcg >= LEAVES_POPULAR * popular_val:
            at = f", {by_epoch[str(epoch)][1]:.1f} min" if str(epoch) in by_epoch else ""
            return f"epoch {epoch}{at}"
    return "no"


def _row(point: dict[str, Any], popular_val: float) -> str:
    config = point["config"]
    ndcg = point["best_val_ndcg"]
    best = "-" if ndcg is None else f"{ndcg:.4f}"
    at_best = point.get("step_minutes_by_epoch", {}).get(str(point["best_epoch"]))
    step, minutes = (str(at_best[0]), f"{at_best[1]:.1f}") if at_best else ("-", "-")
    epochs = max((epoch for epoch, _ in point["val_ndcg_by_epoch"]), default=0)
    return (
        f"| {point['trial']} | {point['stage']} | {config['train.lr']:.2e} |"
        f" {config['model.dropout']:.2f} | {config['objective.gbce_t']:.2f} | {epochs} |"
        f" {point['stop_reason']} | {point['best_epoch'] or '-'} | {step} | {minutes} |"
        f" {best} | {_left_popular(point, popular_val)} |"
    )


def _budget() -> str:
    preset = load_plan(PRESET).preset
    return (
        f"{preset.coarse.trials} coarse trials and {preset.fine.trials} fine ones of at most"
        f" {max(preset.coarse.epochs, preset.fine.epochs)} passes and"
        f" {preset.fixed['train.time_budget_minutes']:g} minutes of training each, ASHA"
        f" (grace {preset.asha.grace_period} epochs, reduction"
        f" {preset.asha.reduction_factor:g})"
    )


def _space() -> str:
    space = load_plan(PRESET).coarse
    return ", ".join(
        f"{key} {spec.kind} "
        + (str(spec.values) if isinstance(spec, Choice) else f"{spec.low:g}..{spec.high:g}")
        for key, spec in space.items()
    )


def table(points: list[dict[str, Any]], best: dict[str, Any]) -> str:
    """docs/results.md section: one row per trial, the verdict, the best trial's test."""
    preset = load_plan(PRESET).preset
    popular_val = best["val"]["popular_ndcg@10"]
    leaving = [p for p in points if (p["best_val_ndcg"] or 0.0) >= LEAVES_POPULAR * popular_val]
    test = best["test"]
    verdict = (
        f"**{len(leaving)} of {len(points)} trials** leave most-popular level (validation"
        f" NDCG@10 >= {LEAVES_POPULAR:g} x most-popular's {popular_val:.4f}) within their"
        f" {preset.fixed['train.time_budget_minutes']:g} minutes."
    )
    pending = [stage for stage in ("coarse", "fine") if stage not in {p["stage"] for p in points}]
    if pending:
        verdict += f" Stage not run yet: {', '.join(pending)} (the same command resumes the sweep)."
    return "\n".join(
        [
            "## gBCE's fair hearing: a `negrec tune` sweep on MovieLens-1M",
            "",
            "`python benchmarks/ml1m_gbce_sweep.py --data ../shared/data/ml1m` runs"
            f" `{points[0]['sweep_command']}`: the preset `{PRESET}` (gSASRec recipe: d=128,"
            " 2 blocks, length 200, 256 uniform negatives per position, batch 128, fp32),"
            f" {_budget()}, one trial at a time with"
            f" {preset.cpus_per_worker:g} CPUs. Searched: {_space()}."
            f" Processor: {points[0]['processor']}. Steps and minutes are those of the"
            " trial's best epoch, as its checkpoint records them.",
            "",
            "| trial | stage | lr | dropout | t | epochs run | stop | best epoch | step |"
            " minutes | best val NDCG@10 | leaves most-popular |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            *(_row(p, popular_val) for p in points),
            "",
            verdict,
            "",
            f"Best trial {best['trial']}, `negrec evaluate --split test` (5,062 users):"
            f" NDCG@10 {test['ndcg@10']:.4f}, Recall@10 {test['recall@10']:.4f}; most"
            f" popular {test['popular_ndcg@10']:.4f} / {test['popular_recall@10']:.4f}."
            f" Commands: `{best['commands'][0]}`, `{best['commands'][1]}`.",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="the shared ml1m folder (to run the sweep)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/negrec-bench/ml1m-table"))
    parser.add_argument("--storage", type=Path, default=Path("/tmp/negrec-bench/gbce-sweep"))
    parser.add_argument("--name", default="ml1m-gbce")
    parser.add_argument("--table", action="store_true", help="rebuild the docs from kept runs")
    args = parser.parse_args()
    log = args.workdir / "gbce-sweep.log"
    if not args.table:
        if args.data is None:
            parser.error("--data is needed to run the sweep (or --table)")
        prepared = prepared_split(args.data, args.workdir)
        command = shown(run_sweep(prepared, args.storage, args.name, log))
        keep_trials(args.storage / args.name, command)
    points = kept_trials()
    markdown = table(points, score_best(points, log))
    update_section(DOCS / "results.md", SECTION, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
