"""Losses, negative sampling and the composed training objective."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from negrec.batching import TrainBatch
from negrec.config import ObjectiveConfig
from negrec.model.scoring import score_items
from negrec.objectives import (
    bce_loss,
    gbce_beta,
    gbce_loss,
    not_to_recommend_loss,
    sampled_softmax_loss,
    training_loss,
    uniform_negatives,
)
from tests.objective_helpers import small_batch, small_model


def reference_gbce(pos: torch.Tensor, neg: torch.Tensor, beta: float) -> torch.Tensor:
    """The gSASRec port's formulation: transform the positive logit in float64, then BCE."""
    pos64 = pos.double()
    gamma = torch.log(1.0 / (torch.sigmoid(pos64) ** (-beta) - 1.0))
    logits = torch.cat([gamma.unsqueeze(-1), neg.double()], dim=-1)
    labels = torch.zeros_like(logits)
    labels[..., 0] = 1.0
    return F.binary_cross_entropy_with_logits(logits, labels)


def test_gbce_beta_follows_the_calibration_formula() -> None:
    assert gbce_beta(256, 3417, 0.0) == 1.0
    assert gbce_beta(256, 3417, 1.0) == pytest.approx(256 / 3416)
    assert gbce_beta(256, 3417, 0.75) == pytest.approx(1 - 0.75 * (1 - 256 / 3416))


@pytest.mark.parametrize("scale", [1.0, 3.0, 6.0])
def test_gbce_equals_reference_formula_on_random_logits(scale: float) -> None:
    generator = torch.Generator().manual_seed(0)
    pos = torch.randn(64, generator=generator) * scale
    neg = torch.randn(64, 16, generator=generator) * scale
    beta = gbce_beta(16, 1000, 0.75)
    ours = gbce_loss(pos, neg, beta).double()
    reference = reference_gbce(pos, neg, beta)
    assert torch.isfinite(reference)
    assert abs(float(ours) - float(reference)) < 1e-6 * max(1.0, abs(float(reference)))


def test_gbce_is_finite_with_finite_gradients_on_extreme_logits() -> None:
    # Where the float64 reference itself overflows (sigmoid(s+) rounds to 1), ours stays finite.
    assert not torch.isfinite(reference_gbce(torch.tensor([40.0]), torch.tensor([[0.0]]), 0.8))
    pos = torch.tensor([-1e4, -100.0, 0.0, 100.0, 1e4], requires_grad=True)
    neg = torch.tensor([[1e4, -1e4]] * 5, requires_grad=True)
    loss = gbce_loss(pos, neg, gbce_beta(2, 100, 0.75))
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(pos.grad).all() and torch.isfinite(neg.grad).all()
    # Moderately extreme logits where the float64 reference is still finite agree with it.
    pos2, neg2 = torch.tensor([-60.0, 35.0]), torch.tensor([[40.0, -70.0], [0.0, 3.0]])
    assert float(gbce_loss(pos2, neg2, 0.8)) == pytest.approx(
        float(reference_gbce(pos2, neg2, 0.8)), rel=1e-6
    )


def test_t_zero_gbce_is_plain_bce() -> None:
    generator = torch.Generator().manual_seed(1)
    pos, neg = torch.randn(32, generator=generator), torch.randn(32, 4, generator=generator)
    logits = torch.cat([pos.unsqueeze(-1), neg], dim=-1)
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1
    expected = F.binary_cross_entropy_with_logits(logits, labels)
    torch.testing.assert_close(gbce_loss(pos, neg, gbce_beta(4, 50, 0.0)), expected)
    torch.testing.assert_close(bce_loss(pos, neg), expected)


def test_sampled_softmax_is_cross_entropy_over_positive_and_negatives() -> None:
    generator = torch.Generator().manual_seed(2)
    pos, neg = torch.randn(16, generator=generator), torch.randn(16, 7, generator=generator)
    expected = F.cross_entropy(
        torch.cat([pos.unsqueeze(-1), neg], dim=-1), torch.zeros(16, dtype=torch.long)
    )
    torch.testing.assert_close(sampled_softmax_loss(pos, neg), expected)


@pytest.mark.parametrize("loss", [gbce_loss, bce_loss, sampled_softmax_loss])
def test_absent_hard_negative_adds_nothing_and_present_one_adds_its_term(loss) -> None:
    args = (0.9,) if loss is gbce_loss else ()
    pos, neg = torch.tensor([0.5, -0.2]), torch.tensor([[0.1, 0.3], [0.0, -1.0]])
    none = torch.full((2,), float("-inf"))
    torch.testing.assert_close(loss(pos, neg, *args, hard=none), loss(pos, neg, *args))
    assert loss(pos, neg, *args, hard=torch.tensor([2.0, 2.0])) > loss(pos, neg, *args)


def test_valid_mask_averages_only_counted_positions() -> None:
    pos, neg = torch.tensor([1.0, -5.0]), torch.tensor([[0.0], [9.0]])
    masked = gbce_loss(pos, neg, 1.0, valid=torch.tensor([True, False]))
    torch.testing.assert_close(masked, gbce_loss(pos[:1], neg[:1], 1.0))
    with pytest.raises(ValueError, match="no positions"):
        gbce_loss(pos, neg, 1.0, valid=torch.tensor([False, False]))


def test_loss_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="must be positive logits"):
        gbce_loss(torch.zeros(3), torch.zeros(4, 2), 1.0)
    with pytest.raises(ValueError, match="hard-negative"):
        bce_loss(torch.zeros(3), torch.zeros(3, 2), hard=torch.zeros(2))


def test_not_to_recommend_term_matches_formula_and_is_zero_when_empty() -> None:
    scores = torch.tensor([-2.0, 0.0, 3.0])
    expected = -torch.log(1 - torch.sigmoid(scores)).mean()
    torch.testing.assert_close(not_to_recommend_loss(scores), expected)
    assert float(not_to_recommend_loss(torch.zeros(0))) == 0.0


def test_one_optimiser_step_on_not_to_recommend_lowers_the_rejected_score() -> None:
    model = small_model()
    batch = small_batch()
    config = ObjectiveConfig(negatives=4, not_to_recommend_weight=1.0, rejected_as_negatives=False)
    has_rejected = batch.rejected > 0

    def rejected_scores() -> torch.Tensor:
        with torch.no_grad():
            return score_items(model, model(batch.items, batch.actions), batch.rejected)[
                has_rejected
            ]

    before = rejected_scores()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    loss = training_loss(model, batch, config.model_copy(update={"loss": "bce"}))
    # Step on the not-to-recommend term alone.
    ntr_only = loss.total - loss.ranking
    assert loss.not_to_recommend > 0
    optimizer.zero_grad()
    ntr_only.backward()
    optimizer.step()
    after = rejected_scores()
    assert (after < before).all()


def test_shared_and_per_position_sampling_have_the_same_expected_loss() -> None:
    model = small_model(num_items=30).eval()
    batch = small_batch()
    losses: dict[str, list[float]] = {"shared": [], "per_position": []}
    for mode in losses:
        config = ObjectiveConfig(
            loss="gbce", negatives=8, sampling=mode, rejected_as_negatives=False
        )
        generator = torch.Generator().manual_seed(123)
        with torch.no_grad():
            for _ in range(400):
                losses[mode].append(float(training_loss(model, batch, config, generator).total))
    shared, per_position = torch.tensor(losses["shared"]), torch.tensor(losses["per_position"])
    standard_error = math.sqrt(shared.var() / len(shared) + per_position.var() / len(per_position))
    assert abs(float(shared.mean() - per_position.mean())) < 4 * standard_error
    # Per-position draws average over more negatives per batch, so vary less.
    assert per_position.var() < shared.var()


def test_uniform_negatives_cover_the_catalogue_and_skip_padding() -> None:
    draws = uniform_negatives(10, (20000,), generator=torch.Generator().manual_seed(0))
    assert int(draws.min()) == 1 and int(draws.max()) == 10
    counts = torch.bincount(draws, minlength=11)[1:].double()
    assert (counts / counts.sum() - 0.1).abs().max() < 0.01


def test_rejected_items_as_hard_negatives_raise_the_loss_when_they_score_high() -> None:
    model = small_model()
    batch = small_batch()
    plain = ObjectiveConfig(loss="gbce", negatives=4, rejected_as_negatives=False)
    hard = ObjectiveConfig(loss="gbce", negatives=4, rejected_as_negatives=True)
    with torch.no_grad():
        a = training_loss(model, batch, plain, torch.Generator().manual_seed(5)).total
        b = training_loss(model, batch, hard, torch.Generator().manual_seed(5)).total
    assert b > a


def test_batch_without_targets_gives_a_zero_loss_not_a_crash() -> None:
    model = small_model()
    batch = small_batch()
    empty = TrainBatch(batch.items, batch.actions, torch.zeros_like(batch.targets), batch.rejected)
    value = training_loss(model, empty, ObjectiveConfig(negatives=2))
    assert value.positions == 0 and float(value.total.detach()) == 0.0
