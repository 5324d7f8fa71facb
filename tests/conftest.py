"""Shared fixtures. Expensive ones (the real model, the real index) are session-scoped."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rag.config import Settings
from rag.indexing.embedding import FakeEmbedder

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus"
SHARED = ROOT.parent / "shared"
DEV_GOLD = SHARED / "gold" / "dev.jsonl"
OWN_GOLD = ROOT / "eval" / "gold.jsonl"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
IN_CI = os.environ.get("CI", "").lower() == "true"


def skip_or_fail(msg: str) -> None:
    """Skip (also a whole module) when something the tests need is missing; under CI=true,
    fail instead: CI installs everything, so a skip there would silently test less."""
    if IN_CI:
        pytest.fail(f"{msg} (CI=true: it must be there)", pytrace=False)
    pytest.skip(msg, allow_module_level=True)


def need_shared(path: Path) -> None:
    """Skip or fail (see skip_or_fail) a test whose data in ../shared is missing."""
    if not path.exists():
        skip_or_fail(f"needs {path.relative_to(SHARED.parent) if path.is_relative_to(SHARED.parent) else path}")


def need_font(font: Path) -> None:
    """Skip or fail a test that draws PDFs with this TTF font (.ci/run installs it)."""
    if not font.exists():
        skip_or_fail(f"needs the TTF font {font} (apt-get install fonts-dejavu-core)")


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    """The deterministic hashing embedder (no model)."""
    return FakeEmbedder()


def fake_settings(tmp_path: Path, corpus: Path | None = None, **over: object) -> Settings:
    """Settings for a fake-embedder index in tmp_path (the fast path: reader off unless
    asked for; the reader's own tests use the real model)."""
    over.setdefault("read", False)
    return Settings(corpus_dir=corpus or tmp_path / "corpus", index_dir=tmp_path / "index",
                    model="fake", **over)  # type: ignore[arg-type]


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    """A copy of the real corpus in a temp folder (safe to edit)."""
    dst = tmp_path / "corpus"
    shutil.copytree(CORPUS, dst)
    return dst


@pytest.fixture(scope="session")
def real_embedder():  # type: ignore[no-untyped-def]
    """The bundled MiniLM on the configured backend, loaded once."""
    from rag.indexing.embedding import load_embedder

    return load_embedder(Settings())


@pytest.fixture(scope="session")
def real_index(tmp_path_factory: pytest.TempPathFactory, real_embedder) -> Settings:  # type: ignore[no-untyped-def]
    """The real corpus indexed with the real model, once per session."""
    from rag.indexing.build import build_index
    from rag.indexing.store import index_lock

    idx = tmp_path_factory.mktemp("real") / "index"
    settings = Settings(corpus_dir=CORPUS, index_dir=idx)
    with index_lock(idx):
        build_index(settings, embedder=real_embedder)
    return settings


@pytest.fixture(scope="session")
def real_searcher(real_index: Settings, real_embedder):  # type: ignore[no-untyped-def]
    """A Searcher over the real index with the real model."""
    from rag.search.searcher import Searcher

    return Searcher(real_index, embedder=real_embedder)


# ---------------------------------------------------------------- the browser tests

@pytest.fixture(scope="module")
def chromium_path() -> Path:
    """Debian's Chromium, or skip/fail before anything expensive starts."""
    from .browserutil import CHROMIUM, missing_browser

    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        missing_browser(f"the browser tests need {CHROMIUM}")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing_browser("the browser tests need the Python package `playwright` (pip install "
                        "'.[test]')")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium_path: Path) -> Iterator[Any]:
    """One headless Chromium for the module."""
    from playwright.sync_api import sync_playwright

    from .browserutil import CHROMIUM_ARGS

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(chromium_path), headless=True,
                               args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def rec(browser: Any) -> Iterator[Any]:
    """A fresh desktop-size page (a browserutil.Recorded)."""
    from .browserutil import open_page

    yield from open_page(browser)


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    """A fresh phone-size page (390x844)."""
    from .browserutil import open_page

    yield from open_page(browser, 390, 844)
