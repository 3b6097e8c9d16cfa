"""``dinoscope video``: a trained detector over videos (or images) -> sampled objects -> vectors -> analyses.

Two library entry points, one path shared with the CLI (validated configs, as everywhere):

- :func:`detect_video` runs the single decoding pass (:mod:`dinoscope.video.detect`) and returns the object
  table of sampled detections, every detection, and the sampled crops cut in memory;
- :func:`run_video` writes a run directory like ``dinoscope embed`` (refused if it exists, ``resume`` /
  ``overwrite``), embeds the in-memory crops through the engine (store and content cache filled exactly as
  for any source), analyses the vectors like ``dinoscope analyze`` and then calls :func:`build_outputs`.

Run directory additions: ``detections.parquet`` (every detection with ``duplicate``/``sampled`` flags and
object ids) and ``detections/`` (per-video logs, so that ``--resume`` does not decode finished videos again).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from dinoscope.config import StrictModel, build_config
from dinoscope.embed.spec import CropSpec, ModelSpec
from dinoscope.errors import DinoscopeError
from dinoscope.io.class_names import read_class_names
from dinoscope.io.videos import list_sources
from dinoscope.run import RunDir
from dinoscope.table import ObjectTable
from dinoscope.video.detect import FramePass, VideoDetections
from dinoscope.video.detectors.base import Detector, resolve_classes
from dinoscope.video.sampling import ClassSampler, DuplicateFilter

__all__ = [
    "DetectConfig",
    "VideoConfig",
    "VideoRun",
    "build_outputs",
    "detect_video",
    "run_video",
    "run_video_from_config",
]

logger = logging.getLogger(__name__)


class DetectConfig(StrictModel):
    """Settings of the detection pass (every field is also a CLI option of ``dinoscope video``).

    Attributes:
        source: A video, a folder of videos and/or images (searched recursively), or an image.
        detector: ``.onnx`` (YOLOX, YOLOv8/11 export) or ``.pt`` (Ultralytics) model.
        detections: Instead of a detector: a folder of per-frame YOLO txt files or a COCO results JSON.
        names: Class-names file (one per line, or YAML ``names:``), overriding the model's.
        classes: Class names or ids to keep (default: all).
        stride: Process every ``stride``-th frame.
        max_frames: Process at most this many frames per video.
        per_class: Objects sampled per class, spread evenly over its detections (0: every detection).
        conf: Minimum detector score.
        iou: NMS overlap threshold (default: the detector family's).
        dedup: Skip near-identical consecutive detections (same class, IoU >= ``dedup_iou`` with the kept
            detection of the previous processed frame, thumbnails within ``dedup_diff`` grey levels).
        batch_frames: Frames per detector call.
        device: Detector device (``auto``, ``cpu``, ``cuda``, ``cuda:N``).
        max_crop_mb: Memory for crops held during the pass (matters only with ``per_class = 0``).
    """

    source: Path
    detector: Path | None = None
    detections: Path | None = None
    names: Path | None = None
    classes: list[str] | None = None
    stride: int = Field(1, ge=1)
    max_frames: int | None = Field(None, ge=1)
    per_class: int = Field(200, ge=0)
    conf: float = Field(0.25, ge=0.0, le=1.0)
    iou: float | None = Field(None, gt=0.0, le=1.0)
    dedup: bool = True
    dedup_iou: float = Field(0.9, gt=0.0, le=1.0)
    dedup_diff: float = Field(3.0, ge=0.0)
    batch_frames: int = Field(8, ge=1)
    device: str = "auto"
    max_crop_mb: float = Field(2048.0, gt=0.0)

    @model_validator(mode="after")
    def _one_detector(self) -> DetectConfig:
        if (self.detector is None) == (self.detections is None):
            raise ValueError("give exactly one of detector (a model file) and detections (a file of detections)")
        return self


class VideoConfig(DetectConfig):
    """Settings of ``dinoscope video``: the detection pass, then embedding and analysis as in ``embed``/``analyze``.

    Attributes:
        out: Run directory to write.
        model: Embedding model (as ``dinoscope embed --model``); ``auto``: DINOv2-base when its weights are on
            this machine, else the offline EfficientNet-Lite0 (see :func:`dinoscope.pipeline.resolve_model`).
        analyze: Run the analyses after embedding.
        report: Build ``report/index.html`` after the analyses.
        k: Neighbours per object in the shared kNN graph.
        cluster_method: ``hdbscan`` or ``dbscan``.
        map_method: 2-D maps: ``umap``, ``pacmap``, ``pca`` or ``none``.
        seed: Seed of every randomised step.
    """

    out: Path
    model: str = "auto"
    pooling: Literal["cls", "mean", "cls+mean", "all-mean", "avg"] | None = None
    input_size: int | None = None
    crop: Literal["pad", "squash", "center"] = "pad"
    context: float = 0.0
    fill: Literal["mean", "edge", "reflect"] = "mean"
    min_size: float = 8.0
    batch_size: int | None = None
    workers: int | None = None
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    store_dtype: Literal["float32", "float16"] = "float32"
    compile: bool = False
    cache_dir: Path | None = None
    no_cache: bool = False
    allow_download: bool = False
    resume: bool = False
    overwrite: bool = False
    analyze: bool = True
    report: bool = True
    k: int = 15
    cluster_method: Literal["hdbscan", "dbscan"] = "hdbscan"
    map_method: Literal["umap", "pacmap", "pca", "none"] = "umap"
    seed: int = 0


def detect_video(
    source: str | Path,
    detector: str | Path | Detector | None = None,
    *,
    model_spec: ModelSpec | None = None,
    crop: CropSpec | None = None,
    checkpoint_dir: Path | None = None,
    **options: Any,
) -> VideoDetections:
    """Run a detector over videos (or images) in one sequential decode and sample objects per class.

    Args:
        source: A video, a folder of videos and/or images, or an image.
        detector: A model file (``.onnx``, ``.pt``) or a :class:`Detector` already built; None with
            ``detections=FILE``.
        model_spec: When given, the sampled objects' crops are cut for this embedding model while their frame
            is in memory (``result.crops``); else no crop is cut.
        crop: Crop policy for those crops (default :class:`CropSpec`).
        checkpoint_dir: Folder for per-video detection logs (a later call with the same settings re-reads them).
        **options: Fields of :class:`DetectConfig` (``classes``, ``stride``, ``per_class``, ``conf``, ...).

    Returns:
        :class:`VideoDetections`: the object table (``source`` relative to the folder given, or to the file's
        folder), every detection, the in-memory crops and the counts.

    Raises:
        VideoError: The only video given cannot be read (in a folder, unreadable videos are reported in
            ``failures`` and the others still run).
        ConfigError: Invalid options (all reported at once), unknown ``classes``.

    Example:
        >>> found = detect_video("clip.mp4", "yolox_nano.onnx", classes=["bottle"], stride=5)  # doctest: +SKIP
        >>> found.table.data[["frame", "time_s", "confidence"]].head(2)  # doctest: +SKIP
    """
    built = detector if isinstance(detector, Detector) else None
    if built is not None:  # recorded by its file name (checkpoints are keyed by it)
        detector = Path(str(built.description.get("file", type(built).__name__)))
    config = build_config(DetectConfig, source=source, detector=detector, **options)
    return _detect(config, built, model_spec, crop or CropSpec(), checkpoint_dir)


def _detect(
    config: DetectConfig,
    built: Detector | None,
    model_spec: ModelSpec | None,
    crop: CropSpec,
    checkpoint_dir: Path | None,
) -> VideoDetections:
    started = time.perf_counter()
    root, videos, images = list_sources(config.source, exclude=getattr(config, "out", None))
    names = read_class_names(config.names) if config.names else None
    detect, class_names, description, label_ref = _detection_source(config, built, names, len(videos) == 1)
    keep = resolve_classes(_split_classes(config.classes), class_names)
    frame_pass = FramePass(
        root,
        detect,
        class_names,
        keep,
        config.conf,
        ClassSampler(config.per_class),
        DuplicateFilter(config.dedup_iou, config.dedup_diff) if config.dedup else None,
        model_spec,
        crop,
        config.max_crop_mb * 2**20,
        checkpoint_dir,
        _settings_key(config),
    )
    single = config.source.is_file()
    for video in videos:
        frame_pass.run_video(video, config.stride, config.max_frames, config.batch_frames, single)
    frame_pass.run_images(images, config.batch_frames)
    if frame_pass.stats.n_failed == frame_pass.stats.n_sources:
        reasons = "; ".join(frame_pass.failures.values())
        raise DinoscopeError(f"{config.source}: no video or image could be read ({reasons})")
    table, log, crops = frame_pass.result(label_ref)
    frame_pass.stats.seconds = time.perf_counter() - started
    memory = None
    if crops:
        import numpy as np

        from dinoscope.embed.loader import MemoryCrops

        rows = np.fromiter(crops, dtype=np.int64, count=len(crops))
        memory = MemoryCrops(rows, np.stack([crops[r] for r in rows.tolist()]))
    return VideoDetections(table, memory, log, frame_pass.stats, description, frame_pass.failures)


def _detection_source(
    config: DetectConfig, built: Detector | None, names: tuple[str, ...] | None, single_video: bool
) -> tuple[Any, tuple[str, ...], dict[str, Any], str]:
    """(detect function, class names, description, label_ref) for a model or a detections file.

    The model is created here, once; with a detections file, each frame's boxes are looked up by video stem
    and frame index.
    """
    if config.detections is not None:
        from dinoscope.video.detectors.files import read_detection_file

        file = read_detection_file(config.detections, names)

        def lookup(stem: str, frames: Sequence[Any]) -> list[Any]:
            out = []
            for f in frames:
                h, w = f.image.shape[:2]
                out.append(file.lookup(getattr(f, "stem", stem), f.index, w, h, single_video))
            return out

        return lookup, file.class_names, file.description, str(config.detections)
    if built is None:
        from dinoscope.video.detectors import create_detector

        built = create_detector(config.detector, conf=config.conf, iou=config.iou, names=names, device=config.device)
    model = built

    def detect(stem: str, frames: Sequence[Any]) -> list[Any]:
        return model.detect([f.image for f in frames])

    return detect, tuple(model.class_names), dict(model.description), ""


def _split_classes(classes: list[str] | None) -> list[str] | None:
    """``["bottle,cup", "person"]`` -> ``["bottle", "cup", "person"]``."""
    if not classes:
        return None
    return [c.strip() for item in classes for c in str(item).split(",") if c.strip()]


def _settings_key(config: DetectConfig) -> str:
    """Hash of everything that changes a video's detection log (its checkpoint is reused only if equal)."""
    keys = ("detector", "detections", "names", "classes", "stride", "max_frames", "conf", "iou", "dedup")
    values = {k: str(getattr(config, k)) for k in keys}
    values.update(dedup_iou=config.dedup_iou, dedup_diff=config.dedup_diff)
    for k in ("detector", "detections"):
        path = getattr(config, k)
        if path is not None and Path(path).is_file():
            stat = Path(path).stat()
            values[f"{k}_stat"] = f"{stat.st_size}-{stat.st_mtime_ns}"
    return hashlib.blake2b(json.dumps(values, sort_keys=True).encode(), digest_size=8).hexdigest()


# --- the whole command --------------------------------------------------------------------------------------
@dataclass
class VideoRun:
    """What ``run_video`` produced.

    Attributes:
        run_dir: The run directory.
        table: The object table of the run.
        detection: The detection pass (None when a resumed run reused its finished detection).
        embedding: The embedding result (store path, spec, stats).
        analysis: The analysis result (None with ``analyze=False``).
        outputs: Files written by :func:`build_outputs`.
    """

    run_dir: Path
    table: ObjectTable
    detection: VideoDetections | None
    embedding: Any
    analysis: Any = None
    outputs: list[Path] = field(default_factory=list)


def run_video(**kwargs: Any) -> VideoRun:
    """Detect, sample, embed and analyse; keyword arguments are the fields of :class:`VideoConfig`.

    Example:
        >>> run = run_video(source="clips/", detector="yolox_nano.onnx", classes=["bottle"], out="runs/bottles",
        ...                 model="efficientnet-lite0")  # doctest: +SKIP
        >>> run.analysis.summary["classes"]["bottle"]["n"]  # doctest: +SKIP
    """
    return run_video_from_config(build_config(VideoConfig, **kwargs))


def run_video_from_config(config: VideoConfig) -> VideoRun:
    """Run ``dinoscope video`` as described by a validated config (see :func:`run_video`)."""
    from dinoscope.embed.cache import resolve_cache_root
    from dinoscope.embed.pipeline import EmbeddingModel, embed_into_run
    from dinoscope.pipeline import resolve_model

    model_name, note = resolve_model(config.model)
    if note:
        logger.info("embedding model: %s", note)
    run = RunDir.create(config.out, resume=config.resume, overwrite=config.overwrite)
    run.write_yaml({"config": config.model_dump(mode="json"), "model": {"name": model_name, "note": note}})
    cache_root = None if config.no_cache else resolve_cache_root(config.cache_dir)
    model = EmbeddingModel(
        model_name,
        pooling=config.pooling,
        input_size=config.input_size,
        device=config.device,
        precision=config.precision,
        compile=config.compile,
        allow_download=config.allow_download,
        cache_root=cache_root,
    )
    crop = CropSpec(policy=config.crop, context_frac=config.context, fill=config.fill, min_size_px=config.min_size)
    detection, table = _detect_into_run(run, config, model.spec, crop)
    if not len(table):
        raise DinoscopeError(_nothing_found(config, detection))
    embedding = embed_into_run(
        run,
        table,
        model,
        crop,
        cache_root=cache_root,
        store_dtype=config.store_dtype,
        resume=config.resume,
        overwrite=config.overwrite,
        batch_size=config.batch_size,
        workers=config.workers,
        crops=detection.crops if detection is not None else None,
    )
    result = VideoRun(run.path, table, detection, embedding)
    if config.analyze:
        from dinoscope.analysis.run import analyze

        result.analysis = analyze(
            run=run.path,
            k=config.k,
            cluster_method=config.cluster_method,
            map_method=config.map_method,
            seed=config.seed,
        )
    result.outputs = build_outputs(result, report=config.report, overwrite=config.overwrite)
    return result


def _detect_into_run(
    run: RunDir, config: VideoConfig, spec: ModelSpec, crop: CropSpec
) -> tuple[VideoDetections | None, ObjectTable]:
    """The run's objects: from the finished detection of a resumed run, or from a new pass (checkpointed)."""
    previous = run.read_yaml().get("detection", {})
    if config.resume and previous.get("complete") and run.objects_path.is_file():
        if previous.get("settings") != _settings_key(config):
            logger.warning(
                "%s: the detection settings differ from the interrupted run's; its finished detection is kept "
                "(use --overwrite to detect again with the new settings)",
                run.path,
            )
        logger.info("%s: detection already complete; resuming the embedding", run.path)
        return None, ObjectTable.read_parquet(run.objects_path)
    checkpoints = run.path / "detections"
    if config.overwrite and not config.resume and checkpoints.is_dir():
        for old in checkpoints.glob("*.parquet"):  # logs of the run being replaced
            old.unlink()
    detection = _detect(config, None, spec, crop, checkpoints)
    detection.table.to_parquet(run.objects_path)
    detection.detections.to_parquet(run.path / "detections.parquet", index=False)
    run.write_yaml(
        {
            "detection": {
                "complete": True,
                "settings": _settings_key(config),
                "detector": detection.detector,
                "stats": asdict(detection.stats),
                "failures": detection.failures,
            }
        }
    )
    return detection, detection.table


def _nothing_found(config: VideoConfig, detection: VideoDetections | None) -> str:
    s = detection.stats if detection is not None else None
    frames = f" in {s.n_frames} frames" if s else ""
    classes = f" of classes {', '.join(config.classes)}" if config.classes else ""
    return (
        f"{config.source}: no detection{classes} with score >= {config.conf}{frames}; lower --conf, check --classes "
        "(names as the detector spells them), or use a smaller --stride"
    )


def build_outputs(result: VideoRun, *, report: bool = True, overwrite: bool = False) -> list[Path]:
    """Outputs built after the analysis: the HTML report (as every pipeline's last step).

    Returns:
        The files written (``report/index.html``; none without analyses or with ``report=False``).
    """
    if not report or result.analysis is None:
        return []
    from dinoscope.pipeline import build_run_report

    return [build_run_report(result.run_dir, overwrite=overwrite)]
