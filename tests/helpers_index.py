"""Run `rag` in a subprocess with one write step made to fail the way a full disk does.

    python tests/helpers_index.py MODE [rag arguments...]

MODE is one of:
  enospc-dense   DenseIndex.save raises OSError(ENOSPC) (what a full disk gives Python I/O)
  sqlite-full    the chunk database write raises sqlite3.OperationalError('database or disk
                 is full'), which is what sqlite3 raises on a real full disk
  short-write    numpy.save raises OSError('5221 requested and 2016 written'), which is what
                 numpy raises on a real full disk (ndarray.tofile after a short write)
  stop-at-io:N   from the first write below --index/generations or --index/segments on (the model is loaded,
                 the corpus embedded), count every file event in the index folder (open, rename, replace, remove, mkdir, rmtree, sqlite connect: seen
                 through Python's audit hooks); at the N-th the process stops itself with
                 SIGSTOP so the test can SIGKILL it at exactly that point. N=0 only counts
                 and prints "io-events TOTAL" to stderr at exit.

Not a test module: tests start it as a subprocess so the CLI's own error handling runs.
"""

from __future__ import annotations

import atexit
import errno
import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any


def _enospc(*_args: Any, **_kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def _sqlite_full(*_args: Any, **_kwargs: Any) -> None:
    raise sqlite3.OperationalError("database or disk is full")


WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
IO_EVENTS = {"open", "os.rename", "os.replace", "os.remove", "os.rmdir", "os.mkdir",
             "shutil.rmtree", "sqlite3.connect"}


def stop_at_io(n: int, index_dir: str) -> None:
    """Stop (SIGSTOP) at the n-th file event inside index_dir of the write phase."""
    root = os.path.realpath(index_dir) + os.sep
    gens = (root + "generations", root + "segments")
    state = {"writing": False, "count": 0, "inside": False}

    def is_write(event: str, args: tuple[Any, ...]) -> bool:
        if event != "open":
            return event != "sqlite3.connect"
        mode, flags = args[1], args[2]
        return (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
            (mode is None and isinstance(flags, int) and bool(flags & WRITE_FLAGS))

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event not in IO_EVENTS or state["inside"] or not args:
            return
        path = args[0]
        if isinstance(path, int) or path is None:
            return
        try:
            path = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return
        if not path.startswith(root):
            return
        state["writing"] = state["writing"] or (path.startswith(gens) and is_write(event, args))
        if not state["writing"]:
            return  # the lock, reading the previous generation: not yet the write phase
        state["count"] += 1
        if state["count"] == n:
            state["inside"] = True
            os.kill(os.getpid(), signal.SIGSTOP)
            state["inside"] = False

    if n == 0:
        atexit.register(lambda: print(f"io-events {state['count']}", file=sys.stderr))
    sys.addaudithook(hook)


def patch(mode: str) -> None:
    """Make one write step fail as a full disk would, or stop at one file event."""
    if mode.startswith("stop-at-io:"):
        args = sys.argv[2:]
        stop_at_io(int(mode.split(":", 1)[1]), args[args.index("--index") + 1])
    elif mode == "enospc-dense":
        from rag.indexing.dense import DenseIndex

        DenseIndex.save = _enospc  # type: ignore[method-assign, assignment]
    elif mode == "sqlite-full":
        import rag.indexing.build

        rag.indexing.build.write_chunks_db = _sqlite_full  # type: ignore[assignment]
    elif mode == "short-write":
        import numpy

        real_save = numpy.save

        def short_save(file: Any, arr: Any, *args: Any, **kwargs: Any) -> None:
            if "generations" in Path(str(file)).parts:
                Path(str(file)).write_bytes(b"\x93NUMPY")  # the partial file numpy leaves
                raise OSError("5221 requested and 2016 written")
            real_save(file, arr, *args, **kwargs)

        numpy.save = short_save
    elif mode != "none":
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    patch(sys.argv[1])
    from rag.serve.cli import main

    sys.exit(main(sys.argv[2:]))
