"""Small frozen records that flow between the stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Mode = Literal["hybrid", "dense", "lexical"]
MODES: tuple[Mode, ...] = ("hybrid", "dense", "lexical")


@dataclass(frozen=True)
class Document:
    """One corpus file: its exact decoded text and identity."""

    path: str  # POSIX path relative to the corpus folder
    text: str  # the file's bytes decoded as UTF-8, never altered
    sha256: str  # of the file's bytes
    size: int  # bytes on disk
    title: str | None = None
    date: str | None = None
    # Converted files (PDF, HTML, DOCX): ``text`` is the extracted text, not the bytes;
    # ``layout`` (a formats.Layout) says where each part of it sits in the original.
    format: str = "text"
    extractor: str | None = None
    layout: Any = field(default=None, compare=False, repr=False)
    # where ``date`` (a UTC day) came from: line, pdf, docx, html, front-matter, mtime
    date_source: str | None = None


@dataclass(frozen=True)
class Chunk:
    """A slice of a document: ``document.text[start:end] == text``."""

    file: str
    start: int
    end: int
    line_start: int
    line_end: int
    text: str
    context: str = ""  # prepended for embedding only (title); never cited


@dataclass(frozen=True)
class Hit:
    """One retriever's answer: a chunk row with its score and 1-based rank."""

    row: int
    score: float
    rank: int


@dataclass(frozen=True)
class RetrieverScore:
    """Where one retriever placed a passage."""

    rank: int
    score: float


Box = tuple[int, float, float, float, float]  # PDF page (1-based), x0, y0, x1, y1 in points


@dataclass(frozen=True)
class Span:
    """An exact span of a file, in code-point offsets and 1-based inclusive lines.

    For a converted file the offsets index its extracted text; the other fields say where
    the span sits in the original (None for plain text)."""

    start: int
    end: int
    line_start: int
    line_end: int
    text: str
    page_start: int | None = None
    page_end: int | None = None
    boxes: list[Box] | None = None  # PDF: the glyphs' boxes, merged per line
    heading: str | None = None
    heading_id: str | None = None
    paragraph: int | None = None


@dataclass(frozen=True)
class AnswerSpan(Span):
    """The reader's short answer inside a passage: an exact span like any other, with the
    reader's probability for it (start x end, over the window it read)."""

    score: float = 0.0


@dataclass(frozen=True)
class Passage:
    """A ranked, cited passage of the answer."""

    rank: int
    score: float
    file: str
    start: int
    end: int
    line_start: int
    line_end: int
    text: str
    file_sha256: str
    highlight: Span | None = None
    dense: RetrieverScore | None = None
    lexical: RetrieverScore | None = None
    # where the passage sits in a converted original (None for plain text)
    page_start: int | None = None
    page_end: int | None = None
    heading: str | None = None
    heading_id: str | None = None
    paragraph: int | None = None
    # the reader (when it read this passage): calibrated P(the passage answers), the answer
    read: float | None = None
    answer: AnswerSpan | None = None


@dataclass(frozen=True)
class IndexInfo:
    """Which generation answered."""

    generation: str
    built_at: str
    model: str
    chunks: int
    reader: str | None = None  # the reader's fingerprint, when it read the passages


@dataclass(frozen=True)
class Answer:
    """The whole answer to one question."""

    question: str
    mode: Mode
    passages: list[Passage]
    answerable: bool
    confidence: float
    index: IndexInfo
    timings_ms: dict[str, float] = field(default_factory=dict)
