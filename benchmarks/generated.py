"""Generated logs and their prepared datasets, made once per size under a workdir.

Why through the command line (``negrec generate``, ``negrec prepare``): the data a
benchmark measures on is then made exactly as a user makes it, each in a process (and
Ray instance) of its own that ends before the measurement starts, and the generator's
own cost - its rate and the memory of its process - is measured on the way and kept
beside the log, so that a benchmark can quote it when it reuses the log.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measured import run_measured
from product_runs import NEGREC

from negrec.data.generated_log import MARKER
from negrec.data.manifest import MANIFEST


@dataclass(frozen=True)
class GeneratedLog:
    """A committed generated log and what generating it cost (measured when it was made)."""

    path: Path
    events: int
    seconds: float
    events_per_s: float
    peak_mib: float
    mean_load: float


def generated_log(
    workdir: Path, users: int, items: int, events: int, seed: int = 0
) -> GeneratedLog:
    """``negrec generate`` of this size, or the one a previous call made."""
    out = workdir / f"log-u{users}-i{items}-e{events}-s{seed}"
    cost = out.with_name(f"{out.name}.cost.json")
    if not ((out / MARKER).exists() and cost.exists()):
        shutil.rmtree(out, ignore_errors=True)
        workdir.mkdir(parents=True, exist_ok=True)
        command = [NEGREC, "generate", "--out", str(out), "--users", str(users)]
        command += ["--items", str(items), "--events", str(events), "--seed", str(seed), "--json"]
        made = run_measured(command, workdir / "generate.log")
        measured = GeneratedLog(
            out,
            events,
            round(made.seconds, 1),
            made.summary["events_per_s"],
            round(made.peak_mib, 1),
            round(made.mean_load, 1),
        )
        cost.write_text(json.dumps({**asdict(measured), "path": str(out)}) + "\n")
    kept = json.loads(cost.read_text())
    return GeneratedLog(**{**kept, "path": Path(kept["path"])})


def prepared_log(workdir: Path, users: int, items: int, events: int, seed: int = 0) -> Path:
    """The generated log of this size laid out by ``negrec prepare`` (defaults), once."""
    out = workdir / f"prepared-u{users}-i{items}-e{events}-s{seed}"
    if not (out / MANIFEST).exists():
        log = generated_log(workdir, users, items, events, seed).path
        command = [NEGREC, "prepare", "--events", str(log), "--out", str(out), "--json"]
        run_measured(command, workdir / "prepare.log")
    return out
