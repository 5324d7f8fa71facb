"""Questions reworded away from their passage's wording, for training and calibration.

SQuAD's questions borrow most of their words from the sentence that answers them (0.53 of a
question's content words on average), so a reader trained and calibrated on them learns to
trust word overlap: the 4-layer reader abstained on 36% of answerable questions phrased away
from the text. ``data/reworded-train.jsonl`` holds questions of the training file rewritten
by hand (other vocabulary and structure, a description instead of a name where one
identifies the thing; about 0.2 of their content words in the sentence instead of 0.53):
answerable ones asking for the same answer, and unanswerable ones that stay unanswerable for
the same reason, so that low overlap alone never means "answerable". One JSON object a line:
``id`` (the SQuAD question's), ``question`` (the rewording), ``source_question``,
``article``. Questions of training articles teach the reader; those of the articles held out
for calibration (``pairs.split_articles``) join the calibration set, where the answerability
threshold must hold for them too. No question of the validation file, or of any evaluation
set, is in it.

A rewording joins its article as one more question with the same answers (or none), id
``rw-`` + the source id (``add``), so pairs, calibration corpus and gold need no other
change.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEFAULT = Path(__file__).parent / "data" / "reworded-train.jsonl"
PREFIX = "rw-"


def load(path: Path) -> dict[str, str]:
    """Source question id -> reworded question."""
    out: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        rec = json.loads(line)
        if not isinstance(rec.get("id"), str) or not str(rec.get("question", "")).strip():
            raise ValueError(f"{path}:{n}: each line needs an 'id' and a 'question'")
        out[rec["id"]] = rec["question"].strip()
    return out


def is_reworded(question_id: str) -> bool:
    return question_id.startswith(PREFIX)


def add(articles: list[dict[str, Any]], reworded: Mapping[str, str]) -> list[dict[str, Any]]:
    """Copies of SQuAD ``articles`` where every question with a rewording is followed by
    the rewording (same answers, or none, id ``rw-`` + id); the input is not changed."""
    if not reworded:
        return articles
    out = copy.deepcopy(articles)
    for art in out:
        for para in art["paragraphs"]:
            qas = []
            for qa in para["qas"]:
                qas.append(qa)
                text = reworded.get(str(qa["id"]))
                if text:
                    qas.append({**qa, "id": PREFIX + str(qa["id"]), "question": text})
            para["qas"] = qas
    return out
