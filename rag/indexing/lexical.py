"""Lexical index: BM25 over stemmed word tokens. Same verbs and hit type as dense.

Each segment stores raw postings (term -> rows and term frequencies) and its rows' lengths,
not precomputed scores: BM25's idf and average length are corpus-wide, so they are computed
at query time over every live row of every segment. A generation of many segments therefore
scores exactly as one segment holding the same live chunks would (tested), and a new segment
never forces the others to be rebuilt. The scoring is bm25s's "lucene" variant (k1 1.5,
b 0.75, idf log(1 + (N - df + 0.5) / (df + 0.5))), checked against bm25s itself in the tests.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..types import Hit

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
K1, B = 1.5, 0.75


@lru_cache(maxsize=1)
def _stemmer():  # type: ignore[no-untyped-def]
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(text: str) -> list[str]:
    """Lower-cased, stopword-free, stemmed word tokens."""
    words = [w for w in _TOKEN.findall(text.lower()) if w not in STOPWORDS]
    return list(_stemmer().stemWords(words)) if words else []


def bm25_idf(df: np.ndarray, n: int) -> np.ndarray:
    """Lucene's idf for document frequencies df among n rows (pure)."""
    df = np.asarray(df, dtype=np.float64)
    return np.log(1.0 + (n - df + 0.5) / (df + 0.5))


def bm25_tf(tf: np.ndarray, length: np.ndarray, avg_length: float) -> np.ndarray:
    """The term-frequency part of BM25 (lucene variant) for postings (pure)."""
    tf = np.asarray(tf, dtype=np.float64)
    return tf / (K1 * ((1 - B) + B * np.asarray(length, np.float64) / avg_length) + tf)


@dataclass
class Postings:
    """One segment's lexical part: for term t, rows docs[indptr[t]:indptr[t+1]] hold it tf
    times; lengths[row] is the row's token count."""

    vocab: dict[str, int]
    indptr: np.ndarray  # int64, len(vocab) + 1
    docs: np.ndarray  # int32 rows, ascending within a term
    tf: np.ndarray  # float32
    lengths: np.ndarray  # int32 per row

    @property
    def size(self) -> int:
        """Rows (live and tombstoned)."""
        return len(self.lengths)

    @classmethod
    def build(cls, texts: list[str], vocab: dict[str, int] | None = None) -> Postings:
        """Postings of texts (row i is text i); a row without words counts as one token."""
        vocab = dict(vocab or {})
        ids: list[int] = []
        lengths = np.zeros(len(texts), dtype=np.int32)
        for i, t in enumerate(texts):
            toks = tokenize(t) or [""]  # as bm25s saw an empty row: one empty token
            lengths[i] = len(toks)
            for w in toks:
                j = vocab.get(w)
                if j is None:
                    j = vocab[w] = len(vocab)
                ids.append(j)
        rows = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
        return cls.from_pairs(vocab, np.asarray(ids, dtype=np.int64), rows, lengths)

    @classmethod
    def from_pairs(cls, vocab: dict[str, int], terms: np.ndarray, rows: np.ndarray,
                   lengths: np.ndarray) -> Postings:
        """Postings from one (term, row) pair per token occurrence."""
        n = max(len(lengths), 1)
        keys, counts = np.unique(terms * n + rows, return_counts=True)
        t, docs = keys // n, keys % n
        indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum(np.bincount(t, minlength=len(vocab)), out=indptr[1:])
        return cls(vocab, indptr, docs.astype(np.int32), counts.astype(np.float32),
                   np.asarray(lengths, dtype=np.int32))

    def extend(self, other: Postings) -> Postings:
        """These rows followed by other's (other's row r becomes size + r): the postings of a
        merged segment, without re-tokenising these rows (vectorised, no sort)."""
        vocab = dict(self.vocab)
        inv = sorted(other.vocab, key=other.vocab.__getitem__)
        remap = np.empty(len(inv), dtype=np.int64)
        for j, w in enumerate(inv):
            k = vocab.get(w)
            if k is None:
                k = vocab[w] = len(vocab)
            remap[j] = k
        nt = len(vocab)
        a_count = np.zeros(nt, np.int64)
        a_count[:len(self.vocab)] = np.diff(self.indptr)
        b_count = np.zeros(nt, np.int64)
        np.add.at(b_count, remap, np.diff(other.indptr))
        indptr = np.zeros(nt + 1, np.int64)
        np.cumsum(a_count + b_count, out=indptr[1:])
        total = int(indptr[-1])
        docs = np.empty(total, np.int32)
        tf = np.empty(total, np.float32)
        # self's postings of term t go first in t's range, other's after them
        a_term = np.repeat(np.arange(len(self.vocab)), np.diff(self.indptr))
        a_pos = indptr[a_term] + (np.arange(len(self.docs)) - self.indptr[a_term])
        docs[a_pos], tf[a_pos] = self.docs, self.tf
        b_local = np.repeat(np.arange(len(inv)), np.diff(other.indptr))
        b_term = remap[b_local]
        b_pos = indptr[b_term] + a_count[b_term] + (np.arange(len(other.docs))
                                                    - other.indptr[b_local])
        docs[b_pos], tf[b_pos] = other.docs + self.size, other.tf
        return Postings(vocab, indptr, docs, tf, np.concatenate([self.lengths, other.lengths]))

    def save(self, folder: Path) -> None:
        """Plain files: vocab.json and npy arrays (no pickle)."""
        folder.mkdir(parents=True, exist_ok=True)
        terms = sorted(self.vocab, key=self.vocab.__getitem__)
        (folder / "vocab.json").write_text(json.dumps(terms, ensure_ascii=False))
        for name in ("indptr", "docs", "tf", "lengths"):
            np.save(folder / f"{name}.npy", getattr(self, name), allow_pickle=False)

    @classmethod
    def load(cls, folder: Path, mmap: bool = False) -> Postings:
        """Read a folder written by ``save``."""
        terms = json.loads((folder / "vocab.json").read_text())
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r" if mmap else None,
                                allow_pickle=False)
                  for name in ("indptr", "docs", "tf", "lengths")}
        p = cls({t: i for i, t in enumerate(terms)}, **arrays)
        if len(p.indptr) != len(terms) + 1 or int(p.indptr[-1]) != len(p.docs) != len(p.tf):
            raise ValueError(f"lexical arrays in {folder} disagree")
        return p


@dataclass(frozen=True)
class LexicalQuery:
    """A question's postings, gathered once (``LexicalIndex.gather``) and read by both BM25
    scoring and highlighting."""

    tokens: list[str]  # in question order, repeats kept (BM25 counts each occurrence)
    postings: dict[str, tuple[np.ndarray, np.ndarray]]  # term -> (generation rows, tf part)
    weights: dict[str, float]  # idf of each known term, terms sorted (highlight weights)


class LexicalIndex:
    """BM25 over the live rows of one or more segments, in a generation's row space.

    ``parts`` pairs each segment's postings with its row map: local row -> generation row,
    -1 for a tombstoned row (which then counts for nothing, not even in the statistics)."""

    def __init__(self, parts: list[tuple[Postings, np.ndarray | None]], size: int) -> None:
        self.parts = parts
        self.size = size
        total = 0
        for p, m in parts:
            total += int(p.lengths.sum() if m is None else p.lengths[m >= 0].sum())
        self.avg_length = total / size if size else 1.0
        # BM25's length normaliser per row, once per generation (it needs the average)
        self._norm = [np.float32(K1) * ((1 - B) + B * np.asarray(p.lengths, np.float32)
                                         / np.float32(self.avg_length)) for p, _ in parts]

    @classmethod
    def build(cls, texts: list[str]) -> LexicalIndex:
        """Index chunk texts (row i is chunk row i)."""
        return cls([(Postings.build(texts), None)], len(texts))

    def save(self, folder: Path) -> None:
        """Write a one-segment index's postings."""
        assert len(self.parts) == 1 and self.parts[0][1] is None
        self.parts[0][0].save(folder)

    @classmethod
    def load(cls, folder: Path, mmap: bool = False) -> LexicalIndex:
        """A one-segment index from a folder written by ``save``."""
        p = Postings.load(folder, mmap)
        return cls([(p, None)], p.size)

    def _postings(self, terms: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per term: (generation rows, BM25 tf part) of its live postings in every part."""
        out = []
        for t in terms:
            rows, parts = [], []
            for (p, m), norm in zip(self.parts, self._norm):
                j = p.vocab.get(t)
                if j is None:
                    continue
                a, b = int(p.indptr[j]), int(p.indptr[j + 1])
                docs = np.asarray(p.docs[a:b])
                tf = np.asarray(p.tf[a:b])
                if m is None:
                    g = docs
                else:
                    g = m[docs]
                    live = g >= 0
                    g, docs, tf = g[live], docs[live], tf[live]
                rows.append(g)
                parts.append(tf / (norm[docs] + tf))
            out.append((np.concatenate(rows), np.concatenate(parts)) if rows
                       else (np.zeros(0, np.int64), np.zeros(0, np.float32)))
        return out

    def gather(self, query: str) -> LexicalQuery:
        """The question's tokens, each distinct one's live postings (read once) and the idf
        weights of the known ones: what scoring and highlighting both need."""
        tokens = tokenize(query)
        terms = sorted(set(tokens))
        postings = dict(zip(terms, self._postings(terms)))
        weights = {t: float(bm25_idf(np.array([len(rows)]), self.size)[0])
                   for t, (rows, _) in postings.items() if len(rows)}
        return LexicalQuery(tokens, postings, weights)

    def scores(self, query: str | LexicalQuery) -> np.ndarray:
        """BM25 score of every row for the query (zeros when no term is known)."""
        q = self.gather(query) if isinstance(query, str) else query
        if not q.tokens or not self.size:
            return np.zeros(self.size, dtype=np.float32)
        found = [q.postings[t] for t in q.tokens]  # a repeated term counts each time
        if not any(len(r) for r, _ in found):
            return np.zeros(self.size, dtype=np.float32)
        # one pass in query-term order: a row's sum does not depend on where it is stored
        rows = np.concatenate([r for r, _ in found])
        weights = np.concatenate([np.float32(bm25_idf(np.array([len(r)]), self.size)[0]) * w
                                  for r, w in found])
        return np.bincount(rows, weights, minlength=self.size).astype(np.float32)

    def idf(self, terms: list[str]) -> dict[str, float]:
        """Document-frequency weight per known term (for highlighting)."""
        out = {}
        for t in terms:
            df = self._df(t)
            if df:
                out[t] = float(bm25_idf(np.array([df]), self.size)[0])
        return out

    def _df(self, term: str) -> int:
        """Live rows holding a term."""
        df = 0
        for p, m in self.parts:
            j = p.vocab.get(term)
            if j is not None:
                a, b = int(p.indptr[j]), int(p.indptr[j + 1])
                df += b - a if m is None else int((m[np.asarray(p.docs[a:b])] >= 0).sum())
        return df

    def search(self, query: str | LexicalQuery, k: int, allowed: np.ndarray | None = None
               ) -> list[Hit]:
        """Top-k rows with a positive score, best first."""
        s = self.scores(query)
        if allowed is not None:
            s = np.where(allowed, s, 0.0)
        return top_hits(s, k)


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
