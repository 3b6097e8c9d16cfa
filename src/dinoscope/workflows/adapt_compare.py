"""The before/after comparison that ends ``dinoscope adapt``: the original vs the adapted backbone.

With a labelled ``--eval DATASET`` the normal workflows run on it with each backbone, at the adaptation's global
crop size: ``dinoscope analyze`` (:func:`~dinoscope.workflows.pipeline.run_pipeline`, 2-D maps off: they change
no headline number) into ``DIR/compare/original`` and ``DIR/compare/adapted``, and ``dinoscope probe`` of both
on the same group-aware folds into ``DIR/compare/probes``; the vectors go through the normal stores and content
cache (the probe computes nothing the analyses did not). Without one, the page holds the collapse monitor's
figures of step 0 and of the exported check, and says that probes need ``--eval``.

Writes ``DIR/compare.html`` (:func:`~dinoscope.report.adapt_page.build_comparison_page`), ``DIR/compare.json``
(the rows, the facts and the runs) and ``DIR/compare.csv`` (the rows).

Example:
    >>> page = compare_backbones(config, result)  # doctest: +SKIP
    >>> page.name  # doctest: +SKIP
    'compare.html'
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from dinoscope.run import Run
from dinoscope.run_rooms import json_default

__all__ = ["compare_backbones"]

logger = logging.getLogger(__name__)
_NO_EVAL = (
    "No labelled evaluation set: the probes and the analysis numbers need --eval DATASET (class folders, an "
    "MMPretrain JSON or any labelled dataset); below, the collapse monitor's figures only."
)


def compare_backbones(config: Any, result: Any) -> Path | None:
    """Compare the original and the adapted backbone of a finished adaptation; the page, or None when nothing
    was exported (a collapsed model)."""
    if result.backbone is None:
        return None
    from dinoscope.embed.registry import resolve_model
    from dinoscope.report.adapt_page import build_comparison_page, comparison_rows

    run = Run(config.out)
    checks = {int(c["step"]): c["figures"] for c in result.checks}
    before, after = checks.get(0, {}), checks.get(int(result.best.get("step", 0)), {})
    original = resolve_model(config.model)[0]
    facts = {
        "original backbone": original,
        "adapted backbone": f"{result.backbone} (step {result.best.get('step', 0)} of {result.steps})",
        "evaluation set": str(config.eval) if config.eval is not None else "none (--eval)",
    }
    probes, summaries, runs = None, {}, {}
    if config.eval is not None:
        size = result.settings.get("global_size", config.input_size)
        probes, summaries, runs, caption = _evaluate(config, run, original, str(result.backbone), size)
        facts["evaluation"] = caption
    rows = comparison_rows(probes, summaries, before, after)
    doc = {"facts": facts, "runs": runs, "rows": rows}
    _write_numbers(run, doc)
    page = build_comparison_page(run.comparison_path(".html"), rows, facts, "" if probes else _NO_EVAL)
    run.write_adapt_yaml({"comparison": str(page)})
    return page


def _evaluate(
    config: Any, run: Run, original: str, adapted: str, size: int | None
) -> tuple[tuple[dict[str, Any], dict[str, Any]], dict[str, Any], dict[str, str], str]:
    """``analyze`` with each backbone and ``probe`` of both on ``config.eval``: (probe metrics of the original and
    the adapted, the two summaries, the run directories, the probes' evaluation caption)."""
    from dinoscope.workflows.pipeline import run_pipeline
    from dinoscope.workflows.probe import probe

    common = {"dataset": config.eval, "input_size": size, "device": config.device, "precision": config.precision,
              "workers": config.workers, "seed": config.seed, "report": False, "overwrite": True}  # fmt: skip
    models = {"original": {"model": original, "weights": config.weights, "allow_download": config.allow_download},
              "adapted": {"model": adapted}}  # fmt: skip
    summaries, runs = {}, {}
    for name, model in models.items():
        out = run.comparison_run_dir(name)
        logger.info("before/after: analysing %s with the %s backbone", config.eval, name)
        summaries[name] = run_pipeline(out=out, map_method="none", **model, **common).summary
        runs[name] = str(out)
    out = run.comparison_run_dir("probes")
    probed = probe(out=out, compare=[adapted], **models["original"], **common)
    runs["probes"] = str(out)
    metrics = probed.metrics["models"]
    ev = probed.metrics["evaluation"]
    caption = (
        f"{probed.metrics['n_objects']} labelled objects, groups by {probed.metrics['group_by']}, "
        f"{ev.get('mode')} ({ev.get('n_folds')} folds): the same folds for both backbones"
    )
    return (metrics[original]["metrics"], metrics[adapted]["metrics"]), summaries, runs, caption


def _write_numbers(run: Run, doc: dict[str, Any]) -> None:
    """``compare.json`` (everything) and ``compare.csv`` (the rows)."""
    import pandas as pd

    path = run.comparison_path(".json")
    path.write_text(json.dumps(doc, indent=2, default=json_default), encoding="utf-8")
    columns = ["section", "key", "metric", "original", "adapted", "change"]
    frame = pd.DataFrame(doc["rows"] or None, columns=None if doc["rows"] else columns)
    frame = frame[[*columns, *(c for c in frame.columns if c not in columns)]]
    frame.to_csv(run.comparison_path(".csv"), index=False)
