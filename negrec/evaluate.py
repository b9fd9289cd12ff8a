"""``negrec evaluate``: ranking and negative-feedback metrics of a checkpoint.

Ranking (Recall@k, NDCG@k, MRR) over the full catalogue with seen items filtered,
rejected-in-top-k on held-out rejected items, the most-popular baseline on the same
rows for comparison, and responsiveness when the prepared data carries item clusters.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch

from negrec import checkpoint
from negrec.evaluation import evaluate, model_scorer, popularity_scorer, responsiveness
from negrec.model.gsasrec import ActionAwareGSASRec
from negrec.model.scoring import top_k

RESPONSIVENESS_USERS = 1000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory URI")
    parser.add_argument("--data", help="prepared dataset URI (default: the one trained on)")
    parser.add_argument("--split", choices=("val", "test"), default="test")
    parser.add_argument("-k", type=int, default=10, help="cut-off of the top-k metrics")
    parser.add_argument("--json", action="store_true", help="print a JSON summary last")


def _responsiveness(
    model: ActionAwareGSASRec, prepared: Any, split: str, k: int, clusters: torch.Tensor
) -> dict[str, float]:
    from negrec.data.loaders import local_eval_batches

    batches = local_eval_batches(prepared, split, RESPONSIVENESS_USERS, model.config.max_len)
    histories = next(iter(batches))
    with torch.no_grad():
        return responsiveness(
            lambda items, actions: top_k(model, items, actions, k)[0],
            histories.items,
            histories.actions,
            clusters,
        )


def run(
    checkpoint_uri: str, data_uri: str | None = None, split: str = "test", k: int = 10
) -> dict[str, Any]:
    """Metrics of the checkpoint's best weights on a split of the prepared data."""
    from negrec.data.loaders import item_clusters, item_counts, load_prepared, local_eval_batches

    saved = checkpoint.load(checkpoint_uri)
    prepared = load_prepared(data_uri or saved.data_uri)
    model = saved.best_model()
    max_len, size = saved.config.model.max_len, saved.config.train.eval_batch_size
    ks = tuple(sorted({1, k}))
    with torch.no_grad():
        ours = evaluate(
            model_scorer(model),
            local_eval_batches(prepared, split, size, max_len),
            ks,
            rejected_k=k,
        )
    popular = evaluate(
        popularity_scorer(item_counts(prepared)),
        local_eval_batches(prepared, split, size, max_len),
        ks,
        rejected_k=k,
    )
    result: dict[str, Any] = {
        "split": split,
        "rows": int(ours.ranking.count),
        **ours.metrics(),
        **{f"popular_{name}": value for name, value in popular.metrics().items()},
    }
    clusters = item_clusters(prepared)
    if clusters is not None and saved.config.model.num_actions > 1:
        result.update(_responsiveness(model, prepared, split, k, clusters))
    return result


def main(args: argparse.Namespace) -> int:
    result = run(args.checkpoint, args.data, args.split, args.k)
    width = max(len(key) for key in result)
    for key, value in result.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}")
    if args.json:
        print(json.dumps(result))
    return 0
