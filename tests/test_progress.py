"""`rag index` progress: the line's content, plain periodic lines off a terminal, a slow
conversion named once, the run's own counts (fake embedder)."""

from __future__ import annotations

import io
import time
from contextlib import closing
from pathlib import Path

from rag.indexing.build import build_index
from rag.indexing.embedding import FakeEmbedder
from rag.indexing.progress import Progress
from rag.indexing.store import index_lock
from tests.conftest import fake_settings


def wait_for_text(buf: io.StringIO, text: str, timeout_s: float = 30.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in buf.getvalue():
            return buf.getvalue()
        time.sleep(0.02)
    raise AssertionError(f"{text!r} never shown: {buf.getvalue()!r}")


def test_line_counts_rate_and_time_left() -> None:
    p = Progress(io.StringIO(), tty=False)
    p.file("a.txt", 3, 10)
    assert p.line() == "indexing: files 3/10 · reading a.txt"
    p.embedding(1000)
    p._embed_start = time.monotonic() - 2.0  # 2 s of embedding so far
    p.embedded(250)
    line = p.line()
    assert "texts embedded 250/1,000 (125/s, ~6 s left)" in line, line
    assert "reading" not in line
    p.close()


def test_plain_lines_name_a_slow_conversion_once() -> None:
    buf = io.StringIO()
    with closing(Progress(buf, tty=False, every_s=3600, slow_s=0.3)) as p:
        p.file("scans/big.pdf", 0, 2)
        out = wait_for_text(buf, "reading scans/big.pdf (")
        assert "\r" not in out and out.endswith("\n")
        time.sleep(0.6)  # more ticks of the same slow file: named once, not once a tick
        assert buf.getvalue().count("big.pdf") == 1


def test_terminal_redraws_one_line() -> None:
    buf = io.StringIO()
    with closing(Progress(buf, tty=True)) as p:
        p.file("a.txt", 0, 1)
        wait_for_text(buf, "\r\x1b[2Kindexing: files 0/1")
    assert buf.getvalue().endswith("\n") and buf.getvalue().count("\n") == 1


def test_a_run_reports_its_files_and_texts(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(4):
        (corpus / f"f{i}.txt").write_text(f"File {i}. It has two sentences.\n")
    settings = fake_settings(tmp_path, corpus)
    with index_lock(settings.index_dir), closing(Progress(io.StringIO(), tty=False)) as p:
        build_index(settings, embedder=FakeEmbedder(), progress=p)
    assert (p.files_done, p.files_total) == (3, 4)  # the last file read was the 4th
    assert p.chunks_total == p.chunks_done == 4 + 8  # 4 chunks and their 8 sentences
