"""``objective.loss: auto``: full-catalogue cross-entropy while it is affordable, else
in-batch sampled softmax.

The rule: ``ce`` when the float32 logits of a full batch against the whole catalogue,

    train.batch_size x model.max_len x num_items x 4 bytes,

fit ``objective.auto_logits_budget_mib`` (2 GiB by default), else ``softmax`` with
``in_batch`` sampling. Why that quantity: it is what one unchunked pass of ``ce`` would
hold, and chunking bounds only the memory, not the work - every one of those logits is
built, exponentiated and pushed back through two matrix products each step, so the
step's cost grows with it while the sampled softmax's stays at positions x (positions
+ k). ML-1M (3,416 items at 128 x 200 positions: 334 MiB) keeps ``ce``, the measured
fastest to quality (docs/configuration.md); past about 21,000 items at 128 x 200 the
loss's work dwarfs the encoder's, and at 10^6 items (95 GiB of logits a step) ``ce``
is out of reach.

Why in-batch plus uniform draws: in-batch candidates cost nothing to pick and follow
the targets' popularity, so they are the hard negatives a model over-ranks, and the
log-Q correction removes exactly their popularity bias; the uniform draws reach the
long tail that in-batch candidates almost never contain (popularity draws would add
more of the head the batch already holds). Their number is ``objective.negatives``.

An explicit ``objective.loss`` is never changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from negrec.config import ObjectiveConfig
from negrec.objectives.catalogue_softmax import FLOAT_BYTES


def batch_logits_mib(num_items: int, batch_positions: int) -> float:
    """MiB of float32 logits of ``batch_positions`` positions against every item."""
    return batch_positions * num_items * FLOAT_BYTES / 2**20


def _size(mib: float) -> str:
    if mib < 1024:
        return f"{mib:,.0f} MiB"
    return f"{mib / 1024:,.1f}".removesuffix(".0") + " GiB"


@dataclass(frozen=True)
class ObjectiveChoice:
    """The objective a run trains with, and why (what ``negrec train`` prints)."""

    objective: ObjectiveConfig
    reason: str

    def line(self) -> str:
        """``objective softmax, in_batch + 256 uniform (auto: 25,600 x 1,000,000 logits
        = 95.4 GiB > 2 GiB)``: positions x items; at most 106 characters up to 10^9
        items and 9,999 draws, so 120 with ``negrec train: `` before it."""
        return f"objective {describe(self.objective)} ({self.reason})"


def describe(objective: ObjectiveConfig) -> str:
    """The loss and its candidates in a few words."""
    if objective.loss == "ce":
        return "ce"
    if objective.sampling == "in_batch":
        draws = f"{objective.negatives} {objective.negative_distribution}"
        return f"{objective.loss}, in_batch + {draws}"
    return f"{objective.loss}, {objective.negatives} {objective.sampling} negatives"


def resolve_objective(
    objective: ObjectiveConfig, num_items: int, batch_size: int, max_len: int
) -> ObjectiveChoice:
    """The concrete objective for ``objective.loss: auto`` (the rule in the module
    docstring); any other loss is returned as it is."""
    if objective.loss != "auto":
        return ObjectiveChoice(objective, "set by objective.loss")
    positions = batch_size * max_len
    mib = batch_logits_mib(num_items, positions)
    budget = objective.auto_logits_budget_mib
    sizes = f"auto: {positions:,} x {num_items:,} logits = {_size(mib)}"
    if mib <= budget:
        return ObjectiveChoice(
            objective.model_copy(update={"loss": "ce"}), f"{sizes} <= {_size(budget)}"
        )
    return ObjectiveChoice(
        objective.model_copy(update={"loss": "softmax", "sampling": "in_batch"}),
        f"{sizes} > {_size(budget)}",
    )
