"""`rag index` end to end: diff files by hash, chunk, embed, build, publish.

Embedding is one replaceable step (``EmbedStep``): in-process here, on Ray in
``distributed.py``; everything else is the same code for both.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from . import __version__
from .chunking import ChunkParams, chunk_document, embedding_text
from .config import Settings
from .corpus import Converter, Reuse, Skipped, load_corpus
from .embedding import Embedder, fingerprint_for, load_embedder
from .highlight import sentence_spans
from .errors import ConfigError, IndexCorruptError, IndexMissingError
from .formats import Extracted, Limits, load_extracted, save_extracted
from .store import (CURRENT, TEXTS, Generation, collect_garbage, new_tmp_folder,
                    next_generation_name, open_current, point_current, publish, read_current,
                    seal_manifest, validate_folder, write_chunks_db)
from .types import Chunk, Document

log = logging.getLogger(__name__)

# texts -> (unit vectors, facts about the run for the manifest)
EmbedStep = Callable[[Sequence[str]], tuple[np.ndarray, dict[str, Any]]]


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
        return f"{what}{skipped}{tail} ({self.seconds:.2f} s{sent}{ext})"


def local_embed_step(embedder: Embedder, batch_size: int = 32) -> EmbedStep:
    """Embed in this process, in batches, with a progress bar on a terminal."""
    def step(texts: Sequence[str]) -> tuple[np.ndarray, dict[str, Any]]:
        from tqdm import tqdm

        out = []
        with tqdm(total=len(texts), unit="chunk", desc="embedding",
                  disable=not sys.stderr.isatty() or len(texts) < batch_size) as bar:
            for i in range(0, len(texts), batch_size):
                batch = texts[i:i + batch_size]
                out.append(embedder.embed(batch))
                bar.update(len(batch))
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


def _previous(settings: Settings, full: bool) -> Generation | None:
    if full:
        return None
    try:
        return open_current(settings.index_dir)
    except IndexMissingError:
        return None
    except IndexCorruptError as e:
        log.warning("previous index unusable, rebuilding everything: %s", e)
        return None


def limits(settings: Settings) -> Limits:
    """The extraction limits from the settings."""
    return Limits(settings.extract_max_bytes, settings.extract_max_pages,
                  settings.extract_max_chars, settings.extract_timeout_s,
                  settings.extract_max_unzipped_bytes, settings.extract_memory_mb)


def reuse_from(prev: Generation | None) -> Reuse | None:
    """Extractions the previous generation stored, by (source sha256, extractor id)."""
    if prev is None:
        return None
    known = {(m.get("sha256"), m.get("extractor"))
             for m in prev.manifest.get("documents", {}).values()
             if m.get("format", "text") != "text"}

    def reuse(sha: str, extractor: str) -> Extracted | None:
        if (sha, extractor) not in known:
            return None
        try:
            return load_extracted(prev.folder / TEXTS, sha, mmap=True)
        except (OSError, ValueError) as e:  # validated at load, so only a vanished folder
            log.warning("cannot reuse the stored text of %s: %s", sha[:12], e)
            return None
    return reuse


def _extractor_changed(prev: Generation, d: Document) -> bool:
    old = prev.manifest.get("documents", {}).get(d.path) or {}
    return old.get("extractor") != d.extractor


def _compatible(prev: Generation, fingerprint: str, params: ChunkParams,
                sentences: bool) -> bool:
    m = prev.manifest
    return (m["model"]["fingerprint"] == fingerprint and m["chunking"] == asdict(params)
            and m.get("sentences", {}).get("enabled") == sentences)


def build_index(settings: Settings, full: bool = False,
                embedder: Embedder | None = None,
                make_step: Callable[[Embedder], EmbedStep] | None = None) -> IndexReport:
    """Bring the index in line with the corpus; publish a new generation if anything changed.

    The caller holds the index lock (see ``store.index_lock``)."""
    t0 = time.perf_counter()
    prev = _previous(settings, full)
    converter = Converter(limits(settings), reuse_from(prev))
    try:
        docs, skipped = load_corpus(settings.corpus_dir, converter)
    except BaseException:
        if prev is not None:
            prev.close()
        raise
    finally:
        converter.close()
    params = chunk_params(settings)
    fingerprint = embedder.fingerprint if embedder else fingerprint_for(settings)
    if prev is not None and not _compatible(prev, fingerprint, params,
                                                settings.sentence_vectors):
        log.info("model or chunking changed since %s: re-embedding everything", prev.name)
        prev = None
    old = {f.path: f for f in prev.files} if prev else {}
    new_paths = {d.path for d in docs}
    added = [d.path for d in docs if d.path not in old]
    changed = [d.path for d in docs if d.path in old and (
        old[d.path].sha256 != d.sha256 or (prev is not None and _extractor_changed(prev, d)))]
    removed = sorted(set(old) - new_paths)
    if prev is not None and not (added or changed or removed):
        if read_current(settings.index_dir) != prev.name:  # damaged or dangling pointer
            point_current(settings.index_dir, prev.name)
            log.warning("repaired %s: it now names %s", CURRENT, prev.name)
        collect_garbage(settings.index_dir, settings.keep_generations)  # sweep killed runs
        prev.close()
        return IndexReport(None, unchanged=len(docs), skipped=skipped,
                           chunks_reused=prev.size, chunks_total=prev.size,
                           seconds=time.perf_counter() - t0, extracted=converter.extracted)

    # Documents only: no int8 question model to build or load here.
    embedder = embedder or load_embedder(settings.model_copy(update={"quantize_queries": False}))
    check_budget(params, embedder)
    redo = set(added) | set(changed)
    todo = [d for d in docs if d.path in redo]
    new_chunks = {d.path: chunk_document(d, embedder.count_tokens, params) for d in todo}
    flat = [c for d in todo for c in new_chunks[d.path]]
    sents = [chunk_sentences(c) for c in flat] if settings.sentence_vectors else [[] for _ in flat]
    texts = [embedding_text(c) for c in flat]
    sent_texts = [c.text[a - c.start:b - c.start] for c, ss in zip(flat, sents) for a, b in ss]
    te = time.perf_counter()
    step = (make_step or (lambda e: local_embed_step(e, settings.embed_batch_size)))(embedder)
    all_vectors, engine = step(texts + sent_texts)
    embed_seconds = time.perf_counter() - te
    if all_vectors.shape != (len(texts) + len(sent_texts), embedder.dim):
        raise RuntimeError(f"embedding step returned {all_vectors.shape}, "
                           f"expected {(len(texts) + len(sent_texts), embedder.dim)}")
    fresh = Fresh(new_chunks, all_vectors[:len(texts)], sents, all_vectors[len(texts):])
    built = _assemble(docs, fresh, prev, embedder.dim)
    if prev is not None:
        prev.close()
    name = _write_generation(settings, docs, built, embedder, params, engine)
    return IndexReport(name, added, changed, removed, len(docs) - len(added) - len(changed),
                       skipped, len(texts), built.reused, len(built.chunks),
                       time.perf_counter() - t0, embed_seconds, len(sent_texts),
                       converter.extracted)


def chunk_sentences(chunk: Chunk) -> list[tuple[int, int]]:
    """File spans of a chunk's sentences (embedded for sentence-level scoring)."""
    return [(sp.start, sp.end) for sp in sentence_spans(chunk.text, chunk.start, 1)]


@dataclass(frozen=True)
class Fresh:
    """What this run chunked and embedded."""

    chunks: dict[str, list[Chunk]]
    vectors: np.ndarray
    sentences: list[list[tuple[int, int]]]  # per new chunk, in order
    sentence_vectors: np.ndarray


@dataclass(frozen=True)
class Built:
    """A whole generation's content, in document order."""

    chunks: list[Chunk]
    vectors: np.ndarray
    sentences: list[tuple[int, int, int]]  # (chunk row, start, end)
    sentence_vectors: np.ndarray
    reused: int


def _assemble(docs: Sequence[Document], fresh: Fresh, prev: Generation | None, dim: int
              ) -> Built:
    """All chunks and vectors in document order, reusing the previous generation's."""
    old_vectors = prev.dense.vectors() if prev is not None else None
    old_sent = (prev.sentences.vectors() if prev is not None and prev.sentences is not None
                else np.zeros((0, dim), np.float32))
    chunks: list[Chunk] = []
    parts: list[np.ndarray] = []
    sents: list[tuple[int, int, int]] = []
    sparts: list[np.ndarray] = []
    reused = pos = spos = 0
    for d in docs:
        if d.path in fresh.chunks:
            cs = fresh.chunks[d.path]
            parts.append(fresh.vectors[pos:pos + len(cs)])
            for i, c in enumerate(cs):
                ss = fresh.sentences[pos + i]
                sents.extend((len(chunks) + i, a, b) for a, b in ss)
                sparts.append(fresh.sentence_vectors[spos:spos + len(ss)])
                spos += len(ss)
            pos += len(cs)
        else:
            assert prev is not None and old_vectors is not None
            cs = prev.chunks_of(d.path)
            rows = prev.rows_of(d.path)
            parts.append(old_vectors[rows])
            ids = prev.sentence_ids(rows)
            base = len(chunks) - int(rows[0]) if len(rows) else 0
            sents.extend((int(prev.sent_row[i]) + base, int(prev.sent_start[i]),
                          int(prev.sent_end[i])) for i in ids)
            sparts.append(old_sent[ids] if len(ids) else np.zeros((0, dim), np.float32))
            reused += len(cs)
        chunks.extend(cs)
    vectors = np.vstack(parts) if parts else np.zeros((0, dim), np.float32)
    svectors = np.vstack(sparts) if sparts else np.zeros((0, dim), np.float32)
    return Built(chunks, vectors, sents, svectors, reused)


def _write_generation(settings: Settings, docs: Sequence[Document], built: Built,
                      embedder: Embedder, params: ChunkParams, engine: dict[str, Any]) -> str:
    """Write, check and publish a generation; the temp folder is removed on any failure."""
    from .dense import DenseIndex
    from .lexical import LexicalIndex

    index_dir = settings.index_dir
    name = next_generation_name(index_dir)
    tmp = new_tmp_folder(index_dir, name)
    chunks, vectors = built.chunks, built.vectors
    try:
        counts: dict[str, int] = {}
        for c in chunks:
            counts[c.file] = counts.get(c.file, 0) + 1
        write_chunks_db(tmp / "chunks.sqlite", docs, chunks, counts, built.sentences)
        for d in docs:  # converted files: the text their offsets index, and its layout
            if d.layout is not None:
                save_extracted(tmp / TEXTS, d.sha256, Extracted(d.text, d.layout))
        dense = DenseIndex.build(vectors, settings.approximate_threshold,
                                 ef_search=settings.hnsw_ef_search)
        dense.save(tmp / "dense.faiss")
        if settings.sentence_vectors:
            DenseIndex.build(built.sentence_vectors, settings.approximate_threshold,
                             ef_search=settings.hnsw_ef_search).save(tmp / "sentences.faiss")
        LexicalIndex.build([c.text for c in chunks]).save(tmp / "lexical")
        manifest = seal_manifest(tmp, {
            "generation": name,
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "tool_version": __version__,
            "model": {"name": embedder.name, "fingerprint": embedder.fingerprint,
                      "dim": embedder.dim, "max_tokens": embedder.max_tokens},
            "chunking": asdict(params),
            "dense": {"kind": dense.kind, "rows": dense.size},
            "sentences": {"enabled": settings.sentence_vectors,
                          "rows": len(built.sentences)},
            "engine": engine,
            "chunks": len(chunks),
            "documents": {d.path: {"sha256": d.sha256, "size": d.size, "title": d.title,
                                   "date": d.date, "chunks": counts.get(d.path, 0),
                                   **({"format": d.format, "extractor": d.extractor,
                                       "text": f"{TEXTS}/{d.sha256}.txt"}
                                      if d.layout is not None else {})}
                          for d in docs},
        })
        _canary(tmp, manifest, vectors)
        publish(index_dir, tmp, name)
    except (OSError, sqlite3.OperationalError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and e.errno is not None:
            raise
        # numpy reports a short write without an error code; sqlite says "disk is full"
        if isinstance(e, OSError) or "full" in str(e):
            raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)}? ({e})", str(tmp)) from e
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    collect_garbage(index_dir, settings.keep_generations)
    return name


def _canary(folder: Any, manifest: dict[str, Any], vectors: np.ndarray) -> None:
    """Load the new generation the way the server will and check that it finds itself."""
    validate_folder(folder)
    gen = Generation(folder, manifest)
    try:
        if gen.size:
            probe = min(gen.size - 1, gen.size // 2)
            hits = gen.dense.search(vectors[probe:probe + 1], 1)[0]
            if not hits or hits[0].score < 0.99:
                raise IndexCorruptError(f"canary query failed on new generation {folder}")
            assert gen.chunks([probe])[0].text is not None
    finally:
        gen.close()

