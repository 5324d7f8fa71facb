"""Real PDF, HTML and DOCX files for the tests, built from text (not a test module).

PDFs with fpdf2 (a TTF font from the machine: DejaVu Sans), Word files with python-docx,
HTML by hand. Paragraphs are the text's blank-line-separated blocks; lines inside a block
stay lines (``<br>``, Word line breaks, PDF lines)."""

from __future__ import annotations

import html
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def paragraphs(text: str) -> list[str]:
    """Blank-line separated blocks, stripped; a leading BOM dropped."""
    blocks = re.split(r"\n[^\S\n]*\n\s*", text.lstrip("\ufeff"))
    return [b.strip() for b in blocks if b.strip()]


def _pdf(header: str | None = None) -> object:
    from fpdf import FPDF

    class Doc(FPDF):  # type: ignore[misc]
        def header(self) -> None:
            if header and self.page_no() != 5:
                self.set_font("DejaVu", size=8)
                self.cell(0, 10, header, new_x="LMARGIN", new_y="NEXT")
                self.ln(6)

        def footer(self) -> None:
            if header and self.page_no() != 5:
                self.set_y(-30)
                self.set_font("DejaVu", size=8)
                self.cell(0, 10, f"page {self.page_no()}", align="C")

    pdf = Doc(unit="pt", format="A4")
    pdf.set_creation_date(__import__("datetime").datetime(2025, 1, 1,
                          tzinfo=__import__("datetime").timezone.utc))
    pdf.add_font("DejaVu", fname=str(FONT))
    pdf.set_font("DejaVu", size=11)
    pdf.set_auto_page_break(True, margin=50)
    pdf.set_margins(56, 56, 56)
    return pdf


def pdf_from_text(text: str, path: Path, title: str | None = None) -> Path:
    """Single-column PDF: one block per paragraph, 8 pt of space between them."""
    pdf = _pdf()
    if title:
        pdf.set_title(title)
    pdf.add_page()
    for block in paragraphs(text):
        pdf.multi_cell(0, 14, block, align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(8)
    pdf.output(str(path))
    return path


def html_from_text(text: str, path: Path, title: str) -> Path:
    """A plain web page: one ``<p>`` per paragraph, lines joined by ``<br>``."""
    body = "\n".join("<p>" + "<br>\n".join(html.escape(line) for line in b.split("\n")) + "</p>"
                     for b in paragraphs(text))
    path.write_text(f"<!doctype html>\n<html><head><meta charset='utf-8'><title>"
                    f"{html.escape(title)}</title>\n<style>p {{ margin: 1em; }}</style>"
                    f"<script>var x = 1;</script></head>\n<body>\n{body}\n</body></html>\n",
                    encoding="utf-8")
    return path


def docx_from_text(text: str, path: Path) -> Path:
    """A Word file: one paragraph per block (its lines as line breaks)."""
    import docx

    d = docx.Document()
    for block in paragraphs(text):
        d.add_paragraph(block)
    d.core_properties.created = __import__("datetime").datetime(2025, 1, 1)
    d.save(str(path))
    return path


LOREM = ("Regional cooperation in digital infrastructure keeps growing across member states. "
         "Engineers from several countries share data centres, cables and standards. ")


def adversarial_pdf(path: Path) -> Path:
    """Five pages: two columns; a word hyphenated at a line end; a rotated page; Cyrillic
    and Greek text; a page with no text; a header and footer repeated on every page."""
    import pypdfium2 as pdfium

    pdf = _pdf(header="Quarterly Report • Observation")
    pdf.add_page()  # 1: two columns
    y = pdf.get_y()
    pdf.set_xy(56, y)
    pdf.multi_cell(230, 14, "LEFT COLUMN starts here. " + LOREM * 3 + "Left column ends.",
                   align="L")
    pdf.set_xy(310, y)
    pdf.multi_cell(230, 14, "RIGHT COLUMN starts here. " + LOREM * 3 + "Right column ends.",
                   align="L")
    pdf.add_page()  # 2: hyphenation at a line end, a ligature-prone word
    pdf.multi_cell(0, 14, "The agreement deepened regional coopera-\ntion in artificial "
                   "intelligence and the official office efficiency.", align="L",
                   new_x="LMARGIN", new_y="NEXT")
    pdf.add_page()  # 3: to be rotated
    pdf.multi_cell(0, 14, "This page is rotated by ninety degrees.", align="L",
                   new_x="LMARGIN", new_y="NEXT")
    pdf.add_page()  # 4: non-Latin scripts
    pdf.multi_cell(0, 14, "Шанхайская организация сотрудничества. Ψηφιακή συνεργασία.",
                   align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.add_page()  # 5: only a drawing, no text at all
    pdf.rect(100, 200, 200, 100)
    tmp = path.with_suffix(".tmp.pdf")
    pdf.output(str(tmp))
    doc = pdfium.PdfDocument(str(tmp))
    doc[2].set_rotation(90)
    doc.save(str(path))
    doc.close()
    tmp.unlink()
    return path


LIGATURES_SHAPED = "Shaped ligatures: the finance office reflects fluid official filings."
LIGATURES_CODED = ("Ligature code points: the \ufb01scal o\ufb03cer \ufb02agged \ufb01ve "
                   "\ufb02ows.")  # U+FB01 fi, U+FB03 ffi, U+FB02 fl
FOOTNOTES = ("Source: the national statistics office, yearbook 2025.",
             "Estimate by the secretariat, not yet audited.")
TABLE = (("Country", "Sector", "Share"),
         ("China", "Digital infrastructure and data centres in member states", "41%"),
         ("Russia", "Energy", "23%"),
         ("India", "Agriculture", "12%"))


def has_shaping() -> bool:
    """fpdf2 can shape text (ligature glyphs) only with uharfbuzz installed."""
    try:
        import uharfbuzz  # noqa: F401
    except ImportError:
        return False
    return True


def _footnote(pdf: object, n: int, text: str) -> None:
    """Footnote `n` at the bottom of the page: a short rule, a raised marker, small text."""
    y = pdf.h - 110  # type: ignore[attr-defined]
    pdf.line(56, y, 200, y)  # type: ignore[attr-defined]
    pdf.set_xy(56, y + 4)  # type: ignore[attr-defined]
    pdf.set_font("DejaVu", size=8)  # type: ignore[attr-defined]
    _sup(pdf, 10, str(n))
    pdf.write(10, " " + text)  # type: ignore[attr-defined]
    pdf.set_font("DejaVu", size=11)  # type: ignore[attr-defined]


def _sup(pdf: object, h: float, marker: str) -> None:
    """A superscript marker (a smaller, raised digit, as word processors set it)."""
    pdf.char_vpos = "SUP"  # type: ignore[attr-defined]
    pdf.write(h, marker)  # type: ignore[attr-defined]
    pdf.char_vpos = "LINE"  # type: ignore[attr-defined]


def structures_pdf(path: Path, shaping: bool | None = None) -> Path:
    """Three pages of what reports are made of (for comparing extractors):

    1. ligatures: a sentence shaped by HarfBuzz (DejaVu Sans turns fi/ffi/fl into ligature
       glyphs whose text is "fi", ...; only when `shaping` and uharfbuzz is installed), and
       one written with the ligature code points U+FB01-FB03 (the same ligature glyphs of
       the font, their text the ligature characters); a body paragraph with a superscript
       footnote marker, footnote 1 drawn after the body (the order of LaTeX and Word);
    2. a footnote marker again, footnote 2 drawn as soon as its marker is met, before the
       rest of the body (content order is not reading order);
    3. a 4 x 3 table with ruled cells, one cell wrapping onto two lines."""
    shaping = has_shaping() if shaping is None else shaping
    pdf = _pdf()
    pdf.add_page()  # 1
    if shaping:
        pdf.set_text_shaping(True)
        pdf.multi_cell(0, 14, LIGATURES_SHAPED, align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_shaping(False)
    pdf.ln(8)
    pdf.multi_cell(0, 14, LIGATURES_CODED, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(8)
    pdf.write(14, "The fund grew by a third in 2024.")
    _sup(pdf, 14, "1")
    pdf.write(14, " Most of the money went to ports and railways. " + LOREM)
    pdf.ln(22)
    pdf.multi_cell(0, 14, "Body of page one ends here.", new_x="LMARGIN", new_y="NEXT")
    _footnote(pdf, 1, FOOTNOTES[0])
    pdf.add_page()  # 2
    pdf.set_xy(56, 56)
    pdf.write(14, "Page two begins here. Trade rose by a fifth.")
    _sup(pdf, 14, "2")
    y = pdf.get_y()
    _footnote(pdf, 2, FOOTNOTES[1])
    pdf.set_xy(56, y + 14)
    pdf.multi_cell(0, 14, "After the second marker the body goes on. " + LOREM,
                   align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(0, 14, "Body of page two ends here.", new_x="LMARGIN", new_y="NEXT")
    pdf.add_page()  # 3
    pdf.multi_cell(0, 14, "Table 1. Shares by country.", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    from fpdf.enums import TextEmphasis
    from fpdf.fonts import FontFace

    with pdf.table(col_widths=(90, 150, 60), width=300, align="LEFT", text_align="LEFT",
                   headings_style=FontFace(emphasis=TextEmphasis.NONE)) as table:
        for row in TABLE:
            r = table.row()
            for cell in row:
                r.cell(cell)
    pdf.ln(10)
    pdf.multi_cell(0, 14, "Text after the table.", new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))
    return path


def scanned_pdf(path: Path) -> Path:
    """Two pages of pictures and drawings only: what a scan looks like to a text extractor."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format="A4")
    for _ in range(2):
        pdf.add_page()
        pdf.set_fill_color(200, 200, 200)
        pdf.rect(50, 50, 400, 600, style="F")
    pdf.output(str(path))
    return path


def encrypted_pdf(path: Path) -> Path:
    """A PDF that needs a password to open."""
    pdf = _pdf()
    pdf.set_encryption(owner_password="owner", user_password="secret")
    pdf.add_page()
    pdf.multi_cell(0, 14, "Secret text nobody may index.")
    pdf.output(str(path))
    return path


def zip_bomb_docx(path: Path, unpacked: int) -> Path:
    """A .docx-looking zip whose document.xml unpacks to `unpacked` bytes of zeros."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open("word/document.xml", "w") as f:
            block = b"0" * (1 << 20)
            for _ in range(unpacked // len(block)):
                f.write(block)
    return path


def slow_html(path: Path, divs: int = 400_000) -> Path:
    """Valid HTML that takes seconds to walk: hundreds of thousands of small elements."""
    path.write_text("<html><body>" + "<div><span>word</span> <b>x</b></div>" * divs
                    + "</body></html>", encoding="utf-8")
    return path


def adversarial_html() -> str:
    """Scripts, styles, hidden elements, nested tables, headings with ids, markup as text."""
    return """<!doctype html>
<html><head><title>Adversarial  page</title>
<style>.x { color: red }</style>
<script>document.title = "pwned"; window.PWNED = 1;</script></head>
<body>
<h1 id="top">Main heading</h1>
<p>Visible   paragraph
 with <b>bold</b> and <i>italic</i> words.</p>
<div hidden>hidden by attribute</div>
<p style="display:none">hidden by style</p>
<span style="visibility: hidden">invisible span</span>
<noscript>noscript text</noscript>
<template><p>template text</p></template>
<h2><a id="tables"></a>Tables section</h2>
<table><tr><th>Country</th><th>Share</th></tr>
<tr><td>China</td><td><table><tr><td>inner cell</td></tr></table></td></tr></table>
<p>&lt;script&gt;alert("xss")&lt;/script&gt; is shown as text.</p>
<pre>  preformatted
    lines kept</pre>
<ul><li>first item</li><li>second item</li></ul>
</body></html>
"""


def docx_with_structure(path: Path, extra: Sequence[str] = ()) -> Path:
    """Headings, paragraphs, a table with a nested table."""
    import docx

    d = docx.Document()
    d.add_heading("Annual Report", 0)
    d.add_heading("Introduction", 1)
    d.add_paragraph("The first paragraph introduces the report.")
    d.add_paragraph("A second paragraph follows.")
    d.add_heading("Figures", 1)
    t = d.add_table(rows=2, cols=2)
    t.cell(0, 0).text, t.cell(0, 1).text = "Country", "Share"
    t.cell(1, 0).text = "China"
    t.cell(1, 1).add_table(rows=1, cols=1).cell(0, 0).text = "nested value"
    for p in extra:
        d.add_paragraph(p)
    d.add_paragraph("Closing words after the table.")
    d.save(str(path))
    return path
