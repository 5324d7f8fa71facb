"""The HTTP API in-process (FastAPI TestClient): answers against the bytes on disk, every
documented error, path traversal, and hot reload under load."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rag.config import Settings
from rag.indexing.build import build_index
from rag.indexing.store import index_lock
from rag.search.searcher import Searcher
from rag.serve.http import create_app
from rag.serve.records import MAX_QUESTION

from .conftest import CORPUS, ROOT, fake_settings
from .oracles import assert_exact_passage, file_text

Q_SCO = "What share of the world's population lives in SCO countries?"
Q_FARM = "Which company trained farmers in Ussuriysk to use automatic navigation?"
QUESTIONS = [Q_SCO, Q_FARM, "artificial intelligence cooperation among SCO members",
             "digital silk road computing power", "How will SCO countries cooperate on "
             "digitalisation?"]

LOCATION_KEYS = {"page_start", "page_end", "heading", "heading_id", "paragraph"}  # null: text
PASSAGE_KEYS = {"rank", "score", "file", "start", "end", "line_start", "line_end", "text",
                "highlight", "retrievers", "file_sha256", "read", "answer"} | LOCATION_KEYS
SPAN_KEYS = {"start", "end", "line_start", "line_end", "text", "boxes"} | LOCATION_KEYS
JSON = {"content-type": "application/json"}

State = tuple[dict[str, str], dict[str, str]]  # ({path: text}, {path: sha256})


# ---------------------------------------------------------------- helpers

def sha256(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def check_citations(body: dict[str, Any], texts: dict[str, str], shas: dict[str, str]) -> int:
    """Every passage (and highlight) is an exact quote of `texts`; returns how many."""
    for p in body["passages"]:
        assert_exact_passage(texts[p["file"]], p, p["file"])  # with its highlight and answer
        assert p["file_sha256"] == shas[p["file"]]
    return len(body["passages"])


def corpus_state(corpus: Path) -> State:
    """({path: text}, {path: sha256}) of every corpus file now."""
    texts, shas = {}, {}
    for p in sorted(corpus.iterdir()):
        if p.is_file() and not p.is_symlink() and p.suffix == ".txt":
            texts[p.name] = file_text(p)
            shas[p.name] = sha256(p.read_bytes())
    return texts, shas


def assert_error(r: Any, status: int, field: str | None = None,
                 hidden: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON error with the given status, naming `field`, leaking no trace or server path."""
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]
    assert "Traceback" not in r.text
    for secret in (str(ROOT), *hidden):
        assert secret not in r.text, f"{secret!r} leaked in {r.text[:300]}"
    if field is not None:
        fields = [d["field"] for d in body["detail"]]
        assert field in fields, fields
    return body  # type: ignore[no-any-return]


def make_writable(corpus: Path) -> Path:
    """The copied corpus files keep the read-only mode of the originals; allow edits."""
    for p in corpus.rglob("*"):
        if p.is_file() and not p.is_symlink():
            p.chmod(0o644)
    return corpus


def reindex(settings: Settings) -> str:
    """Re-index under the index lock the way `rag index` does; the new generation's name."""
    with index_lock(settings.index_dir, timeout_s=30):
        report = build_index(settings)
    assert report.generation is not None, report.summary()
    return report.generation


def edit(path: Path, note: str) -> None:
    """Insert a paragraph after the first line, shifting every later offset."""
    text = file_text(path)
    head, rest = text.split("\n", 1)
    path.write_text(f"{head}\n{note}\n{rest}", encoding="utf-8", newline="")


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def client(real_index: Settings, real_searcher: Searcher) -> Iterator[TestClient]:
    """The app over the real index and model (lifespan run, no watcher)."""
    with TestClient(create_app(real_index, searcher=real_searcher, watch=False)) as c:
        yield c


@pytest.fixture(scope="module")
def real_state() -> State:
    """The real corpus as the session index saw it."""
    return corpus_state(CORPUS)


@pytest.fixture
def fake_app(tmp_path: Path, small_corpus: Path) -> Iterator[tuple[TestClient, Settings]]:
    """A fake-embedder app over an indexed, editable copy of the corpus."""
    settings = fake_settings(tmp_path, make_writable(small_corpus))
    reindex(settings)
    with TestClient(create_app(settings, watch=False)) as c:
        yield c, settings


# ---------------------------------------------------------------- POST /ask: answers

@pytest.mark.parametrize("read", [None, True])
def test_off_corpus_question_is_flagged_not_answerable(client: TestClient, real_searcher: Searcher,
                                                       read: bool | None) -> None:
    """The decision reaches the API, from the fast path's abstainer (default) or from the
    reader ("read": true): a question the corpus cannot answer is flagged, with a
    confidence below that threshold, and still gets its closest passages."""
    r = client.post("/ask", json={"question": "Which team won the 2022 FIFA World Cup?",
                                  **({} if read is None else {"read": read})})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["answerable"] is False
    threshold = real_searcher.reader.threshold if read else real_searcher.abstainer.threshold
    assert body["confidence"] < threshold
    assert len(body["passages"]) == 5
    assert all(p["answer"] is None for p in body["passages"])  # no answer where none is sure


def test_ask_response_shape_and_exact_citations(client: TestClient, real_state: State,
                                                real_searcher: Searcher) -> None:
    texts, shas = real_state
    r = client.post("/ask", json={"question": Q_SCO, "read": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"question", "mode", "answerable", "confidence", "passages", "index",
                         "timings_ms"}
    assert body["question"] == Q_SCO and body["mode"] == "hybrid"
    # the corpus answers this question, and the service (its reader) says so
    assert body["answerable"] is True
    assert body["confidence"] >= real_searcher.reader.threshold
    assert set(body["index"]) == {"generation", "built_at", "model", "chunks", "reader"}
    ready = client.get("/readyz").json()
    assert body["index"]["reader"] == ready["reader"] == real_searcher.reader.fingerprint
    assert body["index"]["generation"] == ready["generation"]
    assert body["index"]["chunks"] == ready["chunks"] > 0
    assert body["index"]["model"] == ready["model"]
    timings = body["timings_ms"]
    assert {"embed", "search", "total"} <= set(timings), timings
    assert all(isinstance(v, (int, float)) and v >= 0 for v in timings.values())
    assert timings["total"] >= max(timings["embed"], timings["search"])

    assert len(body["passages"]) == 5  # the default top_k
    assert [p["rank"] for p in body["passages"]] == [1, 2, 3, 4, 5]
    n = real_searcher.settings.reader_candidates  # read, reordered by the reader
    assert all(0 <= p["read"] <= 1 for p in body["passages"][:n])
    assert all(p["read"] is None and p["answer"] is None for p in body["passages"][n:])
    for a in (p["answer"] for p in body["passages"] if p["answer"] is not None):
        assert set(a) == SPAN_KEYS | {"score"} and 0 < a["score"] <= 1  # exact: check_citations
    fast = client.post("/ask", json={"question": Q_SCO}).json()  # the default: fast path
    assert fast["index"]["reader"] is None and "read" not in fast["timings_ms"]
    scores = [p["score"] for p in fast["passages"]]  # the fast path: fusion order
    assert scores == sorted(scores, reverse=True)
    assert all(p["read"] is None and p["answer"] is None for p in fast["passages"])
    assert {(p["file"], p["start"]) for p in fast["passages"][:n]} == \
        {(p["file"], p["start"]) for p in body["passages"][:n]}
    for p in body["passages"]:
        assert set(p) == PASSAGE_KEYS
        assert all(p[k] is None for k in LOCATION_KEYS)  # plain text has no page or heading
        assert set(p["retrievers"]) == {"dense", "lexical"}
        for placed in p["retrievers"].values():
            assert placed is None or (set(placed) == {"rank", "score"} and placed["rank"] >= 1)
        assert p["retrievers"]["dense"] or p["retrievers"]["lexical"]
        if p["highlight"] is not None:
            assert set(p["highlight"]) == SPAN_KEYS
    assert body["passages"][0]["highlight"] is not None
    assert check_citations(body, texts, shas) == 5


@pytest.mark.parametrize("top_k", [1, 3, 50])
def test_ask_respects_top_k(client: TestClient, real_state: State,
                           top_k: int) -> None:
    body = client.post("/ask", json={"question": Q_FARM, "top_k": top_k}).json()
    assert 1 <= len(body["passages"]) <= top_k
    if top_k <= 3:
        assert len(body["passages"]) == top_k
    assert [p["rank"] for p in body["passages"]] == list(range(1, len(body["passages"]) + 1))
    check_citations(body, *real_state)


@pytest.mark.parametrize("mode", ["dense", "lexical"])
def test_ask_single_retriever_modes(client: TestClient, real_state: State,
                                       mode: str) -> None:
    for q in QUESTIONS:
        r = client.post("/ask", json={"question": q, "mode": mode, "top_k": 5})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["mode"] == mode and body["passages"]
        # a single-retriever ranking lists only what that retriever returned
        assert all(p["retrievers"][mode] is not None for p in body["passages"])
        check_citations(body, *real_state)


def test_ask_file_filter(client: TestClient, real_state: State) -> None:
    q = "Intelligent Silk Road computing power and digital infrastructure"
    unfiltered = client.post("/ask", json={"question": q, "top_k": 10}).json()
    assert any(not p["file"].startswith("sco-") for p in unfiltered["passages"])
    body = client.post("/ask", json={"question": q, "top_k": 10, "files": ["sco-*"]}).json()
    assert body["passages"] and all(p["file"].startswith("sco-") for p in body["passages"])
    check_citations(body, *real_state)
    one = "sco-ai-cooperation-2025-09-01.txt"
    body = client.post("/ask", json={"question": q, "files": [one]}).json()
    assert body["passages"] and {p["file"] for p in body["passages"]} == {one}
    body = client.post("/ask", json={"question": q, "files": ["no-such-*"]}).json()
    assert body["passages"] == []


def test_ask_strips_the_question(client: TestClient) -> None:
    plain = client.post("/ask", json={"question": Q_FARM, "top_k": 3}).json()
    padded = client.post("/ask", json={"question": f" \t\n {Q_FARM}  \n", "top_k": 3}).json()
    assert padded["question"] == Q_FARM
    assert padded["passages"] == plain["passages"]
    # the limit applies after stripping: 2000 characters plus padding is accepted
    long_q = ("digital cooperation " * 200)[:MAX_QUESTION]
    r = client.post("/ask", json={"question": f"   {long_q}   ", "top_k": 1})
    assert r.status_code == 200, r.text[:300]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_library_and_api_give_the_same_passages(client: TestClient, real_searcher: Searcher,
                                                 mode: str) -> None:
    for q in QUESTIONS[:3]:
        api = client.post("/ask", json={"question": q, "top_k": 7, "mode": mode}).json()
        lib = real_searcher.ask(q, top_k=7, mode=mode)
        assert api["index"]["generation"] == lib.index.generation
        assert api["answerable"] == lib.answerable and api["confidence"] == lib.confidence
        assert [(p["rank"], p["file"], p["start"], p["end"], p["text"], p["score"])
                for p in api["passages"]] == [
            (p.rank, p.file, p.start, p.end, p.text, p.score) for p in lib.passages]
        assert [p["highlight"] and (p["highlight"]["start"], p["highlight"]["end"])
                for p in api["passages"]] == [
            p.highlight and (p.highlight.start, p.highlight.end) for p in lib.passages]


# ---------------------------------------------------------------- POST /ask: errors

@pytest.mark.parametrize(("payload", "field"), [
    ({"question": ""}, "question"),
    ({"question": "   \n\t "}, "question"),
    ({"question": "a" * (MAX_QUESTION + 1)}, "question"),
    ({}, "question"),
    ({"question": 42}, "question"),
    ({"question": "bad\x00byte"}, "question"),
    ({"question": "ok", "top_k": 0}, "top_k"),
    ({"question": "ok", "top_k": 51}, "top_k"),
    ({"question": "ok", "top_k": -1}, "top_k"),
    ({"question": "ok", "top_k": "many"}, "top_k"),
    ({"question": "ok", "mode": "fuzzy"}, "mode"),
    ({"question": "ok", "mode": None}, "mode"),
    ({"question": "ok", "colour": "blue"}, "colour"),
    ({"question": "ok", "files": ["sco-*"] * 33}, "files"),
    ({"question": "ok", "files": [""]}, "files.0"),
    ({"question": "ok", "files": ["x" * 257]}, "files.0"),
    ({"question": "ok", "files": "sco-*"}, "files"),
])
def test_ask_invalid_fields_are_422_naming_the_field(client: TestClient, payload: dict[str, Any],
                                                     field: str) -> None:
    assert_error(client.post("/ask", json=payload), 422, field)


def test_ask_limits_are_inclusive(client: TestClient) -> None:
    for payload in ({"question": "a" * MAX_QUESTION, "top_k": 1},
                    {"question": "SCO", "top_k": 50},
                    {"question": "SCO", "files": ["sco-*"] * 32}):
        assert client.post("/ask", json=payload).status_code == 200, payload


def big_body(size: int = 64 * 1024 + 100) -> bytes:
    """A valid JSON body just over the 64 KiB limit."""
    body = json.dumps({"question": "x" * size}).encode()
    assert len(body) > 64 * 1024
    return body


def chunks_of(data: bytes, size: int = 4096) -> Iterator[bytes]:
    """The body as a stream: no Content-Length, sent in pieces."""
    for i in range(0, len(data), size):
        yield data[i:i + size]


def test_ask_body_over_64k_with_content_length_is_413(client: TestClient) -> None:
    r = client.post("/ask", content=big_body(), headers=JSON)
    body = assert_error(r, 413)
    assert "too large" in body["error"]


def test_ask_streamed_body_over_64k_without_content_length_is_413(client: TestClient) -> None:
    r = client.post("/ask", content=chunks_of(big_body()), headers=JSON)
    assert_error(r, 413)


def test_ask_streamed_body_over_64k_is_rejected_without_a_crash(client: TestClient) -> None:
    """Whatever the status, a streamed oversize body never reaches the model or crashes."""
    r = client.post("/ask", content=chunks_of(big_body()), headers=JSON)
    assert r.status_code in (400, 413)
    assert_error(r, r.status_code)


def test_ask_small_streamed_body_is_accepted(client: TestClient) -> None:
    data = json.dumps({"question": Q_FARM, "top_k": 2}).encode()
    r = client.post("/ask", content=chunks_of(data, 7), headers=JSON)
    assert r.status_code == 200, r.text
    assert len(r.json()["passages"]) == 2


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x", ""])
def test_ask_wrong_content_type_is_415(client: TestClient, ctype: str) -> None:
    r = client.post("/ask", content=json.dumps({"question": Q_FARM}).encode(),
                    headers={"content-type": ctype})
    assert_error(r, 415)


@pytest.mark.parametrize("raw", [
    b'{"question": "hi"', b"{question: 'hi'}", b"not json", b'{"question": "hi"}}',
    b'{"question": "\xff\xfe caf\xe9"}', b"\xc3\x28", b'{"question": "caf\xc3"}',
    b'{"question": "\xc0\xaf overlong"}',
    b'{"question": "\xed\xa0\x80 lone surrogate"}',
])
def test_ask_invalid_json_or_utf8_is_400(client: TestClient, raw: bytes) -> None:
    assert_error(client.post("/ask", content=raw, headers=JSON), 400)


@pytest.mark.parametrize("raw", [b"", b"[]", b"null", b'"question"', b"42"])
def test_ask_json_that_is_not_an_object_is_422(client: TestClient, raw: bytes) -> None:
    assert_error(client.post("/ask", content=raw, headers=JSON), 422)


def test_wrong_method_and_unknown_route_are_json_errors(client: TestClient) -> None:
    assert_error(client.get("/ask"), 405)
    assert_error(client.get("/no/such/route"), 404)


# ---------------------------------------------------------------- no index yet

def test_empty_index_folder_is_503_with_a_reason(tmp_path: Path, small_corpus: Path) -> None:
    settings = fake_settings(tmp_path, small_corpus)
    settings.index_dir.mkdir()
    with TestClient(create_app(settings)) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/healthz").json() == {"status": "ok"}
        for r in (c.post("/ask", json={"question": Q_SCO}), c.get("/readyz"),
                  c.get("/documents"), c.get("/documents/sco-ai-cooperation-2025-09-01.txt")):
            body = assert_error(r, 503, hidden=(str(tmp_path),))
            assert "no index" in body["error"] and "rag index" in body["error"], body


# ---------------------------------------------------------------- documents

def test_documents_lists_the_indexed_files(client: TestClient) -> None:
    r = client.get("/documents")
    assert r.status_code == 200
    docs = r.json()
    files = sorted(p.name for p in CORPUS.iterdir())
    assert [d["path"] for d in docs] == files and len(files) == 5
    for d in docs:
        assert set(d) == {"path", "sha256", "size", "chunks", "title", "date", "date_source",
                          "format"}
        assert d["format"] == "text"
        data = (CORPUS / d["path"]).read_bytes()
        assert d["sha256"] == sha256(data) and d["size"] == len(data)
        assert d["chunks"] >= 1
        assert d["title"] and d["title"] in data.decode("utf-8")
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", d["date"])  # every file has one now
        assert d["date_source"] in ("line", "mtime")
    dated = {d["path"]: (d["date"], d["date_source"]) for d in docs}
    assert dated["sco-ai-cooperation-2025-09-01.txt"] == ("2025-09-01", "line")
    assert sum(d["chunks"] for d in docs) == client.get("/readyz").json()["chunks"]


def test_document_span_verifies_a_citation(client: TestClient, real_state: State) -> None:
    texts, shas = real_state
    body = client.post("/ask", json={"question": Q_FARM, "top_k": 3}).json()
    for p in body["passages"]:
        text = texts[p["file"]]
        r = client.get(f"/documents/{p['file']}", params={"start": p["start"], "end": p["end"]})
        assert r.status_code == 200, r.text
        d = r.json()
        assert d["path"] == p["file"] and d["length"] == len(text)
        assert d["sha256"] == d["indexed_sha256"] == shas[p["file"]] == p["file_sha256"]
        assert d["stale"] is False
        span = d["span"]
        assert (span["start"], span["end"], span["text"]) == (p["start"], p["end"], p["text"])
        assert (span["line_start"], span["line_end"]) == (p["line_start"], p["line_end"])
        assert d["before"] == text[max(0, p["start"] - 300):p["start"]]
        assert d["after"] == text[p["end"]:p["end"] + 300]
        assert d["text"] is None


def test_document_whole_text_and_context(client: TestClient, real_state: State) -> None:
    texts, _ = real_state
    name = "sco-digital-cooperation-2025-08-29.txt"
    d = client.get(f"/documents/{name}").json()
    assert d["text"] == texts[name] and d["span"] is None
    d = client.get(f"/documents/{name}", params={"start": 100, "end": 150, "context": 10}).json()
    assert d["before"] == texts[name][90:100] and d["after"] == texts[name][150:160]
    n = len(texts[name])
    for a, b in ((0, 0), (0, n), (n, n)):  # the edges are inside
        d = client.get(f"/documents/{name}", params={"start": a, "end": b}).json()
        assert d["span"]["text"] == texts[name][a:b]
    d = client.get(f"/documents/{name}", params={"start": n - 5}).json()  # end defaults to length
    assert d["span"]["text"] == texts[name][n - 5:]


@pytest.mark.parametrize("params", [
    {"start": -1, "end": 5}, {"end": -3}, {"start": "x"}, {"context": 10_001},
    {"context": -1},
])
def test_document_span_invalid_parameters_are_422(client: TestClient,
                                                  params: dict[str, Any]) -> None:
    r = client.get("/documents/sco-ai-cooperation-2025-09-01.txt", params=params)
    assert_error(r, 422)


@pytest.mark.parametrize("params", [
    {"start": 10, "end": 5}, {"start": 0, "end": 10**6}, {"start": 10**6},
])
def test_document_span_outside_the_text_is_404(client: TestClient,
                                               params: dict[str, Any]) -> None:
    """Well-formed, but no such span in this document (schema-valid, so not a 422)."""
    r = client.get("/documents/sco-ai-cooperation-2025-09-01.txt", params=params)
    assert_error(r, 404)
    assert "outside the document" in r.json()["error"]


def test_document_changed_on_disk_is_stale(fake_app: tuple[TestClient, Settings]) -> None:
    c, settings = fake_app
    name = "sco-digitalisation-2022-09-30.txt"
    before = c.get(f"/documents/{name}", params={"start": 0, "end": 40}).json()
    assert before["stale"] is False and before["sha256"] == before["indexed_sha256"]
    edit(settings.corpus_dir / name, "An inserted paragraph that the index has not seen.")
    new_text = file_text(settings.corpus_dir / name)
    after = c.get(f"/documents/{name}", params={"start": 0, "end": 40}).json()
    assert after["stale"] is True
    assert after["sha256"] != before["sha256"]
    assert after["sha256"] == sha256((settings.corpus_dir / name).read_bytes())
    assert after["indexed_sha256"] == before["indexed_sha256"]
    assert after["span"]["text"] == new_text[0:40] and after["length"] == len(new_text)
    r = c.get(f"/documents/{name}", params={"start": 0, "end": len(new_text) + 1})
    assert_error(r, 404)


# ---------------------------------------------------------------- path traversal

MARKER = "TOP-SECRET-MARKER-7f3c1e"

# What a client puts on the wire for "one level up" (the server decodes once).
UPS = ["../", "..%2f", "..%2F", "%2e%2e%2f", "%2e%2e/", ".%2e/", "%2e./", "..%5c", "..\\",
       "%2e%2e%5c", "%252e%252e%252f", "..%252f", "%252e%252e/", "....//", "..;/", "..%00/",
       "%2e%2e%00/", "%e2%80%a4%e2%80%a4/", "%ef%bc%8e%ef%bc%8e/", "%ef%bc%8e%ef%bc%8e%ef%bc%8f",
       "..%e2%88%95", "%c0%ae%c0%ae/", "%c0%ae%c0%ae%c0%af", "..%u2216"]


def traversal_payloads(victim: str, outside: Path, evil: Path) -> list[str]:
    """Wire paths (after /documents/) that try to leave the corpus folder."""
    targets = ["secret.txt", "outside/secret.txt", "corpus_evil/secret.txt", "etc/passwd",
               "link-secret.txt", "linkdir/secret.txt", victim]
    out = [f"{up * depth}{t}" for up in UPS for depth in (1, 2, 3) for t in targets]
    q = urllib.parse.quote
    for absolute in ("/etc/passwd", str(outside / "secret.txt"), str(evil / "secret.txt")):
        out += [absolute, q(absolute, safe=""), "/" + absolute, f"%2f{absolute.lstrip('/')}",
                f"file://{absolute}", q(q(absolute, safe=""), safe="")]
    out += ["..", ".", "%2e%2e", "%2e", "...", "", "/", "%00", f"{victim}%00", f"{victim}%00.md",
            f"{victim}/", f"{victim}/..", f"{victim}/../{victim}", f"./{victim}",
            f"{victim}/../../corpus_evil/secret.txt", "linkdir%2fsecret.txt", "link-secret.txt",
            "linkdir/secret.txt", "linkdir", "C:\\Windows\\win.ini", "C:/Windows/win.ini",
            "%5c%5c?%5cC:%5cWindows", "\\\\server\\share\\secret.txt", "~/secret.txt",
            "~root/.bashrc", "$HOME/secret.txt", "%2e%2e%2f" * 12 + "etc/passwd",
            "../" * 40 + "etc/passwd", f"{victim.upper()}", f"{victim} ", f" {victim}",
            f"{victim}\t", f"{victim}%0a", f"{victim}%0d%0a", f"{victim}?x=1", f"{victim};x"]
    return out


def asgi_get(app: Any, wire_paths: list[str]) -> list[tuple[int, bytes]]:
    """GET raw paths straight into the ASGI app, decoded once as uvicorn does (an HTTP client
    would normalise '../' away; a raw socket, e.g. curl --path-as-is, does not)."""
    async def one(wire: str) -> tuple[int, bytes]:
        raw, _, query = wire.partition("?")
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "root_path": "",
                 "path": urllib.parse.unquote(raw),
                 "raw_path": raw.encode("utf-8", "surrogateescape"),
                 "query_string": query.encode(), "headers": [(b"host", b"127.0.0.1")],
                 "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}
        sent = False
        status, body = 0, bytearray()

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.sleep(3600)  # never a disconnect while the app answers
            return {"type": "http.disconnect"}

        async def send(msg: dict[str, Any]) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
            elif msg["type"] == "http.response.body":
                body.extend(msg.get("body", b""))

        await asyncio.wait_for(app(scope, receive, send), timeout=30)
        return status, bytes(body)

    async def run() -> list[tuple[int, bytes]]:
        return [await one(w) for w in wire_paths]

    return asyncio.run(run())


def test_path_traversal_never_leaks(tmp_path: Path, small_corpus: Path) -> None:
    corpus = make_writable(small_corpus)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(f"{MARKER} outside the corpus\n")
    evil = tmp_path / "corpus_evil"  # a sibling whose name starts with the corpus's name
    evil.mkdir()
    (evil / "secret.txt").write_text(f"{MARKER} in a sibling folder\n")
    (corpus / "link-secret.txt").symlink_to(outside / "secret.txt")
    (corpus / "linkdir").symlink_to(outside, target_is_directory=True)
    settings = fake_settings(tmp_path, corpus)
    reindex(settings)  # links that leave the corpus are not indexed ...
    victim = "sco-digital-transformation-cgtn.txt"
    app = create_app(settings, watch=False)
    with TestClient(app) as c:
        indexed = {d["path"] for d in c.get("/documents").json()}
        assert indexed == {p.name for p in CORPUS.iterdir()}, indexed
        assert c.get(f"/documents/{victim}").status_code == 200
        assert asgi_get(app, [f"/documents/{victim}"])[0][0] == 200  # the raw route works
        # ... and an indexed file swapped for a link to outside after indexing is not served
        (corpus / victim).unlink()
        (corpus / victim).symlink_to(outside / "secret.txt")

        payloads = traversal_payloads(victim, outside, evil)
        payloads += [f"{p}?start=0&end=10" for p in payloads[::3]]
        assert len(set(payloads)) >= 200
        wire = [f"/documents/{p}" for p in payloads]
        results = asgi_get(app, wire)
        # the same attacks through an ordinary HTTP client, percent-encoded once more
        encoded = ["/documents/" + urllib.parse.quote(urllib.parse.unquote(p), safe="")
                   .replace(".", "%2E") for p in payloads if "?" not in p]
        results += [(r.status_code, r.content) for r in map(c.get, encoded)]

    bad = []
    for path, (status, body) in zip(wire + encoded, results):
        text = body.decode("utf-8", "replace")
        leaked = MARKER in text or "root:x:0:0" in text or str(tmp_path) in text
        if status not in (400, 404) or leaked or "Traceback" in text or \
                "error" not in json.loads(body):
            bad.append((path, status, text[:120]))
    print(f"\ntraversal: {len(results)} payloads, {len(bad)} leaks")
    assert not bad, bad[:20]


# ---------------------------------------------------------------- hot reload

def test_hot_reload_switches_generation(tmp_path: Path, small_corpus: Path) -> None:
    settings = fake_settings(tmp_path, make_writable(small_corpus), reload_interval_s=0.2)
    first = reindex(settings)
    with TestClient(create_app(settings, watch=True)) as c:
        assert c.get("/readyz").json()["generation"] == first
        name = "sco-ai-cooperation-2025-09-01.txt"
        edit(settings.corpus_dir / name, "Quantum zebra telescopes were announced at the summit.")
        second = reindex(settings)
        assert second != first
        deadline = time.monotonic() + 10
        while c.get("/readyz").json()["generation"] != second:
            assert time.monotonic() < deadline, "the new generation was not picked up in 10 s"
            time.sleep(0.05)
        body = c.post("/ask", json={"question": "quantum zebra telescopes", "top_k": 3}).json()
        assert body["index"]["generation"] == second
        check_citations(body, *corpus_state(settings.corpus_dir))
        assert any("zebra" in p["text"].lower() for p in body["passages"])


def test_hot_reload_under_load_keeps_citations_exact(tmp_path: Path, small_corpus: Path) -> None:
    settings = fake_settings(tmp_path, make_writable(small_corpus), reload_interval_s=0.2)
    corpus = settings.corpus_dir
    snapshots: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
    first = reindex(settings)
    snapshots[first] = corpus_state(corpus)
    names = ["sco-ai-cooperation-2025-09-01.txt", "sco-digitalisation-2022-09-30.txt",
             "sco-digital-cooperation-2025-08-29.txt"]
    questions = [{"question": q, "top_k": 5, "mode": m} for q in
                 ["SCO digital cooperation agreement", "artificial intelligence summit",
                  "update note council", "digitalisation of member states"]
                 for m in ("hybrid", "dense", "lexical")]
    stop = threading.Event()
    lock = threading.Lock()
    answered: list[dict[str, Any]] = []
    errors: list[str] = []

    with TestClient(create_app(settings, watch=True)) as c:
        def hammer(k: int) -> None:
            i = k
            while not stop.is_set():
                try:
                    r = c.post("/ask", json=questions[i % len(questions)])
                except Exception as e:  # noqa: BLE001 - a crash is a failure to report
                    with lock:
                        errors.append(f"exception {e!r}")
                    continue
                finally:
                    i += 1
                with lock:
                    if r.status_code == 200:
                        answered.append(r.json())
                    else:
                        errors.append(f"{r.status_code} {r.text[:200]}")

        threads = [threading.Thread(target=hammer, args=(k,), daemon=True) for k in range(4)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        try:
            for n, name in enumerate(names, 1):
                time.sleep(1.0)
                edit(corpus / name, f"Update {n}: the council added update note number {n}.")
                gen = reindex(settings)
                snapshots[gen] = corpus_state(corpus)  # right after the build, before any edit
            deadline = time.monotonic() + 10
            while c.get("/readyz").json()["generation"] != gen:
                assert time.monotonic() < deadline, "last generation not picked up in 10 s"
                time.sleep(0.05)
            time.sleep(max(0.5, 5.0 - (time.monotonic() - t0)))
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        assert not any(t.is_alive() for t in threads)

    seen: dict[str, int] = {}
    for body in answered:
        g = body["index"]["generation"]
        assert g in snapshots, f"answer names unknown generation {g}"
        check_citations(body, *snapshots[g])
        seen[g] = seen.get(g, 0) + 1
    total = len(answered) + len(errors)
    print(f"\nhot reload: {total} requests, {len(errors)} errors, generations seen: "
          + ", ".join(f"{g} ({n})" for g, n in sorted(seen.items())))
    assert not errors, errors[:10]
    assert len(answered) >= 40
    assert len(seen) >= 2 and gen in seen, seen
