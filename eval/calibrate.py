"""Fit the abstention model (rag/models/abstain.json) on a gold file.

    .venv/bin/python eval/calibrate.py eval/gold.jsonl [--max-false-abstain 0.05]

Features per question are `rag.search.searcher.answer_features` of the hybrid answer; the model
is the shared logistic regression (`rag.search.reader.calibration.fit_logistic`, scikit-learn,
L2 1e-2 on standardised features); the threshold is the highest one whose false
abstention rate on the training items stays within the bound. Fit on the project's own
gold set, checked on ../shared/gold/dev.jsonl (never fitted on it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from rag.config import Settings
from rag.evaluation.evaluate import load_gold
from rag.search.reader.calibration import Logistic, fit_logistic
from rag.search.searcher import Abstainer, Searcher

ROOT = Path(__file__).resolve().parents[1]


def features(searcher: Searcher, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows and answerable labels for every item of a gold file."""
    xs, ys = [], []
    for item in load_gold(path):
        _, feats = searcher.ask_with_features(item.question, 5, "hybrid", read=False)
        xs.append(feats)
        ys.append(float(item.answerable))
    return np.array(xs), np.array(ys)


def rates(conf: np.ndarray, y: np.ndarray, t: float) -> tuple[float, float]:
    """(abstain recall on unanswerable, false abstain rate on answerable) at threshold t."""
    ab = conf < t
    return float(ab[y == 0].mean()), float(ab[y == 1].mean())


def report(name: str, ab: Abstainer, x: np.ndarray, y: np.ndarray, where: Path) -> None:
    """Print one model's weights, threshold and rates on one gold file."""
    conf = ab.model(x)
    ar, fa = rates(conf, y, ab.threshold)
    print(f"{name} on {where}: weights {np.round(ab.model.weights, 3).tolist()} "
          f"bias {ab.model.bias:.3f} threshold {ab.threshold:.2f}: "
          f"abstain_recall {ar:.3f} false_abstain {fa:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("gold", type=Path)
    ap.add_argument("--check", type=Path, default=ROOT.parent / "shared" / "gold" / "dev.jsonl")
    ap.add_argument("--max-false-abstain", type=float, default=0.05)
    args = ap.parse_args()
    searcher = Searcher(Settings())
    x, y = features(searcher, args.gold)
    model: Logistic = fit_logistic(x, y, l2=1e-2)
    conf = model(x)
    best = 0.5
    for t in np.linspace(0.05, 0.95, 91):
        if rates(conf, y, t)[1] <= args.max_false_abstain:
            best = float(t)
    before, after = searcher.abstainer, Abstainer(model, best)
    checks = [(args.gold, x, y)]
    if args.check.exists():
        checks.append((args.check, *features(searcher, args.check)))
    for where, xs, ys in checks:
        report("bundled", before, xs, ys, where)
        report("refit  ", after, xs, ys, where)
    out = {"weights": [round(v, 4) for v in model.weights], "bias": round(model.bias, 4),
           "threshold": round(best, 3),
           "features": ["top dense score", "best highlight similarity",
                        "best highlight lexical coverage", "answer-type match"],
           "fitted_on": str(args.gold.name)}
    (ROOT / "rag" / "models" / "abstain.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
