"""In-batch sampled softmax with the log-Q correction, its not-to-recommend term, and
the ``objective.loss: auto`` choice."""

from __future__ import annotations

import math

import pytest
import torch

from negrec.batching import TrainBatch
from negrec.config import ConfigError, ObjectiveConfig, build_config, load_config
from negrec.model import ActionAwareGSASRec
from negrec.objectives.catalogue_softmax import candidate_softmax_loss
from negrec.objectives.choice import resolve_objective
from negrec.objectives.sampled_candidates import (
    TargetFrequencies,
    count_targets,
    draw_negatives,
    in_batch_candidates,
    in_batch_softmax_loss,
    log_inclusion_probability,
)
from negrec.objectives.sampling import proportional_negatives
from negrec.objectives.training_loss import LossValue, training_loss
from negrec.training import train
from tests.objective_helpers import small_batch, small_model
from tests.patterns import pattern_sequences, split_last_positive, train_batches

NUM_ITEMS = 30


def zipf_counts(num_items: int = NUM_ITEMS, total: float = 2000.0) -> torch.Tensor:
    """Skewed training-target counts by item id (index 0, padding, 0)."""
    counts = torch.zeros(num_items + 1, dtype=torch.int64)
    counts[1:] = (total / torch.arange(1, num_items + 1).double() ** 1.2).round().long()
    return counts


def reference_loss(
    hidden: torch.Tensor,
    table: torch.Tensor,
    targets: torch.Tensor,
    rejected: torch.Tensor,
    draws: torch.Tensor,
    counts: torch.Tensor,
    distribution: str,
    weight: float,
    rejected_in_ranking: bool,
) -> torch.Tensor:
    """The textbook formulas, one position and one candidate at a time, in float64.

    ``pi_j = 1 - (1 - q_j)^(P-1) (1 - u_j)^k`` for every item of the sample (the batch's
    targets and the draws); a position's own target (and, in the ranking, its own
    rejected item) enters uncorrected; ``-log(1 - p(r))`` with ``r`` uncorrected.
    """
    counts = counts.double().clamp(min=1)
    counts[0] = 0
    q = counts / counts.sum()
    positions = int((targets > 0).sum())
    sample = {int(j) for j in targets[targets > 0]} | {int(j) for j in draws}

    def log_pi(j: int) -> float:
        u = float(q[j]) if distribution == "popularity" else 1.0 / (len(q) - 1)
        absent = (1 - float(q[j])) ** (positions - 1) * (1 - u) ** len(draws)
        return math.log(1 - absent)

    def score(i: int, j: int) -> torch.Tensor:
        return hidden[i].double() @ table[j].double()

    ce, ntr = [], []
    for i in range(len(targets)):
        t, r = int(targets[i]), int(rejected[i])
        own = {j for j in (t, r if rejected_in_ranking else 0) if j > 0}
        ranked = [score(i, j) - log_pi(j) for j in sorted(sample - own)]
        ranked += [score(i, j) for j in sorted(own)]
        if t > 0:
            ce.append(torch.logsumexp(torch.stack(ranked), 0) - score(i, t))
        if r > 0:
            others = [score(i, j) - log_pi(j) for j in sorted(sample - {t, r})]
            others += [score(i, t)] if t > 0 else []
            p = torch.softmax(torch.stack([score(i, r), *others]), 0)[0]
            ntr.append(-torch.log1p(-p))
    total = torch.stack(ce).mean()
    if weight > 0 and ntr:
        total = total + weight * torch.stack(ntr).mean()
    return total


def random_batch(
    rows: int = 14, dim: int = 6, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(rows, dim, generator=generator)
    table = torch.randn(NUM_ITEMS + 1, dim, generator=generator)
    targets = torch.randint(1, NUM_ITEMS + 1, (rows,), generator=generator)
    targets[::4] = 0  # a position with a rejected item but no target
    rejected = torch.randint(1, NUM_ITEMS + 1, (rows,), generator=generator)
    rejected[1::2] = 0
    draws = torch.randint(1, NUM_ITEMS + 1, (5,), generator=generator)
    draws[0] = int(targets[1])  # a draw that is some position's target
    return hidden, table, targets, rejected, draws


@pytest.mark.parametrize("distribution", ["uniform", "popularity"])
@pytest.mark.parametrize("rejected_in_ranking", [True, False])
@pytest.mark.parametrize("budget_mib", [1e-6, 256.0])
def test_corrected_loss_equals_the_float64_loop_in_value_and_gradients(
    distribution: str, rejected_in_ranking: bool, budget_mib: float
) -> None:
    hidden, table, targets, rejected, draws = random_batch()
    counts = zipf_counts()
    counts[7] = 0  # never a target: counted as the rarest, never an infinite correction
    frequencies = TargetFrequencies.from_counts(counts)
    ours_h, ours_t = hidden.clone().requires_grad_(), table.clone().requires_grad_()
    loss = in_batch_softmax_loss(
        ours_h,
        ours_t,
        targets,
        rejected,
        draws,
        frequencies,
        distribution,
        not_to_recommend_weight=0.6,
        budget_mib=budget_mib,
        rejected_in_ranking=rejected_in_ranking,
    )
    loss.total.backward()
    ref_h, ref_t = hidden.double().requires_grad_(), table.double().requires_grad_()
    reference = reference_loss(
        ref_h, ref_t, targets, rejected, draws, counts, distribution, 0.6, rejected_in_ranking
    )
    reference.backward()
    assert float(loss.total.detach()) == pytest.approx(float(reference.detach()), rel=1e-5)
    torch.testing.assert_close(ours_h.grad, ref_h.grad.float(), atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(ours_t.grad, ref_t.grad.float(), atol=1e-6, rtol=1e-4)


def test_a_drawn_copy_of_a_positions_target_adds_nothing() -> None:
    """One position, target 3: drawing 3 again leaves the candidate set {3, 9} and so the
    loss unchanged; counting the copy as a negative would not."""
    generator = torch.Generator().manual_seed(2)
    hidden, table = torch.randn(1, 6, generator=generator), torch.randn(NUM_ITEMS + 1, 6)
    frequencies = TargetFrequencies.from_counts(zipf_counts())
    target, none = torch.tensor([3]), torch.tensor([0])

    def loss(draws: list[int]) -> float:
        return in_batch_softmax_loss(
            hidden, table, target, none, torch.tensor(draws), frequencies, "popularity"
        ).cross_entropy

    assert loss([9, 3]) == loss([9, 9])
    candidates = in_batch_candidates(target, none, torch.tensor([9, 3]), frequencies, "popularity")
    assert candidates.items.tolist() == [3, 9]
    # The same two columns with the target's copy kept as a corrected negative differ.
    scores = hidden @ table[[3, 3, 9]].T
    copy_counted = torch.logsumexp(scores[0] + torch.cat([torch.zeros(1), candidates.offsets]), 0)
    assert float(copy_counted - scores[0, 0]) > loss([9, 3]) + 1e-3


def test_uniform_draws_alone_have_one_constant_correction_that_keeps_the_gradient_order() -> None:
    """With no other target positions, pi_j = 1 - (1 - 1/N)^k for every item (~ k/N):
    the correction shifts every negative alike, so the order of the candidates'
    gradients stays, while their size relative to the positive's changes."""
    num_items, k = 1000, 64
    log1m_share = torch.log1p(-torch.full((num_items,), 1e-3, dtype=torch.float64))
    log_pi = log_inclusion_probability(log1m_share, 0, math.log1p(-1 / num_items), k)
    assert torch.equal(log_pi, log_pi[:1].expand_as(log_pi))
    assert float(log_pi[0]) == pytest.approx(math.log(k / num_items), abs=k / num_items)

    generator = torch.Generator().manual_seed(3)
    hidden = torch.randn(1, 8, generator=generator)
    candidates = torch.randn(20, 8, generator=generator)
    offsets = torch.full((20,), -float(log_pi[0]))
    grads = []
    for shift in (None, offsets):
        table = candidates.clone().requires_grad_()
        candidate_softmax_loss(
            hidden, table, torch.tensor([0]), torch.tensor([-1]), offsets=shift
        ).total.backward()
        grads.append(table.grad.norm(dim=1)[1:])  # the negatives; column 0 is the target
    plain, corrected = grads
    assert torch.equal(plain.argsort(), corrected.argsort())
    assert not torch.allclose(plain, corrected)


@pytest.mark.parametrize("distribution", ["uniform", "popularity"])
def test_with_the_correction_the_sampled_softmax_approximates_the_full_one(
    distribution: str,
) -> None:
    """Batches of 4 positions whose other 3 targets follow a skewed popularity, plus 6
    draws: over many batches the corrected normaliser is unbiased for the catalogue's
    (Horvitz-Thompson), and the mean gradient is far closer to the full softmax's than
    without the correction, which ranks rare items as if they did not exist."""
    num_items, target = 40, 5
    frequencies = TargetFrequencies.from_counts(zipf_counts(num_items))
    scores = torch.randn(num_items, generator=torch.Generator().manual_seed(0))
    table = torch.cat([torch.zeros(1, num_items), torch.eye(num_items)])  # logit j = score j
    full_normaliser = float(torch.exp(scores.double()).sum())
    full_gradient = torch.softmax(scores.double(), 0)
    full_gradient[target - 1] -= 1
    trials = 600
    results = {}
    for corrected in (True, False):
        generator = torch.Generator().manual_seed(1)
        normalisers, gradient = [], torch.zeros(num_items, dtype=torch.float64)
        for _ in range(trials):
            others = proportional_negatives(frequencies.cumulative, 3, generator)
            targets = torch.cat([torch.tensor([target]), others])
            draws = draw_negatives(distribution, frequencies, 6, generator)
            sample = in_batch_candidates(
                targets, torch.zeros_like(targets), draws, frequencies, distribution
            )
            hidden = scores[None].clone().requires_grad_()
            loss = candidate_softmax_loss(
                hidden,
                table[sample.items],
                sample.target_columns[:1],  # the first position's own loss
                sample.rejected_columns[:1],
                offsets=sample.offsets if corrected else None,
            )
            loss.total.backward()
            normalisers.append(math.exp(loss.cross_entropy + float(scores[target - 1])))
            gradient += hidden.grad[0].double()
        estimate = torch.tensor(normalisers, dtype=torch.float64)
        error = float((gradient / trials - full_gradient).norm())
        results[corrected] = (
            estimate.mean() / full_normaliser,
            estimate.std() / trials**0.5,
            error,
        )
    ratio, standard_error, corrected_error = results[True]
    assert abs(float(ratio) - 1) < 4 * float(standard_error) / full_normaliser
    assert float(results[False][0]) < 0.5  # uncorrected: a fraction of the catalogue's
    assert corrected_error < 0.5 * results[False][2]


@pytest.mark.parametrize(
    ("score", "expected_p"),
    [(95.0, "one"), (-70.0, "zero")],
)
def test_sampled_not_to_recommend_is_finite_and_exact_near_p_zero_and_one(
    score: float, expected_p: str
) -> None:
    """Items score 0 except the rejected item 1; its ``-log(1 - p)`` against the float64
    value, where the float32 ``log(1 - exp(log p))`` would be inf (p ~ 1) or 0 (p ~ 0)."""
    table = torch.zeros(NUM_ITEMS + 1, 1)
    table[1] = score
    hidden = torch.ones(2, 1, requires_grad=True)
    targets, rejected = torch.tensor([3, 4]), torch.tensor([1, 0])
    draws = torch.tensor([5, 6, 7])
    frequencies = TargetFrequencies.from_counts(zipf_counts())
    loss = in_batch_softmax_loss(
        hidden, table, targets, rejected, draws, frequencies, "uniform", 1.0
    )
    loss.total.backward()
    # Row 0's other candidates: target 3 raw (score 0) and 4, 5, 6, 7 at -log pi_j.
    others = torch.tensor([4, 5, 6, 7])
    log_pi = log_inclusion_probability(
        frequencies.log1m_share[others], 1, math.log1p(-1 / NUM_ITEMS), 3
    )
    log_others = math.log(1 + float(torch.exp(-log_pi).sum()))
    expected = math.log1p(math.exp(score - log_others))  # -log(1 - p) = softplus(s - log Z)
    assert math.isfinite(loss.not_to_recommend)
    assert loss.not_to_recommend == pytest.approx(expected, rel=1e-5, abs=1e-35)
    assert (expected > 90) if expected_p == "one" else (expected < 1e-29)
    assert torch.isfinite(hidden.grad).all()


@pytest.mark.parametrize("rejected_as_negatives", [True, False])
def test_zero_weight_gives_exactly_the_plain_loss(rejected_as_negatives: bool) -> None:
    model, batch = small_model(NUM_ITEMS), small_batch()
    frequencies = TargetFrequencies.from_counts(count_targets([batch], NUM_ITEMS))

    def value(weight: float, rejected: torch.Tensor) -> LossValue:
        config = ObjectiveConfig(
            loss="softmax",
            sampling="in_batch",
            negatives=4,
            rejected_as_negatives=rejected_as_negatives,
            not_to_recommend_weight=weight,
        )
        changed = TrainBatch(batch.items, batch.actions, batch.targets, rejected)
        generator = torch.Generator().manual_seed(0)
        return training_loss(model, changed, config, generator, frequencies=frequencies)

    off = value(0.0, batch.rejected)
    assert off.not_to_recommend == 0.0
    assert float(off.total.detach()) == off.ranking
    if not rejected_as_negatives:  # then rejected items play no part at w = 0
        assert torch.equal(off.total, value(0.0, torch.zeros_like(batch.rejected)).total)
    on = value(0.5, batch.rejected)  # the same draws: the same ranking loss, plus the term
    assert on.ranking == pytest.approx(off.ranking, rel=1e-6)
    assert on.not_to_recommend > 0


def test_in_batch_sampling_without_counts_or_unresolved_auto_is_refused() -> None:
    model, batch = small_model(NUM_ITEMS), small_batch()
    with pytest.raises(ValueError, match=r"objective\.sampling=in_batch.*count_targets"):
        training_loss(model, batch, ObjectiveConfig(loss="softmax", sampling="in_batch"))
    with pytest.raises(ValueError, match=r"objective\.loss=auto must be resolved"):
        training_loss(model, batch, ObjectiveConfig(loss="auto"))


def test_targets_are_counted_and_popularity_draws_follow_the_counts() -> None:
    batch = small_batch()
    counts = count_targets([batch, batch], NUM_ITEMS)
    assert int(counts[0]) == 0 and int(counts[9]) == 4 and int(counts.sum()) == 2 * 11
    frequencies = TargetFrequencies.from_counts(zipf_counts())
    draws = proportional_negatives(
        frequencies.cumulative, 200_000, torch.Generator().manual_seed(0)
    )
    assert int(draws.min()) >= 1 and int(draws.max()) <= NUM_ITEMS
    share = torch.bincount(draws, minlength=NUM_ITEMS + 1)[1:].double() / len(draws)
    expected = zipf_counts()[1:].double() / zipf_counts().sum()
    assert float((share - expected).abs().max()) < 0.005


@pytest.mark.parametrize(
    ("num_items", "batch_size", "max_len", "budget", "loss"),
    [
        (3416, 128, 200, 2048.0, "ce"),  # ML-1M: 334 MiB of logits
        (1_000_000, 128, 200, 2048.0, "softmax"),  # 95 GiB
        (20_971, 128, 200, 2048.0, "ce"),  # 2,047.9 MiB: just fits
        (20_972, 128, 200, 2048.0, "softmax"),
        (3416, 128, 200, 100.0, "softmax"),  # a smaller budget
    ],
)
def test_auto_takes_ce_while_a_batchs_catalogue_logits_fit_the_budget(
    num_items: int, batch_size: int, max_len: int, budget: float, loss: str
) -> None:
    auto = ObjectiveConfig(loss="auto", auto_logits_budget_mib=budget, negatives=128)
    choice = resolve_objective(auto, num_items, batch_size, max_len)
    assert choice.objective.loss == loss
    if loss == "softmax":
        assert choice.objective.sampling == "in_batch"
        assert choice.objective.negative_distribution == "uniform"
        assert choice.objective.negatives == 128
        assert "in_batch + 128 uniform" in choice.line() and ">" in choice.line()
    assert len("negrec train: " + choice.line()) <= 120


def test_an_explicit_loss_wins_over_auto_and_the_longest_line_fits() -> None:
    for loss in ("ce", "gbce", "bce", "softmax"):
        explicit = ObjectiveConfig(loss=loss)
        assert resolve_objective(explicit, 10**7, 128, 200).objective is explicit
    worst = ObjectiveConfig(loss="auto", negatives=9999, negative_distribution="popularity")
    assert len("negrec train: " + resolve_objective(worst, 10**9, 128, 200).line()) <= 120


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["objective.loss=gbce", "objective.sampling=in_batch"], "objective.sampling"),
        (["objective.loss=auto", "objective.sampling=per_position"], "objective.sampling"),
        (
            ["objective.loss=softmax", "objective.negative_distribution=popularity"],
            "objective.negative_distribution",
        ),
        (["objective.negative_distribution=zipf"], "objective.negative_distribution"),
        (["objective.auto_logits_budget_mib=0"], "objective.auto_logits_budget_mib"),
    ],
)
def test_config_errors_name_the_key(overrides: list[str], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(overrides=overrides)


def test_the_loop_resolves_auto_to_ce_on_a_small_catalogue_and_trains_insmall_batch() -> None:
    items, actions = pattern_sequences(users=64, items=NUM_ITEMS, length=10, seed=0)
    train_items, train_actions, val = split_last_positive(items, actions)

    def fit(objective: dict) -> dict[str, torch.Tensor]:
        config = build_config(
            {
                "model": {"max_len": 10, "dim": 16, "blocks": 1, "dropout": 0.0},
                "objective": {"negatives": 8, **objective},
                "train": {"batch_size": 16, "max_epochs": 1, "steps_per_epoch": 2},
            }
        )
        torch.manual_seed(0)
        model = ActionAwareGSASRec(NUM_ITEMS, config.model)
        train(
            model,
            lambda epoch: train_batches(train_items, train_actions, 10, 16, seed=epoch),
            lambda: [val],
            config,
        )
        return model.state_dict()

    auto, ce = fit({"loss": "auto"}), fit({"loss": "ce"})
    assert all(torch.equal(auto[name], ce[name]) for name in ce)
    in_batch = fit(
        {"loss": "softmax", "sampling": "in_batch", "negative_distribution": "popularity"}
    )
    assert all(torch.isfinite(tensor).all() for tensor in in_batch.values())
    assert not torch.equal(in_batch["output_embedding.weight"], ce["output_embedding.weight"])
