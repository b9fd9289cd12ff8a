"""A trained model and its vocabulary: parsed histories in, top-k original item ids out.

Why a class of its own: the MLflow model, ``negrec recommend --checkpoint`` and the
library all serve through this one path, so they agree on the input window, on which
items are excluded and on how unknown items are reported.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from negrec import checkpoint
from negrec.batching import left_pad
from negrec.errors import NegrecError
from negrec.model.gsasrec import ActionAwareGSASRec
from negrec.model.scoring import exclude_items, last_position_scores
from negrec.serving.requests import Interaction, Recommendation
from negrec.serving.vocabulary import Vocabulary

CHUNK = 256
"""Histories scored per forward pass: bounds the (chunk, num_items) score matrix."""


class Recommender:
    """Scores the whole catalogue after each history; the items of the history (positive
    or rejected, inside the model's input window or older) are never recommended."""

    def __init__(self, model: ActionAwareGSASRec, vocabulary: Vocabulary) -> None:
        if len(vocabulary) != model.num_items:
            raise NegrecError(
                f"the vocabulary has {len(vocabulary)} items but the model was trained on "
                f"{model.num_items}: use the prepared dataset the checkpoint was trained on"
            )
        self.model = model.eval()
        self.vocabulary = vocabulary

    @classmethod
    def load(cls, checkpoint_uri: str, vocabulary: Vocabulary) -> Recommender:
        """From a checkpoint directory (verified, weights-only) and a vocabulary."""
        return cls(checkpoint.load(checkpoint_uri).best_model(), vocabulary)

    def recommend(
        self, histories: Sequence[Sequence[Interaction]], k: int | Sequence[int]
    ) -> list[Recommendation]:
        """Top-k per history; ``k`` is one cut-off for all or one per history."""
        ks = [k] * len(histories) if isinstance(k, int) else [int(v) for v in k]
        if len(ks) != len(histories):
            raise NegrecError(f"{len(ks)} values of k for {len(histories)} histories")
        for number, value in enumerate(ks, start=1):
            if not 1 <= value <= self.model.num_items:
                raise NegrecError(
                    f"history {number}: k={value} must lie in 1..{self.model.num_items} "
                    "(the catalogue size)"
                )
        results: list[Recommendation] = []
        for start in range(0, len(histories), CHUNK):
            stop = start + CHUNK
            results += self._recommend_chunk(histories[start:stop], ks[start:stop], start)
        return results

    def _encode(
        self, history: Sequence[Interaction], number: int
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Vocabulary indices and actions of the known items; the unknown ones by name."""
        indices, actions, unknown = [], [], []
        for event in history:
            index = self.vocabulary.index_of(event.item)
            if index is None:
                if event.item not in unknown:
                    unknown.append(event.item)
                continue
            if event.action >= self.model.config.num_actions:
                raise NegrecError(
                    f"history {number}: this model was trained on positive interactions "
                    f"only and cannot take the rejected item {event.item}:-"
                )
            indices.append(index)
            actions.append(event.action)
        if not indices:
            raise NegrecError(
                f"history {number} has no item the model knows (unknown: {', '.join(unknown)}); "
                "give at least one item of the training vocabulary"
            )
        return np.asarray(indices, np.int64), np.asarray(actions, np.int64), unknown

    def _recommend_chunk(
        self, histories: Sequence[Sequence[Interaction]], ks: list[int], offset: int
    ) -> list[Recommendation]:
        encoded = [self._encode(h, offset + n) for n, h in enumerate(histories, start=1)]
        window = min(self.model.config.max_len, max(len(items) for items, _, _ in encoded))
        items = torch.as_tensor(left_pad([e[0] for e in encoded], window))
        actions = torch.as_tensor(left_pad([e[1] for e in encoded], window))
        seen = torch.as_tensor(left_pad([e[0] for e in encoded], max(len(e[0]) for e in encoded)))
        with torch.no_grad():
            scores = last_position_scores(self.model, items, actions)
            exclude_items(scores, seen)
            best_scores, best_ids = scores.topk(max(ks), dim=1)
        results = []
        for row, (k, (_, _, unknown)) in enumerate(zip(ks, encoded, strict=True)):
            finite = torch.isfinite(best_scores[row, :k])  # fewer left than k: history ~ catalogue
            ids = best_ids[row, :k][finite].tolist()
            results.append(
                Recommendation(
                    items=[self.vocabulary.item_id(i) for i in ids],
                    scores=best_scores[row, :k][finite].tolist(),
                    unknown_items=unknown,
                )
            )
        return results
