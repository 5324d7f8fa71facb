"""Query-time thread settings: numpy's OpenBLAS runs one thread per question (concurrent
questions in the server's threads otherwise wait on each other's BLAS pools)."""

from __future__ import annotations

from pathlib import Path

from threadpoolctl import threadpool_info, threadpool_limits

from rag.search.searcher import Searcher

from .conftest import fake_settings


def blas_threads() -> set[int]:
    """Thread counts of numpy's OpenBLAS (FAISS's own follows its OpenMP setting)."""
    import numpy  # noqa: F401  (loaded: its BLAS is in the process)

    return {i["num_threads"] for i in threadpool_info()
            if i["user_api"] == "blas" and "scipy_openblas" in i["prefix"]}


def test_searcher_limits_blas_to_its_setting(tmp_path: Path) -> None:
    (tmp_path / "corpus").mkdir()
    with threadpool_limits(2, user_api="blas"):  # restored after the test
        assert blas_threads() == {2}
        Searcher(fake_settings(tmp_path, blas_query_threads=0))
        assert blas_threads() == {2}  # 0: the library's own
        Searcher(fake_settings(tmp_path))
        assert blas_threads() == {1}  # the default: one a question
