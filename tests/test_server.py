"""A real `rag serve` process with the real model over loopback HTTP: it builds a missing
index first, then answers with citations exact to the bytes on disk."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import CORPUS
from .serverutil import HOST, Server, running_server

QUESTIONS = ["What share of the world's population lives in SCO countries?",
             "Which company trained farmers in Ussuriysk to use automatic navigation?",
             "artificial intelligence cooperation among SCO members"]


Served = tuple[Server, Path, Path]  # the server, its corpus copy, its index folder


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`rag serve` with the bundled model on a corpus copy and an EMPTY index folder."""
    base = tmp_path_factory.mktemp("serve")
    corpus, index = base / "corpus", base / "index"
    corpus.mkdir()
    for p in CORPUS.iterdir():
        (corpus / p.name).write_bytes(p.read_bytes())
    index.mkdir()
    assert not any(index.iterdir())
    with running_server(corpus, index, base / "serve.log", ready_timeout_s=180) as server:
        yield server, corpus, index
    assert server.proc.poll() is not None, "rag serve still running after stop"


@pytest.fixture(scope="module")
def http(served: Served) -> Iterator[httpx.Client]:
    """A loopback HTTP client for the server (no proxy from the environment)."""
    with httpx.Client(base_url=served[0].url, timeout=60, trust_env=False) as c:
        yield c


def read_text(path: Path) -> str:
    """The file's text exactly as indexed (no newline translation)."""
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def lines_of(text: str, start: int, end: int) -> tuple[int, int]:
    """1-based inclusive lines of text[start:end]."""
    return text.count("\n", 0, start) + 1, text.count("\n", 0, max(start, end - 1)) + 1


def check_exact(body: dict[str, Any], corpus: Path) -> None:
    """Every passage and highlight quotes the file on disk exactly."""
    assert body["passages"]
    for p in body["passages"]:
        data = (corpus / p["file"]).read_bytes()
        text = read_text(corpus / p["file"])
        assert text[p["start"]:p["end"]] == p["text"]
        assert (p["line_start"], p["line_end"]) == lines_of(text, p["start"], p["end"])
        assert p["file_sha256"] == hashlib.sha256(data).hexdigest()
        h = p["highlight"]
        if h:
            assert p["start"] <= h["start"] < h["end"] <= p["end"]
            assert text[h["start"]:h["end"]] == h["text"]


def raw_get(port: int, target: str) -> tuple[int, bytes]:
    """A GET sent byte for byte (no client-side path normalisation, like curl --path-as-is)."""
    with socket.create_connection((HOST, port), timeout=10) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
                  .encode("latin-1"))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
            if len(data) > 1 << 22:
                break
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_serve_built_the_missing_index_before_ready(served: Served, http: httpx.Client) -> None:
    server, corpus, index = served
    ready = http.get("/readyz")
    assert ready.status_code == 200
    gen = ready.json()["generation"]
    assert (index / "CURRENT").read_text().strip() == gen
    assert (index / "generations" / gen / "manifest.json").is_file()
    assert ready.json()["chunks"] > 0
    assert "no index in" in server.log_tail(100_000)
    assert http.get("/healthz").json() == {"status": "ok"}
    docs = http.get("/documents").json()
    assert sorted(d["path"] for d in docs) == sorted(p.name for p in corpus.iterdir())


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_ask_over_http_gives_exact_citations(served: Served, http: httpx.Client,
                                              mode: str) -> None:
    _, corpus, _ = served
    gen = http.get("/readyz").json()["generation"]
    for q in QUESTIONS:
        r = http.post("/ask", json={"question": q, "top_k": 5, "mode": mode})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["mode"] == mode and body["index"]["generation"] == gen
        assert 1 <= len(body["passages"]) <= 5
        check_exact(body, corpus)
        first = body["passages"][0]
        d = http.get(f"/documents/{first['file']}",
                     params={"start": first["start"], "end": first["end"]}).json()
        assert d["span"]["text"] == first["text"] and d["stale"] is False


def test_ask_finds_the_known_answer(served: Served, http: httpx.Client) -> None:
    body = http.post("/ask", json={"question": QUESTIONS[1], "top_k": 3}).json()
    assert any("Ussuriysk" in p["text"] for p in body["passages"])


def test_docs_page_and_openapi_examples(served: Served, http: httpx.Client) -> None:
    _, corpus, _ = served
    page = http.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in page.text.lower() and "openapi.json" in page.text
    spec = http.get("/openapi.json").json()
    assert set(spec["paths"]) >= {"/ask", "/documents", "/documents/{path}", "/healthz",
                                  "/readyz"}
    schema = spec["paths"]["/ask"]["post"]["requestBody"]["content"]["application/json"]
    schema = schema["schema"]
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    examples = schema.get("examples") or []
    assert len(examples) >= 1, schema
    for ex in examples:  # the documented examples work as written
        r = http.post("/ask", json=ex)
        assert r.status_code == 200, (ex, r.text[:300])
        check_exact(r.json(), corpus)


def test_errors_over_http(served: Served, http: httpx.Client) -> None:
    big = json.dumps({"question": "x" * (64 * 1024 + 10)}).encode()
    r = http.post("/ask", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "error" in r.json()
    r = http.post("/ask", content=b'{"question": "hi"}', headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "error" in r.json()
    r = http.post("/ask", content=b'{"question": ', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "error" in r.json()
    r = http.post("/ask", json={"question": "hi", "top_k": 51})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "top_k"
    assert "Traceback" not in r.text


def test_chunked_body_over_limit_is_413_over_http(served: Served, http: httpx.Client) -> None:
    big = json.dumps({"question": "x" * (64 * 1024 + 10)}).encode()
    r = http.post("/ask", content=iter([big[i:i + 8192] for i in range(0, len(big), 8192)]),
                  headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text


def test_raw_traversal_over_http(served: Served) -> None:
    server, corpus, _ = served
    targets = ["/documents/../../../../etc/passwd", "/documents/..%2f..%2f..%2fetc%2fpasswd",
               "/documents/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/documents//etc/passwd",
               "/documents/%2fetc%2fpasswd", "/documents/..\\..\\etc\\passwd",
               f"/documents/..%2f{corpus.name}_evil%2fsecret.txt",
               f"/documents/{corpus.parent.name}%2f..%2f..%2fetc%2fpasswd"]
    for t in targets:
        status, body = raw_get(server.port, t)
        assert status in (400, 404), (t, status, body[:200])
        assert b"root:x:0:0" not in body and b"Traceback" not in body
    assert raw_get(server.port, f"/documents/{sorted(corpus.iterdir())[0].name}")[0] == 200
