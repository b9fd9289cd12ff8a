"""Ranking and negative-feedback metrics against hand-computed values, and the flat JSON
of a checkpoint's evaluation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from negrec.batching import EvalBatch
from negrec.evaluation import (
    EvaluationSums,
    RankingSums,
    data_responsiveness,
    evaluate,
    popularity_scorer,
    rejected_in_top_k,
    responsiveness,
    target_ranks,
)
from negrec.evaluation.checkpoint_metrics import EvaluationResult

INF = float("-inf")


def test_ranks_count_ties_against_the_target() -> None:
    scores = torch.tensor([[INF, 3.0, 1.0, 3.0, 2.0], [INF, 1.0, 1.0, 1.0, 1.0]])
    ranks = target_ranks(scores, torch.tensor([1, 4]))
    assert ranks.tolist() == [2, 4]  # one tie above item 1; item 4 ties with all three others


def test_ranks_ignore_excluded_items() -> None:
    scores = torch.tensor([[INF, 0.1, INF, 0.9, 0.5]])
    assert target_ranks(scores, torch.tensor([4])).tolist() == [2]


def test_recall_ndcg_mrr_match_hand_computed_values() -> None:
    sums = RankingSums(ks=(1, 3))
    sums.add(torch.tensor([1, 3, 4]))
    metrics = sums.metrics()
    assert metrics["recall@1"] == pytest.approx(1 / 3)
    assert metrics["recall@3"] == pytest.approx(2 / 3)
    assert metrics["ndcg@3"] == pytest.approx((1.0 + 1 / math.log2(4)) / 3)
    assert metrics["ndcg@1"] == pytest.approx(1 / 3)
    assert metrics["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 4) / 3)


def test_sums_reduce_like_one_big_evaluation() -> None:
    whole, first, second = RankingSums(), RankingSums(), RankingSums()
    ranks = torch.tensor([1, 2, 5, 11, 40, 3])
    whole.add(ranks)
    first.add(ranks[:2])
    second.add(ranks[2:])
    merged = RankingSums.from_vector(whole.ks, first.as_vector() + second.as_vector())
    assert merged.metrics() == pytest.approx(whole.metrics())


def _eval_batch() -> EvalBatch:
    # Row 0: history [0, 2, 3] (left-padded), target 4; row 1: history [1, 5, 4], target 2.
    return EvalBatch(
        items=torch.tensor([[0, 2, 3], [1, 5, 4]]),
        actions=torch.tensor([[0, 0, 1], [0, 1, 0]]),
        target=torch.tensor([4, 2]),
        heldout_rejected=torch.tensor([[1, 0], [3, 6]]),
    )


def _fixed_scorer(row_scores: list[list[float]]):
    table = torch.tensor(row_scores)
    return lambda batch: table.clone()


def test_seen_items_are_filtered_and_padding_never_ranks() -> None:
    # Catalogue of 6 items; column 0 (padding) gets the highest raw score on purpose.
    scores = [
        [99.0, 0.1, 0.9, 0.8, 0.5, 0.2, 0.3],  # seen 2, 3 outrank target 4 unless filtered
        [99.0, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2],  # target 2 below seen item 1
    ]
    filtered = evaluate(_fixed_scorer(scores), [_eval_batch()], ks=(1,)).metrics()
    assert filtered["recall@1"] == 1.0  # row0: 4 is best of {1,4,5,6}; row1: 2 best of {2,3,6}
    unfiltered = evaluate(_fixed_scorer(scores), [_eval_batch()], ks=(1, 10), exclude_seen=False)
    assert unfiltered.metrics()["recall@1"] == 0.0
    assert unfiltered.metrics()["mrr"] == pytest.approx((1 / 3 + 1 / 2) / 2)


def test_target_in_history_keeps_its_score() -> None:
    batch = EvalBatch(
        items=torch.tensor([[1, 2]]),
        actions=torch.tensor([[0, 0]]),
        target=torch.tensor([2]),
        heldout_rejected=torch.zeros(1, 1, dtype=torch.int64),
    )
    result = evaluate(_fixed_scorer([[0.0, 5.0, 4.0, 1.0]]), [batch], ks=(1,)).metrics()
    assert result["recall@1"] == 1.0


def test_rejected_in_top_k_counts_only_real_rejected_items() -> None:
    hits, total = rejected_in_top_k(torch.tensor([[1, 4], [6, 2]]), torch.tensor([[1, 0], [3, 6]]))
    assert (hits, total) == (2.0, 3.0)


def test_evaluate_reports_rejected_share_of_top_k() -> None:
    scores = [
        [0.0, 0.95, 0.9, 0.8, 0.5, 0.2, 0.3],  # top-2 after filtering {2,3}: 1, 4
        [0.0, 0.7, 0.6, 0.5, 0.4, 0.3, 0.9],  # filtering {1,4,5}: top-2 = 6, 2
    ]
    metrics = evaluate(_fixed_scorer(scores), [_eval_batch()], rejected_k=2).metrics()
    assert metrics["rejected_in_top2"] == pytest.approx(2 / 3)


def test_popularity_baseline_ranks_by_counts_and_respects_filtering() -> None:
    counts = torch.tensor([0.0, 50, 40, 30, 20, 10, 5])
    sums = evaluate(popularity_scorer(counts), [_eval_batch()], ks=(1, 10))
    # Row 0: {1,4,5,6} -> 4 is second; row 1: {2,3,6} -> 2 is first.
    assert sums.metrics()["mrr"] == pytest.approx((1 / 2 + 1) / 2)


def test_evaluation_sums_round_trip_through_a_vector() -> None:
    sums = evaluate(_fixed_scorer([[0.0, 1, 2, 3, 4, 5, 6]] * 2), [_eval_batch()])
    doubled = sums.with_vector(sums.as_vector() * 2)
    assert doubled.metrics() == pytest.approx(sums.metrics())
    assert doubled.ranking.count == 4


def test_metrics_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="target ids must lie"):
        target_ranks(torch.zeros(2, 5), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"scores must be \(batch, items\)"):
        target_ranks(torch.zeros(5), torch.tensor([1]))
    with pytest.raises(TypeError, match="int64"):
        target_ranks(torch.zeros(1, 5), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="split is empty"):
        EvaluationSums().metrics()
    with pytest.raises(ValueError, match="excluded"):
        target_ranks(torch.tensor([[INF, INF, 1.0]]), torch.tensor([1]))


def test_responsiveness_is_the_relative_change_in_same_cluster_share() -> None:
    clusters = torch.tensor([-1, 0, 0, 0, 1, 1, 1])  # items 1-3 cluster 0, 4-6 cluster 1

    def top_k_fn(items: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        # Positive last action -> same-cluster items; negative -> one of three same-cluster.
        same = torch.tensor([[2, 3, 1], [5, 6, 4]])
        mixed = torch.tensor([[2, 4, 5], [5, 1, 2]])
        return torch.where((actions[:, -1:] == 0), same, mixed)

    items = torch.tensor([[0, 1], [0, 4]])
    result = responsiveness(top_k_fn, items, torch.zeros_like(items), clusters)
    assert result["share_positive"] == pytest.approx(1.0)
    assert result["share_negative"] == pytest.approx(1 / 3)
    assert result["responsiveness"] == pytest.approx(-2 / 3)


def test_responsiveness_supports_multi_cluster_membership() -> None:
    membership = torch.tensor(
        [[False, False], [True, False], [True, True], [False, True], [False, True]]
    )

    def top_k_fn(items: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return torch.tensor([[2, 3]]) if int(actions[0, -1]) == 0 else torch.tensor([[3, 4]])

    result = responsiveness(top_k_fn, torch.tensor([[1]]), torch.tensor([[0]]), membership)
    assert result["share_positive"] == pytest.approx(0.5)  # item 2 shares genre 0 with item 1
    assert result["responsiveness"] == pytest.approx(-1.0)


def test_data_responsiveness_compares_the_next_likes_after_a_like_and_after_a_rejection() -> None:

    clusters = np.array([-1, 0, 0, 1, 1])  # items 1, 2 in cluster 0; 3, 4 in cluster 1
    # like 1 -> next likes 2, 3 (half cluster 0); reject 2 -> next likes 3, 4 (none of 0)
    items = np.array([1, 2, 3, 4])
    actions = np.array([0, 1, 0, 0])
    result = data_responsiveness([(items, actions)], clusters, horizon=2)
    # liked positions with a later like: 1 (next 3, 4 after skipping the rejected 2:
    # share 0), 3 (next 4: share 1); the rejected 2: next 3, 4, share 0
    assert result["positions_positive"] == 2 and result["positions_negative"] == 1
    assert result["share_positive"] == pytest.approx(0.5)
    assert result["share_negative"] == pytest.approx(0.0)
    assert result["responsiveness"] == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="liked and rejected"):
        data_responsiveness([(items, np.zeros(4, dtype=int))], clusters)


RANKED = ["mrr", "recall@1", "ndcg@1", "recall@10", "ndcg@10"]


@pytest.mark.parametrize(
    ("extra", "middle", "last"),
    [
        ({}, [], []),
        (
            {
                "unknown_to_model": {"target": 2, "input": 5, "heldout_rejected": 1},
                "negative_inputs_left_out": 3,
                "share_positive": 0.5,
                "share_negative": 0.0,  # a result, not an absence: it stays
                "responsiveness": -1.0,
            },
            [
                "unknown_to_model_target",
                "unknown_to_model_input",
                "unknown_to_model_heldout_rejected",
                "negative_inputs_left_out",
            ],
            ["share_positive", "share_negative", "responsiveness"],
        ),
    ],
    ids=["same-vocabulary", "translated-and-responsive"],
)
def test_evaluation_result_round_trips_through_its_flat_json(
    extra: dict, middle: list[str], last: list[str]
) -> None:
    """``negrec evaluate --json`` keeps the flat keys, in their order, that the
    benchmarks parse and store; the model reads them back."""
    result = EvaluationResult(
        split="test",
        k=10,
        rows=40,
        metrics={name: 0.1 * n for n, name in enumerate(RANKED, 1)},
        popular={"mrr": 0.1, "ndcg@10": 0.15},
        **extra,
    )
    flat = result.model_dump()
    expected = ["split", "k", "rows", *middle, *RANKED, "popular_mrr", "popular_ndcg@10", *last]
    assert list(flat) == expected
    assert EvaluationResult.model_validate(flat) == result
    assert EvaluationResult.model_validate_json(json.dumps(flat)) == result
