"""The embedding step on Ray Data: the same vectors as ``local_embed_step``, from a cluster.

Only the embedding leaves the driver. Chunking, the diff by sha256, reuse of unchanged
vectors, the lock and the atomic publish stay in ``build.py``, so a run that fails here
has written nothing: the generation's temp folder is created only after embedding returns.

    driver: texts -> Dataset{i, text} -> map_batches(_EmbedActor, N actors) -> {i, vector, node}
    actors: one model each, loaded once in __init__; rows come back to the driver by index

Ray is an optional extra (``pip install '.[ray]'``) and is imported only inside functions.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Settings
from ..errors import ConfigError, RagError
from .build import EmbedStep
from .embedding import Embedder

log = logging.getLogger(__name__)

RAY_EXTRA = "the Ray engine needs the extra: pip install '.[ray]'"
# An actor that dies (process killed, node lost) is restarted at most this many times;
# its batches are retried for as long as it can come back (-1), because a batch sent while
# the actor restarts fails at once and would use up a small retry budget in a second.
MAX_RESTARTS = 2
MAX_TASK_RETRIES = -1


@dataclass(frozen=True)
class ModelSpec:
    """What an actor needs to load the driver's model on its own node."""

    model: str
    backend: str
    onnx_cache_dir: Path | None  # None: the node's default
    batch_size: int
    fingerprint: str  # the driver's: every actor must load the very same weights
    dim: int


class _EmbedActor:
    """One model per actor, loaded once; embeds batches of ``{i, text}`` rows."""

    def __init__(self, spec: ModelSpec) -> None:
        import ray

        from .embedding import load_embedder

        given = {"model": spec.model, "backend": spec.backend, "quantize_queries": False,
                 "embed_batch_size": spec.batch_size, "onnx_cache_dir": spec.onnx_cache_dir}
        settings = Settings.model_validate({k: v for k, v in given.items() if v is not None})
        self.embedder = load_embedder(settings)
        self.node = ray.get_runtime_context().get_node_id()
        if (self.embedder.fingerprint, self.embedder.dim) != (spec.fingerprint, spec.dim):
            raise ConfigError(
                f"node {self.node} loads model {spec.model!r} with fingerprint "
                f"{self.embedder.fingerprint[:12]} (dim {self.embedder.dim}), the driver "
                f"has {spec.fingerprint[:12]} (dim {spec.dim}); install the same model "
                "on every node")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Vectors for a batch, with the row indexes and the node that did the work."""
        texts = [str(t) for t in batch["text"]]
        vectors = self.embedder.embed(texts)
        return {"i": np.asarray(batch["i"], dtype=np.int64), "vector": vectors,
                "node": np.full(len(texts), self.node)}


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise ConfigError(RAY_EXTRA) from e
    return ray


def _connect(ray: Any, address: str | None) -> tuple[str, bool]:
    """Join the cluster at address (or RAY_ADDRESS, or a new local one); (label, we_started)."""
    if ray.is_initialized():  # the caller already holds a connection: use it as it is
        return ray.get_runtime_context().gcs_address, False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        _check_reachable(address)
    try:
        if address:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        else:
            ray.init(include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as e:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
        raise ConfigError(f"cannot connect to {where} ({one_line(e)}); check --ray-address "
                          "or RAY_ADDRESS, or leave both unset to start a local Ray") from e
    return (address or "local"), True


def _check_reachable(address: str) -> None:
    """Fail in seconds on an address nothing listens on (ray.init would retry for minutes)."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto" and other forms Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as e:
        raise ConfigError(f"no Ray cluster answers at {address!r} ({e.strerror or e}); start "
                          "one with `ray start --head`, or fix --ray-address / RAY_ADDRESS"
                          ) from e


def _check_resources(ray: Any, label: str, gpus_per_actor: float) -> None:
    """Refuse what no node can host: Ray would wait for it forever, not fail."""
    have = ray.cluster_resources()
    if have.get("CPU", 0) < 1:
        raise ConfigError(f"the Ray cluster at {label} has no CPU for an embedding actor")
    if gpus_per_actor > have.get("GPU", 0):
        raise ConfigError(
            f"--gpus-per-actor={gpus_per_actor} but the Ray cluster at {label} has "
            f"{have.get('GPU', 0):g} GPUs; use --gpus-per-actor 0 or add GPU nodes")


def one_line(e: BaseException) -> str:
    """An exception as one short line (Ray's carry whole remote tracebacks)."""
    lines = [s.strip() for s in str(e).splitlines() if s.strip()]
    # A remote traceback ends with the error that caused it; say that, not the frames.
    text = lines[-1] if lines else type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def embed_on_ray(texts: Sequence[str], spec: ModelSpec, actors: int, batch_size: int,
                 gpus_per_actor: float) -> tuple[np.ndarray, list[str]]:
    """Unit vectors for texts in their order, and the node ids that embedded them.

    Needs a Ray connection; every failure of the cluster propagates to the caller."""
    import ray.data

    vectors = np.zeros((len(texts), spec.dim), np.float32)
    seen = np.zeros(len(texts), bool)
    nodes: set[str] = set()
    with warnings.catch_warnings():
        # Ray Data warns about its own deprecated settings, and about max_restarts /
        # max_task_retries, which have no named parameter yet (only **ray_remote_args).
        warnings.simplefilter("ignore", DeprecationWarning)
        ray.data.DataContext.get_current().enable_progress_bars = sys.stderr.isatty()
        blocks = max(1, min(math.ceil(len(texts) / batch_size), 1000))
        ds: ray.data.Dataset = ray.data.from_items(
            [{"i": i, "text": t} for i, t in enumerate(texts)], override_num_blocks=blocks)
        ds = ds.map_batches(_EmbedActor, fn_constructor_args=(spec,), batch_size=batch_size,
                            batch_format="numpy",
                            compute=ray.data.ActorPoolStrategy(size=actors),
                            num_cpus=1, num_gpus=gpus_per_actor or None,
                            max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES,
                            scheduling_strategy="SPREAD")  # one actor per node first
        # batches come back in any order: place each row by its index
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            idx = batch["i"].astype(np.int64)
            vectors[idx] = batch["vector"]
            seen[idx] = True
            nodes.update(str(n) for n in np.unique(batch["node"]))
    if not seen.all():
        missing = int((~seen).sum())
        raise RuntimeError(f"{missing} of {len(texts)} texts came back without a vector")
    return vectors, sorted(nodes)


def ray_embed_step(settings: Settings, address: str | None = None, actors: int = 2,
                   batch_size: int = 32, gpus_per_actor: float = 0.0
                   ) -> Callable[[Embedder], EmbedStep]:
    """A ``make_step`` for ``build_index`` that embeds on a Ray cluster with N actors."""
    _import_ray()  # fail before the lock is taken, not after chunking
    if actors < 1:
        raise ConfigError(f"--embed-actors={actors} must be at least 1")
    if batch_size < 1:
        raise ConfigError(f"--embed-batch-size={batch_size} must be at least 1")
    if gpus_per_actor < 0:
        raise ConfigError(f"--gpus-per-actor={gpus_per_actor} must be 0 or more")

    def make_step(embedder: Embedder) -> EmbedStep:
        # the ONNX cache default is under each node's own home, not the driver's
        cache = (settings.onnx_cache_dir if "onnx_cache_dir" in settings.model_fields_set
                 else None)
        spec = ModelSpec(settings.model, settings.backend, cache, settings.embed_batch_size,
                         embedder.fingerprint, embedder.dim)

        def step(texts: Sequence[str]) -> tuple[np.ndarray, dict[str, Any]]:
            engine: dict[str, Any] = {"name": "ray", "actors": actors,
                                      "batch_size": batch_size, "nodes": [],
                                      "address": address or os.environ.get("RAY_ADDRESS")
                                      or "local"}
            if not texts:  # only removals: nothing to send to the cluster
                return np.zeros((0, embedder.dim), np.float32), engine
            ray = _import_ray()
            label, started = _connect(ray, address)
            try:
                _check_resources(ray, label, gpus_per_actor)
                try:
                    vectors, nodes = embed_on_ray(texts, spec, actors, batch_size,
                                                  gpus_per_actor)
                except Exception as e:  # actor died beyond retries, node lost, model failed
                    log.debug("ray embedding failed", exc_info=True)
                    raise RagError(f"ray embedding failed: {one_line(e)}; nothing was "
                                   "published") from e
            finally:
                if started:
                    ray.shutdown()
            log.info("embedded %d texts on %d node(s) with %d actor(s)", len(texts),
                     len(nodes), actors)
            return vectors, {**engine, "nodes": nodes, "address": label}
        return step
    return make_step
