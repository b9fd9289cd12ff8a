"""Raw column values to typed arrays: ids, timestamps and ratings, vectorised.

The parsing half of :func:`negrec.data.adapters.normalise`: each parser takes one
column as the reader delivered it (strings from CSV, native types from JSON lines
and Parquet) and returns it typed, with the values that do not parse as nulls, which
``normalise`` then counts under a drop reason. A column of a type a parser cannot read
raises :class:`SchemaError`, which ``normalise`` turns into a message naming the
column.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


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


def is_text(t: pa.DataType) -> bool:
    """Whether ``t`` is a (large) string type."""
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def empty_as_null(values: pa.Array) -> pa.Array:
    """Empty text as missing: the CSV reader reads an empty field as null, and JSON
    lines or Parquet text must count the same (``null_id``, ``null_event``, ...)."""
    if not is_text(values.type):
        return values
    return pc.if_else(pc.equal(values, ""), pa.scalar(None, values.type), values)


def decoded(values: pa.Array) -> pa.Array:
    """A dictionary-encoded column decoded, empty text as null."""
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    return empty_as_null(values)


class SchemaError(Exception):
    """A column has a type normalise cannot read; becomes a NegrecError with context."""


def parse_ids(values: pa.Array, ids: str) -> pa.Array:
    """Ids as int64 (``ids: int``; a non-integer becomes null) or as strings."""
    t = values.type
    if ids == "string":
        if is_text(t):
            return pc.cast(values, pa.string())
        if pa.types.is_integer(t):
            return pc.cast(values, pa.string())
        raise SchemaError(f"type {t} (expected strings or integers)")
    if pa.types.is_integer(t):
        return pc.cast(values, pa.int64())
    if is_text(t):
        return _parse_strings(values, pa.int64(), _INT)
    raise SchemaError(f"type {t} (expected integers, or set ids: string)")


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


def parse_timestamp(values: pa.Array, unit: str) -> tuple[pa.Array, np.ndarray]:
    """Any supported timestamp column to int64 ms, and a mask of values out of range."""
    t = values.type
    none = np.zeros(len(values), dtype=bool)
    if pa.types.is_timestamp(t):
        return _scale(pc.cast(values, pa.int64()), t.unit)
    if unit == "iso8601":
        if not is_text(t):
            raise SchemaError(f"type {t} (iso8601 needs strings; or set timestamp_unit)")
        return _parse_iso(values), none
    if pa.types.is_integer(t):
        return _scale(pc.cast(values, pa.int64()), unit)
    if is_text(t):
        return _scale(_parse_strings(values, pa.int64(), _INT), unit)
    raise SchemaError(f"type {t} (expected integers, strings or timestamps)")


def parse_ratings(values: pa.Array) -> pa.Array:
    """Ratings as float64; a value that is no number becomes null."""
    t = values.type
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return pc.cast(values, pa.float64())
    if is_text(t):
        return _parse_strings(values, pa.float64(), _FLOAT)
    raise SchemaError(f"type {t} (expected numbers)")


def to_mask(array: pa.Array) -> np.ndarray:
    """A boolean array as a numpy mask (a null counts as False)."""
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=bool)


def null_mask(array: pa.Array) -> np.ndarray:
    """True where ``array`` is null."""
    return to_mask(array.is_null())
