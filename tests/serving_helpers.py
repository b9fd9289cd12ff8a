"""Checkpoints, registries and closed ports for the promote, recommend and score tests,
and the checks of a score output.

Checkpoints are made in process (the one training loop on local batches, no Ray Train)
and cached per session, so the test files share one trained and one untrained model.
"""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import pyarrow as pa

    from negrec.storage import StorageOptions

_cache: dict[str, Checkpoints] = {}
_stores: dict[str, Path] = {}


@dataclass(frozen=True)
class Checkpoints:
    good: str  # trained for a few epochs
    bad: str  # untrained: random weights


def _checkpoint(prepared_uri: str, directory: Path, epochs: int) -> str:
    import torch

    from negrec import checkpoint
    from negrec.checkpoint import TrainState
    from negrec.config import build_config
    from negrec.data.loaders import load_prepared, local_eval_batches, local_train_batches
    from negrec.model import ActionAwareGSASRec
    from negrec.training import train

    config = build_config(
        {
            "model": {"max_len": 20, "dim": 32, "blocks": 1, "dropout": 0.1},
            "objective": {"negatives": 32},
            "train": {"batch_size": 128, "lr": 3e-3, "max_epochs": max(epochs, 1)},
        }
    )
    prepared = load_prepared(prepared_uri)
    torch.manual_seed(0)
    model = ActionAwareGSASRec(prepared.num_items, config.model)
    state = TrainState()
    if epochs:
        max_len, seed = config.model.max_len, config.train.seed
        state = train(
            model,
            lambda epoch: local_train_batches(prepared, 128, max_len, seed, epoch),
            lambda: local_eval_batches(prepared, "val", 512, max_len),
            config,
        ).state
    saved = checkpoint.Checkpoint(
        config, prepared.num_items, prepared_uri, state, model.state_dict()
    )
    return str(checkpoint.save(saved, directory))


def checkpoints(prepared_uri: str, factory: pytest.TempPathFactory) -> Checkpoints:
    if prepared_uri not in _cache:
        root = factory.mktemp("checkpoints")
        _cache[prepared_uri] = Checkpoints(
            good=_checkpoint(prepared_uri, root / "good", epochs=2),
            bad=_checkpoint(prepared_uri, root / "bad", epochs=0),
        )
    return _cache[prepared_uri]


def sqlite_store(folder: Path, factory: pytest.TempPathFactory) -> str:
    """A fresh sqlite tracking store in ``folder``: a copy of one empty database made
    once per session (MLflow's schema migrations take seconds per new database)."""
    from negrec import tracking

    if "template" not in _stores:
        template = factory.mktemp("mlflow-template") / "mlflow.db"
        tracking.client(f"sqlite:///{template}").search_experiments()
        _stores["template"] = template
    shutil.copyfile(_stores["template"], folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"


def registered_champion(saved: Checkpoints, factory: pytest.TempPathFactory) -> str:
    """A fresh registry whose champion is ``saved.good``; returns its tracking URI."""
    from negrec.serving import promotion

    uri = sqlite_store(factory.mktemp("registry"), factory)
    assert promotion.run(saved.good, tracking_uri=uri).promoted
    return uri


def split_inputs(prepared_uri: str, split: str) -> dict[object, list[str]]:
    """Each user's input items of ``split`` as ``ITEM:+`` / ``ITEM:-`` tokens."""
    from negrec.data.loaders import list_column, load_prepared, read_split
    from negrec.serving.vocabulary import Vocabulary

    vocabulary = Vocabulary.of_prepared(prepared_uri)
    rows = read_split(load_prepared(prepared_uri), split)
    assert rows is not None
    items, actions = list_column(rows["items"]), list_column(rows["actions"])
    return {
        user: [
            f"{vocabulary.item_id(int(i))}:{'-' if a else '+'}"
            for i, a in zip(row_items, row_actions, strict=True)
        ]
        for user, row_items, row_actions in zip(
            rows["user_id"].to_pylist(), items, actions, strict=True
        )
    }


def known_items(prepared_uri: str) -> set[str]:
    """The original ids of every item of a prepared dataset's vocabulary."""
    from negrec.serving.vocabulary import Vocabulary

    return {str(item) for item in Vocabulary.of_prepared(prepared_uri).item_ids}


def read_scores(out: str, options: StorageOptions | None = None) -> pa.Table:
    """Every row of a score output."""
    import pyarrow.parquet as pq

    from negrec import storage

    fs, path = storage.resolve(out, options)
    return pq.read_table(path, filesystem=fs)


def check_scores(table: pa.Table, inputs: dict[object, list[str]], known: set[str], k: int) -> None:
    """One row per user; k distinct known original ids, none of the user's, best first."""
    import numpy as np
    import pyarrow as pa

    assert table.schema.field("scores").type == pa.list_(pa.float32())
    users = table["user_id"].to_pylist()
    assert len(users) == len(set(users)) and set(users) == set(inputs)
    for user, items, scores in zip(
        users, table["items"].to_pylist(), table["scores"].to_pylist(), strict=True
    ):
        shown = [str(item) for item in items]
        seen = {token.rsplit(":", 1)[0] for token in inputs[user]}
        assert len(shown) == k and len(set(shown)) == k, user
        assert not set(shown) & seen, user
        assert set(shown) <= known, user
        assert np.all(np.diff(scores) <= 0), user


def closed_port_uri() -> str:
    """An http URI on 127.0.0.1 where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (for a server the test starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


_HIDE_NEGREC = '''\
"""Written by tests/serving_helpers.py: this interpreter cannot import the installed
negrec (editable or not), only a copy from elsewhere, such as a model's code/ folder."""
import os
import sys
from importlib.machinery import PathFinder

HIDDEN = {hidden!r}


def _editable(hook):
    return getattr(hook, "__module__", "").startswith("__editable__")


sys.meta_path[:] = [finder for finder in sys.meta_path if not _editable(finder)]
sys.path_hooks[:] = [hook for hook in sys.path_hooks if not _editable(hook)]
sys.path[:] = [
    entry for entry in sys.path
    if "__editable__" not in entry and os.path.abspath(entry or ".") not in HIDDEN
]
sys.path_importer_cache.clear()


class HideInstalledNegrec:
    """``negrec`` found in site-packages (a wheel install) is refused; code/ passes."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == "negrec":
            spec = PathFinder.find_spec(name)
            origin = os.path.abspath(spec.origin or "") if spec else ""
            if "site-packages" in origin or any(origin.startswith(h + os.sep) for h in HIDDEN):
                raise ModuleNotFoundError("No module named 'negrec' (hidden by the test)")
        return None


sys.meta_path.insert(0, HideInstalledNegrec)
'''


def without_negrec(folder: Path) -> dict[str, str]:
    """The environment of a child Python (and of its children) that cannot import the
    installed negrec: a ``sitecustomize`` in ``folder`` (first on ``PYTHONPATH``) drops
    the editable install's finder and the repository from ``sys.path``. Run the child
    with a ``cwd`` outside the repository. The venv's ``bin`` leads ``PATH`` (MLflow
    starts ``uvicorn`` by name)."""
    import os
    import sys

    repository = Path(__file__).resolve().parents[1]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(_HIDE_NEGREC.format(hidden=[str(repository)]))
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
    env["PYTHONPATH"] = str(folder)
    env["PYTHONNOUSERSITE"] = "1"
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env
