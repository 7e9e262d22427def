"""Each planted truth of crmlens.truths can be recovered from the generated demo data.

Every check is an independent pandas computation over the canonical tables, following the definition
written in the truth's docstring; nothing is read from the generator's internals.
"""

from __future__ import annotations

import pandas as pd
import pytest

from crmlens.truths import (
    CHANNEL_ROI,
    CHURN_DRIVERS,
    COMPETITOR_STRONGHOLD,
    DEMO_END,
    FORGOTTEN_CUSTOMERS,
    FUNNEL_BOTTLENECK,
    Q4_SEASONALITY,
    REGION_IDS,
    RISING_COMPLAINTS,
    SUDDEN_DROP,
    TEAM_BELOW_TARGET,
)

Frames = dict[str, pd.DataFrame]
END = pd.Timestamp(DEMO_END)


@pytest.fixture(params=[7, 11], ids=lambda s: f"seed{s}")
def tables(request: pytest.FixtureRequest, demo_frames) -> Frames:
    """The tiny demo dataset for two seeds: truths must not depend on luck."""
    return demo_frames("tiny", request.param)


def bookings(t: Frames) -> pd.DataFrame:
    """Won opportunities (the bookings) with their close quarter."""
    won = t["opportunities"][t["opportunities"]["is_won"].eq(True)]
    return won.assign(quarter=won["closed_at"].dt.to_period("Q"))


# --- a. funnel bottleneck -----------------------------------------------------------------------------

def funnel_rates(t: Frames) -> pd.DataFrame:
    """Per region (and 'others' pooled): lead→MQL, MQL→SQL and SQL→opportunity rates."""
    leads = t["leads"]
    group = leads["region_id"].where(leads["region_id"] == FUNNEL_BOTTLENECK.region_id, "others")
    flags = pd.DataFrame({
        "lead": 1, "mql": leads["mql_at"].notna(), "sql": leads["sql_at"].notna(),
        "opp": leads["sql_at"].notna() & leads["opportunity_id"].notna(),
    }).groupby(group).sum()
    return pd.DataFrame({
        "lead_to_mql": flags["mql"] / flags["lead"],
        "mql_to_sql": flags["sql"] / flags["mql"],
        "sql_to_opportunity": flags["opp"] / flags["sql"],
    })


def test_funnel_bottleneck(tables: Frames) -> None:
    rates = funnel_rates(tables)
    east, others = rates.loc[FUNNEL_BOTTLENECK.region_id], rates.loc["others"]
    assert east["sql_to_opportunity"] < 0.6 * others["sql_to_opportunity"], rates
    assert east["sql_to_opportunity"] == pytest.approx(FUNNEL_BOTTLENECK.rate, abs=0.03)
    assert others["sql_to_opportunity"] == pytest.approx(FUNNEL_BOTTLENECK.others_rate, abs=0.03)
    for step in ("lead_to_mql", "mql_to_sql"):
        assert east[step] == pytest.approx(others[step], rel=0.2), (step, rates)


def test_converted_leads_precede_their_opportunity(tables: Frames) -> None:
    leads = tables["leads"].dropna(subset=["opportunity_id"])
    opps = tables["opportunities"].set_index("opportunity_id").loc[leads["opportunity_id"]]
    assert (opps["created_at"].to_numpy() > leads["sql_at"].to_numpy()).all()
    assert (opps["region_id"].to_numpy() == leads["region_id"].to_numpy()).all()
    assert set(opps["deal_type"]) == {"new"}


# --- b. Q4 seasonality --------------------------------------------------------------------------------

def q4_ratios(t: Frames) -> pd.DataFrame:
    """Per year: Q4 / mean(Q1..Q3) of bookings amount and of contracts signed."""
    amount = bookings(t).groupby("quarter")["amount"].sum()
    signed = t["contracts"]["signed_at"].dt.to_period("Q").value_counts()
    rows = {}
    for year in Q4_SEASONALITY.years:
        qs = [pd.Period(f"{year}Q{q}") for q in (1, 2, 3)]
        q4 = pd.Period(f"{year}Q4")
        rows[year] = {
            "amount": amount.get(q4, 0.0) / amount.reindex(qs, fill_value=0.0).mean(),
            "contracts": signed.get(q4, 0) / signed.reindex(qs, fill_value=0).mean(),
        }
    return pd.DataFrame(rows).T


def test_q4_seasonality(tables: Frames) -> None:
    ratios = q4_ratios(tables)
    assert (ratios > 1.2).all().all(), ratios
    assert ratios.to_numpy().mean() == pytest.approx(Q4_SEASONALITY.ratio, rel=0.2), ratios


# --- c. competitor stronghold -------------------------------------------------------------------------

def competitor_view(t: Frames) -> dict[str, float]:
    """Win rate against the competitor in / outside its region, and market shares in / outside it."""
    truth = COMPETITOR_STRONGHOLD
    opps = t["opportunities"]
    fought = opps[(opps["competitor"] == truth.competitor) & opps["closed_at"].notna()
                  & (opps["deal_type"] != "renewal")]
    here = fought["region_id"] == truth.region_id
    market = t["market"]
    segments = market.drop_duplicates(["period", "region_id", "product_line"])
    size = segments.groupby(segments["region_id"] == truth.region_id)["market_size_amount"].sum()
    rival = market[market["competitor"] == truth.competitor]
    rival_sales = rival.groupby(rival["region_id"] == truth.region_id)["competitor_sales_amount"].sum()
    won = bookings(t)
    won = won[won["closed_at"] <= END]
    ours = won.groupby(won["region_id"] == truth.region_id)["amount"].sum()
    return {
        "win_rate_here": fought.loc[here, "is_won"].astype(bool).mean(),
        "win_rate_elsewhere": fought.loc[~here, "is_won"].astype(bool).mean(),
        "rival_share_here": rival_sales[True] / size[True],
        "our_share_here": ours[True] / size[True],
        "rival_share_elsewhere": rival_sales[False] / size[False],
        "our_share_elsewhere": ours[False] / size[False],
    }


def test_competitor_stronghold(tables: Frames) -> None:
    v = competitor_view(tables)
    assert v["win_rate_here"] < 0.5 * v["win_rate_elsewhere"], v
    assert v["rival_share_here"] > v["our_share_here"], v
    assert v["our_share_elsewhere"] > v["rival_share_elsewhere"], v


# --- d. marketing ROI ---------------------------------------------------------------------------------

def channel_roi(t: Frames) -> pd.Series:
    """ROI per campaign channel: (won revenue of the channel's leads − campaign cost) / cost."""
    campaigns = t["campaigns"]
    cost = campaigns.groupby("channel")["cost_amount"].sum()
    leads = t["leads"].dropna(subset=["campaign_id", "opportunity_id"])
    won = t["opportunities"].loc[t["opportunities"]["is_won"].eq(True), ["opportunity_id", "amount"]]
    revenue = (leads.merge(campaigns[["campaign_id", "channel"]], on="campaign_id")
               .merge(won, on="opportunity_id").groupby("channel")["amount"].sum())
    return (revenue.reindex(cost.index, fill_value=0.0) - cost) / cost


def test_channel_roi(tables: Frames) -> None:
    roi = channel_roi(tables)
    assert roi.idxmax() == CHANNEL_ROI.best_channel, roi
    assert roi[CHANNEL_ROI.negative_channel] < 0, roi
    assert (roi.drop([CHANNEL_ROI.best_channel, CHANNEL_ROI.negative_channel]) > 0).all(), roi


# --- e. churn drivers ---------------------------------------------------------------------------------

def churn_view(t: Frames) -> pd.DataFrame:
    """Per group (churned / retained): activity in the recent vs earlier window, unresolved tickets."""
    truth = CHURN_DRIVERS
    contracts = t["contracts"].groupby("account_id")["signed_at"].agg(["min", "max"])
    term = pd.Timedelta(days=truth.contract_term_days)
    churn_date = contracts["max"] + term
    churned = churn_date + pd.Timedelta(days=truth.grace_days) <= END
    cutoff = END - pd.Timedelta(days=truth.grace_days)
    ref = churn_date.where(churned, cutoff)
    lookback = pd.Timedelta(days=truth.earlier_window_days[0])
    retained = ~churned & (contracts["min"] <= cutoff - lookback)
    group = pd.Series(pd.NA, index=contracts.index, dtype="string")
    group[churned] = "churned"
    group[retained] = "retained"
    group = group.dropna()

    acts = t["activities"].dropna(subset=["account_id", "occurred_at"])
    acts = acts[acts["account_id"].isin(group.index)]
    age = (ref.loc[acts["account_id"]].to_numpy() - acts["occurred_at"].to_numpy()) / pd.Timedelta(days=1)
    recent = (age > 0) & (age <= truth.recent_window_days)
    earlier = (age > truth.earlier_window_days[1]) & (age <= truth.earlier_window_days[0])
    per_group = group.loc[acts["account_id"]].to_numpy()
    activity = pd.DataFrame({"group": per_group, "recent": recent, "earlier": earlier}).groupby("group").sum()

    tickets = t["tickets"][t["tickets"]["account_id"].isin(group.index)]
    r = ref.loc[tickets["account_id"]].to_numpy()
    opened = tickets["opened_at"].to_numpy()
    resolved = tickets["resolved_at"]
    open_at_ref = ((opened < r) & (opened >= r - pd.Timedelta(days=truth.ticket_window_days))
                   & (resolved.isna().to_numpy() | (resolved.to_numpy() > r)))
    unresolved = pd.Series(open_at_ref, index=tickets.index).groupby(
        group.loc[tickets["account_id"]].to_numpy()).sum()
    view = activity.assign(
        accounts=group.value_counts(),
        unresolved_per_account=unresolved / group.value_counts(),
    )
    return view.assign(activity_ratio=view["recent"] / view["earlier"])


def test_churn_drivers(tables: Frames) -> None:
    v = churn_view(tables)
    assert v.loc["churned", "accounts"] >= 10, v
    assert v.loc["churned", "activity_ratio"] < 0.5, v
    assert v.loc["retained", "activity_ratio"] > 0.7, v
    assert v.loc["churned", "activity_ratio"] < 0.5 * v.loc["retained", "activity_ratio"], v
    assert v.loc["churned", "unresolved_per_account"] >= 5 * v.loc["retained", "unresolved_per_account"], v
    assert v.loc["churned", "unresolved_per_account"] == pytest.approx(CHURN_DRIVERS.unresolved_tickets_churned,
                                                                        rel=0.35), v


# --- f. rising complaints -----------------------------------------------------------------------------

def complaints_by_quarter(t: Frames) -> pd.DataFrame:
    """Complaint tickets per product line (rows) and quarter of the truth (columns)."""
    tickets = t["tickets"][t["tickets"]["category"] == RISING_COMPLAINTS.category]
    lines = tickets.merge(t["products"][["product_id", "product_line"]], on="product_id")
    counts = lines.groupby([lines["product_line"], lines["opened_at"].dt.to_period("Q").astype(str)]).size()
    table = counts.unstack(fill_value=0)
    quarters = [q.replace("-", "") for q in RISING_COMPLAINTS.quarters]
    return table.reindex(columns=quarters, fill_value=0)


def test_rising_complaints(tables: Frames) -> None:
    counts = complaints_by_quarter(tables)
    planted = counts.loc[RISING_COMPLAINTS.product_line]
    steps = planted.diff().dropna()
    assert (steps > 0).sum() >= len(steps) - 1 and (steps >= 0).all(), counts
    assert planted.iloc[-1] >= 2 * planted.iloc[0], counts
    others = counts.drop(RISING_COMPLAINTS.product_line)
    ratio = others.iloc[:, -1] / others.iloc[:, 0]
    assert ratio.between(0.6, 1.6).all(), counts


# --- g. forgotten customers ---------------------------------------------------------------------------

def forgotten_share(t: Frames) -> pd.Series:
    """Per active rep: share of owned accounts without activity in the last `inactive_days` days."""
    truth = FORGOTTEN_CUSTOMERS
    accounts = t["accounts"]
    owned = accounts[accounts["owner_rep_id"].notna() & ~accounts["is_public_pool"].astype(bool)]
    since = END - pd.Timedelta(days=truth.inactive_days)
    acts = t["activities"]
    touched = set(acts.loc[acts["occurred_at"] > since, "account_id"].dropna())
    quiet = ~owned["account_id"].isin(touched)
    active = set(t["reps"].loc[t["reps"]["is_active"], "rep_id"])
    share = quiet.groupby(owned["owner_rep_id"]).mean()
    return share[share.index.isin(active)]


def test_forgotten_customers(tables: Frames) -> None:
    share = forgotten_share(tables)
    named = share.reindex(list(FORGOTTEN_CUSTOMERS.rep_ids))
    others = share.drop(list(FORGOTTEN_CUSTOMERS.rep_ids))
    assert (named > 0.5).all(), named
    assert others.max() < named.min(), share.sort_values()
    assert others.quantile(0.9) <= FORGOTTEN_CUSTOMERS.others_max_share, share.sort_values()


# --- h. team below target -----------------------------------------------------------------------------

def team_attainment(t: Frames, period: str) -> pd.Series:
    """Per team: bookings of its reps in `period` / its target."""
    won = bookings(t)
    won = won[won["quarter"] == pd.Period(period.replace("-", ""))]
    team_of = t["reps"].set_index("rep_id")["team_id"]
    actual = won.groupby(team_of.loc[won["owner_rep_id"]].to_numpy())["amount"].sum()
    targets = t["targets"]
    target = targets[(targets["level"] == "team") & (targets["period"] == period)].set_index("key")["target_amount"]
    return actual.reindex(target.index, fill_value=0.0) / target


def test_team_below_target(tables: Frames) -> None:
    truth = TEAM_BELOW_TARGET
    attainment = team_attainment(tables, truth.period)
    assert attainment[truth.team_id] == pytest.approx(truth.attainment, abs=0.02), attainment
    others = attainment.drop(truth.team_id)
    assert others.between(*truth.others_range).all(), attainment


# --- i. sudden drop -----------------------------------------------------------------------------------

def drop_ratios(t: Frames) -> pd.Series:
    """Per region: new leads in the drop month / mean of the `baseline_months` months before."""
    truth = SUDDEN_DROP
    leads = t["leads"]
    month = pd.Period(truth.month, "M")
    per_month = leads.groupby([leads["region_id"], leads["created_at"].dt.to_period("M")]).size()
    table = per_month.unstack(fill_value=0)
    baseline = table[[month - k for k in range(1, truth.baseline_months + 1)]].mean(axis=1)
    return table[month] / baseline


def test_sudden_drop(tables: Frames) -> None:
    ratios = drop_ratios(tables)
    assert ratios[SUDDEN_DROP.region_id] < 0.7, ratios
    assert ratios[SUDDEN_DROP.region_id] == pytest.approx(SUDDEN_DROP.ratio, abs=0.15), ratios
    assert (ratios.drop(SUDDEN_DROP.region_id) > 0.8).all(), ratios
    assert set(ratios.index) == set(REGION_IDS)
