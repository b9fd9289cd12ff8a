"""MovieLens-1M for the paper benchmarks: the gSASRec split and the raw-ratings split.

Why a module of its own: both ML-1M benchmarks read the reference data from a path
given on the command line (never from the repository), check it against the counts
its README states, and turn it into the batches the one training loop consumes.

* ``gsasrec_split``: the exact split of the gSASRec PyTorch port (SASRec ids, all
  interactions positive). Test inputs are exact only for the users whose complete
  sequence is known (``sas_sequences_5062users.txt.gz``); for the other users the
  second-to-last item is unknown, so their "all users" input lacks it (the known gap).
* ``raw_ratings_split``: explicit ratings (<= 2 negative, >= 4 positive, 3 dropped by
  default) per user in time order; the last positive is the test target, the one before
  it the validation target, and the rejected items after each cut-off are held out.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from negrec import prepare
from negrec.batching import (
    EvalBatch,
    TrainBatch,
    eval_arrays,
    eval_batch_from_arrays,
    train_batch_from_arrays,
    training_arrays,
)
from negrec.data.files import read_parquet
from negrec.data.loaders import list_column, load_prepared, read_split
from negrec.data.prepare_config import PrepareConfig
from negrec.errors import NegrecError
from negrec.runtime import ensure_ray

GSASREC_ITEMS = 3416
GSASREC_USERS = 6040
VALIDATION_USERS = 512
NEGATIVE_MAX_RATING = 2
POSITIVE_MIN_RATING = 4


@dataclass(frozen=True)
class Sequences:
    """Per-row item and action arrays plus their targets (evaluation rows only)."""

    items: list[np.ndarray]
    actions: list[np.ndarray]
    targets: np.ndarray | None = None
    heldout_rejected: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class BenchmarkSplit:
    """Training rows (whole sequences), validation rows and one or more test sets."""

    num_items: int
    train: Sequences
    val: Sequences
    tests: dict[str, Sequences]
    item_genres: torch.Tensor | None = None
    """(num_items + 1, genres) 0/1 membership, for responsiveness; row 0 = padding."""

    def train_batches(
        self, batch_size: int, max_len: int, seed: int, epoch: int, bucket: int = 8
    ) -> Iterator[TrainBatch]:
        """One shuffled pass over the training rows, length-bucketed.

        Why buckets: ML-1M inputs average ~108 of 200 positions, and a random batch is
        almost always padded to 200. Rows are shuffled, then each run of ``bucket``
        batches is sorted by length and cut into batches padded only to their longest
        row; batch order is shuffled again. The model right-aligns position embeddings,
        so a trimmed batch computes exactly what its 200-wide copy would, at about half
        the cost. ``bucket=1`` gives plain random batches.
        """
        rng = np.random.default_rng([seed, epoch])
        lengths = np.array([min(len(r) - 1, max_len) for r in self.train.items])
        order = rng.permutation(len(self.train))
        batches = []
        for start in range(0, len(order), batch_size * bucket):
            run = order[start : start + batch_size * bucket]
            run = run[np.argsort(lengths[run], kind="stable")]
            batches += [run[i : i + batch_size] for i in range(0, len(run), batch_size)]
        for b in rng.permutation(len(batches)):
            rows = batches[b]
            width = max(1, int(lengths[rows].max()))
            arrays = training_arrays(
                [self.train.items[r] for r in rows], [self.train.actions[r] for r in rows], width
            )
            yield train_batch_from_arrays(arrays)

    def eval_batches(self, rows: Sequences, batch_size: int, max_len: int) -> Iterator[EvalBatch]:
        assert rows.targets is not None
        rejected = rows.heldout_rejected or [np.zeros(0, dtype=np.int64)] * len(rows)
        for start in range(0, len(rows), batch_size):
            part = slice(start, start + batch_size)
            arrays = eval_arrays(
                rows.items[part], rows.actions[part], rows.targets[part], rejected[part], max_len
            )
            yield eval_batch_from_arrays(arrays)


def _need(path: Path) -> Path:
    if not path.exists():
        raise NegrecError(
            f"{path} is missing: pass --data pointing at the ml1m folder of the shared "
            "reference data (see its README)"
        )
    return path


def _lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(_need(path), "rt") as handle:
        return handle.read().splitlines()


def _int_rows(path: Path) -> list[np.ndarray]:
    return [np.array(line.split(), dtype=np.int64) for line in _lines(path)]


def _positives(rows: list[np.ndarray], targets: np.ndarray | None = None) -> Sequences:
    """Rows whose every interaction is positive (action 0)."""
    return Sequences(rows, [np.zeros_like(r) for r in rows], targets)


def gsasrec_split(data: Path) -> BenchmarkSplit:
    """The gSASRec port's split, with test sets ``complete`` (exact input) and ``all``."""
    split = data / "gsasrec_split"
    train = _int_rows(split / "train_input.txt")
    val_in = _int_rows(split / "val_input.txt")
    val_out = np.array([int(x) for x in _lines(split / "val_output.txt")], dtype=np.int64)
    test_out = np.array([int(x) for x in _lines(split / "test_output.txt")], dtype=np.int64)
    if len(train) != GSASREC_USERS or len(test_out) != GSASREC_USERS:
        raise NegrecError(f"{split}: expected {GSASREC_USERS} users, got {len(train)}")
    if len(val_in) != VALIDATION_USERS or len(val_out) != VALIDATION_USERS:
        raise NegrecError(f"{split}: expected {VALIDATION_USERS} validation users")

    full: dict[int, list[int]] = {}
    for line in _lines(data / "sas_sequences_5062users.txt.gz"):
        user, item = line.split()
        full.setdefault(int(user), []).append(int(item))
    complete_inputs, complete_targets = [], []
    for user in sorted(full):
        sequence = np.array(full[user], dtype=np.int64)
        if sequence[-1] != test_out[user - 1]:
            raise NegrecError(f"sas_sequences: user {user}'s last item is not test_output's")
        complete_inputs.append(sequence[:-1])
        complete_targets.append(sequence[-1])

    # All users: the exact input where known; a validation user's is its validation input
    # plus target; for the rest the second-to-last item is missing (the known gap).
    validation = {tuple(row[:-1].tolist()): i for i, row in enumerate(val_in)}
    all_inputs = []
    for user, prefix in enumerate(train, start=1):
        v = validation.get(tuple(prefix.tolist()))
        if user in full:
            all_inputs.append(np.array(full[user][:-1], dtype=np.int64))
        elif v is not None:
            all_inputs.append(np.append(val_in[v], val_out[v]))
        else:
            all_inputs.append(prefix)
    return BenchmarkSplit(
        num_items=GSASREC_ITEMS,
        train=_positives(train),
        val=_positives(val_in, val_out),
        tests={
            "complete": _positives(complete_inputs, np.array(complete_targets)),
            "all": _positives(all_inputs, test_out),
        },
    )


def write_gsasrec_sasrec_files(data: Path, folder: Path) -> Path:
    """The gSASRec split as SASRec ``user item`` files for ``negrec prepare --format sasrec``.

    ``train.txt``: every user's ``train_input`` line. ``val.txt``: each validation user's
    ``val_input`` followed by its ``val_output``. ``test.txt``: the 5,062 users whose
    whole sequence is known, input ``items[:-1]`` followed by the ``test_output`` item.
    Nothing is re-split: these are the port's own rows, checked against its counts.
    """
    split = gsasrec_split(data)
    users_of = {tuple(row.tolist()): user for user, row in enumerate(split.train.items, 1)}
    validation_users = [users_of[tuple(row[:-1].tolist())] for row in split.val.items]
    full = {}
    for line in _lines(data / "sas_sequences_5062users.txt.gz"):
        user, _ = line.split()
        full.setdefault(int(user), None)
    complete = split.tests["complete"]
    folder.mkdir(parents=True, exist_ok=True)

    def write(name: str, users: list[int], rows: list[np.ndarray]) -> None:
        with open(folder / name, "w") as handle:
            for user, row in zip(users, rows, strict=True):
                handle.writelines(f"{user} {item}\n" for item in row.tolist())

    write("train.txt", list(range(1, GSASREC_USERS + 1)), split.train.items)
    assert split.val.targets is not None and complete.targets is not None
    write(
        "val.txt",
        validation_users,
        [np.append(r, t) for r, t in zip(split.val.items, split.val.targets, strict=True)],
    )
    write(
        "test.txt",
        sorted(full),
        [np.append(r, t) for r, t in zip(complete.items, complete.targets, strict=True)],
    )
    return folder


def _genre_matrix(movies: Path, vocabulary: pa.Table, num_items: int) -> torch.Tensor:
    """(num_items + 1, genres) membership from ``movies.dat`` (MovieID::Title::Genres)."""
    genres_of: dict[int, list[str]] = {}
    with open(_need(movies), encoding="latin-1") as handle:
        for line in handle:
            movie, _, genres = line.rstrip("\n").split("::")
            genres_of[int(movie)] = genres.split("|")
    names = sorted({g for gs in genres_of.values() for g in gs})
    matrix = torch.zeros(num_items + 1, len(names), dtype=torch.bool)
    for item_id, index in zip(
        vocabulary["item_id"].to_pylist(), vocabulary["index"].to_pylist(), strict=True
    ):
        for genre in genres_of.get(item_id, []):
            matrix[index, names.index(genre)] = True
    return matrix


def _rows(table: pa.Table, evaluation: bool) -> Sequences:
    items = [r.astype(np.int64) for r in list_column(table["items"])]
    actions = [r.astype(np.int64) for r in list_column(table["actions"])]
    if not evaluation:
        return Sequences(items, actions)
    rejected = [r.astype(np.int64) for r in list_column(table["heldout_rejected"])]
    return Sequences(items, actions, table["target"].to_numpy().astype(np.int64), rejected)


def raw_ratings_split(data: Path, workdir: Path) -> BenchmarkSplit:
    """The raw ratings through ``negrec prepare`` (leave-one-out, 512 validation users).

    Runs the product's own Ray Data prepare on the ``.dat.gz`` file as it is (ratings
    >= 4 positive, <= 2 negative, 3 dropped: the MovieLens mapping), once per workdir.
    """
    prepared_uri = workdir / "prepared"
    if not (prepared_uri / "manifest.json").exists():
        ensure_ray()
        prepare.run(
            PrepareConfig(
                events=str(_need(data / "ratings_users0001-2999.dat.gz")),
                out=str(prepared_uri),
                format="movielens",
            )
        )
    prepared = load_prepared(str(prepared_uri))
    vocabulary = read_parquet(str(prepared_uri / prepared.manifest["vocab"]), None)
    return BenchmarkSplit(
        num_items=prepared.num_items,
        train=_rows(read_split(prepared, "train"), evaluation=False),
        val=_rows(read_split(prepared, "val"), evaluation=True),
        tests={"all": _rows(read_split(prepared, "test"), evaluation=True)},
        item_genres=_genre_matrix(data / "movies.dat", vocabulary, prepared.num_items),
    )


def positives_only(rows: Sequences) -> Sequences:
    """The same rows with every negative interaction removed (a positives-only system)."""
    keep = [a == 0 for a in rows.actions]
    return Sequences(
        [i[k] for i, k in zip(rows.items, keep, strict=True)],
        [a[k] for a, k in zip(rows.actions, keep, strict=True)],
        rows.targets,
        rows.heldout_rejected,
    )
