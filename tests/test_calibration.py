"""The shared calibration module (rag/search/reader/calibration.py) against oracles: the
scikit-learn fits against a hand-written Newton solve of the same objective, AUC with ties
against the pair-counting definition, the reliability bins against plain comparisons."""

from __future__ import annotations

import numpy as np
import pytest

from rag.search.reader.calibration import (Logistic, auc, expected_calibration_error,
                                           fit_logistic, fit_platt, reliability)
from rag.search.searcher import Abstainer


def newton(X: np.ndarray, y: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Minimiser of mean log-loss + w.reg.w / 2 by Newton's method (the oracle)."""
    w = np.zeros(X.shape[1])
    for _ in range(200):
        p = 1.0 / (1.0 + np.exp(-(X @ w)))
        g = X.T @ (p - y) / len(y) + reg @ w
        h = (X * (p * (1 - p))[:, None]).T @ X / len(y) + reg
        w -= np.linalg.solve(h, g)
    return w


def test_platt_is_the_regularised_logistic_optimum() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(0, 2, 400)
    y = (rng.random(400) < 1 / (1 + np.exp(-(1.2 * x + 0.4)))).astype(float)
    l2 = 0.05  # large enough that a wrong scaling of the penalty shows
    want = newton(np.c_[x, np.zeros_like(x) + 1], y, np.diag([l2, 0.0]))
    p = fit_platt(x, y, l2=l2)
    assert p.a == pytest.approx(want[0], abs=1e-5) and p.b == pytest.approx(want[1], abs=1e-5)


def test_logistic_fit_is_the_optimum_in_raw_units() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(0, 1, (300, 3)) * [3.0, 0.2, 1.0] + [2.0, -1.0, 0.0]
    y = (rng.random(300) < 1 / (1 + np.exp(-(x @ [0.5, 2.0, -1.0] - 0.2)))).astype(float)
    mu, sd = x.mean(0), x.std(0) + 1e-9
    w = newton(np.c_[(x - mu) / sd, np.ones(300)], y, np.diag([0.01, 0.01, 0.01, 0.0]))
    m = fit_logistic(x, y, l2=0.01)
    assert np.allclose(m.weights, w[:-1] / sd, atol=1e-5)
    assert m.bias == pytest.approx(w[-1] - (w[:-1] / sd) @ mu, abs=1e-5)


def test_a_fit_on_one_class_is_refused() -> None:
    with pytest.raises(ValueError, match="both classes"):
        fit_platt(np.arange(5.0), np.ones(5))


def pair_auc(s: list[float], y: list[bool]) -> float:
    """P(score of a positive > score of a negative), ties counted half (the definition)."""
    pos = [a for a, t in zip(s, y) if t]
    neg = [a for a, t in zip(s, y) if not t]
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def test_auc_averages_ties() -> None:
    assert auc([0.5, 0.5], [True, False]) == 0.5
    assert auc([0.5, 0.5], [False, True]) == 0.5  # input order does not break the tie
    rng = np.random.default_rng(7)
    s = rng.integers(0, 4, 60).astype(float).tolist()  # many ties
    y = (rng.random(60) < 0.5).tolist()
    assert auc(s, y) == pytest.approx(pair_auc(s, y), abs=1e-12)
    assert np.isnan(auc([0.1, 0.2], [True, True]))


def test_reliability_bins_by_comparison() -> None:
    rng = np.random.default_rng(8)
    edges = [b / 10 for b in range(11)]
    p = np.r_[rng.random(200), edges, np.nextafter(np.array(edges[1:]), 0)]
    y = rng.random(len(p)) < p
    table = reliability(p, y)
    for b in range(10):
        lo, hi = b / 10, (b + 1) / 10
        inside = (p >= lo) & ((p < hi) | ((b == 9) & (p == hi)))
        row = next(r for r in table if r.lo == lo)
        assert (row.hi, row.n) == (hi, int(inside.sum()))
        assert row.mean_predicted == pytest.approx(p[inside].mean())
        assert row.observed == pytest.approx(y[inside].mean())
    assert expected_calibration_error(table) == pytest.approx(
        sum(r.n * abs(r.mean_predicted - r.observed) for r in table) / len(p))
    assert expected_calibration_error([]) == 0.0


def test_the_abstainer_is_the_shared_model() -> None:
    ab = Abstainer.bundled()
    assert isinstance(ab.model, Logistic)
    rows = np.random.default_rng(9).random((20, len(ab.model.weights)))
    assert np.allclose([ab.confidence(*r) for r in rows], ab.model(rows), atol=1e-12)
