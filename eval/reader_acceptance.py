"""The reader against the fast path on one gold set, in one process over one index: the
figures issue #23's acceptance names (recall@1, MRR@10, abstention, shown answers with their
exact match and token F1, latency), and the abstention curve of each path's confidence
(``abstain_curve``: what any threshold could do here; the shipped threshold is the figure).

    .venv/bin/python eval/reader_acceptance.py GOLD --corpus DIR --index DIR [--k 4 8]
        [--reader DIR] [--json OUT]

Each question is asked twice (``read=False`` then ``read=True``), so both paths see the same
generation; the query-vector cache is off (size 0), so latencies are of questions the
service has not seen (the fast path's embed time included in both). Only
reports: nothing is fitted or chosen here.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import string
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from rag import Searcher, Settings
from rag.evaluation.evaluate import GoldItem, first_hit_rank, load_gold, mrr, recall_at
from rag.search.reader.calibration import CURVE_AT, auc, caught_at


def normalise(s: str) -> list[str]:
    """SQuAD's answer normalisation: lower case, no punctuation or articles, split."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return s.split()


def f1(pred: str, gold: str) -> float:
    """Token F1 between a predicted and a gold answer (SQuAD's)."""
    p, g = normalise(pred), normalise(gold)
    common = collections.Counter(p) & collections.Counter(g)
    same = sum(common.values())
    if not p or not g:
        return float(p == g)
    if same == 0:
        return 0.0
    prec, rec = same / len(p), same / len(g)
    return 2 * prec * rec / (prec + rec)


def abstain_curve(confidence: np.ndarray, answerable: np.ndarray) -> dict[str, Any] | None:
    """What the confidence score could do on this set, whatever the threshold (pure): the
    abstain recall at each false-abstain rate of ``CURVE_AT`` (the threshold put where that
    share of the answerable questions falls below it) and the ranking AUC. Set on the very
    questions it reports, so it is a property of the score, never the operating point."""
    if answerable.all() or not answerable.any():
        return None
    rows = caught_at(confidence[answerable], {"caught": confidence[~answerable]})
    return {"recall_at_false": {f"{r:.2f}": row["caught"] for r, row in zip(CURVE_AT, rows)},
            "auc": auc(confidence, answerable)}


def run(searcher: Searcher, items: list[GoldItem], read: bool) -> dict[str, Any]:
    """One path over every item: ranks, abstentions, answers, latencies."""
    ranks, abstained, answerable, ms, conf = [], [], [], [], []
    further = 0  # questions the reader read past its first passages (unsure ones)
    shown = shown_right = eligible = 0
    ems: list[float] = []
    f1s: list[float] = []
    for it in items:
        t = time.perf_counter()
        a = searcher.ask(it.question, 10, "hybrid", read=read)
        ms.append(1000 * (time.perf_counter() - t))
        further += sum(p.read is not None for p in a.passages) > searcher.settings.reader_candidates
        answerable.append(it.answerable)
        abstained.append(not a.answerable)
        conf.append(a.confidence)
        if not it.answerable:
            continue
        r = first_hit_rank([(p.file, p.start, p.end) for p in a.passages], it.evidence)
        ranks.append(r)
        if r == 1 and read:
            eligible += 1
            ans = a.passages[0].answer
            if ans is not None and it.answer:
                shown += 1
                e = float(normalise(ans.text) == normalise(it.answer))
                f = f1(ans.text, it.answer)
                ems.append(e)
                f1s.append(f)
                shown_right += int(e == 1.0 or f >= 0.5)
    ab, an = np.array(abstained), np.array(answerable)
    out: dict[str, Any] = {
        "questions": len(items), "unanswerable": int((~an).sum()),
        "recall@1": recall_at(ranks, 1), "recall@5": recall_at(ranks, 5), "mrr@10": mrr(ranks),
        "abstain_recall": float(ab[~an].mean()) if (~an).any() else None,
        "false_abstain_rate": float(ab[an].mean()) if an.any() else None,
        "abstain_curve": abstain_curve(np.array(conf), an),
        "ms_p50": float(np.percentile(ms, 50)), "ms_p95": float(np.percentile(ms, 95))}
    if read:
        out["read_further_share"] = further / len(items) if items else None
        out["answers"] = {"eligible": eligible, "shown": shown,
                          "shown_rate": shown / eligible if eligible else None,
                          "right_share": shown_right / shown if shown else None,
                          "em": float(np.mean(ems)) if ems else None,
                          "f1": float(np.mean(f1s)) if f1s else None}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("gold", type=Path)
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--reader", type=Path, default=None, help="model folder (default: bundled)")
    ap.add_argument("--k", type=int, nargs="+", default=[4], help="passages read per question")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    items = load_gold(args.gold)
    result: dict[str, Any] = {"gold": str(args.gold), "fast": None, "reader": {}}
    for k in args.k:
        s = Settings(corpus_dir=args.corpus, index_dir=args.index, reader_dir=args.reader,
                     reader_candidates=k, query_cache_size=0)
        searcher = Searcher(s)
        if result["fast"] is None:
            result["fast"] = run(searcher, items, read=False)
        result["reader"][str(k)] = run(searcher, items, read=True)
        result["reader_fingerprint"] = searcher.reader_fingerprint
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
