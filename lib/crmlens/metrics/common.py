"""Small helpers shared by the metric modules (time buckets, safe ratios, won/closed selections)."""

from __future__ import annotations

import functools
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from crmlens import i18n
from crmlens.errors import ParameterError
from crmlens.kpis import KpiContext
from crmlens.schema import Vocabulary

T = TypeVar("T")

#: pandas period frequencies accepted by `bucket` ("day" … "year").
FREQS: dict[str, str] = {"day": "D", "week": "W-SUN", "month": "M", "quarter": "Q", "year": "Y"}


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None when the denominator is 0 or missing (never a fake 0)."""
    if denominator is None or pd.isna(denominator) or denominator == 0:
        return None
    return float(numerator) / float(denominator)


def ratio_series(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    """Element-wise ratio with NaN where the denominator is 0."""
    den = denominator.astype("float64")
    return numerator.astype("float64") / den.where(den != 0, np.nan)


def bucket(times: pd.Series, freq: str) -> pd.Series:
    """Label each timestamp with its period ('2026-09', '2026-Q3', '2026-W37', '2026', '2026-09-14')."""
    if freq not in FREQS:
        raise ParameterError(f"freq: {freq!r} is not a time grain; use one of {', '.join(FREQS)}")
    if freq == "week":
        iso = times.dt.isocalendar()
        return (iso["year"].astype("string") + "-W" + iso["week"].astype("string").str.zfill(2)).where(times.notna())
    # each distinct period is formatted once (formatting a million periods one by one costs ~0.5 s)
    codes, uniques = pd.factorize(times.dt.to_period(FREQS[freq]), use_na_sentinel=True)
    labels = pd.Series(uniques).astype("string")
    if freq == "quarter":
        labels = labels.str.replace("Q", "-Q", regex=False)
    out = labels.take(np.maximum(codes, 0)).where(codes >= 0) if len(labels) else pd.Series(
        pd.NA, index=range(len(times)), dtype="string")
    out.index = times.index
    return out.astype("string")


def reference_time(ctx: KpiContext) -> pd.Timestamp:
    """The "now" of a slice's state metrics (follow-up, active customers): the as-of time, but not later than
    the period end (the slice holds nothing after it)."""
    end = pd.Timestamp(ctx.period_end)
    return min(pd.Timestamp(ctx.as_of), end) if ctx.as_of is not None else end


def in_period(times: pd.Series, ctx: KpiContext) -> pd.Series:
    """True where a timestamp falls in the context's period [start, end)."""
    return ((times >= ctx.period_start) & (times < ctx.period_end)).fillna(False).astype(bool)


def won_mask(opportunities: pd.DataFrame) -> pd.Series:
    """True for won opportunities."""
    return opportunities["is_won"].fillna(False).astype(bool)


def closed_mask(opportunities: pd.DataFrame, vocabulary: Vocabulary | None = None) -> pd.Series:
    """True for closed (won or lost) opportunities."""
    return opportunities["closed_at"].notna() & opportunities["is_won"].notna()


def check_choice(param: str, value: str, allowed: Iterable[str]) -> str:
    """`value` when it is one of `allowed`, else a ParameterError naming the parameter and the choices."""
    allowed = list(allowed)
    if value not in allowed:
        raise ParameterError(f"{param}: {value!r} is not allowed; use one of {', '.join(map(str, allowed))}")
    return value


def closed_in_period(opportunities: pd.DataFrame, ctx: KpiContext | None) -> pd.DataFrame:
    """Opportunities won or lost in the context's period (all closed ones when `ctx` is None)."""
    closed = opportunities["closed_at"].notna() & opportunities["is_won"].notna()
    if ctx is not None:
        closed = closed & in_period(opportunities["closed_at"], ctx)
    return opportunities[closed.astype(bool)]


def won_in_period(opportunities: pd.DataFrame, ctx: KpiContext) -> pd.DataFrame:
    """The won opportunities closed in the context's period (the period's bookings)."""
    if opportunities.empty:
        return opportunities.iloc[0:0]
    return opportunities.loc[won_mask(opportunities) & in_period(opportunities["closed_at"], ctx)]


def _tiling(start: pd.Timestamp, end: pd.Timestamp, freq: str) -> list[str] | None:
    """Labels of the months/quarters that tile [start, end) exactly, or None."""
    periods = pd.period_range(start, end - pd.Timedelta(microseconds=1), freq=FREQS[freq])
    if len(periods) == 0 or periods[0].start_time != start or periods[-1].end_time.ceil("D") != end:
        return None
    return bucket(pd.Series(periods.start_time), freq).tolist()


def target_periods(targets: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, label: str = "") -> list[str]:
    """The `targets.period` labels that make up [start, end): the label itself when targets exist for it,
    else the months (then quarters) tiling it exactly when all have targets; [] when there is none.

    The one definition of "the period's target" used by every analysis."""
    available = {str(v) for v in targets["period"].dropna().unique()} if "period" in targets else set()
    if label and label in available:
        return [label]
    for freq in ("month", "quarter"):
        labels = _tiling(pd.Timestamp(start), pd.Timestamp(end), freq)
        if labels and set(labels) <= available:
            return labels
    return []


def has(frames: Mapping[str, pd.DataFrame], *tables: str) -> bool:
    """True when every table is present (for KPIs that return None without data)."""
    return all(t in frames for t in tables)


def isin(values: pd.Series, candidates: Iterable[object]) -> pd.Series:
    """``values.isin(candidates)`` as a plain boolean Series, the same answer, fast for keys.

    pandas 3 builds one Python scalar per candidate in ``Series.isin`` for its pyarrow-backed strings (5.8 s
    measured for a million ids against 670 k): a string Series is matched here with Arrow's ``is_in`` over the
    candidates as one array (0.4 s). As in pandas, a missing value matches when the candidates hold one.
    """
    if not _is_arrow_text(values.dtype):
        return values.isin(candidates).fillna(False).astype(bool)
    import pyarrow.compute as pc

    cand = candidates if isinstance(candidates, pd.Series | pd.Index) else pd.Series(list(candidates), dtype="object")
    if not isinstance(cand.dtype, pd.StringDtype):  # only text (or missing) candidates can equal a text value
        cand = cand[[isinstance(v, str) or v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))
                     for v in cand]].astype(values.dtype)
    left, keys = _arrow_text(values, cand)
    hit = pc.is_in(left, value_set=keys, skip_nulls=False)
    return pd.Series(pc.fill_null(hit, False).to_numpy(zero_copy_only=False), index=values.index, dtype=bool)


def _is_arrow_text(dtype: Any) -> bool:
    return isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"


def _arrow_text(values: pd.Series, keys: Iterable[object]) -> tuple[Any, Any]:
    """`values` (pyarrow-backed text) and `keys` as two Arrow arrays of the same type, for Arrow's hash
    look-ups (``is_in``, ``index_in``)."""
    import pyarrow as pa

    left = pa.array(values.array)
    right = pa.array(pd.array(keys, dtype=values.dtype))
    right = right.combine_chunks() if isinstance(right, pa.ChunkedArray) else right
    return left, right.cast(left.type)


# ------------------------------------------------------------------------------------------ memo

#: How many results `memo_by_inputs` keeps (least recently used dropped first).
MEMO_SIZE = 64
#: How many results `memo_small` keeps: lookups derived from the small dimension tables.
SMALL_MEMO_SIZE = 256
_MEMO: OrderedDict[tuple, tuple[list[weakref.ref], Any]] = OrderedDict()
_SMALL_MEMO: OrderedDict[tuple, tuple[list[weakref.ref], Any]] = OrderedDict()
_MEMO_LOCK = threading.Lock()


class _Unkeyable(Exception):
    pass


def _memo_part(value: Any, refs: list[weakref.ref]) -> Any:
    """A hashable stand-in for an argument: frames by identity (and shape), mappings of frames by their items
    (a slice's `SliceTables` by identity: its frames never change once read), other values as they are."""
    if isinstance(value, pd.DataFrame | pd.Series):
        refs.append(weakref.ref(value))
        return ("frame", id(value), value.shape)
    if getattr(value, "immutable_frames", False):  # crmlens.data.SliceTables
        refs.append(weakref.ref(value))
        return ("tables", id(value))
    if isinstance(value, Mapping):
        if type(value) is not dict:  # a lazy mapping: reading its items to key it would load every table
            raise _Unkeyable
        return ("mapping", tuple((k, _memo_part(v, refs)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return ("seq", tuple(_memo_part(v, refs) for v in value))
    try:
        hash(value)
    except TypeError:
        raise _Unkeyable from None
    return value


def _remember(store: OrderedDict[tuple, tuple[list[weakref.ref], Any]], size: int, key: tuple,
              refs: list[weakref.ref], compute: Callable[[], T]) -> T:
    """`compute()`, kept in `store` under `key` while the objects `refs` point to live (the last `size` kept);
    frames are handed out as copies."""
    with _MEMO_LOCK:
        hit = store.get(key)
        if hit is not None and all(r() is not None for r in hit[0]):
            store.move_to_end(key)
            result = hit[1]
            return result.copy() if isinstance(result, pd.DataFrame | pd.Series) else result
    result = compute()
    with _MEMO_LOCK:
        store[key] = (refs, result)
        while len(store) > size:
            store.popitem(last=False)
    return result.copy() if isinstance(result, pd.DataFrame | pd.Series) else result


def _memoize(fn: Callable[..., T], store: OrderedDict[tuple, tuple[list[weakref.ref], Any]],
             size: Callable[[], int]) -> Callable[..., T]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        refs: list[weakref.ref] = []
        try:
            key = (fn.__module__, fn.__qualname__, _memo_part(args, refs),
                   _memo_part(tuple(sorted(kwargs.items())), refs))
        except _Unkeyable:
            return fn(*args, **kwargs)
        return _remember(store, size(), key, refs, lambda: fn(*args, **kwargs))

    return wrapper


def remember(key: tuple, compute: Callable[[], T]) -> T:
    """`compute()`, remembered under `key` (hashable: texts, numbers) with the results of `memo_by_inputs`: for
    a result whose inputs the caller names itself, e.g. one that is the same for every region of a source
    version and parameters (`crmlens.metrics.forecasting.exceptions`). Frames are returned as copies."""
    return _remember(_MEMO, MEMO_SIZE, key, [], compute)


def memo_by_inputs(fn: Callable[..., T]) -> Callable[..., T]:
    """Remember `fn`'s result for the same inputs — the same frame objects (by identity) and equal other
    arguments — so that a notebook or dashboard asking for the same per-rep components, first wins or
    follow-up states in several sections computes them once (the 1M-opportunity demo called them 18 times in
    notebook 08).

    Frames are recognised by identity: the functions never modify their inputs, and slice frames are read-only
    by convention (change a copy). An entry whose frames were freed is never reused. Frame results are returned
    as copies, so a caller changing a result cannot change what others get.
    """
    return _memoize(fn, _MEMO, lambda: MEMO_SIZE)


def memo_small(fn: Callable[..., T]) -> Callable[..., T]:
    """`memo_by_inputs` for small results derived from dimension tables (a rep → team lookup, the reps of a
    region): kept apart, so the many cheap entries a leaderboard asks for (tens per notebook) never push the
    expensive results out."""
    return _memoize(fn, _SMALL_MEMO, lambda: SMALL_MEMO_SIZE)


def clear_memo() -> None:
    """Forget every result `memo_by_inputs` and `memo_small` remember."""
    with _MEMO_LOCK:
        _MEMO.clear()
        _SMALL_MEMO.clear()


def lookup(keys: pd.Series, table: pd.Series) -> pd.Series:
    """``keys.map(table)`` for a `table` indexed by unique keys (e.g. amount by opportunity id), fast when
    both are text: the positions come from Arrow's hash ``index_in`` (pandas 3 indexes pyarrow-backed text
    through Python objects — seconds for a million ids). A missing key, or one not in `table`, gives a missing
    value, as with ``map``; the result has `keys`' index and `table`'s dtype."""
    if not len(table):  # (``map`` with an empty datetime table fails in pandas 3: it casts it to float)
        return pd.Series(index=keys.index, dtype=table.dtype, name=keys.name)
    index = table.index
    if not (_is_arrow_text(keys.dtype) and isinstance(index.dtype, pd.StringDtype) and len(table) and index.is_unique):
        return keys.map(table)
    import pyarrow.compute as pc

    left, right = _arrow_text(keys, index)
    positions = pc.fill_null(pc.index_in(left, value_set=right, skip_nulls=True), -1)
    found = positions.to_numpy(zero_copy_only=False).astype(np.int64)
    out = table.iloc[np.where(found < 0, 0, found)].reset_index(drop=True)
    out.index = keys.index
    return out.mask(found < 0).rename(keys.name)


def map_keys(keys: pd.Series, lookup: pd.Series | Mapping[Any, Any]) -> pd.Series:
    """``keys.map(lookup)``, computed once per distinct key: a million activity rows carry a few hundred rep
    ids, and mapping text keys row by row costs seconds in pandas 3."""
    codes, uniques = pd.factorize(keys, use_na_sentinel=True)
    mapped = pd.Series(uniques).map(lookup)
    out = mapped.take(np.where(codes < 0, 0, codes)) if len(mapped) else pd.Series([None] * len(keys), dtype=object)
    out = out.reset_index(drop=True)
    out.index = keys.index
    return out.mask(codes < 0) if len(mapped) else out


#: A group or place a source leaves empty, as the analyses name it (translated where shown).
UNKNOWN = i18n.N_("(unknown)")


def fmt(value: Any, unit: str, digits: int | None = None) -> str:
    """A number for a finding's text (`crmlens.i18n.format_number`)."""
    return i18n.format_number(value, unit, digits=digits)


def shown(value: Any) -> str:
    """A place or group as readers see it: "(unknown)" translated, a missing value as "–"."""
    if i18n.is_missing(value):
        return i18n.MISSING_VALUE
    return i18n._(UNKNOWN) if value == UNKNOWN else str(value)


def region_accounts(accounts: pd.DataFrame, ctx: KpiContext) -> pd.DataFrame:
    """The accounts of the context's region (every account for "all", or when accounts carry no region), once
    each."""
    if ctx.region != "all" and "region_id" in accounts.columns:
        accounts = accounts[accounts["region_id"].eq(ctx.region).fillna(False).astype(bool)]
    return accounts.drop_duplicates("account_id")


def extreme_vs_median(rated: pd.DataFrame, column: str, *, lowest: bool, min_gap: float,
                      min_groups: int = 2) -> tuple[pd.DataFrame, float, float] | None:
    """For "the segment that does worst" findings: the rows holding the lowest (or highest) `column`, that value
    and the median of all rows — None when fewer than `min_groups` rows, when every value is equal (equal values
    are not ranked), or when the extreme is less than `min_gap` from the median."""
    values = rated[column]
    if len(rated) < min_groups or values.nunique() == 1:
        return None
    extreme = float(values.min() if lowest else values.max())
    median = float(values.median())
    if abs(median - extreme) < min_gap:
        return None
    return rated[values == extreme], extreme, median


def segment_fields(s: Any, accounts: pd.DataFrame, max_values: int = 12) -> list[str]:
    """The source's own fields of the accounts (custom fields, `crmlens.data.custom_fields`) that make segments:
    at least two and at most `max_values` distinct values. None of them for bare frames (no slice)."""
    if s is None or not hasattr(s, "store"):
        return []
    from crmlens.data import custom_fields

    return [name for name in custom_fields(s, "accounts")
            if name in accounts.columns and 1 < accounts[name].nunique() <= max_values]
