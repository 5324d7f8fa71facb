"""Date and format filters inside retrieval: each document's date and source against the
files' own headers, metadata and mtimes; filtered answers against hand-computed sets; the
API's 422 for a reversed range; an index built before dates reads them again once."""

from __future__ import annotations

import json
import os
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rag.indexing.build import build_index
from rag.indexing.embedding import FakeEmbedder
from rag.indexing.store import (
    MANIFEST,
    generations_dir,
    index_lock,
    manifest_checksum,
    read_current,
)
from rag.search.searcher import Filters, Searcher, row_mask
from rag.serve.http import create_app
from tests.conftest import fake_settings


def ns(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp() * 1e9) + \
        12 * 3600 * 10**9  # noon UTC


HTML = ("<html><head><title>Port memo</title><meta name='dcterms.date' "
        "content='2024-04-02T23:30:00-03:00'></head><body><p>Harbour memo about cranes "
        "and containers.</p></body></html>")
# file -> (text, mtime day, expected date, expected source)
FILES = {
    "a-line.txt": ("date 2024-01-15 January news\n\nCranes at the harbour moved steel.\n",
                   "2020-01-01", "2024-01-15", "line"),
    "b-front.md": (("---\ntitle: B\ndate: 2024-03-10\n---\n\nCranes at the harbour lifted "
                    "grain.\n"), "2020-01-01", "2024-03-10", "front-matter"),
    "c-mtime.txt": ("Cranes at the harbour stood idle.\n", "2024-02-20", "2024-02-20", "mtime"),
    "d-mtime.md": ("# D\n\nCranes at the harbour were repainted.\n", "2023-12-31",
                   "2023-12-31", "mtime"),
    "e-meta.html": (HTML, "2020-01-01", "2024-04-03", "html"),  # 23:30 at -03:00: next day UTC
}


@pytest.fixture(scope="module")
def dated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Searcher, Path]:
    tmp = tmp_path_factory.mktemp("dated")
    corpus = tmp / "corpus"
    corpus.mkdir()
    for name, (text, mday, _, _) in FILES.items():
        p = corpus / name
        p.write_text(text)
        os.utime(p, ns=(ns(mday), ns(mday)))
    settings = fake_settings(tmp, corpus)
    with index_lock(settings.index_dir):
        build_index(settings, embedder=FakeEmbedder())
    return Searcher(settings, embedder=FakeEmbedder()), corpus


def test_dates_and_sources(dated: tuple[Searcher, Path]) -> None:
    searcher, _ = dated
    got = {f.path: (f.date, f.date_source) for f in searcher.generation.files}
    assert got == {n: (v[2], v[3]) for n, v in FILES.items()}


@pytest.mark.parametrize("lo,hi,formats,expected", [
    ("2024-01-15", "2024-03-10", None, {"a-line.txt", "b-front.md", "c-mtime.txt"}),
    ("2024-01-16", None, None, {"b-front.md", "c-mtime.txt", "e-meta.html"}),
    (None, "2024-01-15", None, {"a-line.txt", "d-mtime.md"}),
    ("2024-04-03", "2024-04-03", None, {"e-meta.html"}),
    ("2024-04-02", "2024-04-02", None, set()),  # the HTML's day is the UTC one
    (None, None, ("md",), {"b-front.md", "d-mtime.md"}),
    (None, None, ("txt", "html"), {"a-line.txt", "c-mtime.txt", "e-meta.html"}),
    ("2024-01-01", None, ("md",), {"b-front.md"}),
    (None, None, ("pdf",), set()),
])
def test_filters_against_hand_computed_sets(dated: tuple[Searcher, Path], lo: str | None,
                                            hi: str | None, formats: tuple[str, ...] | None,
                                            expected: set[str]) -> None:
    searcher, _ = dated
    f = Filters(date_from=date.fromisoformat(lo) if lo else None,
                date_to=date.fromisoformat(hi) if hi else None, formats=formats)
    gen = searcher.generation
    mask = row_mask(gen, f)
    assert mask is not None
    assert {gen.files[i].path for i in set(gen.file_ids[mask].tolist())} == expected
    for mode in ("hybrid", "dense", "lexical"):  # applied inside retrieval: top_k is filled
        got = {p.file for p in searcher.ask("cranes at the harbour", 50, mode,  # type: ignore[arg-type]
                                            filters=f).passages}
        assert got == expected, mode
        top = searcher.ask("cranes at the harbour", 1, mode, filters=f).passages  # type: ignore[arg-type]
        assert len(top) == min(1, len(expected)) and {p.file for p in top} <= expected


def test_filters_combine_with_globs(dated: tuple[Searcher, Path]) -> None:
    searcher, _ = dated
    f = Filters(date_from=date(2024, 1, 1))
    got = {p.file for p in searcher.ask("cranes", 50, "lexical", files=["*.txt"],
                                        filters=f).passages}
    assert got == {"a-line.txt", "c-mtime.txt"}


def test_bad_filters_are_refused_naming_both() -> None:
    from rag.errors import ConfigError

    with pytest.raises(ConfigError, match=r"date_from=2024-05-01 is after date_to=2024-03-01"):
        Filters(date_from=date(2024, 5, 1), date_to=date(2024, 3, 1))
    with pytest.raises(ConfigError, match="formats"):
        Filters(formats=("rtf",))


def test_api_filters_and_422(dated: tuple[Searcher, Path]) -> None:
    searcher, _ = dated
    app = create_app(searcher.settings, searcher, watch=False)
    with TestClient(app) as client:
        r = client.post("/ask", json={"question": "cranes", "mode": "lexical", "top_k": 50,
                                      "date_from": "2024-02-01", "formats": ["txt", "md"]})
        assert r.status_code == 200, r.text
        assert {p["file"] for p in r.json()["passages"]} == {"b-front.md", "c-mtime.txt"}
        bad = client.post("/ask", json={"question": "cranes", "date_from": "2024-05-01",
                                        "date_to": "2024-03-01"})
        assert bad.status_code == 422
        msg = json.dumps(bad.json())
        assert "date_from=2024-05-01" in msg and "date_to=2024-03-01" in msg
        assert client.post("/ask", json={"question": "q", "date_from": "2024-13-01"}
                           ).status_code == 422
        assert client.post("/ask", json={"question": "q", "formats": ["rtf"]}
                           ).status_code == 422
        docs = {d["path"]: d for d in client.get("/documents").json()}
        assert docs["e-meta.html"]["date"] == "2024-04-03"
        assert docs["e-meta.html"]["date_source"] == "html"


def test_cli_filters(dated: tuple[Searcher, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from rag.serve.cli import main

    s = searcher_settings = dated[0].settings
    rc = main(["ask", "cranes", "--corpus", str(s.corpus_dir), "--index",
               str(searcher_settings.index_dir), "--model", "fake", "--mode", "lexical",
               "--top-k", "50", "--date-to", "2024-01-31", "--json"])
    assert rc == 0
    got = {p["file"] for p in json.loads(capsys.readouterr().out)["passages"]}
    assert got == {"a-line.txt", "d-mtime.md"}
    rc = main(["ask", "cranes", "--corpus", str(s.corpus_dir), "--index", str(s.index_dir),
               "--model", "fake", "--date-from", "2024-05-01", "--date-to", "2024-03-01"])
    assert rc == 2
    assert "date_from=2024-05-01 is after date_to=2024-03-01" in capsys.readouterr().err


def test_an_index_built_before_dates_reads_them_again_once(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, (text, mday, _, _) in FILES.items():
        (corpus / name).write_text(text)
        os.utime(corpus / name, ns=(ns(mday), ns(mday)))
    settings = fake_settings(tmp_path, corpus)
    emb = FakeEmbedder()
    with index_lock(settings.index_dir):
        build_index(settings, embedder=emb)
    # make it look like an index from before: no "dates", no date_source, old dates
    folder = generations_dir(settings.index_dir) / str(read_current(settings.index_dir))
    m = json.loads((folder / MANIFEST).read_text())
    del m["dates"]
    for d in m["documents"].values():
        d.pop("date_source")
        d["date"] = None if d["date"] != "2024-01-15" else d["date"]
    m["checksum"] = manifest_checksum(m)
    (folder / MANIFEST).write_text(json.dumps(m))
    with index_lock(settings.index_dir):
        report = build_index(settings, embedder=emb)
    assert report.generation and report.chunks_embedded == 0  # dates only: nothing embedded
    assert report.redated == len(FILES)
    assert "dates read again for 5 files" in report.summary()
    gen = Searcher(settings, embedder=emb).generation
    assert {f.path: (f.date, f.date_source) for f in gen.files} == \
        {n: (v[2], v[3]) for n, v in FILES.items()}
    with index_lock(settings.index_dir):
        again = build_index(settings, embedder=emb)
    assert again.generation is None and again.redated == 0  # once
