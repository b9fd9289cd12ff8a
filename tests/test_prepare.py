"""``negrec prepare`` end to end (Ray Data), its manifest, commit and the loaders.

The Ray tests are few and small; the per-partition task functions are also exercised
without Ray (they are plain functions), which is where the split/vocabulary logic of
several partitions is checked against the rows actually written.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
import torch

from negrec import storage
from negrec.batching import training_arrays
from negrec.cli import main as cli_main
from negrec.data import loaders
from negrec.data.actions import load_mapping
from negrec.data.adapters import discover
from negrec.data.files import read_parquet
from negrec.data.generated_log import GenerateConfig
from negrec.data.generated_log import run as generate
from negrec.data.manifest import MANIFEST
from negrec.data.partition import partition_file
from negrec.data.preparation import prepare
from negrec.data.prepare_config import PrepareConfig
from negrec.data.split_tasks import analyse_partition, build_vocabulary, write_partition
from negrec.errors import NegrecError

MAX_LEN = 20


@pytest.fixture(scope="module")
def synthetic_log(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("log") / "gen"
    generate(GenerateConfig(out=str(out), users=300, items=200, events=12_000, chunk_events=5_000))
    return str(out)


def split_rows(uri: str, split: str) -> list[dict]:
    table = loaders.read_split(loaders.load_prepared(uri), split)
    return [] if table is None else table.to_pylist()


# --- the task functions, without Ray ------------------------------------------------


def test_partition_tasks_vocabulary_is_exactly_the_training_items(synthetic_log, tmp_path):
    config = PrepareConfig(events=synthetic_log, out=str(tmp_path / "out"), val_users=40)
    spec = discover(config.events, config.format, None)
    mapping = load_mapping(config.format)
    work, stage, partitions = str(tmp_path / "work"), str(tmp_path / "stage"), 3
    files = [partition_file(spec, i, mapping, partitions, work, None) for i in range(3)]
    assert sum(f.rows_in for f in files) == 12_000
    summaries = [analyse_partition(config, work, p, None, None) for p in range(partitions)]
    assert sum(s.rows_in for s in summaries) == sum(f.rows_valid for f in files)
    result = build_vocabulary(work, stage, 40, None, None)
    assert result["validation_users"] == 40
    outputs = [
        write_partition(config, work, stage, p, None, result["threshold"], None)
        for p in range(partitions)
    ]
    assert sum(o.rows["val"] for o in outputs) == 40  # exactly K users across partitions

    vocab = read_parquet(f"{stage}/vocab.parquet", None)
    train = [read_parquet(f"{stage}/{o.files['train']}", None) for o in outputs]
    frequency = Counter(i for t in train for items in t["items"].to_pylist() for i in items)
    # Indices 1..N, each item's count is its frequency in the training rows as written.
    assert vocab["index"].to_pylist() == list(range(1, vocab.num_rows + 1))
    assert dict(zip(vocab["index"].to_pylist(), vocab["count"].to_pylist(), strict=True)) == dict(
        frequency
    )
    assert vocab["count"].to_pylist() == sorted(vocab["count"].to_pylist(), reverse=True)


# --- end to end on Ray ---------------------------------------------------------------

HAND_MADE_A = """user,item,ts,kind
1,10,100,like
1,11,200,skip
1,12,150,like
1,13,300,like
2,20,10,like
2,21,20,like
1,16,500,skip
1,15,400,like
1,17,600,skip
3,30,10,like
3,31,20,skip
3,30,10,like
3,10,25,like
3,15,28,skip
3,16,29,skip
3,32,30,like
3,33,40,like
"""
HAND_MADE_B = """user,item,ts,kind
1,14,300,skip
"""
ACTIONS = """columns: {user_id: user, item_id: item, timestamp: ts, event: kind}
timestamp_unit: ms
events: {like: positive, skip: negative}
"""


@pytest.fixture()
def hand_made(tmp_path: Path) -> tuple[str, str]:
    """Two CSV files (read in name order) and their action mapping."""
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "a.csv").write_text(HAND_MADE_A)
    (tmp_path / "log" / "b.csv").write_text(HAND_MADE_B)
    (tmp_path / "actions.yaml").write_text(ACTIONS)
    return str(tmp_path / "log"), str(tmp_path / "actions.yaml")


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli_main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_leave_one_out_on_a_hand_made_log(ray_session, hand_made, tmp_path, capsys):
    events, actions = hand_made
    out = str(tmp_path / "prepared")
    code, stdout, stderr = run_cli(
        [
            *("prepare", "--events", events, "--format", "table", "--actions", actions),
            *("--out", out, "--set", "val_users=0", "--set", "min_eval_users=0"),
            *("--set", "partitions=2", "--json"),
        ],
        capsys,
    )
    assert code == 0, stderr
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["rows_in"] == 18
    # Off a terminal, one progress line per finished stage (not one per file or
    # partition), in order, with the rows and users that stage counted.
    assert [line for line in stdout.splitlines() if line.startswith("prepare: ")] == [
        "prepare: stages 1/5 read_validate_partition 2/2: 18 rows read, 18 valid",
        "prepare: stages 2/5 sequences_and_counts 2/2: 2 users kept of 3",
        "prepare: stages 3/5 vocabulary: 10 items",
        "prepare: stages 4/5 write_splits 2/2: train 2, val 0, test 1 rows",
        f"prepare: stages 5/5 commit: {out}",
    ]
    assert result["dropped"] == {"duplicate": 1, "short_sequence": 2}  # user 2 is short
    manifest = json.loads(Path(out, MANIFEST).read_text())
    assert manifest["rows_used"] == 15
    assert manifest["rows_in"] == manifest["rows_used"] + sum(manifest["dropped"].values())
    assert manifest["users_in"] == 3 and manifest["users_out"] == 2

    vocab = read_parquet(f"{out}/vocab.parquet", None)
    index = dict(zip(vocab["item_id"].to_pylist(), vocab["index"].to_pylist(), strict=True))
    original = {v: k for k, v in index.items()}
    # From training only: 33 (user 3's test target) and 17 (held out) are not in it; 10
    # is in both training sequences, so it is the most frequent item.
    assert sorted(index) == [10, 11, 12, 13, 14, 15, 16, 30, 31, 32]
    assert index[10] == 1 and index[11] == 2
    trains = {r["user_id"]: [original[i] for i in r["items"]] for r in split_rows(out, "train")}
    assert trains == {1: [10, 12, 11, 13, 14], 3: [30, 31, 10, 15, 16, 32]}

    tests = {row["user_id"]: row for row in split_rows(out, "test")}
    assert list(tests) == [1]  # user 3's target (33) is unknown: counted, no example
    user1 = tests[1]
    assert [original[i] for i in user1["items"]] == [10, 12, 11, 13, 14]  # time order, tie by file
    assert user1["actions"] == [0, 0, 1, 0, 1]
    assert original[user1["target"]] == 15
    assert [original[i] for i in user1["heldout_rejected"]] == [16]  # 17 is unknown
    assert manifest["unknown_items"] == {"test_heldout_rejected": 1, "test_target": 1}


def test_prepare_local_loaders_and_rerun(ray_session, synthetic_log, tmp_path, capsys):
    out = str(tmp_path / "prepared")
    args = ["prepare", "--events", synthetic_log, "--out", out, "--set", "partitions=2"]
    code, _, stderr = run_cli([*args, "--set", "val_users=30", "--set", "val_fraction=0.5"], capsys)
    assert code == 0, stderr
    prepared = loaders.load_prepared(out)
    manifest = prepared.manifest
    assert manifest.rows_in == 12_000
    assert manifest.rows_in == manifest.rows_used + sum(manifest.dropped.values())
    assert (manifest.split.validation_eligible_users or 0) >= 30
    assert manifest.split.validation_users == 30  # a target unseen in training is
    unknown_targets = manifest.unknown_items.get("val_target", 0)  # counted, not written
    assert manifest.splits["val"].rows + unknown_targets == 30
    assert manifest.versions.ray and manifest.versions.pyarrow
    assert manifest.config.val_users == 30
    assert manifest.timings_s and "write_splits" in manifest.timings_s

    # Ray Data stream for Train: the same arrays as negrec.batching on the same rows.
    table = loaders.read_split(prepared, "train")
    dataset = loaders.train_dataset(prepared, MAX_LEN)
    batches = list(dataset.iter_torch_batches(batch_size=64))
    streamed = {k: torch.cat([b[k] for b in batches]) for k in batches[0]}
    assert set(streamed) == {"items", "actions", "targets", "rejected"}
    assert all(
        t.dtype == torch.int64 and t.shape == (table.num_rows, MAX_LEN) for t in streamed.values()
    )
    expected = training_arrays(
        loaders.list_column(table["items"]), loaders.list_column(table["actions"]), MAX_LEN
    )
    keys = ("items", "actions", "targets", "rejected")

    def sorted_rows(arrays: dict) -> np.ndarray:  # Ray Data does not keep row order
        rows = np.hstack([np.asarray(arrays[k]) for k in keys])
        return rows[np.lexsort(rows.T[::-1])]

    assert np.array_equal(sorted_rows(streamed), sorted_rows(expected))
    assert (expected["targets"] > 0).any() and (expected["rejected"] > 0).any()
    # The driver-built dataset (small data) holds exactly the streamed rows.
    in_memory = list(
        loaders.train_dataset_in_memory(prepared, MAX_LEN).iter_torch_batches(
            batch_size=64, dtypes=torch.int64
        )
    )
    held = {k: torch.cat([b[k] for b in in_memory]) for k in keys}
    assert np.array_equal(sorted_rows(held), sorted_rows(expected))
    # train.long_histories=windows: both paths give every window of the long sequences.
    windowed = training_arrays(
        loaders.list_column(table["items"]), loaders.list_column(table["actions"]), MAX_LEN, True
    )
    assert len(windowed["items"]) > table.num_rows  # the log has sequences over MAX_LEN
    for dataset in (
        loaders.train_dataset(prepared, MAX_LEN, windows=True),
        loaders.train_dataset_in_memory(prepared, MAX_LEN, windows=True),
    ):
        parts = list(dataset.iter_torch_batches(batch_size=64, dtypes=torch.int64))
        rows = {k: torch.cat([b[k] for b in parts]) for k in keys}
        assert np.array_equal(sorted_rows(rows), sorted_rows(windowed))

    # In-process batches: shapes, deterministic per (seed, epoch), reshuffled per epoch.
    first = list(loaders.local_train_batches(prepared, 50, MAX_LEN, seed=1, epoch=0))
    again = list(loaders.local_train_batches(prepared, 50, MAX_LEN, seed=1, epoch=0))
    other = list(loaders.local_train_batches(prepared, 50, MAX_LEN, seed=1, epoch=1))
    assert sum(b.size for b in first) == table.num_rows
    assert first[0].items.shape == (50, MAX_LEN) and first[0].targets.dtype == torch.int64
    assert torch.equal(first[0].items, again[0].items)
    assert not torch.equal(first[0].items, other[0].items)
    evals = list(loaders.local_eval_batches(prepared, "test", 64, MAX_LEN))
    assert sum(b.size for b in evals) == manifest.splits["test"].rows
    assert evals[0].target.shape == (64,) and evals[0].items.shape == (64, MAX_LEN)
    assert bool((evals[0].target > 0).all()) and int(evals[0].target.max()) <= prepared.num_items

    counts = loaders.item_counts(prepared)  # the popularity baseline: positives in training
    flat_items = np.concatenate(loaders.list_column(table["items"]))
    flat_actions = np.concatenate(loaders.list_column(table["actions"]))
    assert counts.shape == (prepared.num_items + 1,) and counts[0] == 0
    assert int(counts.sum()) == int((flat_actions == 0).sum()) < len(flat_items)
    assert int(counts[flat_items[0]]) == int(
        ((flat_items == flat_items[0]) & (flat_actions == 0)).sum()
    )

    clusters = loaders.item_clusters(prepared)
    assert clusters.shape == (prepared.num_items + 1,) and clusters[0] == -1
    source = read_parquet(f"{synthetic_log}/item_clusters.parquet", None).to_pandas()
    vocab = read_parquet(f"{out}/vocab.parquet", None).to_pandas()
    merged = vocab.merge(source, on="item_id")
    assert np.array_equal(
        clusters[merged["index"].to_numpy()].numpy(), merged["cluster"].to_numpy()
    )

    # A re-run with other settings replaces the output; no staging prefix is left behind.
    code, _, stderr = run_cli([*args, "--set", "val_users=10"], capsys)
    assert code == 0, stderr
    assert loaders.load_prepared(out).manifest.split.validation_users == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]


def test_failed_run_keeps_the_old_output_and_missing_manifest_is_refused(
    ray_session, hand_made, tmp_path, capsys
):
    events, actions = hand_made
    out = str(tmp_path / "prepared")
    base = ["prepare", "--events", events, "--format", "table", "--out", out]
    base += ["--set", "min_eval_users=0"]  # two users: no validation split
    assert run_cli([*base, "--actions", actions, "--set", "partitions=2"], capsys)[0] == 0
    before = Path(out, MANIFEST).read_text()
    Path(actions).write_text(ACTIONS.replace("skip: negative", "other: negative"))
    code, _, stderr = run_cli([*base, "--actions", actions, "--set", "partitions=2"], capsys)
    assert code == 1
    assert "a.csv, row 2: event 'skip'" in stderr, stderr  # both files fail: the first wins
    assert Path(out, MANIFEST).read_text() == before  # the committed output is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["actions.yaml", "log", "prepared"]

    Path(out, MANIFEST).unlink()
    with pytest.raises(NegrecError, match=r"no manifest\.json.*re-run `negrec prepare"):
        loaders.load_prepared(out)


@pytest.mark.parametrize(
    ("csv", "actions", "message"),
    [
        (None, ACTIONS, "does not exist"),
        (HAND_MADE_B.replace("skip", "meh"), ACTIONS, "b.csv, row 1: event 'meh'"),
        (
            HAND_MADE_B,
            ACTIONS.replace("item_id: item", "item_id: product"),
            "'product' \\(item_id\\)",
        ),
        ("user,item,ts,kind\n", ACTIONS, "no usable events"),
    ],
    ids=["missing-file", "unknown-event", "misnamed-column", "empty-input"],
)
def test_bad_input_exits_1_with_a_message(ray_session, tmp_path, capsys, csv, actions, message):
    events = tmp_path / "b.csv"
    if csv is not None:
        events.write_text(csv)
    (tmp_path / "actions.yaml").write_text(actions)
    code, _, stderr = run_cli(
        [
            *("prepare", "--events", str(events), "--format", "table"),
            *("--actions", str(tmp_path / "actions.yaml"), "--out", str(tmp_path / "out")),
        ],
        capsys,
    )
    assert code == 1
    assert re.search(message, stderr), stderr
    assert not (tmp_path / "out").exists()


def test_bad_config_key_is_named(tmp_path, capsys):
    code, _, stderr = run_cli(
        ["prepare", "--events", "x", "--out", str(tmp_path), "--set", "min_seq_len=4"], capsys
    )
    assert code == 1 and "min_seq_len: unknown key" in stderr


def test_s3_to_s3_matches_local(ray_session, s3_bucket, s3_server, synthetic_log, tmp_path):
    remote_log = f"{s3_bucket}/gen"
    for uri in storage.list_files(synthetic_log):
        relative = uri[len(synthetic_log) + 1 :]
        storage.write_bytes(f"{remote_log}/{relative}", Path(uri).read_bytes())
    settings = {"val_users": 20, "partitions": 2}
    remote = prepare(PrepareConfig(events=remote_log, out=f"{s3_bucket}/prepared", **settings))
    local = prepare(PrepareConfig(events=synthetic_log, out=str(tmp_path / "p"), **settings))
    for key in ("rows_in", "rows_used", "dropped", "num_items", "unknown_items"):
        assert getattr(remote, key) == getattr(local, key)
    prepared = loaders.load_prepared(f"{s3_bucket}/prepared")
    assert storage.exists(f"{s3_bucket}/prepared/{MANIFEST}")
    remote_test = loaders.read_split(prepared, "test").sort_by("user_id")
    local_test = loaders.read_split(loaders.load_prepared(str(tmp_path / "p")), "test")
    assert remote_test.equals(local_test.sort_by("user_id"))
    assert not [u for u in storage.list_files(s3_bucket) if "staging" in u or "_work" in u]
    assert pc.sum(remote_test["target"]).as_py() > 0


def test_temporal_split_cutoffs_are_time_quantiles(ray_session, synthetic_log, tmp_path, capsys):
    config = PrepareConfig(
        events=synthetic_log, out=str(tmp_path / "p"), split="temporal", partitions=2
    )
    manifest = prepare(config, progress=True)
    cutoffs = manifest.split.cutoffs_ms
    assert cutoffs is not None
    stages = [line.split()[3].rstrip(":") for line in capsys.readouterr().out.splitlines()]
    assert stages == [
        "read_validate_partition",
        "time_histogram",
        "sequences_and_counts",
        "vocabulary",
        "write_splits",
        "commit",
    ]
    times = (
        np.concatenate(
            [
                read_parquet(uri, None, ["timestamp"])["timestamp"].to_numpy()
                for uri in storage.list_files(f"{synthetic_log}/events")
            ]
        )
        * 1000
    )
    assert np.mean(times < cutoffs.val) == pytest.approx(0.8, abs=0.01)
    assert np.mean(times < cutoffs.test) == pytest.approx(0.9, abs=0.01)
    assert manifest.rows_in == manifest.rows_used + sum(manifest.dropped.values())
    assert all(manifest.splits[name].rows > 0 for name in ("train", "val", "test"))
    assert manifest.split.validation_users is None  # a leave-one-out setting only
