"""Tables for readers: human column labels, units formatted from one place, no index, "–" for missing values,
numbers right-aligned, and a layout that fits the printed page.

A notebook shows a result with ``nb.table(frame)`` (or an analysis returns a `Table`): the reader sees the
formatted table; the analyst still has the frame (``table.frame``, or the variable the cell assigned). Each
column's label and unit come from `COLUMNS` — registered once, by the module that makes the column
(`register_columns`) — or, for a column nobody registered, from its name (``*_rate`` is a rate, ``*_days``
days, ``n_*`` a count, ``*amount*`` money...). Labels are English msgids translated with `crmlens.i18n`.

The executed notebook also carries the full table as data (`TABLE_MIMETYPE`), which the run's Excel workbook
holds in full while the HTML/PDF report shows the first `MAX_ROWS` rows.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from crmlens import i18n
from crmlens.i18n import N_, _

#: MIME type of a shown table's full data in an executed notebook (read back by the run's workbook).
TABLE_MIMETYPE = "application/vnd.crmlens.table+json"
#: Rows a report shows of a long table (the workbook has them all).
MAX_ROWS = 25
#: Columns per printed block: a wider table is shown as several blocks, each repeating the label columns.
MAX_COLUMNS = 8
#: Rows kept in the notebook's data copy of a table (the workbook's limit per table).
MAX_DATA_ROWS = 5000

UNITS = ("text", "count", "amount", "rate", "share", "days", "ratio", "score", "number", "date")
NUMERIC_UNITS = ("count", "amount", "rate", "share", "days", "ratio", "score", "number")


@dataclass(frozen=True)
class Column:
    """How a column is shown: its label (an English msgid) and its unit (`UNITS`)."""

    label: str
    unit: str = "text"


COLUMNS: dict[str, Column] = {}


def register_columns(spec: Mapping[str, tuple[str, str] | Column]) -> None:
    """Register column labels and units: ``{"n_mql": (N_("MQLs"), "count"), ...}``. A name registered twice
    with a different label or unit is an error (one column, one meaning)."""
    for name, value in spec.items():
        column = value if isinstance(value, Column) else Column(*value)
        if column.unit not in UNITS:
            raise ValueError(f"column {name}: unit {column.unit!r} is not one of {', '.join(UNITS)}")
        known = COLUMNS.get(name)
        if known is not None and known != column:
            raise ValueError(f"column {name!r} is registered twice: {known} and {column}")
        COLUMNS[name] = column


register_columns({
    "name": (N_("Name"), "text"),
    "label": (N_("Label"), "text"),
    "region_id": (N_("Region"), "text"),
    "region": (N_("Region"), "text"),
    "team_id": (N_("Team"), "text"),
    "team": (N_("Team"), "text"),
    "owner_rep_id": (N_("Rep"), "text"),
    "rep_id": (N_("Rep"), "text"),
    "rep": (N_("Rep"), "text"),
    "account_id": (N_("Account"), "text"),
    "account": (N_("Account"), "text"),
    "product_id": (N_("Product"), "text"),
    "product": (N_("Product"), "text"),
    "product_line": (N_("Product line"), "text"),
    "source_channel": (N_("Channel"), "text"),
    "channel": (N_("Channel"), "text"),
    "industry": (N_("Industry"), "text"),
    "size_band": (N_("Customer size"), "text"),
    "competitor": (N_("Competitor"), "text"),
    "stage": (N_("Stage"), "text"),
    "step": (N_("Step"), "text"),
    "period": (N_("Period"), "text"),
    "kpi": (N_("KPI"), "text"),
    "value": (N_("Value"), "number"),
    "count": (N_("Count"), "count"),
    "share": (N_("Share"), "share"),
    "rank": (N_("Rank"), "count"),
    "city": (N_("City"), "text"),
    "country": (N_("Country"), "text"),
    "province": (N_("Province"), "text"),
    "status": (N_("Status"), "text"),
    "note": (N_("Note"), "text"),
})

_RATE = re.compile(r"(_rate|_share|_pct|^share|^rate|_conversion|^conversion|drop_off|_drop)$")
_AMOUNT = re.compile(r"(amount|_value$|^value_|bookings|revenue|balance|owed|_paid$|^paid$|_due$|receivable)")
_DAYS = re.compile(r"(_days$|^days|_days_)")
_COUNT = re.compile(r"(^n_|_count$|^count_|^number_of_)")
_RATIO = re.compile(r"(ratio|_vs_|_index$|_x$)")


def column_of(name: str, dtype: Any = None) -> Column:
    """The registered `Column` of `name`, else one inferred from the name and the dtype."""
    if name in COLUMNS:
        return COLUMNS[name]
    unit = "text"
    if dtype is not None and pd.api.types.is_datetime64_any_dtype(dtype):
        unit = "date"
    elif dtype is not None and pd.api.types.is_bool_dtype(dtype):
        unit = "text"
    elif _RATE.search(name):
        unit = "rate"
    elif _DAYS.search(name):
        unit = "days"
    elif _COUNT.search(name):
        unit = "count"
    elif _AMOUNT.search(name):
        unit = "amount"
    elif _RATIO.search(name):
        unit = "ratio"
    elif dtype is not None and pd.api.types.is_integer_dtype(dtype):
        unit = "count"
    elif dtype is not None and pd.api.types.is_numeric_dtype(dtype):
        unit = "number"
    return Column(i18n.humanise(name), unit)


def format_value(value: Any, unit: str, currency: str | None = None) -> str:
    """One cell as shown: `crmlens.i18n.format_number` for numbers, ISO dates, "–" for missing."""
    if unit == "date":
        return i18n.format_date(value)
    if unit == "text" or isinstance(value, str):
        return i18n.MISSING_VALUE if i18n.is_missing(value) else _text_value(value)
    return i18n.format_number(value, unit, currency)


def _text_value(value: Any) -> str:
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, pd.Timestamp):
        return i18n.format_date(value)
    return str(value)


@dataclass
class Table:
    """A result table as a reader sees it. ``table.frame`` is the analyst's pandas frame (unchanged)."""

    frame: pd.DataFrame
    title: str = ""
    columns: tuple[str, ...] = ()
    labels: Mapping[str, str] | None = None
    units: Mapping[str, str] | None = None
    currency: str | None = None
    note: str = ""
    max_rows: int = MAX_ROWS
    max_columns: int = MAX_COLUMNS

    # -------------------------------------------------------------------------------------------- the parts
    def shown_frame(self) -> pd.DataFrame:
        """The frame with the index as columns (when it means something) and only the shown columns."""
        frame = self.frame
        if not isinstance(frame.index, pd.RangeIndex) and any(n is not None for n in frame.index.names):
            frame = frame.reset_index()
        if self.columns:
            frame = frame[[c for c in self.columns if c in frame.columns]]
        return frame

    def column(self, name: str, dtype: Any = None) -> Column:
        """How `name` is shown in this table (its own labels/units first, then the registry)."""
        base = column_of(name, dtype)
        label = (self.labels or {}).get(name, base.label)
        unit = (self.units or {}).get(name, base.unit)
        return Column(label, unit)

    def header(self, name: str, dtype: Any = None) -> str:
        """The label of column `name` in the language in use (a label given to this table is used as given:
        its caller wrote it in the reader's language)."""
        if self.labels and name in self.labels:
            return self.labels[name]
        return _(self.column(name, dtype).label)

    def formatted(self, rows: int | None = None) -> pd.DataFrame:
        """The shown columns as text, under their translated labels (first `rows` rows; None = all)."""
        frame = self.shown_frame()
        if rows is not None:
            frame = frame.head(rows)
        out = {}
        for name in frame.columns:
            col = self.column(str(name), frame[name].dtype)
            out[self.header(str(name), frame[name].dtype)] = [format_value(v, col.unit, self.currency)
                                                             for v in frame[name].tolist()]
        return pd.DataFrame(out, columns=list(out) or None)

    def record(self) -> dict[str, Any]:
        """The full table as data (`TABLE_MIMETYPE`): title, columns with labels and units, rows."""
        import json

        frame = self.shown_frame()
        columns = [{"name": str(c), "label": self.header(str(c), frame[c].dtype),
                    "unit": self.column(str(c), frame[c].dtype).unit} for c in frame.columns]
        data = json.loads(frame.head(MAX_DATA_ROWS).to_json(orient="values", date_format="iso", default_handler=str))
        return {"title": _(self.title) if self.title else "", "columns": columns, "data": data,
                "rows": len(frame), "currency": self.currency, "language": i18n.current()}

    # ----------------------------------------------------------------------------------------------- HTML
    def _blocks(self, frame: pd.DataFrame) -> list[list[str]]:
        names = [str(c) for c in frame.columns]
        if len(names) <= self.max_columns:
            return [names]
        keys = [n for n in names[:2] if self.column(n, frame[n].dtype).unit in ("text", "date")][:1] or names[:1]
        rest = [n for n in names if n not in keys]
        width = max(1, self.max_columns - len(keys))
        return [keys + rest[i:i + width] for i in range(0, len(rest), width)]

    def to_html(self) -> str:
        """The table as HTML: a caption, labelled headers, right-aligned numbers, "–" for missing values, wide
        tables split into blocks that each fit the page, long ones cut to `max_rows` with a note."""
        frame = self.shown_frame()
        total = len(frame)
        head = frame.head(self.max_rows)
        parts = ['<div class="crmlens-table">']
        if self.title:
            parts.append(f'<p class="crmlens-table-title">{html.escape(_(self.title))}</p>')
        if frame.columns.empty or total == 0:
            parts.append(f'<p class="crmlens-table-empty">{html.escape(_("No rows."))}</p></div>')
            return "".join(parts)
        for block in self._blocks(frame):
            parts.append('<table class="crmlens-table-block"><thead><tr>')
            units = {}
            for name in block:
                col = self.column(name, frame[name].dtype)
                units[name] = col.unit
                cls = "num" if col.unit in NUMERIC_UNITS else "txt"
                parts.append(f'<th class="{cls}">{html.escape(self.header(name, frame[name].dtype))}</th>')
            parts.append("</tr></thead><tbody>")
            columns = {name: head[name].tolist() for name in block}
            for i in range(len(head)):
                parts.append("<tr>")
                for name in block:
                    unit = units[name]
                    cls = "num" if unit in NUMERIC_UNITS else "txt"
                    parts.append(f'<td class="{cls}">{html.escape(format_value(columns[name][i], unit, self.currency))}'
                                 "</td>")
                parts.append("</tr>")
            parts.append("</tbody></table>")
        notes = []
        if total > len(head):
            notes.append(_("First {shown} of {total} rows; the workbook (report.xlsx) has them all.",
                           shown=i18n.format_number(len(head), "count"), total=i18n.format_number(total, "count")))
        if self.note:
            notes.append(_(self.note))
        if (head.isna().any().any()) and not self.note:
            notes.append(_("– = no value."))
        if notes:
            parts.append(f'<p class="crmlens-table-note">{html.escape(" ".join(notes))}</p>')
        parts.append("</div>")
        return "".join(parts)

    def _repr_html_(self) -> str:
        return TABLE_CSS_TAG + self.to_html()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {"text/html": self._repr_html_(), "text/plain": self.to_text(), TABLE_MIMETYPE: self.record()}

    def to_text(self) -> str:
        """Plain text of the formatted table (first `max_rows` rows)."""
        shown = self.formatted(self.max_rows)
        return shown.to_string(index=False) if len(shown.columns) else _("No rows.")


TABLE_CSS = """
.crmlens-table { margin: 0.4em 0 1em; max-width: 100%; }
.crmlens-table-title { font-weight: 600; margin: 0 0 0.3em; }
.crmlens-table table.crmlens-table-block { border-collapse: collapse; font-size: 12.5px; margin: 0 0 0.6em;
  table-layout: auto; max-width: 100%; }
.crmlens-table th { background: #f1f4f8; border-bottom: 2px solid #8a96a6; padding: 4px 8px; vertical-align: bottom;
  white-space: normal; max-width: 11em; }
.crmlens-table td { border-bottom: 1px solid #e3e7ed; padding: 3px 8px; max-width: 22em; overflow-wrap: anywhere; }
.crmlens-table .num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
.crmlens-table .txt { text-align: left; }
.crmlens-table-note { color: #666; font-size: 11.5px; margin: 0.2em 0 0; }
.crmlens-table thead { display: table-header-group; }
.crmlens-table tr { break-inside: avoid; }
"""
TABLE_CSS_TAG = f"<style>{TABLE_CSS}</style>"


def table(frame: pd.DataFrame | None, *, title: str = "", columns: Sequence[str] | None = None,
          labels: Mapping[str, str] | None = None, units: Mapping[str, str] | None = None,
          currency: str | None = None, note: str = "", max_rows: int = MAX_ROWS) -> Table | None:
    """The reader's `Table` of `frame` (None stays None: a skipped section shows nothing more)."""
    if frame is None:
        return None
    return Table(frame=frame, title=title, columns=tuple(columns or ()), labels=labels, units=units,
                 currency=currency, note=note, max_rows=max_rows)


def unregistered(frames: Iterable[pd.DataFrame]) -> set[str]:
    """Column names of `frames` with no registered label (a test keeps the notebooks' tables free of them)."""
    return {str(c) for f in frames for c in f.columns if str(c) not in COLUMNS}
