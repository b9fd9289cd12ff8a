"""Check what ``make demo`` printed against the console target: at most 60 lines after
installation, none wider than 120 characters.

Usage (from a fresh clone)::

    make demo 2>&1 | tee demo.log
    python3 scripts/check_console.py demo.log

Lines count from the one where make starts the demo (``.venv/bin/negrec demo``), so
the virtual environment's installation, which happens once, is not counted. Exit status
0 when the target holds, 1 otherwise; the counts are printed either way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

MAX_LINES = 60
MAX_WIDTH = 120
START = "negrec demo"


def demo_lines(log: str) -> list[str]:
    """The lines after make's echo of the demo command (all lines when there is none)."""
    lines = log.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip().endswith(START)]
    return lines[starts[-1] + 1 :] if starts else lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path, help="the output of `make demo`")
    args = parser.parse_args(argv)
    lines = demo_lines(args.log.read_text(errors="replace"))
    widest = max((len(line) for line in lines), default=0)
    ok = len(lines) <= MAX_LINES and widest <= MAX_WIDTH
    print(
        f"{len(lines)} lines (at most {MAX_LINES}), widest {widest} characters "
        f"(at most {MAX_WIDTH}): {'met' if ok else 'MISSED'}"
    )
    for line in lines:
        if len(line) > MAX_WIDTH:
            print(f"  too wide ({len(line)}): {line[:100]}...")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
