"""The HTML evaluation report (`rag eval --html`, rag/evaluation/report.py) and the baseline diff.

Unit tests render hand-made report data (escaping, links, gate marks, diff math). The
integration tests score the dev gold set twice with the real model (a baseline with chunk-only
dense scores, then `rag eval` with the defaults against it) and open the report in Debian's
Chromium: the oracles are the two JSON reports and the corpus files on disk."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from html import escape
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from rag.evaluation.charts import log_ticks, nice_ticks
from rag.evaluation.compare import MOVE_ORDER, compare_runs, format_diff, move_kind
from rag.evaluation.evaluate import rank_label
from rag.search.reader.calibration import expected_calibration_error, reliability
from rag.evaluation.report import render_html

from .conftest import CORPUS, DEV_GOLD, ROOT, need_shared
from .gates import GATES

ARTIFACTS = ROOT / "tests" / "artifacts"
SERVE = "http://127.0.0.1:8000"
CHARTS = ("chart-recall", "chart-ranks", "chart-confidence", "chart-reliability",
          "chart-latency")
DEV_GATES = [str(x) for flag_value in GATES["dev"].items() for x in flag_value]


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
    top = passage('we"ird <name>.txt', 40, f"Before. {evil} After.", hl=(8, 8 + len(evil)))
    ev = [{"file": "a.txt", "start": 1, "end": 9, "quote": "</blockquote><b>gold</b>",
           "line_start": 1, "line_end": 1}]
    qs = [question("q1", 2, text="<i>Who</i> wrote it?", top=[top], evidence=ev),
          question("u1", None, False, 0.9, text="<svg onload=alert(1)>", top=[top])]
    for serve in (None, SERVE):
        html = render_html(run({"hybrid": qs}), serve)
        assert html.count("<script") == 1  # the page's own, allowed by its hash
        assert "<img" not in html and "<svg onload" not in html and "<b>gold" not in html
        assert "&lt;script&gt;alert(&quot;passage&quot;)&lt;/script&gt;" in html
        assert "&lt;/blockquote&gt;&lt;b&gt;gold&lt;/b&gt;" in html
        assert "&lt;i&gt;Who&lt;/i&gt; wrote it?" in html
        assert all(not k.startswith("on") for _, a in Elements(html).tags for k in a)
    # the highlight is marked inside the passage, escaped inside and around the mark
    assert f"Before. <mark>{escape(evil)}</mark> After." in html


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


# ---------------------------------------------------------------- the real thing

@pytest.fixture(scope="module")
def runs(real_index, real_embedder, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two runs on the dev gold set: a baseline scoring chunks by their own vector only (in
    process, with the session's model), then `rag eval` with the defaults against it,
    writing --json and --html with --serve-url."""
    from rag.evaluation.evaluate import build_report, evaluate, load_gold
    from rag.search.searcher import Searcher

    need_shared(DEV_GOLD)
    tmp = tmp_path_factory.mktemp("report")
    items = load_gold(DEV_GOLD)
    chunk_only = Searcher(real_index.model_copy(update={"dense_granularity": "chunk"}),
                          embedder=real_embedder)
    ks = (1, 3, 5, 10)
    results = evaluate(chunk_only, items, ["hybrid", "dense", "lexical", "reader"], ks)
    (tmp / "base.json").write_text(json.dumps(
        build_report(chunk_only, DEV_GOLD, items, results, ks, [])))
    now = subprocess.run(
        [sys.executable, "-m", "rag.serve.cli", "eval", str(DEV_GOLD), "--mode", "all",
         "--corpus", str(real_index.corpus_dir), "--index", str(real_index.index_dir),
         "--json", str(tmp / "run.json"), "--html", str(tmp / "report.html"),
         "--serve-url", SERVE, "--baseline", str(tmp / "base.json"), *DEV_GATES],
        capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert now.returncode == 0, now.stdout + now.stderr
    return {"html": tmp / "report.html", "stdout": now.stdout,
            "before": json.loads((tmp / "base.json").read_text()),
            "after": json.loads((tmp / "run.json").read_text())}


def file_text(name: str) -> str:
    with open(CORPUS / name, encoding="utf-8", newline="") as f:
        return f.read()


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


@pytest.mark.browser
def test_report_in_chromium(browser: Any, runs: dict[str, Any]) -> None:  # noqa: F811  (fixture)
    """Offline, every chart drawn, the table equal to the JSON, misses linked to the spans."""
    data = runs["after"]
    ctx = browser.new_context(viewport={"width": 1100, "height": 900}, device_scale_factor=1)
    page = ctx.new_page()
    requests: list[str] = []
    problems: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    url = runs["html"].as_uri()
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
    assert page.locator("#metric-table td.fail").count() == 0  # the gates passed

    # every miss is there, its links carry the JSON's offsets, and those are the file's
    by_mode = {m: {q["id"]: q for q in data["modes"][m]["questions"]} for m in modes}
    missed = {q for q, r in by_mode[modes[0]].items() if r["answerable"]
              and any(by_mode[m][q]["rank"] != 1 for m in modes)}
    cards = page.locator("article.miss")
    assert {cards.nth(i).get_attribute("data-id") for i in range(cards.count())} == missed
    assert missed, "the dev run has no misses to check links on"
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
        assert quotes == [file_text(f)[s:e] for f, s, e in spans]
        for m in modes:
            got = card.locator(f'.got[data-mode="{m}"]')
            if by_mode[m][qid]["rank"] == 1:
                assert got.count() == 0
                continue
            top = by_mode[m][qid]["top"][0]
            f, s, e = span_of(got.locator("a.span-link.top").get_attribute("href") or "")
            assert (f, s, e) == (top["file"], top["start"], top["end"])
            assert file_text(f)[s:e] == top["text"]
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


def test_baseline_diff_of_two_real_runs(runs: dict[str, Any]) -> None:
    """The moved questions and metric changes, checked against the two JSON reports."""
    before, after = runs["before"], runs["after"]
    diffs = {d["after_mode"]: d for d in after["baseline"]["diffs"]}
    assert set(diffs) == set(after["modes"]) == set(before["modes"])
    assert after["baseline"]["same_gold"] is True
    shown = moved_rows(runs["html"].read_text(encoding="utf-8"))
    total = 0
    for mode, d in diffs.items():
        was = {q["id"]: q["rank"] for q in before["modes"][mode]["questions"] if q["answerable"]}
        now = {q["id"]: q["rank"] for q in after["modes"][mode]["questions"] if q["answerable"]}
        expected = {q: (was[q], now[q]) for q in now if was[q] != now[q]}
        assert {m["id"]: (m["before"], m["after"]) for m in d["moved"]} == expected
        for m in d["moved"]:
            b, a = m["before"], m["after"]
            assert m["kind"] == ("newly missed" if b == 1 else "fixed" if a == 1 else
                                 "worse" if (a or 99) > (b or 99) else "better")
        order = [MOVE_ORDER.index(m["kind"]) for m in d["moved"]]
        assert order == sorted(order)  # newly missed first
        assert shown.get(mode, []) == [(m["id"], rank_label(m["before"]), rank_label(m["after"]),
                                        m["kind"]) for m in d["moved"]]
        for m in d["moved"]:
            assert (f"{m['id']} rank {rank_label(m['before'])} -> {rank_label(m['after'])} "
                    f"({m['kind']})") in runs["stdout"]
        mb, ma = before["modes"][mode]["metrics"], after["modes"][mode]["metrics"]
        assert [c["metric"] for c in d["metrics"]] == list(ma)
        for c in d["metrics"]:
            assert (c["before"], c["after"]) == (mb[c["metric"]], ma[c["metric"]])
            assert c["change"] == pytest.approx(ma[c["metric"]] - mb[c["metric"]], abs=1e-9)
        total += len(d["moved"])
    # chunk-only dense scores really move dense ranks (measured: 2 newly missed, 3 fixed)
    assert total > 0 and diffs["dense"]["moved"]
