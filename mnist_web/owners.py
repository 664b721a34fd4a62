"""Who a request is: the visitor's owner (whose runs are theirs) and the client's address (for fairness).

The page keeps a random, unguessable owner token in the browser (web/owner.js: localStorage, mirrored to
the cookie `mnist_owner`, SameSite=Strict, so every request of the page carries it and a reload keeps
it). API users send the same token in the header `X-Mnist-Owner` (docs/api.md). The server never stores
or logs the token: the queue knows the owner by `owner_id(token)`, a hash, and a saved run records
`record_of(that id)`, a hash of the hash (so a downloaded checkpoint names nobody's queue identity). A
request with no valid token is owned by its Gradio session only, as before owners existed (not
persistent: a new session is a new owner, and its runs are deletable only from that session). A direct
call with no request (a script, a test) is the host: its runs record no owner, like runs saved before
owners existed, and only the host may delete those.

The client's address counts the jobs one machine has queued (a script must not fill the queue): the
socket's peer, or, behind a reverse proxy that the host names with --trusted-proxy, the address that
proxy forwarded (the last X-Forwarded-For entry it added); a forwarded header from anyone else is ignored.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie

OWNER_HEADER = "x-mnist-owner"
OWNER_COOKIE = "mnist_owner"
TOKEN = re.compile(r"[A-Za-z0-9_-]{22,128}")   # web/owner.js makes 32 characters (24 random bytes)


@dataclass(frozen=True)
class Owner:
    id: str            # what the queue knows: a hash of the token, or the Gradio session; "" the host
    persistent: bool   # from a token (survives reloads) rather than from one Gradio session

    @property
    def record(self) -> str | None:
        """What a run it saves records as its owner (None: the host)."""
        return record_of(self.id)


def owner_id(token: str) -> str:
    return hashlib.sha256(f"mnist-owner:{token}".encode()).hexdigest()[:32]


def record_of(owner: str) -> str | None:
    """The owner a saved run records for the queue's owner `owner` ("" the host: None)."""
    return hashlib.sha256(f"mnist-run-owner:{owner}".encode()).hexdigest()[:32] if owner else None


def token_of(headers) -> str | None:
    """The owner token of a request's headers (header first, then the cookie), if it is well formed."""
    token = (headers.get(OWNER_HEADER) or "").strip()
    if not token:
        try:
            jar = SimpleCookie(headers.get("cookie") or "")
        except CookieError:
            jar = SimpleCookie()
        token = jar[OWNER_COOKIE].value if OWNER_COOKIE in jar else ""
    return token if TOKEN.fullmatch(token) else None


def owner_of(request) -> Owner:
    """The owner behind a gr.Request (None: a direct call, as in tests: the anonymous owner '')."""
    if request is None:
        return Owner("", False)
    token = token_of(getattr(request, "headers", None) or {})
    if token is not None:
        return Owner(owner_id(token), True)
    return Owner(request.session_hash or "", False)


def client_address(request, trusted_proxies: frozenset[str] = frozenset()) -> str:
    """The address a request came from: the peer, or what a trusted proxy forwarded."""
    client = getattr(request, "client", None)
    peer = getattr(client, "host", None) or ""
    if peer in trusted_proxies:
        forwarded = (getattr(request, "headers", None) or {}).get("x-forwarded-for") or ""
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        if hops:
            return hops[-1]
    return peer
