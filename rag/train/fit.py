"""Calibrate the reader and choose its operating point on SQuAD training articles held out
from training (``pairs.split_articles``), through the real query pipeline.

The held-out articles become a corpus (`rag convert-squad`), indexed with the real
embedding model; every question is asked on the fast path (hybrid, top 10), the reader reads
the top passages around their highlights (how many, and whether the least sure questions
read further, is chosen here: ``selection``), and from those readings:

- Platt scaling of the relevance logit against "the window read holds the gold answer";
- the fusion weight (reader logit + w x fused score) with the best MRR, from a fixed grid;
- the answerability model: a logistic regression of "the corpus answers" on the best
  reading's logit and (one of ``ABSTAIN_SETS``) the fast path's answer features
  (``search.answer_features``), and its threshold: the highest whose false-abstain rate
  stays within ``max_false_abstain`` on the original questions and, separately, on the
  reworded ones (``reworded``: questions of these articles phrased away from the text), so
  a question's wording cannot buy its abstention.

The held-out figures in the card are cross-fitted: each half of the questions is judged by
the models fitted on the other half, so they are not in-sample.

No gold set of the project is touched. Pure numpy after the readings are collected.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Settings
from ..evaluation.evaluate import GoldItem, first_hit_rank, load_gold, mrr, recall_at
from ..search.highlight import question_weights
from ..search.reader import windows as W
from ..search.reader.calibration import (CURVE_AT, Logistic, Platt, auc, caught_at,
                                         expected_calibration_error, fit_logistic, fit_platt,
                                         reliability, threshold_for)
from ..search.reader.runtime import HEADS, Reader, order, score_of, unsure
from ..types import Passage
from . import pairs as P
from . import reworded as R

log = logging.getLogger(__name__)

FUSION_GRID = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class Read:
    """One question's fast-path passages and the reader's logits for the top ones."""

    item: GoldItem
    passages: list[Passage]
    features: tuple[float, ...]  # the fast path's answer features
    logits: np.ndarray  # [read]
    window_holds: np.ndarray  # [read] bool: the window read holds a gold answer span
    answer_scores: np.ndarray  # [read] the span head's probability for its best span
    answer_hits: np.ndarray  # [read] bool: that span overlaps a gold answer span
    relevance: np.ndarray  # [read] the relevance head's logits
    null: np.ndarray  # [read] the span head's null-score margins


def variant(r: Read, head: str, k: int) -> Read:
    """The same readings scored by ``head``, the top ``k`` read only (pure)."""
    logits = np.array([score_of(head, a, b) for a, b in zip(r.relevance[:k], r.null[:k])])
    return replace(r, logits=logits, window_holds=r.window_holds[:k],
                   answer_scores=r.answer_scores[:k], answer_hits=r.answer_hits[:k],
                   relevance=r.relevance[:k], null=r.null[:k])


def read_further(r: Read, head: str, first: int, more: int, below: float) -> Read:
    """The readings the service makes (``Searcher.read``): the first ``first`` passages, and
    ``more`` after them when the best of the first scores below ``below`` (pure)."""
    short = variant(r, head, first)
    return variant(r, head, first + more) if unsure(short.logits.tolist(), more, below) else short


def unsure_cut(reads: list[Read], head: str, first: int, share: float) -> float:
    """The score below which the best of the first ``first`` readings falls for ``share``
    of the questions: they read further (pure; -inf for share 0)."""
    if share <= 0:
        return float("-inf")
    best = [float(variant(r, head, first).logits.max()) for r in reads if len(r.logits)]
    return float(np.quantile(best, share)) if best else float("-inf")


OFF_CORPUS = 600  # questions of training articles asked against the held-out corpus
OFF = "off:"  # their id prefix


def calibration_corpus(data: Path, seed: int, work: Path, articles: int = 0,
                       reworded: Mapping[str, str] | None = None, off_corpus: int = OFF_CORPUS
                       ) -> tuple[Path, int]:
    """Write the held-out articles as WORK/corpus + WORK/gold.jsonl (their questions, then
    any rewordings of them, then ``off_corpus`` questions of the training articles, which
    the held-out corpus cannot answer: the off-topic question a service mostly meets, which
    SQuAD's unanswerable ones, written against their own paragraph, are not); the gold path
    and how many articles."""
    from ..text.squad import convert_squad

    train, held = P.split_articles(P.load_squad(data), seed)
    if articles:
        held = held[:articles]
    held = R.add(held, reworded or {})
    work.mkdir(parents=True, exist_ok=True)
    src = work / "held-out.json"
    src.write_text(json.dumps({"version": "v2.0", "data": held}))
    convert_squad(src, work)
    qs = [(str(qa["id"]), qa["question"]) for a in train for p in a["paragraphs"]
          for qa in p["qas"]]
    off = random.Random(seed).sample(qs, min(off_corpus, len(qs)))
    with (work / "gold.jsonl").open("a", encoding="utf-8") as f:
        for i, q in off:
            f.write(json.dumps({"id": OFF + i, "question": q, "answerable": False,
                                "answer": None, "evidence": []}, ensure_ascii=False) + "\n")
    return work / "gold.jsonl", len(held)


def index_corpus(work: Path) -> Settings:
    """Index WORK/corpus into WORK/index with the default settings (reader off)."""
    from ..indexing.build import build_index
    from ..indexing.store import index_lock

    s = Settings(corpus_dir=work / "corpus", index_dir=work / "index", read=False)
    with index_lock(s.index_dir):
        build_index(s)
    return s


Asked = tuple[GoldItem, list[Passage], tuple[float, ...], dict[str, float]]


def fast_path(settings: Settings, items: list[GoldItem], top_k: int = 10) -> list[Asked]:
    """Each question's hybrid passages, answer features and idf weights, without the reader."""
    from ..search.searcher import Searcher

    searcher = Searcher(settings)
    idf = searcher.generation.lexical.idf
    out = []
    for it in items:
        a, feats = searcher.ask_with_features(it.question, top_k, "hybrid", read=False)
        out.append((it, a.passages, tuple(float(f) for f in feats),
                    question_weights(it.question.strip(), idf)))
    return out


def read_all(reader: Reader, asked: list[Asked], candidates: int) -> list[Read]:
    out = []
    for it, ps, feats, weights in asked:
        top = ps[:candidates]
        rs = reader.read(it.question, [(p.text, W.centre(p.text, weights)) for p in top])
        holds = np.array([any(ev.file == p.file and p.start + r.window[0] <= ev.start
                              and ev.end <= p.start + r.window[1] for ev in it.evidence)
                          for p, r in zip(top, rs)], dtype=bool)
        hits = np.array([r.answer is not None and any(
            ev.file == p.file and p.start + r.answer[0] < ev.end and ev.start < p.start + r.answer[1]
            for ev in it.evidence) for p, r in zip(top, rs)], dtype=bool)
        out.append(Read(it, ps, feats, np.array([r.logit for r in rs]), holds,
                        np.array([r.answer_score for r in rs]), hits,
                        np.array([r.relevance for r in rs]), np.array([r.null for r in rs])))
    return out


def ranks_with(reads: list[Read], weight: float | None) -> list[int | None]:
    """First-hit ranks of answerable questions, reordered by the reader (None: not read)."""
    out = []
    for r in reads:
        if not r.item.answerable:
            continue
        ps = r.passages
        if weight is not None:
            n = len(r.logits)
            idx = order(r.logits.tolist(), [p.score for p in ps[:n]], weight)
            ps = [ps[i] for i in idx] + ps[n:]
        out.append(first_hit_rank([(p.file, p.start, p.end) for p in ps], r.item.evidence))
    return out


ABSTAIN_FEATURES = ("best reader logit", "top dense score", "highlight similarity",
                    "highlight lexical coverage", "answer-type match")
# Which of them the answerability model may use (the others get weight 0), chosen on the
# selection split: the fast path's features measure word overlap, which rewording removes.
ABSTAIN_SETS = {"reader + fast features": (0, 1, 2, 3, 4), "reader only": (0,)}


def answer_rows(reads: list[Read]) -> np.ndarray:
    """The answerability model's inputs, one row per question (pure)."""
    return np.array([[float(r.logits.max()) if len(r.logits) else -20.0, *r.features]
                     for r in reads])


def fit_answerability(rows: np.ndarray, answerable: np.ndarray, columns: tuple[int, ...]
                      ) -> Logistic:
    """The logistic model on ``columns`` of ``rows``, weight 0 on the rest (pure)."""
    if len(set(answerable.tolist())) < 2:
        return Logistic(tuple(0.0 for _ in range(rows.shape[1])), _logit(float(np.mean(answerable))))
    m = fit_logistic(rows[:, list(columns)], answerable)
    w = np.zeros(rows.shape[1])
    w[list(columns)] = m.weights
    return Logistic(tuple(float(v) for v in w), m.bias)


def reworded_mask(reads: list[Read]) -> np.ndarray:
    return np.array([R.is_reworded(r.item.id) for r in reads], dtype=bool)


def off_mask(reads: list[Read]) -> np.ndarray:
    return np.array([r.item.id.startswith(OFF) for r in reads], dtype=bool)


def group_threshold(conf: np.ndarray, answerable: np.ndarray, reworded: np.ndarray,
                    max_false_abstain: float) -> float:
    """The highest threshold whose false-abstain rate stays within the limit on the original
    answerable questions and on the reworded ones, each (pure)."""
    ts = [threshold_for(conf[g], answerable[g], max_false_abstain)
          for g in (~reworded, reworded) if (answerable & g).any()]
    return min(ts) if ts else 0.5


ANSWER_PRECISION = 0.5  # an answer is shown when at least this share of such answers is right


def answer_threshold(scores: np.ndarray, hits: np.ndarray, precision: float) -> float:
    """The lowest span probability above which at least ``precision`` of the answers
    overlap the gold answer (pure; 1.0 when no cut reaches it: no answers shown)."""
    order = np.argsort(-scores, kind="stable")
    prec = np.cumsum(hits[order]) / np.arange(1, len(order) + 1)
    ok = np.nonzero(prec >= precision)[0]
    return float(scores[order][ok[-1]]) if len(ok) else 1.0


def _logit(rate: float) -> float:
    """The log-odds of a rate kept off 0 and 1: the constant model of a one-class split
    (tiny calibration sets; a fit needs both classes)."""
    r = min(max(rate, 1e-3), 1 - 1e-3)
    return float(np.log(r / (1 - r)))


def operating_point(reads: list[Read], max_false_abstain: float,
                    columns: tuple[int, ...] = ABSTAIN_SETS["reader + fast features"]
                    ) -> dict[str, Any]:
    """Platt scaling, fusion weight, answerability model and threshold, answer cut (pure)."""
    logits = np.concatenate([r.logits for r in reads])
    holds = np.concatenate([r.window_holds for r in reads])
    platt = fit_platt(logits, holds) if len(set(holds.tolist())) > 1 else \
        Platt(0.0, _logit(float(np.mean(holds))))
    weight = max(FUSION_GRID, key=lambda w: (mrr(ranks_with(reads, w)), -w))
    answerable = np.array([r.item.answerable for r in reads])
    rows = answer_rows(reads)
    model = fit_answerability(rows, answerable, columns)
    conf = model(rows)
    t = group_threshold(conf, answerable, reworded_mask(reads), max_false_abstain)
    scores = np.concatenate([r.answer_scores for r in reads])
    hits = np.concatenate([r.answer_hits for r in reads])
    cut = answer_threshold(scores, hits, ANSWER_PRECISION)
    return {"platt": platt, "fusion_weight": weight, "abstain": model, "threshold": t,
            "answer_threshold": cut,
            "answer_shown": float((scores >= cut).mean()) if len(scores) else 0.0,
            "answer_precision": float(hits[scores >= cut].mean()) if (scores >= cut).any() else 0.0,
            "confidence": conf, "answerable": answerable, "logits": logits, "holds": holds}


def cross_fitted(reads: list[Read], max_false_abstain: float, columns: tuple[int, ...]
                 ) -> tuple[np.ndarray, list[int | None]]:
    """Each half's confidence, abstain decisions and ranks from the other half's fit: the
    held-out figures (pure; halves alternate by question; ranks of the answerable questions
    in their order in ``reads``)."""
    halves = [reads[0::2], reads[1::2]]
    conf = np.zeros(len(reads))
    abstain = np.zeros(len(reads), dtype=bool)
    by_question: dict[int, int | None] = {}
    for k, (judged, fitted) in enumerate(((halves[0], halves[1]), (halves[1], halves[0]))):
        op = operating_point(fitted, max_false_abstain, columns)
        c = op["abstain"](answer_rows(judged))
        conf[k::2] = c
        abstain[k::2] = c < op["threshold"]
        numbers = [i for i in range(k, len(reads), 2) if reads[i].item.answerable]
        by_question.update(zip(numbers, ranks_with(judged, op["fusion_weight"])))
    return np.stack([conf, abstain]), [by_question[i] for i in sorted(by_question)]


def figures(reads: list[Read], op: dict[str, Any], max_false_abstain: float,
            columns: tuple[int, ...] = ABSTAIN_SETS["reader + fast features"]) -> dict[str, Any]:
    """What the card reports about the held-out articles (fast path vs reader), the reader's
    figures cross-fitted (see the module docstring). Ranks and abstention on answerable
    questions count the original questions only; the reworded ones have their own line, and
    so do the off-corpus ones (``abstain_recall_all``: every unanswerable question, theirs
    included, what the choice weighs)."""
    rw = reworded_mask(reads)
    off = off_mask(reads)
    (conf, abstained), read = cross_fitted(reads, max_false_abstain, columns)
    abstained = abstained.astype(bool)
    ans = op["answerable"]
    answered = rw[ans]  # the reworded flags of the answerable questions, in ``read``'s order

    def ranks(rs: list[int | None], reworded: bool) -> dict[str, float]:
        mine = [k for k, r in zip(rs, answered) if r == reworded]
        return {"recall@1": recall_at(mine, 1), "mrr@10": mrr(mine)}

    def rate(mask: np.ndarray, empty: float | None = 0.0) -> float | None:
        return float(abstained[mask].mean()) if mask.any() else empty

    fast = ranks_with(reads, None)
    pas = reliability(op["platt"](op["logits"]), op["holds"])
    q = reliability(conf, ans)
    return {
        "questions": int((~rw & ~off).sum()), "unanswerable": int((~ans & ~rw & ~off).sum()),
        "fast": ranks(fast, False),
        "reader": {**ranks(read, False), "abstain_recall": rate(~ans & ~rw & ~off),
                   "false_abstain_rate": rate(ans & ~rw), "abstain_recall_all": rate(~ans & ~rw)},
        "off_corpus": {"questions": int(off.sum()), "abstain_recall": rate(off)}
        if off.any() else None,
        "reworded": {"questions": int(rw.sum()), "unanswerable": int((~ans & rw).sum()),
                     "fast": ranks(fast, True),
                     "reader": {**ranks(read, True), "false_abstain_rate": rate(ans & rw),
                                "abstain_recall": rate(~ans & rw, None)}} if rw.any() else None,
        "passage_reliability": [asdict(b) for b in pas],
        "passage_ece": expected_calibration_error(pas),
        "question_reliability": [asdict(b) for b in q],
        "question_ece": expected_calibration_error(q),
        "pair_auc": auc(op["logits"], op["holds"]),
        "trade_off": trade_off(conf, ans, rw, off),
    }


def trade_off(conf: np.ndarray, answerable: np.ndarray, reworded: np.ndarray, off: np.ndarray,
              rates: tuple[float, ...] = CURVE_AT) -> list[dict[str, float | None]]:
    """What one threshold buys and costs (pure): put where each of ``rates`` of the original
    answerable questions falls below it, the share of SQuAD's unanswerable questions and of
    the off-corpus ones caught, and of the reworded answerable ones refused. The question
    for a better reader: how many unanswerable questions it catches before rewordings pay."""
    original = ~reworded & ~off
    if not (answerable & original).any():
        return []
    groups = {"squad_caught": conf[~answerable & original], "off_corpus_caught": conf[off],
              "reworded_false_abstain": conf[answerable & reworded]}
    rows = caught_at(conf[answerable & original], groups, rates)
    return [{"false_abstain": r, **row} for r, row in zip(rates, rows)]


READS = (4, 8)  # passages read per question, compared on the selection split
READ_MORE = 4  # passages read further by the least sure questions (after the first k)
MORE_SHARES = (0.1, 0.2, 0.3)  # shares of the questions that may read further, compared
K_MARGIN = 0.01  # each costlier way of reading must gain this much (MRR + abstain recall)


def depth(ks: tuple[int, ...], further: bool) -> int:
    """How many passages the selection needs read per question."""
    return max(max(ks), min(ks) + READ_MORE) if further else max(ks)


def selection(reads: list[Read], max_false_abstain: float, ks: tuple[int, ...] = READS,
              shares: tuple[float, ...] = ()) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every head x way of reading x answerability feature set on the selection split,
    cross-fitted, and the chosen row. Ways of reading: k passages (each of ``ks``), and the
    smallest k with READ_MORE more for the least sure share of questions (``shares``, e.g.
    MORE_SHARES; none by default: see ``calibrate``).
    Choice: the highest MRR + abstain recall (at the false-abstain limits) per way; a
    costlier way (in order: k, then larger shares reading further, then a larger k) is
    taken only if it beats the one chosen so far by K_MARGIN (pure)."""
    ways = [(min(ks), 0.0), *((min(ks), sh) for sh in shares),
            *((k, 0.0) for k in sorted(ks)[1:])]  # cheapest first
    rows = []
    for head in HEADS:
        for k, share in ways:
            below = unsure_cut(reads, head, k, share)
            more = READ_MORE if share else 0
            rs = [read_further(r, head, k, more, below) for r in reads]
            for name, cols in ABSTAIN_SETS.items():
                f = figures(rs, operating_point(rs, max_false_abstain, cols), max_false_abstain,
                            cols)
                rw = f["reworded"]
                rows.append({"head": head, "k": k, "more_share": share, "read_more": more,
                             "read_more_below": below if more else None,
                             "passages_read_mean": float(np.mean([len(r.logits) for r in rs])),
                             "abstain_features": name,
                             "recall@1": f["reader"]["recall@1"],
                             "mrr@10": f["reader"]["mrr@10"],
                             "abstain_recall": f["reader"]["abstain_recall"],
                             "false_abstain_rate": f["reader"]["false_abstain_rate"],
                             "reworded_false_abstain": rw["reader"]["false_abstain_rate"]
                             if rw else None,
                             "reworded_abstain_recall": rw["reader"]["abstain_recall"]
                             if rw else None,
                             "pair_auc": f["pair_auc"],
                             "off_corpus_abstain": f["off_corpus"]["abstain_recall"]
                             if f["off_corpus"] else None,
                             "criterion": f["reader"]["mrr@10"] + f["reader"]["abstain_recall_all"]})
    best = [max((r for r in rows if (r["k"], r["more_share"]) == w), key=lambda r: r["criterion"])
            for w in ways]
    pick = best[0]
    for row in best[1:]:  # reading more must pay for its latency
        if row["criterion"] >= pick["criterion"] + K_MARGIN:
            pick = row
    return rows, pick


def calibrate(reader_dir: Path, data: Path, seed: int, work: Path, candidates: int,
              max_false_abstain: float, articles: int = 0,
              reworded: Mapping[str, str] | None = None, further: bool = False
              ) -> dict[str, Any]:
    """The calibration block of the card, with held-out figures for int8 and float32.
    The head and the answerability features are chosen on the selection split
    (``selection``), and so is how many passages to read (4 or 8) when ``candidates`` is 0;
    otherwise exactly ``candidates`` are read first. ``further``: also compare reading
    READ_MORE more for the least sure questions (off by default: measured, not a clear win;
    README, "The reader").
    ``reworded``: rewordings of held-out questions."""
    t0 = time.perf_counter()
    gold, n = calibration_corpus(data, seed, work, articles, reworded)
    settings = index_corpus(work)
    asked = fast_path(settings, load_gold(gold))
    out: dict[str, Any] = {"split": f"{n} held-out training article{'s' if n > 1 else ''}",
                           "max_false_abstain": max_false_abstain}
    int8 = Reader(reader_dir, quantized=True, threads=0)
    t8 = time.perf_counter()
    ks = (candidates,) if candidates else READS
    reads8 = read_all(int8, asked, depth(ks, further))
    table, pick = selection(reads8, max_false_abstain, ks, MORE_SHARES if further else ())
    t_read8 = time.perf_counter() - t8
    head, k, feats = pick["head"], pick["k"], pick["abstain_features"]
    more, below = pick["read_more"], pick["read_more_below"]
    cols = ABSTAIN_SETS[feats]
    out.update({"head": head, "candidates": k, "read_more": more, "read_more_below": below,
                "more_share": pick["more_share"], "abstain_features": feats,
                "selection": table})
    cut = -np.inf if below is None else below
    for kind in ("int8", "fp32"):
        if kind == "int8":  # the readings already made, as the service makes them
            reads = [read_further(r, head, k, more, cut) for r in reads8]
            read_s = t_read8 * np.mean([len(r.logits) for r in reads]) / depth(ks, further)
        else:
            t1 = time.perf_counter()
            reads = [read_further(r, head, k, more, cut) for r in
                     read_all(Reader(reader_dir, quantized=False, threads=0), asked, k + more)]
            read_s = time.perf_counter() - t1
        op = operating_point(reads, max_false_abstain, cols)
        f = figures(reads, op, max_false_abstain, cols)
        f["read_ms_mean"] = 1000 * read_s / max(1, len(reads))
        f["answers"] = {"threshold": op["answer_threshold"], "shown": op["answer_shown"],
                        "precision": op["answer_precision"],
                        "hit_rate_all_read": float(np.concatenate(
                            [r.answer_hits for r in reads]).mean())}
        out[kind] = {"a": op["platt"].a, "b": op["platt"].b, "threshold": op["threshold"],
                     "fusion_weight": op["fusion_weight"],
                     "answer_threshold": op["answer_threshold"],
                     "abstain": {"features": list(ABSTAIN_FEATURES),
                                 "weights": list(op["abstain"].weights),
                                 "bias": op["abstain"].bias},
                     "figures": f}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out
