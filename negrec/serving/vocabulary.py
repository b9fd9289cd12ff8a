"""The item vocabulary of a prepared dataset, as serving needs it.

Why serving carries its own copy: a registered model must map original item ids to
embedding rows (and back) without access to the prepared dataset it was trained on.
Index 0 is padding; real items are 1..N (see ``docs/prepare.md``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from negrec import storage
from negrec.data.files import read_parquet
from negrec.errors import NegrecError


class Vocabulary:
    """Original item id <-> vocabulary index. Lookups use the id's text, since history
    tokens are text whatever the dataset's id type."""

    def __init__(self, table: pa.Table, source: str) -> None:
        missing = {"item_id", "index"} - set(table.column_names)
        if missing:
            raise NegrecError(f"{source} lacks column(s) {', '.join(sorted(missing))}")
        table = table.select(["item_id", "index"]).sort_by("index")
        indices = table["index"].to_pylist()
        if indices != list(range(1, len(indices) + 1)):
            raise NegrecError(
                f"{source} is not a vocabulary: its indices are not 1..{len(indices)}"
            )
        self.table = table
        self.item_ids: list[Any] = table["item_id"].to_pylist()
        self._index = {str(item): position for position, item in enumerate(self.item_ids, 1)}

    @classmethod
    def read(cls, uri: str) -> Vocabulary:
        return cls(read_parquet(uri, None), uri)

    @classmethod
    def of_prepared(cls, data_uri: str) -> Vocabulary:
        """The vocabulary that ``negrec prepare`` committed with the dataset."""
        from negrec.data.loaders import load_prepared

        prepared = load_prepared(data_uri)
        return cls.read(storage.join(prepared.uri, prepared.manifest.vocab))

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def integer_ids(self) -> bool:
        return pa.types.is_integer(self.table.schema.field("item_id").type)

    def index_of(self, item: str) -> int | None:
        return self._index.get(item)

    def item_id(self, index: int) -> Any:
        return self.item_ids[index - 1]

    def write(self, path: Path) -> None:
        pq.write_table(self.table, path)
