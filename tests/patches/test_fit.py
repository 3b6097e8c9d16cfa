"""``patches fit`` end to end: equal to scikit-learn on the model's own patches, mergeable, foreground mode."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from dinoscope.errors import BackendError, ConfigError, OutputExistsError
from dinoscope.io.images import read_image
from dinoscope.patches import create_patch_backend, fit_patches, merge_fits, read_pca_file
from dinoscope.patches._stream import prepare_input
from tests.patches.helpers import object_image, write_image

#: What the issue asks the configuration block to hold, at least.
REQUIRED_CONFIGURATION = {
    "image_size",
    "model_name",
    "embed_dim",
    "patches_per_frame",
    "grid_size",
    "patch_size",
    "total_patches",
    "unique_subjects",
    "unique_clips",
    "pca_components",
    "foreground",
    "foreground_threshold_sigma",
    "timestamp",
    "dinoscope_version",
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """<subject>/<clip>/<frame>.png: 2 subjects, 3 clips, 7 frames of different sizes."""
    root = tmp_path_factory.mktemp("tree")
    rng = np.random.default_rng(0)
    for i, (clip, n) in enumerate((("s1/a", 3), ("s1/b", 2), ("s2/a", 2))):
        for j in range(n):
            shape = (40 + 8 * j, 50 + 6 * i, 3)
            write_image(root / clip / f"{j}.png", rng.integers(0, 256, shape, dtype=np.uint8))
    return root


def _reference_patches(model: str, images: list[Path], size: int) -> np.ndarray:
    """The model's patch features of the images, computed directly, as (N, D) float64."""
    backend = create_patch_backend(model, size, device="cpu", precision="fp32")
    batch = np.stack([prepare_input(read_image(p), size, "squash", backend.spec.interpolation)[0] for p in images])
    feats = torch.as_tensor(backend.embed_patches(batch))
    return feats.reshape(-1, feats.shape[-1]).double().numpy()


def test_fit_equals_sklearn_on_the_same_patches(tiny_dinov2: Path, tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "pca.json"
    fit = fit_patches(  # the reference is computed in fp32: state it (auto picks bf16 on AMX/AVX512-BF16 CPUs)
        source=tree,
        out=out,
        model=str(tiny_dinov2),
        input_size=56,
        components=4,
        batch_size=3,
        device="cpu",
        precision="fp32",
    )
    assert fit.configuration["precision"] == "fp32"
    images = sorted(tree.rglob("*.png"))
    ref = PCA(4, svd_solver="full").fit(_reference_patches(str(tiny_dinov2), images, 56))
    np.testing.assert_allclose(fit.pca.mean_, ref.mean_, atol=1e-5)
    np.testing.assert_allclose(fit.pca.components_, ref.components_, atol=1e-4)
    np.testing.assert_allclose(fit.pca.explained_variance_, ref.explained_variance_, rtol=1e-4)
    np.testing.assert_allclose(fit.pca.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-4)

    doc = json.loads(out.read_text())
    c = doc["configuration"]
    assert set(c) >= REQUIRED_CONFIGURATION
    assert (c["grid_size"], c["patches_per_frame"], c["patch_size"], c["embed_dim"]) == ([4, 4], 16, 14, 32)
    assert (c["total_frames"], c["total_patches"], c["unique_clips"], c["unique_subjects"]) == (7, 112, 3, 2)
    assert (c["pca_components"], c["foreground"], c["layout"]) == (4, False, "folder")
    assert np.array_equal(np.asarray(doc["components"]), fit.pca.components_)  # JSON floats round-trip exactly
    assert (tmp_path / "pca.stats.npz").is_file() and doc["statistics"]["file"] == "pca.stats.npz"
    back = read_pca_file(out, statistics=True)
    assert back.statistics is not None and back.statistics.n == 112 and len(back.clips) == 3


def test_shards_merge_into_the_fit_of_the_whole(tiny_dinov2: Path, tree: Path, tmp_path: Path) -> None:
    common = dict(source=tree, model=str(tiny_dinov2), input_size=28, components=3, device="cpu", precision="fp32")
    whole = fit_patches(out=tmp_path / "whole.json", **common)
    parts = [fit_patches(out=tmp_path / f"part{k}.json", shard=f"{k}/2", **common) for k in range(2)]
    assert [p.configuration["unique_clips"] for p in parts] == [2, 1]
    merged = merge_fits([read_pca_file(p.path, statistics=True) for p in parts])  # type: ignore[arg-type]
    # the merge itself is exact (test_stats); float32 forward passes of other batch compositions differ by ~1e-7
    scatter, expected = merged.statistics.scatter, whole.statistics.scatter  # type: ignore[union-attr]
    np.testing.assert_allclose(scatter, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    np.testing.assert_allclose(merged.pca.components_, whole.pca.components_, atol=1e-5)
    for key in ("total_patches", "total_frames", "unique_clips", "unique_subjects"):
        assert merged.configuration[key] == whole.configuration[key], key


def test_video_frames_per_clip_and_registers_at_518(tiny_dinov2_reg: Path, bottle_video: Path, tmp_path: Path) -> None:
    """37 x 37 grid at 518 (position embeddings interpolated), register tokens dropped, 3 frames of the video."""
    fit = fit_patches(
        source=bottle_video,
        out=tmp_path / "pca.json",
        model=str(tiny_dinov2_reg),
        input_size=518,
        components=3,
        frames_per_clip=3,
        device="cpu",
    )
    c = fit.configuration
    assert (c["grid_size"], c["patches_per_frame"], c["total_frames"]) == ([37, 37], 1369, 3)
    assert c["total_patches"] == 3 * 1369 and c["layout"] == "video" and c["unique_clips"] == 1


def test_timm_vit_with_local_weights(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    weights = tmp_path / "vit_tiny.pth"
    torch.save(timm.create_model("vit_tiny_patch16_224", pretrained=False).state_dict(), weights)
    image = write_image(tmp_path / "img" / "a.png", object_image(64))
    fit = fit_patches(
        source=image.parent,
        out=tmp_path / "pca.json",
        model="timm:vit_tiny_patch16_224",
        weights=str(weights),
        input_size=112,  # not the model's 224: dynamic image size, a 7 x 7 grid of 16-px patches
        components=2,
        device="cpu",
    )
    c = fit.configuration
    assert (c["grid_size"], c["patch_size"], c["embed_dim"], c["total_patches"]) == ([7, 7], 16, 192, 49)


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Images with a coloured square covering the central 2 x 2 patches of a 4 x 4 grid at 56 px."""
    root = tmp_path_factory.mktemp("objects")
    colours = [(220, 40, 40), (200, 60, 30), (230, 30, 70), (210, 50, 50), (190, 40, 60), (225, 70, 40)]
    for i, colour in enumerate(colours):
        write_image(root / f"{i}.png", object_image(56, seed=i, colour=colour))
    return root


def test_foreground_mode_finds_the_planted_objects(objects: Path, tmp_path: Path) -> None:
    fit = fit_patches(
        source=objects,
        out=tmp_path / "fg.json",
        model="test-patch-colour",
        input_size=56,
        components=3,
        foreground=True,
        precision="fp32",  # compared with fp32 reference patches below
    )
    fg = fit.foreground
    assert fg is not None
    summary = fg.summary()
    assert summary["n_foreground"] == 6 * 4 and summary["n_background"] == 6 * 12
    assert summary["border_frac_foreground"] == 0.0 and summary["border_frac_background"] == 1.0
    # the components are fitted on the foreground patches only: the 4 central patches of every image
    feats = _reference_patches("test-patch-colour", sorted(objects.glob("*.png")), 56).reshape(6, 4, 4, 6)
    central = feats[:, 1:3, 1:3].reshape(-1, 6)
    assert fg.is_foreground(feats.reshape(-1, 6)).reshape(6, 4, 4)[:, 1:3, 1:3].all()
    ref = PCA(3, svd_solver="full").fit(central)
    np.testing.assert_allclose(fit.pca.components_, ref.components_, atol=1e-5)
    assert fit.configuration["passes"][1]["pass"] == "foreground pass"


def test_foreground_from_makes_fits_mergeable(objects: Path, tmp_path: Path) -> None:
    common = dict(source=objects, model="test-patch-colour", input_size=56, components=2)
    base = fit_patches(out=tmp_path / "base.json", **common)
    whole = fit_patches(out=tmp_path / "whole.json", foreground_from=base.path, **common)
    assert len(whole.configuration["passes"]) == 1  # the direction is known: one pass
    images = sorted(objects.glob("*.png"))
    parts = []
    for k, subset in enumerate((images[:2], images[2:])):
        folder = tmp_path / f"part{k}"
        for p in subset:
            write_image(folder / p.name, read_image(p))
        parts.append(
            fit_patches(out=tmp_path / f"p{k}.json", foreground_from=base.path, **{**common, "source": folder})
        )
    merged = merge_fits([read_pca_file(p.path, statistics=True) for p in parts])  # type: ignore[arg-type]
    assert merged.foreground is not None and whole.foreground is not None
    assert merged.foreground.summary()["n_foreground"] == whole.foreground.summary()["n_foreground"]
    np.testing.assert_allclose(merged.pca.components_, whole.pca.components_, atol=1e-9)

    independent = [
        fit_patches(out=tmp_path / f"i{k}.json", foreground=True, **{**common, "source": tmp_path / f"part{k}"})
        for k in range(2)
    ]
    fits = [read_pca_file(p.path, statistics=True) for p in independent]  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="different first components"):
        merge_fits(fits)
    assert merge_fits(fits, drop_foreground=True).foreground is None


def test_in_boxes_keeps_only_patches_inside_boxes(tiny_dinov2: Path, tmp_path: Path) -> None:
    root = tmp_path / "yolo"
    (root / "data.yaml").parent.mkdir(parents=True)
    (root / "data.yaml").write_text("path: .\ntrain: images\nval: images\nnames: [thing]\n")
    for i in range(2):
        write_image(root / "images" / f"{i}.png", object_image(56, seed=i))
        (root / "labels").mkdir(exist_ok=True)
        (root / "labels" / f"{i}.txt").write_text("0 0.25 0.5 0.5 1.0\n")  # the left half
    fit = fit_patches(
        source=root, out=tmp_path / "pca.json", model=str(tiny_dinov2), input_size=56, components=2, in_boxes=True
    )
    c = fit.configuration
    assert (c["layout"], c["in_boxes"], c["total_frames"], c["total_patches"]) == ("dataset", True, 2, 2 * 8)


def test_fit_errors(tiny_dinov2: Path, tree: Path, tmp_path: Path, objects: Path) -> None:
    common = dict(source=tree, model=str(tiny_dinov2), input_size=28)
    out = tmp_path / "pca.json"
    out.write_text("{}")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        fit_patches(out=out, **common)
    with pytest.raises(ConfigError, match="exceeds the feature dimension 32"):
        fit_patches(out=tmp_path / "a.json", components=33, **common)
    with pytest.raises(ConfigError, match="--weights applies to timm"):
        fit_patches(out=tmp_path / "b.json", weights="w.pth", **common)
    with pytest.raises(ConfigError, match="'input_size'"):
        fit_patches(out=tmp_path / "c.json", **{**common, "input_size": 0})
    colour = fit_patches(
        source=objects, out=tmp_path / "colour.json", model="test-patch-colour", input_size=56, components=3
    )
    with pytest.raises(BackendError, match=r"6 dimensions but .* gives 32-d"):
        fit_patches(out=tmp_path / "d.json", foreground_from=colour.path, **common)


def test_oom_back_off_and_batch_probe_never_count_a_patch_twice(
    objects: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runtime halves chunks on CUDA OOM and its batch-size probe runs blank images: neither may leak into
    the statistics (simulated on CPU: the backend raises OutOfMemoryError for chunks of more than 2 images)."""
    from dinoscope.patches import passes
    from tests.patches.helpers import PatchColourBackend

    common = dict(source=objects, model="test-patch-colour", input_size=56, components=3)
    plain = fit_patches(out=tmp_path / "plain.json", batch_size=6, **common)
    original = PatchColourBackend.embed_patches

    def tight_memory(self: PatchColourBackend, images: object) -> torch.Tensor:
        if len(images) > 2:  # type: ignore[arg-type]
            raise torch.OutOfMemoryError("simulated")
        return original(self, images)

    def probe(forward: Callable[[torch.Tensor], object], input_size: int, device_type: str) -> int:
        forward(torch.zeros((2, input_size, input_size, 3), dtype=torch.uint8))
        return 6

    monkeypatch.setattr(PatchColourBackend, "embed_patches", tight_memory)
    monkeypatch.setattr(passes, "choose_batch_size", probe)
    squeezed = fit_patches(out=tmp_path / "squeezed.json", **common)
    assert squeezed.configuration["total_frames"] == 6 and squeezed.configuration["total_patches"] == 6 * 16
    np.testing.assert_allclose(squeezed.pca.components_, plain.pca.components_, atol=1e-6)
    np.testing.assert_allclose(squeezed.statistics.scatter, plain.statistics.scatter, rtol=1e-6)  # type: ignore[union-attr]
