"""One torch thread in the segmentation tests: tiny networks gain nothing from more, and on a loaded 2-core
machine two spinning threads made a 32-px training step 10x slower."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    try:
        import torch
    except ImportError:  # the import, prepare and split tests need no torch
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
