"""Two `rag eval --json` reports compared for equality (issue 22: "same answers"): per mode,
every metric but timings, and each question's rank, confidence, abstention and top passages
(file, offsets, lines, score, text, highlight). Exit status 1 on any difference.

    .venv/bin/python bench/same_answers.py BEFORE.json AFTER.json [hybrid,dense,lexical]
"""

from __future__ import annotations

import json
import sys
from typing import Any


def differences(a: dict[str, Any], b: dict[str, Any], modes: list[str]) -> list[str]:
    """Every difference between two reports in the given modes, one line each."""
    out = []
    for m in modes:
        ma, mb = a["modes"][m], b["modes"][m]
        out += [f"{m} metric {k}: {v} -> {mb['metrics'].get(k)}"
                for k, v in ma["metrics"].items() if "ms" not in k and mb["metrics"].get(k) != v]
        qa = {q["id"]: q for q in ma["questions"]}
        qb = {q["id"]: q for q in mb["questions"]}
        if qa.keys() != qb.keys():
            out.append(f"{m}: the questions differ")
            continue
        for i, x in qa.items():
            y = qb[i]
            out += [f"{m} {i} {k}: {x[k]} -> {y[k]}"
                    for k in ("rank", "confidence", "predicted_answerable") if x[k] != y[k]]
            if x["top"] != y["top"]:
                out.append(f"{m} {i}: top passages differ")
    return out


def main() -> int:
    """Print the differences and how many questions were compared."""
    a, b = (json.load(open(p)) for p in sys.argv[1:3])
    modes = sys.argv[3].split(",") if len(sys.argv) > 3 else ["hybrid", "dense", "lexical"]
    diffs = differences(a, b, modes)
    print("\n".join(diffs))
    print(f"{len(diffs)} differences in {', '.join(modes)} "
          f"({len(a['modes'][modes[0]]['questions'])} questions each)")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
