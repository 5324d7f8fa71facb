"""The HTML evaluation report (`rag eval --html`, rag/evaluation/report.py) and the baseline diff.

Unit tests render hand-made report data (escaping, links, gate marks, diff math). The page
tests render tests/data/eval-report.json, a fixed real `rag eval --json` run on a tiny corpus
(made by tests/data/make_eval_report.py: four modes, a question missed in every mode, an
abstention mistake, questions moved against a baseline, a PDF passage with pages, and a
question, a passage and a gold quote that are HTML), and one opens it in Debian's Chromium.
The oracle is that JSON, so these tests do not move when retrieval quality does: the quality
gates are tests/test_eval.py's."""

from __future__ import annotations

import json
from dataclasses import asdict
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from markupsafe import escape
from selectolax.lexbor import LexborHTMLParser

from rag.evaluation.charts import log_ticks, nice_ticks
from rag.evaluation.compare import compare_runs, format_diff, move_kind
from rag.evaluation.evaluate import rank_label
from rag.search.reader.calibration import expected_calibration_error, reliability
from rag.evaluation.report import render_html

from .conftest import ROOT

ARTIFACTS = ROOT / "tests" / "artifacts"
SERVE = "http://127.0.0.1:8000"
CHARTS = ("chart-recall", "chart-ranks", "chart-confidence", "chart-reliability",
          "chart-latency")
FIXTURE = ROOT / "tests" / "data" / "eval-report.json"


# ---------------------------------------------------------------- hand-made data

def passage(file: str, start: int, text: str, score: float = 0.5, rank: int = 1,
            hl: tuple[int, int] | None = None) -> dict[str, Any]:
    """A top passage record as `rag eval --json` writes it (hl: offsets inside text)."""
    h = None
    if hl:
        a, b = hl
        h = {"start": start + a, "end": start + b, "line_start": 1, "line_end": 1,
             "text": text[a:b]}
    return {"rank": rank, "file": file, "start": start, "end": start + len(text),
            "line_start": 1, "line_end": 2, "score": score, "text": text, "highlight": h}


def question(qid: str, rank: int | None, answerable: bool = True, confidence: float = 0.9,
             text: str = "", top: list[dict[str, Any]] | None = None,
             evidence: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"id": qid, "question": text or f"question {qid}?", "answerable": answerable,
            "rank": rank, "confidence": confidence, "predicted_answerable": confidence >= 0.63,
            "latency_ms": 5.0, "top": top or [passage("a.txt", 0, "some text")],
            "evidence": evidence if evidence is not None else (
                [{"file": "a.txt", "start": 100, "end": 120, "quote": "the quote",
                  "line_start": 3, "line_end": 3}] if answerable else [])}


def metrics(**over: float) -> dict[str, float]:
    m = {"recall@1": 0.5, "recall@3": 0.75, "recall@5": 0.75, "recall@10": 0.75,
         "mrr@10": 0.6, "ndcg@10": 0.65, "citation_exact_rate": 1.0, "highlight_hit_rate": 0.5,
         "abstain_recall": 1.0, "false_abstain_rate": 0.0, "mean_passage_chars": 600.0,
         "query_ms_p50": 5.0, "query_ms_p95": 9.0}
    return {**m, **over}


def run(modes: dict[str, list[dict[str, Any]]], gates: list[dict[str, Any]] | None = None,
        failed: list[str] | None = None, **metric_over: float) -> dict[str, Any]:
    """A whole report: each mode's questions, the same metrics for every mode."""
    return {
        "gold": "gold.jsonl", "items": 4,
        "run": {"date": "2025-01-01T00:00:00+00:00", "corpus": "corpus",
                "index": {"dir": "index", "generation": "g-000001", "built_at": "x",
                          "chunks": 10, "files": 2},
                "model": {"name": "m", "fingerprint": "f" * 64, "dim": 8, "backend": "onnx",
                          "quantize_queries": None},
                "gold": {"path": "gold.jsonl", "sha256": "0" * 64, "items": 4,
                         "answerable": 3},
                "settings": {"modes": list(modes), "top_k": 10, "ks": [1, 3, 5, 10],
                             "chunking": {"max_tokens": 160, "overlap_tokens": 32,
                                          "context_prefix": False},
                             "sentence_vectors": True, "candidates": 50, "fusion": "minmax",
                             "dense_weight": 0.5, "dense_granularity": "both",
                             "highlight_dense_weight": 0.3, "abstain_threshold": 0.63}},
        "modes": {m: {"metrics": metrics(**metric_over), "misses": [], "questions": qs}
                  for m, qs in modes.items()},
        "gates": {"mode": "hybrid" if "hybrid" in modes else next(iter(modes)),
                  "applied": gates or [], "failed": failed or []},
    }


def ranked(ranks: dict[str, int | None]) -> list[dict[str, Any]]:
    """Answerable questions with these ranks, plus one unanswerable question."""
    return [question(q, r) for q, r in ranks.items()] + [question("u1", None, False, 0.2)]


class Elements(HTMLParser):
    """Every start tag's attributes, and the text inside chosen tags."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


# ---------------------------------------------------------------- rendering, pure

def test_document_text_is_escaped_everywhere() -> None:
    """Corpus and gold text is untrusted: no tag or attribute of it reaches the page."""
    evil = '<script>alert("passage")</script> & "quotes" <img src=x onerror=alert(1)>'
    text = f"{evil} Before. {evil} After. {evil}"  # HTML before, inside and after the mark
    top = passage('we"ird <name>.txt', 40, text, hl=(len(evil) + 9, 2 * len(evil) + 9))
    ev = [{"file": "a.txt", "start": 1, "end": 9, "quote": "</blockquote><b>gold</b>",
           "line_start": 1, "line_end": 1}]
    qs = [question("q1", 2, text="<i>Who</i> wrote it?", top=[top], evidence=ev),
          question("u1", None, False, 0.9, text="<svg onload=alert(1)>", top=[top])]
    for serve in (None, SERVE):
        html = render_html(run({"hybrid": qs}), serve)
        assert html.count("<script") == 1  # the page's own, allowed by its hash
        assert "<img" not in html and "<svg onload" not in html and "<b>gold" not in html
        assert "&lt;script&gt;alert(&#34;passage&#34;)&lt;/script&gt;" in html  # MarkupSafe's &#34;
        assert "&lt;/blockquote&gt;&lt;b&gt;gold&lt;/b&gt;" in html
        assert "&lt;i&gt;Who&lt;/i&gt; wrote it?" in html
        assert all(not k.startswith("on") for _, a in Elements(html).tags for k in a)
    # the highlight is marked inside the passage, escaped inside and around the mark
    e = escape(evil)
    assert f'<p class="passage">{e} Before. <mark>{e}</mark> After. {e}</p>' in html


def test_links_carry_the_offsets_and_nothing_else_leaves_the_page() -> None:
    top = passage("dir/a b.txt", 500, "ranked first instead", hl=(0, 6))
    ev = [{"file": "dir/gold file.txt", "start": 7, "end": 19, "quote": "q",
           "line_start": 2, "line_end": 4}]
    html = render_html(run({"hybrid": [question("q1", 3, top=[top], evidence=ev)]}), SERVE + "/")
    hrefs = [a["href"] or "" for t, a in Elements(html).tags if t == "a"]
    outside = [h for h in hrefs if not h.startswith("#")]
    assert outside == [
        f"{SERVE}/documents/dir/gold%20file.txt?start=7&end=19",
        f"{SERVE}/?doc=dir%2Fgold+file.txt&start=7&end=19",
        f"{SERVE}/documents/dir/a%20b.txt?start=500&end=520",
        f"{SERVE}/?doc=dir%2Fa+b.txt&start=500&end=520"]
    # no other URL anywhere: no scripts, fonts, images or styles from elsewhere
    assert html.count("://") == html.count(f"{SERVE}/") == len(outside)
    assert all(not (a.get("src") or "") for _, a in Elements(html).tags)
    # without a service: no links out, the text is inline
    offline = render_html(run({"hybrid": [question("q1", 3, top=[top], evidence=ev)]}))
    assert "://" not in offline
    assert "dir/gold file.txt:2-4" in offline and "[7:19]" in offline
    assert "<mark>ranked</mark> first instead" in offline


def test_misses_come_worst_first_in_the_gated_mode() -> None:
    """Missed at 2, beyond 10 and at 5 in hybrid (the gated mode): >10, 5, 2; a question at
    rank 1 everywhere has no card, one missed only in lexical comes last."""
    report = run({"hybrid": ranked({"q1": 2, "q2": None, "q3": 5, "q4": 1, "q5": 1}),
                  "lexical": ranked({"q1": 1, "q2": 1, "q3": 1, "q4": 1, "q5": 3})})
    cards = [a["data-id"] for t, a in Elements(render_html(report)).tags
             if t == "article" and "miss" in (a.get("class") or "")]
    assert cards == ["q2", "q3", "q1", "q5"]


def test_metric_table_marks_failing_cells_and_shows_targets() -> None:
    gates = [{"metric": "mrr@10", "op": ">=", "value": 0.7},
             {"metric": "false_abstain_rate", "op": "<=", "value": 0.05}]
    report = run({"hybrid": ranked({"q1": 1}), "lexical": ranked({"q1": 1})}, gates,
                 ["mrr@10 0.600 < 0.7"])
    report["modes"]["lexical"]["metrics"]["false_abstain_rate"] = 0.1
    tags = Elements(render_html(report)).tags
    cls = {(a["data-mode"], a["data-metric"]): a["class"] for t, a in tags
           if t == "td" and a.get("data-mode") and a.get("data-metric")}
    assert cls[("hybrid", "mrr@10")] == "fail"  # the gated mode
    assert cls[("lexical", "mrr@10")] == "below"  # same target, not gated
    assert cls[("lexical", "false_abstain_rate")] == "below"
    assert cls[("hybrid", "false_abstain_rate")] == ""
    assert cls[("hybrid", "recall@5")] == ""  # not gated
    html = render_html(report)
    assert '<td class="target" data-metric="mrr@10">≥ 0.7</td>' in html
    assert '<td class="target" data-metric="false_abstain_rate">≤ 0.05</td>' in html
    assert "gates failed: mrr@10 0.600 &lt; 0.7" in html


def test_reliability_bins_by_hand() -> None:
    bins = reliability([0.05, 0.15, 0.95, 1.0, 0.99], [False, True, True, True, False])
    assert [(b.lo, b.hi, b.n) for b in bins] == [(0.0, 0.1, 1), (0.1, 0.2, 1), (0.9, 1.0, 3)]
    assert bins[2].mean_predicted == pytest.approx((0.95 + 1.0 + 0.99) / 3)
    assert bins[2].observed == pytest.approx(2 / 3)
    # |0.05-0| + |0.15-1| + 3 * |0.98-2/3|, over 5 questions
    assert expected_calibration_error(bins) == pytest.approx((0.05 + 0.85 + 3 * (0.98 - 2 / 3)) / 5)


def test_axis_ticks_cover_the_data() -> None:
    assert nice_ticks(0, 27, 4) == [0, 10, 20, 30]
    assert nice_ticks(0.7, 1.0) == [0.7, 0.8, 0.9, 1.0]
    assert log_ticks(3.1, 118) == [2, 5, 10, 20, 50, 100, 200]


# ---------------------------------------------------------------- baseline math, pure

def test_moved_questions_and_deltas_by_hand() -> None:
    before = run({"hybrid": ranked({"q1": 1, "q2": 3, "q3": None, "q4": 2, "q5": 1, "q6": 4})},
                 mrr=0.0)
    after = run({"hybrid": ranked({"q1": 2, "q2": 1, "q3": 4, "q4": None, "q5": 1, "q6": 6})})
    before["modes"]["hybrid"]["metrics"].update({"recall@1": 0.4, "mrr@10": 0.7})
    after["modes"]["hybrid"]["metrics"].update({"recall@1": 0.55, "mrr@10": 0.6})
    (d,) = compare_runs(before, after)
    assert (d.before_mode, d.after_mode) == ("hybrid", "hybrid")
    assert [(m.id, m.before, m.after, m.kind) for m in d.moved] == [
        ("q1", 1, 2, "newly missed"),
        ("q4", 2, None, "worse"), ("q6", 4, 6, "worse"),
        ("q2", 3, 1, "fixed"),
        ("q3", None, 4, "better")]
    change = {c.metric: (c.before, c.after, c.change) for c in d.metrics}
    assert change["recall@1"] == (0.4, 0.55, 0.15)
    assert change["mrr@10"] == (0.7, 0.6, -0.1)
    assert change["recall@5"] == (0.75, 0.75, 0.0)
    text = format_diff([asdict(d)], "before.json")
    assert "q1 rank 1 -> 2 (newly missed)" in text and "q4 rank 2 -> >10 (worse)" in text
    assert "recall@1 0.400 -> 0.550 (+0.150)" in text and "recall@5" not in text
    after["baseline"] = {"path": "before.json", "run": before["run"], "same_gold": True,
                         "diffs": [asdict(d)]}
    tags = Elements(render_html(after)).tags
    rows = [(a["data-id"], a["data-kind"]) for t, a in tags if t == "tr" and a.get("data-kind")]
    assert rows == [("q1", "newly missed"), ("q4", "worse"), ("q6", "worse"), ("q2", "fixed"),
                    ("q3", "better")]


def test_single_modes_compare_across_names_and_unknown_ids_are_left_out() -> None:
    before = run({"lexical": ranked({"q1": 1, "gone": 2})})
    after = run({"hybrid": ranked({"q1": 3, "new": 1})})
    (d,) = compare_runs(before, after)
    assert (d.before_mode, d.after_mode) == ("lexical", "hybrid")
    assert [(m.id, m.kind) for m in d.moved] == [("q1", "newly missed")]
    both = run({"hybrid": ranked({"q1": 1}), "dense": ranked({"q1": 1})})
    assert compare_runs(both, after)[0].after_mode == "hybrid"
    assert len(compare_runs(both, after)) == 1
    assert compare_runs(run({"dense": ranked({})}), run({"lexical": ranked({}),
                                                          "hybrid": ranked({})})) == []
    assert move_kind(None, None) is None and rank_label(None) == ">10"


# ---------------------------------------------------------------- a real report, fixed

def load_fixture() -> dict[str, Any]:
    """tests/data/eval-report.json: a real `rag eval --json` run (tests/data/make_eval_report.py)."""
    data: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    return load_fixture()


@pytest.fixture(scope="module")
def parsed(data: dict[str, Any]) -> LexborHTMLParser:
    """The fixture's page, linked to a service, parsed as a browser parses it."""
    return LexborHTMLParser(render_html(data, SERVE))


def missed_ids(data: dict[str, Any]) -> set[str]:
    """Answerable questions not at rank 1 in some mode: the ones the page must show."""
    modes = list(data["modes"])
    by_mode = {m: {q["id"]: q for q in data["modes"][m]["questions"]} for m in modes}
    return {q for q, r in by_mode[modes[0]].items() if r["answerable"]
            and any(by_mode[m][q]["rank"] != 1 for m in modes)}


def hostile(s: str) -> bool:
    return "<script>" in s and '"' in s


def test_the_fixture_has_what_the_page_tests_need(data: dict[str, Any]) -> None:
    """So that a regenerated fixture cannot quietly make the tests below check less."""
    modes = data["modes"]
    gated = modes[data["gates"]["mode"]]["questions"]
    assert len(modes) >= 3 and data["gates"]["applied"]
    assert missed_ids(data)
    assert any(not q["answerable"] and not q["predicted_answerable"] for q in gated)
    assert any(q["answerable"] != q["predicted_answerable"] for q in gated)  # a mistake
    assert any(d["moved"] for d in data["baseline"]["diffs"])
    assert any(not d["moved"] for d in data["baseline"]["diffs"])
    tops = [q["top"][0] for m in modes.values() for q in m["questions"]
            if q["id"] in missed_ids(data) and q["rank"] != 1]
    assert any(p["file"].endswith(".pdf") and p["highlight"]["page_start"] for p in tops)
    assert any(hostile(p["text"]) for p in tops)
    assert any(hostile(modes[m]["questions"][i]["question"]) for m in modes
               for i, q in enumerate(modes[m]["questions"]) if q["id"] in missed_ids(data))
    quotes = [e["quote"] for q in gated for e in q["evidence"] if q["id"] in missed_ids(data)]
    assert any('"' in x and "&" in x for x in quotes)


def test_html_in_the_report_stays_text(data: dict[str, Any], parsed: LexborHTMLParser) -> None:
    """The fixture's question, passage and gold quote that are HTML reach the page as text:
    the parsed page has the text itself, and no element or attribute made from it."""
    assert len(parsed.css("script")) == 1  # the page's own, allowed by its hash
    assert all(not k.startswith("on") for n in parsed.css("*") for k in n.attributes)
    modes = data["modes"]
    shown = 0
    for m, d in modes.items():
        for q in d["questions"]:
            if q["id"] not in missed_ids(data):
                continue
            card = parsed.css_first(f'article.miss[data-id="{q["id"]}"]')
            assert card is not None, f"no card for the miss {q['id']}"
            assert card.css_first("h3").text() == q["id"] + q["question"]
            if q["rank"] != 1:
                top = q["top"][0]
                got = card.css_first(f'.got[data-mode="{m}"]')
                assert got.css_first(".passage").text() == top["text"]
                assert got.css_first("blockquote.hl").text() == top["highlight"]["text"]
                shown += hostile(top["text"]) + hostile(q["question"])
            assert [b.text() for b in card.css("blockquote.gold")] == [
                e["quote"] for e in q["evidence"]]
    assert shown >= 2
    moved = [m for d in data["baseline"]["diffs"] for m in d["moved"]]
    assert [n.text() for n in parsed.css("tr.moved td:last-child")] == [
        m["question"] for m in moved]


def test_misses_link_the_json_spans(data: dict[str, Any], parsed: LexborHTMLParser) -> None:
    """Every miss has a card, worst in the gated mode first; its gold and ranked-first links
    carry the JSON's offsets, and the highlight is marked inside the passage."""
    modes = list(data["modes"])
    by_mode = {m: {q["id"]: q for q in data["modes"][m]["questions"]} for m in modes}
    cards = parsed.css("article.miss")
    ids = [c.attributes["data-id"] for c in cards]
    gated = data["gates"]["mode"]
    assert ids == sorted(missed_ids(data), key=lambda q: -(by_mode[gated][q]["rank"] or 11))
    for card in cards:
        qid = card.attributes["data-id"] or ""
        evidence = by_mode[modes[0]][qid]["evidence"]
        spans = [span_of(a.attributes["href"] or "") for a in card.css("a.span-link.gold")]
        assert spans == [(e["file"], e["start"], e["end"]) for e in evidence]
        assert [page_span_of(a.attributes["href"] or "")
                for a in card.css("a.page-link.gold")] == spans
        assert {b.attributes["data-mode"]: b.text() for b in card.css("b.rank")} == {
            m: rank_label(by_mode[m][qid]["rank"]) for m in modes}
        for m in modes:
            got = card.css_first(f'.got[data-mode="{m}"]')
            if by_mode[m][qid]["rank"] == 1:
                assert got is None
                continue
            top = by_mode[m][qid]["top"][0]
            assert span_of(got.css_first("a.span-link.top").attributes["href"] or "") == (
                top["file"], top["start"], top["end"])
            h = top["highlight"]
            assert got.css_first(".passage mark").text() == top["text"][
                h["start"] - top["start"]:h["end"] - top["start"]]
            assert f"{top['file']}:{top['line_start']}" in got.css_first("code").text()


def test_tables_show_the_json_figures(data: dict[str, Any], parsed: LexborHTMLParser) -> None:
    """Metric table, gate targets, abstention mistakes and latency: the JSON's figures."""
    modes = list(data["modes"])
    cells = parsed.css("#metric-table td[data-mode][data-metric]")
    assert len(cells) == sum(len(data["modes"][m]["metrics"]) for m in modes)
    for c in cells:
        a = c.attributes
        v = data["modes"][a["data-mode"]]["metrics"][a["data-metric"]]
        shown = c.css_first(".num").text()
        assert float(a["data-value"] or "nan") == v
        assert abs(float(shown) - v) <= decimals(shown), (a, shown, v)
    for g in data["gates"]["applied"]:
        target = parsed.css_first(f'#metric-table td.target[data-metric="{g["metric"]}"]')
        assert target.text() == f"{'≥' if g['op'] == '>=' else '≤'} {g['value']}"
    assert len(parsed.css("#metric-table td.fail")) == len(data["gates"]["failed"])
    gated = data["gates"]["mode"]
    wrong = [q for q in data["modes"][gated]["questions"]
             if q["answerable"] != q["predicted_answerable"]]
    rows = parsed.css("#abstain-table tbody tr")
    assert [r.attributes["data-id"] for r in rows] == [q["id"] for q in wrong]
    for r, q in zip(rows, wrong, strict=True):
        assert r.css("td")[2].text() == f"{q['confidence']:.2f}"
        assert span_of(r.css_first("a.span-link.abstain").attributes["href"] or "") == (
            q["top"][0]["file"], q["top"][0]["start"], q["top"][0]["end"])
    for m in modes:
        row = parsed.css_first(f'#latency-table tr[data-mode="{m}"]')
        for stat in ("p50", "p95"):
            v = float(row.css_first(f'td[data-stat="{stat}"]').attributes["data-value"] or 0)
            assert v == data["modes"][m]["metrics"][f"query_ms_{stat}"]


def test_baseline_section_shows_the_json_diff(data: dict[str, Any]) -> None:
    """The moved questions and metric changes the page and the CLI show are the JSON's."""
    html = render_html(data, SERVE)
    diffs = data["baseline"]["diffs"]
    shown = moved_rows(html)
    for d in diffs:
        assert shown.get(d["after_mode"], []) == [
            (m["id"], rank_label(m["before"]), rank_label(m["after"]), m["kind"])
            for m in d["moved"]]
        if not d["moved"]:
            assert f"{d['after_mode']}: no question changed its rank of first hit." in html
    table = {}
    for row in LexborHTMLParser(html).css("#diff-table tbody tr"):
        metric, tds = row.css_first("th").text(), row.css("td")
        for i in range(len(diffs)):
            before, after, change = tds[3 * i:3 * i + 3]
            if "data-value" in change.attributes:
                table[(i, metric)] = (before.text(), after.text(),
                                      float(change.attributes["data-value"] or "nan"))
    expected = {(i, c["metric"]): c for i, d in enumerate(diffs) for c in d["metrics"]}
    assert set(table) == set(expected)
    for key, (before, after, change) in table.items():
        c = expected[key]
        assert change == c["change"]
        assert abs(float(before) - c["before"]) <= decimals(before)
        assert abs(float(after) - c["after"]) <= decimals(after)
    text = format_diff(diffs, data["baseline"]["path"])
    for d in diffs:
        for m in d["moved"]:
            assert (f"{m['id']} rank {rank_label(m['before'])} -> {rank_label(m['after'])} "
                    f"({m['kind']})") in text


def test_charts_carry_the_json_figures(data: dict[str, Any], parsed: LexborHTMLParser) -> None:
    """Recall per k and first-hit ranks per mode, as drawn, against the JSON (the fixture's,
    and a hand-made one with a question beyond rank 10, which the fixture lacks)."""
    beyond = run({"hybrid": ranked({"q1": 1, "q2": None, "q3": 4, "q4": None}),
                  "lexical": ranked({"q1": 2, "q2": 1, "q3": None, "q4": 10})})
    for m, q in (("hybrid", {1: 0.25, 3: 0.25, 5: 0.5, 10: 0.5}),
                 ("lexical", {1: 0.25, 3: 0.5, 5: 0.5, 10: 0.75})):
        beyond["modes"][m]["metrics"].update({f"recall@{k}": v for k, v in q.items()})
    for report, page in ((data, parsed), (beyond, LexborHTMLParser(render_html(beyond)))):
        for m, d in report["modes"].items():
            recall = {float(n.attributes["data-x"] or 0): float(n.attributes["data-value"] or 0)
                      for n in page.css(f'#chart-recall .mark[data-series="{m}"]')}
            for k in (1, 3, 5, 10):
                assert round(recall[k], 4) == d["metrics"][f"recall@{k}"], (m, k)
            hist = [int(n.attributes["data-value"] or 0)
                    for n in page.css(f'#chart-ranks .mark[data-series="{m}"]')]
            ranks = [q["rank"] for q in d["questions"] if q["answerable"]]
            assert hist == [ranks.count(k) for k in range(1, 11)] + [ranks.count(None)], m


@pytest.mark.browser
def test_report_in_chromium(browser: Any, data: dict[str, Any],
                            tmp_path: Path) -> None:
    """Offline, every chart drawn, the table equal to the JSON, misses linked to the spans."""
    report = tmp_path / "report.html"
    report.write_text(render_html(data, SERVE), encoding="utf-8")
    ctx = browser.new_context(viewport={"width": 1100, "height": 900}, device_scale_factor=1)
    page = ctx.new_page()
    requests: list[str] = []
    problems: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    url = report.as_uri()
    page.goto(url)
    page.wait_for_load_state("load")

    # every chart is drawn: a real box and marks carrying the data
    for cid in CHARTS:
        box = page.locator(f"svg#{cid}").bounding_box()
        assert box and box["width"] > 200 and box["height"] > 100, cid
        values = [float(v) for v in page.locator(f"#{cid} .mark").evaluate_all(
            "els => els.map(e => e.dataset.value)")]
        assert values and sum(values) > 0, cid
    modes = list(data["modes"])
    for m in modes:
        qs = data["modes"][m]["questions"]
        recall = page.locator(f'#chart-recall .mark[data-series="{m}"]')
        by_k = dict(zip(recall.evaluate_all("els => els.map(e => +e.dataset.x)"),
                        recall.evaluate_all("els => els.map(e => +e.dataset.value)"),
                        strict=True))
        for k in (1, 3, 5, 10):
            assert round(by_k[k], 4) == data["modes"][m]["metrics"][f"recall@{k}"]
        hist = page.locator(f'#chart-ranks .mark[data-series="{m}"]').evaluate_all(
            "els => els.map(e => +e.dataset.value)")
        assert sum(hist) == sum(q["answerable"] for q in qs)
    gated = data["gates"]["mode"]
    conf = page.locator("#chart-confidence .mark").evaluate_all(
        "els => els.map(e => +e.dataset.value)")
    assert sum(conf) == len(data["modes"][gated]["questions"])
    assert page.locator("#chart-confidence .threshold").count() == 1

    # the metric table shows the JSON's figures, every one of them
    cells = page.locator("#metric-table td[data-mode][data-metric]").evaluate_all(
        "els => els.map(e => [e.dataset.mode, e.dataset.metric, e.dataset.value, "
        "e.querySelector('.num').textContent])")
    assert len(cells) == sum(len(data["modes"][m]["metrics"]) for m in modes)
    for mode, metric, value, shown in cells:
        v = data["modes"][mode]["metrics"][metric]
        assert float(value) == v
        assert abs(float(shown) - v) <= decimals(shown), (mode, metric, shown, v)
    for g in data["gates"]["applied"]:
        target = page.locator(f'#metric-table td.target[data-metric="{g["metric"]}"]')
        assert target.text_content() == f"{'≥' if g['op'] == '>=' else '≤'} {g['value']}"
    assert page.locator("#metric-table td.fail").count() == len(data["gates"]["failed"])

    # every miss is there, its links carry the JSON's offsets, the text is the JSON's
    by_mode = {m: {q["id"]: q for q in data["modes"][m]["questions"]} for m in modes}
    missed = missed_ids(data)
    cards = page.locator("article.miss")
    assert {cards.nth(i).get_attribute("data-id") for i in range(cards.count())} == missed
    assert missed, "the fixture has no misses to check links on"
    for qid in missed:
        card = page.locator(f'article.miss[data-id="{qid}"]')
        evidence = by_mode[modes[0]][qid]["evidence"]
        spans = [span_of(h) for h in card.locator("a.span-link.gold").evaluate_all(
            "els => els.map(e => e.href)")]
        assert spans == [(e["file"], e["start"], e["end"]) for e in evidence]
        pages = [page_span_of(h) for h in card.locator("a.page-link.gold").evaluate_all(
            "els => els.map(e => e.href)")]
        assert pages == spans
        quotes = card.locator("blockquote.gold").all_text_contents()
        assert quotes == [e["quote"] for e in evidence]
        assert card.locator("h3").text_content() == qid + by_mode[modes[0]][qid]["question"]
        for m in modes:
            got = card.locator(f'.got[data-mode="{m}"]')
            if by_mode[m][qid]["rank"] == 1:
                assert got.count() == 0
                continue
            top = by_mode[m][qid]["top"][0]
            f, s, e = span_of(got.locator("a.span-link.top").get_attribute("href") or "")
            assert (f, s, e) == (top["file"], top["start"], top["end"])
            assert got.locator(".passage").text_content() == top["text"]
            assert got.locator("blockquote.hl").text_content() == top["highlight"]["text"]

    # the latency table is the metric table's p50/p95
    for m in modes:
        row = page.locator(f'#latency-table tr[data-mode="{m}"]')
        for stat in ("p50", "p95"):
            v = float(row.locator(f'td[data-stat="{stat}"]').get_attribute("data-value") or 0)
            assert v == data["modes"][m]["metrics"][f"query_ms_{stat}"]

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    # a phone: the page itself never scrolls sideways (wide tables scroll in their box)
    page.set_viewport_size({"width": 390, "height": 844})
    width, inner = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    assert width <= inner, f"page is {width}px wide in a {inner}px viewport"
    page.screenshot(path=str(ARTIFACTS / "report-phone.png"))
    ctx.close()
    assert requests == [url], f"the report requested more than its own file: {requests}"
    assert not problems, problems


def decimals(shown: str) -> float:
    """Half a unit of the last digit shown: how far a rounded figure may be from the value."""
    return 0.5 * 10 ** -(len(shown.split(".")[1]) if "." in shown else 0) + 1e-9


def span_of(href: str) -> tuple[str, int, int]:
    """(path, start, end) of a /documents/{path}?start=&end= link."""
    u = urlsplit(href)
    assert f"{u.scheme}://{u.netloc}" == SERVE and u.path.startswith("/documents/"), href
    q = parse_qs(u.query)
    return unquote(u.path[len("/documents/"):]), int(q["start"][0]), int(q["end"][0])


def page_span_of(href: str) -> tuple[str, int, int]:
    """(path, start, end) of a /?doc=&start=&end= link."""
    u = urlsplit(href)
    q = parse_qs(u.query)
    return q["doc"][0], int(q["start"][0]), int(q["end"][0])


def moved_rows(html: str) -> dict[str, list[tuple[str, str, str, str]]]:
    """Per mode, the moved-questions table as shown: (id, before, after, kind)."""

    class Rows(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.mode = ""
            self.cells: list[str] | None = None
            self.out: dict[str, list[tuple[str, str, str, str]]] = {}
            self.text = ""

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = dict(attrs)
            if tag == "table" and "moved-table" in (a.get("class") or ""):
                self.mode = a["data-mode"] or ""
            elif tag == "tr" and a.get("class") == "moved":
                self.cells = []
            self.text = ""

        def handle_data(self, data: str) -> None:
            self.text += data

        def handle_endtag(self, tag: str) -> None:
            if tag == "td" and self.cells is not None:
                self.cells.append(self.text)
            elif tag == "tr" and self.cells is not None:
                self.out.setdefault(self.mode, []).append(tuple(self.cells[:4]))  # type: ignore[arg-type]
                self.cells = None

    p = Rows()
    p.feed(html)
    return p.out
