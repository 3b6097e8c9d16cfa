"""``dinoscope patches fit | render | merge``: patch-feature PCA of images and videos."""

from __future__ import annotations

import typer

from dinoscope.cli._common import handle_errors, out_console
from dinoscope.cli._options import Invocation, config_command
from dinoscope.config import build_config

patches_app = typer.Typer(
    help="Patch-feature PCA: fit components over images and videos, merge fits, render them as colours.",
    no_args_is_help=True,
)


def _fit(call: Invocation) -> None:
    """Fit principal components of a model's patch features over images or videos (exact, bounded memory)."""
    from dinoscope.workflows.patches import PatchFitConfig, fit_patches

    with handle_errors():
        config = build_config(PatchFitConfig, **call.settings)
        result = fit_patches(**config.model_dump())
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


def _render(call: Invocation) -> None:
    """Render components of a patch PCA as colours beside (or over) images and videos."""
    from dinoscope.workflows.patches import PatchRenderConfig, render_patches

    with handle_errors():
        config = build_config(PatchRenderConfig, **call.settings)
        result = render_patches(**config.model_dump())
    out = config.out
    grid = f"{result.grid[0]}x{result.grid[1]}" if result.grid else "?"
    out_console.print(
        f"{result.n_frames} frames rendered with {result.model} ({grid} patches) in {result.seconds:.1f} s -> "
        f"{result.outputs[0] if len(result.outputs) == 1 else f'{len(result.outputs)} files in {out}'}"
    )


def _merge(call: Invocation) -> None:
    """Merge fits into exactly the fit of the union of their patches."""
    from dinoscope.workflows.patches import PatchMergeConfig, merge_patches_from_config

    with handle_errors():
        config = build_config(PatchMergeConfig, **call.settings)
        merged = merge_patches_from_config(config)
    files, out = config.files, config.out
    c = merged.configuration
    out_console.print(
        f"merged {len(files)} fits: {c['total_frames']} frames, {c['total_patches']:,} patches, "
        f"{_n(c['unique_clips'], 'clip')}, {_n(c['unique_subjects'], 'subject')} -> {out}"
    )


def register(app: typer.Typer) -> None:
    """Add the generated ``fit``, ``render`` and ``merge`` commands to ``app``."""
    from dinoscope.workflows.patches import PatchFitConfig, PatchMergeConfig, PatchRenderConfig

    app.command("fit", no_args_is_help=True)(config_command(PatchFitConfig, _fit, arguments=("source",)))
    app.command("render", no_args_is_help=True)(config_command(PatchRenderConfig, _render, arguments=("source",)))
    app.command("merge", no_args_is_help=True)(config_command(PatchMergeConfig, _merge, arguments=("files",)))


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
