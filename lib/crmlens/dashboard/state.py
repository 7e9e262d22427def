"""The dashboards' filter state: what the filter bar sets, the deep links that restore it, and what it means
for the analysis parameters, the frames a panel shows, export file names and header lines.

A `FilterState` holds six filters: ``period`` (a preset or a period text), ``comparison`` (previous |
last_year), ``region`` (a region_id or all), and three slice filters — ``product_line``, ``team`` (a team_id)
and ``segment`` (the customer segment, accounts.size_band) — each a value or None (= all); and the
``language`` everything is shown in (en | zh, `crmlens.i18n.LANGUAGES`): a display setting, not a filter —
it changes no number and no slice.

Period presets are resolved against ``as_of``, the data's "today" (`crmlens.data.data_as_of`: midnight after
the latest recorded event), never against the clock, so a dashboard on the demo shows the demo's 2026 data
whatever day it is. A date means midnight at its start, as everywhere in `crmlens.periods`:

==================  ==========================================================================================
preset              period
==================  ==========================================================================================
this_month          the month / (fiscal) quarter / (fiscal) year containing the last day before ``as_of`` —
this_quarter        the latest day the data covers. Mid-period it is the running, partially elapsed period;
this_year           on the first day of a period (data ending on the last day of the one before) it is the
                    period that has just ended.
last_quarter        the latest complete (fiscal) quarter: the last one that ended by ``as_of``.
last_12_months      the 12 whole calendar months ending with the latest complete month, as a range of days.
==================  ==========================================================================================

Examples. ``as_of`` 2026-10-01 (the demo: data up to 2026-09-30): this_month 2026-09, this_quarter 2026-Q3,
this_year 2026, last_quarter 2026-Q3, last_12_months 2025-10-01..2026-09-30. ``as_of`` 2026-08-15: this_month
2026-08, this_quarter 2026-Q3 (running), this_year 2026, last_quarter 2026-Q2, last_12_months
2025-08-01..2026-07-31.

Deep links. `to_query` writes the filters (and the language) that differ from the defaults as a URL query
string (keys in the order of `QUERY_KEYS`: ``region=East&period=2026-Q3&language=zh``); `from_query` reads
one (Voila hands the page's query string to the kernel as ``os.environ["QUERY_STRING"]``), matching values to
the source's spelling ignoring case. A bad link raises
`crmlens.errors.ParameterError` naming the URL parameter, the bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode

import pandas as pd

from crmlens import data, i18n
from crmlens.errors import ParameterError
from crmlens.i18n import N_, _
from crmlens.params import Params, match_region
from crmlens.periods import (
    PERIOD_FORMS,
    Comparison,
    Period,
    comparison_period,
    latest_complete_period,
    normalise_comparison,
    parse_period,
    period_containing,
    shift_period,
)
from crmlens.schema import SCHEMA, SIZE_BANDS

if TYPE_CHECKING:
    from ibis import BaseBackend

#: A point in time `resolve_period` accepts as ``as_of``: a date (midnight at its start), a timestamp or ISO text.
DateLike = date | datetime | pd.Timestamp | str

#: The period presets, with how headers name them (msgids: shown with `_`).
PRESETS: dict[str, str] = {
    "this_month": N_("this month"),
    "this_quarter": N_("this quarter"),
    "this_year": N_("this year"),
    "last_quarter": N_("last quarter"),
    "last_12_months": N_("last 12 months"),
}
#: The period a dashboard opens on.
DEFAULT_PERIOD = "this_quarter"
#: The filters applied to frames (not analysis parameters), with how headers name them (msgids).
SLICE_FILTERS: dict[str, str] = {"product_line": N_("product line"), "team": N_("team"),
                                 "segment": N_("customer segment"), "rep": N_("sales rep")}
#: How the comparisons are named in headers (msgids).
COMPARISONS: dict[str, str] = {"previous": N_("previous period"), "last_year": N_("same period last year")}
#: URL parameters, in the order deep links write them.
QUERY_KEYS: tuple[str, ...] = ("region", "period", "comparison", "product_line", "team", "segment", "rep",
                                "language")
#: Query keys the server itself reads (Jupyter's token; voila-template, voila-theme...), ignored by `from_query`.
SERVER_QUERY_KEYS: tuple[str, ...] = ("token",)
SERVER_QUERY_PREFIX = "voila"
#: At most this many fields in a query string.
MAX_QUERY_FIELDS = 50

#: Which column, in which table, holds the choices of each filter (the keys of `options_for`).
OPTION_COLUMNS: dict[str, tuple[str, str]] = {
    "regions": ("regions", "region_id"),
    "product_lines": ("products", "product_line"),
    "teams": ("teams", "team_id"),
    "segments": ("accounts", "size_band"),
    "reps": ("reps", "rep_id"),
}

#: How each slice filter reaches a table's rows: (column of the table, lookup table, its key, its value column).
#: The first route whose column the table has (and whose lookup table is given) is used; a lookup of None
#: means the column holds the value itself.
FILTER_ROUTES: dict[str, tuple[tuple[str, str | None, str, str], ...]] = {
    "product_line": (
        ("product_line", None, "", ""),
        ("product_id", "products", "product_id", "product_line"),
    ),
    "team": (
        ("team_id", None, "", ""),
        ("owner_rep_id", "reps", "rep_id", "team_id"),
        ("rep_id", "reps", "rep_id", "team_id"),
    ),
    "segment": (
        ("size_band", None, "", ""),
        ("account_id", "accounts", "account_id", "size_band"),
    ),
    "rep": (
        ("owner_rep_id", None, "", ""),
        ("rep_id", None, "", ""),
    ),
}

_FILE_PREFIX = {"product_line": "line", "team": "team", "segment": "segment", "rep": "rep"}
_PRESET_LIST = ", ".join(PRESETS)


# -- the state ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilterState:
    """What the dashboard filter bar sets; values are normalised on creation (bad ones raise ParameterError).

    `period` is a preset (`PRESETS`, any case, ``-`` or space for ``_``) or a period text (stored normalised,
    e.g. ``2026-q3`` → ``2026-Q3``); `comparison` accepts the aliases of `crmlens.periods.normalise_comparison`;
    `region` is a region_id or ``all``; `product_line`, `team` (a team_id), `segment` (an accounts.size_band)
    and `rep` (a rep_id: the sales rep view's "my" rep) are a value or None — an empty text or ``all`` (any
    case) means None. `language` is a code of `crmlens.i18n.LANGUAGES` (aliases such as ``zh-CN`` or ``中文``
    accepted, `crmlens.i18n.check_language`).
    Values are not checked against a source here: `from_query` does that, and `options_for` lists the allowed
    ones.
    """

    period: str = DEFAULT_PERIOD
    comparison: Comparison = "previous"
    region: str = "all"
    product_line: str | None = None
    team: str | None = None
    segment: str | None = None
    rep: str | None = None
    language: str = i18n.DEFAULT_LANGUAGE

    def __post_init__(self) -> None:
        object.__setattr__(self, "period", normalise_period(self.period))
        object.__setattr__(self, "comparison", normalise_comparison(self.comparison))
        object.__setattr__(self, "region", _normalise_region(self.region))
        for name in SLICE_FILTERS:
            object.__setattr__(self, name, _normalise_filter(getattr(self, name), name))
        object.__setattr__(self, "language", i18n.check_language(self.language or i18n.DEFAULT_LANGUAGE))

    @property
    def is_preset(self) -> bool:
        """True when `period` is a preset (its period depends on the as-of date)."""
        return self.period in PRESETS

    @property
    def slice_filters(self) -> dict[str, str]:
        """The slice filters that are set (product_line, team, segment, rep → value), for `apply_filters`."""
        return {name: value for name in SLICE_FILTERS if (value := getattr(self, name)) is not None}


def normalise_period(value: object, *, param: str = "period") -> str:
    """`value` as a preset name or a normalised period label; otherwise a ParameterError naming `param` and
    listing the presets and period forms."""
    if isinstance(value, Period):
        return value.label
    if isinstance(value, str):
        key = re.sub(r"[\s-]+", "_", value.strip().lower())
        if key in PRESETS:
            return key
    try:
        return parse_period(value, param=param).label  # type: ignore[arg-type]
    except ParameterError as exc:
        text = str(exc)
        reason = text.split(PERIOD_FORMS, 1)[1] if PERIOD_FORMS in text else ""
        raise ParameterError(f"{param}: {value!r} is not a period; use a preset ({_PRESET_LIST}) or a period "
                             f"({PERIOD_FORMS}){reason}") from None


def _normalise_region(value: object) -> str:
    if not isinstance(value, str):
        raise ParameterError(f"region: {value!r} is not a region; use a region_id of the source or all")
    text = value.strip()
    return "all" if text.lower() in ("", "all") else text


def _normalise_filter(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ParameterError(f"{name}: {value!r} is not a {SLICE_FILTERS[name]}; use one of the source's "
                             f"{SLICE_FILTERS[name]}s as text, or all")
    text = value.strip()
    return None if text.lower() in ("", "all") else text


# -- periods -----------------------------------------------------------------------------------------------


def _as_timestamp(value: object) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        ts = pd.NaT
    if pd.isna(ts):
        raise ParameterError(f"as_of: {value!r} is not a date; use an ISO date such as 2026-10-01 "
                             "(the data's as-of date, crmlens.data.data_as_of)")
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def resolve_period(state: FilterState | str, as_of: DateLike | None = None, fiscal_year_start: int = 1) -> Period:
    """The concrete period of `state` (or of a period text): a period text as written, a preset relative to
    `as_of` — the data's as-of date, see the module docstring for the rule.

    this_month/this_quarter/this_year: the period containing the last day before `as_of`; last_quarter: the
    latest quarter complete by `as_of`; last_12_months: the 12 whole months ending with the latest complete
    month. Years and quarters follow `fiscal_year_start`. A preset without `as_of` raises a ParameterError.
    """
    text = state.period if isinstance(state, FilterState) else normalise_period(state)
    if text not in PRESETS:
        return parse_period(text, fiscal_year_start)
    if as_of is None:
        raise ParameterError(f"as_of: needed to resolve the period preset {text}; give the data's as-of date "
                             "(crmlens.data.data_as_of)")
    now = _as_timestamp(as_of)
    if text == "last_quarter":
        return latest_complete_period(now, "quarter", fiscal_year_start)
    if text == "last_12_months":
        last = latest_complete_period(now, "month", fiscal_year_start)
        first = shift_period(last, -11)
        return parse_period(f"{first.start:%Y-%m-%d}..{last.last_day:%Y-%m-%d}", fiscal_year_start)
    # the last instant before `as_of`: for a date, the day before it (the latest day the data covers)
    return period_containing(now - pd.Timedelta(1, "ns"), text.removeprefix("this_"), fiscal_year_start)


def resolve_comparison(state: FilterState, as_of: DateLike | None = None, fiscal_year_start: int = 1) -> Period:
    """The period `state`'s period is compared with (previous or same period last year)."""
    return comparison_period(resolve_period(state, as_of, fiscal_year_start), state.comparison)


# -- deep links --------------------------------------------------------------------------------------------


def _query_value(value: str | None) -> str:
    return "all" if value is None else value


def to_query(state: FilterState, *, defaults: FilterState | None = None) -> str:
    """The deep-link query string of `state` (without ``?``): only values that differ from `defaults`
    (default: ``FilterState()``), keys in `QUERY_KEYS` order, URL-encoded (``region=East&period=2026-Q3``).
    ``from_query(to_query(s)) == s`` given the same defaults and known values."""
    defaults = defaults if defaults is not None else FilterState()
    pairs = [(key, _query_value(getattr(state, key))) for key in QUERY_KEYS
             if getattr(state, key) != getattr(defaults, key)]
    return urlencode(pairs, quote_via=quote, safe="")


def match_value(value: str, known: Iterable[str], *, param: str, what: str) -> str:
    """`value` as the source spells it among `known` (exact, else ignoring case); otherwise a ParameterError
    naming `param`, the value and listing the known values (`what` names one, e.g. "product line")."""
    choices = [str(k) for k in known]
    text = value.strip()
    if text in choices:
        return text
    folded = [c for c in choices if c.casefold() == text.casefold()]
    if len(folded) == 1:
        return folded[0]
    close = difflib.get_close_matches(text, choices, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    listed = f"{', '.join(sorted(choices))} or all" if choices else f"all (the source has no {what}s)"
    raise ParameterError(f"{param}: {value!r} is not a {what} of this source; use {listed}{hint}")


def from_query(
    query: str,
    *,
    known_regions: Iterable[str],
    known_product_lines: Iterable[str] | None = None,
    known_teams: Iterable[str] | None = None,
    known_segments: Iterable[str] | None = None,
    known_reps: Iterable[str] | None = None,
    defaults: FilterState | None = None,
) -> FilterState:
    """The filter state of a deep link's query string (``os.environ["QUERY_STRING"]`` in a Voila kernel; a
    leading ``?`` is allowed).

    Keys not given (or given empty) keep the value of `defaults` (default: ``FilterState()``). Keys are matched
    ignoring case (``-`` for ``_`` too); region, product line, team and segment are matched ignoring case to
    the source's spelling among the `known_*` values (`options_for` lists them; a `known_*` of None accepts
    any product line/team, and segments default to the schema's size bands). The server's own keys (token,
    voila-*) are ignored. An unknown key, a key given twice with different values or a bad value raises a
    ParameterError naming the URL parameter, the value and what is allowed.
    """
    defaults = defaults if defaults is not None else FilterState()
    text = (query or "").strip().removeprefix("?")
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS)
    except ValueError:
        raise ParameterError(f"URL query: more than {MAX_QUERY_FIELDS} parameters; use only "
                             f"{', '.join(QUERY_KEYS)}") from None
    given: dict[str, str] = {}
    for raw_key, value in pairs:
        key = raw_key.strip().lower().replace("-", "_")
        if key in SERVER_QUERY_KEYS or key.startswith(SERVER_QUERY_PREFIX):
            continue
        if key not in QUERY_KEYS:
            close = difflib.get_close_matches(key, QUERY_KEYS, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ParameterError(f"{raw_key}: unknown URL parameter (value {value!r}); the known parameters "
                                 f"are: {', '.join(QUERY_KEYS)}{hint}")
        value = value.strip()
        if key in given and given[key].casefold() != value.casefold():
            raise ParameterError(f"{key}: given twice in the URL, as {given[key]!r} and as {value!r}; give it once")
        given[key] = value

    known: dict[str, tuple[list[str] | None, str]] = {
        "product_line": (None if known_product_lines is None else list(known_product_lines), "product line"),
        "team": (None if known_teams is None else list(known_teams), "team"),
        "segment": (list(SIZE_BANDS if known_segments is None else known_segments), "customer segment"),
        "rep": (None if known_reps is None else list(known_reps), "sales rep"),
    }
    values: dict[str, Any] = {f.name: getattr(defaults, f.name) for f in dataclasses.fields(FilterState)}
    for key, value in given.items():
        if not value:
            continue
        if key == "language":
            values[key] = i18n.check_language(value)
        elif key == "region":
            values[key] = match_region(value, known_regions, param="region")
        elif key == "period":
            values[key] = normalise_period(value, param="period")
        elif key == "comparison":
            values[key] = normalise_comparison(value, param="comparison")
        elif value.lower() == "all":
            values[key] = None
        else:
            choices, what = known[key]
            values[key] = value if choices is None else match_value(value, choices, param=key, what=what)
    return FilterState(**values)


def language_of_query(query: str | None, default: str = i18n.DEFAULT_LANGUAGE) -> str:
    """The language a deep link asks for (its ``language`` key), `default` when it names none or a bad one —
    so that a link that cannot be opened as given still says why in the reader's language."""
    try:
        pairs = parse_qsl((query or "").strip().removeprefix("?"), keep_blank_values=True,
                          max_num_fields=MAX_QUERY_FIELDS)
    except ValueError:
        return default
    for key, value in pairs:
        if key.strip().lower() == "language" and value.strip():
            try:
                return i18n.check_language(value)
            except ParameterError:
                return default
    return default


# -- analysis parameters and frame filters ------------------------------------------------------------------


def to_params(state: FilterState, as_of: DateLike | None, base: Params | None = None) -> Params:
    """The analysis parameters of `state`'s slice: `base` (default: ``Params()``) with the resolved period,
    the comparison, the region and ``as_of`` (a date, as `crmlens.data.data_as_of` gives) set.

    Product line, team and segment are not parameters: apply them to frames with `apply_filters`. Nor is the
    language: it changes what is shown, not what is computed (`crmlens.i18n.language` around the rendering).
    """
    base = base if base is not None else Params()
    period = resolve_period(state, as_of, base.fiscal_year_start)
    values = base.model_dump()
    values.update(period=period.label, comparison=state.comparison, region=state.region)
    if as_of is not None:
        values["as_of"] = _as_timestamp(as_of)
    return Params.model_validate(values)


class FilteredFrames(dict[str, pd.DataFrame]):
    """The frames `apply_filters` returns, by table name, and `not_applied`: for each table, the slice filters
    (product_line, team, segment) that could not be applied to it, so that a tile can say so."""

    def __init__(self, frames: Mapping[str, pd.DataFrame], not_applied: Mapping[str, tuple[str, ...]]) -> None:
        super().__init__(frames)
        self.not_applied: dict[str, tuple[str, ...]] = dict(not_applied)

    def note(self, table: str) -> str | None:
        """A note for a tile built from `table`, e.g. "not filtered by team or customer segment", or None."""
        return not_filtered_note(self.not_applied.get(table, ()))


def or_list(items: Iterable[str]) -> str:
    """Texts joined as a reader's "a, b or c" in the language in use (Babel's list patterns: 团队或客户细分)."""
    from babel.lists import format_list

    shown = list(items)
    if len(shown) < 2:
        return "".join(shown)
    if i18n.current() == i18n.DEFAULT_LANGUAGE:  # "a, b or c" (the house style, without the serial comma)
        return f"{', '.join(shown[:-1])} or {shown[-1]}"
    return format_list(shown, style="or", locale=i18n.LOCALES[i18n.current()])


def join_clauses(texts: Iterable[str | None]) -> str:
    """Clauses (a tile's notes, alerts) joined "a; b" in the language in use (Chinese: "a；b"); empty ones
    left out."""
    shown = [t for t in texts if t]
    if not shown:
        return ""
    out = shown[0]
    for text in shown[1:]:
        out = _("{first}; {second}", first=out, second=text)
    return out


def not_filtered_note(filters: Iterable[str]) -> str | None:
    """"not filtered by team or customer segment" for slice filters (names of `SLICE_FILTERS`), in the language
    in use; None for none."""
    names = [_(SLICE_FILTERS[f]) for f in filters]
    if not names:
        return None
    return _("not filtered by {filters}", filters=or_list(names))


def _filter_mask(frame: pd.DataFrame, name: str, value: str,
                 lookups: Mapping[str, pd.DataFrame | None]) -> pd.Series | None:
    for column, lookup_name, key, attr in FILTER_ROUTES[name]:
        if column not in frame.columns:
            continue
        if lookup_name is None:
            return frame[column].isin([value])
        lookup = lookups.get(lookup_name)
        if lookup is None or key not in lookup.columns or attr not in lookup.columns:
            continue
        keys = lookup.loc[lookup[attr].isin([value]), key].dropna().unique()
        return frame[column].isin(keys)
    return None


def apply_filters(
    frames: Mapping[str, pd.DataFrame],
    state: FilterState,
    products: pd.DataFrame | None = None,
    accounts: pd.DataFrame | None = None,
    reps: pd.DataFrame | None = None,
    *,
    tables: Iterable[str] | None = None,
) -> FilteredFrames:
    """Keep only the rows of `frames` that match `state`'s product line, team and segment.

    A row matches a product line through ``product_id`` → products.product_line, a team through
    ``owner_rep_id`` (else ``rep_id``) → reps.team_id, a segment through ``account_id`` → accounts.size_band
    (or directly through a product_line / team_id / size_band column), a rep through its ``owner_rep_id``
    (else ``rep_id``). Rows whose key is empty or unknown do
    not match a set filter. `products`, `accounts` and `reps` default to the frames of those names.

    The filtered tables are `tables` (default: every frame but the canonical dimension tables, which are
    returned whole). A filtered table lacking the key column of a set filter (or whose lookup table is not
    given) is not filtered by it, and the result's ``not_applied`` says so. Inputs are never modified;
    unfiltered frames are returned as they are.
    """
    lookups = {
        "products": products if products is not None else frames.get("products"),
        "accounts": accounts if accounts is not None else frames.get("accounts"),
        "reps": reps if reps is not None else frames.get("reps"),
    }
    chosen = set(tables) if tables is not None else None
    active = state.slice_filters
    out: dict[str, pd.DataFrame] = {}
    not_applied: dict[str, tuple[str, ...]] = {}
    for name, frame in frames.items():
        filtered = name in chosen if chosen is not None else (name not in SCHEMA or SCHEMA[name].kind != "dimension")
        if not active or not filtered:
            out[name] = frame
            continue
        mask: pd.Series | None = None
        missed: list[str] = []
        for filter_name, value in active.items():
            keep = _filter_mask(frame, filter_name, value, lookups)
            if keep is None:
                missed.append(filter_name)
            else:
                mask = keep if mask is None else mask & keep
        out[name] = frame if mask is None else frame.loc[mask]
        if missed:
            not_applied[name] = tuple(missed)
    return FilteredFrames(out, not_applied)


# -- names and headers -------------------------------------------------------------------------------------


def _safe(text: str, limit: int = 40) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    safe = re.sub(r"[^A-Za-z0-9-]+", "-", ascii_text).strip("-")
    safe = re.sub(r"-{2,}", "-", safe)[:limit].strip("-")
    return safe or "x" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


def _period_text(state: FilterState, as_of: DateLike | None, fiscal_year_start: int) -> tuple[str, str | None]:
    """The period's label (resolved when possible) and its comparison period's label (None if unresolved)."""
    if state.is_preset and as_of is None:
        return state.period, None
    period = resolve_period(state, as_of, fiscal_year_start)
    return period.label, comparison_period(period, state.comparison).label


def file_stem(state: FilterState, as_of: DateLike | None = None, fiscal_year_start: int = 1) -> str:
    """The filter state as a file name stem for exports, e.g. ``crmlens_East_2026-Q3_vs-previous_line-Software``.

    Parts are joined by ``_``: region (``all-regions``), period (a preset resolved when `as_of` is given; a
    range written ``2026-07-01-to-2026-09-30``), comparison, then only the slice filters that are set
    (``line-``, ``team-``, ``segment-``). Only ASCII letters, digits, ``-`` and ``_`` appear (accents are
    dropped; a value with no such character becomes a short hash).
    """
    period, _ = _period_text(state, as_of, fiscal_year_start)
    parts = [
        "crmlens",
        "all-regions" if state.region == "all" else _safe(state.region),
        _safe(period.replace("..", "-to-").replace("_", "-")),
        f"vs-{state.comparison.replace('_', '-')}",
    ]
    parts += [f"{_FILE_PREFIX[name]}-{_safe(value)}" for name, value in state.slice_filters.items()]
    return "_".join(parts)


def describe(state: FilterState, as_of: DateLike | None = None, fiscal_year_start: int = 1) -> str:
    """A header line for the filter state in the language in use, e.g. ``East · 2026-Q3 vs 2026-Q2 · product
    line Software`` (``East · 2026-Q3 对比 2026-Q2 · 产品线 Software``).

    With `as_of` a preset is resolved (``2026-Q3 (this quarter) vs 2026-Q2``); without it the preset is named
    (``this quarter vs previous period``). Ranges are written ``2025-10-01 – 2026-09-30``. Region ids and
    filter values are data: they stay as the source spells them.
    """
    region = _("All regions") if state.region == "all" else state.region
    period, compared = _period_text(state, as_of, fiscal_year_start)
    if compared is None:
        when = _("{period} vs {comparison}", period=_(PRESETS[period]), comparison=_(COMPARISONS[state.comparison]))
    else:
        label = period.replace("..", " – ")
        if state.is_preset:
            label = _("{period} ({preset})", period=label, preset=_(PRESETS[state.period]))
        when = _("{period} vs {comparison}", period=label, comparison=compared.replace("..", " – "))
    parts = [region, when] + [_("{filter} {value}", filter=_(SLICE_FILTERS[name]), value=value)
                              for name, value in state.slice_filters.items()]
    return " · ".join(parts)


# -- choices -----------------------------------------------------------------------------------------------


def _sort_choices(key: str, values: Iterable[str]) -> list[str]:
    ordered = sorted(set(values), key=lambda v: (v.casefold(), v))
    if key == "segments":  # size bands from small to enterprise, any other spelling after them
        rank = {band: i for i, band in enumerate(SIZE_BANDS)}
        ordered.sort(key=lambda v: rank.get(v, len(rank)))
    return ordered


def options_for(con: BaseBackend) -> dict[str, list[str]]:
    """The choices the filter bar offers for a source: ``regions`` (region_id), ``product_lines``, ``teams``
    (team_id), ``segments`` (accounts.size_band) and ``reps`` (rep_id), as the source spells them.

    Distinct non-empty values are read in the engine (`crmlens.data.table_expr`); lists are sorted ignoring
    case, segments by size (small, mid, large, enterprise). A list is empty when the source lacks the table
    or column. The keys match `from_query`'s: ``from_query(q, **{f"known_{k}": v for k, v in
    options_for(con).items()})``.
    """
    present = data.available_tables(con)
    out: dict[str, list[str]] = {}
    for key, (table, column) in OPTION_COLUMNS.items():
        if table not in present:
            out[key] = []
            continue
        t = data.table_expr(con, table)
        if column not in t.columns:
            out[key] = []
            continue
        col = t[column]
        values = t.filter(col.notnull()).select(value=col.cast("string")).distinct().to_pandas()["value"]
        out[key] = _sort_choices(key, (str(v) for v in values if isinstance(v, str) and v.strip()))
    return out


__all__ = [
    "DEFAULT_PERIOD",
    "FILTER_ROUTES",
    "OPTION_COLUMNS",
    "PRESETS",
    "QUERY_KEYS",
    "SLICE_FILTERS",
    "FilterState",
    "FilteredFrames",
    "apply_filters",
    "describe",
    "file_stem",
    "from_query",
    "join_clauses",
    "language_of_query",
    "match_value",
    "normalise_period",
    "options_for",
    "or_list",
    "resolve_comparison",
    "resolve_period",
    "to_params",
    "to_query",
]
