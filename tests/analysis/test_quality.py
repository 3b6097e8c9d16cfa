"""Image-quality flags: planted blurry, dark, over-exposed and flat images are found, and nothing else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from dinoscope.analysis.quality import BLUR_FLOOR, find_quality_issues, measure_image, measure_table
from dinoscope.io.dataset import read_dataset


def _scene(seed: int, size: int = 256) -> np.ndarray:
    """A textured mid-grey scene: random rectangles on noise-free gradients (sharp edges, normal exposure)."""
    rng = np.random.default_rng(seed)
    img = np.tile(np.linspace(60, 190, size, dtype=np.float32)[None, :, None], (size, 1, 3))
    for _ in range(25):
        x, y = rng.integers(0, size - 40, 2)
        w, h = rng.integers(10, 40, 2)
        img[y : y + h, x : x + w] = rng.integers(40, 220, 3)
    return img.astype(np.uint8)


def test_measures_say_what_they_claim() -> None:
    sharp = _scene(0)
    blurred = np.asarray(Image.fromarray(sharp).filter(ImageFilter.GaussianBlur(3)))
    m_sharp, m_blur = measure_image(sharp), measure_image(blurred)
    assert m_blur["sharpness"] < m_sharp["sharpness"] / 10
    assert abs(m_blur["brightness"] - m_sharp["brightness"]) < 0.01  # blur does not change exposure
    dark = (sharp * 0.1).astype(np.uint8)
    m_dark = measure_image(dark)
    assert m_dark["brightness"] < 0.1 and m_dark["contrast"] < m_sharp["contrast"]
    assert abs(np.log(m_dark["sharpness"] / m_sharp["sharpness"])) < 0.3  # darker is not blurrier


def test_planted_problems_are_flagged_exactly(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    images = {f"ok{i}": _scene(i) for i in range(10)}
    images["blurry"] = np.asarray(Image.fromarray(_scene(50)).filter(ImageFilter.GaussianBlur(2.5)))
    images["dark"] = (_scene(51).astype(np.float32) * 0.08).astype(np.uint8)
    images["bright"] = np.clip(_scene(52).astype(np.int32) + 200, 0, 255).astype(np.uint8)
    images["flat"] = np.full((256, 256, 3), 128, np.uint8) + np.random.default_rng(0).integers(
        0, 3, (256, 256, 3)
    ).astype(np.uint8)
    for name, arr in images.items():
        Image.fromarray(arr).save(folder / f"{name}.png")
    table = read_dataset(folder, "images").whole_images()
    result = find_quality_issues(measure_table(table))
    f = result.findings
    stems = table.data["source"].map(lambda s: Path(s).stem).to_numpy()
    flagged = {col: set(stems[f[col].to_numpy()]) for col in ("is_blurry", "is_dark", "is_overexposed")}
    assert flagged["is_blurry"] == {"blurry"}  # dark, bright and flat frames are not called blurry
    assert flagged["is_dark"] == {"dark"} and flagged["is_overexposed"] == {"bright"}
    assert set(stems[f["is_low_contrast"].to_numpy()]) == {"flat"}
    ok = f.loc[[s.startswith("ok") for s in stems]]
    assert not ok["is_quality_issue"].any() and (ok["quality_quality"] > 0.5).all()
    assert stems[np.argmin(f["blur_quality"].to_numpy())] == "blurry"
    assert result.summary["n_quality_issues"] == 4 and result.info["blur_floor"] == BLUR_FLOOR


def test_unreadable_image_is_reported_not_fatal(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(_scene(1)).save(folder / "a.png")
    Image.fromarray(_scene(2)).save(folder / "b.png")
    table = read_dataset(folder, "images").whole_images()
    (folder / "b.png").write_bytes(b"broken")  # broken after reading the table
    measures = measure_table(table)
    assert measures["error"].str.contains("b.png").sum() == 1 and measures["laplacian_var"].notna().sum() == 1
    f = find_quality_issues(measures).findings
    assert not f["is_quality_issue"].any()
