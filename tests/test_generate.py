"""The synthetic generator: determinism, learnable structure, chunked writing, the CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from negrec import storage
from negrec.cli import main as cli_main
from negrec.data.generated_log import GenerateConfig, run
from negrec.data.synthetic import (
    NEGATIVE_EVENTS,
    SyntheticParams,
    build_world,
    generate_events,
    item_clusters,
)
from negrec.errors import NegrecError

USERS, ITEMS, EVENTS = 400, 1_000, 40_000


@pytest.fixture(scope="module")
def log() -> pd.DataFrame:
    """A log with its items' clusters and each event's negative flag."""
    params = SyntheticParams(users=USERS, items=ITEMS, events=EVENTS, seed=7)
    frame = generate_events(USERS, ITEMS, EVENTS, seed=7).to_pandas()
    clusters = item_clusters(params).to_pandas().set_index("item_id")["cluster"]
    frame["cluster"] = frame["item_id"].map(clusters).to_numpy()
    frame["negative"] = frame["event"].isin(NEGATIVE_EVENTS).to_numpy()
    return frame


def test_same_seed_same_log_and_another_seed_differs():
    first = generate_events(50, 100, 3_000, seed=1)
    assert first.equals(generate_events(50, 100, 3_000, seed=1))
    assert not first.equals(generate_events(50, 100, 3_000, seed=2))
    assert first.num_rows == 3_000


def test_schema_ids_and_events(log):
    table = generate_events(20, 30, 500, seed=0)
    assert table.schema.names == ["user_id", "item_id", "timestamp", "event"]
    assert [str(t) for t in table.schema.types] == ["int64", "int64", "int64", "string"]
    assert log["user_id"].between(1, USERS).all() and log["item_id"].between(1, ITEMS).all()
    assert set(log["event"]) == {"click", "cart", "purchase", "skip", "dislike"}


def test_each_user_is_contiguous_and_in_time_order(log):
    users = log["user_id"].to_numpy()
    assert (np.diff(users) >= 0).all()  # users in id order, each user's events together
    same_user = np.diff(users) == 0
    assert (np.diff(log["timestamp"].to_numpy())[same_user] > 0).all()
    assert log.groupby("user_id").size().min() >= 3


def test_popularity_has_a_long_tail(log):
    counts = log["item_id"].value_counts().to_numpy()  # sorted, most popular first
    top_share = counts[: ITEMS // 100].sum() / counts.sum()
    assert top_share > 0.15  # the top 1% of items: far above the 1% of a uniform world
    assert (counts < counts.mean() / 2).sum() > ITEMS // 3  # and a long tail of rare items


def test_negatives_fall_outside_the_users_taste(log):
    """Share of a user's *other* positive events in the event's item cluster: high for
    positives (the taste), low for negatives."""
    positives = log[~log["negative"]]
    per_user = positives.groupby("user_id").size()
    per_cluster = positives.groupby(["user_id", "cluster"]).size()
    keys = pd.MultiIndex.from_arrays([log["user_id"], log["cluster"]])
    in_cluster = per_cluster.reindex(keys, fill_value=0).to_numpy() - ~log["negative"].to_numpy()
    others = per_user.reindex(log["user_id"]).to_numpy() - ~log["negative"].to_numpy()
    share = in_cluster / np.maximum(others, 1)
    negative_share = share[log["negative"].to_numpy()].mean()
    positive_share = share[~log["negative"].to_numpy()].mean()
    assert 0.15 < log["negative"].mean() < 0.6
    assert negative_share < 0.4 * positive_share


def test_items_follow_their_next_items(log):
    world = build_world(SyntheticParams(users=USERS, items=ITEMS, events=EVENTS, seed=7))
    previous = log["item_id"].to_numpy()[:-1] - 1
    following = log["item_id"].to_numpy()[1:] - 1
    same_user = np.diff(log["user_id"].to_numpy()) == 0
    hits = (world.next_items[previous] == following[:, None]).any(axis=1)[same_user]
    chance = world.next_items.shape[1] / ITEMS
    assert hits.mean() > 0.25 > 50 * chance


def test_tastes_drift_over_each_history(log):
    """Cluster mix of a user's first vs last third differs more than odd vs even events."""

    def distance(a: pd.Series, b: pd.Series) -> float:
        p = a.value_counts(normalize=True)
        q = b.value_counts(normalize=True)
        return 0.5 * p.subtract(q, fill_value=0).abs().sum()

    drift, noise = [], []
    for _, events in log[~log["negative"]].groupby("user_id"):
        clusters = events["cluster"].reset_index(drop=True)
        if len(clusters) < 60:
            continue
        third = len(clusters) // 3
        drift.append(distance(clusters[:third], clusters[-third:]))
        noise.append(distance(clusters[::2], clusters[1::2]))
    assert len(drift) > 50
    assert np.mean(drift) > 1.5 * np.mean(noise)


def _read_parts(out: str) -> tuple[pa.Table, list[int]]:
    parts = storage.list_files(storage.join(out, "events"), ".parquet")
    tables = [pq.read_table(p) for p in parts]
    return pa.concat_tables(tables), [t.num_rows for t in tables]


def test_chunked_files_hold_at_most_chunk_events_and_match_in_memory(tmp_path):
    summary = run(
        GenerateConfig(out=str(tmp_path / "g"), users=60, items=200, events=5_000, chunk_events=700)
    )
    table, sizes = _read_parts(str(tmp_path / "g"))
    assert sizes == [700] * 7 + [100]
    assert table.equals(generate_events(60, 200, 5_000, seed=0))
    assert summary["files"] == [f"events/part-{i:05d}.parquet" for i in range(8)]
    assert sum(summary["event_counts"].values()) == 5_000
    clusters = pq.read_table(tmp_path / "g" / "item_clusters.parquet")
    assert clusters.num_rows == 200 and pc.min(clusters["cluster"]).as_py() == 0
    stored = json.loads((tmp_path / "g" / "generator.json").read_text())
    assert stored["events"] == 5_000 and stored["params"]["seed"] == 0


def test_same_seed_writes_identical_bytes(tmp_path):
    for name in ("a", "b"):
        run(GenerateConfig(out=str(tmp_path / name), users=30, items=50, events=2_000, seed=5))
    for part in ("events/part-00000.parquet", "item_clusters.parquet", "generator.json"):
        assert (tmp_path / "a" / part).read_bytes() == (tmp_path / "b" / part).read_bytes()


def test_rerun_replaces_the_old_log_and_refuses_foreign_directories(tmp_path):
    out = str(tmp_path / "g")
    run(GenerateConfig(out=out, users=20, items=50, events=3_000, chunk_events=1_000))
    run(GenerateConfig(out=out, users=20, items=50, events=1_500, chunk_events=1_000))
    assert _read_parts(out)[1] == [1_000, 500]  # no stale part-00002 from the first run
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(NegrecError, match="not an earlier negrec output"):
        run(GenerateConfig(out=str(foreign), users=5, items=5, events=50))
    assert sorted(os.listdir(foreign)) == ["notes.txt"]
    assert [n for n in os.listdir(tmp_path) if "staging" in n] == []


def test_writes_to_s3(s3_bucket):
    out = f"{s3_bucket}/synthetic"
    run(GenerateConfig(out=out, users=30, items=40, events=1_200, chunk_events=500))
    files = storage.list_files(out)
    assert [f.removeprefix(out + "/") for f in files] == [
        "events/part-00000.parquet",
        "events/part-00001.parquet",
        "events/part-00002.parquet",
        "generator.json",
        "item_clusters.parquet",
    ]
    assert json.loads(storage.read_text(f"{out}/generator.json"))["events"] == 1_200


def test_cli_prints_a_json_summary_last(tmp_path, capsys):
    out = str(tmp_path / "cli")
    code = cli_main(
        ["generate", "--out", out, "--users", "40", "--items", "60", "--events", "900", "--json"]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["events"] == 900 and summary["users"] == 40 and summary["out"] == out
    assert summary["events_per_s"] > 0


def test_cli_rejects_bad_values_naming_the_option(tmp_path, capsys):
    assert cli_main(["generate", "--out", str(tmp_path / "x"), "--users", "0"]) == 1
    assert "--users" in capsys.readouterr().err
