"""CRM Lens: a reproducible, tested analysis workbook for CRM market analytics."""

from __future__ import annotations

import warnings
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("crmlens")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

# Known noise from our pinned stack that users cannot act on (see docs/dependencies.md):
# ibis 12 calls duckdb's deprecated fetch_arrow_table(), and asks pandas 3 for a deprecated option.
warnings.filterwarnings("ignore", message=r"fetch_arrow_table\(\) is deprecated", category=DeprecationWarning)
warnings.filterwarnings("ignore", message=r"The 'future.infer_string' option is deprecated")

__all__ = ["__version__"]
