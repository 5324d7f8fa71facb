"""Crash safety of `rag index`: SIGKILL at random moments never leaves an unloadable index,
nor a generation that mixes two corpus states, nor a temp folder that gets loaded.

Each run indexes a new corpus state (the original files plus one distinct sentence), so the
generation left after a kill can be told apart: its per-document hashes must equal either
the state the index held before the run or the state the run was building, and every chunk
must be that state's text at its offsets.

Kill points are drawn inside the write phase, not in time: a first run counts the file
events of a build inside the index folder (every open, rename, replace, remove, mkdir,
sqlite connect from the first write of the new generation on: tests/helpers_index.py
stop-at-io), then each run stops itself at one of them (SIGSTOP) and is SIGKILLed there:
17 drawn at random and the last three (the pointer's replace, the folder fsync, the sweep). So every kill hits the
write phase, whatever the machine's speed, and the test has no time budget.
"""

from __future__ import annotations

import hashlib
import logging
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.indexing.generation import open_current
from rag.indexing.segments import list_segments
from rag.indexing.store import TMP_PREFIX, list_generations, read_current

from .conftest import CORPUS, ROOT
from .oracles import assert_exact

KILLS = 20  # SIGKILLs, each at a file event of the write phase
SEED = 20250901
HELPER = Path(__file__).with_name("helpers_index.py")

State = dict[str, bytes]  # corpus file -> bytes


def _read_corpus(corpus: Path) -> State:
    return {p.relative_to(corpus).as_posix(): p.read_bytes()
            for p in sorted(corpus.rglob("*")) if p.suffix in (".txt", ".md")}


def _write_state(corpus: Path, original: State, run: int) -> State:
    """The original corpus with one distinct sentence appended to one file (by run)."""
    files = sorted(original)
    target = files[run % len(files)]
    for rel, data in original.items():
        extra = (f"\nCrash marker {run}: the council met again on day {run}.\n".encode()
                 if rel == target else b"")
        (corpus / rel).write_bytes(data + extra)
    return _read_corpus(corpus)


def _temp_folders(index: Path) -> set[str]:
    return {f"{root.name}/{p.name}" for root in (index / "generations", index / "segments")
            if root.is_dir() for p in root.iterdir() if p.name.startswith(TMP_PREFIX)}


def _hashes(state: State) -> dict[str, str]:
    return {rel: hashlib.sha256(data).hexdigest() for rel, data in state.items()}


def _wait_stopped(proc: subprocess.Popen[bytes], limit_s: float = 120.0) -> bool:
    """True once the process has stopped itself (state T), False if it exited first.
    (The limit only bounds a hang; nothing is asserted about speed.)"""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            state = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            state = ""
        if state == "T":
            return True
        time.sleep(0.01)
    raise AssertionError(f"pid {proc.pid} neither stopped nor exited in {limit_s} s")


@pytest.mark.parametrize(("how", "kills_wanted"), [("--full", KILLS), ("--optimize", 12)])
def test_sigkill_during_index_always_leaves_a_complete_generation(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
        how: str, kills_wanted: int) -> None:
    """--full: each run writes a whole new segment and a generation naming it alone.
    --optimize: each run changes one file, so it writes the changed file's chunks merged
    with the previous segment (extending its FAISS indexes, a copy of its chunk table) into
    one new segment, tombstones and a generation: a merge, killed at any of its events."""
    t_start = time.monotonic()
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(CORPUS, corpus)
    original = _read_corpus(corpus)
    args = ["index", "--corpus", str(corpus), "--index", str(index), "--model", "fake", how]
    cmd = [sys.executable, "-m", "rag.serve.cli", *args]

    # one full build publishes state 0; a second, of one more state, counts the file
    # events of a build
    states: dict[int, State] = {0: _write_state(corpus, original, 0)}
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    counted = kills_wanted + 1
    states[counted] = _write_state(corpus, original, counted)
    done = subprocess.run([sys.executable, str(HELPER), "stop-at-io:0", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    events = int(done.stderr.strip().splitlines()[-1].split()[-1])
    assert events >= 20, done.stderr  # sqlite, faiss x2, lexical files, manifest, publish

    rng = random.Random(SEED)
    prev = counted  # the corpus state of the generation the index holds before a run
    kills = old = new = tmp_left = 0
    points: list[int] = []
    # random points, plus the last three events (the pointer's replace and after), so that
    # both outcomes, the old and the new generation, are always exercised
    draw = rng.sample(range(1, events - 2), kills_wanted - 3) + [events - 2, events - 1,
                                                                 events]
    for run, point in enumerate(draw, 1):
        states[run] = _write_state(corpus, original, run)
        points.append(point)

        before = _temp_folders(index)
        proc = subprocess.Popen([sys.executable, str(HELPER), f"stop-at-io:{point}", *args],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stopped = _wait_stopped(proc)
        assert stopped, f"run {run} exited ({proc.returncode}) before its event {point}"
        proc.send_signal(signal.SIGKILL)
        rc = proc.wait(timeout=30)
        assert rc == -signal.SIGKILL
        kills += 1
        leftovers = _temp_folders(index)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="rag"):
            gen = open_current(index)
        try:
            # CURRENT itself names a complete generation: no fallback was needed
            assert read_current(index) == gen.name, (run, point)
            assert not caplog.records, (run, point, caplog.text)
            assert gen.folder.parent == index / "generations"
            assert not gen.name.startswith(TMP_PREFIX) and gen.name not in leftovers

            docs = {rel: d["sha256"] for rel, d in gen.manifest["documents"].items()}
            match = [s for s in (prev, run) if docs == _hashes(states[s])]
            assert match, f"run {run} (killed at event {point}): {gen.name} matches " \
                          f"neither state {prev} nor state {run}"
            state = match[0]
            assert {f.path: f.sha256 for f in gen.files} == docs
            texts = {rel: data.decode() for rel, data in states[state].items()}
            chunks = gen.chunks(list(range(gen.size)))
            assert {c.file for c in chunks} == set(texts)
            for c in chunks:
                assert_exact(texts[c.file], c, (run, c.file))
            assert gen.dense.size == gen.lexical.size == len(chunks)
            # every segment it names is there, whole (load_segment checked each file)
            assert {x.name for x in gen.segments} == {
                x["name"] for x in gen.manifest["segments"]}
        finally:
            gen.close()

        new += state == run
        old += state != run
        tmp_left += bool(leftovers - before)  # killed while writing its generation
        prev = state

    # a clean run afterwards publishes the last state and sweeps every leftover
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not _temp_folders(index)
    assert not list(index.glob(f"{TMP_PREFIX}*"))
    names = list_generations(index)
    assert len(names) == 2 and read_current(index) == names[-1]
    named = {x["name"] for n in names for x in open_current(index).manifest["segments"]}
    assert set(list_segments(index)) >= named  # no dangling reference; orphans swept:
    assert len(list_segments(index)) <= 2  # each of the two generations names one
    gen = open_current(index)
    assert {rel: d["sha256"] for rel, d in gen.manifest["documents"].items()} == _hashes(
        states[run])
    gen.close()

    elapsed = time.monotonic() - t_start
    with capsys.disabled():
        print(f"\ncrash test ({how}): {kills}/{kills_wanted} kills at file events of the write phase left a "
              f"loadable generation ({old} old, {new} new; {tmp_left} left a {TMP_PREFIX} folder "
              f"that was never loaded); a build has {events} file events, kill points "
              f"{sorted(points)}; {elapsed:.1f} s")
    assert kills == kills_wanted
    assert old and new, "the kill points should reach both sides of the publish"
