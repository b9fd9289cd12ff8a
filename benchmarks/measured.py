"""Resident memory of a process tree, sampled while a product command runs.

Why a sampler of the whole tree: a stage on Ray does its work in other processes (the
raylet's workers, Ray Train's worker), so the driver's own peak says little. Two
readings serve the benchmarks: the *summed* RSS of every process under a root (what the
machine must hold: driver, Ray's daemons and workers; shared pages such as the object
store are counted in every process that maps them, so the sum is an upper bound), and
the *largest single* process whose command line names a role (a Ray Train worker: the
process that would be OOM-killed first).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

MIB = 2**20


class TreeMemory:
    """Peak RSS (MiB) under process ``root``, sampled every ``every_s`` seconds in a
    thread, and the machine's mean load average meanwhile (wall times on a shared
    machine mean little without it). ``match=None``: the sum over ``root`` and all its
    descendants; else the largest descendant whose command line contains ``match``."""

    def __init__(self, root: int, every_s: float = 0.5, match: str | None = None) -> None:
        self.root, self.every_s, self.match = root, every_s, match
        self.peak_mib = 0.0
        self.loads: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> float:
        """One reading now (MiB); 0 once the root has exited."""
        try:
            root = psutil.Process(self.root)
            tree = root.children(recursive=True)
        except psutil.NoSuchProcess:
            return 0.0
        readings = []
        for process in tree if self.match else [root, *tree]:
            with contextlib.suppress(psutil.Error):  # exited between listing and reading
                if self.match is None or self.match in " ".join(process.cmdline()):
                    readings.append(process.memory_info().rss / MIB)
        if not readings:
            return 0.0
        return max(readings) if self.match else sum(readings)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.loads.append(os.getloadavg()[0])
            self.peak_mib = max(self.peak_mib, self.sample())

    def reset(self) -> float:
        """The peak since the last reset, one fresh reading included; starts a new one."""
        peak, self.peak_mib = max(self.peak_mib, self.sample()), 0.0
        return peak

    def stop(self) -> tuple[float, float]:
        """(peak MiB, mean load average) over the whole sampling."""
        self._stop.set()
        self._thread.join()
        return self.peak_mib, sum(self.loads) / max(len(self.loads), 1)


@dataclass(frozen=True)
class Measured:
    """A finished command: its last stdout line (the ``--json`` summary), wall seconds,
    peak memory as :class:`TreeMemory` read it, and the mean load average meanwhile."""

    summary: dict[str, Any]
    seconds: float
    peak_mib: float
    mean_load: float


def json_line(output: str) -> dict[str, Any]:
    """The JSON summary a product command prints last (``--json``): the last line that is
    a JSON object, since Ray's raylet may still print a warning after it (seen: "10
    PYTHON worker processes have been started ..." as a 10^6-item run ended)."""
    for line in reversed(output.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(f"no JSON summary line in the command's output: {output[-500:]!r}")


def shown(command: list[str]) -> str:
    """The command as a reader would type it: the program by name, spaced values quoted."""
    quoted = [a if " " not in a else f"'{a}'" for a in command]
    return " ".join([Path(quoted[0]).name, *quoted[1:]])


def run_measured(
    command: list[str], log: Path, match: str | None = None, every_s: float = 0.5
) -> Measured:
    """Run ``command`` (which prints a JSON line last), its stderr and stdout appended to
    ``log``, sampling its process tree's memory; raises if it fails."""
    started = time.perf_counter()
    with log.open("a") as sink:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=sink, text=True)
        memory = TreeMemory(process.pid, every_s, match)
        output, _ = process.communicate()
        peak, load = memory.stop()
        sink.write(output)
    if process.returncode != 0:
        raise RuntimeError(f"{shown(command)} failed ({process.returncode}); see {log}")
    return Measured(
        summary=json_line(output),
        seconds=time.perf_counter() - started,
        peak_mib=peak,
        mean_load=load,
    )
