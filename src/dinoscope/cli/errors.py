"""``dinoscope errors DATASET --predictions P``: a detector's metrics, error types, segmentation errors and loss."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.table import Table

from dinoscope.cli._common import handle_errors, out_console
from dinoscope.cli._options import Invocation, config_command
from dinoscope.config import build_config


def _errors(call: Invocation) -> None:
    """Evaluate a detector's predictions: mAP like pycocotools, TIDE error types, over/under-segmentation, loss.

    Predictions: YOLO txt files with scores, a COCO results JSON, or --detector model.onnx run over the images.
    """
    from dinoscope.workflows.errors import ErrorsConfig, find_errors_from_config

    with handle_errors():
        result = find_errors_from_config(build_config(ErrorsConfig, **call.settings))
    print_metrics(result.metrics)
    for insight in result.insights[:10]:
        out_console.print(f"  [bold]high loss[/bold] {insight['text']}", soft_wrap=True)
    out_console.print(f"run: {result.run_dir}  (findings/detection_errors.parquet, eval/metrics.json)")
    if result.report is not None:
        out_console.print(f"[bold]report: {result.report}[/bold]")


def command() -> Callable[..., None]:
    """The generated ``dinoscope errors`` command."""
    from dinoscope.workflows.errors import ErrorsConfig

    return config_command(ErrorsConfig, _errors, arguments=("dataset",))


def print_metrics(metrics: dict[str, Any]) -> None:
    """Headline metrics, TIDE's dAP per error type and the segmentation counts."""
    c = metrics["counts"]
    out_console.print(
        f"[bold]box mAP@0.5 {_pct(metrics['map50'])}  mAP@0.5:0.95 {_pct(metrics['map50_95'])}[/bold] "
        f"({c['n_gt']} objects, {c['n_pred']} predictions, {c['n_images']} images)",
        soft_wrap=True,
    )
    if "mask" in metrics:
        m = metrics["mask"]
        out_console.print(f"[bold]mask mAP@0.5 {_pct(m['map50'])}  mAP@0.5:0.95 {_pct(m['map50_95'])}[/bold]")
    tide = metrics["tide"]
    table = Table(title=f"TIDE (AP@0.5 {_pct(tide['ap50'])}): AP points gained by fixing each error type",
                  title_justify="left")  # fmt: skip
    counts = {**tide["counts"].get("prediction", {}), "miss": tide["counts"].get("label", {}).get("miss", 0)}
    for name in tide["dap"]:
        table.add_column(name, justify="right")
    table.add_row(*(f"{100 * v:.2f}" for v in tide["dap"].values()))
    table.add_row(*(f"n={counts.get(name, 0)}" for name in tide["dap"]))
    out_console.print(table)
    op, seg = metrics["operating_point"], metrics["segmentation"]
    out_console.print(
        f"operating point: score >= {op['score_threshold']:.3f} (best F1 {op['f1']:.3f}); "
        f"{seg['n_under_segmenting_predictions']} predictions merge objects (under-segmentation), "
        f"{seg['n_over_segmented_gt']} objects split into pieces (over-segmentation), containment "
        f">= {seg['containment']}",
        soft_wrap=True,
    )


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f}"
