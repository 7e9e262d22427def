"""The canonical CRM data model: every table, its grain, columns, keys, allowed values and relationships.

This module is the single source of truth. `docs/data_model.md` is generated from it
(`crmlens docs`), the validator (`crmlens.validate`) builds its checks from it, the demo generator
writes exactly these columns, and source mappings (`params/sources/*.yaml`) map into them.

Column names follow the suffix conventions: `*_id` keys, `*_at` timestamps (naive, UTC),
`*_date` calendar dates, `is_*` booleans, `n_*` counts, `*_amount` money, `*_rate` ratios.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import pandas as pd

DType = Literal["string", "int", "float", "bool", "timestamp", "date"]

#: pandas dtype used for each canonical type once a table is loaded and validated.
PANDAS_DTYPES: dict[str, str] = {
    "string": "string",
    "int": "Int64",
    "float": "float64",
    "bool": "boolean",
    "timestamp": "datetime64[us]",
    "date": "datetime64[us]",
}

# Fixed vocabularies of the canonical model. Vocabularies that differ between CRMs (sales stages)
# are named with "@" and resolved per source (see `Vocabulary` and `params/sources/*.yaml`).
DEAL_TYPES = ("new", "upsell", "cross_sell", "renewal")
FORECAST_CATEGORIES = ("pipeline", "best_case", "commit", "closed", "omitted")
EVENT_TYPES = ("impression", "open", "click", "register", "attend", "download", "visit")
ACTIVITY_TYPES = ("call", "email", "meeting", "visit", "demo", "task")
TARGET_LEVELS = ("company", "region", "team", "rep", "product_line")
INTEL_KINDS = ("launch", "price", "campaign", "press")
INVOICE_STATUSES = ("issued", "paid", "overdue", "void")
TICKET_PRIORITIES = ("low", "medium", "high", "urgent")
SIZE_BANDS = ("small", "mid", "large", "enterprise")
ACCOUNT_LEVELS = ("A", "B", "C")

#: Default ordered sales stages (the demo's). The last two are the closed stages.
DEFAULT_STAGES = ("Prospecting", "Qualification", "Proposal", "Negotiation", "Won", "Lost")


@dataclass(frozen=True)
class Vocabulary:
    """Per-source vocabularies: the ordered open stages and the won/lost stage names."""

    stages: tuple[str, ...] = DEFAULT_STAGES
    won_stage: str = "Won"
    lost_stage: str = "Lost"

    @property
    def open_stages(self) -> tuple[str, ...]:
        return tuple(s for s in self.stages if s not in (self.won_stage, self.lost_stage))

    def resolve(self, name: str) -> tuple[str, ...]:
        if name == "@stages":
            return self.stages
        raise KeyError(f"unknown vocabulary {name!r}; known: @stages")


@dataclass(frozen=True)
class Column:
    """One column of a canonical table."""

    name: str
    dtype: DType
    description: str
    nullable: bool = True
    allowed: tuple[str, ...] | str | None = None  # a tuple, or "@stages" for a per-source vocabulary
    min: float | None = None
    max: float | None = None
    references: str | None = None  # "table.column" this column is a foreign key to
    not_future: bool = False  # a timestamp that cannot be later than the as-of time
    warn_if_null: str | None = None  # nullable, but a missing value is reported (this text says why)
    custom_type: str | None = None  # a custom field kept by a mapping: its declared type (`CUSTOM_FIELD_TYPES`)

    def rules_text(self) -> str:
        """Human-readable list of the column's rules (for the generated docs)."""
        parts = ["required" if not self.nullable else "nullable"]
        if isinstance(self.allowed, tuple):
            parts.append("one of " + ", ".join(f"`{a}`" for a in self.allowed))
        elif isinstance(self.allowed, str):
            parts.append(f"one of the source's `{self.allowed}`")
        if self.min is not None:
            parts.append(f"≥ {self.min:g}")
        if self.max is not None:
            parts.append(f"≤ {self.max:g}")
        if self.references:
            parts.append(f"→ `{self.references}`")
        if self.not_future:
            parts.append("not in the future")
        return "; ".join(parts)


#: Types a mapping may declare for a custom field (`custom_fields:`, docs/mappings.md) → the canonical type it is
#: read and stored as. "category" is text meant for grouping (a segment, a gender, a tier); "string" is free text.
CUSTOM_FIELD_TYPES: dict[str, DType] = {
    "string": "string",
    "category": "string",
    "integer": "int",
    "number": "float",
    "boolean": "bool",
    "timestamp": "timestamp",
    "date": "date",
}


def custom_field_problem(table: Table, name: str, declared: str) -> str | None:
    """Why `name` cannot be a custom field of `table` with type `declared` (None when it can).

    A custom field may not take a canonical column's name (compared ignoring case, as SQL engines do), nor
    start with ``_`` (reserved for meta columns such as ``_source_row``)."""
    if declared not in CUSTOM_FIELD_TYPES:
        return f"type {declared!r} is not a custom field type; use one of: {', '.join(CUSTOM_FIELD_TYPES)}"
    if not name.strip() or name != name.strip():
        return f"{name!r} is not a usable name (empty, or leading/trailing spaces)"
    if name.startswith("_"):
        return f"{name!r} starts with '_', which is reserved for meta columns such as _source_row"
    clash = next((c for c in table.column_names if c.lower() == name.lower()), None)
    if clash is not None:
        return (f"{name!r} clashes with the canonical column {clash!r} of {table.name}; map the value to "
                f"{clash!r} under columns, or give the custom field another name (e.g. 'src_{name}')")
    return None


RuleCheck = Callable[[pd.DataFrame, Vocabulary], pd.Series]
#: The same rule as a SQL boolean (TRUE where the row is fine) over columns prefixed by the given alias.
RuleSql = Callable[[Vocabulary, str], str]


@dataclass(frozen=True)
class RowRule:
    """An invariant across columns of one row. `check` returns True where the row is fine."""

    name: str
    description: str
    columns: tuple[str, ...]
    check: RuleCheck
    sql: RuleSql


@dataclass(frozen=True)
class PeriodFilter:
    """How a table is cut to a period.

    kind "at": the row's time (the first non-null of `columns`) falls inside the period.
    kind "span": the row's interval [columns[0], columns[1] or open] overlaps the period;
    a missing start counts as "since ever" (e.g. an opportunity whose create date is unknown).
    """

    kind: Literal["at", "span"]
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """One canonical table."""

    name: str
    grain: str
    description: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    kind: Literal["dimension", "fact"] = "fact"
    period: PeriodFilter | None = None
    region: str | tuple[str, str] | None = None  # a column, or (parent table, fk column) to reach region_id
    rules: tuple[RowRule, ...] = field(default_factory=tuple)

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def custom_fields(self) -> dict[str, str]:
        """The custom fields of this table (name → declared type); empty for the canonical table."""
        return {c.name: c.custom_type for c in self.columns if c.custom_type is not None}

    def with_custom_fields(self, fields: Mapping[str, str]) -> Table:
        """This table plus custom fields (name → declared type, one of `CUSTOM_FIELD_TYPES`) after its columns.

        A custom field is nullable and has no rule but its type: a value that cannot be read as the type
        rejects its row, as for a canonical column. A bad name or type raises `SchemaError`."""
        if not fields:
            return self
        from crmlens.errors import SchemaError

        extra: list[Column] = []
        seen: dict[str, str] = {}
        for name, declared in fields.items():
            problem = custom_field_problem(self, name, declared)
            if problem is None and name.lower() in seen:
                problem = f"{name!r} and {seen[name.lower()]!r} differ only by case"
            if problem is not None:
                raise SchemaError(f"custom field {self.name}.{name}: {problem}")
            seen[name.lower()] = name
            extra.append(Column(name, CUSTOM_FIELD_TYPES[declared], f"Custom field ({declared}) kept by the mapping.",
                                custom_type=declared))
        return replace(self, columns=self.columns + tuple(extra))

    @property
    def foreign_keys(self) -> Iterator[tuple[Column, str, str]]:
        for col in self.columns:
            if col.references:
                parent, parent_col = col.references.split(".")
                yield col, parent, parent_col


def _ordered(left: str, op: str, right: str, name: str, description: str) -> RowRule:
    """`left` `op` `right` (>= or <=) wherever both are given."""
    compare = {">=": pd.Series.ge, "<=": pd.Series.le}[op]

    def check(df: pd.DataFrame, _: Vocabulary) -> pd.Series:
        a, b = df[left], df[right]
        return (a.isna() | b.isna() | compare(a, b)).astype(bool)

    def sql(_: Vocabulary, t: str) -> str:
        a, b = f'{t}"{left}"', f'{t}"{right}"'
        return f"({a} IS NULL OR {b} IS NULL OR {a} {op} {b})"

    return RowRule(name=name, description=description, columns=(left, right), check=check, sql=sql)


def _not_before(later: str, earlier: str) -> RowRule:
    return _ordered(later, ">=", earlier, f"{later}_not_before_{earlier}", f"`{later}` is not before `{earlier}`")


def _at_most(part: str, whole: str) -> RowRule:
    """`part` is not larger than `whole` (clicks of impressions, approved conversions of conversions)."""
    return _ordered(part, "<=", whole, f"{part}_at_most_{whole}", f"`{part}` is at most `{whole}`")


def _opportunity_closed_consistency(df: pd.DataFrame, vocab: Vocabulary) -> pd.Series:
    closed_stage = df["stage"].isin([vocab.won_stage, vocab.lost_stage]).fillna(False).astype(bool)
    won_stage = (df["stage"] == vocab.won_stage).fillna(False).astype(bool)
    has_closed_at = df["closed_at"].notna()
    is_won = df["is_won"]
    won_ok = is_won.isna() | (is_won.fillna(False).astype(bool) == won_stage)
    # open rows carry no outcome; closed rows carry a close time
    outcome_ok = ~(~closed_stage & is_won.notna())
    return (won_ok & outcome_ok & (has_closed_at == closed_stage)).astype(bool)


def _opportunity_closed_consistency_sql(vocab: Vocabulary, t: str) -> str:
    """`_opportunity_closed_consistency` in SQL."""
    def q(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    stage, closed_at, is_won = f'{t}"stage"', f'{t}"closed_at"', f'{t}"is_won"'
    closed_stage = f"coalesce({stage} IN ({q(vocab.won_stage)}, {q(vocab.lost_stage)}), FALSE)"
    won_stage = f"coalesce({stage} = {q(vocab.won_stage)}, FALSE)"
    won_ok = f"({is_won} IS NULL OR {is_won} = {won_stage})"
    outcome_ok = f"NOT (NOT {closed_stage} AND {is_won} IS NOT NULL)"
    return f"({won_ok} AND {outcome_ok} AND (({closed_at} IS NOT NULL) = {closed_stage}))"


def _c(name: str, dtype: DType, description: str, **kw: object) -> Column:
    return Column(name, dtype, description, **kw)  # type: ignore[arg-type]


TABLES: tuple[Table, ...] = (
    Table(
        "regions", "One row per sales region.", "The sales regions results are reported by.",
        key=("region_id",), kind="dimension", region="region_id",
        columns=(
            _c("region_id", "string", "Region identifier, used in parameters and URLs.", nullable=False),
            _c("name", "string", "Display name of the region.", nullable=False),
            _c("country", "string", "Main country of the region.", nullable=False),
        ),
    ),
    Table(
        "teams", "One row per sales team.", "Sales teams; each belongs to one region.",
        key=("team_id",), kind="dimension", region="region_id",
        columns=(
            _c("team_id", "string", "Team identifier.", nullable=False),
            _c("name", "string", "Team name.", nullable=False),
            _c("region_id", "string", "Region of the team.", nullable=False, references="regions.region_id"),
            _c("manager_rep_id", "string", "Rep who manages the team.", references="reps.rep_id"),
        ),
    ),
    Table(
        "reps", "One row per sales rep.", "Sales representatives (agents).",
        key=("rep_id",), kind="dimension", region="region_id",
        columns=(
            _c("rep_id", "string", "Rep identifier.", nullable=False),
            _c("name", "string", "Rep's name.", nullable=False),
            _c("team_id", "string", "Team of the rep.", references="teams.team_id"),
            _c("region_id", "string", "Region of the rep.", nullable=False, references="regions.region_id"),
            _c("hired_at", "timestamp", "When the rep joined.", not_future=True),
            _c("is_active", "bool", "Whether the rep still works here.", nullable=False),
        ),
    ),
    Table(
        "products", "One row per product.", "The product catalogue.",
        key=("product_id",), kind="dimension",
        columns=(
            _c("product_id", "string", "Product identifier.", nullable=False),
            _c("name", "string", "Product name.", nullable=False),
            _c("product_line", "string", "Product line (series) the product belongs to.", nullable=False),
            _c("category", "string", "Product category."),
            _c("list_price", "float", "List price per unit.", min=0),
            _c("unit_cost", "float", "Cost per unit.", min=0),
        ),
    ),
    Table(
        "accounts", "One row per customer company.", "Customer and prospect companies (客户). A mapping may "
        "keep custom fields of the source after these columns (see docs/mappings.md, Custom fields).",
        key=("account_id",), kind="dimension", region="region_id",
        columns=(
            _c("account_id", "string", "Account identifier.", nullable=False),
            _c("name", "string", "Company name.", nullable=False),
            _c("industry", "string", "Industry (sector)."),
            _c("size_band", "string", "Company size band.", allowed=SIZE_BANDS),
            _c("country", "string", "Country of the account."),
            _c("province", "string", "Province or state."),
            _c("city", "string", "City."),
            _c("region_id", "string", "Sales region owning the account.", references="regions.region_id"),
            _c("level", "string", "Customer level (客户级别): A most valuable.", allowed=ACCOUNT_LEVELS),
            _c("source_channel", "string", "Channel the account came from."),
            _c("owner_rep_id", "string", "Rep who owns the account; empty while in the public pool.",
               references="reps.rep_id"),
            _c("created_at", "timestamp", "When the account was created.", not_future=True),
            _c("is_public_pool", "bool", "Whether the account sits in the public pool (公海) with no owner."),
            _c("pool_entered_at", "timestamp", "When the account last entered the public pool.",
               not_future=True),
            _c("churned_at", "timestamp", "When the customer was lost (churned), for sources that record "
               "churn; empty while a customer.", not_future=True),
        ),
        rules=(_not_before("churned_at", "created_at"),),
    ),
    Table(
        "contacts", "One row per person at an account.", "People at customer companies.",
        key=("contact_id",), kind="dimension", region=("accounts", "account_id"),
        columns=(
            _c("contact_id", "string", "Contact identifier.", nullable=False),
            _c("account_id", "string", "Account the person works for.", nullable=False,
               references="accounts.account_id"),
            _c("owner_rep_id", "string", "Rep who owns the contact.", references="reps.rep_id"),
            _c("role", "string", "Role (decision maker, champion, user, ...)."),
            _c("created_at", "timestamp", "When the contact was created.", not_future=True),
        ),
    ),
    Table(
        "campaigns", "One row per marketing campaign.", "Marketing campaigns and their cost.",
        key=("campaign_id",), kind="dimension", region="region_id",
        columns=(
            _c("campaign_id", "string", "Campaign identifier.", nullable=False),
            _c("name", "string", "Campaign name."),
            _c("channel", "string", "Marketing channel.", nullable=False),
            _c("region_id", "string", "Region targeted; empty for global campaigns.",
               references="regions.region_id"),
            _c("started_at", "timestamp", "Campaign start; empty when the source does not date its campaigns (an "
               "undated campaign counts in every period)."),
            _c("ended_at", "timestamp", "Campaign end."),
            _c("cost_amount", "float", "Total cost of the campaign.", min=0),
        ),
        rules=(_not_before("ended_at", "started_at"),),
    ),
    Table(
        "campaign_events", "One row per engagement event.", "Engagement with campaigns.",
        key=("event_id",), period=PeriodFilter("at", ("occurred_at",)), region=("campaigns", "campaign_id"),
        columns=(
            _c("event_id", "string", "Event identifier.", nullable=False),
            _c("campaign_id", "string", "Campaign engaged with.", nullable=False,
               references="campaigns.campaign_id"),
            _c("lead_id", "string", "Lead who engaged, when known.", references="leads.lead_id"),
            _c("account_id", "string", "Account that engaged, when known.", references="accounts.account_id"),
            _c("event_type", "string", "Kind of engagement.", nullable=False, allowed=EVENT_TYPES),
            _c("occurred_at", "timestamp", "When it happened.", nullable=False, not_future=True),
        ),
    ),
    Table(
        "campaign_metrics", "One row per campaign (or ad) and day; a source without dates has one row per ad for "
        "the whole campaign.",
        "Aggregated advertising figures as ad platforms report them (Facebook, Google, Baidu, WeChat, Douyin ads): "
        "impressions, clicks, spend and conversions per campaign, ad, day and audience — beside, or instead of, "
        "the individual events of `campaign_events`. The region comes through the campaign. A row without "
        "`report_date` counts in every period (cut as the span [report_date, report_date], an empty date being "
        "open at both ends). Duplicate keys are found among the rows whose four key columns are all given.",
        key=("campaign_id", "ad_id", "report_date", "audience"),
        period=PeriodFilter("span", ("report_date", "report_date")), region=("campaigns", "campaign_id"),
        columns=(
            _c("campaign_id", "string", "Campaign the figures are for.", nullable=False,
               references="campaigns.campaign_id"),
            _c("ad_id", "string", "Ad (or ad set) within the campaign, when the source breaks figures down by ad."),
            _c("report_date", "date", "Day the figures are for; empty when the source does not date its figures "
               "(an undated row counts in every period).", not_future=True),
            _c("audience", "string", "Audience the figures are for, when the source breaks them down (e.g. age "
               "band, gender, interest: `30-34 · M · interest 15`)."),
            _c("n_impressions", "int", "Times the ad was shown (展示量).", min=0),
            _c("n_clicks", "int", "Clicks on the ad (点击量).", min=0),
            _c("spend_amount", "float", "Money spent on the ad (花费).", min=0),
            _c("n_conversions", "int", "Conversions the platform counted (转化), e.g. enquiries or sign-ups.",
               min=0),
            _c("n_approved_conversions", "int", "Conversions confirmed by the advertiser (有效转化), e.g. "
               "enquiries that bought.", min=0),
        ),
        rules=(_at_most("n_clicks", "n_impressions"), _at_most("n_approved_conversions", "n_conversions")),
    ),
    Table(
        "leads", "One row per lead.", "Leads (线索) and their progress through MQL and SQL.",
        key=("lead_id",), period=PeriodFilter("at", ("created_at",)), region="region_id",
        columns=(
            _c("lead_id", "string", "Lead identifier.", nullable=False),
            _c("created_at", "timestamp", "When the lead was created.", nullable=False, not_future=True),
            _c("source_channel", "string", "Channel the lead came from.", nullable=False),
            _c("campaign_id", "string", "Campaign that produced the lead.", references="campaigns.campaign_id"),
            _c("region_id", "string", "Region of the lead.", nullable=False, references="regions.region_id"),
            _c("owner_rep_id", "string", "Rep following the lead up.", references="reps.rep_id"),
            _c("first_response_at", "timestamp", "First contact by a rep.", not_future=True),
            _c("mql_at", "timestamp", "When marketing qualified it (MQL).", not_future=True),
            _c("sql_at", "timestamp", "When sales accepted it (SQL).", not_future=True),
            _c("opportunity_id", "string", "Opportunity it converted into.",
               references="opportunities.opportunity_id"),
            _c("disqualified_at", "timestamp", "When it was disqualified.", not_future=True),
        ),
        rules=(
            _not_before("mql_at", "created_at"),
            _not_before("sql_at", "mql_at"),
            _not_before("first_response_at", "created_at"),
        ),
    ),
    Table(
        "opportunities", "One row per opportunity.", "Sales opportunities (商机) from creation to won/lost.",
        key=("opportunity_id",), period=PeriodFilter("span", ("created_at", "closed_at")), region="region_id",
        columns=(
            _c("opportunity_id", "string", "Opportunity identifier.", nullable=False),
            _c("account_id", "string", "Customer account; some CRMs allow early opportunities without one.",
               references="accounts.account_id",
               warn_if_null="opportunity kept, but account-level analyses leave it out"),
            _c("owner_rep_id", "string", "Rep who owns the deal.", nullable=False, references="reps.rep_id"),
            _c("product_id", "string", "Main product of the deal.", references="products.product_id"),
            _c("region_id", "string", "Region the deal is booked in.", nullable=False,
               references="regions.region_id"),
            _c("created_at", "timestamp", "When the opportunity was created (engaged).", not_future=True,
               warn_if_null="opportunity kept, but time-based analyses (cycle, cohorts) leave it out"),
            _c("stage", "string", "Current sales stage.", nullable=False, allowed="@stages"),
            _c("amount", "float", "Deal value (expected while open, booked when won).", min=0),
            _c("probability", "float", "Win probability, 0–1.", min=0, max=1),
            _c("forecast_category", "string", "Forecast category.", allowed=FORECAST_CATEGORIES),
            _c("expected_close_date", "date", "When the rep expects to close."),
            _c("closed_at", "timestamp", "When it was won or lost; empty while open.", not_future=True),
            _c("is_won", "bool", "True if won, False if lost, empty while open."),
            _c("loss_reason", "string", "Why it was lost."),
            _c("competitor", "string", "Main competitor on the deal."),
            _c("deal_type", "string", "New business, upsell, cross-sell or renewal.", allowed=DEAL_TYPES),
        ),
        rules=(
            _not_before("closed_at", "created_at"),
            RowRule(
                "outcome_matches_stage",
                "closed stages have `closed_at` and `is_won` agreeing with the stage; open stages have neither",
                ("stage", "closed_at", "is_won"),
                _opportunity_closed_consistency,
                _opportunity_closed_consistency_sql,
            ),
        ),
    ),
    Table(
        "opportunity_stage_history", "One row per stage entry of an opportunity.",
        "Every stage an opportunity entered, and when it left it.",
        key=("opportunity_id", "stage", "entered_at"), period=PeriodFilter("span", ("entered_at", "exited_at")),
        region=("opportunities", "opportunity_id"),
        columns=(
            _c("opportunity_id", "string", "Opportunity.", nullable=False,
               references="opportunities.opportunity_id"),
            _c("stage", "string", "Stage entered.", nullable=False, allowed="@stages"),
            _c("entered_at", "timestamp", "When it entered the stage.", nullable=False, not_future=True),
            _c("exited_at", "timestamp", "When it left the stage; empty if still there.", not_future=True),
        ),
        rules=(_not_before("exited_at", "entered_at"),),
    ),
    Table(
        "contracts", "One row per signed contract.", "Contracts (合同) signed from won deals.",
        key=("contract_id",), period=PeriodFilter("at", ("signed_at",)), region="region_id",
        columns=(
            _c("contract_id", "string", "Contract identifier.", nullable=False),
            _c("opportunity_id", "string", "Won opportunity behind it.", references="opportunities.opportunity_id"),
            _c("account_id", "string", "Customer.", nullable=False, references="accounts.account_id"),
            _c("product_id", "string", "Product sold.", references="products.product_id"),
            _c("owner_rep_id", "string", "Rep credited.", nullable=False, references="reps.rep_id"),
            _c("region_id", "string", "Region credited.", nullable=False, references="regions.region_id"),
            _c("signed_at", "timestamp", "When it was signed.", nullable=False, not_future=True),
            _c("quantity", "int", "Units sold.", min=0),
            _c("amount", "float", "Contract value.", nullable=False, min=0),
            _c("cost_amount", "float", "Cost of goods sold.", min=0),
        ),
    ),
    Table(
        "payments", "One row per payment received.", "Payments received (回款) against contracts.",
        key=("payment_id",), period=PeriodFilter("at", ("received_at",)), region=("contracts", "contract_id"),
        columns=(
            _c("payment_id", "string", "Payment identifier.", nullable=False),
            _c("contract_id", "string", "Contract paid.", nullable=False, references="contracts.contract_id"),
            _c("received_at", "timestamp", "When the money arrived.", nullable=False, not_future=True),
            _c("amount", "float", "Amount received.", nullable=False, min=0),
        ),
    ),
    Table(
        "invoices", "One row per invoice.", "Invoices issued against contracts.",
        key=("invoice_id",), period=PeriodFilter("at", ("issued_at",)), region=("contracts", "contract_id"),
        columns=(
            _c("invoice_id", "string", "Invoice identifier.", nullable=False),
            _c("contract_id", "string", "Contract invoiced.", nullable=False, references="contracts.contract_id"),
            _c("issued_at", "timestamp", "When it was issued.", nullable=False, not_future=True),
            _c("due_date", "date", "When payment is due."),
            _c("amount", "float", "Invoiced amount.", nullable=False, min=0),
            _c("status", "string", "Invoice status.", nullable=False, allowed=INVOICE_STATUSES),
        ),
    ),
    Table(
        "credit_notes", "One row per credit note.",
        "Credits to customers (退货/退款/取消订单): returns, refunds and cancelled orders. A credit reduces its "
        "customer's net revenue; it is never a purchase. Sources that record none have no such table.",
        key=("credit_note_id",), period=PeriodFilter("at", ("credited_at",)), region="region_id",
        columns=(
            _c("credit_note_id", "string", "Credit note identifier.", nullable=False),
            _c("account_id", "string", "Customer credited.", nullable=False, references="accounts.account_id"),
            _c("contract_id", "string", "Contract (purchase) credited, when the source links it.",
               references="contracts.contract_id"),
            _c("product_id", "string", "Product returned or cancelled.", references="products.product_id"),
            _c("region_id", "string", "Region credited.", nullable=False, references="regions.region_id"),
            _c("credited_at", "timestamp", "When the credit was issued.", nullable=False, not_future=True),
            _c("quantity", "int", "Units returned or cancelled (a positive number).", min=0),
            _c("amount", "float", "Value credited back to the customer (a positive number).", nullable=False,
               min=0),
            _c("reason", "string", "Why: return, refund, cancellation, ..."),
        ),
    ),
    Table(
        "activities", "One row per rep activity.", "Follow-ups (跟进): calls, emails, meetings, visits, demos, tasks.",
        key=("activity_id",), period=PeriodFilter("at", ("occurred_at", "due_at")), region="region_id",
        columns=(
            _c("activity_id", "string", "Activity identifier.", nullable=False),
            _c("rep_id", "string", "Rep who did (or owes) it.", nullable=False, references="reps.rep_id"),
            _c("region_id", "string", "Region of the rep at the time.", nullable=False,
               references="regions.region_id"),
            _c("account_id", "string", "Account concerned.", references="accounts.account_id"),
            _c("opportunity_id", "string", "Opportunity concerned.", references="opportunities.opportunity_id"),
            _c("lead_id", "string", "Lead concerned.", references="leads.lead_id"),
            _c("activity_type", "string", "Kind of activity.", nullable=False, allowed=ACTIVITY_TYPES),
            _c("due_at", "timestamp", "When it was due (planned activities); may be in the future."),
            _c("occurred_at", "timestamp", "When it happened; empty if not done yet.", not_future=True),
            _c("completed_at", "timestamp", "When it was marked complete.", not_future=True),
        ),
        rules=(_not_before("completed_at", "occurred_at"),),
    ),
    Table(
        "tickets", "One row per service request.", "Customer service tickets.",
        key=("ticket_id",), period=PeriodFilter("span", ("opened_at", "resolved_at")),
        region=("accounts", "account_id"),
        columns=(
            _c("ticket_id", "string", "Ticket identifier.", nullable=False),
            _c("account_id", "string", "Customer who opened it.", nullable=False, references="accounts.account_id"),
            _c("product_id", "string", "Product concerned.", references="products.product_id"),
            _c("opened_at", "timestamp", "When it was opened.", nullable=False, not_future=True),
            _c("first_response_at", "timestamp", "First answer from us.", not_future=True),
            _c("resolved_at", "timestamp", "When it was resolved; empty while unresolved.", not_future=True),
            _c("category", "string", "Category (complaint, question, defect, ...)."),
            _c("priority", "string", "Priority.", allowed=TICKET_PRIORITIES),
        ),
        rules=(_not_before("first_response_at", "opened_at"), _not_before("resolved_at", "opened_at")),
    ),
    Table(
        "surveys", "One row per survey response.", "Customer satisfaction (CSAT) and NPS responses.",
        key=("survey_id",), period=PeriodFilter("at", ("responded_at",)), region=("accounts", "account_id"),
        columns=(
            _c("survey_id", "string", "Response identifier.", nullable=False),
            _c("account_id", "string", "Responding customer.", nullable=False, references="accounts.account_id"),
            _c("product_id", "string", "Product rated.", references="products.product_id"),
            _c("rep_id", "string", "Rep rated.", references="reps.rep_id"),
            _c("responded_at", "timestamp", "When they answered.", nullable=False, not_future=True),
            _c("csat", "int", "Satisfaction, 1–5.", min=1, max=5),
            _c("nps", "int", "Likelihood to recommend, 0–10.", min=0, max=10),
            _c("driver", "string", "Main reason given."),
        ),
    ),
    Table(
        "targets", "One row per target (period × level × key).", "Sales targets (目标).",
        key=("period", "level", "key"), kind="dimension",
        columns=(
            _c("period", "string", "Period the target is for, e.g. 2026-Q3 or 2026-09.", nullable=False),
            _c("level", "string", "What the target is set on.", nullable=False, allowed=TARGET_LEVELS),
            _c("key", "string", "Which one: a region_id, team_id, rep_id, product_line or `company`.",
               nullable=False),
            _c("target_amount", "float", "Bookings target.", nullable=False, min=0),
            _c("n_target_deals", "int", "Target number of won deals.", min=0),
        ),
    ),
    Table(
        "market", "One row per period × region × product line × competitor.",
        "Market size and competitors' sales, from market research. The segment's market size repeats on "
        "each competitor row: de-duplicate by (period, region_id, product_line) before summing it.",
        key=("period", "region_id", "product_line", "competitor"), kind="dimension", region="region_id",
        columns=(
            _c("period", "string", "Period of the figure, e.g. 2026-Q3.", nullable=False),
            _c("region_id", "string", "Region.", nullable=False, references="regions.region_id"),
            _c("product_line", "string", "Product line.", nullable=False),
            _c("market_size_amount", "float", "Total market size of the segment.", min=0),
            _c("competitor", "string", "Competitor the next figure is for.", nullable=False),
            _c("competitor_sales_amount", "float", "That competitor's sales in the segment.", min=0),
        ),
    ),
    Table(
        "competitor_intel", "One row per intelligence item.", "News about competitors: launches, prices, press.",
        key=("intel_id",), period=PeriodFilter("at", ("occurred_at",)), region="region_id",
        columns=(
            _c("intel_id", "string", "Item identifier.", nullable=False),
            _c("occurred_at", "timestamp", "When it happened.", nullable=False, not_future=True),
            _c("competitor", "string", "Competitor concerned.", nullable=False),
            _c("kind", "string", "Kind of news.", nullable=False, allowed=INTEL_KINDS),
            _c("region_id", "string", "Region concerned; empty if global.", references="regions.region_id"),
            _c("summary", "string", "What happened."),
        ),
    ),
)

SCHEMA: dict[str, Table] = {t.name: t for t in TABLES}
TABLE_NAMES: tuple[str, ...] = tuple(SCHEMA)


def table(name: str) -> Table:
    """The canonical table called `name`; unknown names raise a `SchemaError` listing the known ones."""
    from crmlens.errors import SchemaError

    try:
        return SCHEMA[name]
    except KeyError:
        raise SchemaError(f"unknown table {name!r}; the canonical tables are: {', '.join(TABLE_NAMES)}") from None


def load_order() -> list[str]:
    """Tables ordered so that every table comes after the tables its foreign keys point to.

    Cycles (teams.manager_rep_id ↔ reps.team_id, leads ↔ opportunities) are broken by ignoring nullable
    back-references.
    """
    deps = {
        t.name: {parent for col, parent, _ in t.foreign_keys if parent != t.name and not col.nullable}
        for t in TABLES
    }
    order: list[str] = []
    pending = list(TABLE_NAMES)
    while pending:
        progressed = False
        for name in list(pending):
            if deps[name] <= set(order):
                order.append(name)
                pending.remove(name)
                progressed = True
        if not progressed:  # pragma: no cover - guarded by a unit test on the model
            raise RuntimeError(f"foreign-key cycle among required columns: {pending}")
    return order
