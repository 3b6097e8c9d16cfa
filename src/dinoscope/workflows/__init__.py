"""The workflow floor: one module per command, each with one config composed from the option groups of
:mod:`dinoscope.options`, stages composed in memory over one :class:`~dinoscope.run.Run`.

``WORKFLOWS`` is the one list of commands: the CLI builds a command from each entry's config, and the tests
check every option against it. Importing this package loads nothing heavy (modules load on first use).

Example:
    >>> from dinoscope.workflows import workflow_config
    >>> sorted(workflow_config("check").model_fields)[:3]
    ['dataset', 'format', 'out']
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["WORKFLOWS", "workflow_config"]

#: Command -> "module:Config" (the CLI command of that name is generated from the config's fields).
WORKFLOWS = {
    "check": "dinoscope.workflows.check:CheckConfig",
    "embed": "dinoscope.workflows.embed:EmbedConfig",
    "analyze": "dinoscope.workflows.pipeline:PipelineConfig",
    "video": "dinoscope.workflows.video:VideoConfig",
    "errors": "dinoscope.workflows.errors:ErrorsConfig",
    "report": "dinoscope.workflows.report:ReportConfig",
    "probe": "dinoscope.workflows.probe:ProbeConfig",
    "demo": "dinoscope.workflows.demo:DemoConfig",
    "select": "dinoscope.workflows.select:SelectConfig",
    "prune": "dinoscope.workflows.prune:PruneConfig",
    "split": "dinoscope.workflows.split:SplitConfig",
    "patches fit": "dinoscope.workflows.patches:PatchFitConfig",
    "patches render": "dinoscope.workflows.patches:PatchRenderConfig",
    "patches merge": "dinoscope.workflows.patches:PatchMergeConfig",
    "seg collect": "dinoscope.workflows.seg:SegCollectConfig",
    "seg import": "dinoscope.workflows.seg:SegImportConfig",
    "seg prepare": "dinoscope.workflows.seg:SegPrepareConfig",
    "seg train": "dinoscope.workflows.seg:SegTrainConfig",
    "seg predict": "dinoscope.workflows.seg:SegPredictConfig",
    "seg eval": "dinoscope.workflows.seg:SegEvalConfig",
    "search": "dinoscope.workflows.search:SearchConfig",
    "export": "dinoscope.workflows.export:ExportConfig",
    "adapt": "dinoscope.workflows.adapt:AdaptConfig",
}


def workflow_config(command: str) -> Any:
    """The config class of a command (see :data:`WORKFLOWS`)."""
    module, name = WORKFLOWS[command].split(":")
    return getattr(importlib.import_module(module), name)
