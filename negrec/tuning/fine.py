"""The fine space: the coarse space narrowed around the best coarse configurations.

Rules (``negrec/recipes/tuning/fine_rules.yaml``): take the ``top_n`` coarse
configurations by validation NDCG@k. A numeric key keeps the span ``[min, max]`` of
their values, widened by ``widen`` about its centre (on the log axis where the coarse
range was log-uniform), at least ``min_width`` of the coarse span wide, and clipped to
the coarse range, so the fine stage never searches where the coarse stage did not. A
categorical key keeps only the values the top configurations used. The best ``seed_points``
configurations are evaluated first in the fine stage, with its longer budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from negrec.config import load_model
from negrec.errors import NegrecError
from negrec.strict import FrozenModel
from negrec.tuning.space import Choice, Range, SearchSpace


class FineRules(FrozenModel):
    """How the fine space is derived from the coarse results."""

    top_n: int = Field(3, ge=1, description="Coarse configurations the fine space surrounds")
    widen: float = Field(1.5, ge=1.0, description="Factor on the top configurations' span")
    min_width: float = Field(
        0.1, gt=0.0, le=1.0, description="Least fine span, as a share of the coarse span"
    )
    seed_points: int = Field(1, ge=0, description="Best coarse configurations re-run first")

    @model_validator(mode="after")
    def _seeds_among_top(self) -> FineRules:
        if self.seed_points > self.top_n:
            raise ValueError(
                f"seed_points ({self.seed_points}) must not exceed top_n ({self.top_n})"
            )
        return self


def load_rules(path: Path) -> FineRules:
    return load_model(FineRules, path)


def _narrow(coarse: Range, values: Sequence[float], rules: FineRules) -> Range:
    low, high = coarse.scale(min(values)), coarse.scale(max(values))
    span = coarse.scale(coarse.high) - coarse.scale(coarse.low)
    centre = (low + high) / 2
    half = max((high - low) / 2 * rules.widen, rules.min_width * span / 2)
    # unscale(scale(x)) can land an ulp outside the coarse range; clip after it.
    fine_low = max(coarse.low, coarse.unscale(max(centre - half, coarse.scale(coarse.low))))
    fine_high = min(coarse.high, coarse.unscale(min(centre + half, coarse.scale(coarse.high))))
    return type(coarse)(kind=coarse.kind, low=fine_low, high=fine_high)


def derive_fine_space(
    coarse: SearchSpace, top: Sequence[Mapping[str, Any]], rules: FineRules
) -> SearchSpace:
    """The fine space around ``top`` (best first; only the first ``top_n`` are used)."""
    chosen = list(top[: rules.top_n])
    if not chosen:
        raise NegrecError(
            "no coarse trial reported a validation NDCG, so there is nothing to narrow "
            "the fine space around; see the coarse trials' errors above"
        )
    fine: dict[str, Any] = {}
    for key, dimension in coarse.items():
        values = [config[key] for config in chosen]
        if isinstance(dimension, Choice):
            used = [v for v in dimension.values if v in values]
            fine[key] = Choice(kind="choice", values=used)
        else:
            fine[key] = _narrow(dimension, values, rules)
    return SearchSpace(fine)


def seed_points(
    top: Sequence[Mapping[str, Any]], rules: FineRules, limit: int
) -> list[dict[str, Any]]:
    """The best coarse configurations to evaluate first (at most ``limit``, the number of
    fine trials); they lie in the fine space because it surrounds them."""
    return [dict(config) for config in top[: min(rules.seed_points, limit)]]
