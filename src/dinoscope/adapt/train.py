"""``dinoscope adapt``: continued DINO self-distillation of a backbone on unlabelled images, safely.

The recipe (DINOv2's, Oquab et al. 2024, turned towards continuing from released weights without forgetting):
a student (backbone + fresh DINO head) learns to match an EMA teacher across multi-crop views
(:mod:`~dinoscope.adapt.augment`); the losses are DINO + iBOT (ViTs) + KoLeo + an anchor to the frozen original
(:mod:`~dinoscope.adapt.objective`). The heads are warmed up first on a frozen backbone; AdamW with layer-wise lr
decay and a lower patch-embedding lr (:func:`~dinoscope.adapt.model.parameter_groups`), cosine schedules,
gradient clipping (norm 3, DINOv2's), AMP on GPUs and bf16 autocast on CPUs that compute it natively
(:func:`dinoscope.embed.runtime.resolve_precision`). BatchNorm statistics stay frozen.

Every ``checkpoint_every`` steps: a check (:mod:`~dinoscope.adapt.monitor`) and the full state
(:mod:`~dinoscope.adapt.checkpoint`). At the end the best check's teacher backbone is exported to ``backbone/``
(:func:`~dinoscope.adapt.model.export_backbone`); a collapsed model is refused.
"""

from __future__ import annotations

import csv
import logging
import random
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dinoscope.adapt.augment import collate_views
from dinoscope.adapt.checkpoint import capture_rng, restore_rng, save_state
from dinoscope.adapt.objective import lr_factor, momentum_at, teacher_temp_at
from dinoscope.embed.runtime import autocast_dtype

if TYPE_CHECKING:
    from dinoscope.adapt.nets import Nets
    from dinoscope.adapt.session import Session
    from dinoscope.distributed import Distributed

__all__ = ["LOG_COLUMNS", "train_loop"]

logger = logging.getLogger(__name__)

LOG_COLUMNS = (
    "step", "loss", "dino", "ibot", "koleo", "anchor", "lr", "head_lr", "momentum", "teacher_temp", "images_per_s",
    "feature_std", "effective_rank", "teacher_entropy", "knn_balanced_accuracy", "knn_accuracy", "collapsed",
)  # fmt: skip
_CLIP_NORM = 3.0
#: Patch grids smaller than this get single-patch masks (lightly draws >= 10 % of the patches in blocks of >= 4).
_MIN_BLOCK_GRID = 40


def positions(step: int, rank: int, world: int, batch: int) -> range:
    """Stream positions of one process's batch at ``step`` (a pure function: resuming changes nothing)."""
    first = (step * world + rank) * batch
    return range(first, first + batch)


class _Positions(torch.utils.data.Sampler):
    def __init__(self, start: int, total: int, rank: int, world: int, batch: int) -> None:
        self.start, self.total, self.rank, self.world, self.batch = start, total, rank, world, batch

    def __iter__(self) -> Any:
        for step in range(self.start, self.total):
            yield from positions(step, self.rank, self.world, self.batch)

    def __len__(self) -> int:
        return (self.total - self.start) * self.batch


def _masks(s: Session, step: int, n: int, rank: int) -> torch.Tensor | None:
    """iBOT block masks of the 2B global crops (DINOv2's: half the images, 10-50 % of their patches)."""
    if not s.nets.student.backbone.has_patches:
        return None
    from lightly.models.utils import random_block_mask

    h, w = s.nets.student.backbone.grid(s.global_size)
    draw = np.random.default_rng([s.seed, step, rank, 11])
    if h * w < _MIN_BLOCK_GRID:  # too few patches for blocks of 4: one random patch in half the images
        mask = np.zeros((n, h * w), dtype=bool)
        mask[draw.permutation(n)[: n // 2], draw.integers(h * w, size=n // 2)] = True
        return torch.from_numpy(mask.reshape(n, h, w)).to(s.device)
    random.seed(int(draw.integers(1 << 62)))
    return random_block_mask((n, h, w), device=s.device)


def _forward(s: Session, views: list[torch.Tensor], step: int, warming: bool) -> dict[str, torch.Tensor]:
    nets: Nets = s.nets
    b = views[0].shape[0]
    globals_ = s.normalize(torch.cat(views[:2]))
    locals_ = s.normalize(torch.cat(views[2:])) if len(views) > 2 else None
    mask = _masks(s, step, 2 * b, s.rank)
    temp = teacher_temp_at(step, s.total)
    dtype = autocast_dtype(s.precision)
    with torch.autocast(s.device_type, dtype=dtype, enabled=dtype is not None):
        with torch.no_grad():
            t_cls, t_patches = nets.teacher.backbone(globals_)
            t_global = nets.teacher.head(t_cls)
            use_mask = mask is not None and bool(mask.any())
            t_patch = nets.teacher.head(t_patches[mask.flatten(1)]) if use_mask else None
        out = s.model(globals_, locals_, mask if use_mask else None, warming)
        unmasked = torch.ones(2 * b, dtype=torch.bool, device=s.device) if mask is None else ~mask.flatten(1).any(1)
        o_cls = None
        if nets.original is not None and not warming and unmasked.any():
            with torch.no_grad():
                o_cls = nets.original(globals_[unmasked])[0]
    s_views = [*out["s_global"].float().chunk(2)]
    if out["s_local"] is not None:
        s_views += [*out["s_local"].float().chunk(len(views) - 2)]
    parts = {
        "t_global": [*t_global.float().chunk(2)],
        "s_views": s_views,
        "s_cls": out["s_cls"].float(),
        "t_patch": None if t_patch is None else t_patch.float(),
        "s_patch": None if out["s_patch"] is None else out["s_patch"].float(),
        "mask": mask,
        "o_cls": o_cls,
        "s_cls_unmasked": out["s_cls"][unmasked],
    }
    return nets.objective(parts, temp, warming)


def _set_lr(optimiser: Any, step: int, s: Session) -> None:
    for group in optimiser.param_groups:
        group["lr"] = s.lr * group["lr_scale"] * lr_factor(step, s.total, s.head_warmup, group["is_backbone"])


def _ema(s: Session, step: int) -> float:
    from lightly.models.utils import update_momentum

    m = momentum_at(step, s.total)
    if s.strategy == "fsdp":
        from dinoscope.adapt.sharding import ema_sharded

        ema_sharded(s.nets.student, s.nets.teacher, m)
        return m
    with torch.no_grad():
        update_momentum(s.nets.student, s.nets.teacher, m)
    return m


def train_step(s: Session, views: list[torch.Tensor], step: int) -> dict[str, float]:
    """One optimiser step: forward, backward, clip, AdamW, EMA; returns the logged numbers."""
    warming = step < s.head_warmup
    _set_lr(s.optimiser, step, s)
    terms = _forward(s, views, step, warming)
    s.optimiser.zero_grad(set_to_none=True)
    s.scaler.scale(terms["loss"]).backward()
    s.scaler.unscale_(s.optimiser)
    torch.nn.utils.clip_grad_norm_([p for g in s.optimiser.param_groups for p in g["params"]], _CLIP_NORM)
    s.scaler.step(s.optimiser)
    s.scaler.update()
    momentum = _ema(s, step)
    lrs = {g["is_backbone"]: g["lr"] / g["lr_scale"] for g in s.optimiser.param_groups}
    row = {k: float(v.detach()) for k, v in terms.items()}
    row.update(step=step + 1, lr=lrs.get(True, 0.0), momentum=momentum, teacher_temp=teacher_temp_at(step, s.total))
    row["head_lr"] = lrs.get(False, 0.0) * 10.0
    return row


def train_loop(s: Session, dist: Distributed | None) -> None:
    """Steps from ``s.step`` to ``s.total``, with checks, checkpoints, early stopping and the progress bar."""
    from dinoscope.embed.runtime_stats import memory_status
    from dinoscope.progress import ProgressBar

    world = dist.world_size if dist else 1
    sampler = _Positions(s.step, s.total, s.rank, world, s.batch)
    loader = torch.utils.data.DataLoader(
        s.stream, batch_size=s.batch, sampler=sampler, num_workers=s.workers, collate_fn=collate_views,
        pin_memory=s.device_type == "cuda", persistent_workers=False,
    )  # fmt: skip
    last = {"loss": float("nan")}
    per_step = s.batch * world

    def status() -> str:
        return f"loss {last['loss']:.3f} · {memory_status()}"

    main = dist is None or dist.is_main
    s.nets.train_mode()
    t0 = time.perf_counter()
    with ProgressBar((s.total - s.step) * per_step if main else 0, "adapting", "img", status=status) as bar:
        for views in loader:
            step = s.step
            row = train_step(s, [v.to(s.device, non_blocking=True) for v in views], step)
            s.step = step + 1
            row["images_per_s"] = per_step / max(1e-9, time.perf_counter() - t0)
            t0 = time.perf_counter()
            last.update(row)
            s.history.append(row)
            if main:
                bar.advance(per_step)
            if s.step % s.checkpoint_every == 0 or s.step == s.total:
                s.gather()  # FSDP: every process helps to gather the whole state on rank 0
                stop = s.check_and_save() if main else False
                stop = dist.broadcast_flag(stop) if dist is not None else stop
                s.nets.train_mode()
                if stop:
                    break
                t0 = time.perf_counter()


def write_log(path: Any, history: list[dict[str, Any]]) -> None:
    """``log.csv``: one row per step (check figures on the check steps), written whole and renamed."""
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=LOG_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)
    tmp.replace(path)


def state_of(s: Session) -> dict[str, Any]:
    """The full training state (see :mod:`dinoscope.adapt.checkpoint`)."""
    # FSDP: the whole states gathered from the shards at this check (dinoscope.adapt.sharding)
    nets = s.gathered or {
        "student": s.nets.student.state_dict(),
        "teacher": s.nets.teacher.state_dict(),
        "optimizer": s.optimiser.state_dict(),
    }
    return {
        "step": s.step,
        **nets,
        "objective": s.nets.objective.state_dict(),
        "scaler": s.scaler.state_dict(),
        "rng": capture_rng(),
        "data": {"seed": s.seed, "next_position": s.step * s.batch * s.world, "n_images": s.stream.n_images},
        "history": s.history,
        "checks": [c.__dict__ for c in s.checks],
        "best": s.best,
        "settings": s.settings,
    }


def restore(s: Session, state: dict[str, Any]) -> None:
    """Put a :func:`state_of` back into a freshly built session."""
    from dinoscope.adapt.monitor import Check

    if s.strategy == "fsdp":
        from dinoscope.adapt.sharding import restore_sharded

        restore_sharded(s, state)
    else:
        s.nets.student.load_state_dict(state["student"])
        s.nets.teacher.load_state_dict(state["teacher"])
        s.optimiser.load_state_dict(state["optimizer"])
    s.nets.objective.load_state_dict(state["objective"])
    s.scaler.load_state_dict(state["scaler"])
    restore_rng(state["rng"])
    s.step, s.history, s.best = int(state["step"]), list(state["history"]), dict(state["best"])
    s.checks = [Check(**c) for c in state["checks"]]


def save(s: Session) -> None:
    """``checkpoints/last.pt`` and ``log.csv``."""
    save_state(s.run.checkpoint_path("last"), state_of(s))
    write_log(s.run.adapt_log_path, s.history)
