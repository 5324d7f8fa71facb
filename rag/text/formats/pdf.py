"""PDF with a text layer -> text per page, with every character's box (PDFium via pypdfium2).

Lines of a paragraph are joined with a space (PDFium already re-joins words it hyphenated
at a line end); a line pitch over 1.6 line heights, a jump up the page (next column) or a
new page starts a new paragraph (a blank line). Each character of the text keeps the box
of the glyph it came from (PDFium's loose box: the font's full line height), so a cited
span can be drawn on its page.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..dates import pdf_metadata_day
from .layout import NO_TEXT_LAYER, Box, Extracted, ExtractError, Layout, Limits
from .ocr import OcrRun, describe

VERSION = 1  # of the rules above; bump when the text they produce changes
NAN4 = (math.nan,) * 4
_DROP = {0x02, 0xFFFE, 0xFFFF, 0x00}  # PDFium's hyphen mark (word re-joined), non-characters


def extractor_id() -> str:
    """pypdfium2 and PDFium versions plus ours."""
    import pypdfium2

    return f"rag-pdf {VERSION}; pypdfium2 {pypdfium2.PYPDFIUM_INFO}; pdfium {pypdfium2.PDFIUM_INFO}"


def open_pdf(path: Path) -> Any:
    """The PdfDocument, or ExtractError naming why it cannot be opened."""
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as e:
        if "password" in str(e).lower():
            raise ExtractError("encrypted (a password is needed to open it)") from e
        raise ExtractError(f"not a readable PDF ({e})") from e


def _lines(tp: Any) -> list[list[tuple[str, tuple[float, float, float, float]]]]:
    """The page's characters with their boxes, split at PDFium's line breaks."""
    import pypdfium2.raw as raw

    n = tp.count_chars()
    lines: list[list[tuple[str, tuple[float, float, float, float]]]] = [[]]
    i = prev = 0
    while i < n:
        u = raw.FPDFText_GetUnicode(tp.raw, i)
        j = i + 1
        if 0xD800 <= u < 0xDC00 and j < n:  # UTF-16 pair: one character, the first box
            lo = raw.FPDFText_GetUnicode(tp.raw, j)
            if 0xDC00 <= lo < 0xE000:
                u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
                j += 1
        if u == 0x0D or (u == 0x0A and prev != 0x0D):  # PDFium ends a line with \r\n
            lines.append([])
        if u not in (0x0D, 0x0A) and u not in _DROP and not (0xD800 <= u < 0xE000):
            ch = "\t" if u == 0x09 else (" " if u < 0x20 else chr(u))
            box = NAN4
            if not raw.FPDFText_IsGenerated(tp.raw, i):
                l_, b, r, t = tp.get_charbox(i, loose=True)
                if r > l_ or t > b:
                    box = (l_, b, r, t)
            lines[-1].append((ch, box))
        prev = u
        i = j
    return lines


def _ends(line: list[tuple[str, tuple[float, float, float, float]]]
          ) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """(bottom, top) of the first and of the last glyph of a line (None: no glyph)."""
    ys = [(b[1], b[3]) for _, b in line if b[0] == b[0]]
    return (ys[0], ys[-1]) if ys else None


def _page_text(lines: list[list[tuple[str, tuple[float, float, float, float]]]]
               ) -> tuple[list[str], list[tuple[float, float, float, float]]]:
    """Characters and boxes of one page, lines joined into paragraphs."""
    chars: list[str] = []
    boxes: list[tuple[float, float, float, float]] = []
    prev: tuple[float, float] | None = None  # (bottom, top) of the last glyph so far
    for line in lines:
        while line and line[-1][0].isspace():
            line.pop()
        while line and line[0][0].isspace():
            line.pop(0)
        ends = _ends(line)
        if not line:
            if chars:
                prev = None  # an empty line: the next one opens a paragraph
            continue
        if chars:
            if prev is None or ends is None:
                join = "\n\n"
            else:
                first = ends[0]
                height = max(prev[1] - prev[0], first[1] - first[0], 1.0)
                pitch = prev[0] - first[0]  # bottom to bottom (font boxes: line to line)
                moved_up = first[1] > prev[1] + 0.5 * height
                join = "\n\n" if moved_up or pitch > 1.6 * height else " "
            if join == " " and chars[-1] == "-":
                join = ""  # a compound split at its own hyphen ("state-owned")
            chars.extend(join)
            boxes.extend([NAN4] * len(join))
        for ch, box in line:
            chars.append(ch)
            boxes.append(box)
        prev = ends[1] if ends is not None else prev
    return chars, boxes


def extract_pdf(path: Path, limits: Limits, ocr: OcrRun | None = None) -> Extracted:
    """Text of every page, the offset where each page starts and every character's box;
    pages without a usable text layer are OCRed (ocr.py: the rule, the limits)."""
    run = ocr or OcrRun(limits.ocr)
    doc = open_pdf(path)
    try:
        n = len(doc)
        if n > limits.max_pages:
            raise ExtractError(f"{n:,} pages is above the limit of {limits.max_pages:,} "
                               "(RAG_EXTRACT_MAX_PAGES)")
        chars: list[str] = []
        boxes: list[tuple[float, float, float, float]] = []
        pages: list[int] = []
        for k in range(n):
            page = doc[k]
            tp = page.get_textpage()
            try:
                pc, pb = _page_text(_lines(tp))
                scanned = run.page(page, k + 1, "".join(pc))
                if scanned is not None:
                    pc, pb = scanned
            finally:
                tp.close()
                page.close()
            if chars and pc:
                chars.extend("\n\n")
                boxes.extend([NAN4, NAN4])
            pages.append(len(chars))
            chars.extend(pc)
            boxes.extend(pb)
            if len(chars) > limits.max_chars:
                raise ExtractError(f"more than {limits.max_chars:,} characters of text "
                                   "(RAG_EXTRACT_MAX_CHARS)")
        text = "".join(chars)
        if not text.strip():
            raise ExtractError(_no_text(run, n))
        title = (doc.get_metadata_value("Title") or "").strip() or None
        day = pdf_metadata_day({k: doc.get_metadata_value(k) for k in ("CreationDate",
                                                                      "ModDate")})
    finally:
        doc.close()
    arr = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    assert len(arr) == len(text)
    layout = Layout("pdf", f"{extractor_id()}; {describe(run.opts)}", title, tuple(pages),
                    boxes=arr, ocr_pages=tuple(run.report.ocred), date=day)
    return Extracted(text, layout, run.report)


def _no_text(run: OcrRun, n: int) -> str:
    """Why a PDF gave no text: its pages left out, or OCR found nothing."""
    if run.report.left_out:
        return f"{NO_TEXT_LAYER}; {run.report.why()}"
    if run.report.ocred:
        return f"{NO_TEXT_LAYER}; OCR found no words on {n} page{'s' if n != 1 else ''}"
    return f"{NO_TEXT_LAYER}; its pages draw nothing"


MAX_RENDER_PX = 2000  # longest side of a rendered page
MAX_RENDER_DPI = 200


def render_page(path: Path, page_no: int, boxes: list[Box], dpi: int = 110
                ) -> tuple[bytes, list[tuple[int, int, int, int]], tuple[int, int]]:
    """PNG of one page (1-based) with the boxes drawn; the boxes in image pixels; the size."""
    import pypdfium2.raw as raw
    from PIL import ImageDraw

    doc = open_pdf(path)
    try:
        if not 1 <= page_no <= len(doc):
            raise ExtractError(f"page {page_no} is outside the document (1..{len(doc)})")
        page = doc[page_no - 1]
        w, h = page.get_size()
        side = max(w, h)
        scale = min(min(dpi, MAX_RENDER_DPI) / 72.0, MAX_RENDER_PX / max(side, 1.0))
        img = page.render(scale=scale).to_pil().convert("RGB")
        iw, ih = img.size
        px: list[tuple[int, int, int, int]] = []
        for p, x0, y0, x1, y1 in boxes:
            if p != page_no:
                continue
            pts = []
            for x, y in ((x0, y0), (x1, y1)):
                dx, dy = raw.c_int(), raw.c_int()
                raw.FPDF_PageToDevice(page.raw, 0, 0, iw, ih, 0, x, y, dx, dy)
                pts.append((dx.value, dy.value))
            (ax, ay), (bx, by) = pts
            px.append((min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)))
        draw = ImageDraw.Draw(img, "RGBA")
        for a, b, c, d in px:
            draw.rectangle((a - 2, b - 2, c + 2, d + 2), fill=(255, 200, 0, 80),
                           outline=(220, 0, 0, 255), width=2)
        page.close()
    finally:
        doc.close()
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue(), px, (iw, ih)
