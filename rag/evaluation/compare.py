"""Two `rag eval --json` reports side by side: metric changes and the questions that moved."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError
from .evaluate import RANK_CUTOFF, rank_label

Kind = Literal["newly missed", "worse", "fixed", "better"]


@dataclass(frozen=True)
class MetricChange:
    """One metric before and after."""

    metric: str
    before: float
    after: float
    change: float


@dataclass(frozen=True)
class Moved:
    """An answerable question whose rank of first hit changed."""

    id: str
    question: str
    before: int | None
    after: int | None
    kind: Kind


@dataclass(frozen=True)
class ModeDiff:
    """One mode of a run against the same (or the only) mode of a baseline run."""

    before_mode: str
    after_mode: str
    metrics: list[MetricChange]
    moved: list[Moved]  # newly missed first, then worse, fixed, better


MOVE_ORDER = ("newly missed", "worse", "fixed", "better")


def _rank_key(r: int | None) -> int:
    return RANK_CUTOFF + 1 if r is None else r


def move_kind(before: int | None, after: int | None) -> Kind | None:
    """How a rank of first hit changed; a miss is anything but rank 1 (None if unchanged)."""
    if before == after:
        return None
    if before == 1:
        return "newly missed"
    if after == 1:
        return "fixed"
    return "worse" if _rank_key(after) > _rank_key(before) else "better"


def compare_mode(before: dict[str, Any], after: dict[str, Any], before_mode: str,
                 after_mode: str) -> ModeDiff:
    """Metric changes and moved questions between two modes' JSON records (pure)."""
    mb, ma = before["metrics"], after["metrics"]
    changes = [MetricChange(k, mb[k], ma[k], round(ma[k] - mb[k], 4)) for k in ma if k in mb]
    was = {q["id"]: q["rank"] for q in before.get("questions", []) if q["answerable"]}
    moved = []
    for q in after.get("questions", []):
        if q["answerable"] and q["id"] in was:
            kind = move_kind(was[q["id"]], q["rank"])
            if kind:
                moved.append(Moved(q["id"], q["question"], was[q["id"]], q["rank"], kind))
    moved.sort(key=lambda x: MOVE_ORDER.index(x.kind))  # stable: gold order within a kind
    return ModeDiff(before_mode, after_mode, changes, moved)


def compare_runs(before: dict[str, Any], after: dict[str, Any]) -> list[ModeDiff]:
    """Each mode of ``after`` against the same mode of ``before``; when each run has a
    single, different mode, those two against each other."""
    bm, am = before["modes"], after["modes"]
    pairs = [(m, m) for m in am if m in bm]
    if not pairs and len(bm) == 1 and len(am) == 1:
        pairs = [(next(iter(bm)), next(iter(am)))]
    return [compare_mode(bm[b], am[a], b, a) for b, a in pairs]


def format_diff(diffs: Sequence[dict[str, Any]], baseline: str) -> str:
    """A few lines for stdout from a report's ``baseline.diffs``: changed metrics (timings
    left to the HTML: they move from run to run) and moved questions, per mode."""
    lines = [f"against {baseline}:"]
    if not diffs:
        lines.append("  no mode in common; nothing to compare")
    for d in diffs:
        name = (d["after_mode"] if d["before_mode"] == d["after_mode"]
                else f"{d['before_mode']} -> {d['after_mode']}")
        changed = [f"{c['metric']} {c['before']:.3f} -> {c['after']:.3f} ({c['change']:+.3f})"
                   for c in d["metrics"]
                   if round(c["change"], 3) != 0 and not c["metric"].startswith("query_ms")]
        lines.append(f"  {name}: " + ("; ".join(changed) if changed else "no metric changed"))
        for mv in d["moved"]:
            lines.append(f"    {mv['id']} rank {rank_label(mv['before'])} -> "
                         f"{rank_label(mv['after'])} ({mv['kind']}) {mv['question']}")
    return "\n".join(lines)


def load_report(path: Path) -> dict[str, Any]:
    """A `rag eval --json` report (e.g. a baseline), checked enough to compare against."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read report {str(path)!r} ({e.strerror})") from e
    except ValueError as e:
        raise ConfigError(f"{path} is not JSON ({e}); pass a file written by "
                          "`rag eval --json`") from e
    modes = data.get("modes") if isinstance(data, dict) else None
    if not isinstance(modes, dict) or not modes or not all(
            isinstance(m, dict) and isinstance(m.get("metrics"), dict) for m in modes.values()):
        raise ConfigError(f"{path} has no per-mode metrics; pass a file written by "
                          "`rag eval --json`")
    return data


def with_baseline(report: dict[str, Any], baseline: dict[str, Any], path: Path
                  ) -> dict[str, Any]:
    """The report with a ``baseline`` part: where it came from, whether it scored the same
    gold file, and each mode's diff."""
    was = (baseline.get("run") or {}).get("gold", {}).get("sha256")
    return {**report, "baseline": {
        "path": str(path), "run": baseline.get("run"),
        "same_gold": None if was is None else was == report["run"]["gold"]["sha256"],
        "diffs": [asdict(d) for d in compare_runs(baseline, report)]}}
