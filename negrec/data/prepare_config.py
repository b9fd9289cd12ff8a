"""Typed configuration of ``negrec prepare``; every default lives here.

Why a model of its own: preparing data is configured separately from training (one
prepared dataset serves many training runs), and the whole config is stored in the
manifest so a dataset says exactly how it was made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from negrec.config import load_model
from negrec.data.formats import get_format
from negrec.strict import StrictModel


class PrepareConfig(StrictModel):
    """Where the events are, how to read them, how to clean and split them."""

    events: str = Field(description="Event log URI: a file or a directory (local or s3://).")
    out: str = Field(description="Output URI of the prepared dataset.")
    format: str = Field("synthetic", description="A format of negrec.data.formats.")
    actions: str | None = Field(
        None, description="YAML file mapping event values to actions; null = the format's default."
    )
    min_sequence_length: int = Field(
        3, ge=2, description="Sequences shorter than this are dropped (Xin et al. use 3)."
    )
    dedup_consecutive: bool = Field(
        False, description="Drop an interaction repeating the previous one (same item and action)."
    )
    split: Literal["leave_one_out", "temporal"] = "leave_one_out"
    val_users: int = Field(
        512, ge=0, description="Leave-one-out: at most this many validation users..."
    )
    val_fraction: float = Field(0.1, ge=0.0, le=1.0, description="...and at most this share.")
    val_quantile: float = Field(
        0.8, gt=0.0, lt=1.0, description="Temporal: validation starts at this time quantile."
    )
    test_quantile: float = Field(
        0.9, gt=0.0, lt=1.0, description="Temporal: test starts at this time quantile."
    )
    min_eval_users: int = Field(
        1,
        ge=0,
        description="The validation and the test split each need at least this many users, "
        "or prepare refuses to commit (training would fail at its first evaluation); 0 "
        "turns the check off, for data that is only inspected or evaluated.",
    )
    seed: int = Field(42, description="Seeds the choice of validation users.")
    partitions: int | None = Field(
        None, ge=1, description="User partitions (tasks per stage); null = from the input size."
    )
    partition_mib: int = Field(
        32, ge=1, description="Input MiB per user partition when 'partitions' is null."
    )

    @field_validator("format")
    @classmethod
    def _registered(cls, name: str) -> str:
        """Checked against the registry when the config is read, so that a format
        registered after import is accepted too."""
        get_format(name)
        return name

    @model_validator(mode="after")
    def _quantiles_in_order(self) -> PrepareConfig:
        if self.val_quantile >= self.test_quantile:
            raise ValueError(
                f"val_quantile={self.val_quantile} must be below test_quantile={self.test_quantile}"
            )
        return self


def load_prepare_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    flags: dict[str, Any] | None = None,
) -> PrepareConfig:
    """Defaults, then the YAML file, then ``--set key=value``, then the command-line options."""
    return load_model(PrepareConfig, path, overrides, flags)
