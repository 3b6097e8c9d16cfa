"""``dinoscope report RUN``: the offline HTML report of a run, its exports, figures and optional PDF.

The report is a stand-alone output floor (:mod:`dinoscope.report`) that runs from its own config, composed
from the option groups like every command's; this workflow is its entry point.
"""

from __future__ import annotations

from dinoscope.report.build import ReportConfig, ReportResult, build_report, build_report_from_config

__all__ = ["ReportConfig", "ReportResult", "build_report", "build_report_from_config"]
