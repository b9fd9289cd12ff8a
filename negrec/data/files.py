"""Parquet files by URI, through ``negrec.storage`` (local paths and s3:// alike)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from negrec import storage
from negrec.errors import NegrecError


def write_parquet(uri: str, table: pa.Table, options: storage.StorageOptions | None) -> None:
    with (
        storage.open_output_stream(uri, options) as stream,
        storage.translate_errors(uri, "write", options),
    ):
        pq.write_table(table, stream)


def read_parquet(
    uri: str, options: storage.StorageOptions | None, columns: list[str] | None = None
) -> pa.Table:
    """The table in one Parquet file; a file that is not Parquet (damaged, truncated,
    overwritten) is a ``NegrecError`` naming it, not pyarrow's bare message."""
    with (
        storage.open_input_file(uri, options) as handle,
        storage.translate_errors(uri, "read", options),
    ):
        try:
            return pq.read_table(handle, columns=columns)
        except pa.ArrowInvalid as error:
            raise NegrecError(
                f"{uri} is not a readable Parquet file ({error}); if it belongs to a "
                "prepared dataset, re-run negrec prepare"
            ) from None
