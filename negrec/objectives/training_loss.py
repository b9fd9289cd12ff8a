"""The training objective of a batch: ranking loss on next positives + not-to-recommend.

Why one function: the in-process loop, the Ray Train worker and the benchmarks must
compute exactly the same objective; the choices (loss, sampling mode, rejected items as
hard negatives, weight w) all come from ``ObjectiveConfig``. ``loss: auto`` is resolved
once a run, before any batch (``negrec.objectives.choice``), since its choice depends on
the run's batch shape and catalogue, not on one batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from negrec.batching import PAD, TrainBatch
from negrec.config import ObjectiveConfig
from negrec.model.gsasrec import ActionAwareGSASRec
from negrec.model.scoring import score_items, score_per_position, score_shared
from negrec.objectives.catalogue_softmax import CatalogueLoss, catalogue_softmax_loss
from negrec.objectives.losses import (
    bce_loss,
    gbce_beta,
    gbce_loss,
    not_to_recommend_loss,
    sampled_not_to_recommend_loss,
    sampled_softmax_loss,
)
from negrec.objectives.sampled_candidates import (
    TargetFrequencies,
    draw_negatives,
    in_batch_softmax_loss,
)
from negrec.objectives.sampling import uniform_negatives


@dataclass(frozen=True)
class LossValue:
    """The differentiable total and its parts (detached floats, for logging)."""

    total: torch.Tensor
    ranking: float
    not_to_recommend: float
    positions: int


def needs_target_frequencies(config: ObjectiveConfig) -> bool:
    """Whether the objective needs the training targets' item counts: in-batch sampled
    softmax does, for its log-Q correction and popularity draws."""
    return config.loss == "softmax" and config.sampling == "in_batch"


def _negative_scores(
    model: ActionAwareGSASRec,
    hidden: torch.Tensor,
    targets: torch.Tensor,
    config: ObjectiveConfig,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """(batch, length, k) logits of uniform negatives; a draw that hits the position's
    own target is masked to -inf (it adds nothing), as gBCE's alpha = k / (|I| - 1)
    assumes negatives are drawn from the catalogue *without* the positive."""
    batch, length, _ = hidden.shape
    k = config.negatives
    if config.sampling == "shared":
        negatives = uniform_negatives(model.num_items, (batch, k), hidden.device, generator)
        scores = score_shared(model, hidden, negatives)
        hits = negatives.unsqueeze(1) == targets.unsqueeze(-1)
    else:
        shape = (batch, length, k)
        negatives = uniform_negatives(model.num_items, shape, hidden.device, generator)
        scores = score_per_position(model, hidden, negatives)
        hits = negatives == targets.unsqueeze(-1)
    return scores.masked_fill(hits, float("-inf"))


def ranking_loss(
    config: ObjectiveConfig,
    num_items: int,
    pos: torch.Tensor,
    neg: torch.Tensor,
    hard: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Dispatch to the configured loss (shapes as in ``losses.gbce_loss``)."""
    if config.loss == "gbce":
        beta = gbce_beta(config.negatives, num_items, config.gbce_t)
        return gbce_loss(pos, neg, beta, hard, valid)
    if config.loss == "bce":
        return bce_loss(pos, neg, hard, valid)
    return sampled_softmax_loss(pos, neg, hard, valid)


def later_rejections(
    items: torch.Tensor, rejected: torch.Tensor, window: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The rejected items of the 2nd to ``window``-th interaction after each input
    position, as (index into the flattened (batch, length) positions, item) pairs.

    Why: a ranking is judged on the rejections that come after the next liked item
    (the held-out rejected items of a split), but the next-interaction label
    (``rejected``, a batch's (batch, length) labels) never teaches the state before a
    like about the rejection that follows it. Shifting ``rejected`` left by ``s`` gives
    each position the label of its (s+1)-th next interaction; padding positions (``items``
    == PAD) are states of nothing and get none.
    """
    real = (items != PAD).flatten()
    length = rejected.shape[1]
    positions, labels = [], []
    for shift in range(1, min(window, length)):
        later = torch.zeros_like(rejected)
        later[:, :-shift] = rejected[:, shift:]
        keep = real & (later.flatten() > 0)
        positions.append(keep.nonzero().squeeze(1))
        labels.append(later.flatten()[keep])
    if not positions:
        empty = rejected.new_zeros(0)
        return empty, empty
    return torch.cat(positions), torch.cat(labels)


def _window_pairs(
    batch: TrainBatch, rejected: torch.Tensor, config: ObjectiveConfig
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(flattened position, item) of every later rejection the term trains on, or None
    when the window is 1 or the term is off."""
    if config.not_to_recommend_window == 1 or config.not_to_recommend_weight == 0:
        return None
    return later_rejections(batch.items, rejected, config.not_to_recommend_window)


def _softmax_rows(
    hidden: torch.Tensor, batch: TrainBatch, rejected: torch.Tensor, config: ObjectiveConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(states, targets, rejected items) of the sampled softmax's rows: every position
    with a target or a rejected next item, plus one target-less row per later
    rejection (:func:`later_rejections`): a sampled row's candidates must hold its
    rejected item, so there each pair is a row of its own."""
    rows = (batch.targets > 0) | (rejected > 0)
    states, targets, row_rejected = hidden[rows], batch.targets[rows], rejected[rows]
    pairs = _window_pairs(batch, rejected, config)
    if pairs is None:
        return states, targets, row_rejected
    positions, items = pairs
    return (
        torch.cat([states, hidden.flatten(0, 1)[positions]]),
        torch.cat([targets, torch.zeros_like(items)]),
        torch.cat([row_rejected, items]),
    )


def _softmax_value(loss: CatalogueLoss, batch: TrainBatch) -> LossValue:
    positions = int((batch.targets > 0).sum())
    return LossValue(loss.total, loss.cross_entropy, loss.not_to_recommend, positions)


def _catalogue_loss(
    model: ActionAwareGSASRec, hidden: torch.Tensor, batch: TrainBatch, config: ObjectiveConfig
) -> LossValue:
    """``ce``: softmax over every item at every position with a target, a rejected next
    item or a later rejection; a later rejection is a (row, item) pair of the term."""
    rows = ((batch.targets > 0) | (batch.rejected > 0)).flatten()
    pairs = _window_pairs(batch, batch.rejected, config)
    later = None
    if pairs is not None:
        positions, items = pairs
        rows[positions] = True
        later = (rows.cumsum(0)[positions] - 1, items)
    loss = catalogue_softmax_loss(
        hidden.flatten(0, 1)[rows],
        model.output_weights,
        batch.targets.flatten()[rows],
        batch.rejected.flatten()[rows],
        config.not_to_recommend_weight,
        config.logits_chunk_mib,
        later,
    )
    return _softmax_value(loss, batch)


def _in_batch_loss(
    model: ActionAwareGSASRec,
    hidden: torch.Tensor,
    batch: TrainBatch,
    config: ObjectiveConfig,
    frequencies: TargetFrequencies,
    generator: torch.Generator | None,
) -> LossValue:
    """``softmax`` + ``in_batch``: every position against the batch's targets and k
    draws, log-Q corrected (``negrec.objectives.sampled_candidates``)."""
    uses_rejected = config.rejected_as_negatives or config.not_to_recommend_weight > 0
    rejected = batch.rejected if uses_rejected else torch.zeros_like(batch.rejected)
    states, targets, row_rejected = _softmax_rows(hidden, batch, rejected, config)
    distribution = config.negative_distribution
    loss = in_batch_softmax_loss(
        states,
        model.output_weights,
        targets,
        row_rejected,
        draw_negatives(distribution, frequencies, config.negatives, generator),
        frequencies,
        distribution,
        config.not_to_recommend_weight,
        config.logits_chunk_mib,
        config.rejected_as_negatives,
    )
    return _softmax_value(loss, batch)


def training_loss(
    model: ActionAwareGSASRec,
    batch: TrainBatch,
    config: ObjectiveConfig,
    generator: torch.Generator | None = None,
    encode: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    frequencies: TargetFrequencies | None = None,
) -> LossValue:
    """Loss of one batch over every position that has a next positive item.

    ``encode`` is the callable that runs the forward pass (the DDP wrapper of ``model``
    in distributed training, so gradients are synchronised); scoring uses ``model``.
    ``frequencies`` (the training targets' item counts, on the batch's device) are
    needed by ``in_batch`` sampling only. The not-to-recommend term takes the form of
    the ranking loss: the softmax's own ``-log(1 - p(rejected))`` for ``ce`` and
    ``softmax``, ``softplus(score)`` for the binary losses.
    """
    if config.loss == "auto":
        raise ValueError(
            "objective.loss=auto must be resolved for the run first "
            "(negrec.objectives.choice.resolve_objective; the training loop does)"
        )
    if needs_target_frequencies(config) and frequencies is None:
        raise ValueError(
            "objective.sampling=in_batch needs the training targets' item counts for its "
            "log-Q correction: pass frequencies=TargetFrequencies.from_counts("
            "count_targets(...)) (the training loop does)"
        )
    hidden = (encode or model)(batch.items, batch.actions)
    has_target = batch.targets > 0
    has_rejected = batch.rejected > 0
    positions = int(has_target.sum())
    if positions == 0:
        return LossValue(hidden.sum() * 0.0, 0.0, 0.0, 0)
    if config.loss == "ce":
        return _catalogue_loss(model, hidden, batch, config)
    if needs_target_frequencies(config):
        return _in_batch_loss(model, hidden, batch, config, frequencies, generator)

    pos = score_items(model, hidden, batch.targets)
    neg = _negative_scores(model, hidden, batch.targets, config, generator)
    rejected = score_items(model, hidden, batch.rejected)
    hard = None
    if config.rejected_as_negatives:
        hard = rejected.masked_fill(~has_rejected, float("-inf"))
    ranking = ranking_loss(config, model.num_items, pos, neg, hard, has_target)

    ntr = ranking.new_zeros(())
    if config.not_to_recommend_weight > 0 and bool(has_rejected.any()):
        if config.loss == "softmax":
            ntr = sampled_not_to_recommend_loss(
                pos[has_rejected],
                neg[has_rejected],
                rejected[has_rejected],
                has_target[has_rejected],
            )
        else:
            ntr = not_to_recommend_loss(rejected[has_rejected])
    total = ranking + config.not_to_recommend_weight * ntr
    return LossValue(total, float(ranking.detach()), float(ntr.detach()), positions)
