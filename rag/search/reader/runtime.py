"""The reader at query time: the bundled ONNX model (int8) over a few short windows.

``Reader.read(question, passages)`` reads each passage around its centre sentence and gives
the calibrated probability that the window holds the answer, and the best answer span in
passage offsets. Safe to call from many threads at once (two ONNX Runtime sessions over one
file: spinning threads for a lone read, sleeping ones when reads overlap).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np

from ...digest import file_digest
from ...errors import ConfigError
from ...lru import LRU
from ...types import AnswerSpan, Passage
from . import windows as W
from .calibration import Logistic, Platt

MAX_ANSWER_TOKENS = 30
CARD = "card.json"
ENCODED_PASSAGES = 8192  # memoised passage tokenisations (~4 KB each): document-side work


@dataclass(frozen=True)
class Reading:
    """What the reader made of one passage."""

    logit: float  # the head's score (see ``score_of``): what orders passages and is calibrated
    probability: float  # calibrated P(the window holds the answer)
    answer: tuple[int, int] | None  # passage offsets of the best span (None: empty window)
    answer_score: float  # that span's probability (start x end)
    window: tuple[int, int]  # passage offsets of what was read
    relevance: float = 0.0  # the relevance head's logit
    null: float = 0.0  # best span's start+end logits minus [CLS]'s (SQuAD 2.0's null score)


HEADS = ("relevance", "null", "both")


def score_of(head: str, relevance: float, null: float) -> float:
    """A reading's score by the chosen head (pure): the relevance logit, the span head's
    null-score margin, or their sum."""
    if head == "relevance":
        return relevance
    if head == "null":
        return null
    if head == "both":
        return relevance + null
    raise ValueError(f"head={head!r} is not one of {', '.join(HEADS)}")


def unsure(logits: list[float], more: int, below: float) -> bool:
    """The card's rule for reading further (pure): ``more`` passages are read after the
    first when the best of their logits is below ``below``."""
    return more > 0 and bool(logits) and max(logits) < below


def bundled_dir() -> Path:
    return Path(str(resources.files("rag").joinpath("models").joinpath("reader")))


def log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max()
    return x - m - np.log(np.exp(x - m).sum())


def best_span(start: np.ndarray, end: np.ndarray, lo: int, hi: int, max_len: int
              ) -> tuple[int, int, float, float]:
    """Token positions ``i <= j < i + max_len`` in ``[lo, hi)`` maximising start[i] + end[j],
    that span's probability (softmax over [CLS] and the window's tokens, start x end) and its
    margin over [CLS] in logits (the null score; pure). (0, 0, 0.0, -20.0) for an empty
    window."""
    if hi <= lo:
        return 0, 0, 0.0, -20.0
    allowed = np.r_[0, np.arange(lo, hi)]
    lsa, lea = log_softmax(start[allowed]), log_softmax(end[allowed])
    ls, le = lsa[1:], lea[1:]
    n = hi - lo
    i, j = np.indices((n, n))
    grid = np.where((j >= i) & (j - i < max_len), ls[:, None] + le[None, :], -np.inf)
    k = int(np.argmax(grid))
    bi, bj = divmod(k, n)
    best = float(grid[bi, bj])
    return lo + bi, lo + bj, float(np.exp(best)), best - float(lsa[0] + lea[0])


def calibration_digest(calibration: dict[str, object]) -> str:
    """Eight hex digits of the card's calibration, key order aside (pure)."""
    return hashlib.sha256(json.dumps(calibration, sort_keys=True).encode()).hexdigest()[:8]


class Reader:
    """The ONNX reader with its calibration and operating threshold (from its card)."""

    def __init__(self, folder: Path | None = None, quantized: bool = True, threads: int = 0
                 ) -> None:
        import onnxruntime as ort

        folder = folder or bundled_dir()
        card_path = folder / CARD
        if not card_path.is_file():
            raise ConfigError(f"no reader model in {folder} (missing {CARD}); train one with "
                              "`rag train-reader`, or ask with read off (--no-read / \"read\": false)")
        self.card = json.loads(card_path.read_text())
        self.file = folder / self.card["files"]["int8" if quantized else "fp32"]
        digest = file_digest(self.file)
        if digest != self.card["sha256"][self.file.name]:
            raise ConfigError(f"{self.file} does not match its card's sha256; the model file is "
                              "damaged: restore it from git (git checkout rag/models/reader)")
        # Pairs as long as in training (cards before ``max_len`` were trained on 96 tokens).
        self.max_len = int(self.card.get("max_len", W.MAX_LEN))
        if not 8 <= self.max_len <= 512:
            raise ConfigError(f"{card_path}: max_len {self.max_len} is outside 8-512 (MiniLM "
                              "reads at most 512 tokens); fix or retrain the card")
        cal = self.card["calibration"]
        # The weights and the calibration both decide what a reading says: a recalibrated
        # card over the same ONNX file is a different reader.
        self.fingerprint = f"{self.card['name']}@{digest[:16]}+{calibration_digest(cal)}"
        self.platt = Platt(cal["a"], cal["b"])  # P(this window holds the answer)
        self.answer_threshold: float = cal["answer_threshold"]  # on the span's probability
        self.fusion_weight: float = cal["fusion_weight"]
        self.head: str = cal.get("head", "relevance")  # which score ranks and is calibrated
        score_of(self.head, 0.0, 0.0)  # an unknown head in a card fails here, at load
        ab = cal.get("abstain")  # P(answerable) from the best logit + the fast path's features
        self.abstain = Logistic(tuple(ab["weights"]), ab["bias"]) if ab else None
        self.threshold: float = cal["threshold"]
        # Read this many more passages when the best of the first reads scores below
        # ``read_more_below`` (the head's units): chosen on the selection split, where the
        # unsure questions gain most from reading further (0: never).
        self.read_more: int = int(cal.get("read_more", 0))
        self.read_more_below: float = float(cal.get("read_more_below", float("-inf")))

        def session(spinning: bool):  # type: ignore[no-untyped-def]
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.add_session_config_entry("session.intra_op.allow_spinning",
                                          "1" if spinning else "0")
            return ort.InferenceSession(str(self.file), opts, providers=["CPUExecutionProvider"])

        # Two sessions over the same file, as the embedding model has: a read with no other
        # in flight runs on threads that spin between the graph's steps (6 layers x 4
        # windows: ~15.5 ms instead of ~19); concurrent reads run on threads that sleep,
        # leaving the cores to the request threads. Same weights, same logits (tested).
        self._session = session(spinning=False)
        self._alone = session(spinning=True)
        self._in_flight = 0
        self._count = threading.Lock()
        # A passage is tokenised once, not once a question (the same passages come back).
        self._encoded: LRU[str, W.Encoded] = LRU(ENCODED_PASSAGES)

    def encode(self, texts: list[str]) -> list[W.Encoded]:
        """Each passage's tokens and offsets, memoised."""
        got = [self._encoded.get(t) for t in texts]
        missing = [t for t, g in zip(texts, got) if g is None]
        if missing:
            fresh = dict(zip(missing, W.encode(missing)))
            for t, e in fresh.items():
                self._encoded.put(t, e)
            got = [g if g is not None else fresh[t] for t, g in zip(texts, got)]
        return got  # type: ignore[return-value]

    def confidence(self, readings: list[Reading], features: tuple[float, ...]) -> float:
        """P(the corpus answers): the answerability model over the best reading's logit and
        the fast path's answer features (``search.answer_features``), calibrated on held-out
        training articles; without one, the best window's probability."""
        if not readings:
            return 0.0
        best = max(r.logit for r in readings)
        if self.abstain is None:
            return float(self.platt(np.array([best]))[0])
        return float(self.abstain(np.array([best, *features]))[()])

    def wants_more(self, readings: list[Reading]) -> bool:
        """Whether the first readings are unsure enough to read further (the card's rule)."""
        return unsure([r.logit for r in readings], self.read_more, self.read_more_below)

    def logits(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw relevance, start and end logits for a padded batch."""
        with self._count:
            alone = self._in_flight == 0
            self._in_flight += 1
        try:
            run = (self._alone if alone else self._session).run
            rel, s, e = run(None, {"input_ids": ids, "attention_mask": mask,
                                   "token_type_ids": types})
        finally:
            with self._count:
                self._in_flight -= 1
        return rel, s, e

    def read(self, question: str, passages: list[tuple[str, tuple[int, int]]]
             ) -> list[Reading]:
        """Read each (passage text, centre span in passage offsets)."""
        if not passages:
            return []
        q = W.question_ids(question)
        encs = self.encode([t for t, _ in passages])
        wins = [W.window_around(enc, c[0], c[1], W.budget_for(q, self.max_len))
                for enc, (_, c) in zip(encs, passages)]
        pairs = [W.pair(q, enc, w) for enc, w in zip(encs, wins)]
        ids, mask, types = W.batch(pairs, [len(q)] * len(pairs))
        rel, s, e = self.logits(ids, mask, types)
        off = len(q) + 2
        spans, scores = [], []
        for k, w in enumerate(wins):
            span = best_span(s[k], e[k], off, off + (w.b - w.a), MAX_ANSWER_TOKENS)
            spans.append(span)
            scores.append(score_of(self.head, float(rel[k]), span[3]))
        probs = self.platt(np.array(scores))  # one call for the batch
        out = []
        for k, (enc, w, (i, j, p, null)) in enumerate(zip(encs, wins, spans)):
            ans = None
            if w.b > w.a:
                ans = (int(enc.starts[w.a + i - off]), int(enc.ends[w.a + j - off]))
            out.append(Reading(scores[k], float(probs[k]), ans, round(p, 4), (w.start, w.end),
                               float(rel[k]), null))
        return out


def order(logits: list[float], fused: list[float], fusion_weight: float) -> list[int]:
    """Indices of read passages, best first: reader logit + weight x fused score (pure;
    ties keep the retrieval order)."""
    keys = [lg + fusion_weight * f for lg, f in zip(logits, fused)]
    return sorted(range(len(keys)), key=lambda i: (-keys[i], i))


def answer_span(p: Passage, r: Reading) -> AnswerSpan | None:
    """The reading's answer as an exact file span of the passage."""
    if r.answer is None:
        return None
    a, b = r.answer
    ls = p.line_start + p.text.count("\n", 0, a)
    return AnswerSpan(p.start + a, p.start + b, ls, ls + p.text.count("\n", a, b),
                      p.text[a:b], score=r.answer_score)


def rerank(passages: list[Passage], readings: list[Reading], fusion_weight: float,
           threshold: float) -> list[Passage]:
    """Read passages reordered (the unread tail keeps its order), each with its probability
    and, when the span head is sure enough (its span's probability >= threshold), its
    answer (pure)."""
    n = len(readings)
    idx = order([r.logit for r in readings], [p.score for p in passages[:n]], fusion_weight)
    read = [replace(passages[i], read=round(readings[i].probability, 4),
                    answer=answer_span(passages[i], readings[i])
                    if readings[i].answer_score >= threshold else None) for i in idx]
    return [replace(p, rank=k) for k, p in enumerate(read + passages[n:], 1)]
