"""Calibration of the reader's relevance logit: Platt scaling, a reliability table, and the
operating threshold. Pure functions over arrays (fitted on held-out SQuAD training articles,
never on a gold set)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Platt:
    """P(answer in window) = sigmoid(a * logit + b)."""

    a: float
    b: float

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        z = np.clip(self.a * np.asarray(logits, dtype=np.float64) + self.b, -50, 50)
        return 1.0 / (1.0 + np.exp(-z))


def fit_platt(logits: np.ndarray, labels: np.ndarray, steps: int = 2000, l2: float = 1e-4
              ) -> Platt:
    """Logistic regression of labels on logits by Newton's method (deterministic)."""
    x = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    w = np.array([1.0, 0.0])
    X = np.stack([x, np.ones_like(x)], axis=1)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(X @ w, -50, 50)))
        g = X.T @ (p - y) / len(y) + l2 * w
        h = (X * (p * (1 - p))[:, None]).T @ X / len(y) + l2 * np.eye(2)
        dw = np.linalg.lstsq(h, g, rcond=None)[0]
        w -= dw
        if np.abs(dw).max() < 1e-10:
            break
    return Platt(float(w[0]), float(w[1]))


@dataclass(frozen=True)
class Bin:
    """One row of a reliability table."""

    lo: float
    hi: float
    n: int
    mean_predicted: float
    observed: float


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> list[Bin]:
    """Predicted vs observed frequency in equal-width probability bins (empty bins left out)."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        m = idx == b
        if m.any():
            out.append(Bin(float(edges[b]), float(edges[b + 1]), int(m.sum()),
                           float(p[m].mean()), float(y[m].mean())))
    return out


def expected_calibration_error(table: list[Bin]) -> float:
    """Share-weighted mean |predicted - observed| over the bins."""
    n = sum(b.n for b in table)
    return sum(b.n * abs(b.mean_predicted - b.observed) for b in table) / max(1, n)


def threshold_for(confidence: np.ndarray, answerable: np.ndarray, max_false_abstain: float
                  ) -> float:
    """The highest threshold whose false-abstain rate (answerable questions judged
    unanswerable) stays within ``max_false_abstain`` (pure)."""
    c = np.sort(np.asarray(confidence, dtype=np.float64)[np.asarray(answerable, dtype=bool)])
    if not len(c):
        return 0.5
    k = int(np.floor(max_false_abstain * len(c)))  # this many may fall below
    return float(c[k]) if k < len(c) else float(c[-1])


@dataclass(frozen=True)
class Logistic:
    """P = sigmoid(w . x + b) over named features (the answerability model)."""

    weights: tuple[float, ...]
    bias: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = np.clip(np.asarray(x, dtype=np.float64) @ np.asarray(self.weights) + self.bias,
                    -50, 50)
        return 1.0 / (1.0 + np.exp(-z))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 100
                 ) -> Logistic:
    """L2-regularised logistic regression by Newton's method on standardised features
    (deterministic); weights returned in raw feature units."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    mu, sd = x.mean(0), x.std(0) + 1e-9
    X = np.hstack([(x - mu) / sd, np.ones((len(x), 1))])
    w = np.zeros(X.shape[1])
    reg = l2 * np.eye(X.shape[1])
    reg[-1, -1] = 1e-9  # the bias: (almost) unregularised, the system never singular
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(X @ w, -50, 50)))
        g = X.T @ (p - y) / len(y) + reg @ w
        h = (X * (p * (1 - p))[:, None]).T @ X / len(y) + reg
        dw = np.linalg.lstsq(h, g, rcond=None)[0]
        w -= dw
        if np.abs(dw).max() < 1e-10:
            break
    raw = w[:-1] / sd
    return Logistic(tuple(float(v) for v in raw), float(w[-1] - raw @ mu))
