"""The real bundled model on the real corpus: citations are exact in every mode."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings
from rag.evaluation.evaluate import load_gold
from rag.types import MODES

from .conftest import CORPUS, DEV_GOLD, ROOT, need_shared
from .oracles import assert_exact_passage, file_text


@pytest.fixture(autouse=True)
def _dev_gold() -> None:
    need_shared(DEV_GOLD)  # skipped without ../shared, failed under CI=true


@pytest.mark.parametrize("mode", MODES)
def test_every_dev_passage_is_an_exact_citation(real_searcher, mode: str) -> None:
    items = load_gold(DEV_GOLD)
    checked = 0
    for item in items:
        answer = real_searcher.ask(item.question, top_k=10, mode=mode)
        assert answer.passages, item.id
        for p in answer.passages:
            assert_exact_passage(file_text(CORPUS / p.file), p, (item.id, p.file))
            checked += 1
    assert checked >= len(items) * 5


def test_no_words_shown_twice(real_searcher) -> None:
    for item in load_gold(DEV_GOLD):
        spans: dict[str, list[tuple[int, int]]] = {}
        for p in real_searcher.ask(item.question, top_k=10).passages:
            for s, e in spans.get(p.file, []):
                assert p.end <= s or p.start >= e, f"{item.id}: overlapping passages"
            spans.setdefault(p.file, []).append((p.start, p.end))


def test_chunks_fit_the_model(real_index, real_embedder) -> None:
    """No embedded text exceeds max_seq_length, so dense search sees every word."""
    from rag.indexing.generation import open_current
    from rag.text.chunking import embedding_text

    gen = open_current(real_index.index_dir)
    chunks = gen.chunks(list(range(gen.size)))
    counts = real_embedder.count_tokens([embedding_text(c) for c in chunks])
    assert max(counts) + 2 <= real_embedder.max_tokens
    assert {c.file for c in chunks} == {p.name for p in CORPUS.iterdir()}


def test_cli_ask_json_matches_library(real_index, real_searcher) -> None:
    q = "Which company trained farmers in Ussuriysk to use automatic navigation?"
    out = subprocess.run(
        [sys.executable, "-m", "rag.serve.cli", "ask", q, "--json", "--top-k", "3",
         "--corpus", str(real_index.corpus_dir), "--index", str(real_index.index_dir)],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=True)
    data = json.loads(out.stdout)
    lib = real_searcher.ask(q, top_k=3)
    assert [(p["file"], p["start"], p["end"]) for p in data["passages"]] == [
        (p.file, p.start, p.end) for p in lib.passages]
    assert data["passages"][0]["retrievers"].keys() == {"dense", "lexical"}
    assert Path(CORPUS / data["passages"][0]["file"]).exists()


# -- the direct ONNX path and the int8 backend ------------------------------------------

def dev_questions() -> list[str]:
    return [i.question for i in load_gold(DEV_GOLD)]


def _texts(real_index: Settings) -> list[str]:
    from rag.indexing.generation import open_current

    gen = open_current(real_index.index_dir)
    chunks = [c.text for c in gen.chunks(list(range(min(gen.size, 24))))]
    long = " ".join(chunks)  # far past max_seq_length: truncation must match too
    return [*dev_questions(), *chunks, long, "x", "Ünïcödé — 数字丝绸之路?"]


def test_direct_onnx_path_gives_sentence_transformers_vectors(real_index, real_embedder) -> None:
    emb = real_embedder
    assert emb._direct is not None, "the bundled model should take the direct path"
    texts = _texts(real_index)
    direct = emb.embed(texts)
    emb_st = emb._direct
    emb._direct = None  # sentence-transformers' own encode
    try:
        reference = emb.embed(texts)
    finally:
        emb._direct = emb_st
    assert direct.shape == reference.shape == (len(texts), emb.dim)
    np.testing.assert_allclose(direct, reference, atol=1e-5)
    one_by_one = np.stack([emb.embed([t])[0] for t in texts[:5]])  # batching changes nothing
    np.testing.assert_allclose(one_by_one, reference[:5], atol=1e-5)


def test_int8_questions_are_close_deterministic_and_never_batched(real_index, real_embedder
                                                                  ) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from rag.indexing.embedding import INT8_FILE, load_embedder
    from rag.search.searcher import Searcher

    q8 = load_embedder(Settings(quantize_queries=True))
    assert q8.fingerprint == real_embedder.fingerprint  # documents are the same float32
    assert not q8.query_batching
    qs = dev_questions()
    alone = np.stack([q8.embed_query(q) for q in qs])
    # before the reader, threads that sleep at once: the same vectors
    np.testing.assert_array_equal(np.stack([q8.embed_query(q, spin=False) for q in qs]), alone)
    fp32 = real_embedder.embed(qs)
    cos = (alone * fp32).sum(axis=1)
    assert cos.min() > 0.95 and not np.allclose(alone, fp32, atol=1e-4)  # int8 really used
    assert q8._query_alone is not None  # a lone question runs on spinning threads: same model
    np.testing.assert_array_equal(np.stack([q8._query_alone.encode([q], 1)[0] for q in qs]),
                                  np.stack([q8._query.encode([q], 1)[0] for q in qs]))
    with ThreadPoolExecutor(8) as pool:  # concurrency must not change a question's vector
        again = np.stack(list(pool.map(q8.embed_query, qs * 3)))
    np.testing.assert_array_equal(again, np.concatenate([alone] * 3))
    searcher = Searcher(real_index.model_copy(update={"quantize_queries": True}), embedder=q8)
    assert searcher._encode_one == q8.embed_query  # no micro-batcher in between
    ans = searcher.ask(qs[0])
    assert ans.passages and ans.passages[0].text
    cached = list(Settings().onnx_cache_dir.glob(f"*/onnx/{INT8_FILE}"))
    assert cached and not list(cached[0].parent.glob(".q-*")), "made once, no half-written file"


def test_int8_questions_need_the_onnx_backend() -> None:
    from rag.errors import ConfigError
    from rag.indexing.embedding import load_embedder

    with pytest.raises(ConfigError, match="RAG_BACKEND=onnx"):
        load_embedder(Settings(backend="torch", quantize_queries=True))


def test_torch_backend_agrees_with_onnx_and_keeps_float32_questions(real_embedder) -> None:
    """The default (int8 questions) is an ONNX matter: on torch, questions stay float32 and
    every vector matches the ONNX float32 one, so an index serves either backend."""
    from rag.indexing.embedding import load_embedder

    torch_emb = load_embedder(Settings(backend="torch"))
    assert torch_emb.fingerprint == real_embedder.fingerprint and torch_emb.query_batching
    qs = dev_questions()[:8]
    np.testing.assert_allclose(torch_emb.embed(qs), real_embedder.embed(qs), atol=1e-4)
    np.testing.assert_allclose(torch_emb.embed_query(qs[0]), real_embedder.embed([qs[0]])[0],
                               atol=1e-4)


def test_exact_scan_path_ranks_like_the_faiss_path(real_searcher, monkeypatch) -> None:
    """Flat indexes take one matrix-vector product instead of two FAISS searches; the ranked
    chunks must be the same (rows, order, scores), with and without a file filter."""
    from rag.indexing.dense import DenseIndex
    gen = real_searcher.generation
    assert gen.dense.all_scores(real_searcher.embed_query("x")) is not None  # flat here
    masks = [None, gen.file_mask(["sco-*"]), gen.file_mask(["no-such-file*"])]
    fast = [[(h.row, h.rank, round(h.score, 5)) for h in
             real_searcher.dense_hits(gen, real_searcher.embed_query(q), 50, m)]
            for q in dev_questions() for m in masks]
    monkeypatch.setattr(DenseIndex, "all_scores", lambda self, q: None)
    slow = [[(h.row, h.rank, round(h.score, 5)) for h in
             real_searcher.dense_hits(gen, real_searcher.embed_query(q), 50, m)]
            for q in dev_questions() for m in masks]
    assert fast == slow and any(fast) and not fast[2]
