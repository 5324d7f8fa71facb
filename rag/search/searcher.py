"""Searcher.ask(question, ...) -> Answer: the whole query pipeline, one code path for the
CLI, the API and the evaluation."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from importlib import resources
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..config import Settings
from ..errors import ConfigError, IndexMismatchError, RagError
from ..indexing.embedding import Embedder, MicroBatcher, load_embedder
from ..indexing.generation import FILTER_FORMATS, Generation, load_generation, open_current
from ..indexing.lexical import tokenize
from ..indexing.store import read_current
from ..lru import LRU
from ..text.chunking import sentence_spans
from ..text.dates import EPOCH, NO_DAY
from ..types import MODES, Answer, Chunk, Hit, IndexInfo, Mode, Passage, RetrieverScore, Span
from .fusion import rrf, score_fusion
from .highlight import coverage
from .reader.calibration import Logistic
from .reader.windows import centre_of

if TYPE_CHECKING:
    from .reader.runtime import Reader, Reading

log = logging.getLogger(__name__)

PREPARED_PASSAGES = 20_000  # memoised passages (spans + tokens), ~2 KB each
RETIRE_GRACE_S = 2.0  # a replaced generation stays open this long at least
MIN_TRIM_SHARE = 0.3  # a chunk trimmed of already-shown text must keep this share to stay


@dataclass(frozen=True)
class Abstainer:
    """P(answerable) over answer_features(): the shared logistic model, and the threshold
    below which the answer abstains."""

    model: Logistic  # one weight per feature of answer_features()
    threshold: float = 0.5

    @classmethod
    def bundled(cls) -> Abstainer:
        """Coefficients fitted on eval/gold.jsonl (see eval/calibrate.py)."""
        path = resources.files("rag").joinpath("models").joinpath("abstain.json")
        data = json.loads(path.read_text())
        if len(data["weights"]) != N_FEATURES:
            raise ConfigError(f"rag/models/abstain.json has {len(data['weights'])} weights for "
                              f"{N_FEATURES} features; re-fit it with `make calibrate`")
        return cls(Logistic(tuple(data["weights"]), data["bias"]), data["threshold"])

    def confidence(self, *features: float) -> float:
        """P(answerable) in [0, 1]."""
        return self.model.one(features)


class Scope(Protocol):
    """What a caller may read (an API key's grant): a row mask per generation, applied
    exactly where a ``files`` filter is."""

    def mask(self, gen: Generation) -> np.ndarray:
        """One bool per chunk row of the generation."""
        ...

    def chunks(self, gen: Generation) -> int:
        """How many rows the mask permits."""
        ...


QueryCache = LRU  # question -> unit vector
N_FEATURES = 4  # answer_features(): top dense, highlight cosine, lexical coverage, type match


@dataclass(frozen=True)
class Filters:
    """Which files a question may be answered from (None: any): path globs, an inclusive
    range of UTC days (a file without a date is left out by either bound), formats."""

    files: tuple[str, ...] | None = None
    date_from: date | None = None
    date_to: date | None = None
    formats: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ConfigError(f"date_from={self.date_from} is after date_to={self.date_to}; "
                              "give date_from <= date_to (both inclusive)")
        bad = [f for f in self.formats or () if f not in FILTER_FORMATS]
        if bad:
            raise ConfigError(f"formats {bad} are not known; use any of "
                              f"{', '.join(FILTER_FORMATS)}")

    @property
    def empty(self) -> bool:
        """True when nothing is filtered."""
        return not (self.files or self.date_from or self.date_to or self.formats)


def row_mask(gen: Generation, filters: Filters | None) -> np.ndarray | None:
    """Row mask of the chunks whose file passes every filter (None: no filter). Computed per
    file, then spread over rows: the same mask path for globs, dates and formats."""
    if filters is None or filters.empty:
        return None
    keep = np.ones(len(gen.files), dtype=bool)
    if filters.files:
        keep &= gen.files_matching(filters.files)
    if filters.date_from or filters.date_to:
        days = gen.file_days()
        if filters.date_from:
            keep &= days >= (filters.date_from - EPOCH).days
        if filters.date_to:
            keep &= (days <= (filters.date_to - EPOCH).days) & (days != NO_DAY)
    if filters.formats:
        codes = [FILTER_FORMATS.index(f) for f in filters.formats]
        keep &= np.isin(gen.file_formats(), np.asarray(codes, dtype=np.int8))
    return gen.rows_of_files(keep)


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


@dataclass
class QueryState:
    """What one question computes once and its passages share."""

    qv: np.ndarray
    weights: dict[str, float]  # the question's known terms and idf
    sims: dict[int, float]  # sentence id -> similarity, for the dense candidates


# Questions whose answer is a quantity or a date, and text that holds one.
_WANTS_NUMBER = re.compile(
    r"\b(how (many|much|long|far|big|large|old|often)|what (share|percentage|proportion|"
    r"number|amount|year|date)|when|which year|in what year)\b", re.I)
_HAS_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|hundred|"
    r"thousand|million|billion|trillion|half|third|quarter|dozen|percent)\b", re.I)


def type_match(question: str, sentences: Sequence[str]) -> float:
    """1.0 unless the question asks for a quantity or date and no sentence holds a number."""
    if not _WANTS_NUMBER.search(question):
        return 1.0
    return 1.0 if any(_HAS_NUMBER.search(s) for s in sentences) else 0.0


def answer_features(dense_hits: list[Hit], evidence: list[tuple[float, float]],
                    match: float = 1.0) -> tuple[float, float, float, float]:
    """(top dense score, best highlight similarity, best highlight lexical coverage,
    answer-type match of the top highlights)."""
    top = dense_hits[0].score if dense_hits else 0.0
    sim = max((e[0] for e in evidence[:3]), default=0.0)
    cov = max((e[1] for e in evidence[:3]), default=0.0)
    return top, sim, cov, match


def check_reader_setting(s: Settings) -> None:
    """ConfigError when RAG_READER_QUANTIZED=0 asks for a float32 reader its card does not ship."""
    if s.reader_quantized:
        return
    from .reader.runtime import CARD, bundled_dir

    card = (s.reader_dir or bundled_dir()) / CARD
    if not card.is_file():
        return  # the Reader says what is missing, and how to get one
    files = json.loads(card.read_text()).get("files", {})
    if "fp32" not in files:
        raise ConfigError(
            f"RAG_READER_QUANTIZED=0 asks for the reader's float32 model, but {card} lists only "
            f"{', '.join(sorted(files)) or 'no file'}: unset RAG_READER_QUANTIZED (int8 is the "
            "default and measured the same figures) or set RAG_READER_DIR to a reader that "
            "ships an fp32 file")


class Searcher:
    """Answers questions from the current index generation; follows re-indexes."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None,
                 abstainer: Abstainer | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self._embedder_lock = threading.Lock()
        self.abstainer = abstainer or Abstainer.bundled()
        self.cache: LRU[str, np.ndarray] = LRU(settings.query_cache_size)
        self._gen: Generation | None = None
        self._reload_lock = threading.Lock()
        self._retired: list[Generation] = []  # replaced, closed once no question uses them
        self.retire_grace_s = RETIRE_GRACE_S
        self._batcher: Callable[[str], np.ndarray] | None = None
        self._reader: Reader | None = None
        self._reader_lock = threading.Lock()  # loading the reader never waits on the model
        # Sentence spans and stemmed tokens of passages: document-side work, done once a
        # passage per generation (bounded), not once a question.
        self._prepared: LRU[tuple[str, int, int, int],
                            tuple[list[Span], list[frozenset[str]]]] = LRU(PREPARED_PASSAGES)
        if settings.faiss_query_threads:
            import faiss

            faiss.omp_set_num_threads(settings.faiss_query_threads)
        if settings.blas_query_threads:
            from threadpoolctl import threadpool_limits

            # every BLAS loaded now (numpy's, FAISS's), for the whole process
            threadpool_limits(settings.blas_query_threads, user_api="blas")

    # -- model and generation ------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        """The model, loaded on first use and shared."""
        if self._embedder is None:
            with self._embedder_lock:
                if self._embedder is None:
                    self._embedder = load_embedder(self.settings)
        return self._embedder

    @property
    def _encode_one(self) -> Callable[[str], np.ndarray]:
        """Concurrent questions share a forward pass, unless the model's vectors would
        then depend on their batch mates (int8 questions: one at a time)."""
        if self._batcher is None:
            with self._embedder_lock:
                if self._batcher is None:
                    e = self.embedder
                    self._batcher = (MicroBatcher(e.embed) if getattr(e, "query_batching", True)
                                     else e.embed_query)
        return self._batcher

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
            gen = self._check(load_generation(  # segments it shares with ours: reused
                self.settings.index_dir, name, self.settings.hnsw_ef_search,
                self._gen.segments_by_name() if self._gen is not None else None))
            old, self._gen = self._gen, gen
            if old is not None:
                old.retired_at = time.monotonic()
                self._retired.append(old)
        log.info("now serving generation %s (was %s)", gen.name, old.name if old else None)
        self.close_retired()
        return True

    def close_retired(self) -> int:
        """Close the replaced generations no question uses any more (and that were replaced
        at least retire_grace_s ago: a documents request may have just picked one up); their
        segments not shared with the new generation go with them. Returns how many."""
        now = time.monotonic()
        with self._reload_lock:
            done = [g for g in self._retired if not g.in_use
                    and now - (g.retired_at or now) >= self.retire_grace_s]
            self._retired = [g for g in self._retired if g not in done]
        for g in done:
            g.close()
        return len(done)

    # -- the pipeline --------------------------------------------------------

    def embed_query(self, question: str, spin: bool = True) -> np.ndarray:
        """The question's unit vector, through the LRU cache. ``spin=False`` when the reader
        reads next: the embedding model's threads then sleep as soon as they are done
        instead of spinning on the cores the reader needs."""
        v = self.cache.get(question)
        if v is None:
            e = self.embedder
            if spin or getattr(e, "query_batching", True):
                v = self._encode_one(question)
            else:
                v = e.embed_query(question, spin=False)
            self.cache.put(question, v)
        return v

    @property
    def reader(self) -> Reader:
        """The reader model, loaded on first use and shared (ONNX Runtime sessions are safe
        to run from many threads)."""
        if self._reader is None:
            with self._reader_lock:
                if self._reader is None:
                    from .reader.runtime import Reader

                    s = self.settings
                    check_reader_setting(s)
                    self._reader = Reader(s.reader_dir, s.reader_quantized, s.reader_threads)
        return self._reader

    @property
    def reader_fingerprint(self) -> str | None:
        """The reader's fingerprint once it is loaded (None before, or if it cannot load)."""
        return self._reader.fingerprint if self._reader is not None else None

    def ask(self, question: str, top_k: int | None = None, mode: Mode = "hybrid",
            files: Sequence[str] | None = None, read: bool | None = None,
            filters: Filters | None = None, scope: Scope | None = None) -> Answer:
        """Ranked, cited passages for a question, from one generation. ``read``: let the
        reader reorder the top passages and judge the answer (None: the settings' default);
        ``filters``: dates and formats (and globs) applied inside retrieval, like ``files``;
        ``scope``: what the caller may read; retrieval, the reader and the counts see only
        that, as if ``files`` named exactly the permitted files."""
        return self.ask_with_features(question, top_k, mode, files, read, filters, scope)[0]

    def ask_with_features(self, question: str, top_k: int | None = None, mode: Mode = "hybrid",
                          files: Sequence[str] | None = None, read: bool | None = None,
                          filters: Filters | None = None, scope: Scope | None = None
                          ) -> tuple[Answer, tuple[float, ...]]:
        """The answer and the abstention features it was judged on (for calibration)."""
        gen = self.generation.acquire()  # one generation for the whole answer
        try:
            return self._ask(gen, question, top_k, mode, files, read, filters, scope)
        finally:
            gen.release()

    def _ask(self, gen: Generation, question: str, top_k: int | None, mode: Mode,
             files: Sequence[str] | None, read: bool | None, filters: Filters | None,
             scope: Scope | None = None) -> tuple[Answer, tuple[float, ...]]:
        t0 = time.perf_counter()
        question = question.strip()
        top_k = top_k or self.settings.top_k
        if mode not in MODES:
            raise ConfigError(f"mode={mode!r} is not one of {', '.join(MODES)}")
        if not question:
            raise ConfigError("the question is empty; ask something")
        reading = self.settings.read if read is None else read
        qv = self.embed_query(question, spin=not reading)
        # the reader may read past the passages shown (and bring one of them up)
        shown = top_k
        if reading:
            top_k = max(top_k, self.settings.reader_candidates + self.reader.read_more)
        t1 = time.perf_counter()

        if files:
            filters = replace(filters or Filters(), files=tuple(files))
        allowed = row_mask(gen, filters)
        if scope is not None:  # a grant narrows exactly where the files filter does
            granted = scope.mask(gen)
            allowed = granted if allowed is None else allowed & granted
        n = max(self.settings.candidates, top_k * 3)
        lexq = gen.lexical.gather(question)  # the question's postings, read once
        state = QueryState(qv, lexq.weights, {})
        dense_hits = self.dense_hits(gen, qv, n, allowed, state.sims)
        lex_hits = gen.lexical.search(lexq, n, allowed)
        ranked = self.fuse(mode, dense_hits, lex_hits)
        want = [r for r, _ in ranked[: top_k * 4]]
        chunks = dict(zip(want, gen.chunks(want)))
        chosen = select_passages([(r, s) for r, s in ranked if r in chunks], chunks, top_k)
        t2 = time.perf_counter()

        dense_at = {h.row: h for h in dense_hits}
        lex_at = {h.row: h for h in lex_hits}
        passages = []
        evidence = []  # (sentence similarity, lexical coverage) of each highlight
        for rank, (row, score, c) in enumerate(chosen, 1):
            d, x = dense_at.get(row), lex_at.get(row)
            span, sim, cov = self.highlight(state, row, c, gen)
            evidence.append((sim, cov))
            passages.append(gen.place(Passage(
                rank, round(float(score), 6), c.file, c.start, c.end, c.line_start,
                c.line_end, c.text, gen.file_by_path[c.file].sha256, span,
                RetrieverScore(d.rank, round(d.score, 6)) if d else None,
                RetrieverScore(x.rank, round(x.score, 6)) if x else None)))
        match = type_match(question, [p.highlight.text for p in passages[:3] if p.highlight])
        feats = answer_features(dense_hits, evidence, match)
        confidence = self.abstainer.confidence(*feats) if passages else 0.0
        answerable = confidence >= self.abstainer.threshold
        t3 = time.perf_counter()
        reader = None
        if reading and passages:
            reader = self.reader
            n = min(len(passages), self.settings.reader_candidates)

            def centres(lo: int, hi: int) -> list[tuple[int, int]]:
                return [self.reader_centre(state, row, c, gen) for row, _, c in chosen[lo:hi]]

            passages, confidence = self.read(reader, gen, question, passages, centres, n,
                                             feats)
            answerable = confidence >= reader.threshold
        passages = passages[:shown]
        t4 = time.perf_counter()
        m = gen.manifest
        timings = {"embed": round((t1 - t0) * 1000, 3), "search": round((t2 - t1) * 1000, 3),
                   "highlight": round((t3 - t2) * 1000, 3)}
        if reader is not None:
            timings["read"] = round((t4 - t3) * 1000, 3)
        timings["total"] = round((t4 - t0) * 1000, 3)
        answer = Answer(
            question, mode, passages, answerable, round(confidence, 4),
            IndexInfo(gen.name, m["built_at"], m["model"]["name"],
                      gen.size if scope is None else scope.chunks(gen),
                      reader.fingerprint if reader is not None else None), timings)
        return answer, feats

    def read(self, reader: Reader, gen: Generation, question: str, passages: list[Passage],
             centres: Callable[[int, int], list[tuple[int, int]]], n: int,
             features: tuple[float, ...]) -> tuple[list[Passage], float]:
        """The reader over the top ``n`` passages, each read around its centre (passage
        offsets, ``centres(lo, hi)`` for passages lo..hi, computed only for what is read),
        and over the next ``reader.read_more`` when none of those reads like an
        answer (the card's ``read_more_below``): reordered, each with its probability and
        its answer span (placed in a converted original like any span), the unread tail
        after them; P(answerable)."""
        from .reader.runtime import rerank

        def read(lo: int, hi: int) -> list[Reading]:
            return reader.read(question, list(zip((p.text for p in passages[lo:hi]),
                                                  centres(lo, hi))))

        readings = read(0, n)
        if reader.wants_more(readings) and len(passages) > n:
            readings += read(n, n + reader.read_more)
        out = rerank(passages, readings, reader.fusion_weight, reader.answer_threshold)
        return ([replace(p, answer=gen.place_span(p.file, p.answer)) if p.answer else p
                 for p in out], reader.confidence(readings, features))

    def dense_hits(self, gen: Generation, qv: np.ndarray, n: int, allowed: np.ndarray | None,
                   sims_out: dict[int, float] | None = None) -> list[Hit]:
        """Chunks by dense similarity: the chunk's vector, its best sentence, or both.

        The sentence similarities computed on the way are added to ``sims_out``."""
        how = self.settings.dense_granularity
        # few permitted rows of an HNSW index: score them all (README, "Security")
        exact = bool(allowed is not None and gen.approximate
                     and np.count_nonzero(allowed) <= self.settings.exact_rows)
        cand = gen.sentence_candidates(qv, n, allowed, exact) if how != "chunk" else None
        if cand is None:
            return gen.dense_hits(qv, n, allowed, exact)
        if sims_out is not None:
            sims_out.update(cand.known_sims())
        score = (cand.best_sentence if how == "sentence"
                 else 0.5 * (cand.chunk_sims + cand.best_sentence))
        order = np.lexsort((cand.rows, -score))[:n]
        return [Hit(r, s, i + 1) for i, (r, s) in
                enumerate(zip(cand.rows[order].tolist(), score[order].tolist()))]

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

    def highlight(self, state: QueryState, row: int, chunk: Chunk, gen: Generation
                  ) -> tuple[Span | None, float, float]:
        """The best sentence of a passage, with its dense similarity and lexical coverage."""
        spans, token_sets = self.prepared(gen, row, chunk)
        if not spans:
            return None, 0.0, 0.0
        lex = coverage(state.weights, token_sets)
        dense = np.zeros(len(spans), dtype=np.float32)
        if gen.has_sentences:
            at = gen.sentence_similarities(row, state.qv, state.sims)
            dense = np.array([at.get((sp.start, sp.end), 0.0) for sp in spans], np.float32)
        w = self.settings.highlight_dense_weight if gen.has_sentences else 0.0
        score = (1 - w) * lex + w * dense
        i = int(np.argmax(score))
        return spans[i], float(dense[i]), float(lex[i])

    def reader_centre(self, state: QueryState, row: int, chunk: Chunk, gen: Generation
                      ) -> tuple[int, int]:
        """Where the reader reads a passage (``windows.centre_of``, as in training), from
        the memoised sentences (passage offsets)."""
        spans, token_sets = self.prepared(gen, row, chunk)
        return centre_of([(sp.start - chunk.start, sp.end - chunk.start) for sp in spans],
                         token_sets, state.weights)

    def prepared(self, gen: Generation, row: int, chunk: Chunk
                 ) -> tuple[list[Span], list[frozenset[str]]]:
        """A passage's sentence spans and their stemmed tokens, memoised (bounded LRU)."""
        key = (gen.name, row, chunk.start, chunk.end)
        got = self._prepared.get(key)
        if got is None:
            spans = sentence_spans(chunk.text, chunk.start, chunk.line_start)
            got = (spans, [frozenset(tokenize(sp.text)) for sp in spans])
            self._prepared.put(key, got)
        return got


def follow_generations(searcher: Searcher, interval_s: float,
                       on_switch: Callable[[], None] | None = None,
                       on_failure: Callable[[], None] | None = None) -> threading.Event:
    """Switch `searcher` to each new valid generation, checking CURRENT every `interval_s` in a
    daemon thread, and close the replaced ones once unused; set the returned event to stop.
    A generation that fails to load is logged and the old one keeps serving."""
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(interval_s):
            try:
                if searcher.reload_if_changed() and on_switch is not None:
                    on_switch()
            except RagError as e:
                log.error("not switching generation: %s", e)
                if on_failure is not None:
                    on_failure()
            except Exception:  # keep serving the old generation whatever happens
                log.exception("generation reload failed")
                if on_failure is not None:
                    on_failure()
            try:
                searcher.close_retired()
            except Exception:
                log.exception("closing a replaced generation failed")

    threading.Thread(target=watch, name="generation-watcher", daemon=True).start()
    return stop
