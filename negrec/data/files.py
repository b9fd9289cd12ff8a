"""Parquet files by URI, through ``negrec.storage`` (local paths and s3:// alike)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from negrec import storage


def write_parquet(uri: str, table: pa.Table, options: storage.StorageOptions | None) -> None:
    with (
        storage.open_output_stream(uri, options) as stream,
        storage.translate_errors(uri, "write", options),
    ):
        pq.write_table(table, stream)


def read_parquet(
    uri: str, options: storage.StorageOptions | None, columns: list[str] | None = None
) -> pa.Table:
    with (
        storage.open_input_file(uri, options) as handle,
        storage.translate_errors(uri, "read", options),
    ):
        return pq.read_table(handle, columns=columns)
