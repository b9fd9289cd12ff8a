"""How the bytes of one kind of event file are laid out, as the readers need it.

A :class:`Layout` says which reader decodes a file (CSV, JSON lines or Parquet) and,
for text, its delimiter, quoting and the column names of a headerless file. The
layouts of the public formats are fixed and live in their entries of
``negrec.data.formats``; the generic ones here (:data:`TABLE_LAYOUTS`) are the
``table`` format's, told apart by the file name, and a ``table`` text file takes its
header and delimiter from the action mapping (:meth:`Layout.with_mapping`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from negrec.data.actions import ActionMapping

COMPRESSED = (".gz", ".bz2", ".zst")
"""Compression suffixes a text file may carry after its own (decompressed on the fly)."""
MAPPING_KEYS = ("header", "column_order", "delimiter")
"""The action-mapping keys that describe a text file's layout (:meth:`Layout.with_mapping`);
only a format that lists them in ``Format.layout_keys`` accepts them."""


@dataclass(frozen=True)
class Layout:
    """How the bytes of one kind of file are laid out."""

    kind: str  # "csv", "json" or "parquet"
    describe: str  # for messages: the public layout
    names: tuple[str, ...] | None = None  # column names of a headerless file
    delimiter: str = ","
    quoted: bool = True
    event: str | None = None  # constant event value of every row (YOOCHOOSE files)
    mapped: bool = False  # a table text file: the mapping's header and delimiter apply
    separators: tuple[str, ...] = ()  # columns between fields that must stay empty

    def with_mapping(self, mapping: ActionMapping | None) -> Layout:
        """This layout with the mapping's ``header``, ``column_order`` and ``delimiter``
        (only a ``table`` text file has a layout the user describes)."""
        if not self.mapped or mapping is None:
            return self
        delimiter = mapping.delimiter or self.delimiter
        names = None if mapping.header else tuple(mapping.column_order or ())
        return replace(
            self, names=names, delimiter=delimiter, describe=text_layout(names, delimiter)
        )


def text_layout(names: tuple[str, ...] | None, delimiter: str) -> str:
    """How a table text file is expected to look, in the words of docs/prepare.md."""
    kind = {",": "CSV", "\t": "TSV (tab-separated)"}.get(delimiter, f"{delimiter!r}-separated text")
    if names is None:
        return f"{kind} with a header row"
    return f"{kind} without a header, columns {','.join(names)} (column_order)"


def with_compression(*suffixes: str) -> tuple[str, ...]:
    """Each suffix as it is and followed by every compression suffix."""
    return tuple(s + c for s in suffixes for c in ("", *COMPRESSED))


def without_compression(name: str) -> str:
    for suffix in COMPRESSED:
        name = name.removesuffix(suffix)
    return name


PARQUET = Layout("parquet", "Parquet")
TABLE_LAYOUTS: dict[str, Layout] = {
    "csv": Layout("csv", text_layout(None, ","), mapped=True),
    "tsv": Layout("csv", text_layout(None, "\t"), delimiter="\t", mapped=True),
    "jsonl": Layout("json", "JSON lines (one JSON object per line)"),
    "parquet": PARQUET,
}
"""Layouts of the files of a table of your own, by key (``SourceSpec.layouts``)."""
