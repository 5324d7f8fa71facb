"""Dense index: FAISS inner product over unit vectors; exact (flat) while small, HNSW above
a size threshold. Four verbs: build, search, save, load."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..types import Hit


class DenseIndex:
    """A FAISS index whose row i is chunk row i."""

    def __init__(self, index: object, kind: str) -> None:
        self._index = index
        self.kind = kind
        self._view: np.ndarray | None = None  # a flat index's vectors, zero-copy
        # the last row mask turned into a FAISS selector: (mask, selector, rows allowed, bits)
        self._selector: tuple[np.ndarray, object, int, np.ndarray] | None = None

    @property
    def size(self) -> int:
        """Number of vectors."""
        return int(self._index.ntotal)  # type: ignore[attr-defined]

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return int(self._index.d)  # type: ignore[attr-defined]

    @classmethod
    def build(cls, vectors: np.ndarray, approximate_threshold: int = 200_000,
              hnsw_m: int = 32, ef_search: int = 128) -> DenseIndex:
        """Flat inner-product index, or HNSW when there are more rows than the threshold."""
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, d = vectors.shape
        if n > approximate_threshold:
            index = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
            index.hnsw.efSearch = ef_search
            kind = "hnsw"
        else:
            index = faiss.IndexFlatIP(d)
            kind = "flat"
        if n:
            index.add(vectors)
        return cls(index, kind)

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
               exact: bool = False) -> list[list[Hit]]:
        """Top-k rows per query by inner product; ``allowed`` is an optional row mask;
        ``exact``: score every allowed vector even in an HNSW index."""
        scores, rows = self.search_arrays(queries, k, allowed, exact)
        return [[Hit(r, s, i + 1) for i, (r, s) in enumerate(zip(rr.tolist(), ss.tolist()))
                 if r >= 0] for rr, ss in zip(rows, scores)]

    def search_arrays(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
                      exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """FAISS's own (scores, rows) arrays, one line per query; row -1 pads a short line.

        ``exact`` (with a mask) searches an HNSW index's flat storage with the selector:
        every allowed vector is scored, the others only tested against the bitmap."""
        import faiss

        q = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        k = min(k, self.size)
        empty = (np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64))
        if k <= 0:
            return empty
        params = None
        index = self._index
        if allowed is not None:
            sel, n_allowed = self._select(allowed)
            if not n_allowed:
                return empty
            k = min(k, n_allowed)
            if self.kind == "hnsw" and exact:
                index = faiss.downcast_index(self._index.storage)  # type: ignore[attr-defined]
            params = (faiss.SearchParametersHNSW(sel=sel, efSearch=self._ef())
                      if index is self._index and self.kind == "hnsw"
                      else faiss.SearchParameters(sel=sel))
        scores, rows = index.search(q, k, params=params)  # type: ignore[attr-defined]
        return scores, rows

    def _select(self, allowed: np.ndarray) -> tuple[object, int]:
        """A FAISS bitmap selector for a row mask (and how many rows it allows). The last one
        is kept: a segment's live-row mask is the same array every query."""
        import faiss

        got = self._selector
        if got is not None and got[0] is allowed:
            return got[1], got[2]
        bits = np.packbits(np.asarray(allowed, dtype=bool), bitorder="little")
        sel = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))
        n = int(np.count_nonzero(allowed))
        self._selector = (allowed, sel, n, bits)  # bits must outlive the selector
        return sel, n

    def _ef(self) -> int:
        return int(self._index.hnsw.efSearch)  # type: ignore[attr-defined]

    def all_scores(self, query: np.ndarray) -> np.ndarray | None:
        """Inner product of one query with every vector, for an exact (flat) index; None for
        an approximate one, which must be searched."""
        if self.kind != "flat" or not self.size:
            return None
        return self._flat() @ np.asarray(query, dtype=np.float32)

    def _flat(self) -> np.ndarray:
        view = self._view
        if view is None or len(view) != self.size:
            import faiss

            flat = (self._index if self.kind == "flat"
                    else faiss.downcast_index(self._index.storage))  # type: ignore[attr-defined]
            view = faiss.rev_swig_ptr(flat.get_xb(), self.size * self.dim
                                      ).reshape(self.size, self.dim)
            self._view = view
        return view

    def vectors_of(self, rows: np.ndarray) -> np.ndarray:
        """Stored vectors of some rows."""
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return np.zeros((0, self.dim), dtype=np.float32)
        # plain indexing of the stored vectors (HNSWFlat keeps them in a flat storage):
        # FAISS's reconstruct_batch copies row by row, in OpenMP threads above 1,000 rows
        return self._flat()[rows]

    def add(self, vectors: np.ndarray) -> None:
        """Append rows (a merge extends a segment's index instead of rebuilding it)."""
        if len(vectors):
            self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))  # type: ignore[attr-defined]
        self._view = None

    def vectors(self) -> np.ndarray:
        """All stored vectors (for reuse by an incremental re-index)."""
        return np.asarray(self._index.reconstruct_n(0, self.size), dtype=np.float32)  # type: ignore[attr-defined]

    def save(self, path: Path) -> None:
        """Write the index file (the generation's publish step fsyncs it)."""
        import errno
        import os

        import faiss

        try:
            faiss.write_index(self._index, str(path))
        except RuntimeError as e:  # FAISS reports I/O errors as RuntimeError
            code = errno.ENOSPC if "No space" in str(e) else errno.EIO
            raise OSError(code, os.strerror(code), str(path)) from e

    @classmethod
    def load(cls, path: Path, ef_search: int = 128) -> DenseIndex:
        """Read an index file written by ``save``."""
        import faiss

        index = faiss.read_index(str(path))  # already the concrete class; owns its memory
        kind = "hnsw" if hasattr(index, "hnsw") else "flat"
        if kind == "hnsw":
            index.hnsw.efSearch = ef_search
        return cls(index, kind)
