"""How to read an event log's columns and map its events to actions.

Each input format ships a default mapping (its entry in ``negrec.data.formats`` names
the file, ``negrec/data/mappings/<format>.yaml``); ``negrec prepare --actions FILE``
overrides it key by key. A mapping says:

* ``columns``: which source column holds the user, item, timestamp and event/rating
  (the ``table`` format relies on this; the public formats have fixed names);
* ``timestamp_unit``: ``s``, ``ms``, ``us``, ``ns`` or ``iso8601`` (Arrow timestamp
  columns need none);
* ``ids``: ``int`` (ids become int64) or ``string`` (ids stay strings), for ``table``;
* ``events`` (event value -> positive | negative | ignore) *or* ``ratings`` (ordered
  rules ``{min, max, action}``, bounds inclusive, first match wins);
* ``on_bad_row``: ``error`` (default: stop at the first unparsable row) or
  ``quarantine`` (drop such rows and count them by reason);
* ``header``, ``column_order``, ``delimiter``: how a ``table`` CSV/TSV file is laid
  out (the public formats' layouts are fixed, so only a format whose entry lists them
  in ``layout_keys``, ``table``, accepts them).

docs/prepare.md ("Action mapping file") documents every key with an example.

Why typed and strict: a misspelt key or an unknown action silently mislabelling
millions of events is the failure this file exists to prevent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from negrec.config import ConfigError, describe_validation_error
from negrec.data.formats import format_names, get_format
from negrec.data.layouts import MAPPING_KEYS
from negrec.strict import FrozenModel

Action = Literal["positive", "negative", "ignore"]


class Columns(FrozenModel):
    """Source column name of each canonical field."""

    user_id: str = "user_id"
    item_id: str = "item_id"
    timestamp: str = "timestamp"
    event: str = "event"
    rating: str = "rating"


class RatingRule(FrozenModel):
    """Ratings in [min, max] (inclusive; a missing bound is open) get ``action``."""

    action: Action
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounded(self) -> RatingRule:
        if self.min is None and self.max is None:
            raise ValueError("a rating rule needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class ActionMapping(FrozenModel):
    """A validated mapping; ``source`` names the file(s) it came from, for messages."""

    columns: Columns = Columns()
    timestamp_unit: Literal["s", "ms", "us", "ns", "iso8601"] = "s"
    ids: Literal["int", "string"] = "int"
    events: dict[str, Action] | None = None
    ratings: list[RatingRule] | None = None
    on_bad_row: Literal["error", "quarantine"] = "error"
    header: bool = True
    column_order: list[str] | None = Field(None, validate_default=True)
    delimiter: str | None = None
    _source: str = PrivateAttr(default="<inline mapping>")

    @field_validator("events", mode="before")
    @classmethod
    def _string_keys(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str):
                    raise ValueError(
                        f"event value {key!r} is not a string; quote it in YAML, "
                        f'e.g. "{key}": positive'
                    )
        return value

    @field_validator("column_order")
    @classmethod
    def _names_every_mapped_column(
        cls, order: list[str] | None, info: ValidationInfo
    ) -> list[str] | None:
        """A headerless file's names must cover the mapped columns: checked here, with
        the key named, rather than as a 'missing column' once the file is being read."""
        if info.data.get("header", True):
            if order is not None:
                raise ValueError(
                    "names the columns of a file without a header: add header: false "
                    "(or drop column_order to take the names from the header row)"
                )
            return order
        if not order:
            raise ValueError(
                "header: false needs column_order, the column names in file order, "
                "e.g. [user_id, item_id, timestamp, event]"
            )
        twice = sorted({name for name in order if order.count(name) > 1})
        if twice:
            raise ValueError(f"names {', '.join(map(repr, twice))} more than once")
        columns = info.data.get("columns", Columns())
        fields = ["user_id", "item_id", "timestamp"]
        if info.data.get("ratings") is not None:
            fields.append("rating")
        elif info.data.get("events") is not None:
            fields.append("event")
        missing = [
            f"'{getattr(columns, field)}' (columns.{field})"
            for field in fields
            if getattr(columns, field) not in order
        ]
        if missing:
            raise ValueError(
                f"has no column {', '.join(missing)}: list it, or map that field under "
                "columns: to one of the names in column_order"
            )
        return order

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, value: str | None) -> str | None:
        if value is not None and (len(value) != 1 or value in '\n\r"'):
            raise ValueError(
                "must be one character other than a quote or line break, e.g. ';', '|' "
                'or "\\t" (tab)'
            )
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> ActionMapping:
        if (self.events is None) == (self.ratings is None):
            raise ValueError("give exactly one of 'events' (event values) or 'ratings' (rules)")
        return self

    @property
    def source(self) -> str:
        return self._source

    @property
    def value_column(self) -> str:
        """The canonical field the actions come from: ``event`` or ``rating``."""
        return "event" if self.events is not None else "rating"


def default_mapping_path(format: str) -> Path:
    """The format's default mapping file (its registry entry says which)."""
    path = get_format(format).mapping
    if path is None:
        raise ConfigError(f"--format {format} carries no actions, so it has no action mapping")
    return path


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except OSError as error:
        raise ConfigError(f"cannot read action mapping {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"action mapping {path} is not valid YAML: {error}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"action mapping {path} must be a mapping of keys, not {loaded!r}")
    return loaded


def _overlay(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` wins key by key; ``columns`` merges field by field, and giving
    ``events`` or ``ratings`` replaces the default's rules of either kind."""
    merged = dict(base)
    if "events" in override or "ratings" in override:
        merged.pop("events", None)
        merged.pop("ratings", None)
    for key, value in override.items():
        if key == "columns" and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _describe(error: ValidationError, source: str) -> str:
    return describe_validation_error(
        error,
        f"invalid action mapping ({source}):",
        f" (known: {', '.join(ActionMapping.model_fields)})",
    )


def build_mapping(values: dict[str, Any], source: str = "<inline mapping>") -> ActionMapping:
    """Validate a dict into a mapping, naming every wrong key."""
    try:
        mapping = ActionMapping.model_validate(values)
    except ValidationError as error:
        raise ConfigError(_describe(error, source)) from None
    mapping._source = source
    return mapping


def load_mapping(format: str, path: str | Path | None = None) -> ActionMapping:
    """The format's default mapping, overridden by the YAML file at ``path`` if given."""
    default_path = default_mapping_path(format)
    values = _read_yaml(default_path)
    source = str(default_path)
    if path is not None:
        override = _read_yaml(Path(path))
        source = f"{path} (over the {format} defaults in {default_path})"
        _check_layout_keys(format, override, source)
        values = _overlay(values, override)
    return build_mapping(values, source)


def _check_layout_keys(format: str, override: dict[str, Any], source: str) -> None:
    """A layout key for a format whose layout is fixed would be silently ignored."""
    accepted = get_format(format).layout_keys
    given = [key for key in MAPPING_KEYS if key in override and key not in accepted]
    if given:
        key = given[0]
        readers = [name for name in format_names() if key in get_format(name).layout_keys]
        raise ConfigError(
            f"invalid action mapping ({source}):\n  {key}: only "
            f"{' or '.join(f'--format {name}' for name in readers)} reads this key; the "
            f"{format} file layout is fixed (docs/prepare.md, Formats)"
        )


def default_mapping_text(format: str) -> str:
    """The packaged default mapping of ``format``, comments included (a starting point
    for an ``--actions`` file)."""
    return default_mapping_path(format).read_text()
