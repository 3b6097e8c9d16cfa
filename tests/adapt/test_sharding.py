"""FSDP for large ViTs: the strategy choice, the sharding units, and a 2-process gloo run that trains,
checkpoints a whole state dict, resumes exactly and exports a backbone that ``embed`` loads (precision="fp32")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("lightly")

from dinoscope.adapt.sharding import FSDP_MIN_PARAMS, blocks_of, choose_strategy  # noqa: E402
from tests.adapt.helpers import write_tiny_dinov2, write_toy_images  # noqa: E402


def test_auto_shards_large_vits_on_several_processes_only() -> None:
    big, small = FSDP_MIN_PARAMS, FSDP_MIN_PARAMS - 1
    assert choose_strategy("auto", n_params=big, is_vit=True, world=2) == "fsdp"
    assert choose_strategy("auto", n_params=small, is_vit=True, world=2) == "ddp"
    assert choose_strategy("auto", n_params=10 * big, is_vit=False, world=8) == "ddp"  # CNNs: DDP
    assert choose_strategy("fsdp", n_params=1, is_vit=False, world=2) == "fsdp"
    assert choose_strategy("fsdp", n_params=big, is_vit=True, world=1) == "single"


def test_sharding_units_are_the_transformer_blocks(tmp_path: Path) -> None:
    from dinoscope.adapt.model import build_backbone

    net = build_backbone(str(write_tiny_dinov2(tmp_path / "m")), input_size=28)
    blocks = blocks_of(net)
    assert len(blocks) == 2 and all(type(b).__name__ == "Dinov2Layer" for b in blocks)


def _config(tmp_path: Path, out: str, **kw: Any) -> Any:
    from dinoscope.config import build_config
    from dinoscope.workflows.adapt import AdaptConfig

    return build_config(AdaptConfig, dataset=tmp_path / "images", model=str(tmp_path / "dinov2"), out=tmp_path / out,
                        nproc=2, parallel="fsdp", steps=4, checkpoint_every=2, head_warmup=1, lr=1e-3, input_size=28,
                        batch_size=2, local_crops=1, workers=0, precision="fp32", device="cpu", **kw)  # fmt: skip


def _stopped_after_step_2(config: Any) -> None:
    """One process of a job that ends at its step-2 check (as if killed after that checkpoint)."""
    from dinoscope.adapt import session

    check = session.Session.check_and_save
    session.Session.check_and_save = lambda self: check(self) or self.step == 2  # type: ignore[method-assign]
    session.adapt_images(config.model_copy(update={"nproc": 1}))


@pytest.mark.slow
def test_fsdp_on_two_gloo_processes_trains_resumes_exactly_and_exports(tmp_path: Path) -> None:
    """4 steps at once vs the same 4-step run ended after its step-2 checkpoint + --resume, each on 2 FSDP
    processes: identical weights."""
    from dinoscope.adapt.checkpoint import load_state
    from dinoscope.distributed import spawn
    from dinoscope.embed.registry import create_backend
    from dinoscope.workflows.adapt import adapt_from_config

    write_tiny_dinov2(tmp_path / "dinov2")
    write_toy_images(tmp_path / "images", n=8)
    whole = adapt_from_config(_config(tmp_path, "whole"))
    spawn(_stopped_after_step_2, 2, _config(tmp_path, "split"))
    half = load_state(tmp_path / "split" / "checkpoints" / "last.pt")
    assert half["step"] == 2 and half["settings"]["strategy"] == "fsdp" and half["settings"]["processes"] == 2
    split = adapt_from_config(_config(tmp_path, "split", resume=True))
    assert whole.steps == split.steps == 4

    a = load_state(tmp_path / "whole" / "checkpoints" / "last.pt")
    b = load_state(tmp_path / "split" / "checkpoints" / "last.pt")
    plain = create_backend(str(tmp_path / "dinov2")).module.state_dict()
    for part in ("student", "teacher"):
        # whole (unsharded) tensors: the checkpoint does not depend on the sharding
        w = a[part]["backbone.module.embeddings.patch_embeddings.projection.weight"]
        assert w.shape == plain["embeddings.patch_embeddings.projection.weight"].shape
        assert type(w) is torch.Tensor
        for key, value in a[part].items():
            assert torch.equal(value, b[part][key]), (part, key)
    assert [r["loss"] for r in a["history"]] == [r["loss"] for r in b["history"]]
    assert set(a["optimizer"]["state"]) == set(b["optimizer"]["state"])  # AdamW moments, keyed by parameter name

    adapted = create_backend(str(split.backbone)).to("cpu", "fp32")
    crops = torch.randint(0, 256, (2, 28, 28, 3), dtype=torch.uint8).numpy()
    assert adapted.embed(crops).shape == (2, 32)
    assert adapted.spec.weights_hash != create_backend(str(tmp_path / "dinov2")).spec.weights_hash
