"""`rag index --engine ray` on a real two-node Ray cluster on loopback.

The oracle is the local engine: the same corpus, the same bundled model, indexed in-process.
The Ray engine must give the same chunks, vectors and answers; spread its work over both
nodes; re-embed only what changed; survive (or cleanly refuse) a killed actor and a lost
node without ever publishing a partial generation; work from the CLI; and two servers over
one index folder must follow a Ray re-index without a failed request.

One cluster (a head and one worker node, both on 127.0.0.1) serves the whole module.
Every call that talks to the cluster runs under a time bound, so a hung cluster fails a
test instead of the run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest

from rag.config import Settings
from rag.errors import ConfigError, RagError
from rag.evaluation.evaluate import load_gold
from rag.indexing.build import IndexReport, build_index
from rag.indexing.distributed import RAY_EXTRA, ray_embed_step
from rag.indexing.embedding import Embedder, FakeEmbedder
from rag.indexing.generation import Generation, load_generation, open_current
from rag.indexing.store import (
    TMP_PREFIX,
    generations_dir,
    index_lock,
    list_generations,
    read_current,
)
from rag.search.searcher import Searcher
from rag.text.chunking import embedding_text

from .conftest import CORPUS, DEV_GOLD, ROOT
from .serverutil import HOST, Server, free_port, get_json, running_server

# Before the first `import ray`: Ray otherwise swaps 127.0.0.1 in an address for the
# machine's interface address, and these nodes listen on loopback only. And loopback only:
# no usage reports to ray.io, no Prometheus polls from Ray Data.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ["RAY_DATA_USAGE_DISABLED"] = "1"
pytest.importorskip("ray")
pytestmark = pytest.mark.ray

NODE: dict[str, Any] = {
    "num_cpus": 3,  # with one per node the actors take every CPU and Ray Data stalls
    "node_ip_address": HOST, "object_store_memory": 200 * 2**20}
RUN_S = 240.0  # bound on one real-model indexing run on the cluster (35-50 s here)
CLI_S = 120.0  # bound on one fake-model `rag index` subprocess
ACTOR_MARK = "_EmbedActor"  # in the process title of every embedding actor
CHANGED = "sco-ai-cooperation-2025-09-01.txt"
SENTENCE = ("\nThe members also agreed to open a joint quantum sensing laboratory "
            "in Tashkent next spring.\n")
REPORT_LINE = re.compile(
    r"^\+(\d+) files?, ~(\d+) changed, -(\d+) removed, (\d+) chunks embedded, (\d+) reused"
    r"(?:, \d+ skipped)? -> (generation (g-\d{6})|index unchanged) \(\d+\.\d\d s[^)]*\)$")

T = TypeVar("T")
log = logging.getLogger(__name__)


def within(seconds: float, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """fn(*args, **kwargs) in a thread; fail the test, not hang the run, if it takes longer."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread
            out["error"] = e

    t = threading.Thread(target=run, name=f"bounded-{fn.__name__}", daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        pytest.fail(f"{fn.__name__} did not finish within {seconds:.0f} s")
    if "error" in out:
        raise out["error"]
    return out["value"]  # type: ignore[no-any-return]


class _Late(Exception):
    pass


@contextlib.contextmanager
def alarm(seconds: int, what: str) -> Iterator[None]:
    """Bound main-thread work that cannot run in a thread (Ray installs signal handlers)."""
    def ring(_sig: int, _frame: Any) -> None:
        raise _Late(f"{what} did not finish within {seconds} s")

    old = signal.signal(signal.SIGALRM, ring)
    signal.alarm(seconds)
    try:
        yield
    except _Late as e:
        pytest.fail(str(e))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------- the cluster

@dataclass
class RayCluster:
    """A head and one worker node on 127.0.0.1."""

    cluster: Any  # ray.cluster_utils.Cluster
    worker: Any  # ray._private.node.Node

    @property
    def address(self) -> str:
        """The GCS address drivers connect to."""
        return str(self.cluster.address)

    def node_ids(self) -> list[str]:
        """The ids of the live nodes, sorted."""
        return sorted(n.node_id for n in self.cluster.list_all_nodes())

    def raylet_pids(self) -> dict[int, Any]:
        """pid of each node's raylet -> the node (embedding actors are its children)."""
        return {p.process.pid: n for n in self.cluster.list_all_nodes()
                for p in n.all_processes.get("raylet", [])}


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    """Two Ray nodes on loopback for the module; shut down at the end whatever happened."""
    from ray.cluster_utils import Cluster

    with alarm(180, "starting the cluster"):
        cluster = Cluster(initialize_head=True,
                          head_node_args={**NODE, "include_dashboard": False})
    try:
        with alarm(180, "adding the worker node"):
            worker = cluster.add_node(**NODE)
            cluster.wait_for_nodes()
        yield RayCluster(cluster, worker)
    finally:
        import ray

        with alarm(180, "stopping the cluster"):
            if ray.is_initialized():
                ray.shutdown()
            cluster.shutdown()


def index_with_ray(settings: Settings, address: str, embedder: Embedder | None = None,
                   full: bool = False, actors: int = 2) -> IndexReport:
    """One `rag index --engine ray` run in this process, under the index lock."""
    make_step = ray_embed_step(settings, address, actors, 32, 0)
    with index_lock(settings.index_dir):
        return build_index(settings, full=full, embedder=embedder, make_step=make_step)


def rag_cli(*args: str | Path, timeout: float = CLI_S) -> subprocess.CompletedProcess[str]:
    """`python -m rag.serve.cli ARGS` in a subprocess, bounded."""
    return subprocess.run([sys.executable, "-m", "rag.serve.cli", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})


def copy_corpus(dst: Path) -> Path:
    """A copy of the repo corpus (safe to edit)."""
    shutil.copytree(CORPUS, dst)
    return dst


@dataclass(frozen=True)
class Run:
    """An index built with the Ray engine and the real model."""

    settings: Settings
    report: IndexReport


@pytest.fixture(scope="module")
def ray_run(ray_cluster: RayCluster, real_embedder: Embedder,
            tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The repo corpus (a copy) indexed on the cluster: 2 actors, batches of 32."""
    base = tmp_path_factory.mktemp("ray-run")
    settings = Settings(corpus_dir=copy_corpus(base / "corpus"), index_dir=base / "index")
    report = within(RUN_S, index_with_ray, settings, ray_cluster.address, real_embedder)
    assert report.generation is not None
    return Run(settings, report)


def copy_run(run: Run, dst: Path) -> Settings:
    """The run's corpus and index copied to dst (so a test may change them)."""
    shutil.copytree(run.settings.corpus_dir, dst / "corpus")
    shutil.copytree(run.settings.index_dir, dst / "index")
    return Settings(corpus_dir=dst / "corpus", index_dir=dst / "index")


def spans(gen: Generation) -> list[tuple[str, int, int, str]]:
    """(file, start, end, text) of every chunk, in row order."""
    return [(c.file, c.start, c.end, c.text) for c in gen.chunks(list(range(gen.size)))]


def assert_same_vectors(a: np.ndarray, b: np.ndarray, what: str) -> None:
    """Row by row, cosine within 1e-5 of 1 (both are unit vectors)."""
    assert a.shape == b.shape, what
    cos = np.einsum("ij,ij->i", a.astype(np.float64), b.astype(np.float64))
    worst = int(np.argmin(cos)) if len(cos) else 0
    assert not len(cos) or cos[worst] >= 1 - 1e-5, f"{what}: row {worst} cosine {cos[worst]}"


def assert_same_content(gen: Generation, ref: Generation) -> None:
    """The same chunks, sentences and vectors as the reference generation."""
    assert spans(gen) == spans(ref)
    for x, y in ((gen.sent_row, ref.sent_row), (gen.sent_start, ref.sent_start),
                 (gen.sent_end, ref.sent_end)):
        assert np.array_equal(x, y)
    assert_same_vectors(gen.dense.vectors(), ref.dense.vectors(), "chunk vectors")
    assert gen.sentences is not None and ref.sentences is not None
    assert_same_vectors(gen.sentences.vectors(), ref.sentences.vectors(), "sentence vectors")


# ---------------------------------------------------------------- the same index as local

def test_ray_engine_gives_the_local_engines_chunks_vectors_and_answers(
        ray_run: Run, real_index: Settings, real_embedder: Embedder) -> None:
    ray_gen = open_current(ray_run.settings.index_dir)
    local_gen = open_current(real_index.index_dir)
    try:
        assert (ray_gen.manifest["engine"]["name"], local_gen.manifest["engine"]["name"]) == \
            ("ray", "local")
        assert ray_gen.size > 50 and ray_gen.sentences is not None
        assert_same_content(ray_gen, local_gen)
    finally:
        ray_gen.close()
        local_gen.close()

    on_ray = Searcher(ray_run.settings, embedder=real_embedder)
    local = Searcher(real_index, embedder=real_embedder)
    items = load_gold(DEV_GOLD)
    assert items
    for item in items:
        for mode in ("hybrid", "dense", "lexical"):
            got = [(p.file, p.start, p.end) for p in on_ray.ask(item.question, 5, mode).passages]
            want = [(p.file, p.start, p.end) for p in local.ask(item.question, 5, mode).passages]
            assert got == want, (item.id, mode)


def test_both_nodes_did_embedding_work(ray_run: Run, ray_cluster: RayCluster) -> None:
    gen = open_current(ray_run.settings.index_dir)
    try:
        engine = gen.manifest["engine"]
    finally:
        gen.close()
    assert engine == {"name": "ray", "actors": 2, "batch_size": 32,
                      "nodes": ray_cluster.node_ids(), "address": ray_cluster.address}
    assert len(engine["nodes"]) == 2
    assert ray_run.report.chunks_embedded == ray_run.report.chunks_total > 0


def test_incremental_ray_run_embeds_only_the_changed_file(
        ray_run: Run, ray_cluster: RayCluster, real_embedder: Embedder, tmp_path: Path) -> None:
    settings = copy_run(ray_run, tmp_path)
    prev = open_current(settings.index_dir)
    with open(settings.corpus_dir / CHANGED, "a", encoding="utf-8") as f:
        f.write(SENTENCE)
    report = within(RUN_S, index_with_ray, settings, ray_cluster.address, real_embedder)
    gen = open_current(settings.index_dir)
    try:
        assert gen.name == report.generation != prev.name
        assert gen.manifest["engine"]["name"] == "ray"
        assert (report.added, report.changed, report.removed) == ([], [CHANGED], [])
        fresh = gen.manifest["documents"][CHANGED]["chunks"]
        assert report.chunks_embedded == fresh > 0
        assert report.chunks_reused == gen.size - fresh == prev.size - prev.rows_of(CHANGED).size

        # every other file's vectors are the previous generation's, bit for bit
        keep_new = np.setdiff1d(np.arange(gen.size), gen.rows_of(CHANGED))
        keep_old = np.setdiff1d(np.arange(prev.size), prev.rows_of(CHANGED))
        assert np.array_equal(gen.dense.vectors()[keep_new], prev.dense.vectors()[keep_old])
        # and the changed file's are what the model gives for its chunks
        texts = [embedding_text(c) for c in gen.chunks_of(CHANGED)]
        assert_same_vectors(gen.dense.vectors()[gen.rows_of(CHANGED)],
                            real_embedder.embed(texts), CHANGED)
    finally:
        gen.close()
        prev.close()


# ---------------------------------------------------------------- the CLI

def test_cli_indexes_on_the_cluster(ray_cluster: RayCluster, tmp_path: Path) -> None:
    corpus, index = copy_corpus(tmp_path / "corpus"), tmp_path / "index"
    args = ("index", "--engine", "ray", "--ray-address", ray_cluster.address,
            "--embed-actors", "2", "--corpus", corpus, "--index", index, "--model", "fake")
    done = rag_cli(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    m = REPORT_LINE.match(done.stdout.strip().splitlines()[-1])
    assert m and m.group(1) == "5" and m.group(7) == read_current(index), done.stdout
    gen = open_current(index)
    try:
        assert int(m.group(4)) == gen.size
        engine = gen.manifest["engine"]
        assert (engine["name"], engine["actors"], engine["address"]) == \
            ("ray", 2, ray_cluster.address)
    finally:
        gen.close()

    again = rag_cli(*args)  # nothing changed: nothing reaches the cluster
    assert again.returncode == 0, again.stderr[-3000:]
    m2 = REPORT_LINE.match(again.stdout.strip().splitlines()[-1])
    assert m2 and m2.group(6) == "index unchanged", again.stdout
    assert (m2.group(4), m2.group(5)) == ("0", m.group(4))


def test_cli_names_an_address_where_no_cluster_listens(tmp_path: Path) -> None:
    nobody = f"{HOST}:{free_port()}"
    done = rag_cli("index", "--engine", "ray", "--ray-address", nobody, "--corpus",
                   copy_corpus(tmp_path / "corpus"), "--index", tmp_path / "index",
                   "--model", "fake", timeout=60)
    assert done.returncode == 2
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and nobody in errors[0] and "--ray-address" in errors[0], \
        done.stderr[-2000:]
    assert read_current(tmp_path / "index") is None


def test_without_ray_the_engine_asks_for_the_extra(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails
    with pytest.raises(ConfigError, match=re.escape(RAY_EXTRA)):
        ray_embed_step(Settings(corpus_dir=tmp_path, index_dir=tmp_path, model="fake"))


class _OtherModel(FakeEmbedder):
    """The fake model with another fingerprint: what the nodes load is not what it is."""

    fingerprint = "fake-other"


def test_a_node_with_another_model_fails_the_run_and_publishes_nothing(
        ray_cluster: RayCluster, tmp_path: Path) -> None:
    settings = Settings(corpus_dir=copy_corpus(tmp_path / "corpus"), index_dir=tmp_path / "index",
                        model="fake")
    with pytest.raises(RagError) as caught:
        within(CLI_S, index_with_ray, settings, ray_cluster.address, _OtherModel())
    msg = str(caught.value)
    assert msg.startswith("ray embedding failed:") and msg.endswith("nothing was published")
    assert "fake-other" in msg and "install the same model on every node" in msg
    assert "\n" not in msg
    assert read_current(settings.index_dir) is None
    assert list_generations(settings.index_dir) == []


def test_gpus_the_cluster_does_not_have_are_refused_not_waited_for(
        ray_cluster: RayCluster, tmp_path: Path) -> None:
    settings = Settings(corpus_dir=copy_corpus(tmp_path / "corpus"), index_dir=tmp_path / "index",
                        model="fake")
    step = ray_embed_step(settings, ray_cluster.address, 2, 32, 1.0)(FakeEmbedder())
    with pytest.raises(ConfigError, match=r"--gpus-per-actor=1.0 but .* has 0 GPUs"):
        within(CLI_S, step, ["a text"])


def test_a_run_with_nothing_to_embed_leaves_the_cluster_alone() -> None:
    nobody = f"{HOST}:{free_port()}"  # would fail at once if the step tried to connect
    step = ray_embed_step(Settings(model="fake"), nobody, 3, 16, 0)(FakeEmbedder())
    vectors, engine = step([])
    assert vectors.shape == (0, FakeEmbedder().dim)
    assert engine == {"name": "ray", "actors": 3, "batch_size": 16, "nodes": [],
                      "address": nobody}


# ---------------------------------------------------------------- two servers, one index

def test_two_servers_follow_a_ray_reindex_without_a_failed_request(
        ray_cluster: RayCluster, tmp_path: Path) -> None:
    corpus, index = copy_corpus(tmp_path / "corpus"), tmp_path / "index"
    # the first server builds the first generation (in-process); the second loads it
    with running_server(corpus, index, tmp_path / "a.log", model="fake") as a, \
            running_server(corpus, index, tmp_path / "b.log", model="fake") as b:
        servers: list[Server] = [a, b]
        old = read_current(index)
        assert old is not None
        assert a.port != b.port
        assert all(get_json(f"{s.url}/readyz")[1]["generation"] == old for s in servers)

        stop = threading.Event()
        seen: dict[str, set[str]] = {s.url: set() for s in servers}
        failures: list[str] = []
        asked = [0]

        def client() -> None:
            with httpx.Client(timeout=10, trust_env=False) as http:
                while not stop.is_set():
                    for s in servers:
                        try:
                            r = http.post(f"{s.url}/ask", json={
                                "question": "quantum sensing laboratory in Tashkent"})
                            if r.status_code != 200 or not r.json()["passages"]:
                                failures.append(f"{s.url}: {r.status_code} {r.text[:200]}")
                            else:
                                seen[s.url].add(r.json()["index"]["generation"])
                        except (httpx.HTTPError, ValueError, KeyError) as e:
                            failures.append(f"{s.url}: {e!r}")
                        asked[0] += 1

        t = threading.Thread(target=client, name="client", daemon=True)
        t.start()
        try:
            with open(corpus / CHANGED, "a", encoding="utf-8") as f:
                f.write(SENTENCE)
            # a third process re-indexes on the cluster
            second = rag_cli("index", "--engine", "ray", "--ray-address", ray_cluster.address,
                             "--corpus", corpus, "--index", index, "--model", "fake")
            assert second.returncode == 0, second.stderr[-3000:]
            new = read_current(index)
            assert new is not None and new != old
            gen = load_generation(index, new)
            assert gen.manifest["engine"]["name"] == "ray"
            gen.close()

            deadline = time.monotonic() + 20
            pending = list(servers)
            while pending and time.monotonic() < deadline:
                pending = [s for s in pending
                           if get_json(f"{s.url}/readyz")[1].get("generation") != new]
                time.sleep(0.2)
            assert not pending, [s.log_tail() for s in pending]
            time.sleep(0.5)  # a few more questions against the new generation
        finally:
            stop.set()
            t.join(30)
        assert not t.is_alive()
        assert not failures, failures[:5]
        assert asked[0] >= 10
        for s in servers:
            assert new in seen[s.url], (s.url, seen[s.url])
            body = get_json(f"{s.url}/documents")[1]
            assert any(d["path"] == CHANGED for d in body)


# ---------------------------------------------------------------- faults

@dataclass
class Chaos:
    """Once the first embedded batch is back at the driver, do one harmful thing: the run is
    then surely going (more batches to come), however fast the machine is."""

    cluster: RayCluster
    harm: Callable[[RayCluster, dict[int, int]], str]  # actor pid -> its raylet's pid
    done: list[str] = field(default_factory=list)

    def actors(self) -> dict[int, tuple[int, str]]:
        """pid -> (raylet pid, process title) of the cluster's embedding actors (/proc)."""
        raylets = self.cluster.raylet_pids()
        found = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    title = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid in raylets and ACTOR_MARK in title:
                found[int(d)] = (ppid, title)
        return found

    def fire(self) -> None:
        """Harm now (called from the driver's batch loop, after its first batch)."""
        actors = self.actors()
        assert actors, "no embedding actor found while batches were coming back"
        self.done.append(self.harm(self.cluster, {p: pp for p, (pp, _) in actors.items()}))

    def after_first_batch(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Wrap Ray Data's batch iterator so that fire() runs once the first batch is in."""
        import ray.data

        real = ray.data.Dataset.iter_batches
        chaos = self

        def iter_batches(ds, *args, **kwargs):  # type: ignore[no-untyped-def]
            for n, batch in enumerate(real(ds, *args, **kwargs)):
                yield batch
                if n == 0 and not chaos.done:
                    chaos.fire()

        monkeypatch.setattr(ray.data.Dataset, "iter_batches", iter_batches)


def kill_an_actor(cluster: RayCluster, actors: dict[int, int]) -> str:
    """SIGKILL one embedding actor's process (the worker node's if it has one)."""
    worker_raylets = [pid for pid, n in cluster.raylet_pids().items() if n is cluster.worker]
    pid = next((p for p, parent in actors.items() if parent in worker_raylets), min(actors))
    os.kill(pid, signal.SIGKILL)
    return f"killed actor pid {pid}"


def lose_the_worker_node(cluster: RayCluster, actors: dict[int, int]) -> str:
    """Remove the worker node with everything on it (its actor, its objects)."""
    cluster.cluster.remove_node(cluster.worker, allow_graceful=False)
    return "removed the worker node"


def disturbed_run(ray_run: Run, cluster: RayCluster, embedder: Embedder, tmp_path: Path,
                  harm: Callable[[RayCluster, dict[int, int]], str],
                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A full re-index on the cluster, harmed mid-run: it must finish with the undisturbed
    vectors or fail with RagError; CURRENT never names a partial generation either way."""
    settings = copy_run(ray_run, tmp_path)
    before = read_current(settings.index_dir)
    assert before is not None
    names = list_generations(settings.index_dir)
    chaos = Chaos(cluster, harm)
    chaos.after_first_batch(monkeypatch)
    try:
        # a harmed run restarts actors and re-does batches: bound it generously (a hang, not
        # slowness, is the failure; this machine may be running other work)
        report: IndexReport | None = within(3 * RUN_S, index_with_ray, settings,
                                            cluster.address, embedder, full=True)
        error = None
    except RagError as e:
        report, error = None, e
    assert chaos.done, "the harm never happened while the run was going"
    log.info("%s: %s", chaos.done[0], f"failed cleanly ({error})" if error else "finished")

    leftovers = [p.name for p in generations_dir(settings.index_dir).iterdir()
                 if p.name.startswith(TMP_PREFIX)]
    assert not leftovers
    if error is not None:
        msg = str(error)
        assert msg.startswith("ray embedding failed") and "nothing was published" in msg
        assert "\n" not in msg
        assert read_current(settings.index_dir) == before
        assert list_generations(settings.index_dir) == names
    else:
        assert report is not None and report.generation == read_current(settings.index_dir)
        assert report.generation != before
    gen = open_current(settings.index_dir)  # loads and validates what CURRENT names
    prev = load_generation(settings.index_dir, before)  # the previous one is intact
    ref = open_current(ray_run.settings.index_dir)
    try:
        assert gen.name == read_current(settings.index_dir)
        assert_same_content(gen, ref)
        assert_same_content(prev, ref)
    finally:
        for g in (gen, prev, ref):
            g.close()


def test_a_killed_actor_is_retried_or_the_run_publishes_nothing(
        ray_run: Run, ray_cluster: RayCluster, real_embedder: Embedder, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    disturbed_run(ray_run, ray_cluster, real_embedder, tmp_path, kill_an_actor, monkeypatch)


def test_a_lost_node_is_survived_or_the_run_publishes_nothing(
        ray_run: Run, ray_cluster: RayCluster, real_embedder: Embedder, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        disturbed_run(ray_run, ray_cluster, real_embedder, tmp_path, lose_the_worker_node,
                      monkeypatch)
    finally:  # give later tests (in any order) their second node back
        if ray_cluster.worker not in ray_cluster.cluster.list_all_nodes():
            with alarm(180, "adding the worker node back"):
                ray_cluster.worker = ray_cluster.cluster.add_node(**NODE)
                ray_cluster.cluster.wait_for_nodes()
