"""OCR of scanned PDF pages: real scans made by tests/scanmaker.py, the real Tesseract.

Oracles: the text each scan was drawn from, and PDFium's own character boxes in the
born-digital PDF the scan was rendered from (a scan is that PDF's page as an image of the
same size, so a word's box on the scan is the source's box, turned with the page)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag.text.formats import Extracted, Limits, extract, ocr
from rag.text.formats.pdf import render_page

from . import docmaker as dm
from . import scanmaker as sm
from .conftest import CORPUS, ROOT, need_font, skip_or_fail

pytest.importorskip("pypdfium2")
pytest.importorskip("fpdf")
need_font(dm.FONT)
try:
    ocr.engine_id()
except ocr.OcrUnavailable as e:
    skip_or_fail(f"needs Tesseract: {e}")

SEED = CORPUS / "sco-ai-cooperation-2025-09-01.txt"
PARAS = dm.paragraphs(SEED.read_text(encoding="utf-8"))
SCAN_TEXT = "\n\n".join(PARAS[3:5])  # about 90 words: a quick page to recognise
SIDE_TEXT = "\n\n".join(PARAS[5:6])
TEXT_1 = "\n\n".join(PARAS[1:3])
TEXT_3 = "\n\n".join(PARAS[6:8])
OPTS = ocr.OcrOptions(dpi=200)


def norm(s: str) -> str:
    return " ".join(s.split())


def cer(ref: str, hyp: str) -> float:
    """Character error rate after whitespace is collapsed (plain dynamic programming)."""
    a, b = norm(ref), norm(hyp)
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1] / max(1, len(a))


def page_slice(ex: Extracted, k: int) -> tuple[int, int]:
    """Offsets of page k's text (1-based)."""
    pages = list(ex.layout.pages) + [len(ex.text)]
    return pages[k - 1], pages[k]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ocr")


@pytest.fixture(scope="module")
def mixed(work: Path) -> tuple[Path, Path]:
    """Page 1 text, page 2 a scan of SCAN_TEXT, page 3 text, page 4 empty; and the
    born-digital PDF the scan was rendered from."""
    src = sm.text_page_pdf([SCAN_TEXT], work / "scan-source.pdf")
    img = sm.page_images(src, 200)[0]
    return sm.image_pdf([TEXT_1, img, TEXT_3, None], work / "mixed.pdf"), src


@pytest.fixture(scope="module")
def mixed_ex(mixed: tuple[Path, Path]) -> Extracted:
    return extract(mixed[0], Limits(ocr=OPTS))


@pytest.fixture(scope="module")
def sideways(work: Path) -> tuple[Path, Path]:
    """A scan fed in sideways (turned 90 degrees clockwise) and its source."""
    src = sm.text_page_pdf([SIDE_TEXT], work / "side-source.pdf")
    img = sm.page_images(src, 200)[0].rotate(-90, expand=True)
    return sm.image_pdf([img], work / "sideways.pdf"), src


# ---------------------------------------------------------------- the rule

def look(draws: bool = True, cover: float = 0.0) -> ocr.PageLook:
    return ocr.PageLook(draws, cover, 0)


def test_rule_text_layer_kept_from_32_letters_and_ocr_below() -> None:
    enough = "a" * 32
    fewer = "a" * 31
    scan = look(cover=1.0)
    assert not ocr.needs_ocr(enough, scan, "auto")  # a usable text layer is kept...
    assert ocr.needs_ocr(fewer, scan, "auto")  # ...a stamp on a scan is not
    assert not ocr.needs_ocr(fewer, look(cover=0.2), "auto")  # a short text page stays
    assert ocr.needs_ocr(fewer, look(cover=0.25), "auto")
    assert ocr.needs_ocr("", look(cover=0.0), "auto")  # outlines: no text, draws paths
    assert not ocr.needs_ocr("", look(draws=False), "auto")  # an empty page
    assert not ocr.needs_ocr("", look(draws=False), "force")
    assert ocr.needs_ocr(enough, scan, "force") and not ocr.needs_ocr("", scan, "off")
    # glyphs that map to no letters: a text layer of junk counts as none
    junk = "\ue000" * 40 + "a" * 39
    assert ocr.junk_share(junk) > 0.5 and ocr.needs_ocr(junk, look(), "auto")
    half = "\ue000" * 40 + "a" * 40
    assert ocr.junk_share(half) == 0.5 and not ocr.needs_ocr(half, look(), "auto")


def test_rule_on_real_pages(mixed: tuple[Path, Path]) -> None:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(mixed[0]))
    try:
        looks = [ocr.look(doc[k]) for k in range(4)]
    finally:
        doc.close()
    assert [lk.draws for lk in looks] == [True, True, True, False]
    assert looks[1].image_cover > 0.99 and looks[1].largest_image_px > 3_000_000
    assert looks[0].image_cover == 0.0


# ---------------------------------------------------------------- extraction

def test_mixed_pdf_ocrs_the_scan_only(mixed_ex: Extracted, mixed: tuple[Path, Path]) -> None:
    ex = mixed_ex
    assert ex.layout.ocr_pages == (2,)
    assert ex.ocr is not None and ex.ocr.ocred == [2] and ex.ocr.left_out == []
    a, b = page_slice(ex, 2)
    got = ex.text[a:b].strip()
    assert cer(SCAN_TEXT, got) < 0.02, got
    assert ex.layout.where(a + 5, a + 20).page_start == 2
    # the empty page adds nothing; the pages stay four
    assert len(ex.layout.pages) == 4 and page_slice(ex, 4)[0] == len(ex.text)
    # every character of the OCR text has a box on page 2 or is a join (NaN)
    boxes = ex.layout.boxes[a:b]
    letters = [i for i, c in enumerate(ex.text[a:b]) if not c.isspace()]
    assert not np.isnan(boxes[letters]).any()
    assert "ocr auto" in ex.layout.extractor


def test_text_layer_pages_are_byte_for_byte_what_pdfium_gives(
        mixed_ex: Extracted, mixed: tuple[Path, Path], work: Path) -> None:
    off = extract(mixed[0], Limits(ocr=ocr.OcrOptions(mode="off")))
    assert off.layout.ocr_pages == () and "ocr off" in off.layout.extractor
    for k in (1, 3):
        a, b = page_slice(mixed_ex, k)
        c, d = page_slice(off, k)
        assert mixed_ex.text[a:b].strip() == off.text[c:d].strip()
        sa, sb = mixed_ex.layout.boxes[a:b], off.layout.boxes[c:d]
        n = len(mixed_ex.text[a:b].strip())
        assert np.array_equal(sa[:n], sb[:n], equal_nan=True)
    # the test suite's adversarial PDF (columns, hyphens, a turned page, scripts): the same
    # text and boxes whatever the mode; its page 5, a rectangle and no text, is OCRed (it
    # draws something) and gives no word
    adv = dm.adversarial_pdf(work / "adv.pdf")
    auto = extract(adv, Limits(ocr=OPTS))
    never = extract(adv, Limits(ocr=ocr.OcrOptions(mode="off")))
    assert auto.text == never.text and auto.layout.ocr_pages == (5,)
    assert np.array_equal(auto.layout.boxes, never.layout.boxes, equal_nan=True)


def _source_boxes(src: Path) -> tuple[str, Extracted]:
    ex = extract(src, Limits(ocr=ocr.OcrOptions(mode="off")))
    return ex.text, ex


def _check_words_on_source(ex: Extracted, page: int, src: Extracted, turn_pw: float | None
                           ) -> int:
    """Each word of the OCR page that occurs once in the page and once in the source: its
    highlight box lies on the source's box of that word (turned for a sideways scan).
    Returns how many words were checked."""
    a, b = page_slice(ex, page)
    text = ex.text[a:b]
    checked = 0
    for m in re.finditer(r"(?<!\S)[A-Za-z]{5,}(?!\S)", text):  # whole OCR words
        w = m.group()
        if text.count(w) != 1 or src.text.count(w) != 1:
            continue
        boxes = ex.layout.boxes_for(a + m.start(), a + m.end())
        assert len(boxes) == 1 and boxes[0][0] == page, (w, boxes)
        _, x0, y0, x1, y1 = boxes[0]
        s = src.text.index(w)
        (_, u0, v0, u1, v1), = src.layout.boxes_for(s, s + len(w))
        if turn_pw is not None:  # turned 90 clockwise: (x, y) -> (y, pw - x)
            u0, v0, u1, v1 = v0, turn_pw - u1, v1, turn_pw - u0
        # the OCR box is the ink; the source's is the font's full line: ink lies inside it
        tol = 3.0
        assert u0 - tol <= x0 and x1 <= u1 + tol and v0 - tol <= y0 and y1 <= v1 + tol, (
            w, (x0, y0, x1, y1), (u0, v0, u1, v1))
        # and covers most of it along the line
        along = (x1 - x0) / (u1 - u0) if turn_pw is None else (y1 - y0) / (v1 - v0)
        assert along > 0.7, (w, along)
        checked += 1
    return checked


def test_highlight_boxes_lie_on_the_words(mixed_ex: Extracted, mixed: tuple[Path, Path]
                                         ) -> None:
    _, src = _source_boxes(mixed[1])
    assert _check_words_on_source(mixed_ex, 2, src, None) >= 20
    # render and check: the drawn boxes of a sentence on the page image hold ink
    a, _ = page_slice(mixed_ex, 2)
    boxes = mixed_ex.layout.boxes_for(a, a + 120)
    png, px, (w, h) = render_page(mixed[0], 2, boxes)
    plain, _, _ = render_page(mixed[0], 2, [])
    import io

    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(plain)).convert("L"))
    assert px and all(0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h for x0, y0, x1, y1 in px)
    for x0, y0, x1, y1 in px:
        inside = img[y0:y1, x0:x1]
        assert (inside < 100).mean() > 0.05  # text ink, not margin
    assert png != plain


def test_sideways_scan_is_turned_and_boxed(sideways: tuple[Path, Path]) -> None:
    ex = extract(sideways[0], Limits(ocr=OPTS))
    assert ex.layout.ocr_pages == (1,)
    assert cer(SIDE_TEXT, ex.text) < 0.02, ex.text
    _, src = _source_boxes(sideways[1])
    assert _check_words_on_source(ex, 1, src, sm.A4[0]) >= 10


def test_a_huge_image_page_hits_its_limit_with_a_clear_line(work: Path) -> None:
    from PIL import Image

    big = Image.new("L", (3000, 3000), 255)
    path = sm.image_pdf([TEXT_1, big], work / "huge.pdf", dpi=300)
    ex = extract(path, Limits(ocr=ocr.OcrOptions(dpi=200, max_pixels=4_000_000)))
    assert ex.layout.ocr_pages == () and ex.ocr is not None
    why = "it holds an image of 9,000,000 pixels, above the limit of 4,000,000 (RAG_OCR_MAX_PIXELS)"
    assert ex.ocr.left_out == [(2, why)]
    assert "page 2 left out: it holds an image of 9,000,000 pixels" in ex.ocr.line("huge.pdf")
    # the page rendered at the OCR resolution counts too
    ex = extract(path, Limits(ocr=ocr.OcrOptions(dpi=600, max_pixels=20_000_000)))
    assert ex.ocr is not None and "above the limit of 20,000,000" in ex.ocr.left_out[0][1]


# ---------------------------------------------------------------- rag index, the cache

def _tesseract_spy(folder: Path) -> Path:
    """A `tesseract` first on PATH that logs each recognition it runs, then runs the real one."""
    real = subprocess.run(["which", "tesseract"], check=True, capture_output=True, text=True).stdout.strip()
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "calls.log"
    spy = folder / "tesseract"
    spy.write_text(f"#!/bin/sh\ncase \"$*\" in *--psm*) echo \"$*\" >> {log};; esac\n"
                   f"exec {real} \"$@\"\n")
    spy.chmod(0o755)
    return log


def _index(corpus: Path, index: Path, spy: Path, *extra: str, **env: str
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rag.serve.cli", "index", "--corpus", str(corpus),
         "--index", str(index), "--model", "fake", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "PATH": f"{spy}:{os.environ['PATH']}", "RAG_OCR_DPI": "200", **env})


def test_rag_index_ocrs_once_remembers_limits_and_names_empty_files(work: Path) -> None:
    corpus = work / "corpus"
    corpus.mkdir()
    src = sm.text_page_pdf([SCAN_TEXT], work / "src2.pdf")
    img = sm.page_images(src, 200)[0]
    sm.image_pdf([TEXT_1, img], corpus / "mixed.pdf")
    sm.image_pdf([img], corpus / "slow.pdf")  # the same scan, under a tiny time limit below
    dm.scanned_pdf(corpus / "blank-scan.pdf")  # grey boxes only: OCR finds no word
    (corpus / "notes.txt").write_text("Plain text is never converted.\n")
    spy = work / "spy"
    calls = _tesseract_spy(spy)
    index = work / "index"

    first = _index(corpus, index, spy)
    assert first.returncode == 0, first.stderr
    err = [ln for ln in first.stderr.splitlines() if ln.strip()]
    line = [ln for ln in err if "mixed.pdf" in ln]
    assert len(line) == 1 and re.search(r"mixed\.pdf: OCR 1 page, \d+\.\d s$", line[0]), err
    blank = [ln for ln in err if "blank-scan.pdf" in ln]
    assert any("no text" in ln for ln in blank), err
    n_first = len(calls.read_text().splitlines())
    assert n_first >= 2 + 2  # orientation + text for mixed.pdf and slow.pdf (and blank)
    manifest = json.loads(next((index / "generations").iterdir()).joinpath(
        "manifest.json").read_text())
    assert "ocr auto" in manifest["documents"]["mixed.pdf"]["extractor"]

    # the same files again, everything re-extracted (--full): no page is recognised again
    calls.write_text("")
    again = _index(corpus, index, spy, "--full")
    assert again.returncode == 0, again.stderr
    assert calls.read_text() == ""
    assert "mixed.pdf: OCR 1 page (1 from the cache)" in again.stderr

    # a page over its time limit is left out with the reason and not tried again
    cache = index / "ocr"
    for p in cache.glob("*.jsonl"):
        p.unlink()
    calls.write_text("")
    slow = _index(corpus, index, spy, "--full", RAG_OCR_PAGE_TIMEOUT_S="0.05")
    assert slow.returncode == 0, slow.stderr
    assert "page 1 left out: OCR took longer than 0.05 s (RAG_OCR_PAGE_TIMEOUT_S)" in slow.stderr
    calls.write_text("")
    slow2 = _index(corpus, index, spy, "--full", RAG_OCR_PAGE_TIMEOUT_S="0.05")
    assert calls.read_text() == "", "a page that hit its limit was tried again"
    assert "OCR took longer than 0.05 s" in slow2.stderr

    # --ocr off: a new extractor id, the scan pages are left out and named
    off = _index(corpus, index, spy, "--ocr", "off")
    assert off.returncode == 0, off.stderr
    assert "slow.pdf" in off.stderr and "RAG_OCR=off" in off.stderr
