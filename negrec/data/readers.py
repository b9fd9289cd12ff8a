"""Find the files of an event log and decode their physical layout into record batches.

The first two of the adapters' three steps (``negrec.data.adapters`` re-exports them):

* :func:`discover` finds the files of a format under a URI, in read order, and the
  layout of each, by the rule and layouts of the format's entry in
  ``negrec.data.formats``: fixed for the public formats, from the file name for
  ``table`` (``.csv``, ``.tsv``, ``.jsonl``/``.ndjson``, each optionally ``.gz``/
  ``.bz2``/``.zst``, and ``.parquet``);
* :func:`read_file` streams one file as record batches in bounded memory: delimiters,
  header, compression, JSON or Parquet are decoded, values stay raw strings (CSV) or
  the reader's native types (JSON, Parquet) under the source's column names.

A file that cannot be decoded at all (binary, truncated, the wrong format) stops the
run with one :class:`~negrec.errors.NegrecError` that names the file and the layout
that was expected: inside a Ray task only a ``NegrecError`` travels back as a message
(``negrec.data.ray_tasks``), anything else ends in a Ray traceback.
"""

from __future__ import annotations

import codecs
import functools
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from negrec import storage as store
from negrec.data.actions import ActionMapping
from negrec.data.discovery import Events
from negrec.data.formats import get_format
from negrec.data.layouts import Layout
from negrec.errors import NegrecError
from negrec.storage import StorageOptions

CSV_BLOCK_BYTES = 16 << 20
JSON_BLOCK_BYTES = 16 << 20
PARQUET_BATCH_ROWS = 1 << 18
MAX_TEXT = 200  # characters of a malformed row quoted in a message
MAX_DETAIL = 160  # characters of a reader's own error quoted in a message
TEXT_CHECK_BYTES = 1 << 16  # bytes at the start of a text file checked to be UTF-8

META_FILE_INDEX = b"negrec.file_index"
META_SKIPPED = b"negrec.skipped"
META_LAYOUT = b"negrec.layout"
MALFORMED_COLUMN = "_malformed"  # optional bool column: the reader found the row broken


@dataclass(frozen=True)
class SourceSpec:
    """What ``read_file`` needs to read one format: its files (sorted, in read order),
    the layout key of each and the format's layouts by key (from its registry entry,
    carried along so that a Ray task needs no registry)."""

    format: str
    files: list[str]
    layouts: list[str]
    layout_by_key: dict[str, Layout]

    def layout_of(self, file_uri: str) -> tuple[int, Layout]:
        try:
            index = self.files.index(file_uri)
        except ValueError:
            raise NegrecError(f"{file_uri} is not one of the discovered files") from None
        return index, self.layout_by_key[self.layouts[index]]


# --- discover -----------------------------------------------------------------------


def discover(events_uri: str, format: str, storage: StorageOptions | None = None) -> SourceSpec:
    """The files of ``format`` under ``events_uri`` (a file or a directory/prefix), found
    by the discovery rule of its registry entry (``negrec.data.formats``)."""
    entry = get_format(format)
    rule = entry.discovery
    events = (
        Events.listed(events_uri, format, storage)
        if rule.lists
        else Events(events_uri, format, storage)
    )
    found = rule.find(events)
    return SourceSpec(
        format, [f.uri for f in found], [f.layout for f in found], dict(entry.layouts)
    )


# --- read_file ----------------------------------------------------------------------


def _detail(error: BaseException) -> str:
    """A reader's error on one short line: its first line, control characters and the
    bytes of a binary file left out."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    text = re.sub(r"[^\x20-\x7e]+", "?", text)
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."


_CHECK_FILE = (
    "check --format (for table: the file name's suffix) and that the file is complete "
    "(docs/prepare.md, Formats)"
)


def _unreadable(
    file_uri: str, layout: Layout, problem: str, row: int | None = None, fix: str = _CHECK_FILE
) -> NegrecError:
    """The one message for a file that is not in the layout it should be in."""
    where = f"{file_uri}, row {row}" if row is not None else file_uri
    return NegrecError(
        f"{where}: cannot read as {layout.describe}: {problem.rstrip('. ')}. Fix: {fix}"
    )


def _check_text(file_uri: str, layout: Layout, head: bytes) -> None:
    """A start that is not UTF-8 text means a binary file (or a wrong compression
    suffix): said before a parser turns its bytes into a puzzling message."""
    try:
        binary = "\0" in codecs.getincrementaldecoder("utf-8")().decode(head[:TEXT_CHECK_BYTES])
    except UnicodeDecodeError:
        binary = True
    if binary:
        raise _unreadable(file_uri, layout, "its start is not UTF-8 text (a binary file?)")


def _first_line(file_uri: str, layout: Layout, options: StorageOptions | None) -> bytes:
    """The first line (without a byte-order mark), checked to be text."""
    with (
        store.open_input_stream(file_uri, options) as stream,
        store.translate_errors(file_uri, "read", options),
    ):
        head = b""
        while b"\n" not in head and len(head) < CSV_BLOCK_BYTES:
            chunk = stream.read(TEXT_CHECK_BYTES)
            if not chunk:
                break
            head += chunk
    _check_text(file_uri, layout, head)
    return head.split(b"\n", 1)[0].removeprefix(b"\xef\xbb\xbf").rstrip(b"\r")


def _column_names(
    file_uri: str, layout: Layout, options: StorageOptions | None
) -> list[str] | None:
    """The layout's names, or the header row's (None for an empty file). The first line
    is read either way: pyarrow prints a traceback for a binary row it rejects."""
    line = _first_line(file_uri, layout, options)
    if layout.names:
        return list(layout.names)
    if not line.strip():
        return None
    names = pacsv.read_csv(
        io.BytesIO(line + b"\n"),
        parse_options=pacsv.ParseOptions(delimiter=layout.delimiter),
        convert_options=pacsv.ConvertOptions(column_types={}),
    ).column_names
    return list(names)


class _SkippedRows:
    """Rows the CSV parser rejected (wrong field count), handed to the batch they sit in.

    The parser reads ahead, so a rejected row may be reported before the batch that
    precedes it is delivered; rows are therefore attributed by position, not by time.
    """

    def __init__(self, header_lines: int) -> None:
        self.header_lines = header_lines
        self.rows: list[tuple[int, str]] = []
        self.given = 0
        self.kept_before = 0

    def handler(self, row: Any) -> str:
        self.rows.append((int(row.number) - self.header_lines, row.text[:MAX_TEXT]))
        return "skip"

    def take(self, kept: int, final: bool = False) -> list[tuple[int, str]]:
        """The rejected rows up to the last of the next ``kept`` rows (all, if final)."""
        self.rows.sort()
        end = self.given
        if final:
            end = len(self.rows)
        elif kept:
            # Row number of the batch's last row: its rank among kept rows, pushed one
            # further by every rejected row at or before it.
            last = self.kept_before + kept + self.given
            while end < len(self.rows) and self.rows[end][0] <= last:
                last += 1
                end += 1
        self.kept_before += kept
        taken, self.given = self.rows[self.given : end], end
        return taken


def _stamp(batch: pa.RecordBatch, file_index: int, layout: Layout, skipped: list) -> pa.RecordBatch:
    metadata = {
        META_FILE_INDEX: str(file_index).encode(),
        META_LAYOUT: layout.describe.encode(),
        META_SKIPPED: json.dumps(skipped).encode(),
    }
    return batch.replace_schema_metadata(metadata)


def _finish_csv_batch(batch: pa.RecordBatch, layout: Layout) -> pa.RecordBatch:
    """Reader-level fixes: separator columns that must be empty (MovieLens), a constant
    event column (YOOCHOOSE)."""
    if layout.separators:
        extra = [pc.is_valid(batch.column(name)) for name in layout.separators]
        broken = functools.reduce(pc.or_, extra)
        keep = [n for n in batch.schema.names if n not in layout.separators]
        batch = pa.RecordBatch.from_arrays(
            [batch.column(n) for n in keep] + [broken], names=[*keep, MALFORMED_COLUMN]
        )
    if layout.event is not None:
        events = pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(batch.num_rows, dtype=np.int8)), pa.array([layout.event])
        )
        batch = pa.RecordBatch.from_arrays(
            [*batch.columns, events], names=[*batch.schema.names, "event"]
        )
    return batch


def _read_csv(
    file_uri: str, file_index: int, layout: Layout, options: StorageOptions | None
) -> Iterator[pa.RecordBatch]:
    names = _column_names(file_uri, layout, options)
    if names is None:
        return
    skipped = _SkippedRows(header_lines=0 if layout.names else 1)
    read_options = pacsv.ReadOptions(
        use_threads=False,
        block_size=CSV_BLOCK_BYTES,
        column_names=list(layout.names) if layout.names else None,
    )
    parse_options = pacsv.ParseOptions(
        delimiter=layout.delimiter,
        quote_char='"' if layout.quoted else False,
        ignore_empty_lines=False,
        invalid_row_handler=skipped.handler,
    )
    convert_options = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in names}, strings_can_be_null=True
    )
    with (
        store.open_input_stream(file_uri, options) as stream,
        store.translate_errors(file_uri, "read", options),
    ):
        try:
            reader = pacsv.open_csv(stream, read_options, parse_options, convert_options)
        except pa.ArrowInvalid as error:
            if "Empty CSV file" in str(error):
                return
            raise
        for batch in reader:
            taken = skipped.take(batch.num_rows)
            yield _stamp(_finish_csv_batch(batch, layout), file_index, layout, taken)
        rest = skipped.take(0, final=True)
        if rest:
            empty = pa.RecordBatch.from_pylist([], schema=reader.schema)
            yield _stamp(_finish_csv_batch(empty, layout), file_index, layout, rest)


_JSON_SPACE = b" \t\r\n"


@dataclass(frozen=True)
class _Piece:
    """Whole lines of a JSON lines file, which parse on their own.

    pyarrow's JSON reader skips blank lines without a trace and counts "rows" as
    records, so the piece keeps where its lines are, to give every record and every
    error the file's line number as its row.
    """

    data: bytes
    first_line: int  # lines of the file before this piece
    lines: int
    blank: list[int]  # 0-based indices of the whitespace-only lines

    @classmethod
    def of(cls, data: bytes, first_line: int) -> _Piece:
        """Vectorised: only lines that start with white space are looked at in Python."""
        text = np.frombuffer(data, dtype=np.uint8)
        ends = np.flatnonzero(text == ord("\n"))
        if not data.endswith(b"\n"):
            ends = np.append(ends, len(data))
        starts = np.r_[0, ends[:-1] + 1]
        leading = np.isin(text[np.minimum(starts, len(data) - 1)], list(_JSON_SPACE))
        blank = [
            int(i)
            for i in np.flatnonzero(leading | (starts == ends))
            if not data[starts[i] : ends[i]].strip(_JSON_SPACE)
        ]
        return cls(data, first_line, len(ends), blank)

    def row_of_record(self, record: int) -> int | None:
        """The file row (1-based line) of the piece's ``record``-th record."""
        records = np.setdiff1d(np.arange(self.lines), self.blank)
        return self.first_line + 1 + int(records[record]) if record < len(records) else None


def _json_pieces(stream: pa.NativeFile) -> Iterator[_Piece]:
    """The stream in pieces of about ``JSON_BLOCK_BYTES`` that end at a line break."""
    rest, first_line = b"", 0
    while chunk := stream.read(JSON_BLOCK_BYTES):
        data = rest + chunk
        cut = data.rfind(b"\n") + 1
        rest = data[cut:]
        if cut:
            piece = _Piece.of(data[:cut], first_line)
            first_line += piece.lines
            yield piece
    if rest:
        yield _Piece.of(rest, first_line)


_ONE_TYPE = (
    "give each field one JSON type on every line (ids all quoted or all numbers, times "
    "all numbers or all strings)"
)


def _parse_json(piece: _Piece, file_uri: str, layout: Layout) -> pa.RecordBatch:
    """One piece as one batch (its own type inference: a field that is missing or null
    in the first megabytes does not break the rest); an error names its line."""
    read_options = pajson.ReadOptions(use_threads=False, block_size=len(piece.data) + 1)
    try:
        table = pajson.read_json(pa.BufferReader(piece.data), read_options=read_options)
    except pa.ArrowInvalid as error:
        problem, row = _detail(error), None
        found = re.search(r" in row (\d+)$", problem)
        if found:
            problem, row = problem[: found.start()], piece.row_of_record(int(found[1]))
        fix = _ONE_TYPE if "changed from" in problem else _CHECK_FILE
        raise _unreadable(file_uri, layout, problem, row, fix) from None
    return table.combine_chunks().to_batches()[0]


def _read_json(
    file_uri: str, file_index: int, layout: Layout, options: StorageOptions | None
) -> Iterator[pa.RecordBatch]:
    schema, blank_rows = None, []
    with (
        store.open_input_stream(file_uri, options) as stream,
        store.translate_errors(file_uri, "read", options),
    ):
        for piece in _json_pieces(stream):
            if piece.first_line == 0:
                _check_text(file_uri, layout, piece.data)
            blank_rows += [(piece.first_line + 1 + index, "") for index in piece.blank]
            if len(piece.blank) < piece.lines:
                batch = _parse_json(piece, file_uri, layout)
                schema = batch.schema
                yield _stamp(batch, file_index, layout, blank_rows)
                blank_rows = []
    if blank_rows and schema is not None:
        yield _stamp(pa.RecordBatch.from_pylist([], schema=schema), file_index, layout, blank_rows)


def _read_parquet(
    file_uri: str, file_index: int, layout: Layout, options: StorageOptions | None
) -> Iterator[pa.RecordBatch]:
    with (
        store.open_input_file(file_uri, options) as handle,
        store.translate_errors(file_uri, "read", options),
    ):
        parquet = pq.ParquetFile(handle)
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            yield _stamp(batch, file_index, layout, [])


_READERS = {"csv": _read_csv, "json": _read_json, "parquet": _read_parquet}


def read_file(
    spec: SourceSpec,
    file_uri: str,
    storage: StorageOptions | None = None,
    mapping: ActionMapping | None = None,
) -> Iterator[pa.RecordBatch]:
    """Stream one file as raw-but-typed batches (strings for CSV, native for JSON and
    Parquet); ``mapping`` gives a ``table`` text file's header and delimiter.

    Memory stays at about one CSV or JSON block (16 MiB) or one Parquet batch. Batches
    carry schema metadata that :func:`~negrec.data.adapters.normalise` needs (file
    index, layout, rows the parser rejected), so pass them on unchanged.
    """
    file_index, layout = spec.layout_of(file_uri)
    layout = layout.with_mapping(mapping)
    try:
        yield from _READERS[layout.kind](file_uri, file_index, layout, storage)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise _unreadable(file_uri, layout, _detail(error)) from None
