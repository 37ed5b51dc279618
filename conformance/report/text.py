"""Text from a backend (exception messages, names) made safe for a terminal and for XML 1.0.

A backend can put anything in an exception message: ANSI escape sequences that recolour or clear
the terminal, carriage returns that overwrite a line, NUL bytes, characters XML 1.0 cannot hold.
Reports show such characters as Python escapes (``\\x1b``, ``\\r``, ``\\x00``, ``\\u202e``), never
raw and never dropped: the reader sees that they were there.
"""
from __future__ import annotations

import re

# Escaped everywhere: C0 controls except tab and newline (\r included: it overwrites a terminal line
# and XML parsers turn it into \n), DEL and the C1 controls; the Unicode line and paragraph
# separators (str.splitlines breaks on them); the bidirectional overrides and isolates, which
# reorder what a terminal shows; lone surrogates (not encodable, illegal in XML); U+FFFE and
# U+FFFF (illegal in XML 1.0).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069"
                     "\ud800-\udfff\ufffe\uffff]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if char == "\r":
        return "\\r"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_control(text: object) -> str:
    """``text`` as a string with every unsafe character written as its Python escape; ``\\n`` and ``\\t`` stay."""
    return _UNSAFE.sub(_escape, text if isinstance(text, str) else str(text))


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, saying how many were cut."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"... ({len(text) - limit} more characters)"
