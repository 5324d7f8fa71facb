"""A real `rag serve` process with the real model over loopback HTTP: it builds a missing
index first, then answers with citations exact to the bytes on disk."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag.errors import ConfigError

from .conftest import CORPUS
from .oracles import assert_exact_passage, file_text
from .serverutil import (
    HOST,
    ROOT,
    Server,
    free_port,
    process_on_free_port,
    running_server,
    wait_alive,
)

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


def check_exact(body: dict[str, Any], corpus: Path) -> None:
    """Every passage and highlight quotes the file on disk exactly."""
    assert body["passages"]
    for p in body["passages"]:
        data = (corpus / p["file"]).read_bytes()
        assert_exact_passage(file_text(corpus / p["file"]), p, p["file"])
        assert p["file_sha256"] == hashlib.sha256(data).hexdigest()


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


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The app under plain uvicorn on an empty index folder (no index build, no model load):
    alive, answering 503 to questions and 413 to bodies over the limit."""
    base = tmp_path_factory.mktemp("bare")
    (base / "index").mkdir()

    def command(port: int) -> list[str]:
        return [sys.executable, "-c", ("import uvicorn\nfrom rag.config import Settings\n"
                "from rag.serve.http import create_app\n"
                f"uvicorn.run(create_app(Settings()), host={HOST!r}, port={port})\n")]

    env = {"RAG_INDEX_DIR": str(base / "index"), "RAG_CORPUS_DIR": str(CORPUS)}
    with process_on_free_port(command, base / "bare.log", wait_alive, 120, env) as server:
        yield server


def test_oversized_body_sent_slowly_still_reads_413(bare: Server) -> None:
    """A 2 MiB body (over the 64 KiB limit, under DRAIN_BYTES) sent in small pieces with
    pauses, by a client that asks to close: the server reads it to its end before the 413,
    so no piece hits a reset connection and the answer is read whole."""
    server = bare
    size, piece = 2 * 1024 * 1024, 64 * 1024
    with socket.create_connection((HOST, server.port), timeout=30) as s:
        s.sendall(f"POST /ask HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {size}\r\nConnection: close\r\n\r\n".encode())
        for _ in range(size // piece):  # 32 pieces: the server has long answered by the end
            s.sendall(b"x" * piece)
            time.sleep(0.02)
        data = b""
        while len(data) < 1 << 20 and (chunk := s.recv(65536)):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.split()[1] == b"413", data[:300]
    assert json.loads(body)["error"] == "request body too large"


def test_oversized_chunked_body_sent_slowly_still_reads_413(bare: Server) -> None:
    """The same without a Content-Length: the limit trips while the body streams in."""
    server = bare
    piece = 64 * 1024
    with socket.create_connection((HOST, server.port), timeout=30) as s:
        s.sendall(f"POST /ask HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
                  "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode())
        for _ in range(32):
            s.sendall(b"%x\r\n" % piece + b"x" * piece + b"\r\n")
            time.sleep(0.02)
        s.sendall(b"0\r\n\r\n")
        data = b""
        while len(data) < 1 << 20 and (chunk := s.recv(65536)):
            data += chunk
    assert data.split()[1] == b"413", data[:300]


def _start_refused(command: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run a server start that must refuse, with RAG_READER_QUANTIZED=0 and the bundled
    (int8-only) reader; bounded."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAG_READER_QUANTIZED": "0",
           "RAG_INDEX_DIR": str(tmp_path / "index"), "RAG_CORPUS_DIR": str(CORPUS)}
    env.pop("RAG_READER_DIR", None)
    (tmp_path / "index").mkdir()
    return subprocess.run(command, check=False, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_serve_refuses_fp32_reader_not_shipped_in_one_line(tmp_path: Path) -> None:
    """`rag serve` with RAG_READER_QUANTIZED=0: one line naming the setting and the fix, no
    traceback, and no index built first."""
    r = _start_refused([sys.executable, "-m", "rag.serve.cli", "serve", "--host", HOST,
                        "--port", str(free_port())], tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: RAG_READER_QUANTIZED=0"), r.stderr
    assert "unset RAG_READER_QUANTIZED" in lines[0] and "Traceback" not in r.stderr
    assert not any((tmp_path / "index").iterdir())


def test_app_lifespan_turns_config_error_into_one_line(tmp_path: Path) -> None:
    """The app under plain uvicorn (no CLI check first): the lifespan's ConfigError stops
    start-up with one line, not Starlette's traceback."""
    script = ("import uvicorn\nfrom rag.config import Settings\n"
              "from rag.serve.http import create_app\n"
              f"uvicorn.run(create_app(Settings()), host={HOST!r}, port={free_port()})\n")
    r = _start_refused([sys.executable, "-c", script], tmp_path)
    assert r.returncode == 3, (r.returncode, r.stderr[-2000:])  # uvicorn: startup failed
    assert "Traceback" not in r.stderr, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if "RAG_READER_QUANTIZED" in ln]
    assert len(errors) == 1 and "cannot start: RAG_READER_QUANTIZED=0" in errors[0], r.stderr


def test_fp32_reader_served_when_its_card_ships_one(tmp_path: Path) -> None:
    """A reader folder whose card lists an fp32 file: the setting is accepted and that file
    is the one loaded."""
    from rag.config import Settings
    from rag.search.reader.runtime import CARD, Reader, bundled_dir
    from rag.search.searcher import check_reader_setting

    folder = tmp_path / "reader"
    shutil.copytree(bundled_dir(), folder)
    card = json.loads((folder / CARD).read_text())
    int8 = card["files"]["int8"]
    shutil.copy(folder / int8, folder / "reader-fp32.onnx")  # stands in for a float32 export
    card["files"]["fp32"] = "reader-fp32.onnx"
    card["sha256"]["reader-fp32.onnx"] = card["sha256"][int8]
    (folder / CARD).write_text(json.dumps(card))
    check_reader_setting(Settings(reader_dir=folder, reader_quantized=False))
    assert Reader(folder, quantized=False).file == folder / "reader-fp32.onnx"
    with pytest.raises(ConfigError, match="RAG_READER_QUANTIZED=0"):
        check_reader_setting(Settings(reader_quantized=False))  # the bundled card: int8 only
