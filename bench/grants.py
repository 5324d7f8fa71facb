"""Grants in retrieval: what a key's row mask costs and where exact search beats HNSW.

    python bench/grants.py switch --n 100000 --json OUT     # dense only: HNSW + id selector
                                                            # vs exact over the permitted rows
    python bench/grants.py masks --files 50000 --json OUT   # building a grant's row mask
    python bench/grants.py ask --index DIR --gauss FILE --json OUT   # the whole pipeline on a
                                                            # synth.py index: 1% / 99% / no key
    python bench/grants.py section [--n 1000000]            # make bench: builds the synth.py
                                                            # index (~13 min at 1M), then all three

Vectors are synthetic unit vectors from the Gaussian fitted to the seed index (bench/synth.py),
100 chunks a file; a grant is a random set of whole files.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import OUT, ROOT, pcts
from synth import CHUNKS_PER_FILE, fit_gaussian, load_gauss, sample_unit

FRACTIONS = (0.001, 0.005, 0.01, 0.05, 0.2, 0.5, 0.99)


def gauss_file() -> Path:
    """bench/out/gauss.npz, fitted to a fresh index of the seed corpus when missing."""
    path = OUT / "gauss.npz"
    if path.exists():
        return path
    import tempfile

    from rag.config import Settings
    from rag.indexing.build import build_index
    from rag.indexing.generation import open_current
    from rag.indexing.store import index_lock

    with tempfile.TemporaryDirectory() as tmp:
        s = Settings(corpus_dir=ROOT / "corpus", index_dir=Path(tmp) / "index")
        with index_lock(s.index_dir):
            build_index(s)
        gen = open_current(s.index_dir)
        x = np.vstack([gen.dense.vectors()] + ([gen.sentences.vectors()]
                                               if gen.sentences is not None else []))
        gen.close()
    mu, lower = fit_gaussian(x)
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(path, mu=mu, lower=lower)
    return path


def grant_rows(n: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A row mask permitting a random `fraction` of the files (whole files)."""
    files = max(1, n // CHUNKS_PER_FILE)
    chosen = rng.random(files) < fraction
    if not chosen.any():
        chosen[rng.integers(files)] = True
    return np.repeat(chosen, CHUNKS_PER_FILE)[:n]


def switch(n: int, queries: int, ef: int) -> dict[str, Any]:
    """recall@10 and p50 of HNSW with the grant as FAISS id selector, and of exact search over
    the permitted rows (the HNSW index's flat storage with the same selector), for several
    permitted fractions."""
    import faiss

    from rag.indexing.dense import DenseIndex

    mu, lower = load_gauss(gauss_file())
    rng = np.random.default_rng(11)
    x = sample_unit(mu, lower, n, rng)
    t = time.perf_counter()
    dense = DenseIndex.build(x, approximate_threshold=0, ef_search=ef)
    build_s = time.perf_counter() - t
    q = sample_unit(mu, lower, queries, rng)
    out: dict[str, Any] = {"n": n, "queries": queries, "ef_search": ef, "build_s": build_s,
                           "threads": faiss.omp_get_max_threads(), "by_fraction": {}}
    faiss.omp_set_num_threads(1)
    for frac in FRACTIONS:
        allowed = grant_rows(n, frac, rng)
        rows = np.flatnonzero(allowed)
        _, truth = faiss.knn(q, x[rows], 10, metric=faiss.METRIC_INNER_PRODUCT)
        truth = rows[truth]
        lat_h, lat_e, rec_h, rec_e = [], [], [], []
        for i, v in enumerate(q):
            s = time.perf_counter()
            hits = dense.search(v[None, :], 10, allowed)[0]
            lat_h.append((time.perf_counter() - s) * 1000)
            rec_h.append(len({h.row for h in hits} & set(truth[i].tolist())) / 10)
            s = time.perf_counter()
            top = dense.search(v[None, :], 10, allowed, exact=True)[0]  # the exact path
            lat_e.append((time.perf_counter() - s) * 1000)
            rec_e.append(len({h.row for h in top} & set(truth[i].tolist())) / 10)
        out["by_fraction"][str(frac)] = {
            "rows": len(rows), "hnsw_recall_at_10": float(np.mean(rec_h)),
            "hnsw_p50_ms": pcts(lat_h)["p50"], "exact_recall_at_10": float(np.mean(rec_e)),
            "exact_p50_ms": pcts(lat_e)["p50"]}
        print(frac, out["by_fraction"][str(frac)], flush=True)
    return out


class _Gen:
    """Just what a grant's mask needs of a generation."""

    def __init__(self, n_files: int, chunks: int) -> None:
        from rag.indexing.generation import FileRecord

        dept = ["public", "hr", "finance", "legal", "eng"]
        self.name = "g-bench"
        self.files = [FileRecord(f"{dept[i % 5]}/team-{i % 97}/doc-{i:06d}.txt", "0" * 64, 1,
                                 None, None, chunks) for i in range(n_files)]
        self.file_ids = np.repeat(np.arange(n_files, dtype=np.int32), chunks)
        self.size = len(self.file_ids)

    def rows_of_files(self, keep: np.ndarray) -> np.ndarray:
        """A per-file bool spread over the chunk rows (Generation.rows_of_files)."""
        return keep[self.file_ids]


def masks(n_files: int, repeats: int = 5) -> dict[str, Any]:
    """Seconds to build a grant's file and row masks over `n_files` files (20 chunks each:
    1M rows), cold (link targets looked up too) and with the generation's targets cached."""
    import tempfile

    from rag.serve.auth import AuditLog, Guard
    from rag.serve.keys import ApiKey

    gen = _Gen(n_files, 20)
    out: dict[str, Any] = {"files": n_files, "rows": gen.size}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp)  # files need not exist: lstat of a missing file is cheap too
        for name, allow in (("one-folder", ("hr/**",)), ("three-globs",
                            ("public/**", "eng/team-1*/**", "**/doc-00000?.txt"))):
            key = ApiKey(name, "0" * 64, allow, "")
            cold, warm = [], []
            for _ in range(repeats):
                g = Guard(None, corpus, AuditLog(None))
                s = time.perf_counter()
                files, _rows, count = g.masks(key, gen)
                cold.append(time.perf_counter() - s)
                g._masks = type(g._masks)(64)  # drop the mask, keep the link targets
                s = time.perf_counter()
                g.masks(key, gen)
                warm.append(time.perf_counter() - s)
            out[name] = {"permitted_files": int(files.sum()), "permitted_rows": count,
                         "cold_s": float(np.median(cold)), "targets_cached_s":
                         float(np.median(warm))}
    return out


def grant_ask(index_dir: Path, gauss: Path, corpus_dir: Path, queries: int,
              fractions: tuple[float, ...] = (0.01, 0.99)) -> dict[str, Any]:
    """On a synth.py index (1M chunks for the issue's figure): hybrid `ask` p50 with no key
    and with keys that may read each fraction of the files, in one run; recall@10 of the
    dense candidates each key gets against exact search over its permitted rows; the cost of
    its first (uncached) row mask."""
    from synth import SynthEmbedder, dev_questions

    from rag.config import Settings
    from rag.search.searcher import Searcher
    from rag.serve.auth import Access, AuditLog, Guard
    from rag.serve.keys import ApiKey

    mu, lower = load_gauss(gauss)
    settings = Settings(index_dir=index_dir, corpus_dir=corpus_dir, sentence_vectors=False,
                        query_cache_size=0, dense_granularity="chunk")
    searcher = Searcher(settings, embedder=SynthEmbedder(mu, lower))
    gen = searcher.generation
    guard = Guard(None, corpus_dir, AuditLog(None))
    rng = np.random.default_rng(5)
    out: dict[str, Any] = {"chunks": gen.size, "files": len(gen.files), "dense": gen.dense.kind,
                           "exact_rows": settings.exact_rows, "keys": {}}
    scopes: dict[str, Any] = {"no key": None}
    for frac in fractions:  # a grant of whole files, named one by one (worst case for globs)
        paths = [f.path for f in gen.files if rng.random() < frac]
        key = ApiKey(f"k{frac}", "0" * 64, tuple(paths), "")
        s = time.perf_counter()
        access = Access(key, guard)
        rows = access.chunks(gen)
        scopes[f"{frac:.0%} of files"] = access
        out["keys"][f"{frac:.0%} of files"] = {"rows": rows, "mask_build_s":
                                               time.perf_counter() - s}
    qs = dev_questions()
    for name, scope in scopes.items():
        lat, rec = [], []
        mask = scope.mask(gen) if scope is not None else None
        permitted = np.flatnonzero(mask) if mask is not None else np.arange(gen.size)
        for i in range(queries):
            q = qs[i % len(qs)]
            t = time.perf_counter()
            searcher.ask(q, 5, "hybrid", scope=scope)
            lat.append((time.perf_counter() - t) * 1000)
            qv = searcher.embedder.embed([q])[0]
            hits = searcher.dense_hits(gen, qv, 10, mask)
            scores = gen.dense.vectors_of(permitted) @ qv
            truth = set(permitted[np.argsort(-scores)[:10]].tolist())
            rec.append(len({h.row for h in hits} & truth) / 10)
        out["keys"].setdefault(name, {}).update(
            {"ask_hybrid_p50_ms": pcts(lat)["p50"], "dense_recall_at_10": float(np.mean(rec))})
    return out


def grants_section(index_dir: Path, gauss: Path, corpus_dir: Path, queries: int = 200
                   ) -> dict[str, Any]:
    """The `make bench` section: a 1% and a 99% key beside no key on one index, the mask
    cost over 50,000 files, and the exact/HNSW switch on 100,000 rows."""
    return {"ask": grant_ask(index_dir, gauss, corpus_dir, queries),
            "masks_50k_files": masks(50_000), "switch_100k": switch(100_000, 100, 512)}


def section(n: int, queries: int) -> dict[str, Any]:
    """`make bench`'s grants step end to end: a synthetic index of ``n`` chunks built by
    synth.py in a temporary folder (removed after), then grants_section on it."""
    import subprocess
    import tempfile

    gauss = gauss_file()
    with tempfile.TemporaryDirectory(prefix="rag-grants-") as tmp:
        index = Path(tmp) / "index"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "bench" / "synth.py"), "build", "--n", str(n),
                        "--index", str(index), "--gauss", str(gauss),
                        "--json", str(Path(tmp) / "build.json")], check=True,
                       stdout=subprocess.DEVNULL)
        built_s = time.perf_counter() - t0
        out = grants_section(index, gauss, ROOT / "corpus", queries)
    return {"chunks": n, "build_s": built_s, **out}


def main() -> int:
    """Run one measurement and write its JSON."""
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="what", required=True)
    a = sub.add_parser("switch")
    a.add_argument("--n", type=int, default=100_000)
    a.add_argument("--queries", type=int, default=100)
    a.add_argument("--ef", type=int, default=512)
    a.add_argument("--json", type=Path)
    b = sub.add_parser("masks")
    b.add_argument("--files", type=int, default=50_000)
    b.add_argument("--json", type=Path)
    c = sub.add_parser("ask")
    c.add_argument("--index", type=Path, required=True)
    c.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    c.add_argument("--gauss", type=Path, default=None)
    c.add_argument("--queries", type=int, default=200)
    c.add_argument("--json", type=Path)
    d = sub.add_parser("section", help="make bench: build a synthetic index, then every "
                       "measurement above on it")
    d.add_argument("--n", type=int, default=1_000_000)
    d.add_argument("--queries", type=int, default=200)
    d.add_argument("--json", type=Path)
    args = p.parse_args()
    if args.what == "section":
        r = section(args.n, args.queries)
    elif args.what == "switch":
        r = switch(args.n, args.queries, args.ef)
    elif args.what == "masks":
        r = masks(args.files)
    else:
        r = grant_ask(args.index, args.gauss or gauss_file(), args.corpus, args.queries)
    text = json.dumps(r, indent=1)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
