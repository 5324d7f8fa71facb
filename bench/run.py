"""`make bench`: latency, throughput, indexing, memory and scale of rag on this machine.

    .venv/bin/python bench/run.py [--quick]

Writes bench/RESULTS.md (and prints it); scratch files go to bench/out/ (git-ignored).
Every server it starts listens on 127.0.0.1 only; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (OUT, ROOT, VENV_BIN, dir_size, fmt_bytes, loadavg,  # noqa: E402
                    machine_info, md_table, pcts, proc_status)
from synth import DEV, dev_questions, effective_dim, fit_gaussian  # noqa: E402

CORPUS = ROOT / "corpus"
RESULTS = ROOT / "bench" / "RESULTS.md"
SEED_INDEX = OUT / "index"
MODES = ("hybrid", "dense", "lexical")
READER = "hybrid + reader"  # the service's default: hybrid, then the reader over the top 4
BUDGET_S = 45 * 60  # the whole run must finish within this
REAL_10K_MAX_S = 300  # embed the 10k corpus for real only below this estimate
BLOCK = 10  # questions timed back to back per pipeline in the in-process comparison
APPENDED = ("\n\nThe benchmark appended this paragraph to measure an incremental re-index. "
            "It mentions the Digital Silk Road, cooperation among SCO member states, and "
            "artificial intelligence in agriculture. It changes only this one file.\n")


def log(msg: str) -> None:
    """Progress on stdout, with the time since start."""
    print(f"[{time.perf_counter() - T0:7.1f} s] {msg}", flush=True)


T0 = time.perf_counter()


def run_cmd(args: list[str], timeout_s: float, env: dict[str, str] | None = None
            ) -> tuple[float, subprocess.CompletedProcess[str]]:
    """(wall seconds, completed process) of a command; raises on non-zero exit."""
    s = time.perf_counter()
    cp = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s,
                        env={**os.environ, **(env or {})}, cwd=ROOT)
    wall = time.perf_counter() - s
    if cp.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {cp.returncode}: {cp.stderr[-2000:]}")
    return wall, cp


def last_line(text: str) -> str:
    """The last non-empty line of some output."""
    lines = [x for x in text.splitlines() if x.strip()]
    return lines[-1] if lines else ""


# ---------------------------------------------------------------- 4a. cold build (seed)

def cold_build(rounds: int) -> dict[str, Any]:
    """`rag index --full` in a fresh process into bench/out/index (the seed index),
    alternated with an in-process full build with a preloaded model, `rounds` times."""
    from rag.config import Settings
    from rag.indexing.build import build_index
    from rag.indexing.embedding import load_embedder, model_fingerprint, resolve_model
    from rag.indexing.store import index_lock

    s = Settings()
    fp = model_fingerprint(resolve_model(s.model))
    out: dict[str, Any] = {
        "onnx_cached": (s.onnx_cache_dir / fp[:16] / "onnx" / "model.onnx").is_file(),
        "cli": [], "warm": []}
    t = time.perf_counter()
    emb = load_embedder(s)
    out["model_load_s"] = time.perf_counter() - t
    warm_dir = OUT / "index-warm"
    for i in range(rounds):
        shutil.rmtree(SEED_INDEX, ignore_errors=True)
        la = loadavg()
        wall, cp = run_cmd([str(VENV_BIN / "rag"), "index", "--full", "--corpus", str(CORPUS),
                            "--index", str(SEED_INDEX)], 1800)
        out["cli"].append({"wall_s": wall, "summary": last_line(cp.stdout), "loadavg": la})
        log(f"cold build {i + 1}: `rag index --full` {wall:.1f} s wall")
        shutil.rmtree(warm_dir, ignore_errors=True)
        sw = Settings(index_dir=warm_dir, corpus_dir=CORPUS)
        la = loadavg()
        with index_lock(warm_dir):
            rep = build_index(sw, full=True, embedder=emb)
        out["warm"].append({
            "seconds": rep.seconds, "embed_seconds": rep.embed_seconds,
            "chunks": rep.chunks_embedded, "sentences": rep.sentences_embedded,
            "texts_per_s": (rep.chunks_embedded + rep.sentences_embedded) / rep.embed_seconds,
            "summary": rep.summary(), "loadavg": la})
        log(f"warm build {i + 1}: in-process {rep.seconds:.1f} s")
    out["disk_bytes"] = dir_size(SEED_INDEX / "generations")
    return out


def save_gauss() -> dict[str, Any]:
    """Fit the synthetic-vector Gaussian to the seed's chunk and sentence vectors."""
    from rag.indexing.generation import open_current

    gen = open_current(SEED_INDEX)
    parts = [gen.dense.vectors()]
    if gen.sentences is not None:
        parts.append(gen.sentences.vectors())
    x = np.vstack(parts)
    gen.close()
    mu, lower = fit_gaussian(x)
    np.savez(OUT / "gauss.npz", mu=mu, lower=lower)
    return {"rows": len(x), "effective_dim": effective_dim(lower)}


# ---------------------------------------------------------------- 1+2. in-process latency

REFERENCES = ("reference", "reference_onnx")
CHUNK_EMBED_ROUNDS = 5  # the seed corpus embedded this many times for the chunks/s figure
INT8 = "hybrid, float32 questions"


def inprocess(n: int, warmup: int) -> dict[str, Any]:
    """Searcher.ask per mode (cache off) and the reference pipeline, interleaved on the same
    question sequence; then variants: FAISS on one OpenMP thread, cache on; a profile."""
    import faiss
    from sentence_transformers import SentenceTransformer

    from rag.config import Settings
    from rag.indexing.embedding import resolve_model
    from rag.search.searcher import Searcher

    settings = Settings(index_dir=SEED_INDEX, corpus_dir=CORPUS)
    searcher = Searcher(settings)
    searcher.cache.size = 0  # before any question: a cached entry would still be served
    s = time.perf_counter()
    gen = searcher.generation  # loads the model (ONNX) and the index
    out: dict[str, Any] = {"searcher_start_s": time.perf_counter() - s, "chunks": gen.size,
                           "sentences": gen.sentences.size if gen.sentences else 0,
                           "queries": n, "warmup": warmup, "loadavg": loadavg()}

    s = time.perf_counter()
    st = SentenceTransformer(resolve_model(settings.model), device="cpu")
    out["reference_model_load_s"] = time.perf_counter() - s
    # The like-for-like plain pipeline: sentence-transformers on its own ONNX backend, over the
    # float32 ONNX export rag made of the same weights (no int8, no direct session call).
    onnx_file = searcher.embedder._onnx_file
    s = time.perf_counter()
    st_onnx = SentenceTransformer(str(onnx_file.parent.parent), device="cpu", backend="onnx",
                                  model_kwargs={"file_name": "onnx/model.onnx"})
    out["reference_onnx_model_load_s"] = time.perf_counter() - s
    ref_index = faiss.IndexFlatIP(gen.dense.dim)
    ref_index.add(gen.dense.vectors())
    ref_parts: dict[str, dict[str, list[float]]] = {
        r: {"encode": [], "search": []} for r in REFERENCES}

    def plain(model: Any) -> Callable[[str], tuple[float, float]]:
        def run(q: str) -> tuple[float, float]:
            a = time.perf_counter()
            v = model.encode(q, normalize_embeddings=True)
            b = time.perf_counter()
            ref_index.search(np.asarray(v, dtype=np.float32)[None, :], 5)
            c = time.perf_counter()
            return (b - a) * 1000, (c - b) * 1000
        return run

    # The same pipeline with float32 questions (RAG_QUANTIZE_QUERIES=0; int8 is the default).
    searcher8 = Searcher(settings.model_copy(update={"quantize_queries": False}))
    searcher8.cache.size = 0
    _ = searcher8.generation
    qs = dev_questions()
    fns: dict[str, Callable[[str], Any]] = {"reference": plain(st),
                                            "reference_onnx": plain(st_onnx)}
    for m in MODES:  # the fast path: reader off
        fns[m] = (lambda mode: lambda q: searcher.ask(q, 5, mode, read=False))(m)
    fns[READER] = lambda q: searcher.ask(q, 5, "hybrid", read=True)  # the service's default
    fns[INT8] = lambda q: searcher8.ask(q, 5, "hybrid", read=False)
    names = list(fns)
    for i in range(warmup):
        for k in names:
            fns[k](qs[i % len(qs)])
    lat: dict[str, list[float]] = {k: [] for k in names}
    parts: dict[str, dict[str, list[float]]] = {m: {"embed": [], "search": [], "highlight": []}
                                                 for m in (*MODES, INT8)}
    parts[READER] = {"embed": [], "search": [], "highlight": [], "read": []}
    # Blocks of BLOCK questions per pipeline, pipelines rotating per block: all pipelines see
    # the same questions under the same machine load, and an untimed call at the start of
    # each block lets the previous pipeline's spinning threads (ORT, OpenMP) settle.
    for b0 in range(0, n, BLOCK):
        r = (b0 // BLOCK) % len(names)
        for k in names[r:] + names[:r]:
            fns[k](qs[(b0 + 7) % len(qs)])  # untimed
            for i in range(b0, min(n, b0 + BLOCK)):
                s = time.perf_counter()
                a = fns[k](qs[i % len(qs)])
                lat[k].append((time.perf_counter() - s) * 1000)
                if k in parts:
                    for part in parts[k]:
                        parts[k][part].append(a.timings_ms[part])
                else:
                    ref_parts[k]["encode"].append(a[0])
                    ref_parts[k]["search"].append(a[1])
    out["latency"] = {k: pcts(v) for k, v in lat.items()}
    out["parts_p50"] = {m: {p: pcts(v)["p50"] for p, v in d.items()} for m, d in parts.items()}
    out["parts_mean"] = {m: {p: pcts(v)["mean"] for p, v in d.items()} for m, d in parts.items()}
    out["reference_parts_p50"] = {r: {p: pcts(v)["p50"] for p, v in d.items()}
                                  for r, d in ref_parts.items()}
    for key, rname in (("paired", "reference"), ("paired_onnx", "reference_onnx")):
        ref = np.asarray(lat[rname])
        out[key] = {}
        for m in (*MODES, READER, INT8):
            ours = np.asarray(lat[m])
            out[key][m] = {
                "median_ratio_ours_over_ref": float(np.median(ours / ref)),
                "p50_ratio_ours_over_ref": float(np.median(ours) / np.median(ref)),
                "median_speedup": float(np.median(ref / ours)),
                "p50_speedup": float(np.median(ref) / np.median(ours)),
            }
    # The two embedders alone, back to back, same questions: the model-only ratio.
    alone: dict[str, list[float]] = {"reference encode": [], "ours embed": []}
    for i in range(40):
        for k in (("reference encode", "ours embed") if i % 2 == 0
                  else ("ours embed", "reference encode")):
            s = time.perf_counter()
            if k == "ours embed":
                searcher.embedder.embed([qs[i % len(qs)]])
            else:
                st.encode(qs[i % len(qs)], normalize_embeddings=True)
            alone[k].append((time.perf_counter() - s) * 1000)
    out["embed_alone"] = {k: pcts(v) for k, v in alone.items()}
    fast, read = np.asarray(lat["hybrid"]), np.asarray(lat[READER])
    out["reader_over_fast"] = {"p50_ratio": float(np.median(read) / np.median(fast)),
                               "median_ratio": float(np.median(read / fast))}
    out["reader"] = {"fingerprint": searcher.reader.fingerprint,
                     "candidates": settings.reader_candidates}
    log(f"in-process: reader p50 {out['latency'][READER]['p50']:.2f} ms = "
        f"{out['reader_over_fast']['p50_ratio']:.2f}x the fast path")
    log(f"in-process: hybrid p50 {out['latency']['hybrid']['p50']:.2f} ms, "
        f"reference p50 {out['latency']['reference']['p50']:.2f} ms (torch), "
        f"{out['latency']['reference_onnx']['p50']:.2f} ms (ONNX)")

    # What one OpenMP thread for FAISS does (process-wide switch; rag is not modified).
    default_threads = faiss.omp_get_max_threads()
    m2 = max(50, n // 3)
    variant: dict[str, list[float]] = {"default": [], "omp1": []}
    for i in range(m2):
        for key in (("default", "omp1") if i % 2 == 0 else ("omp1", "default")):
            faiss.omp_set_num_threads(1 if key == "omp1" else default_threads)
            s = time.perf_counter()
            searcher.ask(qs[i % len(qs)], 5, "hybrid", read=False)
            variant[key].append((time.perf_counter() - s) * 1000)
    faiss.omp_set_num_threads(default_threads)
    out["omp_variant"] = {"threads_default": default_threads, "queries": m2,
                          **{k: pcts(v) for k, v in variant.items()}}

    # Where the time goes: cProfile over hybrid questions.
    prof = cProfile.Profile()
    prof.enable()
    for i in range(100):
        searcher.ask(qs[i % len(qs)], 5, "hybrid", read=False)
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(40)
    (OUT / "profile_hybrid.txt").write_text(buf.getvalue())
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    top = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:15]  # type: ignore[attr-defined]
    out["profile_top"] = [{"func": f"{Path(k[0]).name}:{k[1]}({k[2]})", "calls": v[1],
                           "tottime_ms_per_q": v[2] * 1000 / 100, "share": v[2] / total}
                          for k, v in top]

    # Cached: cache on, every question seen once, then repeated questions.
    searcher.cache.size = settings.query_cache_size
    for q in qs:
        searcher.ask(q, 5, "hybrid", read=False)
    cached: dict[str, list[float]] = {m: [] for m in MODES}
    for i in range(n):
        for m in MODES:
            s = time.perf_counter()
            searcher.ask(qs[i % len(qs)], 5, m, read=False)
            cached[m].append((time.perf_counter() - s) * 1000)
    out["cached"] = {m: pcts(v) for m, v in cached.items()}
    del st
    gen.close()
    return out


# ---------------------------------------------------------------- 3+5. HTTP and memory

def http(duration_s: float) -> dict[str, Any]:
    """A real `rag serve` (query cache off) driven at concurrency 1, 8, 32 by wrk (C: it
    leaves the 2 cores to the server) and, as a second opinion, by the asyncio httpx client
    (Python: it competes with the server for them); then the server's memory."""
    from http_load import run_load, run_wrk, start_server, wrk_available

    qs = dev_questions()
    srv = start_server(SEED_INDEX, CORPUS, OUT / "server.log", {"RAG_QUERY_CACHE_SIZE": "0"})
    out: dict[str, Any] = {"ready_s": srv.started_s, "duration_s": duration_s, "runs": {},
                           "httpx_runs": {}, "wrk": wrk_available()}
    try:
        out["rss_ready_mib"] = proc_status(srv.proc.pid)["VmRSS"]
        warm = run_load(srv.url, qs, 2, 10.0, max_requests=20)
        out["warmup_errors"] = warm.errors
        out["reader_runs"] = {}
        for read, cs in ((False, (1, 8, 32)), (True, (1, 8))):  # fast path, then the reader
            for c in cs:
                for gen in (("wrk", "httpx") if out["wrk"] else ("httpx",)):
                    la = loadavg()
                    if gen == "wrk":
                        r = run_wrk(srv.url, qs, c, duration_s, script_dir=OUT, read=read)
                    else:
                        r = run_load(srv.url, qs, c, duration_s, read=read).summary()
                        r["generator"] = "httpx"
                    r["loadavg_before"] = la
                    primary = gen == ("wrk" if out["wrk"] else "httpx")
                    key = ("reader_runs" if read else "runs") if primary else (
                        "reader_httpx_runs" if read else "httpx_runs")
                    out.setdefault(key, {})[str(c)] = r
                    log(f"HTTP {gen} read={read} c={c}: p50 {r['latency']['p50']:.1f} ms, p99 "
                        f"{r['latency']['p99']:.1f} ms, {r['rps']:.1f} req/s, "
                        f"{r['errors']} errors")
        out["memory"] = proc_status(srv.proc.pid)
    finally:
        srv.stop()
    return out


# ---------------------------------------------------------------- 7. MCP over stdio

def mcp_cold_start(reps: int, index_dir: Path = SEED_INDEX) -> dict[str, Any]:
    """Cold start to first answer over stdio, the way a desktop assistant starts rag: the MCP
    SDK's stdio client spawns `rag mcp`, initialises, calls `ask` once; wall time from the spawn
    to the answer (model load, index load and the question included), `reps` new processes."""
    import anyio
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    qs = dev_questions()
    params = StdioServerParameters(
        command=str(VENV_BIN / "rag"), args=["mcp", "--corpus", str(CORPUS), "--index",
                                             str(index_dir)],
        env=dict(os.environ), cwd=str(ROOT))  # the benchmark's own environment (RAG_*, paths)

    async def once(question: str, errlog: Any) -> dict[str, Any]:
        t0 = time.perf_counter()
        async with stdio_client(params, errlog=errlog) as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()
            t1 = time.perf_counter()
            res = await session.call_tool("ask", {"question": question},
                                          read_timeout_seconds=300)
            t2 = time.perf_counter()
        t3 = time.perf_counter()  # the client closed stdin and waited for the exit
        if res.is_error or not (res.structured_content or {}).get("passages"):
            raise RuntimeError(f"ask over stdio failed: {res.content}")
        return {"initialize_s": t1 - t0, "first_answer_s": t2 - t0, "ask_s": t2 - t1,
                "shutdown_s": t3 - t2, "loadavg": loadavg()}

    runs = []
    for i in range(reps):
        la = loadavg()
        with open(OUT / "mcp-stdio.log", "a") as errlog:  # the servers' stderr
            x = anyio.run(once, qs[i % len(qs)], errlog)
        x["loadavg_before"] = la
        runs.append(x)
        log(f"MCP stdio cold start {i + 1}: handshake {x['initialize_s']:.2f} s, first answer "
            f"{x['first_answer_s']:.2f} s")
    return {"runs": runs, "reps": reps,
            "median_first_answer_s": float(np.median([x["first_answer_s"] for x in runs])),
            "median_initialize_s": float(np.median([x["initialize_s"] for x in runs]))}


# ---------------------------------------------------------------- 4b. indexing

def indexing() -> dict[str, Any]:
    """Warm full build (model preloaded), no-op re-index, one-file-changed re-index."""
    from rag.config import Settings
    from rag.indexing.build import build_index, local_embed_step
    from rag.indexing.embedding import load_embedder
    from rag.indexing.generation import open_current
    from rag.indexing.store import index_lock
    from rag.text.chunking import embedding_text

    out: dict[str, Any] = {}
    warm_dir = OUT / "index-warm"
    sw = Settings(index_dir=warm_dir, corpus_dir=CORPUS)
    s = time.perf_counter()
    emb = load_embedder(sw)
    out["model_load_s"] = time.perf_counter() - s
    gen = open_current(warm_dir)
    texts = [embedding_text(c) for c in gen.chunks(list(range(gen.size)))]
    gen.close()
    step = local_embed_step(emb, sw.embed_batch_size)
    step(texts[:sw.embed_batch_size])  # warm-up: the first call of a new session is slower
    el = 0.0
    for _ in range(CHUNK_EMBED_ROUNDS):  # steady rate: the seed corpus is only 102 chunks
        s = time.perf_counter()
        step(texts)
        el += time.perf_counter() - s
    n = CHUNK_EMBED_ROUNDS * len(texts)
    out["chunk_embed"] = {"chunks": n, "seconds": el, "chunks_per_s": n / el}
    log(f"indexing: {n / el:.1f} chunks/s")

    noop = []
    for _ in range(3):
        wall, cp = run_cmd([str(VENV_BIN / "rag"), "index", "--corpus", str(CORPUS),
                            "--index", str(SEED_INDEX)], 600)
        noop.append(wall)
    out["noop_cli_s"] = noop
    out["noop_cli_summary"] = last_line(cp.stdout)
    with index_lock(SEED_INDEX):
        rep = build_index(Settings(index_dir=SEED_INDEX, corpus_dir=CORPUS), embedder=emb)
    out["noop_inprocess_s"] = rep.seconds
    s = time.perf_counter()
    run_cmd([str(VENV_BIN / "python"), "-c", "import rag.serve.cli"], 120)
    out["python_import_cli_s"] = time.perf_counter() - s

    corpus = OUT / "corpus"
    inc_dir = OUT / "index-inc"
    shutil.rmtree(corpus, ignore_errors=True)
    shutil.rmtree(inc_dir, ignore_errors=True)
    shutil.copytree(CORPUS, corpus)
    si = Settings(index_dir=inc_dir, corpus_dir=corpus)
    with index_lock(inc_dir):
        build_index(si, full=True, embedder=emb)
    files = sorted((p for p in corpus.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    out["incremental"] = []
    for target in (files[0], files[-1]):  # the smallest and the largest file
        with open(target, "a", encoding="utf-8") as f:
            f.write(APPENDED)
        with index_lock(inc_dir):
            rep = build_index(si, embedder=emb)
        out["incremental"].append({
            "file": target.name, "file_bytes": target.stat().st_size, "how": "in-process",
            "seconds": rep.seconds, "embed_seconds": rep.embed_seconds,
            "chunks_embedded": rep.chunks_embedded, "sentences_embedded": rep.sentences_embedded,
            "chunks_reused": rep.chunks_reused})
    target = files[0]
    with open(target, "a", encoding="utf-8") as f:
        f.write(APPENDED.replace("this one file", "this one file, again"))
    wall, cp = run_cmd([str(VENV_BIN / "rag"), "index", "--corpus", str(corpus),
                        "--index", str(inc_dir)], 600)
    out["incremental"].append({"file": target.name, "file_bytes": target.stat().st_size,
                               "how": "CLI (`rag index`, wall clock)", "seconds": wall,
                               "summary": last_line(cp.stdout)})
    return out


# ---------------------------------------------------------------- 8. converted formats

def formats_throughput() -> dict[str, Any]:
    """Extraction pages/s (PDF) and MB/s (HTML); a 100-page PDF indexed vs the same .txt."""
    from formats import throughput

    return throughput()


# ---------------------------------------------------------------- 6. scale

def scale(sizes: list[int], queries: int, real_10k: bool, deadline: float,
          caps_off: bool = False) -> dict[str, Any]:
    """Build each synthetic size in a child, then load and query it in another child."""
    out: dict[str, Any] = {}
    caps = {10_000: 900, 100_000: 900, 1_000_000: 2100}
    if caps_off:
        caps = {n: 4 * 3600 for n in sizes}
    for n in sizes:
        idx = OUT / f"scale-{n}"
        shutil.rmtree(idx, ignore_errors=True)
        row: dict[str, Any] = {"n": n}
        out[str(n)] = row
        left = deadline - time.perf_counter()
        timeout = min(caps.get(n, 1800), left - 180)
        if timeout < 60:
            row["error"] = (f"not run: {left:.0f} s left of the {BUDGET_S // 60}-minute budget")
            log(f"scale {n}: {row['error']}")
            continue
        vectors = "real" if (n == 10_000 and real_10k) else "synthetic"
        log(f"scale {n}: building ({vectors} vectors, timeout {timeout:.0f} s) ...")
        try:
            s = time.perf_counter()
            run_cmd([str(VENV_BIN / "python"), str(ROOT / "bench" / "synth.py"), "build",
                     "--n", str(n), "--index", str(idx), "--gauss", str(OUT / "gauss.npz"),
                     "--vectors", vectors, "--json", str(OUT / f"scale-{n}-build.json")],
                    timeout)
            row["build_wall_s"] = time.perf_counter() - s
            row["build"] = json.loads((OUT / f"scale-{n}-build.json").read_text())
            log(f"scale {n}: built in {row['build']['seconds']['index_build_total']:.1f} s "
                f"(child wall {row['build_wall_s']:.1f} s); loading and querying ...")
            s = time.perf_counter()
            run_cmd([str(VENV_BIN / "python"), str(ROOT / "bench" / "synth.py"), "query",
                     "--index", str(idx), "--gauss", str(OUT / "gauss.npz"),
                     "--queries", str(queries), "--json", str(OUT / f"scale-{n}-query.json")],
                    max(120.0, min(900.0, deadline - time.perf_counter() - 60)))
            row["query_wall_s"] = time.perf_counter() - s
            row["query"] = json.loads((OUT / f"scale-{n}-query.json").read_text())
            q = row["query"]
            log(f"scale {n}: load {q['load_seconds']:.1f} s, RSS {q['rss_after_load_mib']:.0f} "
                f"MiB, p50 " + ", ".join(f"{m} {q['ask'][m]['p50']:.1f}" for m in MODES) + " ms")
        except subprocess.TimeoutExpired as e:
            row["error"] = f"timed out after {e.timeout:.0f} s (step did not fit the budget)"
            log(f"scale {n}: {row['error']}")
        except Exception as e:  # report and go on with the next size
            row["error"] = f"{type(e).__name__}: {str(e)[-1500:]}"
            log(f"scale {n}: {row['error']}")
        finally:
            if n >= 1_000_000:  # keep the scratch folder small
                shutil.rmtree(idx, ignore_errors=True)
    return out


# ---------------------------------------------------------------- report

def section(results: dict[str, Any], key: str, fn: Callable[[], dict[str, Any]]) -> None:
    """Run one part; on failure keep going and record why."""
    log(f"--- {key} (load average {loadavg()})")
    s = time.perf_counter()
    try:
        results[key] = fn()
    except Exception as e:
        results[key] = {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()}
        log(f"{key} FAILED: {e}")
    results[key]["_seconds"] = time.perf_counter() - s
    results[key]["_loadavg"] = loadavg()


def verdict(ok: bool | None) -> str:
    """PASS / FAIL / n/a."""
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def get(d: Any, *keys: Any) -> Any:
    """Nested lookup that yields None on any missing step."""
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def targets(r: dict[str, Any], quick: bool) -> list[tuple[str, str, str, str]]:
    """(target, measured, verdict, note) rows."""
    rows: list[tuple[str, str, str, str]] = []

    def add(name: str, value: float | None, ok: Callable[[float], bool] | None, fmt: str,
            note: str = "") -> None:
        """A row; ok=None: a figure reported without a target."""
        if value is None:
            rows.append((name, "not measured", "n/a", note))
        else:
            rows.append((name, fmt.format(value), verdict(ok(value) if ok else None), note))

    add("in-process hybrid p50 <= 8 ms (cache off)", get(r, "inprocess", "latency", "hybrid",
                                                         "p50"), lambda v: v <= 8, "{:.2f} ms")
    sp = get(r, "inprocess", "paired", "hybrid")
    add("in-process hybrid >= 3x faster than reference (ST torch; median of per-question "
        "ratios)", sp["median_speedup"] if sp else None, lambda v: v >= 3, "{:.2f}x",
        f"ratio of p50s: {sp['p50_speedup']:.2f}x" if sp else "")
    so = get(r, "inprocess", "paired_onnx", "hybrid")
    add("(no target) in-process hybrid vs the like-for-like ST ONNX reference",
        so["median_speedup"] if so else None, None, "{:.2f}x",
        f"ratio of p50s: {so['p50_speedup']:.2f}x" if so else "")
    ro = get(r, "inprocess", "reader_over_fast")
    add("in-process with the reader p50 <= 3x the fast path's p50 (same run)",
        ro["p50_ratio"] if ro else None, lambda v: v <= 3, "{:.2f}x",
        f"reader p50 {get(r, 'inprocess', 'latency', READER, 'p50'):.2f} ms vs hybrid "
        f"{get(r, 'inprocess', 'latency', 'hybrid', 'p50'):.2f} ms" if ro else "")
    rr = get(r, "http", "reader_runs") or {}
    add("HTTP with the reader >= 40 req/s at c=8", get(rr, "8", "rps"), lambda v: v >= 40,
        "{:.1f} req/s", f"p50 {get(rr, '8', 'latency', 'p50'):.1f} ms, p99 "
        f"{get(rr, '8', 'latency', 'p99'):.1f} ms, {get(rr, '8', 'errors')} errors" if rr else "")
    runs = get(r, "http", "runs") or {}
    add("HTTP /ask p50 <= 15 ms at c=1", get(runs, "1", "latency", "p50"), lambda v: v <= 15,
        "{:.2f} ms")
    add("HTTP >= 100 req/s at c=8", get(runs, "8", "rps"), lambda v: v >= 100, "{:.1f} req/s")
    add("HTTP p99 <= 150 ms at c=8", get(runs, "8", "latency", "p99"), lambda v: v <= 150,
        "{:.1f} ms")
    errs = (sum(x["errors"] for k in ("runs", "httpx_runs", "reader_runs", "reader_httpx_runs")
                for x in (get(r, "http", k) or {}).values()) if runs else None)
    add("HTTP 0 errors (c=1, 8, 32; with the reader c=1, 8)", errs, lambda v: v == 0,
        "{:.0f} errors")
    cold = get(r, "mcp", "median_first_answer_s")  # measured, no target in the issue
    add("(no target) MCP over stdio: cold start to first answer (median, section 7)", cold,
        None, "{:.2f} s", get(r, "mcp", "error") or "`rag mcp` spawned by the SDK's stdio client")
    noop = get(r, "indexing", "noop_cli_s")
    add("no-op re-index <= 2 s (`rag index`, wall clock, median of 3)",
        float(np.median(noop)) if noop else None, lambda v: v <= 2, "{:.2f} s",
        f"in-process {get(r, 'indexing', 'noop_inprocess_s'):.3f} s" if noop else "")
    big = get(r, "scale", "1000000")
    note = "not run (--quick)" if quick and not big else (big.get("error", "") if big else "")
    if get(big, "separate_run") and not note:
        note = "measured in a separate run (`--scale-only 1000000`), see section 6"
    q = get(big, "query")
    for m in MODES:
        add(f"1M chunks: Searcher.ask {m} p50 <= 50 ms", get(q, "ask", m, "p50"),
            lambda v: v <= 50, "{:.1f} ms", note)
    add("1M chunks: RSS after load <= 4 GB", get(q, "rss_after_load_mib"),
        lambda v: v <= 4096, "{:.0f} MiB", note or (
            f"peak during queries {q['peak_rss_mib']:.0f} MiB" if q else ""))
    add("1M chunks: load <= 20 s", get(q, "load_seconds"), lambda v: v <= 20, "{:.1f} s", note)
    add(f"1M chunks: HNSW recall@10 >= 0.95 (efSearch {get(big, 'build', 'recall', 'ef_search')})",
        get(big, "build", "recall", "recall_at_10"), lambda v: v >= 0.95, "{:.3f}", note)
    b = get(big, "build", "seconds", "index_build_total")
    step = (get(big, "build_wall_s") or 0) + (get(big, "query_wall_s") or 0)
    add("(bench's own budget, not an issue target) the whole 1M step within ~15 min",
        step if b else None, lambda v: v <= 900, "{:.0f} s",
        note or (f"rag's index build alone {b:.0f} s" if b else ""))
    return rows


def scale_params(sc: dict[str, Any]) -> str:
    """approximate_threshold / efSearch as the scale children saw them."""
    seen = set()
    for x in sc.values():
        for part in ("build", "query"):
            if get(x, part, "threshold") is not None:
                seen.add(f"{part}: approximate_threshold={x[part]['threshold']:_}, "
                         f"hnsw_ef_search={x[part].get('ef_search')}")
    return "; ".join(sorted(seen)) or "approximate_threshold and efSearch not recorded"


def section_start(L: list[str], title: str, data: dict[str, Any]) -> bool:
    """Append a report section's heading (and its FAILED line); True if there is a result to
    render below it."""
    L.append(f"## {title}\n")
    if "error" in data:
        L.append(f"FAILED: {data['error']}\n")
    return bool(data) and "error" not in data


def _header(L: list[str], r: dict[str, Any], quick: bool, total_s: float) -> None:
    """The title, the run, the machine and the summary table."""
    mi = r["machine"]
    L.append("# Benchmark results\n")
    L.append(f"`.venv/bin/python bench/run.py{' --quick' if quick else ''}` "
             f"({'quick' if quick else 'full'} run), {mi['date']}; the whole run took "
             f"**{total_s / 60:.1f} min**. Scratch output: `bench/out/` (git-ignored).\n")
    L.append("Speed and scale only: no retrieval-quality figure is reported here (the README's "
             "Evaluation section labels each one tuned-on or held-out). Dev gold questions are "
             "used as timing input only, with the query cache off unless a row says cached.\n")
    L.append("## Machine\n")
    L.append(md_table(["what", "value"], [
        ["CPU", mi["cpu"]], ["cores", mi["cores"]], ["RAM", f"{mi['ram_gib']:.1f} GiB"],
        ["kernel", mi["kernel"]],
        *[[k, v] for k, v in mi["versions"].items()],
        ["load average at start (1/5/15 min)", mi["loadavg"]],
        ["load average at end", r.get("loadavg_end", "")],
    ]))
    L.append("\nA small VM: repeated runs of the same step differ by 10-30%, more when anything "
             "else runs; load averages are given per section (with 2 cores, above 2 means "
             "processes queue for CPU). Compare figures taken in one run.\n")
    for note in r.get("notes", []):
        L.append(f"**Note:** {note}\n")
    L.append("## Summary: targets vs measured\n")
    L.append(md_table(["target", "measured", "verdict", "note"], targets(r, quick)))
    L.append("")


def _inprocess(L: list[str], r: dict[str, Any]) -> None:
    """1. In-process query latency, then 2. the reference pipeline beside it."""
    ip = r.get("inprocess", {})
    if section_start(L, "1. In-process query latency (`Searcher.ask`, query cache off)", ip):
        L.append(f"Seed index: the repo corpus ({ip['chunks']} chunks, {ip['sentences']} sentence "
                 f"vectors), freshly built into `bench/out/index` with default Settings (ONNX "
                 f"backend). Questions of `{DEV}` cycled; {ip['warmup']} warm-up rounds, then "
                 f"{ip['queries']} questions per mode, the modes and the reference run in blocks of "
                 f"{BLOCK} consecutive questions (pipelines rotating per block, one untimed call "
                 f"at each block start) so all see the same questions under the same load. "
                 f"`searcher.cache.size = 0`. Load average {ip['loadavg']}.\n")
        rows = []
        for m in [m for m in (*MODES, READER, INT8) if m in ip["parts_p50"]]:
            x = ip["latency"][m]
            pp = ip["parts_p50"][m]
            rows.append([m, x["p50"], x["p95"], x["p99"], x["mean"], pp["embed"], pp["search"],
                         pp["highlight"], pp.get("read", "")])
        for m in MODES:
            x = ip["cached"][m]
            rows.append([f"{m}, cached (cache on, repeated questions)", x["p50"], x["p95"],
                         x["p99"], x["mean"], "", "", "", ""])
        L.append(md_table(["mode", "p50 ms", "p95 ms", "p99 ms", "mean ms", "embed p50",
                           "search p50", "highlight p50", "read p50"], rows))
        if "reader_over_fast" in ip:
            ro = ip["reader_over_fast"]
            L.append(f"\nThe reader ({ip['reader']['fingerprint']}, int8, reading the top "
                     f"{ip['reader']['candidates']} passages) costs {ro['p50_ratio']:.2f}x the fast "
                     f"path's p50 (median per-question ratio {ro['median_ratio']:.2f}x); the modes "
                     "hybrid/dense/lexical are the fast path (`read=False`).\n")
        ov = ip["omp_variant"]
        L.append(f"\nFAISS OpenMP threads, hybrid, {ov['queries']} questions alternating: "
                 f"default ({ov['threads_default']} threads) p50 {ov['default']['p50']:.2f} / "
                 f"p95 {ov['default']['p95']:.2f} ms; `faiss.omp_set_num_threads(1)` p50 "
                 f"{ov['omp1']['p50']:.2f} / p95 {ov['omp1']['p95']:.2f} ms.\n")
        L.append("Profile (cProfile, 100 hybrid questions, top 15 by own time; full listing in "
                 "`bench/out/profile_hybrid.txt`; cProfile adds overhead):\n")
        L.append(md_table(["function", "calls", "own ms / question", "share"],
                          [[p["func"], p["calls"], f"{p['tottime_ms_per_q']:.3f}",
                            f"{p['share'] * 100:.1f}%"] for p in ip["profile_top"]]))
        L.append("")
        _reference(L, ip)


def _reference(L: list[str], ip: dict[str, Any]) -> None:
    """2. The reference pipeline (same run, same questions)."""
    L.append("## 2. Reference pipeline (same run, same questions)\n")
    L.append("Plain sentence-transformers (`encode(q, normalize_embeddings=True)`) + "
             "`faiss.IndexFlatIP` over the generation's chunk vectors, top 5, on two "
             "backends: its default torch backend (`SentenceTransformer(model_folder, "
             "device='cpu')`, model load "
             f"{ip['reference_model_load_s']:.1f} s), and, like for like with ours, its "
             "ONNX backend over the same float32 ONNX export rag uses (`backend='onnx'`, "
             "model load "
             f"{ip.get('reference_onnx_model_load_s', float('nan')):.1f} s). Ours adds "
             "int8 questions, the direct session call and everything else in section 1.\n")
    rows = []
    for rname, label in (("reference", "reference (ST torch + flat IP)"),
                         ("reference_onnx", "reference (ST ONNX + flat IP)")):
        if rname in ip["latency"]:
            x = ip["latency"][rname]
            rp = ip["reference_parts_p50"][rname]
            rows.append([label, x["p50"], x["p95"], x["p99"], x["mean"], rp["encode"],
                         rp["search"]])
    L.append(md_table(["pipeline", "p50 ms", "p95 ms", "p99 ms", "mean ms", "encode p50",
                       "search p50"], rows))
    L.append("")
    for key, label in (("paired", "ST torch"), ("paired_onnx", "ST ONNX")):
        if key not in ip:
            continue
        L.append(f"Against the {label} reference:\n")
        L.append(md_table(["ours (mode)", "median per-question ours/ref", "ratio of p50s "
                           "ours/ref", "speed-up (median of ref/ours)", "speed-up (p50s)"],
                          [[m, ip[key][m]["median_ratio_ours_over_ref"],
                            ip[key][m]["p50_ratio_ours_over_ref"],
                            f"{ip[key][m]['median_speedup']:.2f}x",
                            f"{ip[key][m]['p50_speedup']:.2f}x"] for m in ip[key]]))
        L.append("")
    ea = ip.get("embed_alone")
    if ea:
        L.append(f"\nThe models alone, alternating question by question (40 each): torch "
                 f"`encode` p50 {ea['reference encode']['p50']:.1f} / p95 "
                 f"{ea['reference encode']['p95']:.1f} ms; ours (ONNX `embed`) p50 "
                 f"{ea['ours embed']['p50']:.1f} / p95 {ea['ours embed']['p95']:.1f} ms.")
    L.append("\nThe reference does less work: no lexical retrieval, no sentence vectors, no "
             "fusion, no passage text or highlight; ours embeds with ONNX Runtime. Caveat: "
             "torch's two OpenMP threads degrade sharply when the other core is busy, so "
             "the reference's latency swings with the machine's load far more than ours "
             "(in standalone checks on this machine the same torch encode loop measured a "
             "p50 of 35 ms in one run and 140-245 ms in the next ones). The ratio is therefore "
             "load-dependent; on an idle machine expect a smaller ratio than "
             "measured here.\n")


def _http(L: list[str], r: dict[str, Any]) -> None:
    """3. HTTP."""
    h = r.get("http", {})
    if section_start(L, "3. HTTP (`rag serve` subprocess, POST /ask, hybrid)", h):
        primary = "wrk" if h.get("wrk") else "httpx"
        L.append(f"`rag serve --host 127.0.0.1 --port <free>` over `bench/out/index`, env "
                 f"`RAG_QUERY_CACHE_SIZE=0` (no cache hits), {h['duration_s']:.0f} s per "
                 f"concurrency level, dev questions cycled, closed loop (each client sends its "
                 f"next question when the answer arrives). Load generator for the targets: "
                 f"**{primary}**"
                 + (" (C; `make bench` installs Debian's `wrk`), then the asyncio + httpx client "
                    "of `bench/http_load.py` on the same server as a second opinion: it runs in "
                    "Python on the same 2 cores, so it takes CPU from the server and its figures "
                    "are lower" if primary == "wrk" else
                    " (wrk was not installed; the Python client shares the 2 cores with the "
                    "server)")
                 + f". Server ready after {h['ready_s']:.1f} s.\n")
        rows = []
        for label, runs in (("wrk", h["runs"]), ("httpx", h.get("httpx_runs", {})),
                            ("wrk, read", h.get("reader_runs", {})),
                            ("httpx, read", h.get("reader_httpx_runs", {}))):
            for c, x in runs.items():
                srv_p50 = x.get("server", {}).get("p50", "")
                emb_p50 = x.get("server_embed", {}).get("p50", "")
                gen = x.get("generator", label.split(",")[0])
                rows.append([gen + (" + reader" if "read" in label else ""), c, x["ok"], f"{x['rps']:.1f}",
                             x["latency"]["p50"], x["latency"]["p95"], x["latency"]["p99"],
                             x["errors"], json.dumps(x["error_kinds"]) if x["error_kinds"] else "",
                             srv_p50, emb_p50, x["loadavg_before"]])
        L.append(md_table(["client", "concurrency", "ok", "req/s", "p50 ms", "p95 ms", "p99 ms",
                           "errors", "error kinds", "server ask p50", "server embed p50",
                           "load avg before"], rows))
        L.append("")


def _indexing(L: list[str], r: dict[str, Any]) -> None:
    """4. Indexing."""
    ix = r.get("indexing", {})
    cb = r.get("cold_build", {})
    L.append("## 4. Indexing (repo corpus)\n")
    if "error" in cb:
        L.append(f"Cold build FAILED: {cb['error']}\n")
    if "error" in ix:
        L.append(f"FAILED: {ix['error']}\n")
    if "error" not in cb and "error" not in ix:
        rows = []
        for i, (c, w) in enumerate(zip(cb["cli"], cb["warm"]), 1):
            rows.append([f"cold full build #{i}: `rag index --full` in a new process (model load "
                         "included)", f"{c['wall_s']:.2f} s",
                         c["summary"] + (" (ONNX export already cached)" if cb["onnx_cached"]
                                         else " (includes the one-time ONNX export)"),
                         c["loadavg"]])
            rows.append([f"full build #{i} in-process, model preloaded "
                         "(`build_index(full=True, embedder=...)`)", f"{w['seconds']:.2f} s",
                         f"embedding {w['embed_seconds']:.2f} s of it "
                         f"({w['texts_per_s']:.1f} texts/s)", w["loadavg"]])
        rows += [
            ["model load alone (`load_embedder`, ONNX, in the benchmark process)",
             f"{cb['model_load_s']:.2f} s", "", ""],
            ["no-op re-index: `rag index` in a new process, wall clock (3 runs)",
             " / ".join(f"{x:.2f}" for x in ix["noop_cli_s"]) + " s",
             f"{ix['noop_cli_summary']}; `python -c 'import rag.serve.cli'` alone "
             f"{ix['python_import_cli_s']:.2f} s", ""],
            ["no-op re-index in-process (`build_index`)", f"{ix['noop_inprocess_s']:.3f} s", "",
             ""],
        ]
        for inc in ix["incremental"]:
            detail = inc.get("summary") or (
                f"{inc['chunks_embedded']} chunks + {inc['sentences_embedded']} sentences "
                f"embedded ({inc['embed_seconds']:.2f} s), {inc['chunks_reused']} chunks reused")
            rows.append([f"one file changed ({inc['file']}, {fmt_bytes(inc['file_bytes'])}): "
                         f"{inc['how']}", f"{inc['seconds']:.2f} s", detail, ""])
        L.append(md_table(["step", "time", "detail", "load avg before"], rows))
        w = cb["warm"][-1]
        ce = ix["chunk_embed"]
        L.append(f"\nEmbedding throughput (ONNX backend, batch 32): **{w['texts_per_s']:.1f} "
                 f"texts/s** from IndexReport of the last in-process build (chunks_embedded + "
                 f"sentences_embedded = {w['chunks']} + {w['sentences']} texts over "
                 f"embed_seconds {w['embed_seconds']:.2f} s; sentences are short, so this mixes "
                 f"sizes); chunks alone (embedding_text of each chunk, after a warm-up batch, the seed "
                 f"corpus {CHUNK_EMBED_ROUNDS} times, timed directly): "
                 f"**{ce['chunks_per_s']:.1f} chunks/s** ({ce['chunks']} chunks in "
                 f"{ce['seconds']:.2f} s). Seed index on disk: {fmt_bytes(cb['disk_bytes'])}. "
                 "The CLI and in-process builds differ by more than the model load when other "
                 "processes load the machine: compare the load averages.\n")


def _memory(L: list[str], r: dict[str, Any]) -> None:
    """5. Memory of the server after the HTTP runs."""
    h = r.get("http", {})
    L.append("## 5. Memory\n")
    mem = get(h, "memory")
    if mem:
        L.append(f"`rag serve` with the seed index, after the HTTP runs: peak RSS (VmHWM) "
                 f"**{mem['VmHWM']:.0f} MiB**, current RSS {mem['VmRSS']:.0f} MiB "
                 f"(RSS when ready, before any question: {h['rss_ready_mib']:.0f} MiB).\n")
    else:
        L.append("not measured (the HTTP section failed)\n")


def _scale(L: list[str], r: dict[str, Any]) -> None:
    """6. Scale (synthetic corpora)."""
    sc = r.get("scale", {})
    L.append("## 6. Scale (synthetic corpora)\n")
    gi = r.get("gauss", {})
    L.append("Text: random sentences of the repo corpus's words drawn by their frequency "
             "(40-120 words a chunk, ~12-word sentences, 100 chunks a file); note the corpus "
             f"has only a few thousand distinct words, so posting lists are long. Vectors: "
             f"**synthetic unit vectors**, drawn from a Gaussian fitted to the seed index's "
             f"{gi.get('rows', '?')} real MiniLM chunk + sentence vectors (effective dimension "
             f"{gi.get('effective_dim', float('nan')):.0f}), normalised, unless the row says "
             "\"real\" (the bundled model's embeddings of the synthetic text). Query vectors "
             "in `Searcher.ask` come from a tiny bench embedder drawing from the same Gaussian "
             "(no model time: add the embed time of section 1). `Settings(sentence_vectors="
             "False)` (sentence vectors would multiply memory); otherwise rag's Settings "
             f"defaults at the time of the run ({scale_params(sc)}; flat at or below the "
             "threshold, HNSW M=32 efConstruction=80 above). "
             "Each index is written with rag's own writers (one segment by "
             "`indexing._write_segment`, a generation naming it by `_write_generation`) "
             "in one child process and loaded by the real loader (`Searcher.generation` -> "
             "`open_current`, which sha256-checks every file) in a second child process, so "
             "memory is that size's alone.\n")
    rows = []
    qrows = []
    for n, x in sc.items():
        if not isinstance(x, dict) or n.startswith("_"):
            continue
        if "build" not in x:
            rows.append([f"{int(n):,}", x.get("error", "not run"), "", "", "", "", "", "", ""])
            continue
        b, q = x["build"], x.get("query")
        t = b["seconds"]
        rec = b.get("recall")
        built = [f"{int(n):,}", f"{b['dense_kind']} / {b['vectors']}",
                 (f"{t['index_build_total']:.1f} s (segment {t['segment_write']:.1f}: dense, "
                  f"lexical, sqlite, sha256, fsync; generation {t['generation_write']:.1f})"
                  if "segment_write" in t else
                  f"{t['index_build_total']:.1f} s (dense {t['dense_build']:.1f}, lexical "
                  f"{t['lexical_build']:.1f}, sqlite {t['chunks_db']:.1f}, sha256 "
                  f"{t['seal_manifest']:.1f}, fsync {t['publish_fsync']:.1f})"),
                 fmt_bytes(b["disk_bytes"])]
        if q is None:
            rows.append([*built, x.get("error", "not run"), "", "", f"{b['peak_rss_mib']:.0f} MiB",
                         f"{rec['recall_at_10']:.3f}" if rec else "n/a (flat = exact)"])
            continue
        rss = q["rss_after_load_mib"]
        rows.append([*built, f"{q['load_seconds']:.2f} s (sha256 check "
                     f"{q['validate_seconds_warm']:.2f})",
                     f"{rss:.0f} MiB (+{rss - q['rss_before_load_mib']:.0f})",
                     f"{q['peak_rss_mib']:.0f} MiB", f"{b['peak_rss_mib']:.0f} MiB",
                     f"{rec['recall_at_10']:.3f}" if rec else "n/a (flat = exact)"])
        a = q["ask"]
        qrows.append([f"{int(n):,}", *[f"{a[m]['p50']:.1f} / {a[m]['p95']:.1f}" for m in MODES],
                      f"{q['raw']['dense_index']['p50']:.2f} / {q['raw']['dense_index']['p95']:.2f}",
                      f"{q['raw']['dense_index_omp1']['p50']:.2f} / "
                      f"{q['raw']['dense_index_omp1']['p95']:.2f}",
                      f"{q['raw']['lexical_index']['p50']:.2f} / "
                      f"{q['raw']['lexical_index']['p95']:.2f}",
                      " / ".join(f"{q['ask_parts_p50']['hybrid'][k]:.1f}"
                                 for k in ("embed", "search", "highlight"))])
    L.append(md_table(["chunks", "dense index / vectors", "index build", "on disk", "load",
                       "RSS after load (+ over libs)", "peak RSS (queries)", "build peak RSS",
                       "HNSW recall@10"], rows))
    L.append("")
    L.append(md_table(["chunks", "hybrid p50/p95 ms", "dense p50/p95 ms", "lexical p50/p95 ms",
                       "DenseIndex.search(50) p50/p95", "same, FAISS on 1 OpenMP thread",
                       "LexicalIndex.search(50) p50/p95",
                       "hybrid embed/search/highlight p50"], qrows))
    for n, x in sc.items():
        sep = get(x, "separate_run")
        if sep:
            L.append(f"\nThe {int(n):,} row was measured in a separate run (`bench/run.py "
                     f"--scale-only {n}`, {sep['date']}, load average {sep['loadavg_start']} at "
                     f"its start, {sep['loadavg_end']} at its end) because it did not fit the "
                     f"{BUDGET_S // 60}-minute budget of the main run"
                     + (f" (main run: {sep['main_run_error']})" if sep.get("main_run_error")
                        else "") + ".")
        rec = get(x, "build", "recall")
        if rec:
            L.append(f"\nHNSW at {int(n):,}: recall@10 vs exact search over {rec['queries']} "
                     "queries by efSearch: " + ", ".join(
                         f"{ef}: {v['recall_at_10']:.3f} (p50 {v['p50_ms']:.2f} ms)"
                         for ef, v in rec["by_ef"].items()) + ".")
        if get(x, "build", "embed_chunks_per_s"):
            L.append(f"\nAt {int(n):,} the vectors are real embeddings: "
                     f"{x['build']['embed_chunks_per_s']:.1f} chunks/s, "
                     f"{x['build']['seconds']['vectors']:.0f} s.")
    est = r.get("real_10k_estimate_s")
    if est and all(get(x, "build", "vectors") != "real" for x in sc.values()):
        L.append(f"\nReal embedding of the 10k corpus was not done: at the measured "
                 f"{10_000 / est:.1f} chunks/s it would take ~{est / 60:.1f} min (the run keeps "
                 f"it only under {REAL_10K_MAX_S / 60:.0f} min, to leave the 1M step its time).")
    L.append(f"\nQueries per mode: {r.get('scale_queries')} (dev questions cycled, 20 warm-up), "
             "modes interleaved. `Searcher.ask` runs both retrievers in every mode (the mode "
             "only picks the fusion), so dense and lexical cost about what hybrid costs.\n")


def _mcp(L: list[str], r: dict[str, Any]) -> None:
    """7. MCP over stdio."""
    mc = r.get("mcp", {})
    if section_start(L, "7. MCP over stdio (`rag mcp`)", mc):
        L.append("Cold start to first answer, as a desktop assistant starts rag: the MCP SDK's "
                 "stdio client spawns `rag mcp --corpus corpus --index bench/out/index` (a new "
                 "process each time), sends `initialize`, then `tools/call ask` with a dev "
                 "question. Time from the spawn; the model and the index load in the server's "
                 "background while the handshake is answered, so the first answer includes them."
                 f" Median of {mc['reps']}: handshake **{mc['median_initialize_s']:.2f} s**, first "
                 f"answer **{mc['median_first_answer_s']:.2f} s**.\n")
        L.append(md_table(["run", "handshake s", "first answer s", "ask alone s",
                           "shutdown s", "load avg before"],
                          [[i, x["initialize_s"], x["first_answer_s"], x["ask_s"],
                            x["shutdown_s"], x["loadavg_before"]]
                           for i, x in enumerate(mc["runs"], 1)]))
        L.append("")


def _formats(L: list[str], r: dict[str, Any]) -> None:
    """8. Converted formats."""
    fm = r.get("formats", {})
    if section_start(L, "8. Converted formats (PDF, HTML)", fm):
        L.append("`bench/formats.py`: a generated 100-page PDF (seed text, DejaVu Sans 11 pt) and "
                 "an HTML page; extraction in process, the index built with the real model.\n")
        L.append(md_table(["what", "figure"], [
            ["PDF extraction (text + character boxes)",
             f"{fm['pdf']['pages_per_s']:.0f} pages/s ({fm['pdf']['pages']} pages, "
             f"{fm['pdf']['seconds']:.2f} s)"],
            ["HTML extraction", f"{fm['html']['mb_per_s']:.1f} MB/s ({fm['html']['mb']:.1f} MB)"],
            ["`rag index`, 100-page PDF", f"{fm['index_pdf']['seconds']:.1f} s "
             f"({fm['index_pdf']['chunks']} chunks, embedding {fm['index_pdf']['embed_seconds']:.1f} s)"],
            ["`rag index`, the same text as .txt", f"{fm['index_txt']['seconds']:.1f} s "
             f"({fm['index_txt']['chunks']} chunks, embedding {fm['index_txt']['embed_seconds']:.1f} s)"],
        ]))
        L.append("")


def _times_and_failures(L: list[str], r: dict[str, Any]) -> None:
    """Section times, and the traceback of each failed section."""
    L.append("## Section times\n")
    L.append(md_table(["section", "seconds", "load average after"],
                      [[k, f"{v.get('_seconds', 0):.0f}", v.get("_loadavg", "")]
                       for k, v in r.items() if isinstance(v, dict) and "_seconds" in v]))
    errs = [(k, v["trace"]) for k, v in r.items() if isinstance(v, dict) and "trace" in v]
    for k, tr in errs:
        L.append(f"\n### {k} failed\n\n```\n{tr[-3000:]}\n```")


def report(r: dict[str, Any], quick: bool, total_s: float) -> str:
    """RESULTS.md, one function per section."""
    L: list[str] = []
    _header(L, r, quick, total_s)
    for section in (_inprocess, _http, _indexing, _memory, _scale, _mcp, _formats,
                    _times_and_failures):
        section(L, r)
    return "\n".join(L) + "\n"


def main() -> int:
    """Run every section, write RESULTS.md, print it."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true",
                   help="shorter runs; scale 10k and 100k only (no 1M)")
    p.add_argument("--report-only", action="store_true",
                   help="re-render RESULTS.md from bench/out/results.json of the last run")
    p.add_argument("--scale-only", type=int, metavar="N",
                   help="run only the scale step for N chunks (no time budget) and merge it "
                        "into bench/out/results.json of the last run, e.g. when 1M did not fit")
    p.add_argument("--keep-1m", action="store_true",
                   help="full run without the 1M step; the 1M row of the previous "
                        "bench/out/results.json (a `--scale-only 1000000` run) is carried over "
                        "and marked with its own date")
    args = p.parse_args()
    if args.scale_only:
        r = json.loads((OUT / "results.json").read_text())
        la = loadavg()
        step = scale([args.scale_only], r.get("scale_queries") or 200, False,
                     time.perf_counter() + 4 * 3600, caps_off=True)
        row = step[str(args.scale_only)]
        before = get(r, "scale", str(args.scale_only), "error")
        row["separate_run"] = {"loadavg_start": la, "loadavg_end": loadavg(),
                               "date": machine_info()["date"], "main_run_error": before}
        r.setdefault("scale", {})[str(args.scale_only)] = row
        (OUT / "results.json").write_text(json.dumps(r, indent=1, default=str))
        RESULTS.write_text(report(r, r["quick"], r["total_s"]))
        print(RESULTS.read_text())
        return 0
    if args.report_only:
        r = json.loads((OUT / "results.json").read_text())
        RESULTS.write_text(report(r, r["quick"], r["total_s"]))
        print(RESULTS.read_text())
        return 0
    quick = args.quick
    OUT.mkdir(parents=True, exist_ok=True)
    kept_1m = None
    if args.keep_1m and (OUT / "results.json").exists():
        kept_1m = get(json.loads((OUT / "results.json").read_text()), "scale", "1000000")
    deadline = T0 + BUDGET_S
    r: dict[str, Any] = {"machine": machine_info()}
    log(f"machine: {r['machine']['cpu']}, {r['machine']['cores']} cores, load average "
        f"{r['machine']['loadavg']}")
    n_q = 100 if quick else 300
    section(r, "cold_build", lambda: cold_build(1))
    if "error" in r["cold_build"]:
        log("no seed index: stopping")
    else:
        section(r, "gauss", save_gauss)
        section(r, "inprocess", lambda: inprocess(n_q, 20))
        section(r, "http", lambda: http(5.0 if quick else 15.0))
        section(r, "mcp", lambda: mcp_cold_start(3))
        section(r, "indexing", indexing)
        section(r, "formats", formats_throughput)
        chunks_per_s = get(r, "indexing", "chunk_embed", "chunks_per_s") or 0
        # Real embedding of 10k only if it is cheap: the 1M step needs the time budget.
        real_10k = (not quick) and chunks_per_s > 0 and 10_000 / chunks_per_s < REAL_10K_MAX_S
        r["real_10k_estimate_s"] = 10_000 / chunks_per_s if chunks_per_s else None
        r["scale_queries"] = 100 if quick else 200
        sizes = [10_000, 100_000] + ([] if quick or args.keep_1m else [1_000_000])
        section(r, "scale", lambda: scale(sizes, r["scale_queries"], real_10k, deadline))
        if kept_1m and "error" not in r["scale"]:
            r["scale"]["1000000"] = kept_1m
    r["loadavg_end"] = loadavg()
    total = time.perf_counter() - T0
    r["quick"], r["total_s"] = quick, total
    (OUT / "results.json").write_text(json.dumps(r, indent=1, default=str))
    text = report(r, quick, total)
    RESULTS.write_text(text)
    print("\n" + text)
    log(f"wrote {RESULTS.relative_to(ROOT)} ({total / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
