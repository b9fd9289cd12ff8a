"""Checkpoints, registries and closed ports for the promote and recommend tests.

Checkpoints are made in process (the one training loop on local batches, no Ray Train)
and cached per session, so both test files share one trained and one untrained model.
"""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

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


def closed_port_uri() -> str:
    """An http URI on 127.0.0.1 where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
