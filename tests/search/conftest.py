"""Fixtures of the search and export tests: a small analysed run of the tiny test model (no weights)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dinoscope.embed.registry import _REGISTRY, register_model
from tests.helpers import make_yolo_dataset


@pytest.fixture(autouse=True)
def tiny_model() -> Iterator[str]:
    register_model("tiny-cnn", "tests.embed.fakes:create_tiny", "seed0", "test model")
    yield "tiny-cnn"
    _REGISTRY.pop("tiny-cnn", None)


@pytest.fixture(scope="package")
def _analysed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from dinoscope.workflows.pipeline import run_pipeline

    register_model("tiny-cnn", "tests.embed.fakes:create_tiny", "seed0", "test model")
    tmp = tmp_path_factory.mktemp("analysed")
    ds = make_yolo_dataset(tmp / "ds")
    run_pipeline(dataset=ds, out=tmp / "run", model="tiny-cnn", workers=0, map_method="pca", report=False)
    return tmp / "run", ds


@pytest.fixture
def analysed_run(_analysed: tuple[Path, Path], tiny_model: str) -> tuple[Path, Path]:
    """(run directory, dataset root) of the planted YOLO dataset analysed with the tiny model (shared by the
    tests of a module: they only add the index, search pages and exports)."""
    return _analysed
