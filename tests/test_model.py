"""The action-aware gSASRec encoder and its scoring helpers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from negrec.config import ModelConfig
from negrec.model import ActionAwareGSASRec, last_position_scores, top_k
from negrec.model.scoring import score_per_position

NUM_ITEMS = 50


def make_model(**overrides) -> ActionAwareGSASRec:
    torch.manual_seed(0)
    config = ModelConfig(max_len=12, dim=16, blocks=2, heads=2, dropout=0.3, **overrides)
    return ActionAwareGSASRec(NUM_ITEMS, config).eval()


def batch(length: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    items = torch.randint(1, NUM_ITEMS + 1, (3, length), generator=generator)
    actions = torch.randint(0, 2, (3, length), generator=generator)
    return items, actions


def test_changing_a_later_item_never_changes_earlier_outputs() -> None:
    model = make_model()
    items, actions = batch()
    before = model(items, actions)
    changed = items.clone()
    changed[:, 5] = (changed[:, 5] % NUM_ITEMS) + 1
    after = model(changed, actions)
    torch.testing.assert_close(after[:, :5], before[:, :5])
    assert not torch.allclose(after[:, 5:], before[:, 5:])


def test_changing_an_action_changes_that_position_onwards_only() -> None:
    model = make_model()
    items, actions = batch()
    flipped = actions.clone()
    flipped[:, 4] = 1 - flipped[:, 4]
    before, after = model(items, actions), model(items, flipped)
    torch.testing.assert_close(after[:, :4], before[:, :4])
    assert (after[:, 4:] - before[:, 4:]).abs().max() > 1e-3


def test_left_padding_does_not_change_real_positions() -> None:
    model = make_model()
    items, actions = batch(length=5)
    padded_items = torch.cat([torch.zeros(3, 4, dtype=torch.int64), items], dim=1)
    padded_actions = torch.cat([torch.zeros(3, 4, dtype=torch.int64), actions], dim=1)
    short, padded = model(items, actions), model(padded_items, padded_actions)
    torch.testing.assert_close(padded[:, 4:], short, atol=1e-5, rtol=1e-5)
    assert padded[:, :4].abs().max() == 0


def test_single_action_model_is_plain_gsasrec() -> None:
    model = make_model(num_actions=1)
    items, _ = batch()
    out = model(items, torch.zeros_like(items))
    assert out.shape == (3, 8, 16)
    with pytest.raises(ValueError, match="action ids"):
        model(items, torch.ones_like(items))


def test_shared_output_embedding_scores_with_the_item_table() -> None:
    model = make_model(shared_output_embedding=True)
    assert model.output_embedding is None
    assert model.output_weights is model.item_embedding.weight
    assert make_model().output_weights is not make_model().item_embedding.weight


def test_scaled_item_embedding_equals_a_table_multiplied_by_sqrt_dim() -> None:
    torch.manual_seed(0)
    scaled = make_model(scale_item_embedding=True).eval()
    plain = make_model().eval()
    plain.load_state_dict(scaled.state_dict())
    with torch.no_grad():
        plain.item_embedding.weight.mul_(scaled.config.dim**0.5)
    items, actions = batch()
    assert torch.allclose(scaled(items, actions), plain(items, actions), atol=1e-5)
    assert not torch.allclose(scaled(items, actions), make_model().eval()(items, actions))


def test_dropout_is_active_in_training_and_off_in_eval() -> None:
    model = make_model()
    items, actions = batch()
    model.train()
    torch.manual_seed(3)
    first = model(items, actions)
    torch.manual_seed(4)
    second = model(items, actions)
    assert not torch.allclose(first, second)
    model.eval()
    torch.testing.assert_close(model(items, actions), model(items, actions))


def test_top_k_excludes_history_and_padding_and_matches_full_scores() -> None:
    model = make_model()
    items, actions = batch()
    ids, scores = top_k(model, items, actions, k=10)
    assert ids.shape == (3, 10)
    for row in range(3):
        assert not set(ids[row].tolist()) & set(items[row].tolist())
        assert 0 not in ids[row].tolist()
    full = last_position_scores(model, items, actions)
    full.scatter_(1, items, float("-inf"))
    expected_scores, expected_ids = full.topk(10, dim=1)
    torch.testing.assert_close(scores, expected_scores)
    assert torch.equal(ids, expected_ids)
    unfiltered, _ = top_k(model, items, actions, k=NUM_ITEMS, exclude_seen=False)
    assert set(items[0].tolist()) <= set(unfiltered[0].tolist())


@pytest.mark.parametrize(
    ("items", "actions", "error", "message"),
    [
        (torch.tensor([[1, 2, 51]]), torch.tensor([[0, 0, 0]]), ValueError, "item ids must lie"),
        (torch.tensor([[-1, 2, 3]]), torch.tensor([[0, 0, 0]]), ValueError, "item ids must lie"),
        (torch.tensor([1, 2, 3]), torch.tensor([0, 0, 0]), ValueError, r"\(batch, length\)"),
        (torch.tensor([[1.0, 2.0]]), torch.tensor([[0, 0]]), TypeError, "int64"),
        (
            torch.zeros(0, 4, dtype=torch.int64),
            torch.zeros(0, 4, dtype=torch.int64),
            ValueError,
            "empty batch",
        ),
        (
            torch.ones(1, 13, dtype=torch.int64),
            torch.zeros(1, 13, dtype=torch.int64),
            ValueError,
            "max_len",
        ),
    ],
)
def test_bad_input_is_rejected_with_a_message(items, actions, error, message) -> None:
    with pytest.raises(error, match=message):
        make_model()(items, actions)


def test_top_k_rejects_impossible_k() -> None:
    items, actions = batch()
    with pytest.raises(ValueError, match="k must lie"):
        top_k(make_model(), items, actions, k=NUM_ITEMS + 1)


@pytest.mark.parametrize("candidates", [4, 1], ids=["dense-logits", "gather"])
def test_per_position_scores_and_gradients_match_explicit_dot_products(candidates) -> None:
    # 51 ids <= 16 x 4 takes the full-catalogue path; 51 > 16 x 1 takes the gather.
    model = make_model()
    hidden = torch.randn(2, 5, model.config.dim, requires_grad=True)
    items = torch.randint(1, NUM_ITEMS + 1, (2, 5, candidates))
    got = score_per_position(model, hidden, items)
    want = (hidden.unsqueeze(2) * model.output_weights[items]).sum(-1)
    torch.testing.assert_close(got, want)
    (grad_got,) = torch.autograd.grad(got.square().sum(), hidden)
    (grad_want,) = torch.autograd.grad(want.square().sum(), hidden)
    torch.testing.assert_close(grad_got, grad_want)


def test_linear_init_std_sets_every_linear_layer() -> None:
    model = make_model(linear_init_std=0.02)
    weights = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, nn.Linear)])
    biases = torch.cat([m.bias for m in model.modules() if isinstance(m, nn.Linear)])
    assert float(weights.std()) == pytest.approx(0.02, rel=0.05)
    assert float(biases.abs().max()) == 0.0
    default = make_model()
    first = next(m for m in default.modules() if isinstance(m, nn.Linear))
    assert float(first.weight.std()) > 0.1  # PyTorch default: U(+-1/sqrt(16)), std 0.14
