"""Negative-feedback metrics: rejected-in-top-k and responsiveness (Wang et al.)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch

from negrec.action_codes import NEGATIVE, POSITIVE


def rejected_in_top_k(top_ids: torch.Tensor, heldout_rejected: torch.Tensor) -> tuple[float, float]:
    """(hits, total): how many held-out rejected items (nonzero entries of the
    (batch, R) tensor) appear in each row's top-k ids (batch, k). Lower is better."""
    if top_ids.shape[0] != heldout_rejected.shape[0]:
        raise ValueError("top_ids and heldout_rejected must have the same batch size")
    present = heldout_rejected > 0
    hit = (heldout_rejected.unsqueeze(-1) == top_ids.unsqueeze(1)).any(-1) & present
    return float(hit.sum()), float(present.sum())


TopK = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(items, actions) -> (batch, k) recommended item ids, seen items excluded."""


def cluster_share(
    top_ids: torch.Tensor, probe: torch.Tensor, clusters: torch.Tensor
) -> torch.Tensor:
    """Per row, the share of top-k items that share a cluster with the probe item.

    ``clusters`` is either (num_items + 1,) cluster ids (-1 = none) or a
    (num_items + 1, C) boolean membership matrix (items in several genres).
    """
    if clusters.dim() == 1:
        probe_cluster = clusters[probe].unsqueeze(1)
        same = (clusters[top_ids] == probe_cluster) & (probe_cluster >= 0)
    else:
        same = (clusters[top_ids] & clusters[probe].unsqueeze(1)).any(-1)
    return same.to(torch.float64).mean(1)


def responsiveness(
    top_k_fn: TopK, items: torch.Tensor, actions: torch.Tensor, clusters: torch.Tensor
) -> dict[str, float]:
    """Relative change in same-cluster share of the top-k when the last interaction of
    each history is negative instead of positive.

    -0.6 means the negative branch shows 60% fewer items from the rejected item's
    cluster than the positive branch. Histories whose last position is padding are
    ignored.
    """
    valid = items[:, -1] > 0
    if not bool(valid.any()):
        raise ValueError("responsiveness needs histories whose last position is an item")
    items, actions = items[valid], actions[valid]
    probe = items[:, -1]
    shares = {}
    for name, action in (("positive", POSITIVE), ("negative", NEGATIVE)):
        branched = actions.clone()
        branched[:, -1] = action
        shares[name] = float(cluster_share(top_k_fn(items, branched), probe, clusters).mean())
    if shares["positive"] == 0:
        raise ValueError("no same-cluster items in the positive branch: responsiveness undefined")
    change = (shares["negative"] - shares["positive"]) / shares["positive"]
    return {
        "share_positive": shares["positive"],
        "share_negative": shares["negative"],
        "responsiveness": change,
    }


def data_responsiveness(
    sequences: Iterable[tuple[np.ndarray, np.ndarray]], clusters: np.ndarray, horizon: int = 10
) -> dict[str, float]:
    """Responsiveness of the data itself: the relative change in the share of the next
    ``horizon`` liked items that share the cluster of the item at position t when that
    interaction was rejected instead of liked, over every position of every
    (items, actions) sequence with a clustered item and a later like. ``clusters`` is
    one cluster id per item index (-1 = none), as :func:`negrec.data.loaders.item_clusters`
    gives.

    It is the yardstick for :func:`responsiveness`: roughly what a model that predicted
    the true next likes would show. It is observed across positions, not a branch of one
    history, so part of it can be users who reject a cluster liking less of it overall.
    """
    totals = {POSITIVE: [0.0, 0], NEGATIVE: [0.0, 0]}
    for items, actions in sequences:
        liked = np.flatnonzero(actions == POSITIVE)
        if liked.size == 0:
            continue
        liked_clusters = clusters[items[liked]]
        # per position t: the liked positions after it, liked[first[t]:first[t] + horizon]
        first = np.searchsorted(liked, np.arange(items.size), side="right")
        window = first[:, None] + np.arange(horizon)[None, :]
        inside = window < liked.size
        ahead = liked_clusters[np.minimum(window, liked.size - 1)]
        own = clusters[items]
        same = (ahead == own[:, None]) & inside
        counted = inside.any(1) & (own >= 0)
        share = same.sum(1) / np.maximum(inside.sum(1), 1)
        for action, total in totals.items():
            chosen = counted & (actions == action)
            total[0] += float(share[chosen].sum())
            total[1] += int(chosen.sum())
    if totals[POSITIVE][1] == 0 or totals[NEGATIVE][1] == 0:
        raise ValueError("data responsiveness needs both liked and rejected clustered items")
    positive = totals[POSITIVE][0] / totals[POSITIVE][1]
    negative = totals[NEGATIVE][0] / totals[NEGATIVE][1]
    if positive == 0:
        raise ValueError("no same-cluster likes after a like: data responsiveness undefined")
    return {
        "share_positive": positive,
        "share_negative": negative,
        "responsiveness": (negative - positive) / positive,
        "positions_positive": totals[POSITIVE][1],
        "positions_negative": totals[NEGATIVE][1],
    }
