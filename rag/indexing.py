"""`rag index` end to end: diff files by hash, chunk, embed, build, publish.

Embedding is one replaceable step (``EmbedStep``): in-process here, on Ray in
``distributed.py``; everything else is the same code for both.
"""

from __future__ import annotations

import logging
import shutil
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
from .corpus import Skipped, load_corpus
from .embedding import Embedder, fingerprint_for, load_embedder
from .errors import ConfigError, IndexCorruptError, IndexMissingError
from .store import (Generation, collect_garbage, new_tmp_folder,
                    next_generation_name, open_current, publish, seal_manifest,
                    validate_folder, write_chunks_db)
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

    def summary(self) -> str:
        """One line, e.g. ``+1 file, ~2 changed, -0 removed, 14 chunks embedded, 120 reused``."""
        what = (f"+{len(self.added)} file{'s' if len(self.added) != 1 else ''}, "
                f"~{len(self.changed)} changed, -{len(self.removed)} removed, "
                f"{self.chunks_embedded} chunks embedded, {self.chunks_reused} reused")
        tail = (f" -> generation {self.generation}" if self.generation
                else " -> index unchanged")
        skipped = f", {len(self.skipped)} skipped" if self.skipped else ""
        return f"{what}{skipped}{tail} ({self.seconds:.2f} s)"


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


def _compatible(prev: Generation, fingerprint: str, params: ChunkParams) -> bool:
    m = prev.manifest
    return m["model"]["fingerprint"] == fingerprint and m["chunking"] == asdict(params)


def build_index(settings: Settings, full: bool = False,
                embedder: Embedder | None = None,
                make_step: Callable[[Embedder], EmbedStep] | None = None) -> IndexReport:
    """Bring the index in line with the corpus; publish a new generation if anything changed.

    The caller holds the index lock (see ``store.index_lock``)."""
    t0 = time.perf_counter()
    docs, skipped = load_corpus(settings.corpus_dir)
    params = chunk_params(settings)
    fingerprint = embedder.fingerprint if embedder else fingerprint_for(settings)
    prev = _previous(settings, full)
    if prev is not None and not _compatible(prev, fingerprint, params):
        log.info("model or chunking changed since %s: re-embedding everything", prev.name)
        prev = None
    old = {f.path: f for f in prev.files} if prev else {}
    new_paths = {d.path for d in docs}
    added = [d.path for d in docs if d.path not in old]
    changed = [d.path for d in docs if d.path in old and old[d.path].sha256 != d.sha256]
    removed = sorted(set(old) - new_paths)
    if prev is not None and not (added or changed or removed):
        return IndexReport(None, unchanged=len(docs), skipped=skipped,
                           chunks_reused=prev.size, chunks_total=prev.size,
                           seconds=time.perf_counter() - t0)

    embedder = embedder or load_embedder(settings)
    check_budget(params, embedder)
    todo = [d for d in docs if d.path not in old or old[d.path].sha256 != d.sha256]
    new_chunks = {d.path: chunk_document(d, embedder.count_tokens, params) for d in todo}
    texts = [embedding_text(c) for d in todo for c in new_chunks[d.path]]
    te = time.perf_counter()
    step = (make_step or (lambda e: local_embed_step(e, settings.embed_batch_size)))(embedder)
    new_vectors, engine = step(texts)
    embed_seconds = time.perf_counter() - te
    if new_vectors.shape != (len(texts), embedder.dim):
        raise RuntimeError(f"embedding step returned {new_vectors.shape}, "
                           f"expected {(len(texts), embedder.dim)}")

    chunks, parts, reused = _assemble(docs, new_chunks, new_vectors, prev)
    vectors = np.vstack(parts) if parts else np.zeros((0, embedder.dim), np.float32)
    name = _write_generation(settings, docs, chunks, vectors, embedder, params, engine)
    return IndexReport(name, added, changed, removed, len(docs) - len(added) - len(changed),
                       skipped, len(texts), reused, len(chunks),
                       time.perf_counter() - t0, embed_seconds)


def _assemble(docs: Sequence[Document], new_chunks: dict[str, list[Chunk]],
              new_vectors: np.ndarray, prev: Generation | None
              ) -> tuple[list[Chunk], list[np.ndarray], int]:
    """All chunks and vector blocks in document order, reusing the previous generation's."""
    old_vectors = prev.dense.vectors() if prev is not None else None
    chunks: list[Chunk] = []
    parts: list[np.ndarray] = []
    reused = 0
    pos = 0
    for d in docs:
        if d.path in new_chunks:
            cs = new_chunks[d.path]
            parts.append(new_vectors[pos:pos + len(cs)])
            pos += len(cs)
        else:
            assert prev is not None and old_vectors is not None
            cs = prev.chunks_of(d.path)
            parts.append(old_vectors[prev.rows_of(d.path)])
            reused += len(cs)
        chunks.extend(cs)
    return chunks, parts, reused


def _write_generation(settings: Settings, docs: Sequence[Document], chunks: list[Chunk],
                      vectors: np.ndarray, embedder: Embedder, params: ChunkParams,
                      engine: dict[str, Any]) -> str:
    """Write, check and publish a generation; the temp folder is removed on any failure."""
    from .dense import DenseIndex
    from .lexical import LexicalIndex

    index_dir = settings.index_dir
    name = next_generation_name(index_dir)
    tmp = new_tmp_folder(index_dir, name)
    try:
        counts: dict[str, int] = {}
        for c in chunks:
            counts[c.file] = counts.get(c.file, 0) + 1
        write_chunks_db(tmp / "chunks.sqlite", docs, chunks, counts)
        dense = DenseIndex.build(vectors, settings.approximate_threshold,
                                 ef_search=settings.hnsw_ef_search)
        dense.save(tmp / "dense.faiss")
        LexicalIndex.build([c.text for c in chunks]).save(tmp / "lexical")
        manifest = seal_manifest(tmp, {
            "generation": name,
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "tool_version": __version__,
            "model": {"name": embedder.name, "fingerprint": embedder.fingerprint,
                      "dim": embedder.dim, "max_tokens": embedder.max_tokens},
            "chunking": asdict(params),
            "dense": {"kind": dense.kind, "rows": dense.size},
            "engine": engine,
            "chunks": len(chunks),
            "documents": {d.path: {"sha256": d.sha256, "size": d.size, "title": d.title,
                                   "date": d.date, "chunks": counts.get(d.path, 0)}
                          for d in docs},
        })
        _canary(tmp, manifest, vectors)
        publish(index_dir, tmp, name)
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

