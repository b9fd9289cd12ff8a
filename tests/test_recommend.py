"""negrec recommend: the registered pyfunc in a fresh process, exclusions, unknown items,
and clear errors for a missing model or alias, bad tokens and an unreachable server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from negrec import checkpoint, cli
from negrec.errors import NegrecError
from negrec.model.scoring import top_k
from negrec.serving.api import recommend
from negrec.serving.vocabulary import Vocabulary
from tests.serving_helpers import Checkpoints, checkpoints, closed_port_uri, registered_champion

pytestmark = pytest.mark.slow

UNKNOWN = ["no-such-item", "99999999"]


@pytest.fixture(scope="module")
def saved(small_prepared: str, tmp_path_factory: pytest.TempPathFactory) -> Checkpoints:
    return checkpoints(small_prepared, tmp_path_factory)


@pytest.fixture(scope="module")
def champion(saved: Checkpoints, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A registry whose champion is the trained checkpoint; returns its tracking URI."""
    return registered_champion(saved, tmp_path_factory)


@pytest.fixture(scope="module")
def history(saved: Checkpoints, small_prepared: str) -> tuple[list[str], list[str]]:
    """(tokens, rejected item ids): the 40 most frequent training items, every third one
    rejected. Longer than the model's window (20), so the oldest items are outside it."""
    vocabulary = Vocabulary.of_prepared(small_prepared)
    items = [str(vocabulary.item_id(index)) for index in range(1, 41)]
    rejected = items[::3]
    tokens = [f"{item}:{'-' if item in rejected else '+'}" for item in items]
    return tokens, rejected


def test_history_items_would_rank_high_without_exclusion(
    saved: Checkpoints, history: tuple[list[str], list[str]]
) -> None:
    """Precondition of the exclusion tests below: they would fail if nothing were excluded."""
    model = checkpoint.load(saved.good).best_model()
    window = torch.arange(21, 41).unsqueeze(0)  # vocabulary indices of the last 20 items
    actions = torch.tensor([[1 if i % 3 == 1 else 0 for i in range(21, 41)]])
    ids, _ = top_k(model, window, actions, 10, exclude_seen=False)
    assert set(ids[0].tolist()) & set(range(1, 41))


def test_champion_serves_from_a_fresh_process(
    champion: str, saved: Checkpoints, history: tuple[list[str], list[str]], tmp_path: Path
) -> None:
    tokens, rejected = history
    with_unknown = f"{UNKNOWN[0]}:- {tokens[-1]} {UNKNOWN[1]}:+"
    command = [sys.executable, "-m", "negrec.cli", "recommend", "--model"]
    command += ["models:/negrec@champion", "--tracking-uri", champion, "-k", "10", "--json"]
    command += ["--history", " ".join(tokens), "--history", with_unknown]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert not list(tmp_path.iterdir()), "only the given tracking store may be used"
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    first, second = answer["recommendations"]
    served = [str(item) for item in first["items"]]
    assert len(served) == 10 and first["unknown_items"] == []
    assert not set(served) & {token.split(":")[0] for token in tokens}
    assert not set(served) & set(rejected)
    assert first["scores"] == sorted(first["scores"], reverse=True)
    assert second["unknown_items"] == UNKNOWN
    assert "history 2: unknown" in done.stderr and all(u in done.stderr for u in UNKNOWN)
    # The registered model and its checkpoint give the same answer.
    direct = recommend(saved.good, [" ".join(tokens), with_unknown], k=10)
    assert [r.items for r in direct] == [first["items"], second["items"]]
    assert direct[1].unknown_items == UNKNOWN


def test_library_call_through_the_package(champion: str, history: tuple[list, list]) -> None:
    import negrec

    tokens, _ = history
    results = negrec.recommend("models:/negrec/1", [tokens, tokens[:5]], k=3, tracking_uri=champion)
    assert [len(r.items) for r in results] == [3, 3]
    assert not set(map(str, results[1].items)) & {t.split(":")[0] for t in tokens[:5]}


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("models:/nosuch@champion", r"no registered model 'nosuch'.*negrec promote"),
        ("models:/negrec@staging", r"model 'negrec' has no alias 'staging' \(aliases: champion\)"),
        ("models:/negrec/99", "model 'negrec' has no version 99"),
        ("models:/negrec", r"not a registered model URI.*models:/NAME@ALIAS"),
    ],
)
def test_missing_model_or_alias_is_named(champion: str, model: str, message: str) -> None:
    with pytest.raises(NegrecError, match=message):
        recommend(model, "1:+", tracking_uri=champion)


def test_cli_error_is_clean(champion: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["recommend", "--model", "models:/nosuch@champion", "--history", "1:+"]
    assert cli.main([*argv, "--tracking-uri", champion]) == 1
    err = capsys.readouterr().err
    assert "no registered model 'nosuch'" in err and "Traceback" not in err


def test_malformed_token_is_named_before_any_model_loads(tmp_path: Path) -> None:
    with pytest.raises(NegrecError, match=r"history 2: token '7:\?' is malformed"):
        recommend(str(tmp_path / "no-checkpoint"), ["5:+", "5:+ 7:?"])


def test_unreachable_tracking_server() -> None:
    with pytest.raises(NegrecError, match="is unreachable"):
        recommend("models:/negrec@champion", "1:+", tracking_uri=closed_port_uri())


def test_missing_sqlite_store_is_named_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "elsewhere.db"
    with pytest.raises(NegrecError, match=f"no MLflow database at {missing}"):
        recommend("models:/negrec@champion", "1:+", tracking_uri=f"sqlite:///{missing}")
    assert not missing.exists()


def test_history_of_unknown_items_only_is_an_error(champion: str) -> None:
    """Raised inside the MLflow model and passed through as the same clear error."""
    with pytest.raises(NegrecError, match="history 2 has no item the model knows"):
        recommend("models:/negrec@champion", ["1:+", f"{UNKNOWN[0]}:+"], tracking_uri=champion)


def test_import_negrec_stays_light() -> None:
    code = (
        "import sys, negrec\n"
        "assert 'torch' not in sys.modules and 'mlflow' not in sys.modules\n"
        "assert callable(negrec.recommend) and 'mlflow' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
