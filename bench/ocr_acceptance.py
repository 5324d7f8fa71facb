"""Issue 26's acceptance check: image-only copies of real PDFs answer nearly as well as the
born-digital ones.

    .venv/bin/python bench/ocr_acceptance.py [--pages 40] [--out bench/out/ocr-acceptance]

The born-digital PDFs are the shared corpus's documents (../shared/corpus, the five SCO
reports of ../shared/gold/dev.jsonl, then COVID-QA papers with their questions until there
are at least `--pages` pages) drawn with fpdf2 (tests/docmaker.py). Each page is rendered
at 200 dpi, turned by 0.5 to 2 degrees, speckled, JPEG-compressed (quality 50: the
degradation of bench/ocr_bench.py) and put back as the only content of a page of the same
size: the scanned copy. Both folders are indexed with the defaults (the bundled model; OCR
`auto`) and every gold question is asked of both.

A hit is a passage of the right file whose span overlaps the evidence. In the born-digital
text the evidence is found by its quote; in the OCR text it is that span carried over by
aligning the page's born-digital text with its OCR text (difflib, per page), so OCR
errors do not move the target. Checked for every passage of the top 10: its page range
holds the evidence's page when it is a hit ("every hit on the right page"), it has
highlight boxes on its pages, and text[start:end] of the served text is its text.
Targets (issue 26): the scans within 0.10 of recall@5 and 0.13 of MRR@10.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from tests import docmaker as dm  # noqa: E402  (after the sys.path lines)

SHARED = ROOT.parent / "shared"
OUT = ROOT / "bench" / "out" / "ocr-acceptance"
DPI = 200


def norm_ws(s: str) -> str:
    return " ".join(s.split())


def gold_items() -> list[dict[str, Any]]:
    """Answerable questions of the SCO dev set, then of COVID-QA (file names as in corpus/)."""
    out = []
    for path, sub in ((SHARED / "gold" / "dev.jsonl", SHARED / "corpus"),
                      (SHARED / "covidqa-dev" / "gold.jsonl", SHARED / "covidqa-dev" / "corpus")):
        for line in path.read_text().splitlines():
            d = json.loads(line)
            if d.get("answerable", True) and d.get("evidence"):
                d["_src"] = str(sub)
                out.append(d)
    return out


def make_corpora(out: Path, min_pages: int) -> tuple[Path, Path, list[dict[str, Any]]]:
    """Born-digital PDFs and their scanned copies; the gold items of the files used."""
    import pypdfium2 as pdfium

    sys.path.insert(0, str(ROOT / "bench"))
    import ocr_bench

    from tests import scanmaker as sm

    digital, scans = out / "digital", out / "scans"
    for d in (digital, scans):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    items = gold_items()
    files: list[Path] = []
    for it in items:
        f = Path(it["_src"]) / Path(it["evidence"][0]["file"]).name
        if f not in files:
            files.append(f)
    pages = 0
    used: list[str] = []
    for f in files:
        if pages >= min_pages:
            break
        pdf = dm.pdf_from_text(f.read_text(encoding="utf-8"), digital / f"{f.stem}.pdf",
                               title=None)
        doc = pdfium.PdfDocument(str(pdf))
        n = len(doc)
        doc.close()
        imgs = sm.page_images(pdf, DPI)
        rng = random.Random(f.stem)
        bad = [ocr_bench.degrade(img, seed=rng.randrange(1 << 30), dpi=DPI, expand=False)
               for img in imgs]
        jpeg_pdf(bad, scans / f"{f.stem}.pdf")
        pages += n
        used.append(f.stem)
    kept = [it for it in items if Path(it["evidence"][0]["file"]).stem in used]
    return digital, scans, kept


def jpeg_pdf(images: list[Any], path: Path) -> None:
    """Each image (JPEG quality 50) as the only content of a page of its size at DPI."""
    import io

    from fpdf import FPDF

    pdf = FPDF(unit="pt")
    for img in images:
        w, h = img.size[0] * 72 / DPI, img.size[1] * 72 / DPI
        pdf.add_page(format=(w, h))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=50)
        buf.seek(0)
        pdf.image(buf, x=0, y=0, w=w, h=h)
    pdf.output(str(path))


def index(corpus: Path, index_dir: Path) -> tuple[float, str]:
    """`rag index` with the defaults; seconds and its stderr."""
    shutil.rmtree(index_dir, ignore_errors=True)
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "rag.serve.cli", "index", "--corpus", str(corpus),
                        "--index", str(index_dir)], cwd=ROOT, capture_output=True, text=True,
                       check=False, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if p.returncode:
        raise SystemExit(f"rag index failed on {corpus}: {p.stderr}")
    return time.perf_counter() - t, p.stderr + p.stdout


def evidence_spans(items: list[dict[str, Any]], digital_gen: Any, scan_gen: Any
                   ) -> dict[str, tuple[str, int, int, int, int, int]]:
    """Per question: (file, start, end in the digital text, start, end in the OCR text,
    page)."""
    out = {}
    aligned: dict[tuple[str, int], Any] = {}
    for it in items:
        ev = it["evidence"][0]
        name = Path(ev["file"]).stem + ".pdf"
        dig = digital_gen.extracted(name)
        scan = scan_gen.extracted(name)
        if dig is None or scan is None:
            continue
        quote = norm_ws(ev["quote"])
        # the quote in the digital text, whitespace-insensitively
        pat = r"\s+".join(re.escape(w) for w in quote.split())
        m = re.search(pat, dig.text)
        if m is None:
            continue
        a, b = m.span()
        page = dig.layout.page_of(a)
        dp = list(dig.layout.pages) + [len(dig.text)]
        sp = list(scan.layout.pages) + [len(scan.text)]
        key = (name, page)
        if key not in aligned:
            sm = difflib.SequenceMatcher(None, dig.text[dp[page - 1]:dp[page]],
                                         scan.text[sp[page - 1]:sp[page]], autojunk=False)
            aligned[key] = sm.get_matching_blocks()
        blocks = aligned[key]

        def carry(x: int, page: int = page, blocks: Any = blocks, dp: list[int] = dp,
                  sp: list[int] = sp) -> int:
            rel = x - dp[page - 1]
            best = 0
            for i, j, n in blocks:
                if i <= rel:
                    best = j + min(rel - i, n)
            return sp[page - 1] + best

        out[it["id"]] = (name, a, b, carry(a), max(carry(b), carry(a) + 1), page)
    return out


def run(gen_dir: Path, corpus: Path, items: list[dict[str, Any]],
        spans: dict[str, tuple[str, int, int, int, int, int]], scan: bool) -> dict[str, Any]:
    """Ask every question of one index; recall@5, MRR@10 and the citation checks."""
    from rag.search.searcher import Searcher

    from rag.config import Settings

    s = Searcher(Settings(corpus_dir=corpus, index_dir=gen_dir, read=False))
    gen = s.generation
    ranks = []
    wrong_page = no_boxes = inexact = passages = 0
    for it in items:
        if it["id"] not in spans:
            continue
        name, a, b, c, d, page = spans[it["id"]]
        lo, hi = (c, d) if scan else (a, b)
        ans = s.ask(it["question"], 10, "hybrid", read=False)
        rank = None
        for p in ans.passages:
            passages += 1
            text = gen.extracted(p.file).text
            inexact += text[p.start:p.end] != p.text
            h = p.highlight
            if h is None or not h.boxes or not all(
                    p.page_start <= bx[0] <= p.page_end for bx in h.boxes):
                no_boxes += 1
            hit = p.file == name and p.start < hi and lo < p.end
            if hit:
                wrong_page += not (p.page_start <= page <= p.page_end)
                if rank is None:
                    rank = p.rank
        ranks.append(rank)
    n = len(ranks)
    return {"questions": n, "recall@5": sum(1 for r in ranks if r and r <= 5) / n,
            "mrr@10": sum(1 / r for r in ranks if r) / n, "passages": passages,
            "hits_on_wrong_page": wrong_page, "highlights_without_boxes": no_boxes,
            "inexact_spans": inexact}


def main() -> None:
    """Make the corpora, index both, ask, print the table; results.json beside them."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=40)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    from rag.indexing.generation import open_current

    digital, scans, items = make_corpora(args.out, args.pages)
    t_dig, _ = index(digital, args.out / "index-digital")
    t_scan, log = index(scans, args.out / "index-scans")
    dg, sg = open_current(args.out / "index-digital"), open_current(args.out / "index-scans")
    spans = evidence_spans(items, dg, sg)
    res = {"digital": run(args.out / "index-digital", digital, items, spans, False),
           "scans": run(args.out / "index-scans", scans, items, spans, True)}
    pages = sum(len(dg.extracted(f.path).layout.pages) for f in dg.files)
    res["pages"] = pages
    res["index_seconds"] = {"digital": t_dig, "scans": t_scan}
    res["ocr_lines"] = [ln for ln in log.splitlines() if "OCR" in ln]
    (args.out / "results.json").write_text(json.dumps(res, indent=1))
    d, s = res["digital"], res["scans"]
    print(f"{pages} pages, {d['questions']} questions; index {t_dig:.0f} s (digital), "
          f"{t_scan:.0f} s (scans, OCR included)")
    print("| copy | recall@5 | MRR@10 | passages | hits on a wrong page | highlights without "
          "boxes | inexact spans |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in (("born-digital", d), ("image-only (200 dpi, turned, speckled, JPEG)", s)):
        print(f"| {name} | {r['recall@5']:.3f} | {r['mrr@10']:.3f} | {r['passages']} | "
              f"{r['hits_on_wrong_page']} | {r['highlights_without_boxes']} | "
              f"{r['inexact_spans']} |")
    print(f"recall@5 gap {d['recall@5'] - s['recall@5']:+.3f} (target <= 0.10), MRR gap "
          f"{d['mrr@10'] - s['mrr@10']:+.3f} (target <= 0.13)")
    dg.close()
    sg.close()


if __name__ == "__main__":
    main()
