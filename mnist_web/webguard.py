"""Bounds for a public web server, as plain ASGI middleware and stream wrappers (no Gradio imports).

- `Guard`: refuses requests whose Host is not allowed (DNS rebinding), cross-site writes (an Origin
  that is neither the Host nor allowed), and bodies over a size limit (413, before the body is read
  into memory; chunked bodies without a Content-Length are counted as they arrive, and uploads must
  declare their length: 411 otherwise).
- `Bounded`: one route's concurrency bound (route middleware): at most `limit` requests at work at once,
  the excess answered 503 with Retry-After at once, before it takes a worker thread or queues any work.
- `BoundedStream`: wraps sys.stderr / sys.stdout so one request cannot flood the log: each write is
  cut to a few hundred characters and the stream has a byte budget per minute.
- `hosting_address`: flags win, else GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, else 127.0.0.1:7860.
"""
from __future__ import annotations

import ipaddress
import json
import os
import threading
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 7860


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def hosting_address(host: str | None, port: int | None, env=os.environ) -> tuple[str, int]:
    """(host, port) to listen on: command-line flags first, then the variables every Gradio host sets
    (Hugging Face Spaces, containers), then localhost:7860. A bad port variable is an error, not a guess."""
    host = host or env.get("GRADIO_SERVER_NAME") or DEFAULT_HOST
    if port is None:
        raw = env.get("GRADIO_SERVER_PORT", "").strip()
        if raw:
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                raise ValueError(f"GRADIO_SERVER_PORT must be a port number (1-65535), got {raw[:20]!r}")
            port = int(raw)
        else:
            port = DEFAULT_PORT
    return host, port


def split_host(value: str) -> str:
    """'example.org:7860' -> 'example.org'; '[::1]:7860' -> '::1'; lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value[1:]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


def parse_hosts(text: str | None) -> list[str]:
    """'a.example, b.example' -> ['a.example', 'b.example'] ('*' allows any host)."""
    return [split_host(h) for h in (text or "").split(",") if h.strip()]


def _short(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[:n] + "..."


class Guard:
    """ASGI middleware. allowed_hosts: host names accepted in the Host header (None = any host).

    A bind to a loopback address should pass LOOPBACK_NAMES, so a web page on another domain that
    resolves to 127.0.0.1 (DNS rebinding) is refused with 400. Cross-site writes (POST etc. with an
    Origin whose host is neither the request's Host nor allowed) get 403. Bodies over the limit get
    413: `upload_limit` for Gradio's upload route, `body_limit` for everything else.
    """

    SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

    def __init__(self, app, allowed_hosts: Iterable[str] | None = None, body_limit: int = 1_000_000,
                 upload_limit: int = 10_000_000) -> None:
        self.app = app
        hosts = None if allowed_hosts is None else {split_host(h) for h in allowed_hosts}
        self.allowed = None if hosts is None or "*" in hosts else hosts
        self.body_limit = body_limit
        self.upload_limit = upload_limit

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = split_host(headers.get("host", ""))
        if self.allowed is not None and host not in self.allowed:
            return await _plain(send, 400, "Invalid Host header.")
        origin = headers.get("origin")
        if (origin and scope["type"] == "http" and scope.get("method", "GET") not in self.SAFE_METHODS
                and not self._origin_ok(origin, headers.get("host", ""))):
            return await _plain(send, 403, "Cross-site request refused.")
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        upload = scope.get("path", "").rstrip("/").endswith("/upload")
        limit = self.upload_limit if upload else self.body_limit
        declared = headers.get("content-length")
        if upload and declared is None and scope.get("method") == "POST":
            # Gradio spools uploads to temp files as they arrive and leaves them behind when a stream is
            # cut off; with the length declared up front, an oversized upload is refused before any byte
            # is stored (browsers and gradio_client always declare it).
            return await _plain(send, 411, "Uploads must declare their Content-Length.")
        if declared is not None:
            if not declared.isdigit():
                return await _plain(send, 400, "Bad Content-Length.")
            if int(declared) > limit:
                return await _plain(send, 413, f"Request body too large (limit {limit:,} bytes).")
        seen = 0
        started = False

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge()
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _plain(send, 413, f"Request body too large (limit {limit:,} bytes).")

    def _origin_ok(self, origin: str, host_header: str) -> bool:
        try:
            netloc = urlsplit(origin).netloc.lower()
        except ValueError:
            return False
        if netloc and netloc == host_header.strip().lower():
            return True  # same origin
        name = split_host(netloc) if netloc else origin.strip().lower()
        if self.allowed is None:
            return False
        return name in self.allowed


class _TooLarge(Exception):
    pass


async def _plain(send, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


BUSY_MESSAGE = "The server is busy with other requests: try again in a moment."


class Bounded:
    """ASGI middleware for one route (Route(..., middleware=[Middleware(Bounded, limit=N)])): at most
    `limit` of its requests at work at once; past that, 503 with `Retry-After: retry_after` and the
    route's usual error shape ({"error": "<one line>"}) at once: nothing waits, no worker thread is taken.

    A request's body is read before it takes a place (a slow sender holds none; the Guard caps the body's
    size), and its place is given back as soon as its answer starts (a slow reader holds none either):
    a place covers exactly the route's work. All counting happens on the event loop, so no lock.
    """

    def __init__(self, app, limit: int, retry_after: int = 1, message: str = BUSY_MESSAGE) -> None:
        if limit < 1:
            raise ValueError("a bound must admit at least one request")
        self.app, self.limit, self.retry_after = app, limit, retry_after
        self.busy_body = json.dumps({"error": message}).encode()
        self.active = 0         # requests at work now
        self.refused = 0        # answered 503 since the start

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        first = await _whole_body(receive)
        if first is None:                       # the client went away before its body arrived
            return
        if self.active >= self.limit:
            self.refused += 1
            return await self._busy(send)
        self.active += 1
        held = True

        def give_back() -> None:
            nonlocal held
            if held:
                held = False
                self.active -= 1

        async def replay():
            nonlocal first
            if first is None:
                return await receive()
            message, first = first, None
            return message

        async def releasing_send(message):
            if message["type"] == "http.response.start":
                give_back()
            await send(message)

        try:
            await self.app(scope, replay, releasing_send)
        finally:
            give_back()

    async def _busy(self, send) -> None:
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(self.busy_body)).encode()),
                                (b"retry-after", str(self.retry_after).encode()), (b"cache-control", b"no-store")]})
        await send({"type": "http.response.body", "body": self.busy_body})


async def _whole_body(receive) -> dict | None:
    """The request's body as one http.request message (None: the client disconnected first)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}


class BoundedStream:
    """A text stream that caps what one burst can write: each write is cut to `max_write` characters
    and at most `budget` characters are written per `window` seconds; past that, one line says how
    much was dropped. Thread-safe; everything else is delegated to the wrapped stream."""

    def __init__(self, stream, max_write: int = 500, budget: int = 200_000, window: float = 60.0) -> None:
        self._stream = stream
        self.max_write = max_write
        self.budget = budget
        self.window = window
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._used = 0
        self._dropped = 0

    def write(self, text) -> int:
        if not isinstance(text, str):
            text = str(text)
        n = len(text)
        if n > self.max_write:
            text = text[: self.max_write] + f"... [{n - self.max_write:,} characters cut]\n"
        with self._lock:
            now = time.monotonic()
            if now - self._start >= self.window:
                if self._dropped:
                    self._stream.write(f"[log] {self._dropped:,} characters dropped in the last "
                                       f"{self.window:.0f} s (log budget)\n")
                self._start, self._used, self._dropped = now, 0, 0
            if self._used + len(text) > self.budget:
                self._dropped += len(text)
                return n
            self._used += len(text)
            self._stream.write(text)
        return n

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name):
        return getattr(self._stream, name)
