"""Converted formats: extraction throughput and the indexing cost of a 100-page PDF, and
the PDF extractor comparison (pypdfium2, which rag uses, against pypdf and pdfminer.six).

    .venv/bin/python bench/formats.py            # the comparison table (markdown)
    .venv/bin/python bench/formats.py --speed    # throughput + 100-page PDF vs .txt index

`make bench` runs ``throughput()`` as its section 8. pypdf and pdfminer.six come with the
test extra; they are compared here only, never used by rag. The "ligature glyphs (shaped)"
column needs uharfbuzz (fpdf2's text shaping: `.venv/bin/pip install uharfbuzz`); without
it that column reads "not measured".
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests import docmaker as dm  # noqa: E402

OUT = ROOT / "bench" / "out" / "formats"
SEED = sorted((ROOT / "corpus").glob("*.txt"))


def seed_paragraphs() -> list[str]:
    """Every paragraph of the seed corpus, in file order."""
    return [p for f in SEED for p in dm.paragraphs(f.read_text(encoding="utf-8"))]


def paged_pdf(path: Path, pages: int = 100, per_page: int = 2600) -> tuple[Path, str]:
    """A `pages`-page PDF; page k starts with 'Marker page k.' then seed text. Also returns
    the same text as plain text (paragraphs separated by blank lines)."""
    pdf = dm._pdf()
    words = " ".join(seed_paragraphs()).split()
    pos, paras = 0, []
    for k in range(1, pages + 1):
        pdf.add_page()
        body, n = [], 0
        while n < per_page:
            w = words[pos % len(words)]
            body.append(w)
            n += len(w) + 1
            pos += 1
        text = f"Marker page {k}. " + " ".join(body)
        pdf.multi_cell(0, 14, text, align="L", new_x="LMARGIN", new_y="NEXT")
        paras.append(text)
    pdf.output(str(path))
    return path, "\n\n".join(paras) + "\n"


# ---------------------------------------------------------------- the three extractors

def pages_pypdfium2(path: Path) -> list[str]:
    from rag.text.formats import Limits, extract

    ex = extract(path, Limits())
    ends = list(ex.layout.pages[1:]) + [len(ex.text)]
    return [ex.text[a:b] for a, b in zip(ex.layout.pages, ends)]


def pages_pypdf(path: Path) -> list[str]:
    from pypdf import PdfReader

    return [p.extract_text() or "" for p in PdfReader(str(path)).pages]


def pages_pdfminer(path: Path) -> list[str]:
    from pdfminer.high_level import extract_text

    text = extract_text(str(path))
    return text.split("\f")[: -1] if text.endswith("\f") else text.split("\f")


EXTRACTORS = {"pypdfium2 (rag)": pages_pypdfium2, "pypdf": pages_pypdf,
              "pdfminer.six": pages_pdfminer}


def version(name: str) -> str:
    from importlib.metadata import version as v

    return v({"pypdfium2 (rag)": "pypdfium2", "pypdf": "pypdf",
              "pdfminer.six": "pdfminer.six"}[name])


def flat(s: str) -> str:
    return re.sub(r"\s+", " ", s)


def ligatures(t_all: str, shaped: bool) -> tuple[str, str]:
    """How the shaped ligature glyphs and the ligature code points came out."""
    def how(plain: str, coded: str) -> str:
        if plain in t_all:
            return "letters (fi)"
        if coded in t_all:
            return "kept as U+FB01-03 (\ufb01)"
        return "other"

    lig_shaped = (how("the finance office reflects fluid official filings",
                      "the \ufb01nance o\ufb03ce re\ufb02ects \ufb02uid o\ufb03cial \ufb01lings")
                  if shaped else "not measured (no uharfbuzz)")
    return lig_shaped, how("the fiscal officer flagged five flows",
                           "the \ufb01scal o\ufb03cer \ufb02agged \ufb01ve \ufb02ows")


def footnotes(pages: list[str]) -> str:
    """Whether each footnote comes after the body of its page (footnote 1 is drawn after the
    body, footnote 2 as soon as its marker is met), and how the superscript marker reads."""
    if len(pages) < 2:
        return "pages missing"
    ok = []
    for k, (note, last) in enumerate(zip(dm.FOOTNOTES, ("Body of page one ends here.",
                                                        "Body of page two ends here."))):
        p = flat(pages[k])
        ok.append(note in p and last in p and p.index(note) > p.index(last))
    m = re.search(r"2024\.(\S*) Most", flat(pages[0]))
    where = f"end of page ({sum(ok)} of 2)"
    if ok == [True, False]:
        where += "; the one drawn mid-body stays there"
    return where + (f"; marker '2024.{m.group(1)}'" if m else "; marker lost")


def table_order(page: str) -> str:
    """Row by row, cells in order (a wrapped cell's lines together)?"""
    t, pos = flat(page), 0
    for row in dm.TABLE:
        for cell in row:
            at = t.find(cell, pos)
            if at < 0:
                return "no: cells out of row order"
            pos = at + len(cell)
    return "yes, row by row"


def compare() -> str:
    """The comparison table, measured now on freshly generated PDFs."""
    OUT.mkdir(parents=True, exist_ok=True)
    adv = dm.adversarial_pdf(OUT / "adversarial.pdf")
    shaped = dm.has_shaping()
    struct = dm.structures_pdf(OUT / "structures.pdf", shaping=shaped)
    big, _ = paged_pdf(OUT / "paged-100.pdf")
    rows = []
    for name, fn in EXTRACTORS.items():
        fn(big)  # warm up imports
        t = time.perf_counter()
        pages = fn(big)
        secs = time.perf_counter() - t
        right = sum(1 for k, p in enumerate(pages, 1)
                    if f"Marker page {k}." in flat(p)
                    and len(re.findall(r"Marker page \d+\.", flat(p))) == 1)
        a = fn(adv)
        t_all = flat(" ".join(a))
        cols = ("LEFT COLUMN" in t_all and "RIGHT COLUMN" in t_all
                and t_all.index("Left column ends.") < t_all.index("RIGHT COLUMN"))
        hyph = ("regional cooperation in" in t_all, "coopera- tion" in t_all
                or "coopera-tion" in t_all)
        cyr = "Шанхайская организация сотрудничества. Ψηφιακή συνεργασία." in t_all
        head = t_all.count("Quarterly Report")
        rot = "rotated by ninety degrees" in t_all
        sp = fn(struct)
        lig = ligatures(flat(" ".join(sp)), shaped)
        rows.append([f"{name} {version(name)}", f"{len(pages) / secs:.0f}",
                     f"{right}/100", "yes" if cols else "no",
                     "re-joined" if hyph[0] else ("kept as 'coopera-tion'" if hyph[1]
                                                   else "other"),
                     "yes" if cyr else "no", "yes" if rot else "no",
                     f"kept ({head} of 4 pages)" if head else "dropped",
                     str(len(a)), *lig, footnotes(sp),
                     table_order(sp[2]) if len(sp) > 2 else "page missing"])
    head = ["extractor", "pages/s (100-page PDF)", "pages mapped right", "two columns in order",
            "line-end hyphen", "Cyrillic + Greek", "rotated page", "running header",
            "pages seen (of 5)", "ligature glyphs (shaped)", "ligature code points",
            "footnotes", "table (wrapped cell)"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


# ---------------------------------------------------------------- speed (bench section 8)

def throughput(embedder: Any = None) -> dict[str, Any]:
    """Extraction pages/s (PDF), MB/s (HTML), and `rag index` of a 100-page PDF vs the same
    text as .txt (the real model unless one is given)."""
    from rag.config import Settings
    from rag.indexing.build import build_index
    from rag.indexing.store import index_lock
    from rag.text.formats import Limits, extract

    OUT.mkdir(parents=True, exist_ok=True)
    big, text = paged_pdf(OUT / "paged-100.pdf")
    out: dict[str, Any] = {}
    extract(big, Limits())
    t = time.perf_counter()
    ex = extract(big, Limits())
    secs = time.perf_counter() - t
    out["pdf"] = {"pages": len(ex.layout.pages), "seconds": secs,
                  "pages_per_s": len(ex.layout.pages) / secs, "chars": len(ex.text)}
    html = dm.html_from_text(text * 4, OUT / "big.html", "bench")
    t = time.perf_counter()
    extract(html, Limits())
    secs = time.perf_counter() - t
    mb = html.stat().st_size / 1e6
    out["html"] = {"mb": mb, "seconds": secs, "mb_per_s": mb / secs}
    if embedder is None:
        from rag.indexing.embedding import load_embedder

        embedder = load_embedder(Settings())
    for kind in ("txt", "pdf"):
        corpus = OUT / f"corpus-{kind}"
        shutil.rmtree(corpus, ignore_errors=True)
        corpus.mkdir(parents=True)
        if kind == "txt":
            (corpus / "paged-100.txt").write_text(text, encoding="utf-8")
        else:
            shutil.copyfile(big, corpus / "paged-100.pdf")
        idx = OUT / f"index-{kind}"
        shutil.rmtree(idx, ignore_errors=True)
        with index_lock(idx):
            rep = build_index(Settings(corpus_dir=corpus, index_dir=idx), embedder=embedder)
        out[f"index_{kind}"] = {"seconds": rep.seconds, "embed_seconds": rep.embed_seconds,
                                "chunks": rep.chunks_total}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--speed", action="store_true")
    args = p.parse_args()
    if args.speed:
        import json

        print(json.dumps(throughput(), indent=1))
    else:
        print(compare())
    return 0


if __name__ == "__main__":
    sys.exit(main())
