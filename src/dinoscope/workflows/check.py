"""``dinoscope check DATASET``: read a dataset, run every check, optionally write the findings."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from dinoscope.config import build_config
from dinoscope.io.checks import CheckReport, run_checks
from dinoscope.io.dataset import read_dataset
from dinoscope.options import DatasetOptions, OutputOptions

__all__ = ["CheckConfig", "check", "check_from_config"]


class CheckConfig(DatasetOptions, OutputOptions):
    """Settings of ``dinoscope check`` (``out``: folder for checks.parquet / .csv / .json)."""

    strict: bool = Field(False, description="Exit with status 1 when any finding is an error.")


def check(**kwargs: Any) -> CheckReport:
    """Check a dataset; keyword arguments are the fields of :class:`CheckConfig`.

    Example:
        >>> report = check(dataset="datasets/ppe", out="runs/ppe-check")  # doctest: +SKIP
        >>> report.n_errors  # doctest: +SKIP
        0
    """
    return check_from_config(build_config(CheckConfig, **kwargs))


def check_from_config(config: CheckConfig) -> CheckReport:
    """Run the checks described by a validated config."""
    options = {"task": config.task} if config.task != "auto" else {}
    table = read_dataset(config.dataset, config.format, **options)
    report = run_checks(table)
    if config.out is not None:
        report.write(config.out, overwrite=config.overwrite)
    return report
