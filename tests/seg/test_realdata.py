"""seg on real crack images (../shared/data/cracks-uav75, read by path, never copied into the repo)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from dinoscope.cli.main import app
from tests.seg.test_train_predict_eval import _constant_model

runner = CliRunner()


def test_import_and_eval_the_real_val_split(cracks_dir: Path, tmp_path: Path) -> None:
    """The val folder imports as a mask folder (10 images, all with crack), and a model that predicts every
    pixel finds exactly the 8,196 crack pixels SOURCE.md counts: recall 1, precision = crack share 0.313%."""
    out = runner.invoke(app, ["seg", "import", str(cracks_dir / "val"), "--out", str(tmp_path / "val")])
    assert out.exit_code == 0, out.output
    assert "10 imported" in out.output
    stem = sorted((cracks_dir / "val" / "masks").glob("*.png"))[0].name
    assert np.array_equal(
        np.asarray(Image.open(tmp_path / "val" / "masks" / stem)),
        np.asarray(Image.open(cracks_dir / "val" / "masks" / stem)),
    )
    model = _constant_model(tmp_path / "m", logit=8.0, side=512)  # one window per image
    out = runner.invoke(app, ["seg", "eval", str(model), str(tmp_path / "val"), "--json", "--device", "cpu"])
    assert out.exit_code == 0, out.output
    got = json.loads(out.output)
    assert got["n_images"] == 10 and got["recall"] == 1.0
    assert round(got["precision"] * 10 * 512 * 512) == 8196
