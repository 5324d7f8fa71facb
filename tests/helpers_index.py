"""Run `rag` in a subprocess with one write step made to fail the way a full disk does.

    python tests/helpers_index.py MODE [rag arguments...]

MODE is one of:
  enospc-dense   DenseIndex.save raises OSError(ENOSPC) (what a full disk gives Python I/O)
  sqlite-full    the chunk database write raises sqlite3.OperationalError('database or disk
                 is full'), which is what sqlite3 raises on a real full disk
  short-write    numpy.save raises OSError('5221 requested and 2016 written'), which is what
                 numpy raises on a real full disk (ndarray.tofile after a short write)

Not a test module: tests start it as a subprocess so the CLI's own error handling runs.
"""

from __future__ import annotations

import errno
import sqlite3
import sys
from pathlib import Path
from typing import Any


def _enospc(*_args: Any, **_kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def _sqlite_full(*_args: Any, **_kwargs: Any) -> None:
    raise sqlite3.OperationalError("database or disk is full")


def patch(mode: str) -> None:
    """Make one write step fail as a full disk would."""
    if mode == "enospc-dense":
        from rag.dense import DenseIndex

        DenseIndex.save = _enospc  # type: ignore[method-assign, assignment]
    elif mode == "sqlite-full":
        import rag.indexing

        rag.indexing.write_chunks_db = _sqlite_full  # type: ignore[assignment]
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
    from rag.cli import main

    sys.exit(main(sys.argv[2:]))
