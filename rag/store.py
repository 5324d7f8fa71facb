"""The on-disk index: generations of plain files, a manifest, and an atomic pointer.

    index/
      CURRENT                 the published generation's name (replaced atomically)
      .lock                   held by a running `rag index`
      generations/
        g-000007/             one complete, immutable generation
          manifest.json       format, model, chunking, documents, sha256+size of every file
          chunks.sqlite       files and chunks (offsets, lines, text)
          dense.faiss         FAISS index, row i = chunk row i
          lexical/            bm25s arrays (npy, json)
          texts/              converted files (PDF, HTML, DOCX), named by the source's sha256:
                              SHA.txt the extracted text (UTF-8: what offsets index),
                              SHA.json its layout (pages, headings), SHA.boxes.npy (PDF)
        .tmp-g-000008-1234/   a build in progress; never loaded, swept by the next run

A generation is written into a temporary folder, every file fsynced, renamed into place,
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

from .errors import IndexCorruptError, IndexLockedError, IndexMissingError
from .lru import LRU
from .types import Chunk, Document

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CURRENT = "CURRENT"
GENERATIONS = "generations"
TEXTS = "texts"
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


def file_digest(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
                    sentences: Sequence[tuple[int, int, int]] = ()) -> None:
    """The metadata database: one row per file, one per chunk (row = FAISS row), and the
    sentences of each chunk (id = row of the sentence FAISS index) as (row, start, end)."""
    con = sqlite3.connect(path)
    try:
        con.executescript(
            """
            CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL,
                sha256 TEXT NOT NULL, size INTEGER NOT NULL, title TEXT, date TEXT,
                chunks INTEGER NOT NULL);
            CREATE TABLE chunks (row INTEGER PRIMARY KEY, file_id INTEGER NOT NULL,
                start INTEGER NOT NULL, "end" INTEGER NOT NULL,
                line_start INTEGER NOT NULL, line_end INTEGER NOT NULL,
                text TEXT NOT NULL, context TEXT NOT NULL);
            CREATE TABLE sentences (id INTEGER PRIMARY KEY, row INTEGER NOT NULL,
                start INTEGER NOT NULL, "end" INTEGER NOT NULL);
            """
        )
        ids = {d.path: i for i, d in enumerate(docs)}
        con.executemany(
            "INSERT INTO files VALUES (?,?,?,?,?,?,?)",
            [(i, d.path, d.sha256, d.size, d.title, d.date, counts.get(d.path, 0))
             for i, d in enumerate(docs)],
        )
        con.executemany(
            "INSERT INTO chunks VALUES (?,?,?,?,?,?,?,?)",
            [(r, ids[c.file], c.start, c.end, c.line_start, c.line_end, c.text, c.context)
             for r, c in enumerate(chunks)],
        )
        con.executemany("INSERT INTO sentences VALUES (?,?,?,?)",
                        [(i, r, a, b) for i, (r, a, b) in enumerate(sentences)])
        con.commit()
    finally:
        con.close()


def seal_manifest(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Record sha256 and size of every file in folder, add the checksum, write it."""
    files = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            rel = p.relative_to(folder).as_posix()
            files[rel] = {"sha256": file_digest(p), "size": p.stat().st_size}
    manifest = {**manifest, "format_version": FORMAT_VERSION, "files": files}
    manifest["checksum"] = manifest_checksum(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def new_tmp_folder(index_dir: Path, name: str) -> Path:
    """A fresh temporary folder for building generation `name`."""
    root = generations_dir(index_dir)
    root.mkdir(parents=True, exist_ok=True)
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
    removed = []
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
    return removed


# ---------------------------------------------------------------- reading

def validate_folder(folder: Path) -> dict[str, Any]:
    """The manifest, after checking its checksum and every file's size and sha256.

    Raises IndexCorruptError naming the first problem; FAISS never reads a bad file."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise IndexCorruptError(f"generation {folder.name}: unreadable manifest ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("checksum") != manifest_checksum(manifest):
        raise IndexCorruptError(f"generation {folder.name}: manifest checksum mismatch")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexCorruptError(
            f"generation {folder.name}: format {manifest.get('format_version')} is not "
            f"{FORMAT_VERSION}; rebuild with `rag index --full`"
        )
    for rel, meta in manifest["files"].items():
        p = folder / rel
        try:
            size = p.stat().st_size
        except OSError as e:
            raise IndexCorruptError(f"generation {folder.name}: {rel} missing ({e})") from e
        if size != meta["size"]:
            raise IndexCorruptError(
                f"generation {folder.name}: {rel} is {size} bytes, manifest says {meta['size']}")
        if file_digest(p) != meta["sha256"]:
            raise IndexCorruptError(f"generation {folder.name}: {rel} sha256 mismatch")
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
    """One loaded, validated generation: dense + lexical indexes and chunk metadata."""

    def __init__(self, folder: Path, manifest: dict[str, Any], ef_search: int = 128) -> None:
        from .dense import DenseIndex
        from .lexical import LexicalIndex

        self.folder = folder
        self.name = folder.name
        self.manifest = manifest
        self._db_lock = threading.Lock()
        self._chunk_cache: LRU[int, Chunk] = LRU(CHUNK_CACHE)  # read-only data: never stale
        self._extracted: LRU[str, Any] = LRU(EXTRACTED_CACHE)
        self._db = sqlite3.connect(f"file:{folder / 'chunks.sqlite'}?mode=ro&immutable=1",
                                   uri=True, check_same_thread=False)
        rows = self._db.execute(
            "SELECT id, path, sha256, size, title, date, chunks FROM files ORDER BY id"
        ).fetchall()
        self.files = [FileRecord(*r[1:]) for r in rows]
        self.file_by_path = {f.path: f for f in self.files}
        self.file_ids = np.fromiter(
            (r[0] for r in self._db.execute("SELECT file_id FROM chunks ORDER BY row")),
            dtype=np.int32)
        self.dense = DenseIndex.load(folder / "dense.faiss", ef_search)
        self.lexical = LexicalIndex.load(folder / "lexical")
        sent = np.array(self._db.execute(
            'SELECT row, start, "end" FROM sentences ORDER BY id').fetchall(),
            dtype=np.int64).reshape(-1, 3)
        self.sent_row, self.sent_start, self.sent_end = sent[:, 0], sent[:, 1], sent[:, 2]
        self.sentences = (DenseIndex.load(folder / "sentences.faiss", ef_search)
                          if (folder / "sentences.faiss").exists() else None)
        if self.sentences is not None and self.sentences.size != len(self.sent_row):
            raise IndexCorruptError(f"generation {self.name}: sentence vectors and rows disagree")
        n = manifest["chunks"]
        if not (len(self.file_ids) == self.dense.size == self.lexical.size == n):
            raise IndexCorruptError(
                f"generation {self.name}: counts disagree (manifest {n}, chunks "
                f"{len(self.file_ids)}, vectors {self.dense.size}, lexical {self.lexical.size})")

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
        cached = {r: self._chunk_cache.get(r) for r in wanted}
        by_row = {r: c for r, c in cached.items() if c is not None}
        missing = sorted(wanted - by_row.keys())
        if missing:
            q = ",".join(str(r) for r in missing)
            with self._db_lock:
                got = self._db.execute(
                    'SELECT c.row, f.path, c.start, c."end", c.line_start, c.line_end, c.text, '
                    f"c.context FROM chunks c JOIN files f ON f.id = c.file_id WHERE c.row IN ({q})"
                ).fetchall()
            for g in got:
                by_row[g[0]] = Chunk(*g[1:])
                self._chunk_cache.put(g[0], by_row[g[0]])
        return [by_row[int(r)] for r in rows]

    def chunks_of(self, path: str) -> list[Chunk]:
        """All chunks of one file with their rows, in document order."""
        with self._db_lock:
            got = self._db.execute(
                'SELECT f.path, c.start, c."end", c.line_start, c.line_end, c.text, c.context '
                "FROM chunks c JOIN files f ON f.id = c.file_id WHERE f.path = ? ORDER BY c.row",
                (path,)).fetchall()
        return [Chunk(*g) for g in got]

    def sentence_ids(self, rows: np.ndarray) -> np.ndarray:
        """Sentence ids belonging to the given chunk rows, in order."""
        lo = np.searchsorted(self.sent_row, rows, side="left")
        hi = np.searchsorted(self.sent_row, rows, side="right")
        return ranges(lo, hi)

    def rows_of(self, path: str) -> np.ndarray:
        """Row numbers of one file's chunks."""
        fid = next(i for i, f in enumerate(self.files) if f.path == path)
        return np.flatnonzero(self.file_ids == fid)

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
            from .formats import load_extracted

            got = load_extracted(self.folder / TEXTS, sha, mmap=True)
            self._extracted.put(sha, got)
        return got

    def close(self) -> None:
        """Release the database handle."""
        with self._db_lock:
            self._db.close()


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


def load_generation(index_dir: Path, name: str, ef_search: int = 128) -> Generation:
    """Validate then load one generation by name."""
    folder = generations_dir(index_dir) / name
    manifest = validate_folder(folder)
    try:
        return Generation(folder, manifest, ef_search)
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
