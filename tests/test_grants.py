"""Grants inside retrieval (property test): on random small corpora, a key's answer is exactly
the answer to ``ask(files=<the files it may read>)``, every passage and listed document is
permitted, and the counts are the grant's. The oracle for a grant is a matcher written here
(segments, ``**`` as any number of them), not the service's regex."""

from __future__ import annotations

import fnmatch
import os
import itertools
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.indexing.build import build_index
from rag.indexing.store import index_lock
from rag.search.searcher import Searcher
from rag.serve.auth import Access, AuditLog, Guard
from rag.serve.keys import ApiKey, check_glob

from .conftest import fake_settings

WORDS = ("budget", "salary", "river", "engine", "treaty", "harvest", "orbit", "ledger",
         "vaccine", "tariff", "pension", "satellite", "wheat", "copper", "audit")
FOLDERS = ("public", "secret", "hr", "public/sub", "hr/2025")
NAMES = ("a", "b", "notes", "plan", "x1")


def oracle_permits(glob: str, path: str) -> bool:
    """Segment matcher: '**' matches any number of folders (a trailing one at least one
    name: 'a/**' is what lies below a/, not a itself), other segments fnmatch one."""
    def match(gs: list[str], ps: list[str]) -> bool:
        if not gs:
            return not ps
        if gs[0] == "**":
            return any(match(gs[1:], ps[i:]) for i in range(len(gs) == 1, len(ps) + 1))
        return bool(ps) and fnmatch.fnmatchcase(ps[0], gs[0]) and match(gs[1:], ps[1:])
    return match(glob.split("/"), path.split("/"))


sentence = st.lists(st.sampled_from(WORDS), min_size=4, max_size=12).map(
    lambda ws: " ".join(ws).capitalize() + ".")
document = st.lists(sentence, min_size=1, max_size=12).map(" ".join)
corpora = st.dictionaries(
    st.tuples(st.sampled_from(FOLDERS), st.sampled_from(NAMES)).map(lambda t: f"{t[0]}/{t[1]}.txt"),
    document, min_size=1, max_size=8)
segment = st.sampled_from(("public", "secret", "hr", "sub", "2025", "*", "a.txt", "*.txt",
                           "n*", "?.txt", "**"))
# grants people write, and random ones (most of which permit little or nothing)
typical = st.sampled_from(("public/**", "hr/**", "secret/*.txt", "**/a.txt", "public/*",
                           "*/notes.txt", "hr/2025/*", "**", "public/sub/**", "h?/**",
                           "**/p*.txt", "*/*/x1.txt"))
globs = typical | st.lists(segment, min_size=1, max_size=3).map("/".join)
grants = st.lists(globs, min_size=1, max_size=3)
questions = st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join)
filters = st.none() | st.lists(st.sampled_from(("public/*", "secret/*", "hr/*", "*", "*a*",
                                                "public/sub/*", "*.txt")), min_size=1,
                               max_size=2)
cases = st.lists(st.tuples(grants, questions, filters,
                           st.sampled_from(("hybrid", "dense", "lexical")),
                           st.integers(1, 8)), min_size=1, max_size=6)


def answer_key(a):  # type: ignore[no-untyped-def]
    """What must be equal between two answers (all but the timings and the index record)."""
    return (a.answerable, a.confidence, [(p.rank, p.score, p.file, p.start, p.end, p.text,
                                          p.highlight) for p in a.passages])


LONG = bool(os.environ.get("RAG_FUZZ_LONG"))  # make fuzz: more examples, a new draw each run


@settings(max_examples=200 if LONG else 25, deadline=None, derandomize=not LONG, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(corpus=corpora, cases=cases)
def test_a_keys_answer_is_ask_files_grant(corpus: dict[str, str],
                                          cases: list[tuple[list[str], str, list[str] | None,
                                                            str, int]]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="grants-"))
    try:
        for path, text in corpus.items():
            f = tmp / "corpus" / path
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(text)
        # small chunks: several a file, so grants cut through the row space; HNSW from the
        # second row, searched through its id selector (exact_rows 0) or exactly (10**6)
        s = fake_settings(tmp, approximate_threshold=1, exact_rows=0,
                          chunk_tokens=24, chunk_overlap_tokens=4)
        with index_lock(s.index_dir):
            build_index(s)
        hnsw = Searcher(s)
        exact = Searcher(s.model_copy(update={"exact_rows": 10**6}))
        gen = hnsw.generation
        assert gen.size == 1 or gen.dense.kind == "hnsw"
        guard = Guard(None, s.corpus_dir, AuditLog(None))
        for (allow, q, files, mode, top_k), searcher in itertools.product(cases, (hnsw, exact)):
            for g in allow:
                check_glob(g)
            access = Access(ApiKey("k", "0" * 64, tuple(allow), ""), guard)
            permitted = [f.path for f in gen.files
                         if any(oracle_permits(g, f.path) for g in allow)]
            both = [p for p in permitted
                    if files is None or any(fnmatch.fnmatchcase(p, g) for g in files)]
            got = searcher.ask(q, top_k, mode, files, scope=access)  # type: ignore[arg-type]
            assert searcher.generation.name == gen.name
            assert {p.file for p in got.passages} <= set(both)
            assert got.index.chunks == sum(gen.file_by_path[p].chunks for p in permitted)
            assert [f.path for f, ok in zip(gen.files, access.file_mask(gen)) if ok] == permitted
            if not both:  # files=[] would mean "no filter": the grant must give nothing
                assert got.passages == [] and not got.answerable
                continue
            want = searcher.ask(q, top_k, mode, both)  # type: ignore[arg-type]
            assert answer_key(got) == answer_key(want), (allow, q, files, mode)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize(("glob", "path"), [("public/**", "public/a/b.txt"),
                                            ("**/a.txt", "a.txt"), ("*/a.txt", "x/y/a.txt"),
                                            ("hr/*", "hr/2025/a.txt")])
def test_the_oracle_agrees_with_the_grant(glob: str, path: str) -> None:
    from rag.serve.keys import Grant

    assert Grant((glob,)).permits(path) == oracle_permits(glob, path)
