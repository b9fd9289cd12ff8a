"""negrec score: top-k for every user of a split on Ray Data, committed with its manifest
last; the same lists as ``recommend``; bad input refused before anything is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from pyarrow.fs import FileSelector

from negrec import cli, storage
from negrec.data.loaders import load_prepared
from negrec.errors import NegrecError
from negrec.serving.api import recommend
from negrec.serving.batch import MANIFEST, read_score_manifest, score
from tests.s3 import S3Server
from tests.serving_helpers import (
    Checkpoints,
    check_scores,
    checkpoints,
    known_items,
    read_scores,
    registered_champion,
    split_inputs,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def saved(small_prepared: str, tmp_path_factory: pytest.TempPathFactory) -> Checkpoints:
    return checkpoints(small_prepared, tmp_path_factory)


@pytest.fixture(scope="module")
def champion(saved: Checkpoints, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A registry whose champion is the trained checkpoint; returns its tracking URI."""
    return registered_champion(saved, tmp_path_factory)


def _cross_check(
    table: pa.Table, inputs: dict[object, list[str]], model: str, k: int, users: int = 3
) -> None:
    """The first ``users`` rows have exactly the lists ``negrec.recommend`` gives."""
    rows = table.slice(0, users).to_pylist()
    answers = recommend(model, [inputs[row["user_id"]] for row in rows], k)
    for row, answer in zip(rows, answers, strict=True):
        assert [str(i) for i in row["items"]] == [str(i) for i in answer.items]
        assert row["scores"] == pytest.approx(answer.scores, rel=1e-4, abs=1e-5)


def test_a_checkpoint_scores_the_test_split_to_s3(
    saved: Checkpoints,
    small_prepared: str,
    s3_server: S3Server,
    s3_bucket: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = f"{s3_bucket}/scores/test"
    argv = ["score", "--model", saved.good, "--data", small_prepared, "--split", "test"]
    assert cli.main([*argv, "-k", "7", "--out", out, "--batch-size", "200", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    inputs = split_inputs(small_prepared, "test")
    assert summary["users_in"] == summary["users_out"] == len(inputs)
    assert summary["k"] == 7 and summary["out"] == out
    manifest = read_score_manifest(out, s3_server.options)
    assert manifest.split == "test" and manifest.model_version is None
    assert manifest.users_out == len(inputs) and not manifest.translated
    assert manifest.files and all(f.endswith(".parquet") for f in manifest.files)
    table = read_scores(out, s3_server.options)
    known = known_items(small_prepared)
    check_scores(table, inputs, known, 7)
    _cross_check(table, inputs, saved.good, 7)


def test_the_champion_scores_whole_training_sequences_on_two_actors(
    saved: Checkpoints, champion: str, small_prepared: str, tmp_path: Path
) -> None:
    out = str(tmp_path / "scores")
    manifest = score(
        "models:/negrec@champion", small_prepared, "train", out, actors=2, tracking_uri=champion
    )
    inputs = split_inputs(small_prepared, "train")
    assert manifest.k == 10  # the model's train.eval_k
    assert manifest.model_version == "models:/negrec/1" and manifest.actors == 2
    assert manifest.users_in == manifest.users_out == len(inputs)
    assert read_score_manifest(out) == manifest
    table = read_scores(out)
    known = known_items(small_prepared)
    check_scores(table, inputs, known, 10)
    _cross_check(table, inputs, saved.good, 10)


def _permuted_copy(prepared_uri: str, target: Path) -> None:
    """The same dataset with its vocabulary indices shuffled (what another prepare's
    rules would give): the same users and original items, other indices."""
    shutil.copytree(prepared_uri, target)
    prepared = load_prepared(str(target))
    vocab_path = target / prepared.manifest.vocab
    vocab = pq.read_table(vocab_path)
    new = np.concatenate([[0], np.random.default_rng(0).permutation(vocab.num_rows) + 1])

    def remap(column: pa.ChunkedArray) -> pa.Array:
        column = column.combine_chunks()
        if pa.types.is_list(column.type):
            values = pa.array(new[pc.list_flatten(column).to_numpy()], column.type.value_type)
            return pa.ListArray.from_arrays(column.offsets, values)
        return pa.array(new[column.to_numpy()], column.type)

    pq.write_table(vocab.set_column(1, "index", remap(vocab["index"])), vocab_path)
    for files in prepared.split_files.values():
        for path in files:
            table = pq.read_table(path)
            for name in ("items", "target", "heldout_rejected"):
                if name in table.column_names:
                    index = table.column_names.index(name)
                    table = table.set_column(index, name, remap(table[name]))
            pq.write_table(table, path)


def test_data_indexed_by_another_vocabulary_gets_the_same_lists(
    saved: Checkpoints, small_prepared: str, tmp_path: Path
) -> None:
    permuted = tmp_path / "permuted"
    _permuted_copy(small_prepared, permuted)
    manifest = score(saved.good, str(permuted), "val", str(tmp_path / "scores"), k=5)
    assert manifest.translated and manifest.users_out == manifest.users_in
    table = read_scores(str(tmp_path / "scores"))
    inputs = split_inputs(str(permuted), "val")
    assert split_inputs(small_prepared, "val") == inputs  # the same histories, other indices
    known = known_items(small_prepared)
    check_scores(table, inputs, known, 5)
    _cross_check(table, inputs, saved.good, 5)


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("missing-checkpoint", "cannot load --model"),
        ("missing-registered-model", "no registered model 'nosuch'"),
        ("unreadable-data", "cannot read --data"),
        ("missing-bucket", "bucket 'no-such-bucket' does not exist"),
        ("k-beyond-catalogue", "k=100000 must lie in 1.."),
        ("out-holds-other-files", "not an earlier score output"),
    ],
)
def test_bad_input_is_named_and_writes_no_manifest(
    case: str,
    says: str,
    saved: Checkpoints,
    champion: str,
    small_prepared: str,
    s3_bucket: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model, data, out = saved.good, small_prepared, f"{s3_bucket}/scores"
    extra: list[str] = []
    if case == "missing-checkpoint":
        model = str(tmp_path / "no-checkpoint")
    elif case == "missing-registered-model":
        model, extra = "models:/nosuch@champion", ["--tracking-uri", champion]
    elif case == "unreadable-data":
        data = str(tmp_path / "no-data")
    elif case == "missing-bucket":
        out = "s3://no-such-bucket/scores"
    elif case == "k-beyond-catalogue":
        extra = ["-k", "100000"]
    elif case == "out-holds-other-files":
        storage.write_text(f"{out}/notes.txt", "keep me")
    argv = ["score", "--model", model, "--data", data, "--out", out, *extra]
    assert cli.main(argv) == 1
    error = capsys.readouterr().err
    assert error.startswith("negrec score: error:") and says in error, error
    assert not storage.exists(f"{out}/{MANIFEST}")
    if case == "out-holds-other-files":
        assert storage.read_text(f"{out}/notes.txt") == "keep me"
    elif case != "missing-bucket":
        assert _objects(s3_bucket) == []  # not even a staging prefix


def _objects(bucket: str) -> list[str]:
    fs, path = storage.resolve(bucket)
    return [info.path for info in fs.get_file_info(FileSelector(path, recursive=True))]


def test_an_unknown_split_is_named(
    small_prepared: str, saved: Checkpoints, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(NegrecError, match="unknown split 'holdout'; choose one of train"):
        score(saved.good, small_prepared, "holdout", str(tmp_path / "scores"))
    argv = ["score", "--model", saved.good, "--data", small_prepared, "--split", "holdout"]
    with pytest.raises(SystemExit):
        cli.main([*argv, "--out", str(tmp_path / "scores")])
    assert "invalid choice: 'holdout'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_failure_after_scoring_leaves_no_manifest_and_no_staging(
    saved: Checkpoints, small_prepared: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise NegrecError("the manifest could not be written")

    monkeypatch.setattr("negrec.serving.batch._written", broken)
    with pytest.raises(NegrecError, match="could not be written"):
        score(saved.good, small_prepared, "val", str(tmp_path / "scores"), k=3)
    assert list(tmp_path.iterdir()) == []
