"""Errors raised while loading or evaluating a spec."""
from __future__ import annotations


class FormulaError(ValueError):
    """A formula outside the language: carries the offending token and its column."""

    def __init__(self, message: str, token: str = "", col: int = 0, lineno: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.token = token
        self.col = col
        self.lineno = lineno


class SpecError(ValueError):
    """A spec file that cannot be used, located by file, line and field."""

    def __init__(self, path: str, line: int | None, field: str, message: str) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.message = message
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: field '{field}': {message}")
