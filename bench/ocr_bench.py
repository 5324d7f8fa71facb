"""OCR engines compared on pages with known text (issue 26: the engine is chosen by this).

    .venv/bin/python bench/ocr_bench.py                      # Tesseract only
    .venv/bin/python bench/ocr_bench.py --rapidocr-python /path/to/venv/bin/python

The test set is made here, from prose (../shared/corpus, else corpus/): four A4 pages drawn
with fpdf2 in DejaVu Sans (one column at 11 and 10 pt, two columns at 10 and 9 pt under a
full-width title), rasterised with pypdfium2 at 150, 200 and 300 dpi, each page

- clean: the rendering as it is (grey, 8 bit);
- degraded: turned by 0.5 to 2 degrees (either way), speckled (black specks on 0.1% of
  the area, grey noise sigma 8) and saved as JPEG at quality 50;
- sideways: the clean 200-dpi page turned by 90 degrees (pages 1 and 3 clockwise, 2 and 4
  counter-clockwise), as a page fed into a scanner the wrong way.

Protocol: the reference is the page's text in reading order as printed (title, then the
left column, then the right one); reference and OCR output are NFKC-normalised with every
run of whitespace collapsed to one space; the character error rate is the Levenshtein
distance over the reference length, pooled over the pages of a condition (sum of
distances / sum of lengths). Speed: each engine runs single-threaded (OMP_THREAD_LIMIT=1,
one ONNX Runtime thread) in two niced processes; each page's CPU time (the process and the
tesseract runs it starts; the first page of each process is run once before, untimed, to load
models) is summed, and pages per minute on 2 cores = pages / (CPU seconds / 2) * 60. CPU time,
not wall time, because the machine is shared: wall time measures the other jobs too (it is
recorded as well, in results.json).

Engines: Tesseract (Debian ``tesseract-ocr`` + ``tesseract-ocr-eng``, through
``pytesseract``; LSTM, automatic page segmentation, orientation from its OSD step) and
RapidOCR (``rapidocr-onnxruntime`` 1.4.4, its bundled PP-OCRv4 models; it is not a project
dependency: install it into a separate venv and pass that venv's python). By default the
Tesseract row is `rag`'s own page OCR (rag/text/formats/ocr.py: the same Tesseract calls,
what `rag index` stores); ``--engines tesseract`` runs the plain calls above instead.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "ocr"
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
FONT_BOLD = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
DPIS = (150, 200, 300)
PAGES = (("one column", 11.0), ("one column", 10.0), ("two columns", 10.0),
         ("two columns", 9.0))
CONDITIONS = [("clean", d) for d in DPIS] + [("degraded", d) for d in DPIS] + [("sideways", 200)]


# ---------------------------------------------------------------- the test set

def prose() -> list[str]:
    """Paragraphs of real prose, in file order."""
    src = ROOT.parent / "shared" / "corpus"
    if not src.is_dir():
        src = ROOT / "corpus"
    out: list[str] = []
    for f in sorted(src.glob("*.txt")):
        for block in re.split(r"\n\s*\n", f.read_text(encoding="utf-8")):
            block = " ".join(block.split())
            if len(block) > 40:
                out.append(block)
    return out


def _fill(pdf: Any, paras: list[str], x: float, y: float, w: float, bottom: float,
          lh: float) -> tuple[list[str], list[str]]:
    """Draw paragraphs into one column from (x, y) down to `bottom`; the texts drawn and
    the paragraphs left over (the one that did not fit is cut at a word)."""
    drawn: list[str] = []
    left = list(paras)
    while left:
        para = left[0]
        h = pdf.multi_cell(w, lh, para, dry_run=True, output="HEIGHT")
        if y + h > bottom:
            words = para.split()
            lo, hi = 0, len(words)
            while lo < hi:  # most words that still fit
                mid = (lo + hi + 1) // 2
                hh = pdf.multi_cell(w, lh, " ".join(words[:mid]), dry_run=True, output="HEIGHT")
                lo, hi = (mid, hi) if y + hh <= bottom else (lo, mid - 1)
            if lo:
                pdf.set_xy(x, y)
                pdf.multi_cell(w, lh, " ".join(words[:lo]))
                drawn.append(" ".join(words[:lo]))
                left[0] = " ".join(words[lo:])
            break
        pdf.set_xy(x, y)
        pdf.multi_cell(w, lh, para)
        drawn.append(para)
        y += h + lh * 0.6
        left.pop(0)
    return drawn, left


def make_pdf(path: Path, layout: str, size: float, paras: list[str]) -> tuple[str, list[str]]:
    """One A4 page of `paras`; its text in reading order and the paragraphs left over."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format="A4")
    pdf.add_font("DejaVu", fname=str(FONT))
    pdf.add_font("DejaVu", style="B", fname=str(FONT_BOLD if FONT_BOLD.exists() else FONT))
    pdf.set_auto_page_break(False)
    pdf.add_page()
    margin, width, bottom = 56.0, 595.28 - 112.0, 841.89 - 56.0
    lh = size * 1.3
    if layout == "one column":
        pdf.set_font("DejaVu", size=size)
        drawn, left = _fill(pdf, paras, margin, margin, width, bottom, lh)
        text = " ".join(drawn)
    else:
        title = paras[0][:60].rsplit(" ", 1)[0]
        pdf.set_font("DejaVu", style="B", size=16)
        pdf.set_xy(margin, margin)
        pdf.cell(width, 20, title)
        pdf.set_font("DejaVu", size=size)
        gap = 22.0
        col = (width - gap) / 2
        top = margin + 36
        a, left = _fill(pdf, paras[1:], margin, top, col, bottom, lh)
        b, left = _fill(pdf, left, margin + col + gap, top, col, bottom, lh)
        text = " ".join([title, *a, *b])
    pdf.output(str(path))
    return text, left


def degrade(img: Any, seed: int, dpi: int, expand: bool = True) -> Any:
    """Turned by 0.5-2 degrees, speckled, grey noise (the JPEG step is the caller's); with
    expand=False the image keeps its size (the corners are cut)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    angle = float(rng.uniform(0.5, 2.0)) * (1 if seed % 2 else -1)
    img = img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=expand, fillcolor=255)
    a = np.asarray(img, dtype=np.float32).copy()
    h, w = a.shape
    s = max(1, round(dpi / 150))
    n = int(0.001 * h * w / (s * s))
    ys, xs = rng.integers(0, h - s, n), rng.integers(0, w - s, n)
    for dy in range(s):
        for dx in range(s):
            a[ys + dy, xs + dx] = 0
    a += rng.normal(0, 8, a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "L")


def make_set(out: Path) -> list[dict[str, Any]]:
    """Write the pages' PDFs and images under `out`; one record per image."""
    import pypdfium2 as pdfium

    out.mkdir(parents=True, exist_ok=True)
    paras = prose()
    records: list[dict[str, Any]] = []
    for k, (layout, size) in enumerate(PAGES, 1):
        pdf_path = out / f"page{k}.pdf"
        truth, paras = make_pdf(pdf_path, layout, size, paras)
        doc = pdfium.PdfDocument(str(pdf_path))
        for cond, dpi in CONDITIONS:
            img = doc[0].render(scale=dpi / 72, grayscale=True).to_pil().convert("L")
            name = f"page{k}-{cond}-{dpi}"
            if cond == "degraded":
                img = degrade(img, seed=k, dpi=dpi)
                path = out / f"{name}.jpg"
                img.save(path, quality=50)
            else:
                if cond == "sideways":
                    img = img.rotate(-90 if k % 2 else 90, expand=True)
                path = out / f"{name}.png"
                img.save(path)
            records.append({"image": str(path), "page": k, "layout": layout, "size": size,
                            "condition": cond, "dpi": dpi, "truth": truth})
        doc.close()
    return records


# ---------------------------------------------------------------- engines (worker side)

def tesseract_text(path: str) -> str:
    """Tesseract: orientation from OSD (psm 0), then LSTM with automatic segmentation;
    words in Tesseract's reading order (block, paragraph, line)."""
    import pytesseract
    from PIL import Image

    img = Image.open(path)
    img.load()
    try:
        osd = pytesseract.image_to_osd(img, config="--psm 0",
                                       output_type=pytesseract.Output.DICT)
        turn = int(osd.get("rotate", 0))
    except pytesseract.TesseractError:  # too few characters to tell: keep it as it is
        turn = 0
    if turn:
        img = img.rotate(-turn, expand=True)
    data = pytesseract.image_to_data(img, lang="eng", config="--oem 1 --psm 3",
                                     output_type=pytesseract.Output.DICT)
    return " ".join(w for w, c in zip(data["text"], data["conf"]) if w.strip() and float(c) >= 0)


def rag_text(path: str) -> str:
    """The project's own page OCR (rag/text/formats/ocr.py)."""
    from PIL import Image

    sys.path.insert(0, str(ROOT))
    from rag.text.formats import ocr

    img = Image.open(path)
    img.load()
    words, _ = ocr.ocr_image(img.convert("L"), ocr.OcrOptions().page_timeout_s)
    return " ".join(w[0] for w in words)


_RAPID: Any = None


def rapidocr_text(path: str) -> str:
    """RapidOCR 1.4.x with its bundled models; lines in its own order."""
    global _RAPID
    if _RAPID is None:
        from rapidocr_onnxruntime import RapidOCR

        _RAPID = RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1)
    result, _ = _RAPID(path)
    return " ".join(r[1] for r in result or [])


ENGINES = {"tesseract": tesseract_text, "rapidocr": rapidocr_text, "rag": rag_text}


def worker(engine: str, shard: Path) -> None:
    """Run one engine over the images listed in `shard`; one JSON line per image."""
    import resource

    def cpu() -> float:  # this process and its finished children (the tesseract runs)
        ch = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + ch.ru_utime + ch.ru_stime

    fn = ENGINES[engine]
    fn(json.loads(shard.read_text())[0])  # warm up: load models, fill caches
    for path in json.loads(shard.read_text()):
        t, c = time.perf_counter(), cpu()
        text = fn(path)
        print(json.dumps({"image": path, "text": text, "seconds": time.perf_counter() - t,
                          "cpu_s": cpu() - c}), flush=True)


def engine_version(engine: str, python: str) -> str:
    """Name and version string of an engine."""
    if engine in ("tesseract", "rag"):
        import pytesseract

        return (f"Tesseract {pytesseract.get_tesseract_version()} "
                f"(pytesseract {getattr(pytesseract, '__version__', '?')})")
    code = ("import importlib.metadata as m;"
            "print(m.version('rapidocr-onnxruntime'), m.version('onnxruntime'))")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    return f"RapidOCR {out[0]} (onnxruntime {out[1]})"


def run_engine(engine: str, python: str, images: list[str], cores: list[int]
               ) -> dict[str, dict[str, Any]]:
    """OCR every image with two pinned, niced, single-threaded worker processes."""
    env = dict(os.environ, OMP_THREAD_LIMIT="1", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, core in enumerate(cores):
            shard = Path(tmp) / f"shard{i}.json"
            shard.write_text(json.dumps(images[i::len(cores)]))
            cmd = ["nice", "-n", "5", python, __file__, "--worker", engine, str(shard)]
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True))
        results: dict[str, dict[str, Any]] = {}
        for p in procs:
            out, _ = p.communicate()
            if p.returncode:
                raise SystemExit(f"{engine} worker failed (exit {p.returncode})")
            for line in out.splitlines():
                r = json.loads(line)
                results[r["image"]] = r
    return results


# ---------------------------------------------------------------- scoring

def norm(s: str) -> str:
    """NFKC, whitespace runs collapsed to one space, ends stripped."""
    return " ".join(unicodedata.normalize("NFKC", s).split())


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insert, delete, substitute: 1 each), one numpy row at a time."""
    import numpy as np

    if not a or not b:
        return max(len(a), len(b))
    bb = np.array([ord(c) for c in b], dtype=np.int64)
    idx = np.arange(len(b) + 1, dtype=np.int64)
    prev = idx.copy()
    cur = np.empty_like(prev)
    for i, ch in enumerate(a, 1):
        cur[0] = i
        np.minimum(prev[1:] + 1, prev[:-1] + (bb != ord(ch)), out=cur[1:])
        cur = np.minimum.accumulate(cur - idx) + idx  # insertions along the row
        prev, cur = cur, prev
    return int(prev[-1])


def cer(pairs: list[tuple[str, str]]) -> float:
    """Pooled character error rate of (reference, hypothesis) pairs."""
    dist = sum(levenshtein(norm(r), norm(h)) for r, h in pairs)
    return dist / max(1, sum(len(norm(r)) for r, _ in pairs))


def install_size(engine: str, python: str) -> str:
    """What installing the engine adds to a machine that has the project."""
    if engine in ("tesseract", "rag"):
        pk = ["tesseract-ocr", "tesseract-ocr-eng", "tesseract-ocr-osd", "libtesseract5",
              "liblept5"]
        out = subprocess.run(["dpkg-query", "-W", "-f=${Installed-Size}\n", *pk],
                             capture_output=True, text=True, check=False).stdout.split()
        kb = sum(int(x) for x in out if x.isdigit())
        return f"{kb / 1024:.0f} MB (Debian: {', '.join(pk)}) + pytesseract 0.1 MB"
    code = ("import importlib.metadata as m, pathlib\n"
            "def size(d):\n"
            "    return sum(f.stat().st_size for f in pathlib.Path(d).rglob('*') if f.is_file())\n"
            "site = pathlib.Path(m.distribution('rapidocr-onnxruntime').locate_file(''))\n"
            "tot = 0\n"
            "for d in ['rapidocr_onnxruntime', 'cv2', 'opencv_python.libs', 'shapely', "
            "'shapely.libs', 'pyclipper', 'six.py']:\n"
            "    p = site / d\n"
            "    tot += size(p) if p.is_dir() else (p.stat().st_size if p.exists() else 0)\n"
            "print(round(tot / 2**20))")
    mb = subprocess.run([python, "-c", code], capture_output=True, text=True,
                        check=True).stdout.strip()
    return f"{mb} MB (wheel with models 16 MB, opencv-python, shapely, pyclipper; onnxruntime is already a dependency)"


def main() -> None:
    """Make the set, run the engines, print the table and write results.json."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", nargs=2, metavar=("ENGINE", "SHARD"), help=argparse.SUPPRESS)
    ap.add_argument("--rapidocr-python", help="python of a venv with rapidocr-onnxruntime")
    ap.add_argument("--engines", default="", help="comma list (default: every one available)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]))
        return
    engines = args.engines.split(",") if args.engines else (
        (["rag"] if (ROOT / "rag/text/formats/ocr.py").exists() else ["tesseract"])
        + (["rapidocr"] if args.rapidocr_python else []))
    records = make_set(args.out)
    images = [r["image"] for r in records]
    cores = sorted(os.sched_getaffinity(0))[:2]
    load = os.getloadavg()[0]
    table: dict[str, Any] = {"load_at_start": load, "cores": cores, "engines": {}}
    for engine in engines:
        python = args.rapidocr_python if engine == "rapidocr" else sys.executable
        t = time.perf_counter()
        res = run_engine(engine, python, images, cores)
        wall = time.perf_counter() - t
        rows = {}
        for cond, dpi in CONDITIONS:
            sel = [r for r in records if r["condition"] == cond and r["dpi"] == dpi]
            pairs = [(r["truth"], res[r["image"]]["text"]) for r in sel]
            one = [(r["truth"], res[r["image"]]["text"]) for r in sel if r["layout"] == "one column"]
            two = [(r["truth"], res[r["image"]]["text"]) for r in sel if r["layout"] != "one column"]
            cpu_s = sum(res[r["image"]]["cpu_s"] for r in sel)
            wall_s = sum(res[r["image"]]["seconds"] for r in sel)
            rows[f"{cond} {dpi}"] = {"cer": cer(pairs), "cer_one_column": cer(one),
                                     "cer_two_columns": cer(two),
                                     "cpu_s_per_page": cpu_s / len(sel),
                                     "wall_s_per_page": wall_s / len(sel),
                                     "pages_per_min": len(sel) / (cpu_s / 2) * 60}
        table["engines"][engine] = {"version": engine_version(engine, python),
                                    "install": install_size(engine, python),
                                    "wall_s": wall, "rows": rows}
        for r in records:
            Path(r["image"]).with_suffix(f".{engine}.txt").write_text(res[r["image"]]["text"])
        # after each engine: a slow second engine on a busy machine loses nothing
        (args.out / "results.json").write_text(json.dumps(table, indent=1))
        print(json.dumps({engine: rows}), flush=True)
    print(f"load average at start {load:.2f}; cores {cores}; {len(records)} images, "
          f"{sum(len(norm(r['truth'])) for r in records if r['condition'] == 'clean' and r['dpi'] == 200):,} "
          "characters per condition")
    print("\n| engine | condition | CER | CER one column | CER two columns | CPU s/page | "
          "pages/min (2 cores) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for engine, e in table["engines"].items():
        for name, row in e["rows"].items():
            print(f"| {engine} | {name} dpi | {row['cer']:.2%} | {row['cer_one_column']:.2%} | "
                  f"{row['cer_two_columns']:.2%} | {row['cpu_s_per_page']:.2f} | "
                  f"{row['pages_per_min']:.1f} |")
    print()
    for engine, e in table["engines"].items():
        print(f"- {engine}: {e['version']}; install {e['install']}; wall {e['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
