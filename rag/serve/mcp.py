"""MCP layer: ``create_server(settings, searcher)`` -> an MCP server for AI assistants, thin like
http.py. Tools ``ask``, ``read_span`` and ``list_documents`` return the HTTP API's records (plus a
ready citation per passage); each document is the resource ``rag://documents/{path}``.

Arguments are checked with the API's own request models, so the limits are the same and a bad
argument is a tool error of one line (``error: ...``, as the CLI prints it), never a trace or a
server path. Imported only by ``rag mcp``: the rest of rag never loads the MCP SDK.
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.server.mcpserver.tools import Tool
from mcp.shared.uri_template import UriTemplate
from mcp_types import CallToolResult, Resource, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import __version__
from ..config import Settings
from ..errors import DocumentNotFoundError, RagError
from ..search.searcher import Searcher, follow_generations
from .auth import Access, AuditLog, Guard, KeyCheck, Unauthorized, guard_for
from .records import (MAX_CONTEXT, NO_NUL, AskRequest, AskResponse, DocumentOut,
                      DocumentSpanOut, PassageOut)
from .service import Service, public_message
from .keys import KeysFileError

log = logging.getLogger(__name__)

DOCUMENT_URI = "rag://documents/{+path}"  # `+`: nested paths keep their slashes
INSTRUCTIONS = (
    "Answers come from a folder of documents, never from a model: every passage is an exact "
    "quote with its citation. Call `ask` with the user's question and quote passages with their "
    "`citation` (corpus/FILE:L17-L19; for a PDF with its pages: corpus/FILE p.3:L12-L14). "
    "`answerable: false` means the documents probably do not answer it: say so instead of "
    "guessing. `read_span` shows a cited span with its "
    "surroundings (and `stale: true` if the file changed since it was indexed); "
    "`list_documents` lists the files.")
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)


# ---------------------------------------------------------------- records

class CitedPassage(PassageOut):
    """A passage of POST /ask with a citation to paste."""

    citation: str = Field(description="the passage's source to paste next to a quote: "
                          "'corpus/FILE:L17-L19' (1-based inclusive lines of the file's text; "
                          "'L17' for one line); for a PDF the pages come first: "
                          "'corpus/FILE p.3:L12-L14' ('p.3-4' across two pages), the lines "
                          "being those of the text extracted from it")


class AskResult(AskResponse):
    """The answer of POST /ask; each passage also carries its citation."""

    passages: list[CitedPassage]  # type: ignore[assignment]  # pydantic narrows the field


class SpanRequest(BaseModel):
    """A span of an indexed document (the arguments of read_span)."""

    model_config = ConfigDict(extra="forbid")

    file: str = Field(min_length=1, max_length=1024, pattern=NO_NUL,
                      description="the file as `ask` or `list_documents` name it (a path inside "
                                  "the corpus folder)")
    start: int = Field(ge=0, description="code-point offset of the first character")
    end: int = Field(ge=0, description="code-point offset just past the last character")
    context: int = Field(300, ge=0, le=MAX_CONTEXT,
                         description=f"characters of context either side, 0..{MAX_CONTEXT}")


class DocumentList(BaseModel):
    """The indexed files of the serving generation."""

    generation: str
    documents: list[DocumentOut]


# ---------------------------------------------------------------- helpers

def citation(corpus: str, file: str, line_start: int, line_end: int,
             page_start: int | None = None, page_end: int | None = None) -> str:
    """``corpus/FILE:L17-L19`` (``L17`` when the span is one line); with pages (a PDF)
    ``corpus/FILE p.3:L12-L14`` (``p.3-4`` across pages). Lines index the text rag cites:
    the file's own, or the text extracted from a PDF, HTML or DOCX file."""
    lines = f"L{line_start}" if line_start == line_end else f"L{line_start}-L{line_end}"
    if page_start is None:
        return f"{corpus}/{file}:{lines}"
    last = page_start if page_end is None else page_end
    pages = f"{page_start}" if last == page_start else f"{page_start}-{last}"
    return f"{corpus}/{file} p.{pages}:{lines}"


def cited(out: AskResponse, corpus: str) -> AskResult:
    """The API's answer with a citation on every passage."""
    passages = [CitedPassage(**dict(p), citation=citation(corpus, p.file, p.line_start,
                                                          p.line_end, p.page_start, p.page_end))
                for p in out.passages]
    return AskResult(**{**dict(out), "passages": passages})


def invalid_arguments(e: ValidationError) -> str:
    """One line naming each bad argument, its value and the rule it breaks."""
    parts = []
    for err in e.errors():
        value = repr(err.get("input"))
        value = value if len(value) <= 60 else value[:57] + "..."
        where = ".".join(str(x) for x in err["loc"]) or "arguments"
        parts.append(f"{where}={value}: {err['msg']}")
    return "invalid argument " + "; ".join(parts)


def tool_error(message: str) -> CallToolResult:
    """An MCP tool error: the one line the CLI would print."""
    return CallToolResult(content=[TextContent(text="error: " + " ".join(message.splitlines()))],
                          is_error=True)


def caller(guard: Guard, headers: Any) -> Access | None:
    """The key of the HTTP request carrying an MCP message (None over stdio, or when keys
    are not required); Unauthorized / KeysFileError as the HTTP check raises them (the
    middleware already refused those requests: this only matters if a key is revoked
    between the two)."""
    if headers is None:  # stdio: the local user, who can read the files anyway
        return None
    return guard.authenticate(headers.get("authorization"))


def request_headers(ctx: Any) -> Any:
    """The HTTP headers of the request behind an MCP context (None over stdio)."""
    try:
        return getattr(ctx.request_context.request, "headers", None)
    except (AttributeError, ValueError):
        return None


def reply(make: Callable[[], BaseModel], hide: tuple[Path, ...]) -> CallToolResult:
    """A tool's record as structured content (and as JSON text, for clients that only read
    text), or a tool error for bad arguments and for anything rag refuses on purpose.

    Other exceptions are left to the SDK, which logs them and tells the client only
    'Error executing tool ...'."""
    try:
        out = make()
    except Unauthorized:
        return tool_error("a valid API key is required")
    except KeysFileError as e:
        log.error("refusing requests: %s", e)
        return tool_error("the service cannot check API keys right now; try again later")
    except ValidationError as e:
        return tool_error(invalid_arguments(e))
    except RagError as e:
        return tool_error(public_message(str(e), hide))
    data = out.model_dump(mode="json")
    return CallToolResult(content=[TextContent(text=json.dumps(data, ensure_ascii=False))],
                          structured_content=data)


def _tool(fn: Callable[..., Any], title: str, request: type[BaseModel] | None = None) -> Tool:
    """A read-only tool whose published input schema is `request`'s, the model its arguments
    are checked with (the SDK's own check would answer in several lines of pydantic)."""
    tool = Tool.from_function(fn, title=title, description=inspect.cleandoc(fn.__doc__ or ""),
                              annotations=READ_ONLY)
    if request is not None:
        tool.parameters = request.model_json_schema()
    return tool


class _Server(MCPServer[Any]):
    """MCPServer whose resources/list names the documents of the generation serving now."""

    def __init__(self, searcher: Searcher, guard: Guard, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._searcher = searcher
        self._guard = guard

    async def _handle_list_resources(self, ctx: Any, params: Any) -> Any:
        """resources/list for the caller's key (the SDK's handler knows no caller)."""
        from mcp_types import ListResourcesResult

        headers = getattr(getattr(ctx, "request", None), "headers", None)
        try:
            access = caller(self._guard, headers)
        except (Unauthorized, KeysFileError):
            return ListResourcesResult(resources=[])
        return ListResourcesResult(resources=await self.list_resources_for(access))

    async def list_resources(self) -> list[Resource]:
        """One text resource per indexed document (none while no index is loaded)."""
        return await self.list_resources_for(None)

    async def list_resources_for(self, access: Access | None) -> list[Resource]:
        """The documents a key may read as resources (all of them without keys)."""
        try:
            gen = await anyio.to_thread.run_sync(lambda: self._searcher.generation)
            ok = (await anyio.to_thread.run_sync(access.file_mask, gen)
                  if access is not None else None)
        except RagError:
            return []
        template = UriTemplate.parse(DOCUMENT_URI)
        return [Resource(uri=template.expand({"path": f.path}), name=f.path, title=f.title,
                         mime_type="text/plain", size=f.size)
                for i, f in enumerate(gen.files) if ok is None or ok[i]]


# ---------------------------------------------------------------- server

def create_server(settings: Settings, searcher: Searcher | None = None,
                  log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING",
                  guard: Guard | None = None) -> MCPServer[Any]:
    """The MCP server: tools ask, read_span, list_documents; resources rag://documents/{path}.
    Over HTTP each call acts for the key of its request (``guard``; none: no keys)."""
    svc = Service(settings, searcher)
    searcher = svc.searcher
    guard = guard or Guard(None, settings.corpus_dir, AuditLog(None))
    corpus = settings.corpus_dir.resolve().name
    hide = (settings.index_dir, settings.corpus_dir)

    def ask(ctx: Context, question: str, top_k: int = 5, mode: str = "hybrid",
            files: list[str] | None = None, read: bool | None = None,
            date_from: str | None = None, date_to: str | None = None,
            formats: list[str] | None = None) -> Annotated[CallToolResult, AskResult]:
        """Search the documents for passages that answer a question.

        Returns up to top_k passages, best first, each an exact quote of a file with its
        citation (corpus/FILE:L17-L19; a PDF's with its pages: corpus/FILE p.3:L12-L14),
        character offsets, lines, the sentence that best answers (highlight) and scores;
        with read=true a small model reads the top passages with the question, reorders
        them and may mark a short answer in one (answer, exact offsets; null when unsure);
        `answerable` is false when the documents probably do not answer the question (the
        passages are then only the closest ones). date_from/date_to (inclusive YYYY-MM-DD,
        UTC) and formats (pdf, html, docx, txt, md) limit the documents searched. Quote the
        text with its citation; never add what the passages do not say."""
        headers = request_headers(ctx)

        def run() -> AskResult:
            access = caller(guard, headers)
            req = AskRequest.model_validate(
                {"question": question, "top_k": top_k, "mode": mode, "files": files,
                 "read": read, "date_from": date_from, "date_to": date_to,
                 "formats": formats})
            return cited(svc.ask(req, access), corpus)
        return reply(run, hide)

    def read_span(ctx: Context, file: str, start: int, end: int,
                  context: int = 300) -> Annotated[CallToolResult, DocumentSpanOut]:
        """Read a span of a document as it is on disk now, with `context` characters before
        and after: to check a citation or read on. `stale` is true when the file changed
        since it was indexed (offsets from `ask` may then be off)."""
        headers = request_headers(ctx)

        def run() -> DocumentSpanOut:
            access = caller(guard, headers)
            req = SpanRequest(file=file, start=start, end=end, context=context)
            gen = svc.generation
            return svc.span(gen, req.file, req.start, req.end, req.context,
                            svc.readable(gen, access), listing="list_documents")
        return reply(run, hide)

    def list_documents(ctx: Context) -> Annotated[CallToolResult, DocumentList]:
        """List the indexed documents: path, title, date, size in bytes, chunks, sha256."""
        headers = request_headers(ctx)

        def run() -> DocumentList:
            access = caller(guard, headers)
            gen = svc.generation
            return DocumentList(generation=gen.name, documents=svc.documents(gen, access))
        return reply(run, hide)

    server = _Server(
        searcher, guard, name="rag", title="rag: cited passages from your documents",
        instructions=INSTRUCTIONS, version=__version__, log_level=log_level,
        tools=[_tool(ask, "Ask the documents", AskRequest),
               _tool(read_span, "Read a cited span", SpanRequest),
               _tool(list_documents, "List the documents")])

    @server.resource(DOCUMENT_URI, name="document", title="A document of the corpus",
                     description="The text of an indexed document as it is on disk now.",
                     mime_type="text/plain")
    def document(path: str, ctx: Context) -> str:
        try:
            access = caller(guard, request_headers(ctx))
            gen = svc.generation
            out = svc.span(gen, path, known=svc.readable(gen, access), listing="list_documents")
        except (Unauthorized, KeysFileError):
            raise ResourceError("a valid API key is required") from None
        except DocumentNotFoundError as e:
            raise ResourceNotFoundError(public_message(str(e), hide)) from None
        except RagError as e:
            raise ResourceError(public_message(str(e), hide)) from None
        assert out.text is not None
        return out.text

    return server


def serve(settings: Settings, transport: Literal["stdio", "streamable-http"] = "stdio",
          host: str = "127.0.0.1", port: int = 8001, verbose: bool = False,
          no_auth: bool = False) -> None:
    """Run the MCP server until the client hangs up (stdio) or the process is stopped.

    The index and the model load in the background, so the protocol handshake is instant;
    without an index, tools answer with the error naming `rag index` until one is published,
    which is then picked up like every new generation (no restart)."""
    searcher = Searcher(settings)
    # stdio acts for the local user; HTTP checks keys as `rag serve` does
    guard = (guard_for(settings, no_auth) if transport == "streamable-http"
             else Guard(None, settings.corpus_dir, AuditLog(None)))
    server = create_server(settings, searcher, "INFO" if verbose else "WARNING", guard)

    def preload() -> None:
        try:
            log.info("serving generation %s", searcher.generation.name)
        except RagError as e:
            log.warning("no index loaded yet: %s", e)
        try:
            log.info("reader %s", searcher.reader.fingerprint)
        except RagError as e:
            log.warning("the reader cannot load: %s", e)

    threading.Thread(target=preload, name="preload", daemon=True).start()
    stop = follow_generations(searcher, settings.reload_interval_s)
    try:
        if transport == "stdio":
            server.run("stdio")
        else:
            import uvicorn

            app = KeyCheck(server.streamable_http_app(host=host), guard, lambda _p: False)
            uvicorn.run(app, host=host, port=port, log_level="info" if verbose else "warning")
    finally:
        stop.set()
