"""Segments: a segmented index answers exactly as a fresh full build of the same corpus.

The oracle is a full build (one segment, no tombstone) of the corpus as it stands, and for
BM25 bm25s itself. Row numbers are the same in both by construction (live chunks ordered
by path, then offset), so rankings compare row by row; scores compare to 1e-6 (BLAS may
sum a dot product in another order for a row at another position: the last float32 bits
can differ, and an answer's scores are rounded to 6 decimals, so one unit of the 6th
decimal is allowed there). Where two candidates tie (to 1e-6) the order between them is
not defined by the scores alone, so ties are compared as sets (see same_ranking).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from rag.config import Settings
from rag.indexing.build import build_index
from rag.indexing.embedding import FakeEmbedder
from rag.indexing.generation import open_current
from rag.indexing.lexical import LexicalIndex, tokenize
from rag.indexing.segments import MergePlan, SegmentStat, list_segments, plan_merge
from rag.indexing.store import index_lock, list_generations
from rag.search.searcher import Searcher

from .conftest import CORPUS

MODES = ("hybrid", "dense", "lexical")
QUESTIONS = [
    "How will SCO countries cooperate on artificial intelligence?",
    "Where was the SCO Digital Economy Forum held?",
    "data security and cross-border e-commerce",
    "digital transformation across Eurasia",
    "quantum laboratory in Tashkent",
]
SENTENCES = sorted({s.strip() for p in sorted(CORPUS.glob("*.txt"))
                    for s in p.read_text(encoding="utf-8").replace("\n", " ").split(". ")
                    if 40 < len(s.strip()) < 300})


def build(s: Settings, **kw: Any) -> Any:
    with index_lock(s.index_dir):
        return build_index(s, embedder=kw.pop("embedder", None) or FakeEmbedder(), **kw)


def ranking(searcher: Searcher, q: str, mode: str) -> list[tuple[str, int, int, float]]:
    """Top 10 passages: (file, start, end, score)."""
    a = searcher.ask(q, top_k=10, mode=mode)  # type: ignore[arg-type]
    return [(p.file, p.start, p.end, p.score) for p in a.passages]


def retrievers(searcher: Searcher, q: str) -> dict[str, list[tuple[int, float]]]:
    """The raw dense and BM25 hits (row, score), 50 each, before fusion."""
    gen = searcher.generation
    qv = searcher.embed_query(q)
    return {"dense": [(h.row, h.score) for h in searcher.dense_hits(gen, qv, 50, None)],
            "lexical": [(h.row, h.score) for h in gen.lexical.search(q, 50)]}


def same_ranking(a: list[tuple[Any, float]], b: list[tuple[Any, float]], tol: float = 1e-6
                 ) -> None:
    """Equal scores position by position (to tol) and equal items, where items whose scores
    tie (to tol) are compared as sets; a tie group cut by the end of the list may differ."""
    assert len(a) == len(b), (a, b)
    for (_, x), (_, y) in zip(a, b):
        assert abs(x - y) <= tol, (a, b)
    i = 0
    while i < len(a):
        j = i + 1
        while j < len(a) and abs(a[j][1] - a[i][1]) <= tol:
            j += 1
        if j < len(a):  # a complete tie group
            assert sorted(map(repr, (k for k, _ in a[i:j]))) == sorted(
                map(repr, (k for k, _ in b[i:j]))), (a[i:j], b[i:j])
        i = j


def assert_same_answers(seg: Searcher, full: Searcher) -> None:
    """Every mode, top 10, every question: the same passages and scores."""
    assert seg.generation.size == full.generation.size
    for q in QUESTIONS:
        for mode in MODES:  # passage scores are rounded to 6 decimals: one unit of slack
            same_ranking([(r[:3], r[3]) for r in ranking(seg, q, mode)],
                         [(r[:3], r[3]) for r in ranking(full, q, mode)], 1e-6 + 1e-9)
        rs, rf = retrievers(seg, q), retrievers(full, q)
        for k in rs:
            same_ranking(rs[k], rf[k])


def full_build_of(corpus: Path, root: Path, **over: Any) -> Searcher:
    s = Settings(corpus_dir=corpus, index_dir=root / "full-index", model="fake", **over)  # type: ignore[arg-type]
    shutil.rmtree(s.index_dir, ignore_errors=True)
    build(s, full=True)
    assert len(list_segments(s.index_dir)) == 1
    return Searcher(s, embedder=FakeEmbedder())


# ---------------------------------------------------------------- BM25 against bm25s

def test_bm25_scores_equal_bm25s() -> None:
    import bm25s

    texts = SENTENCES[:300] + ["", "the of and"]
    ours = LexicalIndex.build(texts)
    ref = bm25s.BM25()
    ref.index([tokenize(t) or [""] for t in texts], show_progress=False)
    for q in QUESTIONS + ["SCO SCO digital", "Tashkent"]:
        ids = [ref.vocab_dict[t] for t in tokenize(q) if t in ref.vocab_dict]
        want = np.asarray(ref.get_scores_from_ids(ids)) if ids else np.zeros(len(texts))
        assert np.allclose(ours.scores(q), want, rtol=1e-5, atol=1e-6), q
        idf = ours.idf(tokenize(q))
        for t, w in idf.items():
            df = sum(t in (tokenize(x) or [""]) for x in texts)
            assert abs(w - np.log(1 + (len(texts) - df + 0.5) / (df + 0.5))) < 1e-9


def test_postings_extend_equals_one_build() -> None:
    from rag.indexing.lexical import Postings

    a, b = SENTENCES[:70], SENTENCES[70:160]
    merged, one = Postings.build(a).extend(Postings.build(b)), Postings.build(a + b)
    m = LexicalIndex([(merged, None)], len(a) + len(b))
    o = LexicalIndex([(one, None)], len(a) + len(b))
    for q in QUESTIONS:
        assert np.array_equal(m.scores(q), o.scores(q)), q


# ---------------------------------------------------------------- merge policy (pure)

def test_plan_merge() -> None:
    big, small = SegmentStat("s-000001", 1000, 10), SegmentStat("s-000002", 20, 0)
    assert plan_merge([big, small], 10, 0.3) is None
    many = [big] + [SegmentStat(f"s-{i:06d}", 20, 0) for i in range(2, 13)]
    plan = plan_merge(many, 10, 0.3)
    assert plan is not None and "s-000001" not in plan.merge and len(plan.merge) == 11
    dirty = SegmentStat("s-000003", 100, 50)
    assert plan_merge([big, dirty], 10, 0.3) == MergePlan(("s-000003",), None)
    assert plan_merge([big, small], 10, 0.3, optimize=True) == MergePlan(
        ("s-000001", "s-000002"), "s-000001")
    assert plan_merge([big], 10, 0.3, optimize=True) is None
    assert plan_merge([SegmentStat("s-000001", 1000, 500), small], 10, 0.3, optimize=True
                      ) == MergePlan(("s-000001", "s-000002"), "s-000002")


# ---------------------------------------------------------------- equivalence (fake model)

def files_of(draw_ids: list[int], n: int) -> str:
    return "\n\n".join(SENTENCES[(i * 7 + k) % len(SENTENCES)] + "." for k, i in
                       enumerate(draw_ids[:n]))


OPS = st.lists(st.tuples(st.sampled_from(["add", "change", "delete", "optimize"]),
                         st.integers(0, 7), st.lists(st.integers(0, 10_000), min_size=1,
                                                     max_size=12)),
               min_size=1, max_size=7)


@hsettings(max_examples=int(os.environ.get("RAG_SEGMENT_EXAMPLES", "12")), deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture,
                                  HealthCheck.too_slow])
@given(ops=OPS)
def test_random_add_change_delete_equals_a_full_build(tmp_path_factory: pytest.TempPathFactory,
                                                       ops: list[Any]) -> None:
    root = tmp_path_factory.mktemp("eq")
    corpus = root / "corpus"
    corpus.mkdir()
    for i in range(3):
        (corpus / f"f{i}.txt").write_text(files_of(list(range(i * 5, i * 5 + 9)), 9))
    s = Settings(corpus_dir=corpus, index_dir=root / "index", model="fake",  # type: ignore[arg-type]
                 merge_max_segments=3)
    build(s)
    for op, which, ids in ops:
        files = sorted(corpus.iterdir())
        target = corpus / f"f{which}.txt"
        if op == "add" or (op == "change" and not target.exists()):
            target.write_text(files_of(ids, len(ids)))
        elif op == "change":
            target.write_text(target.read_text() + "\n\n" + files_of(ids, 3))
        elif op == "delete" and len(files) > 1 and target.exists():
            target.unlink()
        build(s, optimize=op == "optimize")
        gen = open_current(s.index_dir)
        assert len(gen.segments) <= 3 + 1
        gen.close()
    seg = Searcher(s, embedder=FakeEmbedder())
    full = full_build_of(corpus, root)
    assert_same_answers(seg, full)
    # the generation's rows are a full build's rows: same chunks, same vectors
    g, f = seg.generation, full.generation
    assert g.chunks(list(range(g.size))) == f.chunks(list(range(f.size)))
    assert np.array_equal(g.dense.vectors(), f.dense.vectors())
    assert np.array_equal(g.sent_row, f.sent_row) and np.array_equal(g.sent_start, f.sent_start)
    assert g.sentences is not None and f.sentences is not None
    assert np.array_equal(g.sentences.vectors(), f.sentences.vectors())
    g.close()
    f.close()


def test_segments_tombstones_and_gc(tmp_path: Path, small_corpus: Path) -> None:
    s = Settings(corpus_dir=small_corpus, index_dir=tmp_path / "index", model="fake",  # type: ignore[arg-type]
                 merge_max_dead_share=0.9)
    build(s)
    names = sorted(p.name for p in small_corpus.iterdir())
    for i in range(3):
        with open(small_corpus / names[i], "a", encoding="utf-8") as f:
            f.write(f"\nRevision {i}: the council met in Bishkek.\n")
        report = build(s)
        assert report.segment == f"s-{i + 2:06d}" and report.chunks_embedded < report.chunks_total
    gen = open_current(s.index_dir)
    assert [x.name for x in gen.segments] == ["s-000001", "s-000002", "s-000003", "s-000004"]
    dead = {x["name"]: x["dead"] for x in gen.manifest["segments"]}
    assert dead["s-000001"] > 0 and dead["s-000004"] == 0
    tomb = np.load(gen.folder / "tombstones" / "s-000001.npy")
    assert len(tomb) == dead["s-000001"]
    gen.close()
    # --optimize: one segment (the largest extended), same answers as a full build
    report = build(s, optimize=True)
    assert report.merged == ["s-000001", "s-000002", "s-000003", "s-000004"]
    gen = open_current(s.index_dir)
    assert [x.name for x in gen.segments] == ["s-000005"]
    assert gen.manifest["segments"][0]["dead"] == dead["s-000001"]  # the base keeps its rows
    gen.close()
    # GC: segments named by neither of the last two generations are gone
    assert list_generations(s.index_dir) == ["g-000004", "g-000005"]
    assert list_segments(s.index_dir) == ["s-000001", "s-000002", "s-000003", "s-000004",
                                          "s-000005"]
    (small_corpus / names[0]).unlink()
    build(s)
    assert list_segments(s.index_dir) == ["s-000005"]
    # a segment that is mostly tombstones is rewritten without them by the next run
    strict = s.model_copy(update={"merge_max_dead_share": 0.1})
    with open(small_corpus / names[1], "a", encoding="utf-8") as f:
        f.write("\nOne more revision.\n")
    report = build(strict)
    assert report.merged == ["s-000005"]
    gen = open_current(s.index_dir)
    assert [x["dead"] for x in gen.manifest["segments"]] == [0]
    gen.close()
    seg = Searcher(s, embedder=FakeEmbedder())
    assert_same_answers(seg, full_build_of(small_corpus, tmp_path))


def test_noop_decides_from_the_manifest_and_touches_no_segment(tmp_path: Path,
                                                              small_corpus: Path) -> None:
    past = time.time() - 100
    for p in small_corpus.iterdir():
        os.utime(p, (past, past))
    s = Settings(corpus_dir=small_corpus, index_dir=tmp_path / "index", model="fake")  # type: ignore[arg-type]
    build(s)
    seen: list[str] = []
    root = str((tmp_path / "index" / "segments").resolve()) + "/s-"  # inside a segment
    watching = [True]

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if watching[0] and event in ("open", "sqlite3.connect") \
                and args and isinstance(args[0], (str, Path)) and str(args[0]).startswith(root):
            seen.append(f"{event} {args[0]}")

    sys.addaudithook(hook)
    try:
        report = build(s)
    finally:
        watching[0] = False
    assert report.generation is None and report.hashed == 0, report
    assert seen == []
    # a touched file is hashed again (and found unchanged); a changed one is re-indexed
    name = sorted(p.name for p in small_corpus.iterdir())[0]
    os.utime(small_corpus / name, (past + 10, past + 10))
    report = build(s)
    assert report.generation is None and report.hashed == 1


def test_hot_reload_shares_untouched_segments(tmp_path: Path, small_corpus: Path) -> None:
    s = Settings(corpus_dir=small_corpus, index_dir=tmp_path / "index", model="fake",  # type: ignore[arg-type]
                 merge_max_dead_share=0.9)
    build(s)
    searcher = Searcher(s, embedder=FakeEmbedder())
    before = searcher.generation
    with open(small_corpus / sorted(p.name for p in small_corpus.iterdir())[0], "a") as f:
        f.write("\nA new paragraph about satellites over the Suez Canal.\n")
    build(s)
    assert searcher.reload_if_changed()
    after = searcher.generation
    assert after.segments[0] is before.segments[0]  # loaded once, validated once
    assert searcher.ask("satellites Suez Canal", mode="lexical").passages
    before.close()  # the old generation lets go; the shared segment stays open for the new
    assert searcher.ask("satellites Suez Canal", mode="lexical").passages


def test_an_index_of_the_old_format_names_rag_index_full(tmp_path: Path,
                                                         small_corpus: Path) -> None:
    import json

    from rag.errors import IndexCorruptError
    from rag.indexing.store import manifest_checksum

    s = Settings(corpus_dir=small_corpus, index_dir=tmp_path / "index", model="fake")  # type: ignore[arg-type]
    build(s)
    path = s.index_dir / "generations" / "g-000001" / "manifest.json"
    m = json.loads(path.read_text())
    m["format_version"] = 1
    m["checksum"] = manifest_checksum(m)
    path.write_text(json.dumps(m))
    with pytest.raises(IndexCorruptError, match="rag index --full"):
        open_current(s.index_dir)
    report = build(s)  # the old generation is not reusable: everything is rebuilt
    assert report.generation == "g-000002" and report.chunks_reused == 0


# ---------------------------------------------------------------- the real model

def test_seed_corpus_with_the_real_model_equals_a_full_build(
        tmp_path: Path, real_embedder: Any) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    files = sorted(CORPUS.iterdir())
    for p in files[:3]:
        shutil.copy(p, corpus / p.name)
    s = Settings(corpus_dir=corpus, index_dir=tmp_path / "index",  # type: ignore[arg-type]
                 merge_max_dead_share=0.9)  # keep the three segments apart
    build(s, embedder=real_embedder)
    for p in files[3:]:  # add the others
        shutil.copy(p, corpus / p.name)
    build(s, embedder=real_embedder)
    text = (corpus / files[0].name).read_text(encoding="utf-8")  # change one
    (corpus / files[0].name).write_text(text + "\nThe members agreed to open a joint quantum "
                                        "sensing laboratory in Tashkent next spring.\n")
    build(s, embedder=real_embedder)
    gen = open_current(s.index_dir)
    assert len(gen.segments) == 3
    gen.close()
    full_s = Settings(corpus_dir=corpus, index_dir=tmp_path / "full")  # type: ignore[arg-type]
    build(full_s, embedder=real_embedder, full=True)
    seg = Searcher(s, embedder=real_embedder)
    full = Searcher(full_s, embedder=real_embedder)
    assert_same_answers(seg, full)


# ---------------------------------------------------------------- one question, one gathering

def test_a_question_gathers_its_postings_once(tmp_path: Path, small_corpus: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """BM25 scores and highlight weights come from one gathering of the question's postings,
    and the gathered weights equal idf() over live rows (two segments, one with tombstones)."""
    s = Settings(corpus_dir=small_corpus, index_dir=tmp_path / "index", model="fake",  # type: ignore[arg-type]
                 merge_max_dead_share=0.9)
    build(s)
    first = min(small_corpus.iterdir())
    with open(first, "a", encoding="utf-8") as f:
        f.write("\nRevision: the council met in Bishkek on digital cooperation.\n")
    build(s)
    searcher = Searcher(s, embedder=FakeEmbedder())
    gen = searcher.generation
    assert len(gen.segments) == 2 and gen.manifest["segments"][0]["dead"] > 0
    for q in QUESTIONS + ["Bishkek council revision"]:
        got = gen.lexical.gather(q)
        assert got.weights == gen.lexical.idf(sorted(set(tokenize(q)))), q
        assert np.array_equal(gen.lexical.scores(got), gen.lexical.scores(q)), q
    calls = []
    gathered = LexicalIndex._postings

    def counting(self: LexicalIndex, terms: list[str]) -> Any:
        calls.append(tuple(terms))
        return gathered(self, terms)

    monkeypatch.setattr(LexicalIndex, "_postings", counting)
    for q in QUESTIONS:
        calls.clear()
        searcher.ask(q, top_k=5, mode="hybrid")
        assert calls == [tuple(sorted(set(tokenize(q))))], (q, calls)


def test_the_reader_loads_without_waiting_on_the_model_lock(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading the reader takes its own lock: a thread holding the embedder's lock (a model
    loading) does not hold up the reader."""
    import threading

    from rag.search.reader import runtime

    loaded = object()
    monkeypatch.setattr(runtime, "Reader", lambda *a: loaded)
    searcher = Searcher(Settings(corpus_dir=tmp_path, index_dir=tmp_path / "index",  # type: ignore[arg-type]
                                 model="fake"), embedder=FakeEmbedder())
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(searcher.reader), daemon=True)
    with searcher._embedder_lock:  # the model is loading
        t.start()
        t.join(timeout=60)
        alive = t.is_alive()
    t.join(timeout=60)
    assert not alive and got == [loaded]
