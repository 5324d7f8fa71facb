"""`rag`: thin command line. Parse, call the library, print; errors become one line + exit code."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import RagError

EXIT_ERROR = 2


def _settings(args: argparse.Namespace) -> Any:
    from .config import Settings

    over: dict[str, Any] = {}
    for key in ("corpus_dir", "index_dir", "model", "backend"):
        if getattr(args, key, None) is not None:
            over[key] = getattr(args, key)
    return Settings(**over)


def cmd_index(args: argparse.Namespace) -> int:
    """Build or update the index."""
    from .indexing import build_index
    from .store import index_lock

    settings = _settings(args)
    make_step = None
    if args.engine == "ray":
        from .distributed import ray_embed_step

        make_step = ray_embed_step(settings, args.ray_address, args.embed_actors,
                                   args.embed_batch_size, args.gpus_per_actor)
    with index_lock(settings.index_dir, args.lock_timeout):
        report = build_index(settings, full=args.full, make_step=make_step)
    for s in report.skipped:
        print(f"skipped {s.path}: {s.reason}", file=sys.stderr)
    print(report.summary())
    return 0


def passage_dict(p: Any) -> dict[str, Any]:
    """A passage as JSON-ready data (the API's shape)."""
    from dataclasses import asdict

    d = asdict(p)
    d["retrievers"] = {"dense": d.pop("dense"), "lexical": d.pop("lexical")}
    return d


def answer_dict(a: Any) -> dict[str, Any]:
    """An answer as JSON-ready data (the API's shape)."""
    from dataclasses import asdict

    return {"question": a.question, "mode": a.mode, "answerable": a.answerable,
            "confidence": a.confidence, "passages": [passage_dict(p) for p in a.passages],
            "index": asdict(a.index), "timings_ms": a.timings_ms}


def cmd_ask(args: argparse.Namespace) -> int:
    """Answer one question from the index."""
    from .search import Searcher

    searcher = Searcher(_settings(args))
    answer = searcher.ask(args.question, args.top_k, args.mode, args.files or None)
    if args.json:
        print(json.dumps(answer_dict(answer), ensure_ascii=False, indent=2))
        return 0
    flag = "" if answer.answerable else "  (the corpus may not answer this: closest passages)"
    print(f"{answer.question}\nconfidence {answer.confidence:.2f}{flag}\n")
    for p in answer.passages:
        print(f"{p.rank}. {p.file}:{p.line_start}-{p.line_end}  [{p.start}:{p.end}]  "
              f"score {p.score:.4f}")
        if p.highlight:
            print(f"   » {p.highlight.text}")
        print("   " + p.text.replace("\n", "\n   ") + "\n")
    return 0


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", dest="corpus_dir", type=Path,
                   help="corpus folder (default corpus/, env RAG_CORPUS_DIR)")
    p.add_argument("--index", dest="index_dir", type=Path,
                   help="index folder (default index/, env RAG_INDEX_DIR)")
    p.add_argument("--model", help="model folder or name (default: the bundled MiniLM; "
                   "env RAG_MODEL)")
    p.add_argument("--backend", choices=["onnx", "torch"], help="inference backend")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="rag", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="build or update the index from the corpus")
    _add_common(p)
    p.add_argument("--full", action="store_true", help="rebuild everything")
    p.add_argument("--lock-timeout", type=float, default=0.0,
                   help="seconds to wait for another running `rag index` (default: fail)")
    p.add_argument("--engine", choices=["local", "ray"], default="local")
    p.add_argument("--ray-address", default=None, help="Ray cluster (default RAY_ADDRESS or local)")
    p.add_argument("--embed-actors", type=int, default=2)
    p.add_argument("--embed-batch-size", type=int, default=32)
    p.add_argument("--gpus-per-actor", type=float, default=0.0)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("ask", help="answer a question with cited passages")
    _add_common(p)
    p.add_argument("question")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--mode", choices=["hybrid", "dense", "lexical"], default="hybrid")
    p.add_argument("--files", nargs="*", help="glob filters on file paths, e.g. 'sco-*'")
    p.add_argument("--json", action="store_true", help="print JSON (the API's shape)")
    p.set_defaults(func=cmd_ask)

    for extra in _EXTRA:
        extra(sub)
    return parser


_EXTRA: list[Callable[[Any], None]] = []


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `rag` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as e:  # disk full, permissions: say which file and why
        print(f"error: {e.strerror or e} ({e.filename or 'no file name'}); nothing was "
              "published, the previous index is unchanged", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
