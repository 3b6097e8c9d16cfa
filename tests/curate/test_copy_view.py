"""The denoised copy view: a copy that salt-and-pepper noise moves out of the plain duplicate rule's reach is
caught by ``select`` and ``split`` (default ``--denoise-copies``), and missed with ``--no-denoise-copies``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from dinoscope import embed
from dinoscope.analysis.curation import build_curation_graph, find_copy_groups, find_view_copy_groups
from dinoscope.cli.main import app
from dinoscope.embed.spec import CropSpec
from tests.curate.conftest import write_photos

runner = CliRunner()


def _photo(name: str) -> int:
    return int(re.match(r"p(\d+)_c", Path(name).name).group(1))


def test_crop_spec_keys_of_plain_crops_are_unchanged() -> None:
    assert "denoise" not in CropSpec().to_dict()  # existing stores and caches keep their keys
    assert CropSpec(denoise=True).key() != CropSpec().key()


def test_views_merge_groups_and_the_noisy_copy_joins_in_the_denoised_view(tmp_path: Path) -> None:
    from dinoscope.embed.crops import crops_for_table
    from dinoscope.embed.stage import EmbeddingModel
    from dinoscope.embed.views import embed_denoised
    from dinoscope.io.dataset import read_dataset
    from tests.embed.fakes import TinyCNN

    write_photos(tmp_path / "ds", list(range(12)), copies=3, labels=True, noisy=1)  # c2: 20 % salt and pepper
    table = read_dataset(tmp_path / "ds").whole_images()
    photo = np.array([_photo(s) for s in table.data["source"]])
    noisy = np.array([Path(s).stem.endswith("_c2") for s in table.data["source"]])
    tiny = TinyCNN()
    plain = tiny.embed(crops_for_table(table, tiny.spec)).float().numpy()
    plain /= np.linalg.norm(plain, axis=1, keepdims=True)
    model = EmbeddingModel("tiny-cnn", device="cpu")
    denoised, valid = embed_denoised(table, model, CropSpec(), cache_root=None, workers=0)
    assert valid.all() and np.allclose(np.linalg.norm(denoised, axis=1), 1.0, atol=1e-5)
    graph = build_curation_graph(plain)
    old, _ = find_copy_groups(plain, graph)
    new, info, extra = find_view_copy_groups(plain, graph, [denoised])
    assert (old[noisy] < 0).all()  # the plain rule misses every noisy copy
    assert (old[~noisy] >= 0).all()
    sibling = {int(p): new[(photo == p) & ~noisy][0] for p in np.unique(photo)}
    assert all(new[i] == sibling[int(photo[i])] >= 0 for i in np.flatnonzero(noisy))  # the view catches them all
    assert info["n_groups"] == 12 and len(info["views"]) == 1 and len(extra) == 1
    assert pd.Series(new).groupby(photo).nunique().max() == 1  # and merges no two photos


def test_select_never_picks_a_noisy_copy_twice_nor_one_of_labelled_data(tmp_path: Path) -> None:
    write_photos(tmp_path / "labelled", [0, 1], copies=1, labels=True)
    write_photos(tmp_path / "pool", list(range(2, 12)), copies=2, noisy=1)  # each photo: a plain and a noisy copy
    write_photos(tmp_path / "pool", [0], copies=2, noisy=2)  # noisy copies of a labelled photo
    embed(dataset=tmp_path / "labelled", out=tmp_path / "lab", model="tiny-cnn", device="cpu", no_cache=True)
    base = ["select", str(tmp_path / "pool"), "--labeled", str(tmp_path / "lab"), "--budget", "16", "--model",
            "tiny-cnn", "--device", "cpu", "--no-cache", "--copy-images", "none"]  # fmt: skip
    res = runner.invoke(app, [*base, "-o", str(tmp_path / "sel")])
    assert res.exit_code == 0, res.output
    photos = [_photo(s) for s in pd.read_csv(tmp_path / "sel" / "selected.csv")["source"]]
    assert len(photos) == len(set(photos)) == 10 and 0 not in photos  # one per new photo
    old = runner.invoke(app, [*base, "--no-denoise-copies", "-o", str(tmp_path / "old")])
    assert old.exit_code == 0, old.output
    photos = [_photo(s) for s in pd.read_csv(tmp_path / "old" / "selected.csv")["source"]]
    assert len(photos) > len(set(photos)) and 0 in photos  # the plain rule alone picks noisy copies


def test_split_keeps_a_noisy_copy_with_its_photo(tmp_path: Path) -> None:
    write_photos(tmp_path / "ds", list(range(12)), copies=3, labels=True, noisy=1)
    base = ["split", str(tmp_path / "ds"), "--val-ratio", "0.25", "--test-ratio", "0.25", "--model", "tiny-cnn",
            "--device", "cpu", "--no-cache"]  # fmt: skip
    res = runner.invoke(app, [*base, "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    images = pd.read_csv(tmp_path / "out" / "split.csv")
    images["photo"] = [_photo(s) for s in images["source"]]
    assert (images.groupby("photo")["split"].nunique() == 1).all()
    assert (images.groupby("photo")["copy_group"].nunique() == 1).all() and (images["copy_group"] >= 0).all()
    old = runner.invoke(app, [*base, "--no-denoise-copies", "-o", str(tmp_path / "old")])
    assert old.exit_code == 0, old.output
    images = pd.read_csv(tmp_path / "old" / "split.csv")
    noisy = images["source"].str.endswith("_c2.png")
    assert (images.loc[noisy, "copy_group"] < 0).all() and (images.loc[~noisy, "copy_group"] >= 0).all()


def test_median3_equals_pil_median_filter() -> None:
    from PIL import Image, ImageFilter

    from dinoscope.embed.crops import median3

    image = np.random.default_rng(0).integers(0, 256, (37, 23, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(image).filter(ImageFilter.MedianFilter(3)))
    assert np.array_equal(median3(image), expected)  # edges too
