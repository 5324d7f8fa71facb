"""What a generation is made of: immutable segments (the row space over them and the loaded
generation are ``generation``).

    index/segments/
      s-000004/            written once, never changed, shared by every generation naming it
        segment.json       rows, sentences, dense kind, sha256 + size of every file, checksum
        chunks.sqlite      files, chunks (offsets, lines, text), sentences: local rows
        dense.faiss        chunk vectors, row i = local row i
        sentences.faiss    sentence vectors
        lexical/           BM25 postings: vocab.json, indptr/docs/tf/lengths.npy

A generation names its segments (with their segment.json checksums) and the live documents
(segment, first local row, chunk count); every other row of a segment is a tombstone. The
merge policy (``plan_merge``) decides which segments a run folds into a new one.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import IndexCorruptError
from ..types import Chunk
from .dense import DenseIndex
from .lexical import Postings
from .store import SEGMENT_NAME, segments_dir, validate_folder

log = logging.getLogger(__name__)

SEGMENT_MANIFEST = "segment.json"


def list_segments(index_dir: Path) -> list[str]:
    """Segment folder names, oldest first (temp folders excluded)."""
    root = segments_dir(index_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if SEGMENT_NAME.fullmatch(p.name))


def next_segment_name(index_dir: Path) -> str:
    """A segment name after every existing one (orphans of killed runs included)."""
    root = segments_dir(index_dir)
    names = [p.name for p in root.iterdir()] if root.is_dir() else []
    nums = [int(m.group(1)) for n in names if (m := re.search(r"s-(\d{6})", n))]
    return f"s-{max(nums, default=0) + 1:06d}"


class Segment:
    """One loaded, validated segment: chunk table, dense and sentence indexes, postings.

    Immutable, so generations share a loaded segment. Its users are counted (``acquire``,
    ``release``) and the last release closes the chunk database: `rag index` releases the
    segments it loads to merge or to check a new one, and ``Generation.close`` releases a
    generation's. A serving process closes none: when it switches to a new generation
    (``Searcher.reload_if_changed``), the new one shares the loaded segments both name and
    the old one is only dropped, never closed, because questions in flight may still read
    it and nothing counts them. An old generation and the segments only it used are then
    let go when the last reference to them goes (CPython frees them and the database
    connection with them); until then they keep their files open, so the disk space of a
    segment that `rag index` has since deleted is returned only then."""

    def __init__(self, folder: Path, manifest: dict[str, Any], ef_search: int = 128) -> None:
        self.folder = folder
        self.name = folder.name
        self.manifest = manifest
        self.checksum = str(manifest["checksum"])
        self._lock = threading.Lock()
        self._users = 0
        self._db = sqlite3.connect(f"file:{folder / 'chunks.sqlite'}?mode=ro&immutable=1",
                                   uri=True, check_same_thread=False)
        self.paths = dict(self._db.execute("SELECT id, path FROM files").fetchall())
        self.rows = int(manifest["rows"])
        self.dense = DenseIndex.load(folder / "dense.faiss", ef_search)
        sent = np.array(self._db.execute(
            'SELECT row, start, "end" FROM sentences ORDER BY id').fetchall(),
            dtype=np.int64).reshape(-1, 3)
        self.sent_row, self.sent_start, self.sent_end = sent[:, 0], sent[:, 1], sent[:, 2]
        self.sentences = (DenseIndex.load(folder / "sentences.faiss", ef_search)
                          if (folder / "sentences.faiss").exists() else None)
        self.postings = Postings.load(folder / "lexical", mmap=True)
        n_chunks = self._db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        if not (n_chunks == self.dense.size == self.postings.size == self.rows):
            raise IndexCorruptError(
                f"segment {self.name}: counts disagree (manifest {self.rows}, chunks {n_chunks},"
                f" vectors {self.dense.size}, lexical {self.postings.size})")
        if self.sentences is not None and self.sentences.size != len(self.sent_row):
            raise IndexCorruptError(f"segment {self.name}: sentence vectors and rows disagree")

    def chunks(self, rows: Sequence[int]) -> dict[int, Chunk]:
        """Chunks by local row."""
        q = ",".join(str(int(r)) for r in rows)
        with self._lock:
            got = self._db.execute(
                'SELECT row, file_id, start, "end", line_start, line_end, text, context '
                f"FROM chunks WHERE row IN ({q})").fetchall()
        return {g[0]: Chunk(self.paths[g[1]], *g[2:]) for g in got}

    def chunk_range(self, start: int, count: int) -> list[Chunk]:
        """Chunks of local rows start .. start + count - 1, in order."""
        with self._lock:
            got = self._db.execute(
                'SELECT file_id, start, "end", line_start, line_end, text, context FROM chunks '
                "WHERE row >= ? AND row < ? ORDER BY row", (start, start + count)).fetchall()
        return [Chunk(self.paths[g[0]], *g[1:]) for g in got]

    def sentence_range(self, start: int, count: int) -> tuple[int, int]:
        """Local sentence ids [lo, hi) of local chunk rows start .. start + count - 1."""
        lo = int(np.searchsorted(self.sent_row, start, side="left"))
        hi = int(np.searchsorted(self.sent_row, start + count, side="left"))
        return lo, hi

    def acquire(self) -> Segment:
        """One more generation uses this segment."""
        with self._lock:
            self._users += 1
        return self

    def release(self) -> None:
        """A generation is done with it; the last one closes the database."""
        with self._lock:
            self._users -= 1
            if self._users <= 0:
                self._db.close()


def validate_segment(index_dir: Path, name: str, checksum: str) -> dict[str, Any]:
    """The manifest of a segment a generation names, after checking every file's sha256."""
    folder = segments_dir(index_dir) / name
    if not SEGMENT_NAME.fullmatch(name) or not folder.is_dir():
        raise IndexCorruptError(f"segment {name} is missing")
    manifest = validate_folder(folder, SEGMENT_MANIFEST, f"segment {name}")
    if manifest["checksum"] != checksum:
        raise IndexCorruptError(f"segment {name} is not the one the generation names "
                                "(segment.json checksum differs)")
    return manifest


def open_segment(index_dir: Path, name: str, manifest: dict[str, Any], ef_search: int = 128
                 ) -> Segment:
    """Load a validated segment."""
    try:
        return Segment(segments_dir(index_dir) / name, manifest, ef_search)
    except IndexCorruptError:
        raise
    except Exception as e:  # a file that passed the hashes but will not parse
        raise IndexCorruptError(f"segment {name}: cannot load ({e})") from e


def load_segment(index_dir: Path, name: str, checksum: str, ef_search: int = 128) -> Segment:
    """Validate (every file's sha256) then load one segment a generation names."""
    return open_segment(index_dir, name, validate_segment(index_dir, name, checksum), ef_search)


def segment_checksum(index_dir: Path, name: str) -> str | None:
    """The checksum a segment's segment.json records (None if missing or unreadable):
    enough to tell that a name refers to the very segment a generation was built with."""
    try:
        m = json.loads((segments_dir(index_dir) / name / SEGMENT_MANIFEST).read_text())
        return str(m["checksum"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ---------------------------------------------------------------- merge policy

@dataclass(frozen=True)
class SegmentStat:
    """What the merge policy knows of a segment."""

    name: str
    rows: int
    dead: int  # tombstoned rows

    @property
    def dead_share(self) -> float:
        """Share of rows that are tombstones."""
        return self.dead / self.rows if self.rows else 1.0


@dataclass(frozen=True)
class MergePlan:
    """Segments to merge into one new segment. With a base, the new segment starts as a
    copy of the base (its rows, dead ones included, keep their numbers; FAISS indexes are
    extended, not rebuilt) and the others' live rows are appended."""

    merge: tuple[str, ...]
    base: str | None


def plan_merge(stats: Sequence[SegmentStat], max_segments: int, max_dead_share: float,
               optimize: bool = False) -> MergePlan | None:
    """Which segments to merge, if any (pure).

    * a segment whose tombstone share is above max_dead_share is rewritten (its dead rows
      dropped), with the small segments;
    * more than max_segments segments: all but the largest are merged into one;
    * optimize: everything into one segment.
    The base is the largest merged segment whose tombstone share is within the limit."""
    live = [s for s in stats if s.rows]
    empty = tuple(s.name for s in stats if not s.rows)
    if optimize:
        chosen = list(live)
        if len(chosen) <= 1 and not empty and all(
                s.dead_share <= max_dead_share for s in chosen):
            return None  # one segment already (its few tombstones stay: --full drops them)
    else:
        dirty = [s for s in live if s.dead_share > max_dead_share]
        largest = max(live, key=lambda s: (s.rows - s.dead, s.name), default=None)
        small = ([s for s in live if s is not largest]
                 if len(stats) > max_segments else [])
        chosen = list({s.name: s for s in dirty + small}.values())
        if not chosen and not empty:
            return None
        if len(chosen) == 1 and chosen[0] not in dirty and not empty:
            return None
    clean = [s for s in chosen if s.dead_share <= max_dead_share]
    base = max(clean, key=lambda s: (s.rows, s.name), default=None)
    names = tuple(sorted({s.name for s in chosen} | set(empty)))
    return MergePlan(names, base.name if base else None)
