"""Full-catalogue softmax cross-entropy and its not-to-recommend term, in bounded memory.

Why a custom autograd function: the logits of a batch are positions x items (ML-1M:
~13,000 x 3,416 floats per step, a million-item catalogue far more), and plain autograd
keeps every one of them, plus their softmax, until the backward pass. Here the
positions are cut into chunks whose logits fit ``budget_mib``; for each chunk the
logits are built, the loss and its gradient with respect to the logits are taken, the
gradient is pushed through the matrix product at once (into the hidden states and the
output table), and the chunk's logits are freed before the next one is built. The
backward pass then only scales the stored gradients. Value and gradients equal the
naive computation (``tests/test_catalogue_softmax.py``).

Not-to-recommend (Wang et al., RecSys'23) in the softmax's own form:
``-log(1 - p(r | state))`` with ``p`` the softmax that ranks the target. It is computed
without ever forming ``log(1 - exp(log p))`` in float32: for ``p < 1/2`` as
``-log1p(-p)``; for ``p >= 1/2`` as ``lse(all) - lse(all but r)``, which stays exact as
``p`` approaches 1. Its gradient with respect to the logits is
``softmax(all) - softmax(all but r)``: bounded (L1 norm at most 2) and vanishing as the
rejected item's probability falls, so it cannot drag the whole distribution down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

FLOAT_BYTES = 4
LOGIT_COPIES = 4
"""Chunk-sized float32 tensors alive at once, rounded up: the logits (which become the
softmax and then the gradient in place), the masked copy and the gradient of the rows
that have a rejected item, and the gradient cast to the compute dtype."""


def chunk_rows(num_items: int, budget_mib: float) -> int:
    """Positions per chunk so that the chunk's logit-sized tensors fit ``budget_mib``."""
    if budget_mib <= 0:
        raise ValueError(f"objective.logits_chunk_mib must be > 0, got {budget_mib}")
    per_row = num_items * FLOAT_BYTES * LOGIT_COPIES
    return max(1, int(budget_mib * (1 << 20)) // per_row)


@dataclass(frozen=True)
class CatalogueLoss:
    """The differentiable total ``ce + weight * ntr`` and its detached parts."""

    total: torch.Tensor
    cross_entropy: float
    not_to_recommend: float


def _neg_log1m_prob(
    logits: torch.Tensor, lse: torch.Tensor, rejected: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``-log(1 - p_r)`` per row and its gradient ``softmax - softmax_without_r``.

    ``logits`` (R, V) float32, ``lse`` (R,) their logsumexp, ``rejected`` (R,) 0-based
    column of each row's rejected item.
    """
    log_p = logits.gather(1, rejected[:, None]).squeeze(1) - lse
    without = logits.scatter(1, rejected[:, None], float("-inf"))
    lse_without = torch.logsumexp(without, dim=1)
    small = -torch.log1p(-torch.exp(torch.clamp(log_p, max=-math.log(2.0))))
    value = torch.where(log_p < -math.log(2.0), small, lse - lse_without)
    softmax_without = torch.exp(without.sub_(lse_without[:, None]))
    grad = torch.exp(logits - lse[:, None]).sub_(softmax_without)
    return value, grad


class _ChunkedCatalogueSoftmax(torch.autograd.Function):
    """Forward computes value *and* gradients chunk by chunk; backward scales them."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, *inputs: Any
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``inputs`` as :func:`_forward` takes them; autocast is off inside, the
        compute dtype explicit."""
        with torch.autocast(inputs[0].device.type, enabled=False):
            return _forward(ctx, *inputs)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_total: torch.Tensor, *_: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        grad_hidden, grad_table = ctx.saved_tensors
        return grad_hidden * grad_total, grad_table * grad_total, None, None, None, None, None


def _forward(
    ctx: torch.autograd.function.FunctionCtx,
    hidden: torch.Tensor,
    table: torch.Tensor,
    targets: torch.Tensor,
    rejected: torch.Tensor,
    weight: float,
    rows_per_chunk: int,
    compute_dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Body of the forward pass (see the module docstring); padding row 0 of ``table``
    is never a candidate, so it gets no gradient."""
    items = table[1:].to(compute_dtype)
    has_target, has_rejected = targets > 0, rejected > 0
    n_target = max(int(has_target.sum()), 1)
    n_rejected = max(int(has_rejected.sum()), 1)
    ce_scale, ntr_scale = 1.0 / n_target, weight / n_rejected
    need_grad = any(ctx.needs_input_grad[:2])
    grad_hidden = torch.zeros_like(hidden, dtype=torch.float32) if need_grad else None
    grad_items = torch.zeros(items.shape, dtype=torch.float32, device=hidden.device)
    ce_sum = hidden.new_zeros((), dtype=torch.float32)
    ntr_sum = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, hidden.shape[0], rows_per_chunk):
        part = slice(start, start + rows_per_chunk)
        states = hidden[part].to(compute_dtype)
        logits = (states @ items.T).float()
        target_rows = has_target[part]
        target_col = (targets[part] - 1).clamp(min=0)
        target_logit = logits.gather(1, target_col[:, None]).squeeze(1)
        reject_rows = has_rejected[part].nonzero().squeeze(1) if weight > 0 else None
        rejected_logits = None if reject_rows is None else logits[reject_rows]
        # logsumexp and softmax in place, five passes over the chunk: torch.logsumexp
        # followed by a separate softmax would take eight and a second chunk-sized copy.
        peak = logits.amax(dim=1, keepdim=True)
        unnormalised = logits.sub_(peak).exp_()
        total = unnormalised.sum(dim=1, keepdim=True)
        lse = (peak + total.log()).squeeze(1)
        ce_sum += torch.where(target_rows, lse - target_logit, 0.0).sum()
        if rejected_logits is not None and len(reject_rows):
            value, ntr_grad = _neg_log1m_prob(
                rejected_logits, lse[reject_rows], rejected[part][reject_rows] - 1
            )
            ntr_sum += value.sum()
        if not need_grad:
            continue
        # d CE / d logits = softmax - onehot(target), scaled by 1 / positions.
        row_scale = torch.where(target_rows[:, None], ce_scale, 0.0) / total
        grad = unnormalised.mul_(row_scale)
        grad[target_rows.nonzero().squeeze(1), target_col[target_rows]] -= ce_scale
        if rejected_logits is not None and len(reject_rows):
            grad.index_add_(0, reject_rows, ntr_grad.mul_(ntr_scale))
        grad = grad.to(compute_dtype)
        grad_hidden[part] = (grad @ items).float()
        grad_items += (grad.T @ states).float()
    ce = ce_sum / n_target
    ntr = ntr_sum / n_rejected
    if need_grad:
        grad_table = torch.cat([torch.zeros_like(grad_items[:1]), grad_items]).to(table.dtype)
        ctx.save_for_backward(grad_hidden.to(hidden.dtype), grad_table)
    ctx.mark_non_differentiable(ce, ntr)
    return ce + weight * ntr, ce, ntr


def catalogue_softmax_loss(
    hidden: torch.Tensor,
    table: torch.Tensor,
    targets: torch.Tensor,
    rejected: torch.Tensor,
    not_to_recommend_weight: float = 0.0,
    budget_mib: float = 256.0,
) -> CatalogueLoss:
    """Mean full-catalogue cross-entropy over rows with a target (``targets > 0``) plus
    ``weight`` x mean ``-log(1 - p(rejected))`` over rows with a rejected item.

    ``hidden`` (N, d) states, ``table`` (num_items + 1, d) output embeddings (row 0 is
    padding, never a candidate), ``targets`` / ``rejected`` (N,) item ids, 0 = none.
    Under autocast the matrix products run in the autocast dtype; logsumexp and the
    loss are always float32.
    """
    if hidden.dim() != 2 or hidden.shape[1] != table.shape[1]:
        raise ValueError(f"hidden {tuple(hidden.shape)} must be (N, {table.shape[1]})")
    if targets.shape != hidden.shape[:1] or rejected.shape != hidden.shape[:1]:
        raise ValueError("targets and rejected must each hold one item id per row of hidden")
    device = hidden.device.type
    compute_dtype = (
        torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else torch.float32
    )
    rows = chunk_rows(table.shape[0] - 1, budget_mib)
    total, ce, ntr = _ChunkedCatalogueSoftmax.apply(
        hidden, table, targets, rejected, float(not_to_recommend_weight), rows, compute_dtype
    )
    return CatalogueLoss(total, float(ce), float(ntr))
