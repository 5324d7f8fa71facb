"""The tests' shared oracles, written once: an exact citation (a span is the file's text at its
offsets and its lines are the true lines) and PDF highlight boxes (PDFium's own characters
under the boxes are the span's words). Each is computed independently of rag's code."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

Box = Sequence[float]  # (page, x0, y0, x1, y1) in PDF user space, 1-based page


def file_text(path: Path) -> str:
    """A file's text as rag cites it: its bytes decoded as UTF-8, newlines untouched."""
    return path.read_bytes().decode("utf-8")


def lines_of(text: str, start: int, end: int) -> tuple[int, int]:
    """1-based inclusive line range of text[start:end] (end exclusive), by counting newlines."""
    return text.count("\n", 0, start) + 1, text.count("\n", 0, max(start, end - 1)) + 1


def assert_exact_span(text: str, start: int, end: int, line_start: int | None,
                      line_end: int | None, quoted: str, where: object = "") -> None:
    """A non-empty span inside text whose characters are `quoted` and whose 1-based inclusive
    lines are (line_start, line_end); both lines None only for records that carry none."""
    assert 0 <= start < end <= len(text), (where, start, end, len(text))
    assert text[start:end] == quoted, (where, start, end, text[start:end], quoted)
    if line_start is None and line_end is None:
        return
    assert (line_start, line_end) == lines_of(text, start, end), (where, start, end)


def _get(span: Any, key: str) -> Any:
    """A field of a record dict (JSON) or of a typed span (attribute)."""
    if isinstance(span, Mapping):
        return span.get(key)
    return getattr(span, key, None)


def assert_exact(text: str, span: Any, where: object = "") -> None:
    """`span` (a JSON record or a typed Passage/Span/Chunk) is text[start:end] with true lines."""
    quoted = _get(span, "text")
    assert_exact_span(text, _get(span, "start"), _get(span, "end"), _get(span, "line_start"),
                      _get(span, "line_end"), quoted if quoted is not None else _get(span, "quote"),
                      where)


def assert_exact_passage(text: str, passage: Any, where: object = "") -> None:
    """A passage and its highlight and reader answer (when present) are exact citations of
    text, each inside the passage."""
    assert_exact(text, passage, where)
    start, end = _get(passage, "start"), _get(passage, "end")
    for part in ("highlight", "answer"):
        h = _get(passage, part)
        if h is not None:
            assert start <= _get(h, "start") < _get(h, "end") <= end, (where, part, start, end)
            assert_exact(text, h, (where, part))


def squash(s: str) -> str:
    """Text without whitespace or PDFium's hyphen marks: for comparing layouts."""
    return re.sub(r"[\s\ufffe\x02]+", "", s)


def pdfium_pages(path: Path) -> list[str]:
    """Each page's text as PDFium itself gives it (independent of rag.text.formats)."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(path))
    try:
        out = []
        for page in doc:
            tp = page.get_textpage()
            out.append(tp.get_text_range())
            tp.close()
            page.close()
        return out
    finally:
        doc.close()


def assert_boxes_cover(pdf: Path, boxes: Sequence[Box], quoted: str, first_page: int,
                       last_page: int, slack: int = 2) -> None:
    """The highlight boxes of `quoted` lie on pages first_page..last_page, inside the page, and
    PDFium's own characters whose box centre falls in one of them, read in page order, are
    `quoted` (whitespace and hyphen marks aside) plus at most `slack` others."""
    import pypdfium2 as pdfium

    assert boxes, quoted
    assert {int(b[0]) for b in boxes} <= set(range(first_page, last_page + 1)), \
        (first_page, last_page, boxes)
    doc = pdfium.PdfDocument(str(pdf))
    inside: list[str] = []
    try:
        for page_no in range(first_page, last_page + 1):
            page = doc[page_no - 1]
            w, h = page.get_size()
            mine = [b for b in boxes if int(b[0]) == page_no]
            for _, x0, y0, x1, y1 in mine:  # on the page (unrotated user space)
                assert -1 <= x0 < x1 <= max(w, h) + 1 and -1 <= y0 < y1 <= max(w, h) + 1, \
                    (page_no, (w, h), (x0, y0, x1, y1))
            tp = page.get_textpage()
            for i in range(tp.count_chars()):
                l_, bo, r, t = tp.get_charbox(i)
                cx, cy = (l_ + r) / 2, (bo + t) / 2
                if any(x0 <= cx <= x1 and y0 <= cy <= y1 for _, x0, y0, x1, y1 in mine):
                    inside.append(tp.get_text_range(i, 1))
            tp.close()
    finally:
        doc.close()
    want, got = squash(quoted), squash("".join(inside))
    assert want in got and len(got) <= len(want) + slack, (pdf.name, want, got)


def assert_on_pages(pdf: Path, quoted: str, first_page: int | None, last_page: int | None) -> None:
    """`quoted` stands in PDFium's own text of pages first_page..last_page (whitespace and
    hyphen marks aside)."""
    assert first_page is not None and last_page is not None and first_page <= last_page, \
        (pdf.name, first_page, last_page)
    own = pdfium_pages(pdf)
    assert squash(quoted) in squash("".join(own[first_page - 1:last_page])), \
        (pdf.name, first_page, last_page, quoted)
