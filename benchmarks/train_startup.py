"""Where the fixed start-up of ``negrec train`` goes, with the training rows held in
memory (the default for data that fits) against streamed from storage every epoch.

    python benchmarks/train_startup.py

A 1,500-user generated log is prepared once; each variant then runs ``negrec train``
(1 worker, 3 epochs of a small model, so the epochs themselves take seconds) ``--repeats``
times, alternating. Each output line is time-stamped as it arrives: the milestones are
the driver's plan line (imports, local Ray start), the Train controller asking for
resources (MLflow set-up and the training dataset), the worker group started, epoch 1
printed, and the process exit. Medians go to docs/benchmarks.md, section train_startup.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from product_runs import NEGREC
from report import BENCHMARKS_MD, machine, median, update_section

MILESTONES = {
    "plan printed": "negrec train: s:",
    "resources requested": "Requesting resources",
    "worker group started": "Started training worker group",
    "epoch 1 printed": "epoch 1/",
}
VARIANTS = {"rows in memory (default)": [], "rows streamed from storage": ["--cache-limit-mib=0"]}
TRAIN = [
    "--set=train.max_epochs=3",
    "--set=train.patience=3",
    "--set=model.dim=32",
    "--set=model.max_len=50",
    "--workers=1",
]


def prepared(workdir: Path) -> Path:
    out = workdir / "prepared"
    if not (out / "manifest.json").exists():
        log = workdir / "log"
        subprocess.run(
            [
                NEGREC,
                "generate",
                "--out",
                str(log),
                "--users=1500",
                "--items=600",
                "--events=60000",
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [NEGREC, "prepare", "--events", str(log), "--out", str(out)],
            check=True,
            capture_output=True,
        )
    return out


def timed_run(data: Path, workdir: Path, extra: list[str]) -> dict[str, float]:
    """Seconds from launch to each milestone and to the exit of one ``negrec train``."""
    runs = workdir / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    command = [NEGREC, "train", "--data", str(data), "--storage", str(runs), "--name", "s"]
    command += ["--tracking-uri", f"sqlite:///{workdir}/mlflow.db", *TRAIN, *extra]
    started = time.perf_counter()
    seen: dict[str, float] = {}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            for name, marker in MILESTONES.items():
                if name not in seen and marker in line:
                    seen[name] = time.perf_counter() - started
        if process.wait() != 0:
            raise SystemExit(f"negrec train failed: {' '.join(command)}")
    missing = set(MILESTONES) - set(seen)
    if missing:
        raise SystemExit(f"milestones not seen in the output: {', '.join(sorted(missing))}")
    return {**seen, "exit": time.perf_counter() - started}


def table(results: dict[str, list[dict[str, float]]], repeats: int) -> str:
    names = [*MILESTONES, "exit"]
    lines = [
        "## `negrec train` start-up: where the fixed minute goes",
        "",
        f"`python benchmarks/train_startup.py` - {machine()}. Median seconds from launch to"
        f" each milestone of a 3-epoch run on a 1,500-user generated log ({repeats} runs"
        " per variant, alternating; another job may share the machine, see the load).",
        "",
        "| training rows | " + " | ".join(names) + " |",
        "| --- |" + " --- |" * len(names),
    ]
    for variant, runs in results.items():
        cells = [f"{median([r[n] for r in runs]):.1f}" for n in names]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    memory, streamed = results.values()
    for name in ("resources requested", "epoch 1 printed", "exit"):
        saved = median([r[name] for r in streamed]) - median([r[name] for r in memory])
        lines.append("")
        lines.append(f"Rows in memory reach '{name}' {saved:.1f} s sooner than streamed (medians).")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/negrec-bench/startup"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    data = prepared(args.workdir)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    for repeat in range(args.repeats):
        for name, extra in VARIANTS.items():
            results[name].append(timed_run(data, args.workdir, extra))
            print(f"run {repeat + 1}/{args.repeats} {name}: {results[name][-1]}", flush=True)
    markdown = table(results, args.repeats)
    update_section(BENCHMARKS_MD, "train_startup", markdown)
    print(markdown)


if __name__ == "__main__":
    main()
