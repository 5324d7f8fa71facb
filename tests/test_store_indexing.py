"""The on-disk index and `rag index` with the fake embedder: manifest, incremental re-index,
garbage collection, locking, corruption, disk full, and citations against the bytes on disk.

The oracles are the corpus files themselves (sha256, text at offsets) and the previous
generation's stored vectors; nothing is compared to numbers copied from a run.
"""

from __future__ import annotations

import errno
import fnmatch
import gc
import hashlib
import json
import logging
import os
import queue
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rag
from rag.config import Settings
from rag.errors import IndexCorruptError, IndexLockedError, IndexMismatchError, IndexMissingError
from rag.indexing import generation as generation_module
from rag.indexing import store
from rag.indexing.build import IndexReport, build_index
from rag.indexing.dense import DenseIndex
from rag.indexing.embedding import FakeEmbedder
from rag.indexing.generation import Generation, load_generation, open_current
from rag.indexing.lexical import Postings
from rag.indexing.store import MANIFEST, index_lock, read_current, validate_folder
from rag.search.searcher import Searcher
from rag.text.chunking import embedding_text
from rag.types import Answer

from .conftest import CORPUS, ROOT, fake_settings
from .oracles import assert_exact_passage, file_text

HELPER = Path(__file__).with_name("helpers_index.py")
CHANGED = "sco-ai-cooperation-2025-09-01.txt"
REMOVED = "sco-digitalisation-2022-09-30.txt"
SENTENCE = ("\nThe members also agreed to open a joint quantum sensing laboratory "
            "in Tashkent next spring.\n")
REPORT_LINE = re.compile(
    r"^\+(\d+) files?, ~(\d+) changed, -(\d+) removed, (\d+) chunks embedded, (\d+) reused"
    r"(?:, \d+ skipped)? -> (generation (g-\d{6})|index unchanged) \(\d+\.\d\d s[^)]*\)$")
QUESTIONS = [
    "How will SCO countries cooperate on artificial intelligence?",
    "What is the AI-driven Digital Silk Road?",
    "Where was the SCO Digital Economy Forum held?",
    "data security and cross-border e-commerce",
    "Which is the largest regional organization in the world?",
    "digital transformation across Eurasia",
]


# ---------------------------------------------------------------- helpers

def build(settings: Settings, **kwargs: object) -> IndexReport:
    """build_index under the index lock, as the CLI runs it."""
    with index_lock(settings.index_dir):
        return build_index(settings, **kwargs)  # type: ignore[arg-type]


def rag_cli(*args: str, mode: str | None = None, timeout: float = 120
            ) -> subprocess.CompletedProcess[str]:
    """`rag ARGS` in a subprocess (through tests/helpers_index.py when mode is given)."""
    cmd = ([sys.executable, str(HELPER), mode] if mode else [sys.executable, "-m", "rag.serve.cli"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    return subprocess.run([*cmd, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def last_line(text: str) -> str:
    """The last line of an output (libraries may log above the CLI's own error line)."""
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def index_args(settings: Settings, *extra: str) -> list[str]:
    """Arguments of `rag index` for these settings, fake model."""
    return ["index", "--corpus", str(settings.corpus_dir), "--index", str(settings.index_dir),
            "--model", "fake", *extra]


def report_line(stdout: str) -> re.Match[str]:
    """The CLI's one-line report, parsed."""
    line = stdout.strip().splitlines()[-1]
    m = REPORT_LINE.match(line)
    assert m, f"unexpected report line: {line!r}"
    return m


def entries(index_dir: Path) -> list[str]:
    """Everything in generations/, temp folders included."""
    root = index_dir / "generations"
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def append(corpus: Path, rel: str, text: str = SENTENCE) -> None:
    """Append text to a corpus file."""
    with open(corpus / rel, "a", encoding="utf-8") as f:
        f.write(text)


def corpus_files(corpus: Path) -> dict[str, bytes]:
    """Corpus files as the loader sees them (.txt/.md, relative POSIX paths)."""
    return {p.relative_to(corpus).as_posix(): p.read_bytes()
            for p in sorted(corpus.rglob("*")) if p.suffix in (".txt", ".md")}


def generation(settings: Settings, name: str) -> Generation:
    """A generation loaded by name."""
    return load_generation(settings.index_dir, name)


@pytest.fixture
def indexed(tmp_path: Path, small_corpus: Path) -> Settings:
    """A corpus copy with one published generation."""
    settings = fake_settings(tmp_path, small_corpus)
    assert build(settings).generation == "g-000001"
    return settings


@pytest.fixture(scope="module")
def two_generations(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Read-only: g-000001 from the corpus, g-000002 after one file changed (CURRENT)."""
    root = tmp_path_factory.mktemp("two")
    shutil.copytree(CORPUS, root / "corpus")
    settings = fake_settings(root)
    build(settings)
    append(root / "corpus", CHANGED)
    assert build(settings).generation == "g-000002"
    return settings


@pytest.fixture(scope="module")
def searcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Searcher]:
    """A Searcher with the fake embedder over a fake-built index of the corpus."""
    root = tmp_path_factory.mktemp("search")
    shutil.copytree(CORPUS, root / "corpus")
    settings = fake_settings(root)
    build(settings)
    yield Searcher(settings, embedder=FakeEmbedder())


# ---------------------------------------------------------------- first build, manifest

def test_first_build_publishes_g1_with_complete_manifest(indexed: Settings) -> None:
    index_dir, corpus = indexed.index_dir, indexed.corpus_dir
    assert read_current(index_dir) == "g-000001"
    assert (index_dir / "CURRENT").read_text() == "g-000001\n"
    assert entries(index_dir) == ["g-000001"]

    folder = index_dir / "generations" / "g-000001"
    manifest = validate_folder(folder)
    assert manifest["checksum"] == store.manifest_checksum(manifest)
    assert manifest["format_version"] == store.FORMAT_VERSION
    assert manifest["generation"] == "g-000001"
    fake = FakeEmbedder()
    assert manifest["model"] == {"name": "fake", "fingerprint": fake.fingerprint,
                                 "dim": fake.dim, "max_tokens": fake.max_tokens}
    assert manifest["chunking"] == {"max_tokens": indexed.chunk_tokens,
                                    "overlap_tokens": indexed.chunk_overlap_tokens,
                                    "context_prefix": indexed.context_prefix}
    assert manifest["tool_version"] == rag.__version__
    assert datetime.fromisoformat(manifest["built_at"]).tzinfo is not None

    gen = generation(indexed, "g-000001")
    on_disk = corpus_files(corpus)
    assert set(manifest["documents"]) == set(on_disk)
    for rel, data in on_disk.items():
        doc = manifest["documents"][rel]
        assert doc["sha256"] == hashlib.sha256(data).hexdigest()
        assert doc["size"] == len(data)
        assert doc["chunks"] == len(gen.chunks_of(rel)) > 0
    assert sum(d["chunks"] for d in manifest["documents"].values()) == manifest["chunks"]
    assert manifest["chunks"] == gen.size == gen.dense.size == gen.lexical.size

    # every file of the folder but the manifest itself, with its true hash and size
    listed = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*")
              if p.is_file() and p.name != MANIFEST}
    assert set(manifest["files"]) == set(listed)
    for rel, p in listed.items():
        data = p.read_bytes()
        assert manifest["files"][rel] == {"sha256": hashlib.sha256(data).hexdigest(),
                                          "size": len(data)}
    gen.close()


# ---------------------------------------------------------------- incremental re-index

def test_noop_reindex_publishes_nothing(indexed: Settings) -> None:
    before = (indexed.index_dir / "CURRENT").read_bytes()
    total = open_current(indexed.index_dir).size

    report = build(indexed)

    assert report.generation is None
    assert report.chunks_embedded == 0
    assert report.chunks_reused == report.chunks_total == total
    assert not (report.added or report.changed or report.removed)
    assert report.summary().split(" (")[0].endswith("-> index unchanged")
    assert entries(indexed.index_dir) == ["g-000001"]
    assert (indexed.index_dir / "CURRENT").read_bytes() == before

    out = rag_cli(*index_args(indexed))
    assert out.returncode == 0, out.stderr
    m = report_line(out.stdout)
    assert m.group(4) == "0" and m.group(6) == "index unchanged"
    assert entries(indexed.index_dir) == ["g-000001"]


def test_changed_file_reembeds_only_its_chunks_and_reuses_the_rest(indexed: Settings) -> None:
    append(indexed.corpus_dir, CHANGED)

    report = build(indexed)

    assert report.generation == "g-000002"
    assert report.changed == [CHANGED] and report.added == [] and report.removed == []
    old, new = generation(indexed, "g-000001"), generation(indexed, "g-000002")
    n_changed = new.manifest["documents"][CHANGED]["chunks"]
    assert report.chunks_embedded == n_changed == len(new.chunks_of(CHANGED))
    assert report.chunks_reused == new.size - n_changed
    assert report.chunks_total == new.manifest["chunks"] == new.size
    data = (indexed.corpus_dir / CHANGED).read_bytes()
    assert new.manifest["documents"][CHANGED]["sha256"] == hashlib.sha256(data).hexdigest()

    old_v, new_v = old.dense.vectors(), new.dense.vectors()
    for f in new.files:
        if f.path == CHANGED:
            continue
        assert old.chunks_of(f.path) == new.chunks_of(f.path)
        assert np.array_equal(old_v[old.rows_of(f.path)], new_v[new.rows_of(f.path)]), f.path
    # the changed file's vectors are the embedder's, for its new chunks
    chunks = new.chunks_of(CHANGED)
    assert SENTENCE.strip() in chunks[-1].text
    expected = FakeEmbedder().embed([embedding_text(c) for c in chunks])
    assert np.allclose(new_v[new.rows_of(CHANGED)], expected, atol=1e-6)
    old.close()
    new.close()


def test_cli_reports_changed_added_and_removed_files(tmp_path: Path, small_corpus: Path
                                                     ) -> None:
    settings = fake_settings(tmp_path, small_corpus)
    out = rag_cli(*index_args(settings))
    assert out.returncode == 0, out.stderr
    m = report_line(out.stdout)
    n_files = len(corpus_files(small_corpus))
    assert m.group(1) == str(n_files) and m.group(7) == "g-000001"
    assert f"+{n_files} files, ~0 changed, -0 removed" in out.stdout

    append(small_corpus, CHANGED)
    out = rag_cli(*index_args(settings))
    assert out.returncode == 0, out.stderr
    gen = open_current(settings.index_dir)
    n_changed = gen.manifest["documents"][CHANGED]["chunks"]
    assert "+0 files, ~1 changed, -0 removed" in out.stdout
    assert f", {n_changed} chunks embedded, {gen.size - n_changed} reused" in out.stdout
    assert report_line(out.stdout).group(7) == gen.name == "g-000002"
    gen.close()

    (small_corpus / "new-note.md").write_text(
        "# A new note\n\nThe SCO secretariat opened a data centre in Bishkek.\n")
    out = rag_cli(*index_args(settings))
    assert out.returncode == 0, out.stderr
    assert "+1 file, ~0 changed, -0 removed" in out.stdout
    gen = open_current(settings.index_dir)
    n_new = gen.manifest["documents"]["new-note.md"]["chunks"]
    assert f", {n_new} chunks embedded, {gen.size - n_new} reused" in out.stdout
    gen.close()

    gone_chunks = open_current(settings.index_dir).manifest["documents"][REMOVED]["chunks"]
    (small_corpus / REMOVED).unlink()
    out = rag_cli(*index_args(settings))
    assert out.returncode == 0, out.stderr
    assert "+0 files, ~0 changed, -1 removed, 0 chunks embedded" in out.stdout
    gen = open_current(settings.index_dir)
    assert gen.name == "g-000004"
    assert REMOVED not in gen.file_by_path and REMOVED not in gen.manifest["documents"]
    assert gen.chunks_of(REMOVED) == []
    rows = gen.chunks(list(range(gen.size)))
    assert {c.file for c in rows} == set(corpus_files(small_corpus))
    assert f", {gen.size} reused" in out.stdout
    assert gone_chunks > 0
    gen.close()


def test_full_reembeds_everything(indexed: Settings) -> None:
    report = build(indexed, full=True)
    assert report.generation == "g-000002"
    assert report.chunks_reused == 0
    assert report.chunks_embedded == report.chunks_total == open_current(indexed.index_dir).size

    out = rag_cli(*index_args(indexed, "--full"))
    assert out.returncode == 0, out.stderr
    m = report_line(out.stdout)
    assert m.group(4) == str(report.chunks_total) and m.group(5) == "0"
    assert m.group(7) == "g-000003"


def test_another_model_fingerprint_reembeds_everything(indexed: Settings) -> None:
    class OtherFake(FakeEmbedder):
        fingerprint = "other"

    report = build(indexed, embedder=OtherFake())
    assert report.generation == "g-000002" and report.chunks_reused == 0
    assert open_current(indexed.index_dir).manifest["model"]["fingerprint"] == "other"


# ---------------------------------------------------------------- garbage collection

def test_gc_keeps_the_last_two_generations(indexed: Settings) -> None:
    for i in range(3):
        append(indexed.corpus_dir, CHANGED, f"\nRevision {i} of the agreement.\n")
        build(indexed)
    assert entries(indexed.index_dir) == ["g-000003", "g-000004"]
    assert read_current(indexed.index_dir) == "g-000004"
    assert open_current(indexed.index_dir).name == "g-000004"
    assert validate_folder(indexed.index_dir / "generations" / "g-000003")


def test_next_publishing_run_sweeps_stray_temp_folders(indexed: Settings) -> None:
    gens = indexed.index_dir / "generations"
    stray = gens / ".tmp-g-000007-424242"
    (stray / "lexical").mkdir(parents=True)
    (stray / "dense.faiss").write_bytes(b"half written")
    stray_current = indexed.index_dir / ".tmp-CURRENT.424242"
    stray_current.write_bytes(b"g-0000")

    append(indexed.corpus_dir, CHANGED)
    build(indexed)

    assert entries(indexed.index_dir) == ["g-000001", "g-000002"]
    assert not stray_current.exists()


def test_noop_run_also_sweeps_stray_temp_folders(indexed: Settings) -> None:
    stray = indexed.index_dir / "generations" / ".tmp-g-000002-424242"
    stray.mkdir()
    (stray / "chunks.sqlite").write_bytes(b"\0" * 4096)

    assert build(indexed).generation is None
    assert entries(indexed.index_dir) == ["g-000001"]


# ---------------------------------------------------------------- lock

def test_held_lock_fails_a_second_run(indexed: Settings) -> None:
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with index_lock(indexed.index_dir):
            held.set()
            release.wait(30)

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert held.wait(10)
        with pytest.raises(IndexLockedError, match="another `rag index` is running"):
            with index_lock(indexed.index_dir):
                pass
        append(indexed.corpus_dir, CHANGED)
        out = rag_cli(*index_args(indexed))
    finally:
        release.set()
        t.join()
    assert out.returncode == 2
    assert last_line(out.stderr).startswith("error: another `rag index` is running")
    assert "--lock-timeout" in out.stderr
    assert "Traceback" not in out.stderr
    assert entries(indexed.index_dir) == ["g-000001"]


def test_lock_timeout_waits_for_the_holder_then_succeeds(indexed: Settings) -> None:
    # in-process: a waiter gets the lock once the holder lets go
    released_at: list[float] = []

    def holder(held: threading.Event) -> None:
        with index_lock(indexed.index_dir):
            held.set()
            time.sleep(0.5)
            released_at.append(time.monotonic())

    held = threading.Event()
    t = threading.Thread(target=holder, args=(held,))
    t.start()
    assert held.wait(10)
    with index_lock(indexed.index_dir, timeout_s=10):
        got_at = time.monotonic()
    t.join()
    assert got_at >= released_at[0]

    # through the CLI: the child says it waits for the lock (it has tried and found it held),
    # publishes nothing while it is held, and indexes once it is released
    append(indexed.corpus_dir, CHANGED)
    with index_lock(indexed.index_dir):
        proc = subprocess.Popen(
            [sys.executable, "-m", "rag.serve.cli", *index_args(indexed, "--lock-timeout", "60")],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        err, out = proc.stderr, proc.stdout
        assert err is not None and out is not None
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=lambda: [*map(lines.put, err), lines.put(None)],
                                  daemon=True)
        reader.start()
        said: list[str] = []
        while not any("waiting up to 60 s" in ln for ln in said):
            line = lines.get(timeout=300)  # bounded: Empty fails the test
            assert line is not None, f"the child ended without waiting: {''.join(said)}"
            said.append(line)
        assert proc.poll() is None, said
        assert read_current(indexed.index_dir) == "g-000001"
    stdout = out.read()
    assert proc.wait(timeout=300) == 0, "".join(said) + "".join(ln for ln in lines.queue if ln)
    assert report_line(stdout).group(7) == "g-000002"


# ---------------------------------------------------------------- corruption

@pytest.fixture
def load_spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every time FAISS or BM25 files are read (the loaders segments.py calls)."""
    calls: list[str] = []
    real_dense, real_postings = DenseIndex.load, Postings.load

    def dense_load(path: Path, *a: Any, **kw: Any) -> DenseIndex:
        calls.append(f"dense {path}")
        return real_dense(path, *a, **kw)

    def postings_load(folder: Path, *a: Any, **kw: Any) -> Postings:
        calls.append(f"lexical {folder}")
        return real_postings(folder, *a, **kw)

    monkeypatch.setattr(DenseIndex, "load", staticmethod(dense_load))
    monkeypatch.setattr(Postings, "load", staticmethod(postings_load))
    return calls


def _generation_files(settings: Settings, name: str) -> list[str]:
    """Every file a generation depends on, relative to the index folder: its own folder's
    (manifest, tombstones) and those of every segment it names."""
    folder = settings.index_dir / "generations" / name
    manifest = validate_folder(folder)
    out = [f"generations/{name}/{MANIFEST}",
           *(f"generations/{name}/{rel}" for rel in manifest["files"])]
    for s in manifest["segments"]:
        seg = settings.index_dir / "segments" / s["name"]
        out += [f"segments/{s['name']}/segment.json",
                *(f"segments/{s['name']}/{rel}"
                  for rel in validate_folder(seg, "segment.json")["files"])]
    return out


def _inner(rel: str) -> str:
    """A file's path inside its generation or segment folder (what errors name)."""
    return rel.split("/", 2)[2]


def _copy_index(settings: Settings, dst: Path) -> Path:
    shutil.copytree(settings.index_dir, dst)
    return dst


def test_flipped_byte_in_any_file_is_caught_before_faiss_loads(
        two_generations: Settings, tmp_path: Path, load_spy: list[str]) -> None:
    files = _generation_files(two_generations, "g-000002")
    assert {"chunks.sqlite", "dense.faiss", MANIFEST, "segment.json"} <= {
        _inner(f) for f in files} and len(files) >= 12
    cases = 0
    for rel in files:
        size = (two_generations.index_dir / rel).stat().st_size
        for pos, mask in ((0, 0xFF), (size // 2, 0x01), (size - 1, 0x80)):
            idx = _copy_index(two_generations, tmp_path / f"case{cases}")
            cases += 1
            path = idx / rel
            data = bytearray(path.read_bytes())
            data[pos] ^= mask
            path.write_bytes(bytes(data))
            with pytest.raises(IndexCorruptError) as e:
                load_generation(idx, "g-000002")
            assert "g-000002" in str(e.value)
            assert (_inner(rel) in str(e.value)) if _inner(rel) not in (
                MANIFEST, "segment.json") else "manifest" in str(e.value)
            assert load_spy == [], f"{rel}@{pos}: index files were read before validation"
            shutil.rmtree(idx)
    assert cases == 3 * len(files)
    load_generation(two_generations.index_dir, "g-000002").close()  # both spies are live
    assert any(c.endswith("dense.faiss") for c in load_spy)
    assert any(c.startswith("lexical ") and c.endswith("lexical") for c in load_spy)


def test_truncated_file_is_caught_before_faiss_loads(
        two_generations: Settings, tmp_path: Path, load_spy: list[str]) -> None:
    for i, rel in enumerate(_generation_files(two_generations, "g-000002")):
        for keep in ("half", "empty"):
            idx = _copy_index(two_generations, tmp_path / f"case{i}-{keep}")
            path = idx / rel
            size = path.stat().st_size
            with open(path, "r+b") as f:
                f.truncate(size // 2 if keep == "half" else 0)
            with pytest.raises(IndexCorruptError) as e:
                load_generation(idx, "g-000002")
            msg = str(e.value)
            if _inner(rel) in (MANIFEST, "segment.json"):
                assert "manifest" in msg
            else:
                assert _inner(rel) in msg and f"manifest says {size}" in msg
            assert load_spy == []
            shutil.rmtree(idx)


def test_corrupt_current_falls_back_to_previous_valid_generation(
        two_generations: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    idx = _copy_index(two_generations, tmp_path / "index")
    with open(idx / "segments" / "s-000002" / "dense.faiss", "r+b") as f:  # g-000002's own
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))

    with caplog.at_level(logging.WARNING, logger="rag.indexing.store"):
        gen = open_current(idx)
    assert gen.name == "g-000001"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("g-000002" in w and "g-000001" in w for w in warnings), caplog.text
    assert any("dense.faiss sha256 mismatch" in r.getMessage() for r in caplog.records)
    gen.close()

    # the Searcher serves the fallback too
    s = Settings(corpus_dir=two_generations.corpus_dir, index_dir=idx, model="fake")
    answer = Searcher(s, embedder=FakeEmbedder()).ask(QUESTIONS[0])
    assert answer.index.generation == "g-000001" and answer.passages


def test_current_naming_a_missing_generation_falls_back(two_generations: Settings,
                                                        tmp_path: Path) -> None:
    idx = _copy_index(two_generations, tmp_path / "index")
    shutil.rmtree(idx / "generations" / "g-000002")
    gen = open_current(idx)
    assert gen.name == "g-000001"
    gen.close()


def test_no_valid_generation_raises_a_clear_error(two_generations: Settings,
                                                  tmp_path: Path) -> None:
    idx = _copy_index(two_generations, tmp_path / "index")
    (idx / "segments" / "s-000001" / "chunks.sqlite").write_bytes(b"garbage")  # both use it
    with open(idx / "segments" / "s-000002" / "lexical" / "vocab.json", "a") as f:
        f.write(" ")
    with pytest.raises(IndexCorruptError) as e:
        open_current(idx)
    msg = str(e.value)
    assert "no valid generation" in msg and "rag index --full" in msg
    assert "g-000001: segment s-000001: chunks.sqlite" in msg
    assert "g-000002: segment s-000001: chunks.sqlite" in msg


POINTER_DAMAGE = {
    "garbage": b"\x89PNG\r\n\x1a\n\xff\xfe",
    "empty": b"",
    "truncated": b"g-00",
    "not a name": b"../../etc/passwd\n",
    "nul": b"g-000002\x00\n",
    "dangling": b"g-000009\n",
}


def _pointer_cases() -> list[tuple[str, bytes]]:
    """Every single-byte flip of a valid pointer (three masks), plus the named damages."""
    good = b"g-000002\n"
    cases = [(f"flip {i}^{m:#x}", good[:i] + bytes([good[i] ^ m]) + good[i + 1:])
             for i in range(len(good)) for m in (0x01, 0x80, 0xFF)]
    return cases + list(POINTER_DAMAGE.items())


def test_damaged_current_falls_back_to_the_newest_valid_generation(
        two_generations: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A flipped, truncated, garbage or dangling CURRENT never raises: open_current serves
    the generation it still names if that is a real one, else the newest valid one, with a
    one-line warning naming the fix; the watcher of a running service ignores it."""
    idx = _copy_index(two_generations, tmp_path / "index")
    s = Settings(corpus_dir=two_generations.corpus_dir, index_dir=idx, model="fake")
    searcher = Searcher(s, embedder=FakeEmbedder())
    assert searcher.generation.name == "g-000002"
    fell_back = 0
    for label, data in _pointer_cases():
        (idx / "CURRENT").write_bytes(data)
        name = data.decode("ascii", "replace").strip()
        names_real_one = name in ("g-000001", "g-000002")
        assert read_current(idx) == (name if names_real_one else None), label
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="rag"):
            gen = open_current(idx)
            assert searcher.reload_if_changed() is (name == "g-000001"), label
            searcher.reload_if_changed()  # and again: polling stays quiet
        assert gen.name == (name if names_real_one else "g-000002"), label
        gen.close()
        warnings = [r.getMessage() for r in caplog.records]
        if names_real_one:
            assert not warnings, (label, warnings)
        else:
            fell_back += 1
            assert len(warnings) == 1 and "\n" not in warnings[0], (label, warnings)
            assert "CURRENT" in warnings[0] and "g-000002" in warnings[0], warnings
            assert "rag index" in warnings[0], warnings
        assert searcher.ask(QUESTIONS[0]).passages, label
        (idx / "CURRENT").write_bytes(b"g-000002\n")
        searcher.reload_if_changed()
    assert fell_back >= 25


@pytest.mark.parametrize("damage", sorted(POINTER_DAMAGE))
def test_cli_with_a_damaged_current_answers_and_index_repairs_it(
        two_generations: Settings, tmp_path: Path, damage: str) -> None:
    """`rag ask` answers from the newest valid generation with a warning, `rag index`
    repairs the pointer; neither prints a traceback."""
    idx = _copy_index(two_generations, tmp_path / "index")
    (idx / "CURRENT").write_bytes(POINTER_DAMAGE[damage])
    common = ["--corpus", str(two_generations.corpus_dir), "--index", str(idx),
              "--model", "fake"]
    ask = rag_cli("ask", QUESTIONS[0], *common, "--json")
    assert ask.returncode == 0, ask.stderr
    assert "Traceback" not in ask.stderr
    assert json.loads(ask.stdout)["index"]["generation"] == "g-000002"
    assert "CURRENT" in ask.stderr and "rag index" in ask.stderr

    index = rag_cli("index", *common)
    assert index.returncode == 0, index.stderr
    assert "Traceback" not in index.stderr and "repaired CURRENT" in index.stderr
    assert report_line(index.stdout).group(6) == "index unchanged"
    assert (idx / "CURRENT").read_bytes() == b"g-000002\n"
    again = rag_cli("ask", QUESTIONS[0], *common)
    assert again.returncode == 0 and again.stderr == "", again.stderr


def test_serve_with_a_damaged_current_answers_and_keeps_following(
        two_generations: Settings, tmp_path: Path) -> None:
    """`rag serve` starts on a garbage CURRENT (newest valid generation), keeps answering
    while the pointer dangles, then follows it once it names a real generation again;
    its log holds no traceback."""
    import httpx

    from .serverutil import running_server

    idx = _copy_index(two_generations, tmp_path / "index")
    (idx / "CURRENT").write_bytes(POINTER_DAMAGE["garbage"])
    log_path = tmp_path / "serve.log"
    with running_server(two_generations.corpus_dir, idx, log_path, model="fake",
                        env={"RAG_RELOAD_INTERVAL_S": "0.1"}) as server, \
            httpx.Client(base_url=server.url, timeout=30, trust_env=False) as http:
        def generation() -> str:
            r = http.post("/ask", json={"question": QUESTIONS[0]})
            assert r.status_code == 200, r.text
            return str(r.json()["index"]["generation"])

        assert generation() == "g-000002"
        (idx / "CURRENT").write_bytes(POINTER_DAMAGE["dangling"])
        for _ in range(10):  # the watcher polls the dangling pointer meanwhile
            assert generation() == "g-000002"
            time.sleep(0.05)
        store.write_atomic(idx / "CURRENT", b"g-000001\n")
        for _ in range(400):  # the event: it follows the repaired pointer
            if generation() == "g-000001":
                break
            time.sleep(0.05)
        assert generation() == "g-000001", server.log_tail()
        log_text = server.log_tail(100_000)
    assert "Traceback" not in log_text, log_text
    assert "CURRENT is damaged" in log_text


def test_damaged_current_with_no_generation_is_one_error_line(tmp_path: Path) -> None:
    idx = tmp_path / "index"
    idx.mkdir()
    (idx / "CURRENT").write_bytes(b"\xff\xfe")
    with pytest.raises(IndexCorruptError, match="CURRENT is damaged"):
        open_current(idx)
    out = rag_cli("ask", "What is the SCO?", "--index", str(idx), "--model", "fake")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert last_line(out.stderr).startswith("error: CURRENT is damaged")
    assert "rag index --full" in out.stderr


def test_missing_index_says_to_run_rag_index(tmp_path: Path) -> None:
    for idx in (tmp_path / "absent", tmp_path / "empty"):
        if idx.name == "empty":
            (idx / "generations").mkdir(parents=True)
        with pytest.raises(IndexMissingError, match="build one with `rag index`"):
            open_current(idx)

    out = rag_cli("ask", "What is the SCO?", "--index", str(tmp_path / "absent"),
                  "--model", "fake")
    assert out.returncode == 2
    assert last_line(out.stderr).startswith("error: no index in")
    assert "`rag index`" in out.stderr


# ---------------------------------------------------------------- search over a fake index

def _passages(searcher: Searcher) -> Iterator[tuple[str, str, Answer]]:
    for q in QUESTIONS:
        for mode in ("hybrid", "dense", "lexical"):
            yield q, mode, searcher.ask(q, top_k=8, mode=mode)  # type: ignore[arg-type]


def test_every_passage_is_the_exact_text_of_the_file(searcher: Searcher) -> None:
    corpus = searcher.settings.corpus_dir
    seen = 0
    for q, mode, answer in _passages(searcher):
        assert answer.passages, (q, mode)
        for p in answer.passages:
            raw = (corpus / p.file).read_bytes()
            assert_exact_passage(raw.decode("utf-8"), p, (q, mode, p.file))
            assert p.text and p.text == p.text.strip()
            assert p.file_sha256 == hashlib.sha256(raw).hexdigest()
            seen += 1
    assert seen >= len(QUESTIONS) * 3 * 3


def test_no_two_passages_of_an_answer_overlap(searcher: Searcher) -> None:
    for q, mode, answer in _passages(searcher):
        spans: dict[str, list[tuple[int, int]]] = {}
        for p in answer.passages:
            spans.setdefault(p.file, []).append((p.start, p.end))
        for file, ss in spans.items():
            ss.sort()
            for (_, e1), (s2, _) in zip(ss, ss[1:]):
                assert e1 <= s2, (q, mode, file, ss)


def test_file_globs_restrict_passages(searcher: Searcher) -> None:
    q = "AI-driven Digital Silk Road China Mobile Research Institute"
    unfiltered = searcher.ask(q, top_k=8)
    assert any(not p.file.startswith("sco-") for p in unfiltered.passages)
    for globs in (["sco-*"], ["sco-ai-*", "sco-digitalisation-*"]):
        answer = searcher.ask(q, top_k=8, files=globs)
        assert answer.passages
        for p in answer.passages:
            assert any(fnmatch.fnmatchcase(p.file, g) for g in globs), (globs, p.file)
    only = searcher.ask(q, top_k=8, files=["intelligent-*"])
    assert only.passages and {p.file for p in only.passages} == {
        "intelligent-silk-road-cmri-2025-07.txt"}
    assert searcher.ask(q, files=["no-such-file-*"]).passages == []


def test_index_built_with_another_model_is_refused(searcher: Searcher) -> None:
    class OtherFake(FakeEmbedder):
        fingerprint = "other"

    for embedder in (OtherFake(), FakeEmbedder(dim=32)):
        other = Searcher(searcher.settings, embedder=embedder)
        with pytest.raises(IndexMismatchError, match="rag index --full") as e:
            other.ask(QUESTIONS[0])
        assert "'fake'" in str(e.value)


def test_reload_follows_a_reindex_and_old_answers_keep_their_generation(
        indexed: Settings) -> None:
    s = Searcher(indexed, embedder=FakeEmbedder())
    q = "quantum sensing laboratory in Tashkent"
    before = s.ask(q, mode="lexical")
    assert before.index.generation == "g-000001"
    assert not any("quantum" in p.text for p in before.passages)
    assert s.reload_if_changed() is False

    append(indexed.corpus_dir, CHANGED)
    build(indexed)

    assert s.reload_if_changed() is True
    assert s.reload_if_changed() is False
    after = s.ask(q, mode="lexical")
    assert after.index.generation == "g-000002"
    assert after.index.chunks == open_current(indexed.index_dir).size
    top = after.passages[0]
    assert top.file == CHANGED and "quantum sensing" in top.text
    assert_exact_passage(file_text(indexed.corpus_dir / CHANGED), top)
    assert before.index.generation == "g-000001"  # an answer names its own generation


# ---------------------------------------------------------------- disk full (simulated)

def _enospc(*_a: object, **_k: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("target", [
    "rag.indexing.build.write_chunks_db",
    "rag.indexing.dense.DenseIndex.save",
    "rag.indexing.lexical.LexicalIndex.save",
    "rag.indexing.build.seal_manifest",
])
def test_disk_full_while_writing_keeps_the_previous_generation(
        indexed: Settings, monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    current = (indexed.index_dir / "CURRENT").read_bytes()
    append(indexed.corpus_dir, CHANGED)
    monkeypatch.setattr(target, _enospc)

    with pytest.raises(OSError) as e:
        build(indexed)

    assert e.value.errno == errno.ENOSPC
    assert (indexed.index_dir / "CURRENT").read_bytes() == current
    assert entries(indexed.index_dir) == ["g-000001"]  # no new generation, no temp folder
    gen = open_current(indexed.index_dir)
    assert gen.name == "g-000001" and gen.manifest["documents"][CHANGED]["sha256"] != (
        hashlib.sha256((indexed.corpus_dir / CHANGED).read_bytes()).hexdigest())
    gen.close()
    assert Searcher(indexed, embedder=FakeEmbedder()).ask(QUESTIONS[0]).passages

    monkeypatch.undo()  # space is back: the next run publishes
    assert build(indexed).generation == "g-000002"


def test_disk_full_writing_current_leaves_no_new_generation(
        indexed: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    append(indexed.corpus_dir, CHANGED)
    monkeypatch.setattr(store, "write_atomic", _enospc)
    with pytest.raises(OSError):
        build(indexed)
    assert read_current(indexed.index_dir) == "g-000001"
    assert open_current(indexed.index_dir).name == "g-000001"
    assert entries(indexed.index_dir) == ["g-000001"]


def test_cli_disk_full_says_so_and_keeps_the_previous_index(indexed: Settings) -> None:
    current = (indexed.index_dir / "CURRENT").read_bytes()
    append(indexed.corpus_dir, CHANGED)
    out = rag_cli(*index_args(indexed), mode="enospc-dense")
    assert out.returncode == 2, out.stderr
    assert last_line(out.stderr).startswith("error: No space left on device")
    assert "previous index is unchanged" in out.stderr
    assert "Traceback" not in out.stderr
    assert (indexed.index_dir / "CURRENT").read_bytes() == current
    assert entries(indexed.index_dir) == ["g-000001"]
    assert open_current(indexed.index_dir).name == "g-000001"


def test_cli_sqlite_disk_full_is_one_error_line(indexed: Settings) -> None:
    append(indexed.corpus_dir, CHANGED)
    out = rag_cli(*index_args(indexed), mode="sqlite-full")
    assert entries(indexed.index_dir) == ["g-000001"]
    assert "Traceback" not in out.stderr
    assert out.returncode == 2
    assert "previous index is unchanged" in out.stderr


def test_cli_short_write_names_the_full_disk(indexed: Settings) -> None:
    append(indexed.corpus_dir, CHANGED)
    out = rag_cli(*index_args(indexed), mode="short-write")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert entries(indexed.index_dir) == ["g-000001"]
    assert "no space left" in out.stderr.lower() or "disk is full" in out.stderr.lower()


# ---------------------------------------------------------------- disk full (real, tmpfs)

@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (needs root); skipped where mounting is not allowed."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip() or done.returncode}")
    try:
        yield mnt
    finally:
        gc.collect()  # close generations' sqlite handles on the mount
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _leave_free(mnt: Path, free: int) -> None:
    """Fill the disk so that about `free` bytes remain."""
    filler = mnt / "filler"
    filler.unlink(missing_ok=True)
    st = os.statvfs(mnt)
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - free))
    st = os.statvfs(mnt)
    assert abs(st.f_bavail * st.f_frsize - free) <= 8192


def _generation_bytes(folder: Path) -> int:
    return sum(-(-p.stat().st_size // 4096) * 4096 for p in folder.rglob("*") if p.is_file())


def test_real_disk_full_at_any_point_keeps_the_previous_generation(
        small_disk: Path, small_corpus: Path) -> None:
    settings = Settings(corpus_dir=small_corpus, index_dir=small_disk / "index", model="fake")
    build(settings)
    need = _generation_bytes(settings.index_dir / "generations" / "g-000001")
    current = (settings.index_dir / "CURRENT").read_bytes()
    failures = []
    for i, share in enumerate((0.02, 0.3, 0.5, 0.65, 0.8, 0.9)):
        append(small_corpus, CHANGED, f"\nRevision {i} of the agreement.\n")
        _leave_free(small_disk, int(need * share))
        with pytest.raises((OSError, sqlite3.Error, RuntimeError)) as e:
            build(settings)
        failures.append(type(e.value).__name__)
        assert (settings.index_dir / "CURRENT").read_bytes() == current, share
        assert entries(settings.index_dir) == ["g-000001"], share
        gen = open_current(settings.index_dir)
        assert gen.name == "g-000001"
        gen.close()
    (small_disk / "filler").unlink()
    assert build(settings).generation == "g-000002"
    assert "Revision 5" in open_current(settings.index_dir).chunks_of(CHANGED)[-1].text


def test_real_disk_full_through_the_cli(small_disk: Path, small_corpus: Path) -> None:
    settings = Settings(corpus_dir=small_corpus, index_dir=small_disk / "index", model="fake")
    build(settings)
    current = (settings.index_dir / "CURRENT").read_bytes()
    append(small_corpus, CHANGED)
    _leave_free(small_disk, 16 * 1024)
    out = rag_cli(*index_args(settings))
    assert (settings.index_dir / "CURRENT").read_bytes() == current
    assert entries(settings.index_dir) == ["g-000001"]
    assert "Traceback" not in out.stderr, out.stderr[-400:]
    assert out.returncode == 2
    assert "no space left" in out.stderr.lower() or "disk is full" in out.stderr.lower()
    assert "previous index is unchanged" in out.stderr


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 6)), max_size=12))
def test_ranges_is_the_concatenation_of_aranges(pairs: list[tuple[int, int]]) -> None:
    from rag.indexing.generation import ranges

    lo = np.array([a for a, _ in pairs], dtype=np.int64)
    hi = lo + np.array([n for _, n in pairs], dtype=np.int64)
    want = [i for a, b in zip(lo.tolist(), hi.tolist()) for i in range(a, b)]
    assert ranges(lo, hi).tolist() == want


def test_chunk_reads_are_the_same_from_cache_and_database(indexed: Settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(generation_module, "CHUNK_CACHE", 7)  # small, so eviction happens
    cold = generation(indexed, "g-000001")
    reference = cold.chunks(list(range(cold.size)))  # in order, all from the database
    gen = generation(indexed, "g-000001")
    rng = np.random.default_rng(3)
    for _ in range(60):  # random mixes of cached, evicted and new rows, repeats included
        rows = rng.integers(0, gen.size, size=int(rng.integers(1, 12))).tolist()
        assert gen.chunks(rows) == [reference[r] for r in rows]
        assert len(gen._chunk_cache) <= 7
    with pytest.raises(KeyError):
        gen.chunks([gen.size + 5])  # a row that does not exist is an error, not a wrong chunk
