"""Helpers shared by the browser tests (Debian's Chromium driven by Playwright); the fixtures
that use them (chromium_path, browser, rec, phone) are in conftest.py."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .conftest import skip_or_fail
from .serverutil import Server

CHROMIUM = Path(os.environ.get("RAG_CHROMIUM", "/usr/bin/chromium"))  # override to test the skip
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
WAIT_MS = 60_000  # the first question warms the model up


def missing_browser(what: str) -> None:
    """Skip, or fail under CI=true, when the browser stack is not installed."""
    skip_or_fail(f"{what}; install Debian's Chromium with `apt-get install chromium` "
                 "(do not use `playwright install`)")


class Recorded:
    """A page plus every URL it requested and every script error it raised."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("pageerror", lambda e: self.errors.append(str(e)))


def open_page(browser: Any, width: int = 1280, height: int = 900) -> Iterator[Recorded]:
    """A fresh page in its own context; after the test, no script error may have been raised."""
    ctx = browser.new_context(viewport={"width": width, "height": height},
                              device_scale_factor=1)
    ctx.set_default_timeout(WAIT_MS)
    rec = Recorded(ctx.new_page())
    try:
        yield rec
    finally:
        ctx.close()
    assert not rec.errors, f"script errors on the page: {rec.errors}"


def api_ask(server: Server, question: str, mode: str = "hybrid",
            top_k: int = 5) -> dict[str, Any]:
    """The API's answer: the oracle for what the page must show."""
    body = json.dumps({"question": question, "mode": mode, "top_k": top_k}).encode()
    req = urllib.request.Request(f"{server.url}/ask", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def citation(p: dict[str, Any]) -> str:
    """The citation the page shows: corpus/FILE:L17-L19 (or :L17 for one line); for a PDF
    passage corpus/FILE p.3 · L17-L19 (p.3-4 across pages)."""
    lines = f"L{p['line_start']}" + (f"-L{p['line_end']}" if p["line_end"] != p["line_start"]
                                     else "")
    if p.get("page_start") is None:
        return f"corpus/{p['file']}:{lines}"
    pages = (f"{p['page_start']}" if p["page_end"] == p["page_start"]
             else f"{p['page_start']}-{p['page_end']}")
    return f"corpus/{p['file']} p.{pages} · {lines}"
