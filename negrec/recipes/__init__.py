"""Built-in training recipes, search spaces, fine-space rules and sweep presets.

They are package data, so an installed wheel carries them and nothing is read from a
checkout of the repository:

- ``negrec/recipes/<name>.yaml``: training recipes (``--config <name>``: ``demo``,
  ``gsasrec``, ``ml1m``);
- ``negrec/recipes/tuning/*.yaml``: search spaces and fine-space rules;
- ``negrec/recipes/tuning/presets/<name>.yaml``: sweep presets (``--preset <name>``),
  which name their space and rules by paths relative to themselves (``../coarse.yaml``),
  so those resolve inside the package too.

Read through :mod:`importlib.resources` (as the action mappings are); the files must be
installed as files (a wheel or an editable install), not read from a zip archive.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from negrec.errors import NegrecError

TUNING = "tuning"
PRESETS = "tuning/presets"


class UnknownRecipe(NegrecError, LookupError):
    """No built-in recipe or preset of that name; the message lists the ones there are."""


def folder() -> Path:
    """The installed ``negrec/recipes`` folder."""
    return Path(str(resources.files(__name__)))


def _names(subfolder: Path) -> list[str]:
    return sorted(path.stem for path in subfolder.glob("*.yaml"))


def recipe_names() -> list[str]:
    """The built-in training recipes (``--config NAME``)."""
    return _names(folder())


def recipe_path(name: str) -> Path:
    """The file of the built-in training recipe ``name`` (``demo``, ``ml1m``, ...)."""
    return _lookup(folder(), name, "training recipe", recipe_names())


def recipe_text(name: str) -> str:
    return recipe_path(name).read_text()


def tuning_path(filename: str) -> Path:
    """A built-in search space or rules file, e.g. ``tuning_path("coarse.yaml")``."""
    path = folder() / TUNING / filename
    if not path.is_file():
        names = ", ".join(p.name for p in sorted((folder() / TUNING).glob("*.yaml")))
        raise UnknownRecipe(f"no built-in tuning file {filename}; there are: {names}")
    return path


def preset_names() -> list[str]:
    """The built-in sweep presets (``--preset NAME``)."""
    return _names(folder() / PRESETS)


def preset_path(name: str) -> Path:
    """The file of the built-in sweep preset ``name`` (``tiny``, ``laptop``, ...)."""
    return _lookup(folder() / PRESETS, name, "preset", preset_names())


def _lookup(subfolder: Path, name: str, kind: str, names: list[str]) -> Path:
    if name not in names:
        raise UnknownRecipe(f"no built-in {kind} '{name}'; built-in: {', '.join(names)}")
    return subfolder / f"{name}.yaml"
