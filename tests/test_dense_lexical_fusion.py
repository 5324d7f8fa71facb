"""Retrieval math against oracles: FAISS vs numpy brute force, BM25 vs its formula, fusion
vs hand-computed scores."""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.indexing.dense import DenseIndex
from rag.indexing.embedding import normalize
from rag.indexing.lexical import LexicalIndex, tokenize, top_hits
from rag.search.fusion import max_scaled, minmax, rrf, score_fusion
from rag.types import Hit

from .conftest import ROOT

# --- dense -----------------------------------------------------------------------------------


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    return normalize(rng.standard_normal((n, d)).astype(np.float32))


@pytest.fixture(scope="module")
def flat_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1234)
    return _unit(rng, 500, 32), _unit(rng, 20, 32)


def _brute(vectors: np.ndarray, query: np.ndarray, k: int,
           allowed: np.ndarray | None = None) -> tuple[list[int], np.ndarray]:
    """Top-k rows by inner product (ties by row), over the allowed rows only."""
    scores = vectors.astype(np.float64) @ query.astype(np.float64)
    rows = np.arange(len(vectors)) if allowed is None else np.flatnonzero(allowed)
    order = rows[np.lexsort((rows, -scores[rows]))][:k]
    return [int(r) for r in order], scores


def _assert_topk(hits: list[Hit], vectors: np.ndarray, query: np.ndarray, k: int,
                 allowed: np.ndarray | None = None, tol: float = 1e-5) -> None:
    expected, scores = _brute(vectors, query, k, allowed)
    rows = [h.row for h in hits]
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert len(rows) == len(set(rows)) == len(expected)
    for h in hits:  # each reported score is that row's true score
        assert h.score == pytest.approx(scores[h.row], abs=tol)
    # Ranked like the oracle; rows may differ only where the oracle's scores tie.
    np.testing.assert_allclose([h.score for h in hits], scores[expected], atol=tol)
    for got, want in zip(rows, expected):
        assert got == want or abs(scores[got] - scores[want]) <= tol


def test_flat_search_equals_brute_force(flat_data: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, queries = flat_data
    index = DenseIndex.build(vectors)
    assert (index.kind, index.size, index.dim) == ("flat", 500, 32)
    for k in (1, 10, 37):
        for query, hits in zip(queries, index.search(queries, k)):
            _assert_topk(hits, vectors, query, k)
    # a 1-d query is one query
    [hits] = index.search(queries[0], 5)
    assert [h.row for h in hits] == _brute(vectors, queries[0], 5)[0]


def test_flat_search_with_allowed_mask(flat_data: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, queries = flat_data
    index = DenseIndex.build(vectors)
    allowed = np.random.default_rng(7).random(500) < 0.3
    for query, hits in zip(queries, index.search(queries, 10, allowed=allowed)):
        assert all(allowed[h.row] for h in hits)
        _assert_topk(hits, vectors, query, 10, allowed)


def test_flat_search_with_few_or_no_allowed_rows(flat_data: tuple[np.ndarray, np.ndarray]
                                                 ) -> None:
    vectors, queries = flat_data
    index = DenseIndex.build(vectors)
    few = np.zeros(500, dtype=bool)
    few[[3, 77, 401]] = True
    for query, hits in zip(queries[:5], index.search(queries[:5], 10, allowed=few)):
        assert sorted(h.row for h in hits) == [3, 77, 401]
        _assert_topk(hits, vectors, query, 10, few)
    assert index.search(queries[:3], 10, allowed=np.zeros(500, dtype=bool)) == [[], [], []]


def test_k_is_capped_and_zero_gives_nothing(flat_data: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, queries = flat_data
    index = DenseIndex.build(vectors[:7])
    [hits] = index.search(queries[:1], 50)
    assert sorted(h.row for h in hits) == list(range(7))
    assert index.search(queries[:2], 0) == [[], []]


def test_empty_index_finds_nothing() -> None:
    index = DenseIndex.build(np.zeros((0, 8), dtype=np.float32))
    assert index.size == 0
    assert index.search(np.ones((2, 8), dtype=np.float32), 5) == [[], []]


def test_flat_save_load_round_trip(tmp_path: Path,
                                   flat_data: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, queries = flat_data
    index = DenseIndex.build(vectors)
    index.save(tmp_path / "dense.faiss")
    loaded = DenseIndex.load(tmp_path / "dense.faiss")
    assert (loaded.kind, loaded.size, loaded.dim) == ("flat", 500, 32)
    allowed = np.arange(500) % 3 == 0
    assert loaded.search(queries, 10) == index.search(queries, 10)
    assert loaded.search(queries, 10, allowed) == index.search(queries, 10, allowed)
    np.testing.assert_array_equal(loaded.vectors(), vectors)


def test_vectors_returns_the_stored_vectors(flat_data: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, _ = flat_data
    stored = DenseIndex.build(vectors).vectors()
    assert stored.dtype == np.float32
    np.testing.assert_array_equal(stored, vectors)


@pytest.mark.parametrize(("n", "kind"), [(100, "flat"), (101, "hnsw")])
def test_threshold_picks_the_index_kind(n: int, kind: str) -> None:
    vectors = _unit(np.random.default_rng(n), n, 8)
    index = DenseIndex.build(vectors, approximate_threshold=100)
    assert index.kind == kind
    assert index.size == n


@pytest.fixture(scope="module")
def hnsw_data() -> tuple[DenseIndex, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(99)
    vectors, queries = _unit(rng, 2000, 32), _unit(rng, 50, 32)
    return DenseIndex.build(vectors, approximate_threshold=100), vectors, queries


def _recall(index: DenseIndex, vectors: np.ndarray, queries: np.ndarray, k: int,
            allowed: np.ndarray | None = None) -> float:
    found = index.search(queries, k, allowed)
    recalls = [len({h.row for h in hits} & set(_brute(vectors, q, k, allowed)[0])) / k
               for q, hits in zip(queries, found)]
    return float(np.mean(recalls))


def test_hnsw_recall_against_brute_force(hnsw_data: tuple[DenseIndex, np.ndarray, np.ndarray]
                                         ) -> None:
    index, vectors, queries = hnsw_data
    assert index.kind == "hnsw"
    assert _recall(index, vectors, queries, 10) >= 0.95
    for q, hits in zip(queries, index.search(queries, 10)):
        assert [h.rank for h in hits] == list(range(1, 11))
        true = vectors.astype(np.float64) @ q.astype(np.float64)
        for h in hits:
            assert h.score == pytest.approx(true[h.row], abs=1e-5)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_hnsw_with_allowed_mask(hnsw_data: tuple[DenseIndex, np.ndarray, np.ndarray]) -> None:
    index, vectors, queries = hnsw_data
    allowed = np.random.default_rng(5).random(2000) < 0.5
    for hits in index.search(queries, 10, allowed):
        assert len(hits) == 10
        assert all(allowed[h.row] for h in hits)
    assert _recall(index, vectors, queries, 10, allowed) >= 0.9


# The HNSW round trip runs in a child process: a memory error there must not kill pytest.
_HNSW_ROUND_TRIP = """
import sys
import numpy as np
from rag.indexing.dense import DenseIndex
from rag.indexing.embedding import normalize

rng = np.random.default_rng(99)
vectors = normalize(rng.standard_normal((2000, 32)))
queries = normalize(rng.standard_normal((20, 32)))
built = DenseIndex.build(vectors, approximate_threshold=100)
built.save(sys.argv[1])
loaded = DenseIndex.load(sys.argv[1])
print("kind", loaded.kind, flush=True)
print("shape", loaded.size, loaded.dim, flush=True)
print("same", loaded.search(queries, 10) == built.search(queries, 10), flush=True)
print("vectors", np.array_equal(loaded.vectors(), vectors), flush=True)
"""


@pytest.fixture(scope="module")
def hnsw_round_trip(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    path = tmp_path_factory.mktemp("hnsw") / "dense.faiss"
    return subprocess.run([sys.executable, "-c", _HNSW_ROUND_TRIP, str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


def test_hnsw_save_load_keeps_kind(hnsw_round_trip: subprocess.CompletedProcess[str]) -> None:
    assert "kind hnsw" in hnsw_round_trip.stdout.splitlines()


def test_hnsw_save_load_gives_identical_results(
        hnsw_round_trip: subprocess.CompletedProcess[str]) -> None:
    assert hnsw_round_trip.returncode == 0, hnsw_round_trip.stderr[-2000:]
    assert hnsw_round_trip.stdout.splitlines()[1:] == ["shape 2000 32", "same True",
                                                       "vectors True"]


# --- lexical ---------------------------------------------------------------------------------

DOCS = [
    "The cat sat on the mat.",
    "Dogs are running in the park.",
    "A quantum computer runs algorithms quickly.",
    "The cat chased the dog around the park.",
    "Zebras graze quietly in the savanna.",
    "The and of.",  # stopwords only: indexed as an empty document
]


@pytest.fixture(scope="module")
def lexical() -> LexicalIndex:
    return LexicalIndex.build(DOCS)


def _bm25_oracle(docs: list[str], query: str, k1: float = 1.5, b: float = 0.75) -> np.ndarray:
    """Lucene BM25 (no (k1 + 1) factor) from its formula; an empty document is one empty token."""
    toks = [tokenize(d) or [""] for d in docs]
    n = len(toks)
    avgdl = sum(len(t) for t in toks) / n
    df = Counter(t for doc in toks for t in set(doc))
    out = np.zeros(n)
    for term in tokenize(query):
        if term not in df:
            continue
        idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
        for i, doc in enumerate(toks):
            tf = doc.count(term)
            out[i] += idf * tf / (tf + k1 * (1 - b + b * len(doc) / avgdl))
    return out


def test_tokenize_lowercases_drops_stopwords_and_stems() -> None:
    assert tokenize("The Running DOGS runs and ran") == ["run", "dog", "run", "ran"]
    assert tokenize("running") == tokenize("runs") == tokenize("RUN")
    assert tokenize("the of and to is") == []
    assert tokenize("") == []
    assert tokenize("US$5 costs, 2025!") == ["us", "5", "cost", "2025"]


@pytest.mark.parametrize("query", ["quantum", "cat park", "running dogs", "the cat", "zebra",
                                   "park park cat quantum"])
def test_bm25_scores_equal_the_formula(lexical: LexicalIndex, query: str) -> None:
    np.testing.assert_allclose(lexical.scores(query), _bm25_oracle(DOCS, query), rtol=1e-5,
                               atol=1e-6)


def test_rare_term_ranks_its_document_first(lexical: LexicalIndex) -> None:
    hits = lexical.search("quantum", 10)
    assert [h.row for h in hits] == [2]
    hits = lexical.search("cat in the park", 10)
    assert hits[0].row == 3  # the only document with both terms
    assert {h.row for h in hits} == {0, 1, 3}


@pytest.mark.parametrize("query", ["the of and", "xylophone", "", "?!", "the xylophone"])
def test_stopword_or_unknown_queries_find_nothing(lexical: LexicalIndex, query: str) -> None:
    assert lexical.search(query, 10) == []
    assert not lexical.scores(query).any()


def test_documents_without_query_terms_score_zero(lexical: LexicalIndex) -> None:
    scores = lexical.scores("cat")
    assert set(np.flatnonzero(scores)) == {0, 3}
    assert (scores[[0, 3]] > 0).all()


def test_hits_are_ranked_best_first(lexical: LexicalIndex) -> None:
    scores = lexical.scores("cat park running quantum")
    hits = lexical.search("cat park running quantum", 10)
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert {h.row for h in hits} == set(np.flatnonzero(scores > 0))
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(h.score == pytest.approx(float(scores[h.row])) for h in hits)
    assert lexical.search("cat park running quantum", 2) == hits[:2]


def test_lexical_allowed_mask(lexical: LexicalIndex) -> None:
    allowed = np.array([False, True, True, True, True, True])
    hits = lexical.search("cat", 10, allowed)
    assert [h.row for h in hits] == [3]
    assert hits[0].rank == 1


def test_idf_matches_the_formula(lexical: LexicalIndex) -> None:
    n = len(DOCS)
    assert lexical.idf(["cat", "quantum", "unknown"]) == pytest.approx({
        "cat": math.log(1 + (n - 2 + 0.5) / 2.5),
        "quantum": math.log(1 + (n - 1 + 0.5) / 1.5),
    })


def test_lexical_save_load_round_trip(tmp_path: Path, lexical: LexicalIndex) -> None:
    lexical.save(tmp_path / "bm25")
    loaded = LexicalIndex.load(tmp_path / "bm25")
    assert loaded.size == len(DOCS)
    for query in ["quantum", "cat park", "running dogs", "xylophone", "the"]:
        np.testing.assert_array_equal(loaded.scores(query), lexical.scores(query))
        assert loaded.search(query, 10) == lexical.search(query, 10)


def test_empty_lexical_index(tmp_path: Path) -> None:
    empty = LexicalIndex.build([])
    assert empty.size == 0
    assert empty.search("cat", 5) == []
    empty.save(tmp_path / "bm25")
    loaded = LexicalIndex.load(tmp_path / "bm25")
    assert loaded.size == 0
    assert loaded.search("cat", 5) == []


# --- top_hits --------------------------------------------------------------------------------

def _top_oracle(scores: list[float], k: int) -> list[tuple[int, float, int]]:
    order = sorted((i for i, s in enumerate(scores) if s > 0), key=lambda i: (-scores[i], i))
    return [(r, scores[r], rank) for rank, r in enumerate(order[:max(k, 0)], start=1)]


@settings(max_examples=200, deadline=None)
@given(scores=st.lists(st.sampled_from([-1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.25]), max_size=60),
       k=st.integers(-1, 70))
def test_top_hits_against_a_sort_oracle(scores: list[float], k: int) -> None:
    arr = np.array(scores, dtype=np.float32)
    got = [(h.row, h.score, h.rank) for h in top_hits(arr, k)]
    want = _top_oracle(scores, k)
    assert [(s, rank) for _, s, rank in got] == [(s, rank) for _, s, rank in want]
    assert all(scores[r] == s for r, s, _ in got)
    assert len({r for r, _, _ in got}) == len(got)
    assert [(-s, r) for r, s, _ in got] == sorted((-s, r) for r, s, _ in got)  # ties by row
    if want and len(want) == k and not any(s == want[-1][1] for s in scores[want[-1][0] + 1:]):
        assert got == want  # no tie straddles the cut: the rows are fixed too
    elif len(want) < k or k >= len(scores):
        assert got == want  # everything positive is returned


def test_top_hits_without_ties_by_hand() -> None:
    hits = top_hits(np.array([0.0, 3.0, -2.0, 1.0, 2.0], dtype=np.float32), 2)
    assert hits == [Hit(1, 3.0, 1), Hit(4, 2.0, 2)]


def test_top_hits_breaks_ties_at_the_cut_by_row() -> None:
    hits = top_hits(np.array([1.0, 1.0, 2.0, 2.0], dtype=np.float32), 1)
    assert hits == [Hit(2, 2.0, 1)]


# --- fusion ----------------------------------------------------------------------------------

def _hits(*rows_scores: tuple[int, float]) -> list[Hit]:
    return [Hit(r, s, i) for i, (r, s) in enumerate(rows_scores, start=1)]


DENSE = _hits((3, 0.9), (1, 0.8), (2, 0.5))
LEXICAL = _hits((1, 12.0), (4, 6.0))


def test_rrf_by_hand() -> None:
    fused = rrf([DENSE, LEXICAL], [0.5, 0.5], k=60)
    assert fused == [
        (1, 0.5 / 62 + 0.5 / 61),
        (3, 0.5 / 61),
        (4, 0.5 / 62),
        (2, 0.5 / 63),
    ]


def test_rrf_weights_and_k() -> None:
    fused = dict(rrf([DENSE, LEXICAL], [1.0, 0.0], k=1))
    assert fused == {3: 1 / 2, 1: 1 / 3 + 0.0, 2: 1 / 4, 4: 0.0}
    assert rrf([], [], k=60) == []
    assert rrf([[], DENSE], [0.5, 0.5]) == [(3, 0.5 / 61), (1, 0.5 / 62), (2, 0.5 / 63)]


def test_rrf_ties_are_ordered_by_row() -> None:
    a = _hits((9, 1.0), (5, 0.5))
    b = _hits((5, 3.0), (9, 2.0))  # the same ranks swapped: 9 and 5 tie exactly
    c = _hits((7, 1.0))
    assert rrf([a, b, c], [1.0, 1.0, 0.0]) == [(5, 1 / 62 + 1 / 61), (9, 1 / 61 + 1 / 62),
                                               (7, 0.0)]
    fused = rrf([a, b], [1.0, 1.0])
    assert fused[0][1] == fused[1][1]
    assert [r for r, _ in fused] == [5, 9]


def test_minmax_by_hand() -> None:
    assert minmax(DENSE) == {3: 1.0, 1: pytest.approx(0.75), 2: 0.0}
    assert minmax(LEXICAL) == {1: 1.0, 4: 0.0}
    assert minmax(_hits((4, 2.5), (8, 2.5))) == {4: 1.0, 8: 1.0}
    assert minmax(_hits((6, -3.0))) == {6: 1.0}
    assert minmax([]) == {}


def test_max_scaled_by_hand() -> None:
    assert max_scaled(LEXICAL) == {1: 1.0, 4: 0.5}
    assert max_scaled(DENSE) == {3: 1.0, 1: 0.8 / 0.9, 2: 0.5 / 0.9}
    assert max_scaled(_hits((1, 0.0), (2, -1.0))) == {1: 0.0, 2: 0.0}
    assert max_scaled([]) == {}


def test_score_fusion_minmax_by_hand() -> None:
    fused = score_fusion([DENSE, LEXICAL], [0.7, 0.3])
    d1 = (0.8 - 0.5) / (0.9 - 0.5)
    assert fused == [(1, pytest.approx(0.7 * d1 + 0.3)), (3, 0.7), (2, 0.0), (4, 0.0)]
    rows = [r for r, _ in fused]
    assert rows[2:] == [2, 4]  # exact tie at zero: ordered by row


def test_score_fusion_max_scaled_by_hand() -> None:
    fused = score_fusion([DENSE, LEXICAL], [0.5, 0.5], normalize="max")
    assert fused == [
        (1, 0.5 * (0.8 / 0.9) + 0.5 * 1.0),
        (3, 0.5 * 1.0),
        (2, 0.5 * (0.5 / 0.9)),
        (4, 0.5 * 0.5),
    ]


def test_score_fusion_single_list_keeps_order() -> None:
    fused = score_fusion([DENSE], [1.0])
    assert [r for r, _ in fused] == [3, 1, 2]


def test_top_rows_takes_the_k_best_finite_scores() -> None:
    from rag.indexing.generation import top_rows

    s = np.array([0.1, 0.9, -np.inf, 0.5, 0.7], dtype=np.float32)
    assert sorted(top_rows(s, 2).tolist()) == [1, 4]
    assert sorted(top_rows(s, 10).tolist()) == [0, 1, 3, 4]  # -inf never returned
    assert top_rows(np.full(3, -np.inf, dtype=np.float32), 2).tolist() == []
    assert top_rows(np.zeros(0, dtype=np.float32), 3).tolist() == []
