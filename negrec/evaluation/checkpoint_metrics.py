"""Metrics of a saved checkpoint on a split of prepared data (``negrec evaluate``).

Ranking (Recall@k, NDCG@k, MRR) over the full catalogue with seen items filtered,
rejected-in-top-k on held-out rejected items, the most-popular baseline on the same
rows for comparison, and responsiveness when the prepared data carries item clusters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from negrec import checkpoint, storage
from negrec.data.files import read_parquet
from negrec.data.loaders import (
    PreparedData,
    eval_batches,
    item_clusters,
    item_counts,
    load_prepared,
    read_split,
)
from negrec.data.translation import (
    index_translation,
    positive_inputs,
    translate_per_item,
    translate_split,
)
from negrec.errors import NegrecError
from negrec.evaluation import evaluate, model_scorer, popularity_scorer, responsiveness
from negrec.model.gsasrec import ActionAwareGSASRec
from negrec.model.scoring import top_k

RESPONSIVENESS_USERS = 1000


def _responsiveness(
    model: ActionAwareGSASRec, rows: pa.Table, k: int, clusters: torch.Tensor
) -> dict[str, float]:
    histories = next(eval_batches(rows, RESPONSIVENESS_USERS, model.config.max_len))
    with torch.no_grad():
        return responsiveness(
            lambda items, actions: top_k(model, items, actions, k)[0],
            histories.items,
            histories.actions,
            clusters,
        )


@dataclass(frozen=True)
class _ModelView:
    """A split and its per-item arrays in the model's vocabulary indices."""

    rows: pa.Table
    counts: torch.Tensor  # positive training interactions: the most-popular ranking
    clusters: torch.Tensor | None
    unknown: dict[str, int]  # what the model does not know, left out (empty: same vocab)
    negative_inputs: int = 0  # rejected interactions left out for a model without actions


def _vocabulary(prepared: PreparedData) -> pa.Table:
    return read_parquet(storage.join(prepared.uri, prepared.manifest.vocab), prepared.storage)


def _translation(saved: checkpoint.Checkpoint, prepared: PreparedData) -> np.ndarray | None:
    """Data index -> model index when ``prepared`` is not indexed like the model's
    training data (None when it is)."""
    if prepared.uri == saved.data_uri:
        return None
    try:
        trained_on = load_prepared(saved.data_uri)
    except NegrecError as error:
        raise NegrecError(
            f"{prepared.uri} may index items differently from the data this checkpoint was "
            f"trained on, whose vocabulary is needed to match them: {error}"
        ) from None
    model_vocab, data_vocab = _vocabulary(trained_on), _vocabulary(prepared)
    if model_vocab.select(["item_id", "index"]).equals(data_vocab.select(["item_id", "index"])):
        return None
    return index_translation(model_vocab, data_vocab)


def _model_view(saved: checkpoint.Checkpoint, prepared: PreparedData, split: str) -> _ModelView:
    rows = read_split(prepared, split)
    if rows is None:
        raise NegrecError(f"{prepared.uri}: the {split} split is empty; nothing to evaluate")
    counts, clusters = item_counts(prepared), item_clusters(prepared)
    unknown: dict[str, int] = {}
    to_model = _translation(saved, prepared)
    if to_model is not None:
        rows, unknown = translate_split(rows, to_model)
        size = saved.num_items
        counts = torch.as_tensor(translate_per_item(counts.numpy(), to_model, size, 0))
        if clusters is not None:
            clusters = torch.as_tensor(translate_per_item(clusters.numpy(), to_model, size, -1))
        if rows.num_rows == 0:
            raise NegrecError(
                f"none of the {unknown['target']} {split} targets of {prepared.uri} is an "
                "item the checkpoint knows: the two datasets share no items"
            )
    negatives = 0
    if saved.config.model.num_actions == 1:
        rows, negatives = positive_inputs(rows)
    return _ModelView(rows, counts, clusters, unknown, negatives)


def evaluate_checkpoint(
    checkpoint_uri: str, data_uri: str | None = None, split: str = "test", k: int | None = None
) -> dict[str, Any]:
    """Metrics of the checkpoint's best weights on a split of the prepared data. Data
    prepared with another vocabulary is matched to the model's through original item
    ids; what the model does not know is left out and counted (``unknown_to_model_*``),
    and so are the rejected interactions in the inputs of a model trained without
    actions, which cannot take them (``negative_inputs_left_out``)."""
    saved = checkpoint.load(checkpoint_uri)
    k = k or saved.config.train.eval_k
    prepared = load_prepared(data_uri or saved.data_uri)
    view = _model_view(saved, prepared, split)
    model = saved.best_model()
    max_len, size = saved.config.model.max_len, saved.config.train.eval_batch_size
    ks = tuple(sorted({1, k}))
    with torch.no_grad():
        ours = evaluate(
            model_scorer(model), eval_batches(view.rows, size, max_len), ks, rejected_k=k
        )
    popular = evaluate(
        popularity_scorer(view.counts), eval_batches(view.rows, size, max_len), ks, rejected_k=k
    )
    result: dict[str, Any] = {
        "split": split,
        "k": k,
        "rows": int(ours.ranking.count),
        **{f"unknown_to_model_{name}": count for name, count in view.unknown.items()},
        **({"negative_inputs_left_out": view.negative_inputs} if view.negative_inputs else {}),
        **ours.metrics(),
        **{f"popular_{name}": value for name, value in popular.metrics().items()},
    }
    if view.clusters is not None and saved.config.model.num_actions > 1:
        result.update(_responsiveness(model, view.rows, k, view.clusters))
    return result
