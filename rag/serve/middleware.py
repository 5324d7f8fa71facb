"""ASGI middleware of the HTTP face: a start-up ConfigError in one line, and a bound on
request bodies (413, read to their end first so a client still sending sees the answer)."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import ConfigError


class OneLineStartup:
    """ASGI middleware: a ConfigError at start-up stops the server with its message in one
    line, not a traceback (Starlette would send the formatted traceback)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)
        held: list[Any] = []

        async def hold_failure(msg: Any) -> None:
            if msg["type"] == "lifespan.startup.failed":
                held.append(msg)  # sent below: one line for a ConfigError, else as it was
            else:
                await send(msg)

        try:
            await self.app(scope, receive, hold_failure)
        except ConfigError as e:
            if not held:
                raise
            await send({"type": "lifespan.startup.failed", "message": f"cannot start: {e}"})
        except BaseException:
            for msg in held:
                await send(msg)
            raise


# Bodies over the limit but within this bound are read and thrown away before the 413, so a
# client still sending sees the answer; the server closing on unread bytes resets the
# connection (the client gets a broken pipe instead). Larger ones are refused at once.
DRAIN_BYTES = 8 * 1024 * 1024


async def _drain(receive: Any, seen: int) -> bool:
    """Read and discard the rest of a request body, up to DRAIN_BYTES in all; True when its
    end was reached."""
    while seen <= DRAIN_BYTES:
        msg = await receive()
        if msg["type"] != "http.request":
            return False
        seen += len(msg.get("body", b""))
        if not msg.get("more_body", False):
            return True
    return False


class BodyLimit:
    """ASGI middleware: reject request bodies over `limit` bytes with 413 (read to their end
    first when under DRAIN_BYTES)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    declared = int(v)
                except ValueError:
                    declared = 0
                if declared > self.limit:
                    if declared <= DRAIN_BYTES:
                        await _drain(receive, 0)
                    return await self._reject(send)
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    if msg.get("more_body", False):
                        await _drain(receive, seen)
                    raise _TooLarge(self.limit)
            return msg

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._reject(send)

    async def _reject(self, send: Any) -> None:
        body = (b'{"error":"request body too large","detail":"the limit is %d bytes"}'
                % self.limit)
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(StarletteHTTPException):
    """Raised from inside the body stream; FastAPI passes HTTP exceptions through."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body too large: the limit is {limit} bytes")
