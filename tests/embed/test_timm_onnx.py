"""timm and ONNX backends: vectors equal the framework's own forward pass; offline rules; tiny models in tmp_path."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from dinoscope.embed.base import Backend  # noqa: E402
from dinoscope.embed.registry import create_backend  # noqa: E402
from dinoscope.errors import BackendError  # noqa: E402


def _crops(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def _normalise(crops: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


# --- timm ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vit_tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    """A randomly initialised vit_tiny_patch16_224 and its state dict saved as .pth."""
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False).eval()
    path = tmp_path_factory.mktemp("timm") / "vit_tiny.pth"
    torch.save(model.state_dict(), path)
    return model, path


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_timm_vit_vectors_equal_timm_forward(vit_tiny: tuple[torch.nn.Module, Path], suffix: str) -> None:
    model, path = vit_tiny
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(model.state_dict(), path.with_suffix(suffix))
        path = path.with_suffix(suffix)
    backend = create_backend("timm:vit_tiny_patch16_224", weights=str(path))
    spec = backend.spec
    assert (spec.backend, spec.loader, spec.name, spec.weights) == (
        "timm",
        "timm",
        "timm:vit_tiny_patch16_224",
        str(path),
    )
    assert (spec.input_size, spec.patch_size, spec.pooling, spec.embed_dim, spec.patch_dim) == (
        224,
        16,
        "cls",
        192,
        192,
    )
    assert spec.mean == (0.5, 0.5, 0.5) and spec.std == (0.5, 0.5, 0.5) and spec.interpolation == "bicubic"
    crops = _crops(2, 224)
    with torch.no_grad():
        tokens = model.forward_features(_normalise(crops, spec.mean, spec.std))
    torch.testing.assert_close(backend.embed(crops), tokens[:, 0], atol=1e-5, rtol=1e-5)
    patches = backend.embed_patches(crops)
    assert patches.shape == (2, 14, 14, 192)
    torch.testing.assert_close(patches.reshape(2, 196, 192), tokens[:, 1:], atol=1e-5, rtol=1e-5)


def test_timm_other_input_size_is_dynamic(vit_tiny: tuple[torch.nn.Module, Path]) -> None:
    model, path = vit_tiny
    backend = create_backend(  # weights through timm's own option, as timm users pass them
        "timm:vit_tiny_patch16_224", pretrained_cfg_overlay={"file": str(path)}, input_size=160, pooling="cls+mean"
    )
    assert backend.spec.weights == str(path)
    assert (backend.spec.input_size, backend.spec.embed_dim) == (160, 384)
    reference = timm.create_model("vit_tiny_patch16_224", pretrained=False, dynamic_img_size=True).eval()
    reference.load_state_dict(model.state_dict())
    crops = _crops(2, 160, seed=1)
    with torch.no_grad():
        tokens = reference.forward_features(_normalise(crops, backend.spec.mean, backend.spec.std))
    expected = torch.cat([tokens[:, 0], tokens[:, 1:].mean(dim=1)], dim=1)
    torch.testing.assert_close(backend.embed(crops), expected, atol=1e-5, rtol=1e-5)
    assert backend.embed_patches(crops).shape == (2, 10, 10, 192)


def test_timm_cnn_gives_its_last_feature_map(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = timm.create_model("resnet10t", pretrained=False).eval()
    torch.save({"state_dict": model.state_dict()}, tmp_path / "r10.pth")  # a training checkpoint layout
    backend = create_backend("timm:resnet10t", weights=str(tmp_path / "r10.pth"), input_size=224)
    spec = backend.spec  # (resnet10t's own config says 176, not a multiple of its stride 32)
    assert (spec.pooling, spec.patch_size, spec.embed_dim) == ("avg", 32, 512)
    crops = _crops(2, spec.input_size)
    with torch.no_grad():
        fmap = model.forward_features(_normalise(crops, spec.mean, spec.std))
    torch.testing.assert_close(backend.embed(crops), fmap.mean(dim=(2, 3)), atol=1e-5, rtol=1e-5)
    side = spec.input_size // 32
    assert backend.embed_patches(crops).shape == (2, side, side, 512)
    with pytest.raises(BackendError, match="pooling must be one of avg"):
        create_backend("timm:resnet10t", weights=str(tmp_path / "r10.pth"), pooling="cls")


@pytest.mark.parametrize(
    ("name", "input_size", "size", "grid", "mean"),
    [
        ("vit_small_patch14_dinov2.lvd142m", 112, 112, 8, (0.485, 0.456, 0.406)),  # config: 518, dynamic here
        ("vit_small_patch16_224.augreg_in21k", None, 224, 14, (0.5, 0.5, 0.5)),
    ],
)
def test_timm_preprocessing_comes_from_the_model_config(
    name: str, input_size: int | None, size: int, grid: int, mean: tuple[float, ...]
) -> None:
    backend = create_backend(f"timm:{name}", pretrained=False, input_size=input_size)
    spec = backend.spec
    assert (spec.input_size, spec.patch_size, spec.pooling, spec.embed_dim) == (size, size // grid, "cls", 384)
    assert spec.mean == pytest.approx(mean) and spec.weights == "random-init"
    assert backend.embed_patches(_crops(1, size)).shape == (1, grid, grid, 384)


def test_timm_needing_a_download_fails_fast_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch"))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _no_network)
    monkeypatch.setattr(timm.models._hub, "hf_hub_download", _no_network)
    with pytest.raises(BackendError, match="--weights FILE") as info:
        create_backend("timm:vit_tiny_patch16_224")
    assert "\n" not in str(info.value) and "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k" in str(info.value)
    with pytest.raises(BackendError, match="Hugging Face Hub"):
        create_backend("timm:hf-hub:timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k")


def test_timm_reads_the_local_hf_cache_offline(
    vit_tiny: tuple[torch.nn.Module, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import huggingface_hub
    from safetensors.torch import save_file

    repo = tmp_path / "hub/models--timm--vit_tiny_patch16_224.augreg_in21k_ft_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs/main").write_text("abc123")
    (repo / "snapshots/abc123").mkdir(parents=True)
    save_file(vit_tiny[0].state_dict(), repo / "snapshots/abc123/model.safetensors")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(timm.models._hub, "hf_hub_download", _no_network)
    backend = create_backend("timm:vit_tiny_patch16_224")
    assert backend.spec.weights.endswith("snapshots/abc123/model.safetensors")
    with torch.no_grad():
        expected = vit_tiny[0].forward_features(_normalise(_crops(1, 224), (0.5,) * 3, (0.5,) * 3))[:, 0]
    torch.testing.assert_close(backend.embed(_crops(1, 224)), expected, atol=1e-5, rtol=1e-5)


def test_timm_bad_names_and_weights(vit_tiny: tuple[torch.nn.Module, Path], tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r"unknown timm model 'vit_tinyy_patch16_224'.*vit_tiny_patch16_224"):
        create_backend("timm:vit_tinyy_patch16_224")
    with pytest.raises(BackendError, match="does not exist"):
        create_backend("timm:vit_tiny_patch16_224", weights=str(tmp_path / "nope.pth"))
    with pytest.raises(BackendError, match="cannot create it with these weights") as info:
        create_backend("timm:resnet10t", weights=str(vit_tiny[1]))
    assert "\n" not in str(info.value)


def _no_network(*args: object, **kwargs: object) -> None:
    raise AssertionError(f"network access attempted: {args}")


# --- ONNX ---------------------------------------------------------------------------------------------------
class _TinyCnn(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 4, 4), torch.nn.ReLU(), torch.nn.Conv2d(8, 16, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _TinyVit(torch.nn.Module):
    """Patch embedding, a CLS token, optional register tokens, one encoder layer: (B, prefix + 16, 24)."""

    def __init__(self, n_registers: int = 0) -> None:
        super().__init__()
        self.patch = torch.nn.Conv2d(3, 24, 8, 8)
        self.prefix = torch.nn.Parameter(torch.randn(1, 1 + n_registers, 24))
        self.pos = torch.nn.Parameter(torch.randn(1, 16, 24) * 0.1)
        self.block = torch.nn.TransformerEncoderLayer(24, 2, 48, dropout=0.0, batch_first=True)
        self.norm = torch.nn.LayerNorm(24)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = self.patch(x).flatten(2).transpose(1, 2) + self.pos
        tokens = torch.cat([self.prefix.expand(patches.shape[0], -1, -1), patches], dim=1)
        return self.norm(self.block(tokens))


def _export(module: torch.nn.Module, path: Path, size: int = 32, batch: bool = True, spatial: bool = False) -> Path:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    axes = {0: "batch"} if batch else {}
    if spatial:
        axes.update({2: "height", 3: "width"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (torch.zeros(1, 3, size, size),),
            str(path),
            dynamo=False,
            input_names=["pixels"],
            output_names=["features"],
            dynamic_axes={"pixels": axes, "features": {0: "batch"} if batch else {}} if axes else None,
        )
    return path


def _torch_out(module: torch.nn.Module, crops: np.ndarray, spec: object) -> torch.Tensor:
    with torch.no_grad():
        return module(_normalise(crops, spec.mean, spec.std))  # type: ignore[attr-defined]


def test_onnx_cnn_map_is_average_pooled_like_torch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cnn = _TinyCnn()
    backend = create_backend(str(_export(cnn, tmp_path / "cnn.onnx")))
    assert isinstance(backend, Backend)
    spec = backend.spec
    assert (spec.backend, spec.loader, spec.name, spec.input_size) == ("onnx", "onnxruntime", "cnn.onnx", 32)
    assert (spec.pooling, spec.patch_size, spec.embed_dim, spec.patch_dim) == ("avg", 4, 16, 16)
    crops = _crops(3, 32)
    fmap = _torch_out(cnn, crops, spec)
    vectors = backend.embed(torch.from_numpy(crops))  # torch input works too
    assert vectors.dtype == np.float32 and vectors.shape == (3, 16)
    np.testing.assert_allclose(vectors, fmap.mean(dim=(2, 3)).numpy(), atol=1e-4)
    np.testing.assert_allclose(backend.embed_patches(crops), fmap.permute(0, 2, 3, 1).numpy(), atol=1e-4)
    with pytest.raises(BackendError, match="pooling must be avg"):
        create_backend(f"onnx:{tmp_path / 'cnn.onnx'}", pooling="cls")
    with pytest.raises(BackendError, match="takes 32x32 inputs"):
        create_backend(str(tmp_path / "cnn.onnx"), input_size=64)


@pytest.mark.parametrize("n_registers", [0, 4])
def test_onnx_tokens_give_cls_mean_and_patch_grid(tmp_path: Path, n_registers: int) -> None:
    torch.manual_seed(0)
    vit = _TinyVit(n_registers)
    path = _export(vit, tmp_path / "vit.onnx")
    backend = create_backend(str(path), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), name="tiny-vit")
    n_prefix = 1 + n_registers
    assert backend.n_prefix_tokens == n_prefix
    assert (backend.spec.name, backend.spec.pooling, backend.spec.patch_size, backend.spec.embed_dim) == (
        "tiny-vit",
        "cls",
        8,
        24,
    )
    crops = _crops(2, 32)
    tokens = _torch_out(vit, crops, backend.spec)
    np.testing.assert_allclose(backend.embed(crops), tokens[:, 0].numpy(), atol=1e-4)
    patches = backend.embed_patches(crops)
    assert patches.shape == (2, 4, 4, 24)
    np.testing.assert_allclose(patches.reshape(2, 16, 24), tokens[:, n_prefix:].numpy(), atol=1e-4)
    mean = create_backend(str(path), mean=(0.5,) * 3, std=(0.5,) * 3, pooling="mean")
    np.testing.assert_allclose(mean.embed(crops), tokens[:, n_prefix:].mean(dim=1).numpy(), atol=1e-4)
    with pytest.raises(BackendError, match="pooling 'avg' does not apply"):
        create_backend(str(path), pooling="avg")


def test_onnx_static_batch_of_one_is_looped(tmp_path: Path) -> None:
    torch.manual_seed(0)
    vit = _TinyVit()
    backend = create_backend(str(_export(vit, tmp_path / "b1.onnx", batch=False)))
    crops = _crops(3, 32)
    np.testing.assert_allclose(backend.embed(crops), _torch_out(vit, crops, backend.spec)[:, 0].numpy(), atol=1e-4)


def test_onnx_dynamic_size_needs_input_size(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cnn = _TinyCnn()
    path = _export(cnn, tmp_path / "dyn.onnx", spatial=True)
    with pytest.raises(BackendError, match="dynamic; pass input_size"):
        create_backend(str(path))
    backend = create_backend(str(path), input_size=48)
    assert (backend.spec.input_size, backend.spec.patch_size) == (48, 4)
    crops = _crops(2, 48)
    np.testing.assert_allclose(backend.embed(crops), _torch_out(cnn, crops, backend.spec).mean(dim=(2, 3)), atol=1e-4)


def test_onnx_vector_output_is_used_directly(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(_TinyCnn(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 5))
    backend = create_backend(str(_export(model, tmp_path / "vec.onnx")))
    assert (backend.spec.embed_dim, backend.spec.patch_dim) == (5, 0)
    crops = _crops(2, 32)
    np.testing.assert_allclose(backend.embed(crops), _torch_out(model, crops, backend.spec).numpy(), atol=1e-4)
    with pytest.raises(BackendError, match="no patch features"):
        backend.embed_patches(crops)


def test_onnx_missing_or_broken_file(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    with pytest.raises(BackendError, match="no such file"):
        create_backend(f"onnx:{tmp_path / 'missing.onnx'}")
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    with pytest.raises(BackendError, match="not a loadable ONNX model") as info:
        create_backend(str(tmp_path / "broken.onnx"))
    assert "\n" not in str(info.value)
