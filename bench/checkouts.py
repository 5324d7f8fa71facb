"""Two checkouts of rag compared on the fast path, interleaved in one run (issue 22: "same
speed"): per round and per checkout (the order alternates), a child process started in that
checkout's folder times

- in process: ``Searcher.ask`` and ``POST /ask`` through the app (FastAPI's TestClient: routes,
  service, serialiser), every gold question once each, query cache off, ``read: false``;
- over HTTP: a real ``rag serve`` of that checkout on 127.0.0.1, 8 concurrent clients for
  ``--seconds``, query cache off (bench/http_load.py).

    .venv/bin/python bench/checkouts.py OLD NEW --corpus ../shared/corpus --index DIR \\
        --gold ../shared/gold/dev.jsonl eval/gold.jsonl [--rounds 3] [--seconds 15]

Both checkouts read the same index. Prints each round and the medians, and NEW/OLD ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import loadavg, machine_info  # noqa: E402
from http_load import run_load, start_server  # noqa: E402

CHILD = r"""
import json, statistics, sys, time
from pathlib import Path
sys.path.insert(0, ".")
from fastapi.testclient import TestClient
from rag.config import Settings
try:  # the layout since issue 22's folders; before it, flat modules
    from rag.search.searcher import Searcher
    from rag.serve.http import create_app
except ImportError:
    from rag.search import Searcher
    from rag.api import create_app

corpus, index, qs = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
s = Settings(corpus_dir=corpus, index_dir=index, query_cache_size=0, read=False)
searcher = Searcher(s)
searcher.ask("warm up", 5)
t = []
for q in qs:
    a = time.perf_counter()
    searcher.ask(q, 5)
    t.append((time.perf_counter() - a) * 1000)
with TestClient(create_app(s, searcher=searcher, watch=False)) as c:
    c.post("/ask", json={"question": "warm up", "read": False})
    h = []
    for q in qs:
        a = time.perf_counter()
        r = c.post("/ask", json={"question": q, "read": False})
        h.append((time.perf_counter() - a) * 1000)
        assert r.status_code == 200, r.text
print("RESULT " + json.dumps({"searcher_p50_ms": statistics.median(t),
                              "app_p50_ms": statistics.median(h)}))
"""


def in_process(tree: Path, corpus: Path, index: Path, qs: list[str]) -> dict[str, float]:
    """p50s of one child process started in ``tree``."""
    out = subprocess.run([sys.executable, "-c", CHILD, str(corpus), str(index), json.dumps(qs)],
                         cwd=tree, capture_output=True, text=True, timeout=900)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"{tree}: {out.stderr[-2000:]}")
    return json.loads(line[7:])  # type: ignore[no-any-return]


def over_http(tree: Path, corpus: Path, index: Path, qs: list[str], seconds: float
              ) -> dict[str, Any]:
    """Requests a second at 8 clients against ``tree``'s own `rag serve`."""
    import os

    log = Path("/tmp") / f"checkouts-{tree.name}.log"
    env = {"RAG_QUERY_CACHE_SIZE": "0", "RAG_READ": "0", "PYTHONPATH": str(tree)}
    cli = "rag.serve.cli" if (tree / "rag" / "serve" / "cli.py").exists() else "rag.cli"
    old_cwd = os.getcwd()
    os.chdir(tree)
    try:
        srv = start_server(index, corpus, log, env, command=[sys.executable, "-m", cli])
    finally:
        os.chdir(old_cwd)
    try:
        run_load(srv.url, qs[:20], 8, 2.0, mode="hybrid", read=False)  # warm-up
        got = run_load(srv.url, qs, 8, seconds, mode="hybrid", read=False).summary()
    finally:
        srv.stop()
    return {"rps": got["rps"], "errors": got["errors"], "p50_ms": got["latency"]["p50"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--gold", type=Path, nargs="+", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=15.0)
    args = ap.parse_args()
    qs = [json.loads(ln)["question"] for g in args.gold for ln in g.read_text().splitlines()
          if ln.strip()]
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    corpus, index = args.corpus.resolve(), args.index.resolve()
    print(json.dumps({"machine": machine_info(), "load_start": loadavg(), "questions": len(qs),
                      "trees": {k: str(v) for k, v in trees.items()}}))
    rows: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
    for r in range(args.rounds):
        for name in (("old", "new") if r % 2 == 0 else ("new", "old")):
            row: dict[str, Any] = in_process(trees[name], corpus, index, qs)
            row.update(over_http(trees[name], corpus, index, qs, args.seconds))
            rows[name].append(row)
            print(json.dumps({"round": r + 1, "tree": name, **row}), flush=True)
    med = {n: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for n, rs in rows.items()}
    print(json.dumps({"median": med, "load_end": loadavg(),
                      "new_over_old": {k: med["new"][k] / med["old"][k]
                                       for k in ("searcher_p50_ms", "app_p50_ms", "rps")
                                       if med["old"][k]}}, indent=1))


if __name__ == "__main__":
    main()
