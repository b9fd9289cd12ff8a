"""How many Train workers, with what resources, so that nothing deadlocks.

Rules: with ``gpu`` every worker takes one GPU (default: all GPUs of the cluster);
on CPU, workers together take at most the cluster's CPUs minus one left for Ray Data
(fractional if need be), because a Train worker that holds the last CPU starves the
data tasks that feed it.
"""

from __future__ import annotations

from dataclasses import dataclass

from negrec.errors import NegrecError

DATA_CPUS = 1.0  # kept free for Ray Data's read / map tasks
DEFAULT_CACHE_LIMIT_MIB = 1024
"""Training rows up to this size are built once and held in the object store instead of
streamed from storage every epoch (a run's and a sweep's default)."""


@dataclass(frozen=True)
class WorkerPlan:
    num_workers: int
    use_gpu: bool
    cpus_per_worker: float

    def describe(self) -> str:
        device = "GPU" if self.use_gpu else "CPU"
        return (
            f"{self.num_workers} {device} worker(s), {self.cpus_per_worker:g} CPU each, "
            f"{DATA_CPUS:g} CPU left for Ray Data"
        )


def plan_workers(
    requested: int | None,
    gpu: bool | None,
    cluster: dict[str, float],
    cpus_per_worker: float | None = None,
) -> WorkerPlan:
    """Plan from the request and ``ray.cluster_resources()``.

    ``gpu=None`` means "GPUs if the cluster has any"; ``requested=None`` means "all
    GPUs" on GPU and 1 worker on CPU. ``cpus_per_worker`` is set by a caller that has
    already planned for the cluster as a whole (a sweep running several trials at once,
    each given its share); otherwise it is derived from ``cluster``.
    """
    cpus = float(cluster.get("CPU", 0))
    gpus = int(cluster.get("GPU", 0))
    use_gpu = gpus > 0 if gpu is None else gpu
    if use_gpu:
        if gpus == 0:
            raise NegrecError("--gpu was given but the Ray cluster has no GPUs; drop --gpu")
        workers = requested or gpus
        if workers > gpus:
            raise NegrecError(f"--workers {workers} needs {workers} GPUs; the cluster has {gpus}")
        per_worker = max(1.0, min(4.0, (cpus - DATA_CPUS) / workers)) if cpus > 1 else 1.0
        return WorkerPlan(workers, True, cpus_per_worker or per_worker)
    workers = requested or 1
    if workers < 1:
        raise NegrecError(f"--workers must be at least 1, got {workers}")
    spare = cpus - DATA_CPUS
    if spare <= 0:
        raise NegrecError(
            f"the Ray cluster has {cpus:g} CPU(s): nothing is left for Train workers after "
            f"{DATA_CPUS:g} for Ray Data; start Ray with more CPUs (NEGREC_RAY_CPUS)"
        )
    return WorkerPlan(workers, False, cpus_per_worker or min(1.0, spare / workers))


TRIAL_DRIVER_CPUS = 0.25
"""A Tune trial's own process only waits on its Train run and logs; its Train workers
take their resources separately, so it holds a small share rather than a whole CPU."""

MIN_SHARED_WORKER_CPUS = 0.5


@dataclass(frozen=True)
class TrialPlan:
    """How many sweep trials run at once, and each trial's Train workers."""

    concurrency: int
    workers: WorkerPlan

    def describe(self) -> str:
        return f"up to {self.concurrency} trial(s) at once, each with {self.workers.describe()}"


def plan_trials(
    workers: int,
    gpu: bool | None,
    concurrency: int,
    cluster: dict[str, float],
    cpus_per_worker: float | None = None,
) -> TrialPlan:
    """The most concurrent trials (at most ``concurrency``) whose workers fit the cluster
    with every trial's Ray Data CPU kept free: each trial plans its workers on an equal
    share of the cluster, so concurrent trials never starve each other's data. Fewer
    trials at once are preferred to workers with less than half a CPU each.
    ``cpus_per_worker`` (a preset's) fixes each worker's CPUs instead of deriving them,
    and then bounds the trials at once by what fits."""
    cpus = float(cluster.get("CPU", 0))
    gpus = int(cluster.get("GPU", 0))
    use_gpu = gpus > 0 if gpu is None else gpu

    def share(count: int) -> dict[str, float]:
        return {"CPU": (cpus - count * TRIAL_DRIVER_CPUS) / count, "GPU": float(gpus // count)}

    def fits(plan: WorkerPlan, count: int) -> bool:
        return (
            plan.use_gpu
            or plan.num_workers * plan.cpus_per_worker + DATA_CPUS <= share(count)["CPU"]
        )

    for count in range(concurrency, 1, -1):
        try:
            plan = plan_workers(workers, use_gpu, share(count), cpus_per_worker)
        except NegrecError:
            continue
        if plan.cpus_per_worker >= MIN_SHARED_WORKER_CPUS and fits(plan, count):
            return TrialPlan(count, plan)
    plan = plan_workers(workers, use_gpu, share(1), cpus_per_worker)
    if not fits(plan, 1):
        raise NegrecError(
            f"cpus_per_worker={plan.cpus_per_worker:g} for {plan.num_workers} worker(s) does "
            f"not fit the Ray cluster's {cpus:g} CPUs with {DATA_CPUS:g} left for Ray Data "
            f"and {TRIAL_DRIVER_CPUS:g} for the trial: lower the preset's cpus_per_worker or "
            "start Ray with more CPUs (NEGREC_RAY_CPUS)"
        )
    return TrialPlan(1, plan)
