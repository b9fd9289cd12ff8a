"""Typed configuration: every default lives here; YAML files and ``--set`` only override.

Why pydantic: a misspelt key or a wrong type must stop the run with the dotted key
that is wrong, before any compute is spent, instead of being silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from negrec.errors import NegrecError
from negrec.strict import StrictModel


class ConfigError(NegrecError, ValueError):
    """A configuration file or override is wrong; the message names the key and the fix."""


class ModelConfig(StrictModel):
    """Action-aware gSASRec architecture (reference values of the gSASRec port)."""

    max_len: int = Field(200, ge=2, description="Longest input sequence; older events are cut.")
    dim: int = Field(128, ge=2, description="Embedding and hidden width.")
    blocks: int = Field(2, ge=1, description="Transformer decoder blocks.")
    heads: int = Field(1, ge=1, description="Attention heads; must divide dim.")
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    num_actions: int = Field(
        2, ge=1, description="Distinct actions (1 = plain gSASRec; 2 = positive/negative)."
    )
    shared_output_embedding: bool = Field(
        False, description="Score with the input item table instead of a separate one."
    )
    linear_init_std: float | None = Field(
        None,
        gt=0.0,
        description="Initialise every linear layer's weights from N(0, std^2) with zero "
        "biases (SASRec, GPT-2 and RecBole use 0.02); null = PyTorch's default.",
    )
    scale_item_embedding: bool = Field(
        False,
        description="Multiply input item embeddings by sqrt(dim), as SASRec does, so that "
        "with a shared table they are not drowned by the position embeddings.",
    )

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> ModelConfig:
        if self.dim % self.heads:
            raise ValueError(f"heads={self.heads} must divide dim={self.dim}")
        return self


class ObjectiveConfig(StrictModel):
    """Loss, negative sampling and the not-to-recommend term."""

    loss: Literal["ce", "bce", "gbce", "softmax", "auto"] = Field(
        "ce",
        description="ce: softmax over the whole catalogue (SASRec+); softmax: sampled softmax "
        "over the negatives; gbce / bce: (generalised) binary cross-entropy on the negatives; "
        "auto: ce while a batch's full-catalogue logits fit auto_logits_budget_mib, else "
        "softmax with in_batch sampling (negrec/objectives/choice.py). "
        "ce is the default because it reaches a quality level in the fewest steps "
        "(docs/configuration.md).",
    )
    negatives: int = Field(
        256,
        ge=1,
        description="Negatives per positive (k), drawn from the catalogue; with in_batch "
        "sampling the draws added to the batch's own targets; unused by ce.",
    )
    gbce_t: float = Field(0.75, ge=0.0, le=1.0, description="gBCE calibration t.")
    sampling: Literal["shared", "per_position", "in_batch"] = Field(
        "shared",
        description="shared: k uniform negatives per sequence; per_position: k per position "
        "(the reference); in_batch (softmax only): every position ranks its target against "
        "the batch's other targets plus k draws from negative_distribution, log-Q corrected.",
    )
    negative_distribution: Literal["uniform", "popularity"] = Field(
        "uniform",
        description="in_batch: the distribution of the k draws; popularity = proportional to "
        "each item's count among the training targets.",
    )
    not_to_recommend_weight: float = Field(
        0.0,
        ge=0.0,
        description="Weight w of the not-to-recommend term on rejected items (0 = off): "
        "-log(1 - p(rejected)) under ce and softmax, softplus(score) under gbce and bce.",
    )
    not_to_recommend_window: int = Field(
        1,
        ge=1,
        description="ce and in_batch softmax: each position learns not to recommend the "
        "rejected items among its next this-many interactions (1 = the next one only, Wang "
        "et al.'s term); larger also reaches the rejections that follow the next liked "
        "item, which is where a split's held-out rejected items are.",
    )
    rejected_as_negatives: bool = Field(
        True,
        description="Add each position's rejected item to its sampled negatives (ce already "
        "ranks every item).",
    )
    logits_chunk_mib: float = Field(
        256.0,
        gt=0.0,
        description="ce and in_batch softmax: memory for one chunk of positions x candidate "
        "logits; the loss is computed chunk by chunk, so this bounds its memory whatever "
        "the batch.",
    )
    auto_logits_budget_mib: float = Field(
        2048.0,
        gt=0.0,
        description="auto: ce when train.batch_size x model.max_len x items float32 logits "
        "fit in this many MiB, else sampled softmax.",
    )

    @model_validator(mode="after")
    def _sampling_fits_the_loss(self) -> ObjectiveConfig:
        if self.sampling == "in_batch" and self.loss not in ("softmax", "auto"):
            raise ValueError(
                f"objective.sampling=in_batch is a sampled-softmax candidate set: it needs "
                f"objective.loss=softmax (or auto), got {self.loss}"
            )
        if self.loss == "auto" and self.sampling == "per_position":
            raise ValueError(
                "objective.sampling=per_position does not go with objective.loss=auto, which "
                "picks in_batch when it picks softmax; set objective.loss=softmax to choose"
            )
        if (
            self.negative_distribution == "popularity"
            and self.sampling != "in_batch"
            and self.loss != "auto"
        ):
            raise ValueError(
                "objective.negative_distribution=popularity is for the draws of "
                "objective.sampling=in_batch (they need its log-Q correction); "
                f"got sampling={self.sampling}"
            )
        if self.not_to_recommend_window > 1 and not (
            self.loss in ("ce", "auto") or self.sampling == "in_batch"
        ):
            raise ValueError(
                "objective.not_to_recommend_window > 1 is built for the softmax losses over "
                "many items: it needs objective.loss=ce, auto, or softmax with "
                f"sampling=in_batch, got loss={self.loss}, sampling={self.sampling}"
            )
        return self


class TrainConfig(StrictModel):
    """Optimisation, early stopping and reproducibility."""

    batch_size: int = Field(128, ge=1)
    eval_batch_size: int = Field(512, ge=1)
    test_at_end: bool = Field(
        True,
        description="Rank every test user against the whole catalogue when training ends "
        "(metrics test_*); false skips it (then `negrec evaluate`), for catalogues where "
        "that outlasts the training.",
    )
    lr: float = Field(1e-3, gt=0.0)
    lr_schedule: Literal["constant", "cosine", "linear"] = Field(
        "constant",
        description="After warm-up: lr throughout, or a cosine / linear decay to "
        "lr * min_lr_ratio that ends at decay_steps (negrec/training/lr_schedule.py).",
    )
    warmup_steps: int = Field(
        0, ge=0, description="Optimiser steps of linear warm-up from lr / warmup_steps to lr."
    )
    decay_steps: int | None = Field(
        None, ge=1, description="cosine / linear: the optimiser step at which the decay ends."
    )
    min_lr_ratio: float = Field(
        0.0, ge=0.0, le=1.0, description="The decay's floor, as a fraction of lr."
    )
    weight_decay: float = Field(0.0, ge=0.0)
    optimizer: Literal["adam", "adamw"] = "adam"
    grad_clip: float | None = Field(1.0, gt=0.0, description="Max gradient norm; null = off.")
    max_epochs: int = Field(50, ge=1)
    steps_per_epoch: int | None = Field(
        None,
        ge=1,
        description="Cap on optimiser steps per epoch; the next epoch continues the same "
        "pass over the data. null = an epoch is one pass.",
    )
    patience: int = Field(
        5, ge=1, description="Epochs without validation NDCG@eval_k gain before stopping."
    )
    time_budget_minutes: float | None = Field(
        None, gt=0.0, description="Stop after the epoch that uses up this wall time; null = off."
    )
    seed: int = 42
    eval_k: int = Field(10, ge=1)
    length_buckets: int = Field(
        1,
        ge=1,
        description="Sort the rows of each run of this many shuffled batches by length, so "
        "batches trimmed to their longest row waste few padded positions (1 = plain "
        "random batches, the default: bucketing re-weights positions and cost test "
        "NDCG@10 on ML-1M, docs/results.md; trimming is exact either way).",
    )
    long_histories: Literal["last", "windows"] = Field(
        "last",
        description="A training sequence longer than model.max_len: last = only its most "
        "recent max_len positions are trained on (SASRec and the published ML-1M recipes); "
        "windows = it is cut, from the most recent back, into windows of max_len positions, "
        "each a row of its own, so every interaction is a target once (ML-1M, gSASRec "
        "split: 8,615 rows instead of 6,040).",
    )
    weight_average_decay: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="Validate, keep and serve an exponential moving average of the weights "
        "with this decay per optimiser step (e.g. 0.999) instead of the last weights; "
        "null = off (negrec/training/weight_average.py).",
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="Training matmuls in bf16 autocast or float32; auto = bf16 where the "
        "device has native bf16 matrix units (CUDA, CPUs with AMX), else fp32.",
    )

    @model_validator(mode="after")
    def _decay_has_an_end(self) -> TrainConfig:
        if self.lr_schedule != "constant" and self.decay_steps is None:
            raise ValueError(
                f"lr_schedule={self.lr_schedule} needs decay_steps (the optimiser step at "
                "which the decay ends), e.g. train.decay_steps=5000"
            )
        if self.decay_steps is not None and self.decay_steps <= self.warmup_steps:
            raise ValueError(
                f"decay_steps={self.decay_steps} must be above warmup_steps={self.warmup_steps}"
            )
        return self


class NegrecConfig(StrictModel):
    """The whole configuration of a training run."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: '{part}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def unflatten(values: Mapping[str, Any]) -> dict[str, Any]:
    """``{"model.dim": 64}`` -> ``{"model": {"dim": 64}}``: dotted keys as ``--set`` takes."""
    tree: dict[str, Any] = {}
    for key, value in values.items():
        _set_dotted(tree, key, value)
    return tree


def settable_keys(schema: type[BaseModel] = NegrecConfig, prefix: str = "") -> dict[str, Any]:
    """Every dotted key a config file may set (``model.dim``, ...) with its type.

    Other files that name config keys (search spaces, presets) check against this, so a
    misspelt key fails when the file is read rather than when a trial starts.
    """
    keys: dict[str, Any] = {}
    for name, field in schema.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.update(settable_keys(annotation, f"{prefix}{name}."))
        else:
            keys[f"{prefix}{name}"] = annotation
    return keys


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Turn ``["model.dim=64", "train.lr=3e-4"]`` into a nested dict (values parsed as YAML)."""
    tree: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set '{item}': expected key=value, e.g. --set model.dim=64")
        _set_dotted(tree, key.strip(), yaml.safe_load(raw))
    return tree


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def describe_validation_error(error: ValidationError, title: str, unknown_hint: str) -> str:
    """One line per wrong key: the dotted key, what is wrong, and what was given."""
    lines = [title]
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"]) or "<root>"
        if item["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key{unknown_hint}")
        else:
            lines.append(f"  {key}: {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)


def _describe(error: ValidationError, source: str) -> str:
    return describe_validation_error(
        error,
        f"invalid configuration ({source}):",
        "; check the spelling against docs/configuration.md",
    )


Schema = TypeVar("Schema", bound=BaseModel)


def build_model(schema: type[Schema], values: dict[str, Any], source: str = "values") -> Schema:
    """Validate a nested dict into any strict config model, naming every wrong key."""
    try:
        return schema.model_validate(values)
    except ValidationError as error:
        raise ConfigError(_describe(error, source)) from None


def load_model(
    schema: type[Schema],
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    flags: dict[str, Any] | None = None,
    name: str | None = None,
) -> Schema:
    """Defaults, then the YAML file (if any), then ``key=value`` overrides, then ``flags``
    (a stage's own command-line options, which are the most explicit). ``name`` stands
    for the file in messages about wrong keys (a built-in recipe's name, say).

    Shared by every stage's config so that all of them read files and ``--set`` the
    same way and report wrong keys the same way.
    """
    values: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except OSError as error:
            raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"config file {path} is not valid YAML: {error}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping of sections, not {loaded!r}")
        values = loaded
        source = name or str(path)
    if overrides:
        values = _merge(values, parse_overrides(overrides))
        source += " + --set"
    if flags:
        values = _merge(values, flags)
        source += " + options"
    return build_model(schema, values, source)


def build_config(values: dict[str, Any], source: str = "values") -> NegrecConfig:
    """Validate a nested dict into a training config, naming every wrong key."""
    return build_model(NegrecConfig, values, source)


def config_path(config: str | Path) -> Path:
    """``--config``: a built-in recipe's name (``demo``, ``gsasrec``, ``ml1m``: package
    data in ``negrec/recipes/``) or a path to a YAML file."""
    from negrec import recipes

    if isinstance(config, str) and config in recipes.recipe_names():
        return recipes.recipe_path(config)
    path = Path(config)
    if not path.exists():
        names = ", ".join(recipes.recipe_names())
        raise ConfigError(
            f"cannot read config file {path}: no such file, nor a built-in recipe "
            f"(--config NAME: {names})"
        )
    return path


def load_config(
    config: str | Path | None = None, overrides: list[str] | None = None
) -> NegrecConfig:
    """Defaults, then the recipe (a built-in name or a YAML file; see :func:`config_path`),
    then ``key=value`` overrides."""
    if config is None:
        return load_model(NegrecConfig, None, overrides)
    path = config_path(config)
    named = f"recipe {config}" if Path(config) != path else None  # a built-in, by name
    return load_model(NegrecConfig, path, overrides, name=named)
