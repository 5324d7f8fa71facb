"""Documents as people keep them: PDF, HTML and Word files turned into text people can cite.

    extract(path, limits) -> Extracted(text, layout)

``text`` is what offsets index into (stored with the generation as plain UTF-8);
``layout`` says where each part of it sits in the original: the PDF page and the boxes of
its characters, the HTML heading, the Word paragraph. One module per format (pdf.py,
html.py, docx.py); worker.py runs them in a separate process under a time limit.
``.txt``/``.md`` files never come here: corpus.py reads them as they are.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .ocr import OcrOptions, OcrReport, OcrRun

from .layout import (FORMATS, NO_TEXT_LAYER, Extracted, ExtractError, Layout, Limits,
                     Where)

__all__ = ["FORMATS", "NO_TEXT_LAYER", "Extracted", "ExtractError", "Layout", "Limits", "Where",
           "OcrOptions", "OcrReport", "OcrRun", "format_of", "extractor_id", "check_size",
           "extract", "save_extracted", "load_extracted"]


def format_of(path: Path) -> str | None:
    """The format a file is converted from, by suffix (None: plain text or unsupported)."""
    return FORMATS.get(path.suffix.lower())


def extractor_id(fmt: str, limits: Limits | None = None) -> str:
    """Name and version of the code that converts one format (recorded in the manifest;
    a different id means the stored text may differ, so the file is extracted again).
    For PDF it names the OCR mode and engine too (from ``limits``)."""
    if fmt == "pdf":
        from .ocr import describe
        from .pdf import extractor_id as pid
        return f"{pid()}; {describe((limits or Limits()).ocr)}"
    if fmt == "html":
        from .html import extractor_id as hid
        return hid()
    from .docx import extractor_id as did
    return did()


def check_size(size: int, limits: Limits) -> None:
    """ExtractError if a file of `size` bytes is over the limit."""
    if size > limits.max_bytes:
        raise ExtractError(f"{size:,} bytes is above the limit of {limits.max_bytes:,} "
                           "(RAG_EXTRACT_MAX_BYTES)")


def extract(path: Path, limits: Limits, ocr: OcrRun | None = None) -> Extracted:
    """Convert one file, in this process (worker.py runs this under a time limit); ``ocr``
    carries cached OCR pages and callbacks (PDF only; default: OCR as ``limits.ocr`` says,
    no cache)."""
    fmt = format_of(path)
    if fmt is None:
        raise ExtractError(f"unsupported suffix {path.suffix!r}")
    check_size(path.stat().st_size, limits)
    if fmt == "pdf":
        from .pdf import extract_pdf
        out = extract_pdf(path, limits, ocr)
    else:
        if fmt == "html":
            from .html import extract_html as run
        else:
            from .docx import extract_docx as run
        out = run(path, limits)
    if len(out.text) > limits.max_chars:
        raise ExtractError(f"{len(out.text):,} characters of text is above the limit of "
                           f"{limits.max_chars:,} (RAG_EXTRACT_MAX_CHARS)")
    if not out.text.strip():  # (pdf.py says why itself)
        raise ExtractError("no text")
    return out


def save_extracted(folder: Path, sha256: str, ex: Extracted) -> None:
    """Write text, layout and (PDF) boxes as plain files named by the source's sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{sha256}.txt", f"{sha256}.json"]
    (folder / names[0]).write_bytes(ex.text.encode("utf-8"))
    (folder / names[1]).write_text(json.dumps(ex.layout.to_json(), ensure_ascii=False,
                                              sort_keys=True))
    if ex.layout.boxes is not None:
        names.append(f"{sha256}.boxes.npy")
        np.save(folder / names[2], np.ascontiguousarray(ex.layout.boxes, dtype=np.float32),
                allow_pickle=False)


def load_extracted(folder: Path, sha256: str, mmap: bool = False) -> Extracted:
    """Read what save_extracted wrote."""
    text = (folder / f"{sha256}.txt").read_bytes().decode("utf-8")
    data = json.loads((folder / f"{sha256}.json").read_text())
    npy = folder / f"{sha256}.boxes.npy"
    boxes = (np.load(npy, allow_pickle=False, mmap_mode="r" if mmap else None)
             if npy.exists() else None)
    return Extracted(text, Layout.from_json(data, boxes))
