"""Read public event-log formats and normalise them to one canonical, typed stream.

Three steps, each callable on its own (``negrec prepare`` runs them per file inside a
Ray task; :func:`iter_normalised` chains them):

* :func:`discover` finds the files of a format under a URI, in read order (by the
  format's entry in ``negrec.data.formats``);
* :func:`read_file` streams one file as record batches in bounded memory: the
  *physical* layout (delimiters, header, compression, JSON lines, Parquet) is decoded,
  values stay raw strings (CSV) or native types (JSON, Parquet) under the source's
  column names (both live in ``negrec.data.readers`` and are re-exported here);
* :func:`normalise` applies an :class:`~negrec.data.actions.ActionMapping`: picks the
  columns, parses ids and timestamps (``negrec.data.parsing``), maps events or
  ratings to actions and counts every dropped row by reason. It is vectorised
  (pyarrow.compute and numpy); no Python runs per row.

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

from negrec.action_codes import CODES
from negrec.data.actions import ActionMapping
from negrec.data.parsing import (
    SchemaError,
    decoded,
    empty_as_null,
    is_text,
    null_mask,
    parse_ids,
    parse_ratings,
    parse_timestamp,
    to_mask,
)
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
        [CODES.get(action, 2) for action in mapping.events.values()] + [3], dtype=np.int8
    )

    def lookup(text: pa.Array) -> np.ndarray:
        if not is_text(text.type):
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
        action[inside] = CODES.get(rule.action, 2)
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
        column[field] = empty_as_null(values) if field == "event" else decoded(values)

    reason = np.zeros(count, dtype=np.int8)  # 0 = kept, else 1 + index in REASONS
    reasons: list[str] = []

    def drop(name: str, mask: np.ndarray) -> None:
        reasons.append(name)
        reason[(reason == 0) & mask] = len(reasons)

    def parse(field: str, parser: Callable[..., Any], *args: Any) -> Any:
        try:
            return parser(column[field], *args)
        except SchemaError as error:
            raise NegrecError(
                f"{file_uri}, header: column '{wanted[field]}' ({field}) has {error}. Fix: "
                f"check the file or the --actions mapping ({mapping.source})"
            ) from None

    user_null, item_null = null_mask(column["user_id"]), null_mask(column["item_id"])
    drop("empty_row", user_null & item_null & null_mask(column["timestamp"]))
    if MALFORMED_COLUMN in batch.schema.names:
        drop("malformed_row", to_mask(batch.column(MALFORMED_COLUMN)))
    user = parse("user_id", parse_ids, mapping.ids)
    item = parse("item_id", parse_ids, mapping.ids)
    drop("null_id", user_null | item_null)
    drop("unparsable_user_id", null_mask(user) & ~user_null)
    drop("unparsable_item_id", null_mask(item) & ~item_null)
    if mapping.ids == "int":
        negative = pc.or_kleene(pc.less(user, 0), pc.less(item, 0)).fill_null(False)
        drop("negative_id", to_mask(negative))
    timestamp, overflow = parse("timestamp", parse_timestamp, mapping.timestamp_unit)
    drop("null_timestamp", null_mask(column["timestamp"]))
    drop("unparsable_timestamp", null_mask(timestamp) | overflow)
    drop("timestamp_before_1970", to_mask(pc.less(timestamp, 0).fill_null(False)))
    horizon = int(time.time() * 1000) + FUTURE_SLACK_MS
    drop("timestamp_in_future", to_mask(pc.greater(timestamp, horizon).fill_null(False)))
    value_field = mapping.value_column
    drop(f"null_{value_field}", null_mask(column[value_field]))
    if value_field == "rating":
        ratings = parse("rating", parse_ratings)
        drop("unparsable_rating", null_mask(ratings))
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
