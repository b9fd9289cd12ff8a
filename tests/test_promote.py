"""negrec promote: evaluation, registration, the champion alias, bad input before compute."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from negrec import cli, registry, tags, tracking
from negrec.errors import NegrecError
from negrec.serving import promotion
from tests.s3 import FAKE_ACCESS_KEY, FAKE_SECRET_KEY
from tests.serving_helpers import Checkpoints, checkpoints, closed_port_uri, sqlite_store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def saved(small_prepared: str, tmp_path_factory: pytest.TempPathFactory) -> Checkpoints:
    return checkpoints(small_prepared, tmp_path_factory)


@pytest.fixture
def no_compute(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad input must be refused before the evaluation (the compute) starts."""

    def evaluate(*args: object, **kwargs: object) -> None:
        raise AssertionError("evaluation started before the input was checked")

    monkeypatch.setattr("negrec.evaluation.checkpoint_metrics.evaluate_checkpoint", evaluate)


def _version(tags: dict[str, str], version: str = "7") -> SimpleNamespace:
    return SimpleNamespace(version=version, tags=tags)


def test_decision_needs_a_strictly_better_score_or_force() -> None:
    champion = _version({tags.test_metric("ndcg@10"): "0.2"})
    assert promotion.decide(0.1, "8", None, force=False, k=10).promote
    assert promotion.decide(0.21, "8", champion, force=False, k=10).promote
    assert not promotion.decide(0.2, "8", champion, force=False, k=10).promote
    assert not promotion.decide(0.1, "8", champion, force=False, k=10).promote
    assert promotion.decide(0.1, "8", champion, force=True, k=10).promote
    untagged = _version({})
    refused = promotion.decide(0.9, "8", untagged, force=False, k=10)
    assert not refused.promote and "unknown" in refused.reason


@pytest.mark.parametrize("previous", [0.25, None], ids=["over-a-champion", "first-champion"])
def test_promotion_result_round_trips_through_its_flat_json(previous: float | None) -> None:
    """``negrec promote --json`` names the scores with their cut-off, as it always did."""
    result = promotion.PromotionResult(
        model_name="negrec",
        version="2",
        model_uri="models:/negrec/2",
        promoted=True,
        forced=False,
        decision="version 2 beats the champion",
        champion_version="2",
        previous_champion_version=None if previous is None else "1",
        k=20,
        previous_champion_test=previous,
        test={"ndcg@20": 0.3, "recall@20": 0.5},
        checkpoint="s3://bucket/runs/ckpt",
        data="s3://bucket/prepared",
        mlflow_run_id="0123abcd",
        tracking_uri="sqlite:///mlflow.db",
    )
    flat = result.model_dump()
    assert list(flat) == [
        *("model_name", "version", "model_uri", "promoted", "forced", "decision"),
        *("champion_version", "previous_champion_version", "k"),
        *("previous_champion_test_ndcg@20", "test_ndcg@20", "test_recall@20"),
        *("checkpoint", "data", "mlflow_run_id", "tracking_uri"),
    ]
    assert flat["previous_champion_test_ndcg@20"] == previous
    assert promotion.PromotionResult.model_validate(flat) == result
    assert promotion.PromotionResult.model_validate_json(json.dumps(flat)) == result


def test_missing_or_damaged_checkpoint_is_refused_before_compute(
    saved: Checkpoints, tmp_path: Path, no_compute: None
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # never opened: the checks come first
    with pytest.raises(NegrecError, match="not a complete negrec checkpoint"):
        promotion.run(str(tmp_path / "nowhere"), tracking_uri=uri)
    damaged = tmp_path / "damaged"
    shutil.copytree(saved.bad, damaged)
    state = damaged / "state.pt"
    data = bytearray(state.read_bytes())
    data[len(data) // 2] ^= 0xFF
    state.write_bytes(bytes(data))
    with pytest.raises(NegrecError, match="SHA-256"):
        promotion.run(str(damaged), tracking_uri=uri)


def test_unreachable_tracking_server_is_a_clean_cli_error(
    saved: Checkpoints, no_compute: None, capsys: pytest.CaptureFixture[str]
) -> None:
    server = closed_port_uri()
    code = cli.main(["promote", "--checkpoint", saved.good, "--tracking-uri", server])
    err = capsys.readouterr().err
    assert code == 1
    assert f"MLflow tracking server {server} is unreachable" in err
    assert "Traceback" not in err


def test_unknown_sweep_is_refused(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, no_compute: None
) -> None:
    with pytest.raises(NegrecError, match="no sweep named 'nope'"):
        promotion.run(sweep="nope", tracking_uri=sqlite_store(tmp_path, tmp_path_factory))


def _champion(uri: str) -> str:
    return str(tracking.client(uri).get_registered_model("negrec").aliases[registry.CHAMPION])


def _secrets_absent(uri: str, folder: Path, text: str) -> None:
    """Neither fake credential of the session may reach the store, artifacts or output."""
    client = tracking.client(uri)
    exp = tracking.experiment_id(uri)
    logged = [text]
    for run in client.search_runs([exp]):
        logged += [json.dumps(run.data.params), json.dumps(run.data.tags)]
    for version in client.search_model_versions("name = 'negrec'"):
        logged.append(json.dumps(version.tags) + version.source)
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert any(p.name == "MLmodel" for p in files)
    for secret in (FAKE_ACCESS_KEY, FAKE_SECRET_KEY):
        assert all(secret not in entry for entry in logged)
        assert all(secret.encode() not in p.read_bytes() for p in files)


def test_champion_moves_only_to_a_better_version_or_with_force(
    saved: Checkpoints,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    uri = sqlite_store(tmp_path, tmp_path_factory)
    first = promotion.run(saved.bad, tracking_uri=uri)
    assert first.promoted and first.version == "1" and _champion(uri) == "1"

    # The good checkpoint arrives as the best of a sweep (tags as `negrec tune` sets them).
    client = tracking.client(uri)
    exp = tracking.experiment_id(uri)
    older = client.create_run(exp, start_time=1, tags={tags.SWEEP_NAME: "s1"})
    client.set_tag(older.info.run_id, tags.BEST_CHECKPOINT_URI, saved.bad)
    latest = client.create_run(exp, start_time=2, tags={tags.SWEEP_NAME: "s1"})
    client.set_tag(latest.info.run_id, tags.BEST_CHECKPOINT_URI, saved.good)
    better = promotion.run(sweep="s1", tracking_uri=uri)
    assert better.checkpoint == saved.good
    assert better.test["ndcg@10"] > first.test["ndcg@10"]
    assert better.promoted and _champion(uri) == better.version == "2"
    assert better.previous_champion_version == "1"
    version_tags = client.get_model_version("negrec", "2").tags
    assert float(version_tags[tags.test_metric("ndcg@10")]) == better.test["ndcg@10"]
    assert float(version_tags[tags.test_metric("recall@10")]) == better.test["recall@10"]

    worse = promotion.run(saved.bad, tracking_uri=uri)
    assert worse.version == "3" and not worse.promoted
    assert _champion(uri) == "2" and worse.champion_version == "2"
    assert "does not beat the champion" in worse.decision

    capsys.readouterr()
    code = cli.main(
        ["promote", "--checkpoint", saved.bad, "--force", "--tracking-uri", uri, "--json"]
    )
    out = capsys.readouterr().out
    forced = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and forced["promoted"] and forced["forced"]
    assert _champion(uri) == forced["version"] == "4"
    assert "champion moved: --force" in out
    _secrets_absent(uri, tmp_path, out)
