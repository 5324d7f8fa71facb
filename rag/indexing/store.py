"""The on-disk index: generations naming immutable segments, and an atomic pointer.

    index/
      CURRENT                 the published generation's name (replaced atomically)
      .lock                   held by a running `rag index`
      segments/
        s-000004/             immutable; shared by every generation that names it
          segment.json        rows, dense kind, sha256+size of every file, checksum
          chunks.sqlite       files and chunks (offsets, lines, text), sentences
          dense.faiss         FAISS index, row i = local row i
          sentences.faiss     sentence vectors
          lexical/            BM25 postings (vocab.json, npy arrays)
      generations/
        g-000007/             one complete, immutable generation
          manifest.json       format, model, chunking, the segments it names (with their
                              checksums), documents (sha256, size, mtime, segment, first
                              row, chunks), sha256+size of its own files
          tombstones/         s-000004.npy: rows of that segment no longer live
          texts/              converted files (PDF, HTML, DOCX), named by the source's sha256
                              (hard links to the previous generation's when unchanged):
                              SHA.txt the extracted text (UTF-8: what offsets index),
                              SHA.json its layout (pages, headings), SHA.boxes.npy (PDF)
        .tmp-g-000008-1234/   a build in progress; never loaded, swept by the next run

A segment is written into a temporary folder, fsynced, renamed into segments/ and that
folder fsynced before any generation names it. A generation is written into a temporary
folder, every file fsynced, renamed into place,
the parent fsynced; then CURRENT is written to a temp file, fsynced and ``os.replace``d.
A crash at any moment leaves CURRENT naming a complete generation.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..digest import file_digest
from ..errors import IndexCorruptError, IndexLockedError, IndexMissingError
from ..lru import LRU
from ..types import Chunk, Document

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 1: one folder per generation, before segments
MANIFEST = "manifest.json"
CURRENT = "CURRENT"
GENERATIONS = "generations"
TEXTS = "texts"
TOMBSTONES = "tombstones"
TMP_PREFIX = ".tmp-"


# ---------------------------------------------------------------- durability helpers

def fsync_path(path: Path) -> None:
    """fsync a file or a folder."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file below root, then every folder, deepest first."""
    for dirpath, _dirs, files in os.walk(root, topdown=False):
        for f in files:
            fsync_path(Path(dirpath) / f)
        fsync_path(Path(dirpath))


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so readers see the old or the new content, never a mix."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)


def manifest_checksum(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON without its own checksum field."""
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------- lock

@contextlib.contextmanager
def index_lock(index_dir: Path, timeout_s: float = 0.0) -> Iterator[None]:
    """Exclusive lock on the index folder; waits up to timeout_s, then IndexLockedError."""
    index_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(index_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout_s
    waiting = False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise IndexLockedError(
                        f"another `rag index` is running on {str(index_dir)!r}; wait for it "
                        "to finish, or pass --lock-timeout SECONDS to wait for it"
                    ) from None
                if not waiting:
                    waiting = True
                    log.warning("waiting up to %.0f s for another `rag index` on %s",
                                timeout_s, index_dir)
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # closing releases the lock


# ---------------------------------------------------------------- generation names

def generations_dir(index_dir: Path) -> Path:
    """Where generation folders live."""
    return index_dir / GENERATIONS


def list_generations(index_dir: Path) -> list[str]:
    """Published generation names, oldest first."""
    root = generations_dir(index_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("g-"))


def next_generation_name(index_dir: Path) -> str:
    """A name after every existing one."""
    names = list_generations(index_dir)
    n = max((int(x[2:]) for x in names if x[2:].isdigit()), default=0)
    return f"g-{n + 1:06d}"


GENERATION_NAME = re.compile(r"g-\d{6}")


def read_pointer(index_dir: Path) -> tuple[str | None, str | None]:
    """(the generation CURRENT names, what is wrong with CURRENT).

    The name is None when CURRENT is missing or damaged: unreadable, not UTF-8, not a
    generation name, or naming a generation that does not exist. The problem is None when
    CURRENT is missing (a new index) or fine; otherwise it says what is wrong, in one line."""
    path = index_dir / CURRENT
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None, None
    except OSError as e:
        return None, f"{CURRENT} is unreadable ({e.strerror or e})"
    try:
        name = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        return None, f"{CURRENT} is damaged (not a generation name: {raw[:40]!r})"
    if not GENERATION_NAME.fullmatch(name):
        return None, f"{CURRENT} is damaged (not a generation name: {name[:40]!r})"
    if not (generations_dir(index_dir) / name).is_dir():
        return None, f"{CURRENT} names generation {name}, which does not exist"
    return name, None


def read_current(index_dir: Path) -> str | None:
    """The name CURRENT points at, or None when it is missing or damaged (see read_pointer)."""
    return read_pointer(index_dir)[0]


# ---------------------------------------------------------------- writing

def write_chunks_db(path: Path, docs: Sequence[Document], chunks: Sequence[Chunk],
                    counts: dict[str, int],
                    sentences: Sequence[tuple[int, int, int]] = (),
                    offsets: tuple[int, int, int] = (0, 0, 0)) -> None:
    """The metadata database: one row per file, one per chunk (row = FAISS row), and the
    sentences of each chunk (id = row of the sentence FAISS index) as (row, start, end).

    With offsets (first file id, chunk row, sentence id) the rows are appended to an
    existing database (a merge extends a copy of its base segment's)."""
    file0, row0, sent0 = offsets
    con = sqlite3.connect(path)
    try:
        con.executescript(
            """
            CREATE TABLE IF NOT EXISTS files (id INTEGER PRIMARY KEY, path TEXT NOT NULL,
                sha256 TEXT NOT NULL, size INTEGER NOT NULL, title TEXT, date TEXT,
                chunks INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS chunks (row INTEGER PRIMARY KEY,
                file_id INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
                line_start INTEGER NOT NULL, line_end INTEGER NOT NULL,
                text TEXT NOT NULL, context TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS sentences (id INTEGER PRIMARY KEY, row INTEGER NOT NULL,
                start INTEGER NOT NULL, "end" INTEGER NOT NULL);
            """
        )
        ids = {d.path: file0 + i for i, d in enumerate(docs)}
        con.executemany(
            "INSERT INTO files VALUES (?,?,?,?,?,?,?)",
            [(file0 + i, d.path, d.sha256, d.size, d.title, d.date, counts.get(d.path, 0))
             for i, d in enumerate(docs)],
        )
        con.executemany(
            "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?)",
            [(row0 + r, ids[c.file], c.start, c.end, c.line_start, c.line_end, c.text,
              c.context) for r, c in enumerate(chunks)],
        )
        con.executemany("INSERT INTO sentences VALUES (?,?,?,?)",
                        [(sent0 + i, row0 + r, a, b) for i, (r, a, b) in enumerate(sentences)])
        con.commit()
    finally:
        con.close()


def seal_manifest(folder: Path, manifest: dict[str, Any], name: str = MANIFEST
                  ) -> dict[str, Any]:
    """Record sha256 and size of every file in folder, add the checksum, write it."""
    files = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != name:
            rel = p.relative_to(folder).as_posix()
            files[rel] = {"sha256": file_digest(p), "size": p.stat().st_size}
    manifest = {**manifest, "format_version": FORMAT_VERSION, "files": files}
    manifest["checksum"] = manifest_checksum(manifest)
    (folder / name).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def new_tmp_folder(index_dir: Path, name: str, root: Path | None = None) -> Path:
    """A fresh temporary folder for building generation (or segment) `name`."""
    root = root or generations_dir(index_dir)
    if not root.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        fsync_path(root.parent)  # the new folder's entry is durable before anything names it
    tmp = root / f"{TMP_PREFIX}{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp


def point_current(index_dir: Path, name: str) -> None:
    """Make CURRENT name generation `name` (atomically, durably)."""
    write_atomic(index_dir / CURRENT, f"{name}\n".encode())


def publish(index_dir: Path, tmp: Path, name: str) -> Path:
    """fsync the built folder, rename it into place, then switch CURRENT to it."""
    fsync_tree(tmp)
    final = generations_dir(index_dir) / name
    os.rename(tmp, final)
    try:
        fsync_path(final.parent)
        point_current(index_dir, name)
    except BaseException:
        if read_current(index_dir) != name:  # never published: leave no stray generation
            shutil.rmtree(final, ignore_errors=True)
        raise
    return final


def collect_garbage(index_dir: Path, keep: int) -> list[str]:
    """Delete leftover temp folders and all but the newest `keep` generations
    (never the current one). Call only while holding the lock."""
    root = generations_dir(index_dir)
    removed: list[str] = []
    if not root.is_dir():
        return removed
    for p in root.iterdir():
        if p.name.startswith(TMP_PREFIX):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
    current = read_current(index_dir)
    names = list_generations(index_dir)
    keepers = set(names[-keep:]) | ({current} if current else set())
    for n in names:
        if n not in keepers:
            shutil.rmtree(root / n, ignore_errors=True)
            removed.append(n)
    for p in index_dir.glob(f"{TMP_PREFIX}*"):
        p.unlink(missing_ok=True)
    return removed + collect_segments(index_dir)


def sweep_temp_folders(index_dir: Path) -> list[str]:
    """Delete what killed runs left: temp folders of generations and segments, temp
    pointers. Reads no manifest (a no-op `rag index` stays cheap). Hold the lock."""
    removed = []
    for root in (generations_dir(index_dir), index_dir / "segments"):
        if root.is_dir():
            for p in root.iterdir():
                if p.name.startswith(TMP_PREFIX):
                    shutil.rmtree(p, ignore_errors=True)
                    removed.append(p.name)
    for p in index_dir.glob(f"{TMP_PREFIX}*"):
        p.unlink(missing_ok=True)
    return removed


def named_segments(index_dir: Path) -> set[str] | None:
    """Segments some generation on disk names; None if a manifest cannot be read (then
    nothing may be deleted: that generation might name any of them)."""
    named: set[str] = set()
    for n in list_generations(index_dir):
        try:
            m = json.loads((generations_dir(index_dir) / n / MANIFEST).read_text())
            named |= {str(s["name"]) for s in m.get("segments", [])}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
    return named


def collect_segments(index_dir: Path) -> list[str]:
    """Delete segment temp folders and segments no generation on disk names (the kept
    generations are the only ones left when this runs). Call only while holding the lock."""
    from .segments import SEGMENT_NAME, segments_dir

    root = segments_dir(index_dir)
    if not root.is_dir():
        return []
    named = named_segments(index_dir)
    removed = []
    for p in sorted(root.iterdir()):
        if p.name.startswith(TMP_PREFIX) or (
                named is not None and SEGMENT_NAME.fullmatch(p.name) and p.name not in named):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
    return removed


def publish_segment(index_dir: Path, tmp: Path, name: str) -> Path:
    """fsync a built segment folder and rename it into segments/, durably: a generation may
    name it only once this returned."""
    fsync_tree(tmp)
    final = tmp.parent / name
    os.rename(tmp, final)
    fsync_path(final.parent)
    return final


# ---------------------------------------------------------------- reading

def validate_folder(folder: Path, manifest_name: str = MANIFEST, what: str | None = None
                    ) -> dict[str, Any]:
    """The manifest, after checking its checksum and every file's size and sha256.

    Raises IndexCorruptError naming the first problem; FAISS never reads a bad file."""
    what = what or f"generation {folder.name}"
    try:
        manifest = json.loads((folder / manifest_name).read_text())
    except (OSError, ValueError) as e:
        raise IndexCorruptError(f"{what}: unreadable manifest ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("checksum") != manifest_checksum(manifest):
        raise IndexCorruptError(f"{what}: manifest checksum mismatch")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexCorruptError(
            f"{what}: format {manifest.get('format_version')} is not "
            f"{FORMAT_VERSION} (an index written before segments); rebuild with "
            "`rag index --full`"
        )
    for rel, meta in manifest["files"].items():
        p = folder / rel
        try:
            size = p.stat().st_size
        except OSError as e:
            raise IndexCorruptError(f"{what}: {rel} missing ({e})") from e
        if size != meta["size"]:
            raise IndexCorruptError(
                f"{what}: {rel} is {size} bytes, manifest says {meta['size']}")
        if file_digest(p) != meta["sha256"]:
            raise IndexCorruptError(f"{what}: {rel} sha256 mismatch")
    return manifest


@dataclass(frozen=True)
class FileRecord:
    """An indexed file as the generation knows it."""

    path: str
    sha256: str
    size: int
    title: str | None
    date: str | None
    chunks: int


class Generation:
    """One loaded, validated generation: the live chunks of its segments as one index.

    Rows are the generation's own: live chunks ordered by file path, then offset (what a
    full build of the same corpus numbers them), mapped to (segment, local row) inside."""

    def __init__(self, folder: Path, manifest: dict[str, Any], ef_search: int = 128,
                 reuse: dict[str, Any] | None = None) -> None:
        from .segments import open_segment, validate_segment

        self.folder = folder
        self.name = folder.name
        self.manifest = manifest
        self._db_lock = threading.Lock()
        self._chunk_cache: LRU[int, Chunk] = LRU(CHUNK_CACHE)  # read-only data: never stale
        self._extracted: LRU[str, Any] = LRU(EXTRACTED_CACHE)
        index_dir = folder.parent.parent
        self.segments: list[Any] = []
        try:
            fresh = {}
            for s in manifest["segments"]:  # every file checked before FAISS reads any
                seg = (reuse or {}).get(s["name"])
                if seg is None or seg.checksum != s["checksum"]:
                    try:
                        fresh[s["name"]] = validate_segment(index_dir, s["name"], s["checksum"])
                    except IndexCorruptError as e:
                        raise IndexCorruptError(f"generation {self.name}: {e}") from e
            for s in manifest["segments"]:
                seg = (reuse or {}).get(s["name"])
                if s["name"] in fresh:
                    seg = open_segment(index_dir, s["name"], fresh[s["name"]], ef_search)
                assert seg is not None  # reused (same checksum) or freshly validated
                self.segments.append(seg.acquire())
            self._row_space()
        except BaseException:
            self.close()
            raise

    def _row_space(self) -> None:
        """Generation rows and sentence ids <-> segment rows, indexes over the live rows."""
        from .lexical import LexicalIndex
        from .segments import SegmentedDense

        docs = self.manifest["documents"]
        paths = sorted(docs)
        self.files = [FileRecord(p, docs[p]["sha256"], docs[p]["size"], docs[p].get("title"),
                                 docs[p].get("date"), docs[p]["chunks"]) for p in paths]
        self.file_by_path = {f.path: f for f in self.files}
        self._file_index = {f.path: i for i, f in enumerate(self.files)}
        where = {s.name: i for i, s in enumerate(self.segments)}
        try:
            seg = np.array([where[docs[p]["segment"]] for p in paths], dtype=np.int64)
        except KeyError as e:
            raise IndexCorruptError(f"generation {self.name}: a document names segment {e}, "
                                    "which the generation does not list") from None
        first = np.array([docs[p]["row"] for p in paths], dtype=np.int64)
        count = np.array([docs[p]["chunks"] for p in paths], dtype=np.int64)
        self._file_start = np.concatenate([[0], np.cumsum(count)]).astype(np.int64)
        self.file_ids = np.repeat(np.arange(len(paths), dtype=np.int32), count)
        row_seg = np.repeat(seg, count)
        row_local = ranges(first, first + count)
        n = len(row_local)
        maps = []
        for i, sg in enumerate(self.segments):
            m = np.full(sg.rows, -1, dtype=np.int64)
            sel = np.flatnonzero(row_seg == i)
            local = row_local[sel]
            if len(local) and (local.max() >= sg.rows or len(np.unique(local)) != len(local)):
                raise IndexCorruptError(f"generation {self.name}: documents overlap or leave "
                                        f"segment {sg.name}'s {sg.rows} rows")
            m[local] = sel
            tomb = self.folder / TOMBSTONES / f"{sg.name}.npy"
            dead = np.flatnonzero(m < 0)
            stored = (np.load(tomb, allow_pickle=False) if tomb.exists()
                      else np.zeros(0, np.int64))
            if not np.array_equal(stored, dead):
                raise IndexCorruptError(f"generation {self.name}: the tombstones of segment "
                                        f"{sg.name} disagree with its documents")
            maps.append(m)
        self.dense = SegmentedDense([s.dense for s in self.segments], maps, row_seg, row_local)
        self.lexical = LexicalIndex(
            [(s.postings, None if self.dense._identity else m)
             for s, m in zip(self.segments, maps)], n)
        # sentences: each row's local sentence range, in row order
        lo = np.zeros(n, dtype=np.int64)
        hi = np.zeros(n, dtype=np.int64)
        for i, sg in enumerate(self.segments):
            sel = row_seg == i
            lo[sel] = np.searchsorted(sg.sent_row, row_local[sel], side="left")
            hi[sel] = np.searchsorted(sg.sent_row, row_local[sel], side="right")
        per_row = hi - lo
        self.sent_row = np.repeat(np.arange(n, dtype=np.int64), per_row)
        sent_seg = np.repeat(row_seg, per_row)
        sent_local = ranges(lo, hi)
        self.sent_start = np.zeros(len(sent_local), dtype=np.int64)
        self.sent_end = np.zeros(len(sent_local), dtype=np.int64)
        smaps = []
        for i, sg in enumerate(self.segments):
            sel = np.flatnonzero(sent_seg == i)
            self.sent_start[sel] = sg.sent_start[sent_local[sel]]
            self.sent_end[sel] = sg.sent_end[sent_local[sel]]
            m = np.full(len(sg.sent_row), -1, dtype=np.int64)
            m[sent_local[sel]] = sel
            smaps.append(m)
        with_sent = [s.sentences is not None for s in self.segments]
        self.sentences = (SegmentedDense([s.sentences for s in self.segments], smaps,
                                         sent_seg, sent_local)
                          if with_sent and all(with_sent) else None)
        if n != self.manifest["chunks"]:
            raise IndexCorruptError(f"generation {self.name}: counts disagree (manifest "
                                    f"{self.manifest['chunks']}, live rows {n})")

    @property
    def size(self) -> int:
        """Number of chunks."""
        return len(self.file_ids)

    def chunks(self, rows: Sequence[int]) -> list[Chunk]:
        """Chunks by row, in the order asked (recently read ones from a bounded cache: the
        generation never changes, so a cached chunk is never stale)."""
        if not rows:
            return []
        wanted = {int(r) for r in rows}
        bad = [r for r in wanted if not 0 <= r < self.size]
        if bad:
            raise KeyError(bad[0])
        cached = {r: self._chunk_cache.get(r) for r in wanted}
        by_row = {r: c for r, c in cached.items() if c is not None}
        missing = np.array(sorted(wanted - by_row.keys()), dtype=np.int64)
        if len(missing):
            seg = self.dense.seg_of[missing]
            for i in np.unique(seg).tolist():
                glob = missing[seg == i]
                local = self.dense.local_of[glob]
                got = self.segments[i].chunks(local.tolist())
                for g, lr in zip(glob.tolist(), local.tolist()):
                    by_row[g] = got[lr]
                    self._chunk_cache.put(g, got[lr])
        return [by_row[int(r)] for r in rows]

    def chunks_of(self, path: str) -> list[Chunk]:
        """All chunks of one file, in document order."""
        meta = self.manifest["documents"].get(path)
        if meta is None:
            return []
        seg = self.segments[next(i for i, s in enumerate(self.segments)
                                 if s.name == meta["segment"])]
        return seg.chunk_range(int(meta["row"]), int(meta["chunks"]))  # type: ignore[no-any-return]

    def sentence_ids(self, rows: np.ndarray) -> np.ndarray:
        """Sentence ids belonging to the given chunk rows, in order."""
        lo = np.searchsorted(self.sent_row, rows, side="left")
        hi = np.searchsorted(self.sent_row, rows, side="right")
        return ranges(lo, hi)

    def rows_of(self, path: str) -> np.ndarray:
        """Row numbers of one file's chunks."""
        i = self._file_index[path]
        return np.arange(self._file_start[i], self._file_start[i + 1], dtype=np.int64)

    def document_format(self, path: str) -> str:
        """"text" for a file indexed as it is, else the format it was converted from."""
        meta = self.manifest.get("documents", {}).get(path) or {}
        return str(meta.get("format", "text"))

    def extracted(self, path: str) -> Any:
        """The stored text and layout of a converted file (formats.Extracted), None for
        plain text. Read from this generation's own files, so it is the text it indexed."""
        if self.document_format(path) == "text" or path not in self.file_by_path:
            return None
        sha = self.file_by_path[path].sha256
        got = self._extracted.get(sha)
        if got is None:
            from ..text.formats import load_extracted

            got = load_extracted(self.folder / TEXTS, sha, mmap=True)
            self._extracted.put(sha, got)
        return got

    def segments_by_name(self) -> dict[str, Any]:
        """The loaded segments, for a next generation that names some of them to reuse."""
        return {s.name: s for s in self.segments}

    def close(self) -> None:
        """Let go of the segments (each closes its database with its last generation)."""
        with self._db_lock:
            segs, self.segments = self.segments, []
        for s in segs:
            s.release()


CHUNK_CACHE = 20_000  # chunks kept in memory per generation (~1-2 KB each)
EXTRACTED_CACHE = 64  # converted documents' texts and layouts kept in memory


def ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The concatenation of arange(lo[i], hi[i]) for every i, without a Python loop (pure)."""
    counts = np.maximum(np.asarray(hi, np.int64) - np.asarray(lo, np.int64), 0)
    total = int(counts.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    starts = np.repeat(np.asarray(lo, np.int64) - (np.cumsum(counts) - counts), counts)
    return np.arange(total, dtype=np.int64) + starts


def load_generation(index_dir: Path, name: str, ef_search: int = 128,
                    reuse: dict[str, Any] | None = None) -> Generation:
    """Validate then load one generation by name, and each segment it names (a segment in
    ``reuse``, already loaded and validated by the generation before, is shared)."""
    folder = generations_dir(index_dir) / name
    manifest = validate_folder(folder)
    try:
        return Generation(folder, manifest, ef_search, reuse)
    except IndexCorruptError:
        raise
    except Exception as e:  # a file that passed the hashes but will not parse
        raise IndexCorruptError(f"generation {name}: cannot load ({e})") from e


def open_current(index_dir: Path, ef_search: int = 128) -> Generation:
    """The generation CURRENT names; if it is missing or invalid, the newest valid one."""
    current, problem = read_pointer(index_dir)
    names = list_generations(index_dir)
    if current is None and not names:
        if problem:
            raise IndexCorruptError(f"{problem} and there is no generation in "
                                    f"{str(index_dir)!r}; rebuild with `rag index --full`")
        raise IndexMissingError(
            f"no index in {str(index_dir)!r}; build one with `rag index` "
            "(or pass --index DIR / set RAG_INDEX_DIR)")
    order = ([current] if current else []) + [n for n in reversed(names) if n != current]
    problems = []
    for name in order:
        try:
            gen = load_generation(index_dir, name, ef_search)
        except IndexCorruptError as e:
            problems.append(str(e))
            log.error("%s", e)
            continue
        if problem:
            log.warning("%s; using the newest valid generation %s (run `rag index` to repair "
                        "the pointer)", problem, name)
        elif name != current:
            log.warning("CURRENT (%s) is not loadable; serving newest valid generation %s "
                        "(run `rag index` to repair the pointer)", current, name)
        return gen
    raise IndexCorruptError(
        "no valid generation in %r (%s); rebuild with `rag index --full`"
        % (str(index_dir), "; ".join(problems)))
