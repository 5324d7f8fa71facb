"""API keys through real processes: `rag keys`, a 3-key matrix against a real `rag serve` (HTTP
API, path tricks, symlinks, revocation while clients ask), `rag mcp --http` with the same keys,
the search page in Chromium (token asked once, signed original links), and the refusal to serve
off loopback without keys. Real model, real uvicorn on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from rag.config import Settings
from rag.indexing.build import build_index
from rag.indexing.store import index_lock

from .conftest import CORPUS, ROOT
from .serverutil import HOST, Server, process_on_free_port, running_server, wait_listening

PUBLIC = ("sco-digital-cooperation-2025-08-29.txt", "sco-digital-transformation-cgtn.txt")
SECRET = ("sco-ai-cooperation-2025-09-01.txt",)
HR = ("sco-digitalisation-2022-09-30.txt",)
QUESTIONS = ("Which company trained farmers in Ussuriysk to use automatic navigation?",
             "What share of the world's population lives in SCO countries?",
             "digital silk road computing power",
             "How will SCO countries cooperate on digitalisation?",
             "artificial intelligence cooperation")
HTML_DOC = ("<html><head><title>Public briefing</title></head><body><h1 id='top'>Briefing"
            "</h1><p>The harbour crane contract was signed by the port authority in March."
            "</p><p>Cranes arrive in the autumn.</p></body></html>")
TIMEOUT = 300.0  # a loaded 2-core machine can take minutes to start a server


def rag(*args: str, env: dict[str, str] | None = None, timeout: float = 120
        ) -> subprocess.CompletedProcess[str]:
    """`python -m rag.serve.cli ARGS` from the repo root (this checkout's code)."""
    return subprocess.run([sys.executable, "-m", "rag.serve.cli", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout, check=False,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})


@dataclass
class World:
    """The corpus, the index, the keys and their tokens, and what each key may read."""

    corpus: Path
    index: Path
    tokens: dict[str, str]
    may_read: dict[str, set[str]]
    all_files: set[str]

    def forbidden(self, key: str) -> set[str]:
        """Indexed files the key may not read."""
        return self.all_files - self.may_read[key]


def add_key(world_index: Path, corpus: Path, name: str, *allow: str) -> str:
    """`rag keys add`: the token is the last line of stdout."""
    args = ["keys", "add", name, "--corpus", str(corpus), "--index", str(world_index)]
    for g in allow:
        args += ["--allow", g]
    r = rag(*args)
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"rag_[A-Za-z0-9_-]{43}", token), r.stdout
    return token


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, real_embedder: Any) -> World:
    """public/, secret/, hr/ from the seed corpus, a link public/link.txt -> secret, a folder
    link public/alias -> ../secret, an HTML file; the real model's index; three keys."""
    root = tmp_path_factory.mktemp("keys")
    corpus, index = root / "corpus", root / "index"
    for folder, names in (("public", PUBLIC), ("secret", SECRET), ("hr", HR)):
        (corpus / folder).mkdir(parents=True)
        for n in names:
            shutil.copyfile(CORPUS / n, corpus / folder / n)
    (corpus / "public" / "briefing.html").write_text(HTML_DOC)
    (corpus / "public" / "link.txt").symlink_to(Path("..") / "secret" / SECRET[0])
    (corpus / "public" / "alias").symlink_to(Path("..") / "secret")
    settings = Settings(corpus_dir=corpus, index_dir=index, read=False)
    with index_lock(index):
        build_index(settings, embedder=real_embedder)
    all_files = {f"public/{n}" for n in PUBLIC} | {f"secret/{n}" for n in SECRET} | {
        f"hr/{n}" for n in HR} | {"public/briefing.html", "public/link.txt"} | {
        f"public/alias/{n}" for n in SECRET}
    tokens = {"pub": add_key(index, corpus, "pub", "public/**"),
              "hr": add_key(index, corpus, "hr", "hr/**", "public/*.txt"),
              "all": add_key(index, corpus, "all", "**")}
    may = {"pub": {f"public/{n}" for n in PUBLIC} | {"public/briefing.html"},
           "hr": {f"hr/{n}" for n in HR} | {f"public/{n}" for n in PUBLIC},
           "all": all_files}
    return World(corpus, index, tokens, may, all_files)


def wait_ready_with(server: Server, token: str, timeout_s: float) -> dict[str, Any]:
    """Poll /readyz with a key until 200."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(server.log_tail())
        try:
            r = httpx.get(f"{server.url}/readyz", headers=bearer(token), timeout=5)
            if r.status_code == 200:
                return r.json()  # type: ignore[no-any-return]
            last = r.status_code
        except httpx.HTTPError as e:
            last = e
        time.sleep(0.2)
    raise TimeoutError(f"not ready ({last}):\n{server.log_tail()}")


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of a token."""
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def server(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`rag serve` over the world, keys required (the keys file is in the index folder)."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with running_server(world.corpus, world.index, log, ready=False, ready_timeout_s=TIMEOUT,
                        env={"RAG_KEY_RATE_PER_S": "0"}) as srv:
        wait_ready_with(srv, world.tokens["all"], TIMEOUT)
        yield srv


def secrets_of(world: World, key: str) -> list[str]:
    """Strings that must never reach this key: forbidden paths, file names and titles."""
    out: set[str] = set()
    for path in world.forbidden(key):
        out.add(path)
        name = path.rsplit("/", 1)[-1]
        if not any(p.endswith("/" + name) for p in world.may_read[key]):
            out.add(name)
            first = (world.corpus / path).read_text(encoding="utf-8").lstrip("\ufeff")
            m = re.match(r"\s*date\s+\S+\s+(.+)", first.splitlines()[0])
            out.add((m.group(1) if m else first.splitlines()[0]).strip()[:60])
    return sorted(s for s in out if s)


def assert_no_leak(text: str, world: World, key: str) -> None:
    """No forbidden path, file name or title in a response body or header dump."""
    leaked = [s for s in secrets_of(world, key) if s in text]
    assert not leaked, f"{key} sees {leaked} in {text[:300]}"


# ---------------------------------------------------------------- the HTTP matrix

@pytest.mark.parametrize("key", ["pub", "hr", "all"])
def test_each_key_lists_asks_and_reads_only_its_grant(server: Server, world: World,
                                                      key: str) -> None:
    h = bearer(world.tokens[key])
    with httpx.Client(base_url=server.url, headers=h, timeout=TIMEOUT) as c:
        docs = c.get("/documents")
        assert docs.status_code == 200
        assert {d["path"] for d in docs.json()} == world.may_read[key]
        assert_no_leak(docs.text, world, key)
        ready = c.get("/readyz").json()
        assert ready["chunks"] == sum(d["chunks"] for d in docs.json())
        for q in QUESTIONS:
            for files in (None, ["secret/*"], ["*"], ["public/*", "hr/*"]):
                r = c.post("/ask", json={"question": q, "top_k": 5, "files": files})
                assert r.status_code == 200, r.text
                body = r.json()
                got = {p["file"] for p in body["passages"]}
                assert got <= world.may_read[key], (q, files, got)
                assert body["index"]["chunks"] == ready["chunks"]
                assert_no_leak(r.text + json.dumps(dict(r.headers)), world, key)
                if files is None:  # the grant holds plenty of text: a full top 5
                    assert len(body["passages"]) == 5, (q, key)
        for path in sorted(world.may_read[key])[:3]:
            r = c.get(f"/documents/{quote(path)}", params={"start": 0, "end": 10})
            assert r.status_code == 200 and r.json()["path"] == path


def not_found_shape(r: httpx.Response, path: str) -> tuple[int, str]:
    """A 404's status and body with the asked path taken out (the same for every path)."""
    return r.status_code, r.text.replace(json.dumps(path)[1:-1], "PATH").replace(
        quote(path, safe="/"), "PATH")


@pytest.mark.parametrize("key", ["pub", "hr"])
def test_forbidden_documents_are_exactly_missing_ones(server: Server, world: World,
                                                      key: str) -> None:
    h = bearer(world.tokens[key])
    with httpx.Client(base_url=server.url, headers=h, timeout=TIMEOUT) as c:
        for path in sorted(world.forbidden(key)):
            missing = path.rsplit("/", 1)[0] + "/no-such-file.txt"
            for suffix, params in (("", {"start": 0, "end": 5}), ("", {}),
                                   ("/original", {}), ("/pages/1.png", {"start": 0, "end": 5})):
                f = c.get(f"/documents/{quote(path)}{suffix}", params=params)
                m = c.get(f"/documents/{quote(missing)}{suffix}", params=params)
                assert f.status_code == 404, (path, suffix, f.text)
                assert not_found_shape(f, path) == not_found_shape(m, missing), (f.text, m.text)
                # the body names the path the caller sent, nothing more
                assert_no_leak(f.text.replace(path, "") + json.dumps(dict(f.headers)), world, key)
            # ... also before any other error: an impossible span is still "not in the index"
            f = c.get(f"/documents/{quote(path)}", params={"start": 10**9, "end": 10**9})
            assert f.status_code == 404 and "not in the index" in f.json()["error"]
        # a permitted text file asked for a page is "not a PDF"; a forbidden one is missing
        ok = min(world.may_read[key])
        r = c.get(f"/documents/{quote(ok)}/pages/1.png")
        assert r.status_code == 404 and "not a PDF" in r.json()["error"]


def test_path_tricks_reach_nothing(server: Server, world: World) -> None:
    h = bearer(world.tokens["pub"])
    tricks = [f"public/../secret/{SECRET[0]}", f"public%2F..%2Fsecret%2F{SECRET[0]}",
              f"secret%2F{SECRET[0]}", f"Secret/{SECRET[0]}", f"SECRET/{SECRET[0]}",
              f"public/alias/{SECRET[0]}", "public/link.txt", f"./secret/{SECRET[0]}",
              f"public/./../secret/{SECRET[0]}", f"%2e%2e/secret/{SECRET[0]}",
              f"public/alias/../../secret/{SECRET[0]}", f"public//../secret/{SECRET[0]}"]
    with httpx.Client(base_url=server.url, headers=h, timeout=TIMEOUT) as c:
        for t in tricks:
            for suffix in ("", "/original"):
                r = c.get(f"/documents/{t}{suffix}")
                assert r.status_code == 404, (t, suffix, r.status_code, r.text[:200])
                # the generic 'missing' answer, naming only the path as the server received it
                generic = re.sub(r"'[^']*'", "'P'", r.json()["error"], count=1)
                assert generic in ("document 'P' is not in the index; see GET /documents",
                                   "document path 'P' is not a corpus path"), r.text
        r = c.post("/ask", json={"question": "artificial intelligence cooperation",
                                 "files": ["public/alias/*", "public/link.txt", "secret/**",
                                           "../secret/*"]})
        assert r.status_code == 200 and r.json()["passages"] == []


def test_missing_unknown_and_revoked_tokens_get_one_401(server: Server, world: World) -> None:
    doomed = add_key(world.index, world.corpus, "doomed", "public/**")
    deadline = time.monotonic() + 10
    while httpx.get(f"{server.url}/documents", headers=bearer(doomed)).status_code != 200:
        assert time.monotonic() < deadline, "a new key did not reach the server in 10 s"
        time.sleep(0.1)
    assert rag("keys", "revoke", "doomed", "--index", str(world.index)).returncode == 0
    deadline = time.monotonic() + 10
    while httpx.get(f"{server.url}/documents", headers=bearer(doomed)).status_code != 401:
        assert time.monotonic() < deadline, "a revoked key still worked after 10 s"
        time.sleep(0.1)
    bodies = set()
    for headers in ({}, bearer("rag_" + "A" * 43), bearer(doomed), {"Authorization": "Basic x"},
                    {"Authorization": "Bearer"}, bearer(world.tokens["pub"] + "x")):
        for method, path in (("GET", "/documents"), ("POST", "/ask"), ("GET", "/readyz"),
                             ("GET", f"/documents/public/{PUBLIC[0]}/original"),
                             ("GET", "/no-such-route")):
            r = httpx.request(method, server.url + path, headers=headers,
                              json={"question": "x"} if method == "POST" else None)
            assert r.status_code == 401, (headers, path, r.text)
            assert r.headers["www-authenticate"].startswith("Bearer")
            bodies.add(r.text)
    assert len(bodies) == 1, bodies
    for open_path in ("/healthz", "/", "/docs", "/openapi.json"):
        assert httpx.get(server.url + open_path).status_code == 200, open_path


def test_revocation_while_clients_ask(server: Server, world: World) -> None:
    token = add_key(world.index, world.corpus, "busy", "public/**")
    statuses: list[tuple[float, int]] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=server.url, headers=bearer(token), timeout=TIMEOUT) as c:
            while not stop.is_set():
                r = c.post("/ask", json={"question": QUESTIONS[1], "top_k": 3})
                statuses.append((time.monotonic(), r.status_code))
                if r.status_code == 200:
                    assert {p["file"] for p in r.json()["passages"]} <= world.may_read["pub"]

    threads = [threading.Thread(target=client) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 60
        while not any(s == 200 for _, s in statuses):
            assert time.monotonic() < deadline, f"the new key never answered: {statuses[-5:]}"
            time.sleep(0.1)
        assert rag("keys", "revoke", "busy", "--index", str(world.index)).returncode == 0
        revoked_at = time.monotonic()
        while time.monotonic() < revoked_at + 8:
            time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(TIMEOUT)
    assert {s for _, s in statuses} <= {200, 401}, statuses
    last_200 = max((t for t, s in statuses if s == 200), default=0.0)
    assert last_200 - revoked_at < 3.0, "answers kept coming more than 3 s after revocation"
    assert statuses[-1][1] == 401


def test_signed_links_open_originals_without_the_token(server: Server, world: World) -> None:
    token = world.tokens["pub"]
    path = "public/briefing.html"
    r = httpx.get(f"{server.url}/links/{path}", headers=bearer(token))
    assert r.status_code == 200, r.text
    link = r.json()["original"]
    assert token not in link and "sig=" in link
    got = httpx.get(server.url + link)  # no header: what a browser sends
    assert got.status_code == 200 and "harbour crane" in got.text
    assert "sandbox" in got.headers["content-security-policy"]
    # a link for one file opens no other, and a tampered one opens nothing
    query = link.split("?", 1)[1]
    for other in (f"/documents/public/{PUBLIC[0]}/original?{query}",
                  f"/documents/{path}/original?{query.replace('sig=', 'sig=x')}",
                  f"/documents/{path}?{query}", f"/documents?{query}"):
        assert httpx.get(server.url + other).status_code == 401, other
    # forbidden files get no link (404 like a missing one)
    assert httpx.get(f"{server.url}/links/secret/{SECRET[0]}",
                     headers=bearer(token)).status_code == 404


def test_audit_log_names_key_route_and_files(server: Server, world: World) -> None:
    h = bearer(world.tokens["hr"])
    q = "digitalisation of the member states audit marker"
    r = httpx.post(f"{server.url}/ask", json={"question": q, "top_k": 2}, headers=h,
                   timeout=TIMEOUT)
    files = sorted({p["file"] for p in r.json()["passages"]})
    httpx.get(f"{server.url}/documents/secret/{SECRET[0]}", headers=h)
    time.sleep(0.2)
    lines = [json.loads(x) for x in (world.index / "audit.jsonl").read_text().splitlines()]
    ask = [x for x in lines if x["key"] == "hr" and x["route"] == "POST /ask"][-1]
    assert sorted(ask["files"]) == files and ask["status"] == 200 and "question" not in ask
    assert q not in (world.index / "audit.jsonl").read_text()  # not unless configured
    denied = [x for x in lines if x["key"] == "hr" and x["status"] == 404][-1]
    assert denied["denied"] == "not permitted"
    assert any(x["key"] is None and x["status"] == 401 for x in lines)
    out = rag("keys", "list", "--index", str(world.index), "--json")
    listed = {k["name"]: k for k in json.loads(out.stdout)}
    assert listed["hr"]["last_used"] and listed["hr"]["allow"] == ["hr/**", "public/*.txt"]
    assert not any(t in out.stdout for t in world.tokens.values())


def test_rate_limit_answers_429_with_retry_after(world: World, real_embedder: Any) -> None:
    from fastapi.testclient import TestClient

    from rag.search.searcher import Searcher
    from rag.serve.http import create_app

    s = Settings(corpus_dir=world.corpus, index_dir=world.index, key_rate_per_s=0.5,
                 key_rate_burst=3, audit_log=world.index.parent / "rate-audit.jsonl")
    with TestClient(create_app(s, Searcher(s, embedder=real_embedder), watch=False)) as c:
        got = [c.get("/documents", headers=bearer(world.tokens["pub"])) for _ in range(5)]
        assert [r.status_code for r in got] == [200, 200, 200, 429, 429]
        assert 1 <= int(got[-1].headers["retry-after"]) <= 2
        assert "rate limit" in (world.index.parent / "rate-audit.jsonl").read_text()
        # another key is not starved by this one
        assert c.get("/documents", headers=bearer(world.tokens["hr"])).status_code == 200


# ---------------------------------------------------------------- MCP over HTTP

def test_mcp_over_http_follows_the_same_keys(world: World, tmp_path: Path) -> None:
    from anyio.from_thread import start_blocking_portal
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    def command(port: int) -> list[str]:
        return [sys.executable, "-m", "rag.serve.cli", "mcp", "--http", "--host", HOST, "--port",
                str(port), "--corpus", str(world.corpus), "--index", str(world.index)]

    with process_on_free_port(command, tmp_path / "mcp.log", wait_listening, TIMEOUT,
                              {"HF_HUB_OFFLINE": "1"}) as srv:
        url = f"http://{HOST}:{srv.port}/mcp"
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}}
        accept = {"Accept": "application/json, text/event-stream"}
        for h in ({}, bearer("rag_nope")):
            r = httpx.post(url, json=init, headers={**accept, **h})
            assert r.status_code == 401, r.text

        import httpx2

        def session_calls(token: str) -> dict[str, Any]:
            out: dict[str, Any] = {}
            with start_blocking_portal() as portal:
                client = httpx2.AsyncClient(headers=bearer(token), timeout=TIMEOUT)
                transport = streamable_http_client(url, http_client=client)
                with portal.wrap_async_context_manager(transport) as (read, write):
                    session = portal.call(lambda: ClientSession(read, write))
                    with portal.wrap_async_context_manager(session):
                        portal.call(session.initialize)
                        out["list"] = portal.call(session.call_tool, "list_documents", {})
                        out["ask"] = [portal.call(session.call_tool, "ask",
                                                  {"question": q, "top_k": 5}) for q in QUESTIONS]
                        out["forbidden"] = portal.call(session.call_tool, "read_span", {
                            "file": f"secret/{SECRET[0]}", "start": 0, "end": 5})
                        out["missing"] = portal.call(session.call_tool, "read_span", {
                            "file": "secret/no-such-file.txt", "start": 0, "end": 5})
                        out["resources"] = portal.call(session.list_resources)
            return out

        got = session_calls(world.tokens["pub"])
        listed = {d["path"] for d in got["list"].structured_content["documents"]}
        assert listed == world.may_read["pub"]
        for a in got["ask"]:
            files = {p["file"] for p in a.structured_content["passages"]}
            assert files <= world.may_read["pub"] and len(a.structured_content["passages"]) == 5
            assert_no_leak(json.dumps(a.structured_content), world, "pub")
        f, m = got["forbidden"], got["missing"]
        assert f.is_error and m.is_error
        assert (f.content[0].text.replace(f"secret/{SECRET[0]}", "P")
                == m.content[0].text.replace("secret/no-such-file.txt", "P"))
        assert {r.name for r in got["resources"].resources} == world.may_read["pub"]


# ---------------------------------------------------------------- refusing to go open

@pytest.mark.parametrize("command", [["serve"], ["mcp", "--http"]])
def test_off_loopback_without_keys_refuses_in_one_line(tmp_path: Path,
                                                       command: list[str]) -> None:
    r = rag(*command, "--host", "0.0.0.0", "--port", "1", "--corpus", str(CORPUS), "--index",
            str(tmp_path / "index"), timeout=60)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "rag keys add" in lines[0] and "--no-auth" in lines[0], r.stderr
    assert not (tmp_path / "index").exists()  # refused before building anything


def test_two_cli_adds_at_once_beside_a_running_index(tmp_path: Path) -> None:
    """Two real `rag keys add` processes started together while a real `rag index` writes
    a generation into the same folder: both keys land (listed, tokens valid), the index run
    publishes, and the keys file stays 0600 with no temporary file left behind."""
    from rag.serve.keys import read_keys

    corpus, index = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    for i in range(40):  # enough files that the index run is still going when the adds run
        shutil.copyfile(CORPUS / PUBLIC[i % len(PUBLIC)], corpus / f"doc-{i:02d}.txt")
    common = ["--corpus", str(corpus), "--index", str(index)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cli = [sys.executable, "-m", "rag.serve.cli"]
    indexing = subprocess.Popen([*cli, "index", *common, "--model", "fake"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    adds = [subprocess.Popen([*cli, "keys", "add", name, "--allow", f"{name}/**", *common],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    outs = [p.communicate(timeout=TIMEOUT) for p in adds]
    assert [p.returncode for p in adds] == [0, 0], outs
    tokens = {name: out.strip().splitlines()[-1] for name, (out, _) in zip("ab", outs)}
    _, err = indexing.communicate(timeout=TIMEOUT)
    assert indexing.returncode == 0, err
    keys_file = index / "keys.json"
    assert keys_file.stat().st_mode & 0o777 == 0o600
    ring, _ = read_keys(keys_file)  # type: ignore[misc]
    assert sorted(k.name for k in ring.keys) == ["a", "b"]
    assert all(ring.lookup(t).name == n for n, t in tokens.items())  # type: ignore[union-attr]
    listed = rag("keys", "list", *common)
    assert listed.returncode == 0 and "a" in listed.stdout and "b" in listed.stdout
    assert all(t not in listed.stdout for t in tokens.values())
    from rag.serve.keys import PARTIAL_SUFFIX

    assert not [p.name for p in index.iterdir() if p.name.startswith(".tmp")
                or p.name.endswith(PARTIAL_SUFFIX)]  # keys.json.lock stays: the flock's file


def test_loopback_check() -> None:
    from rag.serve.auth import is_loopback

    for host in ("127.0.0.1", "127.8.9.1", "::1", "localhost"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "10.0.0.1", "192.168.1.2", "example.org", ""):
        assert not is_loopback(host), host


# ---------------------------------------------------------------- the search page

@pytest.mark.browser
def test_search_page_asks_once_and_signs_its_links(server: Server, world: World) -> None:
    from .browserutil import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.is_file():
        from .conftest import skip_or_fail
        skip_or_fail(f"needs {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    token = world.tokens["pub"]
    seen: list[tuple[str, dict[str, str]]] = []
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            ctx = b.new_context()
            ctx.set_default_timeout(60_000)
            page = ctx.new_page()
            page.on("request", lambda r: seen.append((r.url, r.headers)))
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{server.url}/?q=harbour+crane+contract")
            page.locator("#key-form").wait_for(state="visible")  # 401: the page asks
            page.fill("#api-key", token)
            page.click("#key-button")
            page.locator("#results li").first.wait_for()
            shown = page.locator("#results").inner_text()
            assert "briefing.html" in shown
            assert_no_leak(shown, world, "pub")
            assert page.evaluate("sessionStorage.getItem('rag-api-key')") == token
            page.reload()  # the same tab session: no second prompt
            page.locator("#results li").first.wait_for()
            assert page.locator("#key-form").is_hidden()
            page.locator("#results li", has_text="briefing.html").locator("a.view").first.click()
            link = page.locator("#doc-original")
            link.wait_for()
            href = link.get_attribute("href") or ""
            assert "sig=" in href and token not in href, href
            with page.context.expect_page() as opened:
                link.click()
            original = opened.value
            original.wait_for_load_state()
            assert "harbour crane" in original.content()
            assert errors == [], errors
        finally:
            b.close()
    asks = [h for u, h in seen if u.endswith("/ask")]
    assert len(asks) >= 2 and "authorization" not in asks[0]  # the first /ask met the 401
    for url, headers in seen:
        assert token not in url, url  # the token travels in headers only
        if "/links/" in url or (url.endswith("/ask") and headers is not asks[0]):
            assert headers.get("authorization") == f"Bearer {token}", (url, headers)
