"""Schemathesis against a real `rag serve` over loopback: every operation in the OpenAPI
document, generated valid and invalid inputs; no 5xx and every response matches its schema."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import CORPUS
from .serverutil import Server, running_server

MAX_EXAMPLES = int(os.environ.get("RAG_SCHEMATHESIS_EXAMPLES", "250"))
SEED = os.environ.get("RAG_SCHEMATHESIS_SEED", "20250901")  # fixed: a failure reproduces
RUN_TIMEOUT_S = 240


def schemathesis_cli() -> list[str]:
    """The CLI installed next to this interpreter (the venv's)."""
    exe = Path(sys.executable).with_name("schemathesis")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("schemathesis")
    assert found, "schemathesis is a test dependency: pip install -e '.[test]'"
    return [found]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`rag serve` with the fake embedder (fast start, same HTTP layer) on a corpus copy."""
    base = tmp_path_factory.mktemp("fuzz")
    corpus = base / "corpus"
    corpus.mkdir()
    for p in CORPUS.iterdir():
        (corpus / p.name).write_bytes(p.read_bytes())
    with running_server(corpus, base / "index", base / "serve.log", model="fake",
                        ready_timeout_s=120) as s:
        yield s


WARNINGS = ["missing_auth", "base_url_mismatch", "validation_mismatch", "missing_deserializer",
            "unused_openapi_auth", "unsupported_regex", "method_not_allowed",
            "constants_extraction", "unmatched_filter", "unresolvable_reference",
            "low_valid_rate"]


def test_schemathesis_finds_no_server_error_or_schema_violation(
        server: Server, tmp_path: Path) -> None:
    # every default check, positive and negative data, all phases
    cmd = [*schemathesis_cli(), "run", f"{server.url}/openapi.json",
           "--max-examples", str(MAX_EXAMPLES), "--seed", SEED,
           "--generation-database", "none", "--request-timeout", "20",
           "--wait-for-schema", "10", "--no-color", "--max-failures", "20",
           # every warning but "missing test data": a generated path cannot name an indexed
           # document, so the document operations answer 404 to nearly every case (the span,
           # original and page endpoints are tested with real documents in test_api.py and
           # test_extract*.py, path payloads in test_api.py's traversal test)
           "--warnings", ",".join(WARNINGS)]
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True,
                         timeout=RUN_TIMEOUT_S, env={**os.environ, "NO_COLOR": "1"})
    report = out.stdout + out.stderr
    summary = report[report.rfind("SUMMARY"):] if "SUMMARY" in report else report[-3000:]
    print(f"\nschemathesis (max_examples={MAX_EXAMPLES}, seed={SEED}):\n{summary}")
    assert server.proc.poll() is None, f"the server died:\n{server.log_tail()}"
    assert out.returncode == 0, report[-12000:]
    assert "No issues found" in report
    import httpx

    paths = httpx.get(f"{server.url}/openapi.json", timeout=20).json()["paths"]
    operations = sum(len(methods) for methods in paths.values())
    assert operations >= 9 and f"Selected: {operations}/{operations}" in report  # every one
    generated = re.search(r"(\d+) generated", report)
    assert generated and int(generated.group(1)) >= 2000, "fewer than 2,000 cases ran"
