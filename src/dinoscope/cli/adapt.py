"""``dinoscope adapt``: continued DINO self-distillation on unlabelled images, exported to DIR/backbone."""

from __future__ import annotations

from collections.abc import Callable

from dinoscope.cli._common import handle_errors, out_console
from dinoscope.cli._options import Invocation, config_command
from dinoscope.config import build_config


def _adapt(call: Invocation) -> None:
    """Adapt a backbone to your unlabelled images (DINO + iBOT + KoLeo self-distillation with an EMA teacher),
    with a kNN probe (--eval) or a collapse monitor every --checkpoint-every steps; the best check's backbone
    goes to OUT/backbone (load it with `dinoscope embed --model OUT/backbone`)."""
    from dinoscope.workflows.adapt import AdaptConfig, adapt_from_config

    with handle_errors():
        result = adapt_from_config(build_config(AdaptConfig, **call.settings))
    best = result.best or {}
    figures = ", ".join(f"{k} {v:.3f}" for k, v in (best.get("figures") or {}).items() if isinstance(v, float))
    how = "stopped early" if result.stopped_early else "done"
    out_console.print(
        f"{result.steps} steps {how} in {result.seconds:.0f} s ({result.images_per_s:.1f} images/s); best check: step "
        f"{best.get('step', 0)} ({figures})"
    )
    if result.backbone is not None:
        out_console.print(f"[bold]backbone: {result.backbone}[/bold]")
    if result.comparison is not None:
        out_console.print(f"[bold]before/after: {result.comparison}[/bold]")


def command() -> Callable[..., None]:
    """The generated ``dinoscope adapt`` command."""
    from dinoscope.workflows.adapt import AdaptConfig

    return config_command(AdaptConfig, _adapt, arguments=("dataset",))
