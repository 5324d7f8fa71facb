"""The same seed documents as .txt, .pdf, .html and .docx answer the dev gold set equally
well, every passage exact against the stored text and on the page it names, every PDF
highlight boxed on its page. One index of all four formats, with the real model."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from rag.evaluation.evaluate import Evidence, first_hit_rank, load_gold, mrr, recall_at
from rag.indexing.build import build_index
from rag.indexing.generation import open_current
from rag.indexing.store import index_lock

from . import docmaker as dm
from .conftest import CORPUS, DEV_GOLD, need_font, need_shared

pytestmark = pytest.mark.slow
FORMATS = ("txt", "pdf", "html", "docx")


def squash(s: str) -> str:
    return re.sub(r"[\s\ufffe\x02]+", "", s)


def locate(text: str, quote: str) -> tuple[int, int] | None:
    """The quote in a converted text: whitespace may differ, a line-end hyphen may be gone."""
    words = quote.split()
    pat = r"\s+".join(re.escape(w).replace(r"\-", r"-?\s*") for w in words)
    m = re.search(pat, text)
    return (m.start(), m.end()) if m else None


@pytest.fixture(scope="module")
def four(tmp_path_factory: pytest.TempPathFactory, real_embedder):  # type: ignore[no-untyped-def]
    from rag.config import Settings
    from rag.search.searcher import Searcher

    need_font(dm.FONT)
    need_shared(DEV_GOLD)
    tmp = tmp_path_factory.mktemp("four")
    root = tmp / "corpus"
    for fmt in FORMATS:
        (root / fmt).mkdir(parents=True)
    for src in sorted(CORPUS.glob("*.txt")):
        text = src.read_text(encoding="utf-8")
        shutil.copyfile(src, root / "txt" / src.name)
        dm.pdf_from_text(text, root / "pdf" / f"{src.stem}.pdf")
        dm.html_from_text(text, root / "html" / f"{src.stem}.html", src.stem)
        dm.docx_from_text(text, root / "docx" / f"{src.stem}.docx")
    settings = Settings(corpus_dir=root, index_dir=tmp / "index")
    with index_lock(settings.index_dir):
        report = build_index(settings, embedder=real_embedder)
    assert not report.skipped and len(report.added) == 4 * len(list(CORPUS.glob("*.txt")))
    return settings, Searcher(settings, embedder=real_embedder), root


def test_every_format_answers_the_dev_set_alike(four) -> None:  # type: ignore[no-untyped-def]
    import pypdfium2 as pdfium

    settings, searcher, root = four
    gen = open_current(settings.index_dir)
    items = [i for i in load_gold(DEV_GOLD) if i.answerable]
    # Every read passage shows its answer here (the cut is a quality choice, not a placement
    # one), so every answer span's offsets, text and PDF boxes are checked below.
    searcher.reader.answer_threshold = 0.0
    scores = {}
    answers = 0
    for fmt in FORMATS:
        ranks = []
        for item in items:
            evidence = []
            for ev in item.evidence:
                stem = Path(ev.file).stem
                path = f"{fmt}/{stem}.{fmt}"
                if fmt == "txt":
                    evidence.append(Evidence(path, ev.start, ev.end, ev.quote))
                    continue
                span = locate(gen.extracted(path).text, ev.quote)
                assert span, (fmt, item.id, ev.quote)
                evidence.append(Evidence(path, *span, ev.quote))
            answer = searcher.ask(item.question, 10, "hybrid", [f"{fmt}/*"], read=True)
            for p in answer.passages:  # exact against the stored text, on its pages
                ex = gen.extracted(p.file)
                text = ex.text if ex else (root / p.file).read_text(encoding="utf-8")
                assert text[p.start:p.end] == p.text
                if p.answer is not None:  # the reader's answer: exact, inside its passage
                    a = p.answer
                    assert p.start <= a.start < a.end <= p.end and text[a.start:a.end] == a.text
                    answers += 1
                    if fmt == "pdf":
                        assert a.boxes and all(p.page_start <= b[0] <= p.page_end for b in a.boxes)
                if fmt == "pdf":
                    doc = pdfium.PdfDocument(str(root / p.file))
                    own = "".join(doc[k].get_textpage().get_text_range()
                                  for k in range(p.page_start - 1, p.page_end))
                    doc.close()
                    assert squash(p.text) in squash(own), (p.file, p.page_start, p.page_end)
                    h = p.highlight
                    assert h is not None and h.boxes
                    assert all(h.page_start <= b[0] <= h.page_end for b in h.boxes)
            ranks.append(first_hit_rank([(p.file, p.start, p.end) for p in answer.passages],
                                        evidence))
        scores[fmt] = (recall_at(ranks, 5), mrr(ranks))
    gen.close()
    print("recall@5, MRR per format:", scores, "answers checked:", answers)
    assert answers == 4 * len(items) * searcher.settings.reader_candidates  # every read one
    base = scores["txt"]
    for fmt in FORMATS[1:]:
        assert abs(scores[fmt][0] - base[0]) <= 0.02, scores
        assert abs(scores[fmt][1] - base[1]) <= 0.02, scores


def test_pdf_highlight_boxes_cover_their_characters(four) -> None:  # type: ignore[no-untyped-def]
    """For each dev question over the PDFs: PDFium's characters whose box centre lies in the
    highlight's boxes are the highlight's characters, on the cited page."""
    import pypdfium2 as pdfium

    settings, searcher, root = four
    checked = 0
    for item in [i for i in load_gold(DEV_GOLD) if i.answerable]:
        p = searcher.ask(item.question, 1, "hybrid", ["pdf/*"]).passages[0]
        h = p.highlight
        assert h is not None and h.boxes
        doc = pdfium.PdfDocument(str(root / p.file))
        got = []
        for page_no in range(h.page_start, h.page_end + 1):
            tp = doc[page_no - 1].get_textpage()
            mine = [b for b in h.boxes if b[0] == page_no]
            for i in range(tp.count_chars()):
                l_, bo, r, t = tp.get_charbox(i)
                cx, cy = (l_ + r) / 2, (bo + t) / 2
                if any(x0 <= cx <= x1 and y0 <= cy <= y1 for _, x0, y0, x1, y1 in mine):
                    got.append(tp.get_text_range(i, 1))
            tp.close()
        doc.close()
        want, seen = squash(h.text), squash("".join(got))
        assert want in seen and len(seen) <= len(want) + 4, (item.id, want, seen)
        checked += 1
    assert checked >= 20
