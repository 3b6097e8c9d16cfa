"""``seg train``: a U-Net on ``images/`` + ``masks/`` with the splits of ``seg prepare``.

The recipe (the inspection team's, with nnU-Net's habits, Isensee et al. 2021):

- random crops of ``input_size`` px at full resolution (thin cracks survive; no downscaling), a third of them
  forced to hold foreground (foreground oversampling); each image is cropped about (image area / crop area)
  times per epoch, so an epoch covers the training pixels once;
- augmentations applied jointly to image and mask (torchvision.transforms.v2 with ``tv_tensors.Mask``:
  nearest interpolation for the mask): flips, rotation up to 30 degrees, elastic deformation (p = 0.1),
  brightness / contrast (image only), Gaussian blur (image only);
- loss = BCE + soft Dice of the foreground; AdamW, lr 1e-3, poly decay (exponent 0.9) per step;
- AMP: autocast to the precision of :func:`dinoscope.embed.runtime.resolve_precision` (bf16 on GPUs, fp16
  with a gradient scaler where bf16 is missing; on CPUs only where bf16 is native);
- DDP under ``torchrun`` (:mod:`dinoscope.distributed`): ``--batch-size`` per process, rank 0 validates
  and writes;
- every epoch: validation images predicted whole (sliding window, :class:`~dinoscope.seg.infer.Predictor`),
  ``tr_loss, va_loss, va_dice, va_iou`` reported and appended to ``metrics.csv``; ``checkpoints/last.pt``
  (with the optimiser state, for ``--resume``) and ``checkpoints/best.pt``: the epoch with the best
  *smoothed* validation dice, nnU-Net's habit: ``va_dice_ema = 0.9 * previous + 0.1 * va_dice`` (the first
  epoch's dice to start; :data:`EMA_DECAY`), so one lucky epoch on a small validation set does not win.

Defaults by device: GPU 512 px crops, batch 16, 30 epochs; CPU 256 px, batch 8, :data:`CPU_EPOCHS` epochs.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dinoscope.distributed import Distributed, join_distributed
from dinoscope.embed.runtime import autocast_dtype, decode_workers, resolve_device, resolve_precision
from dinoscope.errors import ConfigError
from dinoscope.run import Run
from dinoscope.seg.augment import CropDataset
from dinoscope.seg.data import SegSample, read_sample, select_split
from dinoscope.seg.infer import Predictor
from dinoscope.seg.metrics import Counts, count_pixels, scores
from dinoscope.seg.model import ModelInfo, build_model, load_checkpoint, resolve_architecture, save_checkpoint

if TYPE_CHECKING:
    import torch

    from dinoscope.seg.config import SegTrainConfig

__all__ = ["CPU_EPOCHS", "EMA_DECAY", "METRIC_COLUMNS", "TrainResult", "seg_loss", "train_segmentation"]

logger = logging.getLogger(__name__)

#: Epochs of the CPU default (a few minutes for ~50 images of 512 px on 2 cores).
CPU_EPOCHS = 6
METRIC_COLUMNS = ("epoch", "tr_loss", "va_loss", "va_dice", "va_iou", "va_dice_ema", "lr", "seconds")
#: Weight of the past in the smoothed validation dice that picks ``best.pt`` (nnU-Net v2's 0.9).
EMA_DECAY = 0.9
_DEFAULTS = {"cuda": (512, 16, 30), "cpu": (256, 8, CPU_EPOCHS)}  # input_size, batch_size, epochs
_LR = 1e-3


@dataclass
class TrainResult:
    """What ``seg train`` did: the run folder, one metrics row per epoch, the best epoch and throughput."""

    run: Path
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_dice: float = 0.0
    best_dice_ema: float = 0.0
    n_train: int = 0
    n_val: int = 0
    seconds: float = 0.0
    train_images_per_s: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)


def seg_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE + soft Dice (foreground, over the whole batch) of (B, 1, H, W) logits against {0, 1} targets.

    Example:
        >>> import torch
        >>> float(seg_loss(torch.full((1, 1, 2, 2), 20.0), torch.ones(1, 1, 2, 2))) < 0.01
        True
    """
    import torch

    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits)
    dice = (2 * (prob * target).sum() + 1.0) / (prob.sum() + target.sum() + 1.0)
    return bce + (1 - dice)


def train_segmentation(
    config: SegTrainConfig, on_epoch: Callable[[dict[str, float]], None] | None = None
) -> TrainResult:
    """Train a segmentation model as :class:`~dinoscope.seg.config.SegTrainConfig` says (module docstring).

    Args:
        config: Validated settings.
        on_epoch: Called with each epoch's metrics row (the CLI prints it).

    Raises:
        ConfigError: No ``out``, or nothing left to train on ``--resume``.
        DatasetFormatError: No ``splits/train.txt`` / ``val.txt``, unreadable images or masks.

    Example:
        >>> config = build_config(SegTrainConfig, data="data/cracks", out="models/cracks")  # doctest: +SKIP
        >>> train_segmentation(config).best_dice  # doctest: +SKIP
    """
    if config.out is None:
        raise ConfigError("seg train needs --out, the model folder to write")
    if not config.resume:
        resolve_architecture(config.model)  # a bad --model is reported before any data is read
    device = resolve_device(config.device)
    dist = join_distributed(device)
    try:
        return _train(config, dist.device if dist else device, dist, on_epoch)
    finally:
        if dist is not None:
            dist.close()


@dataclass
class _Setup:
    run: Run
    net: Any
    info: ModelInfo
    state: dict[str, Any]
    settings: dict[str, Any]
    train_set: list[SegSample]
    val_set: list[SegSample]


def _setup(config: SegTrainConfig, device: str, dist: Distributed | None) -> _Setup:
    """The run folder (rank 0 creates it), the network (new or resumed) and the resolved settings."""
    import torch

    kind = "cuda" if device.startswith("cuda") else "cpu"
    size, batch, epochs = _DEFAULTS[kind]
    size, batch, epochs = config.input_size or size, config.batch_size or batch, config.epochs or epochs
    train_set, val_set = select_split(config.data, "train"), select_split(config.data, "val")
    if dist is None or dist.is_main:
        run = Run.create(config.out, resume=config.resume, overwrite=config.overwrite)  # type: ignore[arg-type]
    if dist is not None:
        dist.barrier()
        run = Run(config.out)  # type: ignore[arg-type]
    torch.manual_seed(config.seed)
    if config.resume:
        net, info, state = load_checkpoint(run.checkpoint_path("last"))
        size, batch = info.input_size, state.get("batch_size", batch)
    else:
        if config.input_size is None and config.model.startswith("dinov2:"):
            size = round(size / 14) * 14  # the ViT patch: 512 -> 518, 256 -> 252
        net, info = build_model(config.model, size, config.weights, allow_download=config.allow_download)
        state = {}
    settings = {
        "arch": info.arch,
        "input_size": size,
        "batch_size": batch,
        "epochs": epochs,
        "device": device,
        "precision": resolve_precision(config.precision, torch.device(device).type),
        "n_train": len(train_set),
        "n_val": len(val_set),
        "lr": _LR,
        "processes": dist.world_size if dist else 1,
    }
    if dist is None or dist.is_main:
        run.write_yaml({"command": "seg train", "config": config.model_dump(mode="json"), "training": settings})
    return _Setup(run, net, info, state, settings, train_set, val_set)


def _train(
    config: SegTrainConfig, device: str, dist: Distributed | None, on_epoch: Callable[[dict[str, float]], None] | None
) -> TrainResult:
    import torch

    s = _setup(config, device, dist)
    info, settings, state, run = s.info, s.settings, s.state, s.run
    batch, epochs, precision = settings["batch_size"], settings["epochs"], settings["precision"]
    main = dist is None or dist.is_main
    net = s.net.to(device).to(memory_format=torch.channels_last)
    loader = _loader(s.train_set, info.input_size, batch, config, device, dist)
    trainable = [p for p in net.parameters() if p.requires_grad]  # a frozen backbone stays out
    optimiser = torch.optim.AdamW(trainable, lr=_LR, weight_decay=1e-4)
    total_steps = max(1, epochs * len(loader))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda k: max(0.0, 1 - k / total_steps) ** 0.9)
    scaler = torch.amp.GradScaler(enabled=precision == "fp16" and device.startswith("cuda"))
    if state:
        optimiser.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["scheduler"])
    history: list[dict[str, float]] = list(state.get("history", []))
    result = TrainResult(run.path, history, n_train=len(s.train_set), n_val=len(s.val_set), settings=settings)
    _best_of(result)
    if len(history) >= epochs:
        raise ConfigError(f"{run.path}: all {epochs} epochs are done; raise --epochs to train on with --resume")
    step_fn = _make_step(optimiser, schedule, scaler, device, precision, info)
    model = dist.wrap(net) if dist is not None else net
    model = torch.compile(model) if config.compile else model
    start, n_seen, train_s = time.perf_counter(), 0, 0.0
    for epoch in range(len(history) + 1, epochs + 1):
        t0 = time.perf_counter()
        if dist is not None:
            loader.sampler.set_epoch(epoch)
        model.train()
        losses = [step_fn(model, x, y) for x, y in loader]
        n_seen += len(losses) * batch
        train_s += time.perf_counter() - t0
        tr_loss = dist.mean(float(np.mean(losses))) if dist is not None else float(np.mean(losses))
        if main:
            va_loss, counts = _validate(net, info, device, precision, batch, s.val_set)
            val = scores(counts)
            row = {
                "epoch": epoch,
                "tr_loss": tr_loss,
                "va_loss": va_loss,
                "va_dice": val["dice"],
                "va_iou": val["iou"],
                "va_dice_ema": smoothed_dice(history, val["dice"]),
                "lr": schedule.get_last_lr()[0],
                "seconds": time.perf_counter() - t0,
            }
            history.append(row)
            _save(run, net, info, optimiser, schedule, history, batch, row, result)
            if on_epoch is not None:
                on_epoch(row)
        if dist is not None:
            dist.barrier()
    result.seconds = time.perf_counter() - start
    result.train_images_per_s = n_seen * (dist.world_size if dist else 1) / max(1e-9, train_s)  # loading included
    if main:
        run.record_versions()
    return result


def smoothed_dice(history: list[dict[str, float]], dice: float) -> float:
    """The exponential moving average of validation dice after an epoch with ``dice`` (module docstring).

    Example:
        >>> round(smoothed_dice([{"va_dice_ema": 0.5}], 1.0), 2), smoothed_dice([], 0.3)
        (0.55, 0.3)
    """
    if not history:
        return dice
    previous = history[-1].get("va_dice_ema", history[-1].get("va_dice", dice))  # older runs had no EMA column
    return EMA_DECAY * previous + (1 - EMA_DECAY) * dice


def _best_of(result: TrainResult) -> None:
    if result.history:
        best = max(result.history, key=lambda r: r.get("va_dice_ema", r["va_dice"]))
        result.best_epoch, result.best_dice = int(best["epoch"]), float(best["va_dice"])
        result.best_dice_ema = float(best.get("va_dice_ema", best["va_dice"]))


def _save(
    run: Run,
    net: Any,
    info: ModelInfo,
    optimiser: Any,
    schedule: Any,
    history: list,
    batch: int,
    row: dict[str, float],
    result: TrainResult,
) -> None:
    state = {
        "optimizer": optimiser.state_dict(),
        "scheduler": schedule.state_dict(),
        "history": history,
        "batch_size": batch,
    }
    if row["va_dice_ema"] > result.best_dice_ema or result.best_epoch == 0:
        result.best_epoch, result.best_dice = int(row["epoch"]), float(row["va_dice"])
        result.best_dice_ema = float(row["va_dice_ema"])
        save_checkpoint(
            run.checkpoint_path("best"),
            net,
            info,
            epoch=row["epoch"],
            va_dice=row["va_dice"],
            va_dice_ema=row["va_dice_ema"],
        )
    save_checkpoint(run.checkpoint_path("last"), net, info, **state)
    with run.epochs_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
        writer.writeheader()
        writer.writerows({k: r.get(k, "") for k in METRIC_COLUMNS} for r in history)


def _make_step(
    optimiser: Any, schedule: Any, scaler: Any, device: str, precision: str, info: ModelInfo
) -> Callable[[Any, Any, Any], float]:
    import torch

    dtype = autocast_dtype(precision)
    mean = torch.tensor(info.mean, device=device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(info.std, device=device).view(1, 3, 1, 1) * 255.0
    device_type = torch.device(device).type

    def step(model: Any, x: torch.Tensor, y: torch.Tensor) -> float:
        x = ((x.to(device, non_blocking=True).float() - mean) / std).contiguous(memory_format=torch.channels_last)
        y = y.to(device, non_blocking=True).float()
        with torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
            loss = seg_loss(model(x).float(), y)
        optimiser.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()
        schedule.step()
        return float(loss.detach())

    return step


def _validate(
    net: Any, info: ModelInfo, device: str, precision: str, batch: int, samples: list[SegSample]
) -> tuple[float, Counts]:
    import torch

    predictor = Predictor(net, info, device, precision, batch)
    losses, total = [], Counts()
    for sample in samples:  # decoded again each epoch: a large validation set is never held in memory
        image, mask = read_sample(sample)
        prob = predictor.probabilities(image)
        p = torch.from_numpy(prob).clamp(1e-6, 1 - 1e-6)
        t = torch.from_numpy(mask.astype(np.float32))
        bce = float(torch.nn.functional.binary_cross_entropy(p, t))
        dice = (2 * float((p * t).sum()) + 1.0) / (float(p.sum() + t.sum()) + 1.0)
        losses.append(bce + 1 - dice)
        total = total + count_pixels(prob > info.threshold, mask)
    return float(np.mean(losses)) if losses else float("nan"), total


# --- data -------------------------------------------------------------------------------------------------------
def _loader(
    samples: list[SegSample], size: int, batch: int, config: SegTrainConfig, device: str, dist: Distributed | None
) -> Any:
    import torch

    kind = "cuda" if device.startswith("cuda") else "cpu"
    dataset = CropDataset(samples, size)
    workers = config.workers if config.workers is not None else decode_workers(kind)
    sampler = None
    if dist is not None:
        sampler = torch.utils.data.DistributedSampler(dataset, dist.world_size, dist.rank, seed=config.seed)
    per_process = len(dataset) // (dist.world_size if dist else 1)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=max(1, min(batch, per_process)),
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=per_process > batch,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=kind == "cuda",
    )
