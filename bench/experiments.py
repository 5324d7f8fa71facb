"""What-if measurements behind the suggestions in RESULTS.md (not part of `make bench`).

    .venv/bin/python bench/experiments.py

Loads the model the way rag does (sentence-transformers, ONNX backend, cached export) with
different ONNX Runtime session options, and an int8 dynamically quantised copy; times FAISS
flat search by OpenMP threads and index type. Nothing in rag/ is changed: the variants are
built here. Writes bench/out/experiments.json and .md.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT, loadavg, md_table, pcts  # noqa: E402
from synth import dev_questions, load_gauss, sample_unit  # noqa: E402

SEED_INDEX = OUT / "index"


def st_model(folder: Path, file_name: str, spin: bool = True, threads: int = 0,
             provider: str | None = None) -> Any:
    """A SentenceTransformer on ONNX with chosen session options."""
    import onnxruntime as ort
    from sentence_transformers import SentenceTransformer

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    if not spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    kw: dict[str, Any] = {"file_name": file_name, "session_options": so}
    if provider:
        kw["provider"] = provider
    return SentenceTransformer(str(folder), device="cpu", backend="onnx", model_kwargs=kw)


def latency(fn: Callable[[], Any], n: int = 60) -> dict[str, float]:
    """p50/p95 of fn after a short warm-up."""
    for _ in range(5):
        fn()
    xs = []
    for _ in range(n):
        s = time.perf_counter()
        fn()
        xs.append((time.perf_counter() - s) * 1000)
    return pcts(xs)


def throughput(fn: Callable[[], Any], workers: int, lock: bool, seconds: float = 4.0) -> float:
    """Calls per second from `workers` threads, serialised by a lock (as rag does) or not."""
    gate = threading.Lock()
    count = [0]
    end = time.perf_counter() + seconds

    def work() -> None:
        while time.perf_counter() < end:
            if lock:
                with gate:
                    fn()
            else:
                fn()
            count[0] += 1

    ts = [threading.Thread(target=work) for _ in range(workers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return count[0] / seconds


def onnx_variants(rounds: int = 2) -> dict[str, Any]:
    """Single-question latency and concurrent throughput per session-option variant."""
    from rag.config import Settings
    from rag.indexing.embedding import model_fingerprint, resolve_model

    s = Settings()
    folder = s.onnx_cache_dir / model_fingerprint(resolve_model(s.model))[:16]
    q = dev_questions()[0]
    variants = {
        "rag today (default session: all cores, spinning; first provider)":
            dict(spin=True, threads=0),
        "CPUExecutionProvider only": dict(spin=True, threads=0, provider="CPUExecutionProvider"),
        "allow_spinning=0": dict(spin=False, threads=0),
        "intra_op_num_threads=1": dict(spin=True, threads=1),
        "intra_op_num_threads=1, allow_spinning=0": dict(spin=False, threads=1),
    }
    models = {k: st_model(folder, "onnx/model.onnx", **v) for k, v in variants.items()}  # type: ignore[arg-type]
    out: dict[str, Any] = {k: {"single_p50": [], "single_p95": [], "qps_8_lock": [],
                               "qps_2_nolock": []} for k in models}
    for r in range(rounds):
        keys = list(models)
        keys = keys[r % len(keys):] + keys[:r % len(keys)]
        for k in keys:
            m = models[k]

            def enc(m: Any = m) -> Any:
                return m.encode([q], normalize_embeddings=True, show_progress_bar=False)

            lat = latency(enc)
            out[k]["single_p50"].append(lat["p50"])
            out[k]["single_p95"].append(lat["p95"])
            out[k]["qps_8_lock"].append(throughput(enc, 8, True))
            out[k]["qps_2_nolock"].append(throughput(enc, 2, False))
    sess = next(iter(models.values()))[0].auto_model.model
    return {"variants": out, "providers_today": sess.get_providers(), "loadavg": loadavg()}


def int8(n_chunks_time: int = 64) -> dict[str, Any]:
    """Dynamic int8 quantisation (sentence-transformers' own exporter): speed and agreement."""
    from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model

    from rag.config import Settings
    from rag.indexing.embedding import model_fingerprint, resolve_model
    from rag.indexing.generation import open_current
    from rag.text.chunking import embedding_text

    s = Settings()
    src = s.onnx_cache_dir / model_fingerprint(resolve_model(s.model))[:16]
    dst = OUT / "onnx-int8"
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    fp32 = SentenceTransformer(str(dst), device="cpu", backend="onnx",
                               model_kwargs={"file_name": "onnx/model.onnx"})
    export_dynamic_quantized_onnx_model(fp32, "avx512_vnni", str(dst))
    q8 = SentenceTransformer(str(dst), device="cpu", backend="onnx",
                             model_kwargs={"file_name": "onnx/model_qint8_avx512_vnni.onnx"})
    gen = open_current(SEED_INDEX)
    chunks = [embedding_text(c) for c in gen.chunks(list(range(gen.size)))]
    qs = dev_questions()
    res: dict[str, Any] = {}
    for name, m in (("fp32", fp32), ("int8", q8)):
        res[name] = {"single_q": latency(lambda m=m: m.encode([qs[0]], show_progress_bar=False))}
        t = time.perf_counter()
        m.encode(chunks[:n_chunks_time], batch_size=32, show_progress_bar=False)
        res[name]["chunks_per_s"] = n_chunks_time / (time.perf_counter() - t)
    a = fp32.encode(chunks, normalize_embeddings=True, batch_size=32, show_progress_bar=False)
    b = q8.encode(chunks, normalize_embeddings=True, batch_size=32, show_progress_bar=False)
    qa = fp32.encode(qs, normalize_embeddings=True, show_progress_bar=False)
    qb = q8.encode(qs, normalize_embeddings=True, show_progress_bar=False)
    cos = (a * b).sum(1)
    top_a = np.argsort(-(qa @ a.T), axis=1)[:, :5]
    top_b = np.argsort(-(qb @ b.T), axis=1)[:, :5]
    overlap = np.mean([len(set(x) & set(y)) / 5 for x, y in zip(top_a, top_b)])
    top1 = float(np.mean(top_a[:, 0] == top_b[:, 0]))
    res["agreement"] = {"chunk_cosine_mean": float(cos.mean()), "chunk_cosine_min": float(cos.min()),
                        "dev_top5_overlap": float(overlap), "dev_top1_same": top1,
                        "dev_questions": len(qs)}
    res["loadavg"] = loadavg()
    gen.close()
    return res


def faiss_variants(sizes: tuple[int, ...] = (10_000, 100_000, 200_000)) -> dict[str, Any]:
    """One query, k=50: flat by OpenMP threads; 8-bit scalar quantiser flat; HNSW."""
    import faiss

    mu, lower = load_gauss(OUT / "gauss.npz")
    rng = np.random.default_rng(1)
    default = faiss.omp_get_max_threads()
    out: dict[str, Any] = {}
    for n in sizes:
        x = sample_unit(mu, lower, n, rng)
        qs = sample_unit(mu, lower, 60, rng)
        flat = faiss.IndexFlatIP(x.shape[1])
        flat.add(x)
        sq8 = faiss.IndexScalarQuantizer(x.shape[1], faiss.ScalarQuantizer.QT_8bit,
                                         faiss.METRIC_INNER_PRODUCT)
        sq8.train(x)
        sq8.add(x)
        row: dict[str, Any] = {}
        for name, idx, threads in (("flat, default threads", flat, default),
                                   ("flat, 1 thread", flat, 1),
                                   ("SQ8 flat, 1 thread", sq8, 1)):
            faiss.omp_set_num_threads(threads)
            it = iter(qs)
            row[name] = latency(lambda idx=idx, it=it: idx.search(next(it)[None, :], 50), n=50)
        _, exact = flat.search(qs, 10)
        _, approx = sq8.search(qs, 10)
        row["SQ8 recall@10"] = float(np.mean([len(set(a) & set(b)) / 10
                                              for a, b in zip(exact, approx)]))
        faiss.omp_set_num_threads(default)
        out[str(n)] = row
    return out


def ivf(n: int = 1_000_000, nlist: int = 2048, train: int = 80_000) -> dict[str, Any]:
    """An IVF-flat alternative to HNSW at 1M synthetic vectors: build time, recall, latency."""
    import faiss

    mu, lower = load_gauss(OUT / "gauss.npz")
    rng = np.random.default_rng(2)
    x = sample_unit(mu, lower, n, rng)
    qs = sample_unit(mu, lower, 200, rng)
    s = time.perf_counter()
    _, exact = faiss.knn(qs, x, 10, metric=faiss.METRIC_INNER_PRODUCT)
    out: dict[str, Any] = {"n": n, "nlist": nlist, "train_rows": train,
                           "exact_seconds": time.perf_counter() - s, "loadavg": loadavg()}
    quant = faiss.IndexFlatIP(x.shape[1])
    index = faiss.IndexIVFFlat(quant, x.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    s = time.perf_counter()
    index.train(x[rng.choice(n, train, replace=False)])
    out["train_seconds"] = time.perf_counter() - s
    s = time.perf_counter()
    index.add(x)
    out["add_seconds"] = time.perf_counter() - s
    faiss.omp_set_num_threads(1)
    out["by_nprobe"] = {}
    for nprobe in (32, 64, 128, 192, 256, 384, 512):
        if nprobe > nlist:
            continue
        index.nprobe = nprobe
        lat, rec = [], []
        for i, q in enumerate(qs):
            t = time.perf_counter()
            _, got = index.search(q[None, :], 10)
            lat.append((time.perf_counter() - t) * 1000)
            rec.append(len(set(got[0].tolist()) & set(exact[i].tolist())) / 10)
        out["by_nprobe"][str(nprobe)] = {"recall_at_10": float(np.mean(rec)),
                                         "p50_ms": pcts(lat)["p50"], "p95_ms": pcts(lat)["p95"]}
    return out


def main() -> int:
    """Run the what-ifs and write bench/out/experiments.{json,md}."""
    if len(sys.argv) > 1 and sys.argv[1] == "ivf":  # the 1M IVF check alone (~5 min a nlist)
        nlists = [int(x) for x in sys.argv[2:]] or [2048]
        r = {str(nl): ivf(nlist=nl, train=max(80_000, 40 * nl)) for nl in nlists}
        (OUT / "experiments-ivf.json").write_text(json.dumps(r, indent=1))
        print(json.dumps(r, indent=1))
        return 0
    res: dict[str, Any] = {"loadavg_start": loadavg()}
    for name, fn in (("onnx", onnx_variants), ("int8", int8), ("faiss", faiss_variants)):
        print(f"--- {name} (load average {loadavg()})", flush=True)
        try:
            res[name] = fn()
        except Exception as e:  # keep the others
            res[name] = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(res[name], indent=1, default=str)[:3000], flush=True)
    (OUT / "experiments.json").write_text(json.dumps(res, indent=1, default=str))
    lines = [f"# Experiments (load average at start {res['loadavg_start']})\n"]
    if "variants" in res.get("onnx", {}):
        rows = [[k, " / ".join(f"{x:.1f}" for x in v["single_p50"]),
                 " / ".join(f"{x:.1f}" for x in v["qps_8_lock"]),
                 " / ".join(f"{x:.1f}" for x in v["qps_2_nolock"])]
                for k, v in res["onnx"]["variants"].items()]
        lines.append(md_table(["ONNX session", "single question p50 ms (per round)",
                               "q/s, 8 threads, one lock", "q/s, 2 threads, no lock"], rows))
        lines.append(f"\nproviders today: {res['onnx']['providers_today']}\n")
    if "fp32" in res.get("int8", {}):
        i8 = res["int8"]
        lines.append(md_table(["model", "single question p50 ms", "chunks/s"],
                              [[k, f"{i8[k]['single_q']['p50']:.1f}", f"{i8[k]['chunks_per_s']:.1f}"]
                               for k in ("fp32", "int8")]))
        lines.append(f"\nagreement: {json.dumps(i8['agreement'])}\n")
    if "error" not in res.get("faiss", {"error": 1}):
        rows = []
        for n, row in res["faiss"].items():
            rows.append([n, *[f"{row[k]['p50']:.2f} / {row[k]['p95']:.2f}"
                              for k in ("flat, default threads", "flat, 1 thread",
                                        "SQ8 flat, 1 thread")], f"{row['SQ8 recall@10']:.3f}"])
        lines.append(md_table(["rows", "flat default threads p50/p95", "flat 1 thread",
                               "SQ8 flat 1 thread", "SQ8 recall@10"], rows))
    for k in ("onnx", "int8", "faiss"):
        if "error" in res.get(k, {}):
            lines.append(f"\n{k} failed: {res[k]['error']}")
    (OUT / "experiments.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
