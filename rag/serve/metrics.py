"""Prometheus metrics (``GET /metrics``, or ``--metrics-port`` for a standalone watcher) and
the ASGI middleware that counts, times and logs every request.

No label ever holds a file name, a question or a generation name: routes are templates
(``/documents/{path:path}``), everything else is a small fixed set (mode, stage, status,
cause, format). The serving generation's sizes are values read at scrape time.

    rag_http_requests_total{route,method,status}   requests answered
    rag_http_requests_in_flight                    requests being served now
    rag_http_rejected_total{route}                 429s (too many questions in flight)
    rag_ask_seconds{mode,stage}                    /ask latency by stage: embed, search,
                                                   highlight, read (when read), total
    rag_generation_{chunks,documents,segments,tombstones,number}   the serving generation
    rag_generation_reloads_total, rag_generation_reload_failures_total
    rag_watch_runs_total{outcome}                  watcher index runs: published, unchanged,
                                                   failed, deferred
    rag_watch_run_seconds                          their duration
    rag_watch_failures_total{cause}                why runs failed or were deferred
    rag_extraction_failures_total{format}          files that could not be converted
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from . import logs

STAGES = ("embed", "search", "highlight", "read", "total")
ASK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RUN_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
UNMATCHED = "<unmatched>"
WATCH_OUTCOMES = ("published", "unchanged", "failed", "deferred")
WATCH_CAUSES = ("conversion", "corpus_missing", "mass_removal", "locked", "error")
FORMATS = ("pdf", "html", "docx", "txt", "md")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class GenerationStats:
    """The serving generation in numbers (no name: names are not metric values)."""

    number: int
    chunks: int
    documents: int
    segments: int
    tombstones: int


def generation_stats(gen: Any) -> GenerationStats:
    """The numbers of a loaded generation (indexing.generation.Generation), from its manifest."""
    m = gen.manifest
    digits = "".join(ch for ch in str(gen.name) if ch.isdigit())
    return GenerationStats(int(digits or 0), int(m["chunks"]), len(m["documents"]),
                           len(m["segments"]), sum(int(s.get("dead", 0)) for s in m["segments"]))


class Metrics:
    """Every metric of one process, in its own registry (no import-time global)."""

    def __init__(self) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            disable_created_metrics,
        )

        disable_created_metrics()  # no *_created series: half the lines, nothing lost here
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("rag_http_requests", "HTTP requests answered, by route "
                                "template, method and status", ["route", "method", "status"],
                                registry=r)
        self.in_flight = Gauge("rag_http_requests_in_flight", "HTTP requests being served",
                               registry=r)
        self.rejected = Counter("rag_http_rejected", "Requests refused with 429 (too many "
                                "questions in flight)", ["route"], registry=r)
        self.ask = Histogram("rag_ask_seconds", "POST /ask latency by search mode and stage "
                             "(embed, search, highlight, read, total)", ["mode", "stage"],
                             buckets=ASK_BUCKETS, registry=r)
        self.reloads = Counter("rag_generation_reloads", "Switches to a new generation",
                               registry=r)
        self.reload_failures = Counter("rag_generation_reload_failures", "New generations "
                                       "that failed to load (the old one kept serving)",
                                       registry=r)
        self.watch_runs = Counter("rag_watch_runs", "Index runs of the folder watcher by "
                                  "outcome", ["outcome"], registry=r)
        self.watch_seconds = Histogram("rag_watch_run_seconds", "Duration of the watcher's "
                                       "index runs", buckets=RUN_BUCKETS, registry=r)
        self.watch_failures = Counter("rag_watch_failures", "Watcher runs that failed or "
                                      "were deferred, by cause", ["cause"], registry=r)
        self.extraction_failures = Counter("rag_extraction_failures", "Files that could not "
                                           "be converted to text, by format", ["format"],
                                           registry=r)
        for o in WATCH_OUTCOMES:  # present at 0 from the start, so rate() sees the first one
            self.watch_runs.labels(o)
        for c in WATCH_CAUSES:
            self.watch_failures.labels(c)
        for f in FORMATS:
            self.extraction_failures.labels(f)
        self._ask_children: dict[tuple[str, str], Any] = {}
        self._req_children: dict[tuple[str, str, int], Any] = {}

    def follow_generation(self, stats: Callable[[], GenerationStats | None]) -> None:
        """Report the serving generation's sizes, read from ``stats()`` at each scrape."""
        from prometheus_client.core import GaugeMetricFamily

        class _Collector:
            def collect(self) -> Iterator[Any]:
                s = stats()
                if s is None:
                    return
                for name, doc, v in (
                        ("number", "The serving generation's number (g-000007: 7)", s.number),
                        ("chunks", "Live chunks in the serving generation", s.chunks),
                        ("documents", "Documents in the serving generation", s.documents),
                        ("segments", "Segments the serving generation names", s.segments),
                        ("tombstones", ("Dead rows in those segments (removed or changed "
                                        "documents, until a merge drops them)"), s.tombstones)):
                    yield GaugeMetricFamily(f"rag_generation_{name}", doc, value=v)

        self.registry.register(_Collector())  # type: ignore[arg-type]

    def observe_request(self, route: str, method: str, status: int) -> None:
        """Count one answered request."""
        key = (route, method, status)
        child = self._req_children.get(key)
        if child is None:
            child = self._req_children[key] = self.requests.labels(route, method, str(status))
        child.inc()
        if status == 429:
            self.rejected.labels(route).inc()

    def observe_ask(self, mode: str, timings_ms: dict[str, float]) -> None:
        """Record an answered question's stage timings (milliseconds, as Answer has them)."""
        for stage, ms in timings_ms.items():
            if stage not in STAGES:
                continue
            key = (mode, stage)
            child = self._ask_children.get(key)
            if child is None:
                child = self._ask_children[key] = self.ask.labels(mode, stage)
            child.observe(ms / 1000.0)

    def watch_run(self, outcome: str, seconds: float) -> None:
        """Count one watcher index run and its duration."""
        self.watch_runs.labels(outcome).inc()
        self.watch_seconds.observe(seconds)

    def watch_failure(self, cause: str) -> None:
        """Count a watcher run that failed or waited, by cause (one of WATCH_CAUSES)."""
        self.watch_failures.labels(cause if cause in WATCH_CAUSES else "error").inc()

    def extraction_failed(self, fmt: str) -> None:
        """Count a file that could not be converted (fmt: one of FORMATS, else 'other')."""
        self.extraction_failures.labels(fmt if fmt in FORMATS else "other").inc()

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    def serve(self, port: int, host: str = "127.0.0.1") -> Any:
        """Serve /metrics on its own port (a standalone `rag index --watch`)."""
        from prometheus_client import start_http_server

        return start_http_server(port, addr=host, registry=self.registry)


def format_of_path(path: str) -> str:
    """The filter/metric format of a corpus path: pdf, html, docx, txt, md (else other)."""
    low = path.lower()
    for suffix, fmt in ((".pdf", "pdf"), (".html", "html"), (".htm", "html"),
                        (".docx", "docx"), (".txt", "txt"), (".md", "md")):
        if low.endswith(suffix):
            return fmt
    return "other"


class ObserveRequests:
    """ASGI middleware: a request id (taken or made up, returned as X-Request-Id), the
    in-flight gauge, the request counter by route template, /ask stage histograms, and one
    log line per request."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        header = None
        for k, v in scope.get("headers", ()):
            if k == b"x-request-id":
                header = v.decode("latin-1")
                break
        ctx = logs.RequestContext(logs.request_id(header))
        rid = ctx.rid.encode()
        status = 500
        started = False

        async def send_with_id(message: Any) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = int(message["status"])
                started = True
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid)]
            await send(message)

        token = logs.bind(ctx)
        m = self.metrics
        m.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            m.in_flight.dec()
            logs.unbind(token)
            method = scope.get("method", "GET")
            method = method if method in METHODS else "OTHER"
            route = scope.get("route")
            ctx.route = getattr(route, "path", None) or UNMATCHED
            if not started:  # the app raised before answering: the server sends a 500
                status = 500
            m.observe_request(ctx.route, method, status)
            if ctx.timings_ms is not None and ctx.mode is not None and status == 200:
                m.observe_ask(ctx.mode, ctx.timings_ms)
            logs.request_line(ctx, method, status, (time.perf_counter() - t0) * 1000)
