"""Atomic file writes: write to a temporary file beside the target, then rename it into place.

A crash or Ctrl-C never leaves a half-written file under the final name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()  # what open() would give under this process's umask


def temp_beside(target: str | Path, suffix: str = ".tmp") -> Path:
    """A new empty temporary file in `target`'s folder (created if missing), hidden and named after it,
    with the mode open() would give (mkstemp makes 0600; results are meant to be shared)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    os.chmod(tmp, FILE_MODE)
    return Path(tmp)


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it is renamed to `target`."""
    tmp_path = temp_beside(target)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(target: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `target` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_with(target: str | Path, writer: Callable[[Path], object]) -> Path:
    """Call `writer(tmp_path)` and move the result to `target` atomically."""
    with atomic_path(target) as tmp:
        writer(tmp)
    return Path(target)
