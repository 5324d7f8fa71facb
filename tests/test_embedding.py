"""Embedders: the fake's determinism, the micro-batcher, the real model's settings."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from rag.embedding import FakeEmbedder, MicroBatcher, model_fingerprint, resolve_model
from rag.errors import ConfigError


def test_fake_embedder_is_deterministic_and_unit_length() -> None:
    e = FakeEmbedder()
    a, b = e.embed(["alpha beta", "alpha beta"]), FakeEmbedder().embed(["alpha beta"])
    assert np.array_equal(a[0], b[0])
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0)


def test_micro_batcher_returns_each_callers_vector_and_batches() -> None:
    fake = FakeEmbedder()
    sizes: list[int] = []
    gate = threading.Event()

    def slow(texts: Sequence[str]) -> np.ndarray:
        sizes.append(len(texts))
        gate.wait(0.05)  # hold the model so that callers pile up
        return fake.embed(texts)

    batcher = MicroBatcher(slow)
    texts = [f"question number {i} about topic {i % 7}" for i in range(64)]
    with ThreadPoolExecutor(16) as ex:
        got = list(ex.map(batcher, texts))
    for t, v in zip(texts, got):
        assert np.array_equal(v, fake.embed([t])[0])
    assert sum(sizes) == len(texts)
    assert max(sizes) > 1  # concurrent callers shared a forward pass


def test_micro_batcher_hands_errors_to_every_waiter() -> None:
    def boom(texts: Sequence[str]) -> np.ndarray:
        raise RuntimeError("model exploded")

    batcher = MicroBatcher(boom)
    with ThreadPoolExecutor(4) as ex:
        futures = [ex.submit(batcher, f"q{i}") for i in range(8)]
        for f in futures:
            with pytest.raises(RuntimeError, match="model exploded"):
                f.result(timeout=10)


def test_model_setting_resolution(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = resolve_model("bundled:all-MiniLM-L6-v2")
    assert path.endswith("model")
    assert len(model_fingerprint(path)) == 64
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    with pytest.raises(ConfigError, match="has no weights"):
        model_fingerprint(str(tmp_path))
    assert model_fingerprint("some/hub-name") != model_fingerprint("other/hub-name")


def test_query_cache_is_bounded_and_can_be_switched_off() -> None:
    from rag.search import QueryCache

    c = QueryCache(2)
    for k in "abc":
        c.put(k, np.full(2, ord(k), dtype=np.float32))
    assert c.get("a") is None and c.get("c") is not None  # oldest evicted
    c.size = 0  # as `rag eval` does after its warm-up: timed questions are real searches
    assert c.get("c") is None


def test_direct_onnx_path_only_for_shapes_it_reproduces() -> None:
    """Anything but Transformer -> mean/CLS Pooling (-> Normalize) keeps sentence-transformers'
    own encode: the direct path must never silently change a model's vectors."""
    from rag.embedding import DirectOnnx, mean_pool

    class Transformer:
        do_lower_case = False
        auto_model = None

    class Pooling:
        def __init__(self, cfg: dict) -> None:  # type: ignore[type-arg]
            self.cfg = cfg

        def get_config_dict(self) -> dict:  # type: ignore[type-arg]
            return self.cfg

    class Dense:
        pass

    class St(list):  # type: ignore[type-arg]
        tokenizer = None
        max_seq_length = 8

    assert DirectOnnx.of(St([Transformer(), Pooling({"pooling_mode": "mean"})])) is None  # no session
    assert DirectOnnx.of(St([Transformer(), Pooling({"pooling_mode": "mean"}), Dense()])) is None
    assert DirectOnnx.of(St([Transformer(), Pooling({"pooling_mode": "max"})])) is None
    tokens = np.array([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]], dtype=np.float32)
    assert mean_pool(tokens, np.array([[1, 1, 0]])).tolist() == [[2.0, 3.0]]  # padding ignored
