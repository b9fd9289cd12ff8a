"""train.long_histories=windows: a long sequence trains on every window, exactly once."""

from __future__ import annotations

import numpy as np
import pytest

from negrec.action_codes import NEGATIVE, POSITIVE
from negrec.batching import PAD, training_arrays
from negrec.config import build_config
from negrec.distributed.trainer import row_layout
from negrec.tuning.driver import _row_layouts
from negrec.tuning.space import Choice, SearchSpace

KEYS = ("items", "actions", "targets", "rejected")


def sequence(length: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    items = rng.integers(1, 40, length)
    actions = np.where(rng.random(length) < 0.3, NEGATIVE, POSITIVE)
    return items, actions


@pytest.mark.parametrize("length", [2, 7, 8, 9, 16, 17, 30])
def test_windows_cover_every_position_once_with_the_whole_sequences_targets(length):
    width = 8
    items, actions = sequence(length, seed=length)
    whole = training_arrays([items], [actions], length)  # one row, nothing cut
    rows = training_arrays([items], [actions], width, windows=True)
    positions = length - 1
    assert len(rows["items"]) == -(-positions // width)  # ceil
    for key in KEYS:
        # Oldest window first, padding dropped: the whole sequence's row again, so a
        # target that lies in the next window (a negative in between) is kept.
        joined = np.concatenate([row[row_mask] for row, row_mask in _unpadded(rows, key)])
        assert np.array_equal(joined, whole[key][0][-positions:])
    last = training_arrays([items], [actions], width)
    for key in KEYS:  # the most recent window is what `last` trains on
        assert np.array_equal(rows[key][0], last[key][0])


def _unpadded(rows: dict[str, np.ndarray], key: str):
    for r in reversed(range(len(rows["items"]))):
        yield rows[key][r], rows["items"][r] != PAD


def test_short_sequences_are_the_same_rows_either_way():
    seqs = [sequence(n, seed=n) for n in (1, 3, 9)]
    items, actions = [s[0] for s in seqs], [s[1] for s in seqs]
    plain, windowed = training_arrays(items, actions, 8), training_arrays(items, actions, 8, True)
    for key in KEYS:
        assert np.array_equal(plain[key], windowed[key])


def test_a_sweep_builds_training_data_for_every_row_layout_its_trials_use():
    space = SearchSpace(
        {
            "model.max_len": Choice(kind="choice", values=[50, 200]),
            "train.long_histories": Choice(kind="choice", values=["last", "windows"]),
        }
    )
    assert set(_row_layouts(space, {})) == {(50, False), (50, True), (200, False), (200, True)}
    assert _row_layouts(SearchSpace({}), {"train.long_histories": "windows"}) == [(200, True)]
    config = build_config({"model": {"max_len": 50}, "train": {"long_histories": "windows"}}, "t")
    assert row_layout(config) == (50, True)
