"""Fixtures of the pipeline tests: a tiny registered model (no weights, 32 px crops)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dinoscope.embed.registry import _REGISTRY, register_model


@pytest.fixture(autouse=True)
def tiny_model() -> Iterator[str]:
    register_model("tiny-cnn", "tests.embed.fakes:create_tiny", "seed0", "test model")
    yield "tiny-cnn"
    _REGISTRY.pop("tiny-cnn", None)
