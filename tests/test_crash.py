"""Crash safety of `rag index`: SIGKILL at random moments never leaves an unloadable index,
nor a generation that mixes two corpus states, nor a temp folder that gets loaded.

Each run indexes a new corpus state (the original files plus one distinct sentence), so the
generation left after a kill can be told apart: its per-document hashes must equal either
the state the index held before the run or the state the run was building, and every chunk
must be that state's text at its offsets.
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

from rag.store import TMP_PREFIX, list_generations, open_current, read_current

from .conftest import CORPUS, ROOT

KILLS = 20  # SIGKILLs that hit a running process
MAX_RUNS = 60  # runs that finish before their kill do not count; stop trying after this
BUDGET_S = 80.0  # the whole test stays under 90 s
SEED = 20250901

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
    root = index / "generations"
    return {p.name for p in root.iterdir() if p.name.startswith(TMP_PREFIX)}


def _hashes(state: State) -> dict[str, str]:
    return {rel: hashlib.sha256(data).hexdigest() for rel, data in state.items()}


def test_sigkill_during_index_always_leaves_a_complete_generation(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
        ) -> None:
    t_start = time.monotonic()
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(CORPUS, corpus)
    original = _read_corpus(corpus)
    cmd = [sys.executable, "-m", "rag.cli", "index", "--corpus", str(corpus),
           "--index", str(index), "--model", "fake", "--full"]

    # how long one full build takes, start to exit (it also publishes state 0)
    states: dict[int, State] = {0: _write_state(corpus, original, 0)}
    took = []
    for _ in range(2):
        t0 = time.monotonic()
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
        took.append(time.monotonic() - t0)
        assert done.returncode == 0, done.stderr
    duration = sum(took) / len(took)

    rng = random.Random(SEED)
    prev = 0  # the corpus state of the generation the index holds before a run
    kills = finished = old = new = tmp_left = 0
    run = 0
    while kills < KILLS:
        assert run < MAX_RUNS, f"only {kills} of {run} runs were still going at their kill"
        assert time.monotonic() - t_start < BUDGET_S, f"out of time after {kills} kills"
        run += 1
        states[run] = _write_state(corpus, original, run)
        delay = rng.uniform(0.0, 1.2 * duration)

        before = _temp_folders(index)
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
        rc = proc.wait(timeout=30)
        killed = rc == -signal.SIGKILL
        if killed:
            kills += 1
        else:
            finished += 1
            assert rc == 0, f"run {run} exited {rc} without being killed"

        leftovers = _temp_folders(index)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="rag"):
            gen = open_current(index)
        try:
            # CURRENT itself names a complete generation: no fallback was needed
            assert read_current(index) == gen.name, (run, delay)
            assert not caplog.records, (run, delay, caplog.text)
            assert gen.folder.parent == index / "generations"
            assert not gen.name.startswith(TMP_PREFIX) and gen.name not in leftovers

            docs = {rel: d["sha256"] for rel, d in gen.manifest["documents"].items()}
            match = [s for s in (prev, run) if docs == _hashes(states[s])]
            assert match, f"run {run} (killed={killed}, {delay:.3f} s): {gen.name} matches " \
                          f"neither state {prev} nor state {run}"
            state = match[0]
            assert {f.path: f.sha256 for f in gen.files} == docs
            texts = {rel: data.decode() for rel, data in states[state].items()}
            chunks = gen.chunks(list(range(gen.size)))
            assert {c.file for c in chunks} == set(texts)
            for c in chunks:
                assert texts[c.file][c.start:c.end] == c.text, (run, c.file, c.start)
                assert c.line_start == texts[c.file].count("\n", 0, c.start) + 1
            assert gen.dense.size == gen.lexical.size == len(chunks)
        finally:
            gen.close()

        if not killed:
            assert state == run, f"run {run} finished but {gen.name} holds state {state}"
        if killed:
            new += state == run
            old += state != run
            tmp_left += bool(leftovers - before)  # killed while writing its generation
        prev = state

    # a clean run afterwards publishes the last state and sweeps every leftover
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert not _temp_folders(index)
    assert not list(index.glob(f"{TMP_PREFIX}*"))
    names = list_generations(index)
    assert len(names) == 2 and read_current(index) == names[-1]
    gen = open_current(index)
    assert {rel: d["sha256"] for rel, d in gen.manifest["documents"].items()} == _hashes(
        states[run])
    gen.close()

    elapsed = time.monotonic() - t_start
    with capsys.disabled():
        print(f"\ncrash test: {kills}/{kills} kills left a loadable generation "
              f"({old} old, {new} new; {tmp_left} left a {TMP_PREFIX} folder that was never "
              f"loaded); {finished} runs finished before their kill; one build "
              f"{duration:.2f} s, kills drawn in [0, {1.2 * duration:.2f}] s; {elapsed:.1f} s")
    assert elapsed < 90
