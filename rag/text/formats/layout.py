"""The records of a converted document: its text, where each part of it sits in the original
(``Layout``, ``Where``), the limits a conversion runs under and its error. Every format module
(pdf.py, html.py, docx.py) and the worker import these from here, not from the package."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .ocr import OcrOptions, OcrReport

# suffix -> format
FORMATS = {".pdf": "pdf", ".html": "html", ".htm": "html", ".docx": "docx"}
NO_TEXT_LAYER = "no text layer (scanned pages?)"


class ExtractError(ValueError):
    """A file that cannot be turned into text; the message is the reason, in one line."""


@dataclass(frozen=True)
class Limits:
    """What one untrusted file may cost."""

    max_bytes: int = 200_000_000
    max_pages: int = 5_000
    max_chars: int = 50_000_000
    timeout_s: float = 120.0
    max_unzipped_bytes: int = 1_000_000_000  # DOCX: declared size of all members together
    memory_mb: int = 4096  # address space of the extraction process (0: no limit)
    ocr: OcrOptions = field(default_factory=OcrOptions)  # PDF pages without a text layer


@dataclass(frozen=True)
class Where:
    """Where a span of the extracted text sits in the original."""

    page_start: int | None = None  # PDF, 1-based
    page_end: int | None = None
    heading: str | None = None  # HTML/DOCX: the nearest heading at or before the span
    heading_id: str | None = None  # HTML: that heading's id, for a #fragment
    paragraph: int | None = None  # DOCX: 1-based index of the block the span starts in


Box = tuple[int, float, float, float, float]  # page (1-based), x0, y0, x1, y1 in PDF points


@dataclass(frozen=True)
class Layout:
    """Where each part of an extracted text sits in its original file."""

    format: str
    extractor: str
    title: str | None = None
    pages: tuple[int, ...] = ()  # PDF: offset where each page's text starts
    sections: tuple[tuple[int, str, str | None], ...] = ()  # (offset, heading, id)
    paragraphs: tuple[int, ...] = ()  # DOCX: offset where each block starts
    # PDF: one row per character of the text, (x0, y0, x1, y1) in PDF user space (origin
    # bottom left, unrotated page), NaN for characters that are not glyphs (joins, breaks)
    boxes: np.ndarray | None = field(default=None, compare=False, repr=False)
    ocr_pages: tuple[int, ...] = ()  # PDF: the pages whose text is OCR (1-based)
    # the day the file's own metadata gives (PDF/DOCX properties, HTML <meta>), UTC
    date: str | None = None

    def page_of(self, offset: int) -> int | None:
        """1-based page holding the character at ``offset`` (None: not a PDF)."""
        return bisect_right(self.pages, offset) if self.pages else None

    def where(self, start: int, end: int) -> Where:
        """The page range, heading and paragraph of ``text[start:end]``."""
        last = max(start, end - 1)
        heading = anchor = None
        if self.sections:
            i = bisect_right([s[0] for s in self.sections], start) - 1
            if i >= 0:
                _, heading, anchor = self.sections[i]
        para = bisect_right(self.paragraphs, start) if self.paragraphs else None
        return Where(self.page_of(start), self.page_of(last), heading, anchor, para or None)

    def boxes_for(self, start: int, end: int) -> list[Box]:
        """The boxes of the glyphs of ``text[start:end]``, merged per line (PDF only)."""
        if self.boxes is None or not self.pages:
            return []
        out: list[list[float]] = []
        cur: list[float] | None = None
        cur_page = 0
        rows = self.boxes[start:end]
        for i, (x0, y0, x1, y1) in enumerate(rows.tolist()):
            if x0 != x0:  # NaN: not a glyph
                continue
            page = bisect_right(self.pages, start + i)
            if cur is not None and page == cur_page:
                mid = (y0 + y1) / 2
                same_line = cur[2] <= mid <= cur[4] and x0 >= cur[1] - 1.0 \
                    and x0 - cur[3] < 3 * max(y1 - y0, 1.0)
                if same_line:
                    cur[1], cur[2] = min(cur[1], x0), min(cur[2], y0)
                    cur[3], cur[4] = max(cur[3], x1), max(cur[4], y1)
                    continue
            cur = [float(page), x0, y0, x1, y1]
            cur_page = page
            out.append(cur)
        return [(int(b[0]), round(b[1], 2), round(b[2], 2), round(b[3], 2), round(b[4], 2))
                for b in out]

    def to_json(self) -> dict[str, Any]:
        """The layout without the boxes (those go to their own .npy file)."""
        out = {"format": self.format, "extractor": self.extractor, "title": self.title,
               "pages": list(self.pages), "sections": [list(s) for s in self.sections],
               "paragraphs": list(self.paragraphs), "date": self.date}
        if self.ocr_pages:
            out["ocr_pages"] = list(self.ocr_pages)
        if self.date is not None:
            out["date"] = self.date
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any], boxes: np.ndarray | None = None) -> Layout:
        """The inverse of to_json."""
        return cls(data["format"], data["extractor"], data.get("title"),
                   tuple(data.get("pages", ())),
                   tuple((int(a), str(h), i) for a, h, i in data.get("sections", ())),
                   tuple(data.get("paragraphs", ())), boxes,
                   tuple(int(p) for p in data.get("ocr_pages", ())), data.get("date"))


@dataclass(frozen=True)
class Extracted:
    """A converted document: the text people can cite and where each part sits."""

    text: str
    layout: Layout
    ocr: OcrReport | None = field(default=None, compare=False)  # PDF: what OCR did (not stored)
