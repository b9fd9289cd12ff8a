"""The one training loop: epochs over batches, validation, early stopping, hooks.

Why a plain function over iterables: the in-process path (tests, benchmarks, the demo)
and the Ray Train worker run *this* body; Ray-specific work (all-reducing metric sums,
checkpointing, reporting) arrives through ``LoopHooks`` so nothing here imports Ray.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from negrec import metrics
from negrec.batching import EvalBatch, TrainBatch, length_bucketed
from negrec.checkpoint import TrainState
from negrec.config import NegrecConfig, TrainConfig
from negrec.evaluation.batch_metrics import EvaluationSums, evaluate, model_scorer
from negrec.model.gsasrec import ActionAwareGSASRec
from negrec.objectives.choice import resolve_objective
from negrec.objectives.sampled_candidates import TargetFrequencies, count_targets
from negrec.objectives.training_loss import needs_target_frequencies, training_loss
from negrec.training.lr_schedule import set_lr
from negrec.training.precision import autocast_for
from negrec.training.weight_average import WeightAverage

TrainBatches = Callable[[int], Iterable[TrainBatch]]
"""pass (1-based) -> one pass over the training batches (shuffled by the data side)."""
ValBatches = Callable[[], Iterable[EvalBatch]]


@dataclass(frozen=True)
class EpochReport:
    """What one epoch did; hooks log it, checkpoint on it and print it."""

    epoch: int
    step: int
    train_loss: float
    not_to_recommend_loss: float
    val: dict[str, float]
    improved: bool
    best_ndcg: float
    best_epoch: int
    samples: int
    seconds: float
    train_seconds: float
    data_wait_seconds: float
    eta_s: float
    stop_reason: str | None  # why training stops after this epoch (None: it goes on)
    k: int  # the cut-off of the validation metrics (train.eval_k)

    @property
    def stop(self) -> bool:
        return self.stop_reason is not None

    @property
    def samples_per_s(self) -> float:
        """Training throughput (validation time excluded)."""
        return self.samples / self.train_seconds if self.train_seconds > 0 else 0.0

    def line(self, max_epochs: int) -> str:
        """A progress line a person can follow."""
        ndcg_key, recall_key = metrics.reported(self.k)
        ndcg = self.val.get(ndcg_key, float("nan"))
        recall = self.val.get(recall_key, float("nan"))
        mark = " *" if self.improved else ""
        tail = f"stopping: {self.stop_reason}" if self.stop else f"ETA <= {self.eta_s:.0f}s"
        return (
            f"epoch {self.epoch}/{max_epochs} step {self.step} loss {self.train_loss:.4f} "
            f"val {ndcg_key} {ndcg:.4f} {recall_key} {recall:.4f}{mark} | "
            f"{self.samples_per_s:,.0f} seq/s, {self.seconds:.1f}s, {tail}"
        )


class LoopHooks:
    """Extension points; the defaults are the single-process behaviour."""

    def reduce_sums(self, vector: torch.Tensor) -> torch.Tensor:
        """Sum a metric vector over workers (identity in one process)."""
        return vector

    def on_epoch_end(self, report: EpochReport, state: TrainState) -> None:
        """Called on every worker after validation; checkpoint or log here."""


@dataclass(frozen=True)
class TrainResult:
    state: TrainState
    best_val: dict[str, float]
    stop_reason: str


def _stop_reason(state: TrainState, epoch: int, started: float, config: TrainConfig) -> str | None:
    """Why training ends after ``epoch``, in words a person acts on; None to go on."""
    if state.epochs_without_gain >= config.patience:
        return (
            f"early stopping, no validation gain for {config.patience} epochs (patience; "
            f"best epoch {state.best_epoch})"
        )
    if _out_of_time(started, config):
        return f"time budget of {config.time_budget_minutes:g} minutes reached"
    if epoch >= config.max_epochs:
        return f"max_epochs={config.max_epochs} reached"
    return None


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return kind(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def _unwrap(model: torch.nn.Module) -> ActionAwareGSASRec:
    inner = getattr(model, "module", model)
    if not isinstance(inner, ActionAwareGSASRec):
        raise TypeError(f"expected ActionAwareGSASRec (optionally DDP-wrapped), got {type(inner)}")
    return inner


@dataclass(frozen=True)
class EpochStats:
    """What one pass over the training batches measured."""

    loss: float
    not_to_recommend: float
    samples: int
    train_seconds: float
    data_wait_seconds: float


class _BatchStream:
    """The training batches, epoch by epoch, length-bucketed.

    Without ``train.steps_per_epoch`` an epoch is one pass, number ``epoch``. With it, an
    epoch is a cap and the next one continues the pass where the last one stopped; a
    new pass (reshuffled, with the next number) begins when one ends. Why: restarting
    the data at every capped epoch would train on the first few thousand rows of the
    stream again and again (the local shuffle buffer mixes only a window of it). A
    resumed run begins a fresh pass: the position inside a pass is not checkpointed.
    """

    def __init__(self, batches: TrainBatches, config: TrainConfig, first_epoch: int) -> None:
        self._batches, self._config = batches, config
        self._pass = first_epoch - 1
        self._current: Iterator[TrainBatch] | None = None

    def _next_pass(self) -> Iterator[TrainBatch]:
        self._pass += 1
        generator = torch.Generator().manual_seed(self._config.seed * 1_000_003 + self._pass)
        batches = self._batches(self._pass)
        return iter(length_bucketed(batches, self._config.length_buckets, generator))

    def epoch(self) -> Iterator[TrainBatch]:
        """One epoch's batches: a whole pass, or ``steps_per_epoch`` of the stream."""
        cap = self._config.steps_per_epoch
        if cap is None:
            yield from self._next_pass()
            return
        taken = 0
        fresh = False
        while taken < cap:
            if self._current is None:
                self._current, fresh = self._next_pass(), True
            batch = next(self._current, None)
            if batch is None:
                self._current = None
                if fresh:  # a pass that yields nothing: the data is empty
                    return
                continue
            fresh = False
            taken += 1
            yield batch


def _train_epoch(
    model: torch.nn.Module,
    batches: Iterator[TrainBatch],
    optimizer: torch.optim.Optimizer,
    config: NegrecConfig,
    device: torch.device,
    state: TrainState,
    frequencies: TargetFrequencies | None,
    average: WeightAverage | None,
) -> EpochStats:
    core = _unwrap(model)
    model.train()
    loss_sum = ntr_sum = waited = 0.0
    steps = samples = 0
    start = time.perf_counter()
    while True:
        fetch = time.perf_counter()
        batch = next(batches, None)
        if batch is None:
            break
        batch = batch.to(device)
        waited += time.perf_counter() - fetch
        with autocast_for(config.train, device):
            loss = training_loss(
                core, batch, config.objective, encode=model, frequencies=frequencies
            )
        optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        if config.train.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
        set_lr(optimizer, state.step, config.train)
        optimizer.step()
        if average is not None:
            average.update(core)
        loss_sum += loss.ranking + config.objective.not_to_recommend_weight * loss.not_to_recommend
        ntr_sum += loss.not_to_recommend
        steps += 1
        samples += batch.size
        state.step += 1
    if steps == 0:
        raise ValueError("the training data yielded no batches: is the train split empty?")
    return EpochStats(
        loss=loss_sum / steps,
        not_to_recommend=ntr_sum / steps,
        samples=samples,
        train_seconds=time.perf_counter() - start,
        data_wait_seconds=waited,
    )


def target_frequencies(
    batches: Iterable[TrainBatch], num_items: int, hooks: LoopHooks, device: torch.device
) -> TargetFrequencies:
    """Every worker counts the targets of its training batches once; the sums over the
    workers are the whole training split's counts, the same on every rank."""
    counts = hooks.reduce_sums(count_targets(batches, num_items).to(device))
    return TargetFrequencies.from_counts(counts)


def validate(
    model: torch.nn.Module,
    batches: Iterable[EvalBatch],
    device: torch.device,
    hooks: LoopHooks,
    eval_k: int,
) -> dict[str, float]:
    """Validation metrics over every worker's rows (sums reduced before dividing)."""
    core = _unwrap(model)
    batches_on_device = (b.to(device) for b in batches)
    sums = evaluate(model_scorer(core), batches_on_device, ks=(1, eval_k), rejected_k=eval_k)
    reduced = hooks.reduce_sums(sums.as_vector().to(device)).cpu()
    return EvaluationSums.with_vector(sums, reduced).metrics()


def _out_of_time(started: float, config: TrainConfig) -> bool:
    budget = config.time_budget_minutes
    return budget is not None and time.perf_counter() - started >= 60.0 * budget


def _weight_average(
    core: ActionAwareGSASRec, config: TrainConfig, state: TrainState
) -> WeightAverage | None:
    """The running average of ``train.weight_average_decay`` (continued on resume)."""
    if config.weight_average_decay is None:
        return None
    average = WeightAverage(core, config.weight_average_decay)
    if state.averaged_state is not None:
        average.load(state.averaged_state, updates=state.step)
    return average


def train(
    model: torch.nn.Module,
    train_batches: TrainBatches,
    val_batches: ValBatches,
    config: NegrecConfig,
    hooks: LoopHooks | None = None,
    resume: TrainState | None = None,
    device: torch.device | str = "cpu",
) -> TrainResult:
    """Train until ``max_epochs`` or ``patience`` epochs without a validation NDCG@k gain
    (``k = train.eval_k``).

    ``model`` may be DDP-wrapped. On return the (unwrapped) model holds the best
    validation weights. Seeded from ``config.train.seed``; the caller offsets the seed
    per rank. ``resume`` continues from a saved state (optimiser and RNG included).
    ``objective.loss: auto`` is resolved here, for this model's catalogue and the
    configured batch shape; in-batch sampling first counts the training targets (one
    pass over ``train_batches``, no model work).
    """
    hooks = hooks or LoopHooks()
    device = torch.device(device)
    core = _unwrap(model)
    objective = resolve_objective(
        config.objective, core.num_items, config.train.batch_size, config.model.max_len
    ).objective
    config = config.model_copy(update={"objective": objective})
    optimizer = make_optimizer(model, config.train)
    state = resume or TrainState()
    if resume is None:
        torch.manual_seed(config.train.seed)
    else:
        if resume.optimizer_state is not None:
            optimizer.load_state_dict(resume.optimizer_state)
        if resume.rng_state is not None:
            torch.set_rng_state(resume.rng_state)

    started = time.perf_counter()
    first_epoch = state.epoch + 1
    frequencies = None
    if needs_target_frequencies(objective):
        frequencies = target_frequencies(train_batches(first_epoch), core.num_items, hooks, device)
    stop_reason: str | None = None
    stream = _BatchStream(train_batches, config.train, first_epoch)
    average = _weight_average(core, config.train, state)
    for epoch in range(first_epoch, config.train.max_epochs + 1):
        epoch_start = time.perf_counter()
        stats = _train_epoch(
            model, stream.epoch(), optimizer, config, device, state, frequencies, average
        )
        # Validation judges (and keeps) the average when there is one.
        with average.swapped_in(core) if average is not None else nullcontext():
            val = validate(model, val_batches(), device, hooks, config.train.eval_k)
            ndcg = val[metrics.ndcg(config.train.eval_k)]
            improved = ndcg > state.best_ndcg
            if improved:
                state.best_ndcg, state.best_epoch, state.epochs_without_gain = ndcg, epoch, 0
                state.best_model_state = copy.deepcopy(core.state_dict())
            else:
                state.epochs_without_gain += 1
        if average is not None:
            state.averaged_state = copy.deepcopy(average.state)
        state.epoch = epoch
        state.optimizer_state = optimizer.state_dict()
        state.rng_state = torch.get_rng_state()
        elapsed = state.history[-1]["minutes"] if state.history else 0.0
        elapsed += (time.perf_counter() - epoch_start) / 60.0
        state.history.append(
            {"epoch": epoch, "step": state.step, "minutes": elapsed, "loss": stats.loss, **val}
        )
        stop_reason = _stop_reason(state, epoch, started, config.train)
        per_epoch = (time.perf_counter() - started) / (epoch - first_epoch + 1)
        report = EpochReport(
            epoch=epoch,
            step=state.step,
            train_loss=stats.loss,
            not_to_recommend_loss=stats.not_to_recommend,
            val=val,
            improved=improved,
            best_ndcg=state.best_ndcg,
            best_epoch=state.best_epoch,
            samples=stats.samples,
            seconds=time.perf_counter() - epoch_start,
            train_seconds=stats.train_seconds,
            data_wait_seconds=stats.data_wait_seconds,
            eta_s=per_epoch * (config.train.max_epochs - epoch),
            stop_reason=stop_reason,
            k=config.train.eval_k,
        )
        hooks.on_epoch_end(report, state)
        if stop_reason is not None:
            break
    if state.best_model_state is not None:
        core.load_state_dict(state.best_model_state)
    best_val = next((h for h in state.history if h["epoch"] == state.best_epoch), state.history[-1])
    return TrainResult(
        state=state,
        best_val=best_val,
        stop_reason=stop_reason or f"max_epochs={config.train.max_epochs} reached before this run",
    )
