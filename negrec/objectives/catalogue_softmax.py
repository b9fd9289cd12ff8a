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

The same computation serves a sampled candidate set (``candidate_softmax_loss``): the
columns are then the candidates' embeddings, and a per-column offset (the log-Q
correction of ``negrec.objectives.sampled_candidates``) is added to every row's logits
except at the row's own target and rejected item, which are in its set with certainty.
The full catalogue is the case where every item is a column and no offset is added.

Later rejections (``objective.not_to_recommend_window``) come as extra (row, column)
pairs of the catalogue form: each pair is one more ``-log(1 - p)`` term of a row whose
logits are built anyway, so it costs a gather, not a row of logits. With ``p_r < 1/2``
its value is ``-log1p(-p_r)`` and its gradient with respect to the logits
``c * (onehot(r) - softmax)`` with ``c = p_r / (1 - p_r) <= 1``, folded into the
chunk's softmax gradient; the rare pair with ``p_r >= 1/2`` (at most one per row) gets
its row's logits again and the exact form above.
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


def _log_q_correct(
    sample: torch.Tensor,
    offsets: torch.Tensor,
    target_rows: torch.Tensor,
    target_col: torch.Tensor,
    target_logit: torch.Tensor,
    raw_rows: torch.Tensor,
    rejected_col: torch.Tensor,
    raw_rejected: torch.Tensor,
) -> None:
    """Add ``offsets`` to every row's logits of the sample in place, except at the row's
    own target and, in ``raw_rows``, its own rejected item: those keep their raw logits."""
    sample.add_(offsets)
    rows = target_rows.nonzero().squeeze(1)
    sample[rows, target_col[rows]] = target_logit[rows]
    rows = raw_rows.nonzero().squeeze(1)
    sample[rows, rejected_col[rows]] = raw_rejected[rows]


class _ChunkedCandidateSoftmax(torch.autograd.Function):
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
        return grad_hidden * grad_total, grad_table * grad_total, *([None] * 9)


@dataclass(frozen=True)
class _PairTerms:
    """The not-to-recommend terms of one chunk's later-rejection pairs: their summed
    value, and what they add to the chunk's gradient with respect to the logits."""

    value: torch.Tensor
    row_coefficient: torch.Tensor
    """(chunk rows,) sum of ``c`` per row: times the row's softmax, subtracted."""
    rows: torch.Tensor
    columns: torch.Tensor
    coefficient: torch.Tensor
    """``c`` of each small-probability pair, added at its (row, column)."""
    exact_rows: torch.Tensor
    exact_grad: torch.Tensor
    """Rows and full gradient rows of the pairs with ``p_r >= 1/2``."""


def _pair_terms(
    pair_logit: torch.Tensor,
    lse: torch.Tensor,
    rows: torch.Tensor,
    columns: torch.Tensor,
    states: torch.Tensor,
    items: torch.Tensor,
) -> _PairTerms:
    """``-log(1 - p)`` of each (row, column) pair of a chunk (rows local to the chunk,
    ``pair_logit`` their raw logits, ``lse`` the chunk's logsumexp) and its gradient
    parts; the pairs with ``p >= 1/2`` rebuild their row from ``states`` x ``items``."""
    log_p = pair_logit - lse[rows]
    small = log_p < -math.log(2.0)
    value = -torch.log1p(-torch.exp(torch.clamp(log_p, max=-math.log(2.0))))
    coefficient = torch.where(small, torch.expm1(value), 0.0)
    row_coefficient = torch.zeros_like(lse).index_add_(0, rows, coefficient)
    exact = (~small).nonzero().squeeze(1)
    exact_rows = rows[exact]
    logits = (states[exact_rows] @ items.T).float()
    exact_value, exact_grad = _neg_log1m_prob(
        logits, torch.logsumexp(logits, dim=1), columns[exact]
    )
    total = value[small].sum() + exact_value.sum()
    return _PairTerms(
        total,
        row_coefficient,
        rows[small],
        columns[small],
        coefficient[small],
        exact_rows,
        exact_grad,
    )


def _forward(
    ctx: torch.autograd.function.FunctionCtx,
    hidden: torch.Tensor,
    table: torch.Tensor,
    targets: torch.Tensor,
    rejected: torch.Tensor,
    offsets: torch.Tensor | None,
    weight: float,
    rejected_in_ranking: bool,
    rows_per_chunk: int,
    compute_dtype: torch.dtype,
    pair_rows: torch.Tensor,
    pair_columns: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Body of the forward pass (see the module docstring and
    :func:`candidate_softmax_loss`); ``targets`` / ``rejected`` hold a column per row of
    ``hidden`` (-1 = none); ``pair_rows`` (sorted) / ``pair_columns`` the later
    rejections, empty without them."""
    items = table.to(compute_dtype)
    sampled = items.shape[0] if offsets is None else offsets.shape[0]
    has_target, has_rejected = targets >= 0, rejected >= 0
    n_target = max(int(has_target.sum()), 1)
    n_rejected = max(int(has_rejected.sum()) + len(pair_rows), 1)
    starts = torch.arange(0, hidden.shape[0] + rows_per_chunk, rows_per_chunk)
    pair_bounds = torch.searchsorted(pair_rows, starts.to(pair_rows.device)).tolist()
    ce_scale, ntr_scale = 1.0 / n_target, weight / n_rejected
    need_grad = any(ctx.needs_input_grad[:2])
    grad_hidden = torch.zeros_like(hidden, dtype=torch.float32) if need_grad else None
    grad_items = torch.zeros(items.shape, dtype=torch.float32, device=hidden.device)
    ce_sum = hidden.new_zeros((), dtype=torch.float32)
    ntr_sum = hidden.new_zeros((), dtype=torch.float32)
    for chunk, start in enumerate(range(0, hidden.shape[0], rows_per_chunk)):
        part = slice(start, start + rows_per_chunk)
        states = hidden[part].to(compute_dtype)
        logits = (states @ items.T).float()
        in_chunk = slice(pair_bounds[chunk], pair_bounds[chunk + 1])
        chunk_pair_rows = pair_rows[in_chunk] - start
        chunk_pair_columns = pair_columns[in_chunk]
        pair_logit = logits[chunk_pair_rows, chunk_pair_columns]
        # The softmax runs over the sample; a rejected item outside it (a column past
        # the sample's) joins its own row's softmax as one extra logit, never as a
        # masked column: exp of -inf or of an underflowing value takes a slow scalar
        # path on CPUs, several times the cost of the whole chunk's exp.
        sample = logits if offsets is None else logits[:, :sampled]
        target_rows = has_target[part]
        target_col = targets[part].clamp(min=0)
        rejected_col = rejected[part].clamp(min=0)
        target_logit = logits.gather(1, target_col[:, None]).squeeze(1)
        reject_rows = has_rejected[part].nonzero().squeeze(1) if weight > 0 else None
        extra = outside = raw_rejected = None
        if offsets is not None:
            raw_rejected = logits.gather(1, rejected_col[:, None]).squeeze(1)
            outside = has_rejected[part] & (rejected_col >= sampled)
            inside = has_rejected[part] & ~outside
            raw_rows = inside if rejected_in_ranking else torch.zeros_like(inside)
            _log_q_correct(
                sample,
                offsets,
                target_rows,
                target_col,
                target_logit,
                raw_rows,
                rejected_col,
                raw_rejected,
            )
            if rejected_in_ranking:
                extra = torch.where(outside, raw_rejected, float("-inf"))[:, None]
        rejected_logits = None if reject_rows is None else sample[reject_rows]
        ntr_col = None if reject_rows is None else rejected_col[reject_rows]
        ntr_lse = None
        if rejected_logits is not None and offsets is not None:
            # The term's softmax: the ranking's with the rejected item in for certain.
            row_outside, row_raw = outside[reject_rows], raw_rejected[reject_rows]
            if not rejected_in_ranking:
                rows = (~row_outside).nonzero().squeeze(1)
                rejected_logits[rows, ntr_col[rows]] = row_raw[rows]
            own = torch.where(row_outside, row_raw, float("-inf"))[:, None]
            rejected_logits = torch.cat([rejected_logits, own], dim=1)
            ntr_col = torch.where(row_outside, sampled, ntr_col)
            if not rejected_in_ranking:
                ntr_lse = torch.logsumexp(rejected_logits, dim=1)
        # logsumexp and softmax in place, five passes over the chunk: torch.logsumexp
        # followed by a separate softmax would take eight and a second chunk-sized copy.
        peak = sample.amax(dim=1, keepdim=True)
        if extra is not None:
            peak = torch.maximum(peak, extra)
        unnormalised = sample.sub_(peak).exp_()
        total = unnormalised.sum(dim=1, keepdim=True)
        if extra is not None:
            extra = torch.exp(extra - peak)
            total = total + extra
        lse = (peak + total.log()).squeeze(1)
        ce_sum += torch.where(target_rows, lse - target_logit, 0.0).sum()
        if rejected_logits is not None and len(reject_rows):
            value, ntr_grad = _neg_log1m_prob(
                rejected_logits, lse[reject_rows] if ntr_lse is None else ntr_lse, ntr_col
            )
            ntr_sum += value.sum()
        pairs = None
        if len(chunk_pair_rows):
            pairs = _pair_terms(pair_logit, lse, chunk_pair_rows, chunk_pair_columns, states, items)
            ntr_sum += pairs.value
        if not need_grad:
            continue
        # d CE / d logits = softmax - onehot(target), scaled by 1 / positions.
        row_weight = torch.where(target_rows[:, None], ce_scale, 0.0)
        if pairs is not None:
            row_weight = row_weight - ntr_scale * pairs.row_coefficient[:, None]
        row_scale = row_weight / total
        grad = unnormalised.mul_(row_scale)
        grad[target_rows.nonzero().squeeze(1), target_col[target_rows]] -= ce_scale
        if pairs is not None:
            grad.index_put_(
                (pairs.rows, pairs.columns), ntr_scale * pairs.coefficient, accumulate=True
            )
            grad.index_add_(0, pairs.exact_rows, ntr_scale * pairs.exact_grad)
        # The gradient of each row's logit of its rejected item outside the sample.
        outside_grad = None
        if offsets is not None:
            no_extra = extra is None
            outside_grad = (
                torch.zeros_like(target_logit) if no_extra else (extra * row_scale).squeeze(1)
            )
        if rejected_logits is not None and len(reject_rows):
            ntr_grad.mul_(ntr_scale)
            grad.index_add_(0, reject_rows, ntr_grad[:, :sampled])
            if outside_grad is not None:
                outside_grad.index_add_(0, reject_rows, ntr_grad[:, sampled])
        grad = grad.to(compute_dtype)
        grad_hidden[part] = (grad @ items[:sampled]).float()
        grad_items[:sampled] += (grad.T @ states).float()
        if outside_grad is not None:
            rows = outside.nonzero().squeeze(1)
            scale, columns = outside_grad[rows, None], rejected_col[rows]
            grad_hidden[start + rows] += scale * items[columns].float()
            grad_items.index_add_(0, columns, scale * states[rows].float())
    ce = ce_sum / n_target
    ntr = ntr_sum / n_rejected
    if need_grad:
        ctx.save_for_backward(grad_hidden.to(hidden.dtype), grad_items.to(table.dtype))
    ctx.mark_non_differentiable(ce, ntr)
    return ce + weight * ntr, ce, ntr


def candidate_softmax_loss(
    hidden: torch.Tensor,
    candidates: torch.Tensor,
    target_columns: torch.Tensor,
    rejected_columns: torch.Tensor,
    not_to_recommend_weight: float = 0.0,
    budget_mib: float = 256.0,
    offsets: torch.Tensor | None = None,
    rejected_in_ranking: bool = True,
    later: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> CatalogueLoss:
    """Mean softmax cross-entropy over the rows with a target column plus ``weight`` x
    mean ``-log(1 - p(rejected))`` over the rows with a rejected column.

    ``hidden`` (N, d) states, ``candidates`` (C, d) the embeddings of the columns,
    ``target_columns`` / ``rejected_columns`` (N,) each row's column (-1 = none).
    Without ``offsets`` every column is a candidate of every row (the catalogue). With
    ``offsets`` (S,), the first S columns are the sample: the offsets are added to
    every row's logits of them, but at its own target and, with
    ``rejected_in_ranking``, its own rejected item (those keep their raw logit); a
    column past the sample is some rows' rejected item and a candidate of those rows
    only (of their ranking with ``rejected_in_ranking``, and of their
    not-to-recommend term, which always takes the rejected item's raw logit). Targets
    must lie in the sample. ``later`` (rows, columns), two (P,) tensors, adds one term
    of the not-to-recommend mean per pair (the later rejections of a window; catalogue
    form only). Under autocast the matrix products run in the autocast dtype;
    logsumexp and the loss are always float32.
    """
    if hidden.dim() != 2 or hidden.shape[1] != candidates.shape[1]:
        raise ValueError(f"hidden {tuple(hidden.shape)} must be (N, {candidates.shape[1]})")
    if target_columns.shape != hidden.shape[:1] or rejected_columns.shape != hidden.shape[:1]:
        raise ValueError("targets and rejected must each hold one column per row of hidden")
    if offsets is not None and (offsets.dim() != 1 or len(offsets) > len(candidates)):
        raise ValueError(f"offsets {tuple(offsets.shape)} must hold one value per sampled column")
    if later is not None and offsets is not None:
        raise ValueError("later rejections as pairs take the catalogue form (no offsets)")
    pair_rows, pair_columns = later if later is not None else (target_columns[:0],) * 2
    order = pair_rows.argsort(stable=True)
    device = hidden.device.type
    compute_dtype = (
        torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else torch.float32
    )
    rows = chunk_rows(candidates.shape[0], budget_mib)
    total, ce, ntr = _ChunkedCandidateSoftmax.apply(
        hidden,
        candidates,
        target_columns,
        rejected_columns,
        offsets,
        float(not_to_recommend_weight),
        rejected_in_ranking,
        rows,
        compute_dtype,
        pair_rows[order],
        pair_columns[order],
    )
    return CatalogueLoss(total, float(ce), float(ntr))


def catalogue_softmax_loss(
    hidden: torch.Tensor,
    table: torch.Tensor,
    targets: torch.Tensor,
    rejected: torch.Tensor,
    not_to_recommend_weight: float = 0.0,
    budget_mib: float = 256.0,
    later: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> CatalogueLoss:
    """Mean full-catalogue cross-entropy over rows with a target (``targets > 0``) plus
    ``weight`` x mean ``-log(1 - p(rejected))`` over rows with a rejected item and over
    the ``later`` (row, item id) pairs.

    ``hidden`` (N, d) states, ``table`` (num_items + 1, d) output embeddings (row 0 is
    padding, never a candidate), ``targets`` / ``rejected`` (N,) item ids, 0 = none:
    :func:`candidate_softmax_loss` with every item a column and no offsets.
    """
    if hidden.dim() != 2 or hidden.shape[1] != table.shape[1]:
        raise ValueError(f"hidden {tuple(hidden.shape)} must be (N, {table.shape[1]})")
    pairs = None if later is None else (later[0], later[1] - 1)
    return candidate_softmax_loss(
        hidden,
        table[1:],
        targets - 1,
        rejected - 1,
        not_to_recommend_weight,
        budget_mib,
        later=pairs,
    )
