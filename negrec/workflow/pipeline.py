"""The whole pipeline as one function: events -> prepare -> train or tune -> promote -> recommend.

``negrec demo`` runs it locally with a work directory standing in for object storage;
``negrec pipeline`` (``jobs/pipeline.py``) runs it on a cluster under ``ray job submit``.
Each step calls the layer that does the work (data, the training driver, the sweep
driver, evaluation, promotion, the recommend API), and each step is skipped when its
committed output already exists, so a retried job resumes instead of starting over. The
test split is scored once here; promotion reuses those metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import Field

from negrec import recipes, storage
from negrec.action_codes import NEGATIVE
from negrec.config import load_config
from negrec.console import clip
from negrec.strict import StrictModel

if TYPE_CHECKING:
    from negrec.workflow.summary import PipelineSummary

DEMO_CONFIG = recipes.recipe_path("demo")


class PipelineConfig(StrictModel):
    """Where everything lives and how big the generated log is."""

    root: str = Field(description="Storage URI under which every stage writes (local or s3://)")
    name: str = Field("demo", description="Run name (same name = resume)")
    events: str | None = Field(None, description="Existing event log URI; None = generate one")
    format: str = "synthetic"
    users: int = Field(3_000, ge=1)
    items: int = Field(1_000, ge=2)
    num_events: int = Field(150_000, ge=1)
    seed: int = 0
    workers: int | None = Field(2, ge=1)
    preset: str | None = Field(
        None, description="Tuning preset: sweep coarse-then-fine instead of one training run"
    )
    train_config: str | None = Field(None, description="YAML training config (default: demo)")
    overrides: list[str] = Field(default_factory=list)
    tracking_uri: str | None = None


def default(field: str) -> Any:
    """The default of a :class:`PipelineConfig` field: the one place the sizes of the
    demo's generated log and its worker count are set (both stages' flags read it)."""
    return PipelineConfig.model_fields[field].default


Step = Callable[[str], None]


def _short(uri: str, root: str) -> str:
    """``uri`` relative to the pipeline's root (``prepared/``), which heads the log once,
    so that lines stay short whatever the root is."""
    return uri[len(root) :].lstrip("/") + "/" if uri.startswith(root) else uri


def _timed(log: Step, title: str) -> Callable[[], float]:
    log(f"== {title}")
    start = time.perf_counter()
    return lambda: time.perf_counter() - start


def run(config: PipelineConfig, log: Step = print) -> PipelineSummary:
    """Run every step, skipping those whose committed output exists; returns a summary."""
    from negrec import registry
    from negrec.data import generated_log
    from negrec.data.manifest import MANIFEST
    from negrec.data.preparation import prepare
    from negrec.data.prepare_config import PrepareConfig
    from negrec.distributed import trainer
    from negrec.evaluation.checkpoint_metrics import evaluate_checkpoint
    from negrec.serving import promotion
    from negrec.serving.api import recommend
    from negrec.tuning import driver
    from negrec.tuning.preset import load_plan
    from negrec.workflow.summary import PipelineSummary, Sample

    # A bad preset or training config fails here, before minutes of generate and prepare.
    if config.preset:
        load_plan(config.preset)
        train_config = None
    else:
        train_config = load_config(config.train_config or DEMO_CONFIG, config.overrides)
    seconds: dict[str, float] = {}  # the summary's <step>_s fields, as the steps end

    def say(line: str) -> None:
        log(clip(line))  # every line within the console's width

    say(f"negrec pipeline under {config.root}")
    events = config.events
    if events is None:
        events = storage.join(config.root, "events")
        elapsed = _timed(
            say, f"generate {config.num_events:,} events -> {_short(events, config.root)}"
        )
        if storage.exists(storage.join(events, generated_log.MARKER)):
            say("   already generated; reusing")
        else:
            generated_log.run(
                generated_log.GenerateConfig(
                    out=events,
                    users=config.users,
                    items=config.items,
                    events=config.num_events,
                    seed=config.seed,
                )
            )
        seconds["generate_s"] = round(elapsed(), 1)

    prepared = storage.join(config.root, "prepared")
    elapsed = _timed(
        say, f"prepare (Ray Data) {_short(events, config.root)} -> {_short(prepared, config.root)}"
    )
    if storage.exists(storage.join(prepared, MANIFEST)):
        say("   already prepared; reusing")
    else:
        manifest = prepare(PrepareConfig(events=events, out=prepared, format=config.format))
        say(f"   {manifest.summary_line().replace(prepared, _short(prepared, config.root))}")
    seconds["prepare_s"] = round(elapsed(), 1)

    if config.preset:
        elapsed = _timed(say, f"tune (Ray Tune, preset {config.preset})")
        swept = driver.run(
            driver.TuneJob(
                data=prepared,
                storage=storage.join(config.root, "sweeps"),
                name=config.name,
                preset=config.preset,
                tracking_uri=config.tracking_uri,
            )
        )
        seconds["tune_s"] = round(elapsed(), 1)
        best, run_id, curve = swept.best_checkpoint, swept.mlflow_run_id, swept.learning_curve
        sweep = swept.model_dump(mode="json")["stages"]
    else:
        elapsed = _timed(say, f"train (Ray Train, {config.workers} workers)")
        job = trainer.TrainJob(
            data=prepared,
            storage=storage.join(config.root, "runs"),
            name=config.name,
            workers=config.workers,
            config=train_config,
            tracking_uri=config.tracking_uri,
        )
        trained = trainer.run(job)
        seconds["train_s"] = round(elapsed(), 1)
        best, run_id, curve = trained.checkpoint, trained.mlflow_run_id, trained.learning_curve
        sweep = None

    elapsed = _timed(say, "evaluate on the test split")
    test = evaluate_checkpoint(best, prepared, "test")
    seconds["evaluate_s"] = round(elapsed(), 1)

    elapsed = _timed(say, "promote to the MLflow registry")
    promoted = promotion.run(
        checkpoint_uri=best, tracking_uri=config.tracking_uri, data_uri=prepared, test_metrics=test
    )
    say(f"   {promoted.decision}")
    seconds["promote_s"] = round(elapsed(), 1)

    champion = f"models:/{registry.DEFAULT_MODEL_NAME}@{registry.CHAMPION}"
    elapsed = _timed(say, f"recommend for a sample user with {champion}")
    history = sample_history(prepared)
    top = recommend(champion, history, k=test.k, tracking_uri=config.tracking_uri)[0]
    seconds["recommend_s"] = round(elapsed(), 1)
    return PipelineSummary(
        root=config.root,
        sweep=sweep,
        mlflow_run_id=run_id,
        learning_curve=curve,
        checkpoint=best,
        test=test,
        promote=promoted,
        sample=Sample(history=history, recommended=top.items, scores=top.scores),
        **seconds,
    )


def sample_history(prepared_uri: str, length: int = 8) -> str:
    """The last ``length`` interactions of the first test user, as ``"item:+ item:-"``."""
    from negrec.data.loaders import list_column, load_prepared, read_split
    from negrec.serving.vocabulary import Vocabulary

    test = read_split(load_prepared(prepared_uri), "test")
    vocabulary = Vocabulary.of_prepared(prepared_uri)
    items = list_column(test["items"].slice(0, 1))[0][-length:]
    actions = list_column(test["actions"].slice(0, 1))[0][-length:]
    return " ".join(
        f"{vocabulary.item_id(int(i))}:{'-' if a == NEGATIVE else '+'}"
        for i, a in zip(items, actions, strict=True)
    )
