"""``dinoscope check`` as a library call: read a dataset, run every check, optionally write the findings."""

from __future__ import annotations

from typing import Any

from dinoscope.config import CheckConfig, build_config
from dinoscope.io.checks import CheckReport, run_checks
from dinoscope.io.dataset import read_dataset

__all__ = ["check", "check_from_config"]


def check(**kwargs: Any) -> CheckReport:
    """Check a dataset; keyword arguments are the fields of :class:`~dinoscope.config.CheckConfig`.

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
