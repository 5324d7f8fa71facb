"""The loaded generation: one row space over the live chunks of its segments, and the verbs
search asks of it (dense hits, sentence similarities, file masks, chunks, placing a span).

A generation names its segments (with their segment.json checksums) and the live documents
(segment, first local row, chunk count); every other row of a segment is a tombstone. The
generation presents one row space: its live chunks ordered by file path, then offset, which
is exactly the row order of a fresh full build of the same corpus. So row numbers, ties
(broken by row) and everything computed over rows are the same as a full build's.

Storage (durability, names, validation) is ``store``; what a segment holds is ``segments``;
this module reads both and neither reads it.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..errors import IndexCorruptError, IndexMissingError
from ..lru import LRU
from ..text.formats import Extracted, load_extracted
from ..types import Chunk, Hit, Passage, Span
from .dense import DenseIndex
from .lexical import LexicalIndex
from .segments import Segment, open_segment, validate_segment
from .store import (
    TEXTS,
    TOMBSTONES,
    generations_dir,
    list_generations,
    read_pointer,
    validate_folder,
)

log = logging.getLogger(__name__)
S = TypeVar("S", bound=Span)  # a span, or an answer span: placing keeps the kind

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


def top_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest finite scores, any order (pure)."""
    k = min(k, len(scores))
    idx = np.argpartition(-scores, k - 1)[:k] if 0 < k < len(scores) else np.arange(len(scores))
    return idx[np.isfinite(scores[idx])].astype(np.int64)


def row_best(rows: np.ndarray, owners: np.ndarray, sims: np.ndarray) -> np.ndarray:
    """Each (sorted) row's best sentence similarity, 0 for a row without sentences (pure)."""
    best = np.full(len(rows), -1.0, dtype=np.float32)
    np.maximum.at(best, np.searchsorted(rows, owners), sims)
    return np.where(best < -0.5, 0.0, best)


class SegmentedDense:
    """The DenseIndex verbs over several segments' indexes, in the generation's row space.

    ``maps[i]`` sends segment i's local rows to generation rows (-1: tombstone); ``seg_of``
    and ``local_of`` go back. Tombstoned rows are excluded inside FAISS (a bitmap selector),
    so each segment returns k live rows; the merged top k is ordered by score, then row."""

    def __init__(self, parts: list[DenseIndex], maps: list[np.ndarray], seg_of: np.ndarray,
                 local_of: np.ndarray) -> None:
        self.parts = parts
        self.maps = maps
        self.seg_of, self.local_of = seg_of, local_of
        self.live = [m >= 0 for m in maps]
        self.keep_local = [np.flatnonzero(lv) for lv in self.live]
        self.keep_global = [m[k] for m, k in zip(maps, self.keep_local)]
        self._identity = (len(parts) == 1 and len(maps[0]) == len(seg_of)
                          and bool(self.live[0].all())
                          and bool((maps[0] == np.arange(len(maps[0]))).all()))

    @property
    def size(self) -> int:
        """Live rows."""
        return len(self.seg_of)

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return int(self.parts[0].dim) if self.parts else 0

    @property
    def kind(self) -> str:
        """"flat" when every segment is searched exactly, else "hnsw"."""
        return "flat" if all(p.kind == "flat" for p in self.parts) else "hnsw"

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
               exact: bool = False) -> list[list[Hit]]:
        """Top-k generation rows per query by inner product; ``allowed``: a row mask;
        ``exact``: score every allowed vector, also in HNSW segments."""
        scores, rows = self.search_arrays(queries, k, allowed, exact)
        return [[Hit(r, s, i + 1) for i, (r, s) in enumerate(zip(rr.tolist(), ss.tolist()))
                 if r >= 0] for rr, ss in zip(rows, scores)]

    def _local_mask(self, i: int, allowed: np.ndarray | None) -> np.ndarray | None:
        if allowed is None:
            return None if self.live[i].all() else self.live[i]
        mask = np.zeros(len(self.maps[i]), dtype=bool)
        mask[self.keep_local[i]] = allowed[self.keep_global[i]]
        return mask

    def search_arrays(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
                      exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows) per query, best first; row -1 pads a short line."""
        if self._identity:
            return self.parts[0].search_arrays(queries, k, allowed, exact)
        q = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        got_s, got_r = [], []
        for i, part in enumerate(self.parts):
            s, r = part.search_arrays(q, k, self._local_mask(i, allowed), exact)
            g = np.where(r >= 0, self.maps[i][np.maximum(r, 0)], -1) if r.size else r
            got_s.append(s)
            got_r.append(g)
        width = min(k, sum(s.shape[1] for s in got_s))
        out_s = np.full((len(q), width), -np.inf, dtype=np.float32)
        out_r = np.full((len(q), width), -1, dtype=np.int64)
        if not width:
            return out_s, out_r
        s_all, r_all = np.hstack(got_s), np.hstack(got_r)
        for j in range(len(q)):
            ok = r_all[j] >= 0
            s, r = s_all[j][ok], r_all[j][ok]
            order = np.lexsort((r, -s))[:width]
            out_s[j, :len(order)], out_r[j, :len(order)] = s[order], r[order]
        return out_s, out_r

    def all_scores(self, query: np.ndarray) -> np.ndarray | None:
        """Inner product with every live row when every segment is exact (flat), else None."""
        if self._identity:
            return self.parts[0].all_scores(query)
        if not self.size or any(p.kind != "flat" for p in self.parts):
            return None
        out = np.empty(self.size, dtype=np.float32)
        for i, part in enumerate(self.parts):
            if len(self.keep_local[i]):
                got = part.all_scores(query)
                assert got is not None  # every part is flat (checked above)
                out[self.keep_global[i]] = got[self.keep_local[i]]
        return out

    def vectors_of(self, rows: np.ndarray) -> np.ndarray:
        """Stored vectors of some generation rows."""
        rows = np.asarray(rows, dtype=np.int64)
        if self._identity:
            return self.parts[0].vectors_of(rows)
        out = np.zeros((len(rows), self.dim), dtype=np.float32)
        seg = self.seg_of[rows]
        for i in np.unique(seg).tolist():
            sel = seg == i
            out[sel] = self.parts[i].vectors_of(self.local_of[rows[sel]])
        return out

    def vectors(self) -> np.ndarray:
        """All live vectors, in row order."""
        return self.vectors_of(np.arange(self.size))


@dataclass(frozen=True)
class Candidates:
    """Rows near a question by chunk or sentence vector (``Generation.sentence_candidates``)."""

    rows: np.ndarray  # generation rows, ascending
    chunk_sims: np.ndarray  # each row's chunk vector . query
    best_sentence: np.ndarray  # each row's best sentence similarity (0 without sentences)
    sentence_ids: np.ndarray  # the rows' sentences
    sentence_sims: np.ndarray  # and their similarities to the query

    def known_sims(self) -> dict[int, float]:
        """Sentence id -> similarity, for highlighting these rows without recomputing."""
        return dict(zip(self.sentence_ids.tolist(), self.sentence_sims.tolist()))


@dataclass(frozen=True)
class FileRecord:
    """An indexed file as the generation knows it."""

    path: str
    sha256: str
    size: int
    title: str | None
    date: str | None
    chunks: int
    date_source: str | None = None  # line, pdf, docx, html, front-matter, mtime


FILTER_FORMATS = ("txt", "md", "pdf", "html", "docx")


class Generation:
    """One loaded, validated generation: the live chunks of its segments as one index.

    Rows are the generation's own: live chunks ordered by file path, then offset (what a
    full build of the same corpus numbers them), mapped to (segment, local row) inside."""

    def __init__(self, folder: Path, manifest: dict[str, Any], ef_search: int = 128,
                 reuse: dict[str, Segment] | None = None) -> None:
        self.folder = folder
        self.name = folder.name
        self.manifest = manifest
        self._db_lock = threading.Lock()
        self._chunk_cache: LRU[int, Chunk] = LRU(CHUNK_CACHE)  # read-only data: never stale
        self._extracted: LRU[str, Extracted] = LRU(EXTRACTED_CACHE)
        self._users = 0  # questions answering from it now (acquire/release)
        self.retired_at: float | None = None  # when a newer generation replaced it
        self._file_days: np.ndarray | None = None
        self._file_formats: np.ndarray | None = None
        index_dir = folder.parent.parent
        self.segments: list[Segment] = []
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
                name = s["name"]
                seg = (open_segment(index_dir, name, fresh[name], ef_search) if name in fresh
                       else (reuse or {})[name])
                self.segments.append(seg.acquire())
            self._row_space()
        except BaseException:
            self.close()
            raise

    def _row_space(self) -> None:
        """Generation rows and sentence ids <-> segment rows, indexes over the live rows."""
        docs = self.manifest["documents"]
        paths = sorted(docs)
        self.files = [FileRecord(p, docs[p]["sha256"], docs[p]["size"], docs[p].get("title"),
                                 docs[p].get("date"), docs[p]["chunks"],
                                 docs[p].get("date_source")) for p in paths]
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
        with_sent = [s.sentences for s in self.segments if s.sentences is not None]
        self.sentences = (SegmentedDense(with_sent, smaps, sent_seg, sent_local)
                          if with_sent and len(with_sent) == len(self.segments) else None)
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
        return seg.chunk_range(int(meta["row"]), int(meta["chunks"]))

    def sentence_ids(self, rows: np.ndarray) -> np.ndarray:
        """Sentence ids belonging to the given chunk rows, in order."""
        lo = np.searchsorted(self.sent_row, rows, side="left")
        hi = np.searchsorted(self.sent_row, rows, side="right")
        return ranges(lo, hi)

    # -- what search asks of a generation -------------------------------------------

    @property
    def approximate(self) -> bool:
        """Whether dense search goes through HNSW in some segment (else it is exact)."""
        return self.dense.kind != "flat"

    @property
    def has_sentences(self) -> bool:
        """Whether every segment has sentence vectors (else highlights are lexical only)."""
        return self.sentences is not None

    def files_matching(self, globs: Sequence[str]) -> np.ndarray:
        """One bool per file (``files`` order): does its path match any glob."""
        return np.fromiter((any(fnmatch.fnmatchcase(f.path, g) for g in globs)
                            for f in self.files), dtype=bool, count=len(self.files))

    def rows_of_files(self, keep: np.ndarray) -> np.ndarray:
        """A per-file bool (``files`` order) spread over the chunk rows: a row mask."""
        return keep[self.file_ids] if len(keep) else np.zeros(self.size, dtype=bool)

    def file_mask(self, globs: Sequence[str] | None) -> np.ndarray | None:
        """Row mask of chunks whose file matches any glob (None: no filter)."""
        return self.rows_of_files(self.files_matching(globs)) if globs else None

    def dense_hits(self, qv: np.ndarray, n: int, allowed: np.ndarray | None = None,
                   exact: bool = False) -> list[Hit]:
        """The n rows whose chunk vector is nearest the query; ``allowed``: a row mask;
        ``exact``: score every allowed vector, also in an HNSW index."""
        return self.dense.search(qv[None, :], n, allowed, exact)[0]

    def sentence_candidates(self, qv: np.ndarray, n: int, allowed: np.ndarray | None = None,
                            exact: bool = False) -> Candidates | None:
        """Rows near the query by chunk vector (top n) or by a sentence (top 4n sentences),
        each with its chunk similarity and best sentence similarity; None without sentence
        vectors."""
        if self.sentences is None or not self.sentences.size:
            return None
        sentences = self.sentences
        c_all = self.dense.all_scores(qv)
        s_all = sentences.all_scores(qv) if c_all is not None else None
        if c_all is not None and s_all is not None:
            # Both exact (flat): FAISS would scan every vector anyway; one product each and
            # plain indexing replace two searches and the gathers of candidate vectors.
            if allowed is not None:
                c_all = np.where(allowed, c_all, -np.inf)
                s_all = np.where(allowed[self.sent_row], s_all, -np.inf)
            chunk_rows = top_rows(c_all, n)
            sent_ids = top_rows(s_all, n * 4)
            rows = np.unique(np.concatenate([chunk_rows,
                                             self.sent_row[sent_ids].astype(np.int64)]))
            ids = self.sentence_ids(rows)
            sims = s_all[ids]
            chunk_cos = c_all[rows]
        else:
            hits = self.dense_hits(qv, n, allowed, exact)
            mask = None if allowed is None else allowed[self.sent_row]
            _, found = sentences.search_arrays(qv[None, :], n * 4, mask, exact)
            found = found[0][found[0] >= 0]
            rows = np.unique(np.concatenate([np.fromiter((h.row for h in hits), np.int64,
                                                         len(hits)),
                                             self.sent_row[found].astype(np.int64)]))
            ids = self.sentence_ids(rows)
            sims = sentences.vectors_of(ids) @ qv
            chunk_cos = self.dense.vectors_of(rows) @ qv
        return Candidates(rows, chunk_cos, row_best(rows, self.sent_row[ids], sims), ids, sims)

    def sentence_similarities(self, row: int, qv: np.ndarray, known: dict[int, float]
                              ) -> dict[tuple[int, int], float]:
        """Each sentence of a row, by its (start, end) file offsets, with its similarity to
        the query; ``known`` (sentence id -> similarity) is used and filled in."""
        if self.sentences is None:
            return {}
        ids = self.sentence_ids(np.array([row]))
        missing = [i for i in ids.tolist() if i not in known]
        if missing:
            ids_m = np.array(missing, dtype=np.int64)
            known.update(zip(missing, (self.sentences.vectors_of(ids_m) @ qv).tolist()))
        return {(a, b): known[i] for a, b, i in
                zip(self.sent_start[ids].tolist(), self.sent_end[ids].tolist(), ids.tolist())}

    def place_span(self, file: str, span: S) -> S:
        """A span of a converted file with where it sits in the original: pages and the
        boxes of its characters (PDF), heading (HTML, DOCX), paragraph (DOCX). Plain text:
        as is."""
        ex = self.extracted(file)
        if ex is None:
            return span
        lay = ex.layout
        w = lay.where(span.start, span.end)
        boxes = lay.boxes_for(span.start, span.end) if lay.format == "pdf" else None
        return replace(span, page_start=w.page_start, page_end=w.page_end, boxes=boxes,
                       heading=w.heading, heading_id=w.heading_id, paragraph=w.paragraph)

    def place(self, p: Passage) -> Passage:
        """A passage (and its highlight) with where it sits in a converted original."""
        ex = self.extracted(p.file)
        if ex is None:
            return p
        w = ex.layout.where(p.start, p.end)
        h = self.place_span(p.file, p.highlight) if p.highlight else None
        return replace(p, highlight=h, page_start=w.page_start, page_end=w.page_end,
                       heading=w.heading, heading_id=w.heading_id, paragraph=w.paragraph)

    def rows_of(self, path: str) -> np.ndarray:
        """Row numbers of one file's chunks."""
        i = self._file_index[path]
        return np.arange(self._file_start[i], self._file_start[i + 1], dtype=np.int64)

    def document_format(self, path: str) -> str:
        """"text" for a file indexed as it is, else the format it was converted from."""
        meta = self.manifest.get("documents", {}).get(path) or {}
        return str(meta.get("format", "text"))

    def extracted(self, path: str) -> Extracted | None:
        """The stored text and layout of a converted file (formats.Extracted), None for
        plain text. Read from this generation's own files, so it is the text it indexed."""
        if self.document_format(path) == "text" or path not in self.file_by_path:
            return None
        sha = self.file_by_path[path].sha256
        got = self._extracted.get(sha)
        if got is None:
            got = load_extracted(self.folder / TEXTS, sha, mmap=True)
            self._extracted.put(sha, got)
        return got

    def file_days(self) -> np.ndarray:
        """Each file's date as days since 1970-01-01 (very negative: no date), by file id."""
        if self._file_days is None:
            from ..text.dates import day_number

            self._file_days = np.array([day_number(f.date) for f in self.files], np.int64)
        return self._file_days

    def file_formats(self) -> np.ndarray:
        """Each file's format as filters name it (index into FILTER_FORMATS; -1: other)."""
        if self._file_formats is None:
            def code(f: FileRecord) -> int:
                fmt = self.document_format(f.path)
                if fmt == "text":
                    fmt = os.path.splitext(f.path)[1].lower().lstrip(".")
                return FILTER_FORMATS.index(fmt) if fmt in FILTER_FORMATS else -1
            self._file_formats = np.array([code(f) for f in self.files], np.int8)
        return self._file_formats

    # -- lifetime: a replaced generation is closed once no question uses it --------

    def acquire(self) -> Generation:
        """One more question answers from this generation."""
        with self._db_lock:
            self._users += 1
        return self

    def release(self) -> None:
        """A question is done with it."""
        with self._db_lock:
            self._users -= 1

    @property
    def in_use(self) -> bool:
        """Whether a question still answers from it."""
        return self._users > 0

    def segments_by_name(self) -> dict[str, Segment]:
        """The loaded segments, for a next generation that names some of them to reuse."""
        return {s.name: s for s in self.segments}

    def close(self) -> None:
        """Let go of the segments (each closes its database with its last generation)."""
        with self._db_lock:
            segs, self.segments = self.segments, []
        for s in segs:
            s.release()


def load_generation(index_dir: Path, name: str, ef_search: int = 128,
                    reuse: dict[str, Segment] | None = None) -> Generation:
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
    raise IndexCorruptError(f"no valid generation in {str(index_dir)!r} "
                            f"({'; '.join(problems)}); rebuild with `rag index --full`")
