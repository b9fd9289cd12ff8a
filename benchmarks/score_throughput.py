"""Batch scoring throughput (``negrec score``, Ray Data): users/s with 1 and 2 actors.

Runs :func:`negrec.serving.batch.score` (the ``negrec score`` path: the split's files read
by Ray Data tasks, ``map_batches`` on a pool of actors with one model each, Parquet
written under a staging prefix and committed with its manifest) on the training split
of a generated, prepared log: every user's whole training sequence in, top-10 out.
The model has the reference shape (d=128, 2 blocks, length 200) with untrained
weights (the speed does not depend on them). One warm-up run first, so that the first
configuration does not pay alone for Ray's cold worker start; then each actor count
``--repeats`` times, the median reported. A run's time is end to end, actor start-up
and the commit's listing included.

    python benchmarks/score_throughput.py --json
    python benchmarks/score_throughput.py --quick   # the smallest settings, ~1 minute
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generated import prepared_log
from report import BENCHMARKS_MD, machine, median, update_section

from negrec import checkpoint
from negrec.config import build_config
from negrec.data.loaders import load_prepared
from negrec.model import ActionAwareGSASRec
from negrec.runtime import ensure_ray, quiet_ray_logging
from negrec.serving.batch import DEFAULT_BATCH_SIZE, score

K = 10


def untrained_checkpoint(data: str, workdir: Path) -> str:
    """A checkpoint of the reference architecture with random weights."""
    prepared = load_prepared(data)
    config = build_config({})
    torch.manual_seed(0)
    model = ActionAwareGSASRec(prepared.num_items, config.model)
    state = checkpoint.TrainState(best_model_state=model.state_dict())
    saved = checkpoint.Checkpoint(config, prepared.num_items, data, state, model.state_dict())
    return str(checkpoint.save(saved, workdir / "checkpoint"))


def measure(
    model: str, data: str, out: Path, actors: int, repeats: int, batch_size: int
) -> dict[str, Any]:
    runs = [
        score(model, data, "train", str(out), k=K, actors=actors, batch_size=batch_size)
        for _ in range(repeats)
    ]
    return {
        "actors": actors,
        "users": runs[0].users_out,
        "seconds": median([r.seconds for r in runs]),
        "users_per_s": median([r.users_per_s for r in runs]),
        "runs": len(runs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/negrec-bench/score")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--events", type=int, default=None, help="default: 60 per user")
    parser.add_argument("--repeats", type=int, default=3, help="runs per actor count")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--quick", action="store_true", help="2,000 users, 1,000 items, 1 run each")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")
    args = parser.parse_args(argv)
    if args.quick:
        args.users, args.items, args.repeats = 2_000, 1_000, 1
    events = args.events or 60 * args.users
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    data = str(prepared_log(workdir, args.users, args.items, events))
    quiet_ray_logging()  # Ray's INFO lines and progress bars off, as in `negrec score`
    ensure_ray()
    model = untrained_checkpoint(data, workdir)
    out = workdir / "scores"
    score(model, data, "train", str(out), k=K, actors=1, batch_size=args.batch_size)  # warm-up
    rows = [measure(model, data, out, n, args.repeats, args.batch_size) for n in (1, 2)]
    ratio = rows[1]["users_per_s"] / rows[0]["users_per_s"]

    command = "python benchmarks/score_throughput.py" + (" --quick" if args.quick else "")
    lines = [
        "## Batch scoring throughput (`negrec score`, Ray Data)",
        "",
        f"`{command}` - `negrec.serving.batch.score` on the training split of a generated",
        f"log ({args.users:,} users, {args.items:,} items, {events:,} events, prepared",
        f"with the defaults): each user's whole training sequence in, top-{K} out, seen",
        "and rejected items excluded, Parquet committed with its manifest. Reference",
        "model shape (d=128, 2 blocks, length 200; untrained weights), batches of",
        f"{args.batch_size} users. Median of {args.repeats} run(s) per actor count after",
        "one warm-up run; a run's time is end to end (actor start-up included).",
        "",
        f"Machine: {machine()}",
        "",
        "| actors | users | seconds per run | users/s |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['actors']} | {r['users']:,} | {r['seconds']:.1f} | {r['users_per_s']:,.0f} |"
        for r in rows
    ]
    lines += [
        "",
        f"2 actors / 1 actor: {ratio:.2f}x. Each actor holds one Ray CPU and one copy of",
        "the model, and Ray limits an actor's torch threads to its CPU count, so 1 actor",
        "scores on one core and 2 actors on two; the ratio is core scaling on one",
        "machine (fixed costs - actor start-up, the commit - do not shrink with actors).",
    ]
    if args.quick:
        lines += [
            "`--quick` shows that the path works, not how it scales: at this size the fixed",
            "costs outweigh the scoring. Run without `--quick` for the throughput.",
        ]
    if not args.no_docs:
        update_section(BENCHMARKS_MD, "score_throughput", "\n".join(lines))
    print("\n".join(lines))
    if args.json:
        result: dict[str, Any] = {
            f"actors_{r['actors']}_users_per_s": round(r["users_per_s"], 1) for r in rows
        }
        result["two_over_one"] = round(ratio, 3)
        result["users"] = rows[0]["users"]
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
