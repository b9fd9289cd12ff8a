"""Training checkpoints: one weights file plus a JSON record that vouches for it.

A checkpoint directory holds ``state.pt`` (tensors and plain containers only, so it
loads with ``torch.load(weights_only=True)``: no pickled code runs) and
``checkpoint.json`` (its SHA-256 and size, the epoch, the metrics, the config and the
prepared data it was trained on). Loading recomputes the digest first, so a truncated
or altered file stops with an error instead of being deserialised.

``state.pt`` holds both the weights at the end of the epoch (``model``, to resume
from) and the best weights so far (``best_model``, to evaluate and serve), so the
latest checkpoint of a run is always enough for both.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from negrec import storage
from negrec.config import NegrecConfig, build_config
from negrec.errors import NegrecError
from negrec.model.gsasrec import ActionAwareGSASRec
from negrec.storage import StorageOptions
from negrec.version import __version__

STATE_FILE = "state.pt"
RECORD_FILE = "checkpoint.json"
FORMAT_VERSION = 1


@dataclass
class TrainState:
    """Everything needed to resume exactly where an epoch ended."""

    epoch: int = 0
    step: int = 0
    best_ndcg: float = -math.inf
    best_epoch: int = 0
    epochs_without_gain: int = 0
    best_model_state: dict[str, torch.Tensor] | None = None
    optimizer_state: dict[str, Any] | None = None
    rng_state: torch.Tensor | None = None
    averaged_state: dict[str, torch.Tensor] | None = None  # train.weight_average_decay
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class Checkpoint:
    """What a training run saves each epoch."""

    config: NegrecConfig
    num_items: int
    data_uri: str
    state: TrainState
    model_state: dict[str, torch.Tensor]
    metrics: dict[str, float] = field(default_factory=dict)

    def best_model(self) -> ActionAwareGSASRec:
        """The best-so-far model, in eval mode (what evaluation and serving use)."""
        model = ActionAwareGSASRec(self.num_items, self.config.model)
        model.load_state_dict(self.state.best_model_state or self.model_state)
        return model.eval()


def _state_payload(checkpoint: Checkpoint) -> dict[str, Any]:
    state = checkpoint.state
    return {
        "model": checkpoint.model_state,
        "best_model": state.best_model_state or checkpoint.model_state,
        "optimizer": state.optimizer_state or {},
        "averaged": state.averaged_state or {},
        "rng_state": state.rng_state if state.rng_state is not None else torch.get_rng_state(),
        "epoch": state.epoch,
        "step": state.step,
        "best_ndcg": state.best_ndcg,
        "best_epoch": state.best_epoch,
        "epochs_without_gain": state.epochs_without_gain,
        "history": state.history,
    }


def save(checkpoint: Checkpoint, directory: str | Path) -> Path:
    """Write ``state.pt`` then ``checkpoint.json`` (the record last: it commits)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(_state_payload(checkpoint), buffer)
    data = buffer.getvalue()
    (directory / STATE_FILE).write_bytes(data)
    record = {
        "format_version": FORMAT_VERSION,
        "negrec_version": __version__,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size_bytes": len(data),
        "epoch": checkpoint.state.epoch,
        "step": checkpoint.state.step,
        "num_items": checkpoint.num_items,
        "data_uri": checkpoint.data_uri,
        "metrics": checkpoint.metrics,
        "config": checkpoint.config.model_dump(),
    }
    (directory / RECORD_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))
    return directory


def _read(uri: str, name: str, options: StorageOptions | None) -> bytes:
    target = storage.join(uri, name)
    if not storage.exists(target, options):
        raise NegrecError(
            f"{target} does not exist: {uri} is not a complete negrec checkpoint "
            f"(it needs {STATE_FILE} and {RECORD_FILE}); pass a checkpoint directory "
            "written by `negrec train`"
        )
    return storage.read_bytes(target, options)


def load(uri: str | Path, options: StorageOptions | None = None) -> Checkpoint:
    """Verify and load a checkpoint directory (local path or ``s3://``)."""
    uri = str(uri)
    try:
        record = json.loads(_read(uri, RECORD_FILE, options))
    except json.JSONDecodeError as error:
        raise NegrecError(
            f"{storage.join(uri, RECORD_FILE)} is not valid JSON ({error.msg}, line "
            f"{error.lineno}): the checkpoint is damaged; use another checkpoint of the run"
        ) from None
    data = _read(uri, STATE_FILE, options)
    state_uri = storage.join(uri, STATE_FILE)
    if len(data) != record.get("size_bytes"):
        raise NegrecError(
            f"{state_uri} is {len(data)} bytes but its record says {record.get('size_bytes')}: "
            "the file is truncated or was replaced; use another checkpoint of the run"
        )
    if hashlib.sha256(data).hexdigest() != record.get("sha256"):
        raise NegrecError(
            f"{state_uri} does not match the SHA-256 in {RECORD_FILE}: the file was altered "
            "or corrupted and is not loaded; use another checkpoint of the run"
        )
    if record.get("format_version") != FORMAT_VERSION:
        raise NegrecError(
            f"{uri} has checkpoint format {record.get('format_version')}, this negrec reads "
            f"format {FORMAT_VERSION}"
        )
    payload = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    state = TrainState(
        epoch=payload["epoch"],
        step=payload["step"],
        best_ndcg=payload["best_ndcg"],
        best_epoch=payload["best_epoch"],
        epochs_without_gain=payload["epochs_without_gain"],
        best_model_state=payload["best_model"],
        optimizer_state=payload["optimizer"] or None,
        rng_state=payload["rng_state"],
        averaged_state=payload.get("averaged") or None,
        history=payload["history"],
    )
    return Checkpoint(
        config=build_config(record["config"], source=storage.join(uri, RECORD_FILE)),
        num_items=record["num_items"],
        data_uri=record["data_uri"],
        state=state,
        model_state=payload["model"],
        metrics=record.get("metrics", {}),
    )
