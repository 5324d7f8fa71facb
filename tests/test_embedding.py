"""Embedders: the fake's determinism, the micro-batcher, the real model's settings."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from rag.errors import ConfigError
from rag.indexing.embedding import FakeEmbedder, MicroBatcher, model_fingerprint, resolve_model


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
    from rag.search.searcher import QueryCache

    c = QueryCache(2)
    for k in "abc":
        c.put(k, np.full(2, ord(k), dtype=np.float32))
    assert c.get("a") is None and c.get("c") is not None  # oldest evicted
    c.size = 0  # as `rag eval` does after its warm-up: timed questions are real searches
    assert c.get("c") is None


def test_direct_onnx_path_only_for_shapes_it_reproduces() -> None:
    """Anything but Transformer -> mean/CLS Pooling (-> Normalize) keeps sentence-transformers'
    own encode: the direct path must never silently change a model's vectors. The fakes have a
    session and a tokenizer, so each refusal comes from the shape check itself (the accepted
    shapes prove the fakes pass every other check)."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel

    from rag.indexing.embedding import DirectOnnx, mean_pool

    class Io:
        def __init__(self, name: str) -> None:
            self.name = name

    class Session:
        def get_inputs(self) -> list[Io]:
            return [Io("input_ids"), Io("attention_mask")]

        def get_outputs(self) -> list[Io]:
            return [Io("last_hidden_state")]

        def run(self, *a: object) -> None:
            raise AssertionError("not called by DirectOnnx.of")

    class Transformer:
        do_lower_case = False

        def __init__(self, session: object = Session()) -> None:
            self.auto_model = type("AutoModel", (), {"model": session})()

    class Pooling:
        def __init__(self, cfg: dict) -> None:  # type: ignore[type-arg]
            self.cfg = cfg

        def get_config_dict(self) -> dict:  # type: ignore[type-arg]
            return self.cfg

    class Normalize:
        pass

    class Dense:
        pass

    class St(list):  # type: ignore[type-arg]
        tokenizer = type("Tok", (), {"backend_tokenizer": Tokenizer(
            WordLevel({"[UNK]": 0, "hello": 1}, unk_token="[UNK]"))})()
        max_seq_length = 8

    mean = {"pooling_mode": "mean"}
    # accepted: the fakes pass every check but the shape
    assert DirectOnnx.of(St([Transformer(), Pooling(mean)])) is not None
    assert DirectOnnx.of(St([Transformer(), Pooling(mean), Normalize()])) is not None
    assert DirectOnnx.of(St([Transformer(), Pooling(
        {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False})])) is not None
    # refused by the shape check
    assert DirectOnnx.of(St([Transformer(), Pooling({"pooling_mode": "max"})])) is None
    assert DirectOnnx.of(St([Transformer(), Pooling(
        {"pooling_mode_max_tokens": True, "pooling_mode_mean_tokens": False})])) is None
    assert DirectOnnx.of(St([Transformer(), Pooling(
        {"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": True})])) is None
    assert DirectOnnx.of(St([Transformer(), Pooling(mean), Dense()])) is None
    assert DirectOnnx.of(St([Transformer(), Pooling({**mean, "include_prompt": False})])) is None
    # and without a session (torch backend) there is nothing to call directly
    assert DirectOnnx.of(St([Transformer(session=None), Pooling(mean)])) is None
    tokens = np.array([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]], dtype=np.float32)
    assert mean_pool(tokens, np.array([[1, 1, 0]])).tolist() == [[2.0, 3.0]]  # padding ignored
