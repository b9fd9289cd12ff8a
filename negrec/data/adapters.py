"""Read public event-log formats and normalise them to one canonical, typed stream.

Three steps, each callable on its own (``negrec prepare`` runs them per file inside a
Ray task; :func:`iter_normalised` chains them):

* :func:`discover` finds the files of a format under a URI, in read order;
* :func:`read_file` streams one file as record batches in bounded memory: the
  *physical* layout (delimiters, header, compression, JSON lines, Parquet) is decoded,
  values stay raw strings (CSV) or native types (JSON, Parquet) under the source's
  column names (both live in ``negrec.data.readers`` and are re-exported here);
* :func:`normalise` applies an :class:`~negrec.data.actions.ActionMapping`: picks the
  columns, parses ids and timestamps, maps events or ratings to actions and counts
  every dropped row by reason. It is vectorised (pyarrow.compute and numpy); no
  Python runs per row.

Canonical columns of :class:`NormalisedBatch.table`:

====================  ====================================================================
``user_id``           int64, or string when the mapping says ``ids: string`` (only the
``item_id``           ``table`` format needs that: every public format has integer ids)
``timestamp``         int64 milliseconds since the epoch (UTC)
``action``            int8: 0 positive, 1 negative
``file_index``        int32: position of the file in ``SourceSpec.files``
``row``               int64: 1-based data row within the file (the header is not a row;
                      for JSON lines, the line), so that ties in time keep file order
                      and messages name the row
====================  ====================================================================

Every input row is either kept or counted in ``dropped`` under one reason, so
``rows_in == table.num_rows + sum(dropped.values())``. Reasons that mean the row is
broken (``malformed_row``, ``unparsable_*``, ``null_timestamp``, ``null_event``,
``null_rating``) stop the run unless the mapping says ``on_bad_row: quarantine``;
the others (``empty_row``, ``null_id``, ``negative_id``, ``timestamp_before_1970``,
``timestamp_in_future``, ``ignored_event``, ``ignored_rating``) are ordinary
filtering. An event value or rating the mapping does not cover always stops the run:
guessing would mislabel data.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from negrec.data.actions import ACTION_CODES, ActionMapping
from negrec.data.readers import (
    MALFORMED_COLUMN,
    META_FILE_INDEX,
    META_LAYOUT,
    META_SKIPPED,
    SourceSpec,
    discover,
    read_file,
)
from negrec.errors import NegrecError
from negrec.storage import StorageOptions

__all__ = [
    "BAD_ROW_REASONS",
    "NormalisedBatch",
    "SourceSpec",
    "discover",
    "iter_normalised",
    "normalise",
    "read_file",
]


@dataclass(frozen=True)
class NormalisedBatch:
    """Canonical rows of one batch and the count of every row dropped, by reason."""

    table: pa.Table
    dropped: dict[str, int]
    rows_in: int

    @property
    def rows_kept(self) -> int:
        return self.table.num_rows


# --- parsing helpers ----------------------------------------------------------------


def _cast_or_null(values: pa.Array, to: pa.DataType) -> pa.Array:
    """Cast, turning the values that do not cast into nulls (found by bisection; only
    values that passed a syntax check get here, so failures are rare)."""
    try:
        return pc.cast(values, to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if len(values) <= 1:
            return pa.nulls(len(values), to)
        middle = len(values) // 2
        return pa.concat_arrays(
            [_cast_or_null(values[:middle], to), _cast_or_null(values[middle:], to)]
        )


def _parse_strings(values: pa.Array, to: pa.DataType, pattern: str) -> pa.Array:
    """Strings to ``to``; unparsable values become null. Fast path: one cast."""
    try:
        return pc.cast(values, to)
    except pa.ArrowInvalid:
        syntactic = pc.match_substring_regex(values, pattern)
        return _cast_or_null(pc.if_else(syntactic, values, pa.scalar(None, values.type)), to)


_INT = r"^-?\d+$"
_FLOAT = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_ISO = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$"
_ZONE = r"(Z|[+-]\d{2}:?\d{2})$"
_TO_MS = {"s": (1000, 1), "ms": (1, 1), "us": (1, 1000), "ns": (1, 1_000_000)}


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _empty_as_null(values: pa.Array) -> pa.Array:
    """Empty text as missing: the CSV reader reads an empty field as null, and JSON
    lines or Parquet text must count the same (``null_id``, ``null_event``, ...)."""
    if not _is_text(values.type):
        return values
    return pc.if_else(pc.equal(values, ""), pa.scalar(None, values.type), values)


def _decoded(values: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    return _empty_as_null(values)


class _SchemaError(Exception):
    """A column has a type normalise cannot read; becomes a NegrecError with context."""


def _parse_ids(values: pa.Array, ids: str) -> pa.Array:
    t = values.type
    if ids == "string":
        if _is_text(t):
            return pc.cast(values, pa.string())
        if pa.types.is_integer(t):
            return pc.cast(values, pa.string())
        raise _SchemaError(f"type {t} (expected strings or integers)")
    if pa.types.is_integer(t):
        return pc.cast(values, pa.int64())
    if _is_text(t):
        return _parse_strings(values, pa.int64(), _INT)
    raise _SchemaError(f"type {t} (expected integers, or set ids: string)")


def _scale(raw: pa.Array, unit: str) -> tuple[pa.Array, np.ndarray]:
    """Integer times in ``unit`` to milliseconds; values that would overflow are bad."""
    multiply, divide = _TO_MS[unit]
    numbers = raw.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    overflow = np.abs(numbers) > np.iinfo(np.int64).max // multiply
    millis = np.floor_divide(np.where(overflow, 0, numbers) * multiply, divide)
    return pa.array(millis, mask=~raw.is_valid().to_numpy(zero_copy_only=False)), overflow


def _parse_iso(values: pa.Array) -> pa.Array:
    """ISO 8601 strings to int64 ms; a missing zone means UTC."""
    to = pa.timestamp("ns", tz="UTC")
    try:
        parsed = pc.cast(values, to)
    except pa.ArrowInvalid:
        zoned = pc.match_substring_regex(values, _ZONE)
        completed = pc.if_else(zoned, values, pc.binary_join_element_wise(values, "Z", ""))
        parsed = _parse_strings(completed, to, _ISO)
    return pc.divide(pc.cast(parsed, pa.int64()), 1_000_000)


def _parse_timestamp(values: pa.Array, unit: str) -> tuple[pa.Array, np.ndarray]:
    """Any supported timestamp column to int64 ms, and a mask of values out of range."""
    t = values.type
    none = np.zeros(len(values), dtype=bool)
    if pa.types.is_timestamp(t):
        return _scale(pc.cast(values, pa.int64()), t.unit)
    if unit == "iso8601":
        if not _is_text(t):
            raise _SchemaError(f"type {t} (iso8601 needs strings; or set timestamp_unit)")
        return _parse_iso(values), none
    if pa.types.is_integer(t):
        return _scale(pc.cast(values, pa.int64()), unit)
    if _is_text(t):
        return _scale(_parse_strings(values, pa.int64(), _INT), unit)
    raise _SchemaError(f"type {t} (expected integers, strings or timestamps)")


def _parse_ratings(values: pa.Array) -> pa.Array:
    t = values.type
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return pc.cast(values, pa.float64())
    if _is_text(t):
        return _parse_strings(values, pa.float64(), _FLOAT)
    raise _SchemaError(f"type {t} (expected numbers)")


def _mask(array: pa.Array) -> np.ndarray:
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=bool)


def _nulls(array: pa.Array) -> np.ndarray:
    return _mask(array.is_null())


# --- normalise ----------------------------------------------------------------------

FUTURE_SLACK_MS = 86_400_000
"""A time more than a day after the clock is no real event, most often a wrong
``timestamp_unit`` (ms read as s); such rows are dropped as ``timestamp_in_future``."""

# Reasons in priority order: a row dropped for several is counted under the first.
BAD_ROW_REASONS = (
    "malformed_row",
    "unparsable_user_id",
    "unparsable_item_id",
    "null_timestamp",
    "unparsable_timestamp",
    "null_event",
    "null_rating",
    "unparsable_rating",
)


@dataclass
class _Context:
    """What error messages need to name the file, the row and the fix."""

    batch: pa.RecordBatch
    mapping: ActionMapping
    file_uri: str
    layout: str
    rows: np.ndarray

    def fail(self, index: int, problem: str, fix: str) -> NegrecError:
        return NegrecError(f"{self.file_uri}, row {int(self.rows[index])}: {problem}. Fix: {fix}")

    def raw(self, column: str, index: int) -> Any:
        return self.batch.column(column)[index].as_py()


_QUARANTINE = "or set on_bad_row: quarantine in an --actions file to drop and count such rows"


def _bad_row_error(reason: str, index: int, ctx: _Context) -> NegrecError:
    columns = ctx.mapping.columns
    if reason == "malformed_row":
        return ctx.fail(
            index,
            f"malformed row, expected {ctx.layout}",
            f"repair the row, check --format, {_QUARANTINE}",
        )
    if reason.startswith("unparsable_") and reason.endswith("_id"):
        field = reason.removeprefix("unparsable_")
        source = getattr(columns, field)
        return ctx.fail(
            index,
            f"{field} {ctx.raw(source, index)!r} (column '{source}') is not an integer id",
            f"repair the row, set ids: string in an --actions file if ids are strings, "
            f"{_QUARANTINE}",
        )
    if reason.startswith("null_"):
        field = reason.removeprefix("null_")
        source = getattr(columns, field)
        return ctx.fail(
            index, f"{field} (column '{source}') is empty", f"repair the row, {_QUARANTINE}"
        )
    if reason == "unparsable_timestamp":
        unit = ctx.mapping.timestamp_unit
        value = ctx.raw(columns.timestamp, index)
        return ctx.fail(
            index,
            f"timestamp {value!r} (column '{columns.timestamp}') is not a valid time in "
            f"unit '{unit}'",
            f"repair the row, set timestamp_unit (s|ms|us|ns|iso8601) in an --actions file, "
            f"{_QUARANTINE}",
        )
    value = ctx.raw(columns.rating, index)
    return ctx.fail(
        index,
        f"rating {value!r} (column '{columns.rating}') is not a number",
        f"repair the row, {_QUARANTINE}",
    )


def _row_numbers(first_row: int, count: int, skipped: list[int]) -> np.ndarray:
    """Row numbers of the kept rows: consecutive from ``first_row``, jumping over the
    rows the parser rejected."""
    rows = first_row + np.arange(count, dtype=np.int64)
    if skipped:
        rejected = np.sort(np.asarray(skipped, dtype=np.int64))
        rows += np.searchsorted(rejected - np.arange(len(rejected)), rows, side="right")
    return rows


def _check_columns(
    batch: pa.RecordBatch, mapping: ActionMapping, file_uri: str, layout: str
) -> dict[str, str]:
    columns = mapping.columns
    fields = ("user_id", "item_id", "timestamp", mapping.value_column)
    wanted = {field: getattr(columns, field) for field in fields}
    missing = [
        f"'{source}' ({field})"
        for field, source in wanted.items()
        if source not in batch.schema.names
    ]
    if missing:
        needed = ", ".join(f"{source} ({field})" for field, source in wanted.items())
        found = ", ".join(n for n in batch.schema.names if n != MALFORMED_COLUMN)
        raise NegrecError(
            f"{file_uri}, header: missing column(s) {', '.join(missing)}. Expected layout: "
            f"{layout}; columns needed: {needed}; found: {found}. Fix: use the format's "
            f"exact layout, choose the right --format, or name your columns under "
            f"'columns:' in an --actions file (a table file without a header: header: "
            f"false and column_order) (mapping: {mapping.source})"
        )
    return wanted


def _actions_from_events(
    values: pa.Array, mapping: ActionMapping, ctx: _Context, pending: np.ndarray
) -> np.ndarray:
    """Action code per row (2 = ignore); an unmapped value on a pending row stops the run."""
    assert mapping.events is not None
    keys = pa.array(list(mapping.events), pa.string())
    codes = np.array(
        [ACTION_CODES.get(action, 2) for action in mapping.events.values()] + [3], dtype=np.int8
    )

    def lookup(text: pa.Array) -> np.ndarray:
        if not _is_text(text.type):
            text = pc.cast(text, pa.string())
        index = pc.index_in(text, value_set=keys).fill_null(len(keys))
        return codes[index.to_numpy(zero_copy_only=False)]

    if pa.types.is_dictionary(values.type):  # map the few distinct values, then gather
        per_value = lookup(values.dictionary)
        action = per_value[values.indices.fill_null(0).to_numpy(zero_copy_only=False)]
    else:
        action = lookup(values)
    unmapped = np.flatnonzero((action == 3) & pending)
    if unmapped.size:
        first = int(unmapped[0])
        value = ctx.raw(mapping.columns.event, first)
        raise ctx.fail(
            first,
            f"event {value!r} (column '{mapping.columns.event}') has no action mapping",
            f'add `"{value}": positive|negative|ignore` under events: in an --actions file '
            f"(mapping used: {mapping.source})",
        )
    return action


def _actions_from_ratings(
    ratings: pa.Array, mapping: ActionMapping, ctx: _Context, pending: np.ndarray
) -> np.ndarray:
    assert mapping.ratings is not None
    values = ratings.fill_null(np.nan).to_numpy(zero_copy_only=False)
    action = np.full(len(values), 3, dtype=np.int8)
    for rule in reversed(mapping.ratings):  # earlier rules overwrite: first match wins
        inside = np.ones(len(values), dtype=bool)
        if rule.min is not None:
            inside &= values >= rule.min
        if rule.max is not None:
            inside &= values <= rule.max
        action[inside] = ACTION_CODES.get(rule.action, 2)
    unmatched = np.flatnonzero((action == 3) & pending)
    if unmatched.size:
        first = int(unmatched[0])
        value = ctx.raw(mapping.columns.rating, first)
        raise ctx.fail(
            first,
            f"rating {value!r} matches no rule in 'ratings'",
            f"add a rule covering it ({{min: .., max: .., action: ..}}) in an --actions file "
            f"(mapping used: {mapping.source})",
        )
    return action


def normalise(
    batch: pa.RecordBatch, mapping: ActionMapping, file_uri: str, first_row: int
) -> NormalisedBatch:
    """Canonical rows of a batch from :func:`read_file`.

    ``first_row`` is the row number of the batch's first row: 1 for a file's first
    batch, then the previous batch's ``first_row + rows_in`` (:func:`iter_normalised`
    does this), so that rows the parser rejected keep later row numbers exact.
    """
    metadata = batch.schema.metadata or {}
    if META_FILE_INDEX not in metadata:
        raise ValueError("normalise expects batches straight from read_file (metadata missing)")
    file_index = int(metadata[META_FILE_INDEX])
    layout = metadata.get(META_LAYOUT, b"").decode()
    skipped = [(int(row), str(text)) for row, text in json.loads(metadata.get(META_SKIPPED, b"[]"))]
    wanted = _check_columns(batch, mapping, file_uri, layout)
    count = batch.num_rows
    rows = _row_numbers(first_row, count, [row for row, _ in skipped])
    ctx = _Context(batch, mapping, file_uri, layout, rows)
    column = {field: batch.column(source) for field, source in wanted.items()}
    for field, values in column.items():  # events stay encoded: mapped per distinct value
        column[field] = _empty_as_null(values) if field == "event" else _decoded(values)

    reason = np.zeros(count, dtype=np.int8)  # 0 = kept, else 1 + index in REASONS
    reasons: list[str] = []

    def drop(name: str, mask: np.ndarray) -> None:
        reasons.append(name)
        reason[(reason == 0) & mask] = len(reasons)

    def parse(field: str, parser: Callable[..., Any], *args: Any) -> Any:
        try:
            return parser(column[field], *args)
        except _SchemaError as error:
            raise NegrecError(
                f"{file_uri}, header: column '{wanted[field]}' ({field}) has {error}. Fix: "
                f"check the file or the --actions mapping ({mapping.source})"
            ) from None

    user_null, item_null = _nulls(column["user_id"]), _nulls(column["item_id"])
    drop("empty_row", user_null & item_null & _nulls(column["timestamp"]))
    if MALFORMED_COLUMN in batch.schema.names:
        drop("malformed_row", _mask(batch.column(MALFORMED_COLUMN)))
    user = parse("user_id", _parse_ids, mapping.ids)
    item = parse("item_id", _parse_ids, mapping.ids)
    drop("null_id", user_null | item_null)
    drop("unparsable_user_id", _nulls(user) & ~user_null)
    drop("unparsable_item_id", _nulls(item) & ~item_null)
    if mapping.ids == "int":
        negative = pc.or_kleene(pc.less(user, 0), pc.less(item, 0)).fill_null(False)
        drop("negative_id", _mask(negative))
    timestamp, overflow = parse("timestamp", _parse_timestamp, mapping.timestamp_unit)
    drop("null_timestamp", _nulls(column["timestamp"]))
    drop("unparsable_timestamp", _nulls(timestamp) | overflow)
    drop("timestamp_before_1970", _mask(pc.less(timestamp, 0).fill_null(False)))
    horizon = int(time.time() * 1000) + FUTURE_SLACK_MS
    drop("timestamp_in_future", _mask(pc.greater(timestamp, horizon).fill_null(False)))
    value_field = mapping.value_column
    drop(f"null_{value_field}", _nulls(column[value_field]))
    if value_field == "rating":
        ratings = parse("rating", _parse_ratings)
        drop("unparsable_rating", _nulls(ratings))
        action = _actions_from_ratings(ratings, mapping, ctx, reason == 0)
    else:
        action = _actions_from_events(column["event"], mapping, ctx, reason == 0)
    drop(f"ignored_{value_field}", action == 2)

    malformed = [(row, text) for row, text in skipped if text.strip()]
    if mapping.on_bad_row == "error":
        bad_codes = [i + 1 for i, name in enumerate(reasons) if name in BAD_ROW_REASONS]
        bad = np.flatnonzero(np.isin(reason, bad_codes))
        first_bad = int(rows[bad[0]]) if bad.size else None
        if malformed and (first_bad is None or malformed[0][0] < first_bad):
            row, text = malformed[0]
            raise NegrecError(
                f"{file_uri}, row {row}: malformed row {text!r}, expected {layout}. Fix: "
                f"repair the row, check --format, {_QUARANTINE}"
            )
        if bad.size:
            raise _bad_row_error(reasons[reason[bad[0]] - 1], int(bad[0]), ctx)

    counts = np.bincount(reason, minlength=len(reasons) + 1)
    dropped = {name: int(counts[i + 1]) for i, name in enumerate(reasons) if counts[i + 1]}
    blank = len(skipped) - len(malformed)
    for name, extra in (("malformed_row", len(malformed)), ("empty_row", blank)):
        if extra:
            dropped[name] = dropped.get(name, 0) + extra

    id_type = pa.string() if mapping.ids == "string" else pa.int64()
    table = pa.table(
        {
            "user_id": pc.cast(user, id_type),
            "item_id": pc.cast(item, id_type),
            "timestamp": pc.cast(timestamp, pa.int64()),
            "action": pa.array(np.where(action > 1, 0, action).astype(np.int8)),
            "file_index": pa.array(np.full(count, file_index, dtype=np.int32)),
            "row": pa.array(rows),
        }
    )
    if dropped:
        table = table.filter(pa.array(reason == 0))
    return NormalisedBatch(table=table, dropped=dropped, rows_in=count + len(skipped))


def iter_normalised(
    spec: SourceSpec, file_uri: str, mapping: ActionMapping, storage: StorageOptions | None = None
) -> Iterator[NormalisedBatch]:
    """read_file + normalise for one file, with row numbers kept exact across batches."""
    first_row = 1
    for batch in read_file(spec, file_uri, storage, mapping):
        result = normalise(batch, mapping, file_uri, first_row)
        first_row += result.rows_in
        yield result
