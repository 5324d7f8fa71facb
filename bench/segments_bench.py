"""Section 8 of `make bench`: re-indexing that costs what changed, at 1M chunks (segments).

    python bench/segments_bench.py --n 1000000 --dir DIR --gauss FILE --json OUT

Builds a 1M-chunk index (synthetic text and vectors, as section 6) with a real corpus folder
behind it (files of 20 chunks, one chunk a line), written by rag's own segment writer; then,
through `build_index` with the synthetic embedder: a no-op re-index, a one-file change,
deletes to 10% tombstones, 20 small segments (one file changed each), query latency over
1 large + 20 small segments, and a merge (`--optimize`) with query latency during it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, pcts, proc_status
from synth import (
    SYNTH_FINGERPRINT,
    SynthEmbedder,
    dev_questions,
    load_gauss,
    sample_unit,
    synthetic_texts,
)

PER_FILE = 20


def write_big(settings: Any, n: int, texts: list[str], vectors: np.ndarray, dim: int
              ) -> dict[str, float]:
    """One segment + one generation of n chunks with rag's writers (no embedding)."""
    from rag.indexing.build import Part, _write_generation, _write_segment
    from rag.indexing.segments import next_segment_name
    from rag.indexing.store import index_lock, next_generation_name
    from rag.text.chunking import ChunkParams
    from rag.types import Chunk, Document

    t: dict[str, float] = {}
    corpus = settings.corpus_dir
    corpus.mkdir(parents=True, exist_ok=True)
    s = time.perf_counter()
    parts, mtimes = [], {}
    past = time.time() - 3600
    for f in range(0, n, PER_FILE):
        path = f"synth/f{f // PER_FILE:06d}.txt"
        lines = texts[f:f + PER_FILE]
        body = "\n".join(lines) + "\n"
        full = corpus / path
        full.parent.mkdir(exist_ok=True)
        full.write_text(body, encoding="utf-8")
        os.utime(full, (past, past))
        mtimes[path] = full.stat().st_mtime_ns
        pos, chunks = 0, []
        for j, text in enumerate(lines):
            chunks.append(Chunk(path, pos, pos + len(text), j + 1, j + 1, text))
            pos += len(text) + 1
        import hashlib
        doc = Document(path, "", hashlib.sha256(body.encode()).hexdigest(),
                       len(body.encode()), lines[0][:60], None)
        parts.append(Part(doc, chunks, vectors[f:f + len(lines)], [],
                          np.zeros((0, dim), np.float32)))
    t["corpus_write"] = time.perf_counter() - s
    with index_lock(settings.index_dir):
        s = time.perf_counter()
        seg = next_segment_name(settings.index_dir)
        _, docs = _write_segment(settings, seg, None, {}, None, parts, dim)
        t["segment_write"] = time.perf_counter() - s
        s = time.perf_counter()
        for p, d in docs.items():
            d["mtime_ns"] = mtimes[p]
        meta = json.loads((settings.index_dir / "segments" / seg / "segment.json").read_text())
        segments = [{"name": seg, "checksum": meta["checksum"], "rows": meta["rows"],
                     "sentences": 0, "dense": meta["dense"]}]
        model = {"name": SynthEmbedder.name, "fingerprint": SYNTH_FINGERPRINT, "dim": dim,
                 "max_tokens": SynthEmbedder.max_tokens}
        params = ChunkParams(settings.chunk_tokens, settings.chunk_overlap_tokens,
                             settings.context_prefix)
        _write_generation(settings, next_generation_name(settings.index_dir), None, docs,
                          segments, {}, model, params, {"name": "bench-synthetic"},
                          time.time_ns())
        t["generation_write"] = time.perf_counter() - s
    return t


def index_run(settings: Any, emb: Any, **kw: Any) -> dict[str, Any]:
    """One `rag index` (build_index under the lock), timed."""
    from rag.indexing.build import build_index
    from rag.indexing.store import index_lock

    s = time.perf_counter()
    with index_lock(settings.index_dir):
        r = build_index(settings, embedder=emb, **kw)
    wall = time.perf_counter() - s
    return {"seconds": wall, "embed_seconds": r.embed_seconds,
            "without_embedding": wall - r.embed_seconds, "generation": r.generation,
            "embedded": r.chunks_embedded, "hashed": r.hashed, "merged": r.merged,
            "summary": r.summary()}


def query_lat(searcher: Any, qs: list[str], n: int) -> dict[str, Any]:
    """p50/p95 of Searcher.ask per mode (embed included; the synthetic embedder is ~free)."""
    out: dict[str, list[float]] = {m: [] for m in ("hybrid", "dense", "lexical")}
    for i in range(n):
        for m in out:
            s = time.perf_counter()
            searcher.ask(qs[i % len(qs)], 5, m)
            out[m].append((time.perf_counter() - s) * 1000)
    return {m: pcts(v) for m, v in out.items()}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--gauss", type=Path, required=True)
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--queries", type=int, default=100)
    a = p.parse_args()

    from rag.config import Settings
    from rag.search.searcher import Searcher

    mu, lower = load_gauss(a.gauss)
    dim = len(mu)
    rng = np.random.default_rng(0)
    settings = Settings(index_dir=a.dir / "index", corpus_dir=a.dir / "corpus",
                        sentence_vectors=False, query_cache_size=0, merge_max_segments=100,
                        merge_max_dead_share=0.5, chunk_tokens=160)
    res: dict[str, Any] = {"n": a.n, "cpu": open("/proc/cpuinfo").read().split(
        "model name")[1].split("\n")[0].strip(" :"), "cores": os.cpu_count()}
    s = time.perf_counter()
    texts = synthetic_texts(a.n, ROOT / "corpus", rng)
    vectors = sample_unit(mu, lower, a.n, rng)
    res["texts_vectors_s"] = time.perf_counter() - s
    res["build"] = write_big(settings, a.n, texts, vectors, dim)
    del vectors
    print("built", res["build"], flush=True)
    emb = SynthEmbedder(mu, lower)

    res["noop"] = index_run(settings, emb)
    print("noop", res["noop"], flush=True)
    files = sorted((a.dir / "corpus" / "synth").iterdir())
    # one file changed: 20 new chunks of ~150 words (one chunk a paragraph)
    words = " ".join(texts[:400]).split()
    body = "\n\n".join(" ".join(words[i * 150:(i + 1) * 150]) + "." for i in range(20))
    files[0].write_text(body + "\n", encoding="utf-8")
    res["one_file"] = index_run(settings, emb)
    print("one file", res["one_file"], flush=True)
    # 10% tombstones: delete a tenth of the files
    for f in files[1:1 + len(files) // 10]:
        f.unlink()
    res["delete_10pct"] = index_run(settings, emb)
    print("delete", res["delete_10pct"], flush=True)
    small = []
    for i in range(19):  # 19 more small segments: 20 with the one-file change above
        f = files[len(files) // 10 + 2 + i]
        f.write_text(f.read_text(encoding="utf-8") + "\nAn appended line number %d.\n" % i,
                     encoding="utf-8")
        small.append(index_run(settings, emb))
    res["small_segments"] = {"runs": len(small),
                             "seconds": pcts([x["without_embedding"] for x in small])}
    searcher = Searcher(settings, embedder=emb)
    s = time.perf_counter()
    gen = searcher.generation
    res["load_seconds"] = time.perf_counter() - s
    res["segments"] = [{"name": x["name"], "rows": x["rows"], "dead": x["dead"]}
                       for x in gen.manifest["segments"]]
    res["rss_after_load_mib"] = proc_status()["VmRSS"]
    qs = dev_questions()
    query_lat(searcher, qs, 10)  # warm-up
    res["query_segmented"] = query_lat(searcher, qs, a.queries)
    print("query", res["query_segmented"], flush=True)
    # dense recall@10 of the segmented HNSW search against exact search over live vectors
    import faiss
    live = gen.dense.vectors()
    qv = sample_unit(mu, lower, 100, rng)
    _, exact = faiss.knn(qv, live, 10, metric=faiss.METRIC_INNER_PRODUCT)
    got = [{h.row for h in gen.dense.search(q[None, :], 10)[0]} for q in qv]
    res["dense_recall_at_10"] = float(np.mean([len(g & set(e.tolist())) / 10
                                               for g, e in zip(got, exact)]))
    del live
    # merge while answering: --optimize in a thread, questions in this one
    during: list[float] = []
    out: dict[str, Any] = {}
    th = threading.Thread(target=lambda: out.update(index_run(settings, emb, optimize=True)))
    th.start()
    i = 0
    while th.is_alive():
        s = time.perf_counter()
        searcher.ask(qs[i % len(qs)], 5, "hybrid")
        during.append((time.perf_counter() - s) * 1000)
        i += 1
    th.join()
    res["merge"] = out
    res["query_during_merge_hybrid"] = pcts(during)
    print("merge", out, res["query_during_merge_hybrid"], flush=True)
    s = time.perf_counter()
    searcher.reload_if_changed()
    res["reload_after_merge_s"] = time.perf_counter() - s
    res["query_after_merge"] = query_lat(searcher, qs, a.queries)
    res["peak_rss_mib"] = proc_status()["VmHWM"]
    a.json.write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
