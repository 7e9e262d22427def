"""One exception root for CRM Lens, with a subclass per kind of problem.

Every message names what was wrong (parameter, table, column, file, row, value) and what is accepted.
"""

from __future__ import annotations


class CrmLensError(Exception):
    """Root of every error CRM Lens raises on purpose."""


class ParameterError(CrmLensError, ValueError):
    """A parameter (CLI option, notebook parameter, YAML setting, URL query) has a bad value."""


class SchemaError(CrmLensError):
    """Data does not fit the canonical model (unknown table, missing column, unusable table)."""


class SourceError(CrmLensError):
    """A data source cannot be reached or read (missing folder/file, bad URL, bad mapping file)."""


class RunError(CrmLensError):
    """A run of the workbook failed (raised by `crmlens.run`)."""
