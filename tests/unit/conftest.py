"""Demo-data fixtures: each dataset is generated once per session and shared by the tests that need it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from crmlens.demo import generate
from crmlens.schema import TABLE_NAMES

DemoFolders = Callable[[str, int], Path]
DemoFrames = Callable[[str, int], dict[str, pd.DataFrame]]


@pytest.fixture(scope="session")
def demo_folder(tmp_path_factory: pytest.TempPathFactory, tiny_demo: Path) -> DemoFolders:
    """`demo_folder(scale, seed)`: the folder of a demo dataset, generated on first use (the tiny seed-7
    dataset is the shared `tiny_demo` of tests/conftest.py; test_demo checks it is exactly that)."""
    made: dict[tuple[str, int], Path] = {("tiny", 7): tiny_demo}

    def folder(scale: str, seed: int) -> Path:
        if (scale, seed) not in made:
            out = tmp_path_factory.mktemp(f"demo_{scale}_{seed}")
            generate(scale, seed, out)
            made[scale, seed] = out
        return made[scale, seed]

    return folder


@pytest.fixture(scope="session")
def demo_frames(demo_folder: DemoFolders) -> DemoFrames:
    """`demo_frames(scale, seed)`: every table of a demo dataset as pandas frames (do not modify them)."""
    loaded: dict[tuple[str, int], dict[str, pd.DataFrame]] = {}

    def frames(scale: str, seed: int) -> dict[str, pd.DataFrame]:
        if (scale, seed) not in loaded:
            folder = demo_folder(scale, seed)
            loaded[scale, seed] = {name: pd.read_parquet(folder / f"{name}.parquet") for name in TABLE_NAMES}
        return loaded[scale, seed]

    return frames


@pytest.fixture(scope="session")
def demo_dir(demo_folder: DemoFolders) -> Path:
    """The tiny demo dataset, seed 7."""
    return demo_folder("tiny", 7)


@pytest.fixture(scope="session")
def demo_tables(demo_frames: DemoFrames) -> dict[str, pd.DataFrame]:
    """The tiny demo dataset, seed 7, as pandas frames (do not modify them)."""
    return demo_frames("tiny", 7)
