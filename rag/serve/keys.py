"""API keys: the keys file (hashes only, mode 0600, replaced atomically under a lock), the
grants (globs over corpus-relative paths) and a store a running server re-reads.

    index/keys.json        {"format": "rag-keys/1", "keys": [{"name", "sha256", "allow",
                            "created"}]}; RAG_KEYS_FILE puts it elsewhere
    index/keys.json.lock   flock'd by `rag keys add|revoke` (two at once both land)

A token is ``rag_`` + 43 URL-safe characters (256 random bits), printed once and stored only
as its sha256: a token that random needs no slow hash, and a stolen file gives no token.
A damaged, unreadable or group/other-readable file raises KeysFileError (fail closed).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..errors import ConfigError, KeysFileError

__all__ = ["ApiKey", "Grant", "KeyRing", "KeyStore", "KeysFileError", "add_key", "check_glob",
           "keys_path", "read_keys", "revoke_key", "token_hash"]

FORMAT = "rag-keys/1"
KEYS_FILE = "keys.json"
TOKEN_PREFIX = "rag_"
TOKEN_BYTES = 32  # 256 bits
# Not ".tmp-...": `rag index` sweeps the index folder's .tmp-* files, and a sweep between
# our write and our rename would lose the new keys file.
PARTIAL_SUFFIX = ".partial"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


# ---------------------------------------------------------------- grants

def check_glob(glob: str) -> str:
    """A grant glob as given, or ConfigError naming what is wrong with it."""
    bad = ("empty" if not glob.strip() else
           "absolute (grants are relative to the corpus folder)" if glob.startswith("/") else
           "a backslash (use /)" if "\\" in glob else
           "a NUL character" if "\x00" in glob else
           "a '..' part (grants cannot leave the corpus)" if ".." in glob.split("/") else
           "a '.' part" if "." in glob.split("/") else
           "an empty part (a trailing or double '/')" if "" in glob.split("/") else None)
    if bad:
        raise ConfigError(f"--allow {glob!r} is {bad}; give a glob over corpus paths such as "
                          "'public/**' (every file below public/) or 'hr/*.md'")
    return glob


def glob_regex(glob: str) -> re.Pattern[str]:
    """The regex of a grant glob: ``*`` and ``?`` stay inside one folder, ``**`` crosses
    folders (``a/**`` is everything below a/, ``**/x.md`` any x.md); all else is literal."""
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return re.compile("".join(out))


@dataclass(frozen=True)
class Grant:
    """What a key may read: corpus paths matching any of its globs."""

    allow: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_re", [glob_regex(g) for g in self.allow])

    def permits(self, path: str) -> bool:
        """True when a corpus-relative path matches one of the globs."""
        return any(r.fullmatch(path) for r in self._re)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- the file

@dataclass(frozen=True)
class ApiKey:
    """One key as the file stores it (never the token)."""

    name: str
    sha256: str
    allow: tuple[str, ...]
    created: str

    @property
    def grant(self) -> Grant:
        """The key's grant."""
        return Grant(self.allow)


@dataclass(frozen=True)
class KeyRing:
    """The keys of one version of the file, by token hash."""

    keys: tuple[ApiKey, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_hash", {k.sha256: k for k in self.keys})

    def lookup(self, token: str) -> ApiKey | None:
        """The key a token belongs to, or None."""
        return self._by_hash.get(token_hash(token))  # type: ignore[attr-defined,no-any-return]

    def named(self, name: str) -> ApiKey | None:
        """The key with this name, or None."""
        return next((k for k in self.keys if k.name == name), None)


def token_hash(token: str) -> str:
    """Hex sha256 of a token (what the file stores)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    """A fresh random token: 256 bits."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def keys_path(index_dir: Path, override: Path | None = None) -> Path:
    """Where the keys file is: RAG_KEYS_FILE (`override`) or keys.json in the index folder."""
    return override if override is not None else index_dir / KEYS_FILE


def _damaged(path: Path, why: str) -> KeysFileError:
    return KeysFileError(
        f"keys file {str(path)!r} is damaged ({why}); restore it from a backup, or move it "
        "away and create the keys again with `rag keys add NAME --allow GLOB`")


def parse_keys(path: Path, data: bytes) -> KeyRing:
    """The keys of a file's bytes, or KeysFileError saying what is wrong."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise _damaged(path, f"not JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _damaged(path, f"format is not {FORMAT!r}")
    raw = doc.get("keys")
    if not isinstance(raw, list):
        raise _damaged(path, "no 'keys' list")
    keys = []
    for i, k in enumerate(raw):
        try:
            key = ApiKey(str(k["name"]), str(k["sha256"]), tuple(str(g) for g in k["allow"]),
                         str(k["created"]))
        except (KeyError, TypeError) as e:
            raise _damaged(path, f"key {i + 1} lacks a field ({e})") from None
        if (not _NAME.match(key.name) or not re.fullmatch(r"[0-9a-f]{64}", key.sha256)
                or not key.allow or not isinstance(k["allow"], list)):
            raise _damaged(path, f"key {i + 1} ({key.name!r}) has a bad name, hash or grant")
        try:
            for g in key.allow:
                check_glob(g)
        except ConfigError:
            raise _damaged(path, f"key {key.name!r} has a bad grant") from None
        keys.append(key)
    if len({k.name for k in keys}) != len(keys) or len({k.sha256 for k in keys}) != len(keys):
        raise _damaged(path, "a name or hash appears twice")
    return KeyRing(tuple(keys))


def check_mode(path: Path, st: os.stat_result) -> None:
    """KeysFileError unless the file is a regular file that only its owner can read."""
    if not stat.S_ISREG(st.st_mode):
        raise KeysFileError(f"keys file {str(path)!r} is not a regular file; move it away and "
                            "create the keys again with `rag keys add`")
    if st.st_mode & 0o077:
        raise KeysFileError(
            f"keys file {str(path)!r} has mode {stat.S_IMODE(st.st_mode):04o}, readable by "
            f"others; run `chmod 600 {path}` (and consider revoking its keys)")


def read_keys(path: Path) -> tuple[KeyRing, os.stat_result] | None:
    """The keys file's keys and its stat (None when there is no file); KeysFileError when
    it exists but is damaged, unreadable or readable by others."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise KeysFileError(f"keys file {str(path)!r} is a symbolic link; put the file "
                                "itself there (RAG_KEYS_FILE may point anywhere)") from None
        raise KeysFileError(f"keys file {str(path)!r} cannot be read ({e.strerror}); "
                            "check its owner and mode (600, owned by the server's user)"
                            ) from None
    try:
        st = os.fstat(fd)
        check_mode(path, st)
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read()
    except OSError as e:
        raise KeysFileError(f"keys file {str(path)!r} cannot be read ({e.strerror})") from None
    finally:
        os.close(fd)
    return parse_keys(path, data), st


@contextlib.contextmanager
def keys_lock(path: Path, timeout_s: float = 30.0) -> Iterator[None]:
    """Exclusive lock for changing the keys file (a separate file: the keys file itself is
    replaced, so a lock on it would be a lock on a file no longer there)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ConfigError(f"another `rag keys` holds {path}.lock for over "
                                      f"{timeout_s:.0f} s; wait for it, or remove a stale "
                                      "lock file when no `rag keys` runs") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def write_keys(path: Path, ring: KeyRing) -> None:
    """Replace the keys file atomically: a 0600 temp file beside it, fsynced, renamed."""
    doc = {"format": FORMAT, "keys": [
        {"name": k.name, "sha256": k.sha256, "allow": list(k.allow), "created": k.created}
        for k in ring.keys]}
    data = (json.dumps(doc, indent=1) + "\n").encode()
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def add_key(path: Path, name: str, allow: Sequence[str]) -> str:
    """Add a key; returns its token (the only time it exists outside the caller)."""
    if not _NAME.match(name):
        raise ConfigError(f"key name {name!r} is not 1-64 letters, digits, '_', '.' or '-' "
                          "(starting with a letter or digit); choose another")
    if not allow:
        raise ConfigError("a key needs at least one --allow GLOB, e.g. --allow 'public/**'")
    globs = tuple(check_glob(g) for g in allow)
    token = new_token()
    with keys_lock(path):
        got = read_keys(path)
        ring = got[0] if got else KeyRing(())
        if ring.named(name):
            raise ConfigError(f"a key named {name!r} exists; revoke it first "
                              f"(`rag keys revoke {name}`) or choose another name")
        write_keys(path, KeyRing((*ring.keys, ApiKey(name, token_hash(token), globs, _now()))))
    return token


def revoke_key(path: Path, name: str) -> None:
    """Remove a key (the file stays, possibly empty: a server keeps checking keys)."""
    with keys_lock(path):
        got = read_keys(path)
        if got is None or got[0].named(name) is None:
            known = ", ".join(k.name for k in got[0].keys) if got else ""
            raise ConfigError(f"no key named {name!r} in {path}; "
                              + (f"the keys are: {known}" if known else "there are no keys"))
        write_keys(path, KeyRing(tuple(k for k in got[0].keys if k.name != name)))


# ---------------------------------------------------------------- a running server's view

class KeyStore:
    """The keys a running server checks: re-read within `interval_s` of a change (new and
    revoked keys apply without a restart). Once a keys file has been seen (or `required`),
    keys are required until the process ends: a missing or damaged file then raises
    KeysFileError (fail closed), never opens the service."""

    def __init__(self, path: Path, interval_s: float = 1.0, required: bool = False) -> None:
        self.path = path
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._ring: KeyRing | None = None
        self._sig: tuple[int, ...] | None = None
        self._error: KeysFileError | None = None
        self._checked = -1e9
        self.required = required
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        """Re-read the file if it changed since the last look (at most every interval_s)."""
        now = time.monotonic()
        if not force and now - self._checked < self.interval_s:
            return
        with self._lock:
            if not force and now - self._checked < self.interval_s:
                return
            self._checked = now
            try:
                st = os.stat(self.path, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            except OSError as e:
                self._fail(KeysFileError(f"keys file {str(self.path)!r} cannot be read "
                                         f"({e.strerror})"))
                return
            sig = None if st is None else (st.st_ino, st.st_mtime_ns, st.st_size, st.st_mode,
                                           st.st_ctime_ns)
            if sig == self._sig and self._error is None:
                return
            self._sig = sig
            try:
                got = read_keys(self.path)
            except KeysFileError as e:
                self._fail(e)
                return
            if got is None:
                self._ring = None
                self._error = (KeysFileError(
                    f"keys file {str(self.path)!r} has gone while keys are required; restore "
                    "it, or create keys again with `rag keys add NAME --allow GLOB`")
                    if self.required else None)
                return
            self.required = True
            self._ring, self._error = got[0], None

    def _fail(self, e: KeysFileError) -> None:
        self.required = True
        self._ring, self._error = None, e

    def ring(self) -> KeyRing | None:
        """The current keys (None: no keys file and none required, the service is open);
        KeysFileError when keys are required but cannot be read."""
        self.refresh()
        if self._error is not None:
            raise self._error
        return self._ring
