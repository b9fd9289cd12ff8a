"""The recommend API: top-k items for histories of (item, action) (``negrec recommend``).

``recommend(model, histories, k)`` serves from a registered model (``models:/NAME@ALIAS``
or ``models:/NAME/VERSION``, loaded through MLflow's pyfunc exactly as a serving
process would) or straight from a checkpoint directory (vocabulary from the prepared
dataset it was trained on). Tokens are checked before any model is loaded; items the
model does not know are reported per history, never silently dropped.

``negrec.recommend(...)`` is :func:`recommend`. Heavy imports stay inside functions so
``import negrec`` stays light.
"""

from __future__ import annotations

from collections.abc import Sequence

from negrec import registry
from negrec.errors import NegrecError
from negrec.serving.requests import (
    DEFAULT_K,
    History,
    Interaction,
    Recommendation,
    as_list,
    parse_histories,
)

__all__ = ["Recommendation", "recommend"]


def _from_registry(
    model_uri: str, histories: list[History], k: int, tracking_uri: str | None
) -> list[Recommendation]:
    import mlflow.pyfunc
    import pandas as pd

    with registry.downloaded_version(model_uri, tracking_uri) as (path, _):
        model = mlflow.pyfunc.load_model(str(path))  # reads everything into memory
    frame = model.predict(pd.DataFrame({"history": histories, "k": [k] * len(histories)}))
    return [
        Recommendation(list(row.items), [float(s) for s in row.scores], list(row.unknown_items))
        for row in frame.itertuples()
    ]


def _from_checkpoint(
    checkpoint_uri: str, histories: list[list[Interaction]], k: int, data_uri: str | None
) -> list[Recommendation]:
    from negrec import checkpoint
    from negrec.serving.recommender import Recommender
    from negrec.serving.vocabulary import Vocabulary

    saved = checkpoint.load(checkpoint_uri)
    recommender = Recommender(
        saved.best_model(), Vocabulary.of_prepared(data_uri or saved.data_uri)
    )
    return recommender.recommend(histories, k)


def recommend(
    model: str,
    histories: History | Sequence[History],
    k: int = DEFAULT_K,
    tracking_uri: str | None = None,
    data_uri: str | None = None,
) -> list[Recommendation]:
    """Top-``k`` original item ids per history, best first.

    ``model``: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or a checkpoint URI.
    ``histories``: one history or a list of them; a history is ``"12:+ 7:- 31:+"`` or
    ``["12:+", "7:-", "31:+"]`` (``-`` marks a rejected item). Items of the history are
    never recommended. ``data_uri`` (checkpoint only) names the vocabulary's dataset.
    """
    many = as_list(histories)
    parsed = parse_histories(many)  # malformed tokens fail here, before any model loads
    if k < 1:
        raise NegrecError(f"k must be at least 1, got {k}")
    if model.startswith("models:/"):
        return _from_registry(model, many, k, tracking_uri)
    return _from_checkpoint(model, parsed, k, data_uri)
