"""Request ids, log lines and metrics in-process (no model): the middleware on a tiny app,
metrics parsed with prometheus_client's own parser."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from rag.serve import logs
from rag.serve.metrics import GenerationStats, Metrics, ObserveRequests


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, parsed by prometheus_client: (name, labels) -> value."""
    out = {}
    for fam in text_string_to_metric_families(metrics.exposition().decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    logs.configure("json", stream=buf)
    yield buf
    logging.getLogger().handlers.clear()


@pytest.fixture
def app_and_metrics() -> tuple[FastAPI, Metrics]:
    metrics = Metrics()
    app = FastAPI()

    @app.post("/ask")
    def ask(body: dict[str, str]) -> dict[str, str]:
        ctx = logs.current()
        assert ctx is not None
        ctx.mode, ctx.question = "hybrid", body["question"]
        ctx.timings_ms = {"embed": 4.0, "search": 2.0, "highlight": 1.0, "total": 7.0}
        if body["question"] == "busy":
            raise HTTPException(429, "too many")
        return {"ok": "yes"}

    @app.get("/documents/{path:path}")
    def doc(path: str) -> dict[str, str]:
        raise HTTPException(404, f"no {path}")

    app.add_middleware(ObserveRequests, metrics=metrics)
    return app, metrics


def lines(buf: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(x) for x in buf.getvalue().splitlines() if x.strip()]


@pytest.mark.parametrize("given,kept", [
    ("abc-123_x.y", True), ("a" * 64, True), ("a" * 65, False), ("has space", False),
    ("semi;colon", False), ("", False), ("ünï", False)])
def test_request_id_taken_only_when_plain(given: str, kept: bool) -> None:
    got = logs.request_id(given)
    assert (got == given) is kept
    assert 1 <= len(got) <= 64


def test_request_id_round_trip_and_log(app_and_metrics: tuple[FastAPI, Metrics],
                                       captured: io.StringIO) -> None:
    app, _ = app_and_metrics
    with TestClient(app) as client:
        r = client.post("/ask", json={"question": "secret words"},
                        headers={"X-Request-Id": "req-42"})
        bad = client.post("/ask", json={"question": "q"}, headers={"X-Request-Id": "x y"})
    assert r.headers["x-request-id"] == "req-42"
    made = bad.headers["x-request-id"]
    assert made != "x y" and len(made) == 16
    got = lines(captured)
    req = [x for x in got if x.get("event") == "request"]
    assert [x["rid"] for x in req] == ["req-42", made]
    assert req[0]["route"] == "POST /ask" and req[0]["status"] == 200
    assert isinstance(req[0]["ms"], float) and req[0]["mode"] == "hybrid"
    assert "secret words" not in captured.getvalue()  # never the question by default


def test_question_logged_only_when_asked(app_and_metrics: tuple[FastAPI, Metrics],
                                         captured: io.StringIO,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_LOG_QUESTIONS", "1")
    with TestClient(app_and_metrics[0]) as client:
        client.post("/ask", json={"question": "secret words"})
    assert [x.get("question") for x in lines(captured)] == ["secret words"]


def test_metrics_move_with_requests(app_and_metrics: tuple[FastAPI, Metrics]) -> None:
    app, metrics = app_and_metrics
    metrics.follow_generation(lambda: GenerationStats(7, 120, 5, 3, 11))
    with TestClient(app) as client:
        for _ in range(3):
            client.post("/ask", json={"question": "q"})
        client.post("/ask", json={"question": "busy"})
        client.get("/documents/secret-file-name.pdf")
        client.get("/nowhere/else")
    got = samples(metrics)
    assert got[("rag_http_requests_total", (("method", "POST"), ("route", "/ask"),
                                            ("status", "200")))] == 3
    assert got[("rag_http_requests_total", (("method", "POST"), ("route", "/ask"),
                                            ("status", "429")))] == 1
    assert got[("rag_http_rejected_total", (("route", "/ask"),))] == 1
    assert got[("rag_http_requests_total", (("method", "GET"), ("route", "/documents/{path:path}"),
                                            ("status", "404")))] == 1
    assert got[("rag_http_requests_total", (("method", "GET"), ("route", "<unmatched>"),
                                            ("status", "404")))] == 1
    # histograms: only answered questions (the 429 is not timed), per stage
    assert got[("rag_ask_seconds_count", (("mode", "hybrid"), ("stage", "embed")))] == 3
    assert got[("rag_ask_seconds_sum", (("mode", "hybrid"), ("stage", "total")))] == \
        pytest.approx(3 * 0.007)
    assert got[("rag_ask_seconds_bucket", (("le", "0.005"), ("mode", "hybrid"),
                                           ("stage", "embed")))] == 3
    assert got[("rag_http_requests_in_flight", ())] == 0
    assert got[("rag_generation_chunks", ())] == 120
    assert got[("rag_generation_tombstones", ())] == 11
    assert got[("rag_generation_number", ())] == 7
    text = metrics.exposition().decode()
    assert "secret-file-name" not in text and "busy" not in text  # no file, no question


def test_watch_and_extraction_metrics() -> None:
    m = Metrics()
    before = samples(m)
    assert before[("rag_watch_runs_total", (("outcome", "published"),))] == 0
    m.watch_run("published", 1.5)
    m.watch_failure("mass_removal")
    m.watch_failure("no-such-cause")
    m.extraction_failed("pdf")
    got = samples(m)
    assert got[("rag_watch_runs_total", (("outcome", "published"),))] == 1
    assert got[("rag_watch_run_seconds_count", ())] == 1
    assert got[("rag_watch_failures_total", (("cause", "mass_removal"),))] == 1
    assert got[("rag_watch_failures_total", (("cause", "error"),))] == 1
    assert got[("rag_extraction_failures_total", (("format", "pdf"),))] == 1


def test_text_format_and_events() -> None:
    buf = io.StringIO()
    assert logs.configure("auto", stream=buf) == "json"  # not a terminal
    logs.configure("text", stream=buf)
    logs.event("watch run", outcome="published", why="two words", skip=None)
    logging.getLogger().handlers.clear()
    line = buf.getvalue().strip()
    assert line.endswith('watch run outcome=published why="two words"'), line
    assert line[:4].isdigit() and "INFO" in line
