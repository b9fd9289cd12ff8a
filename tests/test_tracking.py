"""Where MLflow writes: artifacts go beside the tracking store (or to NEGREC_ARTIFACT_ROOT),
never into the working directory of whichever process logs them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from negrec import tracking
from negrec.errors import NegrecError
from tests.serving_helpers import sqlite_store


def _log_a_run(uri: str, source: Path) -> tuple[str, str]:
    """A run with a param, a metric and an artifact, through negrec's helpers; its id
    and its artifact URI."""
    run_id = tracking.start_or_resume_run(uri, "where-it-goes")
    tracking.log_params(uri, run_id, {"model.dim": "8"})
    tracking.log_metrics(uri, run_id, {"val_ndcg@10": 0.5}, step=1)
    client = tracking.client(uri)
    client.log_artifact(run_id, str(source))
    client.set_terminated(run_id)
    return run_id, client.get_run(run_id).info.artifact_uri


@pytest.fixture
def empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv(tracking.ARTIFACT_ROOT_ENV, raising=False)
    return cwd


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    source = tmp_path / "inputs" / "config.yaml"
    source.parent.mkdir()
    source.write_text("model: {dim: 8}\n")
    return source


def test_artifacts_of_a_sqlite_store_go_beside_the_database(
    empty_cwd: Path, artifact: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    uri = sqlite_store(store, tmp_path_factory)
    run_id, artifact_uri = _log_a_run(uri, artifact)
    assert os.listdir(empty_cwd) == []  # no mlartifacts/, mlruns/ or anything else
    logged = store / tracking.ARTIFACTS_FOLDER / run_id / "artifacts" / "config.yaml"
    assert logged.read_text() == artifact.read_text()
    assert artifact_uri.removeprefix("file://") == str(logged.parent)
    experiment = tracking.client(uri).get_experiment_by_name(tracking.DEFAULT_EXPERIMENT)
    assert experiment.artifact_location.removeprefix("file://") == str(
        store / tracking.ARTIFACTS_FOLDER
    )


def test_negrec_artifact_root_overrides_the_location(
    empty_cwd: Path,
    artifact: Path,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    uri = sqlite_store(store, tmp_path_factory)
    elsewhere = tmp_path / "artifacts"
    monkeypatch.setenv(tracking.ARTIFACT_ROOT_ENV, str(elsewhere))
    run_id, _ = _log_a_run(uri, artifact)
    assert os.listdir(empty_cwd) == []
    assert (elsewhere / run_id / "artifacts" / "config.yaml").is_file()
    assert not (store / tracking.ARTIFACTS_FOLDER).exists()


def test_artifact_locations_are_absolute_and_never_mlflow_s_cwd_default(
    empty_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A relative sqlite path is made absolute (Ray workers run elsewhere).
    assert tracking.artifact_location("sqlite:///store/mlflow.db") == str(
        empty_cwd / "store" / tracking.ARTIFACTS_FOLDER
    )
    # A tracking server or a file store decides for itself.
    assert tracking.artifact_location("http://127.0.0.1:5000") is None
    assert tracking.artifact_location("file:///tmp/mlruns") is None
    # Any other database has no place beside it: MLflow would use ./mlruns.
    with pytest.raises(NegrecError, match=tracking.ARTIFACT_ROOT_ENV) as error:
        tracking.artifact_location("postgresql+psycopg2://user:secret@db/mlflow")
    assert "secret" not in str(error.value)
    monkeypatch.setenv(tracking.ARTIFACT_ROOT_ENV, "s3://bucket/mlflow")
    assert tracking.artifact_location("postgresql://db/mlflow") == "s3://bucket/mlflow"
    monkeypatch.setenv(tracking.ARTIFACT_ROOT_ENV, "relative/artifacts")  # as the user means
    assert tracking.artifact_location("http://127.0.0.1:5000") == str(
        empty_cwd / "relative" / "artifacts"
    )
    assert os.listdir(empty_cwd) == []
