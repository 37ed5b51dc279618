"""Reports of a run: terminal summary, JSON (versioned, read by other tools) and JUnit XML."""
from conformance.report.json_report import REPORT_FORMAT, REPORT_VERSION, build_report, write_json
from conformance.report.junit import write_junit
from conformance.report.terminal import render_summary

__all__ = ["REPORT_FORMAT", "REPORT_VERSION", "build_report", "render_summary", "write_json", "write_junit"]
