"""Scanned PDFs for the OCR tests, made from text (not a test module).

A "scan" is a page of text drawn with fpdf2 (DejaVu Sans), rendered to a greyscale image
with PDFium and put back into a new PDF as an image only: what a scanner or a fax makes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests import docmaker as dm

A4 = (595.28, 841.89)


def text_page_pdf(texts: Sequence[str], path: Path, size: float = 12.0) -> Path:
    """A born-digital PDF: one page per text, each paragraph a block."""
    pdf = dm._pdf()
    pdf.set_font("DejaVu", size=size)
    for text in texts:
        pdf.add_page()
        for block in dm.paragraphs(text):
            pdf.multi_cell(0, size * 1.3, block, align="L", new_x="LMARGIN", new_y="NEXT")
            pdf.ln(size * 0.6)
    pdf.output(str(path))
    return path


def page_images(pdf_path: Path, dpi: int = 200) -> list[Any]:
    """Every page of a PDF as a greyscale PIL image."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(pdf_path))
    try:
        return [doc[k].render(scale=dpi / 72, grayscale=True).to_pil().convert("L")
                for k in range(len(doc))]
    finally:
        doc.close()


def image_pdf(pages: Sequence[Any | str | None], path: Path, dpi: int = 200) -> Path:
    """A PDF whose pages are images (PIL), text (str: a born-digital page) or empty (None);
    each image fills its page at `dpi` (a landscape image makes a landscape page)."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format="A4")
    pdf.add_font("DejaVu", fname=str(dm.FONT))
    pdf.set_font("DejaVu", size=12)
    pdf.set_margins(56, 56, 56)
    pdf.set_auto_page_break(True, margin=50)
    for page in pages:
        if page is None:
            pdf.add_page()
        elif isinstance(page, str):
            pdf.add_page()
            for block in dm.paragraphs(page):
                pdf.multi_cell(0, 15.6, block, align="L", new_x="LMARGIN", new_y="NEXT")
                pdf.ln(7)
        else:
            w, h = page.size[0] * 72 / dpi, page.size[1] * 72 / dpi
            pdf.add_page(format=(w, h))
            buf = io.BytesIO()
            page.save(buf, format="PNG")
            pdf.image(buf, x=0, y=0, w=w, h=h)
    pdf.output(str(path))
    return path


def scan_of(texts: Sequence[str], path: Path, dpi: int = 200, turn: int = 0,
            work: Path | None = None) -> Path:
    """An image-only PDF of `texts` (one page each), turned `turn` degrees clockwise."""
    src = text_page_pdf(texts, (work or path.parent) / f".{path.stem}-src.pdf")
    imgs = [im.rotate(-turn, expand=True) if turn else im for im in page_images(src, dpi)]
    src.unlink()
    return image_pdf(imgs, path, dpi)
