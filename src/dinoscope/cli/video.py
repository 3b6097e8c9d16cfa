"""``dinoscope video``: run a trained detector over videos (or images), sample objects, embed and analyse them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from dinoscope.cli._common import handle_errors, out_console
from dinoscope.cli._options import Invocation, config_command
from dinoscope.config import build_config

if TYPE_CHECKING:
    from dinoscope.workflows.video import VideoRun


def _video(call: Invocation) -> None:
    """Detect objects in videos with a trained detector, sample K per class, embed and analyse them."""
    from dinoscope.workflows.video import VideoConfig, run_video_from_config

    with handle_errors():
        result = run_video_from_config(build_config(VideoConfig, **call.settings))
    _print(result)


def command() -> Callable[..., None]:
    """The generated ``dinoscope video`` command."""
    from dinoscope.workflows.video import VideoConfig

    return config_command(VideoConfig, _video, arguments=("source",))


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
