"""The one base of every typed model in negrec: unknown keys are errors.

Why one base: a misspelt key in a YAML file, a manifest or a job must stop with the key
named instead of being ignored, and that rule should be stated once. Models that are
read-only after parsing (search spaces, mappings, presets) use :class:`FrozenModel`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown keys are rejected; values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class FrozenModel(StrictModel):
    """A strict model that cannot change after it is built."""

    model_config = ConfigDict(frozen=True)
