"""Calibration and answerability: Platt scaling, the logistic answerability model, AUC,
the reliability table and ECE, the operating threshold and the abstention curve. The one
implementation of each that the reader, the fast path's abstainer, eval/calibrate.py and the
evaluation report use. Fits are scikit-learn's LogisticRegression (lbfgs, deterministic);
the rest is numpy."""

from __future__ import annotations

from collections.abc import Sequence
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


def sigmoid(z: ArrayLike) -> np.ndarray:
    """The logistic function, clipped so exp never overflows."""
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(z, dtype=np.float64), -50, 50)))


@dataclass(frozen=True)
class Platt:
    """P(answer in window) = sigmoid(a * logit + b)."""

    a: float
    b: float

    def __call__(self, logits: ArrayLike) -> np.ndarray:
        return sigmoid(self.a * np.asarray(logits, dtype=np.float64) + self.b)


@dataclass(frozen=True)
class Logistic:
    """P = sigmoid(w . x + b) over named features (the answerability model)."""

    weights: tuple[float, ...]
    bias: float

    def __call__(self, x: ArrayLike) -> np.ndarray:
        return sigmoid(np.asarray(x, dtype=np.float64) @ np.asarray(self.weights) + self.bias)

    def one(self, features: Sequence[float]) -> float:
        """P for one feature row, without numpy's per-call overhead (the query hot path)."""
        z = sum(w * f for w, f in zip(self.weights, features, strict=True)) + self.bias
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def _logistic_fit(X: np.ndarray, y: np.ndarray, l2: float, max_iter: int
                  ) -> tuple[np.ndarray, float]:
    """Coefficients and intercept minimising mean log-loss + l2/2 |w|^2 (intercept free)."""
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(y, dtype=np.float64)
    if len(np.unique(labels)) < 2:
        raise ValueError("a logistic fit needs both classes among the labels")
    # sklearn minimises C * sum(loss) + |w|^2 / 2, so C = 1 / (l2 * n) is the same objective
    model = LogisticRegression(C=1.0 / (l2 * len(labels)), solver="lbfgs", max_iter=max_iter,
                               tol=1e-10)
    model.fit(X, labels.astype(int))
    return model.coef_[0].astype(np.float64), float(model.intercept_[0])


def fit_platt(logits: np.ndarray, labels: np.ndarray, steps: int = 2000, l2: float = 1e-4
              ) -> Platt:
    """Logistic regression of labels on logits (Platt scaling); ``steps`` bounds the solver."""
    x = np.asarray(logits, dtype=np.float64).reshape(-1, 1)
    w, b = _logistic_fit(x, np.asarray(labels), l2, steps)
    return Platt(float(w[0]), b)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 100
                 ) -> Logistic:
    """L2-regularised logistic regression on standardised features (bias unregularised);
    weights returned in raw feature units."""
    x = np.asarray(x, dtype=np.float64)
    mu, sd = x.mean(0), x.std(0) + 1e-9
    w, b = _logistic_fit((x - mu) / sd, np.asarray(y), l2, max(steps, 1000))
    raw = w / sd
    return Logistic(tuple(float(v) for v in raw), float(b - raw @ mu))


def auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve, tied scores averaged (NaN when one class is absent)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels, dtype=bool)
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, np.asarray(scores, dtype=np.float64)))


@dataclass(frozen=True)
class Bin:
    """One row of a reliability table: predictions that fell in [lo, hi) (the last bin
    includes 1.0), their mean, and the observed rate of the positive label."""

    lo: float
    hi: float
    n: int
    mean_predicted: float
    observed: float


def reliability(probs: ArrayLike, labels: ArrayLike, bins: int = 10) -> list[Bin]:
    """Predicted vs observed frequency in equal-width probability bins (empty bins left out)."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if p.shape != y.shape:
        raise ValueError(f"{p.shape[0] if p.ndim else 0} predictions for "
                         f"{y.shape[0] if y.ndim else 0} labels")
    edges = np.array([b / bins for b in range(bins + 1)])  # the same floats as lo and hi
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    out = []
    for b in range(bins):
        m = idx == b
        if m.any():
            out.append(Bin(b / bins, (b + 1) / bins, int(m.sum()), float(p[m].mean()),
                           float(y[m].mean())))
    return out


def expected_calibration_error(table: Sequence[Bin]) -> float:
    """Share-weighted mean |predicted - observed| over the bins (0 for an empty table)."""
    n = sum(b.n for b in table)
    return sum(b.n * abs(b.mean_predicted - b.observed) for b in table) / n if n else 0.0


def threshold_for(confidence: np.ndarray, answerable: np.ndarray, max_false_abstain: float
                  ) -> float:
    """The highest threshold whose false-abstain rate (answerable questions judged
    unanswerable) stays within ``max_false_abstain`` (pure)."""
    c = np.sort(np.asarray(confidence, dtype=np.float64)[np.asarray(answerable, dtype=bool)])
    if not len(c):
        return 0.5
    k = int(np.floor(max_false_abstain * len(c)))  # this many may fall below
    return float(c[k]) if k < len(c) else float(c[-1])


CURVE_AT = (0.02, 0.05, 0.10)  # false-abstain rates an abstention curve is read at


def caught_at(answerable_conf: np.ndarray, groups: dict[str, np.ndarray],
              rates: Sequence[float] = CURVE_AT) -> list[dict[str, float | None]]:
    """What one threshold does, for each of ``rates`` (pure): the threshold put where that
    share of the answerable questions' confidences falls below it (interpolated quantile),
    and the share of each group's confidences below it (None for an empty group). The
    abstention curve of a score, read at a few false-abstain rates, threshold aside."""
    out = []
    for r in rates:
        t = float(np.quantile(answerable_conf, r))
        out.append({name: float((g < t).mean()) if len(g) else None for name, g in groups.items()})
    return out
