"""Word (.docx) -> paragraphs, headings and tables in document order (python-docx).

Each block (a paragraph, or a table row by row with tab-separated cells, nested tables
in place) is its own paragraph of the text, separated by a blank line. The zip is checked
before anything is read: declared uncompressed size above the limit is refused as a
decompression bomb.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from ..dates import iso_day
from .layout import Extracted, ExtractError, Layout, Limits

VERSION = 1


def extractor_id() -> str:
    """python-docx version plus ours."""
    from importlib.metadata import version

    return f"rag-docx {VERSION}; python-docx {version('python-docx')}"


def check_zip(path: Path, limits: Limits) -> None:
    """Refuse a file that is not a readable zip with a Word body, or that would unpack
    to more than the limit (sizes as the zip declares them; reading stops there too)."""
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise ExtractError(f"not a readable .docx ({e})") from e
    total = sum(i.file_size for i in infos)
    if total > limits.max_unzipped_bytes:
        raise ExtractError(f"unpacks to {total:,} bytes, above the limit of "
                           f"{limits.max_unzipped_bytes:,} (a decompression bomb?)")
    if "word/document.xml" not in {i.filename for i in infos}:
        raise ExtractError("not a Word document (no word/document.xml)")


def _cell_blocks(cell: Any) -> list[str]:
    out = []
    for item in cell.iter_inner_content():
        if hasattr(item, "rows"):
            out.extend(_table_lines(item))
        elif item.text.strip():
            out.append(item.text.strip())
    return out


def _table_lines(table: Any) -> list[str]:
    lines = []
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:
            if id(cell._tc) in seen:  # a merged cell repeats across the columns it spans
                continue
            seen.add(id(cell._tc))
            cells.append(" ".join(_cell_blocks(cell)))
        if any(c.strip() for c in cells):
            lines.append("\t".join(cells))
    return lines


def extract_docx(path: Path, limits: Limits) -> Extracted:
    """Blocks in document order, with the heading each one falls under."""
    check_zip(path, limits)
    import docx

    try:
        d = docx.Document(str(path))
    except Exception as e:  # python-docx raises many kinds on a damaged package
        raise ExtractError(f"not a readable .docx ({type(e).__name__}: {e})") from e
    parts: list[str] = []
    paragraphs: list[int] = []
    sections: list[tuple[int, str, str | None]] = []
    length = 0
    title = (d.core_properties.title or "").strip()
    try:
        day = iso_day(d.core_properties.created) or iso_day(d.core_properties.modified)
    except ValueError:  # a malformed date property: no date from the metadata
        day = None
    for item in d.iter_inner_content():
        if hasattr(item, "rows"):
            block = "\n".join(_table_lines(item))
            heading = None
        else:
            block = item.text.strip()
            style = (item.style.name if item.style is not None else "") or ""
            heading = block if style.startswith(("Heading", "Title")) and block else None
        if not block:
            continue
        if parts:
            parts.append("\n\n")
            length += 2
        paragraphs.append(length)
        if heading:
            sections.append((length, heading, None))
            title = title or heading
        parts.append(block)
        length += len(block)
        if length > limits.max_chars:
            raise ExtractError(f"more than {limits.max_chars:,} characters of text "
                               "(RAG_EXTRACT_MAX_CHARS)")
    return Extracted("".join(parts), Layout("docx", extractor_id(), title or None,
                                            sections=tuple(sections),
                                            paragraphs=tuple(paragraphs), date=day))
