"""Scanned PDF pages -> text with word boxes (Tesseract), cited like any other PDF page.

    needs_ocr(text, page)  -> bool       the rule below
    ocr_page(page, k, opts) -> PageOcr    words with boxes in PDF points (or the limit hit)
    page_chars(words)       -> chars, boxes   the page's text, as pdf.py joins it

The rule (mode ``auto``): a page keeps its text layer, byte for byte, when that layer holds
at least 32 letters or digits and at most half of its visible characters are junk (private
use, unassigned, U+FFFD: glyphs that map to no letters). A page with 1 to 31 letters keeps
them too unless images cover a quarter of it or more (a scan with a stamped page number or
header). Any other page is OCRed if it draws anything at all (an image, vector paths: text
turned into outlines); an empty page is left empty. ``force`` OCRs every page that draws
anything; ``off`` never OCRs.

Tesseract (Debian ``tesseract-ocr`` + ``tesseract-ocr-eng``, via pytesseract) was chosen by
measurement (bench/ocr_bench.py, README "OCR"): it gives word boxes and keeps columns in
reading order. Its orientation step (OSD) turns pages scanned sideways or upside down. Each
page is rendered at ``dpi`` (pixel limit checked first, and the size of every image the
page holds, so a decompression bomb is refused before PDFium decodes it) and recognised
under a time limit; a page over a limit is left out with the reason.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

OcrMode = Literal["auto", "off", "force"]
OCR_MODES: tuple[OcrMode, ...] = ("auto", "off", "force")
MIN_LETTERS = 32  # letters or digits a text layer needs to be kept whatever the page holds
MAX_JUNK = 0.5  # share of junk characters above which a text layer counts as none
MIN_IMAGE_COVER = 0.25  # a page with a few letters is OCRed if images cover this much of it
OSD_MIN_CONF = 2.0  # Tesseract's orientation confidence needed before a page is turned
ENGINE_ARGS = "--oem 1 --psm 3"  # LSTM, automatic page segmentation (columns in order)
# A scan's specks and JPEG noise become stray characters ("°", ".", ":") in Tesseract's
# output; a 3x3 median filter removes dots up to 2x2 pixels and keeps strokes, which are
# wider at the 300 dpi pages are rendered at. Measured (bench/ocr_bench.py, degraded pages):
# CER 9.2% -> 1.1% at 300 dpi, 2.1% -> 1.0% at 200; clean 200 dpi 0.74% -> 0.91%.
DESPECKLE = 3
NAN4 = (math.nan,) * 4
INSTALL = "apt-get install tesseract-ocr tesseract-ocr-eng"


class OcrUnavailable(RuntimeError):
    """Tesseract (or its English data, or pytesseract) is not installed."""


@dataclass(frozen=True)
class OcrOptions:
    """How scanned pages are read (RAG_OCR, RAG_OCR_* settings)."""

    mode: OcrMode = "auto"
    dpi: int = 300
    max_pixels: int = 100_000_000  # of the rendered page and of each image it holds
    # Tesseract's wall-clock time for one page (orientation + text); about 5 s of CPU at
    # 300 dpi, but a shared machine can stretch that tenfold
    page_timeout_s: float = 180.0
    max_pages: int = 500  # pages OCRed per file; later ones are left out with the reason


@dataclass(frozen=True)
class Word:
    """One recognised word: its text, Tesseract's block/paragraph/line numbers and its box
    in PDF points (x0, y0, x1, y1; origin bottom left of the unrotated page)."""

    text: str
    block: int
    par: int
    line: int
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class PageOcr:
    """What OCR made of one page (1-based): its words, or the limit it hit."""

    page: int
    words: tuple[Word, ...] = ()
    turn: int = 0  # degrees the rendered page was turned (clockwise) before recognition
    seconds: float = 0.0
    error: str | None = None  # the limit hit, in one line naming the setting
    limits: tuple[int, float] = (0, 0.0)  # (max_pixels, page_timeout_s) when error was hit

    def to_json(self) -> dict[str, Any]:
        """A cache line."""
        if self.error is not None:
            return {"page": self.page, "error": self.error, "limits": list(self.limits)}
        return {"page": self.page, "turn": self.turn, "seconds": round(self.seconds, 3),
                "words": [[w.text, w.block, w.par, w.line, *(round(v, 2) for v in w.box)]
                          for w in self.words]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PageOcr:
        """The inverse of to_json."""
        if "error" in d:
            lim = d.get("limits") or [0, 0.0]
            return cls(int(d["page"]), error=str(d["error"]),
                       limits=(int(lim[0]), float(lim[1])))
        words = tuple(Word(str(t), int(b), int(p), int(ln), (float(x0), float(y0), float(x1),
                                                               float(y1)))
                      for t, b, p, ln, x0, y0, x1, y1 in d["words"])
        return cls(int(d["page"]), words, int(d.get("turn", 0)), float(d.get("seconds", 0.0)))


@dataclass
class OcrReport:
    """What OCR did for one file: for the line `rag index` prints."""

    ocred: list[int] = field(default_factory=list)  # pages whose text is OCR (run or cached)
    cached: int = 0  # of those, read from the cache
    seconds: float = 0.0  # spent recognising this run
    left_out: list[tuple[int, str]] = field(default_factory=list)  # (page, reason)

    def line(self, name: str) -> str:
        """``scan.pdf: OCR 12 pages (3 from the cache), 41.2 s; page 7 left out: ...``."""
        parts = []
        if self.ocred:
            n = len(self.ocred)
            cached = f" ({self.cached} from the cache)" if self.cached else ""
            parts.append(f"OCR {n} page{'s' if n != 1 else ''}{cached}, {self.seconds:.1f} s")
        parts.append(self.why())
        return f"{name}: " + "; ".join(p for p in parts if p)

    def why(self) -> str:
        """The pages left out and why (at most three named)."""
        out = "; ".join(f"page {p} left out: {why}" for p, why in self.left_out[:3])
        if len(self.left_out) > 3:
            out += f"; {len(self.left_out) - 3} more pages left out"
        return out


# ---------------------------------------------------------------- the engine

@functools.lru_cache(maxsize=1)
def engine_id() -> str:
    """``tesseract 5.3.0 eng; --oem 1 --psm 3; osd`` (OcrUnavailable if it is missing)."""
    try:
        import pytesseract
    except ImportError as e:
        raise OcrUnavailable("pytesseract is not installed (pip install pytesseract)") from e
    try:
        version = str(pytesseract.get_tesseract_version()).split()[0]
        langs = pytesseract.get_languages(config="")
    except (pytesseract.TesseractNotFoundError, OSError) as e:
        raise OcrUnavailable(f"tesseract is not installed ({INSTALL})") from e
    missing = [lang for lang in ("eng", "osd") if lang not in langs]
    if missing:
        raise OcrUnavailable(f"tesseract has no {'+'.join(missing)} data ({INSTALL})")
    return f"tesseract {version} eng; {ENGINE_ARGS}; osd; median {DESPECKLE}"


def describe(opts: OcrOptions) -> str:
    """The OCR part of the PDF extractor's id: the mode, and what reads scans."""
    if opts.mode == "off":
        return "ocr off"
    try:
        return f"ocr {opts.mode} ({engine_id()}; {opts.dpi} dpi)"
    except OcrUnavailable:
        return f"ocr {opts.mode} (no engine)"


def _osd_turn(path: str, timeout: float) -> int:
    """Degrees (0, 90, 180, 270) to turn the image clockwise so its text stands upright."""
    import pytesseract

    try:
        osd = pytesseract.image_to_osd(path, config="--psm 0", timeout=timeout,
                                       output_type=pytesseract.Output.DICT)
    except pytesseract.TesseractError:  # too few characters to tell: keep it as it is
        return 0
    if float(osd.get("orientation_conf", 0.0)) < OSD_MIN_CONF:
        return 0
    return int(osd.get("rotate", 0)) % 360


def ocr_image(img: Any, timeout: float) -> tuple[list[tuple[str, int, int, int, tuple[int, int, int, int]]], int]:
    """Words of a greyscale PIL image, each with (block, par, line) and its pixel box
    (left, top, right, bottom) in `img`; and the turn applied. TimeoutError past `timeout`."""
    import pytesseract

    os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # one core per page: no thread thrash
    t0 = time.monotonic()

    def left() -> float:
        rest = timeout - (time.monotonic() - t0)
        if rest <= 0:
            raise TimeoutError
        return rest

    from PIL import ImageFilter

    w, h = img.size
    img = img.filter(ImageFilter.MedianFilter(DESPECKLE))  # same size: boxes stay where they are
    with tempfile.TemporaryDirectory(prefix="rag-ocr-") as tmp:
        path = os.path.join(tmp, "page.png")
        img.save(path, compress_level=1)
        try:
            turn = _osd_turn(path, left())
            if turn:
                img.rotate(-turn, expand=True).save(path, compress_level=1)
            data = pytesseract.image_to_data(path, lang="eng", config=ENGINE_ARGS,
                                             timeout=left(), output_type=pytesseract.Output.DICT)
        except RuntimeError as e:  # pytesseract's "Tesseract process timeout"
            if "timeout" in str(e).lower():
                raise TimeoutError from e
            raise
    words = []
    for i, text in enumerate(data["text"]):
        text = text.strip()
        if not text or float(data["conf"][i]) < 0:
            continue
        x, y = int(data["left"][i]), int(data["top"][i])
        bw, bh = int(data["width"][i]), int(data["height"][i])
        box = _unturn((x, y, x + bw, y + bh), turn, w, h)
        words.append((text, int(data["block_num"][i]), int(data["par_num"][i]),
                      int(data["line_num"][i]), box))
    return words, turn


def _unturn(box: tuple[int, int, int, int], turn: int, w: int, h: int
            ) -> tuple[int, int, int, int]:
    """A box on the image turned `turn` degrees clockwise, back on the w x h original."""
    a, b, c, d = box
    if turn == 90:  # turned clockwise: original (x, y) -> (h - y, x)
        return (b, h - c, d, h - a)
    if turn == 180:
        return (w - c, h - d, w - a, h - b)
    if turn == 270:  # original (x, y) -> (y, w - x)
        return (w - d, a, w - b, c)
    return box


# ---------------------------------------------------------------- the rule

def junk_share(text: str) -> float:
    """Share of the visible characters that are junk (private use, unassigned, U+FFFD)."""
    vis = [c for c in text if not c.isspace()]
    if not vis:
        return 0.0
    bad = sum(1 for c in vis if c == "\ufffd" or unicodedata.category(c) in ("Co", "Cn", "Cs"))
    return bad / len(vis)


@dataclass(frozen=True)
class PageLook:
    """What a page holds besides its text layer."""

    draws: bool  # any image, path, shading or text object
    image_cover: float  # share of the page's area under images (summed, at most 1)
    largest_image_px: int  # pixels of the largest image it holds


def look(page: Any) -> PageLook:
    """Objects of one pypdfium2 page: does it draw anything, how much of it is image."""
    import pypdfium2 as pdfium
    from pypdfium2 import raw

    w, h = page.get_size()
    area = max(w * h, 1.0)
    draws = False
    cover = 0.0
    largest = 0
    for obj in page.get_objects(max_depth=4):
        kind = obj.type
        if kind == raw.FPDF_PAGEOBJ_FORM:
            continue
        draws = True
        if kind == raw.FPDF_PAGEOBJ_IMAGE:
            x0, y0, x1, y1 = (obj.get_bounds() if hasattr(obj, "get_bounds") else obj.get_pos())
            cw = max(0.0, min(x1, w) - max(x0, 0.0))
            ch = max(0.0, min(y1, h) - max(y0, 0.0))
            cover += cw * ch / area
            try:
                pw, ph = obj.get_px_size()
                largest = max(largest, int(pw) * int(ph))
            except pdfium.PdfiumError:  # an image PDFium cannot size: rendering will tell
                largest = max(largest, 0)
    return PageLook(draws, min(cover, 1.0), largest)


def needs_ocr(text: str, page_look: PageLook, mode: OcrMode) -> bool:
    """Whether a page's text comes from OCR (the rule in the module docstring)."""
    if mode == "off" or not page_look.draws:
        return False
    if mode == "force":
        return True
    letters = sum(1 for c in text if c.isalnum())
    junk = junk_share(text) > MAX_JUNK
    if junk or letters == 0:
        return True
    if letters >= MIN_LETTERS:
        return False
    return page_look.image_cover >= MIN_IMAGE_COVER


# ---------------------------------------------------------------- a PDF page

def ocr_page(page: Any, page_no: int, opts: OcrOptions) -> PageOcr:
    """OCR one pypdfium2 page within the limits; boxes in PDF points."""
    from pypdfium2 import raw

    lim = (opts.max_pixels, opts.page_timeout_s)
    t0 = time.perf_counter()
    pl = look(page)
    if pl.largest_image_px > opts.max_pixels:
        return PageOcr(page_no, error=f"it holds an image of {pl.largest_image_px:,} pixels, "
                       f"above the limit of {opts.max_pixels:,} (RAG_OCR_MAX_PIXELS)",
                       limits=lim)
    pw, ph = page.get_size()
    scale = opts.dpi / 72.0
    px = round(pw * scale) * round(ph * scale)
    if px > opts.max_pixels:
        return PageOcr(page_no, error=f"{pw:.0f} x {ph:.0f} pt at {opts.dpi} dpi is {px:,} "
                       f"pixels, above the limit of {opts.max_pixels:,} (RAG_OCR_MAX_PIXELS)",
                       limits=lim)
    img = page.render(scale=scale, grayscale=True).to_pil().convert("L")
    iw, ih = img.size
    try:
        found, turn = ocr_image(img, opts.page_timeout_s)
    except TimeoutError:
        return PageOcr(page_no, error=f"OCR took longer than {opts.page_timeout_s:g} s "
                       "(RAG_OCR_PAGE_TIMEOUT_S)", limits=lim)
    words = []
    for text, block, par, line, (a, b, c, d) in found:
        pts = []
        for x, y in ((a, d), (c, b)):  # bottom left, top right (device y grows down)
            fx, fy = raw.c_double(), raw.c_double()
            raw.FPDF_DeviceToPage(page.raw, 0, 0, iw, ih, 0, x, y, fx, fy)
            pts.append((fx.value, fy.value))
        (x0, y0), (x1, y1) = pts
        words.append(Word(text, block, par, line,
                          (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))))
    return PageOcr(page_no, tuple(words), turn, time.perf_counter() - t0)


def page_chars(words: tuple[Word, ...], turn: int = 0
               ) -> tuple[list[str], list[tuple[float, float, float, float]]]:
    """The page's text as pdf.py joins a text layer: words of a line with a space, lines of a
    paragraph with a space (none after a hyphen), paragraphs and blocks with a blank line.
    Each character gets its share of its word's box in reading order (on a page that was
    turned by 90 or 270 degrees, the whole word's box); spaces get NaN."""
    chars: list[str] = []
    boxes: list[tuple[float, float, float, float]] = []
    prev: tuple[int, int, int] | None = None
    for w in words:
        key = (w.block, w.par, w.line)
        if prev is not None:
            if key[:2] != prev[:2]:
                join = "\n\n"
            elif key != prev and chars[-1] == "-":
                join = ""
            else:
                join = " "
            chars.extend(join)
            boxes.extend([NAN4] * len(join))
        prev = key
        x0, y0, x1, y1 = w.box
        n = len(w.text)
        step = (x1 - x0) / n
        for i, ch in enumerate(w.text):
            chars.append(ch)
            if turn in (90, 270):
                boxes.append(w.box)
            elif turn == 180:  # upside down: the first letter is the rightmost
                boxes.append((x1 - (i + 1) * step, y0, x1 - i * step, y1))
            else:
                boxes.append((x0 + i * step, y0, x0 + (i + 1) * step, y1))
    return chars, boxes


# ---------------------------------------------------------------- one file's OCR

@dataclass
class OcrRun:
    """OCR for the pages of one PDF: the options, pages known from the cache, a callback for
    each page recognised now (cache and progress), and the report."""

    opts: OcrOptions = field(default_factory=OcrOptions)
    cached: dict[int, PageOcr] = field(default_factory=dict)
    on_page: Callable[[PageOcr], None] | None = None
    on_start: Callable[[int], None] | None = None  # the page about to be recognised
    report: OcrReport = field(default_factory=OcrReport)

    def page(self, page: Any, page_no: int, text: str
             ) -> tuple[list[str], list[tuple[float, float, float, float]]] | None:
        """The OCR text and boxes of a page that needs it (None: keep its text layer)."""
        if self.opts.mode == "off":
            if needs_ocr(text, look(page), "auto"):  # say what is missing
                why = "no usable text layer, OCR is off (RAG_OCR=off)"
                self.report.left_out.append((page_no, why))
            return None
        if not needs_ocr(text, look(page), self.opts.mode):
            return None
        got = self.cached.get(page_no)
        if got is not None and got.error is not None \
                and got.limits != (self.opts.max_pixels, self.opts.page_timeout_s):
            got = None  # the limits changed since: try again
        if got is None:
            if len(self.report.ocred) >= self.opts.max_pages:
                why = f"more than {self.opts.max_pages} pages to OCR (RAG_OCR_MAX_PAGES)"
                self.report.left_out.append((page_no, why))
                return None
            try:
                engine_id()
            except OcrUnavailable as e:
                self.report.left_out.append((page_no, f"OCR is not available: {e}"))
                return None
            if self.on_start is not None:
                self.on_start(page_no)
            got = ocr_page(page, page_no, self.opts)
            self.report.seconds += got.seconds
            if self.on_page is not None:
                self.on_page(got)
        else:
            self.report.cached += got.error is None
        if got.error is not None:
            self.report.left_out.append((page_no, got.error))
            return None
        self.report.ocred.append(page_no)
        return page_chars(got.words, got.turn)


# ---------------------------------------------------------------- the cache

class OcrCache:
    """OCR results by (file sha256, engine id, dpi): one append-only JSON-lines file each,
    a line per page. A torn last line (a crash while writing) is ignored, so a page is at
    worst recognised again. Apart from the extracted text, so a new PDF extractor version
    re-joins the same words without recognising them again."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, sha256: str, opts: OcrOptions) -> Path:
        """The file of one (source, engine, dpi)."""
        key = hashlib.sha256(f"{engine_id()}|{opts.dpi}".encode()).hexdigest()[:16]
        return self.folder / f"{sha256}.{key}.jsonl"

    def load(self, sha256: str, opts: OcrOptions) -> dict[int, PageOcr]:
        """The pages recognised before (later lines win)."""
        try:
            p = self.path(sha256, opts)
            data = p.read_bytes()
        except (OcrUnavailable, OSError):
            return {}
        out: dict[int, PageOcr] = {}
        for line in data.split(b"\n"):
            try:
                d = json.loads(line)
                if "page" in d:
                    page = PageOcr.from_json(d)
                    out[page.page] = page
            except (ValueError, TypeError, KeyError):
                continue  # a torn line
        return out

    def add(self, sha256: str, opts: OcrOptions, page: PageOcr) -> None:
        """Append one page's result (flushed and synced: the OCR cost hours, maybe)."""
        p = self.path(sha256, opts)
        self.folder.mkdir(parents=True, exist_ok=True)
        head = b"" if p.exists() else (json.dumps(
            {"engine": engine_id(), "dpi": opts.dpi}) + "\n").encode()
        line = json.dumps(page.to_json(), ensure_ascii=False, separators=(",", ":"))
        with open(p, "ab") as f:
            if f.tell() and not _ends_with_newline(p):
                f.write(b"\n")  # after a torn line: start clean
            f.write(head + line.encode("utf-8") + b"\n")
            f.flush()
            os.fsync(f.fileno())

    def files(self) -> Iterator[Path]:
        """Every cache file."""
        return iter(sorted(self.folder.glob("*.jsonl")) if self.folder.is_dir() else [])

    def prune(self, keep: set[str]) -> int:
        """Drop the cache of files whose sha256 is not in `keep`; how many files went."""
        gone = 0
        for p in self.files():
            if p.name.split(".", 1)[0] not in keep:
                p.unlink(missing_ok=True)
                gone += 1
        return gone


def _ends_with_newline(p: Path) -> bool:
    with open(p, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
