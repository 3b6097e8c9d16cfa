"""One adaptation run: its settings, networks, data and records, built fresh or from ``--resume``, and its end
(the best check's teacher backbone exported, or a collapsed model refused).

Example:
    >>> result = adapt_images(build_config(AdaptConfig, dataset="pcb/images", model="efficientnet-lite0",
    ...                                    out="runs/pcb-adapt", steps=200))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dinoscope.adapt import augment, monitor
from dinoscope.adapt.checkpoint import load_state, save_state
from dinoscope.adapt.model import build_backbone, export_backbone, parameter_groups
from dinoscope.adapt.nets import Nets, build_nets, head_dim, teacher_copy
from dinoscope.adapt.sharding import choose_strategy, shard_nets
from dinoscope.embed.runtime import decode_workers, resolve_device, resolve_precision
from dinoscope.errors import ConfigError, DinoscopeError
from dinoscope.run import Run

if TYPE_CHECKING:
    from dinoscope.distributed import Distributed

__all__ = ["AdaptResult", "Session", "adapt_images", "run_adaptation", "steps_of_epochs"]

logger = logging.getLogger(__name__)
_DEFAULTS = {"cuda": (64, 1000), "cpu": (16, 300)}  # batch size per process, steps
_EMBED_BATCH = 64


@dataclass
class AdaptResult:
    """What ``adapt`` did: the output folder, the exported backbone, the checks, the best one, the speed, and the
    before/after page (``compare.html``; set by the workflow)."""

    out: Path
    backbone: Path | None
    steps: int
    best: dict[str, Any]
    checks: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    images_per_s: float = 0.0
    stopped_early: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    comparison: Path | None = None


@dataclass
class Session:
    """Everything a training step, a check or a checkpoint needs (see :mod:`dinoscope.adapt.train`)."""

    run: Run
    config: Any
    nets: Nets
    model: Any
    optimiser: Any
    scaler: Any
    stream: augment.MultiCropStream
    settings: dict[str, Any]
    device: str
    rank: int = 0
    world: int = 1
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    checks: list[monitor.Check] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)
    monitor_crops: np.ndarray | None = None
    evalset: monitor.EvalSet | None = None
    #: ``single``, ``ddp`` or ``fsdp`` (:mod:`~dinoscope.adapt.sharding`); under FSDP, rank 0's plain copy of the
    #: teacher for the checks and the whole state gathered at the last check.
    strategy: str = "single"
    check_net: Any = None
    gathered: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        st = self.settings
        self.device_type = torch.device(self.device).type
        self.precision, self.seed, self.batch, self.total = st["precision"], st["seed"], st["batch_size"], st["steps"]
        self.head_warmup, self.lr, self.global_size = st["head_warmup"], st["lr"], st["global_size"]
        self.checkpoint_every, self.workers = st["checkpoint_every"], st["workers"]
        spec = self.nets.student.backbone.spec
        self._mean = torch.tensor(spec.mean, device=self.device).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(spec.std, device=self.device).view(1, 3, 1, 1) * 255.0

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, s, s) uint8 -> normalised float32 with the backbone's mean/std."""
        return (x.float() - self._mean) / self._std

    @property
    def checked(self) -> Any:
        """The teacher the checks embed and the export takes (a plain copy under FSDP)."""
        return self.check_net if self.check_net is not None else self.nets.teacher

    def gather(self) -> None:
        """Under FSDP, gather the whole state on rank 0 (every process calls this); nothing otherwise."""
        if self.strategy == "fsdp":
            from dinoscope.adapt.sharding import gather

            self.gathered = gather(self)

    # --- checks ------------------------------------------------------------------------------------------------
    def embed_teacher(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, S, S, 3) uint8 -> the teacher's pooled vectors (N, D) and its head's probabilities (N, K)."""
        from dinoscope.embed.runtime import forward_context

        teacher, center = self.checked.eval(), self.nets.objective.dino.center.reshape(1, -1)
        vectors, probs = [], []
        with forward_context(self.device_type, self.precision):
            for a in range(0, len(crops), _EMBED_BATCH):
                x = torch.from_numpy(crops[a : a + _EMBED_BATCH]).to(self.device).permute(0, 3, 1, 2)
                cls = teacher.backbone(self.normalize(x))[0].float()
                vectors.append(cls.cpu().numpy())
                logits = (teacher.head(cls).float() - center) / 0.07
                probs.append(torch.softmax(logits, dim=-1).cpu().numpy())
        return np.concatenate(vectors), np.concatenate(probs)

    def check_and_save(self) -> bool:
        """Check the teacher, keep the best, save the state; True when training must stop (collapse, patience)."""
        from dinoscope.adapt.train import save

        reference = self.checks[0].figures if self.checks else None
        check = monitor.run_check(self.step, self.embed_teacher, self.monitor_crops, self.evalset, reference)
        self.checks.append(check)
        if self.history and self.history[-1]["step"] == self.step:
            self.history[-1].update(check.figures, collapsed=int(check.collapsed))
        loss = f"loss {self.history[-1]['loss']:.3f}; " if self.history else "the original backbone; "
        shown = ", ".join(f"{k} {v:.3f}" for k, v in check.figures.items())
        logger.info("step %d/%d: %steacher %s", self.step, self.total, loss, shown)
        stop = check.collapsed
        if check.collapsed:
            logger.warning("step %d: the features collapsed (%s); stopping", self.step, check.reason)
        else:
            score = check.figures.get("knn_balanced_accuracy", float(self.step)) if self.evalset else float(self.step)
            if not self.best or score > self.best["score"]:
                self.best = {"step": self.step, "score": score, "figures": check.figures}
                state = {k: v.detach().cpu() for k, v in self.checked.backbone.state_dict().items()}
                save_state(self.run.checkpoint_path("best"), {"step": self.step, "backbone": state})
            elif self.evalset is not None:
                since = sum(1 for c in self.checks if c.step > self.best["step"])
                stop = since >= self.settings["patience"]
        save(self)
        return stop


# --- building --------------------------------------------------------------------------------------------------
def _settings(config: Any, device: str, world: int, n_images: int, spec_size: int) -> dict[str, Any]:
    kind = "cuda" if device.startswith("cuda") else "cpu"
    batch, steps = _DEFAULTS[kind]
    batch = config.batch_size or batch
    steps = config.steps or steps_of_epochs(config.epochs, n_images, batch, world) or steps
    return {
        "steps": steps,
        "epochs": config.epochs,
        "batch_size": batch,
        "processes": world,
        "global_size": config.input_size or spec_size,
        "local_crops": config.local_crops,
        "head_warmup": config.head_warmup if config.head_warmup is not None else steps // 10,
        "lr": config.lr,
        "anchor": config.anchor,
        "checkpoint_every": min(config.checkpoint_every, steps),
        "patience": config.patience,
        "seed": config.seed,
        "device": device,
        "precision": resolve_precision(config.precision, torch.device(device).type),
        "workers": config.workers if config.workers is not None else decode_workers(kind),
        "head_prototypes": head_dim(kind),
        "n_images": n_images,
    }


def steps_of_epochs(epochs: int | None, n_images: int, batch: int, world: int) -> int | None:
    """``--epochs`` as optimiser steps: every step takes ``batch x world`` images, so an epoch is
    ``ceil(n_images / (batch x world))`` steps (None without ``epochs``).

    Example:
        >>> steps_of_epochs(3, 100, 16, 2)  # 100 images, 32 a step: 4 steps an epoch
        12
    """
    return None if epochs is None else epochs * -(-n_images // (batch * world))


def _read_images(config: Any) -> Any:
    from dinoscope.io.sources import read_source
    from dinoscope.options import FrameOptions, SelectOptions

    select = SelectOptions(whole_images=not config.crops, classes=config.classes, splits=config.splits)
    frames = FrameOptions(stride=config.stride, max_frames=config.max_frames)
    table = read_source(config, select, frames, config.every_s)
    if config.classes or config.splits:
        from dinoscope.io.sources import select_objects

        table = select_objects(table, select)
    if not len(table):
        raise DinoscopeError(f"{config.dataset}: no image to adapt on")
    return table


def build_session(config: Any, device: str, dist: Distributed | None) -> Session:
    """The session of a new run, or of the resumed one (``config.resume``)."""
    world, rank = (dist.world_size, dist.rank) if dist else (1, 0)
    if rank == 0:
        Run.create(config.out, resume=config.resume, overwrite=config.overwrite)
    if dist is not None:
        torch.distributed.barrier()
    run = Run(config.out)
    state = load_state(run.checkpoint_path("last")) if config.resume else None
    table = _read_images(config)
    options = {"input_size": config.input_size, "weights": config.weights, "allow_download": config.allow_download}
    backbone = build_backbone(config.model, **options)
    settings = state["settings"] if state else _settings(config, device, world, len(table), backbone.spec.input_size)
    if state:  # --resume with more --steps (or --epochs, counted with the run's own images, batch and processes)
        more = config.steps or steps_of_epochs(
            config.epochs, settings["n_images"], settings["batch_size"], settings["processes"]
        )
        if more and more > settings["steps"]:
            settings = {**settings, "steps": more, "epochs": config.epochs}
    if not state:
        n_params = sum(p.numel() for p in backbone.parameters())
        settings["strategy"] = choose_strategy(config.parallel, n_params=n_params, is_vit=backbone.has_patches,
                                               world=world)  # fmt: skip
    strategy = settings.get("strategy", "ddp" if world > 1 else "single")
    nets = build_nets(backbone, settings["head_prototypes"], settings["anchor"], settings["seed"]).to(device)
    check_net = teacher_copy(nets) if strategy == "fsdp" and rank == 0 else None
    if dist is not None and strategy == "fsdp":
        student = shard_nets(nets, dist)
    else:
        student = dist.wrap(nets.student, find_unused_parameters=True) if dist else nets.student
    student = torch.compile(student) if config.compile else student
    optimiser = torch.optim.AdamW(parameter_groups(nets.student.backbone, nets.student.head, settings["lr"]))
    scaler = torch.amp.GradScaler(enabled=settings["precision"] == "fp16" and device.startswith("cuda"))
    size = settings["global_size"]
    crops = augment.MultiCrop(size, augment.local_size(size, backbone.spec.patch_size or 14), settings["local_crops"])
    source = augment.read_pixels(table, config.crops, 2 * size)
    stream = augment.MultiCropStream(source, crops, settings["seed"], 2 * size, round(1.5 * size))
    s = Session(run, config, nets, student, optimiser, scaler, stream, settings, device, rank, world)
    s.strategy, s.check_net = strategy, check_net
    if rank == 0:
        s.monitor_crops = augment.center_crops(stream, monitor.N_MONITOR, size, settings["seed"])
        if config.eval is not None:
            s.evalset = monitor.read_evalset(config.eval, size, backbone.spec.mean, settings["seed"])
    if state:
        from dinoscope.adapt.train import restore

        restore(s, state)
        if s.step >= s.total:
            raise ConfigError(f"{run.path}: all {s.total} steps are done; raise --steps to train on with --resume")
    else:
        s.gather()
        if rank == 0:
            s.check_and_save()  # step 0: the original backbone, the reference of the collapse guard
    return s


def run_adaptation(config: Any, dist: Distributed | None = None) -> AdaptResult | None:
    """Train in this process (one of ``dist``'s when given) and, on rank 0, export; see :func:`adapt_images`."""
    from dinoscope.adapt.train import train_loop

    device = dist.device if dist else resolve_device(config.device)
    started = time.perf_counter()
    s = build_session(config, device, dist)
    first = s.step
    if dist is None or dist.is_main:  # one writer: ranks racing on adapt.yaml.tmp lost the rename
        s.run.write_adapt_yaml({"config": config.model_dump(mode="json"), "settings": s.settings})
    train_loop(s, dist)
    if dist is not None and not dist.is_main:
        return None
    seconds = time.perf_counter() - started
    n_images = (s.step - first) * s.batch * s.world
    return _finish(s, seconds, n_images / max(1e-9, seconds))


def _finish(s: Session, seconds: float, images_per_s: float) -> AdaptResult:
    """Export the best check's teacher backbone, or refuse a collapsed model; write ``adapt.yaml``."""
    checks = [c.__dict__ for c in s.checks]
    last = s.checks[-1]
    result = AdaptResult(s.run.path, None, s.step, s.best, checks, seconds, images_per_s, s.step < s.total, s.settings)
    doc = {"result": {"steps_done": s.step, "best": s.best, "seconds": round(seconds, 1),
                      "images_per_s": round(images_per_s, 2), "stopped_early": result.stopped_early},
           "checks": checks, "collapse_guard": {"fraction_of_original": monitor.COLLAPSE_FRAC},
           "augmentations": {"blur_p": list(augment.BLUR_P), "global_scale": list(augment.GLOBAL_SCALE),
                             "local_scale": list(augment.LOCAL_SCALE)}}  # fmt: skip
    if s.best.get("step", 0) == 0 and last.collapsed:
        s.run.write_adapt_yaml({**doc, "exported": None})
        raise DinoscopeError(
            f"{s.run.path}: the adapted backbone collapsed at step {last.step} ({last.reason}); nothing exported - "
            "lower --lr, raise --anchor or --head-warmup"
        )
    best = load_state(s.run.checkpoint_path("best"))
    net = s.checked.backbone
    net.load_state_dict(best["backbone"])
    provenance = {"adapted_steps": int(best["step"]), "adapt_run": str(s.run.path), "figures": s.best.get("figures")}
    result.backbone = export_backbone(net, s.run.backbone_dir, provenance)
    if s.best["step"] == 0:
        logger.warning("no check beat the original backbone: backbone/ holds the original weights")
    s.run.write_adapt_yaml({**doc, "exported": str(result.backbone)})
    s.run.record_versions()
    return result


def adapt_images(config: Any) -> AdaptResult:
    """Run ``dinoscope adapt`` as its config says: in this process, or in ``config.nproc`` DDP processes.

    Raises:
        ConfigError: No ``out``; nothing left to do on ``--resume``.
        DinoscopeError: The model collapsed before any healthy check (nothing exported).
    """
    if config.out is None:
        raise ConfigError("adapt needs --out, the folder for backbone/, checkpoints/, log.csv and adapt.yaml")
    if config.steps is not None and config.epochs is not None:
        raise ConfigError("--steps and --epochs both given: choose one (an epoch = images / (batch size x processes))")
    from dinoscope.distributed import join_distributed, spawn

    if config.nproc > 1 and int(__import__("os").environ.get("WORLD_SIZE", "1")) <= 1:
        spawn(_worker, config.nproc, config)
        return _result_of(config)
    device = resolve_device(config.device)
    dist = join_distributed(device)
    try:
        result = run_adaptation(config, dist)
    finally:
        if dist is not None:
            dist.close()
    return result if result is not None else _result_of(config)


def _worker(config: Any) -> None:
    adapt_images(config.model_copy(update={"nproc": 1}))


def _result_of(config: Any) -> AdaptResult:
    """The result of a run finished by other processes, read from its ``adapt.yaml``."""
    run = Run(config.out)
    doc = run.read_adapt_yaml()
    r = doc.get("result", {})
    backbone = Path(doc["exported"]) if doc.get("exported") else None
    return AdaptResult(run.path, backbone, r.get("steps_done", 0), r.get("best", {}), doc.get("checks", []),
                       r.get("seconds", 0.0), r.get("images_per_s", 0.0), r.get("stopped_early", False),
                       doc.get("settings", {}))  # fmt: skip
