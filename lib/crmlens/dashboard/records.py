"""Record drill-downs of the marketing, customer service and sales rep views: choose a campaign, a product or
a customer, see the records behind it — a campaign's leads, a product's tickets, a customer's history
(`crmlens.dashboard.panels.campaign_leads` / `product_tickets` / `customer_history`), in the view's period
and filters. `RECORDS` names them; a `ViewSpec` lists the ones it shows (``records=``). The choices come
from the view: the campaigns with leads in the period (most first), the products with tickets in the period
(most first), and the customers that matter to the view — with tickets in the period (customer service) or
owned by the view's rep (sales rep), busiest first.

`RecordsDrill` is the widget (a dropdown and the table, class ``crmlens-records-<key>``); its tables are
remembered per filter state like every other result (`DashboardData.memo`) and go into the Excel export.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass

import ipywidgets as w
import pandas as pd

from crmlens import i18n
from crmlens.dashboard import state as st
from crmlens.dashboard.exports import table_html
from crmlens.dashboard.model import DashboardData, View
from crmlens.dashboard.panels import DrillTable, campaign_leads, customer_history, product_tickets
from crmlens.i18n import N_, _, n_

#: At most this many choices in a dropdown (the busiest first).
MAX_CHOICES = 200


def _named(ids: pd.Series, names: pd.Series | None) -> list[tuple[str, str]]:
    """(label, id) pairs of the first `MAX_CHOICES` ids: "name (id)" when a name is known."""
    first = [str(i) for i in ids.iloc[:MAX_CHOICES]]
    found = [None] * len(first) if names is None else names.reindex(first).astype(object).tolist()
    return [(f"{name} ({i})" if isinstance(name, str) and name else i, i)
            for i, name in zip(first, found, strict=True)]


def _names(frame: pd.DataFrame | None, key: str, column: str = "name") -> pd.Series | None:
    if frame is None or column not in frame.columns:
        return None
    first = frame.drop_duplicates(key)
    return pd.Series(first[column].astype("string").to_numpy(), index=first[key].astype(str))


def campaign_choices(v: View) -> list[tuple[str, str]]:
    """The campaigns with leads in the view, most leads first (then id), then the source's other campaigns by
    id — at most `MAX_CHOICES`."""
    campaigns = v.tables.get("campaigns")
    if campaigns is None or campaigns.empty:
        return []
    every = campaigns["campaign_id"].dropna().astype(str).drop_duplicates().sort_values()
    leads = v.tables.get("leads")
    counts = pd.Series(dtype="int64")
    if leads is not None and "campaign_id" in leads.columns:
        counts = leads["campaign_id"].dropna().astype(str).value_counts()
    counts = counts.reindex(every.to_numpy(), fill_value=0)
    ordered = counts.sort_index().sort_values(ascending=False, kind="mergesort").index.to_series()
    return _named(ordered, _names(campaigns, "campaign_id"))


def product_choices(v: View) -> list[tuple[str, str]]:
    """The products with tickets in the view, most tickets first (then id)."""
    tickets = v.tables.get("tickets")
    if tickets is None or tickets.empty or "product_id" not in tickets.columns:
        return []
    counts = tickets["product_id"].dropna().astype(str).value_counts()
    ordered = counts.sort_index().sort_values(ascending=False, kind="mergesort").index.to_series()
    return _named(ordered, _names(v.tables.get("products"), "product_id"))


def customer_choices(v: View) -> list[tuple[str, str]]:
    """The view's rep's accounts (sales rep view), else the accounts with tickets in the view, the busiest
    first (activities + tickets in the period, then id)."""
    accounts = v.tables.get("accounts")
    names = _names(accounts, "account_id")
    counts = pd.Series(dtype="int64")
    for table in ("activities", "tickets"):
        frame = v.tables.get(table)
        if frame is not None and "account_id" in frame.columns:
            counts = counts.add(frame["account_id"].dropna().astype(str).value_counts(), fill_value=0)
    if v.state.rep is not None and accounts is not None and "owner_rep_id" in accounts.columns:
        mine = accounts.loc[accounts["owner_rep_id"].astype("string").eq(v.state.rep).fillna(False).to_numpy(bool),
                            "account_id"].astype(str)
        counts = counts.reindex(mine.unique(), fill_value=0)
    elif "tickets" in v.tables:
        tickets = v.tables["tickets"]
        counts = counts.reindex(tickets["account_id"].dropna().astype(str).unique(), fill_value=0)
    ordered = counts.sort_index().sort_values(ascending=False, kind="mergesort").index.to_series()
    return _named(ordered, names)


@dataclass(frozen=True)
class RecordsSpec:
    """A record drill-down: its `title` and `prompt` (msgids), the `choices` of a view and the `table` of a
    chosen id."""

    key: str
    title: str
    prompt: str
    choices: Callable[[View], list[tuple[str, str]]]
    table: Callable[[View, str], DrillTable]


RECORDS: dict[str, RecordsSpec] = {
    "campaign_leads": RecordsSpec("campaign_leads", N_("A campaign's leads"), N_("Campaign"), campaign_choices,
                                  campaign_leads),
    "product_tickets": RecordsSpec("product_tickets", N_("A product's tickets"), N_("Product"), product_choices,
                                   product_tickets),
    "customer_history": RecordsSpec("customer_history", N_("A customer's history"), N_("Customer"),
                                    customer_choices, customer_history),
}


def records_result(data_: DashboardData, state: st.FilterState, key: str, chosen: str) -> DrillTable:
    """The records of `chosen` (an id) under `state`, in its language (remembered, shared between kernels)."""
    spec = RECORDS[key]

    def compute() -> DrillTable:
        with i18n.language(state.language):
            return spec.table(data_.view(state), chosen)
    return data_.memo((*data_.result_key(state), "records", key, chosen), compute)


class RecordsDrill:
    """A dropdown of a view's campaigns / products / customers and the records of the chosen one."""

    def __init__(self, data_: DashboardData, key: str, on_state: Callable[[], st.FilterState]) -> None:
        self.data, self.spec, self.state_of = data_, RECORDS[key], on_state
        self.heading = w.HTML()
        self.choice = w.Dropdown(options=[("", "")], value="", layout=w.Layout(width="420px"))
        self.choice.add_class("crmlens-records-choice")
        self.table = w.HTML()
        self.box = w.VBox([self.heading, self.choice, self.table],
                          layout=w.Layout(border="1px solid #e0e0e0", padding="6px 10px", margin="6px 0"))
        self.box.add_class("crmlens-panel")
        self.box.add_class(f"crmlens-records-{key}")
        self.current: DrillTable | None = None
        self._quiet = False
        self.choice.observe(lambda _c: None if self._quiet else self.render(), names="value")

    def reset(self) -> None:
        """Follow a new filter state: its choices, in its language; the chosen id is kept while offered."""
        state = self.state_of()
        with i18n.language(state.language):
            view = self.data.view(state)
            options = [(_("Choose…"), ""), *self.spec.choices(view)]
            keep = self.choice.value if self.choice.value in {v for _l, v in options} else ""
            self._quiet = True
            try:
                self.choice.options = options
                self.choice.value = keep
                self.choice.description = _(self.spec.prompt)
            finally:
                self._quiet = False
            self.heading.value = f"<h3 style='margin:4px 0'>{html.escape(_(self.spec.title))}</h3>"
        self.render()

    def render(self) -> None:
        state = self.state_of()
        with i18n.language(state.language):
            chosen = self.choice.value
            if not chosen:
                self.current, self.table.value = None, ""
                return
            self.current = result = records_result(self.data, state, self.spec.key, chosen)
            if result.no_data:
                self.table.value = (f"<div class='crmlens-no_data' style='color:#666'>"
                                    f"{html.escape(result.no_data)}</div>")
                return
            count = n_("{n} record", "{n} records", len(result.table))
            self.table.value = (f"<div class='crmlens-records-count' data-count='{len(result.table)}'>"
                                f"{html.escape(count)}</div>"
                                + table_html(result.table, result.columns, css=f"crmlens-records-{result.level}",
                                             key=result.key))

    def open(self, chosen: str) -> None:
        """Choose `chosen` (an id among the choices) — what a click in the dropdown does."""
        self.choice.value = chosen
