"""What the request middleware (request id, metrics, one log line) costs /ask, in process.

Two apps over one Searcher (the real model, the real corpus, no query cache so every
question is embedded): the service as built, and the same app with the ObserveRequests
middleware removed. Rounds alternate between them so machine noise falls on both; the
log lines go to /dev/null through the real formatter.

    .venv/bin/python bench/observe_overhead.py [--rounds 20] [--per-round 40]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import pcts


def middleware_cpu_us(n: int = 20_000) -> tuple[float, float]:
    """CPU microseconds per call (this thread's CPU time, so other processes' load does not
    count) of a trivial ASGI app, bare and behind ObserveRequests; best of 5 runs each."""
    import asyncio

    from rag.serve import logs
    from rag.serve.metrics import Metrics, ObserveRequests

    timings = {"embed": 6.1, "search": 2.2, "highlight": 0.8, "total": 9.1}

    async def app(scope: object, receive: object, send: object) -> None:
        ctx = logs.current()
        if ctx is not None:  # what the /ask handler tells the middleware
            ctx.mode, ctx.question, ctx.timings_ms = "hybrid", "a question", timings
        await send({"type": "http.response.start", "status": 200,  # type: ignore[operator]
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{}"})  # type: ignore[operator]

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: object) -> None:
        return None

    scope = {"type": "http", "method": "POST", "path": "/ask",
             "headers": [(b"x-request-id", b"bench-1"), (b"content-type", b"application/json")]}
    observed = ObserveRequests(app, Metrics())

    async def run(target: object) -> float:
        t0 = time.thread_time()
        for _ in range(n):
            await target(dict(scope), receive, send)  # type: ignore[operator]
        return (time.thread_time() - t0) / n * 1e6

    best = {"bare": float("inf"), "observed": float("inf")}
    for _ in range(5):
        best["bare"] = min(best["bare"], asyncio.run(run(app)))
        best["observed"] = min(best["observed"], asyncio.run(run(observed)))
    return best["bare"], best["observed"]


def main() -> None:
    """Print p50/mean of both variants and their difference."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--per-round", type=int, default=40)
    ap.add_argument("--micro-only", action="store_true")
    args = ap.parse_args()
    from rag.serve import logs as _logs

    _logs.configure("json", stream=open("/dev/null", "w"))  # noqa: SIM115
    bare_us, obs_us = middleware_cpu_us()
    print(f"middleware CPU per request: bare app {bare_us:.1f} us, behind ObserveRequests "
          f"{obs_us:.1f} us: +{obs_us - bare_us:.1f} us (thread CPU time, best of 5)")
    if args.micro_only:
        return

    from fastapi.testclient import TestClient

    from rag.config import Settings
    from rag.indexing.build import build_index
    from rag.indexing.store import index_lock
    from rag.search.searcher import Searcher
    from rag.serve import logs
    from rag.serve.http import create_app
    from rag.serve.metrics import ObserveRequests

    root = Path(__file__).resolve().parents[1]
    logs.configure("json", stream=open("/dev/null", "w"))  # noqa: SIM115
    questions = [json.loads(x)["question"] for x in
                 (root / "eval" / "gold.jsonl").read_text().splitlines() if x.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(corpus_dir=root / "corpus", index_dir=Path(tmp) / "index",
                            query_cache_size=0)
        with index_lock(settings.index_dir):
            build_index(settings)
        searcher = Searcher(settings)
        apps = {"observed": create_app(settings, searcher, watch=False),
                "bare": create_app(settings, searcher, watch=False)}
        bare = apps["bare"]
        bare.user_middleware = [m for m in bare.user_middleware if m.cls is not ObserveRequests]
        clients = {k: TestClient(a).__enter__() for k, a in apps.items()}
        times: dict[str, list[float]] = {k: [] for k in apps}
        for c in clients.values():  # warm both paths
            for q in questions[:10]:
                c.post("/ask", json={"question": q})
        i = 0
        for r in range(args.rounds):
            for name in (("observed", "bare") if r % 2 else ("bare", "observed")):
                for _ in range(args.per_round):
                    q = questions[i % len(questions)]
                    i += 1
                    t0 = time.perf_counter()
                    resp = clients[name].post("/ask", json={"question": q})
                    times[name].append((time.perf_counter() - t0) * 1000)
                    assert resp.status_code == 200
        assert "x-request-id" in resp.headers or name == "bare"
        for name, xs in times.items():
            p = pcts(xs)
            print(f"{name:9s} n={p['n']} p50 {p['p50']:.2f} ms  mean {p['mean']:.2f} ms  "
                  f"p95 {p['p95']:.2f} ms")
        d50 = pcts(times["observed"])["p50"] - pcts(times["bare"])["p50"]
        dmean = pcts(times["observed"])["mean"] - pcts(times["bare"])["mean"]
        print(f"/ask difference: p50 {d50:+.3f} ms, mean {dmean:+.3f} ms")
        # the middleware's own cost, on a route that does nothing (GET /healthz)
        tiny: dict[str, list[float]] = {k: [] for k in apps}
        for r in range(args.rounds):
            for name in (("observed", "bare") if r % 2 else ("bare", "observed")):
                for _ in range(args.per_round * 10):
                    t0 = time.perf_counter()
                    clients[name].get("/healthz")
                    tiny[name].append((time.perf_counter() - t0) * 1e6)
        for name, xs in tiny.items():
            p = pcts(xs)
            print(f"/healthz {name:9s} n={p['n']} p50 {p['p50']:.0f} us  mean {p['mean']:.0f} us")
        print(f"middleware cost (p50 of /healthz): "
              f"{pcts(tiny['observed'])['p50'] - pcts(tiny['bare'])['p50']:+.0f} us a request")


if __name__ == "__main__":
    main()
