"""SQuAD 2.0 -> labelled reader windows, cut the way the service will meet them.

Each article becomes one document (paragraphs joined by a blank line, as `rag
convert-squad` writes it), cut by our own chunker; a window is read around a sentence of a
chunk (``windows.window_around``). Per question:

- answerable: the chunk holding the answer, read around the answer's sentence (label 1) and
  around the sentence our highlighter would pick (label 1 if the answer is inside, else 0);
  one hard negative: the best BM25 chunk of the same article without the answer (label 0);
- unanswerable: its own paragraph's chunk, read around the plausible answer's sentence or the
  highlighter's (label 0), and the best other BM25 chunk of the article (label 0);
- one in ``EASY_EVERY`` questions also gets the best chunk of another article (label 0), so
  off-topic questions are seen too.

Span targets are token positions of the answer inside the pair, 0 ([CLS]) when the window
does not hold it. Everything is deterministic for a seed.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..indexing.lexical import LexicalIndex
from ..search.highlight import question_weights
from ..search.reader import windows as W
from ..text.chunking import ChunkParams, chunk_document, sentences
from ..types import Chunk, Document
from .reworded import is_reworded

EASY_EVERY = 3
CALIBRATION_ARTICLES = 24  # of the training file, held out from training for calibration


@dataclass(frozen=True)
class Example:
    """One labelled pair."""

    ids: np.ndarray  # [CLS] q [SEP] window [SEP]
    n_question: int
    label: int  # 1: the window holds the answer
    start: int  # answer token positions in ``ids`` (0 when label is 0)
    end: int
    kind: str  # answer / highlight / hard / own / easy


@dataclass(frozen=True)
class Article:
    """One SQuAD article as a document, its chunks and their BM25 index."""

    doc: Document
    chunks: list[Chunk]
    encoded: list[W.Encoded]
    lexical: LexicalIndex
    questions: list[dict[str, Any]]  # id, question, start, end (doc offsets), impossible


def load_squad(path: Path) -> list[dict[str, Any]]:
    """The ``data`` list of a SQuAD file (.json or .json.gz)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:  # type: ignore[operator]
        return json.load(f)["data"]  # type: ignore[no-any-return]


def split_articles(articles: list[dict[str, Any]], seed: int
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training, calibration): CALIBRATION_ARTICLES drawn at random are held out."""
    rng = random.Random(seed)
    n = min(CALIBRATION_ARTICLES, max(1, len(articles) // 5))
    held = set(rng.sample(range(len(articles)), n))
    return ([a for i, a in enumerate(articles) if i not in held],
            [a for i, a in enumerate(articles) if i in held])


def count_tokens(texts: Sequence[str]) -> list[int]:
    """Tokens per text by the bundled tokenizer (no specials), as the chunker counts."""
    return [len(e.ids) for e in W.tokenizer().encode_batch(list(texts), add_special_tokens=False)]


def article(art: dict[str, Any], params: ChunkParams) -> Article:
    """Join, chunk and index one article; questions with offsets into the joined text."""
    text, questions = "", []
    for i, para in enumerate(art["paragraphs"]):
        if i:
            text += "\n\n"
        base, ctx = len(text), para["context"]
        text += ctx
        for qa in para["qas"]:
            imp = bool(qa.get("is_impossible"))
            ans = (qa.get("plausible_answers") or [None])[0] if imp else (qa.get("answers") or [None])[0]
            s = e = -1
            if ans and ctx[int(ans["answer_start"]): int(ans["answer_start"]) + len(ans["text"])] == ans["text"]:
                s, e = base + int(ans["answer_start"]), base + int(ans["answer_start"]) + len(ans["text"])
            if not imp and s < 0:
                continue  # misaligned answer in the source data
            questions.append({"id": qa["id"], "question": qa["question"], "start": s, "end": e,
                              "impossible": imp, "para": (base, base + len(ctx))})
    doc = Document(path=str(art.get("title", "article")), text=text, sha256="", size=len(text))
    chunks = chunk_document(doc, count_tokens, params)
    return Article(doc, chunks, W.encode([c.text for c in chunks]),
                   LexicalIndex.build([c.text for c in chunks]), questions)


def sentence_of(chunk: Chunk, start: int) -> tuple[int, int]:
    """The sentence of the chunk holding passage offset ``start``."""
    for s, e in sentences(chunk.text, 0, len(chunk.text)):
        if s <= start < e:
            return s, e
    return start, start + 1


def example(q: np.ndarray, chunk: Chunk, enc: W.Encoded, centre: tuple[int, int],
            answer: tuple[int, int] | None, kind: str, max_len: int = W.MAX_LEN) -> Example:
    """Read ``chunk`` around ``centre`` (passage offsets) in a pair of ``max_len`` tokens;
    label by whether the window holds ``answer`` (document offsets) whole."""
    w = W.window_around(enc, centre[0], centre[1], W.budget_for(q, max_len))
    ids = W.pair(q, enc, w)
    if answer is not None:
        s, e = answer[0] - chunk.start, answer[1] - chunk.start
        if w.start <= s and e <= w.end:
            toks = np.arange(w.a, w.b)
            inside = toks[(enc.ends[w.a:w.b] > s) & (enc.starts[w.a:w.b] < e)]
            if len(inside):
                off = len(q) + 2 - w.a
                return Example(ids, len(q), 1, int(inside[0]) + off, int(inside[-1]) + off, kind)
    return Example(ids, len(q), 0, 0, 0, kind)


def examples(art: Article, other: Article | None, rng: random.Random,
             max_len: int = W.MAX_LEN) -> Iterator[Example]:
    """The labelled pairs of one article's questions (see the module docstring), each of at
    most ``max_len`` tokens."""
    ex = partial(example, max_len=max_len)
    for n, qa in enumerate(art.questions):
        question = qa["question"]
        q = W.question_ids(question)
        weights = question_weights(question, art.lexical.idf)
        ans = None if qa["impossible"] else (qa["start"], qa["end"])
        ranked = np.argsort(-art.lexical.scores(question), kind="stable")
        if qa["start"] >= 0:
            holding = [i for i, c in enumerate(art.chunks)
                       if c.start <= qa["start"] and qa["end"] <= c.end]
        else:  # unanswerable without a plausible span: its paragraph's best BM25 chunk
            ps, pe = qa["para"]
            holding = [int(i) for i in ranked if art.chunks[i].start < pe and art.chunks[i].end > ps][:1]
        if holding:
            i = rng.choice(holding)
            c, enc = art.chunks[i], art.encoded[i]
            hl = W.centre(c.text, weights)
            if qa["start"] >= 0 and rng.random() < (1.0 if ans else 0.5):
                at = sentence_of(c, qa["start"] - c.start)  # the answer's sentence
                first = ex(q, c, enc, at, ans, "answer" if ans else "own")
                yield first
                if hl != at:
                    second = ex(q, c, enc, hl, ans, "highlight")
                    if not np.array_equal(second.ids, first.ids):  # one window holding
                        yield second  # both sentences is one pair, not two
            else:
                yield ex(q, c, enc, hl, ans, "highlight" if ans else "own")
        for i in ranked[:4].tolist():
            if i not in holding:
                c = art.chunks[i]
                yield ex(q, c, art.encoded[i], W.centre(c.text, weights), None, "hard")
                break
        if other is not None and n % EASY_EVERY == 0 and other.chunks:
            i = int(np.argmax(other.lexical.scores(question)))
            c = other.chunks[i]
            ow = question_weights(question, other.lexical.idf)
            yield ex(q, c, other.encoded[i], W.centre(c.text, ow), None, "easy")


def build(articles: list[dict[str, Any]], seed: int, params: ChunkParams = ChunkParams(),
          keep: float = 1.0, max_len: int = W.MAX_LEN) -> list[Example]:
    """Every pair of these articles, shuffled with ``seed``. ``keep`` < 1: only that share
    of the original questions (drawn with ``seed``), every reworded one (``reworded.add``):
    a short leg that teaches rewordings without forgetting the rest."""
    rng = random.Random(seed)
    arts = [article(a, params) for a in articles]
    if keep < 1.0:
        arts = [replace(a, questions=[q for q in a.questions
                                      if is_reworded(q["id"]) or rng.random() < keep])
                for a in arts]
    out: list[Example] = []
    for k, art in enumerate(arts):
        other = arts[(k + 1 + rng.randrange(max(1, len(arts) - 1))) % len(arts)] if len(arts) > 1 else None
        out.extend(examples(art, other, rng, max_len))
    rng.shuffle(out)
    return out
