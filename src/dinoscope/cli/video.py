"""``dinoscope video``: run a trained detector over videos (or images), sample objects, embed and analyse them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dinoscope.cli._common import handle_errors, out_console

if TYPE_CHECKING:
    from dinoscope.video.pipeline import VideoRun


def video(
    source: Annotated[Path, typer.Argument(help="A video, a folder of videos and/or images, or an image.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to write.")],
    detector: Annotated[
        Path | None, typer.Option("--detector", "-d", help="Detector: .onnx (YOLOX, YOLOv8/11) or .pt (Ultralytics).")
    ] = None,
    detections: Annotated[
        Path | None,
        typer.Option(help="Instead of a detector: folder of per-frame YOLO txt files or a COCO results JSON."),
    ] = None,
    classes: Annotated[
        list[str] | None, typer.Option("--classes", "-c", help="Classes to keep, names or ids (repeat or a,b).")
    ] = None,
    names: Annotated[Path | None, typer.Option(help="Class-names file (one per line, or YAML names:).")] = None,
    stride: Annotated[int, typer.Option(help="Process every N-th frame.")] = 1,
    max_frames: Annotated[int | None, typer.Option(help="Process at most this many frames per video.")] = None,
    per_class: Annotated[int, typer.Option(help="Objects per class, spread over its detections (0: all).")] = 200,
    conf: Annotated[float, typer.Option(help="Minimum detector score.")] = 0.25,
    iou: Annotated[float | None, typer.Option(help="NMS IoU threshold (default: the detector family's).")] = None,
    dedup: Annotated[bool, typer.Option(help="Skip near-identical consecutive detections.")] = True,
    batch_frames: Annotated[int, typer.Option(help="Frames per detector call.")] = 8,
    model: Annotated[
        str, typer.Option("--model", "-m", help="Embedding model; auto = DINOv2-base if offline, else EfficientNet.")
    ] = "auto",
    crop: Annotated[str, typer.Option(help="pad (whole object, default), squash or center.")] = "pad",
    context: Annotated[float, typer.Option(help="Margin around boxes, fraction of their size.")] = 0.0,
    batch_size: Annotated[int | None, typer.Option(help="Crops per embedding batch.")] = None,
    workers: Annotated[int | None, typer.Option(help="Decode worker processes (resumed embeddings).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    precision: Annotated[str, typer.Option(help="auto, fp32, bf16 or fp16.")] = "auto",
    cache_dir: Annotated[Path | None, typer.Option(help="Content cache folder.")] = None,
    no_cache: Annotated[bool, typer.Option(help="Neither read nor write the content cache.")] = False,
    analyze: Annotated[bool, typer.Option(help="Analyse the vectors after embedding.")] = True,
    report: Annotated[bool, typer.Option(help="Build report/index.html after the analyses.")] = True,
    map_method: Annotated[str, typer.Option(help="2-D maps: umap, pacmap, pca or none.")] = "umap",
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace the results of an existing run.")] = False,
) -> None:
    """Detect objects in videos with a trained detector, sample K per class, embed and analyse them."""
    from dinoscope.video.pipeline import run_video

    options = {k: v for k, v in locals().items() if k != "run_video"}
    with handle_errors():
        result = run_video(**options)
    _print(result)


def _print(result: VideoRun) -> None:
    from dinoscope.cli.analyze import print_summary

    det = result.detection
    if det is not None:
        s = det.stats
        fps = s.n_frames / s.seconds if s.seconds else 0.0
        out_console.print(
            f"[bold]{det.detector.get('family', '?')}[/bold] detector: {s.n_frames} frames from {s.n_sources} "
            f"source(s) in {s.seconds:.1f} s ({fps:.1f} frames/s); {s.n_detections} detections, "
            f"{s.n_duplicates} near-duplicates skipped, {s.n_objects} objects sampled"
            + (f", {s.n_resumed} video(s) from the checkpoint" if s.n_resumed else "")
        )
        for source, reason in det.failures.items():
            out_console.print(f"[red]not read[/red] {source}: {reason}", soft_wrap=True)
    else:
        out_console.print("detection: already complete (resumed)")
    e = result.embedding.stats
    out_console.print(
        f"[bold]{result.embedding.spec.name}[/bold]: {e.n_objects} objects - {e.n_computed} computed, "
        f"{e.n_cached} from cache, {e.n_resumed} already done, {e.n_failed} failed"
    )
    if result.analysis is not None:
        print_summary(result.analysis.summary)
    out_console.print(f"run: {result.run_dir}")
    for path in result.outputs:
        out_console.print(f"[bold]report: {path}[/bold]")
