"""Reports of a run: terminal summary, JSON (versioned, read by other tools) and JUnit XML."""
from loss_conformance.report.atomic import ReportPathError, atomic_write
from loss_conformance.report.json_report import (REPORT_FORMAT, REPORT_VERSION, build_report, environment_versions,
                                            write_json)
from loss_conformance.report.junit import junit_xml, write_junit
from loss_conformance.report.terminal import render_summary
from loss_conformance.report.text import escape_control
from loss_conformance.report.writer import ReportWriter

__all__ = ["REPORT_FORMAT", "REPORT_VERSION", "ReportPathError", "ReportWriter", "atomic_write", "build_report",
           "environment_versions", "escape_control", "junit_xml", "render_summary", "write_json", "write_junit"]
