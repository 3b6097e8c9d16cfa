"""``dinoscope demo``: the whole pipeline on the PPE sample bundled in the package."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from dinoscope.config import build_config
from dinoscope.options import ModelOptions, OutputOptions
from dinoscope.workflows.pipeline import PipelineResult, run_pipeline

__all__ = ["DemoConfig", "demo", "demo_from_config", "sample_dataset"]


class DemoConfig(ModelOptions, OutputOptions):
    """Settings of ``dinoscope demo`` (``out`` default ``runs/demo``; the demo's own earlier run is replaced)."""


def sample_dataset() -> Path:
    """The bundled sample: 36 PPE hard-hat/vest images with YOLO labels (see its ATTRIBUTION.md)."""
    return Path(str(files("dinoscope") / "data" / "sample" / "ppe"))


def demo(**kwargs: Any) -> PipelineResult:
    """Analyse the bundled sample end to end; keyword arguments are the fields of :class:`DemoConfig`."""
    return demo_from_config(build_config(DemoConfig, **kwargs))


def demo_from_config(config: DemoConfig) -> PipelineResult:
    """Run the demo described by a validated config (see :func:`demo`)."""
    out = config.out or Path("runs/demo")
    rerun = config.overwrite or (out / "run.yaml").is_file()  # the demo's own earlier run: replace its results
    model = config.model_dump(include=set(ModelOptions.model_fields))
    return run_pipeline(dataset=sample_dataset(), out=out, overwrite=rerun, **model)
