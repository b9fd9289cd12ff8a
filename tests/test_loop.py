"""The single training loop: learning, early stopping, seeding, resuming."""

from __future__ import annotations

import copy

import pytest
import torch

from negrec.checkpoint import TrainState
from negrec.config import NegrecConfig, build_config
from negrec.evaluation import evaluate, model_scorer, popularity_scorer
from negrec.model import ActionAwareGSASRec
from negrec.training import EpochReport, LoopHooks, train
from tests.patterns import item_counts, pattern_sequences, split_last_positive, train_batches

NUM_ITEMS = 40
MAX_LEN = 16


def _config(**train_overrides) -> NegrecConfig:
    return build_config(
        {
            "model": {"max_len": MAX_LEN, "dim": 32, "blocks": 1, "heads": 1, "dropout": 0.1},
            # Sampled softmax learns this toy pattern in a few epochs; the loop is under
            # test here, not the loss (tests/test_objectives.py covers the losses).
            "objective": {"negatives": 16, "loss": "softmax"},
            "train": {
                "batch_size": 32,
                "lr": 3e-3,
                "max_epochs": 6,
                "patience": 3,
                **train_overrides,
            },
        }
    )


def _data(seed: int = 0):
    items, actions = pattern_sequences(users=160, items=NUM_ITEMS, length=14, seed=seed)
    return split_last_positive(items, actions)


def _fit(config: NegrecConfig, hooks: LoopHooks | None = None):
    train_items, train_actions, val = _data()
    torch.manual_seed(config.train.seed)
    model = ActionAwareGSASRec(NUM_ITEMS, config.model)
    result = train(
        model,
        lambda epoch: train_batches(train_items, train_actions, MAX_LEN, 32, seed=epoch),
        lambda: [val],
        config,
        hooks=hooks,
    )
    return model, result, (train_items, train_actions, val)


class Recorder(LoopHooks):
    def __init__(self) -> None:
        self.reports: list[EpochReport] = []
        self.states: list[TrainState] = []

    def on_epoch_end(self, report: EpochReport, state: TrainState) -> None:
        self.reports.append(report)
        self.states.append(copy.deepcopy(state))


def test_training_learns_the_pattern_and_beats_popularity() -> None:
    config = _config()
    untrained = ActionAwareGSASRec(NUM_ITEMS, config.model)
    model, result, (train_items, train_actions, val) = _fit(config)
    trained_ndcg = evaluate(model_scorer(model), [val]).metrics()["ndcg@10"]
    untrained_ndcg = evaluate(model_scorer(untrained), [val]).metrics()["ndcg@10"]
    popular = popularity_scorer(item_counts(train_items, train_actions, NUM_ITEMS))
    popular_ndcg = evaluate(popular, [val]).metrics()["ndcg@10"]
    assert trained_ndcg > 0.5
    assert trained_ndcg > popular_ndcg + 0.2
    assert trained_ndcg > untrained_ndcg + 0.2
    # The model returned holds the best epoch's weights.
    assert trained_ndcg == max(h["ndcg@10"] for h in result.state.history)


def test_early_stopping_after_patience_epochs_without_gain() -> None:
    recorder = Recorder()
    # lr = 0 can never improve on epoch 1, so patience 2 stops after epoch 3.
    config = _config(lr=1e-12, patience=2, max_epochs=10)
    _, result, _ = _fit(config, hooks=recorder)
    assert [r.epoch for r in recorder.reports] == [1, 2, 3]
    assert recorder.reports[-1].stop and not recorder.reports[-2].stop
    assert result.state.best_epoch == 1
    reason = "early stopping, no validation gain for 2 epochs (patience; best epoch 1)"
    assert result.stop_reason == recorder.reports[-1].stop_reason == reason
    assert recorder.reports[-1].line(10).endswith(f"stopping: {reason}")
    assert "ETA" in recorder.reports[-2].line(10)


def test_time_budget_stops_after_the_epoch_that_uses_it_up() -> None:
    recorder = Recorder()
    # A budget far below one epoch's time: the first epoch runs whole, then the loop stops
    # (learning still improves, so patience cannot be what stopped it).
    config = _config(time_budget_minutes=1e-6, max_epochs=10, patience=10)
    _, result, _ = _fit(config, hooks=recorder)
    assert [r.epoch for r in recorder.reports] == [1]
    assert recorder.reports[0].stop
    assert result.state.epoch == 1
    assert result.stop_reason == "time budget of 1e-06 minutes reached"
    unlimited = Recorder()
    _, finished, _ = _fit(_config(max_epochs=2), hooks=unlimited)
    assert [r.epoch for r in unlimited.reports] == [1, 2]
    assert finished.stop_reason == "max_epochs=2 reached"
    assert "ETA" not in unlimited.reports[-1].line(2)  # no "ETA <= 0s" on the last epoch


def test_same_seed_same_weights_different_seed_different_weights() -> None:
    config = _config(max_epochs=2)
    a, _, _ = _fit(config)
    b, _, _ = _fit(config)
    c, _, _ = _fit(_config(max_epochs=2, seed=7))
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.item_embedding.weight, c.item_embedding.weight)


class Snapshots(LoopHooks):
    """What a checkpoint would hold after each epoch: the state and the latest weights."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.states: list[TrainState] = []
        self.weights: list[dict[str, torch.Tensor]] = []

    def on_epoch_end(self, report: EpochReport, state: TrainState) -> None:
        self.states.append(copy.deepcopy(state))
        self.weights.append(copy.deepcopy(self.model.state_dict()))


@pytest.mark.parametrize(
    "schedule",
    [
        {},
        {"lr_schedule": "cosine", "warmup_steps": 2, "decay_steps": 15},
        {"weight_average_decay": 0.9},
    ],
    ids=["constant-lr", "cosine-lr", "weight-average"],
)
def test_resume_after_epoch_two_matches_an_uninterrupted_run(schedule: dict) -> None:
    """Bit for bit, with a learning-rate schedule too (its rate is a function of the
    step the checkpoint keeps) and with a weight average (the state keeps it)."""
    train_items, train_actions, val = _data()

    def batches(epoch: int):
        return train_batches(train_items, train_actions, MAX_LEN, 32, seed=epoch)

    def run(config: NegrecConfig, model=None, resume=None, hooks=None):
        if model is None:
            torch.manual_seed(config.train.seed)
            model = ActionAwareGSASRec(NUM_ITEMS, config.model)
        result = train(model, batches, lambda: [val], config, hooks=hooks, resume=resume)
        return model, result

    three_epochs = _config(max_epochs=3, patience=5, **schedule)
    straight, straight_result = run(three_epochs)

    torch.manual_seed(three_epochs.train.seed)
    first = ActionAwareGSASRec(NUM_ITEMS, three_epochs.model)
    snapshots = Snapshots(first)
    run(_config(max_epochs=2, patience=5, **schedule), model=first, hooks=snapshots)

    resumed = ActionAwareGSASRec(NUM_ITEMS, three_epochs.model)
    resumed.load_state_dict(snapshots.weights[-1])
    saved = snapshots.states[-1]
    assert saved.epoch == 2 and saved.optimizer_state is not None
    resumed, result = run(three_epochs, model=resumed, resume=saved)

    assert [h["epoch"] for h in result.state.history] == [1, 2, 3]
    assert result.state.step == straight_result.state.step
    for (name, a), b in zip(
        straight.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    for name, a in straight_result.state.best_model_state.items():
        assert torch.equal(a, result.state.best_model_state[name]), name


def test_capped_epochs_continue_the_pass_instead_of_restarting_it() -> None:
    """5 batches a pass, 2 steps an epoch, 5 epochs: the 10 steps are two whole passes,
    so every row is trained on exactly twice (restarting the data at each epoch would
    train on the first 2 batches of each pass only)."""
    train_items, train_actions, val = _data()
    passes: list[int] = []
    drawn: list[tuple[int, int]] = []

    def batches(pass_number: int):
        passes.append(pass_number)
        for index, batch in enumerate(
            train_batches(train_items, train_actions, MAX_LEN, 32, seed=pass_number)
        ):
            drawn.append((pass_number, index))
            yield batch

    config = _config(max_epochs=5, patience=5, steps_per_epoch=2, length_buckets=1)
    torch.manual_seed(config.train.seed)
    model = ActionAwareGSASRec(NUM_ITEMS, config.model)
    result = train(model, batches, lambda: [val], config)

    assert result.state.step == 10
    assert drawn == [(p, i) for p in (1, 2) for i in range(5)]
    assert passes == [1, 2]
