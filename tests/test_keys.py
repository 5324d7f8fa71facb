"""The keys file: hashes only, mode 0600, atomic replace under a lock, fail closed when damaged;
grant globs; a running server's view of the file (new and revoked keys, never open again)."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from rag.errors import ConfigError
from rag.indexing.store import TMP_PREFIX, sweep_temp_folders
from rag.serve import keys as K
from rag.serve.keys import (
    Grant,
    KeysFileError,
    KeyStore,
    add_key,
    check_glob,
    read_keys,
    revoke_key,
    token_hash,
)


def test_add_stores_only_a_hash_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "index" / "keys.json"
    token = add_key(path, "hr", ["hr/**", "public/*.md"])
    assert token.startswith("rag_") and len(token) >= 4 + 43  # 256 bits, URL-safe base64
    raw = path.read_text()
    assert token not in raw and token[4:] not in raw
    assert token_hash(token) in raw
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ring, _ = read_keys(path)  # type: ignore[misc]
    key = ring.lookup(token)
    assert key is not None and key.name == "hr" and key.allow == ("hr/**", "public/*.md")
    assert ring.lookup(token + "x") is None and ring.lookup("") is None
    assert [p.name for p in path.parent.iterdir()] and not list(path.parent.glob("*.partial"))
    assert len({add_key(path, f"k{i}", ["a/**"]) for i in range(5)}) == 5  # all distinct


def test_names_grants_and_revocation(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    add_key(path, "a", ["x/**"])
    with pytest.raises(ConfigError, match="exists; revoke it first"):
        add_key(path, "a", ["y/**"])
    for bad in ("", "/etc/**", "a/../b", "a\\b", "./a", "a//b", "a/"):
        with pytest.raises(ConfigError, match="--allow"):
            add_key(path, "b", [bad])
    with pytest.raises(ConfigError, match="key name"):
        add_key(path, "no spaces", ["x/**"])
    with pytest.raises(ConfigError, match="at least one --allow"):
        add_key(path, "b", [])
    revoke_key(path, "a")
    ring, _ = read_keys(path)  # type: ignore[misc]
    assert ring.keys == ()  # the file stays, empty: a server keeps checking keys
    with pytest.raises(ConfigError, match="no key named 'a'"):
        revoke_key(path, "a")


@pytest.mark.parametrize(("glob", "yes", "no"), [
    ("public/**", ["public/a.txt", "public/x/y/z.md"], ["public", "publicx/a.txt", "a/public/b"]),
    ("hr/*.md", ["hr/a.md", "hr/.md"], ["hr/x/a.md", "hr/a.txt", "HR/a.md"]),
    ("**/notes.md", ["notes.md", "a/notes.md", "a/b/notes.md"], ["a/xnotes.md"]),
    ("a/*/c.txt", ["a/b/c.txt"], ["a/c.txt", "a/b/b/c.txt"]),
    ("r?port.txt", ["report.txt"], ["r/port.txt", "rport.txt"]),
    ("[ab].txt", ["[ab].txt"], ["a.txt"]),  # only * ** ? are special
])
def test_grant_globs(glob: str, yes: list[str], no: list[str]) -> None:
    g = Grant((check_glob(glob),))
    assert [p for p in yes if not g.permits(p)] == []
    assert [p for p in no if g.permits(p)] == []


def test_damaged_files_fail_closed_naming_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    add_key(path, "a", ["x/**"])
    good = path.read_bytes()
    cases = {"truncated": good[: len(good) // 2], "empty": b"", "not utf-8": b"\xff\xfe{",
             "wrong format": json.dumps({"format": "other", "keys": []}).encode(),
             "bad hash": good.replace(b'"sha256": "', b'"sha256": "zz'),
             "no grant": json.dumps({"format": K.FORMAT, "keys": [{
                 "name": "a", "sha256": "0" * 64, "allow": [], "created": "x"}]}).encode(),
             "bad grant": json.dumps({"format": K.FORMAT, "keys": [{
                 "name": "a", "sha256": "0" * 64, "allow": ["../**"], "created": "x"}]}).encode()}
    for why, data in cases.items():
        path.write_bytes(data)
        with pytest.raises(KeysFileError, match="damaged.*rag keys add") as e:
            read_keys(path)
        assert str(path) in str(e.value), why
        with pytest.raises(KeysFileError):  # a damaged file is never overwritten by an add
            add_key(path, "b", ["y/**"])
        assert path.read_bytes() == data, why


def test_wrong_mode_symlink_and_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    add_key(path, "a", ["x/**"])
    path.chmod(0o644)
    with pytest.raises(KeysFileError, match=r"mode 0644.*chmod 600"):
        read_keys(path)
    path.chmod(0o600)
    link = tmp_path / "link.json"
    link.symlink_to(path)
    with pytest.raises(KeysFileError, match="symbolic link"):
        read_keys(link)
    if os.geteuid() != 0:  # root reads anything
        path.chmod(0o000)
        with pytest.raises(KeysFileError, match="cannot be read"):
            read_keys(path)


def test_concurrent_adds_all_land(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sixteen adds at once (each its own lock file descriptor, as separate processes have),
    each pausing between its read and its write: the lock serialises read-modify-write, so
    none is lost. (The CLI test runs two real `rag keys add` processes at once.)"""
    path = tmp_path / "keys.json"
    real_read = K.read_keys

    def slow_read(p: Path):  # type: ignore[no-untyped-def]
        got = real_read(p)
        threading.Event().wait(0.02)
        return got

    monkeypatch.setattr(K, "read_keys", slow_read)
    start = threading.Barrier(16)
    tokens: dict[str, str] = {}

    def one(i: int) -> None:
        start.wait()
        tokens[f"k{i}"] = add_key(path, f"k{i}", [f"d{i}/**"])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    ring, _ = read_keys(path)  # type: ignore[misc]
    assert sorted(k.name for k in ring.keys) == sorted(tokens)
    assert all(ring.lookup(t).name == n for n, t in tokens.items())  # type: ignore[union-attr]


def test_an_index_sweep_between_write_and_rename_loses_nothing(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    """`rag index` deletes the index folder's temp files; the keys file's temp file is not
    one of them (a sweep run at the worst moment, just before the rename)."""
    index = tmp_path / "index"
    path = index / "keys.json"
    real_replace = os.replace

    def replace_after_sweep(src: os.PathLike[str], dst: os.PathLike[str]) -> None:
        sweep_temp_folders(index)
        real_replace(src, dst)

    monkeypatch.setattr(K.os, "replace", replace_after_sweep)
    token = add_key(path, "a", ["x/**"])
    ring, _ = read_keys(path)  # type: ignore[misc]
    assert ring.lookup(token) is not None
    assert not any(p.name.startswith(TMP_PREFIX) for p in index.iterdir())


def test_store_follows_changes_and_never_turns_open(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    store = KeyStore(path, interval_s=0.0)
    assert store.ring() is None and not store.required  # no file: open
    t1 = add_key(path, "a", ["x/**"])
    ring = store.ring()
    assert ring is not None and ring.lookup(t1) is not None and store.required
    t2 = add_key(path, "b", ["y/**"])
    assert store.ring().lookup(t2) is not None  # type: ignore[union-attr]
    revoke_key(path, "a")
    assert store.ring().lookup(t1) is None  # type: ignore[union-attr]
    revoke_key(path, "b")
    assert store.ring() is not None and store.ring().keys == ()  # type: ignore[union-attr]
    path.write_bytes(b"{garbage")
    with pytest.raises(KeysFileError, match="damaged"):
        store.ring()
    path.unlink()
    with pytest.raises(KeysFileError, match="has gone"):
        store.ring()
    t3 = add_key(path, "c", ["z/**"])
    assert store.ring().lookup(t3) is not None  # type: ignore[union-attr]


def test_store_rereads_within_its_interval(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    add_key(path, "a", ["x/**"])
    store = KeyStore(path, interval_s=0.2)
    token = add_key(path, "b", ["y/**"])
    deadline = 50
    while store.ring().lookup(token) is None and deadline:  # type: ignore[union-attr]
        threading.Event().wait(0.05)
        deadline -= 1
    assert deadline, "the new key never became visible"


# ---------------------------------------------------------------- a running app (in process)

@pytest.fixture
def keyed_app(tmp_path: Path):  # type: ignore[no-untyped-def]
    """The HTTP app over a small fake-embedder index with one key; (client, settings, token)."""
    from fastapi.testclient import TestClient

    from rag.indexing.build import build_index
    from rag.indexing.store import index_lock
    from rag.serve.http import create_app

    from .conftest import fake_settings

    for path, text in {"public/a.txt": "The harbour crane contract was signed in March.",
                       "secret/b.txt": "The merger with Northwind closes in June."}.items():
        f = tmp_path / "corpus" / path
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    s = fake_settings(tmp_path, keys_interval_s=0.05)
    with index_lock(s.index_dir):
        build_index(s)
    token = add_key(s.index_dir / "keys.json", "pub", ["public/**"])
    with TestClient(create_app(s, watch=False)) as c:
        yield c, s, token


def test_damaged_keys_file_gives_503_and_never_opens(keyed_app, caplog: pytest.LogCaptureFixture
                                                     ) -> None:  # type: ignore[no-untyped-def]
    c, s, token = keyed_app
    h = {"Authorization": f"Bearer {token}"}
    assert c.get("/documents", headers=h).json()[0]["path"] == "public/a.txt"
    assert c.get("/documents").status_code == 401
    path = s.index_dir / "keys.json"
    for damage in (lambda: path.write_bytes(path.read_bytes()[:20]),  # truncated
                   lambda: path.chmod(0o644),  # readable by others
                   path.unlink):  # gone
        good = path.read_bytes()
        damage()
        time.sleep(0.1)
        with caplog.at_level("ERROR"):
            for headers in (h, {}):
                r = c.get("/documents", headers=headers)
                assert r.status_code == 503 and r.headers["retry-after"]
                assert r.json()["error"] == "the service cannot check API keys right now; try again later"
                assert str(s.index_dir) not in r.text
        assert any("keys file" in m and ("rag keys add" in m or "chmod 600" in m)
                   for m in caplog.messages), caplog.messages
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, good)
        os.close(fd)
        time.sleep(0.1)
        assert c.get("/documents", headers=h).status_code == 200
    for name in ("pub",):  # revoking every key: refused, not open
        revoke_key(path, name)
    time.sleep(0.1)
    assert c.get("/documents", headers=h).status_code == 401
    assert c.get("/documents").status_code == 401
    assert c.get("/healthz").status_code == 200


def test_overload_429_carries_retry_after(keyed_app) -> None:  # type: ignore[no-untyped-def]
    from rag.serve import service

    c, _s, token = keyed_app
    gate = service.Gate(1)
    gate._sem.acquire()  # the one slot is taken
    original = service.Gate.__enter__
    try:
        service.Gate.__enter__ = lambda self: original(gate)  # type: ignore[method-assign]
        r = c.post("/ask", json={"question": "crane"}, headers={"Authorization": f"Bearer {token}"})
    finally:
        service.Gate.__enter__ = original  # type: ignore[method-assign]
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
