"""MovieLens-1M files for the paper benchmarks, laid out as ``negrec prepare`` input.

Why a module of its own: both ML-1M benchmarks read the reference data from a path
given on the command line (never from the repository), check it against the counts
its README states, and turn it into files the product's own ``negrec prepare`` reads;
nothing here builds batches or trains.

* ``write_gsasrec_sasrec_files``: the exact split of the gSASRec PyTorch port (SASRec
  ids, all interactions positive) as SASRec ``user item`` files (``--format sasrec``).
* ``write_ratings_events``: the raw ratings (``--format movielens``), optionally only
  the first users for quick checks, with ``item_clusters.parquet`` from the genres of
  ``movies.dat`` next to them, which prepare carries into the prepared data.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from negrec.errors import NegrecError

GSASREC_ITEMS = 3416
GSASREC_USERS = 6040
VALIDATION_USERS = 512
RATINGS = "ratings_users0001-2999.dat.gz"
MOVIES = "movies.dat"
CLUSTERS = "item_clusters.parquet"


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


@dataclass(frozen=True)
class GsasrecSplit:
    """The port's rows: every user's training input (users 1..6,040 in order), the
    validation inputs and targets, and the users whose whole sequence is known with
    their exact test input and target."""

    train: list[np.ndarray]
    val_inputs: list[np.ndarray]
    val_targets: np.ndarray
    complete_users: list[int]
    complete_inputs: list[np.ndarray]
    complete_targets: np.ndarray


def gsasrec_split(data: Path) -> GsasrecSplit:
    """The gSASRec port's split, checked against its counts. Test inputs are exact only
    for the 5,062 users of ``sas_sequences_5062users.txt.gz``: for the others the
    second-to-last item is unknown (the known gap), so they are not test users here."""
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
    users = sorted(full)
    for user in users:
        if full[user][-1] != test_out[user - 1]:
            raise NegrecError(f"sas_sequences: user {user}'s last item is not test_output's")
    return GsasrecSplit(
        train=train,
        val_inputs=val_in,
        val_targets=val_out,
        complete_users=users,
        complete_inputs=[np.array(full[user][:-1], dtype=np.int64) for user in users],
        complete_targets=np.array([full[user][-1] for user in users], dtype=np.int64),
    )


def write_gsasrec_sasrec_files(data: Path, folder: Path) -> Path:
    """The gSASRec split as SASRec ``user item`` files for ``negrec prepare --format sasrec``.

    ``train.txt``: every user's ``train_input`` line. ``val.txt``: each validation user's
    ``val_input`` followed by its ``val_output``. ``test.txt``: the 5,062 users whose
    whole sequence is known, input ``items[:-1]`` followed by the ``test_output`` item.
    Nothing is re-split: these are the port's own rows, checked against its counts.
    """
    split = gsasrec_split(data)
    users_of = {tuple(row.tolist()): user for user, row in enumerate(split.train, 1)}
    validation_users = [users_of[tuple(row[:-1].tolist())] for row in split.val_inputs]
    folder.mkdir(parents=True, exist_ok=True)

    def write(name: str, users: list[int], rows: list[np.ndarray]) -> None:
        with open(folder / name, "w") as handle:
            for user, row in zip(users, rows, strict=True):
                handle.writelines(f"{user} {item}\n" for item in row.tolist())

    write("train.txt", list(range(1, GSASREC_USERS + 1)), split.train)
    write(
        "val.txt",
        validation_users,
        [np.append(r, t) for r, t in zip(split.val_inputs, split.val_targets, strict=True)],
    )
    write(
        "test.txt",
        split.complete_users,
        [
            np.append(r, t)
            for r, t in zip(split.complete_inputs, split.complete_targets, strict=True)
        ],
    )
    return folder


def _first_users(ratings: Path, users: int, target: Path) -> None:
    """The ratings of the first ``users`` users in file order (the file is by user)."""
    kept: set[str] = set()
    with gzip.open(ratings, "rt") as source, open(target, "w") as sink:
        for line in source:
            user = line.split("::", 1)[0]
            if user not in kept:
                if len(kept) == users:
                    break
                kept.add(user)
            sink.write(line)


def genre_clusters(movies: Path) -> pa.Table:
    """(item_id, cluster): one cluster per movie, its first genre in ``movies.dat``
    (``MovieID::Title::Genres``, genres joined by ``|``). Responsiveness counts items of
    the rejected item's cluster, which needs one cluster per item; MovieLens lists a
    movie's genres alphabetically, so this is a fixed if arbitrary pick (``Comedy|Drama``
    is Comedy): 18 clusters, Drama and Comedy the largest."""
    ids, genres = [], []
    with open(_need(movies), encoding="latin-1") as handle:
        for line in handle:
            movie, _, listed = line.rstrip("\n").split("::")
            ids.append(int(movie))
            genres.append(listed.split("|")[0])
    return pa.table({"item_id": pa.array(ids, pa.int64()), "cluster": genres})


def write_ratings_events(data: Path, folder: Path, users: int | None = None) -> Path:
    """A folder for ``negrec prepare --format movielens --events FOLDER``: a link to the
    raw ratings (or, with ``users``, a file of the first ``users`` users' ratings, for
    quick checks) and ``item_clusters.parquet`` from the genres. The data stays where it
    is; only derived files are written."""
    ratings = _need(data / RATINGS)
    folder.mkdir(parents=True, exist_ok=True)
    if users is None:
        link = folder / RATINGS
        if not link.exists():
            link.symlink_to(ratings.resolve())
    else:
        _first_users(ratings, users, folder / f"ratings_first{users}users.dat")
    pq.write_table(genre_clusters(data / MOVIES), folder / CLUSTERS)
    return folder
