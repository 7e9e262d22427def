"""Atomic writes: the final name appears only when the content is complete, with normal permissions."""

from __future__ import annotations

import os
import stat

import pytest

from crmlens import atomic


def test_a_failed_write_leaves_nothing_under_the_final_name(tmp_path):
    target = tmp_path / "report.txt"

    def half_then_crash(tmp):
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic.write_with(target, half_then_crash)
    assert list(tmp_path.iterdir()) == []


def test_files_get_the_mode_open_would_give(tmp_path):
    mask = os.umask(0)
    os.umask(mask)
    path = atomic.write_text(tmp_path / "a" / "b.txt", "ok")
    assert path.read_text() == "ok"
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask  # not mkstemp's 0600: results are shared
