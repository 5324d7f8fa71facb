"""Load the corpus: every ``.txt``/``.md`` file below a folder, text never altered; PDF, HTML
and DOCX files converted to text by ``formats`` (the extracted text is what offsets index)."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..digest import file_digest
from ..errors import CorpusError
from ..types import Document
from .formats import (FORMATS, Extracted, ExtractError, Limits, check_size, extractor_id,
                      format_of)

if TYPE_CHECKING:
    from .formats.ocr import OcrCache, PageOcr
    from .formats.worker import ExtractionWorker

log = logging.getLogger(__name__)
ocr_log = logging.getLogger("rag.ocr")  # `rag index` shows its INFO lines (one per OCRed file)

TEXT_SUFFIXES = (".txt", ".md")
SUFFIXES = TEXT_SUFFIXES + tuple(FORMATS)
# News files open with " date 2025-09-01 Title"; we read it as metadata only.
_DATE_LINE = re.compile(r"^\ufeff?\s*date\s+(\d{4}-\d{2}-\d{2})\s+(.+?)\s*$")


@dataclass(frozen=True)
class Skipped:
    """A file left out of the corpus, and why."""

    path: str
    reason: str


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def list_files(corpus_dir: Path) -> list[Path]:
    """Corpus files, recursive, sorted by their POSIX relative path; hidden entries skipped."""
    if not corpus_dir.is_dir():
        raise CorpusError(
            f"corpus folder {str(corpus_dir)!r} does not exist or is not a folder; "
            "pass --corpus DIR (or set RAG_CORPUS_DIR) to a folder of .txt/.md/.pdf/.html/"
            ".docx files"
        )
    root = os.path.realpath(corpus_dir)
    found: list[tuple[str, Path]] = []
    # os.walk, not rglob + resolve per file: a million-chunk corpus is ~50k files, and a
    # no-op `rag index` must stay cheap; realpath only per folder and per symlink
    for dirpath, dirs, files in os.walk(corpus_dir, followlinks=True):
        rel_dir = os.path.relpath(dirpath, corpus_dir)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        real_dir = os.path.realpath(dirpath)
        inside = real_dir == root or real_dir.startswith(root + os.sep)
        for name in files:
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in SUFFIXES:
                continue
            path = Path(dirpath) / name
            if not path.is_file():
                continue
            rel = rel_dir + name
            real = os.path.realpath(path) if (path.is_symlink() or not inside) else ""
            if real and not (real == root or real.startswith(root + os.sep)):
                log.warning("skipping %s: it is a link that leaves the corpus folder", rel)
                continue
            found.append((rel, path))
    return [p for _, p in sorted(found)]


def parse_metadata(text: str, path: str) -> tuple[str | None, str | None]:
    """(title, date) from a leading ``date YYYY-MM-DD Title`` line, else the first line."""
    first = text.lstrip("\ufeff").lstrip("\r\n").split("\n", 1)[0].strip()
    m = _DATE_LINE.match(first)
    if m:
        return m.group(2), m.group(1)
    if len(first) > 120:  # a first paragraph, not a title: cut at a word
        first = first[:120].rsplit(" ", 1)[0].rstrip(",;:")
    return (first or None), None


def read_document(path: Path, rel: str) -> Document:
    """Read one file; raises ValueError naming the reason it cannot be used."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ValueError(f"unreadable ({e.strerror or e})") from e
    try:
        text = data.decode("utf-8")  # BOM and CRLF kept: offsets index exactly this text
    except UnicodeDecodeError as e:
        raise ValueError(f"not valid UTF-8 at byte {e.start}; re-save it as UTF-8") from e
    if not text.replace("\ufeff", "").strip():
        raise ValueError("empty file (no text)")
    title, date = parse_metadata(text, rel)
    return Document(rel, text, sha256_bytes(data), len(data), title, date)


# (source sha256, extractor id) -> the text extracted before, if a generation kept it
Reuse = Callable[[str, str], Extracted | None]


@dataclass
class Converter:
    """Turns PDF/HTML/DOCX files into Documents: reuses an earlier extraction of the same
    bytes by the same extractor, else extracts in a separate process under the limits."""

    limits: Limits = field(default_factory=Limits)
    reuse: Reuse | None = None
    extracted: list[str] = field(default_factory=list)  # paths extracted by this run
    ocr_cache: OcrCache | None = None  # OCR pages by (source sha256, engine, dpi)
    seen: set[str] = field(default_factory=set)  # sha256 of every converted file read
    _worker: ExtractionWorker | None = None

    def document(self, path: Path, rel: str) -> Document:
        """The converted document; ExtractError (a ValueError) names why it cannot be."""
        from .formats.worker import ExtractionWorker

        fmt = format_of(path)
        assert fmt is not None
        try:
            size = path.stat().st_size
            check_size(size, self.limits)  # before hashing a file too big to convert
            sha = file_digest(path)
        except OSError as e:
            raise ExtractError(f"unreadable ({e.strerror or e})") from e
        self.seen.add(sha)
        version = extractor_id(fmt, self.limits)
        ex = self.reuse(sha, version) if self.reuse else None
        if ex is None:
            if self._worker is None:
                self._worker = ExtractionWorker(self.limits)
            ex = self._extract(path, rel, fmt, sha)
            self.extracted.append(rel)
        title, date = parse_metadata(ex.text, rel)
        return Document(rel, ex.text, sha, size, ex.layout.title or title, date, fmt, version,
                        ex.layout)

    def _extract(self, path: Path, rel: str, fmt: str, sha: str) -> Extracted:
        """Extract in the worker; OCR pages come from and go to the cache, one progress
        line per page on a terminal, and one line per file that was OCRed."""
        from tqdm import tqdm

        assert self._worker is not None
        opts = self.limits.ocr
        cache = self.ocr_cache if fmt == "pdf" and opts.mode != "off" else None
        cached = cache.load(sha, opts) if cache is not None else {}
        bar = tqdm(desc=f"OCR {rel}", unit="page", disable=not sys.stderr.isatty(),
                   leave=False)

        def on_page(page: PageOcr) -> None:
            bar.update(1)
            if cache is not None:
                cache.add(sha, opts, page)
        try:
            ex = self._worker.extract(path, cached, on_page)
        finally:
            bar.close()
        if ex.ocr is not None and (ex.ocr.ocred or ex.ocr.left_out):
            ocr_log.info("%s", ex.ocr.line(rel))
        return ex

    def read(self, path: Path, rel: str) -> Document:
        """Any corpus file as a Document: converted if it is PDF/HTML/DOCX, else as it is."""
        return self.document(path, rel) if format_of(path) else read_document(path, rel)

    def close(self) -> None:
        """Stop the extraction process, if one was started."""
        if self._worker is not None:
            self._worker.close()
            self._worker = None


def load_corpus(corpus_dir: Path, converter: Converter | None = None
                ) -> tuple[list[Document], list[Skipped]]:
    """All readable documents, plus the files skipped with their reasons."""
    docs: list[Document] = []
    skipped: list[Skipped] = []
    own = converter is None
    conv = converter or Converter()
    try:
        for p in list_files(corpus_dir):
            rel = p.relative_to(corpus_dir).as_posix()
            try:
                docs.append(conv.read(p, rel))
            except ValueError as e:
                log.warning("skipping %s: %s", rel, e)
                skipped.append(Skipped(rel, str(e)))
    finally:
        if own:
            conv.close()
    if not docs:
        why = "; ".join(f"{s.path}: {s.reason}" for s in skipped) or "no file of a known type"
        raise CorpusError(f"corpus folder {str(corpus_dir)!r} has no usable document ({why})")
    return docs, skipped


# (corpus path, os.stat of the file) -> True when the index already holds exactly this file
Known = Callable[[str, os.stat_result], bool]


@dataclass
class Scan:
    """A corpus walk for `rag index`: the files read, the files the index vouches for by
    size and mtime (not read), the files skipped, and every file's mtime."""

    docs: list[Document]
    kept: list[str]
    skipped: list[Skipped]
    mtimes: dict[str, int]


def scan_corpus(corpus_dir: Path, converter: Converter, known: Known) -> Scan:
    """Like load_corpus, but a file `known` vouches for is neither read nor hashed."""
    scan = Scan([], [], [], {})
    for p in list_files(corpus_dir):
        rel = p.relative_to(corpus_dir).as_posix()
        try:
            st = p.stat()
            scan.mtimes[rel] = st.st_mtime_ns
            if known(rel, st):
                scan.kept.append(rel)
                continue
            scan.docs.append(converter.read(p, rel))
        except OSError as e:
            log.warning("skipping %s: %s", rel, e)
            scan.skipped.append(Skipped(rel, f"unreadable ({e.strerror or e})"))
        except ValueError as e:
            log.warning("skipping %s: %s", rel, e)
            scan.skipped.append(Skipped(rel, str(e)))
    if not scan.docs and not scan.kept:
        why = ("; ".join(f"{s.path}: {s.reason}" for s in scan.skipped)
               or "no file of a known type")
        raise CorpusError(f"corpus folder {str(corpus_dir)!r} has no usable document ({why})")
    return scan


class LineIndex:
    """Maps code-point offsets of one text to 1-based line numbers."""

    def __init__(self, text: str) -> None:
        self._starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]

    def line_of(self, offset: int) -> int:
        """The 1-based line holding the character at ``offset``."""
        return bisect_right(self._starts, offset)

    def lines(self, start: int, end: int) -> tuple[int, int]:
        """Inclusive 1-based line range of ``text[start:end]`` (end exclusive)."""
        return self.line_of(start), self.line_of(max(start, end - 1))
