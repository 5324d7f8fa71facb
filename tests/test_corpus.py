"""Corpus loading against the bytes on disk: paths, hashes, exact text, skips and errors."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.errors import CorpusError
from rag.text.corpus import LineIndex, Skipped, load_corpus, parse_metadata

from .conftest import CORPUS, SHARED, need_shared
from .oracles import lines_of


def _write(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _files(root: Path) -> dict[str, bytes]:
    """Every regular file below root, by POSIX relative path."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


# --- load_corpus: which files, in which order, with which identity --------------------------

@pytest.fixture
def mixed_corpus(tmp_path: Path) -> Path:
    """A folder mixing usable files, other suffixes, hidden entries and nesting."""
    root = tmp_path / "corpus"
    files = {
        "b.txt": b"Second file.\n",
        "a.md": b"# Title\r\nWindows line ends\r\nkept.\r\n",
        "sub/deep/z.txt": b"Nested deep.",
        "sub/c.txt": "\ufeffBOM first, caf\u00e9 \u4e2d\u6587 \U0001f600.\n".encode(),
        "A-upper.txt": b"Upper case name sorts before lower case.",
        "notes.rst": b"not a corpus suffix",
        "data.json": b"{}",
        "txt": b"no suffix at all",
        ".hidden.txt": b"hidden file",
        ".git/config.txt": b"inside a hidden folder",
        "sub/.secret/x.md": b"hidden folder deeper down",
    }
    for rel, data in files.items():
        _write(root, rel, data)
    return root


def test_load_corpus_is_recursive_sorted_and_filtered(mixed_corpus: Path) -> None:
    docs, skipped = load_corpus(mixed_corpus)
    assert [d.path for d in docs] == ["A-upper.txt", "a.md", "b.txt", "sub/c.txt", "sub/deep/z.txt"]
    assert skipped == []


def test_documents_match_the_bytes_on_disk(mixed_corpus: Path) -> None:
    docs, _ = load_corpus(mixed_corpus)
    assert docs
    for d in docs:
        data = (mixed_corpus / d.path).read_bytes()
        assert d.sha256 == hashlib.sha256(data).hexdigest()
        assert d.size == len(data)
        assert d.text == data.decode("utf-8")


def test_bom_and_crlf_are_kept_verbatim(mixed_corpus: Path) -> None:
    docs = {d.path: d for d in load_corpus(mixed_corpus)[0]}
    assert docs["sub/c.txt"].text.startswith("\ufeffBOM first")
    assert docs["a.md"].text == "# Title\r\nWindows line ends\r\nkept.\r\n"
    assert docs["a.md"].text.count("\r\n") == 3


def test_a_folder_named_like_a_text_file_is_not_a_document(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    (root / "folder.txt").mkdir(parents=True)
    _write(root, "real.txt", b"Real text.")
    docs, skipped = load_corpus(root)
    assert [d.path for d in docs] == ["real.txt"]
    assert skipped == []


# --- unusable files are skipped, named, and the rest still loads -----------------------------

def _load_with_bad(tmp_path: Path, name: str, data: bytes,
                   caplog: pytest.LogCaptureFixture) -> tuple[list[str], list[Skipped]]:
    root = tmp_path / "corpus"
    _write(root, "good.txt", b"Good text.")
    _write(root, name, data)
    with caplog.at_level(logging.WARNING, logger="rag.text.corpus"):
        docs, skipped = load_corpus(root)
    return [d.path for d in docs], skipped


@pytest.mark.parametrize(("data", "reason_part"), [
    (b"valid start \xff\xfe then garbage", "utf-8"),
    (b"caf\xe9 latin-1", "utf-8"),
    (b"", "empty"),
    (b"  \n\t\r\n ", "empty"),
])
def test_bad_file_is_skipped_with_reason(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                         data: bytes, reason_part: str) -> None:
    paths, skipped = _load_with_bad(tmp_path, "bad.txt", data, caplog)
    assert paths == ["good.txt"]
    assert len(skipped) == 1
    assert skipped[0].path == "bad.txt"
    assert reason_part in skipped[0].reason.lower()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("bad.txt" in r.getMessage() for r in warnings)


def test_invalid_utf8_reason_names_the_byte_offset(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    _, skipped = _load_with_bad(tmp_path, "bad.md", b"0123456789\xc3(", caplog)
    assert [s.path for s in skipped] == ["bad.md"]
    assert "byte 10" in skipped[0].reason


def test_unreadable_file_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """As root chmod 000 does not block reads, so reading this one file fails by patch."""
    original = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.name == "locked.txt":
            raise PermissionError(13, "Permission denied", str(self))
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    paths, skipped = _load_with_bad(tmp_path, "locked.txt", b"secret", caplog)
    assert paths == ["good.txt"]
    assert [s.path for s in skipped] == ["locked.txt"]
    assert "unreadable" in skipped[0].reason
    assert "Permission denied" in skipped[0].reason
    assert any("locked.txt" in r.getMessage() for r in caplog.records)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root reads files whatever their mode")
def test_chmod_000_file_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "corpus"
    _write(root, "good.txt", b"Good text.")
    _write(root, "locked.txt", b"secret")
    (root / "locked.txt").chmod(0)
    try:
        with caplog.at_level(logging.WARNING, logger="rag.text.corpus"):
            docs, skipped = load_corpus(root)
    finally:
        (root / "locked.txt").chmod(0o644)
    assert [d.path for d in docs] == ["good.txt"]
    assert [s.path for s in skipped] == ["locked.txt"]
    assert "unreadable" in skipped[0].reason


# --- whole-corpus errors ---------------------------------------------------------------------

def test_missing_folder_raises_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-corpus"
    with pytest.raises(CorpusError, match="no-such-corpus"):
        load_corpus(missing)


def test_a_file_instead_of_a_folder_raises(tmp_path: Path) -> None:
    f = tmp_path / "file-not-folder.txt"
    f.write_text("x")
    with pytest.raises(CorpusError, match="file-not-folder"):
        load_corpus(f)


@pytest.mark.parametrize("files", [
    {},
    {"readme.rst": b"wrong suffix", ".hidden.txt": b"hidden"},
    {"empty.txt": b"", "bad.md": b"\xff\xfe\xfd"},
])
def test_folder_without_usable_document_raises(tmp_path: Path, files: dict[str, bytes]) -> None:
    root = tmp_path / "unusable-corpus"
    root.mkdir()
    for rel, data in files.items():
        _write(root, rel, data)
    with pytest.raises(CorpusError) as err:
        load_corpus(root)
    assert "unusable-corpus" in str(err.value)
    for rel in files:
        if not rel.startswith(".") and rel.endswith((".txt", ".md")):
            assert rel in str(err.value)  # the reason for each skipped file is given


# --- metadata --------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    (" date 2025-09-01 Some Title\nbody", ("Some Title", "2025-09-01")),
    ("\ufeff date 2025-09-01 Some Title  \r\nbody", ("Some Title", "2025-09-01")),
    ("\n\ndate 2024-12-31 After blank lines\n", ("After blank lines", "2024-12-31")),
    ("Plain first line\nsecond", ("Plain first line", None)),
    ("date 2025-9-1 Not a date\n", ("date 2025-9-1 Not a date", None)),
    ("   \n", (None, None)),
])
def test_parse_metadata(text: str, expected: tuple[str | None, str | None]) -> None:
    assert parse_metadata(text, "x.txt") == expected


def test_parse_metadata_caps_a_long_first_line() -> None:
    title, date = parse_metadata("w" * 500 + "\nbody", "x.txt")
    assert title == "w" * 120
    assert date is None
    words = " ".join(["word"] * 60)  # a first paragraph, not a title: cut at a word
    title, _ = parse_metadata(words + "\nbody", "x.txt")
    assert title is not None and len(title) <= 120 and words.startswith(title)
    assert title.endswith("word")


def test_real_corpus_file_gets_its_date() -> None:
    docs, _ = load_corpus(CORPUS)
    by_path = {d.path: d for d in docs}
    doc = by_path["sco-ai-cooperation-2025-09-01.txt"]
    assert doc.date == "2025-09-01"
    assert doc.title and doc.title.startswith("Greater collaboration in AI")


# --- LineIndex -------------------------------------------------------------------------------

_LINE_TEXT = st.text(alphabet=st.sampled_from(list("ab \t\n\r\u2028\x85\ufeff\u4e2d\U0001f600")),
                     max_size=200)


@settings(max_examples=150, deadline=None)
@given(text=_LINE_TEXT, data=st.data())
def test_line_of_counts_newlines(text: str, data: st.DataObject) -> None:
    index = LineIndex(text)
    for i in range(len(text) + 1):
        assert index.line_of(i) == text.count("\n", 0, i) + 1
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    assert index.lines(start, end) == lines_of(text, start, end)


def test_lines_are_inclusive() -> None:
    text = "one\ntwo\nthree\n"
    index = LineIndex(text)
    assert index.lines(0, 3) == (1, 1)  # "one"
    assert index.lines(0, 4) == (1, 1)  # "one\n": the newline belongs to line 1
    assert index.lines(0, 5) == (1, 2)
    assert index.lines(4, 13) == (2, 3)  # "two\nthree"
    assert index.lines(8, 8) == (3, 3)  # empty span
    assert index.lines(len(text), len(text)) == (4, 4)


# --- the repo's corpus is the shared one -----------------------------------------------------

def test_repo_corpus_equals_shared_corpus_byte_for_byte() -> None:
    need_shared(SHARED / "corpus")
    ours, shared = _files(CORPUS), _files(SHARED / "corpus")
    assert sorted(ours) == sorted(shared)
    for rel, data in shared.items():
        assert hashlib.sha256(ours[rel]).hexdigest() == hashlib.sha256(data).hexdigest(), rel
