"""seg prepare: empty masks, binarisation, grouped stratified splits (property-tested)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from dinoscope.errors import DatasetFormatError, OutputExistsError
from dinoscope.seg.data import read_split
from dinoscope.seg.prepare import prepare_data
from dinoscope.seg.splits import find_groups, split_groups


def _data(root: Path, n_videos: int = 3, n_frames: int = 12) -> Path:
    """Frames v<k>_<frame>; every third frame has a crack; frame 5 of video 0 has no mask; one mask is 0/1."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for v in range(n_videos):
        for f in range(n_frames):
            stem = f"v{v}_{f * 30:06d}"
            Image.fromarray(np.full((16, 24, 3), 40 * v + f, np.uint8)).save(root / "images" / f"{stem}.png")
            if v == 0 and f == 5:
                continue
            mask = np.zeros((16, 24), np.uint8)
            if f % 3 == 0:
                mask[4:8, 4:12] = 1 if (v, f) == (1, 3) else 255
            Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
    return root


def test_prepare_writes_empty_masks_reports_nonbinary_and_splits(tmp_path: Path) -> None:
    root = _data(tmp_path / "d")
    result = prepare_data(root, val_ratio=0.25, test_ratio=0.2, min_val_pos=2)
    assert result.n_empty_written == 1 and (root / "masks" / "v0_000150.png").is_file()
    assert [Path(f).name for f, _ in result.nonbinary] == ["v1_000090.png"] and not result.rewritten
    splits = {s: read_split(root, s) for s in ("train", "val", "test")}
    assert sorted(s for v in splits.values() for s in v) == sorted(p.stem for p in (root / "images").iterdir())
    assert result.counts["val"][1] >= 2 and result.counts["test"][1] >= 1
    with pytest.raises(OutputExistsError, match="--overwrite"):
        prepare_data(root)
    again = prepare_data(root, val_ratio=0.25, test_ratio=0.0, min_val_pos=2, overwrite=True)
    assert again.rewritten and not (root / "splits" / "test.txt").exists()
    assert np.asarray(Image.open(root / "masks" / "v1_000090.png")).max() == 255


def test_no_positive_in_a_split_is_a_clear_error(tmp_path: Path) -> None:
    root = _data(tmp_path / "d", n_videos=1, n_frames=6)  # 2 positive frames
    with pytest.raises(DatasetFormatError, match="min-val-pos"):
        prepare_data(root, min_val_pos=2)


def test_groups_keep_adjacent_frames_and_variants_together() -> None:
    stems = [f"cam_{i:04d}" for i in range(40)] + ["DSC00550", "DSC00550b", "notes"]
    groups = find_groups(stems, [None] * len(stems), [None] * len(stems))
    assert groups[40] == groups[41] and len(set(groups[:40])) >= 15
    assert all(np.diff(groups[:40]) >= 0)  # contiguous windows
    meta = find_groups(["a", "b", "c"], ["v1", "v1", "v2"], [None, None, None])
    assert len(set(meta.tolist())) == 3


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=4, max_size=40),
    pos_frac=st.floats(0.05, 1.0),
    min_val_pos=st.integers(1, 5),
    test_ratio=st.sampled_from([0.0, 0.15]),
    seed=st.integers(0, 10),
)
def test_split_properties(sizes: list[int], pos_frac: float, min_val_pos: int, test_ratio: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(len(sizes)), sizes)
    positive = rng.random(len(groups)) < pos_frac
    try:
        plan = split_groups(groups, positive, 0.2, test_ratio, min_val_pos, seed)
    except DatasetFormatError as exc:
        assert "foreground" in str(exc)
        n_pos_groups = len(np.unique(groups[positive]))
        # refusing is only allowed when the positives cannot be shared out group by group
        assert n_pos_groups < min_val_pos + 1 + (test_ratio > 0)
        return
    for g in np.unique(groups):  # a group never straddles two splits
        assert len(set(plan.split[groups == g])) == 1
    assert (positive & (plan.split == "val")).sum() >= min_val_pos
    for s in plan.counts:
        assert (positive & (plan.split == s)).sum() >= 1


def test_prepared_folder_is_a_dataset_with_its_splits(tmp_path: Path) -> None:
    """read_masks (hence `dinoscope analyze` and its leakage analysis) sees the splits prepare wrote."""
    from dinoscope.io.masks import read_masks

    root = _data(tmp_path / "d")
    prepare_data(root, val_ratio=0.25, test_ratio=0.2, min_val_pos=2)
    table = read_masks(root)
    by_stem = dict(zip(table.images["source"].map(lambda s: Path(s).stem), table.images["split"], strict=True))
    for split in ("train", "val", "test"):
        assert all(by_stem[s] == split for s in read_split(root, split))
