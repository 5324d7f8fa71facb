"""Progress of a `rag index` run: files converted, chunks embedded, rate and time left.

On a terminal one line redrawn in place; otherwise a plain line every ``every_s`` seconds
(logs stay readable). A conversion that takes longer than ``slow_s`` names its file.

    indexing: files 120/500 · converting report.pdf · chunks 3,200/10,000 (210/s, ~32 s left)
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


class Progress:
    """Counts a run's work and shows it; thread-safe, cheap to call per file and batch."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None,
                 every_s: float = 10.0, slow_s: float = 5.0) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.every_s = 0.2 if self.tty else every_s
        self.slow_s = slow_s
        self.files_done = self.files_total = 0
        self.chunks_done = self.chunks_total = 0
        self.current: str | None = None  # the file being read or converted
        self._current_since = 0.0
        self._embed_start: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._slow_named: str | None = None
        self._shown = False

    # -- what the run reports ----------------------------------------------------

    def file(self, path: str, done: int, total: int) -> None:
        """A file is about to be read (done: files looked at so far, of total)."""
        with self._lock:
            self.current, self._current_since = path, time.monotonic()
            self.files_done, self.files_total = done, total
        self._ensure_started()

    def embedding(self, total: int) -> None:
        """Embedding starts: `total` texts (chunks and sentences) to embed."""
        with self._lock:
            self.current = None
            self.chunks_total, self.chunks_done = total, 0
            self._embed_start = time.monotonic()
        self._ensure_started()

    def embedded(self, n: int) -> None:
        """`n` more texts embedded."""
        with self._lock:
            self.chunks_done += n

    def close(self) -> None:
        """Stop showing progress (a terminal line is finished with a newline)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        if self.tty and self._shown:
            self.stream.write("\n")
            self.stream.flush()

    # -- showing it ----------------------------------------------------------------

    def line(self) -> str:
        """The progress line as it stands now."""
        with self._lock:
            parts = [f"files {self.files_done:,}/{self.files_total:,}"]
            if self.current is not None:
                took = time.monotonic() - self._current_since
                slow = f" ({took:.0f} s so far)" if took >= self.slow_s else ""
                parts.append(f"reading {self.current}{slow}")
            if self.chunks_total:
                part = f"texts embedded {self.chunks_done:,}/{self.chunks_total:,}"
                elapsed = time.monotonic() - (self._embed_start or time.monotonic())
                if self.chunks_done and elapsed > 0:
                    rate = self.chunks_done / elapsed
                    left = (self.chunks_total - self.chunks_done) / rate
                    part += f" ({rate:,.0f}/s, ~{left:,.0f} s left)"
                parts.append(part)
        return "indexing: " + " · ".join(parts)

    def _ensure_started(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="index-progress",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        last_plain = time.monotonic()
        while not self._stop.wait(0.2):
            now = time.monotonic()
            slow = (self.current is not None and now - self._current_since >= self.slow_s
                    and self._slow_named != self.current)
            if self.tty:
                self.stream.write("\r\x1b[2K" + self.line()[:200])
                self.stream.flush()
                self._shown = True
            elif slow or now - last_plain >= self.every_s:
                if slow:
                    self._slow_named = self.current
                self.stream.write(self.line() + "\n")
                self.stream.flush()
                last_plain = now
