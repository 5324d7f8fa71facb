"""The records the service speaks in: what a question asks (``AskRequest``) and what every face
returns (answers, passages, documents, spans, errors) as pydantic models, and the one function
that turns a search ``Answer`` into them (``answer_out``). HTTP, MCP and the CLI all use these:
one passage shape, written once."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, field_validator,
                      model_validator)

from ..search.searcher import Filters
from ..types import Answer

MAX_QUESTION = 2000
MAX_CONTEXT = 10_000  # characters of context either side of a span
NO_NUL = r"^[^\x00]*$"
SOME_TEXT = r"^[^\x00]*[^\x00\s][^\x00]*$"  # no NUL, and something left after stripping


def _iso_day(v: Any) -> Any:
    """Dates come as ISO strings ("2025-09-01"); a number is refused, not read as a timestamp."""
    if isinstance(v, str | date):
        return v
    raise ValueError("give the date as an ISO day string, e.g. \"2025-09-01\"")


IsoDay = Annotated[date, BeforeValidator(_iso_day)]
EXAMPLE_Q = "What share of the world's population lives in SCO countries?"


# ---------------------------------------------------------------- models

class AskRequest(BaseModel):
    """A question and how to search for it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"question": EXAMPLE_Q, "top_k": 5, "mode": "hybrid", "files": None},
        {"question": "Which satellite navigation system serves companies in Egypt's Suez "
                     "Canal Economic Zone?", "top_k": 3,
         "mode": "dense", "files": ["sco-*"]}]})

    question: str = Field(min_length=1, max_length=MAX_QUESTION, pattern=SOME_TEXT,
                          description="The question, 1..2000 characters after stripping "
                                      "(no NUL characters).")
    top_k: int = Field(5, ge=1, le=50, description="How many passages, 1..50.")
    mode: Literal["hybrid", "dense", "lexical"] = Field(
        "hybrid", description="hybrid (dense + BM25, the best), dense (meaning) or lexical "
                              "(words).")
    files: list[Annotated[str, Field(min_length=1, max_length=256, pattern=NO_NUL)]] | None = Field(
        None, max_length=32, description="Glob filters on the cited file path, e.g. ['sco-*'].")
    read: StrictBool | None = Field(
        None, description="Let the reader (a small model that reads question and passage "
                          "together) reorder the top passages, judge `answerable` and mark "
                          "each passage's `answer`. null: the service's default (off unless "
                          "RAG_READ=1); false: the fast path.")
    date_from: IsoDay | None = Field(
        None, description="Only documents dated on or after this day (ISO, UTC; see "
                          "GET /documents for each date and its source).")
    date_to: IsoDay | None = Field(
        None, description="Only documents dated on or before this day (inclusive).")
    formats: list[Literal["pdf", "html", "docx", "txt", "md"]] | None = Field(
        None, max_length=5, description="Only documents of these formats.")

    @field_validator("question", mode="before")
    @classmethod
    def _strip(cls, v: Any) -> Any:
        return v.strip() if isinstance(v, str) else v

    @model_validator(mode="after")
    def _range(self) -> AskRequest:
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError(f"date_from={self.date_from} is after date_to={self.date_to}; "
                             "give date_from <= date_to (both inclusive)")
        return self

    def filters(self) -> Filters | None:
        """The request's date and format filters (None: none)."""
        if not (self.date_from or self.date_to or self.formats):
            return None
        return Filters(date_from=self.date_from, date_to=self.date_to,
                       formats=tuple(self.formats) if self.formats else None)


class SpanOut(BaseModel):
    """An exact span of a file. For a converted file (PDF, HTML, DOCX) the offsets index its
    extracted text (GET /documents/{path}); the other fields say where the span sits in the
    original, and are null for plain text."""

    start: int
    end: int
    line_start: int
    line_end: int
    text: str
    page_start: int | None = Field(None, description="PDF: first page (1-based)")
    page_end: int | None = Field(None, description="PDF: last page (1-based, inclusive)")
    boxes: list[tuple[int, float, float, float, float]] | None = Field(
        None, description="PDF: [page, x0, y0, x1, y1] in PDF points (origin bottom left of "
                          "the unrotated page), the characters' boxes merged per line")
    heading: str | None = Field(None, description="HTML/DOCX: the nearest heading before it")
    heading_id: str | None = Field(None, description="HTML: that heading's id attribute")
    paragraph: int | None = Field(None, description="DOCX: 1-based block (paragraph or table)")


class AnswerOut(SpanOut):
    """The reader's short answer: an exact span of the file, like the highlight."""

    score: float = Field(description="the reader's probability for this span (start x end)")


class RetrieverOut(BaseModel):
    """Where one retriever placed the passage."""

    rank: int
    score: float


class Retrievers(BaseModel):
    """Per-retriever placement (null: the retriever did not return it)."""

    dense: RetrieverOut | None
    lexical: RetrieverOut | None


class PassageOut(BaseModel):
    """A ranked passage: ``file_text[start:end] == text``; lines 1-based, inclusive."""

    rank: int
    score: float = Field(description="fused score: hybrid mixes min-max normalised dense and "
                         "BM25 scores in [0, 1]; dense is a cosine; lexical a BM25 score")
    file: str
    start: int
    end: int
    line_start: int
    line_end: int
    text: str
    highlight: SpanOut | None
    retrievers: Retrievers
    file_sha256: str
    page_start: int | None = Field(None, description="PDF: first page (1-based); null for "
                                   "plain text")
    page_end: int | None = Field(None, description="PDF: last page (1-based, inclusive)")
    heading: str | None = Field(None, description="HTML/DOCX: the nearest heading before it")
    heading_id: str | None = Field(None, description="HTML: that heading's id attribute")
    paragraph: int | None = Field(None, description="DOCX: 1-based block it starts in")
    read: float | None = Field(None, description="the reader's calibrated probability that "
                               "this passage answers (null: not read)")
    answer: AnswerOut | None = Field(None, description="the answer inside the passage, when "
                                     "the reader is confident it is there (null otherwise)")


class IndexOut(BaseModel):
    """The generation that answered."""

    generation: str
    built_at: str
    model: str
    chunks: int
    reader: str | None = Field(None, description="the reader's fingerprint (name@sha256 "
                               "prefix of its weights+digest of its card's calibration) when "
                               "it read the passages")


class AskResponse(BaseModel):
    """Ranked, cited passages; ``answerable`` is false when the corpus likely lacks the answer
    (passages are still the closest ones)."""

    question: str
    mode: str
    answerable: bool
    confidence: float
    passages: list[PassageOut]
    index: IndexOut
    timings_ms: dict[str, float]


class DocumentOut(BaseModel):
    """An indexed file."""

    path: str
    sha256: str
    size: int
    chunks: int
    title: str | None
    date: str | None = Field(description="the document's day (UTC), from date_source")
    date_source: str | None = Field(None, description="where the date came from: line (a "
                                    "leading `date YYYY-MM-DD` line), pdf, docx (metadata), "
                                    "html (a <meta> date), front-matter (Markdown), mtime")
    format: str = Field("text", description="text (indexed as it is), pdf, html or docx "
                        "(indexed as its extracted text)")


class DocumentSpanOut(BaseModel):
    """A document (or a span of it) as it is on disk now, to verify a citation."""

    path: str
    title: str | None
    date: str | None
    date_source: str | None = None
    format: str = Field("text", description="text, or the format the file was converted "
                        "from: then the text and offsets are those of the extracted text "
                        "stored with the index")
    sha256: str = Field(description="sha256 of the file as it is on disk now")
    indexed_sha256: str = Field(description="sha256 when the answering generation was built")
    stale: bool = Field(description="true when the file changed since it was indexed")
    length: int = Field(description="length of the text in code points")
    span: SpanOut | None = None
    before: str = ""
    after: str = ""
    text: str | None = Field(None, description="the whole text, when no span was asked")


class ErrorOut(BaseModel):
    """Every error response."""

    error: str
    detail: Any = None


def answer_out(a: Answer) -> AskResponse:
    """The response model of an answer."""
    passages = []
    for p in a.passages:
        h = p.highlight
        passages.append(PassageOut(
            rank=p.rank, score=p.score, file=p.file, start=p.start, end=p.end,
            line_start=p.line_start, line_end=p.line_end, text=p.text,
            highlight=SpanOut(**h.__dict__) if h else None,
            retrievers=Retrievers(
                dense=RetrieverOut(**p.dense.__dict__) if p.dense else None,
                lexical=RetrieverOut(**p.lexical.__dict__) if p.lexical else None),
            file_sha256=p.file_sha256, page_start=p.page_start, page_end=p.page_end,
            heading=p.heading, heading_id=p.heading_id, paragraph=p.paragraph, read=p.read,
            answer=AnswerOut(**p.answer.__dict__) if p.answer else None))
    return AskResponse(question=a.question, mode=a.mode, answerable=a.answerable,
                       confidence=a.confidence, passages=passages,
                       index=IndexOut(**a.index.__dict__), timings_ms=a.timings_ms)
