"""What a recommendation request and its answer look like (no model, no MLflow).

A history is a sequence of tokens ``ITEM:+`` (positive) or ``ITEM:-`` (negative,
rejected), oldest first, given as a list of tokens or one space-separated string.
Why parse here and not in the model: the CLI, the library and the MLflow model must
reject the same malformed tokens with the same message, before any model is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from negrec.action_codes import NEGATIVE, POSITIVE
from negrec.errors import NegrecError

DEFAULT_K = 10
SIGNS = {"+": POSITIVE, "-": NEGATIVE}

History = str | Sequence[str]
"""One history: ``"12:+ 7:- 31:+"`` or ``["12:+", "7:-", "31:+"]``."""


@dataclass(frozen=True)
class Interaction:
    """One event of a history: the original item id (as written) and its action."""

    item: str
    action: int


@dataclass(frozen=True)
class Recommendation:
    """Top-k for one history. ``unknown_items`` lists the history's items the model has
    no embedding for: they could not be used as input, and the caller must know that."""

    items: list[Any]
    scores: list[float]
    unknown_items: list[str] = field(default_factory=list)


def _tokens(history: Any) -> list[str]:
    if isinstance(history, str):
        return history.split()
    try:
        return [str(token) for token in history]
    except TypeError:
        raise NegrecError(
            f"a history must be a string of ITEM:+ / ITEM:- tokens or a list of them, "
            f"got {type(history).__name__}"
        ) from None


def parse_history(history: Any, number: int = 1) -> list[Interaction]:
    """Tokens -> interactions; ``number`` (1-based) names the history in errors."""
    tokens = _tokens(history)
    if not tokens:
        raise NegrecError(f"history {number} is empty: give at least one ITEM:+ or ITEM:- token")
    interactions = []
    for token in tokens:
        item, sep, sign = token.strip().rpartition(":")
        if not sep or not item or sign not in SIGNS:
            raise NegrecError(
                f"history {number}: token '{token}' is malformed; write ITEM:+ for a "
                "positive interaction or ITEM:- for a rejected one"
            )
        interactions.append(Interaction(item, SIGNS[sign]))
    return interactions


def as_list(histories: History | Sequence[History]) -> list[History]:
    """One history (a string) or many (strings or token lists) -> a list of histories."""
    many = [histories] if isinstance(histories, str) else list(histories)
    if not many:
        raise NegrecError("no history given: pass at least one")
    return many


def parse_histories(histories: Sequence[History]) -> list[list[Interaction]]:
    return [parse_history(history, number) for number, history in enumerate(histories, start=1)]
