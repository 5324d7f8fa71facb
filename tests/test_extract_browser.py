"""The search page over converted files, in Chromium (as tests/test_browser.py): PDF
citations show their page, "view source" shows the page with the span boxed, the HTML
text-fragment link is well formed, document text is shown as text and never run."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode

import pytest

from . import docmaker as dm
from .browserutil import Recorded, api_ask, citation
from .conftest import CORPUS, need_font
from .serverutil import Server, running_server

pytestmark = pytest.mark.browser
PDF_Q = "Which company trained farmers in Ussuriysk to use automatic navigation?"


@pytest.fixture(scope="module")
def server(chromium_path: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Server]:
    need_font(dm.FONT)
    tmp = tmp_path_factory.mktemp("docs-browser")
    corpus = tmp / "corpus"
    corpus.mkdir()
    dm.pdf_from_text((CORPUS / "sco-ai-cooperation-2025-09-01.txt").read_text(encoding="utf-8"),
                     corpus / "report.pdf")
    (corpus / "evil.html").write_text(dm.adversarial_html(), encoding="utf-8")
    with running_server(corpus, tmp / "index", tmp / "serve.log", model="fake",
                        ready_timeout_s=120.0) as srv:
        yield srv


def ask_in_page(rec: Recorded, server: Server, question: str) -> Any:
    page = rec.page
    page.goto(f"{server.url}/?{urlencode({'q': question})}")
    first = page.locator("#results li.result").first
    first.wait_for()
    return first


def test_pdf_citation_shows_its_page_and_view_source_boxes_the_span(
        rec: Recorded, server: Server) -> None:
    from playwright.sync_api import expect

    top = api_ask(server, PDF_Q)["passages"][0]
    assert top["file"] == "report.pdf" and top["page_start"] == 1, top
    first = ask_in_page(rec, server, PDF_Q)
    expect(first.locator(".citation")).to_have_text(citation(top))

    first.get_by_role("link", name="View source").click()
    page = rec.page
    box = page.locator("#doc-pages .pdf-box").first
    expect(box).to_be_in_viewport()
    n = top["highlight"]["page_start"]
    fig = page.locator(f"#doc-pages figure[data-page='{n}']")
    expect(fig).to_be_visible()
    assert fig.locator("img").evaluate("i => i.naturalWidth") > 100
    href = fig.locator("a.open-original").get_attribute("href")
    assert href == f"/documents/report.pdf/original#page={n}"
    # the stored text is still there, the span marked in it
    h = top["highlight"]
    assert page.locator("#doc-text mark").text_content() == h["text"]
    page.screenshot(path=str(Path(__file__).parent / "artifacts" / "pdf-page.png"))


def test_html_text_fragment_link_is_well_formed(rec: Recorded, server: Server) -> None:
    from playwright.sync_api import expect

    with urllib.request.urlopen(f"{server.url}/documents/evil.html", timeout=30) as r:
        text = json.loads(r.read())["text"]
    page = rec.page
    for quote in ("Visible paragraph with bold and italic words.",  # short: the whole quote
                  "Main heading\n\nVisible paragraph with bold and italic words."):  # start,end
        a = text.index(quote)  # no astral characters before it: code points == UTF-16 units
        q = {"doc": "evil.html", "start": a, "end": a + len(quote)}
        page.goto(f"{server.url}/?{urlencode(q)}")
        link = page.locator("#doc-original")
        expect(link).to_be_visible()
        href = link.get_attribute("href")
        m = re.fullmatch(r"/documents/evil\.html/original#:~:text=([^,&#]+)(?:,([^,&#]+))?",
                         href)
        assert m, href
        words = quote.split()
        if len(words) <= 8:
            assert unquote(m.group(1)) == " ".join(words) and m.group(2) is None
        else:
            assert unquote(m.group(1)) == " ".join(words[:4])
            assert unquote(m.group(2)) == " ".join(words[-4:])
        assert "-" not in m.group(0).split("=", 1)[1]  # dashes escaped (they mark prefix/suffix)


def test_script_text_in_a_document_is_shown_not_run(rec: Recorded, server: Server) -> None:
    from playwright.sync_api import expect

    page = rec.page
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    first = ask_in_page(rec, server, "xss script alert shown as text")
    shown = page.locator("#results .passage").all_text_contents()
    assert any('<script>alert("xss")</script> is shown as text.' in t for t in shown), shown
    evil = page.locator("#results li.result[data-file='evil.html']").first
    evil.get_by_role("link", name="View source").click()
    expect(page.locator("#doc-text")).to_contain_text('<script>alert("xss")</script>')
    assert page.evaluate("typeof window.PWNED") == "undefined"
    # the original page itself: shown, but its scripts never run (sandboxing CSP)
    page.goto(f"{server.url}/documents/evil.html/original")
    expect(page.locator("h1")).to_have_text("Main heading")
    assert page.evaluate("typeof window.PWNED") == "undefined"
    assert page.title() != "pwned"
    assert dialogs == []
    del first
