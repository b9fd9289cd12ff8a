"""The project's one synthetic event-log generator, with ground truth for negative feedback.

Why synthetic data at all: tests, the demo and the benchmarks need event logs of any
size, with structure a sequential model can learn and with *known* rules for which
events are negative, so that "does the model learn to avoid rejected items" has an
answer. The world it simulates:

* items have Zipf-like popularity (a long tail) and belong to clusters (genres);
* each item has a few "next" items it tends to be followed by (sequential dependence);
* each user's taste is a pair of clusters that drifts: part-way through their history
  one of the two is replaced by another cluster;
* every event picks its item from the user's current taste, from global popularity
  (exploration) or from the previous item's "next" items; it is *negative* (skip,
  dislike) mostly when the item lies outside the current taste, positive (click, cart,
  purchase) otherwise.

Generation is vectorised over blocks of whole users (about a million events each), so
memory is bounded by one block and throughput is several million events per second.
The block layout depends only on the parameters, never on how the output is chunked
into files, so the same seed gives the same events however they are written.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa

EVENTS: tuple[str, ...] = ("click", "cart", "purchase", "skip", "dislike")
POSITIVE_EVENTS = EVENTS[:3]
NEGATIVE_EVENTS = EVENTS[3:]
EVENT_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.int64(), nullable=False),
        pa.field("item_id", pa.int64(), nullable=False),
        pa.field("timestamp", pa.int64(), nullable=False),
        pa.field("event", pa.string(), nullable=False),
    ]
)
BLOCK_EVENTS = 1 << 20
START_TIME = 1_600_000_000  # 2020-09-13, seconds
_GLOBAL_STREAM = 0x5EED


@dataclass(frozen=True)
class SyntheticParams:
    """Everything that determines the generated log; equal params give equal logs."""

    users: int
    items: int
    events: int
    seed: int = 0
    clusters: int | None = None  # None: about sqrt(items)/2, between 2 and 64
    zipf_exponent: float = 1.0
    next_items: int = 3
    explore: float = 0.25  # share of events drawn from global popularity
    follow: float = 0.35  # share of events that follow the previous item's "next" items
    drift_start: tuple[float, float] = (0.3, 0.8)  # taste change, as a share of history
    negative_in_taste: float = 0.08
    negative_out_of_taste: float = 0.75
    positive_mix: tuple[float, float, float] = (0.75, 0.17, 0.08)  # click, cart, purchase
    negative_mix: tuple[float, float] = (0.7, 0.3)  # skip, dislike
    mean_gap_s: float = 900.0
    session_break: float = 0.05  # share of gaps that are a multi-day break
    start_span_days: int = 180

    def __post_init__(self) -> None:
        if self.users < 1 or self.items < 2 or self.events < 1:
            raise ValueError(
                f"need users >= 1, items >= 2, events >= 1 (got {self.users}, "
                f"{self.items}, {self.events})"
            )
        if not 2 <= self.num_clusters <= self.items:
            raise ValueError(f"clusters must lie in [2, items]; got {self.num_clusters}")

    @property
    def num_clusters(self) -> int:
        return self.clusters or max(2, min(64, round(math.sqrt(self.items) / 2)))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "clusters": self.num_clusters}


@dataclass(frozen=True)
class World:
    """The fixed part of the simulation: items, clusters, popularity, next items."""

    cluster: np.ndarray  # (items,) cluster of item index i (item id i + 1)
    popularity: np.ndarray  # (items,) sampling weight, sums to 1
    next_items: np.ndarray  # (items, next_items) item indices that tend to follow i
    lengths: np.ndarray  # (users,) events per user
    order: np.ndarray  # item indices sorted by cluster
    cum: np.ndarray  # cumulative popularity along ``order``
    cluster_lo: np.ndarray  # (clusters,) cumulative mass before each cluster
    cluster_mass: np.ndarray  # (clusters,)
    cluster_last: np.ndarray  # (clusters,) last position of each cluster in ``order``

    def sample_global(self, u: np.ndarray) -> np.ndarray:
        """Items by global popularity, one per uniform number in ``u``."""
        position = np.searchsorted(self.cum, u * self.cum[-1], side="right")
        return self.order[np.minimum(position, len(self.order) - 1)]

    def sample_in(self, clusters: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Items by popularity within the given clusters."""
        x = self.cluster_lo[clusters] + u * self.cluster_mass[clusters]
        position = np.searchsorted(self.cum, x, side="right")
        return self.order[np.minimum(position, self.cluster_last[clusters])]


def _user_lengths(params: SyntheticParams, rng: np.random.Generator) -> np.ndarray:
    """Events per user: at least three where possible, a heavy (log-normal) tail."""
    floor = min(3, params.events // params.users)
    extra = params.events - floor * params.users
    weights = rng.lognormal(0.0, 1.0, params.users)
    raw = weights / weights.sum() * extra
    lengths = np.floor(raw).astype(np.int64)
    short = extra - int(lengths.sum())
    if short:
        lengths[np.argpartition(lengths - raw, short - 1)[:short]] += 1
    return lengths + floor


def build_world(params: SyntheticParams) -> World:
    rng = np.random.default_rng([params.seed, _GLOBAL_STREAM])
    items, clusters = params.items, params.num_clusters
    cluster = rng.permutation(items) % clusters
    ranks = rng.permutation(items) + 1.0
    popularity = ranks**-params.zipf_exponent
    popularity /= popularity.sum()
    order = np.argsort(cluster, kind="stable")
    cum = np.cumsum(popularity[order])
    sizes = np.bincount(cluster, minlength=clusters)
    cluster_last = np.cumsum(sizes) - 1
    cluster_hi = cum[cluster_last]
    cluster_mass = np.bincount(cluster, weights=popularity, minlength=clusters)
    partial = World(
        cluster=cluster,
        popularity=popularity,
        next_items=np.empty((items, 0), dtype=np.int64),
        lengths=_user_lengths(params, rng),
        order=order,
        cum=cum,
        cluster_lo=cluster_hi - cluster_mass,
        cluster_mass=cluster_mass,
        cluster_last=cluster_last,
    )
    # "Next" items: mostly popular items of the same cluster, sometimes anywhere.
    shape = (items, params.next_items)
    same = partial.sample_in(np.repeat(cluster, params.next_items), rng.random(items * shape[1]))
    anywhere = partial.sample_global(rng.random(items * shape[1]))
    local = rng.random(items * shape[1]) < 0.8
    next_items = np.where(local, same, anywhere).reshape(shape)
    repeats = next_items == np.arange(items)[:, None]  # mostly move on to another item
    next_items[repeats] = partial.sample_global(rng.random(int(repeats.sum())))
    return replace(partial, next_items=next_items)


def _blocks(lengths: np.ndarray) -> list[tuple[int, int]]:
    """User ranges of about BLOCK_EVENTS events; one user never spans two blocks."""
    first_event = np.cumsum(lengths) - lengths
    block = first_event // BLOCK_EVENTS
    edges = np.flatnonzero(np.diff(block)) + 1
    bounds = [0, *edges.tolist(), len(lengths)]
    return list(itertools.pairwise(bounds))


def _resolve_follows(
    item: np.ndarray, follows: np.ndarray, choice: np.ndarray, next_items: np.ndarray
) -> None:
    """item[t] = a "next" item of item[t-1] for every t in ``follows``, in place.

    Runs of follows chain (t-1 may itself follow t-2), so they are resolved by depth:
    one vectorised pass per position in the longest run, about a dozen in all.
    """
    unresolved = np.zeros(len(item), dtype=bool)
    unresolved[follows] = True
    pending = follows
    while pending.size:
        ready = pending[~unresolved[pending - 1]]
        item[ready] = next_items[item[ready - 1], choice[ready]]
        unresolved[ready] = False
        pending = pending[unresolved[pending]]


def _mix_codes(u: np.ndarray, mix: tuple[float, ...]) -> np.ndarray:
    """Category codes 0..len(mix)-1 drawn with probabilities ``mix`` from uniforms ``u``."""
    code = np.zeros(len(u), dtype=np.int8)
    for edge in np.cumsum(mix)[:-1]:
        code += u >= edge
    return code


def _block_table(
    params: SyntheticParams, world: World, first_user: int, end_user: int, block: int
) -> pa.Table:
    """Events of users [first_user, end_user)."""
    rng = np.random.default_rng([params.seed, block])
    lengths = world.lengths[first_user:end_user]
    n_users, n = len(lengths), int(lengths.sum())
    user = np.repeat(np.arange(n_users), lengths)
    starts = np.cumsum(lengths) - lengths
    position = np.arange(n) - starts[user]

    clusters = params.num_clusters
    taste_start = np.stack(
        [rng.integers(0, clusters, n_users), rng.integers(0, clusters, n_users)], axis=1
    )
    taste_end = taste_start.copy()
    replaced = rng.integers(0, 2, n_users)
    taste_end[np.arange(n_users), replaced] = rng.integers(0, clusters, n_users)
    lo, hi = params.drift_start
    switch = np.floor(rng.uniform(lo, hi, n_users) * lengths).astype(np.int64)
    weight_first = rng.uniform(0.5, 0.9, n_users)

    after = position >= switch[user]
    second = rng.random(n, dtype=np.float32) >= weight_first[user]
    current_a = np.where(after, taste_end[user, 0], taste_start[user, 0])
    current_b = np.where(after, taste_end[user, 1], taste_start[user, 1])

    mode = rng.random(n, dtype=np.float32)
    explore = mode < params.explore
    follow = (mode < params.explore + params.follow) & ~explore & (position > 0)
    from_taste = np.flatnonzero(~explore & ~follow)
    from_anywhere = np.flatnonzero(explore)
    item = np.empty(n, dtype=np.int64)
    taste_cluster = np.where(second[from_taste], current_b[from_taste], current_a[from_taste])
    item[from_taste] = world.sample_in(taste_cluster, rng.random(len(from_taste)))
    item[from_anywhere] = world.sample_global(rng.random(len(from_anywhere)))
    _resolve_follows(
        item, np.flatnonzero(follow), rng.integers(0, params.next_items, n), world.next_items
    )

    item_cluster = world.cluster[item]
    in_taste = (item_cluster == current_a) | (item_cluster == current_b)
    p_negative = np.where(in_taste, params.negative_in_taste, params.negative_out_of_taste)
    negative = rng.random(n, dtype=np.float32) < p_negative
    code = _mix_codes(rng.random(n, dtype=np.float32), params.positive_mix)
    negative_code = len(POSITIVE_EVENTS) + _mix_codes(
        rng.random(n, dtype=np.float32), params.negative_mix
    )
    code[negative] = negative_code[negative]

    gaps = np.ceil(rng.exponential(params.mean_gap_s, n)) + 1
    breaks = rng.random(n) < params.session_break
    gaps[breaks] += np.ceil(rng.exponential(2 * 86_400.0, int(breaks.sum())))
    gaps[position == 0] = 0
    elapsed = np.cumsum(gaps, dtype=np.int64)
    user_start = START_TIME + rng.integers(0, params.start_span_days * 86_400, n_users)
    timestamp = user_start[user] + elapsed - elapsed[starts[user]]

    events = pa.DictionaryArray.from_arrays(pa.array(code), pa.array(EVENTS)).cast(pa.string())
    return pa.Table.from_arrays(
        [
            pa.array(user + first_user + 1, pa.int64()),
            pa.array(item + 1, pa.int64()),
            pa.array(timestamp, pa.int64()),
            events,
        ],
        schema=EVENT_SCHEMA,
    )


def iter_blocks(params: SyntheticParams, world: World | None = None) -> Iterator[pa.Table]:
    """The log as a stream of tables, users in id order, each user's events in time order."""
    world = build_world(params) if world is None else world
    for block, (first_user, end_user) in enumerate(_blocks(world.lengths)):
        if world.lengths[first_user:end_user].sum():
            yield _block_table(params, world, first_user, end_user, block)


def generate_events(users: int, items: int, events: int, seed: int = 0, **options: Any) -> pa.Table:
    """The whole log in memory (tests, the demo); same code path as the file writer."""
    params = SyntheticParams(users=users, items=items, events=events, seed=seed, **options)
    return pa.concat_tables(iter_blocks(params))


def item_clusters(params: SyntheticParams, world: World | None = None) -> pa.Table:
    """Ground-truth item clusters (the "genre" used by responsiveness metrics)."""
    world = build_world(params) if world is None else world
    return pa.table(
        {
            "item_id": pa.array(np.arange(1, params.items + 1), pa.int64()),
            "cluster": pa.array(world.cluster, pa.int32()),
        }
    )
