"""`rag`: thin command line. Parse, call the library, print; errors become one line + exit code."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, RagError

EXIT_ERROR = 2


def _settings(args: argparse.Namespace) -> Any:
    from ..config import Settings

    over: dict[str, Any] = {}
    for key in ("corpus_dir", "index_dir", "model", "backend", "read", "ocr"):
        if getattr(args, key, None) is not None:
            over[key] = getattr(args, key)
    return Settings(**over)


def cmd_index(args: argparse.Namespace) -> int:
    """Build or update the index (with --watch: keep it in line with the folder)."""
    from ..indexing.build import build_index

    settings = _settings(args)
    if args.watch:
        return _watch_index(settings, args)
    if args.metrics_port is not None:
        raise ConfigError("--metrics-port is for `rag index --watch`")
    make_step = None
    if args.engine == "ray":
        from ..indexing.distributed import ray_embed_step

        make_step = ray_embed_step(settings, args.ray_address, args.embed_actors,
                                   args.embed_batch_size, args.gpus_per_actor)
    from contextlib import closing

    from ..indexing.progress import Progress

    with _index_lock_waiting_for_watcher(settings.index_dir, args.lock_timeout), \
            closing(Progress(sys.stderr)) as progress:
        report = build_index(settings, full=args.full, make_step=make_step,
                             optimize=args.optimize, progress=progress)
    print(report.summary())  # each skipped file was logged once, with its reason
    return 0


def _index_lock_waiting_for_watcher(index_dir: Path, timeout_s: float) -> Any:
    """The index lock; while a folder watcher's run holds it, wait for it (and say so)
    instead of failing."""
    from ..errors import IndexLockedError
    from ..indexing.store import index_lock
    from ..indexing.watch import watcher_pid

    try:
        with index_lock(index_dir, 0.0):
            pass
    except IndexLockedError:
        pid = watcher_pid(index_dir)
        if pid is not None:
            print(f"waiting: the folder watcher (pid {pid}) is indexing {str(index_dir)!r}; "
                  "this run starts when it is done", file=sys.stderr, flush=True)
            timeout_s = max(timeout_s, 24 * 3600.0)
    return index_lock(index_dir, timeout_s)


def _watch_index(settings: Any, args: argparse.Namespace) -> int:
    """`rag index --watch`: follow the folder until interrupted (metrics on --metrics-port)."""
    from ..indexing.watch import FolderWatcher

    if args.full or args.optimize or args.engine != "local":
        raise ConfigError("--watch indexes incrementally in this process; leave out --full, "
                          "--optimize and --engine ray")
    metrics = None
    if args.metrics_port is not None:
        from .metrics import Metrics

        metrics = Metrics()
        metrics.serve(args.metrics_port, args.metrics_host)
    FolderWatcher(settings, observer=metrics).run_forever()
    return 0


def where(p: Any) -> str:
    """Where a passage of a converted file sits: 'p.12-13', '¶4 (Heading)', '§ Heading #id';
    empty for plain text."""
    if p.page_start is not None:
        pages = (f"{p.page_start}" if p.page_end in (None, p.page_start)
                 else f"{p.page_start}-{p.page_end}")
        return f"p.{pages}"
    if p.paragraph is not None:
        return f"¶{p.paragraph}" + (f" ({p.heading})" if p.heading else "")
    if p.heading:
        return f"§ {p.heading}" + (f" #{p.heading_id}" if p.heading_id else "")
    return ""


def cmd_text(args: argparse.Namespace) -> int:
    """Print the text a file is indexed as: what citations' offsets index."""
    from ..indexing.build import limits
    from ..text.corpus import Converter

    settings = _settings(args)
    path: Path = args.file
    if not path.is_file():
        raise ConfigError(f"{str(path)!r} is not a file; give the path of a corpus file")
    conv = Converter(limits(settings))  # starts no process for a plain text file
    try:
        doc = conv.read(path, path.name)
    except ValueError as e:  # ExtractError is one
        raise ConfigError(f"{path}: {e}") from e
    finally:
        conv.close()
    sys.stdout.buffer.write(doc.text.encode("utf-8"))
    sys.stdout.flush()
    return 0


def _filters(args: argparse.Namespace) -> Any:
    """--date-from, --date-to, --formats as search filters (None: none)."""
    from ..search.searcher import Filters
    from ..text.dates import parse_day

    try:
        lo = parse_day(args.date_from, "--date-from") if args.date_from else None
        hi = parse_day(args.date_to, "--date-to") if args.date_to else None
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if not (lo or hi or args.formats):
        return None
    return Filters(date_from=lo, date_to=hi,
                   formats=tuple(args.formats) if args.formats else None)


def cmd_ask(args: argparse.Namespace) -> int:
    """Answer one question from the index."""
    from .records import answer_out
    from .service import Service

    answer = Service(_settings(args)).answer(args.question, args.top_k, args.mode,
                                             args.files or None, filters=_filters(args))
    if args.json:
        print(json.dumps(answer_out(answer).model_dump(mode="json"), ensure_ascii=False,
                         indent=2))
        return 0
    flag = "" if answer.answerable else "  (the corpus may not answer this: closest passages)"
    print(f"{answer.question}\nconfidence {answer.confidence:.2f}{flag}\n")
    for p in answer.passages:
        at = where(p)
        read = f"  read {p.read:.2f}" if p.read is not None else ""
        print(f"{p.rank}. {p.file}:{p.line_start}-{p.line_end}  {at + '  ' if at else ''}"
              f"[{p.start}:{p.end}]  score {p.score:.4f}{read}")
        if p.answer:
            a = p.answer
            print(f"   answer: {a.text}  [{a.start}:{a.end}] line {a.line_start}"
                  f"{'-' + str(a.line_end) if a.line_end != a.line_start else ''}")
        if p.highlight:
            print(f"   » {p.highlight.text}")
        print("   " + p.text.replace("\n", "\n   ") + "\n")
    return 0


def _refuse_open(settings: Any, host: str, no_auth: bool) -> None:
    """ConfigError when a service on `host` would serve every document to the network."""
    from .auth import open_service_check
    from .keys import keys_path

    why = open_service_check(host, keys_path(settings.index_dir, settings.keys_file), no_auth)
    if why:
        raise ConfigError(why)


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the API (building the index first if there is none)."""
    import uvicorn

    from ..indexing.build import build_index
    from ..indexing.store import index_lock, list_generations
    from ..search.searcher import Searcher
    from ..search.searcher import check_reader_setting
    from .auth import guard_for
    from .http import create_app
    from .metrics import Metrics

    settings = _settings(args)
    check_reader_setting(settings)  # before a long index build, not after it
    _refuse_open(settings, args.host, args.no_auth)
    if not list_generations(settings.index_dir):
        print(f"no index in {settings.index_dir}: building it from {settings.corpus_dir} ...",
              file=sys.stderr)
        with index_lock(settings.index_dir, timeout_s=600):
            if not list_generations(settings.index_dir):
                print(build_index(settings).summary(), file=sys.stderr)
    searcher = Searcher(settings)
    metrics = Metrics()
    app = create_app(settings, searcher, metrics=metrics,
                     guard=guard_for(settings, args.no_auth))
    watcher = None
    if args.watch:
        from ..indexing.watch import FolderWatcher

        def switch(_generation: str) -> None:  # at once, not at the next reload tick
            if searcher.reload_if_changed():
                metrics.reloads.inc()

        watcher = FolderWatcher(settings, observer=metrics, busy=app.state.gate.busy,
                                on_published=switch).start()
    try:
        # log_config=None: uvicorn keeps our handlers (one format); our middleware logs
        # each request, so uvicorn's access log is off
        uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False,
                    log_level="warning" if not args.verbose else "info",
                    limit_concurrency=args.limit_concurrency, timeout_keep_alive=5)
    finally:
        if watcher is not None:
            watcher.stop()
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    """Serve the search to AI assistants over MCP: stdio, or streamable HTTP with --http."""
    from .mcp import serve

    if not args.http and (args.host or args.port or args.no_auth):
        raise ConfigError("--host, --port and --no-auth are for `rag mcp --http`; stdio "
                          "needs none (it acts for the local user)")
    settings = _settings(args)
    if args.http:
        _refuse_open(settings, args.host or "127.0.0.1", args.no_auth)
    serve(settings, "streamable-http" if args.http else "stdio",
          args.host or "127.0.0.1", args.port or 8001, args.verbose, args.no_auth)
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    """Add, list or revoke API keys (the keys file beside the index)."""
    from .auth import last_used
    from .keys import add_key, keys_path, read_keys, revoke_key

    settings = _settings(args)
    path = keys_path(settings.index_dir, settings.keys_file)
    if args.keys_command == "add":
        token = add_key(path, args.name, args.allow)
        print(f"key {args.name!r} may read {', '.join(args.allow)}; its token (shown once, "
              f"only its hash is kept in {path}):", file=sys.stderr)
        print(token)
    elif args.keys_command == "revoke":
        revoke_key(path, args.name)
        print(f"revoked {args.name!r}; running servers refuse it within "
              f"{settings.keys_interval_s:g} s")
    else:
        got = read_keys(path)
        used = last_used(settings.audit_log or settings.index_dir / "audit.jsonl")
        rows: list[dict[str, Any]] = [
            {"name": k.name, "allow": list(k.allow), "created": k.created,
             "last_used": used.get(k.name)} for k in (got[0].keys if got else ())]
        if args.json:
            print(json.dumps(rows, indent=2))
        elif not rows:
            print(f"no keys in {path}" if got else f"no keys file at {path}")
        else:
            for r in rows:
                print(f"{r['name']}\t{' '.join(r['allow'])}\tcreated {r['created']}\t"
                      f"last used {r['last_used'] or 'never'}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Score the service against a gold file; optionally against a baseline, as HTML."""
    from ..errors import ConfigError
    from ..evaluation.compare import format_diff, load_report, with_baseline
    from ..evaluation.evaluate import (
        READER,
        build_report,
        evaluate,
        format_table,
        load_gold,
        make_gates,
    )
    from ..search.searcher import Searcher
    from ..types import MODES

    if args.serve_url and not args.serve_url.startswith(("http://", "https://")):
        raise ConfigError(f"--serve-url {args.serve_url!r} is not an http(s) URL; "
                          "e.g. http://127.0.0.1:8000")
    settings = _settings(args)
    items = load_gold(args.gold)
    baseline = load_report(args.baseline) if args.baseline else None  # fail before the run
    ks = sorted({int(k) for k in args.k.split(",")} | {1, 3, 5, 10})
    modes: list[str] = ([*MODES, READER] if args.read is not False else list(MODES)
                        ) if args.mode == "all" else [args.mode]
    searcher = Searcher(settings)
    results = evaluate(searcher, items, modes, ks)
    print(f"{args.gold}: {len(items)} items "
          f"({sum(i.answerable for i in items)} answerable)\n")
    print(format_table(results))
    for m, r in results.items():
        if r.misses:
            print(f"\n{m}: {len(r.misses)} answerable items not at rank 1")
            for x in r.misses:
                print(f"  {x['id']} rank={x['rank']} {x['question']}\n"
                      f"     expected {', '.join(x['expected'])}; got {', '.join(x['got'])}")
    gates = make_gates(args.min_recall_at_5, args.min_mrr, args.min_abstain_recall,
                       args.max_false_abstain)
    report = build_report(searcher, args.gold, items, results, ks, gates)
    if baseline is not None:
        report = with_baseline(report, baseline, args.baseline)
        print("\n" + format_diff(report["baseline"]["diffs"], str(args.baseline)))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if args.html:
        from ..evaluation.report import render_html

        args.html.write_text(render_html(report, args.serve_url), encoding="utf-8")
        print(f"\nreport: {args.html}")
    for f in report["gates"]["failed"]:
        print(f"FAILED threshold: {f}", file=sys.stderr)
    return 1 if report["gates"]["failed"] else 0


def cmd_train_reader(args: argparse.Namespace) -> int:
    """Train the reader, export it, calibrate it on held-out articles, write its card."""
    try:
        from ..train.pipeline import run
        from ..train.trainer import TrainConfig
    except ImportError as e:  # pragma: no cover - torch/transformers missing
        raise ConfigError(f"training needs the train extra ({e}); pip install -e '.[train]'") from e
    if not args.data.is_file():
        raise ConfigError(f"{args.data} is not a file; give a SQuAD 2.0 training file "
                          "(../shared/qa-train/train-v2.0-subset.json.gz)")
    given = {k: getattr(args, k) for k in ("layers", "epochs", "steps", "batch", "lr",
                                           "precision", "every", "seed", "init", "reworded",
                                           "keep", "max_len")}
    for name in ("init", "reworded"):
        if given[name] and not Path(given[name]).is_file():
            raise ConfigError(f"--{name} {given[name]} is not a file")
    cfg = TrainConfig(data=str(args.data), out=str(args.out), articles=args.articles,
                      **{k: v for k, v in given.items() if v is not None})
    card = run(cfg, args.install, candidates=args.candidates,
               calibration_articles=args.calibration_articles, read_further=args.read_further)
    f = card["held_out"]["int8"]
    print(f"{card['name']}: {card['files']} -> {args.install or args.out}\n"
          f"held-out ({f['questions']} questions): MRR {f['fast']['mrr@10']:.3f} -> "
          f"{f['reader']['mrr@10']:.3f}, abstain recall {f['reader']['abstain_recall']:.3f} at "
          f"false abstain {f['reader']['false_abstain_rate']:.3f}")
    return 0


def cmd_convert_squad(args: argparse.Namespace) -> int:
    """Convert a SQuAD file into a corpus folder and a gold file."""
    from ..text.squad import convert_squad

    r = convert_squad(args.squad, args.out)
    print(f"{r.articles} articles -> {args.out / 'corpus'}; {r.items} gold items "
          f"({r.unanswerable} unanswerable, {r.skipped} skipped) -> {args.out / 'gold.jsonl'}")
    return 0


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", dest="corpus_dir", type=Path,
                   help="corpus folder (default corpus/, env RAG_CORPUS_DIR)")
    p.add_argument("--index", dest="index_dir", type=Path,
                   help="index folder (default index/, env RAG_INDEX_DIR)")
    p.add_argument("--model", help="model folder or name (default: the bundled MiniLM; "
                   "env RAG_MODEL)")
    p.add_argument("--backend", choices=["onnx", "torch"], help="inference backend")


def _add_ocr(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ocr", choices=["auto", "off", "force"],
                   help="OCR of PDF pages: auto (pages without a usable text layer; the "
                   "default), off, force (every page) (env RAG_OCR)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="rag", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    parser.add_argument("--log-format", choices=["text", "json", "auto"], default="auto",
                        help="log lines on stderr: text, json, or auto (text on a terminal, "
                        "json otherwise)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="build or update the index from the corpus")
    _add_common(p)
    p.add_argument("--full", action="store_true", help="rebuild everything")
    p.add_argument("--optimize", action="store_true",
                   help="also merge every segment into one (the server keeps answering)")
    p.add_argument("--lock-timeout", type=float, default=0.0,
                   help="seconds to wait for another running `rag index` (default: fail)")
    p.add_argument("--engine", choices=["local", "ray"], default="local")
    p.add_argument("--ray-address", default=None, help="Ray cluster (default RAY_ADDRESS or local)")
    p.add_argument("--embed-actors", type=int, default=2)
    p.add_argument("--embed-batch-size", type=int, default=32)
    p.add_argument("--gpus-per-actor", type=float, default=0.0)
    _add_ocr(p)
    p.add_argument("--watch", action="store_true",
                   help="keep following the folder: index each settled burst of changes")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="with --watch: serve Prometheus metrics on this port")
    p.add_argument("--metrics-host", default="127.0.0.1",
                   help="with --metrics-port: the address (default 127.0.0.1)")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("ask", help="answer a question with cited passages")
    _add_common(p)
    p.add_argument("question")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--mode", choices=["hybrid", "dense", "lexical"], default="hybrid")
    p.add_argument("--files", nargs="*", help="glob filters on file paths, e.g. 'sco-*'")
    p.add_argument("--json", action="store_true", help="print JSON (the API's shape)")
    p.add_argument("--read", dest="read", action="store_const", const=True, default=None,
                   help="let the reader reorder the top passages, judge the answer and mark "
                   "it (default off: RAG_READ)")
    p.add_argument("--no-read", dest="read", action="store_const", const=False,
                   help="the fast path, whatever RAG_READ says")
    p.add_argument("--date-from", help="only documents dated on or after this day (YYYY-MM-DD)")
    p.add_argument("--date-to", help="only documents dated on or before this day (inclusive)")
    p.add_argument("--formats", nargs="+", choices=["pdf", "html", "docx", "txt", "md"],
                   help="only documents of these formats")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("text", help="print the text a file is indexed as (PDF/HTML/DOCX: the "
                       "extracted text that offsets index)")
    _add_common(p)
    _add_ocr(p)
    p.add_argument("file", type=Path)
    p.set_defaults(func=cmd_text)

    p = sub.add_parser("serve", help="run the HTTP service (builds the index if missing)")
    _add_common(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--limit-concurrency", type=int, default=256,
                   help="connections above this get 503 at once")
    p.add_argument("--watch", action="store_true",
                   help="follow the corpus folder: index changes as they settle and serve "
                   "them (one watcher per index)")
    p.add_argument("--no-auth", action="store_true",
                   help="never check API keys, even off loopback (only behind a proxy that "
                   "authenticates)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("mcp", help="serve AI assistants over MCP (stdio; --http for HTTP)")
    _add_common(p)
    p.add_argument("--http", action="store_true",
                   help="streamable HTTP at http://HOST:PORT/mcp instead of stdio")
    p.add_argument("--host", help="with --http: address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="with --http: port (default 8001)")
    p.add_argument("--no-auth", action="store_true",
                   help="with --http: never check API keys (only behind an authenticating proxy)")
    p.set_defaults(func=cmd_mcp)

    p = sub.add_parser("keys", help="API keys: which documents each may read")
    ks = p.add_subparsers(dest="keys_command", required=True)
    k = ks.add_parser("add", help="add a key; its token is printed once, as the last line")
    _add_common(k)
    k.add_argument("name", help="a name for the key (letters, digits, _ . -)")
    k.add_argument("--allow", action="append", required=True, metavar="GLOB",
                   help="corpus paths it may read: * stays in one folder, ** crosses "
                   "folders (e.g. 'public/**'); repeat for more")
    k.set_defaults(func=cmd_keys)
    k = ks.add_parser("list", help="names, grants, created, last used (never a token)")
    _add_common(k)
    k.add_argument("--json", action="store_true")
    k.set_defaults(func=cmd_keys)
    k = ks.add_parser("revoke", help="remove a key (running servers refuse it within seconds)")
    _add_common(k)
    k.add_argument("name")
    k.set_defaults(func=cmd_keys)

    p = sub.add_parser("eval", help="score retrieval against a gold JSONL file")
    _add_common(p)
    p.add_argument("gold", type=Path)
    p.add_argument("--mode", choices=["hybrid", "dense", "lexical", "reader", "all"],
                   default="all", help="reader: hybrid read by the reader; the others "
                   "without it; all: every one")
    p.add_argument("--no-read", dest="read", action="store_const", const=False, default=None,
                   help="with --mode all: leave the reader out")
    p.add_argument("--k", default="1,3,5,10", help="cutoffs for recall, e.g. 1,3,5,10")
    p.add_argument("--json", type=Path,
                   help="write the report here: metrics, misses, every question's ranks")
    p.add_argument("--html", type=Path, help="write a self-contained HTML report here")
    p.add_argument("--serve-url", help="link each span in the HTML to this running service, "
                   "e.g. http://127.0.0.1:8000")
    p.add_argument("--baseline", type=Path,
                   help="a previous --json report: show what changed and which questions moved")
    p.add_argument("--min-recall-at-5", type=float, help="exit 1 if recall@5 is lower (gates "
                   "judge the service's default: hybrid, or the reader with RAG_READ=1)")
    p.add_argument("--min-mrr", type=float, help="exit 1 if mrr@10 is lower")
    p.add_argument("--min-abstain-recall", type=float,
                   help="exit 1 if it abstains on fewer of the unanswerable questions")
    p.add_argument("--max-false-abstain", type=float,
                   help="exit 1 if it abstains on more of the answerable questions")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("train-reader", help="train the reader (needs the train extra; CPU, "
                       "about an hour): fine-tune, export to ONNX int8, calibrate, write the card")
    p.add_argument("--data", type=Path, default=Path("../shared/qa-train/train-v2.0-subset.json.gz"))
    p.add_argument("--out", type=Path, default=Path("train/out/reader"),
                   help="work folder: checkpoints (resumable), log, exports, calibration index")
    p.add_argument("--install", type=Path, default=None,
                   help="copy the model and its card here (rag/models/reader ships with the package)")
    # Defaults are TrainConfig's (one source): read lazily so `rag --help` stays light.
    p.add_argument("--layers", type=int, default=None, help="transformer layers (default 4)")
    p.add_argument("--epochs", type=float, default=None, help="passes over the pairs (default 2)")
    p.add_argument("--steps", type=int, default=None, help="fixed step count (overrides epochs)")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default=None,
                   help="auto: bfloat16 autocast where the CPU has AMX/AVX512-BF16")
    p.add_argument("--every", type=int, default=None, help="checkpoint and log period (steps)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--articles", type=int, default=0, help="train on the first N articles only")
    p.add_argument("--init", default=None,
                   help="start from this checkpoint's weights (a new leg: fresh optimiser)")
    p.add_argument("--reworded", default=None,
                   help="questions reworded away from the text, joining their articles in "
                        "training and calibration (rag/train/data/reworded-train.jsonl)")
    p.add_argument("--keep", type=float, default=None,
                   help="share of the original questions trained on (every reworded one is)")
    p.add_argument("--max-len", type=int, default=None,
                   help="tokens of a question + passage pair the reader reads (default 96; "
                        "the card records it, and the service reads pairs that long)")
    p.add_argument("--calibration-articles", type=int, default=0,
                   help="calibrate on the first N held-out articles only")
    p.add_argument("--candidates", type=int, default=0,
                   help="passages read per question (0: choose 4 or 8 on the held-out training "
                        "articles; the head and the answerability features are chosen there "
                        "either way)")
    p.add_argument("--read-further", action="store_true",
                   help="let the calibration choose to read 4 more passages for the least "
                        "sure questions (README, \"The reader\": measured, not shipped)")
    p.set_defaults(func=cmd_train_reader)

    p = sub.add_parser("convert-squad", help="turn a SQuAD v1.1/v2.0 file into corpus + gold")
    p.add_argument("squad", type=Path)
    p.add_argument("out", type=Path)
    p.set_defaults(func=cmd_convert_squad)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `rag` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from . import logs

    logs.configure(args.log_format, args.verbose)
    logging.getLogger("rag.ocr").setLevel(logging.INFO)  # one line per OCRed file
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
