"""How the work grows: prepare against events, a training step against the catalogue,
batch scoring against users; each curve a table and a figure.

    python benchmarks/cost_curves.py
    python benchmarks/cost_curves.py --only train --threads 1
    python benchmarks/cost_curves.py --quick      # toy sizes; docs under the workdir

prepare: generated logs of 10^6, 10^7 and 5 x 10^7 events (50 events a user, 100 an
item; each generated once by ``negrec generate`` under ``--workdir``, its rate and
memory measured then and kept beside it) laid out by ``negrec prepare`` in a process
of its own, while the summed RSS of its whole process tree (driver, Ray's daemons and
workers) is sampled every 0.5 s. The stated bound: the peak at the largest log is at
most ``PEAK_GROWTH`` times the peak at the smallest.

train: the product's training step (``large_catalogue_step.time_steps``: the model
class, ``training_loss``, the loop's optimiser) at d=64, 2 blocks, length 200, batch
128 for 10^3 .. 10^6 items, with the objective ``objective.loss: auto`` resolves to
(ce where its logits fit, in-batch sampled softmax beyond) and with the sampled softmax
forced at every size; each in a fresh process, so that each peak RSS is its own.

score: ``negrec score`` (``negrec.serving.batch.score``, one actor) on the training
split of generated logs of 10^3, 10^4 and 10^5 users (``score_throughput.py``'s
machinery: untrained reference model, top-10 of each user's whole sequence).

Writes the ``cost_curves`` section of docs/benchmarks.md and docs/cost_prepare.png,
docs/cost_train.png, docs/cost_score.png. Each curve's measurements are kept as JSON
under benchmarks/results/cost_curves/ (``--quick``: under the workdir), so that
``--only`` refreshes one curve and the section keeps the others.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generated import generated_log, prepared_log
from large_catalogue_step import BATCH, LENGTH, sampled_softmax, time_steps
from measured import run_measured
from product_runs import NEGREC
from report import docs_folder, machine, update_section
from score_throughput import K, measure, untrained_checkpoint

from negrec.config import ObjectiveConfig
from negrec.objectives.choice import resolve_objective
from negrec.runtime import ensure_ray, quiet_ray_logging
from negrec.serving.batch import DEFAULT_BATCH_SIZE, score

HERE = Path(__file__).resolve().parent
SECTION = "cost_curves"
PARTS = ("prepare", "train", "score")
PEAK_GROWTH = 2.0
"""The bound on prepare's memory: peak at the largest log <= this x peak at the smallest."""
EVENTS_PER_USER, EVENTS_PER_ITEM = 50, 100
NEGATIVES = 256
SCORE_EVENTS_PER_USER = 60
Series = dict[str, tuple[list[int], list[float]]]
"""A figure panel's lines: label -> (x values, y values)."""


@dataclass(frozen=True)
class Sizes:
    """The points of the three curves."""

    events: tuple[int, ...]
    items: tuple[int, ...]
    users: tuple[int, ...]
    score_items: int


FULL = Sizes((10**6, 10**7, 5 * 10**7), (10**3, 10**4, 10**5, 10**6), (10**3, 10**4, 10**5), 5_000)
QUICK = Sizes((10**4, 3 * 10**4), (10**3, 10**4), (500, 1_000), 1_000)


def prepare_curve(sizes: Sizes, workdir: Path) -> dict[str, Any]:
    """Each log generated (or reused), then prepared from scratch by ``negrec prepare``."""
    rows = []
    for events in sizes.events:
        users, items = events // EVENTS_PER_USER, max(events // EVENTS_PER_ITEM, 10)
        log = generated_log(workdir, users, items, events)
        out = workdir / f"prepared-e{events}"
        shutil.rmtree(out, ignore_errors=True)
        command = [NEGREC, "prepare", "--events", str(log.path), "--out", str(out), "--json"]
        done = run_measured(command, workdir / "prepare.log")
        shutil.rmtree(out, ignore_errors=True)  # the largest is gigabytes
        print(f"prepare {events:,} events: {done.summary['seconds']:.1f} s", flush=True)
        rows.append(
            {
                "events": events,
                "users": users,
                "items": items,
                "generate_s": log.seconds,
                "generate_events_per_s": log.events_per_s,
                "generate_peak_mib": log.peak_mib,
                "generate_mean_load": log.mean_load,
                "wall_s": round(done.seconds, 1),
                "prepare_s": round(done.summary["seconds"], 1),
                "events_per_s": done.summary["events_per_s"],
                "peak_mib": round(done.peak_mib),
                "mean_load": round(done.mean_load, 1),
            }
        )
    return {"rows": rows}


def _in_own_process(
    items: int, objective: ObjectiveConfig, steps: int, threads: int | None
) -> dict[str, Any]:
    """``time_steps`` in a fresh process: its peak RSS is then this measurement's alone."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        return pool.submit(time_steps, items, objective, steps, threads).result()


def train_curve(sizes: Sizes, steps: int, threads: int | None) -> dict[str, Any]:
    """Per catalogue size: the ``auto`` objective and the forced sampled softmax (one
    measurement where ``auto`` resolves to that same softmax)."""
    forced = sampled_softmax(NEGATIVES)
    auto = forced.model_copy(update={"loss": "auto"})
    rows = []
    for items in sizes.items:
        sampled = _in_own_process(items, forced, steps, threads)
        same = resolve_objective(auto, items, BATCH, LENGTH).objective == forced
        chosen = sampled if same else _in_own_process(items, auto, steps, threads)
        rows.append({"items": items, "auto": chosen, "sampled_softmax": sampled})
    return {"rows": rows, "steps": steps}


def score_curve(
    sizes: Sizes, workdir: Path, actors: int, repeats: int, batch_size: int
) -> dict[str, Any]:
    """Every size prepared first (each ``negrec prepare`` has its own Ray), then scored
    on this process's Ray after one warm-up run."""
    data = {
        users: str(prepared_log(workdir, users, sizes.score_items, SCORE_EVENTS_PER_USER * users))
        for users in sizes.users
    }
    quiet_ray_logging()
    ensure_ray()
    models = {u: untrained_checkpoint(d, workdir / f"model-u{u}") for u, d in data.items()}
    out = workdir / "scores"
    first = sizes.users[0]
    score(models[first], data[first], "train", str(out), k=K, actors=actors, batch_size=batch_size)
    rows = [
        {"requested_users": u, **measure(models[u], data[u], out, actors, repeats, batch_size)}
        for u in sizes.users
    ]
    return {"rows": rows, "items": sizes.score_items, "batch_size": batch_size}


def _column(rows: list[dict[str, Any]], key: str, within: str | None = None) -> list[Any]:
    """``key`` of every row (of its ``within`` part, where given)."""
    return [(row[within] if within else row)[key] for row in rows]


def _plot(path: Path, x_label: str, panels: list[tuple[str, Series]]) -> None:
    """One figure, a panel per (y label, {series: (xs, ys)}), log-scaled x."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.2 * len(panels), 3.6))
    for axes, (y_label, series) in zip(figure.subplots(1, len(panels)), panels, strict=True):
        for label, (xs, ys) in series.items():
            axes.plot(xs, ys, marker="o", linewidth=1, label=label)
        axes.set_xscale("log")
        axes.set_xlabel(x_label)
        axes.set_ylabel(y_label)
        axes.set_ylim(bottom=0)
        if len(series) > 1:
            axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def prepare_section(part: dict[str, Any], docs: Path) -> list[str]:
    rows = part["rows"]
    first, last = rows[0], rows[-1]
    met = last["peak_mib"] <= PEAK_GROWTH * first["peak_mib"]
    events = _column(rows, "events")
    _plot(
        docs / "cost_prepare.png",
        "events",
        [
            ("events/s", {"negrec prepare": (events, _column(rows, "events_per_s"))}),
            (
                "peak RSS MiB (process tree)",
                {"negrec prepare": (events, _column(rows, "peak_mib"))},
            ),
        ],
    )
    table = [
        f"| {r['events']:,} | {r['users']:,} | {r['items']:,} | {r['wall_s']:.1f} |"
        f" {r['prepare_s']:.1f} | {r['events_per_s']:,} | {r['peak_mib']:,} |"
        f" {r['mean_load']:.1f} | {r['generate_events_per_s']:,.0f}"
        f" ({r['generate_mean_load']:.1f}) |"
        f" {r['generate_peak_mib']:,.0f} |"
        for r in rows
    ]
    return [
        "### prepare against the number of events",
        "",
        f"Machine: {part['machine']}",
        "",
        "| events | users | items | wall s (process) | prepare s | events/s | peak RSS MiB"
        " (process tree) | mean load | generator events/s (mean load) | generator peak RSS"
        " MiB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *table,
        "",
        f"Bound: peak memory at {last['events']:,} events <= {PEAK_GROWTH:g} x the peak at"
        f" {first['events']:,} events ({PEAK_GROWTH * first['peak_mib']:,.0f} MiB):"
        f" **{'met' if met else 'missed'}** ({last['peak_mib']:,} MiB,"
        f" {last['peak_mib'] / first['peak_mib']:.2f}x for {last['events'] / first['events']:g}x"
        " the events). Peak RSS is summed over `negrec prepare`'s process tree, sampled"
        " every 0.5 s (shared pages, such as Ray's object store, count in every process"
        " that maps them); wall s includes starting Ray, prepare s is prepare's own. One"
        " run a size. The generator's columns were measured when the log was made"
        f" (`negrec generate`; its peak at {last['events']:,} events is"
        f" {last['generate_peak_mib'] / first['generate_peak_mib']:.2f}x that at"
        f" {first['events']:,}: it writes one Parquet part at a time).",
        "",
        "![prepare: events/s and peak memory against events](cost_prepare.png)",
    ]


def train_section(part: dict[str, Any], docs: Path) -> list[str]:
    rows = part["rows"]
    items = _column(rows, "items")
    lines = {"objective.loss: auto": "auto", "sampled softmax": "sampled_softmax"}
    _plot(
        docs / "cost_train.png",
        "catalogue items",
        [
            (label, {name: (items, _column(rows, key, within)) for name, within in lines.items()})
            for label, key in (("sequences/s", "sequences_per_s"), ("peak RSS MiB", "peak_rss_mib"))
        ],
    )
    table = []
    for r in rows:
        auto, sampled = r["auto"], r["sampled_softmax"]
        table.append(
            f"| {r['items']:,} | {auto['objective']} | {auto['median_s_per_step']:.2f} |"
            f" {auto['sequences_per_s']:,.1f} | {auto['peak_rss_mib']:,} |"
            f" {sampled['median_s_per_step']:.2f} | {sampled['sequences_per_s']:,.1f} |"
            f" {sampled['peak_rss_mib']:,} | {sampled['candidates_per_step']:,} |"
            f" {auto['full_logits_gib']:,} |"
        )
    threads = rows[0]["auto"]["threads"]
    return [
        "### training step against the catalogue",
        "",
        f"Machine: {part['machine']}",
        "",
        f"d=64, 2 blocks, 1 head, dropout 0.1, length {LENGTH}, batch {BATCH} random"
        " sequences (a fifth of the interactions negative), not-to-recommend w=0.5, Adam"
        f" with clipping, float32, {threads} torch thread(s); median of {part['steps']} timed"
        " step(s) after a warm-up one, each objective and size in a fresh process (peak RSS"
        f" is that process's). Sampled softmax: in-batch + {NEGATIVES} uniform draws, log-Q"
        " corrected; `auto` is the same measurement where it resolves to it.",
        "",
        "| items | `auto` resolves to | auto s/step | auto sequences/s | auto peak RSS MiB |"
        " softmax s/step | softmax sequences/s | softmax peak RSS MiB | softmax candidates"
        " a step | full-catalogue logits GiB a step |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *table,
        "",
        "![training step: sequences/s and peak memory against items](cost_train.png)",
    ]


def score_section(part: dict[str, Any], docs: Path) -> list[str]:
    rows = part["rows"]
    users = _column(rows, "users")
    _plot(
        docs / "cost_score.png",
        "users scored",
        [
            ("users/s", {"negrec score": (users, _column(rows, "users_per_s"))}),
            ("seconds per run", {"negrec score": (users, _column(rows, "seconds"))}),
        ],
    )
    table = [
        f"| {r['users']:,} | {r['actors']} | {r['seconds']:.1f} | {r['users_per_s']:,.0f} |"
        f" {r['runs']} |"
        for r in rows
    ]
    return [
        "### batch scoring against the number of users",
        "",
        f"Machine: {part['machine']}",
        "",
        f"`negrec score` of the training split ({part['items']:,} items,"
        f" {SCORE_EVENTS_PER_USER} events a user, prepared with the defaults), untrained"
        f" reference model (d=128, 2 blocks, length 200), top-{K}, batches of"
        f" {part['batch_size']} users; median of the runs after one warm-up; a run's time"
        " is end to end (actor start-up and the commit included), so users/s rises"
        " until the fixed costs stop mattering.",
        "",
        "| users | actors | seconds per run | users/s | runs |",
        "| --- | --- | --- | --- | --- |",
        *table,
        "",
        "![scoring: users/s against users](cost_score.png)",
    ]


SECTIONS = {"prepare": prepare_section, "train": train_section, "score": score_section}


def section(parts: dict[str, dict[str, Any]], docs: Path) -> str:
    lines = [
        "## How the work grows: prepare, a training step, scoring",
        "",
        "`python benchmarks/cost_curves.py` (one curve: `--only prepare|train|score`)."
        " Each curve below says the command and machine it was measured with.",
    ]
    for name in PARTS:
        lines.append("")
        if name not in parts:
            lines.append(f"Not measured yet: `python benchmarks/cost_curves.py --only {name}`.")
            continue
        lines += [f"`{parts[name]['command']}`", "", *SECTIONS[name](parts[name], docs)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="toy sizes, 1 step, 1 run; docs under the workdir"
    )
    parser.add_argument("--only", choices=PARTS, help="measure this curve only")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/negrec-bench/cost"))
    parser.add_argument("--docs", type=Path, help="folder of benchmarks.md and the figures")
    parser.add_argument("--steps", type=int, default=3, help="training steps timed a size")
    parser.add_argument(
        "--threads", type=int, help="torch threads of the training steps (default: torch's)"
    )
    parser.add_argument("--actors", type=int, default=1, help="scoring actors")
    parser.add_argument("--repeats", type=int, default=3, help="scoring runs a size")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.threads is not None:  # the machine line then names the threads measured with
        torch.set_num_threads(args.threads)
    if args.quick:
        args.steps, args.repeats = 1, 1
    docs = docs_folder(args.docs, args.quick, args.workdir)
    results = args.workdir / "results" if args.quick else HERE / "results" / SECTION
    results.mkdir(parents=True, exist_ok=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    command = " ".join(
        ["python benchmarks/cost_curves.py", *(sys.argv[1:] if argv is None else argv)]
    )

    for name in PARTS if args.only is None else (args.only,):
        if name == "prepare":
            part = prepare_curve(sizes, args.workdir / "prepare")
        elif name == "train":
            part = train_curve(sizes, args.steps, args.threads)
        else:
            part = score_curve(
                sizes, args.workdir / "score", args.actors, args.repeats, args.batch_size
            )
        part |= {"command": command, "machine": machine()}
        (results / f"{name}.json").write_text(json.dumps(part, indent=1) + "\n")
    parts = {
        name: json.loads(path.read_text())
        for name in PARTS
        if (path := results / f"{name}.json").exists()
    }
    markdown = section(parts, docs)
    update_section(docs / "benchmarks.md", SECTION, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
