"""Shared helpers for benchmarks: machine description and a section-wise docs writer.

Several benchmarks write to one ``docs/benchmarks.md``; each owns the text between
``<!-- section:NAME -->`` and ``<!-- /section:NAME -->`` and replaces only that, so
re-running one benchmark never erases another's table.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
from pathlib import Path

import torch

DOCS = Path(__file__).resolve().parent.parent / "docs"
BENCHMARKS_MD = DOCS / "benchmarks.md"
HEADER = (
    "# Measurements\n\nEvery table below is written by the script named in it; "
    "rerun it to refresh.\n"
)


def machine() -> str:
    """One line naming the CPU, cores, memory and library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f"{pages / 2**30:.0f} GiB RAM"
    except (ValueError, OSError):
        memory = "unknown RAM"
    load = os.getloadavg()[0]
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory}, load average {load:.1f} when the table "
        f"was written, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}), Python {platform.python_version()}"
    )


def median(values: list[float]) -> float:
    return statistics.median(values)


def update_section(path: Path, name: str, markdown: str) -> None:
    """Replace (or append) the named section of a markdown file."""
    start, end = f"<!-- section:{name} -->", f"<!-- /section:{name} -->"
    block = f"{start}\n{markdown.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else HEADER
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def docs_folder(requested: Path | None, quick: bool, workdir: Path) -> Path:
    """Where a run writes its section and figures: ``requested`` (``--docs``) if given;
    else, for a ``--quick`` run, a copy of docs/benchmarks.md under ``workdir`` (a trial
    at toy sizes must not overwrite the committed measurements); else docs/."""
    if requested is None and not quick:
        return DOCS
    folder = requested or workdir / "docs"
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / BENCHMARKS_MD.name
    if not copy.exists():
        shutil.copyfile(BENCHMARKS_MD, copy)
    return folder
