"""Embedding throughput of the Ray engine against the local one, on this machine.

    .venv/bin/python bench/ray_bench.py [--copies 10] [--batch-size 32] [--json out.json]

The corpus is the repo corpus replicated ``--copies`` times under different names (10 copies
are about 1,000 chunks; 20 about 2,000). Chunk vectors only (``sentence_vectors`` off), so
"chunks/s" is what it says. In one run, one after another:

  local       the in-process engine (the model is already loaded, as in `rag index`)
  ray x1      Ray Data, 1 actor, on a two-node Ray cluster on 127.0.0.1
  ray x2      Ray Data, 2 actors, one per node, same cluster
  local       again, last: on a shared machine the load drifts; Ray is compared to the mean

Each is a full ``build_index`` run; the table reports the embedding step's wall time, which
for Ray includes connecting, starting the actors and loading one model per actor. A tiny run
(the smallest file) per Ray set-up measures that fixed start-up, so a steady rate is estimated as
chunks / (embed time - start-up). Both "nodes" share this machine's cores, so ray x2 shows
the cost of spreading work, not scale-out; the last table projects to real clusters from the
per-core steady rate and is labelled as a projection: nothing there is measured.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common import ROOT, machine_info, md_table

from rag.config import Settings
from rag.indexing.build import EmbedStep, build_index
from rag.indexing.embedding import Embedder, load_embedder
from rag.indexing.generation import open_current
from rag.indexing.store import index_lock

NODE: dict[str, Any] = {"num_cpus": 3, "node_ip_address": "127.0.0.1", "object_store_memory": 200 * 2**20}
CLUSTER_CORES = (8, 32, 128)  # the projection's cluster sizes


@dataclass(frozen=True)
class Result:
    """One engine set-up's measured run."""

    engine: str
    actors: int
    nodes: int
    chunks: int
    embed_s: float
    total_s: float
    startup_s: float  # the fixed cost of a tiny run (0 for the local engine)

    @property
    def rate(self) -> float:
        """Chunks per second over the whole embedding step."""
        return self.chunks / self.embed_s

    @property
    def steady(self) -> float:
        """Chunks per second once the actors are up (an estimate for Ray)."""
        return self.chunks / max(self.embed_s - self.startup_s, 1e-9)


def replicate(files: list[Path], dst: Path, copies: int) -> Path:
    """dst holding `copies` copies of the files, each under its own name."""
    dst.mkdir(parents=True)
    for k in range(copies):
        for f in files:
            shutil.copyfile(f, dst / f"copy{k:02d}-{f.name}")
    return dst


def one_run(corpus: Path, work: Path, name: str, embedder: Embedder,
            make_step: Callable[[Embedder], EmbedStep] | None) -> tuple[float, float, int, int]:
    """A full build into a fresh index: (embed s, total s, chunks, nodes that embedded)."""
    settings = Settings(corpus_dir=corpus, index_dir=work / name, sentence_vectors=False)
    t0 = time.perf_counter()
    with index_lock(settings.index_dir):
        report = build_index(settings, full=True, embedder=embedder, make_step=make_step)
    total = time.perf_counter() - t0
    gen = open_current(settings.index_dir)
    nodes = len(gen.manifest["engine"].get("nodes", [])) or 1
    gen.close()
    return report.embed_seconds, total, report.chunks_embedded, nodes


def main() -> None:
    """Run the three set-ups and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=10, help="corpus copies (10: ~1000 chunks)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # before Ray is imported: keep loopback addresses; no usage reports, no metrics polling
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["RAY_DATA_USAGE_DISABLED"] = "1"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from ray.cluster_utils import Cluster

    from rag.indexing.distributed import ray_embed_step

    work = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    cluster = None
    try:
        files = sorted(f for f in (ROOT / "corpus").iterdir() if f.is_file())
        corpus = replicate(files, work / "corpus", args.copies)
        tiny = replicate([min(files, key=lambda f: f.stat().st_size)], work / "tiny", 1)
        settings = Settings(corpus_dir=corpus)
        embedder = load_embedder(settings)
        embedder.embed(["warm-up"])
        results = []

        e, t, n, _ = one_run(corpus, work, "local", embedder, None)
        results.append(Result("local (first)", 1, 1, n, e, t, 0.0))
        print(f"local: {n} chunks, {e:.1f} s", flush=True)

        cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
        cluster.add_node(**NODE)
        cluster.wait_for_nodes()
        for actors in (1, 2):
            step = ray_embed_step(settings, cluster.address, actors, args.batch_size, 0)
            # the fixed cost: the same set-up on a tiny corpus (the smallest file)
            startup, _, tiny_n, _ = one_run(tiny, work, f"tiny-{actors}", embedder, step)
            startup -= tiny_n / results[0].rate  # minus the work itself, at the local rate
            e, t, n, nodes = one_run(corpus, work, f"ray-{actors}", embedder, step)
            results.append(Result(f"ray x{actors}", actors, nodes, n, e, t, max(startup, 0.0)))
            print(f"ray x{actors}: {n} chunks, {e:.1f} s on {nodes} node(s)", flush=True)
        # the local engine again: on a shared machine the load drifts during the run
        e, t, n, _ = one_run(corpus, work, "local-again", embedder, None)
        results.append(Result("local (last)", 1, 1, n, e, t, 0.0))
        print(f"local again: {n} chunks, {e:.1f} s", flush=True)
    finally:
        if cluster is not None:
            import ray

            if ray.is_initialized():
                ray.shutdown()
            cluster.shutdown()
        shutil.rmtree(work, ignore_errors=True)

    info = machine_info()
    cores = int(info["cores"] or 1)
    locals_ = [r for r in results if r.engine.startswith("local")]
    local_s = sum(r.embed_s for r in locals_) / len(locals_)
    print(f"\n## Ray embedding throughput ({info['date']})\n")
    print(f"{info['cpu']}, {cores} cores, {info['ram_gib']:.0f} GiB; load {info['loadavg']}; "
          f"ray {_version('ray')}; corpus: repo corpus x{args.copies} = {results[0].chunks} "
          f"chunks, batch size {args.batch_size}; both Ray nodes on this one machine\n")
    print(md_table(
        ["engine", "actors", "nodes that embedded", "chunks", "embed s", "index s",
         "chunks/s", "embed time vs local (mean)", "start-up s (est.)",
         "steady chunks/s (est.)"],
        [[r.engine, r.actors, r.nodes, r.chunks, r.embed_s, r.total_s, r.rate,
          f"{(r.embed_s / local_s - 1) * 100:+.0f} %", r.startup_s, r.steady]
         for r in results]))

    # per core: the two-actor run keeps every core of this machine busy
    both = next(r for r in results if r.actors == 2)
    per_core = both.steady / min(both.actors, cores)
    print(f"\n### Projection, not measured: {per_core:.1f} chunks/s per core (the ray x2 "
          f"steady rate / {min(both.actors, cores)} cores) x cores, plus "
          f"{both.startup_s:.0f} s start-up\n")
    print("Assumes one single-threaded actor per core at this machine's per-core rate, a "
          "driver and network that keep up, and linear scaling. Measured on one "
          f"{cores}-core machine only.\n")
    print(md_table(["cluster cores (projection)", "chunks/s (projection)",
                    "1M chunks, minutes (projection)"],
                   [[c, per_core * c, (1e6 / (per_core * c) + both.startup_s) / 60]
                    for c in CLUSTER_CORES]))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "copies": args.copies,
                                         "results": [asdict(r) | {"rate": r.rate,
                                                                  "steady": r.steady}
                                                     for r in results],
                                         "per_core_projection_base": per_core}, indent=2))


def _version(package: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


if __name__ == "__main__":
    main()
