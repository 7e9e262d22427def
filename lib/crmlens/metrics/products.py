"""Products (产品/服务表现分析): what each product line, product and category sells and earns, what customers buy
next, what they complain about, and how long each product takes to sell.

Pure functions over validated frames, as the other areas; the ``*_of`` functions (and those decorated with
`on_slice`) take the slice.

**Contribution** (`contribution`): per product line (or product, or category) the revenue of the contracts signed
in the period (``contracts.amount``), the units (``quantity``), the **margin** — revenue minus cost, the cost being
``contracts.cost_amount`` where the contract records it, else ``products.unit_cost`` × quantity (``attrs[
"cost_basis"]`` says which) — and the margin rate, each line's share of revenue and of margin, and the growth of
revenue against the comparison period and the same period last year.

**Cross-sell** (`next_line_affinity`): per account, the product line of its first contract and of its next contract
of another line (by ``signed_at``). For a pair (first → next): **support** = accounts with that pair ÷ accounts with
a next line; **confidence** = P(next | first) among the accounts of the first line that bought another line;
**lift** = confidence ÷ P(next) (how many times more often than customers in general).

**Complaint hotspots** (`complaint_hotspots`): per line, the complaints per quarter and a quasi-Poisson regression of
the counts on time (growth per quarter, one-sided p-value, Bonferroni-adjusted over the lines); and the tickets per
customer of a line against all other lines (an exact binomial test of its share of the tickets against its share of
the customers). A line is a hotspot when either is significant (`ALPHA`) and large enough.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from crmlens.analysis import on_slice
from crmlens.errors import ParameterError
from crmlens.findings import Finding, finding
from crmlens.i18n import N_, _
from crmlens.kpis import KpiContext, register_kpi
from crmlens.metrics.common import (
    UNKNOWN,
    bucket,
    check_choice,
    closed_in_period,
    in_period,
    isin,
    lookup,
    ratio,
    reference_time,
    won_mask,
)
from crmlens.metrics.common import fmt as _fmt
from crmlens.present import register_columns

AREA = "products"
Frames = Mapping[str, pd.DataFrame]
#: What the product analyses group by.
PRODUCT_BY = ("product_line", "product_id", "category")
#: Segments of the "best next line" view (columns of accounts).
SEGMENT_BY = ("size_band", "industry")
#: Ticket category counted as a complaint.
COMPLAINT = "complaint"
#: Deal types that sell more to existing customers.
EXPANSION_TYPES = ("cross_sell", "upsell")
#: Significance level of the hotspot tests (after the Bonferroni adjustment over the lines).
ALPHA = 0.01
#: A rising line must grow at least this much a quarter; a line's tickets per customer must be this many times
#: the others' to be a hotspot.
MIN_GROWTH = 0.10
MIN_RATE_RATIO = 1.5
#: Quarters of complaints the trend test reads.
TREND_QUARTERS = 8
#: Fewest accounts a (first → next) pair needs before its lift is stated.
MIN_PAIR_ACCOUNTS = 5
#: Days of contract history the purchase sequences read (from the first contract on).
SEQUENCE_DAYS = 12 * 365

register_columns({
    "category": (N_("Category"), "text"),
    "n_units": (N_("Units"), "count"),
    "cost_of_sales_amount": (N_("Cost of sales"), "amount"),
    "margin_amount": (N_("Gross margin"), "amount"),
    "margin_rate": (N_("Margin rate"), "rate"),
    "margin_share": (N_("Share of margin"), "share"),
    "comparison_revenue_amount": (N_("Revenue, comparison period"), "amount"),
    "revenue_growth": (N_("Growth vs comparison"), "rate"),
    "last_year_revenue_amount": (N_("Revenue, same period last year"), "amount"),
    "revenue_yoy": (N_("Growth vs last year"), "rate"),
    "first_line": (N_("First purchase"), "text"),
    "next_line": (N_("Bought next"), "text"),
    "n_pair_accounts": (N_("Accounts (pair)"), "count"),
    "n_first_accounts": (N_("Accounts (first line)"), "count"),
    "support": (N_("Support"), "share"),
    "confidence": (N_("Confidence"), "rate"),
    "lift": (N_("Lift"), "ratio"),
    "n_tickets": (N_("Tickets"), "count"),
    "n_complaints": (N_("Complaints"), "count"),
    "complaint_share": (N_("Share complaints"), "share"),
    "tickets_per_customer": (N_("Tickets per customer"), "ratio"),
    "first_quarter_complaints": (N_("Complaints, first quarter"), "count"),
    "last_quarter_complaints": (N_("Complaints, last quarter"), "count"),
    "complaint_growth": (N_("Complaint growth a quarter"), "rate"),
    "trend_p_value": (N_("Trend p-value"), "number"),
    "rate_ratio": (N_("Tickets per customer vs others"), "ratio"),
    "rate_p_value": (N_("Rate p-value"), "number"),
    "is_rising": (N_("Complaints rising"), "text"),
    "is_high_rate": (N_("Ticket rate high"), "text"),
    "is_hotspot": (N_("Hotspot"), "text"),
    "deal_type_label": (N_("Deal type"), "text"),
    "won_cycle_days": (N_("Median days created→won"), "days"),
    "n_won_cycles": (N_("Won deals with dates"), "count"),
})

_DEAL_TYPE_LABELS = {"new": N_("New business"), "upsell": N_("Upsell"), "cross_sell": N_("Cross-sell"),
                     "renewal": N_("Renewal")}
_BY_NAMES = {"product_line": N_("product line"), "product_id": N_("product"), "category": N_("category")}
_BY_PLURALS = {"product_line": N_("product lines"), "product_id": N_("products"), "category": N_("categories")}


# ------------------------------------------------------------------------------------------------- helpers

def product_keys(product_id: pd.Series, products: pd.DataFrame | None, by: str) -> pd.Series:
    """The `by` (`PRODUCT_BY`) of each row's product: the product id itself, or its line or category from
    `products` ("(unknown)" for a product the table does not know)."""
    check_choice("by", by, PRODUCT_BY)
    ids = product_id.astype("string")
    if by == "product_id":
        return ids.fillna(UNKNOWN)
    if products is None:
        raise ParameterError(f"products: the products table is needed for by={by!r} (it maps products to {by})")
    dim = products.drop_duplicates("product_id")
    return lookup(ids, dim.set_index(dim["product_id"].astype("string"))[by].astype("string")).fillna(UNKNOWN)


def _with_names(out: pd.DataFrame, products: pd.DataFrame | None, by: str) -> pd.DataFrame:
    """For a table by product: the product's name and line after its id."""
    if by != "product_id" or products is None:
        return out
    dim = products.drop_duplicates("product_id")
    dim = dim.set_index(dim["product_id"].astype("string"))
    ids = out["product_id"].astype("string")
    if "name" in dim and dim["name"].notna().any():
        out.insert(1, "name", lookup(ids, dim["name"].astype("string")).to_numpy())
    if "product_line" in dim and dim["product_line"].notna().any():
        lines = lookup(ids, dim["product_line"].astype("string")).to_numpy()
        out.insert(2 if "name" in out else 1, "product_line", lines)
    return out


def cost_of_sales(contracts: pd.DataFrame, products: pd.DataFrame | None) -> tuple[pd.Series, str | None]:
    """Each contract's cost: ``cost_amount`` where recorded, else ``products.unit_cost`` × ``quantity``; missing
    where neither is known. The basis: "cost_amount", "unit_cost", "mixed" or None (no cost at all)."""
    recorded = contracts["cost_amount"].astype("float64") if "cost_amount" in contracts else pd.Series(
        np.nan, index=contracts.index)
    from_units = pd.Series(np.nan, index=contracts.index)
    if products is not None and "unit_cost" in products and "quantity" in contracts:
        dim = products.drop_duplicates("product_id")
        unit = lookup(contracts["product_id"].astype("string"),
                      dim.set_index(dim["product_id"].astype("string"))["unit_cost"].astype("float64"))
        from_units = unit.astype("float64") * contracts["quantity"].astype("float64")
    cost = recorded.where(recorded.notna(), from_units)
    used_recorded, used_units = bool(recorded.notna().any()), bool((recorded.isna() & from_units.notna()).any())
    basis = ("mixed" if used_recorded and used_units else "cost_amount" if used_recorded
             else "unit_cost" if used_units else None)
    return cost, basis


def _growth(now: pd.Series, before: pd.Series) -> pd.Series:
    """now ÷ before − 1, missing where there was nothing before."""
    before = before.reindex(now.index).astype("float64")
    return now.astype("float64") / before.where(before > 0) - 1.0


# -------------------------------------------------------------------------------------------- contribution

def contribution(contracts: pd.DataFrame, products: pd.DataFrame | None = None, by: str = "product_line", *,
                 comparison: Mapping[str, pd.DataFrame] | None = None,
                 last_year: Mapping[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Per `by` (`PRODUCT_BY`), the contracts given (a slice's: the period's): contracts, units, revenue, cost of
    sales, margin and margin rate, share of revenue and of margin; with `comparison` / `last_year` (frames holding
    those periods' ``contracts``), their revenue and the growth against each. Largest revenue first (equal revenue:
    by name). ``attrs["cost_basis"]``: see `cost_of_sales`; without any cost, the margin columns are missing."""
    keys = product_keys(contracts["product_id"], products, by)
    cost, basis = cost_of_sales(contracts, products)
    frame = pd.DataFrame({
        "key": keys.to_numpy(), "n": 1,
        "units": contracts["quantity"].astype("float64").to_numpy() if "quantity" in contracts else np.nan,
        "revenue": contracts["amount"].astype("float64").to_numpy(), "cost": cost.to_numpy(dtype="float64"),
    })
    g = frame.groupby("key", sort=True)
    out = pd.DataFrame({"n_contracts": g["n"].sum(), "n_units": g["units"].sum(min_count=1),
                        "revenue_amount": g["revenue"].sum()})
    out["cost_of_sales_amount"] = g["cost"].sum(min_count=1) if basis else np.nan
    out["margin_amount"] = out["revenue_amount"] - out["cost_of_sales_amount"]
    out["margin_rate"] = out["margin_amount"] / out["revenue_amount"].where(out["revenue_amount"] > 0)
    total = float(out["revenue_amount"].sum())
    out["revenue_share"] = out["revenue_amount"] / total if total > 0 else np.nan
    margin_total = float(out["margin_amount"].sum()) if basis else np.nan
    out["margin_share"] = out["margin_amount"] / margin_total if basis and margin_total > 0 else np.nan
    for name, frames, growth in (("comparison_revenue_amount", comparison, "revenue_growth"),
                                 ("last_year_revenue_amount", last_year, "revenue_yoy")):
        before = frames.get("contracts") if frames is not None and "contracts" in frames else None
        if before is None:
            continue
        past = before["amount"].astype("float64").groupby(
            product_keys(before["product_id"], products, by).to_numpy()).sum()
        out[name] = past.reindex(out.index).fillna(0.0)
        out[growth] = _growth(out["revenue_amount"], past)
    out["n_contracts"] = out["n_contracts"].astype("int64")
    out = out.rename_axis(by).reset_index()
    out = out.sort_values(["revenue_amount", by], ascending=[False, True], kind="stable").reset_index(drop=True)
    out = _with_names(out, products, by)
    out.attrs.update(by=by, cost_basis=basis)
    return out


@on_slice("contracts", "products")
def contribution_of(s: Any, by: str = "product_line") -> pd.DataFrame:
    """`contribution` of the slice's period, against its comparison period and the same period last year."""
    return contribution(s.tables["contracts"], s.tables["products"], by, comparison=s.comparison,
                        last_year=s.last_year)


def cost_basis_note(result: pd.DataFrame | None) -> str:
    """One sentence saying where the margin's cost comes from (or that the source has none)."""
    if result is None:
        return ""
    basis = result.attrs.get("cost_basis")
    return {
        "cost_amount": _("Margin = revenue − the cost of sales each contract records (`contracts.cost_amount`)."),
        "unit_cost": _("Margin = revenue − `products.unit_cost` × quantity (the contracts record no cost)."),
        "mixed": _("Margin = revenue − the contract's recorded cost (`contracts.cost_amount`), or `products."
                   "unit_cost` × quantity where a contract records none."),
        None: _("Margin is not in this source: neither `contracts.cost_amount` nor `products.unit_cost` is "
                "recorded."),
    }[basis]


def describe_contribution(result: pd.DataFrame | None, *, min_gap: float = 0.1) -> Finding | None:
    """Which line brings the most revenue, and a line among the two largest by revenue whose margin rate is the
    lowest of all, `min_gap` or more below the median line (it earns less of the margin than of the revenue) —
    nothing from one line, equal revenues or margin rates, or a source without costs."""
    if result is None or len(result) < 2:
        return None
    key = result.attrs.get("by", result.columns[0])
    top = result[result["revenue_amount"] == result["revenue_amount"].max()]
    if len(top) > 1 or result["revenue_amount"].nunique() == 1:
        return None
    lead = _("{name} brings the most revenue ({share} of {total}).", name=str(top[key].iloc[0]),
             share=_fmt(top["revenue_share"].iloc[0], "share"), total=_fmt(result["revenue_amount"].sum(), "amount"))
    rated = result[result["margin_rate"].notna()]
    if len(rated) < 2 or rated["margin_rate"].nunique() == 1:
        return finding(lead, "info")
    lowest = rated[rated["margin_rate"] == rated["margin_rate"].min()]
    median = float(rated["margin_rate"].median())
    big = set(result.head(2)[key])
    if len(lowest) > 1 or lowest[key].iloc[0] not in big or median - float(lowest["margin_rate"].iloc[0]) < min_gap:
        best = rated[rated["margin_rate"] == rated["margin_rate"].max()]
        if len(best) > 1:
            return finding(lead, "info")
        return finding(lead + " " + _("{name} earns the highest margin rate ({rate}).", name=str(best[key].iloc[0]),
                                      rate=_fmt(best["margin_rate"].iloc[0], "rate")), "info")
    row = lowest.iloc[0]
    text = lead + " " + _(
        "{name} is among the two largest lines by revenue ({share} of it) but has the thinnest margin: {rate} "
        "against {median} for the median line, so it earns only {margin_share} of the margin.", name=str(row[key]),
        share=_fmt(row["revenue_share"], "share"), rate=_fmt(row["margin_rate"], "rate"),
        median=_fmt(median, "rate"), margin_share=_fmt(row["margin_share"], "share"))
    return finding(text, "act", recommendation=_(
        "Review {name}'s pricing, discounts and cost of delivery: each point of margin on a line this large is worth "
        "more than growth in the small ones.", name=str(row[key])), kpi="margin_rate",
        weight=min(1.0, (median - float(row["margin_rate"])) * 2))


def describe_growth(result: pd.DataFrame | None, *, min_revenue_share: float = 0.05) -> Finding | None:
    """The fastest- and slowest-growing lines against the comparison period (lines with at least
    `min_revenue_share` of the revenue and revenue in both periods); nothing when they grow alike."""
    if result is None or "revenue_growth" not in result or len(result) < 2:
        return None
    key = result.attrs.get("by", result.columns[0])
    rated = result[result["revenue_growth"].notna() & (result["revenue_share"] >= min_revenue_share)]
    if len(rated) < 2 or rated["revenue_growth"].nunique() == 1:
        return None
    hi = rated[rated["revenue_growth"] == rated["revenue_growth"].max()]
    lo = rated[rated["revenue_growth"] == rated["revenue_growth"].min()]
    if len(hi) > 1 or len(lo) > 1:
        return None
    return finding(_("Against the comparison period, {hi} grew most ({hi_rate}) and {lo} least ({lo_rate}).",
                     hi=str(hi[key].iloc[0]), hi_rate=_fmt(hi["revenue_growth"].iloc[0], "rate"),
                     lo=str(lo[key].iloc[0]), lo_rate=_fmt(lo["revenue_growth"].iloc[0], "rate")), "info")


# ----------------------------------------------------------------------------------------- cross- and upsell

@on_slice("opportunities")
def deal_type_results(opportunities: pd.DataFrame, *, ctx: KpiContext | None = None) -> pd.DataFrame:
    """Per deal type (``opportunities.deal_type``: new, upsell, cross_sell, renewal) of the deals closed in `ctx`'s
    period (every closed deal without `ctx`): closed and won deals, win rate, won amount and its share of the
    bookings. In the order new, upsell, cross-sell, renewal; types the source does not record are left out."""
    closed = closed_in_period(opportunities, ctx)
    kind = closed["deal_type"].astype("string").fillna(UNKNOWN) if "deal_type" in closed else pd.Series(
        UNKNOWN, index=closed.index, dtype="string")
    won = won_mask(closed).to_numpy(dtype=bool)
    frame = pd.DataFrame({"deal_type": kind.to_numpy(), "won": won,
                          "won_amount": np.where(won, closed["amount"].astype("float64").fillna(0.0), 0.0)})
    g = frame.groupby("deal_type", sort=True)
    out = pd.DataFrame({"n_closed": g.size(), "n_won": g["won"].sum(), "won_amount": g["won_amount"].sum()})
    out["win_rate"] = out["n_won"] / out["n_closed"].where(out["n_closed"] > 0)
    total = float(out["won_amount"].sum())
    out["bookings_share"] = out["won_amount"] / total if total > 0 else np.nan
    order = {k: i for i, k in enumerate(_DEAL_TYPE_LABELS)}
    out = out.reset_index()
    out = out.iloc[np.argsort([order.get(k, len(order)) for k in out["deal_type"]], kind="stable")]
    out["n_won"] = out["n_won"].astype("int64")
    return out.reset_index(drop=True)[["deal_type", "n_closed", "n_won", "win_rate", "won_amount", "bookings_share"]]


def describe_deal_types(result: pd.DataFrame | None, *, min_closed: int = 10) -> Finding | None:
    """The win rate of cross-sell and upsell deals against new business, and their share of the bookings —
    nothing when the source records no such deals (or too few: `min_closed`)."""
    if result is None or result.empty:
        return None
    rows = result.set_index("deal_type")
    expand = rows[rows.index.isin(EXPANSION_TYPES)]
    if expand.empty or int(expand["n_closed"].sum()) < min_closed:
        return None
    rate = float(expand["n_won"].sum()) / float(expand["n_closed"].sum())
    share = float(expand["bookings_share"].sum()) if expand["bookings_share"].notna().any() else None
    text = _("Selling more to existing customers (cross-sell and upsell) wins {rate} of {n} deals closed",
             rate=_fmt(rate, "rate"), n=_fmt(int(expand["n_closed"].sum()), "count"))
    if "new" in rows.index and rows.at["new", "n_closed"] >= min_closed:
        text += _(", against {new} for new business", new=_fmt(rows.at["new", "win_rate"], "rate"))
    text += _("; it brings {share} of the bookings.", share=_fmt(share, "share")) if share is not None else "."
    good = "new" in rows.index and rate > float(rows.at["new", "win_rate"])
    return finding(text, "good" if good else "info", kpi="cross_sell_win_rate")


def purchase_sequences(contracts: pd.DataFrame, products: pd.DataFrame) -> pd.DataFrame:
    """Per account with a contract: the product line of its first contract and of its next contract of another
    line (by ``signed_at``, then ``contract_id``; missing when it bought no other line). Columns account_id,
    first_line, next_line."""
    lines = product_keys(contracts["product_id"], products, "product_line")
    frame = pd.DataFrame({"account_id": contracts["account_id"].astype("string").to_numpy(),
                          "at": contracts["signed_at"].to_numpy(),
                          "id": contracts["contract_id"].astype("string").to_numpy(), "line": lines.to_numpy()})
    frame = frame[frame["account_id"].notna() & frame["at"].notna()]
    frame = frame[frame["line"] != UNKNOWN].sort_values(["account_id", "at", "id"], kind="stable")
    first = frame.groupby("account_id", sort=True)["line"].first()
    other = frame[frame["line"].to_numpy() != lookup(frame["account_id"], first).to_numpy()]
    nxt = other.groupby("account_id", sort=True)["line"].first()
    return pd.DataFrame({"account_id": first.index, "first_line": first.to_numpy(),
                         "next_line": nxt.reindex(first.index).to_numpy()})


def affinity(sequences: pd.DataFrame) -> pd.DataFrame:
    """Support, confidence and lift of each (first → next) pair of `purchase_sequences` (see the module doc),
    among the accounts that bought a next line. Highest lift first (then most accounts, then by name)."""
    went = sequences[sequences["next_line"].notna()]
    n = len(went)
    cols = ["first_line", "next_line", "n_pair_accounts", "n_first_accounts", "support", "confidence", "lift"]
    if n == 0:
        return pd.DataFrame(columns=cols)
    pairs = went.groupby(["first_line", "next_line"], sort=True).size().rename("n_pair_accounts").reset_index()
    firsts = went.groupby("first_line").size()
    base = went.groupby("next_line").size() / n
    pairs["n_first_accounts"] = pairs["first_line"].map(firsts).astype("int64")
    pairs["support"] = pairs["n_pair_accounts"] / n
    pairs["confidence"] = pairs["n_pair_accounts"] / pairs["n_first_accounts"]
    pairs["lift"] = pairs["confidence"] / pairs["next_line"].map(base).astype("float64")
    pairs.attrs["n_accounts"] = n
    return pairs.sort_values(["lift", "n_pair_accounts", "first_line", "next_line"],
                             ascending=[False, False, True, True], kind="stable").reset_index(drop=True)[cols]


@on_slice("contracts", "products")
def next_line_affinity(s: Any) -> pd.DataFrame:
    """`affinity` of the slice's region over its contract history (`SEQUENCE_DAYS`, up to the period's end)."""
    history = s.history("contracts", _periods(s, SEQUENCE_DAYS))
    out = affinity(purchase_sequences(history, s.tables["products"]))
    return out


def best_next_line(sequences: pd.DataFrame, accounts: pd.DataFrame, by: str = "size_band", *,
                   min_accounts: int = MIN_PAIR_ACCOUNTS) -> pd.DataFrame:
    """Per segment (`SEGMENT_BY`: a column of `accounts`) and first line: the line its customers most often buy
    next (confidence), with its lift within the segment; pairs of fewer than `min_accounts` accounts are left out;
    lines with equal confidence are listed together. Columns segment, first_line, next_line, n_pair_accounts,
    n_first_accounts, confidence, lift."""
    check_choice("by", by, SEGMENT_BY)
    acc = accounts.drop_duplicates("account_id")
    seg = lookup(sequences["account_id"].astype("string"),
                 acc.set_index(acc["account_id"].astype("string"))[by].astype("string")).fillna(UNKNOWN)
    rows = []
    for value, group in sequences.groupby(seg.to_numpy(), sort=True):  # a handful of segments
        pairs = affinity(group)
        pairs = pairs[pairs["n_pair_accounts"] >= min_accounts]
        for first, options in pairs.groupby("first_line", sort=True):
            best = options[options["confidence"] == options["confidence"].max()]
            rows.append({"segment": value, "first_line": first, "next_line": ", ".join(sorted(best["next_line"])),
                         "n_pair_accounts": int(best["n_pair_accounts"].sum()),
                         "n_first_accounts": int(best["n_first_accounts"].iloc[0]),
                         "confidence": float(best["confidence"].iloc[0]),
                         "lift": float(best["lift"].iloc[0]) if len(best) == 1 else np.nan})
    out = pd.DataFrame(rows, columns=["segment", "first_line", "next_line", "n_pair_accounts", "n_first_accounts",
                                      "confidence", "lift"])
    out.attrs["by"] = by
    return out


@on_slice("contracts", "products", "accounts")
def best_next_line_of(s: Any, by: str = "size_band") -> pd.DataFrame:
    """`best_next_line` of the slice's contract history."""
    history = s.history("contracts", _periods(s, SEQUENCE_DAYS))
    return best_next_line(purchase_sequences(history, s.tables["products"]), s.tables["accounts"], by)


def describe_affinity(result: pd.DataFrame | None, *, min_accounts: int = MIN_PAIR_ACCOUNTS,
                      min_lift: float = 1.2) -> Finding | None:
    """The pair (first → next) with the highest lift among those of at least `min_accounts` accounts, when its
    lift reaches `min_lift` and no other pair has the same lift."""
    if result is None or result.empty:
        return None
    rated = result[result["n_pair_accounts"] >= min_accounts]
    if rated.empty or rated["lift"].max() < min_lift or (rated["lift"] == rated["lift"].max()).sum() > 1:
        return None
    row = rated.iloc[0]
    text = _("Customers whose first purchase was {first} buy {next} next in {conf} of cases ({n} of {m} accounts "
             "that bought another line), {lift} times as often as customers in general.", first=str(row["first_line"]),
             next=str(row["next_line"]), conf=_fmt(row["confidence"], "rate"), n=_fmt(int(row["n_pair_accounts"]),
                                                                                     "count"),
             m=_fmt(int(row["n_first_accounts"]), "count"), lift=_fmt(row["lift"], "number", digits=1))
    return finding(text, "watch", recommendation=_(
        "Offer {next} to the {first} customers who do not have it yet, at the moment they are most likely to buy "
        "(after their first {first} project goes live).", next=str(row["next_line"]), first=str(row["first_line"])),
        weight=min(1.0, (float(row["lift"]) - 1.0) / 2))


# ------------------------------------------------------------------------------------------- product feedback

def _customers_per_key(contracts: pd.DataFrame | None, products: pd.DataFrame | None, by: str) -> pd.Series | None:
    """Distinct customer accounts with a contract per `by` value (None without contracts)."""
    if contracts is None or contracts.empty:
        return None
    keys = product_keys(contracts["product_id"], products, by)
    frame = pd.DataFrame({"key": keys.to_numpy(), "account": contracts["account_id"].astype("string").to_numpy()})
    return frame.dropna().groupby("key")["account"].nunique()


def ticket_load(tickets: pd.DataFrame, products: pd.DataFrame | None = None, by: str = "product_line", *,
                ctx: KpiContext | None = None, contracts: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per `by` (`PRODUCT_BY`), the tickets opened in `ctx`'s period (all without `ctx`): tickets, complaints
    (category ``complaint``), the share that are complaints and — with `contracts` (the customers' contract
    history) — tickets per customer (customers: accounts with a contract of that line) and that rate against all
    other lines (``rate_ratio``) with the p-value of an exact binomial test (Bonferroni-adjusted). Most tickets
    first; tickets without a product are "(unknown)"."""
    if ctx is not None:
        tickets = tickets[in_period(tickets["opened_at"], ctx).to_numpy(dtype=bool)]
    keys = product_keys(tickets["product_id"], products, by)
    category = tickets["category"].astype("string").str.lower() if "category" in tickets else pd.Series(
        pd.NA, index=tickets.index, dtype="string")
    frame = pd.DataFrame({"key": keys.to_numpy(), "complaint": category.eq(COMPLAINT).fillna(False).to_numpy()})
    g = frame.groupby("key", sort=True)
    out = pd.DataFrame({"n_tickets": g.size(), "n_complaints": g["complaint"].sum().astype("int64")})
    recorded = category.notna().any()
    out["complaint_share"] = out["n_complaints"] / out["n_tickets"] if recorded else np.nan
    if not recorded:
        out["n_complaints"] = np.nan
    customers = _customers_per_key(contracts, products, by)
    if customers is not None:
        out["n_customers"] = customers.reindex(out.index)
        out["tickets_per_customer"] = out["n_tickets"] / out["n_customers"].where(out["n_customers"] > 0)
        out["rate_ratio"], out["rate_p_value"] = _rate_tests(out["n_tickets"], out["n_customers"])
    out = out.rename_axis(by).reset_index()
    out = out.sort_values(["n_tickets", by], ascending=[False, True], kind="stable").reset_index(drop=True)
    out.attrs["by"] = by
    return _with_names(out, products, by)


def _rate_tests(tickets: pd.Series, customers: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Per row: its tickets per customer ÷ all other rows', and the one-sided (higher) p-value of an exact
    binomial test of its share of the tickets against its share of the customers, Bonferroni-adjusted."""
    from scipy.stats import binomtest

    ok = customers.notna() & (customers > 0)
    k_all, c_all = float(tickets[ok].sum()), float(customers[ok].sum())
    ratios, pvalues = pd.Series(np.nan, index=tickets.index), pd.Series(np.nan, index=tickets.index)
    tested = int(ok.sum())
    if tested < 2 or k_all == 0:
        return ratios, pvalues
    for i in tickets.index[ok]:  # one test per line or product: a handful
        k, c = int(tickets[i]), float(customers[i])
        rest_k, rest_c = k_all - k, c_all - c
        if rest_c <= 0:
            continue
        ratios[i] = (k / c) / (rest_k / rest_c) if rest_k > 0 else np.inf
        p = binomtest(k, int(k_all), c / c_all, alternative="greater").pvalue
        pvalues[i] = min(1.0, p * tested)
    return ratios, pvalues


def complaint_trend(tickets: pd.DataFrame, products: pd.DataFrame | None = None, by: str = "product_line", *,
                    until: pd.Timestamp | None = None, quarters: int = TREND_QUARTERS,
                    category: str | None = COMPLAINT) -> pd.DataFrame:
    """Tickets of `category` (every ticket with None) per quarter opened and `by` value, over the `quarters`
    complete quarters up to `until` (the last complete quarter of the tickets without it); quarters without any
    are zeros. Columns period, `by`, n_tickets; oldest first."""
    if category is not None:
        tickets = tickets[tickets["category"].astype("string").str.lower().eq(category).fillna(False).to_numpy(bool)]
    opened = tickets["opened_at"]
    end = pd.Timestamp(until) if until is not None else (opened.max() if len(opened) else pd.NaT)
    if pd.isna(end):
        return pd.DataFrame(columns=["period", by, "n_tickets"])
    last = (end - pd.Timedelta(microseconds=1)).to_period("Q")
    if (last + 1).start_time > end:  # the quarter `end` falls in is not complete
        last = last - 1
    labels = bucket(pd.Series(pd.period_range(last - (quarters - 1), last, freq="Q").start_time), "quarter").tolist()
    keys = product_keys(tickets["product_id"], products, by)
    frame = pd.DataFrame({"period": bucket(opened, "quarter").to_numpy(), "key": keys.to_numpy()})
    frame = frame[frame["period"].isin(labels)]
    counts = frame.groupby(["key", "period"]).size().unstack("period", fill_value=0)
    counts = counts.reindex(columns=labels, fill_value=0)
    out = counts.stack().rename("n_tickets").reset_index().rename(columns={"key": by})
    out = out[["period", by, "n_tickets"]].sort_values(["period", by], kind="stable").reset_index(drop=True)
    out["n_tickets"] = out["n_tickets"].astype("int64")
    out.attrs.update(by=by, category=category)
    return out


def complaint_hotspots(trend: pd.DataFrame | None, load: pd.DataFrame | None = None, *, alpha: float = ALPHA,
                       min_growth: float = MIN_GROWTH, min_rate_ratio: float = MIN_RATE_RATIO) -> pd.DataFrame | None:
    """Per `by` value of a `complaint_trend`: complaints over the window, in its first and last quarter, the growth
    a quarter of a quasi-Poisson regression of the counts on time and its one-sided p-value (Bonferroni-adjusted
    over the values tested); with `load` (`ticket_load` with rates), the tickets per customer against the others and
    their p-value. ``is_hotspot``: complaints rise (p < `alpha`, growth ≥ `min_growth`) or the rate is high
    (p < `alpha`, ratio ≥ `min_rate_ratio`). Hotspots first, then the steepest rise. None for a skipped section
    (no trend)."""
    if trend is None:
        return None
    by = trend.attrs.get("by", trend.columns[1])
    rows = []
    tested = 0
    for key, group in trend.groupby(by, sort=True):
        y = group.sort_values("period")["n_tickets"].to_numpy(dtype=float)
        growth, p = _poisson_trend(y)
        tested += not np.isnan(p)
        rows.append({by: key, "n_complaints": int(y.sum()), "first_quarter_complaints": int(y[0]),
                     "last_quarter_complaints": int(y[-1]), "complaint_growth": growth, "trend_p_value": p})
    out = pd.DataFrame(rows, columns=[by, "n_complaints", "first_quarter_complaints", "last_quarter_complaints",
                                      "complaint_growth", "trend_p_value"])
    out["trend_p_value"] = (out["trend_p_value"] * max(tested, 1)).clip(upper=1.0)
    rising = (out["trend_p_value"] < alpha) & (out["complaint_growth"] >= min_growth)
    high = pd.Series(False, index=out.index)
    if load is not None and "rate_ratio" in load:
        rates = load.set_index(load.columns[0])
        out["tickets_per_customer"] = out[by].map(rates["tickets_per_customer"])
        out["rate_ratio"] = out[by].map(rates["rate_ratio"])
        out["rate_p_value"] = out[by].map(rates["rate_p_value"])
        high = (out["rate_p_value"] < alpha) & (out["rate_ratio"] >= min_rate_ratio)
    out["is_rising"] = rising.fillna(False).astype(bool)
    out["is_high_rate"] = high.fillna(False).astype(bool)
    out["is_hotspot"] = out["is_rising"] | out["is_high_rate"]
    out = out.sort_values(["is_hotspot", "complaint_growth", by], ascending=[False, False, True], na_position="last",
                          kind="stable").reset_index(drop=True)
    out.attrs.update(by=by, alpha=alpha, periods=sorted(trend["period"].unique().tolist()))
    return out


def _poisson_trend(y: np.ndarray) -> tuple[float, float]:
    """Growth a period (e^b − 1) of a quasi-Poisson regression log E[y] = a + b t, and the one-sided p-value of
    b > 0 (missing with fewer than four periods or fewer than five events)."""
    if len(y) < 4 or y.sum() < 5:
        return np.nan, np.nan
    import statsmodels.api as sm
    from scipy.stats import norm

    t = np.arange(len(y), dtype=float)
    with warnings.catch_warnings():  # a line with complaints in one quarter only: a flat answer, not a warning
        warnings.simplefilter("ignore")
        fit = sm.GLM(y, sm.add_constant(t), family=sm.families.Poisson()).fit()
    b, se = float(fit.params[1]), float(fit.bse[1])
    dispersion = float(fit.pearson_chi2) / max(len(y) - 2, 1)
    se *= np.sqrt(max(dispersion, 1.0))  # over-dispersed counts widen the interval; steadier ones keep Poisson's
    p_two = float(2 * norm.sf(abs(b) / se)) if se > 0 else 1.0
    return float(np.expm1(b)), p_two / 2 if b > 0 else 1 - p_two / 2


@on_slice("tickets")
def feedback_of(s: Any, by: str = "product_line") -> pd.DataFrame:
    """`ticket_load` of the slice's period (tickets per customer against the contract history), with the CSAT and
    NPS of the period's survey responses per `by` next to it when the source has surveys."""
    from crmlens.metrics import health

    products = s.tables["products"] if s.has("products") else None
    if products is None and by != "product_id":
        from crmlens import notebook

        notebook.needs(s, "products")
        return None
    contracts = s.history("contracts", _periods(s, SEQUENCE_DAYS)) if s.has("contracts") else None
    from crmlens import notebook

    out = ticket_load(s.tables["tickets"], products, by, ctx=notebook.context(s), contracts=contracts)
    if s.has("surveys") and by in ("product_line", "product_id"):
        sat = health.satisfaction(s.tables["surveys"], by, products=products).set_index("segment")
        out["csat_mean"] = out[by].map(sat["csat_mean"])
        out["nps"] = out[by].map(sat["nps"])
    return out


@on_slice("tickets")
def complaint_trend_of(s: Any, by: str = "product_line", *, quarters: int = TREND_QUARTERS) -> pd.DataFrame:
    """`complaint_trend` of the slice's region over the `quarters` complete quarters up to its reference time."""
    products = s.tables["products"] if s.has("products") else None
    if products is None and by != "product_id":
        from crmlens import notebook

        notebook.needs(s, "products")
        return None
    from crmlens import notebook

    history = s.history("tickets", _periods(s, 92 * (quarters + 1)))
    return complaint_trend(history, products, by, until=reference_time(notebook.context(s)), quarters=quarters)


def hotspots_of(s: Any, by: str = "product_line") -> pd.DataFrame | None:
    """`complaint_hotspots` of the slice: the complaint trend and the period's tickets per customer."""
    trend = complaint_trend_of(s, by)
    if trend is None:
        return None
    return complaint_hotspots(trend, feedback_of(s, by))


def describe_hotspots(result: pd.DataFrame | None) -> Finding | None:
    """The lines whose complaints rise significantly (first → last quarter, growth a quarter, p-value) and those
    with abnormally many tickets per customer; that no line's complaints rise, when that was testable."""
    if result is None or result.empty:
        return None
    by = result.attrs.get("by", result.columns[0])
    periods = result.attrs.get("periods", [])
    span = f"{periods[0]}–{periods[-1]}" if periods else ""
    parts = []
    for _i, row in result[result["is_rising"]].iterrows():
        parts.append(_("complaints about {name} rose from {first} to {last} a quarter over {span} (+{growth} a "
                       "quarter, {p})", name=str(row[by]), first=_fmt(int(row["first_quarter_complaints"]), "count"),
                       last=_fmt(int(row["last_quarter_complaints"]), "count"), span=span,
                       growth=_fmt(row["complaint_growth"], "rate"), p=_p(row["trend_p_value"])))
    for _i, row in result[result["is_high_rate"]].iterrows():
        parts.append(_("{name} draws {ratio} times the tickets per customer of the other {what} ({p})",
                       name=str(row[by]), ratio=_fmt(row["rate_ratio"], "number", digits=1),
                       what=_(_BY_PLURALS.get(by, by)), p=_p(row["rate_p_value"])))
    if not parts:
        if result["trend_p_value"].notna().sum() >= 2:
            return finding(_("No {what}'s complaints rise significantly over {span}.", what=_(_BY_NAMES.get(by, by)),
                             span=span), "good")
        return None
    names = ", ".join(str(v) for v in result.loc[result["is_hotspot"], by])
    text = _("Complaint hotspot: {parts}.", parts="; ".join(parts))
    return finding(text, "act", recommendation=_(
        "Open a quality review of {names} with product and support: read the recent complaints, find the defect, "
        "release or process behind them, and tell the affected customers what is being fixed.", names=names),
        kpi="complaint_tickets", weight=0.8)


def _p(value: float) -> str:
    """A p-value as a finding states it."""
    return "p < 0.001" if value < 0.001 else "p = " + _fmt(value, "number", digits=3)


# ------------------------------------------------------------------------------- sales cycle and win rate

@on_slice("opportunities")
def cycle_and_win_rate(opportunities: pd.DataFrame, products: pd.DataFrame | None = None, by: str = "product_line",
                       *, ctx: KpiContext | None = None) -> pd.DataFrame:
    """Per `by` (`PRODUCT_BY`), the deals closed in `ctx`'s period (every closed deal without `ctx`): closed and
    won deals, win rate, won amount, and the median days from creation to close of the won deals (deals without a
    creation date are left out of it). Largest won amount first."""
    closed = closed_in_period(opportunities, ctx)
    keys = product_keys(closed["product_id"], products, by)
    won = won_mask(closed).to_numpy(dtype=bool)
    days = ((closed["closed_at"] - closed["created_at"]) / pd.Timedelta(days=1)).to_numpy(dtype="float64",
                                                                                          na_value=np.nan)
    frame = pd.DataFrame({"key": keys.to_numpy(), "won": won,
                          "won_amount": np.where(won, closed["amount"].astype("float64").fillna(0.0), 0.0),
                          "days": np.where(won, days, np.nan)})
    g = frame.groupby("key", sort=True)
    out = pd.DataFrame({"n_closed": g.size(), "n_won": g["won"].sum().astype("int64"),
                        "won_amount": g["won_amount"].sum(), "won_cycle_days": g["days"].median(),
                        "n_won_cycles": g["days"].count()})
    out["win_rate"] = out["n_won"] / out["n_closed"]
    out = out.rename_axis(by).reset_index()
    out = out[[by, "n_closed", "n_won", "win_rate", "won_amount", "won_cycle_days", "n_won_cycles"]]
    out = out.sort_values(["won_amount", by], ascending=[False, True], kind="stable").reset_index(drop=True)
    out.attrs["by"] = by
    return _with_names(out, products, by)


def describe_cycle(result: pd.DataFrame | None, *, min_won: int = 10, min_gap_days: float = 7.0) -> Finding | None:
    """The slowest and the fastest to close (median days of won deals; at least `min_won` won deals each) and their
    win rates — nothing when they differ by less than `min_gap_days` or tie."""
    if result is None or result.empty:
        return None
    by = result.attrs.get("by", result.columns[0])
    rated = result[(result["n_won_cycles"] >= min_won) & result["won_cycle_days"].notna()]
    if len(rated) < 2:
        return None
    slow = rated[rated["won_cycle_days"] == rated["won_cycle_days"].max()]
    fast = rated[rated["won_cycle_days"] == rated["won_cycle_days"].min()]
    gap = float(slow["won_cycle_days"].iloc[0] - fast["won_cycle_days"].iloc[0])
    if len(slow) > 1 or len(fast) > 1 or gap < min_gap_days:
        return None
    s, f = slow.iloc[0], fast.iloc[0]
    return finding(_("{slow} takes longest to sell (median {slow_days} from creation to a won deal, win rate "
                     "{slow_rate}); {fast} is quickest ({fast_days}, win rate {fast_rate}).", slow=str(s[by]),
                     slow_days=_fmt(s["won_cycle_days"], "days"), slow_rate=_fmt(s["win_rate"], "rate"),
                     fast=str(f[by]), fast_days=_fmt(f["won_cycle_days"], "days"),
                     fast_rate=_fmt(f["win_rate"], "rate")), "info")


def _periods(s: Any, days: int) -> int:
    """How many periods of the slice's kind cover `days` days."""
    length = max((pd.Timestamp(s.period.end) - pd.Timestamp(s.period.start)).days, 1)
    return max(2, min(400, -(-days // length)))


# ------------------------------------------------------------------------------------------- headline KPIs

def _period_contracts(frames: Frames, ctx: KpiContext) -> pd.DataFrame | None:
    contracts = frames.get("contracts")
    if contracts is None:
        return None
    return contracts[in_period(contracts["signed_at"], ctx).to_numpy(dtype=bool)]


@register_kpi("gross_margin", label="Gross margin", unit="amount", direction="higher", tables=("contracts",),
              area=AREA, description="Revenue minus cost of sales of the contracts signed in the period: "
              "`contracts.amount` − `contracts.cost_amount` (or `products.unit_cost` × `quantity` where a contract "
              "records no cost). No value when the source records no cost.")
def kpi_gross_margin(frames: Frames, ctx: KpiContext) -> float | None:
    parts = _revenue_and_cost(frames, ctx)
    return None if parts is None else parts[0] - parts[1]


def _revenue_and_cost(frames: Frames, ctx: KpiContext) -> tuple[float, float] | None:
    """Revenue and cost of sales of the period's contracts whose cost is known; None without contracts or costs."""
    contracts = _period_contracts(frames, ctx)
    if contracts is None or contracts.empty:
        return None
    cost, basis = cost_of_sales(contracts, frames.get("products") if "products" in frames else None)
    if basis is None:
        return None
    known = cost.notna()
    return float(contracts.loc[known, "amount"].sum()), float(cost[known].sum())


@register_kpi("margin_rate", label="Margin rate", unit="rate", direction="higher", tables=("contracts",),
              area=AREA, description="Gross margin ÷ the revenue of the contracts whose cost is known, signed in the "
              "period.")
def kpi_margin_rate(frames: Frames, ctx: KpiContext) -> float | None:
    parts = _revenue_and_cost(frames, ctx)
    return None if parts is None else ratio(parts[0] - parts[1], parts[0])


@register_kpi("cross_sell_win_rate", label="Cross-sell and upsell win rate", unit="rate", direction="higher",
              tables=("opportunities",), area=AREA,
              description="Won ÷ closed opportunities of deal type cross_sell or upsell closed in the period.")
def kpi_cross_sell_win_rate(frames: Frames, ctx: KpiContext) -> float | None:
    opps = frames.get("opportunities")
    if opps is None:
        return None
    closed = closed_in_period(opps, ctx)
    closed = closed[isin(closed["deal_type"].astype("string"), list(EXPANSION_TYPES)).to_numpy(dtype=bool)]
    return ratio(float(won_mask(closed).sum()), len(closed)) if len(closed) else None


@register_kpi("expansion_bookings_share", label="Cross-sell and upsell share of bookings", unit="rate",
              direction="higher", tables=("opportunities",), area=AREA,
              description="Won amount of the cross_sell and upsell opportunities closed in the period ÷ the won amount "
              "of every opportunity closed in it.")
def kpi_expansion_bookings_share(frames: Frames, ctx: KpiContext) -> float | None:
    opps = frames.get("opportunities")
    if opps is None:
        return None
    won = closed_in_period(opps, ctx)
    won = won[won_mask(won).to_numpy(dtype=bool)]
    expand = isin(won["deal_type"].astype("string"), list(EXPANSION_TYPES)).to_numpy(dtype=bool)
    total = float(won["amount"].sum())
    return ratio(float(won.loc[expand, "amount"].sum()), total) if total > 0 else None


@register_kpi("complaint_tickets", label="Complaint tickets", unit="count", direction="lower", tables=("tickets",),
              area=AREA, description="Tickets of category `complaint` opened in the period.")
def kpi_complaint_tickets(frames: Frames, ctx: KpiContext) -> float | None:
    tickets = frames.get("tickets")
    if tickets is None:
        return None
    opened = tickets[in_period(tickets["opened_at"], ctx).to_numpy(dtype=bool)]
    if opened.empty:
        return 0.0
    category = opened["category"].astype("string").str.lower()
    return None if category.isna().all() else float(category.eq(COMPLAINT).fillna(False).sum())


def headline_kpis(s: Any) -> list[str]:
    """The notebook's headline KPIs."""
    return ["contract_amount", "gross_margin", "margin_rate", "expansion_bookings_share", "complaint_tickets"]
