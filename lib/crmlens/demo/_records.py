"""A base for frozen dataclasses of parallel numpy arrays (one entry per row)."""

from __future__ import annotations

from dataclasses import fields
from typing import Self

import numpy as np


class Records:
    """Row selection and concatenation for dataclasses whose fields are equally long numpy arrays."""

    def take(self, rows: np.ndarray) -> Self:
        """The given rows (indices or a mask), as a new object."""
        return type(self)(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})  # type: ignore[arg-type]

    @classmethod
    def concat(cls, *parts: Self) -> Self:
        """The rows of every part, in order."""
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})  # type: ignore[arg-type]
