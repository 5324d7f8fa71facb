"""`rag convert-squad`: a SQuAD v1.1/v2.0 file -> a corpus folder and a gold JSONL file.

One text file per article, its paragraphs separated by a blank line; answer spans become
evidence with offsets into that file; v2.0's impossible questions become unanswerable items.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Converted:
    """What a conversion wrote."""

    articles: int
    items: int
    unanswerable: int
    skipped: int


def _slug(title: str, n: int) -> str:
    s = re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower()[:60]
    return f"{n:04d}-{s or 'article'}.txt"


def _lines(text: str, start: int, end: int) -> tuple[int, int]:
    return text.count("\n", 0, start) + 1, text.count("\n", 0, max(start, end - 1)) + 1


def convert_squad(squad_path: Path, out_dir: Path) -> Converted:
    """Write OUT_DIR/corpus/*.txt and OUT_DIR/gold.jsonl from a SQuAD file."""
    try:
        data: dict[str, Any] = json.loads(squad_path.read_text(encoding="utf-8"))
        articles = data["data"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{squad_path} is not a SQuAD v1.1/v2.0 JSON file ({e})") from e
    corpus = out_dir / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    items, unanswerable, skipped = [], 0, 0
    for n, art in enumerate(articles, 1):
        name = _slug(str(art.get("title", "")), n)
        text, offsets = "", []
        for i, para in enumerate(art["paragraphs"]):
            if i:
                text += SEPARATOR
            offsets.append(len(text))
            text += para["context"]
        (corpus / name).write_text(text, encoding="utf-8", newline="")
        for para, base in zip(art["paragraphs"], offsets):
            ctx = para["context"]
            for qa in para["qas"]:
                impossible = bool(qa.get("is_impossible"))
                evidence = []
                for ans in qa.get("answers", []):
                    lo = int(ans["answer_start"])
                    hi = lo + len(ans["text"])
                    if ctx[lo:hi] != ans["text"]:  # a misaligned answer in the source data
                        continue
                    ls, le = _lines(text, base + lo, base + hi)
                    ev = {"file": f"corpus/{name}", "start": base + lo, "end": base + hi,
                          "line_start": ls, "line_end": le, "quote": ans["text"]}
                    if ev not in evidence:
                        evidence.append(ev)
                if not impossible and not evidence:
                    skipped += 1
                    continue
                unanswerable += impossible
                items.append({"id": str(qa["id"]), "question": qa["question"],
                              "answerable": not impossible,
                              "answer": None if impossible else evidence[0]["quote"],
                              "evidence": [] if impossible else evidence})
    with (out_dir / "gold.jsonl").open("w", encoding="utf-8") as f:
        for it in items:
            f.write(json.dumps(it, ensure_ascii=False) + "\n")
    return Converted(len(articles), len(items), unanswerable, skipped)
