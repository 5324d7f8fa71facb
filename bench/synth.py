"""Synthetic corpora for the scale benchmark, built and queried through rag's real code.

Run as a child process so each size's memory is measured alone:

    python bench/synth.py build --n 100000 --index DIR --gauss FILE --json OUT [--vectors real]
    python bench/synth.py query --index DIR --gauss FILE --json OUT [--queries 200]

Text: random sentences drawn from the repo corpus's word distribution, 40-120 words a chunk.
Vectors: "synthetic unit vectors" drawn from a Gaussian fitted to the seed index's real
MiniLM chunk and sentence vectors (so they have the seed's mean direction and spectrum,
effective dimension ~40, rather than isotropic noise), normalised; or, with --vectors real,
the bundled model's embeddings of the synthetic text.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, dir_size, pcts, proc_status  # noqa: E402

DEV = Path("/work/shared/gold/dev.jsonl")
CHUNKS_PER_FILE = 100
SYNTH_FINGERPRINT = "bench-synthetic-gaussian-v1"


# ---------------------------------------------------------------- vectors

def fit_gaussian(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, L) with L @ L.T the covariance of the rows (for sampling)."""
    x = np.asarray(vectors, dtype=np.float64)
    mu = x.mean(axis=0)
    w, u = np.linalg.eigh(np.cov(x - mu, rowvar=False))
    return mu.astype(np.float32), (u * np.sqrt(np.clip(w, 0.0, None))).astype(np.float32)


def effective_dim(lower: np.ndarray) -> float:
    """Participation ratio of the covariance spectrum: (sum w)^2 / sum w^2."""
    w = (lower ** 2).sum(axis=0)
    return float(w.sum() ** 2 / (w ** 2).sum())


def sample_unit(mu: np.ndarray, lower: np.ndarray, n: int, rng: np.random.Generator,
                block: int = 100_000) -> np.ndarray:
    """n unit vectors from N(mu, L L^T), normalised; built block by block."""
    out = np.empty((n, len(mu)), dtype=np.float32)
    for i in range(0, n, block):
        m = min(block, n - i)
        z = rng.standard_normal((m, lower.shape[1]), dtype=np.float32) @ lower.T + mu
        out[i:i + m] = z / np.linalg.norm(z, axis=1, keepdims=True)
    return out


class SynthEmbedder:
    """Embedder protocol over the fitted Gaussian: every call draws fresh query vectors."""

    name = "synthetic-gaussian"
    fingerprint = SYNTH_FINGERPRINT
    max_tokens = 256

    def __init__(self, mu: np.ndarray, lower: np.ndarray, seed: int = 7) -> None:
        self.mu, self.lower = mu, lower
        self.dim = int(len(mu))
        self._rng = np.random.default_rng(seed)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Words per text."""
        return [len(t.split()) for t in texts]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One random unit vector per text."""
        return sample_unit(self.mu, self.lower, len(texts), self._rng)


def load_gauss(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(mean, L) saved by the parent with np.savez (no pickle)."""
    with np.load(path, allow_pickle=False) as z:
        return z["mu"], z["lower"]


# ---------------------------------------------------------------- text

def corpus_words(corpus_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(distinct words, probabilities) of the corpus."""
    counts: collections.Counter[str] = collections.Counter()
    for p in sorted(corpus_dir.rglob("*")):
        if p.suffix in (".txt", ".md") and p.is_file():
            counts.update(re.findall(r"[A-Za-z][A-Za-z'\-]*|\d+", p.read_text("utf-8", "replace")))
    words = np.array(list(counts), dtype=object)
    prob = np.array(list(counts.values()), dtype=np.float64)
    return words, prob / prob.sum()


def synthetic_texts(n: int, corpus_dir: Path, rng: np.random.Generator,
                    block: int = 50_000) -> list[str]:
    """n chunks of 40-120 words drawn from the corpus's word distribution, in sentences of
    ~12 words (capitalised, ending with a full stop)."""
    words, prob = corpus_words(corpus_dir)
    v = len(words)
    # four spellings of every word: plain, "word.", "Word", "Word."
    forms = np.concatenate([words, words + ".",
                            np.array([w[:1].upper() + w[1:] for w in words], dtype=object),
                            np.array([w[:1].upper() + w[1:] + "." for w in words], dtype=object)])
    texts: list[str] = []
    for i in range(0, n, block):
        m = min(block, n - i)
        lens = rng.integers(40, 121, m)
        ids = rng.choice(v, size=int(lens.sum()), p=prob)
        ends = rng.random(len(ids)) < 1 / 12
        stops = np.cumsum(lens) - 1
        ends[stops] = True  # every chunk ends a sentence
        caps = np.roll(ends, 1)
        caps[0] = True
        toks = forms[ids + v * (ends.astype(np.int64) + 2 * caps.astype(np.int64))].tolist()
        pos = 0
        for ln in lens.tolist():
            texts.append(" ".join(toks[pos:pos + ln]))
            pos += ln
    return texts


# ---------------------------------------------------------------- build

def build(n: int, index_dir: Path, gauss: Path, corpus_dir: Path, vectors_kind: str,
          threshold: int | None, recall_queries: int, seed: int = 0) -> dict[str, Any]:
    """Write one generation of n synthetic chunks with rag's own writers; time each step."""
    from rag.config import Settings
    from rag.types import Chunk, Document

    rng = np.random.default_rng(seed)
    mu, lower = load_gauss(gauss)
    over = {} if threshold is None else {"approximate_threshold": threshold}
    settings = Settings(index_dir=index_dir, corpus_dir=corpus_dir, sentence_vectors=False,
                        **over)  # otherwise rag's defaults
    t: dict[str, float] = {}
    res: dict[str, Any] = {"n": n, "vectors": vectors_kind,
                           "threshold": settings.approximate_threshold,
                           "ef_search": settings.hnsw_ef_search}

    s = time.perf_counter()
    texts = synthetic_texts(n, corpus_dir, rng)
    t["texts"] = time.perf_counter() - s
    res["mean_words"] = float(np.mean([t.count(" ") + 1 for t in texts[:10000]]))

    s = time.perf_counter()
    if vectors_kind == "real":
        from rag.indexing.build import local_embed_step
        from rag.indexing.embedding import load_embedder

        emb = load_embedder(Settings())
        t["model_load"] = time.perf_counter() - s
        s = time.perf_counter()
        vectors, _ = local_embed_step(emb, settings.embed_batch_size)(texts)
        t["vectors"] = time.perf_counter() - s
        res["embed_chunks_per_s"] = n / t["vectors"]
        del emb
    else:
        vectors = sample_unit(mu, lower, n, rng)
        t["vectors"] = time.perf_counter() - s

    # one segment and a generation naming it, with rag's own writers (no corpus folder)
    from rag.indexing.build import Part, _write_generation, _write_segment
    from rag.indexing.store import index_lock
    from rag.text.chunking import ChunkParams

    s = time.perf_counter()
    parts = []
    for f in range(0, n, CHUNKS_PER_FILE):
        path = f"synth/f{f // CHUNKS_PER_FILE:06d}.txt"
        pos, chunks = 0, []
        for j, text in enumerate(texts[f:f + CHUNKS_PER_FILE]):
            chunks.append(Chunk(path, pos, pos + len(text), j + 1, j + 1, text))
            pos += len(text) + 1  # one chunk per line
        doc = Document(path, "", hashlib.sha256(path.encode()).hexdigest(), pos,
                       f"synthetic file {f // CHUNKS_PER_FILE}", None)
        parts.append(Part(doc, chunks, vectors[f:f + len(chunks)], [],
                          np.zeros((0, len(mu)), np.float32)))
    t["parts"] = time.perf_counter() - s
    del vectors
    with index_lock(index_dir):
        s = time.perf_counter()
        _, docs = _write_segment(settings, "s-000001", None, {}, None, parts, len(mu))
        t["segment_write"] = time.perf_counter() - s  # dense + lexical + sqlite + fsync
        del parts, texts
        s = time.perf_counter()
        meta = json.loads((index_dir / "segments" / "s-000001" / "segment.json").read_text())
        res["dense_kind"] = meta["dense"]
        _write_generation(settings, "g-000001", None, docs, [
            {"name": "s-000001", "checksum": meta["checksum"], "rows": meta["rows"],
             "sentences": 0, "dense": meta["dense"]}], {}, {
                "name": SynthEmbedder.name, "fingerprint": SYNTH_FINGERPRINT,
                "dim": len(mu), "max_tokens": SynthEmbedder.max_tokens},
            ChunkParams(160, 32, False), {"name": "bench-synthetic", "vectors": vectors_kind},
            time.time_ns())
        t["generation_write"] = time.perf_counter() - s
    t["index_build_total"] = t["segment_write"] + t["generation_write"]
    res["rss_after_dense_mib"] = proc_status()["VmRSS"]
    res["seconds"] = t
    res["disk_bytes"] = dir_size(index_dir)
    res["files_bytes"] = {p.name: p.stat().st_size if p.is_file() else dir_size(p)
                          for p in (index_dir / "segments" / "s-000001").iterdir()}
    res["peak_rss_mib"] = proc_status()["VmHWM"]
    return res


def hnsw_recall(dense: Any, vectors: np.ndarray, queries: np.ndarray, default_ef: int
                ) -> dict[str, Any]:
    """recall@10 of the HNSW index against exact search, at the default and other efSearch."""
    import faiss

    s = time.perf_counter()
    _, exact = faiss.knn(queries, vectors, 10, metric=faiss.METRIC_INNER_PRODUCT)
    out: dict[str, Any] = {"queries": len(queries), "exact_seconds": time.perf_counter() - s,
                           "by_ef": {}}
    index = dense._index  # the raw FAISS index, to vary efSearch (bench only)
    for ef in sorted({64, 128, 256, 512, 768, 1024, default_ef}):
        index.hnsw.efSearch = ef
        lat, rec = [], []
        for i, q in enumerate(queries):
            s = time.perf_counter()
            hits = dense.search(q[None, :], 10)[0]
            lat.append((time.perf_counter() - s) * 1000)
            rec.append(len({h.row for h in hits} & set(exact[i].tolist())) / 10)
        out["by_ef"][str(ef)] = {"recall_at_10": float(np.mean(rec)), "p50_ms": pcts(lat)["p50"]}
    index.hnsw.efSearch = default_ef
    out["recall_at_10"] = out["by_ef"][str(default_ef)]["recall_at_10"]
    out["ef_search"] = default_ef
    return out


# ---------------------------------------------------------------- query

def dev_questions(path: Path = DEV) -> list[str]:
    """The questions of the dev gold file, in order."""
    return [json.loads(x)["question"] for x in path.read_text().splitlines() if x.strip()]


def query(index_dir: Path, gauss: Path, corpus_dir: Path, n: int, warmup: int
          ) -> dict[str, Any]:
    """Load the generation with the real loader; time Searcher.ask per mode and the raw
    retrievers; report load time and memory."""
    import bm25s  # noqa: F401  (imported before the baseline so it counts as libraries)
    import faiss

    from rag.config import Settings
    from rag.indexing.store import generations_dir, read_current, validate_folder
    from rag.search.searcher import Searcher

    mu, lower = load_gauss(gauss)
    settings = Settings(index_dir=index_dir, corpus_dir=corpus_dir, sentence_vectors=False,
                        query_cache_size=0)
    searcher = Searcher(settings, embedder=SynthEmbedder(mu, lower))
    base = proc_status()["VmRSS"]
    res: dict[str, Any] = {"rss_before_load_mib": base, "ef_search": settings.hnsw_ef_search,
                           "threshold": settings.approximate_threshold}

    s = time.perf_counter()
    gen = searcher.generation  # open_current: validate every file's sha256, then load
    res["load_seconds"] = time.perf_counter() - s
    res["rss_after_load_mib"] = proc_status()["VmRSS"]
    res["hwm_after_load_mib"] = proc_status()["VmHWM"]
    # how much of the load is the integrity check (files now in the page cache)
    s = time.perf_counter()
    validate_folder(generations_dir(index_dir) / str(read_current(index_dir)))
    res["validate_seconds_warm"] = time.perf_counter() - s
    res["chunks"] = gen.size

    qs = dev_questions()
    modes = ["hybrid", "dense", "lexical"]
    for i in range(warmup):
        searcher.ask(qs[i % len(qs)], 5, modes[i % 3])
    lat: dict[str, list[float]] = {m: [] for m in modes}
    parts: dict[str, dict[str, list[float]]] = {m: {"embed": [], "search": [], "highlight": []}
                                                 for m in modes}
    raw: dict[str, list[float]] = {"dense_index": [], "dense_index_omp1": [],
                                   "lexical_index": []}
    threads = faiss.omp_get_max_threads()
    for i in range(n):
        q = qs[i % len(qs)]
        for m in modes[i % 3:] + modes[:i % 3]:  # rotate the order
            s = time.perf_counter()
            a = searcher.ask(q, 5, m)  # type: ignore[arg-type]
            lat[m].append((time.perf_counter() - s) * 1000)
            for k in parts[m]:
                parts[m][k].append(a.timings_ms[k])
        qv = searcher.embedder.embed([q])
        s = time.perf_counter()
        gen.dense.search(qv, settings.candidates)
        raw["dense_index"].append((time.perf_counter() - s) * 1000)
        faiss.omp_set_num_threads(1)  # what one OpenMP thread would do (bench only)
        s = time.perf_counter()
        gen.dense.search(qv, settings.candidates)
        raw["dense_index_omp1"].append((time.perf_counter() - s) * 1000)
        faiss.omp_set_num_threads(threads)
        s = time.perf_counter()
        gen.lexical.search(q, settings.candidates)
        raw["lexical_index"].append((time.perf_counter() - s) * 1000)
    res["ask"] = {m: pcts(v) for m, v in lat.items()}
    res["ask_parts_p50"] = {m: {k: pcts(v)["p50"] for k, v in p.items()} for m, p in parts.items()}
    res["raw"] = {k: pcts(v) for k, v in raw.items()}
    res["dense_kind"] = gen.dense.kind
    res["peak_rss_mib"] = proc_status()["VmHWM"]
    res["rss_end_mib"] = proc_status()["VmRSS"]
    return res


def main() -> int:
    """Child entry point: build or query, result as JSON in --json."""
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["build", "query"])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--index", type=Path, required=True)
    p.add_argument("--gauss", type=Path, required=True)
    p.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    p.add_argument("--vectors", choices=["synthetic", "real"], default="synthetic")
    p.add_argument("--threshold", type=int, default=None,
                   help="approximate_threshold (default: rag's Settings default)")
    p.add_argument("--recall-queries", type=int, default=200)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--json", type=Path, required=True)
    a = p.parse_args()
    if a.what == "build":
        res = build(a.n, a.index, a.gauss, a.corpus, a.vectors, a.threshold, a.recall_queries)
    else:
        res = query(a.index, a.gauss, a.corpus, a.queries, a.warmup)
    a.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
