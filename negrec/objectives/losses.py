"""Pointwise and listwise losses on positive and negative logits (pure tensor maths).

gBCE (Petrov & Macdonald, RecSys'23):
    L = -1/(k+1) [ beta * log sigmoid(s+) + sum_neg log(1 - sigmoid(s-)) ]
with alpha = k / (|I| - 1) and beta = 1 - t (1 - alpha). The reference computes it by
transforming the positive logit in float64, gamma(s) = log(1 / (sigmoid(s)^-beta - 1)),
and applying BCE; since sigmoid(gamma(s)) = sigmoid(s)^beta that equals
beta * softplus(-s), which is what we compute: exact and finite for any logit.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def gbce_beta(num_negatives: int, num_items: int, t: float) -> float:
    """The calibration exponent beta = 1 - t (1 - alpha), alpha = k / (|I| - 1)."""
    if num_items < 2:
        raise ValueError("gBCE needs at least 2 items")
    alpha = num_negatives / (num_items - 1)
    return 1.0 - t * (1.0 - alpha)


def _check(pos: torch.Tensor, neg: torch.Tensor, hard: torch.Tensor | None) -> None:
    if neg.shape[:-1] != pos.shape:
        raise ValueError(
            f"negative logits {tuple(neg.shape)} must be positive logits {tuple(pos.shape)} + (k,)"
        )
    if hard is not None and hard.shape != pos.shape:
        raise ValueError(f"hard-negative logits {tuple(hard.shape)} must match {tuple(pos.shape)}")
    if pos.numel() == 0:
        raise ValueError("no positions with a target in this batch")


def _masked_mean(per_position: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Mean over valid positions, by multiplying rather than selecting: selecting would
    copy the (positions, k) negative logits once more."""
    if valid is None:
        return per_position.mean()
    count = valid.sum()
    if int(count) == 0:
        raise ValueError("no positions with a target in this batch")
    return (per_position * valid).sum() / count


def gbce_loss(
    pos: torch.Tensor,
    neg: torch.Tensor,
    beta: float,
    hard: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean gBCE over positions.

    ``pos`` has any shape P, ``neg`` is P + (k,) sampled negatives, ``hard`` (shape P)
    an optional extra negative per position (-inf where there is none: it then adds
    nothing), ``valid`` (shape P, bool) the positions that count.
    """
    _check(pos, neg, hard)
    per_position = beta * F.softplus(-pos) + F.softplus(neg).sum(-1)
    if hard is not None:
        per_position = per_position + F.softplus(hard)
    return _masked_mean(per_position, valid) / (neg.shape[-1] + 1)


def bce_loss(
    pos: torch.Tensor,
    neg: torch.Tensor,
    hard: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """SASRec's BCE: gBCE with beta = 1 (t = 0)."""
    return gbce_loss(pos, neg, 1.0, hard, valid)


def sampled_softmax_loss(
    pos: torch.Tensor,
    neg: torch.Tensor,
    hard: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of the positive against itself plus the negatives (same shapes as
    ``gbce_loss``)."""
    _check(pos, neg, hard)
    normaliser = torch.logaddexp(pos, torch.logsumexp(neg, dim=-1))
    if hard is not None:
        normaliser = torch.logaddexp(normaliser, hard)
    return _masked_mean(normaliser - pos, valid)


def sampled_not_to_recommend_loss(
    pos: torch.Tensor, neg: torch.Tensor, rejected: torch.Tensor, has_target: torch.Tensor
) -> torch.Tensor:
    """Mean ``-log(1 - p(r))`` over positions with a rejected item ``r``, where ``p`` is
    the sampled softmax that ranks the target: candidates are the target (where there is
    one), the k negatives and ``r`` itself.

    With ``Z`` the normaliser of the candidates other than ``r``,
    ``1 - p(r) = Z / (Z + e^s_r)``, so the term is ``softplus(s_r - log Z)``: stable for
    any logits, its gradient bounded by 1 and vanishing as ``s_r`` falls below ``log Z``.
    A uniform negative that happens to be ``r`` stays in ``Z`` (probability k / |I| per
    draw), as it stays among the ranking loss's negatives.
    """
    if rejected.numel() == 0:
        return rejected.new_zeros(())
    others = torch.logsumexp(neg, dim=-1)
    others = torch.where(has_target, torch.logaddexp(others, pos), others)
    return F.softplus(rejected - others).mean()


def not_to_recommend_loss(rejected_scores: torch.Tensor) -> torch.Tensor:
    """Mean softplus(s) = -log(1 - sigmoid(s)) over rejected items' scores.

    Its gradient sigmoid(s) is bounded and vanishes as the score falls, so it pushes a
    rejected item down only while the model still ranks it high (Wang et al., RecSys'23).
    """
    if rejected_scores.numel() == 0:
        return rejected_scores.new_zeros(())
    return F.softplus(rejected_scores).mean()
