"""Full-catalogue cross-entropy in chunks, and the softmax not-to-recommend term."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from negrec.batching import TrainBatch
from negrec.config import ModelConfig, ObjectiveConfig
from negrec.model import ActionAwareGSASRec
from negrec.objectives.catalogue_softmax import (
    FLOAT_BYTES,
    catalogue_softmax_loss,
    chunk_rows,
)
from negrec.objectives.losses import sampled_not_to_recommend_loss
from negrec.objectives.training_loss import training_loss


def naive_loss(
    hidden: torch.Tensor,
    table: torch.Tensor,
    targets: torch.Tensor,
    rejected: torch.Tensor,
    weight: float,
) -> torch.Tensor:
    """Every logit at once, float64, the textbook formulas (no chunks, no tricks)."""
    logits = hidden.double() @ table.double()[1:].T
    log_probs = torch.log_softmax(logits, dim=1)
    has_target, has_rejected = targets > 0, rejected > 0
    ce = -log_probs[has_target, targets[has_target] - 1].mean()
    if weight == 0 or not has_rejected.any():
        return ce
    p = torch.exp(log_probs[has_rejected, rejected[has_rejected] - 1])
    return ce + weight * (-torch.log1p(-p)).mean()


def random_problem(
    rows: int = 60, dim: int = 8, items: int = 40, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(rows, dim, generator=generator)
    table = torch.randn(items + 1, dim, generator=generator)
    targets = torch.randint(0, items + 1, (rows,), generator=generator)
    rejected = torch.randint(0, items + 1, (rows,), generator=generator)
    rejected[::3] = 0
    return hidden, table, targets, rejected


@pytest.mark.parametrize("budget_mib", [1e-6, 0.004, 256.0])
@pytest.mark.parametrize("weight", [0.0, 0.7])
def test_chunked_loss_equals_the_naive_one_in_value_and_gradients(
    budget_mib: float, weight: float
) -> None:
    hidden, table, targets, rejected = random_problem()
    ours_h, ours_t = hidden.clone().requires_grad_(), table.clone().requires_grad_()
    loss = catalogue_softmax_loss(ours_h, ours_t, targets, rejected, weight, budget_mib)
    loss.total.backward()
    ref_h = hidden.double().requires_grad_()
    ref_t = table.double().requires_grad_()
    reference = naive_loss(ref_h, ref_t, targets, rejected, weight)
    reference.backward()
    assert float(loss.total.detach()) == pytest.approx(float(reference), abs=1e-5)
    torch.testing.assert_close(ours_h.grad, ref_h.grad.float(), atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(ours_t.grad, ref_t.grad.float(), atol=1e-6, rtol=1e-4)
    assert float(ours_t.grad[0].abs().sum()) == 0.0  # padding is never a candidate


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any aten op produces while active."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, tuple | list) else [out]:
            if isinstance(tensor, torch.Tensor):
                self.largest = max(self.largest, tensor.numel())
        return out


def test_chunk_budget_bounds_every_tensor_the_loss_builds() -> None:
    hidden, table, targets, rejected = random_problem(rows=400, items=500)
    hidden.requires_grad_()
    budget_mib = 0.2  # 400 x 500 logits would be 0.76 MiB
    rows = chunk_rows(500, budget_mib)
    assert rows * 500 * FLOAT_BYTES <= budget_mib * 2**20 < 400 * 500 * FLOAT_BYTES
    with LargestTensor() as chunked:
        catalogue_softmax_loss(hidden, table, targets, rejected, 0.5, budget_mib).total.backward()
    with LargestTensor() as whole:
        catalogue_softmax_loss(hidden, table, targets, rejected, 0.5, 64.0).total.backward()
    assert chunked.largest <= rows * 500
    assert whole.largest >= 400 * 500  # the same problem unchunked does build all logits


@pytest.mark.parametrize(
    ("score", "others", "expected"),
    [
        # p = e^32 / (e^32 + 3), 1 - p ~ 4e-14: -log(1 - p) = log1p(e^32 / 3)
        (32.0, 0.0, math.log1p(math.exp(32.0) / 3.0)),
        # p = e^-70 / (e^-70 + 3) ~ 1e-31: -log(1 - p) = -log1p(-p)
        (-70.0, 0.0, -math.log1p(-math.exp(-70.0) / (math.exp(-70.0) + 3.0))),
        # p = 1/2 to float32 rounding, where the two branches of the computation meet
        (0.0, -math.log(3.0), -math.log1p(-1.0 / (1.0 + 3.0 * (1.0 / 3.0)))),
        # p ~ 1 - 1e-40: in float32 log p rounds to 0 and log(1 - exp(log p)) is inf
        (95.0, 0.0, math.log1p(math.exp(95.0) / 3.0)),
    ],
)
def test_softmax_not_to_recommend_equals_float64_reference_near_zero_and_one(
    score: float, others: float, expected: float
) -> None:
    """Four items; the rejected one scores ``score``, the three others ``others``."""
    table = torch.tensor([[0.0], [score], [others], [others], [others]])
    hidden = torch.ones(1, 1)
    value = catalogue_softmax_loss(
        hidden, table, torch.zeros(1, dtype=torch.int64), torch.tensor([1]), 1.0
    ).not_to_recommend
    assert math.isfinite(value)
    assert value == pytest.approx(expected, rel=1e-5, abs=1e-38)


def test_softmax_not_to_recommend_gradients_stay_finite_and_bounded() -> None:
    table = torch.randn(21, 4) * 30
    hidden = (torch.randn(16, 4) * 30).requires_grad_()
    rejected = torch.randint(1, 21, (16,))
    loss = catalogue_softmax_loss(hidden, table, torch.zeros(16, dtype=torch.int64), rejected, 1.0)
    loss.total.backward()
    assert math.isfinite(float(loss.total))
    assert torch.isfinite(hidden.grad).all()
    # d/d logits = softmax - softmax-without-r: each row's L1 norm is at most 2, so the
    # gradient to the state is at most 2 x the largest item norm / rows.
    bound = 2 * table.norm(dim=1).max() / 16
    assert float(hidden.grad.norm(dim=1).max()) <= float(bound) + 1e-4


def test_zero_weight_gives_exactly_the_plain_cross_entropy() -> None:
    hidden, table, targets, rejected = random_problem()
    plain = catalogue_softmax_loss(hidden, table, targets, torch.zeros_like(rejected), 0.0)
    off = catalogue_softmax_loss(hidden, table, targets, rejected, 0.0)
    assert torch.equal(plain.total, off.total)
    assert off.not_to_recommend == 0.0


def rejected_probability(model: ActionAwareGSASRec, batch: TrainBatch) -> torch.Tensor:
    with torch.no_grad():
        hidden = model(batch.items, batch.actions)
        probs = torch.softmax(hidden @ model.output_weights[1:].T, dim=-1)
        return probs[batch.rejected > 0, batch.rejected[batch.rejected > 0] - 1]


@pytest.mark.parametrize("loss", ["ce", "softmax"])
def test_one_optimiser_step_on_the_term_lowers_the_rejected_probability(loss: str) -> None:
    torch.manual_seed(0)
    model = ActionAwareGSASRec(30, ModelConfig(max_len=6, dim=16, blocks=1, dropout=0.0))
    items = torch.randint(1, 31, (8, 6))
    rejected = torch.zeros_like(items)
    rejected[:, -1] = torch.randint(1, 31, (8,))
    batch = TrainBatch(items, torch.zeros_like(items), torch.zeros_like(items), rejected)
    batch.targets[:, 0] = 1  # one target so the batch counts; its term is scaled away below
    before = rejected_probability(model, batch)
    config = ObjectiveConfig(loss=loss, negatives=8, not_to_recommend_weight=1000.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    training_loss(model, batch, config).total.backward()
    optimizer.step()
    after = rejected_probability(model, batch)
    assert bool((after < before).all())


def test_sampled_term_is_minus_log_one_minus_p_of_the_sampled_softmax() -> None:
    pos = torch.tensor([2.0, 0.0])
    neg = torch.tensor([[1.0, -1.0, 0.5], [3.0, -2.0, 0.0]])
    rejected = torch.tensor([40.0, -3.0])
    has_target = torch.tensor([True, False])
    ours = sampled_not_to_recommend_loss(pos, neg, rejected, has_target)
    logits_0 = torch.tensor([2.0, 1.0, -1.0, 0.5, 40.0], dtype=torch.float64)
    logits_1 = torch.tensor([3.0, -2.0, 0.0, -3.0], dtype=torch.float64)  # no target
    expected = 0.5 * sum(
        -torch.log1p(-torch.softmax(z, 0)[-1])
        if i
        else torch.logsumexp(z, 0) - torch.logsumexp(z[:-1], 0)
        for i, z in enumerate([logits_0, logits_1])
    )
    assert float(ours) == pytest.approx(float(expected), rel=1e-6)


def test_default_objective_is_full_catalogue_cross_entropy() -> None:
    assert ObjectiveConfig().loss == "ce"
