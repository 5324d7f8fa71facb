"""Make tests/data/eval-report.json: a real `rag eval --json` run on a tiny corpus.

Run from the repository root: ``python -m tests.data.make_eval_report`` (a few minutes on 2
cores: it indexes four small files and runs `rag eval` twice). The report is what
tests/test_report.py renders, so the rendering tests no longer depend on how well retrieval
does on the dev set. The corpus and gold set below are made to contain what the page must
handle: text that is HTML (a ``<script>`` tag, quotes, ``&``) in a passage, a question and a
gold quote; a PDF passage (its spans carry pages and boxes); questions missed at rank 1; an
unanswerable question; and a baseline run with other settings, so questions move.

Only paths are edited after the run: the temporary folder becomes ``/tmp/eval-fixture``.
The figures and timings are the run's own; a rerun writes other timings, so commit a rerun
only with tests that still hold (they check the page against this JSON, not fixed figures).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.docmaker import pdf_from_text

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).with_name("eval-report.json")
STABLE = "/tmp/eval-fixture"

FILES = {
    "tea.txt": """Tea notes

Green tea is made from leaves that are steamed or pan-fired soon after picking, which stops
them from oxidising and keeps the colour green.

Black tea leaves are rolled and left to oxidise fully before they are dried; that gives the
dark colour and the stronger taste.

The tea shop's recipe page once carried the line <script>alert("steep")</script> by mistake;
the editor wrote "do not paste code" & 'keep it plain' beside it and removed the tag.

Matcha is green tea ground into a fine powder and whisked into hot water with a bamboo whisk.
""",
    "silk.txt": """The Silk Road

Caravans crossed the deserts of Central Asia carrying silk, spices and paper to the west.

Merchants slept in caravanserais ("palaces of the road") & walled inns a day's travel apart
along the routes, where camels were watered and goods were traded.

Paper making reached Samarkand in the eighth century and spread west from there.
""",
    "harbours.txt": """Harbours

Ships from the south brought pepper and cotton to the harbour towns on the coast.

The harbour master kept a ledger of every cargo and the toll paid on it.
""",
}
PDF = ("trade-report.pdf", """Trade report

Camels could carry about two hundred kilograms of goods across the desert each day.

The oasis towns along the route grew rich on the tolls charged to passing caravans.

Desert routes were dangerous in summer, so most caravans travelled in the cooler months. A
guide's sign read "<b>turn back</b>" & <script>alert('pdf')</script> at the last well.
""")

# (id, question, file, quote): quote None is an unanswerable question
GOLD = [
    ("q-green", "How is green tea kept from oxidising?", "tea.txt",
     "steamed or pan-fired soon after picking"),
    ("q-script", 'What did the <script>alert("x")</script> line on the "recipe" page say?',
     "tea.txt", '<script>alert("steep")</script>'),
    ("q-sleep", 'Where did travellers sleep along the desert routes? <script>alert("q")</script>',
     "silk.txt", 'Merchants slept in caravanserais ("palaces of the road") & walled inns'),
    ("q-camel", "How much could a camel carry?", PDF[0],
     "Camels could carry about two hundred kilograms of goods"),
    ("q-toll", "Who recorded the tolls paid on cargo?", "harbours.txt",
     "The harbour master kept a ledger of every cargo and the toll paid on it."),
    ("q-paper", "When did paper making reach Samarkand?", "silk.txt",
     "Paper making reached Samarkand in the eighth century"),
    ("q-none", "Who won the chess championship in 1972?", None, None),
]


def rag(*args: str, env: dict[str, str] | None = None) -> None:
    """Run the `rag` CLI from the repository root; stop on failure."""
    got = subprocess.run([sys.executable, "-m", "rag.serve.cli", *args], cwd=ROOT,
                         env={**os.environ, **(env or {})}, capture_output=True, text=True)
    if got.returncode != 0:
        sys.exit(f"rag {' '.join(args)} failed:\n{got.stdout}{got.stderr}")


def main() -> None:
    """Build the corpus, index it, write the gold file, run `rag eval` twice, keep the JSON."""
    from rag.indexing.generation import open_current

    tmp = Path(tempfile.mkdtemp(prefix="eval-fixture-"))
    corpus, index = tmp / "corpus", tmp / "index"
    corpus.mkdir()
    for name, text in FILES.items():
        (corpus / name).write_text(text, encoding="utf-8")
    pdf_from_text(PDF[1], corpus / PDF[0])
    small = {"RAG_CHUNK_TOKENS": "32", "RAG_CHUNK_OVERLAP_TOKENS": "8"}
    common = ["--corpus", str(corpus), "--index", str(index)]
    rag("index", *common, env=small)
    gen = open_current(index)

    def text_of(name: str) -> str:
        ex = gen.extracted(name)
        return ex.text if ex is not None else (corpus / name).read_text(encoding="utf-8")

    gold = tmp / "gold.jsonl"
    with gold.open("w", encoding="utf-8") as f:
        for qid, question, name, quote in GOLD:
            evidence = []
            if name is not None and quote is not None:
                text = text_of(name)
                start = text.index(quote)
                end = start + len(quote)
                evidence = [{"file": name, "start": start, "end": end, "quote": quote,
                             "line_start": text.count("\n", 0, start) + 1,
                             "line_end": text.count("\n", 0, end - 1) + 1}]
            f.write(json.dumps({"id": qid, "question": question, "answerable": bool(evidence),
                                "evidence": evidence}) + "\n")
    base, now = tmp / "base.json", tmp / "now.json"
    # the baseline: lexical-heavy fusion on chunk vectors only, so ranks differ from the default
    rag("eval", str(gold), *common, "--mode", "all", "--json", str(base),
        env={"RAG_DENSE_GRANULARITY": "chunk", "RAG_DENSE_WEIGHT": "0.2"})
    rag("eval", str(gold), *common, "--mode", "all", "--json", str(now), "--baseline", str(base),
        "--min-recall-at-5", "0.5", "--min-mrr", "0.5")
    text = now.read_text(encoding="utf-8").replace(str(tmp), STABLE)
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({len(text)} bytes) from {tmp}")


if __name__ == "__main__":
    main()
