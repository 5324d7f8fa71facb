"""Searcher.ask(question, ...) -> Answer: the whole query pipeline, one code path for the
CLI, the API and the evaluation."""

from __future__ import annotations

import fnmatch
import json
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import numpy as np

from .config import Settings
from .embedding import Embedder, load_embedder
from .errors import ConfigError, IndexMismatchError
from .fusion import rrf, score_fusion
from .highlight import best_span, lexical_scores, sentence_spans
from .store import Generation, load_generation, open_current, read_current
from .types import MODES, Answer, Chunk, Hit, IndexInfo, Mode, Passage, RetrieverScore, Span

log = logging.getLogger(__name__)

MIN_TRIM_SHARE = 0.3  # a chunk trimmed of already-shown text must keep this share to stay


@dataclass(frozen=True)
class Abstainer:
    """Logistic model of P(answerable) over (top dense cosine, lexical coverage)."""

    w_dense: float
    w_lexical: float
    bias: float
    threshold: float = 0.5

    @classmethod
    def bundled(cls) -> Abstainer:
        """Coefficients fitted on eval/gold.jsonl (see `rag calibrate`)."""
        data = json.loads(resources.files("rag").joinpath("abstain.json").read_text())
        return cls(data["w_dense"], data["w_lexical"], data["bias"], data["threshold"])

    def confidence(self, dense_top: float, lexical_cov: float) -> float:
        """P(answerable) in [0, 1]."""
        z = self.w_dense * dense_top + self.w_lexical * lexical_cov + self.bias
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


class QueryCache:
    """A bounded, thread-safe LRU of question -> vector."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._d: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> np.ndarray | None:
        """The cached vector, or None."""
        with self._lock:
            v = self._d.get(key)
            if v is not None:
                self._d.move_to_end(key)
            return v

    def put(self, key: str, value: np.ndarray) -> None:
        """Store, evicting the oldest entry beyond the bound."""
        if self.size <= 0:
            return
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self.size:
                self._d.popitem(last=False)


def file_mask(gen: Generation, globs: Sequence[str] | None) -> np.ndarray | None:
    """Row mask of chunks whose file matches any glob (None: no filter)."""
    if not globs:
        return None
    ids = [i for i, f in enumerate(gen.files)
           if any(fnmatch.fnmatchcase(f.path, g) for g in globs)]
    return np.isin(gen.file_ids, np.asarray(ids, dtype=np.int32))


def _subtract(start: int, end: int, taken: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The longest piece of [start, end) not covered by any taken span."""
    pieces = [(start, end)]
    for ts, te in taken:
        nxt = []
        for ps, pe in pieces:
            if te <= ps or ts >= pe:
                nxt.append((ps, pe))
                continue
            if ps < ts:
                nxt.append((ps, ts))
            if te < pe:
                nxt.append((te, pe))
        pieces = nxt
    return max(pieces, key=lambda p: p[1] - p[0]) if pieces else None


def trim(chunk: Chunk, start: int, end: int) -> Chunk:
    """The part [start, end) of a chunk, whitespace stripped, with its own lines."""
    a, b = start - chunk.start, end - chunk.start
    text = chunk.text
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    ls = chunk.line_start + text.count("\n", 0, a)
    le = ls + text.count("\n", a, b)
    return Chunk(chunk.file, chunk.start + a, chunk.start + b, ls, le, text[a:b], chunk.context)


def select_passages(ranked: list[tuple[int, float]], chunks: dict[int, Chunk], top_k: int
                    ) -> list[tuple[int, float, Chunk]]:
    """Walk fused rows best first; drop or trim chunks overlapping text already chosen,
    so no words are shown twice."""
    taken: dict[str, list[tuple[int, int]]] = {}
    out: list[tuple[int, float, Chunk]] = []
    for row, score in ranked:
        if len(out) >= top_k:
            break
        c = chunks[row]
        spans = taken.setdefault(c.file, [])
        piece = _subtract(c.start, c.end, spans)
        if piece is None or piece[1] - piece[0] < MIN_TRIM_SHARE * (c.end - c.start):
            continue
        if piece != (c.start, c.end):
            c = trim(c, *piece)
            if not c.text:
                continue
        spans.append((c.start, c.end))
        out.append((row, score, c))
    return out


class Searcher:
    """Answers questions from the current index generation; follows re-indexes."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None,
                 abstainer: Abstainer | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self._embedder_lock = threading.Lock()
        self.abstainer = abstainer or Abstainer.bundled()
        self.cache = QueryCache(settings.query_cache_size)
        self._gen: Generation | None = None
        self._reload_lock = threading.Lock()

    # -- model and generation ------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        """The model, loaded on first use and shared."""
        if self._embedder is None:
            with self._embedder_lock:
                if self._embedder is None:
                    self._embedder = load_embedder(self.settings)
        return self._embedder

    def _check(self, gen: Generation) -> Generation:
        m = gen.manifest["model"]
        e = self.embedder
        if m["fingerprint"] != e.fingerprint or m["dim"] != e.dim:
            raise IndexMismatchError(
                f"index {gen.name} was built with model {m['name']!r} (dim {m['dim']}), "
                f"but the service loads {e.name!r} (dim {e.dim}); run `rag index --full` "
                "with this model, or start with --model set to the index's model")
        return gen

    @property
    def generation(self) -> Generation:
        """The generation answering now (loaded on first use)."""
        gen = self._gen
        if gen is None:
            with self._reload_lock:
                if self._gen is None:
                    self._gen = self._check(
                        open_current(self.settings.index_dir, self.settings.hnsw_ef_search))
                gen = self._gen
        return gen

    def reload_if_changed(self) -> bool:
        """Switch to the generation CURRENT names if it is new and valid; True if switched.

        In-flight questions keep the generation they started with."""
        name = read_current(self.settings.index_dir)
        if name is None or (self._gen is not None and self._gen.name == name):
            return False
        with self._reload_lock:
            if self._gen is not None and self._gen.name == name:
                return False
            gen = self._check(load_generation(self.settings.index_dir, name,
                                              self.settings.hnsw_ef_search))
            old, self._gen = self._gen, gen
        log.info("now serving generation %s (was %s)", gen.name, old.name if old else None)
        return True

    # -- the pipeline --------------------------------------------------------

    def embed_query(self, question: str) -> np.ndarray:
        """The question's unit vector, through the LRU cache."""
        v = self.cache.get(question)
        if v is None:
            v = self.embedder.embed([question])[0]
            self.cache.put(question, v)
        return v

    def ask(self, question: str, top_k: int | None = None, mode: Mode = "hybrid",
            files: Sequence[str] | None = None) -> Answer:
        """Ranked, cited passages for a question, from one generation."""
        t0 = time.perf_counter()
        question = question.strip()
        top_k = top_k or self.settings.top_k
        if mode not in MODES:
            raise ConfigError(f"mode={mode!r} is not one of {', '.join(MODES)}")
        if not question:
            raise ConfigError("the question is empty; ask something")
        gen = self.generation  # one generation for the whole answer
        qv = self.embed_query(question)
        t1 = time.perf_counter()

        allowed = file_mask(gen, files)
        n = max(self.settings.candidates, top_k * 3)
        dense_hits = gen.dense.search(qv[None, :], n, allowed)[0]
        lex_hits = gen.lexical.search(question, n, allowed)
        ranked = self.fuse(mode, dense_hits, lex_hits)
        want = [r for r, _ in ranked[: top_k * 4]]
        chunks = dict(zip(want, gen.chunks(want)))
        chosen = select_passages([(r, s) for r, s in ranked if r in chunks], chunks, top_k)
        t2 = time.perf_counter()

        dense_at = {h.row: h for h in dense_hits}
        lex_at = {h.row: h for h in lex_hits}
        passages = []
        for rank, (row, score, c) in enumerate(chosen, 1):
            d, x = dense_at.get(row), lex_at.get(row)
            passages.append(Passage(
                rank, round(float(score), 6), c.file, c.start, c.end, c.line_start,
                c.line_end, c.text, gen.file_by_path[c.file].sha256,
                self.highlight(question, c, gen),
                RetrieverScore(d.rank, round(d.score, 6)) if d else None,
                RetrieverScore(x.rank, round(x.score, 6)) if x else None))
        confidence = self.confidence(question, dense_hits, passages, gen)
        t3 = time.perf_counter()
        m = gen.manifest
        return Answer(
            question, mode, passages, confidence >= self.abstainer.threshold,
            round(confidence, 4),
            IndexInfo(gen.name, m["built_at"], m["model"]["name"], gen.size),
            {"embed": round((t1 - t0) * 1000, 3), "search": round((t2 - t1) * 1000, 3),
             "highlight": round((t3 - t2) * 1000, 3), "total": round((t3 - t0) * 1000, 3)})

    def fuse(self, mode: Mode, dense_hits: list[Hit], lex_hits: list[Hit]
             ) -> list[tuple[int, float]]:
        """Rows best first for a mode."""
        if mode == "dense":
            return [(h.row, h.score) for h in dense_hits]
        if mode == "lexical":
            return [(h.row, h.score) for h in lex_hits]
        w = self.settings.dense_weight
        if self.settings.fusion == "rrf":
            return rrf([dense_hits, lex_hits], [w, 1 - w], k=self.settings.rrf_k)
        return score_fusion([dense_hits, lex_hits], [w, 1 - w], self.settings.fusion)

    def highlight(self, question: str, chunk: Chunk, gen: Generation) -> Span | None:
        """The best sentence of a passage for the question."""
        spans = sentence_spans(chunk.text, chunk.start, chunk.line_start)
        return best_span(question, spans, gen.lexical.idf)

    def confidence(self, question: str, dense_hits: list[Hit], passages: list[Passage],
                   gen: Generation) -> float:
        """P(the corpus answers the question), from the top scores."""
        if not passages:
            return 0.0
        dense_top = dense_hits[0].score if dense_hits else 0.0
        spans = [Span(p.start, p.end, p.line_start, p.line_end, p.text) for p in passages[:3]]
        cov = float(lexical_scores(question, spans, gen.lexical.idf).max())
        return self.abstainer.confidence(dense_top, cov)
