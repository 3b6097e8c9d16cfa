"""Fixtures of the patch-PCA tests: tiny random models in local folders (never the network)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from dinoscope.embed.registry import register_model
from tests.patches.helpers import save_tiny_dinov2


@pytest.fixture(scope="session")
def tiny_dinov2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny DINOv2 (32-d, patch 14) saved to a folder."""
    return save_tiny_dinov2(tmp_path_factory.mktemp("tiny-dinov2"))


@pytest.fixture(scope="session")
def tiny_dinov2_reg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same with 4 register tokens."""
    return save_tiny_dinov2(tmp_path_factory.mktemp("tiny-dinov2-reg"), registers=4, seed=1)


@pytest.fixture(scope="session", autouse=True)
def _patch_colour_model() -> None:
    """Register ``test-patch-colour`` (features = mean patch colour), whose PCA the tests can predict."""
    register_model("test-patch-colour", "tests.patches.helpers:create_patch_colour", "none", "test model")
