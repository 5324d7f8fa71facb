"""A serving process stays flat over 100 reloads: replaced generations are closed once no
question uses them (their segments, databases and maps let go), so resident memory and open
files after the 100th reload are those after the first."""

from __future__ import annotations

import gc
import os
import weakref
from pathlib import Path

import pytest

from rag.indexing.build import build_index
from rag.indexing.embedding import FakeEmbedder
from rag.indexing.store import index_lock
from rag.search.searcher import Searcher
from tests.conftest import fake_settings


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def open_segments() -> set[str]:
    """The segments this process holds a file of open (sqlite, postings)."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        parts = Path(target).parts
        if "segments" in parts and parts.index("segments") + 1 < len(parts):
            out.add(parts[parts.index("segments") + 1])
    return out


def doc(i: int, v: int) -> str:
    words = " ".join(f"w{(i * 31 + k * v) % 997}" for k in range(120))
    return f"Note {i} version {v}.\n\n{words}\n"


@pytest.mark.soak
def test_memory_and_files_flat_over_100_reloads(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(12):
        (corpus / f"n{i:02d}.txt").write_text(doc(i, 1))
    settings = fake_settings(tmp_path, corpus, keep_generations=2)
    emb = FakeEmbedder()
    with index_lock(settings.index_dir):
        build_index(settings, embedder=emb)
    searcher = Searcher(settings, embedder=emb)
    searcher.retire_grace_s = 0.0  # nothing else holds them here
    searcher.ask("note version", 5)
    first_gen = weakref.ref(searcher.generation)
    first_segments = [weakref.ref(s) for s in searcher.generation.segments]

    def reload(v: int) -> None:
        (corpus / f"n{v % 12:02d}.txt").write_text(doc(v % 12, v))
        with index_lock(settings.index_dir):
            assert build_index(settings, embedder=emb).generation
        assert searcher.reload_if_changed()
        searcher.ask(f"note {v} version", 5)

    reload(2)
    after_first = rss_bytes()
    for v in range(3, 102):
        reload(v)
        serving = {s.name for s in searcher.generation.segments}
        assert open_segments() <= serving, (v, sorted(open_segments() - serving))
    after_100 = rss_bytes()
    gc.collect()
    assert first_gen() is None  # nothing holds the first generation any more
    assert all(s() is None for s in first_segments)
    assert after_100 <= after_first * 1.10, (after_first / 2**20, after_100 / 2**20)
