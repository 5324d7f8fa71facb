"""Lexical index: BM25 (bm25s) over stemmed word tokens. Same verbs and hit type as dense."""

from __future__ import annotations

import json
import logging
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from .types import Hit

_TOKEN = re.compile(r"\w+", re.UNICODE)
# A short English stopword list: questions are full of these and they carry no topic.
STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further
had has have having he her here hers herself him himself his how i if in into is it its
itself just me more most my myself no nor not now of off on once only or other our ours
ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself yourselves
""".split())


def _bm25s():  # type: ignore[no-untyped-def]
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets DEBUG on import
    return bm25s


@lru_cache(maxsize=1)
def _stemmer():  # type: ignore[no-untyped-def]
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(text: str) -> list[str]:
    """Lower-cased, stopword-free, stemmed word tokens."""
    words = [w for w in _TOKEN.findall(text.lower()) if w not in STOPWORDS]
    return list(_stemmer().stemWords(words)) if words else []


class LexicalIndex:
    """BM25 scores for every chunk row, from a sparse term matrix."""

    def __init__(self, bm25: object, size: int) -> None:
        self._bm25 = bm25
        self.size = size

    @classmethod
    def build(cls, texts: list[str]) -> LexicalIndex:
        """Index chunk texts (row i is chunk row i)."""
        bm25 = _bm25s().BM25()
        tokens = [tokenize(t) or [""] for t in texts]  # bm25s wants no empty document
        if texts:
            bm25.index(tokens, show_progress=False)
        return cls(bm25, len(texts))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every row for the query (zeros when no term is known)."""
        vocab = getattr(self._bm25, "vocab_dict", None) or {}
        ids = [vocab[t] for t in tokenize(query) if t in vocab]
        if not ids or not self.size:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores_from_ids(ids), dtype=np.float32)  # type: ignore[attr-defined]

    def idf(self, terms: list[str]) -> dict[str, float]:
        """Document-frequency weight per known term (for highlighting)."""
        vocab = getattr(self._bm25, "vocab_dict", None) or {}
        indptr = self._bm25.scores["indptr"]  # type: ignore[attr-defined]
        out = {}
        for t in terms:
            if t in vocab:
                df = int(indptr[vocab[t] + 1] - indptr[vocab[t]])
                out[t] = float(np.log(1 + (self.size - df + 0.5) / (df + 0.5)))
        return out

    def search(self, query: str, k: int, allowed: np.ndarray | None = None) -> list[Hit]:
        """Top-k rows with a positive score, best first."""
        s = self.scores(query)
        if allowed is not None:
            s = np.where(allowed, s, 0.0)
        return top_hits(s, k)

    def save(self, folder: Path) -> None:
        """bm25s's own plain files (npy + json; no pickle)."""
        folder.mkdir(parents=True, exist_ok=True)
        if self.size:
            self._bm25.save(str(folder), show_progress=False)  # type: ignore[attr-defined]
        (folder / "size.json").write_text(json.dumps({"rows": self.size}))

    @classmethod
    def load(cls, folder: Path, mmap: bool = False) -> LexicalIndex:
        """Read a folder written by ``save``."""
        bm25s = _bm25s()
        size = int(json.loads((folder / "size.json").read_text())["rows"])
        if not size:
            return cls(bm25s.BM25(), 0)
        bm25 = bm25s.BM25.load(str(folder), mmap=mmap, show_progress=False, verbosity=0)
        return cls(bm25, size)


def top_hits(scores: np.ndarray, k: int) -> list[Hit]:
    """The k best positive scores as hits, ties broken by row (pure)."""
    k = min(k, len(scores))
    if k <= 0:
        return []
    if k < len(scores):  # keep every row tied with the k-th score, then order exactly
        kth = scores[np.argpartition(-scores, k - 1)[k - 1]]
        idx = np.flatnonzero(scores >= kth)
    else:
        idx = np.arange(len(scores))
    idx = idx[scores[idx] > 0]
    idx = idx[np.lexsort((idx, -scores[idx]))][:k]
    return [Hit(int(r), float(scores[r]), i + 1) for i, r in enumerate(idx)]
