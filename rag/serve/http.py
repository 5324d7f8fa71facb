"""HTTP face: ``create_app(settings)`` -> FastAPI. Routes that translate between HTTP and the
service (rag/serve/service.py), and the only place that knows status codes. Errors become
JSON ``{"error": ..., "detail": ...}``."""

from __future__ import annotations

import json
import logging
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as Path_
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..config import Settings
from ..errors import (ConfigError, DocumentNotFoundError, IndexCorruptError, IndexMismatchError,
                      IndexMissingError, OverloadedError, RagError)
from ..indexing.generation import Generation
from ..search.searcher import Searcher, check_reader_setting, follow_generations
from . import logs
from .auth import Access, Guard, KeyCheck, PermittedPaths, guard_for
from .metrics import CONTENT_TYPE, Metrics, ObserveRequests, generation_stats
from .middleware import BodyLimit, OneLineStartup
from .records import MAX_CONTEXT, AskRequest, AskResponse, DocumentOut, DocumentSpanOut, ErrorOut
from .service import Service, public_message

log = logging.getLogger(__name__)

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


# ---------------------------------------------------------------- errors

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


_STATUS = {IndexMissingError: 503, IndexCorruptError: 503, IndexMismatchError: 503,
           OverloadedError: 429, DocumentNotFoundError: 404, ConfigError: 422}


async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming each bad field (400 when the body is not JSON at all)."""
    detail = _validation_detail(exc)
    if any(d["type"] in ("json_invalid", "string_unicode") for d in detail):
        return _json_error(400, "the body is not valid JSON (or not UTF-8)", detail)
    return _json_error(422, "invalid request", detail)


async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Starlette's own errors (404 route, 405, 415) in our JSON shape."""
    resp = _json_error(exc.status_code, str(exc.detail))
    resp.headers.update(exc.headers or {})  # e.g. Allow on 405 (RFC 9110)
    return resp


async def on_rag(request: Request, exc: RagError) -> JSONResponse:
    """The service's errors, each with its status; server folders never show."""
    code = next((s for t, s in _STATUS.items() if isinstance(exc, t)), 500)
    audit = getattr(request.state, "audit", None)
    if audit is not None and "_known" in audit:
        audit.update(files=[], denied="not permitted" if audit["_known"].denied else None)
    s = request.app.state.service.settings
    resp = _json_error(code, str(exc), hide=(s.index_dir, s.corpus_dir))
    if code == 429:
        resp.headers["Retry-After"] = "1"
    return resp


async def on_crash(request: Request, exc: Exception) -> JSONResponse:
    """Anything else: 500 with one generic line (the log has the trace)."""
    log.exception("unexpected error on %s", request.url.path)
    return _json_error(500, "internal error; the server log has the details")


# ---------------------------------------------------------------- dependencies

async def get_service(request: Request) -> Service:
    """The app's one service (one searcher, one model instance)."""
    return request.app.state.service  # type: ignore[no-any-return]


async def get_access(request: Request) -> Access | None:
    """The caller's key, put there by the KeyCheck middleware (None: keys not required)."""
    return getattr(request.state, "access", None)


async def require_json(request: Request) -> None:
    """415 unless the body is declared JSON."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise HTTPException(415, "send the body as JSON with Content-Type: application/json")


ServiceDep = Annotated[Service, Depends(get_service)]
AccessDep = Annotated[Access | None, Depends(get_access)]
PUBLIC_PATHS = frozenset({"/", "/healthz", "/docs", "/openapi.json"})


def public_path(path: str) -> bool:
    """Routes that need no key: health, the page's static shell, the API docs."""
    return path in PUBLIC_PATHS or path.startswith("/docs-static/")


def readable(request: Request, svc: Service, gen: Generation, path: str) -> PermittedPaths:
    """The paths this caller may read; the audit record names the one asked for."""
    known = svc.readable(gen, getattr(request.state, "access", None))
    request.state.audit = {"files": [path], "denied": None, "_known": known}
    return known


# ---------------------------------------------------------------- routes

RESPONSES: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorOut} for s in (400, 404, 413, 415, 422, 429, 503)}
router = APIRouter(responses=RESPONSES)


@router.post("/ask", response_model=AskResponse, dependencies=[Depends(require_json)],
             summary="Ask a question")
def ask(req: AskRequest, svc: ServiceDep, access: AccessDep, request: Request) -> Response:
    """Ranked passages that answer the question, each an exact quote with its citation."""
    ctx = logs.current()
    if ctx is not None:
        ctx.mode, ctx.question = req.mode, req.question
    out = svc.ask(req, access)
    if ctx is not None:
        ctx.timings_ms = out.timings_ms
    request.state.audit = {"files": sorted({p.file for p in out.passages}),
                           "question": req.question}
    # Serialised here, in the worker thread: FastAPI would validate the model again and
    # hop threads once more to do it (bench: ~1 ms a request).
    return Response(out.model_dump_json(), media_type="application/json")


@router.get("/documents", response_model=list[DocumentOut], summary="List indexed documents")
def documents(svc: ServiceDep, access: AccessDep) -> list[DocumentOut]:
    """The files of the serving generation (those the key may read)."""
    return svc.documents(svc.generation, access)


@router.get("/links/{path:path}", summary="Signed links to a document")
def links(path: str, svc: ServiceDep, access: AccessDep, request: Request) -> dict[str, str]:
    """Links a browser can open without the Authorization header: the original file and
    (as a query string to append) its page images; they expire after RAG_LINK_TTL_S."""
    from urllib.parse import quote

    gen = svc.generation
    svc.original(gen, path, readable(request, svc, gen, path))
    query = request.app.state.guard.sign(access, path)
    url = "/documents/" + quote(path) + "/original"
    return {"original": url + ("?" + query if query else ""), "query": query}


@router.get("/documents/{path:path}/original", response_class=Response,
            summary="The original file (PDF, HTML, DOCX, text)")
def original(path: str, svc: ServiceDep, request: Request) -> Response:
    """The file itself, as it is on disk now, shown inline and never run: HTML comes with
    a sandboxing Content-Security-Policy (no scripts, no requests, its own origin)."""
    gen = svc.generation
    full, fmt = svc.original(gen, path, readable(request, svc, gen, path))
    return original_response(full, fmt)


@router.get("/documents/{path:path}/pages/{page}.png", response_class=Response,
            summary="A PDF page with the cited span boxed")
def page_png(path: str, page: Annotated[int, Path_(ge=1, le=100_000)], svc: ServiceDep,
             request: Request, start: Annotated[int | None, Query(ge=0)] = None,
             end: Annotated[int | None, Query(ge=0)] = None,
             dpi: Annotated[int, Query(ge=36, le=200)] = 110) -> Response:
    """PNG of one page (at most 200 dpi, 2000 px a side) with the boxes of the characters
    of [start, end) drawn on it; their pixel boxes in the X-Highlight-Boxes header."""
    gen = svc.generation
    img = svc.page(gen, path, page, start, end, dpi, readable(request, svc, gen, path))
    w, h = img.size
    return Response(img.png, media_type="image/png", headers={
        "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache",
        "X-Highlight-Boxes": json.dumps([list(b) for b in img.boxes_px]),
        "X-Page-Size": f"{w}x{h}", "X-Stale": "true" if img.stale else "false",
        "Access-Control-Expose-Headers": "X-Highlight-Boxes, X-Page-Size, X-Stale"})


@router.get("/documents/{path:path}", response_model=DocumentSpanOut,
            summary="Read a document or verify a cited span")
def document(path: str, svc: ServiceDep, request: Request,
             start: Annotated[int | None, Query(ge=0)] = None,
             end: Annotated[int | None, Query(ge=0)] = None,
             context: Annotated[int, Query(ge=0, le=MAX_CONTEXT)] = 300) -> DocumentSpanOut:
    """The file as it is now (sha256, stale flag); with start/end, that span and context."""
    gen = svc.generation
    return svc.span(gen, path, start, end, context, readable(request, svc, gen, path))


@router.get("/metrics", response_class=Response, summary="Prometheus metrics")
def metrics_text(request: Request) -> Response:
    """Requests, /ask latency by stage, the serving generation, the watcher: Prometheus
    text format (README, "Metrics")."""
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE)


@router.get("/healthz", summary="Process alive")
def healthz() -> dict[str, str]:
    """Always 200 while the process runs."""
    return {"status": "ok"}


@router.get("/readyz", summary="Index loaded")
def readyz(svc: ServiceDep, access: AccessDep) -> dict[str, Any]:
    """200 with the serving generation once an index is loaded, else 503 (with a key:
    the chunks it may read)."""
    gen = svc.generation
    return {"status": "ready", "generation": gen.name,
            "chunks": gen.size if access is None else access.chunks(gen),
            "model": gen.manifest["model"]["name"], "built_at": gen.manifest["built_at"],
            "reader": svc.searcher.reader_fingerprint, "read_by_default": svc.settings.read}


@router.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse,
                  include_in_schema=False)
def page() -> HTMLResponse:
    """The search page."""
    html = resources.files("rag.serve").joinpath("static/index.html")
    if not html.is_file():
        return HTMLResponse("<p>rag: use POST /ask (see /docs)</p>")
    return HTMLResponse(html.read_text(encoding="utf-8"))


# ---------------------------------------------------------------- the app

def create_app(settings: Settings, searcher: Searcher | None = None,
               watch: bool = True, metrics: Metrics | None = None,
               guard: Guard | None = None) -> FastAPI:
    """The service over HTTP: the routes above, follows new index generations, one log
    line per request. Keys are checked once the keys file exists (``guard``: how; default
    from the settings)."""
    svc = Service(settings, searcher)
    guard = guard or guard_for(settings)
    metrics = metrics or Metrics()
    metrics.follow_generation(lambda: generation_stats(svc.searcher._gen)
                              if svc.searcher._gen is not None else None)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        check_reader_setting(settings)  # a setting that cannot work: stop (OneLineStartup)
        try:
            svc.searcher.generation  # load at start when possible; 503s until then
        except RagError as e:
            log.error("no index loaded yet: %s", e)
        try:
            svc.searcher.reader  # the second model, loaded before the first question that reads
        except RagError as e:
            (log.error if settings.read else log.warning)("the reader cannot load: %s", e)
        stop = (follow_generations(svc.searcher, settings.reload_interval_s,
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
    app.add_exception_handler(RequestValidationError, on_invalid)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, on_http)  # type: ignore[arg-type]
    app.add_exception_handler(RagError, on_rag)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, on_crash)
    _offline_docs(app)
    app.include_router(router)
    app.state.service = svc
    app.state.searcher = svc.searcher  # the watcher and tests reach the searcher here
    app.state.gate = svc.gate
    app.state.metrics = metrics
    app.state.guard = guard
    return app
