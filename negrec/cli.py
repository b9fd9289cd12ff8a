"""The ``negrec`` command: one subcommand per pipeline stage.

Each stage is a module ``negrec.stages.<stage>`` exposing ``add_arguments(parser)`` and
``main(args) -> int``; the CLI only dispatches, so ``jobs/*.py`` run exactly the same
code. Stage modules are imported lazily to keep ``--help``
fast (torch and Ray take seconds to import).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import traceback
from types import ModuleType

from negrec.errors import NegrecError
from negrec.runtime import quiet_ray_logging

STAGES: dict[str, str] = {
    "generate": "write a synthetic event log with negative feedback and item clusters",
    "prepare": "event log -> validated per-user sequence shards (Ray Data)",
    "train": "train action-aware gSASRec (Ray Train, DDP)",
    "evaluate": "ranking and negative-feedback metrics of a checkpoint",
    "tune": "coarse-then-fine hyperparameter search with ASHA (Ray Tune)",
    "promote": "register a checkpoint in MLflow; move alias 'champion' if it is better",
    "recommend": "top-k items for a history of (item, action)",
    "score": "top-k for every user of a prepared split, as Parquet (Ray Data)",
    "demo": "the whole pipeline on generated data, locally",
    "pipeline": "events -> prepare -> train -> evaluate on any storage (for ray job submit)",
}

NOT_BUILT_EXIT = 2


def _stage_module(stage: str) -> ModuleType | None:
    name = f"negrec.stages.{stage}"
    if importlib.util.find_spec(name) is None:
        return None
    return importlib.import_module(name)


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="negrec",
        description="Train and serve next-item recommenders that learn from negative feedback.",
    )
    sub = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    requested = next((a for a in argv if not a.startswith("-")), None)
    for stage, help_text in STAGES.items():
        stage_parser = sub.add_parser(stage, help=help_text, description=help_text)
        # Only the requested stage's module is imported (and so its heavy dependencies).
        module = _stage_module(stage) if stage == requested else None
        if module is not None:
            module.add_arguments(stage_parser)
        stage_parser.add_argument(
            "--verbose",
            action="store_true",
            help="also show Ray's own INFO logs, and tracebacks of errors",
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    module = _stage_module(args.stage)
    if module is None:
        print(f"negrec {args.stage}: not built yet", file=sys.stderr)
        return NOT_BUILT_EXIT
    if not args.verbose:
        quiet_ray_logging()
    try:
        return int(module.main(args) or 0)
    except NegrecError as error:
        if args.verbose:
            traceback.print_exc()
        print(f"negrec {args.stage}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"negrec {args.stage}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())


def run_stage(stage: str) -> None:
    """Entry point of ``jobs/<stage>.py``: the stage with this process's arguments."""
    sys.exit(main([stage, *sys.argv[1:]]))
