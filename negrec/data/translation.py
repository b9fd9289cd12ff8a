"""Scoring a model on a dataset prepared with another vocabulary.

Why it exists: two datasets prepared from the same log under different rules (say,
rejected interactions removed or kept) index their items differently, so the vocabulary
indices of one mean other items, or nothing, to a model trained on the other. Items are
matched through their original ids (as text, like serving does); what the model has
never seen is left out and counted, never passed on as a wrong index. A model trained
without actions (positives only) cannot take a rejected interaction at all, so those are
left out of its inputs and counted the same way.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from negrec.action_codes import POSITIVE
from negrec.data.loaders import list_column


def index_translation(model_vocab: pa.Table, data_vocab: pa.Table) -> np.ndarray:
    """``to_model[i]``: the model's index of the data's item ``i`` (0 = unknown; index
    0, padding, stays 0). Both tables are ``vocab.parquet`` (item_id, index)."""
    known = {
        str(item): int(index)
        for item, index in zip(
            model_vocab["item_id"].to_pylist(), model_vocab["index"].to_pylist(), strict=True
        )
    }
    to_model = np.zeros(data_vocab.num_rows + 1, dtype=np.int64)
    for item, index in zip(
        data_vocab["item_id"].to_pylist(), data_vocab["index"].to_pylist(), strict=True
    ):
        to_model[int(index)] = known.get(str(item), 0)
    return to_model


def _known(
    rows: list[np.ndarray], to_model: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each row's items in model indices, and the mask of the items the model knows."""
    mapped = [to_model[row.astype(np.int64)] for row in rows]
    return mapped, [row > 0 for row in mapped]


def translate_split(table: pa.Table, to_model: np.ndarray) -> tuple[pa.Table, dict[str, int]]:
    """An evaluation split (val/test rows) in the model's indices, and what was left out:
    rows whose target the model does not know (``target``), unknown input items
    (``input``, their actions with them) and unknown held-out rejected items."""
    items, known_items = _known(list_column(table["items"]), to_model)
    actions = list_column(table["actions"])
    rejected, known_rejected = _known(list_column(table["heldout_rejected"]), to_model)
    target = to_model[table["target"].to_numpy().astype(np.int64)]
    keep = target > 0
    rows = np.flatnonzero(keep)
    translated = pa.table(
        {
            "user_id": table["user_id"].take(pa.array(rows)),
            "items": pa.array([items[r][known_items[r]] for r in rows], pa.list_(pa.int32())),
            "actions": pa.array([actions[r][known_items[r]] for r in rows], pa.list_(pa.int8())),
            "target": pa.array(target[rows], pa.int32()),
            "heldout_rejected": pa.array(
                [rejected[r][known_rejected[r]] for r in rows], pa.list_(pa.int32())
            ),
        }
    )
    unknown = {
        "target": int((~keep).sum()),
        "input": int(sum((~known_items[r]).sum() for r in rows)),
        "heldout_rejected": int(sum((~known_rejected[r]).sum() for r in rows)),
    }
    return translated, unknown


def translate_per_item(
    values: np.ndarray, to_model: np.ndarray, model_items: int, fill: int
) -> np.ndarray:
    """A per-index array of the data (counts, clusters; ``num_items + 1`` long) indexed
    by the model's vocabulary (``model_items + 1`` long) instead; model items absent
    from the data get ``fill``."""
    out = np.full(model_items + 1, fill, dtype=values.dtype)
    known = to_model > 0
    out[to_model[known]] = values[known]
    return out


def positive_inputs(table: pa.Table) -> tuple[pa.Table, int]:
    """An evaluation split with the negative interactions left out of every input (what
    a positives-only system sees: it never logged them), and how many were left out.
    Targets and held-out rejected items stay: they are what the model is scored on."""
    keep = [row == POSITIVE for row in list_column(table["actions"])]
    for name in ("items", "actions"):
        rows = [row[k] for row, k in zip(list_column(table[name]), keep, strict=True)]
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, pa.array(rows, table.schema.field(name).type))
    return table, int(sum((~k).sum() for k in keep))
