"""Extraction in a separate process, under a time limit per file.

A malicious or broken file can make a parser hang, eat memory or crash; none of that may
take `rag index` (or the server that runs it) down. One worker process (started with
``spawn``, so no thread or lock of the parent is inherited) converts files one at a time;
a file that takes longer than the limit gets its worker killed and is skipped with that
reason; the next file gets a fresh worker. OCR is timed per page, not per file: each page
the worker starts recognising gives it a fresh window (the file limit plus the page limit),
so a long scan passes while any one stall is still stopped; a page whose window runs out
is remembered as over its limit (``on_page``) and the file is tried once more without it.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .layout import Extracted, ExtractError, Limits
from .ocr import OcrRun, PageOcr

log = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0  # a cold start imports PDFium, lexbor and python-docx


def _serve(conn: Any, limits: Limits) -> None:
    """The worker's loop: receive a path, send ("ok", Extracted) or ("error", reason)."""
    from . import extract

    if limits.memory_mb:
        import resource

        cap = limits.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    from . import docx, html, pdf  # noqa: F401  (imported once, before the clock runs)

    conn.send(("ready", None))
    while True:
        job = conn.recv()
        if job is None:
            return
        path, cached = job
        run = OcrRun(limits.ocr, {int(k): PageOcr.from_json(v) for k, v in cached.items()},
                     on_page=lambda p: conn.send(("page", p.to_json())),
                     on_start=lambda k: conn.send(("start", k)))
        try:
            conn.send(("ok", extract(Path(path), limits, run)))
        except ExtractError as e:
            conn.send(("error", str(e)))
        except MemoryError:
            conn.send(("error", f"needs more than {limits.memory_mb} MB of memory "
                                "(RAG_EXTRACT_MEMORY_MB)"))
        except Exception as e:  # a parser's own bug on a strange file: skip the file
            conn.send(("error", f"the extractor failed ({type(e).__name__}: {e})"))


class ExtractionWorker:
    """Converts files in a child process; ``extract`` raises ExtractError with the reason."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._proc: Any = None
        self._conn: Any = None

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(child, self.limits), daemon=True,
                           name="rag-extract")
        proc.start()
        child.close()
        if not parent.poll(START_TIMEOUT_S):
            proc.kill()
            raise RuntimeError("the extraction process did not start")
        parent.recv()
        self._proc, self._conn = proc, parent

    def _stop(self, kill: bool) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if proc is None:
            return
        if not kill:
            try:
                conn.send(None)
                proc.join(5)
            except (OSError, EOFError):
                pass
        if proc.is_alive():
            proc.kill()
        proc.join()
        conn.close()

    def extract(self, path: Path, cached: dict[int, PageOcr] | None = None,
                on_page: Callable[[PageOcr], None] | None = None,
                on_start: Callable[[int], None] | None = None) -> Extracted:
        """The converted file, or ExtractError (also for a timeout or a crash). ``cached``:
        OCR pages known from before; ``on_page`` gets each page recognised now (also one
        stopped at its time limit), ``on_start`` each page about to be recognised."""
        known = dict(cached or {})
        for _ in range(3):  # a page stopped at its limit is remembered; then try again
            try:
                return self._extract(path, known, on_page, on_start)
            except _PageStopped as e:
                known[e.page.page] = e.page
                if on_page is not None:
                    on_page(e.page)
        raise ExtractError(f"extraction took longer than {self.limits.timeout_s:g} s "
                           "and was stopped (RAG_EXTRACT_TIMEOUT_S)")

    def _extract(self, path: Path, cached: dict[int, PageOcr],
                 on_page: Callable[[PageOcr], None] | None,
                 on_start: Callable[[int], None] | None) -> Extracted:
        if self._proc is None:
            self._start()
        self._conn.send((str(path), {k: p.to_json() for k, p in cached.items()}))
        window = self.limits.timeout_s
        deadline = time.monotonic() + window
        page = 0  # the page being recognised (0: none)
        while True:
            if not self._conn.poll(max(0.0, deadline - time.monotonic())):
                self._stop(kill=True)
                if page:
                    o = self.limits.ocr
                    raise _PageStopped(PageOcr(page, error=f"OCR took longer than {window:g} s "
                                               "and was stopped (RAG_OCR_PAGE_TIMEOUT_S)",
                                               limits=(o.max_pixels, o.page_timeout_s)))
                raise ExtractError(f"extraction took longer than {self.limits.timeout_s:g} s "
                                   "and was stopped (RAG_EXTRACT_TIMEOUT_S)")
            try:
                kind, value = self._conn.recv()
            except (EOFError, OSError):
                code = self._proc.exitcode if self._proc is not None else None
                self._stop(kill=True)
                raise ExtractError(f"the extraction process died on it (exit code {code})"
                                   ) from None
            if kind == "start":  # a page to recognise: its own window
                page = int(value)
                window = self.limits.timeout_s + self.limits.ocr.page_timeout_s
                deadline = time.monotonic() + window
                if on_start is not None:
                    on_start(page)
                continue
            if kind == "page":
                page = 0
                if on_page is not None:
                    on_page(PageOcr.from_json(value))
                continue
            if kind == "error":
                raise ExtractError(value)
            return value  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop the worker process."""
        self._stop(kill=False)

    def __enter__(self) -> ExtractionWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _PageStopped(Exception):
    """The worker was stopped while it recognised a page (that page, as over its limit)."""

    def __init__(self, page: PageOcr) -> None:
        super().__init__(page.error)
        self.page = page
