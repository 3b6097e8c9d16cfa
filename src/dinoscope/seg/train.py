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
- every epoch: validation images predicted whole (sliding window, :class:`~dinoscope.seg.infer.Predictor`),
  ``tr_loss, va_loss, va_dice, va_iou`` reported and appended to ``metrics.csv``; ``checkpoints/last.pt``
  (with the optimiser state, for ``--resume``) and ``checkpoints/best.pt`` (best validation dice).

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

from dinoscope.embed.runtime import autocast_dtype, decode_workers, resolve_device, resolve_precision
from dinoscope.errors import ConfigError
from dinoscope.run import Run
from dinoscope.seg.data import SegSample, read_sample, select_split
from dinoscope.seg.infer import Predictor
from dinoscope.seg.metrics import Counts, count_pixels, scores
from dinoscope.seg.model import ModelInfo, build_model, load_checkpoint, save_checkpoint

if TYPE_CHECKING:
    import torch

    from dinoscope.seg.config import SegTrainConfig

__all__ = ["CPU_EPOCHS", "METRIC_COLUMNS", "TrainResult", "seg_loss", "train_segmentation"]

logger = logging.getLogger(__name__)

#: Epochs of the CPU default (a few minutes for ~50 images of 512 px on 2 cores).
CPU_EPOCHS = 6
METRIC_COLUMNS = ("epoch", "tr_loss", "va_loss", "va_dice", "va_iou", "lr", "seconds")
_DEFAULTS = {"cuda": (512, 16, 30), "cpu": (256, 8, CPU_EPOCHS)}  # input_size, batch_size, epochs
_LR = 1e-3
_FG_OVERSAMPLE = 1 / 3


@dataclass
class TrainResult:
    """What ``seg train`` did: the run folder, one metrics row per epoch, the best epoch and throughput."""

    run: Path
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_dice: float = 0.0
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
    import torch

    if config.out is None:
        raise ConfigError("seg train needs --out, the model folder to write")
    device = resolve_device(config.device)
    kind = "cuda" if device.startswith("cuda") else "cpu"
    size, batch, epochs = _DEFAULTS[kind]
    size, batch = config.input_size or size, config.batch_size or batch
    epochs = config.epochs or epochs
    precision = resolve_precision(config.precision, torch.device(device).type)
    train_set, val_set = select_split(config.data, "train"), select_split(config.data, "val")
    run = Run.create(config.out, resume=config.resume, overwrite=config.overwrite)
    torch.manual_seed(config.seed)
    if config.resume:
        net, info, state = load_checkpoint(run.checkpoint_path("last"))
        size, batch = info.input_size, state.get("batch_size", batch)
    else:
        if config.input_size is None and config.model.startswith("dinov2:"):
            size = round(size / 14) * 14  # the ViT patch: 512 -> 518, 256 -> 252
        net, info = build_model(
            config.model, size, config.weights, pretrained=True, allow_download=config.allow_download
        )
        state = {}
    settings = {
        "arch": info.arch,
        "input_size": size,
        "batch_size": batch,
        "epochs": epochs,
        "device": device,
        "precision": precision,
        "n_train": len(train_set),
        "n_val": len(val_set),
        "lr": _LR,
    }
    run.write_yaml({"command": "seg train", "config": config.model_dump(mode="json"), "training": settings})
    net = net.to(device).to(memory_format=torch.channels_last)
    loader = _loader(train_set, size, batch, config, kind)
    trainable = [p for p in net.parameters() if p.requires_grad]  # a frozen backbone stays out
    optimiser = torch.optim.AdamW(trainable, lr=_LR, weight_decay=1e-4)
    total_steps = max(1, epochs * len(loader))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: max(0.0, 1 - s / total_steps) ** 0.9)
    scaler = torch.amp.GradScaler(enabled=precision == "fp16" and kind == "cuda")
    if state:
        optimiser.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["scheduler"])
    history: list[dict[str, float]] = list(state.get("history", []))
    result = TrainResult(run.path, history, n_train=len(train_set), n_val=len(val_set), settings=settings)
    _best_of(result)
    if len(history) >= epochs:
        raise ConfigError(f"{run.path}: all {epochs} epochs are done; raise --epochs to train on with --resume")
    step_fn = _make_step(net, optimiser, schedule, scaler, device, precision, info)
    val_images = [read_sample(s) for s in val_set]
    model_for_step = torch.compile(net) if config.compile else net
    start = time.perf_counter()
    n_seen, train_s = 0, 0.0
    for epoch in range(len(history) + 1, epochs + 1):
        t0 = time.perf_counter()
        model_for_step.train()
        losses = [step_fn(model_for_step, x, y) for x, y in loader]
        n_seen += len(loader) * loader.batch_size if loader.drop_last else len(loader.dataset)
        train_s += time.perf_counter() - t0
        va_loss, counts = _validate(net, info, device, precision, batch, val_images)
        val = scores(counts)
        row = {
            "epoch": epoch,
            "tr_loss": float(np.mean(losses)),
            "va_loss": va_loss,
            "va_dice": val["dice"],
            "va_iou": val["iou"],
            "lr": schedule.get_last_lr()[0],
            "seconds": time.perf_counter() - t0,
        }
        history.append(row)
        _save(run, net, info, optimiser, schedule, history, batch, row, result)
        if on_epoch is not None:
            on_epoch(row)
    result.seconds = time.perf_counter() - start
    result.train_images_per_s = n_seen / max(1e-9, train_s)  # crops per second, data loading included
    run.record_versions()
    return result


def _best_of(result: TrainResult) -> None:
    if result.history:
        best = max(result.history, key=lambda r: r["va_dice"])
        result.best_epoch, result.best_dice = int(best["epoch"]), float(best["va_dice"])


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
    if row["va_dice"] > result.best_dice or result.best_epoch == 0:
        result.best_epoch, result.best_dice = int(row["epoch"]), float(row["va_dice"])
        save_checkpoint(run.checkpoint_path("best"), net, info, epoch=row["epoch"], va_dice=row["va_dice"])
    save_checkpoint(run.checkpoint_path("last"), net, info, **state)
    with run.metrics_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
        writer.writeheader()
        writer.writerows({k: r[k] for k in METRIC_COLUMNS} for r in history)


def _make_step(
    net: Any, optimiser: Any, schedule: Any, scaler: Any, device: str, precision: str, info: ModelInfo
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
    net: Any, info: ModelInfo, device: str, precision: str, batch: int, images: list[tuple[np.ndarray, np.ndarray]]
) -> tuple[float, Counts]:
    import torch

    predictor = Predictor(net, info, device, precision, batch)
    losses, total = [], Counts()
    for image, mask in images:
        prob = predictor.probabilities(image)
        p = torch.from_numpy(prob).clamp(1e-6, 1 - 1e-6)
        t = torch.from_numpy(mask.astype(np.float32))
        bce = float(torch.nn.functional.binary_cross_entropy(p, t))
        dice = (2 * float((p * t).sum()) + 1.0) / (float(p.sum() + t.sum()) + 1.0)
        losses.append(bce + 1 - dice)
        total = total + count_pixels(prob > info.threshold, mask)
    return float(np.mean(losses)) if losses else float("nan"), total


# --- data -------------------------------------------------------------------------------------------------------
def _loader(samples: list[SegSample], size: int, batch: int, config: SegTrainConfig, kind: str) -> Any:
    import torch

    dataset = CropDataset(samples, size)
    workers = config.workers if config.workers is not None else decode_workers(kind)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=min(batch, len(dataset)),
        shuffle=True,
        drop_last=len(dataset) > batch,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=kind == "cuda",
    )


class CropDataset:
    """Random training crops of ``size`` px with joint augmentation (module docstring); items are uint8 (3, S, S)
    images and float (1, S, S) masks. Decoded images are kept in memory up to 1 GB."""

    def __init__(self, samples: list[SegSample], size: int) -> None:
        self.samples, self.size = samples, size
        first, _ = read_sample(samples[0])
        self.repeats = max(1, round(first.shape[0] * first.shape[1] / (size * size)))
        self.cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.cache_limit = (1 << 30) // max(1, first.nbytes + first.nbytes // 3)
        self.augment = _augmentation()

    def __len__(self) -> int:
        return len(self.samples) * self.repeats

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        import torch
        from torchvision import tv_tensors

        i = index % len(self.samples)
        image, mask = self.cache.get(i) or read_sample(self.samples[i])
        if len(self.cache) < self.cache_limit:
            self.cache[i] = (image, mask)
        image, mask = _crop(image, mask, self.size)
        img = tv_tensors.Image(torch.from_numpy(np.array(image)).permute(2, 0, 1))
        msk = tv_tensors.Mask(torch.from_numpy(mask.astype(np.uint8))[None])
        img, msk = self.augment(img, msk)
        return img.as_subclass(torch.Tensor), msk.as_subclass(torch.Tensor).float()


def _crop(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A random ``size`` square (edge-padded when the image is smaller), holding foreground a third of the time."""
    import torch

    h, w = mask.shape
    if h < size or w < size:
        ph, pw = max(0, size - h), max(0, size - w)
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="reflect" if ph < h and pw < w else "edge")
        mask = np.pad(mask, ((0, ph), (0, pw)))
        h, w = mask.shape
    if mask.any() and float(torch.rand(())) < _FG_OVERSAMPLE:
        ys, xs = np.nonzero(mask)
        k = int(torch.randint(len(ys), ()))
        y0 = int(np.clip(ys[k] - int(torch.randint(size, ())), 0, h - size))
        x0 = int(np.clip(xs[k] - int(torch.randint(size, ())), 0, w - size))
    else:
        y0, x0 = int(torch.randint(h - size + 1, ())), int(torch.randint(w - size + 1, ()))
    return image[y0 : y0 + size, x0 : x0 + size], mask[y0 : y0 + size, x0 : x0 + size]


def _augmentation() -> Any:
    from torchvision.transforms import v2

    return v2.Compose(
        [
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
            v2.RandomApply([v2.RandomRotation(30)], p=0.5),
            v2.RandomApply([v2.ElasticTransform(alpha=30.0, sigma=6.0)], p=0.1),
            v2.RandomApply([v2.ColorJitter(brightness=0.3, contrast=0.3)], p=0.8),
            v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 1.5))], p=0.2),
        ]
    )
