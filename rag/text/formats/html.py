"""HTML -> the visible text in reading order (selectolax / lexbor).

Script, style, template, head and hidden elements (``hidden``, ``display:none``,
``visibility:hidden``) are dropped; whitespace collapses as a browser collapses it (kept
inside ``pre``); block elements become paragraph breaks, ``br`` and list items line breaks,
table cells tabs. The ``<title>`` (else the first ``h1``) is the title; each heading and
its ``id`` are recorded with the offset where its section starts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..dates import html_meta_day
from .layout import Extracted, ExtractError, Layout, Limits

VERSION = 1

SKIP = {"script", "style", "template", "noscript", "head", "iframe", "object", "embed",
        "svg", "math", "canvas", "select", "datalist", "-comment", "-doctype"}
PARAGRAPH = {"p", "div", "section", "article", "main", "header", "footer", "nav", "aside",
             "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol",
             "dl", "figure", "figcaption", "form", "fieldset", "address", "hr", "details",
             "summary", "body", "html", "caption"}
LINE = {"li", "tr", "dt", "dd", "br", "option", "legend"}
CELL = {"td", "th"}
HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)
_SPACE = re.compile(r"[ \t\n\r\f]+")


def extractor_id() -> str:
    """selectolax version plus ours."""
    from importlib.metadata import version

    return f"rag-html {VERSION}; selectolax {version('selectolax')}"


class _Text:
    """Collects text with browser-like whitespace and pending breaks."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.pending = ""  # "", " ", "\t", "\n" or "\n\n" before the next text
        self.at_start = True

    def brk(self, kind: str) -> None:
        if self.at_start:
            return
        rank = {"": 0, " ": 1, "\t": 2, "\n": 3, "\n\n": 4}
        if rank[kind] > rank[self.pending]:
            self.pending = kind

    def add(self, s: str, pre: bool = False) -> None:
        """Text of one text node: collapsed unless inside ``pre``."""
        if pre:
            core, lead, trail = s, False, False
        else:
            core = _SPACE.sub(" ", s).strip(" ")
            lead, trail = s[:1] in " \t\n\r\f", s[-1:] in " \t\n\r\f"
        if lead:
            self.brk(" ")
        if not core:
            return
        if not self.at_start and self.pending:
            self._put(self.pending)
        self.pending = ""
        self.at_start = False
        self._put(core)
        if trail:
            self.brk(" ")

    def _put(self, s: str) -> None:
        self.parts.append(s)
        self.length += len(s)


def _hidden(attrs: dict[str, Any]) -> bool:
    if "hidden" in attrs:
        return True
    style = attrs.get("style") or ""
    return bool(_HIDDEN_STYLE.search(style)) or (attrs.get("type") or "").lower() == "hidden"


def extract_html(path: Path, limits: Limits) -> Extracted:
    """The visible text, the title and the heading of every section."""
    from selectolax.lexbor import LexborHTMLParser

    data = path.read_bytes()
    try:
        tree = LexborHTMLParser(data, encoding=True)
    except Exception as e:  # lexbor refuses a few broken inputs outright
        raise ExtractError(f"not readable as HTML ({e})") from e
    title_node = tree.css_first("head > title") or tree.css_first("title")
    title = _SPACE.sub(" ", title_node.text(deep=True)).strip() if title_node else ""
    day = html_meta_day([(m.attributes.get("name") or m.attributes.get("property")
                          or m.attributes.get("itemprop") or "",
                          m.attributes.get("content") or "") for m in tree.css("meta")])
    out = _Text()
    sections: list[tuple[int, str, str | None]] = []
    root = tree.root
    if root is None:
        raise ExtractError("not readable as HTML (no document)")
    # Iterative walk (a deeply nested file must not hit the recursion limit):
    # ("enter", node, in_pre) and ("leave", tag, None) events.
    stack: list[tuple[str, Any, bool]] = [("enter", root, False)]
    while stack:
        event, node, pre = stack.pop()
        if event == "leave":
            tag = node
            if tag in PARAGRAPH:
                out.brk("\n\n")
            elif tag in LINE:
                out.brk("\n")
            elif tag in CELL:
                out.brk("\t")
            continue
        tag = node.tag
        if tag == "-text":
            raw = node.text_content or ""
            out.add(raw, pre)
            if out.length > limits.max_chars:
                raise ExtractError(f"more than {limits.max_chars:,} characters of text "
                                   "(RAG_EXTRACT_MAX_CHARS)")
            continue
        if tag is None or tag in SKIP or (tag.startswith("-") and tag != "-document"):
            continue
        attrs = node.attributes
        if _hidden(attrs):
            continue
        if tag in PARAGRAPH:
            out.brk("\n\n")
        elif tag == "br":
            out.brk("\n")
            continue
        elif tag in LINE:
            out.brk("\n")
        elif tag in CELL:
            out.brk("\t")
        if tag in HEADINGS:
            heading = _SPACE.sub(" ", node.text(deep=True)).strip()
            if heading:
                anchor = attrs.get("id") or None
                if anchor is None:
                    inner = node.css_first("[id]")
                    anchor = inner.attributes.get("id") if inner is not None else None
                # the section starts where the heading's own text will start
                start = out.length + (len(out.pending) if not out.at_start else 0)
                sections.append((start, heading, anchor))
                if not title and tag == "h1":
                    title = heading
        stack.append(("leave", tag, False))
        kids = []
        child = node.last_child
        while child is not None:
            kids.append(("enter", child, pre or tag in ("pre", "textarea")))
            child = child.prev
        stack.extend(kids)
    text = "".join(out.parts)
    if not text.strip():
        raise ExtractError("no visible text")
    return Extracted(text, Layout("html", extractor_id(), title or None,
                                  sections=tuple(sections), date=day))
