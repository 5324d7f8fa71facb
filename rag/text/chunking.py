"""Cut documents into chunks, recording ``(start, end)`` as we cut.

Every chunk satisfies ``doc.text[chunk.start:chunk.end] == chunk.text``; the union of the
chunks covers every non-whitespace character of the document. Boundaries fall between
sentences (and prefer paragraph breaks); a sentence longer than the budget is cut between
words, and a "word" longer than ``MAX_WORD_CHARS`` between characters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..types import Chunk, Document, Span
from .corpus import LineIndex

TokenCounter = Callable[[Sequence[str]], list[int]]

MAX_WORD_CHARS = 100  # BERT-style tokenizers map longer words to one [UNK]; we cut first
CONTEXT_CHARS = 120
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")
_SENTENCE_END = re.compile(r"[.!?;:\u3002\uff01\uff1f]+[\"'\u201d\u2019)\]]*(?=\s)|\n")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class ChunkParams:
    """What decides where chunks fall; recorded in the manifest."""

    max_tokens: int = 160
    overlap_tokens: int = 32
    context_prefix: bool = False


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    tokens: int
    new_paragraph: bool  # the unit opens a paragraph


def count_words(texts: Sequence[str]) -> list[int]:
    """A tokenizer-free counter (words and punctuation), for tests and fakes."""
    return [len(re.findall(r"\w+|[^\w\s]", t)) for t in texts]


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink ``[start, end)`` to exclude surrounding whitespace (and a BOM)."""
    while start < end and (text[start].isspace() or text[start] == "\ufeff"):
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def paragraphs(text: str) -> list[tuple[int, int]]:
    """Non-blank paragraph spans, separated by blank lines."""
    spans, pos = [], 0
    for m in _PARAGRAPH_BREAK.finditer(text):
        spans.append((pos, m.start()))
        pos = m.end()
    spans.append((pos, len(text)))
    out = [_strip_span(text, s, e) for s, e in spans]
    return [(s, e) for s, e in out if e > s]


def sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentence spans inside ``text[start:end]`` (line ends count as boundaries)."""
    spans, pos = [], start
    for m in _SENTENCE_END.finditer(text, start, end):
        spans.append((pos, m.end()))
        pos = m.end()
    spans.append((pos, end))
    out = [_strip_span(text, s, e) for s, e in spans]
    return [(s, e) for s, e in out if e > s]


def sentence_spans(text: str, offset: int, line_start: int) -> list[Span]:
    """Sentences of a passage as file spans (``offset`` is the passage's start)."""
    out = []
    for s, e in sentences(text, 0, len(text)):
        ls = line_start + text.count("\n", 0, s)
        le = ls + text.count("\n", s, e)
        out.append(Span(offset + s, offset + e, ls, le, text[s:e]))
    return out


def _words(text: str, start: int, end: int) -> list[tuple[int, int]]:
    out = []
    for m in _WORD.finditer(text, start, end):
        for s in range(m.start(), m.end(), MAX_WORD_CHARS):
            out.append((s, min(s + MAX_WORD_CHARS, m.end())))
    return out


def _fit_words(text: str, words: list[tuple[int, int]], count: TokenCounter, budget: int
               ) -> list[tuple[int, int]]:
    """Cut any word piece with more tokens than the budget into smaller character runs."""
    out: list[tuple[int, int]] = []
    todo = list(reversed(words))
    while todo:
        a, b = todo.pop()
        if b - a > 1 and count([text[a:b]])[0] > budget:
            mid = (a + b) // 2
            todo.extend([(mid, b), (a, mid)])
        else:
            out.append((a, b))
    return out


def _pack(spans: list[tuple[int, int]], counts: list[int], budget: int) -> list[tuple[int, int, int]]:
    """Greedily merge consecutive spans into pieces of at most ``budget`` tokens."""
    pieces: list[tuple[int, int, int]] = []
    for (s, e), n in zip(spans, counts):
        if pieces and pieces[-1][2] + n <= budget:
            ps, _, pn = pieces[-1]
            pieces[-1] = (ps, e, pn + n)
        else:
            pieces.append((s, e, n))
    return pieces


def units(text: str, count: TokenCounter, budget: int) -> list[_Unit]:
    """Sentence units of at most ``budget`` tokens each, in document order."""
    raw: list[tuple[int, int, bool]] = []
    for ps, pe in paragraphs(text):
        for i, (s, e) in enumerate(sentences(text, ps, pe)):
            raw.append((s, e, i == 0))
    counts = count([text[s:e] for s, e, _ in raw])
    out: list[_Unit] = []
    for (s, e, para), n in zip(raw, counts):
        if n <= budget:
            out.append(_Unit(s, e, n, para))
            continue
        words = _fit_words(text, _words(text, s, e), count, budget)
        wcounts = count([text[a:b] for a, b in words])
        for i, (a, b, m) in enumerate(_pack(words, wcounts, budget)):
            out.append(_Unit(a, b, m, para and i == 0))
    return out


def _group(us: list[_Unit], budget: int, overlap: int) -> list[tuple[int, int]]:
    """Index ranges ``[i, j)`` of units forming each chunk, with trailing-unit overlap."""
    groups: list[tuple[int, int]] = []
    i = 0
    while i < len(us):
        j, total = i, 0
        while j < len(us) and total + us[j].tokens <= budget:
            # Prefer to end at a paragraph break once the chunk is half full.
            if j > i and us[j].new_paragraph and total >= budget // 2:
                para_end = j + 1
                while para_end < len(us) and not us[para_end].new_paragraph:
                    para_end += 1
                if total + sum(u.tokens for u in us[j:para_end]) > budget:
                    break
            total += us[j].tokens
            j += 1
        j = max(j, i + 1)  # every unit fits the budget alone, so this only guards
        groups.append((i, j))
        if j >= len(us):
            break
        # Start the next chunk with the last units of this one, up to `overlap` tokens.
        # The overlap never crowds out the next unit, so each chunk adds new text.
        k, back = j, 0
        while (k - 1 > i and back + us[k - 1].tokens <= overlap
               and back + us[k - 1].tokens + us[j].tokens <= budget):
            k -= 1
            back += us[k].tokens
        i = k
    return groups


def chunk_document(doc: Document, count: TokenCounter, params: ChunkParams) -> list[Chunk]:
    """Chunks of one document with exact offsets, line ranges and an embedding context."""
    text = doc.text
    us = units(text, count, params.max_tokens)
    lines = LineIndex(text)
    context = (doc.title or "")[:CONTEXT_CHARS] if params.context_prefix else ""
    chunks = []
    for i, j in _group(us, params.max_tokens, params.overlap_tokens):
        start, end = us[i].start, us[j - 1].end
        ls, le = lines.lines(start, end)
        chunks.append(Chunk(doc.path, start, end, ls, le, text[start:end], context))
    return chunks


def embedding_text(chunk: Chunk) -> str:
    """What the model sees for a chunk: its context prefix, then its exact text."""
    return f"{chunk.context}: {chunk.text}" if chunk.context else chunk.text
