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
from pydantic import Field, SerializerFunctionWrapHandler, model_serializer, model_validator

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
from negrec.strict import FrozenModel

RESPONSIVENESS_USERS = 1000

# The dict fields of EvaluationResult and the prefix of their keys in the flat JSON; the
# metrics, unprefixed, come last so that reading the JSON back tries the others first.
_PREFIXES = {"unknown_to_model": "unknown_to_model_", "popular": "popular_", "metrics": ""}


class EvaluationResult(FrozenModel):
    """What :func:`evaluate_checkpoint` returns and ``negrec evaluate --json`` prints.

    The JSON is flat, as it always was (the benchmarks parse it and keep it in their
    results): the metrics are top-level keys (``ndcg@10``, ``mrr``, ...), the baseline's
    are ``popular_<name>`` and what the model does not know ``unknown_to_model_<what>``;
    ``negative_inputs_left_out`` and the responsiveness keys appear only when there is
    something to report. Here each group is a field, so that no field name depends on
    ``k``.
    """

    split: str
    k: int
    rows: int
    """Rows evaluated: the split's users whose target the model knows."""
    unknown_to_model: dict[str, int] = Field(default_factory=dict)
    """Left out because the model does not know them: ``target`` (rows), ``input`` and
    ``heldout_rejected`` (items). Empty when the data is indexed like the model's."""
    negative_inputs_left_out: int = Field(0, exclude_if=lambda count: count == 0)
    """Rejected interactions left out of the inputs of a model trained without actions."""
    metrics: dict[str, float]
    """``negrec.metrics`` keys: ``mrr``, ``recall@k``, ``ndcg@k`` (and at 1), and
    ``rejected_in_top{k}`` when the split holds rejected items."""
    popular: dict[str, float]
    """The same metrics of the most-popular baseline on the same rows."""
    share_positive: float | None = Field(None, exclude_if=lambda value: value is None)
    share_negative: float | None = Field(None, exclude_if=lambda value: value is None)
    responsiveness: float | None = Field(None, exclude_if=lambda value: value is None)
    """:func:`negrec.evaluation.responsiveness` with the two shares it compares: only for
    an action-aware model on data whose items carry clusters."""

    @model_validator(mode="before")
    @classmethod
    def _group(cls, values: Any) -> Any:
        """The flat JSON form back into the model: prefixed keys into their fields."""
        if not isinstance(values, dict) or "metrics" in values:
            return values
        grouped: dict[str, Any] = {field: {} for field in _PREFIXES}
        for key, value in values.items():
            if key in cls.model_fields:
                grouped[key] = value
                continue
            field, prefix = next((f, p) for f, p in _PREFIXES.items() if key.startswith(p))
            grouped[field][key.removeprefix(prefix)] = value
        return grouped

    @model_serializer(mode="wrap")
    def _flat(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        flat: dict[str, Any] = {}
        for key, value in handler(self).items():
            if key in _PREFIXES:
                flat |= {f"{_PREFIXES[key]}{name}": item for name, item in value.items()}
            else:
                flat[key] = value
        return flat


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
) -> EvaluationResult:
    """Metrics of the checkpoint's best weights on a split of the prepared data. Data
    prepared with another vocabulary is matched to the model's through original item
    ids; what the model does not know is left out and counted (``unknown_to_model``),
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
    responsive: dict[str, float] = {}
    if view.clusters is not None and saved.config.model.num_actions > 1:
        responsive = _responsiveness(model, view.rows, k, view.clusters)
    return EvaluationResult(
        split=split,
        k=k,
        rows=int(ours.ranking.count),
        unknown_to_model=view.unknown,
        negative_inputs_left_out=view.negative_inputs,
        metrics=ours.metrics(),
        popular=popular.metrics(),
        **responsive,
    )
