"""Metric names: the one place they are spelt, all derived from the cut-off ``k``.

Why one home: the loop early-stops on validation NDCG@k with ``k = train.eval_k``, and
Ray Train ranks checkpoints, Ray Tune's ASHA stops trials, the sweep picks its best
trial and promotion compares versions on the same number; each must find it under the
same name, whatever ``k`` is. Evaluation keys are ``ndcg@k``, ``recall@k``, ``mrr`` and
``rejected_in_topk``; MLflow and Ray names cannot hold ``@``, so a logged name is the
split, an underscore and the key with ``@`` spelt ``_at_`` (``val_ndcg_at_10``).
"""

from __future__ import annotations

MRR = "mrr"
SPLITS = ("val", "test")


def ndcg(k: int) -> str:
    return f"ndcg@{k}"


def recall(k: int) -> str:
    return f"recall@{k}"


def rejected_in_top(k: int) -> str:
    """Share of held-out rejected items that appear in the top ``k``."""
    return f"rejected_in_top{k}"


def logged(key: str) -> str:
    """An evaluation key as MLflow and Ray accept it: ``ndcg@10`` -> ``ndcg_at_10``."""
    return key.replace("@", "_at_")


def on_split(split: str, key: str) -> str:
    """``("val", "ndcg@10")`` -> ``val_ndcg_at_10``."""
    return f"{split}_{logged(key)}"


def val_ndcg(k: int) -> str:
    """Validation NDCG@k: what early stopping and checkpoint ranking use."""
    return on_split("val", ndcg(k))


def best_val_ndcg(k: int) -> str:
    """Best validation NDCG@k so far: in every report of a run, so that Ray Tune, which
    fails a trial whose report lacks the metric the sweep ranks on, always finds it."""
    return f"best_{val_ndcg(k)}"


def test_ndcg(k: int) -> str:
    """Test NDCG@k: only the final report of a run carries it."""
    return on_split("test", ndcg(k))


def reported(k: int) -> tuple[str, str]:
    """The two test numbers a registered version carries, the ranking one first."""
    return ndcg(k), recall(k)
