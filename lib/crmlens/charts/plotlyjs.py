"""plotly.js for the pages CRM Lens draws: a bundle with only the trace types the project's charts use, or the
plotly package's whole plotly.js when a figure needs another type.

The whole plotly.js (4.8 MB) takes a browser ~2 s of CPU to run before the first chart is drawn; the bundle
(`BUNDLE`, 1.4 MB: plotly.js's core with scatter, and the types `bundle_traces()` lists) ~0.4 s. Dashboard
pages, the dashboards' PDF pages and the region reports use the bundle whenever it draws every figure of the
page. The bundle is built by
``make plotly-bundle`` (tools/plotly-bundle: esbuild over the plotly.js npm package of the same version as the
one inside the plotly Python package) and committed; see docs/dependencies.md.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: The committed bundle (built by tools/plotly-bundle/build.mjs).
BUNDLE = Path(__file__).parent / "plotly" / "plotly-crmlens.min.js"
_TRACES_LINE = re.compile(r"Plotly\.crmlensTraces = (\[[^\]]*\]);\s*$")
_VERSION = re.compile(r"plotly\.js v(\d+\.\d+\.\d+)")


def full_path() -> Path:
    """The plotly package's whole plotly.js."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


@functools.cache
def bundle_traces() -> frozenset[str]:
    """The trace types the bundle draws (the list its last line gives the page: ``Plotly.crmlensTraces``)."""
    with BUNDLE.open("rb") as f:
        f.seek(max(0, BUNDLE.stat().st_size - 400))
        tail = f.read().decode("utf-8", "replace")
    found = _TRACES_LINE.search(tail)
    if not found:
        raise RuntimeError(f"{BUNDLE} does not end with its trace list: rebuild it with `make plotly-bundle`")
    return frozenset(json.loads(found.group(1)))


def bundle_version() -> str:
    """The plotly.js version of the bundle (its first comment)."""
    with BUNDLE.open("rb") as f:
        head = f.read(200).decode("utf-8", "replace")
    found = _VERSION.search(head)
    return found.group(1) if found else ""


def trace_types(figures: Iterable[Mapping[str, Any]]) -> set[str]:
    """The trace types of plotly figures given as dicts (``{"data": [...], ...}``); a trace without a type is
    a scatter, as plotly.js draws it."""
    return {str(trace.get("type") or "scatter") for fig in figures for trace in (fig.get("data") or [])}


def covers(types: Iterable[str]) -> bool:
    """Whether the bundle draws every one of these trace types."""
    return set(types) <= bundle_traces()


@functools.cache
def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def script_for(types: Iterable[str]) -> str:
    """The plotly.js to embed in a page whose figures have these trace types: the bundle when it draws them
    all, else the whole plotly.js."""
    return _read(BUNDLE if covers(types) else full_path())
