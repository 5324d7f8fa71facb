"""A real `rag serve` on a free loopback port, and a bounded asyncio httpx load generator."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from common import VENV_BIN, pcts

HOST = "127.0.0.1"  # loopback only


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A `rag serve` child process."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    started_s: float = 0.0

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://{HOST}:{self.port}"

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it lingers (this process only)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout_s)


def start_server(index_dir: Path, corpus_dir: Path, log: Path, env: dict[str, str],
                 ready_timeout_s: float = 180.0, extra_args: Sequence[str] = (),
                 command: Sequence[str] = ()) -> Server:
    """Start `rag serve` (or ``command`` + serve ...) and wait until /readyz answers 200
    (bounded)."""
    port = free_port()
    t0 = time.perf_counter()
    fh = open(log, "wb")
    proc = subprocess.Popen(
        [*(command or [str(VENV_BIN / "rag")]), "serve", "--host", HOST, "--port", str(port),
         "--corpus", str(corpus_dir), "--index", str(index_dir), *extra_args],
        stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **env})
    fh.close()
    srv = Server(proc, port, log)
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"rag serve exited with {proc.returncode}: "
                               f"{log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{srv.url}/readyz", timeout=2.0).status_code == 200:
                srv.started_s = time.perf_counter() - t0
                return srv
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    srv.stop()
    raise RuntimeError(f"rag serve not ready after {ready_timeout_s:.0f} s")


@dataclass
class LoadResult:
    """Latencies and outcomes of one load run."""

    concurrency: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)  # timings_ms.total in the body
    server_embed_ms: list[float] = field(default_factory=list)  # ~0 would mean cache hits
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Percentiles, throughput and errors."""
        ok = len(self.latencies_ms)
        return {"concurrency": self.concurrency, "seconds": self.seconds, "ok": ok,
                "errors": self.errors, "error_kinds": self.error_kinds,
                "rps": ok / self.seconds if self.seconds else 0.0,
                "latency": pcts(self.latencies_ms), "server": pcts(self.server_ms),
                "server_embed": pcts(self.server_embed_ms)}


async def _drive(url: str, questions: Sequence[str], concurrency: int, duration_s: float,
                 max_requests: int, mode: str, read: bool | None = None) -> LoadResult:
    res = LoadResult(concurrency, 0.0)
    counter = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as client:
        start = time.perf_counter()
        deadline = start + duration_s

        async def worker() -> None:
            nonlocal counter
            while time.perf_counter() < deadline and counter < max_requests:
                q = questions[counter % len(questions)]
                counter += 1
                s = time.perf_counter()
                try:
                    r = await client.post("/ask", json=body(q, mode, read))
                    el = (time.perf_counter() - s) * 1000
                    if r.status_code == 200:
                        res.latencies_ms.append(el)
                        tm = r.json()["timings_ms"]
                        res.server_ms.append(float(tm["total"]))
                        res.server_embed_ms.append(float(tm["embed"]))
                    else:
                        res.errors += 1
                        k = f"HTTP {r.status_code}"
                        res.error_kinds[k] = res.error_kinds.get(k, 0) + 1
                except (httpx.HTTPError, ValueError, KeyError) as e:
                    res.errors += 1
                    k = type(e).__name__
                    res.error_kinds[k] = res.error_kinds.get(k, 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        res.seconds = time.perf_counter() - start
    return res


def body(question: str, mode: str, read: bool | None) -> dict[str, Any]:
    """A POST /ask body (``read`` left out when None: the server's default)."""
    b: dict[str, Any] = {"question": question, "top_k": 5, "mode": mode}
    if read is not None:
        b["read"] = read
    return b


def run_load(url: str, questions: Sequence[str], concurrency: int, duration_s: float,
             max_requests: int = 100_000, mode: str = "hybrid", read: bool | None = None
             ) -> LoadResult:
    """POST /ask from `concurrency` workers for duration_s (and at most max_requests)."""
    return asyncio.run(_drive(url, questions, concurrency, duration_s, max_requests, mode,
                              read))


# ---------------------------------------------------------------- wrk

WRK_LUA = """
local bodies = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("POST", "/ask", {["Content-Type"] = "application/json"},
                    bodies[(i %% #bodies) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\\"requests\\": %%d, \\"seconds\\": %%.6f, \\"p50\\": %%.3f, \\"p95\\": %%.3f, "
    .. "\\"p99\\": %%.3f, \\"max\\": %%.3f, \\"non2xx\\": %%d, \\"socket_errors\\": %%d}\\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def wrk_available() -> bool:
    """wrk is on PATH (`make bench` installs Debian's package when it is missing)."""
    import shutil

    return shutil.which("wrk") is not None


def run_wrk(url: str, questions: Sequence[str], concurrency: int, duration_s: float,
            mode: str = "hybrid", script_dir: Path | None = None, read: bool | None = None
            ) -> dict[str, Any]:
    """POST /ask with wrk (C, one connection per concurrent client, closed loop) cycling
    the questions; the summary in run_load's shape (latencies from wrk's histogram)."""
    import json
    import tempfile

    bodies = ",\n".join(json.dumps(json.dumps(body(q, mode, read))) for q in questions)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", dir=script_dir, delete=False) as f:
        f.write(WRK_LUA % bodies)
    try:
        threads = 1 if concurrency < 2 else 2
        out = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{duration_s:.0f}s", "--timeout", "30s",
             "-s", f.name, url], capture_output=True, text=True, timeout=duration_s + 60)
    finally:
        os.unlink(f.name)
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary: {out.stdout[-500:]} {out.stderr[-500:]}")
    w = json.loads(line[len("WRKJSON "):])
    errors = int(w["non2xx"]) + int(w["socket_errors"])
    return {"generator": "wrk", "concurrency": concurrency, "seconds": w["seconds"],
            "ok": int(w["requests"]) - int(w["non2xx"]), "errors": errors,
            "error_kinds": {k: int(w[k]) for k in ("non2xx", "socket_errors") if int(w[k])},
            "rps": (int(w["requests"]) - int(w["non2xx"])) / w["seconds"],
            "latency": {"p50": w["p50"], "p95": w["p95"], "p99": w["p99"], "max": w["max"]}}
