"""Search spaces as data: what each tuned config key may take, read from YAML.

A space maps dotted config keys (``train.lr``) to a dimension: ``uniform`` or
``loguniform`` over ``[low, high]``, or ``choice`` among ``values``. Why data and not
code: the coarse space, the fine space derived from its results and the presets are
files a person reviews and versions; and checking a space against ``NegrecConfig`` when
it is read stops a misspelt key or an impossible range before any trial is spent.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import Field, RootModel, model_validator

from negrec.config import ConfigError, build_config, load_model, settable_keys, unflatten
from negrec.strict import FrozenModel

MAX_CHECKED_COMBINATIONS = 10_000
"""Choice combinations validated against the config when a space is read (heads must
divide dim, ...); more would make reading a huge space slow, and the first ones already
catch a wrong value."""


class _Range(FrozenModel):
    low: float
    high: float
    log: ClassVar[bool] = False

    @model_validator(mode="after")
    def _not_empty(self) -> _Range:
        if not self.low < self.high:
            raise ValueError(f"empty range: low ({self.low:g}) must be below high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-uniform range needs low > 0, got {self.low:g}")
        return self

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def scale(self, value: float) -> float:
        """Where ``value`` sits on the axis the range is sampled on (log or linear)."""
        return math.log(value) if self.log else value

    def unscale(self, value: float) -> float:
        return math.exp(value) if self.log else value


class Uniform(_Range):
    kind: Literal["uniform"]

    def to_tune(self) -> Any:
        from ray import tune

        return tune.uniform(self.low, self.high)


class LogUniform(_Range):
    kind: Literal["loguniform"]
    log: ClassVar[bool] = True

    def to_tune(self) -> Any:
        from ray import tune

        return tune.loguniform(self.low, self.high)


class Choice(FrozenModel):
    kind: Literal["choice"]
    values: list[Any] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> Choice:
        if len({repr(v) for v in self.values}) != len(self.values):
            raise ValueError(f"choice values must be distinct, got {self.values}")
        return self

    def contains(self, value: Any) -> bool:
        return value in self.values

    def to_tune(self) -> Any:
        from ray import tune

        return tune.choice(self.values)


Dimension = Annotated[Uniform | LogUniform | Choice, Field(discriminator="kind")]
Range = Uniform | LogUniform


class SearchSpace(RootModel[dict[str, Dimension]]):
    """Dotted config key -> dimension."""

    def items(self) -> Iterator[tuple[str, Uniform | LogUniform | Choice]]:
        return iter(self.root.items())

    def keys(self) -> list[str]:
        return list(self.root)

    def __getitem__(self, key: str) -> Uniform | LogUniform | Choice:
        return self.root[key]

    def __contains__(self, key: object) -> bool:
        return key in self.root

    def without(self, keys: set[str]) -> SearchSpace:
        return SearchSpace({k: v for k, v in self.root.items() if k not in keys})

    def contains(self, point: Mapping[str, Any]) -> bool:
        """Whether ``point`` sets exactly this space's keys, each to a value it admits."""
        return set(point) == set(self.root) and all(
            self.root[key].contains(value) for key, value in point.items()
        )

    def to_tune(self) -> dict[str, Any]:
        """The Ray Tune ``param_space`` (flat dotted keys)."""
        return {key: dimension.to_tune() for key, dimension in self.root.items()}

    def as_data(self) -> dict[str, Any]:
        """Plain data, as the YAML file would hold it."""
        return self.model_dump()


def _check_points(space: SearchSpace, fixed: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Points to validate: every choice combination (up to a cap) with the ranges at
    their lows, and the first combination with the ranges at their highs."""
    ranges = {k: d for k, d in space.items() if not isinstance(d, Choice)}
    choices = {k: d.values for k, d in space.items() if isinstance(d, Choice)}
    combos = itertools.islice(itertools.product(*choices.values()), MAX_CHECKED_COMBINATIONS)
    for index, combo in enumerate(combos):
        point = dict(zip(choices, combo, strict=True))
        yield {**fixed, **point, **{k: d.low for k, d in ranges.items()}}
        if index == 0:
            yield {**fixed, **point, **{k: d.high for k, d in ranges.items()}}


def check_space(space: SearchSpace, fixed: Mapping[str, Any], source: str) -> None:
    """Refuse keys that are not config keys, ranges over integer or categorical keys,
    and values the config would reject (with ``fixed`` applied), naming the key."""
    known = settable_keys()
    for key, dimension in space.items():
        if key not in known:
            raise ConfigError(
                f"{source}: {key}: not a config key; tunable keys are {', '.join(sorted(known))}"
            )
        if not isinstance(dimension, Choice) and float not in (known[key], *get_args(known[key])):
            raise ConfigError(
                f"{source}: {key}: a {dimension.kind} range needs a float key; this key takes "
                f"{getattr(known[key], '__name__', known[key])}, so list its values with "
                "kind: choice"
            )
    for point in _check_points(space, fixed):
        build_config(unflatten(point), source)


def load_space(path: Path, fixed: Mapping[str, Any] | None = None) -> SearchSpace:
    """Read a space file, drop the keys a preset fixes, and check what is left with the
    fixed values applied (``heads`` must divide a fixed ``dim``, say)."""
    fixed = fixed or {}
    space = load_model(SearchSpace, path).without(set(fixed))
    if not space.keys():
        raise ConfigError(f"{path}: nothing is left to search once the preset's fixed keys are")
    check_space(space, fixed, str(path))
    return space
