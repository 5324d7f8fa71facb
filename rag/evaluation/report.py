"""The HTML evaluation report: one self-contained page drawn from `rag eval --json` data.

``render_html(report, serve_url)`` is a pure function of the JSON report (evaluate.py keeps
the numbers, this module draws them), so any saved report can be drawn again. The page
requests nothing from anywhere (inline CSS, inline SVG charts, one inline script allowed by
its hash in the page's Content-Security-Policy), reads on a phone and prints. Document text
is untrusted input: every string from the corpus, the gold file or the report is escaped.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from html import escape
from importlib import resources
from itertools import pairwise
from typing import Any
from urllib.parse import quote, urlencode

import numpy as np

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



def _e(x: Any) -> str:
    return escape(str(x), quote=True)


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


def _cite(s: dict[str, Any], serve_url: str | None, kind: str) -> str:
    """file:lines, linked to the span (and the page view) when a service URL is known."""
    label = _e(f"{s['file']}{_lines(s.get('line_start'), s.get('line_end'))}")
    if not serve_url:
        return (f'<p class="cite"><code>{label}</code> <span class="note">'
                f'[{s["start"]}:{s["end"]}]</span></p>')
    a = span_url(serve_url, s["file"], s["start"], s["end"])
    b = page_url(serve_url, s["file"], s["start"], s["end"])
    return (f'<p class="cite"><a class="span-link {kind}" href="{_e(a)}"><code>{label}</code></a>'
            f'<a class="page-link {kind}" href="{_e(b)}">open in page</a></p>')


def _fmt(metric: str, v: float) -> str:
    if metric.startswith("query_ms"):
        return f"{v:.1f}"
    if metric == "mean_passage_chars":
        return f"{v:.0f}"
    return f"{v:.3f}"


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{_e(title)}</h2>{body}</section>'


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{caption}</figcaption></figure>"


# ---------------------------------------------------------------- sections

def _header(r: dict[str, Any]) -> str:
    run, gates = r["run"], r.get("gates", {})
    st, idx, model, gold = run["settings"], run["index"], run["model"], run["gold"]
    ch = st["chunking"]
    failed = gates.get("failed", [])
    if gates.get("applied"):
        verdict = (f'<span class="verdict {"fail" if failed else "pass"}">gates '
                   f'{"failed: " + _e("; ".join(failed)) if failed else "passed"}</span>')
    else:
        verdict = '<span class="note">no gates applied</span>'
    int8 = {None: "default", True: "on", False: "off"}[model.get("quantize_queries")]
    facts = [
        ("Gold", (f"<code>{_e(gold['path'])}</code>: {gold['items']} questions "
                  f"({gold['answerable']} answerable)")),
        ("Gold sha256", f"<code>{_e(gold['sha256'])}</code>"),
        ("Corpus", (f"<code>{_e(run['corpus'])}</code>: {idx['files']} files, "
                    f"{idx['chunks']} chunks")),
        ("Index", (f"generation <code>{_e(idx['generation'])}</code>, built "
                   f"{_e(idx['built_at'])}")),
        ("Model", (f"{_e(model['name'])} (dim {model['dim']}, {_e(model['backend'])}, "
                   f"int8 questions {int8})")),
        ("Model fingerprint", f"<code>{_e(model['fingerprint'])}</code>"),
        ("Ranking", (f"modes {_e(', '.join(st['modes']))}; top {st['top_k']} passages; "
                     f"chunks ≤ {ch.get('max_tokens')} tokens, overlap {ch.get('overlap_tokens')}"
                     f", title prefix {'on' if ch.get('context_prefix') else 'off'}; sentence "
                     f"vectors {'on' if st.get('sentence_vectors') else 'off'}; fusion "
                     f"{_e(st['fusion'])} (dense weight {st['dense_weight']}), dense score "
                     f"{_e(st['dense_granularity'])}, {st['candidates']} candidates")),
        ("Abstention", f"abstains when P(answerable) &lt; {st['abstain_threshold']}"
                       + (f" (the reader's calibrated P; fast path: retrieval features, "
                          f"&lt; {st['fast_path_abstain_threshold']})"
                          if run.get("reader") and "fast_path_abstain_threshold" in st else "")),
        *([("Reader", (f"<code>{_e(run['reader']['fingerprint'])}</code>, reads the top "
                       f"{run['reader']['candidates']} passages "
                       f"({'int8' if run['reader']['quantized'] else 'float32'}); orders them "
                       f"by logit + {run['reader']['fusion_weight']} × fused score"))]
          if run.get("reader") else []),
        ("Run", _e(run["date"])),
        ("Gates", (f"{_e(gates.get('mode', ''))}: " + _e(", ".join(
            f"{g['metric']} {OPS[g['op']]} {g['value']}" for g in gates["applied"])) + " "
                   if gates.get("applied") else "") + verdict),
    ]
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    name = gold["path"].rsplit("/", 1)[-1]
    return (f"<header><h1>Retrieval evaluation: {_e(name)}</h1>"
            f'<dl class="facts">{dl}</dl></header>')


def _targets(r: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["metric"]: g for g in r.get("gates", {}).get("applied", [])}


def _metric_table(r: dict[str, Any]) -> str:
    modes = list(r["modes"])
    gated = r.get("gates", {}).get("mode")
    targets = _targets(r)
    names = list(r["modes"][modes[0]]["metrics"])
    head = "".join(f'<th scope="col">{_e(m)}</th>' for m in modes)
    rows = []
    for name in names:
        g = targets.get(name)
        cells = []
        for m in modes:
            v = r["modes"][m]["metrics"].get(name)
            if v is None:
                cells.append("<td></td>")
                continue
            bad = g is not None and not QualityGate(**g).passes(v)
            cls = ("fail" if m == gated else "below") if bad else ""
            flag = '<span class="flag" title="fails the gate">✗</span>' if bad else ""
            cells.append(f'<td class="{cls}" data-mode="{_e(m)}" data-metric="{_e(name)}" '
                         f'data-value="{v}"><span class="num">{_fmt(name, v)}</span>{flag}</td>')
        target = f"{OPS[g['op']]} {g['value']}" if g else ""
        key = "recall@k" if name.startswith("recall@") else name
        rows.append(f'<tr><th scope="row" title="{_e(MEANING.get(key, ""))}">{_e(name)}</th>'
                    f'{"".join(cells)}<td class="target" data-metric="{_e(name)}">{target}</td>'
                    "</tr>")
    legend = "".join(f"<li><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in MEANING.items())
    note = (f'<p class="note">Gates judge <b>{_e(gated)}</b> (they set the exit code); a cell '
            "failing its gate is red, other modes' cells below the same target are outlined."
            "</p>" if targets else "")
    return _section("metrics", "Metrics", (
        f'<div class="scroll"><table id="metric-table"><thead><tr><th scope="col">metric</th>'
        f'{head}<th scope="col">gate</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
        f"</div>{note}<details><summary>What the metrics mean</summary><ul>{legend}</ul>"
        "</details>"))


def _signed(metric: str, c: float) -> str:
    return ("+" if c >= 0 else "-") + _fmt(metric, abs(c))


def _change_cell(metric: str, c: float) -> str:
    if round(c, 4) == 0:
        cls = "same"
    elif metric in NEUTRAL:
        cls = ""
    else:
        cls = "up" if (c > 0) != (metric in LOWER_IS_BETTER) else "down"
    return (f'<td class="change {cls}" data-metric="{_e(metric)}" data-value="{c}">'
            f"{_signed(metric, c)}</td>")


def _baseline(r: dict[str, Any]) -> str:
    b = r.get("baseline")
    if not b:
        return ""
    brun = b.get("run") or {}
    about = [f"Against <code>{_e(b['path'])}</code>"]
    if brun:
        about.append(f"run {_e(brun.get('date', '?'))} on generation "
                     f"<code>{_e(brun.get('index', {}).get('generation', '?'))}</code>")
    if b.get("same_gold") is False:
        about.append("<b>scored on a different gold file</b> (questions matched by id)")
    parts = [f"<p>{', '.join(about)}. Green: better, red: worse.</p>"]
    diffs = b["diffs"]
    if not diffs:
        return _section("baseline", "Against the baseline", parts[0] + (
            '<p class="note">No mode in common with the baseline.</p>'))
    names = [d["after_mode"] if d["before_mode"] == d["after_mode"]
             else f"{d['before_mode']} → {d['after_mode']}" for d in diffs]
    head1 = "".join(f'<th scope="colgroup" colspan="3" class="group">{_e(n)}</th>' for n in names)
    head2 = '<th scope="col">before</th><th scope="col">after</th><th scope="col">change</th>'
    by_metric: dict[str, list[dict[str, Any] | None]] = {}
    for i, d in enumerate(diffs):
        for c in d["metrics"]:
            by_metric.setdefault(c["metric"], [None] * len(diffs))[i] = c
    rows = []
    for metric, cs in by_metric.items():
        cells = "".join(
            f'<td class="group-start">{_fmt(metric, c["before"])}</td>'
            f'<td>{_fmt(metric, c["after"])}</td>{_change_cell(metric, c["change"])}'
            if c else '<td class="group-start"></td><td></td><td></td>' for c in cs)
        rows.append(f'<tr><th scope="row">{_e(metric)}</th>{cells}</tr>')
    parts.append(f'<div class="scroll"><table id="diff-table"><thead><tr><th></th>{head1}'
                 f'</tr><tr><th scope="col">metric</th>{head2 * len(diffs)}</tr></thead>'
                 f'<tbody>{"".join(rows)}</tbody></table></div>')
    for name, d in zip(names, diffs, strict=True):
        if not d["moved"]:
            parts.append(f'<p class="note">{_e(name)}: no question changed its rank of first '
                         "hit.</p>")
            continue
        moved = "".join(
            f'<tr class="moved" data-id="{_e(m["id"])}" data-kind="{_e(m["kind"])}">'
            f'<td class="text">{_e(m["id"])}</td>'
            f'<td class="before">{rank_label(m["before"])}</td>'
            f'<td class="after">{rank_label(m["after"])}</td><td class="kind">{_e(m["kind"])}</td>'
            f'<td class="text">{_e(m["question"])}</td></tr>'
            for m in d["moved"])
        parts.append(
            f'<h3>{_e(name)}: questions that moved ({len(d["moved"])}), newly missed first</h3>'
            f'<div class="scroll"><table class="moved-table" data-mode="{_e(d["after_mode"])}">'
            '<thead><tr><th scope="col">id</th><th scope="col">rank before</th>'
            '<th scope="col">rank after</th><th scope="col" class="text">change</th>'
            '<th scope="col" class="text">question</th></tr></thead>'
            f"<tbody>{moved}</tbody></table></div>")
    return _section("baseline", "Against the baseline", "".join(parts))


def _ranks(r: dict[str, Any], mode: str) -> list[int | None]:
    return [q["rank"] for q in r["modes"][mode]["questions"] if q["answerable"]]


def _rank_charts(r: dict[str, Any]) -> str:
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
    return _section("ranks", "Where the evidence ranks", '<div class="charts">' + _figure(
        curve, "Share of answerable questions whose evidence is within the top k passages.")
        + _figure(hist, "How many answerable questions first hit at each rank; the last "
                  "slot (&gt;10) counts those whose evidence is not in the top 10.") + "</div>")


def _confidence(r: dict[str, Any], serve_url: str | None) -> str:
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
                            [(b.lo, b.hi, b.n, b.mean_predicted, b.observed)
                             for b in bins])
    m = r["modes"][mode]["metrics"]
    wrong = [q for q in qs if q["predicted_answerable"] != q["answerable"]]
    rows = "".join(
        f'<tr data-id="{_e(q["id"])}"><td class="text">{_e(q["id"])}</td>'
        f'<td class="text">{"answerable" if q["answerable"] else "unanswerable"}</td>'
        f'<td>{q["confidence"]:.2f}</td><td class="text">{_e(q["question"])}</td>'
        '<td class="text">'
        + (_cite(q["top"][0], serve_url, "abstain") if q["top"] else "") + "</td></tr>"
        for q in wrong)
    table = (f'<h3>Abstention mistakes ({_e(mode)}, {len(wrong)})</h3><div class="scroll">'
             '<table id="abstain-table"><thead><tr><th scope="col">id</th>'
             '<th scope="col" class="text">truth</th><th scope="col">confidence</th>'
             '<th scope="col" class="text">question</th><th scope="col" class="text">ranked '
             f'first</th></tr></thead><tbody>{rows}</tbody></table></div>'
             if wrong else '<p class="note">No abstention mistakes.</p>')
    return _section("confidence", "How sure the service was", '<div class="charts">' + _figure(
        hist, f"{mode}: the dashed line is the abstention threshold; answerable questions left "
              f"of it are false abstentions ({m['false_abstain_rate']:.3f}), unanswerable ones "
              f"left of it are caught (abstain recall {m['abstain_recall']:.3f}).")
        + _figure(rel, f"Questions binned by predicted confidence: bar = observed share that "
                  f"is answerable, dot = mean prediction, n = questions. Expected calibration "
                  f"error {expected_calibration_error(bins):.3f}.") + "</div>" + table)


def _latency(r: dict[str, Any]) -> str:
    modes = list(r["modes"])
    times = {m: [q["latency_ms"] for q in r["modes"][m]["questions"]] for m in modes}
    stats = {m: {"p50": r["modes"][m]["metrics"]["query_ms_p50"],
                 "p95": r["modes"][m]["metrics"]["query_ms_p95"],
                 "max": max(times[m], default=0.0)} for m in modes}
    chart = strip_chart("chart-latency", "Time per question per mode", times, stats,
                        "milliseconds per question (in process, query cache off)")
    rows = "".join(
        f'<tr data-mode="{_e(m)}"><th scope="row">{_e(m)}</th>'
        + "".join(f'<td data-stat="{k}" data-value="{v}">{v:.1f}</td>' for k, v in s.items())
        + f"<td>{np.mean(times[m]) if times[m] else 0:.1f}</td></tr>" for m, s in stats.items())
    table = ('<div class="scroll"><table id="latency-table"><thead><tr><th scope="col">mode</th>'
             '<th scope="col">p50 ms</th><th scope="col">p95 ms</th><th scope="col">max ms</th>'
             f'<th scope="col">mean ms</th></tr></thead><tbody>{rows}</tbody></table></div>')
    return _section("latency", "Latency", '<div class="charts">' + _figure(
        chart, "Each dot is one question (log scale); ticks mark p50, p95 and max.") + _figure(
        table, "p50 and p95 are the metric table's; times include embedding the question, "
               "both retrievers, fusion and highlights.") + "</div>")


def _passage(p: dict[str, Any]) -> str:
    """A passage's text with its highlight marked (both escaped)."""
    text, h = p["text"], p.get("highlight")
    if not h or not p["start"] <= h["start"] <= h["end"] <= p["end"]:
        return _e(text)
    a, b = h["start"] - p["start"], h["end"] - p["start"]
    return f"{_e(text[:a])}<mark>{_e(text[a:b])}</mark>{_e(text[b:])}"


def _misses(r: dict[str, Any], serve_url: str | None) -> str:
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

    cards = []
    for qid in sorted(missed, key=worst_first):
        q = by_mode[first][qid]
        ranks = " · ".join(f'{_e(m)} <b class="rank" data-mode="{_e(m)}">'
                           f'{rank_label(by_mode[m][qid]["rank"])}</b>' for m in modes)
        gold = "".join(_cite(ev, serve_url, "gold") + f'<blockquote class="gold">'
                       f'{_e(ev["quote"])}</blockquote>' for ev in q["evidence"])
        got = []
        for m in modes:
            mq = by_mode[m][qid]
            if mq["rank"] == 1:
                continue
            if not mq["top"]:
                got.append(f'<div class="got" data-mode="{_e(m)}"><h4>{_e(m)}: nothing '
                           "returned</h4></div>")
                continue
            p = mq["top"][0]
            hl = (f'<blockquote class="hl">{_e(p["highlight"]["text"])}</blockquote>'
                  if p.get("highlight") else "")
            got.append(f'<div class="got" data-mode="{_e(m)}"><h4>Ranked first instead in '
                       f'{_e(m)} (score {p["score"]:.3f})</h4>{_cite(p, serve_url, "top")}{hl}'
                       f'<details><summary>whole passage</summary><p class="passage">'
                       f"{_passage(p)}</p></details></div>")
        cards.append(f'<article class="miss" id="miss-{_e(qid)}" data-id="{_e(qid)}">'
                     f'<h3><span class="qid">{_e(qid)}</span>{_e(q["question"])}</h3>'
                     f'<p class="ranks">rank of first hit: {ranks}</p><h4>Gold evidence</h4>'
                     f'{gold}{"".join(got)}</article>')
    intro = (f'<p class="note">Answerable questions whose evidence is not the first passage in '
             f"at least one mode ({len(cards)}), worst in {_e(gated)} first."
             + (" Links open the span in the running service." if serve_url else
                " Run with --serve-url to link each span to the service.") + "</p>")
    return _section("misses", "Misses", intro + ("".join(cards) or
                                                 '<p class="note">No misses.</p>'))


# ---------------------------------------------------------------- the page

def render_html(report: dict[str, Any], serve_url: str | None = None) -> str:
    """The whole report as one self-contained HTML page (pure)."""
    serve = serve_url.rstrip("/") if serve_url else None
    body = [_header(report), _nav(report), _metric_table(report), _baseline(report),
            _rank_charts(report), _confidence(report, serve), _latency(report),
            _misses(report, serve)]
    css = resources.files("rag.evaluation").joinpath("report.css").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    csp = (f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
           f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'")
    title = f"rag eval: {report['run']['gold']['path'].rsplit('/', 1)[-1]}"
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="referrer" content="no-referrer"><title>{_e(title)}</title>'
            f"<style>{css}</style></head><body><main>{''.join(body)}"
            '<footer><p class="note">Written by <code>rag eval</code>. Every figure comes from '
            "the run's JSON report; <code>rag.evaluation.report.render_html</code> draws it "
            "again.</p>"
            f"</footer></main><script>{SCRIPT}</script></body></html>\n")


def _nav(r: dict[str, Any]) -> str:
    links: Sequence[tuple[str, str]] = [
        ("metrics", "Metrics"), *([("baseline", "Against the baseline")]
                                  if r.get("baseline") else []),
        ("ranks", "Ranks"), ("confidence", "Confidence"), ("latency", "Latency"),
        ("misses", "Misses")]
    return "<nav><ul>" + "".join(f'<li><a href="#{k}">{v}</a></li>' for k, v in links) + \
        "</ul></nav>"
