"""The not-to-recommend window: each position also learns from the rejections of its
next few interactions, not only the very next one."""

from __future__ import annotations

import pydantic
import pytest
import torch

from negrec.action_codes import NEGATIVE, POSITIVE
from negrec.batching import TrainBatch, train_batch_from_arrays, training_arrays
from negrec.config import ModelConfig, ObjectiveConfig
from negrec.model import ActionAwareGSASRec
from negrec.objectives.catalogue_softmax import catalogue_softmax_loss
from negrec.objectives.training_loss import later_rejections, training_loss

WIDTH = 12


def sequences(seed: int = 0) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    lengths = [3, 9, 13, 16, 6]  # 16 interactions: longer than WIDTH positions
    items = [torch.randint(1, 31, (n,), generator=generator) for n in lengths]
    negative = [torch.rand(n, generator=generator) < 0.4 for n in lengths]
    actions = [torch.where(neg, NEGATIVE, POSITIVE) for neg in negative]
    return items, actions


def batch_of(items: list[torch.Tensor], actions: list[torch.Tensor]) -> TrainBatch:
    arrays = training_arrays([i.numpy() for i in items], [a.numpy() for a in actions], WIDTH)
    return train_batch_from_arrays(arrays)


@pytest.mark.parametrize("window", [1, 2, 4, 40])
def test_later_rejections_are_the_negatives_2_to_window_interactions_ahead(window: int) -> None:
    items, actions = sequences()
    batch = batch_of(items, actions)
    positions, labels = later_rejections(batch.items, batch.rejected, window)
    found = sorted(zip(positions.tolist(), labels.tolist(), strict=True))

    expected = []
    for row, (seq, acts) in enumerate(zip(items, actions, strict=True)):
        inputs = len(seq) - 1  # the input is every interaction but the last
        first_kept = max(inputs - WIDTH, 0)  # only the last WIDTH positions are kept
        for p in range(first_kept, inputs):
            column = WIDTH - (inputs - p)
            for ahead in range(2, window + 1):
                if p + ahead < len(seq) and acts[p + ahead] == NEGATIVE:
                    expected.append((row * WIDTH + column, int(seq[p + ahead])))
    assert found == sorted(expected)
    if window > 1:
        assert expected  # the sequences do have later rejections to find


def reference_loss(
    model: ActionAwareGSASRec, batch: TrainBatch, weight: float, window: int
) -> torch.Tensor:
    """float64, every logit at once: the cross-entropy of the next liked item at each
    position plus w x the mean -log(1 - p) over every (position, rejection among its
    next ``window`` interactions) pair, found with a plain loop."""
    hidden = model(batch.items, batch.actions).double()
    log_probs = torch.log_softmax(hidden @ model.output_weights.double()[1:].T, dim=-1)
    has_target = batch.targets > 0
    ce = -log_probs[has_target, batch.targets[has_target] - 1].mean()
    terms = []
    rows, length = batch.items.shape
    for r in range(rows):
        for t in range(length):
            if batch.items[r, t] == 0:
                continue
            for ahead in range(window):
                if t + ahead < length and batch.rejected[r, t + ahead] > 0:
                    p = log_probs[r, t, batch.rejected[r, t + ahead] - 1].exp()
                    terms.append(-torch.log1p(-p))
    return ce + weight * torch.stack(terms).mean()


def small_model() -> ActionAwareGSASRec:
    torch.manual_seed(0)
    return ActionAwareGSASRec(30, ModelConfig(max_len=WIDTH, dim=16, blocks=1, dropout=0.0))


@pytest.mark.parametrize("window", [1, 3, 8])
def test_window_loss_equals_the_float64_loop_over_every_pair(window: int) -> None:
    model = small_model()
    batch = batch_of(*sequences())
    config = ObjectiveConfig(
        loss="ce", not_to_recommend_weight=50.0, not_to_recommend_window=window
    )
    ours = training_loss(model, batch, config).total
    ours_grads = torch.autograd.grad(ours, list(model.parameters()))
    reference = reference_loss(model, batch, 50.0, window)
    reference_grads = torch.autograd.grad(reference, list(model.parameters()))
    assert ours.item() == pytest.approx(reference.item(), rel=1e-5)
    for got, want in zip(ours_grads, reference_grads, strict=True):
        torch.testing.assert_close(got, want.float(), atol=1e-6, rtol=1e-4)


def test_a_wider_window_trains_on_more_rejections_and_is_another_loss() -> None:
    model = small_model()
    batch = batch_of(*sequences())
    narrow, wide = (
        training_loss(
            model, batch, ObjectiveConfig(not_to_recommend_weight=50.0, not_to_recommend_window=w)
        )
        for w in (1, 4)
    )
    assert wide.total.item() != pytest.approx(narrow.total.item(), rel=1e-6)
    assert wide.ranking == pytest.approx(narrow.ranking)  # the window only touches the term


def test_the_window_without_the_term_is_exactly_the_plain_loss() -> None:
    model = small_model()
    batch = batch_of(*sequences())
    plain = training_loss(model, batch, ObjectiveConfig())
    windowed = training_loss(model, batch, ObjectiveConfig(not_to_recommend_window=6))
    assert torch.equal(plain.total, windowed.total)


def test_the_window_needs_a_softmax_over_many_items() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"objective\.not_to_recommend_window"):
        ObjectiveConfig(loss="gbce", not_to_recommend_window=3)
    ObjectiveConfig(loss="softmax", sampling="in_batch", not_to_recommend_window=3)


@pytest.mark.parametrize("rows_per_chunk", [1, 3, 64])
def test_later_pairs_equal_rows_of_their_own_even_with_a_probability_near_one(
    rows_per_chunk: int,
) -> None:
    """The catalogue takes a later rejection as a (row, item) pair of a row it already
    scores; the sampled softmax as a target-less row of its own. Both are the same term:
    value and gradients agree, chunk boundaries crossed, and the pair whose probability
    is nearly 1 (exact form) stays finite."""
    generator = torch.Generator().manual_seed(3)
    items, dim, rows = 20, 8, 7
    table = torch.randn(items + 1, dim, generator=generator)
    hidden = torch.randn(rows, dim, generator=generator)
    hidden[4] = table[9] * 6.0  # item 9 takes almost all of row 4's probability
    targets = torch.tensor([3, 0, 5, 7, 2, 11, 0])
    rejected = torch.tensor([0, 4, 0, 8, 0, 0, 13])
    pair_rows = torch.tensor([0, 4, 2, 4, 6, 0, 1])
    pair_items = torch.tensor([6, 9, 1, 15, 2, 17, 9])
    budget = rows_per_chunk * items * 16 / (1 << 20)

    def loss_and_grads(*tensors: torch.Tensor, later: tuple | None) -> tuple:
        states, weights = hidden.clone().requires_grad_(), table.clone().requires_grad_()
        states_in = torch.cat([states, states[pair_rows]]) if later is None else states
        loss = catalogue_softmax_loss(states_in, weights, *tensors, 7.0, budget, later=later)
        return (loss.total.detach(), *torch.autograd.grad(loss.total, [states, weights]))

    as_pairs = loss_and_grads(targets, rejected, later=(pair_rows, pair_items))
    as_rows = loss_and_grads(
        torch.cat([targets, torch.zeros_like(pair_items)]),
        torch.cat([rejected, pair_items]),
        later=None,
    )
    probability = torch.softmax(hidden[4] @ table[1:].T, dim=0)[8]
    assert probability > 1 - 1e-4  # the exact branch is taken
    for pair_form, row_form in zip(as_pairs, as_rows, strict=True):
        assert torch.isfinite(pair_form).all()
        torch.testing.assert_close(pair_form, row_form, rtol=1e-4, atol=1e-5)
