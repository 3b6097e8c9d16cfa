"""Hugging Face backends on tiny random models written to tmp_path (never the network).

Every backend must give the vectors of the transformers model called directly on the same normalised tensor.
The official ``.pth`` loader is also checked against timm, an independent reading of the official key layout.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from dinoscope.embed.backends import hf  # noqa: E402
from dinoscope.embed.registry import create_backend  # noqa: E402
from dinoscope.errors import BackendError  # noqa: E402

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2, image_size=28, patch_size=14)
TOWER = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=8)


def _randomize(model: Any, seed: int = 0) -> Any:
    """Perturb every parameter (HF init leaves norms at 1/0 and layer scales at 1, hiding swapped keys)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return model.eval()


def _images(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def _run(model: Any, backend: Any, images: np.ndarray, **kwargs: Any) -> Any:
    """The model called directly on the backend's normalised input."""
    with torch.no_grad():
        return model(pixel_values=backend.normalize(images), **kwargs)


def _close(a: Any, b: Any) -> None:
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def dinov2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A tiny DINOv2 saved with an ImageNet BitImageProcessor (as facebook/dinov2-* have)."""
    model = _randomize(transformers.Dinov2Model(transformers.Dinov2Config(**TINY)))
    folder = tmp_path_factory.mktemp("dinov2")
    model.save_pretrained(folder)
    transformers.BitImageProcessor(image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD).save_pretrained(folder)
    return folder, model


@pytest.fixture(scope="module")
def dinov2_reg(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    config = transformers.Dinov2WithRegistersConfig(**TINY, num_register_tokens=4)
    model = _randomize(transformers.Dinov2WithRegistersModel(config), seed=1)
    folder = tmp_path_factory.mktemp("dinov2_reg")
    model.save_pretrained(folder)
    return folder, model


# --- DINOv2 from folders and the hub cache ----------------------------------------------------------------
@pytest.mark.parametrize("size", [28, 56])
def test_dinov2_folder_gives_the_hf_vectors(dinov2: tuple[Path, Any], size: int) -> None:
    folder, model = dinov2
    backend = create_backend(str(folder), input_size=size)
    spec = backend.spec
    assert (spec.backend, spec.loader, spec.name, spec.weights) == (
        "hf-dinov2",
        "transformers",
        str(folder),
        str(folder),
    )
    assert (spec.patch_size, spec.input_size, spec.embed_dim, spec.patch_dim) == (14, size, 32, 32)
    assert spec.mean == pytest.approx(IMAGENET_MEAN) and spec.std == pytest.approx(IMAGENET_STD)
    assert spec.interpolation == "bicubic"
    images = _images(3, size)
    _close(backend.embed(images), _run(model, backend, images).pooler_output)
    assert backend.embed_patches(images).shape == (3, size // 14, size // 14, 32)


def test_dinov2_pooling_modes(dinov2: tuple[Path, Any]) -> None:
    folder, model = dinov2
    images = _images(2, 42)
    tokens = _run(model, create_backend(str(folder)), images).last_hidden_state  # (2, 1 + 9, 32)
    expected = {
        "cls": tokens[:, 0],
        "mean": tokens[:, 1:].mean(dim=1),
        "cls+mean": torch.cat([tokens[:, 0], tokens[:, 1:].mean(dim=1)], dim=1),
        "all-mean": tokens.mean(dim=1),
    }
    for pooling, want in expected.items():
        backend = create_backend(str(folder), pooling=pooling, input_size=42)
        assert backend.spec.embed_dim == want.shape[1]
        _close(backend.embed(images), want)
    patches = create_backend(str(folder), input_size=42).embed_patches(images)
    _close(patches, tokens[:, 1:].reshape(2, 3, 3, 32))
    with pytest.raises(BackendError, match="pooling 'avg'"):
        create_backend(str(folder), pooling="avg")


def test_dinov2_with_registers_excludes_registers_from_patches(dinov2_reg: tuple[Path, Any]) -> None:
    folder, model = dinov2_reg
    backend = create_backend(str(folder), input_size=56, pooling="mean")
    images = _images(2, 56)
    tokens = _run(model, backend, images).last_hidden_state
    assert tokens.shape == (2, 1 + 4 + 16, 32)
    features = backend._features(images)
    assert features.patches.shape == (2, 16, 32)
    _close(backend.embed(images), tokens[:, 5:].mean(dim=1))
    _close(backend.embed_patches(images), tokens[:, 5:].reshape(2, 4, 4, 32))


def _populate_hub_cache(cache: Path, repo: str, folder: Path) -> None:
    """The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<commit>/...}."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = cache / f"models--{repo.replace('/', '--')}"
    shutil.copytree(folder, root / "snapshots" / commit)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)


def test_dinov2_hub_id_from_offline_cache(
    dinov2: tuple[Path, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    folder, model = dinov2
    _populate_hub_cache(tmp_path / "hub", "org/tiny-dinov2", folder)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    capfd.readouterr()
    backend = hf.create_dinov2("org/tiny-dinov2", input_size=28, name="tiny")
    assert capfd.readouterr().err == ""
    assert (backend.spec.name, backend.spec.weights) == ("tiny", "org/tiny-dinov2")
    assert backend.spec.weights_hash == create_backend(str(folder)).spec.weights_hash  # same bytes, same hash
    images = _images(2, 28)
    _close(backend.embed(images), _run(model, backend, images).pooler_output)


def test_missing_hub_id_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(BackendError) as err:
        hf.create_dinov2("org/not-cached")
    message = str(err.value)
    assert "\n" not in message
    for part in ("org/not-cached", str(tmp_path / "empty"), "--allow-download", "efficientnet-lite0", "HF_HOME"):
        assert part in message
    with pytest.raises(BackendError, match="dinov2-small"):  # a registry name never reaches the network either
        create_backend("dinov2-small")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackendError, match="HF_HUB_OFFLINE is set"):
        hf.create_dinov2("org/not-cached", allow_download=True)


def test_dinov2_saved_by_transformers_4_loads(dinov2: tuple[Path, Any], tmp_path: Path) -> None:
    """The facebook/dinov2-* files on the hub carry transformers 4 names (``attention.attention.query``, ...)."""
    safetensors = pytest.importorskip("safetensors.torch")
    folder, model = dinov2
    legacy = tmp_path / "legacy"
    shutil.copytree(folder, legacy)
    renames = {
        "attention.q_proj": "attention.attention.query",
        "attention.k_proj": "attention.attention.key",
        "attention.v_proj": "attention.attention.value",
        "attention.o_proj": "attention.output.dense",
    }
    state = {}
    for key, value in model.state_dict().items():
        for new, old in renames.items():
            key = key.replace(new, old)
        state[key] = value.contiguous()
    assert "encoder.layer.0.attention.attention.query.weight" in state
    safetensors.save_file(state, legacy / "model.safetensors", metadata={"format": "pt"})
    backend = create_backend(str(legacy))
    images = _images(2, 28)
    _close(backend.embed(images), _run(model, backend, images).pooler_output)


def test_bad_folders_and_sizes(dinov2: tuple[Path, Any], tmp_path: Path) -> None:
    folder, _ = dinov2
    with pytest.raises(BackendError, match="not a multiple of patch size 14"):
        create_backend(str(folder), input_size=30)
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(BackendError, match=r"'bert'.*dinov2"):
        create_backend(str(tmp_path / "bert"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackendError, match=r"no config\.json"):
        create_backend(str(tmp_path / "empty"))


def test_weights_hash_follows_the_bytes(dinov2: tuple[Path, Any], tmp_path: Path) -> None:
    folder, model = dinov2
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    changed = tmp_path / "changed"
    _randomize(transformers.Dinov2Model(model.config), seed=5).save_pretrained(changed)
    hashes = [create_backend(str(f)).spec.weights_hash for f in (folder, copy, changed)]
    assert hashes[0] == hashes[1] != hashes[2]
    assert len(hashes[0]) == 32


# --- official .pth checkpoints ----------------------------------------------------------------------------
def _to_official(model: Any) -> dict[str, Any]:
    """Inverse of the loader's mapping, written independently: HF (transformers 5 names) -> facebookresearch."""
    sd, out = model.state_dict(), {}
    emb = "embeddings."
    out["cls_token"], out["pos_embed"] = sd[emb + "cls_token"], sd[emb + "position_embeddings"]
    out["mask_token"] = sd[emb + "mask_token"]
    out["patch_embed.proj.weight"] = sd[emb + "patch_embeddings.projection.weight"]
    out["patch_embed.proj.bias"] = sd[emb + "patch_embeddings.projection.bias"]
    if emb + "register_tokens" in sd:
        out["register_tokens"] = sd[emb + "register_tokens"]
    out["norm.weight"], out["norm.bias"] = sd["layernorm.weight"], sd["layernorm.bias"]
    for i in range(model.config.num_hidden_layers):
        hf_, of = f"encoder.layer.{i}.", f"blocks.{i}."
        for p in ("weight", "bias"):
            qkv = [sd[f"{hf_}attention.{n}_proj.{p}"] for n in "qkv"]
            out[f"{of}attn.qkv.{p}"] = torch.cat(qkv, dim=0)
            out[f"{of}attn.proj.{p}"] = sd[f"{hf_}attention.o_proj.{p}"]
            for n in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
                out[f"{of}{n}.{p}"] = sd[f"{hf_}{n}.{p}"]
        out[f"{of}ls1.gamma"] = sd[f"{hf_}layer_scale1.lambda1"]
        out[f"{of}ls2.gamma"] = sd[f"{hf_}layer_scale2.lambda1"]
    return out


@pytest.mark.parametrize("layout", ["plain", "teacher", "training"])
def test_official_pth_gives_the_hf_vectors(dinov2: tuple[Path, Any], tmp_path: Path, layout: str) -> None:
    _, model = dinov2
    state: dict[str, Any] = _to_official(model)
    if layout == "teacher":  # teacher_checkpoint.pth: "backbone." prefixes, chunked blocks, a head to drop
        state = {"backbone." + re.sub(r"^blocks\.(\d+)\.", r"blocks.\1.\1.", k): v for k, v in state.items()}
        state = {"teacher": {**state, "dino_head.mlp.0.weight": torch.zeros(4, 32)}}
    if layout == "training":  # the whole meta-architecture: the student's weights must be ignored
        student = {f"student.backbone.{k}": torch.zeros_like(v) for k, v in state.items()}
        state = {"model": {**student, **{f"teacher.backbone.{k}": v for k, v in state.items()}}, "iteration": 7}
    path = tmp_path / "dinov2_tiny.pth"
    torch.save(state, path)
    for size in (28, 56):
        backend = create_backend(str(path), input_size=size, pooling="cls+mean", num_heads=2)
        assert (backend.spec.loader, backend.spec.backend, backend.spec.embed_dim) == ("dinov2-pth", "hf-dinov2", 64)
        images = _images(2, size)
        tokens = _run(model, backend, images).last_hidden_state
        _close(backend.embed(images), torch.cat([tokens[:, 0], tokens[:, 1:].mean(dim=1)], dim=1))


def test_official_pth_with_registers(dinov2_reg: tuple[Path, Any], tmp_path: Path) -> None:
    _, model = dinov2_reg
    torch.save(_to_official(model), tmp_path / "reg.pth")
    backend = create_backend(str(tmp_path / "reg.pth"), input_size=56, pooling="all-mean", num_heads=2)
    assert type(backend.module).__name__ == "Dinov2WithRegistersModel" and backend.n_registers == 4
    images = _images(2, 56)
    _close(backend.embed(images), _run(model, backend, images).last_hidden_state.mean(dim=1))


@pytest.mark.parametrize("variant", ["plain", "registers", "swiglu"])
def test_official_pth_matches_timm(tmp_path: Path, variant: str) -> None:
    """timm reads the official layout on its own (``_convert_dinov2``): same tokens at the native size."""
    vit = pytest.importorskip("timm.models.vision_transformer")
    layers = pytest.importorskip("timm.layers")
    kwargs: dict[str, Any] = dict(img_size=28, patch_size=14, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2)
    if variant == "registers":
        kwargs.update(reg_tokens=4, no_embed_class=True)
    if variant == "swiglu":  # official SwiGLUFFNFused: hidden (int(4 * 32 * 2 / 3) + 7) // 8 * 8 = 88, w12 = 2 * 88
        kwargs.update(mlp_ratio=176 / 32, mlp_layer=layers.SwiGLUPacked, act_layer=torch.nn.SiLU)
    timm_model = _randomize(vit.VisionTransformer(**kwargs, init_values=1.0, num_classes=0), seed=3)
    state = dict(timm_model.state_dict(), mask_token=torch.zeros(1, 32))
    if variant == "registers":  # undo timm's folding of the CLS position into the CLS token
        state["register_tokens"] = state.pop("reg_token")
        state["pos_embed"] = torch.cat([torch.zeros(1, 1, 32), state["pos_embed"]], dim=1)
    if variant == "swiglu":
        state = {k.replace("mlp.fc1", "mlp.w12").replace("mlp.fc2", "mlp.w3"): v for k, v in state.items()}
    torch.save(state, tmp_path / "official.pth")
    backend = create_backend(str(tmp_path / "official.pth"), input_size=28, pooling="all-mean", num_heads=2)
    images = _images(2, 28)
    with torch.no_grad():
        want = timm_model.forward_features(backend.normalize(images))
    _close(backend._features(images).tokens, want)


def test_not_a_dinov2_checkpoint(tmp_path: Path) -> None:
    torch.save({"model": {"conv1.weight": torch.zeros(2, 3)}}, tmp_path / "resnet.pth")
    with pytest.raises(BackendError, match="not an official DINOv2 backbone checkpoint: missing cls_token") as err:
        create_backend(str(tmp_path / "resnet.pth"))
    assert "\n" not in str(err.value)
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(BackendError, match="cannot read it as a PyTorch checkpoint"):
        create_backend(str(tmp_path / "text.pth"))


# --- CLIP / SigLIP vision towers ----------------------------------------------------------------------------
def test_clip_vision_tower(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, vocab_size=99)
    config = transformers.CLIPConfig(vision_config=dict(TOWER, image_size=32), text_config=text, projection_dim=16)
    full = _randomize(transformers.CLIPModel(config))
    full.save_pretrained(tmp_path / "clip")
    transformers.CLIPImageProcessor().save_pretrained(tmp_path / "clip")
    capfd.readouterr()
    backend = create_backend(str(tmp_path / "clip"))
    assert capfd.readouterr().err == ""  # no load report for the text tower left behind, no progress bar
    spec = backend.spec
    assert (spec.backend, spec.input_size, spec.patch_size, spec.pooling, spec.embed_dim) == (
        "hf-clip",
        32,
        8,
        "avg",
        32,
    )
    assert spec.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    images = _images(2, 32)
    out = _run(full.vision_model, backend, images)
    _close(backend.embed(images), out.pooler_output)
    patches = full.vision_model.post_layernorm(out.last_hidden_state[:, 1:]).reshape(2, 4, 4, 32)
    _close(backend.embed_patches(images), patches)
    _close(create_backend(str(tmp_path / "clip"), pooling="cls").embed(images), out.pooler_output)
    bigger = create_backend(str(tmp_path / "clip"), input_size=48)  # interpolated position embeddings
    images = _images(2, 48)
    _close(bigger.embed(images), _run(full.vision_model, bigger, images, interpolate_pos_encoding=True).pooler_output)


def test_siglip_vision_tower(tmp_path: Path) -> None:
    model = _randomize(transformers.SiglipVisionModel(transformers.SiglipVisionConfig(**TOWER, image_size=32)))
    model.save_pretrained(tmp_path / "siglip")
    backend = create_backend(str(tmp_path / "siglip"))
    assert backend.spec.mean == (0.5, 0.5, 0.5) and backend.spec.interpolation == "bicubic"
    images = _images(2, 32)
    out = _run(model, backend, images)
    _close(backend.embed(images), out.pooler_output)  # the attention-pooling head
    _close(backend.embed_patches(images), out.last_hidden_state.reshape(2, 4, 4, 32))
    with pytest.raises(BackendError, match="pooling 'cls'"):
        create_backend(str(tmp_path / "siglip"), pooling="cls")


def test_siglip2_naflex_vision_tower(tmp_path: Path) -> None:
    siglip2 = pytest.importorskip("transformers.models.siglip2.image_processing_siglip2")
    config = transformers.Siglip2VisionConfig(**TOWER, num_patches=16)
    model = _randomize(transformers.Siglip2VisionModel(config))
    model.save_pretrained(tmp_path / "siglip2")
    backend = create_backend(str(tmp_path / "siglip2"), input_size=40)
    images = _images(2, 40)
    x = backend.normalize(images)
    pixels = torch.stack([siglip2.convert_image_to_patches(im, 8) for im in x])  # the processor's patch layout
    with torch.no_grad():
        out = model(
            pixel_values=pixels,
            pixel_attention_mask=torch.ones(2, 25, dtype=torch.long),
            spatial_shapes=torch.tensor([[5, 5], [5, 5]]),
        )
    _close(backend.embed(images), out.pooler_output)
    assert backend.embed_patches(images).shape == (2, 5, 5, 32)
