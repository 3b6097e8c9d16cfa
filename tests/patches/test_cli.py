"""``dinoscope patches fit | merge | render`` through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from dinoscope.cli.main import app
from tests.patches.helpers import object_image, write_image

runner = CliRunner()


def test_fit_merge_render(tiny_dinov2: Path, tmp_path: Path) -> None:
    for i in range(4):
        write_image(tmp_path / "clips" / f"c{i % 2}" / f"{i}.png", object_image(56, seed=i))
    common = ["--model", str(tiny_dinov2), "--input-size", "28", "--components", "3"]
    for k in range(2):
        args = ["patches", "fit", str(tmp_path / "clips"), "--out", str(tmp_path / f"p{k}.json"), "--shard", f"{k}/2"]
        result = runner.invoke(app, [*args, *common])
        assert result.exit_code == 0, result.output
        text = " ".join(result.output.split())  # rich wraps long lines
        assert "2 frames from 1 clip," in text and "explained variance ratio" in text
    result = runner.invoke(
        app,
        ["patches", "merge", str(tmp_path / "p0.json"), str(tmp_path / "p1.json"), "--out", str(tmp_path / "m.json")],
    )
    assert result.exit_code == 0, result.output
    assert "merged 2 fits: 4 frames, 16 patches, 2 clips" in " ".join(result.output.split())
    assert json.loads((tmp_path / "m.json").read_text())["configuration"]["total_patches"] == 16

    image = tmp_path / "clips" / "c0" / "0.png"
    out = tmp_path / "map.png"
    args = ["patches", "render", str(image), "--pca", str(tmp_path / "m.json"), "--out", str(out), "--overlay", "0.5"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (56, 56)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n-components", "4"], "n_components"),
        (["--scale", "global"], "scale"),
    ],
)
def test_bad_options_are_one_red_line(tmp_path: Path, args: list[str], message: str) -> None:
    image = write_image(tmp_path / "a.png", object_image(28))
    result = runner.invoke(app, ["patches", "render", str(image), "--pca", "x.json", "--out", "o.png", *args])
    assert result.exit_code == 1
    assert result.output.startswith("error:") and message in result.output


def test_missing_pca_file(tmp_path: Path) -> None:
    image = write_image(tmp_path / "a.png", object_image(28))
    result = runner.invoke(
        app, ["patches", "render", str(image), "--pca", str(tmp_path / "none.json"), "--out", "o.png"]
    )
    assert result.exit_code == 1 and "PCA file not found" in " ".join(result.output.split())
