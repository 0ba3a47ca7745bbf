"""Log output of the daemon and the CLI: text lines or one JSON object per line.

Text is for people reading a terminal or journald; JSON is for log shippers
(Loki, Elasticsearch, ...) that index fields. Structured facts are passed the
standard way, ``log.info("...", extra={"router": "edge-1"})``; the JSON
formatter writes every such extra attribute as a field, the text formatter
shows only the message (which already says the same in words).

``setup`` is called once by the CLI. The config file can choose the format
too (``[service] log_format``); ``use_config_format`` applies it unless the
command line chose already (the flag wins, so a one-off run can override).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import IO

import orjson

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": _iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(out, default=str).decode()


def _iso_time(created: float) -> str:
    """RFC 3339 UTC with milliseconds: sorts as text, parses everywhere."""
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter()
    if fmt == "text":
        return logging.Formatter(TEXT_FORMAT)
    raise ValueError(f"log format {fmt!r}: expected one of {', '.join(FORMATS)}")


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (as logging's own last
    resort does): a caller that swaps stderr (pytest's capture, an embedding
    program) never leaves us writing to a stale stream."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass


_handler: logging.Handler | None = None
_explicit = False


def setup(level: str | int = "INFO", fmt: str | None = None, stream: IO[str] | None = None) -> None:
    """Send the root logger's records to ``stream`` (stderr) in ``fmt``.

    ``fmt`` None means "not chosen": text until a config file says otherwise.
    """
    global _handler, _explicit
    if isinstance(level, str):
        level = getattr(logging, level.upper(), logging.INFO)
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = logging.StreamHandler(stream) if stream is not None else _Stderr()
    _handler.setFormatter(formatter(fmt or "text"))
    root.addHandler(_handler)
    root.setLevel(level)
    _explicit = fmt is not None


def use_config_format(fmt: str) -> None:
    """The config file's ``log_format``, unless the command line chose one.

    Does nothing when ``setup`` was never called (the service embedded in a
    program or a test that configures logging itself).
    """
    if _handler is not None and not _explicit:
        _handler.setFormatter(formatter(fmt))


__all__ = ["FORMATS", "JsonFormatter", "formatter", "setup", "use_config_format"]
