"""Batch recommendations on Ray Data (``negrec score``): top-k for every user of a split.

``score(model, data, split, out)`` reads a prepared split's Parquet with Ray Data,
scores it with ``map_batches`` on a pool of actors (each holds one copy of the model;
one GPU each with ``gpu=True``) and writes one row per user as Parquet:
``user_id``, ``items`` (original item ids, best first, ``k`` of them) and ``scores``
(float32, descending). Every item of the user's input (positive or rejected, inside
the model's window or older) is excluded, and so is padding, as in
:class:`~negrec.serving.recommender.Recommender`. The input is a train row's whole
sequence, or a val/test row's input items (the items before its target).

The model is ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or a checkpoint URI. It is
resolved and verified once, on the driver (the registered model's own checkpoint and
vocabulary, or a checkpoint and the vocabulary of the data it was trained on), and
handed to the actors through Ray's object store, so no actor needs MLflow or the
registry. A split prepared with another vocabulary is matched to the model's through
original item ids (``negrec.data.translation``); items the model does not know are
neither input nor candidates, and a user with no item the model knows is not written
(``users_in - users_out`` counts them). A model trained without actions takes only the
positive items as input; the rejected ones are still excluded.

The output is committed like prepare's: Parquet under a hidden staging prefix, then
``_manifest.json`` (:class:`ScoreManifest`) written last, then ``storage.commit``. The
marker's leading ``_`` keeps it out of Parquet readers (``pd.read_parquet(out)`` reads
the scores) and its name differs from prepare's, so ``--out`` can never replace a
prepared dataset. Every input is checked before Ray starts; a failure leaves no
manifest at ``out``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from negrec import checkpoint, registry, storage
from negrec.config import ModelConfig
from negrec.data.files import read_parquet
from negrec.data.loaders import SPLIT_NAMES, PreparedData, load_prepared
from negrec.data.manifest import SplitName, Versions, library_versions
from negrec.data.translation import index_translation
from negrec.errors import NegrecError
from negrec.model.gsasrec import ActionAwareGSASRec
from negrec.model.scoring import exclude_items, last_position_scores
from negrec.native_memory import release_freed_memory
from negrec.runtime import ensure_ray, quiet_ray_requested
from negrec.serving.recommender import CHUNK
from negrec.serving.vocabulary import Vocabulary
from negrec.strict import FrozenModel

if TYPE_CHECKING:
    import ray.data

MANIFEST = "_manifest.json"
FORMAT_VERSION = 1
DEFAULT_BATCH_SIZE = 512
ROWS_PER_FILE = 100_000
"""Users per output file, about (Ray writes a file per block otherwise: one per batch)."""
INPUT_COLUMNS = ["user_id", "items", "actions"]
PROGRESS_LOGGER = "ray.data._internal.progress"
"""Ray Data's logger that says, at WARNING, that its progress bars are off."""


class ScoreManifest(FrozenModel):
    """``_manifest.json`` of a score output: what was scored, with what, and how many."""

    format_version: int = FORMAT_VERSION
    created_unix_s: float
    model: str
    """``--model`` as given (credentials redacted)."""
    model_version: str | None
    """The registered version it resolved to (``models:/NAME/VERSION``); None for a checkpoint."""
    data: str
    split: SplitName
    out: str
    k: int
    users_in: int
    """Rows (users) of the split."""
    users_out: int
    """Rows written; the difference are users with no item the model knows."""
    translated: bool
    """Whether the data's item indices were matched to the model's by original id (data
    prepared with another vocabulary than the model's)."""
    files: list[str]
    """The Parquet files, relative to ``out``."""
    actors: int
    gpu: bool
    batch_size: int
    seconds: float
    """Wall time from the first check to the manifest (the commit not included)."""
    versions: Versions

    @property
    def users_per_s(self) -> float:
        return self.users_out / self.seconds if self.seconds else 0.0

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2)

    def summary(self) -> dict[str, Any]:
        """The ``--json`` line of ``negrec score``."""
        keys = ("out", "model", "model_version", "split", "k", "users_in", "users_out")
        values = {key: getattr(self, key) for key in keys}
        return values | {
            "files": len(self.files),
            "actors": self.actors,
            "seconds": self.seconds,
            "users_per_s": round(self.users_per_s, 1),
        }

    def summary_line(self) -> str:
        return (
            f"scored {self.users_out:,} of {self.users_in:,} {self.split} users (top {self.k}) "
            f"with {self.model_version or self.model} on {self.actors} actor(s) into "
            f"{self.out} in {self.seconds:.1f} s ({self.users_per_s:,.0f} users/s)"
        )


def read_score_manifest(uri: str, options: storage.StorageOptions | None = None) -> ScoreManifest:
    """The manifest of a committed score output; a prefix without one is refused."""
    marker = storage.join(uri, MANIFEST)
    if not storage.exists(marker, options):
        raise NegrecError(f"{uri} is not a complete score output: it has no {MANIFEST}")
    return ScoreManifest.model_validate_json(storage.read_text(marker, options))


@dataclass(frozen=True)
class _Bundle:
    """What every actor needs, put once in the object store."""

    model_config: ModelConfig
    num_items: int
    state: dict[str, torch.Tensor]
    item_ids: pa.Array
    """Original id of model index ``i`` at position ``i - 1``."""
    to_model: np.ndarray | None
    """Data index -> model index (0 = unknown); None when both index alike."""
    k: int


@dataclass(frozen=True)
class _Model:
    saved: checkpoint.Checkpoint
    vocabulary: Vocabulary | None
    """The registered model's own vocabulary; None for a checkpoint (its data's)."""
    version: str | None


# --- the actors ---------------------------------------------------------------------


def _flat(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A list column's values and offsets (offsets from 0)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    offsets = column.offsets.to_numpy().astype(np.int64)
    values = column.values.to_numpy(zero_copy_only=False)[offsets[0] : offsets[-1]]
    return values, offsets - offsets[0]


def _left_padded(values: np.ndarray, rows: np.ndarray, rows_n: int, width: int) -> np.ndarray:
    """``values`` (row ``rows[j]`` each, in order) as (rows_n, width), left-padded with 0,
    each row's last ``width`` values kept (the most recent ones)."""
    lengths = np.bincount(rows, minlength=rows_n)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    from_end = lengths[rows] - 1 - (np.arange(len(rows)) - starts[rows])
    kept = from_end < width
    out = np.zeros((rows_n, width), dtype=np.int64)
    out[rows[kept], width - 1 - from_end[kept]] = values[kept]
    return out


class _Scorer:
    """One model per actor (Ray Data's callable class): one split file's rows in (a read
    task's output, whole), ``user_id, items, scores`` out, ``batch_size`` users at a time.

    Why whole files and not Ray Data's ``batch_size``: the read is fused into this
    actor's tasks, and Ray then bundles the read's inputs (one row per file) up to the
    batch size, so every file of a split went to one task and one actor, and a second
    actor idled (measured: 2 actors 0.96x of one)."""

    def __init__(self, bundle: list[Any], device: str, batch_size: int) -> None:
        import ray

        parts: _Bundle = ray.get(bundle[0])
        if device == "cuda" and not torch.cuda.is_available():
            raise NegrecError(
                f"--gpu: this actor got a GPU from Ray but torch {torch.__version__} sees "
                "none (a CPU build of torch, or no CUDA driver); install a CUDA build of "
                "torch on the GPU nodes"
            )
        self.device = torch.device(device)
        model = ActionAwareGSASRec(parts.num_items, parts.model_config)
        model.load_state_dict(parts.state)
        self.model = model.eval().to(self.device)
        self.item_ids, self.to_model, self.k = parts.item_ids, parts.to_model, parts.k
        self.num_actions = parts.model_config.num_actions
        self.max_len = parts.model_config.max_len
        self.batch_size = batch_size

    def __call__(self, rows: pa.Table) -> pa.Table:
        starts = range(0, rows.num_rows, self.batch_size) or [0]  # an empty file: no rows
        return pa.concat_tables(self._scored(rows.slice(at, self.batch_size)) for at in starts)

    def _scored(self, batch: pa.Table) -> pa.Table:
        items, offsets = _flat(batch["items"])
        actions, _ = _flat(batch["actions"])
        items = items.astype(np.int64)
        if self.to_model is not None:
            items = self.to_model[items]
        rows = np.repeat(np.arange(batch.num_rows), np.diff(offsets))
        known = items > 0
        used = known & (actions < self.num_actions)
        keep = np.flatnonzero(np.bincount(rows[used], minlength=batch.num_rows) > 0)
        ids: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        for start in range(0, len(keep), CHUNK):
            chunk = keep[start : start + CHUNK]
            best_ids, best_scores = self._top_k(chunk, items, actions, rows, known, used)
            ids.append(best_ids)
            scores.append(best_scores)
        release_freed_memory()  # else the actor's heap grows by a forward pass a batch
        return self._table(batch, keep, ids, scores)

    def _top_k(
        self,
        chunk: np.ndarray,
        items: np.ndarray,
        actions: np.ndarray,
        rows: np.ndarray,
        known: np.ndarray,
        used: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k model indices and scores of the rows ``chunk`` (batch row numbers)."""
        position = np.full(int(rows.max(initial=0)) + 1, -1, dtype=np.int64)
        position[chunk] = np.arange(len(chunk))
        mine = position[rows] >= 0
        take, seen = mine & used, mine & known
        window = min(self.max_len, int(np.bincount(rows[take]).max()))
        width = int(np.bincount(rows[seen]).max())
        where_in, where_seen = position[rows[take]], position[rows[seen]]
        inputs = _left_padded(items[take], where_in, len(chunk), window)
        codes = _left_padded(actions[take].astype(np.int64), where_in, len(chunk), window)
        excluded = _left_padded(items[seen], where_seen, len(chunk), width)
        with torch.inference_mode():
            scores = last_position_scores(
                self.model,
                torch.as_tensor(inputs, device=self.device),
                torch.as_tensor(codes, device=self.device),
            )
            exclude_items(scores, torch.as_tensor(excluded, device=self.device))
            best_scores, best_ids = scores.topk(self.k, dim=1)
        return best_ids.cpu().numpy(), best_scores.float().cpu().numpy()

    def _table(
        self, batch: pa.Table, keep: np.ndarray, ids: list[np.ndarray], scores: list[np.ndarray]
    ) -> pa.Table:
        best_ids = np.concatenate(ids) if ids else np.zeros((0, self.k), np.int64)
        best_scores = np.concatenate(scores) if scores else np.zeros((0, self.k), np.float32)
        finite = np.isfinite(best_scores)  # fewer left than k: the input ~ the catalogue
        offsets = pa.array(np.concatenate([[0], np.cumsum(finite.sum(axis=1))]), pa.int32())
        chosen = self.item_ids.take(pa.array(best_ids[finite] - 1))
        return pa.table(
            {
                "user_id": batch["user_id"].take(pa.array(keep, pa.int64())),
                "items": pa.ListArray.from_arrays(offsets, chosen),
                "scores": pa.ListArray.from_arrays(
                    offsets, pa.array(best_scores[finite], pa.float32())
                ),
            }
        )


# --- the driver ---------------------------------------------------------------------


def _from_registry(model_uri: str, tracking_uri: str | None) -> _Model:
    """The registered version's own checkpoint and vocabulary (downloaded, verified)."""
    from mlflow.models import Model

    from negrec.serving.pyfunc import CHECKPOINT_ARTIFACT, VOCABULARY_ARTIFACT

    with registry.downloaded_version(model_uri, tracking_uri) as (path, version):
        flavor = Model.load(str(path)).flavors.get("python_function", {})
        artifacts = flavor.get("artifacts", {})
        if CHECKPOINT_ARTIFACT not in artifacts or VOCABULARY_ARTIFACT not in artifacts:
            raise NegrecError(
                f"{model_uri} ({version}) is not a negrec model: it has no "
                f"'{CHECKPOINT_ARTIFACT}' and '{VOCABULARY_ARTIFACT}' artifacts; register "
                "one with `negrec promote`"
            )
        saved = checkpoint.load(path / artifacts[CHECKPOINT_ARTIFACT]["path"])
        vocabulary = Vocabulary.read(str(path / artifacts[VOCABULARY_ARTIFACT]["path"]))
    return _Model(saved, vocabulary, version)


def _load_model(model: str, tracking_uri: str | None) -> _Model:
    try:
        if model.startswith("models:/"):
            return _from_registry(model, tracking_uri)
        return _Model(checkpoint.load(storage.absolute(model)), None, None)
    except NegrecError as error:
        raise NegrecError(f"cannot load --model {storage.redact(model)}: {error}") from None


def _load_data(data: str, options: storage.StorageOptions) -> PreparedData:
    try:
        return load_prepared(storage.absolute(data), options)
    except NegrecError as error:
        raise NegrecError(f"cannot read --data {storage.redact(data)}: {error}") from None


def _data_vocabulary(prepared: PreparedData) -> Vocabulary:
    return Vocabulary.read(storage.join(prepared.uri, prepared.manifest.vocab))


def _model_vocabulary(loaded: _Model, prepared: PreparedData) -> Vocabulary:
    """The vocabulary the model's indices mean: its own (registered), or that of the
    data it was trained on (a checkpoint), which is ``prepared`` when the URIs agree."""
    if loaded.vocabulary is not None:
        return loaded.vocabulary
    if loaded.saved.data_uri == prepared.uri:
        return _data_vocabulary(prepared)
    try:
        return Vocabulary.of_prepared(loaded.saved.data_uri)
    except NegrecError as error:
        raise NegrecError(
            f"{prepared.uri} may index items differently from the data this checkpoint was "
            f"trained on, whose vocabulary is needed to match them: {error}"
        ) from None


def _translation(model_vocabulary: Vocabulary, prepared: PreparedData) -> np.ndarray | None:
    """Data index -> model index; None when both vocabularies agree."""
    data_vocabulary = _data_vocabulary(prepared)
    if model_vocabulary.table.equals(data_vocabulary.table):
        return None
    return index_translation(model_vocabulary.table, data_vocabulary.table)


def _check_out(out: str, prepared: PreparedData, options: storage.StorageOptions) -> None:
    """``out`` must not be the data (or inside it) and may replace only a score output."""
    data = prepared.uri.rstrip("/")
    if out == data or out.startswith(data + "/"):
        raise NegrecError(f"--out {out} lies inside --data {data}; choose another location")
    if storage.is_s3(out):
        bucket = "s3://" + out[len("s3://") :].split("/", 1)[0]
        if not storage.exists(bucket, options):
            raise NegrecError(
                f"--out {out}: bucket '{bucket[len('s3://') :]}' does not exist (or is not "
                "visible with these credentials); create it or fix the URI"
            )
    if storage.exists(storage.join(out, MANIFEST), options):
        return
    if storage.exists(out, options) and storage.list_files(out, options=options):
        raise NegrecError(
            f"--out {out} already holds files but no {MANIFEST}, so it is not an earlier "
            "score output; choose an empty or new location (nothing was written)"
        )


def _check_gpus(actors: int) -> None:
    import ray

    gpus = int(ray.cluster_resources().get("GPU", 0))
    if gpus < actors:
        raise NegrecError(
            f"--gpu with {actors} actor(s) needs {actors} GPU(s), but the Ray cluster has "
            f"{gpus}; lower --actors, add GPU nodes, or drop --gpu"
        )


def _written(stage: str, options: storage.StorageOptions) -> tuple[list[str], int]:
    """The staged Parquet files (relative) and their rows, from their footers."""
    uris = storage.list_files(stage, ".parquet", options) if storage.exists(stage, options) else []
    rows = 0
    for uri in uris:
        with storage.open_input_file(uri, options) as handle:
            rows += pq.ParquetFile(handle).metadata.num_rows
    prefix = stage.rstrip("/") + "/"
    return [uri[len(prefix) :] for uri in uris], rows


@contextmanager
def _quiet_ray_data(quiet: bool) -> Iterator[None]:
    """Quiet (no ``--verbose``): no Ray Data progress bars for this run, and no notice
    that they are off; the settings are restored afterwards."""
    import ray.data

    context = ray.data.DataContext.get_current()
    notices = logging.getLogger(PROGRESS_LOGGER)
    bars, level = context.enable_progress_bars, notices.level
    if quiet:
        context.enable_progress_bars = False
        notices.setLevel(logging.ERROR)
    try:
        yield
    finally:
        context.enable_progress_bars = bars
        notices.setLevel(level)


def _read_files(batch: pa.Table, options: storage.StorageOptions) -> pa.Table:
    """A Ray Data task: the input columns of the split files named in ``batch``."""
    return pa.concat_tables(
        read_parquet(uri, options, INPUT_COLUMNS) for uri in batch["uri"].to_pylist()
    )


def _split_rows(files: list[str], options: storage.StorageOptions) -> ray.data.Dataset:
    """The split's rows as a Ray Data stream, one read task per file.

    Why not ``ray.data.read_parquet``: Ray 2.60 routes it through its DataSourceV2
    reader, which starts ``RAY_DATA_PARQUET_FOOTER_NUM_ACTORS`` (32) FooterReader
    actors for every read to list the files' footers. For the 8 files of a 1,500-user
    split that took 11-19 s on a busy 2-core machine, against 1-4 s for tasks that
    read the files the manifest lists (through ``negrec.storage``, like every reader).
    """
    import ray.data

    return ray.data.from_items(
        [{"uri": uri} for uri in files], override_num_blocks=len(files)
    ).map_batches(_read_files, fn_kwargs={"options": options}, batch_size=1, batch_format="pyarrow")


def score(
    model: str,
    data: str,
    split: str,
    out: str,
    k: int | None = None,
    actors: int = 1,
    batch_size: int = DEFAULT_BATCH_SIZE,
    gpu: bool = False,
    tracking_uri: str | None = None,
    options: storage.StorageOptions | None = None,
) -> ScoreManifest:
    """Top-``k`` (default: the model's ``train.eval_k``) for every user of ``split`` of the
    prepared dataset ``data``, committed at ``out``; returns the manifest."""
    import ray.data

    started = time.perf_counter()
    options = storage.StorageOptions.from_env() if options is None else options
    if split not in SPLIT_NAMES:
        raise NegrecError(f"unknown split '{split}'; choose one of {', '.join(SPLIT_NAMES)}")
    if actors < 1 or batch_size < 1:
        raise NegrecError(f"--actors ({actors}) and --batch-size ({batch_size}) must be >= 1")
    out = storage.absolute(out)
    prepared = _load_data(data, options)
    _check_out(out, prepared, options)
    loaded = _load_model(model, tracking_uri)
    saved = loaded.saved
    k = saved.config.train.eval_k if k is None else k
    if not 1 <= k <= saved.num_items:
        raise NegrecError(f"k={k} must lie in 1..{saved.num_items} (the model's catalogue size)")
    vocabulary = _model_vocabulary(loaded, prepared)
    if len(vocabulary) != saved.num_items:
        raise NegrecError(
            f"the model's vocabulary has {len(vocabulary)} items but its weights "
            f"{saved.num_items}: the checkpoint and its data do not belong together"
        )
    files = prepared.split_files[split]
    users_in = prepared.manifest.splits[cast(SplitName, split)].rows
    if not files or users_in == 0:
        raise NegrecError(f"{prepared.uri}: the {split} split has no users; nothing to score")
    to_model = _translation(vocabulary, prepared)

    storage.configure_environment(options)
    ensure_ray()
    if gpu:
        _check_gpus(actors)
    bundle = _Bundle(
        model_config=saved.config.model,
        num_items=saved.num_items,
        state=saved.state.best_model_state or saved.model_state,
        item_ids=vocabulary.table["item_id"].combine_chunks(),
        to_model=to_model,
        k=k,
    )
    stage = storage.staging_uri(out)
    out_fs, stage_path = storage.resolve(stage, options)
    try:
        with _quiet_ray_data(quiet_ray_requested()):
            (
                _split_rows(files, options)
                .map_batches(
                    _Scorer,
                    fn_constructor_kwargs={
                        "bundle": [ray.put(bundle)],
                        "device": "cuda" if gpu else "cpu",
                        "batch_size": batch_size,
                    },
                    batch_size=None,
                    batch_format="pyarrow",
                    # A task is a whole file: queued behind one another on the first
                    # actor up (Ray's default allows 4), they would leave the rest idle.
                    compute=ray.data.ActorPoolStrategy(
                        size=actors, max_tasks_in_flight_per_actor=1
                    ),
                    num_cpus=1,
                    num_gpus=1 if gpu else 0,
                )
                .write_parquet(stage_path, filesystem=out_fs, min_rows_per_file=ROWS_PER_FILE)
            )
        written, users_out = _written(stage, options)
        manifest = ScoreManifest(
            created_unix_s=time.time(),
            model=storage.redact(model if loaded.version else storage.absolute(model)),
            model_version=loaded.version,
            data=prepared.uri,
            split=cast(SplitName, split),
            out=out,
            k=k,
            users_in=users_in,
            users_out=users_out,
            translated=to_model is not None,
            files=written,
            actors=actors,
            gpu=gpu,
            batch_size=batch_size,
            seconds=round(time.perf_counter() - started, 3),
            versions=library_versions(),
        )
        storage.write_text(storage.join(stage, MANIFEST), manifest.to_json(), options)
        storage.commit(stage, out, MANIFEST, options)
    except BaseException:
        storage.delete_tree(stage, options)
        raise
    return manifest
