"""PDF, HTML and DOCX files: real files built by tests/docmaker.py, no mocks.

Oracles: PDFium's own per-page text and character boxes (read here independently of
rag.text.formats), the stored text of the generation, the bytes on disk."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rag.indexing.build import build_index
from rag.indexing.generation import open_current
from rag.indexing.store import TEXTS, index_lock
from rag.text.formats import NO_TEXT_LAYER, ExtractError, Limits, extract
from rag.text.formats.worker import ExtractionWorker

from .conftest import CORPUS, ROOT, fake_settings, need_font
from .oracles import (assert_boxes_cover, assert_exact_passage, assert_on_pages, file_text,
                      pdfium_pages, squash)
from . import docmaker as dm

pytest.importorskip("pypdfium2")
pytest.importorskip("fpdf")
need_font(dm.FONT)

SEED = CORPUS / "sco-ai-cooperation-2025-09-01.txt"


def seed_text() -> str:
    return SEED.read_text(encoding="utf-8")


def index(settings, full: bool = False):  # type: ignore[no-untyped-def]
    with index_lock(settings.index_dir):
        return build_index(settings, full=full)


# ---------------------------------------------------------------- PDF

@pytest.fixture(scope="module")
def adv_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return dm.adversarial_pdf(tmp_path_factory.mktemp("adv") / "adversarial.pdf")


def test_pdf_pages_map_every_offset_to_its_own_page(adv_pdf: Path) -> None:
    ex = extract(adv_pdf, Limits())
    lay = ex.layout
    assert lay.format == "pdf" and len(lay.pages) == 5
    own = pdfium_pages(adv_pdf)
    ends = list(lay.pages[1:]) + [len(ex.text)]
    for k, (a, b) in enumerate(zip(lay.pages, ends), 1):
        piece = ex.text[a:b]
        assert squash(piece) in squash(own[k - 1]) or squash(piece) == squash(own[k - 1])
        if piece.strip():
            assert lay.page_of(a + len(piece) - len(piece.lstrip())) == k
    assert not squash(own[4]) and lay.pages[4] == len(ex.text)  # page 5 has no text


def test_pdf_two_columns_hyphenation_rotation_and_scripts(adv_pdf: Path) -> None:
    text = extract(adv_pdf, Limits()).text
    left, right = text.index("LEFT COLUMN"), text.index("RIGHT COLUMN")
    assert left < text.index("Left column ends.") < right < text.index("Right column ends.")
    assert "regional cooperation in artificial intelligence" in text  # re-joined at the hyphen
    assert "official office efficiency" in text  # no ligature code points
    assert "This page is rotated by ninety degrees." in text
    assert "Шанхайская организация сотрудничества. Ψηφιακή συνεργασία." in text


def test_pdf_boxes_cover_the_characters_on_their_page(adv_pdf: Path) -> None:
    """Boxes of a span, against PDFium's own character boxes: every character whose box
    centre lies in one of the span's boxes, read in order, is the span's text."""
    ex = extract(adv_pdf, Limits())
    for needle in ("RIGHT COLUMN starts here. Regional cooperation in digital infrastructure",
                   "regional cooperation in artificial", "rotated by ninety",
                   "организация сотрудничества"):
        a = ex.text.index(needle)
        b = a + len(needle)
        page_no = ex.layout.page_of(a)
        assert_boxes_cover(adv_pdf, ex.layout.boxes_for(a, b), needle, page_no, page_no)


LIGATURES = (("fi", "fiscal"), ("ffi", "officer"), ("fl", "flagged"), ("fi", "five"),
             ("fl", "flows"))  # each ligature glyph of dm.LIGATURES_CODED, in its word


def test_pdf_ligatures_are_letters_with_the_ligature_box(tmp_path: Path) -> None:
    """The font's fi/ffi/fl ligature glyphs, written as the code points U+FB01-FB03 (which
    pypdf and pdfminer.six return as they are, so a search for 'fiscal' would miss them),
    come out of PDFium as their letters, each letter with the box of its ligature glyph: no
    normalisation of ours is needed, the stored text is what PDFium gives. A lexical
    question written with 'fi' finds the sentence, and the highlight's boxes cover every
    ligature glyph (PDFium's own boxes on the page)."""
    import pypdfium2 as pdfium

    from rag.search.searcher import Searcher

    root = tmp_path / "corpus"
    root.mkdir()
    pdf = dm.structures_pdf(root / "structures.pdf", shaping=False)
    assert "\ufb01" in dm.LIGATURES_CODED
    ex = extract(pdf, Limits())
    words = "the fiscal officer flagged five flows"
    assert words in ex.text and not re.search("[\ufb00-\ufb06]", ex.text)
    a = ex.text.index(words)
    arr = ex.layout.boxes
    assert arr is not None
    for lig, at in LIGATURES:  # the letters of one glyph share its box
        i = a + words.index(at) + at.index(lig)
        assert all((arr[i + k] == arr[i]).all() for k in range(len(lig)))
        assert not np.isnan(arr[i]).any() and (arr[i] != arr[i - 1]).any()

    settings = fake_settings(tmp_path, root)
    index(settings)
    p = Searcher(settings).ask("fiscal officer flagged flows", 3, "lexical").passages[0]
    h = p.highlight
    assert p.file == "structures.pdf" and words in p.text
    assert h is not None and words in h.text and h.boxes and p.page_start == 1

    doc = pdfium.PdfDocument(str(pdf))
    tp = doc[0].get_textpage()
    own = tp.get_text_range()  # one character per char index: the oracle's own letters
    for lig, at in LIGATURES:
        i = own.index(at) + at.index(lig)
        l_, b, r, t = tp.get_charbox(i)
        cx, cy = (l_ + r) / 2, (b + t) / 2
        assert any(pg == 1 and x0 <= cx <= x1 and y0 <= cy <= y1
                   for pg, x0, y0, x1, y1 in h.boxes), (own[i:i + 3], h.boxes)
    tp.close()
    doc.close()


def test_extraction_is_deterministic_across_processes(adv_pdf: Path, tmp_path: Path) -> None:
    html = tmp_path / "a.html"
    html.write_text(dm.adversarial_html(), encoding="utf-8")
    docx = dm.docx_with_structure(tmp_path / "a.docx")
    runs = []
    for _ in range(2):
        with ExtractionWorker(Limits()) as w:
            runs.append([w.extract(p) for p in (adv_pdf, html, docx)])
    for a, b in zip(*runs):
        assert a.text.encode() == b.text.encode()
        assert a.layout == b.layout
    assert runs[0][0].layout.boxes.tobytes() == runs[1][0].layout.boxes.tobytes()


# ---------------------------------------------------------------- HTML, DOCX

def test_html_visible_text_only_in_reading_order(tmp_path: Path) -> None:
    p = tmp_path / "adv.html"
    p.write_text(dm.adversarial_html(), encoding="utf-8")
    ex = extract(p, Limits())
    t = ex.text
    for gone in ("pwned", "PWNED", "color: red", "hidden by", "invisible span", "noscript text",
                 "template text"):
        assert gone not in t
    assert t.startswith("Main heading\n\nVisible paragraph with bold and italic words.")
    assert "Country\tShare\nChina" in t and "inner cell" in t  # a nested table: its own block
    assert '<script>alert("xss")</script> is shown as text.' in t
    assert "  preformatted\n    lines kept" in t
    assert "first item\nsecond item" in t
    lay = ex.layout
    assert lay.title == "Adversarial page"
    w = lay.where(t.index("inner cell"), t.index("inner cell") + 5)
    assert (w.heading, w.heading_id) == ("Tables section", "tables")
    assert lay.where(0, 4).heading_id == "top"


def test_docx_paragraphs_headings_and_tables(tmp_path: Path) -> None:
    ex = extract(dm.docx_with_structure(tmp_path / "r.docx"), Limits())
    t = ex.text
    assert t.split("\n\n")[:4] == ["Annual Report", "Introduction",
                                   "The first paragraph introduces the report.",
                                   "A second paragraph follows."]
    assert "Country\tShare\nChina\tnested value" in t
    assert t.endswith("Closing words after the table.")
    a = t.index("A second")
    w = ex.layout.where(a, a + 5)
    assert (w.paragraph, w.heading) == (4, "Introduction")
    n = t.index("nested value")
    assert ex.layout.where(n, n + 3).heading == "Figures"
    assert ex.layout.title == "Annual Report"


# ---------------------------------------------------------------- bad files

def bad_corpus(root: Path) -> dict[str, str]:
    """A good text file, good converted files, and one bad file of each kind with the words
    its reason must contain."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "good.txt").write_text("A good plain text file about regional cooperation.\n")
    dm.pdf_from_text(seed_text(), root / "good.pdf")
    (root / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj<<>>\nthis is not a pdf")
    dm.encrypted_pdf(root / "locked.pdf")
    dm.scanned_pdf(root / "scan.pdf")
    good = dm.docx_with_structure(root / "good.docx").read_bytes()
    (root / "truncated.docx").write_bytes(good[: len(good) // 2])
    dm.zip_bomb_docx(root / "bomb.docx", 64 << 20)
    return {"broken.pdf": "not a readable pdf", "locked.pdf": "encrypted",
            "scan.pdf": NO_TEXT_LAYER, "truncated.docx": "not a readable .docx",
            "bomb.docx": "decompression bomb"}


def test_each_bad_file_gets_one_warning_line_and_the_rest_is_indexed(tmp_path: Path) -> None:
    bad = bad_corpus(tmp_path / "corpus")
    proc = subprocess.run(
        [sys.executable, "-m", "rag.serve.cli", "index", "--corpus", str(tmp_path / "corpus"),
         "--index", str(tmp_path / "index"), "--model", "fake"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "RAG_EXTRACT_MAX_UNZIPPED_BYTES": str(32 << 20)})
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    for name, why in bad.items():
        mine = [ln for ln in lines if name in ln]
        assert len(mine) == 1, (name, lines)
        assert why.lower() in mine[0].lower(), mine
    assert len(lines) == len(bad), lines
    assert "5 skipped" in proc.stdout and "+3 files" in proc.stdout
    gen = open_current(tmp_path / "index")
    assert sorted(f.path for f in gen.files) == ["good.docx", "good.pdf", "good.txt"]
    gen.close()


def test_a_hanging_extraction_is_stopped_at_its_time_limit(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file that takes far longer than the limit (1.2M elements: ~11 s to walk on this
    machine, so the margin holds on a machine 5x faster) is stopped at a 2 s limit and skipped
    with that reason; a small page under the same limit is converted (2 s is a generous bound
    for it even on a loaded machine). The reason, not a stopwatch, is what is asserted."""
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "a.txt").write_text("Plain text is never converted.\n")
    (root / "b.html").write_text("<p>A small page is converted in time.</p>")
    dm.slow_html(root / "slow.html", 1_200_000)
    assert (root / "slow.html").stat().st_size < Limits().max_bytes  # not skipped for its size
    settings = fake_settings(tmp_path, extract_timeout_s=2.0)
    t0 = time.perf_counter()
    report = index(settings)
    took = time.perf_counter() - t0
    assert [(s.path, "took longer than 2 s" in s.reason) for s in report.skipped] == [
        ("slow.html", True)]
    assert report.added == ["a.txt", "b.html"] and report.extracted == ["b.html"]
    with capsys.disabled():
        print(f"\nextraction time limit: slow.html stopped at 2 s, index run {took:.1f} s")


def test_limits_pages_and_size(adv_pdf: Path, tmp_path: Path) -> None:
    with pytest.raises(ExtractError, match="5 pages is above the limit of 4"):
        extract(adv_pdf, Limits(max_pages=4))
    with pytest.raises(ExtractError, match="above the limit of 100"):
        extract(adv_pdf, Limits(max_bytes=100))
    with pytest.raises(ExtractError, match="characters"):
        extract(adv_pdf, Limits(max_chars=50))


# ---------------------------------------------------------------- the index

@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    root.mkdir()
    text = seed_text()
    (root / "plain.txt").write_text(text, encoding="utf-8")
    dm.pdf_from_text(text, root / "report.pdf")
    dm.pdf_from_text((CORPUS / "sco-digitalisation-2022-09-30.txt").read_text(), root / "b.pdf")
    dm.html_from_text(text, root / "page.html", "Greater collaboration in AI")
    dm.docx_from_text(text, root / "memo.docx")
    return root


def test_stored_text_is_sealed_and_citations_are_exact(mixed: Path, tmp_path: Path) -> None:
    settings = fake_settings(tmp_path, mixed)
    index(settings)
    gen = open_current(settings.index_dir)
    docs = gen.manifest["documents"]
    assert docs["plain.txt"].get("format") is None  # plain text: no stored copy
    for name in ("report.pdf", "page.html", "memo.docx"):
        meta = docs[name]
        data = (mixed / name).read_bytes()
        assert meta["sha256"] == __import__("hashlib").sha256(data).hexdigest()
        assert meta["extractor"].startswith("rag-") and meta["format"] in name
        assert meta["text"] in gen.manifest["files"]  # sealed like every file
        assert gen.extracted(name).text == (gen.folder / meta["text"]).read_text("utf-8")
    from rag.search.searcher import Searcher

    s = Searcher(settings)
    for q in ("Which company trained farmers in Ussuriysk?", "pool-cleaning robot sensors"):
        for p in s.ask(q, 10).passages:
            ex = gen.extracted(p.file)
            text = ex.text if ex else file_text(mixed / p.file)
            assert_exact_passage(text, p, p.file)  # with its highlight, on the stored text
            h = p.highlight
            assert h is not None
            if p.file.endswith(".pdf"):
                assert_on_pages(mixed / p.file, p.text, p.page_start, p.page_end)
                assert h.page_start is not None and h.page_end is not None
                assert p.page_start <= h.page_start <= h.page_end <= p.page_end
                assert_boxes_cover(mixed / p.file, h.boxes, h.text, h.page_start, h.page_end)
            elif p.file.endswith(".docx"):
                assert p.paragraph is not None and p.page_start is None
            elif p.file == "plain.txt":
                assert (p.page_start, p.heading, p.paragraph, h.boxes) == (None,) * 4
    gen.close()


def test_incremental_extracts_only_what_changed(mixed: Path, tmp_path: Path) -> None:
    settings = fake_settings(tmp_path, mixed)
    first = index(settings)
    assert sorted(first.extracted) == ["b.pdf", "memo.docx", "page.html", "report.pdf"]
    again = index(settings)
    assert again.generation is None and again.extracted == []
    dm.pdf_from_text(seed_text() + "\n\nOne more paragraph at the end.", mixed / "b.pdf")
    third = index(settings)
    assert third.extracted == ["b.pdf"] and third.changed == ["b.pdf"]
    gen = open_current(settings.index_dir)
    assert third.chunks_embedded == gen.manifest["documents"]["b.pdf"]["chunks"]
    # re-extraction from scratch gives the same bytes: citations survive a full re-index
    before = {n: (gen.folder / TEXTS / n).read_bytes() for n in sorted(
        x.name for x in (gen.folder / TEXTS).iterdir())}
    gen.close()
    full = index(settings, full=True)
    assert len(full.extracted) == 4
    gen = open_current(settings.index_dir)
    after = {n: (gen.folder / TEXTS / n).read_bytes() for n in before}
    gen.close()
    assert after == before


# ---------------------------------------------------------------- API and CLI

def test_api_serves_text_original_and_rendered_pages(mixed: Path, tmp_path: Path) -> None:
    import io

    from fastapi.testclient import TestClient
    from PIL import Image

    from rag.serve.http import create_app

    (mixed / "evil.html").write_text(dm.adversarial_html(), encoding="utf-8")
    settings = fake_settings(tmp_path, mixed)
    index(settings)
    with TestClient(create_app(settings, watch=False)) as c:
        docs = {d["path"]: d for d in c.get("/documents").json()}
        assert docs["report.pdf"]["format"] == "pdf" and docs["plain.txt"]["format"] == "text"
        body = c.post("/ask", json={"question": "Ussuriysk farmers navigation",
                                    "files": ["report.pdf"]}).json()
        p = body["passages"][0]
        assert p["page_start"] >= 1 and p["highlight"]["boxes"]
        whole = c.get("/documents/report.pdf").json()
        assert whole["format"] == "pdf"
        assert_exact_passage(whole["text"], p, "report.pdf")  # exact in the served text
        span = c.get(f"/documents/report.pdf?start={p['start']}&end={p['end']}").json()
        assert span["span"]["text"] == p["text"] and span["stale"] is False
        assert span["span"]["page_start"] == p["page_start"]

        r = c.get("/documents/report.pdf/original")
        assert r.status_code == 200 and r.content == (mixed / "report.pdf").read_bytes()
        assert r.headers["content-type"] == "application/pdf"
        assert r.headers["content-disposition"].startswith("inline")
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "content-security-policy" not in r.headers  # would shut out the PDF viewer
        r = c.get("/documents/evil.html/original")
        assert r.headers["content-type"].startswith("text/html")
        assert r.headers["content-security-policy"].startswith("sandbox;")
        assert "script-src" not in r.headers["content-security-policy"]

        h = p["highlight"]
        r = c.get(f"/documents/report.pdf/pages/{h['page_start']}.png",
                  params={"start": h["start"], "end": h["end"]})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        img = Image.open(io.BytesIO(r.content)).convert("RGB")
        assert max(img.size) <= 2000
        px = json.loads(r.headers["x-highlight-boxes"])
        assert px
        x0, y0, x1, y1 = px[0]
        assert 0 <= x0 < x1 <= img.size[0] and 0 <= y0 < y1 <= img.size[1]
        arr = np.asarray(img)
        edge = arr[max(0, y0 - 2):y1 + 3, max(0, x0 - 2)]  # the red outline's left side
        assert ((edge[:, 0] > 180) & (edge[:, 1] < 80) & (edge[:, 2] < 80)).any()
        assert c.get("/documents/report.pdf/pages/999.png").status_code == 404
        assert c.get("/documents/plain.txt/pages/1.png").status_code == 404
        assert c.get("/documents/../x.pdf/original").status_code == 404


def test_cli_ask_prints_pages_and_text_prints_the_stored_text(mixed: Path, tmp_path: Path
                                                              ) -> None:
    settings = fake_settings(tmp_path, mixed)
    index(settings)
    base = [sys.executable, "-m", "rag.serve.cli"]
    common = ["--corpus", str(mixed), "--index", str(settings.index_dir), "--model", "fake"]
    out = subprocess.run(base + ["ask", "Ussuriysk farmers", "--files", "report.pdf"] + common,
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert re.search(r"^1\. report\.pdf:\d+-\d+  p\.\d+(-\d+)?  \[\d+:\d+\]", out.stdout, re.M)
    txt = subprocess.run(base + ["text", str(mixed / "report.pdf")] + common, cwd=ROOT,
                         capture_output=True, timeout=120)
    assert txt.returncode == 0
    gen = open_current(settings.index_dir)
    assert txt.stdout.decode("utf-8") == gen.extracted("report.pdf").text
    gen.close()
