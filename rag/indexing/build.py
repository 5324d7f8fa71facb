"""`rag index` end to end: diff files against the manifest, chunk, embed, write one new
segment, publish a generation naming it and the untouched segments.

A re-index costs what changed: files whose size and mtime match the manifest are not even
read, unchanged files stay in their segments (named by reference, never copied), the old
chunks of changed and removed files become tombstones, and only new and changed files are
chunked, embedded and written, as one new segment. When the merge policy says so
(``segments.plan_merge``), the same run folds small or tombstone-heavy segments into that
new segment; ``rag index --optimize`` folds everything into one.

Embedding is one replaceable step (``EmbedStep``): in-process here, on Ray in
``distributed.py``; everything else is the same code for both.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from ..config import Settings
from ..errors import ConfigError, IndexCorruptError
from ..text.chunking import ChunkParams, chunk_document, embedding_text, sentence_spans
from ..text.corpus import Converter, Reuse, Screen, Skipped, read_document, scan_corpus
from ..text.formats import (Extracted, Limits, extractor_id, format_of, load_extracted,
                            save_extracted)
from ..text.dates import DATES_VERSION
from ..types import Chunk, Document
from .progress import Progress
from .embedding import Embedder, fingerprint_for, load_embedder
from .segments import (SEGMENT_MANIFEST, MergePlan, Segment, SegmentStat, load_segment,
                       next_segment_name, plan_merge, segment_checksum, segments_dir)
from .store import (CURRENT, TEXTS, TOMBSTONES, collect_garbage, sweep_temp_folders,
                    generations_dir, list_generations, new_tmp_folder, next_generation_name,
                    point_current, publish, publish_segment, read_pointer, seal_manifest,
                    validate_folder, write_chunks_db)

if TYPE_CHECKING:
    from ..text.formats.ocr import OcrCache

log = logging.getLogger(__name__)
OCR_CACHE = "ocr"  # index/ocr: OCR results by (file sha256, engine, dpi), see ocr.OcrCache

# texts -> (unit vectors, facts about the run for the manifest)
EmbedStep = Callable[[Sequence[str]], tuple[np.ndarray, dict[str, Any]]]
RACY_NS = 2_000_000_000  # a file changed this close to the last scan is hashed again


@dataclass(frozen=True)
class IndexReport:
    """What one `rag index` run did."""

    generation: str | None  # the published generation (None: nothing changed)
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_total: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0
    sentences_embedded: int = 0
    extracted: list[str] = field(default_factory=list)  # converted files read this run
    segment: str | None = None  # the segment this run wrote
    merged: list[str] = field(default_factory=list)  # segments folded into it
    hashed: int = 0  # files read and hashed (the others matched the manifest's size+mtime)
    deferred: list[Skipped] = field(default_factory=list)  # left for a later run (screen)
    redated: int = 0  # files whose date was read again (an index built before date_source)

    def summary(self) -> str:
        """One line, e.g. ``+1 file, ~2 changed, -0 removed, 14 chunks embedded, 120 reused``."""
        what = (f"+{len(self.added)} file{'s' if len(self.added) != 1 else ''}, "
                f"~{len(self.changed)} changed, -{len(self.removed)} removed, "
                f"{self.chunks_embedded} chunks embedded, {self.chunks_reused} reused")
        tail = (f" -> generation {self.generation}" if self.generation
                else " -> index unchanged")
        skipped = f", {len(self.skipped)} skipped" if self.skipped else ""
        sent = f"; {self.sentences_embedded} sentences embedded" if self.sentences_embedded else ""
        ext = f"; {len(self.extracted)} converted" if self.extracted else ""
        merged = (f"; merged {len(self.merged)} segment{'s' if len(self.merged) != 1 else ''}"
                  if self.merged else "")
        dated = (f"; dates read again for {self.redated} files (the index was built before "
                 "date filters)" if self.redated else "")
        return f"{what}{skipped}{tail} ({self.seconds:.2f} s{sent}{ext}{merged}{dated})"


def local_embed_step(embedder: Embedder, batch_size: int = 32,
                     on_batch: Callable[[int], None] | None = None) -> EmbedStep:
    """Embed in this process, in batches; each batch is reported to ``on_batch`` (the run's
    Progress), else shown as a bar on a terminal."""
    def step(texts: Sequence[str]) -> tuple[np.ndarray, dict[str, Any]]:
        from tqdm import tqdm

        out = []
        with tqdm(total=len(texts), unit="chunk", desc="embedding",
                  disable=on_batch is not None or not sys.stderr.isatty()
                  or len(texts) < batch_size) as bar:
            for i in range(0, len(texts), batch_size):
                batch = texts[i:i + batch_size]
                out.append(embedder.embed(batch))
                bar.update(len(batch))
                if on_batch is not None:
                    on_batch(len(batch))
        vectors = np.vstack(out) if out else np.zeros((0, embedder.dim), np.float32)
        return vectors, {"name": "local", "actors": 1}
    return step


def chunk_params(settings: Settings) -> ChunkParams:
    """The chunker's parameters from the settings."""
    return ChunkParams(settings.chunk_tokens, settings.chunk_overlap_tokens,
                       settings.context_prefix)


def check_budget(params: ChunkParams, embedder: Embedder) -> None:
    """Refuse chunk sizes the model would silently truncate."""
    room = embedder.max_tokens - 2 - (40 if params.context_prefix else 0)
    if params.max_tokens > room:
        raise ConfigError(
            f"chunk_tokens={params.max_tokens} does not fit the model's max_seq_length "
            f"{embedder.max_tokens} (with special tokens and title context); use at most {room}")
    if params.overlap_tokens >= params.max_tokens:
        raise ConfigError(
            f"chunk_overlap_tokens={params.overlap_tokens} must be below "
            f"chunk_tokens={params.max_tokens}")


def limits(settings: Settings) -> Limits:
    """The extraction limits from the settings."""
    from ..text.formats.ocr import OcrOptions

    return Limits(settings.extract_max_bytes, settings.extract_max_pages,
                  settings.extract_max_chars, settings.extract_timeout_s,
                  settings.extract_max_unzipped_bytes, settings.extract_memory_mb,
                  OcrOptions(settings.ocr, settings.ocr_dpi, settings.ocr_max_pixels,
                             settings.ocr_page_timeout_s, settings.ocr_max_pages))


def ocr_cache(settings: Settings) -> OcrCache:
    """Where OCR results are kept, beside the generations (index/ocr)."""
    from ..text.formats.ocr import OcrCache

    return OcrCache(settings.index_dir / OCR_CACHE)


@dataclass(frozen=True)
class Previous:
    """The published generation as its manifest describes it (no segment is opened)."""

    name: str
    folder: Path
    manifest: dict[str, Any]

    @property
    def documents(self) -> dict[str, dict[str, Any]]:
        """Indexed files: sha256, size, mtime_ns, segment, first row, chunk count, ..."""
        return self.manifest["documents"]  # type: ignore[no-any-return]


def previous_generation(index_dir: Path) -> Previous | None:
    """The generation CURRENT names (else the newest sound one), from its manifest alone:
    checked, and each segment it names present. No segment file is opened (a re-index costs
    what changed; an unchanged million-chunk segment is not read): their checksums are
    checked before a new generation names them (``_canary``), their contents by the loader."""
    current, _ = read_pointer(index_dir)
    names = list_generations(index_dir)
    order = ([current] if current else []) + [n for n in reversed(names) if n != current]
    for name in order:
        folder = generations_dir(index_dir) / name
        try:
            manifest = validate_folder(folder)
            for s in manifest["segments"]:
                if not (segments_dir(index_dir) / s["name"]).is_dir():
                    raise IndexCorruptError(f"segment {s['name']} is missing")
        except (IndexCorruptError, OSError, ValueError, KeyError) as e:
            log.warning("previous generation %s unusable: %s", name, e)
            continue
        return Previous(name, folder, manifest)
    return None


def reuse_from(prev: Previous | None) -> Reuse | None:
    """Extractions the previous generation stored, by (source sha256, extractor id)."""
    if prev is None:
        return None
    known = {(m.get("sha256"), m.get("extractor")) for m in prev.documents.values()
             if m.get("format", "text") != "text"}
    # the metadata day of each stored text (layouts stored before dates do not carry it)
    days = {m["sha256"]: m.get("date") for m in prev.documents.values()
            if m.get("date_source") == m.get("format")}

    def reuse(sha: str, extractor: str) -> Extracted | None:
        if (sha, extractor) not in known:
            return None
        try:
            ex = load_extracted(prev.folder / TEXTS, sha, mmap=True)
        except (OSError, ValueError) as e:  # validated at load, so only a vanished folder
            log.warning("cannot reuse the stored text of %s: %s", sha[:12], e)
            return None
        if ex.layout.date is None and days.get(sha):
            ex = Extracted(ex.text, replace(ex.layout, date=days[sha]))
        return ex
    return reuse


def _compatible(m: dict[str, Any], fingerprint: str, params: ChunkParams,
                sentences: bool) -> bool:
    return (m["model"]["fingerprint"] == fingerprint and m["chunking"] == asdict(params)
            and m.get("sentences", {}).get("enabled") == sentences)


def _known(prev: Previous | None, lim: Limits) -> Callable[[str, os.stat_result], bool]:
    """Does the manifest vouch for this file (same size and mtime, not changed around the
    last scan, same extractor)? Then it is neither read nor hashed."""
    docs = prev.documents if prev else {}
    scanned = int(prev.manifest.get("scanned_ns", 0)) if prev else 0

    def known(rel: str, st: os.stat_result) -> bool:
        rec = docs.get(rel)
        if rec is None or rec.get("mtime_ns") != st.st_mtime_ns or rec["size"] != st.st_size:
            return False
        if st.st_mtime_ns >= scanned - RACY_NS:  # could have changed within the same tick
            return False
        fmt = format_of(Path(rel))
        return fmt is None or rec.get("extractor") == extractor_id(fmt, lim)
    return known


@dataclass
class Part:
    """One document's content as a segment stores it: chunks, their vectors, sentences
    (index of the chunk within the document, start, end) and sentence vectors."""

    doc: Document
    chunks: list[Chunk]
    vectors: np.ndarray
    sentences: list[tuple[int, int, int]]
    sentence_vectors: np.ndarray


def build_index(settings: Settings, full: bool = False,
                embedder: Embedder | None = None,
                make_step: Callable[[Embedder], EmbedStep] | None = None,
                optimize: bool = False, screen: Screen | None = None,
                progress: Progress | None = None) -> IndexReport:
    """Bring the index in line with the corpus; publish a new generation if anything changed
    (or, with optimize, if there is more than one segment or any tombstone).

    ``screen`` (the folder watcher's) may leave files for a later run: an indexed one keeps
    its indexed version, a new one waits. The caller holds the index lock (see
    ``store.index_lock``)."""
    t0 = time.perf_counter()
    index_dir = settings.index_dir
    params = chunk_params(settings)
    fingerprint = embedder.fingerprint if embedder else fingerprint_for(settings)
    prev = None if full else previous_generation(index_dir)
    if prev is not None and not _compatible(prev.manifest, fingerprint, params,
                                            settings.sentence_vectors):
        log.info("model or chunking changed since %s: re-embedding everything", prev.name)
        prev = None
    old = prev.documents if prev else {}
    scanned_ns = time.time_ns()
    lim = limits(settings)
    converter = Converter(lim, reuse_from(prev), ocr_cache=ocr_cache(settings))
    try:
        scan = scan_corpus(settings.corpus_dir, converter, _known(prev, lim), screen,
                           progress.file if progress is not None else None)
    finally:
        converter.close()
    read = {d.path: d for d in scan.docs}
    added = [d.path for d in scan.docs if d.path not in old]
    changed = [d.path for d in scan.docs if d.path in old and (
        old[d.path]["sha256"] != d.sha256 or old[d.path].get("extractor") != d.extractor)]
    present = set(read) | set(scan.kept) | {s.path for s in scan.deferred if s.path in old}
    removed = sorted(set(old) - present)
    redo = set(added) | set(changed)
    unchanged = sorted(present - redo)
    n_docs = len(present)

    # the documents that stay where they are, and what the policy wants merged
    stay = {p: dict(old[p]) for p in unchanged}
    redated = _redate(settings, prev, stay, read)
    stats = _stats(prev, stay, len(redo))
    plan = plan_merge(stats, settings.merge_max_segments, settings.merge_max_dead_share,
                      optimize) if prev else None
    if plan is not None and plan.base == NEW:
        plan = MergePlan(plan.merge, None)
    if prev is not None and not redo and not removed and plan is None and not redated:
        if read_pointer(index_dir)[0] != prev.name:  # damaged or dangling pointer
            point_current(index_dir, prev.name)
            log.warning("repaired %s: it now names %s", CURRENT, prev.name)
        sweep_temp_folders(index_dir)  # of killed runs (orphan segments: next publish)
        total = int(prev.manifest["chunks"])
        return IndexReport(None, unchanged=n_docs, skipped=scan.skipped, chunks_reused=total,
                           chunks_total=total, seconds=time.perf_counter() - t0,
                           extracted=converter.extracted, hashed=len(scan.docs),
                           deferred=scan.deferred)

    todo = [read[p] for p in sorted(redo)]
    parts: list[Part] = []
    engine: dict[str, Any] = {"name": "local", "actors": 1}
    embed_seconds = 0.0
    n_sent = 0
    dim = int(prev.manifest["model"]["dim"]) if prev else 0
    if todo or prev is None:
        # Documents only: no int8 question model to build or load here.
        embedder = embedder or load_embedder(
            settings.model_copy(update={"quantize_queries": False}))
        check_budget(params, embedder)
        dim = embedder.dim
        te = time.perf_counter()
        parts, engine, n_sent = _embed(settings, todo, embedder, params, make_step, progress)
        embed_seconds = time.perf_counter() - te
    model = ({"name": embedder.name, "fingerprint": embedder.fingerprint, "dim": embedder.dim,
              "max_tokens": embedder.max_tokens} if embedder else prev.manifest["model"])  # type: ignore[union-attr]

    name = next_generation_name(index_dir)
    seg_name = None
    written: Path | None = None
    try:
        merged = list(plan.merge) if plan else []
        if parts or merged:
            seg_name = next_segment_name(index_dir)
            written, seg_docs = _write_segment(settings, seg_name, prev, stay, plan, parts,
                                               dim)
            stay.update(seg_docs)
        for p in removed:
            stay.pop(p, None)
        # a deferred file keeps its indexed mtime: the next run must look at it again
        waiting = {s.path for s in scan.deferred}
        documents = {p: _doc_record(stay[p], stay[p].get("mtime_ns") if p in waiting
                                    else scan.mtimes.get(p)) for p in sorted(stay)}
        segments = _segment_list(index_dir, prev, documents, merged, seg_name)
        _write_generation(settings, name, prev, documents, segments, read, model, params,
                          engine, scanned_ns)
    except BaseException:
        if written is not None and read_pointer(index_dir)[0] != name:
            shutil.rmtree(written, ignore_errors=True)  # named by no generation
        raise
    collect_garbage(index_dir, settings.keep_generations)
    # OCR of files no longer in the corpus (a scan that gave no text is still read: seen)
    ocr_cache(settings).prune({d["sha256"] for d in documents.values()} | converter.seen)
    total = sum(d["chunks"] for d in documents.values())
    embedded = sum(len(pt.chunks) for pt in parts)
    return IndexReport(name, added, changed, removed, n_docs - len(added) - len(changed),
                       scan.skipped, embedded, total - embedded, total,
                       time.perf_counter() - t0, embed_seconds, n_sent, converter.extracted,
                       seg_name, [m for m in merged if m != NEW], len(scan.docs), scan.deferred,
                       len(redated) if _needs_redate(prev) else 0)


NEW = "(new)"  # the segment this run writes, as the merge policy counts it


def _needs_redate(prev: Previous | None) -> bool:
    """Was the previous generation built before documents carried date_source?"""
    return prev is not None and prev.manifest.get("dates") != DATES_VERSION


def _redate(settings: Settings, prev: Previous | None, stay: dict[str, dict[str, Any]],
            read: dict[str, Document]) -> list[str]:
    """Bring the dates of documents that stay up to date (in place); returns the paths
    whose date or source changed. A file read this run (touched, same bytes) takes its fresh
    date; an index built before date_source reads every date again, once (converted files
    are converted again for their metadata: their text and vectors are kept)."""
    changed = []
    redo_all = _needs_redate(prev)
    if redo_all and stay:
        log.warning("the index was built before date filters: reading the dates of %d "
                    "files again (once)", len(stay))
    conv = (Converter(limits(settings), ocr_cache=ocr_cache(settings)) if redo_all
            else None)
    try:
        for p, rec in stay.items():
            doc = read.get(p)
            if doc is None and conv is not None:
                try:
                    full = settings.corpus_dir / p
                    doc = conv.read(full, p) if format_of(full) else read_document(full, p)
                except (OSError, ValueError) as e:
                    log.warning("cannot read the date of %s again: %s", p, e)
            if doc is not None and (doc.date, doc.date_source) != (rec.get("date"),
                                                                   rec.get("date_source")):
                rec["date"], rec["date_source"] = doc.date, doc.date_source
                changed.append(p)
    finally:
        if conv is not None:
            conv.close()
    return changed if not redo_all else list(stay)


def _stats(prev: Previous | None, stay: dict[str, dict[str, Any]], fresh: int
           ) -> list[SegmentStat]:
    """Rows and tombstones of each segment once this run's changes are applied."""
    if prev is None:
        return []
    live: dict[str, int] = {}
    for d in stay.values():
        live[d["segment"]] = live.get(d["segment"], 0) + int(d["chunks"])
    out = [SegmentStat(s["name"], int(s["rows"]), int(s["rows"]) - live.get(s["name"], 0))
           for s in prev.manifest["segments"] if live.get(s["name"])]  # empty ones drop out
    return out + ([SegmentStat(NEW, fresh, 0)] if fresh else [])


def _embed(settings: Settings, todo: list[Document], embedder: Embedder, params: ChunkParams,
           make_step: Callable[[Embedder], EmbedStep] | None, progress: Progress | None = None
           ) -> tuple[list[Part], dict[str, Any], int]:
    """Chunk and embed new and changed documents (chunks and their sentences in one call)."""
    new_chunks = {d.path: chunk_document(d, embedder.count_tokens, params) for d in todo}
    flat = [c for d in todo for c in new_chunks[d.path]]
    sents = [chunk_sentences(c) for c in flat] if settings.sentence_vectors else [[] for _ in flat]
    texts = [embedding_text(c) for c in flat]
    sent_texts = [c.text[a - c.start:b - c.start] for c, ss in zip(flat, sents) for a, b in ss]
    if progress is not None:
        progress.embedding(len(texts) + len(sent_texts))
    step = (make_step or (lambda e: local_embed_step(
        e, settings.embed_batch_size, progress.embedded if progress is not None else None))
            )(embedder)
    all_vectors, engine = step(texts + sent_texts)
    if all_vectors.shape != (len(texts) + len(sent_texts), embedder.dim):
        raise RuntimeError(f"embedding step returned {all_vectors.shape}, "
                           f"expected {(len(texts) + len(sent_texts), embedder.dim)}")
    vectors, svectors = all_vectors[:len(texts)], all_vectors[len(texts):]
    parts = []
    pos = spos = 0
    for d in todo:
        cs = new_chunks[d.path]
        ss = [(i, a, b) for i, c in enumerate(cs) for a, b in sents[pos + i]]
        parts.append(Part(d, cs, vectors[pos:pos + len(cs)], ss,
                          svectors[spos:spos + len(ss)]))
        pos += len(cs)
        spos += len(ss)
    return parts, engine, len(sent_texts)


def chunk_sentences(chunk: Chunk) -> list[tuple[int, int]]:
    """File spans of a chunk's sentences (embedded for sentence-level scoring)."""
    return [(sp.start, sp.end) for sp in sentence_spans(chunk.text, chunk.start, 1)]


def _doc_record(rec: dict[str, Any], mtime_ns: int | None) -> dict[str, Any]:
    return {**rec, "mtime_ns": mtime_ns}


def _record(d: Document, segment: str, row: int, chunks: int) -> dict[str, Any]:
    """A document's manifest entry."""
    return {"sha256": d.sha256, "size": d.size, "title": d.title, "date": d.date,
            "date_source": d.date_source, "chunks": chunks, "segment": segment, "row": row,
            **({"format": d.format, "extractor": d.extractor,
                "text": f"{TEXTS}/{d.sha256}.txt"} if d.format != "text" else {})}


def _as_document(path: str, rec: dict[str, Any]) -> Document:
    return Document(path, "", rec["sha256"], rec["size"], rec.get("title"), rec.get("date"),
                    rec.get("format", "text"), rec.get("extractor"))


def _carry(seg: Segment, path: str, rec: dict[str, Any]) -> Part:
    """A live document of a segment being merged: its stored chunks and vectors."""
    row, n = int(rec["row"]), int(rec["chunks"])
    rows = np.arange(row, row + n)
    lo, hi = seg.sentence_range(row, n)
    sents = [(int(r) - row, int(a), int(b)) for r, a, b in
             zip(seg.sent_row[lo:hi], seg.sent_start[lo:hi], seg.sent_end[lo:hi])]
    svec = (seg.sentences.vectors_of(np.arange(lo, hi)) if seg.sentences is not None
            else np.zeros((0, seg.dense.dim), np.float32))
    return Part(_as_document(path, rec), seg.chunk_range(row, n), seg.dense.vectors_of(rows),
                sents, svec)


def _write_segment(settings: Settings, name: str, prev: Previous | None,
                   stay: dict[str, dict[str, Any]], plan: MergePlan | None, fresh: list[Part],
                   dim: int) -> tuple[Path, dict[str, dict[str, Any]]]:
    """Write one segment: the base's rows (when merging into a base), the live documents of
    the other merged segments, then the new and changed documents. Returns its folder and
    the manifest entries of every document it holds live."""
    from .lexical import LexicalIndex, Postings

    index_dir = settings.index_dir
    merging = set(plan.merge) if plan else set()
    loaded: dict[str, Segment] = {}
    out: dict[str, dict[str, Any]] = {}
    tmp = new_tmp_folder(index_dir, name, segments_dir(index_dir))
    try:
        assert prev is not None or not merging
        checks = {s["name"]: s["checksum"] for s in prev.manifest["segments"]} if prev else {}
        for s in sorted(merging - {"(new)"}):
            loaded[s] = load_segment(index_dir, s, checks[s], settings.hnsw_ef_search).acquire()
        base = loaded.get(plan.base) if plan and plan.base else None
        carried = [_carry(loaded[r["segment"]], p, r) for p, r in sorted(stay.items())
                   if r["segment"] in loaded and r["segment"] != (base.name if base else None)]
        parts = sorted(carried + fresh, key=lambda pt: pt.doc.path)
        row0 = base.rows if base else 0
        sent0 = len(base.sent_row) if base else 0
        file0 = (max(base.paths) + 1) if base and base.paths else 0
        if base is not None:
            for p, r in stay.items():
                if r["segment"] == base.name:
                    out[p] = {**r, "segment": name}
            shutil.copyfile(base.folder / "chunks.sqlite", tmp / "chunks.sqlite")
        chunks: list[Chunk] = []
        sentences: list[tuple[int, int, int]] = []
        counts: dict[str, int] = {}
        for pt in parts:
            out[pt.doc.path] = _record(pt.doc, name, row0 + len(chunks), len(pt.chunks))
            sentences.extend((len(chunks) + i, a, b) for i, a, b in pt.sentences)
            chunks.extend(pt.chunks)
            counts[pt.doc.path] = len(pt.chunks)
        vectors = (np.vstack([pt.vectors for pt in parts]) if parts
                   else np.zeros((0, dim), np.float32))
        svectors = (np.vstack([pt.sentence_vectors for pt in parts]) if parts
                    else np.zeros((0, dim), np.float32))
        write_chunks_db(tmp / "chunks.sqlite", [pt.doc for pt in parts], chunks, counts,
                        sentences, (file0, row0, sent0))
        total = row0 + len(chunks)
        dense = _extend(base.dense if base else None, base.folder / "dense.faiss" if base else None,
                        vectors, settings, total)
        dense.save(tmp / "dense.faiss")
        if settings.sentence_vectors:
            sfile = base.folder / "sentences.faiss" if base else None
            _extend(base.sentences if base else None, sfile, svectors, settings,
                    sent0 + len(sentences)).save(tmp / "sentences.faiss")
        postings = Postings.build([c.text for c in chunks])
        if base is not None:
            postings = base.postings.extend(postings)
        LexicalIndex([(postings, None)], total).save(tmp / "lexical")
        seal_manifest(tmp, {
            "segment": name, "rows": total, "sentences": sent0 + len(sentences),
            "dense": dense.kind,
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "base": base.name if base else None,
            "merged": sorted(loaded),
        }, SEGMENT_MANIFEST)
        final = publish_segment(index_dir, tmp, name)
        _canary_segment(index_dir, name, vectors, row0, settings.hnsw_ef_search)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        _disk_full(e, tmp)
        raise
    finally:
        for seg in loaded.values():
            seg.release()
    return final, out


def _extend(base: Any, base_file: Path | None, vectors: np.ndarray, settings: Settings,
            total: int) -> Any:
    """A dense index of the base's rows followed by vectors: the base's own index extended
    when it is of the kind `total` rows call for (an HNSW graph takes new nodes), else built
    anew from all vectors."""
    from .dense import DenseIndex

    want = "hnsw" if total > settings.approximate_threshold else "flat"
    if base is not None and base_file is not None and base.kind == want:
        index = DenseIndex.load(base_file, settings.hnsw_ef_search)
        index.add(vectors)
        return index
    if base is not None:
        vectors = np.vstack([base.vectors(), vectors]) if len(vectors) else base.vectors()
    return DenseIndex.build(vectors, settings.approximate_threshold,
                            ef_search=settings.hnsw_ef_search)


def _canary_segment(index_dir: Path, name: str, vectors: np.ndarray, row0: int,
                    ef_search: int) -> None:
    """Load the new segment the way the server will and check that it finds itself."""
    folder = segments_dir(index_dir) / name
    seg = Segment(folder, validate_folder(folder, SEGMENT_MANIFEST, f"segment {name}"), ef_search)
    seg.acquire()
    try:
        if len(vectors):
            probe = len(vectors) // 2
            hits = seg.dense.search(vectors[probe:probe + 1], 1)[0]
            if not hits or hits[0].score < 0.99:
                raise IndexCorruptError(f"canary query failed on new segment {name}")
            assert seg.chunks([row0 + probe])[row0 + probe].text is not None
    finally:
        seg.release()


def _segment_list(index_dir: Path, prev: Previous | None, documents: dict[str, dict[str, Any]],
                  merged: list[str], new: str | None) -> list[dict[str, Any]]:
    """The segments the new generation names: the previous ones still holding a live
    document and not merged away, then the new one."""
    used = {d["segment"] for d in documents.values()}
    out = [dict(s) for s in (prev.manifest["segments"] if prev else [])
           if s["name"] in used and s["name"] not in merged]
    if new is not None and new in used:
        meta = json.loads((segments_dir(index_dir) / new / SEGMENT_MANIFEST).read_text())
        out.append({"name": new, "checksum": meta["checksum"], "rows": meta["rows"],
                    "sentences": meta["sentences"], "dense": meta["dense"]})
    return out


def _write_generation(settings: Settings, name: str, prev: Previous | None,
                      documents: dict[str, dict[str, Any]], segments: list[dict[str, Any]],
                      read: dict[str, Document], model: dict[str, Any], params: ChunkParams,
                      engine: dict[str, Any], scanned_ns: int) -> None:
    """Write, check and publish a generation: the manifest naming its segments, each
    segment's tombstones, the stored texts of converted files (hard links to the previous
    generation's for unchanged ones); the temp folder is removed on any failure."""
    index_dir = settings.index_dir
    tmp = new_tmp_folder(index_dir, name)
    try:
        live: dict[str, list[tuple[int, int]]] = {}
        for d in documents.values():
            live.setdefault(d["segment"], []).append((int(d["row"]), int(d["chunks"])))
        for s in segments:
            covered = np.zeros(int(s["rows"]), dtype=bool)
            for row, n in live.get(s["name"], []):
                covered[row:row + n] = True
            dead = np.flatnonzero(~covered).astype(np.int64)
            s["dead"] = len(dead)
            if len(dead):
                (tmp / TOMBSTONES).mkdir(exist_ok=True)
                np.save(tmp / TOMBSTONES / f"{s['name']}.npy", dead, allow_pickle=False)
        for path, d in documents.items():  # converted files: the text their offsets index
            if d.get("format", "text") == "text":
                continue
            doc = read.get(path)
            if doc is not None and doc.layout is not None:
                save_extracted(tmp / TEXTS, doc.sha256, Extracted(doc.text, doc.layout))
            else:
                assert prev is not None
                _link_texts(prev.folder / TEXTS, tmp / TEXTS, d["sha256"])
        manifest = seal_manifest(tmp, {
            "generation": name,
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "tool_version": __version__,
            "model": model,
            "chunking": asdict(params),
            "dense": {"kind": "flat" if all(s["dense"] == "flat" for s in segments)
                      else "hnsw", "segments": len(segments)},
            "sentences": {"enabled": settings.sentence_vectors,
                          "rows": sum(int(s["sentences"]) for s in segments)},
            "engine": engine,
            "chunks": sum(int(d["chunks"]) for d in documents.values()),
            "scanned_ns": scanned_ns,
            "dates": DATES_VERSION,
            "segments": segments,
            "documents": documents,
        })
        _canary(index_dir, manifest)
        publish(index_dir, tmp, name)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        _disk_full(e, tmp)
        raise


def _link_texts(src: Path, dst: Path, sha: str) -> None:
    """Hard-link a converted file's stored text and layout into a new generation (the
    bytes are shared, never copied)."""
    dst.mkdir(exist_ok=True)
    found = [p for p in src.glob(f"{sha}.*")] if src.is_dir() else []
    if not found:
        raise IndexCorruptError(f"the stored text {sha[:12]} of the previous generation is "
                                "missing; rebuild with `rag index --full`")
    for p in found:
        if not (dst / p.name).exists():
            os.link(p, dst / p.name)


def _disk_full(e: BaseException, where: Path) -> None:
    """Re-raise a full disk that numpy or sqlite reported without an errno as ENOSPC."""
    if isinstance(e, OSError) and e.errno is not None:
        return
    # numpy reports a short write without an error code; sqlite says "disk is full"
    if isinstance(e, OSError) or (isinstance(e, sqlite3.OperationalError) and "full" in str(e)):
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)}? ({e})", str(where)) from e


def _canary(index_dir: Path, manifest: dict[str, Any]) -> None:
    """Every segment the generation names is there, with the checksum it records (the new
    segment itself was loaded and probed when written): never a dangling reference."""
    for s in manifest["segments"]:
        if segment_checksum(index_dir, s["name"]) != s["checksum"]:
            raise IndexCorruptError(f"generation {manifest['generation']} would name segment "
                                    f"{s['name']}, which is missing or differs")
