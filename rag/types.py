"""Small frozen records that flow between the stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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


@dataclass(frozen=True)
class Span:
    """An exact span of a file, in code-point offsets and 1-based inclusive lines."""

    start: int
    end: int
    line_start: int
    line_end: int
    text: str


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


@dataclass(frozen=True)
class IndexInfo:
    """Which generation answered."""

    generation: str
    built_at: str
    model: str
    chunks: int


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
