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
A request the model cannot answer (a malformed token, no ``history`` column, ``k``
outside 1..catalogue) raises :class:`RequestError`: a :class:`NegrecError` for the
library and the CLI, and an ``MlflowException`` with ``INVALID_PARAMETER_VALUE`` for
MLflow's scoring server, which answers it with HTTP 400 and the message (any other
exception there is a 500 with a stack trace). See ``docs/serving.md``.

Why the model carries negrec's code (``code/negrec`` in the model, MLflow's
``code_paths``): negrec is on no package index, so a model that required it would load
only where this repository is installed. Its requirements are the public packages that
loading and predicting import (:data:`SERVING_REQUIREMENTS`), pinned to the versions
that saved it.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import tempfile
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types.schema import AnyType, Array, ColSpec, DataType, Schema

from negrec import checkpoint
from negrec.errors import NegrecError
from negrec.serving.recommender import Recommender
from negrec.serving.requests import DEFAULT_K, parse_histories
from negrec.serving.vocabulary import Vocabulary

MODEL_CODE = Path(__file__).with_name("model_code.py")
PACKAGE = Path(__file__).resolve().parents[1]
"""The ``negrec`` package directory, copied into every saved model."""
CHECKPOINT_ARTIFACT = "checkpoint"
VOCABULARY_ARTIFACT = "vocabulary"
SERVING_REQUIREMENTS = ("mlflow", "torch", "numpy", "pandas", "pyarrow", "pydantic", "PyYAML")
"""Distributions that negrec's serving modules import (``tests/test_portable_model.py``
checks the list against the imports of the modules a served model loads)."""


class RequestError(NegrecError, MlflowException):
    """A request the model cannot answer, by the caller's fault; the message says why."""

    def __init__(self, message: str) -> None:
        MlflowException.__init__(self, message, error_code=INVALID_PARAMETER_VALUE)


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
        try:
            histories, ks = _request(model_input)
            results = self.recommender.recommend(histories, ks)
        except RequestError:
            raise
        except NegrecError as error:
            raise RequestError(str(error)) from None
        return pd.DataFrame(
            {
                "items": [r.items for r in results],
                "scores": [r.scores for r in results],
                "unknown_items": [r.unknown_items for r in results],
            }
        )


def _request(model_input: Any) -> tuple[list, list[int]]:
    """Parsed histories and one ``k`` per history; every fault named, none guessed."""
    if not isinstance(model_input, pd.DataFrame):
        raise RequestError(
            f"expected a table with a 'history' column, got {type(model_input).__name__}"
        )
    if "history" not in model_input.columns:
        columns = ", ".join(map(str, model_input.columns)) or "none"
        raise RequestError(f"the request has no 'history' column (columns: {columns})")
    if model_input.empty:
        raise RequestError("the request has no rows: give at least one history")
    histories = parse_histories(list(model_input["history"]))
    if "k" not in model_input.columns:
        return histories, [DEFAULT_K] * len(histories)
    return histories, [_k(value, number) for number, value in enumerate(model_input["k"], 1)]


def _k(value: Any, number: int) -> int:
    """One row's ``k``: missing means the default; the range is the recommender's check."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return DEFAULT_K
    try:
        whole = not isinstance(value, bool) and float(value) == int(value)
    except (TypeError, ValueError, OverflowError):
        whole = False
    if not whole:
        raise RequestError(f"history {number}: k={value!r} is not a whole number")
    return int(value)


def requirements() -> list[str]:
    """``SERVING_REQUIREMENTS`` pinned to the installed versions (no local ``+cpu``)."""
    return [
        f"{name}=={importlib.metadata.version(name).split('+')[0]}" for name in SERVING_REQUIREMENTS
    ]


def _copy_package(directory: Path) -> Path:
    """The ``negrec`` package as sources and package data, without byte code."""
    target = directory / PACKAGE.name
    shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__", "*.py[co]", ".*"))
    return target


def signature(vocabulary: Vocabulary) -> ModelSignature:
    """``history`` is typed Any because it may be a token list or a string; the model
    validates every token itself and names the malformed one. ``k`` is typed Any too:
    as ``long``, MLflow's scoring server would truncate ``2.5`` to 2 and refuse a
    request where only some rows give ``k``; the model checks it instead."""
    item_type = DataType.long if vocabulary.integer_ids else DataType.string
    return ModelSignature(
        inputs=Schema([ColSpec(AnyType(), "history"), ColSpec(AnyType(), "k", required=False)]),
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
        package = _copy_package(Path(staging) / "code")
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
            code_paths=[str(package)],
            pip_requirements=requirements(),
        )
    return path
