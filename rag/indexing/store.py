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

This module is durability, the lock, names, the writer, garbage collection and validation;
a loaded segment is ``segments.Segment``, a loaded generation ``generation.Generation``.
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
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..digest import file_digest
from ..errors import IndexCorruptError, IndexLockedError
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


# ---------------------------------------------------------------- names

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
SEGMENTS = "segments"
SEGMENT_NAME = re.compile(r"s-\d{6}")


def segments_dir(index_dir: Path) -> Path:
    """Where segment folders live."""
    return index_dir / SEGMENTS


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
    for root in (generations_dir(index_dir), segments_dir(index_dir)):
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


# ---------------------------------------------------------------- validation

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
