"""The item vocabulary: original item ids -> contiguous indices 1..N (0 is padding).

Why from training data only: an item that first appears in validation or test has no
trained embedding, so counting it in the catalogue would leak the future into the
model. Indices follow descending training frequency (ties by id), which keeps frequent
items' rows together and makes the vocabulary deterministic.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

VOCAB_COLUMNS = ("item_id", "index", "count")


def count_items(item_ids: pa.Array, weights: np.ndarray | None = None) -> pa.Table:
    """(item_id, count) of a list of item occurrences, optionally weighted (+1 / -1)."""
    weight = np.ones(len(item_ids), np.int64) if weights is None else weights
    table = pa.table({"item_id": item_ids, "count": pa.array(weight, pa.int64())})
    return (
        table.group_by("item_id").aggregate([("count", "sum")]).rename_columns(["item_id", "count"])
    )


def build_vocab(counts: pa.Table) -> pa.Table:
    """Sum partial (item_id, count) tables into the vocabulary (item_id, index, count)."""
    total = count_items(counts["item_id"].combine_chunks(), counts["count"].to_numpy())
    total = total.filter(pc.greater(total["count"], 0))
    total = total.sort_by([("count", "descending"), ("item_id", "ascending")])
    index = pa.array(np.arange(1, total.num_rows + 1), pa.int32())
    return pa.table({"item_id": total["item_id"], "index": index, "count": total["count"]})


def lookup(vocab: pa.Table, item_ids: pa.Array) -> np.ndarray:
    """Vocabulary index (int32) of each item id; 0 for items not in the vocabulary."""
    position = pc.index_in(item_ids, value_set=vocab["item_id"].combine_chunks())
    return pc.fill_null(position, -1).to_numpy().astype(np.int32) + 1


def map_clusters(vocab: pa.Table, clusters: pa.Table) -> pa.Table:
    """Item clusters (item_id, cluster) re-keyed to vocabulary indices (index, cluster);
    items outside the vocabulary are left out."""
    index = lookup(vocab, clusters["item_id"].combine_chunks())
    keep = index > 0
    return pa.table(
        {
            "index": pa.array(index[keep], pa.int32()),
            "cluster": clusters["cluster"].filter(pa.array(keep)),
        }
    )
