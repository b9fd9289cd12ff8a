"""The MLflow model: a ``pyfunc`` that wraps a checkpoint's best weights and vocabulary.

Why pyfunc and not ``mlflow.pytorch``: the latter's default torch.export format needs a
tensor example and serves raw tensors; users need original item ids in and out, with
unknown items reported. The bundle holds a slimmed negrec checkpoint (best weights and
config only, with its integrity record) and the vocabulary, so loading goes through
``negrec.checkpoint.load``: digest verified, ``torch.load(weights_only=True)``.

Input: a DataFrame with a ``history`` column (a list of ``ITEM:+``/``ITEM:-`` tokens or
one space-separated string) and an optional integer ``k`` column (default 10).
Output: one row per history with ``items`` and ``scores`` (best first) and
``unknown_items`` (history items outside the vocabulary, which could not be used).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
import torch
from mlflow.models import ModelSignature
from mlflow.types.schema import AnyType, Array, ColSpec, DataType, Schema

from negrec import checkpoint
from negrec.serving.recommender import Recommender
from negrec.serving.requests import DEFAULT_K, parse_history
from negrec.serving.vocabulary import Vocabulary
from negrec.version import __version__

MODEL_CODE = Path(__file__).with_name("model_code.py")
CHECKPOINT_ARTIFACT = "checkpoint"
VOCABULARY_ARTIFACT = "vocabulary"


class RecommenderModel(mlflow.pyfunc.PythonModel):
    """MLflow's handle on a :class:`Recommender`; holds nothing until ``load_context``."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        vocabulary = Vocabulary.read(context.artifacts[VOCABULARY_ARTIFACT])
        self.recommender = Recommender.load(context.artifacts[CHECKPOINT_ARTIFACT], vocabulary)

    def predict(
        self,
        context: mlflow.pyfunc.PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        histories = [
            parse_history(history, number)
            for number, history in enumerate(model_input["history"], start=1)
        ]
        ks = (
            model_input["k"].fillna(DEFAULT_K).astype(int).tolist()
            if "k" in model_input
            else DEFAULT_K
        )
        results = self.recommender.recommend(histories, ks)
        return pd.DataFrame(
            {
                "items": [r.items for r in results],
                "scores": [r.scores for r in results],
                "unknown_items": [r.unknown_items for r in results],
            }
        )


def signature(vocabulary: Vocabulary) -> ModelSignature:
    """``history`` is typed Any because it may be a token list or a string; the model
    validates every token itself and names the malformed one."""
    item_type = DataType.long if vocabulary.integer_ids else DataType.string
    return ModelSignature(
        inputs=Schema([ColSpec(AnyType(), "history"), ColSpec(DataType.long, "k", required=False)]),
        outputs=Schema(
            [
                ColSpec(Array(item_type), "items"),
                ColSpec(Array(DataType.double), "scores"),
                ColSpec(Array(DataType.string), "unknown_items"),
            ]
        ),
    )


def _serving_checkpoint(saved: checkpoint.Checkpoint, directory: Path) -> Path:
    """Only what serving needs: the best weights (no optimiser state, no latest weights)."""
    best = saved.state.best_model_state or saved.model_state
    state = checkpoint.TrainState(
        epoch=saved.state.epoch,
        step=saved.state.step,
        best_ndcg=saved.state.best_ndcg,
        best_epoch=saved.state.best_epoch,
        best_model_state=best,
    )
    slim = checkpoint.Checkpoint(
        saved.config, saved.num_items, saved.data_uri, state, best, saved.metrics
    )
    return checkpoint.save(slim, directory)


def save(saved: checkpoint.Checkpoint, vocabulary: Vocabulary, path: Path) -> Path:
    """Write the pyfunc model directory at ``path`` (which must not exist yet).

    MLflow runs the input example through the saved model, so a bundle that cannot
    load or serve (say, a vocabulary of another dataset) fails here, not in production.
    """
    with tempfile.TemporaryDirectory(prefix="negrec-model-") as staging:
        checkpoint_dir = _serving_checkpoint(saved, Path(staging) / CHECKPOINT_ARTIFACT)
        vocabulary_file = Path(staging) / "vocab.parquet"
        vocabulary.write(vocabulary_file)
        example = pd.DataFrame({"history": [f"{vocabulary.item_id(1)}:+"], "k": [DEFAULT_K]})
        mlflow.pyfunc.save_model(
            path=str(path),
            python_model=str(MODEL_CODE),
            artifacts={
                CHECKPOINT_ARTIFACT: str(checkpoint_dir),
                VOCABULARY_ARTIFACT: str(vocabulary_file),
            },
            signature=signature(vocabulary),
            input_example=example,
            pip_requirements=[
                f"negrec=={__version__}",
                f"mlflow=={mlflow.__version__}",
                f"torch=={torch.__version__.split('+')[0]}",
            ],
        )
    return path
