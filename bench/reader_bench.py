"""The reader's latency beside the fast path's, in one run: in process (p50 over questions
the service has not seen, query cache off) and over HTTP (a real `rag serve`, 8 concurrent
clients, cache off), on an index of the caller's choice (default: the SQuAD validation
articles converted by `rag convert-squad`).

    .venv/bin/python bench/reader_bench.py --corpus DIR --index DIR --gold GOLD.jsonl
        [--questions 300] [--seconds 15] [--json OUT]

Both paths alternate in blocks of 20 questions so they share the machine's load.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import loadavg, machine_info, pcts  # noqa: E402
from http_load import run_load, start_server  # noqa: E402

BLOCK = 20


def questions(gold: Path, n: int) -> list[str]:
    """The first ``n`` distinct questions of a gold file."""
    seen: dict[str, None] = {}
    for line in gold.read_text().splitlines():
        if line.strip():
            seen.setdefault(json.loads(line)["question"], None)
    return list(seen)[:n]


def inprocess(corpus: Path, index: Path, qs: list[str]) -> dict[str, Any]:
    """p50 of the fast path and the reader, alternating blocks, every question asked once
    by each path (a path never sees a question twice: the cache is off)."""
    from rag import Searcher, Settings

    s = Searcher(Settings(corpus_dir=corpus, index_dir=index, query_cache_size=0))
    for q in qs[:5]:  # warm-up: model loads, first ONNX runs (not timed)
        s.ask(q, 5, "hybrid", read=False)
        s.ask(q, 5, "hybrid", read=True)
    lat: dict[str, list[float]] = {"fast": [], "reader": []}
    parts: dict[str, list[float]] = {"read": [], "embed": [], "search": [], "highlight": []}
    timed = qs[5:]
    for b0 in range(0, len(timed), BLOCK):
        order = ("fast", "reader") if (b0 // BLOCK) % 2 == 0 else ("reader", "fast")
        for path in order:
            for q in timed[b0:b0 + BLOCK]:
                t = time.perf_counter()
                a = s.ask(q, 5, "hybrid", read=path == "reader")
                lat[path].append(1000 * (time.perf_counter() - t))
                if path == "reader":
                    for k in parts:
                        parts[k].append(a.timings_ms.get(k, 0.0))
    out = {k: pcts(v) for k, v in lat.items()}
    out["ratio_p50"] = out["reader"]["p50"] / out["fast"]["p50"]
    out["reader_parts_p50"] = {k: pcts(v)["p50"] for k, v in parts.items()}
    out["reader"]["fingerprint"] = s.reader_fingerprint
    return out


def http(corpus: Path, index: Path, qs: list[str], seconds: float, log: Path
         ) -> dict[str, Any]:
    """A real server at 8 concurrent clients (httpx), fast path then reader."""
    srv = start_server(index, corpus, log, {"RAG_QUERY_CACHE_SIZE": "0"})
    out: dict[str, Any] = {"ready_s": srv.started_s}
    try:
        run_load(srv.url, qs, 2, 5.0, max_requests=20, read=True)  # warm-up
        for read in (False, True):
            r = run_load(srv.url, qs, 8, seconds, read=read).summary()
            r["loadavg_before"] = loadavg()
            out["reader" if read else "fast"] = r
    finally:
        srv.stop()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--gold", type=Path, required=True)
    ap.add_argument("--questions", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    qs = questions(args.gold, args.questions + 5)
    result = {"machine": machine_info(), "loadavg_start": loadavg(),
              "inprocess": inprocess(args.corpus, args.index, qs)}
    log = (args.json.parent if args.json else Path("/tmp")) / "reader-bench-server.log"
    result["http"] = http(args.corpus, args.index, questions(args.gold, 10**6), args.seconds,
                          log)
    result["loadavg_end"] = loadavg()
    text = json.dumps(result, indent=1, default=str)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
