"""Retrieval question answering over a folder of documents, with exact citations.

    from rag import Settings, Searcher, build_index, index_lock
    settings = Settings(corpus_dir="corpus", index_dir="index")
    with index_lock(settings.index_dir):
        print(build_index(settings).summary())
    answer = Searcher(settings).ask("What share of the world's population lives in SCO countries?")

Names are imported on first use, so `rag --help` does not load numpy, FAISS or the model.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_WHERE = {"Settings": "config", "IndexReport": "indexing.build", "build_index": "indexing.build",
          "Searcher": "search.searcher", "index_lock": "indexing.store", "Answer": "types",
          "Chunk": "types", "Document": "types", "Passage": "types", "Span": "types"}

__all__ = [*_WHERE, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module 'rag' has no attribute {name!r}")
