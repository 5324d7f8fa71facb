"""Small helpers shared by the benchmark scripts: statistics, machine facts, memory, tables."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
VENV_BIN = Path(sys.executable).parent
PACKAGES = ("torch", "sentence-transformers", "onnxruntime", "faiss-cpu", "bm25s", "numpy",
            "fastapi", "uvicorn", "httpx", "mcp")


def pcts(xs: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/mean/max of latencies (same unit in and out); NaN when empty."""
    a = np.asarray(xs, dtype=np.float64)
    if not len(a):
        return {"n": 0, "p50": float("nan"), "p95": float("nan"), "p99": float("nan"),
                "mean": float("nan"), "max": float("nan")}
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"n": int(len(a)), "p50": float(p50), "p95": float(p95), "p99": float(p99),
            "mean": float(a.mean()), "max": float(a.max())}


def proc_status(pid: int | str = "self") -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of a process, in MiB."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, val = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(val.split()[0]) / 1024.0
    return out


def dir_size(path: Path) -> int:
    """Bytes of all files below a folder."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def loadavg() -> str:
    """The 1/5/15-minute load averages as text."""
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_info() -> dict[str, Any]:
    """CPU, cores, RAM, date, and versions of the packages that matter."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    versions = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            versions[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            versions[p] = "not installed"
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": mem_kib / 1024 / 1024,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "kernel": platform.release(), "versions": versions, "loadavg": loadavg()}


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; floats get 2 decimals unless already formatted."""
    def cell(x: Any) -> str:
        if isinstance(x, float):
            return "n/a" if x != x else f"{x:.2f}"
        return str(x)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


def fmt_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
