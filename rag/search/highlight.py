"""The answer span inside a passage: the sentence that best matches the question.

Chosen by lexical overlap (idf-weighted, stemmed) and, when vectors are given, the
embedding model's similarity; never generated. Offsets are file offsets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..indexing.lexical import tokenize


def question_weights(question: str, idf: Callable[[list[str]], dict[str, float]]
                     ) -> dict[str, float]:
    """The question's known terms with their idf weights (computed once per question)."""
    return idf(sorted(set(tokenize(question))))


def coverage(weights: dict[str, float], token_sets: Sequence[frozenset[str]]) -> np.ndarray:
    """Share of the question's idf mass each token set contains (0..1; pure)."""
    total = sum(weights.values())
    if not total:
        return np.zeros(len(token_sets), dtype=np.float32)
    return np.asarray([sum(w for t, w in weights.items() if t in toks) / total
                       for toks in token_sets], dtype=np.float32)
