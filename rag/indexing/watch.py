"""Follow the corpus folder: `rag serve --watch` and `rag index --watch`.

    changes (watchfiles) -> a burst settles (quiet_s without a change) -> the changed files
    hold still (size and mtime unchanged for hold_s) -> `rag index` (the same incremental
    code path, one new segment) -> the server switches generation as it always does

* One watcher per index: it holds ``index/.watch.lock`` (with its pid) for its lifetime; a
  second one fails with a message. Each run takes the index lock like `rag index`; a hand-run
  `rag index` meanwhile waits for it and says so (``watcher_pid``).
* A file still being written is not read: the scan defers files modified in the last hold_s
  (a file already indexed keeps its indexed version) and the watcher runs again after.
* A file that fails to convert is reported once and remembered by (path, size, mtime): not
  retried until it changes.
* A run that would remove more than half of the indexed files (a folder being replaced,
  briefly missing, half copied) waits until the folder holds still for removal_hold_s, and
  logs why; a missing folder is waited for.
* Indexing yields to questions: one thread at a lower CPU priority, one ONNX thread, and a
  pause between embedding batches while questions are in flight (``busy``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..config import Settings
from ..errors import CorpusError, IndexLockedError, RagError

log = logging.getLogger(__name__)

WATCH_LOCK = ".watch.lock"


class WatchObserver(Protocol):
    """Where the watcher reports (serve.metrics.Metrics is one)."""

    def watch_run(self, outcome: str, seconds: float) -> None:
        """One index run: published, unchanged, failed or deferred."""

    def watch_failure(self, cause: str) -> None:
        """Why a run failed or waited."""

    def extraction_failed(self, fmt: str) -> None:
        """A file that could not be converted."""


@dataclass(frozen=True)
class WatchOptions:
    """How patient the watcher is (seconds)."""

    @classmethod
    def from_settings(cls, s: Settings) -> WatchOptions:
        """The watcher's options from the settings (RAG_WATCH_*)."""
        return cls(quiet_s=s.watch_quiet_s, max_wait_s=s.watch_max_wait_s,
                   hold_s=s.watch_hold_s, removal_hold_s=s.watch_removal_hold_s,
                   tick_s=min(1.0, s.watch_quiet_s))

    quiet_s: float = 2.0  # a burst of changes has settled after this long without one
    max_wait_s: float = 30.0  # index anyway after this long of constant changes
    hold_s: float = 1.0  # a file must keep its size and mtime this long to be read
    removal_hold_s: float = 10.0  # stillness a run removing over half the files waits for
    tick_s: float = 1.0  # how often the loop looks at the folder without events
    nice: int = 10  # added CPU niceness of the indexing thread (Linux)


def _event(name: str, level: int = logging.INFO, **fields: Any) -> None:
    logging.getLogger("rag.events").log(level, name, extra={"fields": fields})


def filter_format(path: str) -> str:
    """A corpus path's format as filters and metrics name it: pdf, html, docx, txt, md."""
    suffix = os.path.splitext(path)[1].lower()
    return {".pdf": "pdf", ".html": "html", ".htm": "html", ".docx": "docx", ".txt": "txt",
            ".md": "md"}.get(suffix, "other")


# ---------------------------------------------------------------- one watcher per index

@contextlib.contextmanager
def watch_lock(index_dir: Path) -> Iterator[None]:
    """Hold the index's watcher lock (with this pid in it) or raise IndexLockedError."""
    index_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(index_dir / WATCH_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            pid = watcher_pid(index_dir)
            raise IndexLockedError(
                f"a folder watcher{f' (pid {pid})' if pid else ''} already follows "
                f"{str(index_dir)!r}; one watcher per index: stop it, or run without --watch"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def watcher_pid(index_dir: Path) -> int | None:
    """The pid of the watcher following this index, or None when none does."""
    path = index_dir / WATCH_LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            raw = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            return int(raw) if raw.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


# ---------------------------------------------------------------- what the scan may read

@dataclass
class Screen:
    """Decides, per file the index does not already vouch for, whether this run reads it:
    not while it is still being written (modified within hold_s), not when it failed to
    convert before with the same size and mtime. Records what it saw."""

    hold_s: float
    failures: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    seen: dict[str, tuple[int, int]] = field(default_factory=dict)
    unsettled: list[str] = field(default_factory=list)

    def __call__(self, rel: str, st: os.stat_result) -> str | None:
        """A reason not to read the file now, or None to read it."""
        key = (st.st_size, st.st_mtime_ns)
        self.seen[rel] = key
        failed = self.failures.get(rel)
        if failed is not None and failed[:2] == key:
            return f"failed to convert before ({failed[2]}); not retried until it changes"
        if 0 <= time.time_ns() - st.st_mtime_ns < self.hold_s * 1e9:
            self.unsettled.append(rel)
            return "still being written"
        return None

    def remember(self, skipped: Sequence[Any], observer: WatchObserver | None) -> list[str]:
        """Remember this run's conversion failures; returns the ones not reported before."""
        new = []
        for s in skipped:
            key = self.seen.get(s.path)
            if key is None:
                continue
            if self.failures.get(s.path, (None, None, ""))[:2] != key:
                new.append(s.path)
                if observer is not None:
                    observer.extraction_failed(filter_format(s.path))
            self.failures[s.path] = (*key, s.reason)
        return new

    def forget_missing(self, present: set[str]) -> None:
        """Drop failures of files that are gone."""
        for p in [p for p in self.failures if p not in present]:
            del self.failures[p]


# ---------------------------------------------------------------- the folder, as a listing

def listing(corpus_dir: Path) -> dict[str, tuple[int, int]] | None:
    """Corpus path -> (size, mtime_ns) of every corpus file; None when the folder is missing."""
    from ..text.corpus import list_files

    try:
        files = list_files(corpus_dir)
    except CorpusError:
        return None
    out = {}
    for p in files:
        try:
            st = p.stat()
        except OSError:
            continue
        out[p.relative_to(corpus_dir).as_posix()] = (st.st_size, st.st_mtime_ns)
    return out


def indexed_paths(index_dir: Path) -> set[str]:
    """The documents of the published generation (from its manifest)."""
    from .build import previous_generation

    prev = previous_generation(index_dir)
    return set(prev.documents) if prev is not None else set()


def mass_removal(indexed: set[str], present: set[str]) -> int:
    """How many indexed files a run would remove, when that is more than half of them
    (else 0)."""
    gone = len(indexed - present)
    return gone if indexed and gone * 2 > len(indexed) else 0


def yielding_step(embedder: Any, batch_size: int, busy: Callable[[], bool] | None,
                  max_pause_s: float = 0.25) -> Any:
    """An EmbedStep that embeds in batches and, between batches, waits (up to max_pause_s)
    while questions are in flight: indexing yields to questions."""
    def step(texts: Sequence[str]) -> tuple[np.ndarray, dict[str, Any]]:
        out = []
        for i in range(0, len(texts), batch_size):
            if busy is not None:
                deadline = time.monotonic() + max_pause_s
                while busy() and time.monotonic() < deadline:
                    time.sleep(0.005)
            out.append(embedder.embed(texts[i:i + batch_size]))
        vectors = np.vstack(out) if out else np.zeros((0, embedder.dim), np.float32)
        return vectors, {"name": "local", "actors": 1}
    return step


# ---------------------------------------------------------------- the watcher

class FolderWatcher:
    """Keeps the index in line with the corpus folder, in one background thread (or in the
    calling thread with ``run_forever``)."""

    def __init__(self, settings: Settings, observer: WatchObserver | None = None,
                 options: WatchOptions | None = None, busy: Callable[[], bool] | None = None,
                 on_published: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.observer = observer
        self.opts = options or WatchOptions.from_settings(settings)
        self.busy = busy
        self.on_published = on_published
        self.screen = Screen(self.opts.hold_s)
        self.stop_event = threading.Event()
        self._embedder: Any = None
        self._thread: threading.Thread | None = None
        self._lock_cm: Any = None
        self.runs = 0  # index runs finished (any outcome): tests count these, not time

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> FolderWatcher:
        """Take the watcher lock (IndexLockedError if another watcher holds it) and follow
        the folder in a daemon thread."""
        self._lock_cm = watch_lock(self.settings.index_dir)
        self._lock_cm.__enter__()
        self._thread = threading.Thread(target=self._thread_main, name="folder-watcher",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop following the folder (a run in progress finishes first)."""
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._lock_cm is not None:
            self._lock_cm.__exit__(None, None, None)
            self._lock_cm = None

    def run_forever(self) -> None:
        """Follow the folder in this thread until interrupted (holds the watcher lock)."""
        with watch_lock(self.settings.index_dir):
            self._loop()

    def _thread_main(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # lower this thread only (Linux)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(),
                           min(19, os.getpriority(os.PRIO_PROCESS, 0) + self.opts.nice))
        try:
            self._loop()
        except Exception:  # never take the server down; say why the watcher stopped
            log.exception("the folder watcher stopped")
            _event("watch stopped", logging.ERROR, reason="unexpected error (see above)")

    # -- the loop ------------------------------------------------------------

    def _loop(self) -> None:
        from watchfiles import watch

        corpus = self.settings.corpus_dir
        _event("watch started", corpus=str(corpus), index=str(self.settings.index_dir),
               quiet_s=self.opts.quiet_s)
        pending = True  # catch up with what changed while no one watched
        while not self.stop_event.is_set():
            ident = self._wait_for_folder()
            if ident is None:
                return
            try:
                for changes in watch(corpus, debounce=int(self.opts.max_wait_s * 1000),
                                     step=int(self.opts.quiet_s * 1000),
                                     rust_timeout=int(self.opts.tick_s * 1000),
                                     yield_on_timeout=True, stop_event=self.stop_event,
                                     raise_interrupt=False):
                    pending = pending or bool(changes)
                    if self._folder_ident() != ident:  # replaced or gone: watch it anew
                        pending = True
                        break
                    if pending:
                        pending = self.run_once()
            except (FileNotFoundError, RuntimeError, OSError) as e:
                _event("watch interrupted", logging.WARNING, reason=str(e))
                pending = True
                self.stop_event.wait(self.opts.tick_s)

    def _folder_ident(self) -> tuple[int, int] | None:
        try:
            st = self.settings.corpus_dir.stat()
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def _wait_for_folder(self) -> tuple[int, int] | None:
        """The corpus folder's identity once it exists (None: stopped while waiting)."""
        said = False
        while not self.stop_event.is_set():
            ident = self._folder_ident()
            if ident is not None and self.settings.corpus_dir.is_dir():
                return ident
            if not said:
                _event("watch waiting", logging.WARNING, cause="corpus_missing",
                       why=f"the corpus folder {str(self.settings.corpus_dir)!r} is missing")
                if self.observer is not None:
                    self.observer.watch_failure("corpus_missing")
                said = True
            self.stop_event.wait(self.opts.tick_s / 2)
        return None

    # -- one run -------------------------------------------------------------

    def run_once(self) -> bool:
        """One index run if the folder is fit for it; True when another run is needed
        (files still being written, a deferred mass removal, a failure)."""
        t0 = time.perf_counter()
        corpus, index = self.settings.corpus_dir, self.settings.index_dir
        files = listing(corpus)
        if files is None:
            self._finish("deferred", t0, cause="corpus_missing",
                         why=f"the corpus folder {str(corpus)!r} is missing")
            return True
        gone = mass_removal(indexed_paths(index), set(files))
        if gone:
            _event("watch waiting", logging.WARNING, cause="mass_removal",
                   why=f"this run would remove {gone} of the indexed files (more than half): "
                   f"waiting until the folder holds still for {self.opts.removal_hold_s:g} s",
                   removing=gone)
            if self.observer is not None:
                self.observer.watch_failure("mass_removal")
            if not self._hold_still(self.opts.removal_hold_s):
                return True
        return self._index(t0)

    def _hold_still(self, seconds: float) -> bool:
        """Wait until the folder's listing has not changed for `seconds` (False: stopped)."""
        last = listing(self.settings.corpus_dir)
        since = time.monotonic()
        while not self.stop_event.wait(min(0.25, seconds / 4)):
            now = listing(self.settings.corpus_dir)
            if now != last:
                last, since = now, time.monotonic()
            elif last is not None and time.monotonic() - since >= seconds:
                return True
        return False

    def _index(self, t0: float) -> bool:
        from .build import build_index
        from .store import index_lock

        s = self.settings
        self.screen.unsettled.clear()
        self.screen.seen.clear()
        try:
            embedder = self._load_embedder()
            with index_lock(s.index_dir, timeout_s=s.lock_timeout_s or 3600.0):
                report = build_index(s, embedder=embedder, screen=self.screen,
                                     make_step=lambda e: yielding_step(
                                         e, s.embed_batch_size, self.busy))
        except IndexLockedError as e:
            self._finish("failed", t0, cause="locked", why=str(e))
            return True
        except CorpusError as e:
            self._finish("failed", t0, cause="corpus_missing", why=str(e))
            return bool(self.screen.unsettled)  # else the next change tries again
        except (RagError, OSError) as e:
            self._finish("failed", t0, cause="error", why=str(e))
            return False
        new = self.screen.remember(report.skipped, self.observer)
        for path in new:
            reason = next(x.reason for x in report.skipped if x.path == path)
            _event("watch conversion failed", logging.WARNING, file=path, why=reason)
        if new and self.observer is not None:
            self.observer.watch_failure("conversion")
        self.screen.forget_missing(set(self.screen.seen) | set(indexed_paths(s.index_dir)))
        outcome = "published" if report.generation else "unchanged"
        self._finish(outcome, t0, generation=report.generation, added=len(report.added),
                     changed=len(report.changed), removed=len(report.removed),
                     chunks_embedded=report.chunks_embedded,
                     waiting=len(self.screen.unsettled) or None)
        if report.generation and self.on_published is not None:
            try:
                self.on_published(report.generation)
            except Exception:
                log.exception("switching to generation %s failed", report.generation)
        if self.screen.unsettled:  # files still being written: look again once they held
            self.stop_event.wait(self.opts.hold_s)
            return True
        return False

    def _load_embedder(self) -> Any:
        """The document model, loaded once by this thread with one ONNX thread (so its work
        runs at this thread's lower priority)."""
        if self._embedder is None:
            from .embedding import load_embedder

            self._embedder = load_embedder(self.settings.model_copy(
                update={"quantize_queries": False, "onnx_threads": 1}))
        return self._embedder

    def _finish(self, outcome: str, t0: float, cause: str | None = None, **fields: Any) -> None:
        seconds = time.perf_counter() - t0
        self.runs += 1
        if self.observer is not None:
            self.observer.watch_run(outcome, seconds)
            if cause is not None:
                self.observer.watch_failure(cause)
        level = logging.WARNING if outcome in ("failed", "deferred") else logging.INFO
        _event("watch run", level, outcome=outcome, cause=cause, seconds=round(seconds, 3),
               **fields)
