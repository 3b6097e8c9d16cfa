"""The parts of ``dinoscope adapt``: views, schedules, collapse figures, the 2-process DDP run."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lightly")

from dinoscope.adapt import augment, monitor, objective  # noqa: E402
from tests.adapt.helpers import write_tiny_dinov2, write_toy_images  # noqa: E402


def test_local_crops_follow_dinov2_scales_and_the_patch() -> None:
    assert augment.local_size(224, 14) == 98 and augment.local_size(224, 32) == 96
    assert augment.GLOBAL_SCALE == (0.32, 1.0) and augment.LOCAL_SCALE == (0.05, 0.32)
    assert augment.BLUR_P == (1.0, 0.1, 0.5)  # the papers' probabilities, not the reference code's inverted ones


def test_views_depend_only_on_seed_and_position(tmp_path: Path) -> None:
    from dinoscope.io.dataset import read_dataset

    table = read_dataset(write_toy_images(tmp_path, n=6)).whole_images()
    source = augment.read_pixels(table, crops=False, max_side=96)

    def stream(seed: int) -> augment.MultiCropStream:
        return augment.MultiCropStream(source, augment.MultiCrop(32, 14, 3), seed, 96, 48)

    a, b = stream(0), stream(0)
    views = a[7]
    assert [tuple(v.shape) for v in views] == [(3, 32, 32)] * 2 + [(3, 14, 14)] * 3
    torch.manual_seed(123)  # the global generator does not matter
    assert all(torch.equal(x, y) for x, y in zip(views, b[7], strict=True))
    assert not torch.equal(views[0], stream(1)[7][0])
    epoch = [a.image_of(p) for p in range(6)]
    assert sorted(epoch) == list(range(6))  # every image once per epoch


def test_schedules() -> None:
    assert objective.teacher_temp_at(0, 100) == 0.04 and objective.teacher_temp_at(30, 100) == pytest.approx(0.07)
    m = [objective.momentum_at(k, 50) for k in range(51)]
    assert m[0] == 0.996 and m[-1] == 1.0 and all(x <= y for x, y in itertools.pairwise(m))
    assert objective.lr_factor(9, 100, 10, True) == 0.0  # frozen backbone during the head warm-up
    assert 0 < objective.lr_factor(10, 100, 10, True) < objective.lr_factor(18, 100, 10, True) <= 1.0
    assert objective.lr_factor(99, 100, 10, True) < 0.05 and objective.lr_factor(0, 100, 10, False) == 1.0


def test_collapse_figures_tell_collapse_from_health() -> None:
    rng = np.random.default_rng(0)
    healthy = monitor.compute_collapse_figures(rng.normal(size=(128, 32)), np.full((128, 8), 1 / 8))
    one_point = monitor.compute_collapse_figures(np.ones((128, 32)) + 1e-7 * rng.normal(size=(128, 32)))
    line = monitor.compute_collapse_figures(np.outer(rng.normal(size=128), rng.normal(size=32)) + 5)
    assert healthy["effective_rank"] > 20 and healthy["teacher_entropy"] == pytest.approx(1.0)
    assert monitor.find_collapse(healthy, healthy) == ""
    assert "effective rank" in monitor.find_collapse(line, healthy)
    assert monitor.find_collapse(one_point, healthy) != ""


def test_knn_score_on_planted_classes() -> None:
    from dinoscope.analysis.probe_eval import select_evaluation_folds

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 20)
    vectors = 0.3 * rng.normal(size=(40, 8)) + np.eye(8)[labels]
    groups = np.arange(40).astype(str)
    evalset = monitor.EvalSet(np.zeros((40, 1, 1, 3), np.uint8), labels, groups,
                              select_evaluation_folds(labels, groups), ["a", "b"])  # fmt: skip
    assert monitor.knn_score(vectors, evalset)["knn_balanced_accuracy"] == 1.0
    assert monitor.knn_score(rng.normal(size=(40, 8)), evalset)["knn_balanced_accuracy"] < 0.8


@pytest.mark.slow
def test_two_processes_on_gloo(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from dinoscope.adapt.checkpoint import load_state
    from dinoscope.workflows.adapt import adapt

    model = write_tiny_dinov2(tmp_path / "dinov2")
    images = write_toy_images(tmp_path / "images", n=8)
    result = adapt(dataset=images, model=str(model), out=tmp_path / "run", nproc=2, steps=2, checkpoint_every=2,
                   input_size=28, batch_size=2, local_crops=1, workers=0, precision="fp32", device="cpu")  # fmt: skip
    assert result.steps == 2 and result.backbone is not None and (result.backbone / "model.safetensors").is_file()
    state = load_state(tmp_path / "run" / "checkpoints" / "last.pt")
    assert state["settings"]["processes"] == 2 and state["data"]["next_position"] == 2 * 2 * 2


@pytest.mark.slow
def test_timm_vit_masks_patches_with_its_mask_token(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    from dinoscope.adapt.model import build_backbone, parameter_groups

    weights = tmp_path / "vit.pth"
    torch.save(timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0).state_dict(), weights)
    net = build_backbone("timm:vit_tiny_patch16_224", weights=str(weights), input_size=32).eval()
    assert net.kind == "timm-vit" and net.grid(32) == (2, 2)
    x = torch.randn(2, 3, 32, 32)
    mask = torch.tensor([[[True, False], [False, False]], [[False, False], [False, False]]])
    with torch.no_grad():
        net.mask_token.fill_(3.0)
        cls, patches = net(x)
        cls_m, patches_m = net(x, mask)
    assert patches.shape == (2, 4, 192)
    assert not torch.allclose(patches_m[0], patches[0]) and torch.allclose(patches_m[1], patches[1])
    assert not torch.allclose(cls_m[0], cls[0])  # the masked patch reaches the class token through attention
    groups = parameter_groups(net, torch.nn.Linear(192, 8), lr=1.0)
    scales = {round(g["lr_scale"], 4) for g in groups if g["is_backbone"]}
    assert max(scales) == 1.0 and min(scales) == pytest.approx(0.9**13 * 0.2, rel=1e-3)  # 12 blocks + patch embed
