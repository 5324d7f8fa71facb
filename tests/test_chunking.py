"""Chunk offsets against the document's own text, on adversarial and real documents."""

from __future__ import annotations

import re
from itertools import pairwise

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rag.text.chunking import (
    CONTEXT_CHARS,
    MAX_WORD_CHARS,
    ChunkParams,
    chunk_document,
    count_words,
    embedding_text,
)
from rag.text.corpus import load_corpus
from rag.types import Chunk, Document

from .conftest import CORPUS
from .oracles import assert_exact, file_text

BOM = "\ufeff"


def _doc(text: str, title: str | None = None, path: str = "doc.txt") -> Document:
    return Document(path, text, "0" * 64, len(text.encode("utf-8")), title)


def _max_piece_tokens(text: str) -> int:
    """Tokens in the densest piece the chunker may not cut: a <=100-char slice of a word."""
    pieces = [w[i:i + MAX_WORD_CHARS] for w in re.findall(r"\S+", text)
              for i in range(0, len(w), MAX_WORD_CHARS)]
    return max(count_words(pieces), default=0)


def check_chunks(doc: Document, chunks: list[Chunk], max_tokens: int, overlap: int,
                 check_budget: bool = True) -> None:
    """Every invariant a chunk list must satisfy, checked against the text itself."""
    text = doc.text
    covered = bytearray(len(text))
    for c in chunks:
        assert c.file == doc.path
        assert_exact(text, c, c.start)
        assert c.text and c.text == c.text.strip()
        assert not c.text.startswith(BOM)
        if check_budget:
            assert count_words([c.text])[0] <= max_tokens
        covered[c.start:c.end] = b"\x01" * (c.end - c.start)
    for prev, nxt in pairwise(chunks):
        assert nxt.start > prev.start  # progress
        assert nxt.end >= prev.end
        if nxt.start < prev.end:  # the shared text is at most the overlap budget
            assert count_words([text[nxt.start:prev.end]])[0] <= overlap
    missed = [i for i, ch in enumerate(text)
              if not covered[i] and not ch.isspace() and ch != BOM]
    assert not missed, f"uncovered characters at {missed[:10]}: {[text[i] for i in missed[:10]]}"


# --- adversarial documents -------------------------------------------------------------------

ATOMS = ["alpha", "Beta", "gamma", "na\u00efve", "US$5", "\u00b9\u00b2", "\u2014", "\U0001f600",
         "\U0001f680\U0001f30d", "\u4e2d\u6587\u5b57\u7b26", "x\u00b2", "3.14", "e.g.", "(note)",
         "\u201cquoted\u201d", "don't", "caf\u00e9", "\u0645\u0631\u062d\u0628\u0627"]
ENDINGS = ["", "", "", "", ".", "!", "?", ",", ";", ":", "\u3002", ".\u201d", "...", "?!"]
LONG_WORD = st.text(alphabet="abcxyzABC\u4e2d\u6587\u00b9\u00b20123456789_", min_size=101,
                    max_size=260)
PLAIN_WORD = st.sampled_from(["alpha", "beta", "gamma", "delta", "word", "text"])


# Words of one to three atoms with an optional ending, precomputed: drawing them one atom at
# a time makes generation, not chunking, the slow part of the test.
WORD = st.one_of(
    st.sampled_from([a + b + e for a in ATOMS for b in ["", *ATOMS] for e in ENDINGS]),
    st.tuples(st.sampled_from(ATOMS), st.sampled_from(ATOMS), st.sampled_from(ATOMS),
              st.sampled_from(ENDINGS)).map("".join),
)


@st.composite
def lines(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 9))
    if kind == 0:  # a very long line with no punctuation at all
        base = draw(st.lists(PLAIN_WORD, min_size=5, max_size=15))
        return " ".join(base * draw(st.integers(3, 10)))
    if kind == 1:  # whitespace only
        return draw(st.sampled_from(["", " ", "\t", " \t  ", "\u00a0", "\u3000"]))
    if kind == 2:  # a very long word
        return draw(WORD) + " " + draw(LONG_WORD) + draw(st.sampled_from(["", ".", " end"]))
    ws = draw(st.lists(WORD, min_size=1, max_size=25))
    sep = draw(st.sampled_from([" ", " ", "\t", "  ", " \t"]))
    return sep.join(ws)


@st.composite
def paragraphs(draw: st.DrawFn) -> str:
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    return eol.join(draw(st.lists(lines(), min_size=1, max_size=5)))


@st.composite
def documents(draw: st.DrawFn) -> str:
    paras = draw(st.lists(paragraphs(), min_size=1, max_size=8))
    if draw(st.booleans()):  # the same paragraph many times over
        at = draw(st.integers(0, len(paras) - 1))
        paras[at:at + 1] = [paras[at]] * draw(st.integers(2, 12))
    seps = st.sampled_from(["\n\n", "\r\n\r\n", "\n \t\n", "\n\n\n\n", " \n  \n\t", "\n"])
    text = "".join(p + draw(seps) for p in paras[:-1]) + paras[-1]
    text = draw(st.sampled_from(["", "", "\n", "  \r\n"])) + text + draw(
        st.sampled_from(["", "\n", "\r\n", " \t\n\n"]))
    return (BOM + text) if draw(st.booleans()) else text


@st.composite
def params(draw: st.DrawFn) -> ChunkParams:
    m = draw(st.integers(16, 200))
    return ChunkParams(max_tokens=m, overlap_tokens=draw(st.integers(0, m - 1)))


@settings(max_examples=150, deadline=None)
@given(text=documents(), p=params())
def test_chunks_of_adversarial_documents(text: str, p: ChunkParams) -> None:
    assert _max_piece_tokens(text) < 16  # the generator keeps every word within any budget
    doc = _doc(text)
    chunks = chunk_document(doc, count_words, p)
    assert bool(chunks) == bool(text.replace(BOM, "").strip())
    check_chunks(doc, chunks, p.max_tokens, p.overlap_tokens)


_ANY_CHARS = st.sampled_from(list(
    "ab9_.!?;:,'\")]-$\u00b9\u2014\u3002\uff01\U0001f600\u4e2d" + BOM
    + " \t\n\r\x0b\x0c\x1c\x1f\x85\u00a0\u2028\u2029\u3000"))


@settings(max_examples=150, deadline=None)
@given(text=st.text(alphabet=_ANY_CHARS, max_size=600), p=params())
def test_chunks_of_arbitrary_text(text: str, p: ChunkParams) -> None:
    """Any character soup: offsets, lines, order and coverage always hold."""
    doc = _doc(text)
    chunks = chunk_document(doc, count_words, p)
    if not text.replace(BOM, "").strip():
        assert chunks == []
    # The budget is only promised when each uncuttable <=100-char piece fits it (see the
    # xfail below for what happens otherwise).
    check_chunks(doc, chunks, p.max_tokens, p.overlap_tokens,
                 check_budget=_max_piece_tokens(text) <= p.max_tokens)


def _real_documents() -> list[Document]:
    return load_corpus(CORPUS)[0]


@pytest.mark.parametrize("doc", _real_documents(), ids=lambda d: d.path)
def test_chunks_of_real_corpus_files(doc: Document) -> None:
    chunks = chunk_document(doc, count_words, ChunkParams(max_tokens=160, overlap_tokens=32))
    assert len(chunks) >= 2
    check_chunks(doc, chunks, 160, 32)
    on_disk = file_text(CORPUS / doc.path)
    for c in chunks:
        assert_exact(on_disk, c, c.start)


def test_empty_and_blank_documents_have_no_chunks() -> None:
    for text in ["", BOM, " \n\t\r\n", BOM + "\n\n  "]:
        assert chunk_document(_doc(text), count_words, ChunkParams()) == []


# --- identical text at different offsets -----------------------------------------------------

def test_repeated_paragraphs_keep_their_own_offsets() -> None:
    para = "The same paragraph repeats here."  # 6 tokens
    text = "\n\n".join([para] * 8)
    chunks = chunk_document(_doc(text), count_words, ChunkParams(max_tokens=8, overlap_tokens=0))
    step = len(para) + 2
    assert [(c.start, c.end) for c in chunks] == [(i * step, i * step + len(para))
                                                   for i in range(8)]
    assert [c.line_start for c in chunks] == [1 + 2 * i for i in range(8)]
    assert {c.text for c in chunks} == {para}


def test_repeated_paragraphs_in_larger_chunks() -> None:
    para = "Repeat me, exactly as written!"
    text = BOM + "\r\n\r\n".join([para] * 20)
    doc = _doc(text)
    chunks = chunk_document(doc, count_words, ChunkParams(max_tokens=20, overlap_tokens=7))
    check_chunks(doc, chunks, 20, 7)
    starts = [c.start for c in chunks]
    assert len(set(starts)) == len(starts)
    same = [c for c in chunks if c.text == chunks[1].text]
    assert len(same) >= 2 and len({c.start for c in same}) == len(same)
    assert any(text.find(c.text) != c.start for c in chunks)  # str.find would get these wrong


# --- boundaries fall between sentences -------------------------------------------------------

SENTENCE_WORDS = st.sampled_from(["the", "river", "model", "index", "quiet", "Beijing", "2025",
                                  "cooperation", "e-commerce", "data", "forum", "AI"])


@st.composite
def sentence_documents(draw: st.DrawFn) -> tuple[str, set[int], set[int]]:
    """Short paragraphs of short sentences, with every sentence's start and end offset."""
    text, starts, ends = "", set(), set()
    for p in range(draw(st.integers(1, 12))):
        if p:
            text += draw(st.sampled_from(["\n\n", "\r\n\r\n", "\n\n\n"]))
        for s in range(draw(st.integers(1, 5))):
            if s:
                text += draw(st.sampled_from([" ", "  ", "\n", "\r\n"]))
            ws = draw(st.lists(SENTENCE_WORDS, min_size=1, max_size=9))
            sentence = " ".join(ws).capitalize() + draw(st.sampled_from([".", "!", "?"]))
            starts.add(len(text))
            text += sentence
            ends.add(len(text))
    return text, starts, ends


@settings(max_examples=150, deadline=None)
@given(data=sentence_documents(), m=st.integers(16, 60), o=st.integers(0, 15))
def test_chunks_never_cut_a_sentence_that_fits(data: tuple[str, set[int], set[int]],
                                               m: int, o: int) -> None:
    text, starts, ends = data
    spans = zip(sorted(starts), sorted(ends))
    assume(all(n <= m for n in count_words([text[a:b] for a, b in spans])))
    doc = _doc(text)
    chunks = chunk_document(doc, count_words, ChunkParams(max_tokens=m, overlap_tokens=o))
    check_chunks(doc, chunks, m, o)
    for c in chunks:
        assert c.start in starts, (c.start, c.text)
        assert c.end in ends, (c.end, c.text)
        assert c.text[-1] in ".!?"


def test_chunks_prefer_paragraph_breaks() -> None:
    """Once half full, a chunk ends at a paragraph break rather than split the next paragraph."""
    p1 = "One two three four five six seven eight."  # 9 tokens
    p2 = "Ab cd ef. Gh ij kl mn."  # 4 + 5 tokens: the first sentence alone would still fit
    p3 = "Done."  # 2 tokens
    text = f"{p1}\n\n{p2}\n\n{p3}"
    chunks = chunk_document(_doc(text), count_words, ChunkParams(max_tokens=16, overlap_tokens=0))
    assert [c.text for c in chunks] == [p1, p2 + "\n\n" + p3]
    assert [(c.line_start, c.line_end) for c in chunks] == [(1, 1), (3, 5)]


# --- the embedding context -------------------------------------------------------------------

def test_embedding_text_prefixes_context_and_keeps_the_cited_text() -> None:
    text = "Alpha beta gamma. Delta epsilon.\n\nZeta eta theta."
    doc = _doc(text, title="A Title")
    p = ChunkParams(max_tokens=16, overlap_tokens=0, context_prefix=True)
    chunks = chunk_document(doc, count_words, p)
    assert chunks
    for c in chunks:
        assert c.context == "A Title"
        assert embedding_text(c) == "A Title: " + c.text
        assert_exact(text, c)  # the context never leaks into the citation


def test_embedding_text_without_context() -> None:
    text = "Alpha beta gamma. Delta epsilon."
    for doc, p in [(_doc(text, title="A Title"), ChunkParams(context_prefix=False)),
                   (_doc(text, title=None), ChunkParams(context_prefix=True))]:
        chunks = chunk_document(doc, count_words, p)
        assert [c.context for c in chunks] == [""]
        assert [embedding_text(c) for c in chunks] == [text]


def test_context_is_capped() -> None:
    title = "T" * (CONTEXT_CHARS + 50)
    p = ChunkParams(context_prefix=True)
    chunks = chunk_document(_doc("Some text.", title=title), count_words, p)
    assert chunks[0].context == "T" * CONTEXT_CHARS
    assert embedding_text(chunks[0]) == "T" * CONTEXT_CHARS + ": Some text."


# --- known defects ---------------------------------------------------------------------------

def test_budget_holds_for_a_dense_word() -> None:
    text = "Hello there. " + "!" * 40 + " end."  # one 40-token word, budget 16
    chunks = chunk_document(_doc(text), count_words, ChunkParams(max_tokens=16, overlap_tokens=4))
    assert all(count_words([c.text])[0] <= 16 for c in chunks)


def test_every_chunk_adds_new_text() -> None:
    a = "a1 a2 a3 a4 a5 a6 a7."  # 8 tokens each ...
    b = "b1 b2 b3 b4 b5 b6 b7."
    c = "c1 c2 c3 c4 c5 c6 c7 c8."  # ... and 9
    doc = _doc(f"{a} {b} {c}")
    chunks = chunk_document(doc, count_words, ChunkParams(max_tokens=16, overlap_tokens=8))
    for prev, nxt in pairwise(chunks):
        assert nxt.end > prev.end, f"{nxt.text!r} lies inside {prev.text!r}"
