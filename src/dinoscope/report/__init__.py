"""The offline HTML report of a run: overview, class pages, dataset-wide maps, exports, figures and PDF.

Importing this package is cheap; the builder and its dependencies load on first use.

Example:
    >>> from dinoscope.report import build_report
    >>> build_report("runs/ppe")  # doctest: +SKIP
    PosixPath('runs/ppe/report/index.html')
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dinoscope.report.build import ReportConfig, ReportResult, build_report, build_report_from_config

__all__ = ["ReportConfig", "ReportResult", "build_report", "build_report_from_config"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("dinoscope.report.build"), name)
    raise AttributeError(f"module 'dinoscope.report' has no attribute {name!r}")
