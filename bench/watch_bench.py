"""/ask latency while the folder watcher indexes a 200-file burst, beside the idle latency.

Starts `rag serve --watch` (the real model) on a copy of corpus/, asks the gold questions
one at a time while idle, then drops 200 files into the folder and asks again until the
watcher has published them; prints both p50s and how long the burst took to be served.

    .venv/bin/python bench/watch_bench.py [--files 200] [--idle 60]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import pcts
from tests.serverutil import running_server

ROOT = Path(__file__).resolve().parents[1]


def published(log: Path) -> int:
    """Watcher runs that published a generation, from the server's JSON log."""
    n = 0
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"watch run"' in line and '"published"' in line:
            n += 1
    return n


def main() -> None:
    """Idle p50, p50 during the burst, and the burst's time to be served."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--idle", type=int, default=60, help="questions asked while idle")
    args = ap.parse_args()
    qs = [json.loads(x)["question"] for x in (ROOT / "eval" / "gold.jsonl").read_text()
          .splitlines() if x.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        corpus, index, log = Path(tmp) / "corpus", Path(tmp) / "index", Path(tmp) / "log"
        shutil.copytree(ROOT / "corpus", corpus)
        with running_server(corpus, index, log, ready_timeout_s=900, args=("--watch",),
                            env={"RAG_QUERY_CACHE_SIZE": "0"}) as server:
            client = httpx.Client(base_url=server.url, timeout=120)

            def ask(i: int) -> float:
                t0 = time.perf_counter()
                r = client.post("/ask", json={"question": qs[i % len(qs)]})
                assert r.status_code == 200, r.text
                return (time.perf_counter() - t0) * 1000

            for i in range(10):
                ask(i)  # warm
            idle = [ask(i) for i in range(args.idle)]
            before = published(log)
            t0 = time.monotonic()
            burst = corpus / "burst"
            burst.mkdir()
            for i in range(args.files):
                (burst / f"note-{i:03d}.txt").write_text(
                    f"Field note {i}.\n\nThe survey team logged site {i} on day {i % 30}. "
                    f"Soil samples from plot {i * 3} were sent to the lab.\n")
            busy, i = [], 0
            while published(log) == before and time.monotonic() - t0 < 1800:
                busy.append(ask(i))
                i += 1
            served_s = time.monotonic() - t0
    a, b = pcts(idle), pcts(busy)
    print(f"/ask idle:            n={a['n']} p50 {a['p50']:.1f} ms  p95 {a['p95']:.1f} ms")
    print(f"/ask during a burst:  n={b['n']} p50 {b['p50']:.1f} ms  p95 {b['p95']:.1f} ms")
    print(f"{args.files} files served {served_s:.1f} s after they were written")


if __name__ == "__main__":
    main()
