"""The service: what every face (HTTP routes, MCP tools, the CLI) asks of the index, once.

A ``Service`` holds the searcher and the admission gate; its verbs answer a question, list
the documents, read a span, find an original file and draw a PDF page, each for a caller who
may read some paths (``known``: a key's ``PermittedPaths``; None: every indexed one). The faces
only translate: HTTP to status codes and headers, MCP to tool results, the CLI to text."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Settings
from ..digest import file_digest
from ..errors import DocumentNotFoundError, OverloadedError
from ..indexing.generation import Generation
from ..search.searcher import Filters, Searcher
from ..text.corpus import LineIndex
from ..types import Answer, Mode, Span
from .auth import Access, PermittedPaths
from .records import AskRequest, AskResponse, DocumentOut, DocumentSpanOut, SpanOut, answer_out


class Gate:
    """Bounded admission in front of the model: at most `limit` questions in flight."""

    def __init__(self, limit: int) -> None:
        self._sem = threading.BoundedSemaphore(limit)
        self.active = 0  # questions in flight (read without a lock: a hint for the watcher)

    def __enter__(self) -> None:
        if not self._sem.acquire(blocking=False):
            raise OverloadedError("too many questions in flight; retry shortly")
        self.active += 1

    def __exit__(self, *exc: object) -> None:
        self.active -= 1
        self._sem.release()

    def busy(self) -> bool:
        """Whether a question is being answered now."""
        return self.active > 0


def resolve_document(corpus_dir: Path, path: str, known: Container[str],
                     listing: str = "GET /documents") -> Path:
    """The file for an indexed path, strictly inside the corpus folder."""
    if "\x00" in path or "\\" in path or path.startswith("/") or ".." in path.split("/"):
        raise DocumentNotFoundError(f"document path {path!r} is not a corpus path")
    if path not in known:
        raise DocumentNotFoundError(f"document {path!r} is not in the index; see {listing}")
    root = corpus_dir.resolve()
    full = (root / path).resolve()
    if not full.is_relative_to(root) or not full.is_file():
        raise DocumentNotFoundError(f"document {path!r} is not inside the corpus folder")
    return full


def span_bounds(start: int | None, end: int | None, length: int) -> tuple[int, int]:
    """[start, end) of a text of `length` characters (missing ends: the whole text), or
    DocumentNotFoundError naming the allowed range."""
    a, b = start or 0, length if end is None else end
    if not a <= b <= length:
        raise DocumentNotFoundError(f"span start={a} end={b} is outside the document "
                                    f"(0..{length}); ask for 0 <= start <= end <= length")
    return a, b


def document_list(gen: Generation, access: Access | None = None) -> list[DocumentOut]:
    """The files of a generation (those a key may read) as GET /documents and MCP
    list_documents list them."""
    ok = access.file_mask(gen) if access is not None else None
    return [DocumentOut(**f.__dict__, format=gen.document_format(f.path))
            for i, f in enumerate(gen.files) if ok is None or ok[i]]


def document_span(corpus_dir: Path, gen: Generation, path: str, start: int | None = None,
                  end: int | None = None, context: int = 300,
                  listing: str = "GET /documents", known: Container[str] | None = None
                  ) -> DocumentSpanOut:
    """A document as it is on disk now (sha256, stale flag); with start/end, that span and
    `context` characters either side. Shared by GET /documents/{path} and MCP read_span.
    ``known``: the paths the caller may read (default: every indexed one)."""
    full = resolve_document(corpus_dir, path, gen.file_by_path if known is None else known,
                            listing)
    rec = gen.file_by_path[path]
    ex = gen.extracted(path)
    if ex is None:
        data = full.read_bytes()
        text = data.decode("utf-8", errors="replace")
        sha = hashlib.sha256(data).hexdigest()
    else:  # the text the generation indexed; the file's hash still says if it changed
        text, sha = ex.text, file_digest(full)
    out = DocumentSpanOut(path=path, title=rec.title, date=rec.date,
                          date_source=rec.date_source, format=gen.document_format(path), sha256=sha,
                          indexed_sha256=rec.sha256, stale=sha != rec.sha256, length=len(text))
    if start is None and end is None:
        out.text = text
        return out
    a, b = span_bounds(start, end, len(text))
    ls, le = LineIndex(text).lines(a, b)
    span = gen.place_span(path, Span(a, b, ls, le, text[a:b]))
    out.span = SpanOut(**span.__dict__)
    out.before = text[max(0, a - context):a]
    out.after = text[b:b + context]
    return out


@dataclass(frozen=True)
class PageImage:
    """A rendered PDF page: the PNG, the highlight's boxes in its pixels, its size, and
    whether the file changed since it was indexed (then no box is drawn)."""

    png: bytes
    boxes_px: list[tuple[int, int, int, int]]
    size: tuple[int, int]
    stale: bool


def page_image(corpus_dir: Path, gen: Generation, path: str, page: int, start: int | None,
               end: int | None, dpi: int, known: Container[str] | None = None) -> PageImage:
    """A rendered PDF page with the boxes of [start, end) drawn (nothing drawn when the
    file changed since it was indexed: the boxes belong to the indexed version)."""
    from ..text.formats import ExtractError
    from ..text.formats.pdf import render_page

    full = resolve_document(corpus_dir, path, gen.file_by_path if known is None else known)
    ex = gen.extracted(path)
    if ex is None or ex.layout.format != "pdf":
        raise DocumentNotFoundError(f"document {path!r} is not a PDF; pages are for PDFs")
    stale = False  # hashing the original (up to 200 MB) only matters when boxes are drawn
    boxes: list[Any] = []
    if start is not None or end is not None:
        stale = file_digest(full) != gen.file_by_path[path].sha256
        a, b = span_bounds(start, end, len(ex.text))
        boxes = [] if stale else ex.layout.boxes_for(a, b)
    try:
        png, px, (w, h) = render_page(full, page, boxes, dpi)
    except ExtractError as e:
        raise DocumentNotFoundError(f"document {path!r}: {e}") from e
    return PageImage(png, px, (w, h), stale)


class Service:
    """The searcher and its admission gate: the verbs HTTP, MCP and the CLI call."""

    def __init__(self, settings: Settings, searcher: Searcher | None = None) -> None:
        self.settings = settings
        self.searcher = searcher or Searcher(settings)
        self.gate = Gate(settings.max_queue)

    @property
    def generation(self) -> Generation:
        """The serving generation (IndexMissingError until an index is loaded)."""
        return self.searcher.generation

    def readable(self, gen: Generation, access: Access | None) -> PermittedPaths:
        """The paths of ``gen`` the caller may read (every indexed one without keys)."""
        return PermittedPaths(gen.file_by_path, access, self.settings.corpus_dir)

    def answer(self, question: str, top_k: int = 5, mode: Mode = "hybrid",
               files: list[str] | None = None, read: bool | None = None,
               filters: Filters | None = None, access: Access | None = None) -> Answer:
        """A question answered through the admission gate (OverloadedError when full), from
        the passages ``access`` may read."""
        with self.gate:
            return self.searcher.ask(question, top_k, mode, files, read, filters, scope=access)

    def ask(self, req: AskRequest, access: Access | None = None) -> AskResponse:
        """A validated request answered, as the record every face returns."""
        return answer_out(self.answer(req.question, req.top_k, req.mode, req.files, req.read,
                                      req.filters(), access))

    def documents(self, gen: Generation, access: Access | None = None) -> list[DocumentOut]:
        """The files of ``gen`` the caller may read."""
        return document_list(gen, access)

    def span(self, gen: Generation, path: str, start: int | None = None, end: int | None = None,
             context: int = 300, known: Container[str] | None = None,
             listing: str = "GET /documents") -> DocumentSpanOut:
        """A document as it is on disk now, or a span of it with context."""
        return document_span(self.settings.corpus_dir, gen, path, start, end, context,
                             listing, known)

    def original(self, gen: Generation, path: str, known: Container[str] | None = None
                 ) -> tuple[Path, str]:
        """The original file of an indexed path and its format."""
        return (resolve_document(self.settings.corpus_dir, path,
                                 gen.file_by_path if known is None else known),
                gen.document_format(path))

    def page(self, gen: Generation, path: str, page: int, start: int | None = None,
             end: int | None = None, dpi: int = 110, known: Container[str] | None = None
             ) -> PageImage:
        """One PDF page drawn with the boxes of [start, end)."""
        return page_image(self.settings.corpus_dir, gen, path, page, start, end, dpi, known)


_ABS_DIRS = re.compile(r"(?<![\w.])/(?:[^\s'\"/]+/)+")


def public_message(error: str, hide: tuple[Path, ...] = ()) -> str:
    """An error message fit to send: the server's folders never show."""
    for p in hide:  # the configured folders by name...
        for form in {str(p.resolve()), str(p)}:
            if form not in (".", ""):
                error = error.replace(form, p.resolve().name)
    return _ABS_DIRS.sub("", error)  # ...and any other absolute path without its folders
