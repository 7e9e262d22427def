"""CRM Lens: a reproducible, tested analysis workbook for CRM market analytics."""

from __future__ import annotations

import warnings

# Known noise from our pinned stack that users cannot act on (see docs/dependencies.md):
# ibis 12 calls duckdb's deprecated fetch_arrow_table(), and asks pandas 3 for a deprecated option.
warnings.filterwarnings("ignore", message=r"fetch_arrow_table\(\) is deprecated", category=DeprecationWarning)
warnings.filterwarnings("ignore", message=r"The 'future.infer_string' option is deprecated")

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    """`__version__`, looked up on first use (importlib.metadata costs ~0.1 s at a notebook's start)."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("crmlens")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        found = "0.0.0"
    globals()["__version__"] = found
    return found
