"""The action-aware gSASRec model and its scoring helpers (pure PyTorch)."""

from negrec.model.gsasrec import ActionAwareGSASRec
from negrec.model.scoring import last_position_scores, score_per_position, score_shared, top_k

__all__ = [
    "ActionAwareGSASRec",
    "last_position_scores",
    "score_per_position",
    "score_shared",
    "top_k",
]
