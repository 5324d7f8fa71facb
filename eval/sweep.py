"""Measure chunking and fusion choices on the gold sets (one run, one table).

    .venv/bin/python eval/sweep.py > eval/sweep.md

Builds one index per chunking setting in a temp folder, then scores every fusion
variant on ../shared/gold/dev.jsonl and eval/gold.jsonl. Nothing here is tuned per
question: each row is one global setting.
"""

from __future__ import annotations

import itertools
import sys
import tempfile
from pathlib import Path

from rag.config import Settings
from rag.evaluation.evaluate import evaluate_mode, load_gold
from rag.indexing.build import build_index
from rag.indexing.embedding import load_embedder
from rag.indexing.store import index_lock
from rag.search.searcher import Searcher

ROOT = Path(__file__).resolve().parents[1]
GOLDS = {"dev": ROOT.parent / "shared" / "gold" / "dev.jsonl", "own": ROOT / "eval" / "gold.jsonl"}
CHUNKING = [(96, 16), (128, 32), (160, 32), (200, 40), (160, 0)]
CONTEXT = [True, False]
FUSIONS = [("dense", None, None), ("lexical", None, None), ("rrf", 0.5, None),
           ("rrf", 0.3, None), ("minmax", 0.5, None), ("minmax", 0.3, None),
           ("minmax", 0.7, None), ("max", 0.5, None), ("max", 0.3, None)]


def main() -> None:
    embedder = load_embedder(Settings())
    golds = {k: load_gold(v) for k, v in GOLDS.items() if v.exists()}
    print("| chunk | overlap | title ctx | fusion | w_dense | "
          + " | ".join(f"{g} R@1 | {g} R@5 | {g} MRR" for g in golds) + " | chars |")
    print("|" + "---|" * (5 + 3 * len(golds) + 1))
    for (tokens, overlap), ctx in itertools.product(CHUNKING, CONTEXT):
        with tempfile.TemporaryDirectory() as tmp:
            s = Settings(index_dir=Path(tmp), chunk_tokens=tokens, read=False,
                         chunk_overlap_tokens=overlap, context_prefix=ctx)
            with index_lock(s.index_dir):
                build_index(s, embedder=embedder)
            for fusion, w, _ in FUSIONS:
                mode = fusion if fusion in ("dense", "lexical") else "hybrid"
                over = {} if w is None else {"fusion": fusion, "dense_weight": w}
                searcher = Searcher(s.model_copy(update=over), embedder=embedder)
                cells, chars = [], 0.0
                for items in golds.values():
                    m = evaluate_mode(searcher.ask, items, mode, s.corpus_dir).metrics
                    cells.append(f"{m['recall@1']:.3f} | {m['recall@5']:.3f} | {m['mrr@10']:.3f}")
                    chars = m["mean_passage_chars"]
                print(f"| {tokens} | {overlap} | {ctx} | {fusion} | {w if w is not None else '-'} | "
                      + " | ".join(cells) + f" | {chars:.0f} |", flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
