"""Print a reliability table (markdown) of one mode of a `rag eval --json` report.

    .venv/bin/python eval/reliability.py eval/report-own.json reader

Questions binned by their confidence: how many, the mean confidence, and the share that is
answerable. Used for the README's check of the reader's calibration on the own gold set
(fitted on held-out SQuAD training articles, never on a gold set).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rag.search.reader.calibration import expected_calibration_error, reliability


def main() -> None:
    report = json.loads(Path(sys.argv[1]).read_text())
    mode = sys.argv[2] if len(sys.argv) > 2 else report["gates"]["mode"]
    qs = report["modes"][mode]["questions"]
    table = reliability([q["confidence"] for q in qs], [q["answerable"] for q in qs], bins=5)
    print("| confidence | questions | mean confidence | answerable share |")
    print("|---|---|---|---|")
    for b in table:
        print(f"| {b.lo:.1f}-{b.hi:.1f} | {b.n} | {b.mean_predicted:.3f} | {b.observed:.3f} |")
    print(f"\nexpected calibration error {expected_calibration_error(table):.3f} "
          f"({len(qs)} questions, {mode})")


if __name__ == "__main__":
    main()
