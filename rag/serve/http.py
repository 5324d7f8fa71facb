"""HTTP layer: ``create_app(settings)`` -> FastAPI. Request/response models, and the only
place that knows HTTP status codes. Errors become JSON ``{"error": ..., "detail": ...}``."""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from contextlib import asynccontextmanager
from datetime import date
from importlib import resources
from pathlib import Path
from collections.abc import Container
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as Path_
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, field_validator,
                      model_validator)
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..config import Settings
from ..digest import file_digest
from ..errors import (ConfigError, DocumentNotFoundError, IndexCorruptError, IndexMismatchError,
                      IndexMissingError, OverloadedError, RagError)
from ..indexing.generation import Generation
from ..search.searcher import Filters, Searcher, check_reader_setting, follow_generations
from ..text.corpus import LineIndex
from ..types import Answer, Span
from . import logs
from .metrics import CONTENT_TYPE, Metrics, ObserveRequests, generation_stats
from .auth import Access, Guard, KeyCheck, PermittedPaths, guard_for

log = logging.getLogger(__name__)

MAX_QUESTION = 2000
MAX_CONTEXT = 10_000  # characters of context either side of a span
NO_NUL = r"^[^\x00]*$"
SOME_TEXT = r"^[^\x00]*[^\x00\s][^\x00]*$"  # no NUL, and something left after stripping


def _iso_day(v: Any) -> Any:
    """Dates come as ISO strings ("2025-09-01"); a number is refused, not read as a timestamp."""
    if isinstance(v, str | date):
        return v
    raise ValueError("give the date as an ISO day string, e.g. \"2025-09-01\"")


IsoDay = Annotated[date, BeforeValidator(_iso_day)]
EXAMPLE_Q = "What share of the world's population lives in SCO countries?"


# ---------------------------------------------------------------- models

class AskRequest(BaseModel):
    """A question and how to search for it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"question": EXAMPLE_Q, "top_k": 5, "mode": "hybrid", "files": None},
        {"question": "Which satellite navigation system serves companies in Egypt's Suez "
                     "Canal Economic Zone?", "top_k": 3,
         "mode": "dense", "files": ["sco-*"]}]})

    question: str = Field(min_length=1, max_length=MAX_QUESTION, pattern=SOME_TEXT,
                          description="The question, 1..2000 characters after stripping "
                                      "(no NUL characters).")
    top_k: int = Field(5, ge=1, le=50, description="How many passages, 1..50.")
    mode: Literal["hybrid", "dense", "lexical"] = Field(
        "hybrid", description="hybrid (dense + BM25, the best), dense (meaning) or lexical "
                              "(words).")
    files: list[Annotated[str, Field(min_length=1, max_length=256, pattern=NO_NUL)]] | None = Field(
        None, max_length=32, description="Glob filters on the cited file path, e.g. ['sco-*'].")
    read: StrictBool | None = Field(
        None, description="Let the reader (a small model that reads question and passage "
                          "together) reorder the top passages, judge `answerable` and mark "
                          "each passage's `answer`. null: the service's default (off unless "
                          "RAG_READ=1); false: the fast path.")
    date_from: IsoDay | None = Field(
        None, description="Only documents dated on or after this day (ISO, UTC; see "
                          "GET /documents for each date and its source).")
    date_to: IsoDay | None = Field(
        None, description="Only documents dated on or before this day (inclusive).")
    formats: list[Literal["pdf", "html", "docx", "txt", "md"]] | None = Field(
        None, max_length=5, description="Only documents of these formats.")

    @field_validator("question", mode="before")
    @classmethod
    def _strip(cls, v: Any) -> Any:
        return v.strip() if isinstance(v, str) else v

    @model_validator(mode="after")
    def _range(self) -> AskRequest:
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError(f"date_from={self.date_from} is after date_to={self.date_to}; "
                             "give date_from <= date_to (both inclusive)")
        return self

    def filters(self) -> Filters | None:
        """The request's date and format filters (None: none)."""
        if not (self.date_from or self.date_to or self.formats):
            return None
        return Filters(date_from=self.date_from, date_to=self.date_to,
                       formats=tuple(self.formats) if self.formats else None)


class SpanOut(BaseModel):
    """An exact span of a file. For a converted file (PDF, HTML, DOCX) the offsets index its
    extracted text (GET /documents/{path}); the other fields say where the span sits in the
    original, and are null for plain text."""

    start: int
    end: int
    line_start: int
    line_end: int
    text: str
    page_start: int | None = Field(None, description="PDF: first page (1-based)")
    page_end: int | None = Field(None, description="PDF: last page (1-based, inclusive)")
    boxes: list[tuple[int, float, float, float, float]] | None = Field(
        None, description="PDF: [page, x0, y0, x1, y1] in PDF points (origin bottom left of "
                          "the unrotated page), the characters' boxes merged per line")
    heading: str | None = Field(None, description="HTML/DOCX: the nearest heading before it")
    heading_id: str | None = Field(None, description="HTML: that heading's id attribute")
    paragraph: int | None = Field(None, description="DOCX: 1-based block (paragraph or table)")


class AnswerOut(SpanOut):
    """The reader's short answer: an exact span of the file, like the highlight."""

    score: float = Field(description="the reader's probability for this span (start x end)")


class RetrieverOut(BaseModel):
    """Where one retriever placed the passage."""

    rank: int
    score: float


class Retrievers(BaseModel):
    """Per-retriever placement (null: the retriever did not return it)."""

    dense: RetrieverOut | None
    lexical: RetrieverOut | None


class PassageOut(BaseModel):
    """A ranked passage: ``file_text[start:end] == text``; lines 1-based, inclusive."""

    rank: int
    score: float = Field(description="fused score: hybrid mixes min-max normalised dense and "
                         "BM25 scores in [0, 1]; dense is a cosine; lexical a BM25 score")
    file: str
    start: int
    end: int
    line_start: int
    line_end: int
    text: str
    highlight: SpanOut | None
    retrievers: Retrievers
    file_sha256: str
    page_start: int | None = Field(None, description="PDF: first page (1-based); null for "
                                   "plain text")
    page_end: int | None = Field(None, description="PDF: last page (1-based, inclusive)")
    heading: str | None = Field(None, description="HTML/DOCX: the nearest heading before it")
    heading_id: str | None = Field(None, description="HTML: that heading's id attribute")
    paragraph: int | None = Field(None, description="DOCX: 1-based block it starts in")
    read: float | None = Field(None, description="the reader's calibrated probability that "
                               "this passage answers (null: not read)")
    answer: AnswerOut | None = Field(None, description="the answer inside the passage, when "
                                     "the reader is confident it is there (null otherwise)")


class IndexOut(BaseModel):
    """The generation that answered."""

    generation: str
    built_at: str
    model: str
    chunks: int
    reader: str | None = Field(None, description="the reader's fingerprint (name@sha256 "
                               "prefix) when it read the passages")


class AskResponse(BaseModel):
    """Ranked, cited passages; ``answerable`` is false when the corpus likely lacks the answer
    (passages are still the closest ones)."""

    question: str
    mode: str
    answerable: bool
    confidence: float
    passages: list[PassageOut]
    index: IndexOut
    timings_ms: dict[str, float]


class DocumentOut(BaseModel):
    """An indexed file."""

    path: str
    sha256: str
    size: int
    chunks: int
    title: str | None
    date: str | None = Field(description="the document's day (UTC), from date_source")
    date_source: str | None = Field(None, description="where the date came from: line (a "
                                    "leading `date YYYY-MM-DD` line), pdf, docx (metadata), "
                                    "html (a <meta> date), front-matter (Markdown), mtime")
    format: str = Field("text", description="text (indexed as it is), pdf, html or docx "
                        "(indexed as its extracted text)")


class DocumentSpanOut(BaseModel):
    """A document (or a span of it) as it is on disk now, to verify a citation."""

    path: str
    title: str | None
    date: str | None
    date_source: str | None = None
    format: str = Field("text", description="text, or the format the file was converted "
                        "from: then the text and offsets are those of the extracted text "
                        "stored with the index")
    sha256: str = Field(description="sha256 of the file as it is on disk now")
    indexed_sha256: str = Field(description="sha256 when the answering generation was built")
    stale: bool = Field(description="true when the file changed since it was indexed")
    length: int = Field(description="length of the text in code points")
    span: SpanOut | None = None
    before: str = ""
    after: str = ""
    text: str | None = Field(None, description="the whole text, when no span was asked")


class ErrorOut(BaseModel):
    """Every error response."""

    error: str
    detail: Any = None


# ---------------------------------------------------------------- helpers

def answer_out(a: Answer) -> AskResponse:
    """The response model of an answer."""
    passages = []
    for p in a.passages:
        h = p.highlight
        passages.append(PassageOut(
            rank=p.rank, score=p.score, file=p.file, start=p.start, end=p.end,
            line_start=p.line_start, line_end=p.line_end, text=p.text,
            highlight=SpanOut(**h.__dict__) if h else None,
            retrievers=Retrievers(
                dense=RetrieverOut(**p.dense.__dict__) if p.dense else None,
                lexical=RetrieverOut(**p.lexical.__dict__) if p.lexical else None),
            file_sha256=p.file_sha256, page_start=p.page_start, page_end=p.page_end,
            heading=p.heading, heading_id=p.heading_id, paragraph=p.paragraph, read=p.read,
            answer=AnswerOut(**p.answer.__dict__) if p.answer else None))
    return AskResponse(question=a.question, mode=a.mode, answerable=a.answerable,
                       confidence=a.confidence, passages=passages,
                       index=IndexOut(**a.index.__dict__), timings_ms=a.timings_ms)


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


MEDIA_TYPES = {"pdf": "application/pdf", "docx": "application/vnd.openxmlformats-"
               "officedocument.wordprocessingml.document", "html": "text/html; charset=utf-8"}
# The original HTML is shown as a page, but sandboxed: an opaque origin (it cannot read or
# act on ours), no scripts, no forms, no network (inline styles and data: images only).
SANDBOX_CSP = ("sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
               "font-src data:; form-action 'none'; frame-ancestors 'self'")


def original_response(full: Path, fmt: str) -> Response:
    """The file's bytes, inline, with a content type that never runs it on our origin."""
    from urllib.parse import quote

    data = full.read_bytes()
    headers = {"Content-Disposition": f"inline; filename*=UTF-8''{quote(full.name)}",
               "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
    if fmt != "pdf":  # a sandbox would also keep the browser's PDF viewer out
        headers["Content-Security-Policy"] = SANDBOX_CSP
    media = MEDIA_TYPES.get(fmt, "text/plain; charset=utf-8")
    return Response(data, media_type=media, headers=headers)


def page_response(corpus_dir: Path, gen: Generation, path: str, page: int, start: int | None,
                  end: int | None, dpi: int, known: Container[str] | None = None) -> Response:
    """A rendered PDF page with the boxes of [start, end) drawn (nothing drawn when the
    file changed since it was indexed: the boxes belong to the indexed version)."""
    import json as _json

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
    return Response(png, media_type="image/png", headers={
        "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache",
        "X-Highlight-Boxes": _json.dumps([list(b) for b in px]),
        "X-Page-Size": f"{w}x{h}", "X-Stale": "true" if stale else "false",
        "Access-Control-Expose-Headers": "X-Highlight-Boxes, X-Page-Size, X-Stale"})


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


class OneLineStartup:
    """ASGI middleware: a ConfigError at start-up stops the server with its message in one
    line, not a traceback (Starlette would send the formatted traceback)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)
        held: list[Any] = []

        async def hold_failure(msg: Any) -> None:
            if msg["type"] == "lifespan.startup.failed":
                held.append(msg)  # sent below: one line for a ConfigError, else as it was
            else:
                await send(msg)

        try:
            await self.app(scope, receive, hold_failure)
        except ConfigError as e:
            if not held:
                raise
            await send({"type": "lifespan.startup.failed", "message": f"cannot start: {e}"})
        except BaseException:
            for msg in held:
                await send(msg)
            raise


# Bodies over the limit but within this bound are read and thrown away before the 413, so a
# client still sending sees the answer; the server closing on unread bytes resets the
# connection (the client gets a broken pipe instead). Larger ones are refused at once.
DRAIN_BYTES = 8 * 1024 * 1024


async def _drain(receive: Any, seen: int) -> bool:
    """Read and discard the rest of a request body, up to DRAIN_BYTES in all; True when its
    end was reached."""
    while seen <= DRAIN_BYTES:
        msg = await receive()
        if msg["type"] != "http.request":
            return False
        seen += len(msg.get("body", b""))
        if not msg.get("more_body", False):
            return True
    return False


class BodyLimit:
    """ASGI middleware: reject request bodies over `limit` bytes with 413 (read to their end
    first when under DRAIN_BYTES)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    declared = int(v)
                except ValueError:
                    declared = 0
                if declared > self.limit:
                    if declared <= DRAIN_BYTES:
                        await _drain(receive, 0)
                    return await self._reject(send)
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    if msg.get("more_body", False):
                        await _drain(receive, seen)
                    raise _TooLarge(self.limit)
            return msg

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._reject(send)

    async def _reject(self, send: Any) -> None:
        body = (b'{"error":"request body too large","detail":"the limit is %d bytes"}'
                % self.limit)
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(StarletteHTTPException):
    """Raised from inside the body stream; FastAPI passes HTTP exceptions through."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body too large: the limit is {limit} bytes")


_ABS_DIRS = re.compile(r"(?<![\w.])/(?:[^\s'\"/]+/)+")


def _offline_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from files shipped in a package: no CDN, the service is offline."""
    import swagger_ui_bundle
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    app.mount("/docs-static", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path),
              name="docs-static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - API",
                                   swagger_js_url="/docs-static/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-static/swagger-ui.css",
                                   swagger_favicon_url="/docs-static/favicon-32x32.png")


def public_message(error: str, hide: tuple[Path, ...] = ()) -> str:
    """An error message fit to send: the server's folders never show."""
    for p in hide:  # the configured folders by name...
        for form in {str(p.resolve()), str(p)}:
            if form not in (".", ""):
                error = error.replace(form, p.resolve().name)
    return _ABS_DIRS.sub("", error)  # ...and any other absolute path without its folders


def _json_error(status: int, error: str, detail: Any = None,
                hide: tuple[Path, ...] = ()) -> JSONResponse:
    return JSONResponse(ErrorOut(error=public_message(error, hide), detail=detail).model_dump(),
                        status_code=status)


def _validation_detail(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
        out.append({"field": loc or "body", "message": e.get("msg", "invalid"),
                    "type": e.get("type", "")})
    return out


# ---------------------------------------------------------------- app

async def get_searcher(request: Request) -> Searcher:
    """The app's shared searcher (one model instance)."""
    return request.app.state.searcher  # type: ignore[no-any-return]


SearcherDep = Annotated[Searcher, Depends(get_searcher)]


async def get_access(request: Request) -> Access | None:
    """The caller's key, put there by the KeyCheck middleware (None: keys not required)."""
    return getattr(request.state, "access", None)


AccessDep = Annotated[Access | None, Depends(get_access)]
PUBLIC_PATHS = frozenset({"/", "/healthz", "/docs", "/openapi.json"})


def public_path(path: str) -> bool:
    """Routes that need no key: health, the page's static shell, the API docs."""
    return path in PUBLIC_PATHS or path.startswith("/docs-static/")


def create_app(settings: Settings, searcher: Searcher | None = None,
               watch: bool = True, metrics: Metrics | None = None,
               guard: Guard | None = None) -> FastAPI:
    """The service: POST /ask, documents, health, /metrics; follows new index generations;
    one log line per request. Keys are checked once the keys file exists (``guard``: how;
    default from the settings)."""
    searcher = searcher or Searcher(settings)
    gate = Gate(settings.max_queue)
    guard = guard or guard_for(settings)
    metrics = metrics or Metrics()
    metrics.follow_generation(
        lambda: generation_stats(searcher._gen) if searcher._gen is not None else None)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        check_reader_setting(settings)  # a setting that cannot work: stop (OneLineStartup)
        try:
            searcher.generation  # load at start when possible; 503s until then
        except RagError as e:
            log.error("no index loaded yet: %s", e)
        try:
            searcher.reader  # the second model, loaded before the first question that reads
        except RagError as e:
            (log.error if settings.read else log.warning)("the reader cannot load: %s", e)
        stop = (follow_generations(searcher, settings.reload_interval_s,
                                   metrics.reloads.inc, metrics.reload_failures.inc)
                if watch else None)
        yield
        if stop is not None:
            stop.set()

    app = FastAPI(
        title="rag: cited retrieval QA",
        description="Ask a question; get ranked passages of the corpus, each with an exact "
                    "citation (file, code-point offsets, 1-based inclusive lines).",
        version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(KeyCheck, guard=guard, public=public_path)  # before any route
    app.add_middleware(ObserveRequests, metrics=metrics)  # outside both: sees 401s and 413s
    app.add_middleware(OneLineStartup)  # outermost: a start-up ConfigError in one line
    _offline_docs(app)
    app.state.searcher = searcher
    app.state.gate = gate
    app.state.metrics = metrics
    app.state.guard = guard

    def readable(request: Request, gen: Generation, path: str) -> PermittedPaths:
        """The paths this caller may read; the audit record names the one asked for."""
        known = PermittedPaths(gen.file_by_path, get_access_sync(request), settings.corpus_dir)
        request.state.audit = {"files": [path], "denied": None, "_known": known}
        return known

    def get_access_sync(request: Request) -> Access | None:
        return getattr(request.state, "access", None)

    async def require_json(request: Request) -> None:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise HTTPException(415, "send the body as JSON with Content-Type: application/json")

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = _validation_detail(exc)
        if any(d["type"] in ("json_invalid", "string_unicode") for d in detail):
            return _json_error(400, "the body is not valid JSON (or not UTF-8)", detail)
        return _json_error(422, "invalid request", detail)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        resp = _json_error(exc.status_code, str(exc.detail))
        resp.headers.update(exc.headers or {})  # e.g. Allow on 405 (RFC 9110)
        return resp

    @app.exception_handler(RagError)
    async def on_rag(request: Request, exc: RagError) -> JSONResponse:
        status = {IndexMissingError: 503, IndexCorruptError: 503, IndexMismatchError: 503,
                  OverloadedError: 429, DocumentNotFoundError: 404, ConfigError: 422}
        code = next((s for t, s in status.items() if isinstance(exc, t)), 500)
        audit = getattr(request.state, "audit", None)
        if audit is not None and "_known" in audit:
            audit.update(files=[], denied="not permitted" if audit["_known"].denied else None)
        resp = _json_error(code, str(exc), hide=(settings.index_dir, settings.corpus_dir))
        if code == 429:
            resp.headers["Retry-After"] = "1"
        return resp

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return _json_error(500, "internal error; the server log has the details")

    responses: dict[int | str, dict[str, Any]] = {
        s: {"model": ErrorOut} for s in (400, 404, 413, 415, 422, 429, 503)}

    @app.post("/ask", response_model=AskResponse, responses=responses,
              dependencies=[Depends(require_json)], summary="Ask a question")
    def ask(req: AskRequest, s: SearcherDep, access: AccessDep, request: Request) -> Response:
        """Ranked passages that answer the question, each an exact quote with its citation."""
        ctx = logs.current()
        if ctx is not None:
            ctx.mode, ctx.question = req.mode, req.question
        with gate:
            answer = s.ask(req.question, req.top_k, req.mode, req.files, req.read,
                           req.filters(), scope=access)
        if ctx is not None:
            ctx.timings_ms = answer.timings_ms
        out = answer_out(answer)
        request.state.audit = {"files": sorted({p.file for p in out.passages}),
                               "question": req.question}
        # Serialised here, in the worker thread: FastAPI would validate the model again and
        # hop threads once more to do it (bench: ~1 ms a request).
        return Response(out.model_dump_json(), media_type="application/json")

    @app.get("/documents", response_model=list[DocumentOut], responses=responses,
             summary="List indexed documents")
    def documents(s: SearcherDep, access: AccessDep) -> list[DocumentOut]:
        """The files of the serving generation (those the key may read)."""
        return document_list(s.generation, access)

    @app.get("/links/{path:path}", responses=responses, summary="Signed links to a document")
    def links(path: str, s: SearcherDep, access: AccessDep, request: Request) -> dict[str, str]:
        """Links a browser can open without the Authorization header: the original file and
        (as a query string to append) its page images; they expire after RAG_LINK_TTL_S."""
        from urllib.parse import quote

        resolve_document(settings.corpus_dir, path, readable(request, s.generation, path))
        query = guard.sign(access, path)
        url = "/documents/" + quote(path) + "/original"
        return {"original": url + ("?" + query if query else ""), "query": query}

    @app.get("/documents/{path:path}/original", responses=responses,
             response_class=Response, summary="The original file (PDF, HTML, DOCX, text)")
    def original(path: str, s: SearcherDep, request: Request) -> Response:
        """The file itself, as it is on disk now, shown inline and never run: HTML comes with
        a sandboxing Content-Security-Policy (no scripts, no requests, its own origin)."""
        gen = s.generation
        full = resolve_document(settings.corpus_dir, path, readable(request, gen, path))
        return original_response(full, gen.document_format(path))

    @app.get("/documents/{path:path}/pages/{page}.png", responses=responses,
             response_class=Response, summary="A PDF page with the cited span boxed")
    def page_png(path: str, page: Annotated[int, Path_(ge=1, le=100_000)], s: SearcherDep,
                 request: Request, start: Annotated[int | None, Query(ge=0)] = None,
                 end: Annotated[int | None, Query(ge=0)] = None,
                 dpi: Annotated[int, Query(ge=36, le=200)] = 110) -> Response:
        """PNG of one page (at most 200 dpi, 2000 px a side) with the boxes of the characters
        of [start, end) drawn on it; their pixel boxes in the X-Highlight-Boxes header."""
        gen = s.generation
        return page_response(settings.corpus_dir, gen, path, page, start, end, dpi,
                             readable(request, gen, path))

    @app.get("/documents/{path:path}", response_model=DocumentSpanOut, responses=responses,
             summary="Read a document or verify a cited span")
    def document(path: str, s: SearcherDep, request: Request,
                 start: Annotated[int | None, Query(ge=0)] = None,
                 end: Annotated[int | None, Query(ge=0)] = None,
                 context: Annotated[int, Query(ge=0, le=MAX_CONTEXT)] = 300) -> DocumentSpanOut:
        """The file as it is now (sha256, stale flag); with start/end, that span and context."""
        gen = s.generation
        return document_span(settings.corpus_dir, gen, path, start, end, context,
                             known=readable(request, gen, path))

    @app.get("/metrics", response_class=Response, summary="Prometheus metrics")
    def metrics_text() -> Response:
        """Requests, /ask latency by stage, the serving generation, the watcher: Prometheus
        text format (README, "Metrics")."""
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    @app.get("/healthz", summary="Process alive")
    def healthz() -> dict[str, str]:
        """Always 200 while the process runs."""
        return {"status": "ok"}

    @app.get("/readyz", responses=responses, summary="Index loaded")
    def readyz(s: SearcherDep, access: AccessDep) -> dict[str, Any]:
        """200 with the serving generation once an index is loaded, else 503 (with a key:
        the chunks it may read)."""
        gen = s.generation
        return {"status": "ready", "generation": gen.name,
                "chunks": gen.size if access is None else access.chunks(gen),
                "model": gen.manifest["model"]["name"], "built_at": gen.manifest["built_at"],
                "reader": s.reader_fingerprint, "read_by_default": s.settings.read}

    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse,
                   include_in_schema=False)
    def page() -> HTMLResponse:
        """The search page."""
        html = resources.files("rag.serve").joinpath("static/index.html")
        if not html.is_file():
            return HTMLResponse("<p>rag: use POST /ask (see /docs)</p>")
        return HTMLResponse(html.read_text(encoding="utf-8"))

    return app
