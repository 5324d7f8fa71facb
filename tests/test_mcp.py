"""`rag mcp` driven by the MCP SDK's own client, over stdio (a real subprocess) and over
streamable HTTP on 127.0.0.1 (a real subprocess): tool schemas, answers equal to POST /ask,
spans exact against the files, read_span, resources, one-line tool errors, hot reload.

One server per transport serves the whole module (real model, an editable copy of the real
index and corpus); the client runs in an anyio blocking portal so the tests stay synchronous.
Every wait is bounded; nothing is timed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi.testclient import TestClient
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult

from rag.config import Settings
from rag.evaluation.evaluate import load_gold
from rag.indexing.build import build_index
from rag.indexing.store import index_lock
from rag.search.searcher import Searcher
from rag.serve.http import create_app

from .conftest import CORPUS, DEV_GOLD, ROOT, need_shared
from .oracles import assert_exact_passage, file_text
from .serverutil import HOST, process_on_free_port, wait_listening

CALL_TIMEOUT_S = 120.0  # the first question waits for the model to load in the server
START_TIMEOUT_S = 120.0
DEV_QUESTIONS = 6  # dev gold questions compared with POST /ask, per transport
Q_FARM = "Which company trained farmers in Ussuriysk to use automatic navigation?"
TOOLS = {"ask", "read_span", "list_documents"}


# ---------------------------------------------------------------- oracles

def dev_questions(n: int) -> list[str]:
    """The first n dev gold questions; skip without ../shared (fail under CI=true)."""
    need_shared(DEV_GOLD)
    return [i.question for i in load_gold(DEV_GOLD)[:n]]


# ---------------------------------------------------------------- client

@dataclass
class Connection:
    """An initialised MCP client session, called synchronously through a blocking portal."""

    transport: str
    portal: BlockingPortal
    session: ClientSession
    corpus: Path
    index: Path
    server_log: Path
    faults: list[Exception]  # transport errors seen by the client (e.g. stray stdout lines)

    def call(self, tool: str, **arguments: Any) -> CallToolResult:
        """tools/call; the client checks structured content against the output schema."""
        return self.portal.call(partial(self.session.call_tool, tool, arguments,
                                        read_timeout_seconds=CALL_TIMEOUT_S))

    def ok(self, tool: str, **arguments: Any) -> dict[str, Any]:
        """The structured result of a call that must succeed."""
        r = self.call(tool, **arguments)
        assert not r.is_error, (tool, arguments, r.content, self.log_tail())
        assert isinstance(r.structured_content, dict)
        assert json.loads(r.content[0].text) == r.structured_content  # type: ignore[union-attr]
        return r.structured_content

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Any session coroutine, e.g. ``conn.run(conn.session.list_tools)``."""
        return self.portal.call(fn, *args)

    def log_tail(self, n: int = 3000) -> str:
        """The end of the server's stderr."""
        try:
            return self.server_log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


@contextmanager
def connect(name: str, transport: AbstractAsyncContextManager[Any], corpus: Path, index: Path,
            server_log: Path) -> Iterator[Connection]:
    """Open the transport and an initialised ClientSession on it, inside a portal."""
    faults: list[Exception] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, Exception):
            faults.append(message)

    with start_blocking_portal() as portal, \
            portal.wrap_async_context_manager(transport) as (read, write):
        session = portal.call(lambda: ClientSession(
            read, write, read_timeout_seconds=CALL_TIMEOUT_S, message_handler=on_message))
        with portal.wrap_async_context_manager(session):
            portal.call(session.initialize)
            yield Connection(name, portal, session, corpus, index, server_log, faults)


def rag_mcp_args(corpus: Path, index: Path) -> list[str]:
    """`python -m rag.serve.cli mcp` over this corpus and index."""
    return ["-m", "rag.serve.cli", "mcp", "--corpus", str(corpus), "--index", str(index)]


def server_env() -> dict[str, str]:
    """This checkout first on the path, so the subprocess runs the code under test."""
    return {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
            "RAG_RELOAD_INTERVAL_S": "0.2"}  # hot reload is checked: keep the wait short


@contextmanager
def stdio_connection(corpus: Path, index: Path, log: Path) -> Iterator[Connection]:
    """`rag mcp` as a subprocess of the SDK's stdio client (stderr to `log`)."""
    params = StdioServerParameters(command=sys.executable, args=rag_mcp_args(corpus, index),
                                   env=server_env(), cwd=str(ROOT))
    with open(log, "w") as errlog, connect("stdio", stdio_client(params, errlog=errlog), corpus,
                                           index, log) as conn:
        yield conn


@contextmanager
def http_connection(corpus: Path, index: Path, log: Path, attempts: int = 3
                    ) -> Iterator[Connection]:
    """`rag mcp --http` on a free 127.0.0.1 port (retried if the port is taken meanwhile)."""
    def command(port: int) -> list[str]:
        return [sys.executable, *rag_mcp_args(corpus, index), "--http", "--host", HOST,
                "--port", str(port)]

    with process_on_free_port(command, log, wait_listening, START_TIMEOUT_S, server_env(),
                              attempts) as server, \
            connect("http", streamable_http_client(f"http://{HOST}:{server.port}/mcp"), corpus,
                    index, log) as conn:
        yield conn


# ---------------------------------------------------------------- fixtures

@contextmanager
def _served_copy(transport: str, real_index: Settings, root: Path) -> Iterator[Connection]:
    """`rag mcp` over its own editable copy of the real corpus and index."""
    corpus, index = root / "corpus", root / "index"
    shutil.copytree(CORPUS, corpus)
    for p in corpus.rglob("*"):
        if p.is_file():
            p.chmod(0o644)  # the originals are read-only; the hot-reload test edits a copy
    shutil.copytree(real_index.index_dir, index, ignore=shutil.ignore_patterns(".lock"))
    opener = stdio_connection if transport == "stdio" else http_connection
    with opener(corpus, index, root / "server.log") as c:
        yield c
        assert c.faults == [], c.faults  # nothing but protocol messages on the wire


@pytest.fixture(scope="module", params=["stdio", "http"])
def conn(request: pytest.FixtureRequest, real_index: Settings,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Connection]:
    """One `rag mcp` per transport, shared by the module's tests (none of them edits it)."""
    with _served_copy(request.param, real_index,
                      tmp_path_factory.mktemp(f"mcp-{request.param}")) as c:
        yield c


@pytest.fixture(scope="module")
def http_api(real_index: Settings, real_searcher: Searcher) -> Iterator[TestClient]:
    """POST /ask in-process over the same index and model, as the oracle."""
    with TestClient(create_app(real_index, searcher=real_searcher, watch=False)) as c:
        yield c


# ---------------------------------------------------------------- schemas

def test_tools_are_listed_with_input_and_output_schemas(conn: Connection) -> None:
    init = conn.session.initialize_result
    assert init is not None and init.server_info.name == "rag"
    assert init.instructions and "citation" in init.instructions
    tools = {t.name: t for t in conn.run(conn.session.list_tools).tools}
    assert set(tools) == TOOLS
    for t in tools.values():
        assert t.description and t.title, t.name
        assert t.annotations is not None and t.annotations.read_only_hint is True
        assert t.input_schema["type"] == "object"
        assert t.output_schema is not None and t.output_schema["type"] == "object", t.name

    ask = tools["ask"].input_schema  # the HTTP API's limits, with descriptions
    props = ask["properties"]
    assert ask["required"] == ["question"]
    assert (props["question"]["minLength"], props["question"]["maxLength"]) == (1, 2000)
    assert (props["top_k"]["minimum"], props["top_k"]["maximum"], props["top_k"]["default"]) == (
        1, 50, 5)
    assert set(props["mode"]["enum"]) == {"hybrid", "dense", "lexical"}
    assert "files" in props
    assert all(p.get("description") for p in props.values()), props

    out = tools["ask"].output_schema
    assert {"question", "mode", "answerable", "confidence", "passages", "index"} <= set(
        out["properties"])
    passage = out["$defs"][out["properties"]["passages"]["items"]["$ref"].split("/")[-1]]
    assert {"file", "start", "end", "line_start", "line_end", "text", "highlight", "citation",
            "file_sha256"} <= set(passage["properties"])

    span = tools["read_span"].input_schema
    assert set(span["required"]) == {"file", "start", "end"}
    assert span["properties"]["context"]["maximum"] == 10_000
    assert {"span", "before", "after", "stale", "sha256", "indexed_sha256"} <= set(
        tools["read_span"].output_schema["properties"])  # type: ignore[index]
    assert tools["list_documents"].input_schema.get("properties", {}) == {}


# ---------------------------------------------------------------- answers

def check_exact(conn: Connection, body: dict[str, Any]) -> None:
    """Every passage and highlight is the file's text at its offsets; lines and citation agree."""
    assert body["passages"], body
    for p in body["passages"]:
        text = file_text(conn.corpus / p["file"])
        assert_exact_passage(text, p, p["file"])  # with its highlight and answer
        ls, le = p["line_start"], p["line_end"]
        assert p["citation"] == f"corpus/{p['file']}:" + (f"L{ls}" if ls == le else f"L{ls}-L{le}")
        data = (conn.corpus / p["file"]).read_bytes()
        assert p["file_sha256"] == hashlib.sha256(data).hexdigest()


def test_citation_names_the_pages_of_a_pdf_passage() -> None:
    """Pure (no server; the corpus served here has no PDF): a converted PDF's passage is
    cited with its pages, a text, DOCX or HTML passage with its lines only."""
    from rag.serve.records import AskResponse
    from rag.serve.mcp import citation, cited

    assert citation("corpus", "a.txt", 17, 19) == "corpus/a.txt:L17-L19"
    assert citation("corpus", "a.txt", 45, 45) == "corpus/a.txt:L45"
    assert citation("corpus", "r.pdf", 12, 14, 3, 3) == "corpus/r.pdf p.3:L12-L14"
    assert citation("corpus", "r.pdf", 12, 12, 3, None) == "corpus/r.pdf p.3:L12"

    def passage(rank: int, file: str, lines: tuple[int, int], **where: Any) -> dict[str, Any]:
        return {"rank": rank, "score": 1.0 / rank, "file": file, "start": 0, "end": 5,
                "line_start": lines[0], "line_end": lines[1], "text": "words",
                "highlight": None, "retrievers": {"dense": None, "lexical": None},
                "file_sha256": "0" * 64, **where}

    out = AskResponse.model_validate({
        "question": "q", "mode": "hybrid", "answerable": True, "confidence": 0.9,
        "index": {"generation": "g-000001", "built_at": "x", "model": "fake", "chunks": 4},
        "timings_ms": {}, "passages": [
            passage(1, "sub/report.pdf", (12, 14), page_start=3, page_end=4),
            passage(2, "report.pdf", (40, 40), page_start=7, page_end=7),
            passage(3, "memo.docx", (5, 6), paragraph=4, heading="Figures"),
            passage(4, "page.html", (8, 8), heading="Intro", heading_id="intro"),
            passage(5, "plain.txt", (17, 19))]})
    got = [p.citation for p in cited(out, "corpus").passages]
    assert got == ["corpus/sub/report.pdf p.3-4:L12-L14", "corpus/report.pdf p.7:L40",
                   "corpus/memo.docx:L5-L6", "corpus/page.html:L8", "corpus/plain.txt:L17-L19"]


def test_ask_returns_the_passages_of_post_ask(conn: Connection, http_api: TestClient) -> None:
    for q in dev_questions(DEV_QUESTIONS):
        mine = conn.ok("ask", question=q)
        api = http_api.post("/ask", json={"question": q}).json()
        assert [(p["rank"], p["file"], p["start"], p["end"]) for p in mine["passages"]] == [
            (p["rank"], p["file"], p["start"], p["end"]) for p in api["passages"]], q
        assert (mine["answerable"], mine["index"]) == (api["answerable"], api["index"])
        assert [p["text"] for p in mine["passages"]] == [p["text"] for p in api["passages"]]
        check_exact(conn, mine)


@pytest.mark.parametrize("args", [
    {"top_k": 1}, {"top_k": 3, "mode": "dense"}, {"mode": "lexical"},
    {"files": ["sco-ai-*"], "top_k": 2}])
def test_ask_options_and_exact_spans(conn: Connection, args: dict[str, Any]) -> None:
    body = conn.ok("ask", question=Q_FARM, **args)
    assert body["mode"] == args.get("mode", "hybrid")
    assert 1 <= len(body["passages"]) <= args.get("top_k", 5)
    assert [p["rank"] for p in body["passages"]] == list(range(1, len(body["passages"]) + 1))
    if "files" in args:
        assert all(p["file"].startswith("sco-ai-") for p in body["passages"])
    check_exact(conn, body)


def test_read_span_of_a_passage_returns_its_text(conn: Connection) -> None:
    body = conn.ok("ask", question=Q_FARM, top_k=3)
    for p in body["passages"]:
        got = conn.ok("read_span", file=p["file"], start=p["start"], end=p["end"], context=40)
        text = file_text(conn.corpus / p["file"])
        assert got["span"]["text"] == p["text"]
        assert (got["span"]["line_start"], got["span"]["line_end"]) == (
            p["line_start"], p["line_end"])
        assert got["before"] == text[max(0, p["start"] - 40):p["start"]]
        assert got["after"] == text[p["end"]:p["end"] + 40]
        assert got["stale"] is False and got["sha256"] == got["indexed_sha256"] == p["file_sha256"]
        assert got["length"] == len(text) and got["text"] is None


def test_list_documents_and_resources(conn: Connection) -> None:
    listed = conn.ok("list_documents")
    files = sorted(p.name for p in conn.corpus.iterdir() if p.suffix in (".txt", ".md"))
    docs = {d["path"]: d for d in listed["documents"]}
    assert sorted(docs) == files
    for name, d in docs.items():
        data = (conn.corpus / name).read_bytes()
        assert (d["sha256"], d["size"]) == (hashlib.sha256(data).hexdigest(), len(data))
        assert d["chunks"] > 0

    templates = conn.run(conn.session.list_resource_templates).resource_templates
    assert [t.uri_template for t in templates] == ["rag://documents/{+path}"]
    resources = {r.name: r for r in conn.run(conn.session.list_resources).resources}
    assert sorted(resources) == files
    for name in files[:2]:
        assert resources[name].uri == f"rag://documents/{name}"
        got = conn.run(conn.session.read_resource, resources[name].uri).contents
        assert len(got) == 1 and got[0].text == file_text(conn.corpus / name)  # type: ignore[union-attr]


@pytest.mark.parametrize("uri, says", [
    ("rag://documents/../../etc/passwd", "Unknown resource"),
    ("rag://documents/nope.txt", "list_documents")])
def test_resource_outside_the_index_is_refused(conn: Connection, uri: str, says: str) -> None:
    with pytest.raises(MCPError) as e:
        conn.run(conn.session.read_resource, uri)
    assert says in str(e.value) and "root:" not in str(e.value)


# ---------------------------------------------------------------- errors

BAD_CALLS = [
    ("ask", {"question": ""}, "question"),
    ("ask", {"question": "   \n "}, "question"),
    ("ask", {"question": "x" * 2001}, "question"),
    ("ask", {"question": "a\x00b"}, "question"),
    ("ask", {"question": Q_FARM, "top_k": 500}, "top_k=500"),
    ("ask", {"question": Q_FARM, "top_k": 0}, "top_k=0"),
    ("ask", {"question": Q_FARM, "mode": "fuzzy"}, "mode='fuzzy'"),
    ("ask", {"question": Q_FARM, "files": ["*"] * 33}, "files"),
    ("read_span", {"file": "../../etc/passwd", "start": 0, "end": 10}, "not a corpus path"),
    ("read_span", {"file": "/etc/passwd", "start": 0, "end": 10}, "not a corpus path"),
    ("read_span", {"file": "nope.txt", "start": 0, "end": 10}, "list_documents"),
    ("read_span", {"file": "sco-ai-cooperation-2025-09-01.txt", "start": 0, "end": 10**7},
     "outside the document"),
    ("read_span", {"file": "sco-ai-cooperation-2025-09-01.txt", "start": 50, "end": 10},
     "outside the document"),
    ("read_span", {"file": "sco-ai-cooperation-2025-09-01.txt", "start": -1, "end": 10},
     "start=-1"),
    ("read_span", {"file": "sco-ai-cooperation-2025-09-01.txt", "start": 0, "end": 10,
                   "context": 10_001}, "context=10001"),
]


@pytest.mark.parametrize("tool, args, says", BAD_CALLS,
                         ids=[f"{t}-{i}" for i, (t, _, _) in enumerate(BAD_CALLS)])
def test_bad_input_is_a_one_line_tool_error_and_the_server_goes_on(
        conn: Connection, tool: str, args: dict[str, Any], says: str) -> None:
    r = conn.call(tool, **args)
    assert r.is_error, r
    assert r.structured_content is None and len(r.content) == 1
    msg = r.content[0].text  # type: ignore[union-attr]
    assert msg.startswith("error: ") and says in msg, msg
    assert "\n" not in msg and len(msg) < 400, msg
    assert "Traceback" not in msg
    for secret in (str(ROOT), str(conn.corpus.parent), str(Path.home())):
        assert secret not in msg, msg
    assert conn.ok("ask", question=Q_FARM, top_k=1)["passages"]  # still serving


def test_missing_index_error_names_rag_index_and_hides_the_path(conn: Connection,
                                                              tmp_path: Path) -> None:
    """A second server without an index: tools say `rag index`; the folder is not shown."""
    if conn.transport != "stdio":
        pytest.skip("checked once, over stdio")
    empty = tmp_path / "no-such-index"
    with stdio_connection(conn.corpus, empty, tmp_path / "server.log") as other:
        r = other.call("list_documents")
        msg = r.content[0].text  # type: ignore[union-attr]
        assert r.is_error and "rag index" in msg and str(tmp_path) not in msg, msg
        assert "\n" not in msg


# ---------------------------------------------------------------- hot reload, then hygiene

@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_follows_a_reindex_without_restart(transport: str, real_index: Settings,
                                          real_embedder: Any, tmp_path: Path) -> None:
    """Edit a file of a server's own corpus copy, re-index it the way `rag index` does: the
    running server switches to the new generation and cites the new text exactly. (Its own
    server: the module's shared one keeps the index the other tests compare with.)"""
    with _served_copy(transport, real_index, tmp_path) as conn:
        _reindex_and_follow(conn, real_embedder)


def _reindex_and_follow(conn: Connection, real_embedder: Any) -> None:
    before = conn.ok("list_documents")["generation"]
    path = conn.corpus / "sco-ai-cooperation-2025-09-01.txt"
    text = file_text(path)
    head, rest = text.split("\n", 1)
    note = "The pilot farm near Ussuriysk also trialled solar-powered irrigation drones in 2025."
    path.write_bytes(f"{head}\n{note}\n{rest}".encode())
    settings = Settings(corpus_dir=conn.corpus, index_dir=conn.index)
    with index_lock(conn.index, timeout_s=30):
        report = build_index(settings, embedder=real_embedder)
    assert report.generation is not None and report.generation != before

    deadline = time.monotonic() + 60
    while conn.ok("list_documents")["generation"] != report.generation:
        assert time.monotonic() < deadline, f"still on {before}:\n{conn.log_tail()}"
        time.sleep(0.2)
    body = conn.ok("ask", question="Which irrigation drones were trialled near Ussuriysk?")
    assert body["index"]["generation"] == report.generation
    assert any(note in p["text"] for p in body["passages"]), body["passages"]
    check_exact(conn, body)


def test_nothing_but_protocol_messages_on_the_wire(conn: Connection) -> None:
    """No transport fault so far (a stray print on a stdio server's stdout would be one);
    the fixture checks again when the server stops, after every test that used it."""
    conn.ok("list_documents")
    assert conn.faults == [], conn.faults
