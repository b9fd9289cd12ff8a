"""Sweep presets: budgets, ASHA, scale and fixed overrides, with the spaces they use.

A preset is a YAML file: a built-in one by name (``tiny``, ``laptop``, ``cluster``, ...,
package data in ``negrec/recipes/tuning/presets/``) or any path. Loading it reads and
checks everything the sweep will need (the coarse space, the fine rules, the fixed
overrides against the config) so that a wrong file fails in milliseconds instead of
after the first trials.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from negrec import recipes
from negrec.config import ConfigError, build_config, load_model, settable_keys, unflatten
from negrec.strict import FrozenModel
from negrec.tuning.fine import FineRules, load_rules
from negrec.tuning.space import SearchSpace, load_space

STAGE_OWNED_KEYS = {"train.max_epochs"}
"""Set by each stage's budget (``epochs``), so neither a space nor ``fixed`` may set it."""


class StageBudget(FrozenModel):
    trials: int = Field(ge=1, description="Trials in this stage")
    epochs: int = Field(ge=2, description="Epochs of a trial that ASHA does not stop (max_t)")


class Asha(FrozenModel):
    grace_period: int = Field(1, ge=1, description="Epochs before ASHA may stop a trial")
    reduction_factor: float = Field(2.0, gt=1.0, description="1/fraction kept at each rung")


class Preset(FrozenModel):
    coarse_space: str = Field("../coarse.yaml", description="Relative to the preset file")
    fine_rules: str = Field("../fine_rules.yaml", description="Relative to the preset file")
    coarse: StageBudget
    fine: StageBudget
    asha: Asha = Field(default_factory=Asha)
    workers_per_trial: int = Field(1, ge=1)
    cpus_per_worker: float | None = Field(
        None,
        gt=0.0,
        description="CPUs of each trial's Train worker (its torch threads); None = derived, "
        "at most 1, so that concurrent trials fit",
    )
    gpu: bool | None = Field(None, description="One GPU per worker; None = if the cluster has any")
    max_concurrent_trials: int = Field(1, ge=1, description="Upper bound; resources may lower it")
    seed: int = 0
    fixed: dict[str, Any] = Field(
        default_factory=dict, description="Config overrides, not searched"
    )

    @model_validator(mode="after")
    def _budgets(self) -> Preset:
        for stage in ("coarse", "fine"):
            epochs = getattr(self, stage).epochs
            if self.asha.grace_period >= epochs:
                raise ValueError(
                    f"asha.grace_period ({self.asha.grace_period}) must be below {stage}.epochs "
                    f"({epochs}): ASHA decides only at rungs before a trial's last epoch"
                )
        if self.fine.epochs < self.coarse.epochs:
            raise ValueError(
                f"fine.epochs ({self.fine.epochs}) must be at least coarse.epochs "
                f"({self.coarse.epochs}): the fine stage trains its fewer trials longer"
            )
        return self


@dataclass(frozen=True)
class SweepPlan:
    """A loaded preset: its file, settings, the coarse space minus ``fixed``, the rules."""

    path: Path
    preset: Preset
    coarse: SearchSpace
    rules: FineRules

    def as_data(self) -> dict[str, Any]:
        """Everything that shapes the sweep; a resumed sweep must find the same."""
        return {
            "preset": self.preset.model_dump(),
            "coarse_space": self.coarse.as_data(),
            "fine_rules": self.rules.model_dump(),
        }


def builtin_presets() -> list[str]:
    return recipes.preset_names()


def preset_path(preset: str) -> Path:
    """A built-in preset's name, or a path to a preset file."""
    if preset in recipes.preset_names():
        return recipes.preset_path(preset)
    path = Path(preset)
    if not path.is_file():
        names = ", ".join(builtin_presets())
        raise ConfigError(f"--preset {preset}: no such preset file; built-in presets: {names}")
    return path


def _check_fixed(fixed: dict[str, Any], source: str) -> None:
    known = settable_keys()
    for key in fixed:
        if key not in known:
            raise ConfigError(f"{source}: fixed.{key}: not a config key")
    build_config(unflatten(fixed), f"{source} (fixed)")


def load_plan(preset: str) -> SweepPlan:
    """Read the preset, its coarse space and fine rules, and check them all."""
    path = preset_path(preset)
    settings = load_model(Preset, path)
    _check_fixed(settings.fixed, str(path))
    coarse = load_space(path.parent / settings.coarse_space, settings.fixed)
    owned = sorted(STAGE_OWNED_KEYS & (set(settings.fixed) | set(coarse.keys())))
    if owned:
        raise ConfigError(
            f"{path}: {', '.join(owned)} is set by each stage's `epochs`; remove it from "
            "`fixed` and from the search space"
        )
    return SweepPlan(path, settings, coarse, load_rules(path.parent / settings.fine_rules))
