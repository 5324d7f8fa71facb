"""Evaluation: gold loading, metrics as pure functions, and the JSON report of `rag eval`
(compare.py sets two reports side by side, report.py draws one)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

from ..digest import file_digest
from ..errors import ConfigError
from ..text.corpus import LineIndex
from ..types import MODES, Answer, Mode, Span

if TYPE_CHECKING:
    from ..search.searcher import Searcher

METRICS = ("recall@1", "recall@3", "recall@5", "recall@10", "mrr@10", "ndcg@10",
           "citation_exact_rate", "highlight_hit_rate", "answer_hit_rate", "abstain_recall",
           "false_abstain_rate", "mean_passage_chars", "query_ms_p50", "query_ms_p95")


@dataclass(frozen=True)
class Evidence:
    """A gold span: file (relative to the corpus folder) and code-point offsets."""

    file: str
    start: int
    end: int
    quote: str = ""
    line_start: int | None = None  # 1-based, inclusive; absent in some converted gold files
    line_end: int | None = None


@dataclass(frozen=True)
class GoldItem:
    """One gold question."""

    id: str
    question: str
    answerable: bool
    answer: str | None
    evidence: tuple[Evidence, ...] = ()


def corpus_relative(path: str) -> str:
    """A gold `file` of ``corpus/NAME`` names NAME inside the corpus folder."""
    return path[len("corpus/"):] if path.startswith("corpus/") else path


def load_gold(path: Path) -> list[GoldItem]:
    """Read a gold JSONL file, naming the line of any malformed item."""
    items = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ConfigError(f"cannot read gold file {str(path)!r} ({e.strerror})") from e
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            ev = tuple(Evidence(corpus_relative(e["file"]), int(e["start"]), int(e["end"]),
                                e.get("quote", ""), e.get("line_start"), e.get("line_end"))
                       for e in d["evidence"])
            items.append(GoldItem(str(d["id"]), d["question"], bool(d["answerable"]),
                                  d.get("answer"), ev))
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"{path}:{n}: not a gold item ({e}); see shared/gold/README.md"
                              ) from e
    if not items:
        raise ConfigError(f"gold file {str(path)!r} has no items")
    return items


# ---------------------------------------------------------------- pure metrics

def covered(spans: Iterable[tuple[int, int]], start: int, end: int) -> int:
    """Characters of [start, end) covered by the union of spans."""
    mask = np.zeros(max(0, end - start), dtype=bool)
    for s, e in spans:
        a, b = max(s, start), min(e, end)
        if a < b:
            mask[a - start:b - start] = True
    return int(mask.sum())


def first_hit_rank(passages: Sequence[tuple[str, int, int]], evidence: Sequence[Evidence],
                   k: int = 10) -> int | None:
    """Smallest r <= k such that the top-r passages cover half of some evidence span."""
    for r in range(1, min(k, len(passages)) + 1):
        top = passages[:r]
        for ev in evidence:
            spans = [(s, e) for f, s, e in top if f == ev.file]
            if 2 * covered(spans, ev.start, ev.end) >= ev.end - ev.start:
                return r
    return None


def recall_at(ranks: Sequence[int | None], k: int) -> float:
    """Share of items hit within the top k."""
    return float(np.mean([r is not None and r <= k for r in ranks])) if ranks else 0.0


def mrr(ranks: Sequence[int | None]) -> float:
    """Mean reciprocal rank of the first hit (0 when none within the cutoff)."""
    return float(np.mean([1.0 / r if r else 0.0 for r in ranks])) if ranks else 0.0


def ndcg(ranks: Sequence[int | None]) -> float:
    """nDCG with one relevant answer per item: 1/log2(rank+1)."""
    return float(np.mean([1.0 / np.log2(r + 1) if r else 0.0 for r in ranks])) if ranks else 0.0


def overlaps(a: tuple[str, int, int], b: Evidence) -> bool:
    """Whether a file span overlaps an evidence span."""
    return a[0] == b.file and a[1] < b.end and b.start < a[2]


# ---------------------------------------------------------------- running

SHOWN = 3  # top passages kept per question in the report
RANK_CUTOFF = 10  # ranks beyond this count as "not found"


def rank_label(r: int | None) -> str:
    """A rank of first hit as people read it."""
    return f">{RANK_CUTOFF}" if r is None else str(r)


@dataclass(frozen=True)
class Shown:
    """One of the top passages a question got, as the report shows it."""

    rank: int
    file: str
    start: int
    end: int
    line_start: int
    line_end: int
    score: float
    text: str | None  # kept for the first passage only: the report shows what ranked first
    highlight: Span | None


@dataclass(frozen=True)
class QuestionResult:
    """How one gold question fared in one mode."""

    id: str
    question: str
    answerable: bool
    rank: int | None  # of the first hit within the top 10; None if missed or unanswerable
    confidence: float
    predicted_answerable: bool
    latency_ms: float
    top: tuple[Shown, ...]
    evidence: tuple[Evidence, ...]  # with line numbers filled in from the file


@dataclass
class ModeResult:
    """Metrics, misses and per-question results for one mode."""

    metrics: dict[str, float] = field(default_factory=dict)
    misses: list[dict[str, Any]] = field(default_factory=list)
    questions: list[QuestionResult] = field(default_factory=list)


def _with_lines(ev: Evidence, lines: LineIndex) -> Evidence:
    if ev.line_start is not None and ev.line_end is not None:
        return ev
    ls, le = lines.lines(ev.start, ev.end)
    return replace(ev, line_start=ls, line_end=le)


def evaluate_mode(ask: Callable[[str, int, str], Answer], items: Sequence[GoldItem], mode: str, corpus_dir: Path,
                  ks: Sequence[int] = (1, 3, 5, 10),
                  read_text: Callable[[str], str] | None = None) -> ModeResult:
    """Run every gold question through ``ask(question, top_k, mode)`` and score it.

    ``read_text(path)`` is the text offsets index (default: the file's bytes as UTF-8; for a
    converted PDF/HTML/DOCX file, the generation's stored text)."""
    read = read_text or (lambda path: (corpus_dir / path).read_bytes().decode("utf-8"))
    texts: dict[str, str] = {}
    line_index: dict[str, LineIndex] = {}  # only for evidence files

    def file_text(path: str) -> str:
        if path not in texts:
            texts[path] = read(path)
        return texts[path]

    def lines_of(path: str) -> LineIndex:
        if path not in line_index:
            line_index[path] = LineIndex(file_text(path))
        return line_index[path]

    ranks: list[int | None] = []
    times: list[float] = []
    exact = total = 0
    hl_hits = answer_hits = 0
    abstained_unans = abstained_ans = 0
    chars: list[int] = []
    misses = []
    questions = []
    top_k = max(RANK_CUTOFF, *ks)
    for item in items:
        t0 = time.perf_counter()
        ans: Answer = ask(item.question, top_k, mode)
        times.append((time.perf_counter() - t0) * 1000)
        spans = [(p.file, p.start, p.end) for p in ans.passages]
        for p in ans.passages:  # every span we cite: passage, highlight, answer
            t = file_text(p.file)
            for sp in (p, p.highlight, p.answer):
                if sp is not None:
                    total += 1
                    exact += t[sp.start:sp.end] == sp.text
        chars.extend(len(p.text) for p in ans.passages[:5])
        r = first_hit_rank(spans, item.evidence, RANK_CUTOFF) if item.answerable else None
        questions.append(QuestionResult(
            item.id, item.question, item.answerable, r, ans.confidence, ans.answerable,
            round(times[-1], 3),
            tuple(Shown(p.rank, p.file, p.start, p.end, p.line_start, p.line_end, p.score,
                        p.text if p.rank == 1 else None, p.highlight)
                  for p in ans.passages[:SHOWN]),
            tuple(_with_lines(ev, lines_of(ev.file)) for ev in item.evidence)))
        if not item.answerable:
            abstained_unans += not ans.answerable
            continue
        abstained_ans += not ans.answerable
        ranks.append(r)
        top = ans.passages[0] if ans.passages else None
        if top and top.highlight and any(
                overlaps((top.file, top.highlight.start, top.highlight.end), ev)
                for ev in item.evidence):
            hl_hits += 1
        if top and top.answer and any(
                overlaps((top.file, top.answer.start, top.answer.end), ev) for ev in item.evidence):
            answer_hits += 1
        if r != 1:
            misses.append({
                "id": item.id, "question": item.question, "rank": r,
                "expected": [f"{e.file}[{e.start}:{e.end}]" for e in item.evidence],
                "got": [f"{p.file}:{p.line_start}-{p.line_end}" for p in ans.passages[:3]],
                "top_text": top.text[:160] if top else ""})
    n_ans = sum(i.answerable for i in items)
    n_un = len(items) - n_ans
    m = {f"recall@{k}": recall_at(ranks, k) for k in ks}
    m.update({
        "mrr@10": mrr(ranks), "ndcg@10": ndcg(ranks),
        "citation_exact_rate": exact / total if total else 1.0,
        "highlight_hit_rate": hl_hits / n_ans if n_ans else 0.0,
        "answer_hit_rate": answer_hits / n_ans if n_ans else 0.0,
        "abstain_recall": abstained_unans / n_un if n_un else 0.0,
        "false_abstain_rate": abstained_ans / n_ans if n_ans else 0.0,
        "mean_passage_chars": float(np.mean(chars)) if chars else 0.0,
        "query_ms_p50": float(np.percentile(times, 50)),
        "query_ms_p95": float(np.percentile(times, 95)),
    })
    return ModeResult({k: round(v, 4) for k, v in m.items()}, misses, questions)


READER = "reader"  # an evaluation mode: hybrid, then the reader (the service's default)
EVAL_MODES = (*MODES, READER)


def asker(searcher: Searcher, mode: str) -> Callable[[str, int, str], Answer]:
    """``ask(question, top_k, mode)`` for an evaluation mode: the three retrieval modes on
    the fast path (reader off), ``reader`` as hybrid read by the reader."""
    if mode == READER:
        return lambda q, k, _m: searcher.ask(q, k, "hybrid", read=True)
    return lambda q, k, m: searcher.ask(q, k, cast(Mode, m), read=False)  # ask checks m


def evaluate(searcher: Searcher, items: Sequence[GoldItem], modes: Sequence[str],
             ks: Sequence[int] = (1, 3, 5, 10)) -> dict[str, ModeResult]:
    """Every mode over the gold items, timing real searches (warm model, no query cache)."""
    for item in items[:3]:  # warm-up so the first timings are not model start-up
        for m in modes:
            asker(searcher, m)(item.question, RANK_CUTOFF, "hybrid" if m == READER else m)
    searcher.cache.size = 0
    corpus_dir = searcher.settings.corpus_dir

    def read_text(path: str) -> str:  # what the offsets index: stored text if converted
        ex = searcher.generation.extracted(path)
        return ex.text if ex is not None else (corpus_dir / path).read_bytes().decode("utf-8")

    return {m: evaluate_mode(asker(searcher, m), items, m, corpus_dir, ks, read_text)
            for m in modes}


def run_info(searcher: Searcher, gold: Path, items: Sequence[GoldItem], modes: Sequence[str],
             ks: Sequence[int]) -> dict[str, Any]:
    """What a report needs to say which run it is: corpus, index, model, gold, settings."""
    gen = searcher.generation
    m, s = gen.manifest, searcher.settings
    reader = searcher.reader if READER in modes else None
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "corpus": str(s.corpus_dir),
        "index": {"dir": str(s.index_dir), "generation": gen.name, "built_at": m["built_at"],
                  "chunks": gen.size, "files": len(gen.files)},
        "model": {"name": m["model"]["name"], "fingerprint": m["model"]["fingerprint"],
                  "dim": m["model"]["dim"], "backend": s.backend,
                  "quantize_queries": s.quantize_queries},
        "gold": {"path": str(gold), "sha256": file_digest(gold),
                 "items": len(items), "answerable": sum(i.answerable for i in items)},
        "settings": {"modes": list(modes), "top_k": max(RANK_CUTOFF, *ks), "ks": list(ks),
                     "chunking": m["chunking"],
                     "sentence_vectors": m.get("sentences", {}).get("enabled"),
                     "candidates": s.candidates, "fusion": s.fusion,
                     "dense_weight": s.dense_weight, "dense_granularity": s.dense_granularity,
                     "highlight_dense_weight": s.highlight_dense_weight,
                     # the gated mode's threshold: the reader's when it ran, else the abstainer's
                     "abstain_threshold": reader.threshold if reader is not None
                     else searcher.abstainer.threshold,
                     "fast_path_abstain_threshold": searcher.abstainer.threshold},
        "reader": None if reader is None else {
            "fingerprint": reader.fingerprint, "candidates": s.reader_candidates,
            "quantized": s.reader_quantized, "threshold": reader.threshold,
            "fusion_weight": reader.fusion_weight},
    }


def build_report(searcher: Searcher, gold: Path, items: Sequence[GoldItem],
                 results: dict[str, ModeResult], ks: Sequence[int], gates: Sequence[QualityGate]
                 ) -> dict[str, Any]:
    """The JSON report of a run: which run, per-mode metrics, misses and questions, the
    gates and what failed (compare.with_baseline adds a diff)."""
    gated = gated_mode(results, searcher.settings.read)
    return {
        "gold": str(gold), "items": len(items),
        "run": run_info(searcher, gold, items, list(results), ks),
        "modes": {m: asdict(r) for m, r in results.items()},
        "gates": {"mode": gated, "applied": [asdict(g) for g in gates],
                  "failed": check_thresholds(results[gated].metrics, gates)}}


def format_table(results: dict[str, ModeResult]) -> str:
    """Modes side by side, one metric a row."""
    modes = list(results)
    names = list(next(iter(results.values())).metrics) if results else []
    lines = [f"{'metric':<22}" + "".join(f"{m:>10}" for m in modes)]
    for name in names:
        lines.append(f"{name:<22}" + "".join(f"{results[m].metrics[name]:>10.3f}"
                                              for m in modes))
    return "\n".join(lines)


@dataclass(frozen=True)
class QualityGate:
    """A quality gate on one metric: ``metric >= value`` (min) or ``metric <= value`` (max)."""

    metric: str
    op: Literal[">=", "<="]
    value: float

    def passes(self, x: float) -> bool:
        """Whether a measured figure meets the gate."""
        return x >= self.value if self.op == ">=" else x <= self.value

    def failure(self, x: float) -> str:
        """The message for a figure that fails it."""
        return f"{self.metric} {x:.3f} {'<' if self.op == '>=' else '>'} {self.value}"


def make_gates(min_recall_at_5: float | None = None, min_mrr: float | None = None,
               min_abstain_recall: float | None = None,
               max_false_abstain: float | None = None) -> list[QualityGate]:
    """The gates `rag eval --min-* / --max-*` asked for (those given)."""
    wanted: list[tuple[str, Literal[">=", "<="], float | None]] = [
        ("recall@5", ">=", min_recall_at_5), ("mrr@10", ">=", min_mrr),
        ("abstain_recall", ">=", min_abstain_recall),
        ("false_abstain_rate", "<=", max_false_abstain)]
    return [QualityGate(m, op, v) for m, op, v in wanted if v is not None]


def gated_mode(modes: Iterable[str], read: bool = False) -> str:
    """The mode the gates judge: the service's default (hybrid, or the reader when the
    settings turn it on) when it was run, else the first."""
    names = list(modes)
    return next((m for m in ((READER, "hybrid") if read else ("hybrid",)) if m in names),
                names[0])


def check_thresholds(metrics: dict[str, float], gates: Sequence[QualityGate]) -> list[str]:
    """Failed gates, as messages (empty when all pass)."""
    return [g.failure(metrics[g.metric]) for g in gates if not g.passes(metrics[g.metric])]
