"""A new user's own data, first time right: relative paths, splits too small to train
on, input errors that fail once and clearly, and models scored on data prepared with
another vocabulary."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch
import yaml
from ray.train import UserCallback

from negrec import checkpoint, cli
from negrec.checkpoint import TrainState
from negrec.config import build_config
from negrec.data import generated_log
from negrec.data.loaders import load_prepared
from negrec.data.manifest import Manifest, check_evaluation_splits, read_manifest
from negrec.data.preparation import prepare
from negrec.data.prepare_config import PrepareConfig
from negrec.data.translation import index_translation, positive_inputs, translate_split
from negrec.distributed.trainer import TrainJob, run
from negrec.errors import NegrecError
from negrec.evaluation.checkpoint_metrics import evaluate_checkpoint
from negrec.model import ActionAwareGSASRec

NEGREC = str(Path(sys.executable).parent / "negrec")
SMALL = {
    "model": {"max_len": 50, "dim": 16, "blocks": 1, "num_actions": 2},
    "objective": {"loss": "ce"},
    "train": {"batch_size": 128, "max_epochs": 1, "patience": 1, "precision": "fp32"},
}


def _overrides(values: dict[str, Any]) -> list[str]:
    return [
        f"--set={section}.{key}={value}"
        for section, keys in values.items()
        for key, value in keys.items()
    ]


def _copy_prepared(source: str, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def _edit_manifest(prepared: Path, edit: Any) -> None:
    path = prepared / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


@pytest.mark.slow
def test_train_takes_relative_data_and_storage_from_another_directory(
    small_prepared: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Ray workers do not share the driver's working directory: relative URIs must be
    resolved on the driver (they used to fail inside the worker as 'no manifest')."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    data = os.path.relpath(small_prepared, elsewhere)
    assert not os.path.isabs(data) and data.startswith("..")
    code = cli.main(
        [
            "train",
            "--data",
            data,
            "--storage",
            "runs",
            "--name",
            "relative",
            "--tracking-uri",
            f"sqlite:///{tmp_path}/mlflow.db",
            *_overrides(SMALL),
        ]
    )
    assert code == 0
    assert "negrec train: done (max_epochs=1 reached)" in capsys.readouterr().out
    saved = list((elsewhere / "runs" / "relative").glob("checkpoint_*/checkpoint.json"))
    assert saved, "the run's checkpoints belong under the relative --storage"
    assert checkpoint.load(str(saved[0].parent)).data_uri == small_prepared


def test_job_models_pin_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    job = TrainJob(data="prepared", storage="s3://bucket/runs/", name="n")
    assert job.data == str(tmp_path / "prepared")
    assert job.storage == "s3://bucket/runs"
    with pytest.raises(NegrecError, match="names no bucket"):
        TrainJob(data="s3://", storage="runs", name="n")


def _generated_log(root: Path, users: int, items: int = 60) -> Path:
    log = root / "log"
    generated_log.run(
        generated_log.GenerateConfig(out=str(log), users=users, items=items, events=40 * users)
    )
    return log


def test_prepare_refuses_an_empty_validation_split(ray_session, tmp_path: Path) -> None:
    """Nine users give floor(0.1 x 9) = 0 validation users: refused with the counts and
    the setting to change, and nothing committed (an empty validation split used to be
    committed)."""
    log = _generated_log(tmp_path, users=9)
    out = tmp_path / "prepared"
    with pytest.raises(NegrecError) as caught:
        prepare(PrepareConfig(events=str(log), out=str(out)))
    message = str(caught.value)
    assert "the validation split has 0 users" in message
    assert "val_fraction=0.1" in message and "minimum of 1 (min_eval_users)" in message
    assert not (out / "manifest.json").exists()
    manifest = prepare(PrepareConfig(events=str(log), out=str(out), val_fraction=0.5))
    assert manifest.splits["val"].rows >= 1 and (out / "manifest.json").exists()


def _negrec(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    started = time.perf_counter()
    done = subprocess.run(
        [NEGREC, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    return done, time.perf_counter() - started


def test_train_refuses_an_empty_split_before_ray_starts(
    small_prepared: str, tmp_path: Path
) -> None:
    """A dataset committed before prepare checked its splits (simulated by its
    manifest) fails in one line within seconds, not after an epoch and four retries."""
    prepared = _copy_prepared(small_prepared, tmp_path / "old")
    _edit_manifest(prepared, lambda m: m["splits"]["val"].update(rows=0))
    done, seconds = _negrec(
        "train", "--data", "old", "--storage", "runs", "--name", "empty", cwd=tmp_path
    )
    output = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 1
    assert len(output) <= 5, output
    assert seconds < 20
    assert "the validation split has 0 users" in output[-1]
    assert "raise val_fraction" in output[-1]
    assert not (tmp_path / "runs").exists()


def test_prepare_of_an_unreadable_file_prints_one_line(tmp_path: Path) -> None:
    """Random bytes given as a CSV: the one error line names the file, with no Ray
    Data INFO lines around it (there were 12) and no traceback."""
    (tmp_path / "events.csv").write_bytes(np.random.default_rng(1).bytes(5000))
    done, _ = _negrec(
        "prepare", "--events", "events.csv", "--format", "table", "--out", "out", cwd=tmp_path
    )
    output = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 1
    assert len(output) <= 5, output
    assert output[-1].startswith(f"negrec prepare: error: {tmp_path / 'events.csv'}: ")
    assert not (tmp_path / "out").exists()


class RecordExceptions(UserCallback):
    """Runs in the Train controller: one line per worker exception (each one restarts
    the worker group while retries are left)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def after_exception(self, run_context: Any, worker_exceptions: dict[int, Exception]) -> None:
        with open(self.path, "a") as handle:
            handle.write(json.dumps({str(k): str(v) for k, v in worker_exceptions.items()}) + "\n")


@pytest.mark.slow
def test_an_input_error_in_a_worker_fails_once_without_retries(
    small_prepared: str, tmp_path: Path
) -> None:
    """A damaged validation file passes the driver's checks and breaks the first
    validation on the worker: the run stops with that error, and no retry is made."""
    prepared = _copy_prepared(small_prepared, tmp_path / "damaged")
    manifest = json.loads((prepared / "manifest.json").read_text())
    damaged = prepared / manifest["splits"]["val"]["files"][0]
    damaged.write_bytes(np.random.default_rng(0).bytes(4096))
    exceptions = tmp_path / "exceptions.jsonl"
    job = TrainJob(
        data=str(prepared),
        storage=str(tmp_path / "runs"),
        name="damaged",
        config=build_config(SMALL),
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        max_failures=3,
    )
    with pytest.raises(NegrecError, match="is not a readable Parquet file") as caught:
        run(job, callbacks=[RecordExceptions(str(exceptions))])
    assert str(damaged) in str(caught.value)
    assert not exceptions.exists(), exceptions.read_text()


def _vocab(ids: list[Any]) -> pa.Table:
    return pa.table({"item_id": ids, "index": pa.array(range(1, len(ids) + 1), pa.int32())})


def test_translate_split_matches_items_by_original_id() -> None:
    model_vocab = _vocab([10, 20, 30, 40])  # model indices 1..4
    data_vocab = _vocab([30, 99, 10, 40])  # data index 2 (id 99) is unknown to the model
    to_model = index_translation(model_vocab, data_vocab)
    assert to_model.tolist() == [0, 3, 0, 1, 4]
    rows = pa.table(
        {
            "user_id": [1, 2, 3],
            "items": pa.array([[1, 2, 3], [2, 4], [4]], pa.list_(pa.int32())),
            "actions": pa.array([[0, 1, 0], [0, 1], [0]], pa.list_(pa.int8())),
            "target": pa.array([4, 1, 2], pa.int32()),
            "heldout_rejected": pa.array([[2, 3], [], [1]], pa.list_(pa.int32())),
        }
    )
    translated, unknown = translate_split(rows, to_model)
    assert translated["user_id"].to_pylist() == [1, 2]  # user 3's target (id 99) unknown
    assert translated["items"].to_pylist() == [[3, 1], [4]]
    assert translated["actions"].to_pylist() == [[0, 0], [1]]
    assert translated["target"].to_pylist() == [4, 3]
    assert translated["heldout_rejected"].to_pylist() == [[1], []]
    assert unknown == {"target": 1, "input": 2, "heldout_rejected": 1}


def test_positive_inputs_leave_out_rejected_interactions_only() -> None:
    """A model without actions gets the inputs a positives-only system logs; what it is
    scored on (targets, held-out rejected items) stays."""
    rows = pa.table(
        {
            "user_id": [1, 2],
            "items": pa.array([[5, 6, 7], [8]], pa.list_(pa.int32())),
            "actions": pa.array([[0, 1, 0], [1]], pa.list_(pa.int8())),
            "target": pa.array([9, 5], pa.int32()),
            "heldout_rejected": pa.array([[6], [7]], pa.list_(pa.int32())),
        }
    )
    kept, left_out = positive_inputs(rows)
    assert kept["items"].to_pylist() == [[5, 7], []]
    assert kept["actions"].to_pylist() == [[0, 0], []]
    assert kept.schema == rows.schema
    assert kept.select(["user_id", "target", "heldout_rejected"]) == rows.select(
        ["user_id", "target", "heldout_rejected"]
    )
    assert left_out == 2


def test_evaluate_scores_a_positives_only_model_on_action_aware_data(
    ray_session, tmp_path: Path
) -> None:
    """The comparison docs/results.md reports: a model trained without rejected items
    scored on the held-out rejected items of the action-aware split of the same log."""
    log = _generated_log(tmp_path, users=300, items=3000)
    with_rejected, positives = tmp_path / "with-rejected", tmp_path / "positives"
    prepare(PrepareConfig(events=str(log), out=str(with_rejected)))
    mapping = tmp_path / "positives.yaml"
    mapping.write_text(
        yaml.safe_dump(
            {
                "events": {
                    **{event: "positive" for event in ("click", "cart", "purchase")},
                    **{event: "ignore" for event in ("skip", "dislike")},
                }
            }
        )
    )
    prepare(PrepareConfig(events=str(log), out=str(positives), actions=str(mapping)))
    model_data = load_prepared(str(positives))
    assert model_data.num_items < load_prepared(str(with_rejected)).num_items
    config = build_config({**SMALL, "model": {**SMALL["model"], "num_actions": 1}})
    torch.manual_seed(0)
    model = ActionAwareGSASRec(model_data.num_items, config.model)
    saved = checkpoint.Checkpoint(
        config=config,
        num_items=model_data.num_items,
        data_uri=str(positives),
        state=TrainState(),
        model_state=model.state_dict(),
    )
    checkpoint.save(saved, tmp_path / "ckpt")
    own = evaluate_checkpoint(str(tmp_path / "ckpt"))
    assert own.unknown_to_model == {}
    assert not any(key.startswith("unknown_to_model") for key in own.model_dump())
    other = evaluate_checkpoint(str(tmp_path / "ckpt"), str(with_rejected))
    test_rows = load_prepared(str(with_rejected)).manifest.splits["test"].rows
    assert other.rows + other.unknown_to_model["target"] == test_rows
    assert other.unknown_to_model["input"] > 0  # items only ever rejected
    assert other.negative_inputs_left_out > 0  # the model cannot take a rejection
    assert own.negative_inputs_left_out == 0
    assert "negative_inputs_left_out" not in own.model_dump()
    assert 0.0 <= other.metrics["rejected_in_top10"] <= 1.0
    assert (
        cli.main(["evaluate", "--checkpoint", str(tmp_path / "ckpt"), "--data", str(with_rejected)])
        == 0
    )


def _manifest_values(method: str = "leave_one_out") -> dict[str, Any]:
    """A manifest as ``manifest.json`` holds it (8 users, 3 validation, 3 test)."""
    config = PrepareConfig(
        events="e", out="o", split="temporal" if method == "temporal" else "leave_one_out"
    )
    return {
        "format_version": 1,
        "created_unix_s": 1700000000.0,
        "source": {
            "events": "e",
            "format": "synthetic",
            "files": ["e/0.parquet"],
            "actions": "default",
            "item_clusters": None,
        },
        "rows_in": 40,
        "rows_used": 40,
        "dropped": {},
        "users_in": 8,
        "users_out": 8,
        "users_dropped": {},
        "num_items": 5,
        "vocab": "vocab.parquet",
        "item_clusters": None,
        "split": {
            "method": method,
            "validation_users": None,
            "validation_eligible_users": None,
            "cutoffs_ms": None,
        },
        "splits": {
            name: {"rows": rows, "files": [f"{name}/part-00000.parquet"]}
            for name, rows in (("train", 8), ("val", 3), ("test", 3))
        },
        "train_interactions": 30,
        "unknown_items": {},
        "partitions": 1,
        "config": config.model_dump(mode="json"),
        "versions": {"python": "3.11.7", "negrec": "0.1.0", "ray": None},
    }


def test_a_manifest_is_written_and_read_back_with_the_same_keys(tmp_path: Path) -> None:
    """``manifest.json`` keeps its keys through the model, so that datasets prepared by an
    earlier negrec load (this one lacks ``timings_s`` and ``config.min_eval_users``)."""
    values = _manifest_values()
    del values["config"]["min_eval_users"]
    (tmp_path / "manifest.json").write_text(json.dumps(values))
    manifest = read_manifest(str(tmp_path))
    assert manifest.splits["val"].rows == 3 and manifest.vocab == "vocab.parquet"
    assert manifest.config.min_eval_users == 1 and manifest.timings_s is None
    written = json.loads(manifest.to_json())
    assert list(written) == list(values)  # no timings_s, and never the run's seconds
    assert written["config"] == {**values["config"], "min_eval_users": 1}
    timed = manifest.model_copy(update={"timings_s": {"discover": 0.5}, "seconds": 2.0})
    assert list(json.loads(timed.to_json())) == [*values, "timings_s"]
    assert Manifest.model_validate_json(timed.to_json()) == timed.model_copy(
        update={"seconds": None}
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(format_version=2), "has format_version 2, this negrec reads 1"),
        (lambda m: m.update(rows=1), "rows: unknown key"),
        (lambda m: m["splits"]["val"].pop("files"), "splits.val.files: Field required"),
    ],
)
def test_a_manifest_this_negrec_cannot_read_is_refused(
    tmp_path: Path, edit: Any, message: str
) -> None:
    values = _manifest_values()
    edit(values)
    (tmp_path / "manifest.json").write_text(json.dumps(values))
    with pytest.raises(NegrecError, match="re-run `negrec prepare`") as caught:
        load_prepared(str(tmp_path))
    assert message in str(caught.value) and str(tmp_path / "manifest.json") in str(caught.value)


@pytest.mark.parametrize(
    ("method", "split", "fix"),
    [
        ("leave_one_out", "test", "give users longer sequences (min_sequence_length=3)"),
        ("temporal", "val", "lower val_quantile"),
        ("temporal", "test", "lower test_quantile"),
        ("given", "val", "the given val.txt needs users whose target is in train.txt"),
    ],
)
def test_every_split_method_names_its_fix(method: str, split: str, fix: str) -> None:
    """The check reads only the manifest: each way of splitting gets its own advice."""
    values = _manifest_values(method)
    values["splits"][split]["rows"] = 0
    manifest = Manifest.model_validate(values)
    name = "validation" if split == "val" else "test"
    with pytest.raises(NegrecError, match=f"the {name} split has 0 users") as caught:
        check_evaluation_splits(manifest, "events", minimum=1)
    assert fix in str(caught.value)
    assert "train/val/test " + ("8/0/3" if split == "val" else "8/3/0") in str(caught.value)
    check_evaluation_splits(manifest, "events", minimum=0)  # 0: no check
