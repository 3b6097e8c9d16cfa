"""dinov2:<model>: a frozen (tiny, random) DINOv2 with a light decoder trains, saves without its backbone, and
refuses other backbone weights when loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from dinoscope.config import build_config
from dinoscope.errors import BackendError
from dinoscope.seg.config import SegTrainConfig
from dinoscope.seg.model import load_checkpoint
from dinoscope.seg.train import train_segmentation
from tests.seg_fixtures import write_seg_data

transformers = pytest.importorskip("transformers")
TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "mlp_ratio": 2,
    "image_size": 28,
    "patch_size": 14,
}


def _tiny_dinov2(folder: Path, seed: int) -> Path:
    import torch

    torch.manual_seed(seed)
    transformers.Dinov2Model(transformers.Dinov2Config(**TINY)).save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_frozen_dinov2_decoder_trains_and_checks_its_backbone(tmp_path: Path) -> None:
    import torch

    backbone = _tiny_dinov2(tmp_path / "dino", seed=0)
    data = write_seg_data(tmp_path / "data", n=5, side=56)
    config = build_config(
        SegTrainConfig,
        data=data,
        out=tmp_path / "m",
        model=f"dinov2:{backbone}",
        input_size=28,
        epochs=1,
        batch_size=4,
        device="cpu",
        precision="fp32",
        workers=0,
    )
    before = {k: v.clone() for k, v in transformers.Dinov2Model.from_pretrained(backbone).state_dict().items()}
    result = train_segmentation(config)
    assert result.settings["input_size"] == 28 and len(result.history) == 1
    saved = torch.load(tmp_path / "m" / "checkpoints" / "best.pt", weights_only=True)
    assert saved["info"]["multiple"] == 14 and not any(k.startswith("backbone.") for k in saved["state_dict"])
    net, _, _ = load_checkpoint(tmp_path / "m" / "checkpoints" / "best.pt")
    assert all(torch.equal(before[k], v) for k, v in net.backbone.state_dict().items())  # frozen: unchanged
    assert net.eval()(torch.zeros(1, 3, 28, 42)).shape == (1, 1, 28, 42)
    _tiny_dinov2(backbone, seed=1)  # other weights under the same name
    with pytest.raises(BackendError, match="backbone weights"):
        load_checkpoint(tmp_path / "m" / "checkpoints" / "best.pt")
