"""Checkpoints: round trip, integrity checks, safe loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from negrec import checkpoint
from negrec.checkpoint import TrainState
from negrec.config import build_config
from negrec.errors import NegrecError
from negrec.model import ActionAwareGSASRec


def _saved(tmp_path: Path) -> tuple[Path, ActionAwareGSASRec]:
    """A checkpoint whose best weights differ from its latest ones (latest + 1)."""
    config = build_config({"model": {"max_len": 8, "dim": 16, "blocks": 1}})
    torch.manual_seed(0)
    model = ActionAwareGSASRec(30, config.model)
    optimizer = torch.optim.Adam(model.parameters())
    model(
        torch.ones(1, 3, dtype=torch.int64), torch.zeros(1, 3, dtype=torch.int64)
    ).sum().backward()
    optimizer.step()
    best = {k: v + 1.0 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    state = TrainState(
        epoch=3,
        step=30,
        best_ndcg=0.25,
        best_epoch=2,
        epochs_without_gain=1,
        best_model_state=best,
        optimizer_state=optimizer.state_dict(),
        rng_state=torch.get_rng_state(),
        averaged_state={k: v * 0.5 for k, v in model.state_dict().items()},
        history=[{"epoch": 1, "loss": 0.5}],
    )
    saved = checkpoint.Checkpoint(config, 30, "/data/prepared", state, model.state_dict(), {"x": 1})
    return checkpoint.save(saved, tmp_path / "ckpt"), model


def test_round_trip_restores_weights_optimizer_and_state(tmp_path: Path) -> None:
    directory, model = _saved(tmp_path)
    loaded = checkpoint.load(directory)
    assert loaded.state.epoch == 3 and loaded.state.best_epoch == 2
    assert loaded.num_items == 30 and loaded.data_uri == "/data/prepared"
    assert loaded.config.model.dim == 16
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.model_state[name], tensor)
    assert loaded.state.optimizer_state["state"][0]["step"] == 1
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state.averaged_state[name], tensor * 0.5)
    best = loaded.best_model()
    assert not best.training
    assert torch.equal(best.item_embedding.weight, model.item_embedding.weight + 1.0)


def test_truncated_state_file_is_detected(tmp_path: Path) -> None:
    directory, _ = _saved(tmp_path)
    state = directory / checkpoint.STATE_FILE
    state.write_bytes(state.read_bytes()[:-100])
    with pytest.raises(NegrecError, match="truncated"):
        checkpoint.load(directory)


def test_altered_state_file_is_detected_and_not_loaded(tmp_path: Path) -> None:
    directory, _ = _saved(tmp_path)
    state = directory / checkpoint.STATE_FILE
    data = bytearray(state.read_bytes())
    data[len(data) // 2] ^= 0xFF
    state.write_bytes(bytes(data))
    with pytest.raises(NegrecError, match="SHA-256"):
        checkpoint.load(directory)


def test_missing_files_are_named(tmp_path: Path) -> None:
    directory, _ = _saved(tmp_path)
    (directory / checkpoint.RECORD_FILE).unlink()
    with pytest.raises(NegrecError, match=r"checkpoint\.json does not exist"):
        checkpoint.load(directory)
    with pytest.raises(NegrecError, match="not a complete negrec checkpoint"):
        checkpoint.load(tmp_path / "nowhere")


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    """A state file that needs arbitrary unpickling fails weights_only loading even if
    an attacker also rewrote the digest."""
    import hashlib
    import io
    import json

    directory, _ = _saved(tmp_path)

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    buffer = io.BytesIO()
    torch.save({"model": Payload()}, buffer)
    data = buffer.getvalue()
    (directory / checkpoint.STATE_FILE).write_bytes(data)
    record_path = directory / checkpoint.RECORD_FILE
    record = json.loads(record_path.read_text())
    record.update(sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))
    record_path.write_text(json.dumps(record))
    with pytest.raises(Exception, match=r"[Ww]eights only load failed"):
        checkpoint.load(directory)


def test_checkpoint_on_s3(tmp_path: Path, s3_bucket: str) -> None:
    from negrec import storage

    directory, model = _saved(tmp_path)
    uri = storage.join(s3_bucket, "runs", "ckpt")
    for name in (checkpoint.STATE_FILE, checkpoint.RECORD_FILE):
        storage.write_bytes(storage.join(uri, name), (directory / name).read_bytes())
    loaded = checkpoint.load(uri)
    assert torch.equal(loaded.model_state["item_embedding.weight"], model.item_embedding.weight)
    storage.write_bytes(storage.join(uri, checkpoint.STATE_FILE), b"garbage")
    with pytest.raises(NegrecError, match="truncated"):
        checkpoint.load(uri)
