"""``dinoscope seg collect | import | prepare | train | predict | eval``: segmentation, from video to masks."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from dinoscope.cli._common import handle_errors, out_console
from dinoscope.cli._options import Display, Invocation, config_command
from dinoscope.config import build_config

seg_app = typer.Typer(
    help="Segmentation: import CVAT exports, prepare splits, train a U-Net, predict images and videos, evaluate.",
    no_args_is_help=True,
)


def _collect(call: Invocation) -> None:
    """Frames to label: a window (s saves, space pauses, arrows step, q quits), or headless --every-s / --diverse."""
    from dinoscope.workflows.seg import SegCollectConfig, collect_frames

    with handle_errors():
        result = collect_frames(build_config(SegCollectConfig, **call.settings))
    extra = f" chosen from {result.n_candidates} candidates" if result.n_candidates else ""
    out_console.print(f"{len(result.frames)} frames{extra} -> {result.out}/images, meta (next: label them)")
    if not result.frames:
        out_console.print("[yellow]no frame saved (press s in the window to save the frame shown)[/yellow]")


def _import(call: Invocation) -> None:
    """CVAT export (mask 1.1, COCO 1.0, XML 1.1) or mask folder -> images/ + masks/, every file reported."""
    from dinoscope.workflows.seg import SegImportConfig, seg_import_from_config

    with handle_errors():
        result = seg_import_from_config(build_config(SegImportConfig, **call.settings))
    counts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in result.counts.items() if n)
    out_console.print(
        f"[bold]{result.format}[/bold] export, labels {', '.join(result.labels) or '-'} (foreground: "
        f"{', '.join(result.chosen) or 'all'}): {counts}"
    )
    for note in result.notes:
        out_console.print(f"[yellow]{note}[/yellow]")
    problems = [r for r in result.rows if r["status"] in ("missing", "size_mismatch", "unreadable")]
    for r in problems[:10]:
        out_console.print(f"[red]{r['status']}[/red] {r['name']}: {r['message']}")
    if len(problems) > 10:
        out_console.print(f"... {len(problems) - 10} more problems")
    out_console.print(f"-> {result.out}/images, masks (every file: {result.out}/import.csv)")


def _prepare(call: Invocation) -> None:
    """Empty masks for unlabelled images, 0/255 check, grouped stratified splits/{train,val,test}.txt."""
    from dinoscope.workflows.seg import SegPrepareConfig, seg_prepare_from_config

    with handle_errors():
        r = seg_prepare_from_config(build_config(SegPrepareConfig, **call.settings))
    out_console.print(
        f"{r.n_images} images ({r.n_positive} with foreground) in {r.n_groups} groups of adjacent frames; "
        f"{r.n_empty_written} empty masks written"
    )
    if r.nonbinary:
        done = "rewritten as 0/255" if r.rewritten else "binarised when read (pass --overwrite to rewrite them)"
        f, n = r.nonbinary[0]
        out_console.print(f"[yellow]{len(r.nonbinary)} masks were not 0/255, e.g. {f} ({n} px): {done}[/yellow]")
    for f, why in r.skipped[:10]:
        out_console.print(f"[red]skipped[/red] {f}: {why}")
    table = Table("split", "images", "with foreground", title_justify="left")
    for s, (n, n_pos) in r.counts.items():
        table.add_row(s, str(n), str(n_pos))
    out_console.print(table)


def _train(call: Invocation) -> None:
    """Train a U-Net (offline encoder weights), keeping the best checkpoint by validation dice."""
    from dinoscope.seg.train import train_segmentation
    from dinoscope.workflows.seg import SegTrainConfig

    def epoch(row: dict[str, float]) -> None:
        out_console.print(
            f"epoch {int(row['epoch']):3d}  tr_loss {row['tr_loss']:.4f}  va_loss {row['va_loss']:.4f}  "
            f"va_dice {row['va_dice']:.4f}  va_iou {row['va_iou']:.4f}  (smoothed va_dice {row['va_dice_ema']:.4f}, "
            f"{row['seconds']:.0f} s)"
        )

    with handle_errors():
        config = build_config(SegTrainConfig, **call.settings)
        result = train_segmentation(config, on_epoch=epoch)
    s = result.settings
    out_console.print(
        f"[bold]{s['arch']}[/bold] U-Net, {s['input_size']} px crops, batch {s['batch_size']}, {s['precision']} on "
        f"{s['device']}: {result.n_train} train / {result.n_val} val images, {result.seconds:.0f} s "
        f"({result.train_images_per_s:.1f} crops/s); best smoothed va_dice {result.best_dice_ema:.4f} "
        f"at epoch {result.best_epoch} (va_dice {result.best_dice:.4f}) -> {result.run}/checkpoints/best.pt"
    )


def _predict(call: Invocation) -> None:
    """Masks, overlays, overlay MP4s and a CSV of crack area and components for images, folders and videos."""
    from dinoscope.workflows.seg import SegPredictConfig, predict_segmentation

    with handle_errors():
        result = predict_segmentation(build_config(SegPredictConfig, **call.settings))
    n_frames = sum(1 for r in result.rows if r["frame"] >= 0)
    out_console.print(
        f"{result.n_images} images, {result.n_videos} videos ({n_frames} frames) in {result.seconds:.1f} s "
        f"({result.images_per_s:.1f} images/s) -> {result.out}/predictions.csv"
    )


def _eval(call: Invocation) -> None:
    """Score a model on images/ + masks/: foreground dice, IoU, precision, recall; worst images in a page."""
    from dinoscope.workflows.seg import SegEvalConfig, evaluate_segmentation

    with handle_errors():
        result = evaluate_segmentation(build_config(SegEvalConfig, **call.settings))
    m = result.metrics
    if call.display["as_json"]:
        typer.echo(json.dumps({k: m[k] for k in ("dice", "iou", "precision", "recall", "n_images")}))
        return
    tta = " (flip TTA)" if m["tta"] else ""
    out_console.print(
        f"{m['n_images']} images{tta}: dice [bold]{m['dice']:.4f}[/bold]  IoU {m['iou']:.4f}  precision "
        f"{m['precision']:.4f}  recall {m['recall']:.4f} -> {result.page}"
    )


def register(app: typer.Typer) -> None:
    """Add the generated ``seg`` commands to ``app``."""
    from dinoscope.workflows.seg import (
        SegCollectConfig,
        SegEvalConfig,
        SegImportConfig,
        SegPredictConfig,
        SegPrepareConfig,
        SegTrainConfig,
    )

    as_json = Display("as_json", bool, False, "Print the metrics as one JSON object (for scripts).", "--json")
    app.command("collect", no_args_is_help=True)(config_command(SegCollectConfig, _collect, arguments=("source",)))
    app.command("import", no_args_is_help=True)(config_command(SegImportConfig, _import, arguments=("data",)))
    app.command("prepare", no_args_is_help=True)(config_command(SegPrepareConfig, _prepare, arguments=("data",)))
    app.command("train", no_args_is_help=True)(config_command(SegTrainConfig, _train, arguments=("data",)))
    app.command("predict", no_args_is_help=True)(
        config_command(SegPredictConfig, _predict, arguments=("model_dir", "source"))
    )
    app.command("eval", no_args_is_help=True)(
        config_command(SegEvalConfig, _eval, arguments=("model_dir", "data"), display=(as_json,))
    )
