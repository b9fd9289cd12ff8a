"""End to end in process: prepared generated data -> the one loop -> metrics.

The generator puts negative feedback mostly on items outside a user's taste, so a
model that sees actions (and is told not to recommend rejected items) must rank the
held-out rejected items lower than the same model without actions.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from negrec.batching import EvalBatch, TrainBatch
from negrec.config import NegrecConfig, build_config
from negrec.data.loaders import item_counts, load_prepared, local_eval_batches, local_train_batches
from negrec.evaluation import evaluate, model_scorer, popularity_scorer
from negrec.model import ActionAwareGSASRec
from negrec.training import train

MAX_LEN = 50


def _config(with_actions: bool) -> NegrecConfig:
    return build_config(
        {
            "model": {
                "max_len": MAX_LEN,
                "dim": 32,
                "blocks": 1,
                "dropout": 0.1,
                "num_actions": 2 if with_actions else 1,
            },
            "objective": {
                "loss": "softmax",
                "negatives": 64,
                "rejected_as_negatives": with_actions,
                "not_to_recommend_weight": 1.0 if with_actions else 0.0,
            },
            "train": {"batch_size": 64, "lr": 3e-3, "max_epochs": 6, "patience": 3},
        }
    )


def _without_actions(batch):
    """The same rows with the action input removed (targets are unchanged)."""
    if isinstance(batch, TrainBatch):
        return TrainBatch(
            batch.items, torch.zeros_like(batch.actions), batch.targets, batch.rejected
        )
    return EvalBatch(
        batch.items, torch.zeros_like(batch.actions), batch.target, batch.heldout_rejected
    )


def _fit(prepared_uri: str, with_actions: bool) -> tuple[ActionAwareGSASRec, dict[str, float]]:
    prepared = load_prepared(prepared_uri)
    view = (lambda b: b) if with_actions else _without_actions
    config = _config(with_actions)

    def batches(epoch: int) -> Iterator[TrainBatch]:
        return (view(b) for b in local_train_batches(prepared, 64, MAX_LEN, 0, epoch))

    def split(name: str) -> Iterator[EvalBatch]:
        return (view(b) for b in local_eval_batches(prepared, name, 512, MAX_LEN))

    torch.manual_seed(0)
    model = ActionAwareGSASRec(prepared.num_items, config.model)
    train(model, batches, lambda: split("val"), config)
    return model, evaluate(model_scorer(model), split("test")).metrics()


@pytest.fixture(scope="module")
def action_aware(small_prepared: str) -> dict[str, float]:
    return _fit(small_prepared, with_actions=True)[1]


def test_loop_on_prepared_data_beats_most_popular(small_prepared: str, action_aware) -> None:
    prepared = load_prepared(small_prepared)
    popular = evaluate(
        popularity_scorer(item_counts(prepared)),
        local_eval_batches(prepared, "test", 512, MAX_LEN),
    ).metrics()
    assert action_aware["ndcg@10"] > popular["ndcg@10"] + 0.05
    assert action_aware["recall@10"] > popular["recall@10"]


def test_model_given_actions_ranks_rejected_items_lower(small_prepared: str, action_aware) -> None:
    _, without = _fit(small_prepared, with_actions=False)
    assert action_aware["rejected_in_top10"] < 0.9 * without["rejected_in_top10"]
