"""The search page end to end: Debian's Chromium (via Playwright) against a real `rag serve`
with the real model on the real corpus. Oracles: the API's own answer and the bytes on disk.

Needs /usr/bin/chromium (`apt-get install chromium`); skipped without it, except under CI=true
where a missing browser is a failure. Screenshots go to tests/artifacts/; set
RAG_UPDATE_SCREENSHOT=1 to refresh docs/screenshot.png from the answer screenshot."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from .browserutil import Recorded, api_ask, citation
from .conftest import CORPUS, ROOT
from .oracles import assert_exact_passage, file_text
from .serverutil import Server, running_server

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "tests" / "artifacts"
DOC_SCREENSHOT = ROOT / "docs" / "screenshot.png"
MAX_SCREENSHOT_BYTES = 300_000

ANSWERABLE_Q = ("Which company trained farmers in Ussuriysk to use automatic navigation "
                "for farm machinery?")
ANSWER_FILE = "sco-ai-cooperation-2025-09-01.txt"
OFF_CORPUS_Q = "Which team won the 2022 FIFA World Cup?"
SUEZ_Q = "Which satellite system serves the Suez Canal zone?"


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def server(chromium_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`rag serve` with the real model; it builds the index of the repo corpus at start."""
    tmp = tmp_path_factory.mktemp("browser")
    with running_server(CORPUS, tmp / "index", tmp / "serve.log",
                        ready_timeout_s=180.0) as srv:
        yield srv


# ---------------------------------------------------------------- helpers

def ask_in_page(rec: Recorded, server: Server, question: str) -> Any:
    """Type the question, press Enter, wait for the results; the first result's locator."""
    page = rec.page
    page.goto(f"{server.url}/")
    page.get_by_label("Question").fill(question)
    page.get_by_label("Question").press("Enter")
    first = page.locator("#results li.result").first
    first.wait_for()
    return first


def shot(page: Any, name: str, full_page: bool = False) -> Path:
    """Save a screenshot into tests/artifacts/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=full_page)
    return path


def no_horizontal_overflow(page: Any) -> None:
    width, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= inner, f"page is {width}px wide in a {inner}px viewport"


# ---------------------------------------------------------------- tests

def test_answer_shows_the_apis_citation_and_highlight(rec: Recorded, server: Server) -> None:
    from playwright.sync_api import expect

    expected = api_ask(server, ANSWERABLE_Q)
    top = expected["passages"][0]
    assert top["file"] == ANSWER_FILE and top["highlight"], top
    text = file_text(CORPUS / ANSWER_FILE)

    first = ask_in_page(rec, server, ANSWERABLE_Q)
    page = rec.page
    expect(first.locator(".citation")).to_have_text(citation(top))
    expect(first.locator(".rank")).to_have_text("1")
    h = top["highlight"]
    assert first.locator("mark").text_content() == text[h["start"]:h["end"]]
    assert first.locator(".passage").text_content() == text[top["start"]:top["end"]]
    assert_exact_passage(text, top, ANSWER_FILE)  # the API's passage, highlight and answer
    a = top["answer"]  # the reader's answer, bold (inside or beside the highlight), if any
    assert "".join(first.locator("strong.answer").all_text_contents()) == (a["text"] if a else "")
    if top["read"] is not None:
        expect(first.locator(".result-foot")).to_contain_text(f"reader {top['read']:.2f}")
    shown = page.locator("#results .citation").all_text_contents()
    assert shown == [citation(p) for p in expected["passages"]]
    assert page.locator("#banner").is_hidden()
    expect(page.locator("#results-heading")).to_have_text("Passages")

    # the URL is shareable: it carries the question and the controls
    query = parse_qs(urlsplit(page.url).query)
    assert query == {"q": [ANSWERABLE_Q], "mode": ["hybrid"], "top_k": ["5"]}

    # show the question from its first word, without the focus ring, for the picture
    page.get_by_label("Question").evaluate("e => { e.blur(); e.setSelectionRange(0, 0); "
                                           "e.scrollLeft = 0; }")
    png = shot(page, "answer.png")
    if os.environ.get("RAG_UPDATE_SCREENSHOT") == "1":
        DOC_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, DOC_SCREENSHOT)
    if DOC_SCREENSHOT.exists():
        assert DOC_SCREENSHOT.stat().st_size < MAX_SCREENSHOT_BYTES


def test_copy_button_copies_the_citation(rec: Recorded, server: Server) -> None:
    rec.page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    first = ask_in_page(rec, server, ANSWERABLE_Q)
    first.get_by_role("button", name="Copy citation").click()
    copied = rec.page.evaluate("navigator.clipboard.readText()")
    assert copied == first.locator(".citation").text_content()


def test_view_source_marks_the_span_in_view_with_the_files_sha256(
        rec: Recorded, server: Server) -> None:
    from playwright.sync_api import expect

    top = api_ask(server, ANSWERABLE_Q)["passages"][0]
    h = top["highlight"]
    text = file_text(CORPUS / ANSWER_FILE)
    first = ask_in_page(rec, server, ANSWERABLE_Q)
    page = rec.page

    first.get_by_role("link", name="View source").click()
    mark = page.locator("#doc-text mark")
    expect(mark).to_have_count(1)
    assert mark.text_content() == text[h["start"]:h["end"]]
    expect(mark).to_be_in_viewport()
    # the surrounding text is there too: the whole file, in order
    assert page.locator("#doc-text").text_content() == text
    sha = hashlib.sha256((CORPUS / ANSWER_FILE).read_bytes()).hexdigest()
    expect(page.locator("#doc-sha256")).to_have_text(sha)
    expect(page.locator("#doc-title")).to_have_text("Greater collaboration in AI high on agenda")
    expect(page.locator("#doc-facts")).to_contain_text("2025-09-01")
    expect(page.locator("#doc-facts")).to_contain_text("Unchanged since it was indexed")
    assert page.locator("#doc-stale").is_hidden()
    shot(page, "document.png")

    # back returns to the same results without asking again
    asks = sum(u.endswith("/ask") for u in rec.requests)
    page.get_by_role("link", name="Back to results").click()
    expect(page.locator("#results .citation").first).to_have_text(citation(top))
    assert sum(u.endswith("/ask") for u in rec.requests) == asks


def test_document_link_is_shareable(rec: Recorded, server: Server) -> None:
    """A document URL opened cold marks the same span."""
    from playwright.sync_api import expect

    text = file_text(CORPUS / ANSWER_FILE)
    start, end = 1451, 1719
    rec.page.goto(f"{server.url}/?{urlencode({'doc': ANSWER_FILE, 'start': start, 'end': end})}")
    mark = rec.page.locator("#doc-text mark")
    expect(mark).to_have_text(text[start:end])
    expect(mark).to_be_in_viewport()


def test_off_corpus_question_shows_the_abstention_banner(rec: Recorded, server: Server) -> None:
    from playwright.sync_api import expect

    expected = api_ask(server, OFF_CORPUS_Q)
    assert expected["answerable"] is False, "the API now claims to answer an off-corpus question"
    assert expected["passages"]

    ask_in_page(rec, server, OFF_CORPUS_Q)
    page = rec.page
    banner = page.locator("#banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("does not answer this question")
    expect(page.locator("#results-heading")).to_have_text("Closest passages")
    assert (page.locator("#results .citation").all_text_contents()
            == [citation(p) for p in expected["passages"]])
    shot(page, "abstain.png")


def test_empty_question_shows_the_validation_message(rec: Recorded, server: Server) -> None:
    from playwright.sync_api import expect

    page = rec.page
    page.goto(f"{server.url}/")
    box = page.get_by_label("Question")
    box.fill("   ")
    box.press("Enter")
    error = page.locator("#form-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("Question: String should have at least 1 character")
    expect(box).to_have_attribute("aria-invalid", "true")
    assert error.get_attribute("role") == "alert"
    shot(page, "empty-question.png")


def test_bad_top_k_shows_the_apis_message(rec: Recorded, server: Server) -> None:
    from playwright.sync_api import expect

    page = rec.page
    page.goto(f"{server.url}/")
    page.locator("#top_k").fill("99")
    page.get_by_label("Question").fill(SUEZ_Q)
    page.get_by_label("Question").press("Enter")
    expect(page.locator("#form-error")).to_contain_text("less than or equal to 50")
    expect(page.locator("#top_k")).to_have_attribute("aria-invalid", "true")


def test_shareable_url_runs_the_query_and_sets_the_controls(
        rec: Recorded, server: Server) -> None:
    from playwright.sync_api import expect

    expected = api_ask(server, SUEZ_Q, mode="lexical")
    page = rec.page
    page.goto(f"{server.url}/?{urlencode({'q': SUEZ_Q, 'mode': 'lexical'})}")
    expect(page.get_by_label("Question")).to_have_value(SUEZ_Q)
    expect(page.get_by_label("Mode")).to_have_value("lexical")
    expect(page.locator("#results .citation").first).to_have_text(
        citation(expected["passages"][0]))
    assert (page.locator("#results .citation").all_text_contents()
            == [citation(p) for p in expected["passages"]])


def test_date_and_format_filters_from_the_form_and_the_url(rec: Recorded,
                                                          server: Server) -> None:
    """The filters go to the API as it takes them, into the shareable URL, and back into
    the controls from it; the results are the API's own for the same filters."""
    from playwright.sync_api import expect

    q = "SCO digital cooperation"
    body = json.dumps({"question": q, "mode": "lexical", "top_k": 5, "date_from": "2025-08-30",
                       "date_to": "2025-09-30", "formats": ["txt"]}).encode()
    req = urllib.request.Request(f"{server.url}/ask", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        expected = json.loads(r.read())
    assert {p["file"] for p in expected["passages"]} == {"sco-ai-cooperation-2025-09-01.txt"}
    page = rec.page
    page.goto(f"{server.url}/")
    page.get_by_label("Question").fill(q)
    page.get_by_label("Mode").select_option("lexical")
    page.get_by_label("From").fill("2025-08-30")
    page.get_by_label("To").fill("2025-09-30")
    page.get_by_role("checkbox", name="TXT", exact=True).check()
    page.get_by_label("Question").press("Enter")
    expect(page.locator("#results .citation").first).to_have_text(
        citation(expected["passages"][0]))
    assert (page.locator("#results .citation").all_text_contents()
            == [citation(p) for p in expected["passages"]])
    shared = parse_qs(urlsplit(page.url).query)
    assert shared["date_from"] == ["2025-08-30"] and shared["formats"] == ["txt"]
    # the shared URL in a fresh page: the same controls, the same results
    page.goto(page.url)
    expect(page.get_by_label("To")).to_have_value("2025-09-30")
    expect(page.get_by_role("checkbox", name="TXT", exact=True)).to_be_checked()
    expect(page.get_by_role("checkbox", name="PDF", exact=True)).not_to_be_checked()
    expect(page.locator("#results .citation").first).to_have_text(
        citation(expected["passages"][0]))
    # a reversed range: the API's message, naming both dates
    page.get_by_label("From").fill("2025-10-01")
    page.get_by_label("Question").press("Enter")
    expect(page.locator("#form-error")).to_contain_text("date_from=2025-10-01")


def test_highlight_offsets_are_code_points(rec: Recorded, server: Server) -> None:
    """Astral characters (two UTF-16 units each) before the span must not shift the mark."""
    text = "😀😀 Hello 𝒳 world, then more."
    hs, he = 9, 16  # "𝒳 world" in code points
    assert text[hs:he] == "𝒳 world"
    answer = {
        "question": "q", "mode": "hybrid", "answerable": True, "confidence": 0.9,
        "passages": [{
            "rank": 1, "score": 0.5, "file": "x.txt", "start": 100, "end": 100 + len(text),
            "line_start": 3, "line_end": 3, "text": text,
            "highlight": {"start": 100 + hs, "end": 100 + he, "line_start": 3, "line_end": 3,
                          "text": text[hs:he]},
            # an answer that starts before the highlight and ends inside it
            "answer": {"start": 103, "end": 110, "line_start": 3, "line_end": 3,
                       "text": text[3:10], "score": 0.8}, "read": 0.9,
            "retrievers": {"dense": {"rank": 1, "score": 0.5}, "lexical": None},
            "file_sha256": "0" * 64}],
        "index": {"generation": "g", "built_at": "t", "model": "m", "chunks": 1},
        "timings_ms": {"total": 1.0}}
    page = rec.page
    page.route("**/ask", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps(answer)))
    first = ask_in_page(rec, server, "anything")
    assert first.locator("mark").text_content() == "𝒳 world"
    assert first.locator(".passage").text_content() == text
    assert first.locator("strong.answer").all_text_contents() == ["Hello ", "𝒳"]
    assert first.locator("mark strong.answer").text_content() == "𝒳"


def test_phone_width_has_no_horizontal_overflow(phone: Recorded, server: Server) -> None:
    from playwright.sync_api import expect

    page = phone.page
    page.goto(f"{server.url}/")
    no_horizontal_overflow(page)
    first = ask_in_page(phone, server, ANSWERABLE_Q)
    no_horizontal_overflow(page)
    shot(page, "phone.png")
    first.get_by_role("link", name="View source").click()
    expect(page.locator("#doc-text mark")).to_be_in_viewport()
    no_horizontal_overflow(page)
    shot(page, "phone-document.png")


def test_page_requests_only_the_local_service(rec: Recorded, server: Server) -> None:
    from playwright.sync_api import expect

    page = rec.page
    page.goto(f"{server.url}/")
    page.wait_for_load_state("networkidle")
    ask_in_page(rec, server, ANSWERABLE_Q)
    page.locator("#results a.view").first.click()
    expect(page.locator("#doc-text mark")).to_be_visible()
    page.wait_for_load_state("networkidle")
    hosts = {urlsplit(u).hostname for u in rec.requests if not u.startswith(("data:", "blob:"))}
    assert hosts == {"127.0.0.1"}, f"requests left the machine: {sorted(rec.requests)}"
    paths = {urlsplit(u).path for u in rec.requests}
    assert {"/", "/ask", f"/documents/{ANSWER_FILE}"} <= paths


def test_stale_document_is_flagged(rec: Recorded, server: Server) -> None:
    """A file changed since indexing: the page says so and shows both hashes."""
    from playwright.sync_api import expect

    page = rec.page
    real = f"{server.url}/documents/{ANSWER_FILE}"
    with urllib.request.urlopen(real, timeout=30) as r:
        doc = json.loads(r.read())
    doc.update(stale=True, indexed_sha256="f" * 64)
    page.route(f"**/documents/{ANSWER_FILE}", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps(doc)))
    page.goto(f"{server.url}/?{urlencode({'doc': ANSWER_FILE, 'start': 1451, 'end': 1719})}")
    expect(page.locator("#doc-stale")).to_contain_text("changed since it was indexed")
    expect(page.locator("#doc-facts")).to_contain_text("f" * 64)
    expect(page.locator("#doc-sha256")).to_have_text(doc["sha256"])
