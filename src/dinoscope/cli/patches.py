"""``dinoscope patches fit | render | merge``: patch-feature PCA of images and videos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dinoscope.cli._common import handle_errors, out_console

patches_app = typer.Typer(
    help="Patch-feature PCA: fit components over images and videos, merge fits, render them as colours.",
    no_args_is_help=True,
)

_MODEL_HELP = "Model name, timm:<name>, onnx:<file>, folder or .pth."


@patches_app.command("fit", no_args_is_help=True)
def fit(
    source: Annotated[Path, typer.Argument(help="Image/video file, folder, subject/clip tree or dataset.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PCA JSON to write (+ <stem>.stats.npz).")],
    model: Annotated[str, typer.Option("--model", "-m", help=_MODEL_HELP)] = "dinov2-base",
    image_size: Annotated[int, typer.Option(help="Square model input side (multiple of the patch size).")] = 224,
    components: Annotated[int, typer.Option(help="Principal components to keep.")] = 8,
    layout: Annotated[str, typer.Option(help="auto, folder (plain files) or dataset (labelled).")] = "auto",
    in_boxes: Annotated[bool, typer.Option(help="Dataset: only patches inside the boxes.")] = False,
    shard: Annotated[
        str | None, typer.Option(help="k/n: every n-th clip from the k-th (fit parts, then merge).")
    ] = None,
    max_samples: Annotated[int | None, typer.Option(help="At most this many frames, shared over clips.")] = None,
    frames_per_clip: Annotated[int | None, typer.Option(help="Frames spread uniformly over each clip.")] = None,
    stride: Annotated[int, typer.Option(help="Keep every k-th frame (or image) of a clip.")] = 1,
    resize: Annotated[str, typer.Option(help="squash (whole frame) or center (shorter side + crop).")] = "squash",
    foreground: Annotated[bool, typer.Option(help="Fit on foreground patches only (DINOv2 recipe).")] = False,
    fg_threshold: Annotated[float, typer.Option(help="Foreground threshold, in std of the 1st component.")] = 0.0,
    foreground_from: Annotated[
        Path | None, typer.Option(help="Take the foreground direction from this PCA file (mergeable fits).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Frames per batch (default: from free memory).")] = None,
    workers: Annotated[int | None, typer.Option(help="Decoding threads.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    precision: Annotated[str, typer.Option(help="auto, fp32, bf16 or fp16.")] = "auto",
    weights: Annotated[str | None, typer.Option(help="Local weights file for timm:<name> models.")] = None,
    allow_download: Annotated[bool, typer.Option(help="Allow downloading weights from the hub.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing PCA file.")] = False,
) -> None:
    """Fit principal components of a model's patch features over images or videos (exact, bounded memory)."""
    options = dict(locals())
    from dinoscope.patches.fit import fit_patches

    options["foreground"] = foreground or foreground_from is not None
    with handle_errors():
        result = fit_patches(**options)
    c = result.configuration
    ratio = ", ".join(f"{r:.3f}" for r in result.pca.explained_variance_ratio_[:3])
    out_console.print(
        f"[bold]{c['model_name']}[/bold] at {c['image_size']} px ({c['grid_size'][0]}x{c['grid_size'][1]} patches, "
        f"{c['embed_dim']}-d): {c['total_frames']} frames from {_n(c['unique_clips'], 'clip')}, {c['total_patches']:,} "
        f"patches; {c['patches_per_s']:,.0f} patches/s, peak RAM {c['peak_rss_mb']:.0f} MB"
    )
    if result.foreground is not None:
        fg = result.foreground.summary()
        out_console.print(
            f"foreground: {fg['n_foreground']:,} patches ({fg['side']} {fg['threshold_sigma']:+.2f} std of the first "
            f"component; border share {fg['border_frac_foreground']:.2f} vs {fg['border_frac_background']:.2f})"
        )
    out_console.print(f"explained variance ratio of the first components: {ratio}")
    if c["n_skipped"]:
        out_console.print(f"[yellow]{c['n_skipped']} unreadable files skipped (listed in the JSON)[/yellow]")
    out_console.print(f"PCA: {result.path}")


@patches_app.command("render", no_args_is_help=True)
def render(
    input: Annotated[Path, typer.Argument(help="Image, video, or folder of them.")],
    pca: Annotated[Path, typer.Option("--pca", help="PCA JSON from `patches fit` or `patches merge`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help=".png / .mp4 for one input, else a folder.")],
    start_component: Annotated[int, typer.Option(help="First component shown (0 = largest variance).")] = 0,
    n_components: Annotated[int, typer.Option(help="1 (grey), 2 (red/green) or 3 (RGB) components.")] = 3,
    scale: Annotated[str, typer.Option(help="fit (stable colours from the fit) or frame (per-frame min-max).")] = "fit",
    clip_sigma: Annotated[float, typer.Option(help="fit scale: +-std spanning the colour range.")] = 2.0,
    overlay: Annotated[float | None, typer.Option(help="Blend over the frame with this alpha.")] = None,
    upsample: Annotated[str, typer.Option(help="nearest or bilinear upsampling of the patch grid.")] = "nearest",
    background: Annotated[float, typer.Option(help="Foreground mode: brightness of background patches.")] = 0.25,
    stride: Annotated[int, typer.Option(help="Render every k-th video frame (fps / k).")] = 1,
    max_frames: Annotated[int | None, typer.Option(help="At most this many frames per video.")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Default: the fit's model.")] = None,
    image_size: Annotated[int | None, typer.Option(help="Model input side (default: the fit's).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Frames per batch (default: from free memory).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    precision: Annotated[str, typer.Option(help="auto, fp32, bf16 or fp16.")] = "auto",
    weights: Annotated[str | None, typer.Option(help="Local weights file for timm:<name> models.")] = None,
    allow_download: Annotated[bool, typer.Option(help="Allow downloading weights from the hub.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace existing outputs.")] = False,
) -> None:
    """Render components of a patch PCA as colours beside (or over) images and videos."""
    options = dict(locals())
    from dinoscope.patches.render import render_patches

    with handle_errors():
        result = render_patches(**options)
    grid = f"{result.grid[0]}x{result.grid[1]}" if result.grid else "?"
    out_console.print(
        f"{result.n_frames} frames rendered with {result.model} ({grid} patches) in {result.seconds:.1f} s -> "
        f"{result.outputs[0] if len(result.outputs) == 1 else f'{len(result.outputs)} files in {out}'}"
    )


@patches_app.command("merge", no_args_is_help=True)
def merge(
    files: Annotated[list[Path], typer.Argument(help="PCA JSON files (their .stats.npz beside them).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Merged PCA JSON to write.")],
    components: Annotated[int | None, typer.Option(help="Components to keep (default: the first file's).")] = None,
    drop_foreground: Annotated[
        bool, typer.Option(help="Merge the all-patch statistics only (fits with different foreground directions).")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
) -> None:
    """Merge fits into exactly the fit of the union of their patches."""
    from dinoscope.patches.files import merge_fits, read_pca_file, write_pca_file

    with handle_errors():
        fits = [read_pca_file(f, statistics=True) for f in files]
        merged = merge_fits(fits, components, drop_foreground=drop_foreground)
        write_pca_file(merged, out, overwrite=overwrite)
    c = merged.configuration
    out_console.print(
        f"merged {len(files)} fits: {c['total_frames']} frames, {c['total_patches']:,} patches, "
        f"{_n(c['unique_clips'], 'clip')}, {_n(c['unique_subjects'], 'subject')} -> {out}"
    )


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
