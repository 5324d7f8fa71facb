"""The folder watcher end to end against a real `rag serve --watch` (fake embedder, real
uvicorn on 127.0.0.1): add, edit, rename, delete, a half-written file, a file that fails to
convert, a 200-file burst, a hand-run `rag index` meanwhile, a replaced corpus folder.

Every wait is for an event (a `watch run` log line, a generation on disk, an answer), never
a sleep; the deadlines only bound a failure."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.oracles import assert_exact_passage, file_text
from tests.serverutil import ROOT, Server, running_server

WATCH_ENV = {"RAG_WATCH_QUIET_S": "0.3", "RAG_WATCH_HOLD_S": "0.4",
             "RAG_WATCH_MAX_WAIT_S": "1.0", "RAG_WATCH_REMOVAL_HOLD_S": "2.0",
             "RAG_KEEP_GENERATIONS": "100", "RAG_RELOAD_INTERVAL_S": "0.2"}
DEADLINE_S = 90.0
BASE = 12  # files in the starting corpus


def body(i: int, word: str = "") -> str:
    return (f"Report {i} on harbour logistics.\n\nThe cranes of dock {i} moved {i * 7} "
            f"containers in week {i}. {word}\n")


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path, Path]]:
    root = tmp_path_factory.mktemp("watch")
    corpus, index = root / "corpus", root / "index"
    corpus.mkdir()
    for i in range(BASE):
        (corpus / f"base-{i:02d}.txt").write_text(body(i))
    with running_server(corpus, index, root / "server.log", model="fake", env=WATCH_ENV,
                        args=("--watch",)) as server:
        wait_for(lambda: runs(server), "the watcher's first run", server)
        yield server, corpus, index


def log_events(server: Server, name: str = "watch run") -> list[dict[str, Any]]:
    out = []
    for line in server.log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("event") == name:
                out.append(rec)
    return out


def runs(server: Server, outcome: str | None = None) -> int:
    return sum(1 for e in log_events(server) if outcome in (None, e.get("outcome")))


def wait_for(pred: Callable[[], Any], what: str, server: Server) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        if server.proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"never saw {what}:\n{server.log_tail(6000)}")


def ask(server: Server, q: str, **extra: Any) -> dict[str, Any]:
    r = httpx.post(f"{server.url}/ask", json={"question": q, "mode": "lexical", **extra},
                   timeout=30)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def top_file(server: Server, word: str) -> str | None:
    """The file of the top passage that holds `word` (None: no passage holds it)."""
    for p in ask(server, word)["passages"]:
        if word in p["text"]:
            return p["file"]  # type: ignore[no-any-return]
    return None


def documents(server: Server) -> dict[str, dict[str, Any]]:
    return {d["path"]: d for d in httpx.get(f"{server.url}/documents", timeout=30).json()}


def manifests(index: Path) -> list[dict[str, Any]]:
    out = []
    for g in sorted((index / "generations").glob("g-*")):
        try:
            out.append(json.loads((g / "manifest.json").read_text()))
        except (OSError, ValueError):
            continue
    return out


def test_add_edit_rename_delete(watched: tuple[Server, Path, Path]) -> None:
    server, corpus, _ = watched
    new = corpus / "zz-new.txt"
    new.write_text(body(99, "The zorblax valve failed twice."))
    assert wait_for(lambda: top_file(server, "zorblax") == "zz-new.txt", "the added file",
                    server)
    p = next(p for p in ask(server, "zorblax")["passages"] if "zorblax" in p["text"])
    assert_exact_passage(file_text(new), p, new.name)  # an exact span of the file

    new.write_text(body(99, "The quintar valve held."))
    wait_for(lambda: top_file(server, "quintar") == "zz-new.txt", "the edit", server)
    assert top_file(server, "zorblax") is None

    new.rename(corpus / "zz-renamed.txt")
    wait_for(lambda: top_file(server, "quintar") == "zz-renamed.txt", "the rename", server)
    assert "zz-new.txt" not in documents(server)

    (corpus / "zz-renamed.txt").unlink()
    wait_for(lambda: top_file(server, "quintar") is None, "the deletion", server)
    assert len(documents(server)) == BASE


def test_a_failing_file_is_reported_once(watched: tuple[Server, Path, Path]) -> None:
    server, corpus, _ = watched
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.7 this is not a pdf at all " * 20)
    wait_for(lambda: log_events(server, "watch conversion failed"), "the failure report",
             server)
    # two more runs (each published by a new file) do not report or retry it
    for i in range(2):
        before = runs(server, "published")
        (corpus / f"more-{i}.txt").write_text(body(200 + i, f"extra{i}word"))
        wait_for(lambda b=before: runs(server, "published") > b, "a later run", server)
    failures = log_events(server, "watch conversion failed")
    assert [f["file"] for f in failures] == ["broken.pdf"]
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for f in text_string_to_metric_families(text) for s in f.samples}
    assert got[("rag_extraction_failures_total", (("format", "pdf"),))] == 1
    assert got[("rag_watch_runs_total", (("outcome", "published"),))] >= 3
    assert "broken.pdf" not in text
    # a change to the file makes it worth a new try (and a new report)
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.7 still not a pdf " * 30)
    wait_for(lambda: len(log_events(server, "watch conversion failed")) == 2, "a retry",
             server)
    for i in range(2):
        (corpus / f"more-{i}.txt").unlink()
    (corpus / "broken.pdf").unlink()
    wait_for(lambda: len(documents(server)) == BASE, "the clean-up", server)


def test_a_half_written_file_is_never_indexed_half(watched: tuple[Server, Path, Path]) -> None:
    server, corpus, index = watched
    target = corpus / "slow.txt"
    pieces = [f"Slow piece {i} of the growing ledger.\n" for i in range(14)]
    full = "".join(pieces)
    before = runs(server)
    with open(target, "w") as f:  # written over ~2.8 s: longer than the watcher's 1 s cap
        for piece in pieces:
            f.write(piece)
            f.flush()
            os.fsync(f.fileno())
            time.sleep(0.2)  # the writer's pace (not a wait for the watcher)
    wait_for(lambda: documents(server).get("slow.txt", {}).get("size") == len(full),
             "the whole file indexed", server)
    assert runs(server) > before
    sizes = {m["documents"]["slow.txt"]["size"] for m in manifests(index)
             if "slow.txt" in m["documents"]}
    assert sizes == {len(full)}, f"a generation held the file half-written: {sizes}"
    target.unlink()
    wait_for(lambda: "slow.txt" not in documents(server), "the clean-up", server)


def test_a_burst_of_200_files(watched: tuple[Server, Path, Path]) -> None:
    server, corpus, _ = watched
    before = runs(server, "published")
    burst = corpus / "burst"
    burst.mkdir()
    for i in range(200):
        (burst / f"b-{i:03d}.txt").write_text(body(1000 + i, f"burstword{i}"))
    wait_for(lambda: len(documents(server)) == BASE + 200, "all 200 files", server)
    published = runs(server, "published") - before
    assert 1 <= published <= 5, f"{published} runs for one burst"
    assert top_file(server, "burstword137") == "burst/b-137.txt"
    waits = len(log_events(server, "watch waiting"))
    shutil.rmtree(burst)  # 200 of 212 files at once: done once the folder held still
    wait_for(lambda: len(documents(server)) == BASE, "the folder's removal", server)
    assert len(log_events(server, "watch waiting")) > waits


def test_a_hand_run_index_waits_for_the_watcher(watched: tuple[Server, Path, Path]) -> None:
    _, corpus, index = watched
    fd = os.open(index / ".lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as the watcher holds it while it indexes
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rag.serve.cli", "--log-format", "json", "index",
             "--corpus", str(corpus), "--index", str(index), "--model", "fake"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stderr.readline() if proc.stderr else ""
        assert "waiting" in line and "watcher" in line, line
        assert proc.poll() is None  # waiting, not failed
    finally:
        os.close(fd)  # releases the lock
    out, err = proc.communicate(timeout=DEADLINE_S)
    assert proc.returncode == 0, err
    assert "index unchanged" in out


def test_a_replaced_folder_never_publishes_most_files_gone(
        watched: tuple[Server, Path, Path]) -> None:
    server, corpus, index = watched
    old = corpus.with_name("corpus.old")
    names = sorted(p.name for p in corpus.glob("*.txt"))
    first_new = len(manifests(index))
    waits = len(log_events(server, "watch waiting"))
    corpus.rename(old)
    corpus.mkdir()
    for n in names[:3]:  # a copy caught a quarter of the way
        shutil.copy2(old / n, corpus / n)
    wait_for(lambda: len(log_events(server, "watch waiting")) > waits,
             "the watcher saying it waits", server)
    for n in names[3:]:
        shutil.copy2(old / n, corpus / n)
    (corpus / names[-1]).write_text(body(500, "replacedfolderword"))  # one file differs
    wait_for(lambda: top_file(server, "replacedfolderword") == names[-1],
             "the replaced folder indexed", server)
    assert sorted(documents(server)) == names
    counts = [len(m["documents"]) for m in manifests(index)[first_new:]]
    assert counts and min(counts) == BASE, f"a generation dropped most files: {counts}"
    shutil.rmtree(old)


def test_second_watcher_refused(watched: tuple[Server, Path, Path]) -> None:
    server, corpus, index = watched
    r = subprocess.run([sys.executable, "-m", "rag.serve.cli", "index", "--watch",
                        "--corpus", str(corpus), "--index", str(index), "--model", "fake"],
                       check=False, cwd=ROOT, capture_output=True, text=True,
                       timeout=DEADLINE_S)
    assert r.returncode == 2
    assert "already follows" in r.stderr and str(server.proc.pid) in r.stderr


def test_waiting_is_not_polling_forever(watched: tuple[Server, Path, Path]) -> None:
    """The loop sits idle without changes: no run starts on its own. Earlier tests may leave a
    run pending (the replaced folder's hold, a half-written file's retry), so first wait until
    no run has started for longer than every hold, then watch a quiet corpus for as long."""
    server, _, _ = watched
    quiet_for = 3.5  # > RAG_WATCH_REMOVAL_HOLD_S + RAG_WATCH_MAX_WAIT_S
    deadline = time.monotonic() + DEADLINE_S
    n, since = runs(server), time.monotonic()
    while time.monotonic() - since < quiet_for:
        assert time.monotonic() < deadline, "the watcher never went quiet"
        time.sleep(0.1)
        if (m := runs(server)) != n:
            n, since = m, time.monotonic()
    done = threading.Event()
    threading.Timer(quiet_for, done.set).start()
    done.wait()
    assert runs(server) == n


def metric_samples(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = httpx.get(f"{server.url}/metrics", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(r.text) for s in f.samples}


def test_request_id_and_metrics_over_http(watched: tuple[Server, Path, Path]) -> None:
    server, _, _ = watched
    key = ("rag_http_requests_total", (("method", "POST"), ("route", "/ask"),
                                       ("status", "200")))
    hist = ("rag_ask_seconds_count", (("mode", "lexical"), ("stage", "search")))
    before = metric_samples(server)
    r = httpx.post(f"{server.url}/ask", json={"question": "cranes of dock", "mode": "lexical"},
                   headers={"X-Request-Id": "it-is-me.42"}, timeout=30)
    assert r.status_code == 200 and r.headers["x-request-id"] == "it-is-me.42"
    for _ in range(2):
        ask(server, "cranes of dock")
    after = metric_samples(server)
    assert after[key] == before.get(key, 0) + 3
    assert after[hist] == before.get(hist, 0) + 3
    assert ("rag_ask_seconds_bucket", (("le", "+Inf"), ("mode", "lexical"),
                                       ("stage", "total"))) in after
    assert after[("rag_generation_documents", ())] == len(documents(server))
    line = wait_for(lambda: [e for e in log_events(server, "request")
                             if e.get("rid") == "it-is-me.42"], "the request's log line", server)
    assert line[0]["route"] == "POST /ask" and line[0]["status"] == 200
    assert "cranes of dock" not in server.log.read_text()  # the question is not logged
    odd = httpx.get(f"{server.url}/healthz", headers={"X-Request-Id": "no spaces allowed"})
    assert odd.headers["x-request-id"] != "no spaces allowed"
