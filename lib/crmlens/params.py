"""The one typed schema of the workbook's parameters, and where their values come from.

Every parameter a notebook, the CLI, a Voila filter or a dashboard deep link (``?region=East&period=2026-Q3``)
receives is validated by `Params` before it is used: papermill injects code into notebooks, so only validated
plain values (text, numbers, true/false, empty, and mappings of those) ever reach one.

Values are merged, later winning::

    params/defaults.yaml  <  params/regions.yaml[<region>]  <  explicit overrides (CLI, URL, code)

A bad value raises `crmlens.errors.ParameterError` naming the parameter, the bad value and what is allowed.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
import types
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crmlens import paths
from crmlens.errors import ParameterError
from crmlens.periods import (
    PERIOD_FORMS,
    Comparison,
    Period,
    check_fiscal_year_start,
    comparison_period,
    normalise_comparison,
    parse_period,
)

#: A per-analysis option value: plain JSON scalars only.
Scalar = str | int | float | bool | None

#: A region id as a parameter: what a source may call a region (1–64 characters, no control character). Ids become
#: folder names only through `crmlens.paths.safe_component`, and SQL only as literals, so "../x" or "EMEA$1" are
#: ids like any other.
_REGION_RE = re.compile(r"[^\x00-\x1f\x7f]{1,64}")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_CURRENCY_RE = re.compile(r"[A-Za-z]{3}")
_AREA_RE = re.compile(r"[A-Za-z0-9_]+")
_OPTION_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Set while `_validate` runs, so that `Params.__init__` leaves pydantic's errors to it.
_RAW_ERRORS: ContextVar[bool] = ContextVar("crmlens_params_raw_errors", default=False)


def _allowed(text: str) -> dict[str, Any]:
    return {"allowed": text}


class Params(BaseModel):
    """The parameters of one analysis: which slice of which data, compared with what, under which settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str = Field(
        "all",
        description="Sales region to analyse: a region_id of the source's regions table, or all for the "
        "whole company.",
        json_schema_extra=_allowed("a region_id of the source, or all"),
    )
    period: str = Field(
        "2026-Q3",
        description="Period to analyse: a year, quarter, month, ISO week or range of days (both dates "
        "included); years and quarters follow fiscal_year_start.",
        json_schema_extra=_allowed(PERIOD_FORMS),
    )
    comparison: Comparison = Field(
        "previous",
        description="What the period is compared with: previous (the period of the same length just before) "
        "or last_year (the same period one year earlier).",
        json_schema_extra=_allowed("previous or last_year (aliases: prev, prior, pop; yoy, ly, previous_year)"),
    )
    source: str = Field(
        "demo",
        description="Where the data comes from: demo (the generated dataset in data/demo), a folder of "
        "CSV/Parquet exports, or a database URL such as postgresql://host/db or duckdb:///path/file.duckdb.",
        json_schema_extra=_allowed("demo, a folder path, or a database URL (scheme://...)"),
    )
    mapping: str | None = Field(
        None,
        description="Mapping file that turns a folder of another CRM's exports into the canonical model, "
        "e.g. params/sources/hubspot.yaml (relative paths are from the project root). Empty when the source "
        "is already canonical.",
        json_schema_extra=_allowed("empty, or the path of a .yaml/.yml file"),
    )
    currency: str = Field(
        "USD",
        description="ISO 4217 code of the currency amounts are reported in.",
        json_schema_extra=_allowed("a 3-letter ISO 4217 code such as USD, EUR or SGD"),
    )
    fiscal_year_start: int = Field(
        1,
        description="Month (1–12) the fiscal year starts in; a fiscal year is named by the calendar year it "
        "starts in (with 4, period 2026 = 2026-04-01..2027-03-31 and 2026-Q1 = April–June 2026). "
        "1 = calendar years.",
        json_schema_extra=_allowed("1–12"),
    )
    as_of: date | None = Field(
        None,
        description="The 'today' of the analysis: later times count as in the future, and the elapsed share "
        "of the period is measured up to it. Empty = the end of the data's latest period.",
        json_schema_extra=_allowed("empty, or an ISO date such as 2026-10-01"),
    )
    forgotten_days: int = Field(
        60,
        description="A customer with no activity for this many days counts as forgotten.",
        json_schema_extra=_allowed("a whole number of days > 0"),
    )
    churn_days: int = Field(
        455,
        description="A customer whose latest purchase is this many days old or more counts as churned (not "
        "active): a yearly contract term plus a grace period by default (365 + 90); a retailer might use 90 or 180.",
        json_schema_extra=_allowed("a whole number of days > 0"),
    )
    language: str = Field(
        "en",
        description="Language of everything a reader sees (titles, text, table headers, KPI labels, findings, "
        "charts, dashboard controls, export headers): en (English) or zh (简体中文). Data values and names "
        "stay as in the source.",
        json_schema_extra=_allowed("en or zh (aliases: zh-CN, zh-Hans, cn, 中文; en-US, en-GB)"),
    )
    options: dict[str, dict[str, Scalar]] = Field(
        default_factory=dict,
        description="Per-analysis options keyed by notebook/area name, e.g. {pipeline: {min_amount: 1000}}.",
        json_schema_extra=_allowed(
            "a mapping of area name to a mapping of option name to text, a number, true/false or empty"
        ),
    )

    def __init__(self, **data: Any) -> None:
        if _RAW_ERRORS.get():  # `_validate` converts the errors itself, knowing where each value came from
            super().__init__(**data)
            return
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _parameter_error(exc) from None

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Params:  # type: ignore[override]
        """Validate `obj` (a mapping); errors are a ParameterError, as from `Params(...)`."""
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise _parameter_error(exc) from None

    # -- validators (each raises a ParameterError with the full message) --------------------------------

    @field_validator("region", mode="before")
    @classmethod
    def _check_region(cls, value: Any) -> str:
        text = value.strip() if isinstance(value, str) else value
        if isinstance(text, str) and text.lower() == "all":
            return "all"
        if not isinstance(text, str) or not _REGION_RE.fullmatch(text):
            raise ParameterError(
                f"region: {value!r} is not a region; use a region_id of the source (1 to 64 characters, no "
                "control characters) or all"
            )
        return text

    @field_validator("period", mode="before")
    @classmethod
    def _check_period(cls, value: Any) -> str:
        return parse_period(value).label  # the grammar does not depend on the fiscal year start

    @field_validator("comparison", mode="before")
    @classmethod
    def _check_comparison(cls, value: Any) -> str:
        return normalise_comparison(value)

    @field_validator("source", mode="before")
    @classmethod
    def _check_source(cls, value: Any) -> str:
        text = value.strip() if isinstance(value, str) else value
        allowed = "use demo, a folder of CSV/Parquet exports, or a database URL such as postgresql://host/db"
        if isinstance(value, Path):
            text = str(value)
        if not isinstance(text, str) or not text or any(ord(c) < 32 for c in text):
            raise ParameterError(f"source: {value!r} is not a source; {allowed}")
        if text.lower() == "demo":
            return "demo"
        if "://" in text and not _SCHEME_RE.fullmatch(text.split("://", 1)[0]):
            raise ParameterError(f"source: {value!r} is not a database URL (bad scheme); {allowed}")
        return text

    @field_validator("mapping", mode="before")
    @classmethod
    def _check_mapping(cls, value: Any) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        text = str(value).strip() if isinstance(value, str | Path) else None
        if text is None or any(ord(c) < 32 for c in text) or not text.lower().endswith((".yaml", ".yml")):
            raise ParameterError(
                f"mapping: {value!r} is not a mapping file; use the path of a .yaml/.yml file such as "
                "params/sources/hubspot.yaml, or leave it empty"
            )
        return text

    @field_validator("language", mode="before")
    @classmethod
    def _check_language(cls, value: Any) -> str:
        from crmlens.i18n import check_language

        return check_language(value if value is not None else "en")

    @field_validator("currency", mode="before")
    @classmethod
    def _check_currency(cls, value: Any) -> str:
        if not isinstance(value, str) or not _CURRENCY_RE.fullmatch(value.strip()):
            raise ParameterError(
                f"currency: {value!r} is not a currency code; use a 3-letter ISO 4217 code such as USD, EUR "
                "or SGD"
            )
        return value.strip().upper()

    @field_validator("fiscal_year_start", mode="before")
    @classmethod
    def _check_fiscal_year_start(cls, value: Any) -> int:
        return check_fiscal_year_start(value)

    @field_validator("as_of", mode="before")
    @classmethod
    def _check_as_of(cls, value: Any) -> date | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        try:
            if isinstance(value, datetime | pd.Timestamp):
                if value == value.replace(hour=0, minute=0, second=0, microsecond=0):
                    return date(value.year, value.month, value.day)
            elif isinstance(value, date):
                return value
            elif isinstance(value, str):
                return date.fromisoformat(value.strip())
        except ValueError:
            pass
        raise ParameterError(
            f"as_of: {value!r} is not a date; use an ISO date such as 2026-10-01, or leave it empty for the "
            "end of the data's latest period"
        )

    @field_validator("forgotten_days", "churn_days", mode="before")
    @classmethod
    def _check_days(cls, value: Any, info: Any) -> int:
        number = int(value.strip()) if isinstance(value, str) and value.strip().isdigit() else value
        if isinstance(number, float) and number.is_integer():
            number = int(number)
        if isinstance(number, bool) or not isinstance(number, int) or number <= 0:
            raise ParameterError(f"{info.field_name}: {value!r} is not allowed; use a whole number of days > 0")
        return number

    @field_validator("options", mode="before")
    @classmethod
    def _check_options(cls, value: Any) -> dict[str, dict[str, Scalar]]:
        allowed = "use {area: {option: value}} with text, number, true/false or empty values"
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ParameterError(f"options: {value!r} is not a mapping; {allowed}")
        out: dict[str, dict[str, Scalar]] = {}
        for area, area_options in value.items():
            if not isinstance(area, str) or not _AREA_RE.fullmatch(area):
                raise ParameterError(
                    f"options: {area!r} is not an area name; use a notebook/area name of letters, digits and _"
                )
            if area_options is None:
                area_options = {}
            if not isinstance(area_options, Mapping):
                raise ParameterError(f"options.{area}: {area_options!r} is not a mapping; {allowed}")
            out[area] = {}
            for name, item in area_options.items():
                if not isinstance(name, str) or not _OPTION_RE.fullmatch(name):
                    raise ParameterError(
                        f"options.{area}: {name!r} is not an option name; use letters, digits and _ "
                        "(not starting with a digit)"
                    )
                if not (item is None or isinstance(item, str | bool | int | float)) or (
                    isinstance(item, float) and not math.isfinite(item)
                ):
                    raise ParameterError(f"options.{area}.{name}: {item!r} is not a plain value; {allowed}")
                out[area][name] = item
        return out

    # -- derived values ---------------------------------------------------------------------------------

    def period_obj(self) -> Period:
        """The analysed period, placed by `fiscal_year_start`."""
        return parse_period(self.period, self.fiscal_year_start)

    def comparison_obj(self) -> Period:
        """The period the analysed period is compared with (see `comparison`)."""
        return comparison_period(self.period_obj(), self.comparison)

    def mapping_path(self) -> Path | None:
        """The mapping file as an absolute path; a relative path is taken from the project root (notebooks may
        run in another folder)."""
        if self.mapping is None:
            return None
        path = Path(self.mapping).expanduser()
        return path if path.is_absolute() else paths.PROJECT_ROOT / path

    def option(self, area: str, name: str, default: Scalar = None) -> Scalar:
        """The option `name` of `area` from `options`, or `default` when it is not set."""
        return self.options.get(area, {}).get(name, default)

    def check_region(self, known_regions: Iterable[str]) -> Params:
        """These parameters with `region` checked against the source's regions (matched ignoring case and
        spelled as the source spells it); an unknown region raises a ParameterError listing them."""
        region = match_region(self.region, known_regions)
        return self if region == self.region else self.model_copy(update={"region": region})

    def to_notebook_dict(self) -> dict[str, Any]:
        """The parameters as JSON-plain values (text, numbers, true/false, None, dicts), for papermill."""
        return self.model_dump(mode="json")


# -- errors -------------------------------------------------------------------------------------------------


def _parameter_error(exc: ValidationError, origins: Mapping[str, str] | None = None) -> ParameterError:
    """A ParameterError saying, for each problem, the parameter, the bad value and what is allowed."""
    lines: list[str] = []
    for err in exc.errors():
        loc = err.get("loc", ())
        name = ".".join(str(part) for part in loc)
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, ParameterError):
            line = str(cause)
        elif err["type"] == "extra_forbidden":
            known = list(Params.model_fields)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            line = (f"{name}: unknown parameter (value {err.get('input')!r}); "
                    f"the known parameters are: {', '.join(known)}{hint}")
        else:
            field = Params.model_fields.get(str(loc[0])) if loc else None
            extra = field.json_schema_extra if field is not None else None
            allowed = extra.get("allowed") if isinstance(extra, dict) else None
            line = f"{name or 'parameters'}: {err.get('input')!r} is not allowed ({err['msg']})"
            line += f"; use {allowed}" if allowed else ""
        top = line.split(":", 1)[0].split(".", 1)[0]
        if origins and top in origins:
            line += f" [set in {origins[top]}]"
        if line not in lines:
            lines.append(line)
    if len(lines) == 1:
        return ParameterError(lines[0])
    return ParameterError(f"{len(lines)} parameters are invalid:\n" + "\n".join(f"  - {line}" for line in lines))


def _validate(values: Mapping[str, Any], origins: Mapping[str, str] | None = None) -> Params:
    token = _RAW_ERRORS.set(True)
    try:
        return Params.__pydantic_validator__.validate_python(dict(values))
    except ValidationError as exc:
        raise _parameter_error(exc, origins) from None
    finally:
        _RAW_ERRORS.reset(token)


def match_region(region: str, known_regions: Iterable[str], *, param: str = "region") -> str:
    """`region` as the source spells it (exact, else ignoring case), or "all"; otherwise a ParameterError
    listing the source's regions."""
    known = [str(r) for r in known_regions]
    if region.strip().lower() == "all":
        return "all"
    if region in known:
        return region
    folded = [r for r in known if r.lower() == region.strip().lower()]
    if len(folded) == 1:
        return folded[0]
    close = difflib.get_close_matches(region, known, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    listed = ", ".join(sorted(known)) + " or all" if known else "all (the source has no regions)"
    raise ParameterError(f"{param}: {region!r} is not a region of this source; use {listed}{hint}")


def validate_params(values: Mapping[str, Any], *, known_regions: Iterable[str] | None = None) -> Params:
    """`Params` from plain values (a dict, CLI options, URL query), without reading the params files."""
    params = _validate(values)
    return params if known_regions is None else params.check_region(known_regions)


# -- loading ------------------------------------------------------------------------------------------------


def _read_yaml(path: Path, *, required: bool) -> dict[str, Any]:
    shown = paths.display_path(path)
    if not path.is_file():
        if required:
            raise ParameterError(f"params file {shown}: not found")
        return {}
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ParameterError(f"params file {shown}: not valid YAML ({exc})") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ParameterError(f"params file {shown}: must be a mapping of name: value, not {type(content).__name__}")
    return {str(key): value for key, value in content.items()}


def _region_overrides(path: Path, region: str, *, required: bool) -> tuple[str | None, dict[str, Any]]:
    table = _read_yaml(path, required=required)
    key = region if region in table else next((k for k in table if k.lower() == region.lower()), None)
    if key is None:
        return None, {}
    entry = table[key] or {}
    shown = paths.display_path(path)
    if not isinstance(entry, dict):
        raise ParameterError(f"params file {shown}: the overrides of region {key!r} must be a mapping of "
                             f"name: value, not {entry!r}")
    if "region" in entry:
        raise ParameterError(f"params file {shown}: the overrides of region {key!r} set region; "
                             "an override cannot change the region it applies to")
    return key, {str(k): v for k, v in entry.items()}


def _merge(merged: dict[str, Any], origins: dict[str, str], layer: Mapping[str, Any], where: str) -> None:
    for key, value in layer.items():
        value = copy.deepcopy(value)
        old = merged.get(key)
        if key == "options" and isinstance(value, dict) and isinstance(old, dict):
            for area, area_options in value.items():
                if isinstance(area_options, dict) and isinstance(old.get(area), dict):
                    old[area] = {**old[area], **area_options}
                else:
                    old[area] = area_options
        else:
            merged[key] = value
        origins[key] = where


def load_params(
    overrides: Mapping[str, Any] | None = None,
    *,
    defaults_path: Path | str | None = None,
    regions_path: Path | str | None = None,
    region: str | None = None,
    known_regions: Iterable[str] | None = None,
) -> Params:
    """The parameters: params/defaults.yaml < params/regions.yaml[region] < `overrides`.

    `region` (or ``overrides["region"]``, or the default region) chooses the region and so its overrides.
    Keys of `overrides` whose value is None are ignored (not given), so CLI options left unset can be passed
    as they are; ``options`` are merged per area. Paths default to the project's params/ folder; a default
    file that is missing is skipped (the model's defaults are the same), a path given that is missing is an
    error. When `known_regions` is given the region must be one of them (or all).
    """
    defaults_file = Path(defaults_path) if defaults_path is not None else paths.PARAMS_DIR / "defaults.yaml"
    regions_file = Path(regions_path) if regions_path is not None else paths.PARAMS_DIR / "regions.yaml"
    given = {str(k): v for k, v in (overrides or {}).items() if v is not None}
    if region is not None:
        if "region" in given and str(given["region"]).strip().lower() != region.strip().lower():
            raise ParameterError(f"region: given twice, as {region!r} and as {given['region']!r}; give it once")
        given["region"] = region

    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    _merge(merged, origins, _read_yaml(defaults_file, required=defaults_path is not None),
           paths.display_path(defaults_file))
    chosen = given.get("region", merged.get("region", Params.model_fields["region"].default))
    if isinstance(chosen, str):
        if known_regions is not None:
            known_regions = list(known_regions)
            chosen = match_region(chosen, known_regions)
        key, layer = _region_overrides(regions_file, chosen.strip(), required=regions_path is not None)
        if key is not None:
            chosen = chosen if known_regions is not None else key  # spelled as the source, else as the file
            _merge(merged, origins, layer, f"{paths.display_path(regions_file)}, region {key}")
    _merge(merged, origins, given, "the overrides")
    if isinstance(chosen, str):
        merged["region"] = chosen
    params = _validate(merged, origins)
    return params if known_regions is None else params.check_region(known_regions)


# -- documentation ------------------------------------------------------------------------------------------


def _type_text(annotation: Any, *, plain: bool = False) -> str:
    """A short type name; `plain` gives the type of the JSON value a notebook receives (a date is text)."""
    origin = get_origin(annotation)
    if annotation is type(None):
        return "None"
    if origin is Annotated:
        return _type_text(get_args(annotation)[0], plain=plain)
    if origin is Literal:
        return "str"
    if origin in (Union, types.UnionType):
        return " | ".join(dict.fromkeys(_type_text(arg, plain=plain) for arg in get_args(annotation)))
    if origin is dict:
        return "dict"
    if plain and annotation is date:
        return "str"
    return getattr(annotation, "__name__", str(annotation))


def _field_rows(params: Params | None, *, plain: bool = False) -> list[tuple[str, str, Any, str, str]]:
    values = (params or Params()).to_notebook_dict()
    rows = []
    for name, field in Params.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        rows.append((name, _type_text(field.annotation, plain=plain), values[name], str(extra.get("allowed", "")),
                     field.description or ""))
    return rows


def describe_params(params: Params | None = None) -> str:
    """Help text for every parameter (name, type, default, allowed values, help), generated from `Params`.

    Defaults shown are the model's, or the values of `params` when given (e.g. ``load_params()``).
    """
    lines = ["Parameters (defaults: params/defaults.yaml; per-region overrides: params/regions.yaml)", ""]
    for name, type_text, default, allowed, help_text in _field_rows(params):
        lines.append(f"{name}: {type_text} = {default!r}")
        lines.append(f"    {help_text}")
        lines.append(f"    allowed: {allowed}")
    return "\n".join(lines)


def parameters_cell(params: Params | None = None) -> str:
    """The source of a notebook's `parameters` cell, one ``name: type = value  # help`` line per parameter
    (the form papermill's ``--help-notebook`` reads)."""
    return "\n".join(
        f"{name}: {type_text} = {value!r}  # {help_text}"
        for name, type_text, value, _, help_text in _field_rows(params, plain=True)
    )


__all__ = [
    "Params",
    "Scalar",
    "describe_params",
    "load_params",
    "match_region",
    "parameters_cell",
    "validate_params",
]
