"""Checks every request passes before any byte of its body is read (pure ASGI middleware).

In order: the Host header must name this kiosk (a page elsewhere that rebinds its DNS name to
our address gets 400); a state-changing request from a browser must come from our own origin;
loopback-only routes (the simulated card tap) answer other peers 403 at once; and each route
has a body cap, enforced twice: by Content-Length before reading (413), and by counting the
bytes actually streamed (a chunked or lying request gets 413 when it passes the cap). Only then
does the application parse anything.

The in-process test transport (peer "testclient") is a process-local call, never a network
peer, and is exempt from the Host and origin checks; never from the body caps.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TEST_PEER = "testclient"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_CLOSE = (b"connection", b"close")


class BodyTooLargeError(HTTPException):
    """Raised from `receive` once the streamed body passes the cap: an HTTPException, so the
    app's body parsing lets it through as a 413 (anything else it would turn into a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body too large (limit {limit} bytes)")
        self.limit = limit


@dataclass(frozen=True)
class GuardPolicy:
    allowed_hosts: frozenset[str]  # lower-case host names, without port
    body_limits: tuple[tuple[str, int], ...]  # (path prefix, bytes), first match wins
    default_body_limit: int
    loopback_only: tuple[str, ...]  # path prefixes

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.body_limits:
            if path.startswith(prefix):
                return limit
        return self.default_body_limit


def is_loopback(host: str) -> bool:
    return host in ("::1", TEST_PEER) or host.startswith("127.")


def host_name(value: str) -> str:
    """The name part of a Host header value: lower-case, without port or IPv6 brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class RequestGuard:
    def __init__(self, app: ASGIApp, policy: GuardPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await _answer(send, *refusal)
            return
        limit = self.policy.limit_for(scope["path"])
        length = _header(scope, b"content-length")
        if length is not None:
            if not length.isdigit():
                await _answer(send, 400, "Content-Length is not a number")
                return
            if int(length) > limit:
                await _answer(send, 413, f"request body too large (limit {limit} bytes)")
                return
        started = exceeded = False
        seen = 0

        async def counted_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    raise BodyTooLargeError(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if exceeded:  # close: the server must not read (and drop) the rest to reuse it
                    message = {**message, "headers": [*message.get("headers", []), _CLOSE]}
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLargeError as exc:
            if started:
                raise
            await _answer(send, 413, f"request body too large (limit {exc.limit} bytes)")

    def _refusal(self, scope: Scope) -> tuple[int, str] | None:
        client = scope.get("client")
        peer = client[0] if client else ""
        path: str = scope["path"]
        if peer != TEST_PEER:
            host = _header(scope, b"host")
            if host is None or host_name(host) not in self.policy.allowed_hosts:
                return 400, "unknown Host; this kiosk answers only to its configured names"
            origin = _header(scope, b"origin")
            if scope["method"] not in SAFE_METHODS and not _same_origin(origin, host):
                return 403, "cross-origin request refused"
        if any(path.startswith(p) for p in self.policy.loopback_only) and not is_loopback(peer):
            return 403, "accepted from this machine only"
        return None


def _same_origin(origin: str | None, host: str) -> bool:
    if origin is None:  # not a browser, or a same-origin GET-like request: nothing to compare
        return True
    # Scheme://name:port against the Host header's name:port: another port is another origin.
    return origin != "null" and origin.split("://", 1)[-1].lower() == host.strip().lower()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}, ensure_ascii=False).encode()
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        _CLOSE,  # the unread body is not worth keeping the socket for
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def default_hosts(bind_host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    names = {"localhost", "127.0.0.1", "::1", *(h.lower() for h in extra)}
    if bind_host not in ("0.0.0.0", "::", ""):
        names.add(host_name(bind_host))
    return frozenset(names)
