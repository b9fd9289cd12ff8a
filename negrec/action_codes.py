"""The codes an interaction's action has in prepared data, batches and checkpoints.

Why a module of its own: the event-log mapping (``negrec.data.actions``), sequence
building, batching, evaluation and serving all write or test these numbers; a model is
trained on them, so they are part of every prepared dataset and checkpoint and must be
spelt once. A single-action dataset (all positive) uses ``POSITIVE`` only.
"""

from __future__ import annotations

POSITIVE = 0
NEGATIVE = 1
CODES: dict[str, int] = {"positive": POSITIVE, "negative": NEGATIVE}
"""Mapping action -> code; the mapping's third action, ``ignore``, drops the row."""
