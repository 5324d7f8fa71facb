"""Fit the abstention model (rag/models/abstain.json) on a gold file.

    .venv/bin/python eval/calibrate.py eval/gold.jsonl [--max-false-abstain 0.05]

Features per question are `rag.search.searcher.answer_features` of the hybrid answer; the model
is a logistic regression (pure numpy); the threshold is the highest one whose false
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
from rag.search.searcher import Abstainer, Searcher

ROOT = Path(__file__).resolve().parents[1]


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 20000,
                 lr: float = 0.5) -> tuple[np.ndarray, float]:
    """Weights and bias of an L2-regularised logistic regression (gradient descent)."""
    mu, sd = x.mean(0), x.std(0) + 1e-9
    z = (x - mu) / sd
    w = np.zeros(x.shape[1])
    b = 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(z @ w + b)))
        g = p - y
        w -= lr * (z.T @ g / len(y) + l2 * w)
        b -= lr * g.mean()
    return w / sd, float(b - (w / sd) @ mu)  # back to raw feature units


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("gold", type=Path)
    ap.add_argument("--check", type=Path, default=ROOT.parent / "shared" / "gold" / "dev.jsonl")
    ap.add_argument("--max-false-abstain", type=float, default=0.05)
    args = ap.parse_args()
    searcher = Searcher(Settings())
    x, y = features(searcher, args.gold)
    w, b = fit_logistic(x, y)
    conf = 1 / (1 + np.exp(-(x @ w + b)))
    best = 0.5
    for t in np.linspace(0.05, 0.95, 91):
        if rates(conf, y, t)[1] <= args.max_false_abstain:
            best = float(t)
    ar, fa = rates(conf, y, best)
    print(f"fit on {args.gold}: weights {np.round(w, 3).tolist()} bias {b:.3f} "
          f"threshold {best:.2f}: abstain_recall {ar:.3f} false_abstain {fa:.3f}")
    ab = Abstainer(tuple(w.tolist()), b, best)  # type: ignore[arg-type]
    if args.check.exists():
        xc, yc = features(searcher, args.check)
        cc = np.array([ab.confidence(*row) for row in xc])
        ar, fa = rates(cc, yc, best)
        print(f"check on {args.check}: abstain_recall {ar:.3f} false_abstain {fa:.3f}")
    out = {"weights": [round(v, 4) for v in w.tolist()], "bias": round(b, 4),
           "threshold": round(best, 3),
           "features": ["top dense score", "best highlight similarity",
                        "best highlight lexical coverage", "answer-type match"],
           "fitted_on": str(args.gold.name)}
    (ROOT / "rag" / "models" / "abstain.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
