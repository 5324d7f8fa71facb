"""Logs people read when something goes wrong: one line per request, index run and watcher
event, as text on a terminal and JSON lines otherwise (``--log-format``), on stderr.

    2026-12-03T12:50:10.123Z INFO  request rid=7f3a... route="POST /ask" status=200 ms=12.4
    {"time": "2026-12-03T12:50:10.123Z", "level": "info", "event": "request", "rid": ...}

A request's id comes from its ``X-Request-Id`` header when that is short and plain (at most
64 characters of ``[A-Za-z0-9._-]``), else it is made up; it goes back on the response. The
question text is logged only with ``RAG_LOG_QUESTIONS=1``; the key's name (once API keys
exist) through ``RequestContext.key``.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import secrets
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Literal

LogFormat = Literal["text", "json", "auto"]
ACCESS = "rag.access"  # the logger of request lines (always at INFO)
EVENTS = "rag.events"  # index runs and watcher events (always at INFO)
_PLAIN_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id(header: str | None) -> str:
    """The client's X-Request-Id when it is plain and at most 64 characters, else a new one."""
    if header and _PLAIN_ID.fullmatch(header):
        return header
    return secrets.token_hex(8)


@dataclass
class RequestContext:
    """What a request's handler tells its log line and metrics (set through ``current()``)."""

    rid: str
    route: str = ""
    key: str | None = None  # the API key's name, once keys exist
    question: str | None = None  # logged only with RAG_LOG_QUESTIONS=1
    mode: str | None = None
    timings_ms: dict[str, float] | None = None  # of an answered question
    extra: dict[str, Any] = field(default_factory=dict)


_CURRENT: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "rag_request", default=None)


def current() -> RequestContext | None:
    """The request being served by this task or thread (None outside a request)."""
    return _CURRENT.get()


def bind(ctx: RequestContext | None) -> contextvars.Token[RequestContext | None]:
    """Make ctx the current request; returns the token to reset it."""
    return _CURRENT.set(ctx)


def unbind(token: contextvars.Token[RequestContext | None]) -> None:
    """Undo ``bind``."""
    _CURRENT.reset(token)


def log_questions() -> bool:
    """RAG_LOG_QUESTIONS=1: put the question text in request lines (off by default)."""
    return os.environ.get("RAG_LOG_QUESTIONS", "") == "1"


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a log call passed as ``extra={"fields": {...}}``."""
    got = getattr(record, "fields", None)
    return got if isinstance(got, dict) else {}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (or event) and its fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        out: dict[str, Any] = {"time": _utc(record.created), "level": record.levelname.lower()}
        f = fields_of(record)
        if f:
            out["event"] = record.getMessage()
            out.update((k, v) for k, v in f.items() if v is not None)
        else:
            out["logger"] = record.name
            out["msg"] = record.getMessage()
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def _text_value(v: Any) -> str:
    s = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
    return json.dumps(s, ensure_ascii=False) if (not s or any(c in s for c in ' "=\n')) else s


class TextFormatter(logging.Formatter):
    """``TIME LEVEL event key=value ...`` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one readable line."""
        head = f"{_utc(record.created)} {record.levelname:<5}"
        f = fields_of(record)
        if f:
            line = f"{head} {record.getMessage()} " + " ".join(
                f"{k}={_text_value(v)}" for k, v in f.items() if v is not None)
        else:
            line = f"{head} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def resolve_format(fmt: LogFormat | None, stream: Any = None) -> Literal["text", "json"]:
    """text on a terminal, json otherwise, unless asked for one."""
    if fmt in ("text", "json"):
        return fmt
    stream = stream or sys.stderr
    return "text" if getattr(stream, "isatty", lambda: False)() else "json"


def configure(fmt: LogFormat | None = "auto", verbose: bool = False, stream: Any = None
              ) -> Literal["text", "json"]:
    """Log to stderr in one format: the root logger at WARNING (INFO with verbose), request
    lines and index/watch events always. Returns the format chosen."""
    stream = stream or sys.stderr
    chosen = resolve_format(fmt, stream)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    for name in (ACCESS, EVENTS):
        logging.getLogger(name).setLevel(logging.INFO)
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return chosen


def event(name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log an index run or watcher event as one structured line."""
    logging.getLogger(EVENTS).log(level, name, extra={"fields": fields})


def request_line(ctx: RequestContext, method: str, status: int, ms: float) -> None:
    """The one line a request leaves: time, id, route, status, milliseconds (and the key's
    name, the mode, the question only with RAG_LOG_QUESTIONS=1)."""
    fields: dict[str, Any] = {"rid": ctx.rid, "route": f"{method} {ctx.route}",
                              "status": status, "ms": round(ms, 2)}
    if ctx.key is not None:
        fields["key"] = ctx.key
    if ctx.mode is not None:
        fields["mode"] = ctx.mode
    if ctx.question is not None and log_questions():
        fields["question"] = ctx.question
    fields.update(ctx.extra)
    logging.getLogger(ACCESS).info("request", extra={"fields": fields})
