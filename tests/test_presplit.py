"""``--format sasrec``: a given split in SASRec's ``user item`` lines, kept exactly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from negrec.cli import main as cli_main
from negrec.data import loaders
from negrec.data.files import read_parquet
from negrec.data.preparation import prepare
from negrec.data.prepare_config import PrepareConfig
from negrec.errors import NegrecError

FIXTURE = Path(__file__).parent / "fixtures" / "sasrec"


def original_ids(prepared: loaders.PreparedData) -> dict[int, int]:
    table = read_parquet(f"{prepared.uri}/{prepared.manifest.vocab}", None)
    return dict(zip(table["index"].to_pylist(), table["item_id"].to_pylist(), strict=True))


def test_given_split_is_kept_row_for_row(tmp_path: Path, capsys) -> None:
    out = tmp_path / "prepared"
    code = cli_main(
        ["prepare", "--format", "sasrec", "--events", str(FIXTURE), "--out", str(out), "--json"]
    )
    assert code == 0
    printed = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(printed[-1])
    assert summary["splits"] == {"train": 3, "val": 1, "test": 2}
    # Off a terminal, one progress line per finished stage, with what it counted.
    assert [line for line in printed if line.startswith("prepare: ")] == [
        "prepare: stages 1/4 read: train 3 users, val 1 users, test 3 users",
        "prepare: stages 2/4 vocabulary: 5 items",
        "prepare: stages 3/4 write_splits 3/3: test 2 rows",
        f"prepare: stages 4/4 commit: {out}",
    ]
    prepared = loaders.load_prepared(str(out))
    ids = original_ids(prepared)
    assert prepared.num_items == 5  # items 10..14 occur in training

    train = loaders.read_split(prepared, "train")
    rows = [[ids[i] for i in r] for r in train["items"].to_pylist()]
    assert rows == [[10, 11, 12], [12, 13, 10, 14], [11, 12]]
    assert all(set(a) == {0} for a in train["actions"].to_pylist())

    val = loaders.read_split(prepared, "val")
    assert val["user_id"].to_pylist() == [3]
    assert [ids[i] for i in val["items"].to_pylist()[0]] == [11, 12]
    assert ids[val["target"].to_pylist()[0]] == 10

    # User 2's test target (item 99) never occurs in training: the row cannot be
    # scored, so it is dropped and its five lines counted, never silently lost.
    test = loaders.read_split(prepared, "test")
    assert test["user_id"].to_pylist() == [1, 3]
    assert [ids[t] for t in test["target"].to_pylist()] == [13, 12]
    manifest = prepared.manifest
    assert manifest.dropped == {"unknown_target": 5}
    assert manifest.rows_in == manifest.rows_used + 5
    assert manifest.unknown_items == {"test": 1}
    assert manifest.split.method == "given" and manifest.timings_s is None

    batch = next(loaders.local_eval_batches(prepared, "test", 8, 10))
    index_of = {item: index for index, item in ids.items()}
    assert batch.items.shape == (2, 10)
    assert np.array_equal(batch.items[0].numpy(), [0] * 7 + [index_of[i] for i in (10, 11, 12)])


def test_missing_file_and_bad_line_are_named(tmp_path: Path) -> None:
    folder = tmp_path / "split"
    shutil.copytree(FIXTURE, folder)
    (folder / "val.txt").unlink()
    with pytest.raises(NegrecError, match=r"val\.txt is missing"):
        prepare(PrepareConfig(events=str(folder), out=str(tmp_path / "a"), format="sasrec"))
    shutil.copy(FIXTURE / "val.txt", folder / "val.txt")
    (folder / "train.txt").write_text("1 10\n1 x\n")
    with pytest.raises(NegrecError, match=r"train\.txt: not a SASRec file"):
        prepare(PrepareConfig(events=str(folder), out=str(tmp_path / "b"), format="sasrec"))
    assert not (tmp_path / "b").exists()


def test_evaluation_user_without_a_target_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "split"
    shutil.copytree(FIXTURE, folder)
    (folder / "val.txt").write_text("3 11\n")
    with pytest.raises(NegrecError, match="user 3 has 1 line"):
        prepare(PrepareConfig(events=str(folder), out=str(tmp_path / "a"), format="sasrec"))
