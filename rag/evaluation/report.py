"""The HTML evaluation report: one self-contained page drawn from `rag eval --json` data.

``render_html(report, serve_url)`` is a pure function of the JSON report (evaluate.py keeps
the numbers, this module draws them), so any saved report can be drawn again. The page
requests nothing from anywhere (inline CSS, inline SVG charts, one inline script allowed by
its hash in the page's Content-Security-Policy), reads on a phone and prints. Document text
is untrusted input: the markup is the Jinja2 template ``templates/report.html.j2``, rendered
with autoescape on, so every string from the corpus, the gold file or the report is escaped
unless it is passed in as ``Markup`` (only the charts, the CSS and the script, each marked
where it is made). This module turns the JSON into small view records; the template draws them.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from itertools import pairwise
from typing import Any
from urllib.parse import quote, urlencode

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from ..search.reader.calibration import expected_calibration_error, reliability
from .charts import ANSWERABLE, UNANSWERABLE, bar_chart, line_chart, reliability_chart, strip_chart
from .evaluate import RANK_CUTOFF, QualityGate, rank_label, recall_at

OPS = {">=": "≥", "<=": "≤"}
LOWER_IS_BETTER = {"false_abstain_rate", "query_ms_p50", "query_ms_p95"}
NEUTRAL = {"mean_passage_chars"}
MEANING = {
    "recall@k": "share of answerable questions whose evidence is covered by the top k passages",
    "mrr@10": "mean of 1/rank of the first hit (0 when not in the top 10)",
    "ndcg@10": "1/log2(rank+1) of the first hit, averaged",
    "citation_exact_rate": "share of cited spans (passages, highlights, answers) whose text "
                           "equals the file at their offsets",
    "highlight_hit_rate": "share of answerable questions whose first passage's highlight "
                          "overlaps the evidence",
    "answer_hit_rate": "share of answerable questions whose first passage's answer (the "
                       "reader's span) overlaps the evidence",
    "abstain_recall": "share of unanswerable questions the service flagged as unanswerable",
    "false_abstain_rate": "share of answerable questions it wrongly flagged",
    "mean_passage_chars": "mean length of the top 5 passages, in characters",
    "query_ms_p50": "median time of one question, end to end in process (ms)",
    "query_ms_p95": "95th percentile of that time (ms)",
}

# Opens folded passages for printing (closed <details> do not print) and folds them back.
SCRIPT = ("addEventListener('beforeprint',()=>document.querySelectorAll("
          "'details:not([open])').forEach(d=>{d.open=true;d.dataset.printOpened=1}));"
          "addEventListener('afterprint',()=>document.querySelectorAll("
          "'details[data-print-opened]').forEach(d=>{d.open=false;delete d.dataset.printOpened}));")


def _lines(ls: int | None, le: int | None) -> str:
    if ls is None:
        return ""
    return f":{ls}" if le in (None, ls) else f":{ls}-{le}"


def span_url(serve_url: str, path: str, start: int, end: int) -> str:
    """The service's span view of a file span (GET /documents/{path}?start=&end=)."""
    return f"{serve_url}/documents/{quote(path)}?{urlencode({'start': start, 'end': end})}"


def page_url(serve_url: str, path: str, start: int, end: int) -> str:
    """The search page showing the span marked in its document."""
    return f"{serve_url}/?{urlencode({'doc': path, 'start': start, 'end': end})}"


def _fmt(metric: str, v: float) -> str:
    if metric.startswith("query_ms"):
        return f"{v:.1f}"
    if metric == "mean_passage_chars":
        return f"{v:.0f}"
    return f"{v:.3f}"


def _signed(metric: str, c: float) -> str:
    return ("+" if c >= 0 else "-") + _fmt(metric, abs(c))


# ---------------------------------------------------------------- view records

@dataclass(frozen=True)
class Header:
    """Which run this is: gold, corpus, index, model, settings, reader, gates."""

    gold: dict[str, Any]  # path, sha256, items, answerable
    corpus: str
    index: dict[str, Any]  # generation, built_at, files, chunks
    model: str
    fingerprint: str
    ranking: str
    abstention: str
    reader: str | None  # a sentence after the reader's fingerprint; None: no reader ran
    reader_fingerprint: str
    date: str
    gates: str | None  # "mode: metric op value, ..."; None: no gates applied
    failed: str  # the failed gates' messages, "; "-joined ("" when all passed)


@dataclass(frozen=True)
class MetricCell:
    """One mode's figure for one metric, and how it fares against the metric's gate."""

    mode: str
    value: float
    shown: str
    cls: str  # "fail" (the gated mode fails the gate), "below" (another mode would), ""


@dataclass(frozen=True)
class MetricRow:
    """A metric across the modes, with its gate's target ("" when not gated)."""

    name: str
    meaning: str
    cells: list[MetricCell | None]
    target: str


@dataclass(frozen=True)
class Change:
    """One metric of one compared mode: before, after, and the signed change."""

    before: str
    after: str
    change: float
    shown: str
    cls: str  # "same", "up" (better), "down" (worse), "" (neither better nor worse)


@dataclass(frozen=True)
class DiffRow:
    """A metric's changes across the compared modes (None where a mode lacks it)."""

    metric: str
    changes: list[Change | None]


@dataclass(frozen=True)
class MovedTable:
    """The questions of one compared mode whose rank of first hit changed."""

    name: str
    mode: str
    moved: list[dict[str, Any]]


@dataclass(frozen=True)
class Baseline:
    """The comparison with a baseline run."""

    path: str
    date: str | None  # None when the baseline's run facts are unknown
    generation: str
    other_gold: bool
    names: list[str]
    rows: list[DiffRow]
    moved: list[MovedTable]


@dataclass(frozen=True)
class Confidence:
    """The gated mode's confidence charts and its abstention mistakes."""

    mode: str
    histogram: Markup
    reliability: Markup
    false_abstain_rate: float
    abstain_recall: float
    ece: float
    wrong: list[dict[str, Any]]


@dataclass(frozen=True)
class LatencyRow:
    """One mode's p50, p95 and max (data values) and mean time per question."""

    mode: str
    stats: dict[str, float]
    mean: float


@dataclass(frozen=True)
class Got:
    """What one mode ranked first for a missed question (passage None: nothing returned)."""

    mode: str
    passage: dict[str, Any] | None
    parts: tuple[str, str | None, str]  # text before, inside (None: no mark) and after the highlight


@dataclass(frozen=True)
class Miss:
    """An answerable question whose evidence is not the first passage in some mode."""

    id: str
    question: str
    ranks: list[tuple[str, str]]
    evidence: list[dict[str, Any]]
    got: list[Got]


# ---------------------------------------------------------------- sections as data

def _header(r: dict[str, Any]) -> Header:
    run, gates = r["run"], r.get("gates", {})
    st, idx, model = run["settings"], run["index"], run["model"]
    ch = st["chunking"]
    int8 = {None: "default", True: "on", False: "off"}[model.get("quantize_queries")]
    ranking = (f"modes {', '.join(st['modes'])}; top {st['top_k']} passages; "
               f"chunks ≤ {ch.get('max_tokens')} tokens, overlap {ch.get('overlap_tokens')}"
               f", title prefix {'on' if ch.get('context_prefix') else 'off'}; sentence "
               f"vectors {'on' if st.get('sentence_vectors') else 'off'}; fusion "
               f"{st['fusion']} (dense weight {st['dense_weight']}), dense score "
               f"{st['dense_granularity']}, {st['candidates']} candidates")
    reader = run.get("reader")
    abstention = f"abstains when P(answerable) < {st['abstain_threshold']}" + (
        f" (the reader's calibrated P; fast path: retrieval features, "
        f"< {st['fast_path_abstain_threshold']})"
        if reader and "fast_path_abstain_threshold" in st else "")
    applied = ", ".join(f"{g['metric']} {OPS[g['op']]} {g['value']}"
                        for g in gates.get("applied", []))
    return Header(
        run["gold"], run["corpus"], idx,
        f"{model['name']} (dim {model['dim']}, {model['backend']}, int8 questions {int8})",
        model["fingerprint"], ranking, abstention,
        (f", reads the top {reader['candidates']} passages "
         f"({'int8' if reader['quantized'] else 'float32'}); orders them by logit + "
         f"{reader['fusion_weight']} × fused score") if reader else None,
        reader["fingerprint"] if reader else "", run["date"],
        f"{gates.get('mode', '')}: {applied}" if gates.get("applied") else None,
        "; ".join(gates.get("failed", [])))


def _metric_rows(r: dict[str, Any]) -> list[MetricRow]:
    modes = list(r["modes"])
    gated = r.get("gates", {}).get("mode")
    targets = {g["metric"]: g for g in r.get("gates", {}).get("applied", [])}
    rows = []
    for name in r["modes"][modes[0]]["metrics"]:
        g = targets.get(name)
        cells: list[MetricCell | None] = []
        for m in modes:
            v = r["modes"][m]["metrics"].get(name)
            if v is None:
                cells.append(None)
                continue
            bad = g is not None and not QualityGate(**g).passes(v)
            cells.append(MetricCell(m, v, _fmt(name, v),
                                    ("fail" if m == gated else "below") if bad else ""))
        key = "recall@k" if name.startswith("recall@") else name
        rows.append(MetricRow(name, MEANING.get(key, ""), cells,
                              f"{OPS[g['op']]} {g['value']}" if g else ""))
    return rows


def _change(metric: str, c: dict[str, Any]) -> Change:
    x = c["change"]
    if round(x, 4) == 0:
        cls = "same"
    elif metric in NEUTRAL:
        cls = ""
    else:
        cls = "up" if (x > 0) != (metric in LOWER_IS_BETTER) else "down"
    return Change(_fmt(metric, c["before"]), _fmt(metric, c["after"]), x, _signed(metric, x),
                  cls)


def _baseline(r: dict[str, Any]) -> Baseline | None:
    b = r.get("baseline")
    if not b:
        return None
    brun = b.get("run") or {}
    diffs = b["diffs"]
    names = [d["after_mode"] if d["before_mode"] == d["after_mode"]
             else f"{d['before_mode']} → {d['after_mode']}" for d in diffs]
    by_metric: dict[str, list[Change | None]] = {}
    for i, d in enumerate(diffs):
        for c in d["metrics"]:
            by_metric.setdefault(c["metric"], [None] * len(diffs))[i] = _change(c["metric"], c)
    return Baseline(
        b["path"], brun.get("date", "?") if brun else None,
        brun.get("index", {}).get("generation", "?"), b.get("same_gold") is False, names,
        [DiffRow(m, cs) for m, cs in by_metric.items()],
        [MovedTable(n, d["after_mode"], d["moved"]) for n, d in zip(names, diffs, strict=True)])


def _ranks(r: dict[str, Any], mode: str) -> list[int | None]:
    return [q["rank"] for q in r["modes"][mode]["questions"] if q["answerable"]]


def _rank_charts(r: dict[str, Any]) -> tuple[Markup, Markup]:
    modes = list(r["modes"])
    ks = list(range(1, RANK_CUTOFF + 1))
    curve = line_chart("chart-recall", "Recall at k = 1..10 per mode", ks,
                       {m: [recall_at(_ranks(r, m), k) for k in ks] for m in modes},
                       "k (passages read)", "recall@k")
    cats = [str(k) for k in ks] + [rank_label(None)]
    counts = {m: [sum(x == k for x in _ranks(r, m)) for k in ks]
              + [sum(x is None for x in _ranks(r, m))] for m in modes}
    hist = bar_chart("chart-ranks", "Rank of the first hit per answerable question", cats,
                     counts, "rank of the first passage that covers the evidence", "questions")
    # charts.py escapes every string it writes into the SVG (titles, series names, labels)
    # and the rest is numbers it formats itself: the markup is safe as it stands.
    return Markup(curve), Markup(hist)


def _confidence(r: dict[str, Any]) -> Confidence:
    mode = r.get("gates", {}).get("mode") or next(iter(r["modes"]))
    qs = r["modes"][mode]["questions"]
    thr = r["run"]["settings"]["abstain_threshold"]
    edges = [i / 10 for i in range(11)]
    cats = [f"{a:.1f}-{b:.1f}" for a, b in pairwise(edges)]

    def counts(answerable: bool) -> list[int]:
        return [sum(1 for q in qs if q["answerable"] == answerable and
                    (lo <= q["confidence"] < hi or (hi == 1.0 and q["confidence"] == 1.0)))
                for lo, hi in pairwise(edges)]

    hist = bar_chart("chart-confidence", f"Confidence of {mode} answers, answerable vs not",
                     cats, {"answerable": counts(True), "unanswerable": counts(False)},
                     "confidence (P answerable)", "questions",
                     {"answerable": ANSWERABLE, "unanswerable": UNANSWERABLE}, edges,
                     (thr, f"abstains below {thr}"))
    bins = reliability([q["confidence"] for q in qs], [q["answerable"] for q in qs])
    rel = reliability_chart("chart-reliability", f"Reliability of {mode} confidence",
                            [(b.lo, b.hi, b.n, b.mean_predicted, b.observed) for b in bins])
    m = r["modes"][mode]["metrics"]
    # Markup: charts.py escapes every string it puts in the SVG (see _rank_charts)
    return Confidence(mode, Markup(hist), Markup(rel), m["false_abstain_rate"],
                      m["abstain_recall"], expected_calibration_error(bins),
                      [q for q in qs if q["predicted_answerable"] != q["answerable"]])


def _latency(r: dict[str, Any]) -> tuple[Markup, list[LatencyRow]]:
    modes = list(r["modes"])
    times = {m: [q["latency_ms"] for q in r["modes"][m]["questions"]] for m in modes}
    stats = {m: {"p50": r["modes"][m]["metrics"]["query_ms_p50"],
                 "p95": r["modes"][m]["metrics"]["query_ms_p95"],
                 "max": max(times[m], default=0.0)} for m in modes}
    chart = strip_chart("chart-latency", "Time per question per mode", times, stats,
                        "milliseconds per question (in process, query cache off)")
    rows = [LatencyRow(m, s, float(np.mean(times[m])) if times[m] else 0.0)
            for m, s in stats.items()]
    # Markup: charts.py escapes every string it puts in the SVG (see _rank_charts)
    return Markup(chart), rows


def _parts(p: dict[str, Any]) -> tuple[str, str | None, str]:
    """A passage's text split around its highlight (middle None when it has none inside)."""
    text, h = p["text"], p.get("highlight")
    if not h or not p["start"] <= h["start"] <= h["end"] <= p["end"]:
        return text, None, ""
    a, b = h["start"] - p["start"], h["end"] - p["start"]
    return text[:a], text[a:b], text[b:]


def _misses(r: dict[str, Any]) -> list[Miss]:
    modes = list(r["modes"])
    by_mode = {m: {q["id"]: q for q in r["modes"][m]["questions"]} for m in modes}
    first = modes[0]
    gated = r.get("gates", {}).get("mode") or first
    missed = [qid for qid, q in by_mode[first].items() if q["answerable"] and any(
        by_mode[m][qid]["rank"] != 1 for m in modes if qid in by_mode[m])]
    order = {qid: i for i, qid in enumerate(by_mode[first])}

    def worst_first(qid: str) -> tuple[int, int]:
        rk = by_mode[gated].get(qid, {}).get("rank", 1)
        return (-(RANK_CUTOFF + 1 if rk is None else rk), order[qid])

    out = []
    for qid in sorted(missed, key=worst_first):
        q = by_mode[first][qid]
        got = []
        for m in modes:
            mq = by_mode[m][qid]
            if mq["rank"] == 1:
                continue
            p = mq["top"][0] if mq["top"] else None
            got.append(Got(m, p, _parts(p) if p else ("", None, "")))
        out.append(Miss(qid, q["question"],
                        [(m, rank_label(by_mode[m][qid]["rank"])) for m in modes],
                        q["evidence"], got))
    return out


def _nav(r: dict[str, Any]) -> list[tuple[str, str]]:
    return [("metrics", "Metrics"), *([("baseline", "Against the baseline")]
                                      if r.get("baseline") else []),
            ("ranks", "Ranks"), ("confidence", "Confidence"), ("latency", "Latency"),
            ("misses", "Misses")]


# ---------------------------------------------------------------- the page

@cache
def _environment() -> Environment:
    env = Environment(loader=PackageLoader("rag.evaluation", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.globals.update(lines=_lines, rank_label=rank_label, span_url=span_url, page_url=page_url)
    return env


def render_html(report: dict[str, Any], serve_url: str | None = None) -> str:
    """The whole report as one self-contained HTML page (pure)."""
    serve = serve_url.rstrip("/") if serve_url else None
    css = resources.files("rag.evaluation").joinpath("report.css").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    csp = (f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
           f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'")
    gold_name = report["run"]["gold"]["path"].rsplit("/", 1)[-1]
    recall, ranks = _rank_charts(report)
    latency, latency_rows = _latency(report)
    gates = report.get("gates", {})
    return _environment().get_template("report.html.j2").render(
        title=f"rag eval: {gold_name}", gold_name=gold_name, csp=csp,
        # Markup: the CSS and the script are this package's own files and constants, not data
        css=Markup(css), script=Markup(SCRIPT),
        serve=serve, header=_header(report), nav=_nav(report), modes=list(report["modes"]),
        gated=gates.get("mode"),
        targets=bool(gates.get("applied")), meaning=MEANING,
        metric_rows=_metric_rows(report), baseline=_baseline(report),
        recall_chart=recall, ranks_chart=ranks, confidence=_confidence(report),
        latency_chart=latency, latency_rows=latency_rows, misses=_misses(report))
