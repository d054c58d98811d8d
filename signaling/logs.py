"""Structured logging: one line per event on stderr, as ``key=value`` text or as JSON.

Every logger under ``lapak`` writes messages as ``event=name key=value ...``; the text format
prints them as they are, the JSON format (``--log-format json``, for a log shipper) parses
those fields into keys of one JSON object per line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import IO

LOG_FORMATS = ("text", "json")

_FIELD = re.compile(r'([A-Za-z_][\w.-]*)=("(?:[^"\\]|\\.)*"|\S*)')
_INT = re.compile(r"-?(0|[1-9]\d*)")
_FLOAT = re.compile(r"-?\d+\.\d+([eE][-+]?\d+)?")
_BASE_KEYS = frozenset({"ts", "level", "logger", "msg", "exc"})


def _timestamp(record: logging.LogRecord) -> str:
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{ts}.{int(record.msecs):03d}Z"


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=... logger=... <message>``: the default, readable in a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"ts={_timestamp(record)} level={record.levelname.lower()} "
            f"logger={record.name} {record.getMessage()}"
        )
        if record.exc_info:
            exc = self.formatException(record.exc_info).replace("\n", "\\n")
            line += f' exc="{exc}"'
        return line


def _value(text: str) -> str | int | float:
    """A field's value: quoted strings unquoted, plain integers and decimals as numbers."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def parse_fields(message: str) -> tuple[dict[str, str | int | float], str]:
    """The ``key=value`` fields of a message, and whatever text is not a field."""
    fields: dict[str, str | int | float] = {}
    rest: list[str] = []
    position = 0
    for match in _FIELD.finditer(message):
        before = message[position : match.start()].strip()
        if before:
            rest.append(before)
        key = match.group(1)
        fields[f"{key}_" if key in _BASE_KEYS else key] = _value(match.group(2))
        position = match.end()
    tail = message[position:].strip()
    if tail:
        rest.append(tail)
    return fields, " ".join(rest)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, then the message's fields
    (a field named like one of those gets a trailing ``_``); text that is not ``key=value``
    goes to ``msg``, a traceback to ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        fields, rest = parse_fields(record.getMessage())
        out: dict[str, str | int | float] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            **fields,
        }
        if rest:
            out["msg"] = rest
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def formatter(fmt: str = "text") -> logging.Formatter:
    """``json`` or ``text`` (anything else: text)."""
    return JsonFormatter() if fmt == "json" else KeyValueFormatter()


def setup_logging(
    level: str = "INFO",
    stream: IO[str] | None = None,
    fmt: str = "text",
    handler: logging.Handler | None = None,
) -> None:
    """Send every ``lapak`` logger to one handler (a stream, stderr by default) in ``fmt``."""
    if handler is None:
        handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger("lapak")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
