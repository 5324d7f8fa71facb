"""Power loss during `rag index`: whatever reached the disk, the index loads the old or the
new complete generation, never a mix, and once the build returned it loads the new one.

A crash shim runs ``build_index`` in-process (fake model) with every durability call
observed: ``os.fsync`` (what ``store.fsync_path``, ``fsync_tree`` and ``write_atomic`` end
in), ``os.rename``, ``os.replace``, ``shutil.rmtree``, plus a "write" event after each file
the build writes at C level (sqlite, FAISS, numpy). The build is stopped at a random event
(or after the last one), and the power cut is modelled on a copy of the index folder:

  * a file's content is what its last fsync saw; content written since then reaches the
    disk whole, not at all, truncated at a random length, or with a zero-filled hole;
  * a folder's entries (creates, renames, replaces, deletes) are what its last fsync saw;
    a folder changed since reaches the disk in its old or its new form (never half a
    rename); a folder deleted since comes back with a random part of its entries.

Everything present before the build is taken as durable (the previous run finished long ago).
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import rag.indexing.build
import rag.indexing.store
from rag.config import Settings
from rag.errors import IndexCorruptError, IndexMissingError
from rag.indexing.build import build_index
from rag.indexing.dense import DenseIndex
from rag.indexing.embedding import FakeEmbedder
from rag.indexing.generation import open_current
from rag.indexing.lexical import LexicalIndex
from rag.indexing.store import CURRENT, GENERATIONS, index_lock, read_current

from .conftest import CORPUS
from .oracles import assert_exact

RUNS = int(os.environ.get("RAG_POWERLOSS_RUNS",
                          "500" if os.environ.get("RAG_FUZZ_LONG") else "50"))
SEED = 20250917
FRESH_EVERY = 8  # every 8th run builds the very first generation (nothing to fall back on)

Listing = dict[str, tuple[int, bool]]  # name -> (inode, is folder)
State = dict[str, str]  # corpus file -> text


class PowerCut(BaseException):
    """The simulated power loss: stops the build where it stands (not an Exception, so no
    ordinary handler swallows it)."""


def listing(path: Path) -> Listing:
    """A folder's entries by inode."""
    with os.scandir(path) as it:
        return {e.name: (e.inode(), e.is_dir(follow_symlinks=False)) for e in it}


def scan(root: Path) -> tuple[dict[int, Listing], dict[int, bytes]]:
    """Every folder's entries and every file's bytes below root, by inode."""
    dirs: dict[int, Listing] = {}
    files: dict[int, bytes] = {}
    stack = [root]
    while stack:
        d = stack.pop()
        entries = listing(d)
        dirs[os.stat(d).st_ino] = entries
        for name, (ino, is_dir) in entries.items():
            if is_dir:
                stack.append(d / name)
            else:
                files[ino] = (d / name).read_bytes()
    return dirs, files


@dataclass
class Disk:
    """What a power cut would leave of `root`: observes the build, then writes the survivor."""

    root: Path
    crash_at: int | None  # the event before which power is lost (None: never during the build)
    rng: random.Random
    out: Path  # where the surviving folder is written
    events: list[str] = field(default_factory=list)
    durable_dirs: dict[int, Listing] = field(default_factory=dict)
    durable_files: dict[int, bytes] = field(default_factory=dict)
    gone_dirs: dict[int, Listing] = field(default_factory=dict)
    gone_files: dict[int, bytes] = field(default_factory=dict)
    phase: str = "before"  # CURRENT: "before" replace, "replaced", "durable" (folder fsynced)
    cut_done: bool = False
    quiet: bool = False  # inside an observed call: its own os calls are not events
    damage: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root_ino = os.stat(self.root).st_ino
        self.durable_dirs, self.durable_files = scan(self.root)

    def inside(self, path: Any) -> bool:
        """Is path below the observed index folder (and is the shim still recording)?"""
        if self.cut_done or self.quiet:
            return False
        try:
            return Path(os.path.realpath(os.fspath(path))).is_relative_to(self.root)
        except TypeError:  # an fd or bytes path from elsewhere
            return False

    def event(self, what: str) -> None:
        """One crash point; at the chosen one, the power goes."""
        self.events.append(what)
        if self.crash_at is not None and len(self.events) - 1 == self.crash_at:
            self.cut()
            raise PowerCut(what)

    def forget(self, path: Path) -> None:
        """Keep the bytes of what is about to be deleted or replaced (the old listing may
        still name it after the power cut)."""
        if path.is_dir() and not path.is_symlink():
            dirs, files = scan(path)
            self.gone_dirs.update(dirs)
            self.gone_files.update(files)
        elif path.exists():
            self.gone_files[os.stat(path).st_ino] = path.read_bytes()

    # -- after the power cut ------------------------------------------------

    def cut(self) -> None:
        """Write what survives the power cut to self.out."""
        self.cut_done = True
        dirs, files = scan(self.root)
        reused = (set(dirs) | set(files)) & (set(self.gone_dirs) | set(self.gone_files))
        assert not reused, "an inode was reused after a delete; the model cannot tell them apart"
        seen: set[int] = set()

        def entries(ino: int) -> Listing:
            durable = self.durable_dirs.get(ino, {})  # never fsynced: nothing is sure
            now = dirs.get(ino)
            if now is None:  # deleted during the build: part of the deletion reached the disk
                kept = self.gone_dirs.get(ino, durable)
                now = {k: v for k, v in kept.items() if self.rng.random() < 0.5}
            if now == durable:
                return now
            old = self.rng.random() < 0.5
            self.damage["folder old" if old else "folder new"] = \
                self.damage.get("folder old" if old else "folder new", 0) + 1
            return durable if old else now

        def content(ino: int) -> bytes:
            now = files.get(ino, self.gone_files.get(ino))
            durable = self.durable_files.get(ino)
            if now is None:
                now = durable or b""
            if now == durable:
                return now
            how = self.rng.choice(["whole", "lost", "truncated", "zeroed"])
            self.damage[how] = self.damage.get(how, 0) + 1
            if how == "whole":
                return now
            if how == "lost":
                return durable or b""
            if how == "truncated":
                return now[:self.rng.randrange(len(now) + 1)]
            a = self.rng.randrange(len(now) + 1)
            b = self.rng.randint(a, len(now))
            return now[:a] + bytes(b - a) + now[b:]

        def write(ino: int, dst: Path) -> None:
            seen.add(ino)
            dst.mkdir()
            for name, (child, is_dir) in sorted(entries(ino).items()):
                if child in seen:  # one inode under two names: keep the first
                    continue
                if is_dir:
                    write(child, dst / name)
                else:
                    seen.add(child)
                    (dst / name).write_bytes(content(child))

        write(self.root_ino, self.out)

    # -- observed calls -------------------------------------------------------

    @contextmanager
    def observing(self, mp: pytest.MonkeyPatch) -> Iterator[None]:
        """Wrap the durability calls (and the C-level writers) while the build runs."""
        real_fsync, real_rename, real_replace = os.fsync, os.rename, os.replace
        real_rmtree = shutil.rmtree

        def fsync(fd: int) -> None:
            try:
                path = Path(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                path = None
            if path is None or not self.inside(path):
                return real_fsync(fd)
            self.event(f"fsync {path.relative_to(self.root)}")
            real_fsync(fd)
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                self.durable_dirs[st.st_ino] = listing(path)
                if st.st_ino == self.root_ino and self.phase == "replaced":
                    self.phase = "durable"
            else:
                self.durable_files[st.st_ino] = path.read_bytes()

        def renamer(real: Callable[..., None], kind: str) -> Callable[..., None]:
            def move(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
                if not self.inside(dst):
                    return real(src, dst, *args, **kwargs)
                dst_p = Path(os.fspath(dst))
                self.event(f"{kind} {Path(os.fspath(src)).name} -> "
                           f"{dst_p.relative_to(self.root)}")
                self.forget(dst_p)
                real(src, dst, *args, **kwargs)
                if dst_p == self.root / CURRENT:
                    self.phase = "replaced"
            return move

        def rmtree(path: Any, *args: Any, **kwargs: Any) -> None:
            p = Path(os.fspath(path))
            if not self.inside(p) or not p.exists():
                return real_rmtree(path, *args, **kwargs)
            self.event(f"rmtree {p.relative_to(self.root)}")
            self.forget(p)
            self.quiet = True
            try:
                real_rmtree(path, *args, **kwargs)
            finally:
                self.quiet = False

        def after_write(real: Callable[..., Any], arg: int, name: str = ""
                        ) -> Callable[..., Any]:
            def wrapped(*args: Any, **kwargs: Any) -> Any:
                out = real(*args, **kwargs)
                path = Path(os.fspath(args[arg])) / name
                if self.inside(path):
                    self.event(f"write {path.relative_to(self.root)}")
                return out
            return wrapped

        mp.setattr(os, "fsync", fsync)
        mp.setattr(os, "rename", renamer(real_rename, "rename"))
        mp.setattr(os, "replace", renamer(real_replace, "replace"))
        mp.setattr(shutil, "rmtree", rmtree)
        build = rag.indexing.build
        mp.setattr(build, "write_chunks_db", after_write(build.write_chunks_db, 0))
        mp.setattr(build, "seal_manifest", after_write(build.seal_manifest, 0, "manifest.json"))
        mp.setattr(DenseIndex, "save", after_write(DenseIndex.save, 1))
        mp.setattr(LexicalIndex, "save", after_write(LexicalIndex.save, 1))
        yield


# ---------------------------------------------------------------- corpus states

def read_state(corpus: Path) -> State:
    """Every corpus file's text exactly as indexed."""
    return {p.name: p.read_bytes().decode("utf-8") for p in sorted(corpus.iterdir())}


def write_state(corpus: Path, state: State) -> None:
    """Make the corpus folder hold exactly `state`."""
    for p in corpus.iterdir():
        if p.name not in state:
            p.unlink()
    for name, text in state.items():
        (corpus / name).write_bytes(text.encode("utf-8"))


def edited(state: State, run: int) -> State:
    """`state` with one paragraph inserted after the first line of one file (shifting every
    later offset of that file)."""
    out = dict(state)
    name = sorted(out)[run % len(out)]
    head, rest = out[name].split("\n", 1)
    out[name] = f"{head}\nPower note {run}: the grid went down at minute {run}.\n{rest}"
    return out


def hashes(state: State) -> dict[str, str]:
    """sha256 per file, as the manifest records them."""
    return {k: hashlib.sha256(v.encode("utf-8")).hexdigest() for k, v in state.items()}


def settings_for(corpus: Path, index: Path) -> Settings:
    """Fake-model settings for one run."""
    return Settings(corpus_dir=corpus, index_dir=index, model="fake",  # type: ignore[arg-type]
                    merge_max_dead_share=1.0)  # incremental runs tombstone; --optimize merges


def build(settings: Settings, disk: Disk | None, mp: pytest.MonkeyPatch | None,
          merge: bool = False) -> None:
    """`rag index` in-process (with merge: `rag index --optimize`, so the run writes one
    segment merging the previous ones with the changed file), observed by the shim when
    given."""
    with index_lock(settings.index_dir):
        if disk is None or mp is None:
            build_index(settings, embedder=FakeEmbedder(), optimize=merge)
            return
        with mp.context() as m, disk.observing(m):
            try:
                build_index(settings, embedder=FakeEmbedder(), optimize=merge)
            except PowerCut:
                return
        disk.cut()  # the power goes after the last event


def check_loaded(folder: Path, old: State | None, new: State) -> str:
    """Open the surviving index; 'old' or 'new' (or 'none' when nothing loads)."""
    try:
        gen = open_current(folder)
    except (IndexMissingError, IndexCorruptError) as e:
        assert old is None, f"the previous generation was lost: {e}"
        return "none"
    try:
        docs = {k: v["sha256"] for k, v in gen.manifest["documents"].items()}
        which = ("old" if old is not None and docs == hashes(old) else
                 "new" if docs == hashes(new) else "")
        assert which, f"{gen.name} holds neither the old nor the new corpus: {docs}"
        texts = old if which == "old" else new
        assert texts is not None
        chunks = gen.chunks(list(range(gen.size)))
        assert {c.file for c in chunks} == set(texts)
        for c in chunks:
            assert_exact(texts[c.file], c, (gen.name, c.file))
        assert gen.dense.size == gen.lexical.size == gen.size == gen.manifest["chunks"]
        current = read_current(folder)
        # CURRENT, when it survived, names a complete generation: no fallback was needed
        assert current is None or current == gen.name, (current, gen.name)
    finally:
        gen.close()
    return which


# ---------------------------------------------------------------- tests

@dataclass(frozen=True)
class Template:
    """An index with two generations (state 0, then `old` as CURRENT), and its corpus."""

    corpus: Path
    index: Path
    old: State


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """Built once; every run starts from a copy."""
    base = tmp_path_factory.mktemp("powerloss")
    corpus, index = base / "corpus", base / "index"
    corpus.mkdir()
    first = read_state(CORPUS)
    write_state(corpus, first)
    build(settings_for(corpus, index), None, None)
    old = edited(first, 999)
    write_state(corpus, old)
    build(settings_for(corpus, index), None, None)
    return Template(corpus, index, old)


def start_run(tmp: Path, t: Template, run: int, fresh: bool) -> tuple[Settings, State | None,
                                                                      State]:
    """A run folder: the template index (or none) and the corpus with one file edited."""
    corpus, index = tmp / "corpus", tmp / "index"
    corpus.mkdir(parents=True)
    new = edited(t.old, run)
    write_state(corpus, new)
    if fresh:
        index.mkdir()
    else:
        shutil.copytree(t.index, index)
        (index / ".lock").unlink(missing_ok=True)
    return settings_for(corpus, index), (None if fresh else t.old), new


def count_events(tmp: Path, t: Template, fresh: bool, mp: pytest.MonkeyPatch,
                 merge: bool = False) -> list[str]:
    """The events of one whole observed build (no crash)."""
    settings, _, _ = start_run(tmp, t, 0, fresh)
    disk = Disk(settings.index_dir.resolve(), None, random.Random(0), tmp / "survivor")
    build(settings, disk, mp, merge)
    return disk.events


@pytest.mark.fuzz
@pytest.mark.parametrize("merge", [False, True], ids=["incremental", "merge"])
def test_power_loss_at_any_durability_event_serves_old_or_new(
        tmp_path: Path, template: Template, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], merge: bool) -> None:
    t0 = time.monotonic()
    events = {fresh: count_events(tmp_path / f"count-{fresh}", template, fresh, monkeypatch,
                                  merge)
              for fresh in (False, True)}
    assert any(e.startswith("replace") and e.endswith(CURRENT) for e in events[False])
    assert any(e.startswith("rename .tmp-s-") for e in events[False]), events[False]
    assert any(e.startswith("rmtree generations/g-") for e in events[False]), events[False]

    rng = random.Random(SEED)
    tally = {"old": 0, "new": 0, "none": 0}
    phases = {"before": 0, "replaced": 0, "durable": 0}
    damage: dict[str, int] = {}
    for run in range(1, RUNS + 1):
        fresh = run % FRESH_EVERY == 0
        n = len(events[fresh])
        crash_at = rng.randint(0, n)  # n: the power goes after the last event
        if run % 10 == 5:  # and surely some runs whose build returned (both sides covered)
            crash_at = n - run % 2
        run_dir = tmp_path / f"run-{run}"
        settings, old, new = start_run(run_dir, template, run, fresh)
        disk = Disk(settings.index_dir.resolve(), crash_at, random.Random(SEED + run),
                    run_dir / "survivor")
        build(settings, disk, monkeypatch, merge)
        assert disk.cut_done
        where = disk.events[crash_at] if crash_at < len(disk.events) else "after the last"
        try:
            which = check_loaded(disk.out, old, new)
            if disk.phase == "durable" or crash_at >= len(disk.events):
                assert which == "new", f"published, then lost: {which}"
            elif disk.phase == "before" and old is not None:
                assert which == "old", which
        except AssertionError as e:
            raise AssertionError(f"run {run} (fresh={fresh}), power lost at event {crash_at} "
                                 f"({where}), phase {disk.phase}: {e}") from e
        tally[which] += 1
        phases[disk.phase] += 1
        for k, v in disk.damage.items():
            damage[k] = damage.get(k, 0) + v
        shutil.rmtree(run_dir)

    elapsed = time.monotonic() - t0
    with capsys.disabled():
        print(f"\npower loss ({'merge' if merge else 'incremental'}): {RUNS}/{RUNS} runs served old or new ({tally['old']} old, "
              f"{tally['new']} new, {tally['none']} first builds with nothing yet); "
              f"{len(events[False])} crash points per build ({len(events[True])} for a first "
              f"build); CURRENT {phases['before']} before replace, {phases['replaced']} "
              f"replaced, {phases['durable']} durable; damage: "
              + ", ".join(f"{k} {v}" for k, v in sorted(damage.items()))
              + f"; {elapsed:.1f} s")
    assert tally["old"] and tally["new"]
    assert phases["before"] and phases["durable"]


MUTANTS = {
    "no fsync_tree before the rename": ("fsync_tree", lambda p: True),
    "no fsync of generations/ after the rename": ("fsync_path", lambda p: p.name == GENERATIONS),
    "no fsync of segments/ after a segment's rename": ("fsync_path",
                                                       lambda p: p.name == "segments"),
    "no fsync of the index folder after CURRENT": ("fsync_path", lambda p: p.name == "index"),
}


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_shim_catches_a_missing_fsync(mutant: str, tmp_path: Path, template: Template,
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The model is not vacuous: drop one fsync of publish() and a power cut right after
    the build returned is caught (CURRENT names a broken or missing generation, or the
    published generation is lost)."""
    name, skip = MUTANTS[mutant]
    real = getattr(rag.indexing.store, name)
    monkeypatch.setattr(rag.indexing.store, name, lambda p: None if skip(p) else real(p))
    caught = 0
    tries = 12
    for run in range(1, tries + 1):
        run_dir = tmp_path / f"run-{run}"
        settings, old, new = start_run(run_dir, template, run, False)
        disk = Disk(settings.index_dir.resolve(), None, random.Random(SEED + run),
                    run_dir / "survivor")
        build(settings, disk, monkeypatch)
        try:
            assert check_loaded(disk.out, old, new) == "new"
        except AssertionError:
            caught += 1
        shutil.rmtree(run_dir)
    with capsys.disabled():
        print(f"\npower loss shim self-check ({mutant}): caught in {caught}/{tries} runs")
    assert caught >= 3, caught

