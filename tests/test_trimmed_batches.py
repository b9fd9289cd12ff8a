"""Batches trimmed to their longest row, length bucketing, and training precision."""

from __future__ import annotations

import pytest
import torch

from negrec.batching import (
    PAD,
    TrainBatch,
    length_bucketed,
    train_batch_from_arrays,
    training_arrays,
)
from negrec.config import ModelConfig, ObjectiveConfig, TrainConfig
from negrec.model import ActionAwareGSASRec
from negrec.objectives.training_loss import training_loss
from negrec.training.precision import autocast_for, training_dtype


def padded_batch(lengths: list[int], width: int, items: int = 50, seed: int = 0) -> TrainBatch:
    generator = torch.Generator().manual_seed(seed)
    rows = [torch.randint(1, items + 1, (n,), generator=generator).numpy() for n in lengths]
    actions = [(torch.rand(n, generator=generator) < 0.3).long().numpy() for n in lengths]
    return train_batch_from_arrays(training_arrays(rows, actions, width))


def test_trimmed_batch_drops_only_columns_that_are_padding_everywhere() -> None:
    batch = padded_batch([4, 7, 3], width=20)
    trimmed = batch.trimmed()
    assert trimmed.items.shape == (3, 6)  # longest input: 7 interactions -> 6 positions
    assert bool((batch.items[:, :14] == PAD).all())
    assert torch.equal(trimmed.items, batch.items[:, 14:])
    assert torch.equal(trimmed.targets, batch.targets[:, 14:])


@pytest.mark.parametrize(
    "objective",
    [
        ObjectiveConfig(loss="ce", not_to_recommend_weight=0.5),
        ObjectiveConfig(loss="gbce", negatives=16, sampling="shared", not_to_recommend_weight=0.5),
        ObjectiveConfig(loss="softmax", negatives=16, not_to_recommend_weight=0.5),
        ObjectiveConfig(loss="ce", not_to_recommend_weight=0.5, not_to_recommend_window=5),
    ],
    ids=["ce", "gbce-shared", "softmax", "ce-window"],
)
def test_trimmed_batch_gives_the_loss_and_gradients_of_its_padded_copy(
    objective: ObjectiveConfig,
) -> None:
    torch.manual_seed(0)
    model = ActionAwareGSASRec(50, ModelConfig(max_len=30, dim=16, blocks=2, dropout=0.0))
    batch = padded_batch([5, 12, 9, 3], width=30)

    def loss_and_grads(b: TrainBatch) -> tuple[float, list[torch.Tensor]]:
        model.zero_grad()
        value = training_loss(model, b, objective, generator=torch.Generator().manual_seed(1))
        value.total.backward()
        return float(value.total.detach()), [p.grad.clone() for p in model.parameters()]

    full_loss, full_grads = loss_and_grads(batch)
    trimmed_loss, trimmed_grads = loss_and_grads(batch.trimmed())
    assert batch.trimmed().items.shape[1] == 11
    assert trimmed_loss == pytest.approx(full_loss, rel=1e-5)
    for full, trimmed in zip(full_grads, trimmed_grads, strict=True):
        torch.testing.assert_close(trimmed, full, atol=1e-6, rtol=1e-4)


def test_length_bucketing_keeps_every_row_once_and_trims_each_batch() -> None:
    lengths = [3 + (i * 7) % 40 for i in range(100)]
    batches = [padded_batch(lengths[i : i + 10], width=45, seed=i) for i in range(0, 100, 10)]
    out = list(length_bucketed(batches, window=4, generator=torch.Generator().manual_seed(0)))

    def rows(bs: list[TrainBatch]) -> list[tuple[int, ...]]:
        return sorted(tuple(r[r > 0].tolist()) for b in bs for r in b.items)

    assert rows(out) == rows(batches)
    assert len(out) == len(batches)
    for batch in out:
        assert bool((batch.items[:, 0] != PAD).any())  # trimmed: the first column is used
    full_width = sum(b.items.numel() for b in batches)
    assert sum(b.items.numel() for b in out) < 0.75 * full_width


def test_no_bucketing_still_trims_and_keeps_order() -> None:
    batches = [padded_batch([3, 5], 20, seed=s) for s in range(3)]
    out = list(length_bucketed(batches, window=1, generator=torch.Generator()))
    assert [torch.equal(o.items, b.trimmed().items) for o, b in zip(out, batches, strict=True)] == [
        True
    ] * 3


def test_precision_auto_follows_the_device_and_explicit_choices_win() -> None:
    cpu = torch.device("cpu")
    assert training_dtype("fp32", cpu) == torch.float32
    assert training_dtype("bf16", cpu) == torch.bfloat16
    expected = torch.bfloat16 if torch.cpu._is_amx_tile_supported() else torch.float32
    assert training_dtype("auto", cpu) == expected


def test_bf16_training_loss_stays_within_tolerance_of_fp32() -> None:
    torch.manual_seed(0)
    model = ActionAwareGSASRec(200, ModelConfig(max_len=40, dim=32, blocks=2, dropout=0.0))
    batch = padded_batch([30, 25, 38, 12] * 4, width=40, items=200)
    values = {}
    for precision in ("fp32", "bf16"):
        with autocast_for(TrainConfig(precision=precision), torch.device("cpu")):
            values[precision] = float(training_loss(model, batch, ObjectiveConfig()).total.detach())
    assert values["bf16"] == pytest.approx(values["fp32"], rel=0.01)
    assert values["bf16"] != values["fp32"]  # bf16 really ran
