"""The Ray Train worker: the project's one training loop, under DDP, with checkpoints.

Every rank runs ``negrec.training.loop.train`` on its equal shard of the training
data (``get_dataset_shard`` + ``iter_torch_batches``). Ray-specific duties arrive
through ``RayTrainHooks``: validation sums are all-reduced so every rank sees the same
metrics and stops at the same epoch; rank 0 writes the checkpoint and logs to MLflow;
every rank calls ``ray.train.report`` (a barrier) once per epoch.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import torch
from pydantic import ValidationError

from negrec import checkpoint, metrics, tags, tracking
from negrec.batching import EvalBatch, TrainBatch
from negrec.checkpoint import TrainState
from negrec.config import NegrecConfig
from negrec.errors import NegrecError
from negrec.model.gsasrec import ActionAwareGSASRec
from negrec.strict import StrictModel
from negrec.training.loop import EpochReport, LoopHooks, train, validate


class WorkerSpec(StrictModel):
    """Everything a worker needs, passed as ``train_loop_config`` (plain data)."""

    config: NegrecConfig
    data_uri: str
    tracking_uri: str
    mlflow_run_id: str
    shuffle_buffer: int = 2048
    print_epochs: bool = True
    """Rank 0 prints a line per epoch and the test metrics (off when the driver draws
    the run's progress itself)."""


def say(line: str) -> None:
    """Write a progress line once. Ray Train patches ``print`` in workers to go through
    its logger as well as stdout, which shows every printed line twice on the driver."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def parameter_digest(model: torch.nn.Module) -> str:
    """SHA-256 of every parameter's bytes: equal digests mean bit-identical weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def worker_node_ids(world: int) -> list[str]:
    """The Ray node id of every rank, in rank order, on every rank (a collective: every
    rank calls it). Where a run's workers were placed is otherwise known only to Ray
    Train's controller, and only while the run lasts."""
    import ray

    own = ray.get_runtime_context().get_node_id()
    if world == 1:
        return [own]
    gathered: list[Any] = [None] * world
    torch.distributed.all_gather_object(gathered, own)
    return [str(node_id) for node_id in gathered]


def ddp_backend() -> str:
    """The process group's backend, or ``none`` when one worker trains alone."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return str(torch.distributed.get_backend())
    return "none"


def _optimizer_step(state: TrainState | None) -> int:
    """Adam's step count in a saved optimiser state (0 when starting fresh)."""
    if state is None or not state.optimizer_state:
        return 0
    steps = [int(s["step"]) for s in state.optimizer_state.get("state", {}).values() if "step" in s]
    return max(steps, default=0)


class RayTrainHooks(LoopHooks):
    """All-reduce validation sums; checkpoint, report and log once per epoch."""

    def __init__(
        self,
        spec: WorkerSpec,
        model: ActionAwareGSASRec,
        num_items: int,
        attempt: dict[str, Any],
    ) -> None:
        import ray.train

        context = ray.train.get_context()
        self.rank = context.get_world_rank()
        self.world = context.get_world_size()
        self.spec = spec
        self.model = model
        self.num_items = num_items
        self.attempt = attempt
        self.k = spec.config.train.eval_k
        self.logged: set[int] = set()
        if self.rank == 0:
            self.logged = tracking.logged_steps(
                spec.tracking_uri, spec.mlflow_run_id, metrics.val_ndcg(self.k)
            )

    def reduce_sums(self, vector: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            torch.distributed.all_reduce(vector, op=torch.distributed.ReduceOp.SUM)
        return vector

    def on_epoch_end(self, report: EpochReport, state: TrainState) -> None:
        import ray.train

        reported = {
            "epoch": report.epoch,
            "step": report.step,
            "train_loss": report.train_loss,
            "not_to_recommend_loss": report.not_to_recommend_loss,
            "samples_per_s": report.samples_per_s * self.world,
            "data_wait_share": report.data_wait_seconds / max(report.train_seconds, 1e-9),
            **{metrics.on_split("val", key): v for key, v in report.val.items()},
            metrics.best_val_ndcg(self.k): report.best_ndcg,
            "best_epoch": report.best_epoch,
            **self.attempt,
        }
        if self.rank != 0:
            ray.train.report(reported, checkpoint=None)
            return
        if self.spec.print_epochs:
            say(report.line(self.spec.config.train.max_epochs))
        # MLflow first, then checkpoint and report: a resume starts after the last
        # checkpoint and Tune keeps what was reported, so neither ever holds an epoch
        # that MLflow lacks, whenever the process is killed. An epoch logged but not
        # checkpointed is trained again on resume and, being in ``self.logged``, not
        # logged twice.
        if report.epoch not in self.logged:
            tracking.log_metrics(
                self.spec.tracking_uri,
                self.spec.mlflow_run_id,
                {k: v for k, v in reported.items() if k not in ("epoch", "step")},
                step=report.epoch,
            )
            self.logged.add(report.epoch)
        saved = checkpoint.Checkpoint(
            config=self.spec.config,
            num_items=self.num_items,
            data_uri=self.spec.data_uri,
            state=state,
            model_state=self.model.state_dict(),
            metrics=reported,
        )
        with tempfile.TemporaryDirectory(prefix="negrec-ckpt-") as directory:
            checkpoint.save(saved, directory)
            ray.train.report(reported, checkpoint=ray.train.Checkpoint.from_directory(directory))


def _train_batches(shard: Any, spec: WorkerSpec, seed: int) -> Any:
    def batches(epoch: int) -> Iterator[TrainBatch]:
        for batch in shard.iter_torch_batches(
            batch_size=spec.config.train.batch_size,
            dtypes=torch.int64,
            device="cpu",
            local_shuffle_buffer_size=spec.shuffle_buffer,
            local_shuffle_seed=seed * 100_003 + epoch,
        ):
            yield TrainBatch(batch["items"], batch["actions"], batch["targets"], batch["rejected"])

    return batches


def _strided(batches: Iterator[EvalBatch], rank: int, world: int) -> Iterator[EvalBatch]:
    """This rank's share of evaluation batches: every ``world``-th, from ``rank``.
    Together the ranks cover each row exactly once (no padding, no drop)."""
    for index, batch in enumerate(batches):
        if index % world == rank:
            yield batch


def train_worker(loop_config: dict[str, Any]) -> None:
    """Entry point of each Ray Train worker. A user error (``NegrecError``, a
    validation error) ends the worker normally with the error as an MLflow tag, for the
    driver to raise: Ray Train restarts the worker group on any raised error, and no
    restart fixes a bad dataset or config. Every rank meets the same input, so every
    rank stops at the same point."""
    if not WorkerSpec.model_validate(loop_config).print_epochs:
        # Ray Train logs every report (a TrainingReport dump per rank and epoch) at INFO
        # through a logger named after its file, which its own log level does not reach.
        logging.getLogger().setLevel(logging.WARNING)
    try:
        _train_worker(loop_config)
    except (NegrecError, ValidationError) as error:
        spec = WorkerSpec.model_validate(loop_config)
        tracking.client(spec.tracking_uri).set_tag(spec.mlflow_run_id, tags.USER_ERROR, str(error))


def _train_worker(loop_config: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch

    from negrec.data.loaders import load_prepared, local_eval_batches

    spec = WorkerSpec.model_validate(loop_config)
    config = spec.config
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    node_ids = worker_node_ids(world)
    if rank == 0:
        client = tracking.client(spec.tracking_uri)
        client.set_tag(spec.mlflow_run_id, tags.WORKER_NODE_IDS, ",".join(node_ids))
        client.set_tag(spec.mlflow_run_id, tags.DDP_BACKEND, ddp_backend())
    prepared = load_prepared(spec.data_uri)

    torch.manual_seed(config.train.seed)  # same initial weights on every rank
    model = ActionAwareGSASRec(prepared.num_items, config.model)
    resume: TrainState | None = None
    saved = ray.train.get_checkpoint()
    if saved is not None:
        with saved.as_directory() as directory:
            restored = checkpoint.load(directory)
        model.load_state_dict(restored.model_state)
        resume = restored.state
    attempt = {
        "start_epoch": (resume.epoch if resume else 0) + 1,
        "resumed_optimizer_step": _optimizer_step(resume),
    }

    device = ray.train.torch.get_device()
    wrapped = ray.train.torch.prepare_model(model)
    rank_seed = config.train.seed + rank
    rank_config = config.model_copy(
        update={"train": config.train.model_copy(update={"seed": rank_seed})}
    )
    hooks = RayTrainHooks(spec, model, prepared.num_items, attempt)
    max_len, eval_size = config.model.max_len, config.train.eval_batch_size

    def val_batches() -> Iterator[EvalBatch]:
        return _strided(local_eval_batches(prepared, "val", eval_size, max_len), rank, world)

    trained = train(
        wrapped,
        _train_batches(ray.train.get_dataset_shard("train"), spec, rank_seed),
        val_batches,
        rank_config,
        hooks=hooks,
        resume=resume,
        device=device,
    )
    final: dict[str, float] = {}
    if config.train.test_at_end:
        test_split = local_eval_batches(prepared, "test", eval_size, max_len)
        test = validate(
            wrapped, _strided(test_split, rank, world), device, hooks, config.train.eval_k
        )
        final = {metrics.on_split("test", key): v for key, v in test.items()}
    if rank == 0:
        tracking.log_metrics(spec.tracking_uri, spec.mlflow_run_id, final, step=0)
        client = tracking.client(spec.tracking_uri)
        client.set_tag(spec.mlflow_run_id, tags.STOP_REASON, trained.stop_reason)
        if spec.print_epochs and final:
            say("test " + " ".join(f"{k} {v:.4f}" for k, v in final.items()))
    best = {
        metrics.best_val_ndcg(config.train.eval_k): trained.state.best_ndcg,
        "best_epoch": trained.state.best_epoch,
    }
    ray.train.report({**final, **best, "parameter_digest": parameter_digest(model), **attempt})
