"""Seeded randomness with low-variance helpers, so planted truths show up even in tiny datasets."""

from __future__ import annotations

import numpy as np

#: Every generation step draws from its own stream: SeedSequence(seed, spawn_key=(index of the step,)).
STEPS = ("org", "sales", "customers", "expansions", "deals", "accounts", "marketing", "finance",
         "service", "activities", "plan", "credits", "journeys", "cross_sell")


def rng_for(seed: int, step: str) -> np.random.Generator:
    """The random generator of one generation step (independent of every other step)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(STEPS.index(step),)))


def systematic_counts(rng: np.random.Generator, intensity: np.ndarray) -> np.ndarray:
    """Integer counts per (row, column) whose running sums along each row track the running sums of
    `intensity` within 1 (systematic sampling): any window of total intensity L gets floor(L) or ceil(L)."""
    cum = np.cumsum(intensity, axis=1)
    offset = rng.random((intensity.shape[0], 1))
    floors = np.floor(cum + offset).astype(np.int64)
    return np.diff(floors, axis=1, prepend=np.floor(offset).astype(np.int64))


def expand_counts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) index of every unit of a count matrix."""
    flat = counts.ravel()
    cells = np.repeat(np.arange(flat.size), flat)
    return cells // counts.shape[1], cells % counts.shape[1]


def rank_in_group(rng: np.random.Generator, groups: np.ndarray,
                  keys: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The rank of each row within its group (by `keys`, random by default), and the size of its group."""
    order = np.lexsort((rng.random(len(groups)) if keys is None else keys, groups))
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    sizes = np.diff(np.r_[starts, len(groups)])
    group_no = np.cumsum(np.r_[False, sorted_groups[1:] != sorted_groups[:-1]])
    rank = np.empty(len(groups), dtype=np.int64)
    rank[order] = np.arange(len(groups)) - starts[group_no]
    size = np.empty(len(groups), dtype=np.int64)
    size[order] = sizes[group_no]
    return rank, size


def exact_share(rng: np.random.Generator, groups: np.ndarray, share: np.ndarray,
                weights: np.ndarray | None = None) -> np.ndarray:
    """A mask selecting round(share[g] * size of g) random rows of every group g (rounded stochastically
    once per group, so the share is exact to one row); rows with more `weights` are picked more often."""
    if len(groups) == 0:
        return np.zeros(0, dtype=bool)
    keys = None if weights is None else rng.exponential(1.0, len(groups)) / weights
    rank, size = rank_in_group(rng, groups, keys)
    jitter = rng.random(int(groups.max()) + 1)[groups]
    return rank < np.floor(share[groups] * size + jitter)


def stratified_uniform(rng: np.random.Generator, groups: np.ndarray) -> np.ndarray:
    """Uniform(0, 1) draws that are evenly spread within each group (one per stratum of width 1/size)."""
    if len(groups) == 0:
        return np.zeros(0)
    rank, size = rank_in_group(rng, groups)
    return (rank + rng.random(len(groups))) / size


def quantile_choice(weights: np.ndarray | tuple[float, ...], u: np.ndarray) -> np.ndarray:
    """The index whose cumulative (unnormalised) weight band contains each uniform `u`."""
    w = np.asarray(weights, dtype=np.float64)
    return np.minimum(np.searchsorted(np.cumsum(w) / w.sum(), u, side="right"), len(w) - 1)


def choice(rng: np.random.Generator, weights: np.ndarray | tuple[float, ...], n: int) -> np.ndarray:
    """`n` indices drawn with the given (unnormalised) weights."""
    return quantile_choice(weights, rng.random(n))


def choice_in_ranges(rng: np.random.Generator, start: np.ndarray, stop: np.ndarray,
                     weights: np.ndarray) -> np.ndarray:
    """Per row, an index in [start, stop) drawn proportionally to `weights` (e.g. a rep within a team)."""
    cum = np.concatenate([[0.0], np.cumsum(weights)])
    lo, hi = cum[start], cum[stop]
    picked = np.searchsorted(cum, lo + rng.random(len(start)) * (hi - lo), side="right") - 1
    return np.clip(picked, start, stop - 1)


def log_logistic(u: np.ndarray, median: float, shape: float) -> np.ndarray:
    """Quantile function of a log-logistic distribution (heavy right tail, closed form)."""
    u = np.clip(u, 0.01, 0.99)
    return median * (u / (1.0 - u)) ** (1.0 / shape)
