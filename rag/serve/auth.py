"""The request side of API keys: who is asking (a bearer token or a signed URL), what they may
read (a grant's row mask, cached per key and generation), how often (a per-key token bucket),
and an audit log of what was returned. One ASGI middleware applies it to HTTP and MCP alike.

Every route needs a key except the ones a face declares public (health, the page's static
shell, the API docs); a server that has seen a keys file keeps checking keys until it stops.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import numpy as np

from ..lru import LRU
from .keys import ApiKey, Grant, KeysFileError, KeyStore

log = logging.getLogger(__name__)

GRANT_MASKS = 64  # cached (key, generation) row masks: 1 byte a chunk each
UNAUTHORIZED = {"error": "a valid API key is required",
                "detail": "send the header Authorization: Bearer TOKEN (a token from "
                          "`rag keys add`)"}
UNAVAILABLE = {"error": "the service cannot check API keys right now; try again later",
               "detail": None}


class Unauthorized(Exception):
    """No token, or one that is unknown or revoked (all look the same to the caller)."""


# ---------------------------------------------------------------- who may read what

def corpus_target(root_real: str, corpus_dir: Path, path: str) -> str | None:
    """The corpus-relative path a corpus path really names (symlinks followed), or None when
    it leads outside the corpus folder."""
    real = os.path.realpath(os.path.join(corpus_dir, path))
    if real == root_real or not real.startswith(root_real + os.sep):
        return None
    return real[len(root_real) + 1:].replace(os.sep, "/")


def link_targets(corpus_dir: Path, paths: Iterable[str]) -> dict[str, str | None]:
    """For the paths that are (or sit below) a symlink: their real corpus-relative target
    (None: outside the corpus). One realpath per folder, one lstat per file."""
    root = os.path.realpath(corpus_dir)
    real_dirs: dict[str, str] = {}
    out: dict[str, str | None] = {}
    for p in paths:
        folder, _, _name = p.rpartition("/")
        rd = real_dirs.get(folder)
        if rd is None:
            rd = real_dirs[folder] = os.path.realpath(os.path.join(corpus_dir, folder))
        expect = root if not folder else os.path.join(root, folder)
        if rd != expect or os.path.islink(os.path.join(corpus_dir, p)):
            out[p] = corpus_target(root, corpus_dir, p)
    return out


def permitted_files(grant: Grant, paths: list[str], targets: dict[str, str | None]
                    ) -> np.ndarray:
    """Which of `paths` a grant permits: the path itself and, for a link, its target."""
    def ok(p: str) -> bool:
        if not grant.permits(p):
            return False
        if p not in targets:
            return True
        t = targets[p]
        return t is not None and grant.permits(t)
    return np.fromiter((ok(p) for p in paths), dtype=bool, count=len(paths))


@dataclass(frozen=True)
class Access:
    """A caller holding a key: its name, its grant, and the guard that caches its masks.

    It is the search's scope: ``mask(gen)`` narrows retrieval exactly as a ``files``
    filter naming the permitted files would."""

    key: ApiKey
    guard: Guard = field(repr=False, compare=False)

    @property
    def name(self) -> str:
        """The key's name."""
        return self.key.name

    def file_mask(self, gen: Any) -> np.ndarray:
        """One bool per file of the generation (gen.files order): may this key read it."""
        return self.guard.masks(self.key, gen)[0]

    def mask(self, gen: Any) -> np.ndarray:
        """One bool per chunk row of the generation."""
        return self.guard.masks(self.key, gen)[1]

    def chunks(self, gen: Any) -> int:
        """How many chunks the key may read in the generation."""
        return self.guard.masks(self.key, gen)[2]

    def permits(self, corpus_dir: Path, path: str) -> bool:
        """May this key read this corpus path now (its link target judged too)."""
        grant = self.key.grant
        if not grant.permits(path):
            return False
        t = corpus_target(os.path.realpath(corpus_dir), corpus_dir, path)
        return t is not None and grant.permits(t)


class PermittedPaths:
    """The paths of a generation a key may read, as a container (what resolve_document
    checks a requested path against: a forbidden file is then exactly a missing one).
    ``denied`` is set when an indexed path was refused (for the audit log)."""

    def __init__(self, known: Any, access: Access | None, corpus_dir: Path) -> None:
        self.known, self.access, self.corpus_dir = known, access, corpus_dir
        self.denied = False

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, str) or path not in self.known:
            return False
        if self.access is None or self.access.permits(self.corpus_dir, path):
            return True
        self.denied = True
        return False


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost': addresses only this machine reaches."""
    import ipaddress

    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def open_service_check(host: str, keys_file: Path, no_auth: bool) -> str | None:
    """Why a service on `host` must not start (None: it may): off loopback it needs keys
    or an explicit --no-auth. A warning is logged for --no-auth off loopback."""
    if is_loopback(host):
        return None
    if no_auth:
        log.warning("serving %s with --no-auth: anyone who reaches this port reads every "
                    "document; use it only behind a proxy that authenticates", host)
        return None
    if keys_file.exists():
        return None
    return (f"refusing to serve {host} without API keys: anyone who reaches it would read "
            f"every document; create a key with `rag keys add NAME --allow 'GLOB'` (keys file "
            f"{keys_file}), or pass --no-auth if a proxy in front authenticates")


def guard_for(settings: Any, no_auth: bool = False) -> Guard:
    """The guard a service built from these settings runs with (--no-auth: none)."""
    from .keys import keys_path

    path = keys_path(settings.index_dir, settings.keys_file)
    store = None if no_auth else KeyStore(path, settings.keys_interval_s)
    audit = AuditLog(settings.audit_log or settings.index_dir / "audit.jsonl")
    return Guard(store, settings.corpus_dir, audit, settings.key_rate_per_s,
                 settings.key_rate_burst, settings.link_ttl_s, settings.audit_questions)


# ---------------------------------------------------------------- rate limit and audit

class RateLimiter:
    """A token bucket per key: `rate` requests a second, bursts of `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, max(1, burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, name: str) -> float:
        """0 when the request may go on, else the seconds until it may."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(name, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[name] = (tokens - 1.0, now)
                return 0.0
            self._buckets[name] = (tokens, now)
            return (1.0 - tokens) / self.rate


class AuditLog:
    """Append-only JSON lines: time, key, route, status, files returned, denials."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        """Append one line (a failure to write is logged, never raised to the caller)."""
        if self.path is None:
            return
        line = json.dumps({"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                           **record}, ensure_ascii=False) + "\n"
        try:
            with self._lock:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line.encode())
                finally:
                    os.close(fd)
        except OSError as e:
            log.error("cannot write the audit log %s: %s", self.path, e.strerror)


def last_used(audit: Path, max_bytes: int = 64 << 20) -> dict[str, str]:
    """Each key's last successful request, from the audit log (its last `max_bytes`)."""
    out: dict[str, str] = {}
    try:
        with open(audit, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - max_bytes))
            for raw in f:
                try:
                    r = json.loads(raw)
                except ValueError:
                    continue  # a torn first line after the seek, or a damaged one
                if isinstance(r, dict) and r.get("key") and int(r.get("status", 500)) < 400:
                    out[str(r["key"])] = str(r.get("time"))
    except FileNotFoundError:
        pass
    return out


# ---------------------------------------------------------------- the guard

# A document path inside the two routes a browser opens without headers.
_SIGNABLE = re.compile(r"^/documents/(.+)/(?:original|pages/[^/]+\.png)$")


class Guard:
    """A running service's key checks: authenticate, sign links, limit, audit, and the
    per key+generation row masks of grants."""

    def __init__(self, store: KeyStore | None, corpus_dir: Path, audit: AuditLog,
                 rate: float = 20.0, burst: int = 40, link_ttl_s: float = 300.0,
                 audit_questions: bool = False) -> None:
        self.store = store  # None: --no-auth
        self.corpus_dir = corpus_dir
        self.audit = audit
        self.audit_questions = audit_questions
        self.limiter = RateLimiter(rate, burst)
        self.link_ttl_s = link_ttl_s
        self._secret = secrets.token_bytes(32)  # signed links die with the process
        self._masks: LRU[tuple[str, str], tuple[np.ndarray, np.ndarray, int]] = LRU(GRANT_MASKS)
        self._targets: LRU[str, dict[str, str | None]] = LRU(4)

    @property
    def required(self) -> bool:
        """True once keys are checked (a keys file was seen); never false again."""
        if self.store is None:
            return False
        self.store.refresh()
        return self.store.required

    def authenticate(self, authorization: str | None) -> Access | None:
        """The caller of a request (None: keys are not required); Unauthorized for a
        missing, malformed, unknown or revoked token; KeysFileError when the keys file
        cannot be read (fail closed)."""
        if self.store is None:
            return None
        ring = self.store.ring()
        if ring is None:
            return None
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized()
        key = ring.lookup(token.strip())
        if key is None:
            raise Unauthorized()
        return Access(key, self)

    def masks(self, key: ApiKey, gen: Any) -> tuple[np.ndarray, np.ndarray, int]:
        """(files permitted, rows permitted, how many rows) of a key in a generation."""
        ck = (key.sha256 + "|" + "\x00".join(key.allow), gen.name)
        got = self._masks.get(ck)
        if got is None:
            targets = self._targets.get(gen.name)
            paths = [f.path for f in gen.files]
            if targets is None:
                targets = link_targets(self.corpus_dir, paths)
                self._targets.put(gen.name, targets)
            files = permitted_files(key.grant, paths, targets)
            rows = gen.rows_of_files(files)
            got = (files, rows, int(np.count_nonzero(rows)))
            self._masks.put(ck, got)
        return got

    # -- signed links (what a browser opens without the header) ---------------

    def _mac(self, name: str, exp: int, path: str) -> str:
        msg = f"{name}\n{exp}\n{path}".encode("utf-8", "surrogatepass")
        return base64.urlsafe_b64encode(hmac.new(self._secret, msg, hashlib.sha256).digest()
                                        ).decode().rstrip("=")

    def sign(self, access: Access | None, path: str) -> str:
        """The query string that lets a browser open a document's original or page images
        for link_ttl_s seconds as this key ('' when keys are not required)."""
        if access is None:
            return ""
        exp = int(time.time() + self.link_ttl_s)
        return (f"key={quote(access.name, safe='')}&exp={exp}"
                f"&sig={self._mac(access.name, exp, path)}")

    def from_signed(self, url_path: str, query: bytes) -> Access:
        """The caller of a signed link; Unauthorized when it is not one, forged, expired or
        its key is gone."""
        m = _SIGNABLE.match(url_path)
        q = parse_qs(query.decode("latin-1"))
        if m is None or not {"key", "exp", "sig"} <= q.keys():
            raise Unauthorized()
        name, sig = q["key"][0], q["sig"][0]
        try:
            exp = int(q["exp"][0])
        except ValueError:
            raise Unauthorized() from None
        if exp < time.time() or not hmac.compare_digest(sig, self._mac(name, exp, m.group(1))):
            raise Unauthorized()
        ring = self.store.ring() if self.store is not None else None
        key = ring.named(name) if ring is not None else None
        if key is None:  # revoked since the link was signed
            raise Unauthorized()
        return Access(key, self)


# ---------------------------------------------------------------- the middleware

def _json(status: int, body: dict[str, Any], headers: Iterable[tuple[bytes, bytes]] = ()
          ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    data = json.dumps(body).encode()
    return status, [(b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()), *headers], data


class KeyCheck:
    """ASGI middleware: every path but the public ones needs a key (or a signed link);
    the caller lands in ``scope["state"]["access"]``; each keyed request is audited with
    the files the route put in ``scope["state"]["audit"]``."""

    def __init__(self, app: Any, guard: Guard, public: Callable[[str], bool]) -> None:
        self.app, self.guard, self.public = app, guard, public

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.public(scope["path"]):
            return await self.app(scope, receive, send)
        g = self.guard
        headers = dict(scope.get("headers") or [])
        route = f"{scope.get('method', '')} {scope['path']}"
        try:
            auth = headers.get(b"authorization")
            if auth is None and scope.get("method") in ("GET", "HEAD") and scope.get(
                    "query_string") and g.required:
                access: Access | None = g.from_signed(scope["path"], scope["query_string"])
            else:
                access = g.authenticate(auth.decode("latin-1") if auth is not None else None)
        except Unauthorized:
            g.audit.write({"key": None, "route": route, "status": 401, "denied": "no valid key"})
            return await self._send(send, *_json(401, UNAUTHORIZED,
                                                 [(b"www-authenticate", b'Bearer realm="rag"')]))
        except KeysFileError as e:
            log.error("refusing requests: %s", e)  # the fix, for the operator
            return await self._send(send, *_json(503, UNAVAILABLE, [(b"retry-after", b"5")]))
        if access is None:
            return await self.app(scope, receive, send)
        wait = g.limiter.take(access.name)
        if wait > 0:
            g.audit.write({"key": access.name, "route": route, "status": 429,
                           "denied": "rate limit"})
            retry = str(max(1, math.ceil(wait))).encode()
            return await self._send(send, *_json(
                429, {"error": "too many requests for this key; retry after the time in "
                      "Retry-After", "detail": None}, [(b"retry-after", retry)]))
        state = scope.setdefault("state", {})
        state["access"] = access
        status = 500

        async def sending(msg: Any) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
            await send(msg)

        try:
            await self.app(scope, receive, sending)
        finally:
            rec: dict[str, Any] = {"key": access.name, "route": route, "status": status}
            rec.update({k: v for k, v in (state.get("audit") or {}).items()
                        if not k.startswith("_")})
            if not g.audit_questions:
                rec.pop("question", None)
            g.audit.write(rec)

    @staticmethod
    async def _send(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes
                    ) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
