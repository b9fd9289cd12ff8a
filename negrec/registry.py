"""The MLflow model registry: which model version a ``models:/`` URI names, and the
test metrics each version carries.

Why a module: ``promote`` writes versions and moves the ``champion`` alias, ``recommend``
reads them; both must agree on the tag names and give the same clear message when a
model or alias is missing (MLflow's own is a raw RESOURCE_DOES_NOT_EXIST). Promotion
uses aliases, not the deprecated stages.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from negrec import tags, tracking
from negrec.errors import NegrecError
from negrec.storage import redact

CHAMPION = "champion"
DEFAULT_MODEL_NAME = "negrec"
_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class ModelRef:
    """A parsed ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``."""

    name: str
    alias: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, uri: str) -> ModelRef:
        match = _MODEL_URI.match(uri)
        if match is None:
            raise NegrecError(
                f"'{uri}' is not a registered model URI; write models:/NAME@ALIAS "
                f"(e.g. models:/{DEFAULT_MODEL_NAME}@{CHAMPION}) or models:/NAME/VERSION"
            )
        return cls(match["name"], match["alias"], match["version"])


def _is_missing(error: Exception) -> bool:
    return getattr(error, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"


def registered_model(client: Any, name: str) -> Any | None:
    """The registered model called ``name``, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as error:
        if _is_missing(error):
            return None
        raise


def resolve(ref: ModelRef, uri: str) -> Any:
    """The ``ModelVersion`` that ``ref`` names in the registry at ``uri``."""
    from mlflow.exceptions import MlflowException

    fix = f"register one with `negrec promote --checkpoint URI --model-name {ref.name}`"
    database = Path(uri.removeprefix("sqlite:///"))
    if uri.startswith("sqlite:///") and not database.is_file():
        # Checked here because opening a missing sqlite store silently creates an empty one.
        raise NegrecError(
            f"no MLflow database at {database}, so no model '{ref.name}' either; pass the "
            f"--tracking-uri that `negrec promote` used, or {fix}"
        )
    client = tracking.client(uri)
    model = registered_model(client, ref.name)
    if model is None:
        raise NegrecError(
            f"no registered model '{ref.name}' in the MLflow registry at {redact(uri)}; {fix} "
            "(or pass --tracking-uri for the registry that holds it)"
        )
    if ref.alias is not None:
        if ref.alias not in model.aliases:
            have = ", ".join(sorted(model.aliases)) or "none"
            raise NegrecError(
                f"model '{ref.name}' has no alias '{ref.alias}' (aliases: {have}); "
                f"`negrec promote` sets '{CHAMPION}' on a version that beats the current one "
                f"(--force sets it regardless), or use models:/{ref.name}/VERSION"
            )
        return client.get_model_version(ref.name, model.aliases[ref.alias])
    try:
        return client.get_model_version(ref.name, ref.version)
    except MlflowException as error:
        if _is_missing(error):
            raise NegrecError(f"model '{ref.name}' has no version {ref.version}; {fix}") from None
        raise


def champion(client: Any, name: str) -> Any | None:
    """The version the ``champion`` alias points at, or None (no model or no alias)."""
    model = registered_model(client, name)
    if model is None or CHAMPION not in model.aliases:
        return None
    return client.get_model_version(name, model.aliases[CHAMPION])


def version_metric(version: Any, metric: str) -> float | None:
    """A version's test metric from its tag (None when absent or not a number)."""
    try:
        return float(version.tags[tags.test_metric(metric)])
    except (KeyError, ValueError):
        return None


def register(client: Any, name: str, source: str, run_id: str, version_tags: dict[str, str]) -> str:
    """Register the model at ``source`` as a new version of ``name`` (created if needed);
    returns the version number."""
    if registered_model(client, name) is None:
        client.create_registered_model(
            name, description="action-aware gSASRec recommenders (negrec)"
        )
    return str(
        client.create_model_version(name, source=source, run_id=run_id, tags=version_tags).version
    )


@contextmanager
def downloaded_version(model_uri: str, tracking_uri: str | None) -> Iterator[tuple[Path, str]]:
    """The files of the registered version ``model_uri`` names (``models:/NAME@ALIAS``
    or ``models:/NAME/VERSION``) in a temporary folder, and ``models:/NAME/VERSION``;
    the folder is removed when the block ends.

    The version's own location is resolved with our client: a ``models:/`` URI given to
    MLflow would be resolved against its global registry URI instead of ``tracking_uri``."""
    import mlflow.artifacts

    ref = ModelRef.parse(model_uri)
    uri = tracking.resolve_tracking_uri(tracking_uri)
    tracking.check_reachable(uri)
    version = resolve(ref, uri)
    source = tracking.client(uri).get_model_version_download_uri(ref.name, version.version)
    with tempfile.TemporaryDirectory(prefix="negrec-model-") as local:
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=source, dst_path=local, tracking_uri=uri
        )
        yield Path(path), f"models:/{ref.name}/{version.version}"
