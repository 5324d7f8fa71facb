"""Start a real `rag serve` process on a free loopback port, wait until it is ready, stop it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Server:
    """A running `rag serve` process and where to reach it."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{HOST}:{self.port}"

    def log_tail(self, n: int = 4000) -> str:
        """The end of the server's combined stdout/stderr."""
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def get_json(url: str, timeout_s: float = 5.0) -> tuple[int, Any]:
    """(status, parsed JSON body) of a GET; HTTP errors are returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            return e.code, json.loads(body or b"null")
        except ValueError:
            return e.code, {"raw": body.decode(errors="replace")}


def wait_ready(server: Server, timeout_s: float) -> Any:
    """Poll /readyz until it returns 200; fail early if the process dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"rag serve exited with {server.proc.returncode} before it was "
                               f"ready:\n{server.log_tail()}")
        try:
            status, body = get_json(f"{server.url}/readyz", timeout_s=2.0)
            if status == 200:
                return body
            last = f"{status} {body}"
        except (OSError, ValueError) as e:  # not listening yet
            last = repr(e)
        time.sleep(0.2)
    raise TimeoutError(f"rag serve not ready after {timeout_s:.0f} s (last: {last}):\n"
                       f"{server.log_tail()}")


def wait_alive(server: Server, timeout_s: float) -> None:
    """Poll /healthz until it answers 200."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"rag serve exited early:\n{server.log_tail()}")
        with contextlib.suppress(OSError, ValueError):
            if get_json(f"{server.url}/healthz", timeout_s=2.0)[0] == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"rag serve not alive after {timeout_s} s:\n{server.log_tail()}")


def stop(server: Server, grace_s: float = 10.0) -> None:
    """SIGTERM the process (and its group), then SIGKILL if it does not exit in time."""
    proc = server.proc
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace_s)


def wait_listening(server: Server, timeout_s: float) -> None:
    """Until the port of `rag mcp --http` accepts connections; fail early if it dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"rag mcp --http exited with {server.proc.returncode}:\n"
                               f"{server.log_tail()}")
        try:
            socket.create_connection((HOST, server.port), timeout=1.0).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"rag mcp --http not listening after {timeout_s:.0f} s:\n"
                       f"{server.log_tail()}")


@contextlib.contextmanager
def process_on_free_port(command: Callable[[int], list[str]], log: Path,
                         wait: Callable[[Server, float], None], timeout_s: float,
                         env: dict[str, str] | None = None, attempts: int = 3
                         ) -> Iterator[Server]:
    """`command(port)` started on a free 127.0.0.1 port, yielded once `wait` returns; always
    stopped. The port is picked just before start; if another process takes it in between,
    the start is retried on a new port (at most `attempts` times)."""
    server: Server | None = None
    try:
        for attempt in range(attempts):
            port = free_port()
            with open(log, "ab") as out:
                proc = subprocess.Popen(
                    command(port), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
                    start_new_session=True)  # its own group, so stop() reaches any children
            server = Server(proc, port, log)
            try:
                wait(server, timeout_s)
                break
            except RuntimeError:
                if attempt + 1 < attempts and "address already in use" in server.log_tail():
                    continue
                raise
        assert server is not None
        yield server
    finally:
        if server is not None:
            stop(server)


@contextlib.contextmanager
def running_server(corpus: Path, index: Path, log: Path, model: str | None = None,
                   ready_timeout_s: float = 60.0, env: dict[str, str] | None = None,
                   attempts: int = 3, args: tuple[str, ...] = (), ready: bool = True
                   ) -> Iterator[Server]:
    """`rag serve` on a free 127.0.0.1 port, ready (200 on /readyz) when yielded; always stopped.

    `args` are extra CLI arguments; with ready=False only /healthz is awaited (for an index
    that cannot load)."""
    def command(port: int) -> list[str]:
        return [sys.executable, "-m", "rag.serve.cli", "serve", "--host", HOST, "--port", str(port),
                "--corpus", str(corpus), "--index", str(index),
                *(["--model", model] if model else []), *args]

    with process_on_free_port(command, log, wait_ready if ready else wait_alive,
                              ready_timeout_s, env, attempts) as server:
        yield server
