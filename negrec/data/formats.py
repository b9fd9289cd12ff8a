"""The input formats of ``negrec prepare``: one :class:`Format` entry per format.

An entry is everything a format is: how its files are found under ``--events``
(``discovery``, a rule of ``negrec.data.discovery``), how each kind of its files is
laid out (``layouts``, read by ``negrec.data.readers``), its default action mapping
(a YAML file under ``negrec/data/mappings/``, or none for a format without actions),
whether it carries its own split (``presplit``: read by ``negrec.data.presplit``
instead of the event pipeline), which layout keys of an ``--actions`` file it
accepts, and the line that describes it (the heading of its section in
docs/prepare.md).

Everything else reads this registry: the validation of ``format`` values
(``negrec.data.actions``), discovery and reading (``negrec.data.readers``), the
``--format`` and ``--print-mapping`` choices of ``negrec prepare``. Adding a format
is adding an entry here (with its mapping file and its section in docs/prepare.md);
a format whose files need a new kind of discovery or layout adds that rule or layout
next to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from negrec.config import ConfigError
from negrec.data.discovery import BySuffix, Discovery, GeneratedLog, GivenFiles, Named, Part, Parts
from negrec.data.layouts import MAPPING_KEYS, PARQUET, TABLE_LAYOUTS, Layout

MAPPINGS = Path(str(resources.files("negrec.data") / "mappings"))
"""Where the packaged default mappings live (package data)."""


@dataclass(frozen=True)
class Format:
    """One input format (see the module docstring)."""

    name: str  # the --format value
    description: str  # one line: the heading of its section in docs/prepare.md
    discovery: Discovery
    layouts: Mapping[str, Layout]  # layout key (what discovery answers) -> layout
    mapping: Path | None  # the default action mapping; None: the format has no actions
    presplit: bool = False  # carries its own split and no actions (negrec.data.presplit)
    layout_keys: tuple[str, ...] = ()  # mapping keys describing its layout it accepts

    def __post_init__(self) -> None:
        if self.mapping is None and not self.presplit:
            raise ValueError(f"format {self.name}: only a presplit format has no mapping")
        unknown = set(self.layout_keys) - set(MAPPING_KEYS)
        if unknown:
            raise ValueError(f"format {self.name}: {sorted(unknown)} are no layout keys")


def _packaged(name: str) -> Path:
    return MAPPINGS / name


_ML_DAT = Layout(
    "csv",
    "UserID::MovieID::Rating::Timestamp, no header",
    # Read with ':' as delimiter, so that each '::' leaves an empty field between two
    # values: a value in one of those columns means the row is malformed.
    names=("UserID", "::1", "MovieID", "::2", "Rating", "::3", "Timestamp"),
    delimiter=":",
    quoted=False,
    separators=("::1", "::2", "::3"),
)

BUILT_IN = (
    Format(
        "movielens",
        "MovieLens 1M / 10M `ratings.dat`",
        Named("ratings", ".dat", "movielens", "MovieLens ratings.dat"),
        {"movielens": _ML_DAT},
        _packaged("movielens.yaml"),
    ),
    Format(
        "movielens-csv",
        "MovieLens `ratings.csv` (ml-latest, ml-25m, ...)",
        Named("ratings", ".csv", "movielens-csv", "MovieLens ratings.csv"),
        {"movielens-csv": Layout("csv", "header userId,movieId,rating,timestamp")},
        _packaged("movielens-csv.yaml"),
    ),
    Format(
        "retailrocket",
        "RetailRocket `events.csv`",
        Named("events", ".csv", "retailrocket", "RetailRocket events.csv"),
        {"retailrocket": Layout("csv", "header timestamp,visitorid,event,itemid,transactionid")},
        _packaged("retailrocket.yaml"),
    ),
    Format(
        "yoochoose",
        "YOOCHOOSE / RecSys Challenge 2015",
        Parts(
            (
                Part("clicks.dat", "yoochoose-clicks", "YOOCHOOSE clicks.dat"),
                Part("buys.dat", "yoochoose-buys", "YOOCHOOSE buys.dat"),
            )
        ),
        {
            "yoochoose-clicks": Layout(
                "csv",
                "session_id,timestamp,item_id,category, no header",
                names=("session_id", "timestamp", "item_id", "category"),
                quoted=False,
                event="click",
            ),
            "yoochoose-buys": Layout(
                "csv",
                "session_id,timestamp,item_id,price,quantity, no header",
                names=("session_id", "timestamp", "item_id", "price", "quantity"),
                quoted=False,
                event="buy",
            ),
        },
        _packaged("yoochoose.yaml"),
    ),
    Format(
        "table",
        "a table of your own",
        BySuffix(
            text={".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"},
            binary={".parquet": "parquet"},
            fallback="csv",
            what="CSV, TSV, JSON lines or Parquet files",
        ),
        TABLE_LAYOUTS,
        _packaged("table.yaml"),
        layout_keys=MAPPING_KEYS,
    ),
    Format(
        "synthetic",
        "`negrec generate` output",
        GeneratedLog("generator.json", "events", ".parquet", "parquet", "events/part-*.parquet"),
        {"parquet": PARQUET},
        _packaged("synthetic.yaml"),
    ),
    Format(
        "sasrec",
        "a split made elsewhere",
        GivenFiles(("train.txt", "val.txt", "test.txt"), "sasrec"),
        {
            "sasrec": Layout(
                "csv",
                "'user item' lines (two integers separated by one space)",
                names=("user", "item"),
                delimiter=" ",
            )
        },
        None,
        presplit=True,
    ),
)
"""The built-in formats, in the order ``negrec prepare --help`` lists them."""

REGISTRY: dict[str, Format] = {entry.name: entry for entry in BUILT_IN}


def register(entry: Format) -> Format:
    """Add a format (a plugin's, or a test's); its name must be new."""
    if entry.name in REGISTRY:
        raise ValueError(f"format {entry.name} is already registered")
    REGISTRY[entry.name] = entry
    return entry


def format_names(*, mapped: bool = False) -> tuple[str, ...]:
    """The registered formats' names; ``mapped``: only those with a default mapping."""
    return tuple(
        name for name, entry in REGISTRY.items() if entry.mapping is not None or not mapped
    )


def get_format(name: str) -> Format:
    """The entry of ``--format name``; an unknown name is said with the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown --format '{name}'; choose one of {', '.join(format_names())}"
        ) from None
