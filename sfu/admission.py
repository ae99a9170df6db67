"""Admission to signaling: what one client may hold or do, where it connects from, which pages may connect.

- `Limits`: sockets per token and per client address, joins per second per address, how long a
  socket may stay without joining, signaling message and field sizes. A client that hits one gets
  an `error` event (and, for a join, the ack) `{"code": "limit_<name>", "message": ...}` and its
  socket is closed; nothing else is affected.
- `TrustedProxies`: the client's address is the socket's peer address; behind a reverse proxy
  listed with `--trusted-proxy` (IPv4 or IPv6 CIDRs), the `X-Forwarded-For` entry that proxy
  appended. Addresses are compared in one form (`sfu.addresses.canonical_address`): an IPv6 hop
  with brackets and a port, an IPv4-mapped IPv6 address and the plain address are one client.
  The per-address limits count an IPv6 client by its /64 (`sfu.addresses.limit_key`).
- `OriginPolicy`: a browser's socket.io request must come from the server's own origin (its public
  URL, or the Host the request came to), one configured with `--allowed-origin`, or another
  node of the cluster (`cluster`: a viewer's page fails over from a dead node to this one); a request
  without an `Origin` header (the headless terminal, other non-browser clients) is not a browser's
  cross-site request and passes.
- `Admission`: the bookkeeping behind the limits (used by `sfu.signaling_server` per connection
  and by `sfu.signaling` per join).
"""

from __future__ import annotations

import ipaddress
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sfu.addresses import canonical_address, limit_key


@dataclass(frozen=True)
class Limits:
    """Signaling limits (`twinclass serve` options of the same names; defaults in the README)."""

    sockets_per_token: int = 4  # sockets joined (or joining) with one token's claims at a time
    sockets_per_address: int = 64  # socket.io connections from one client address (loopback too)
    joins_per_second: float = 10.0  # per client address, refilled continuously ...
    join_burst: int = 20  # ... into a bucket of this many joins
    join_timeout_s: float = 10.0  # a socket that has not joined by then is closed
    max_message_bytes: int = 128 * 1024  # one socket.io message (engine.io max_http_buffer_size)
    max_sdp_bytes: int = 64 * 1024  # `sdp` of publish / subscribe_answer
    max_media_sections: int = 8  # m-lines in a publish offer (camera, mic, courseware need 3)
    max_field_chars: int = 4096  # any other string field (token, lesson, classroom...)

    def __post_init__(self) -> None:
        for name in ("sockets_per_token", "sockets_per_address", "join_burst", "max_message_bytes",
                     "max_sdp_bytes", "max_media_sections", "max_field_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1")
        if not self.joins_per_second > 0 or not self.join_timeout_s > 0:
            raise ValueError("joins_per_second and join_timeout_s: must be positive")


class LimitError(Exception):
    """A limit was hit; `code` is `limit_<name>`, the message says which limit and its value."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class TokenBucket:
    """`rate` tokens a second into a bucket of `burst`; `take()` spends one if there is one."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = now

    def _refill(self, now: float) -> None:
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.burst


class TrustedProxies:
    """Reverse proxies (CIDRs) whose `X-Forwarded-For` / `X-Forwarded-Host` / `-Proto` we believe."""

    def __init__(self, cidrs: Sequence[str] = ()) -> None:
        self.networks = [ipaddress.ip_network(c, strict=False) for c in cidrs]

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(canonical_address(address))
        except ValueError:
            return False
        return any(ip.version == net.version and ip in net for net in self.networks)

    @staticmethod
    def peer(environ: dict[str, Any]) -> str:
        """The socket's peer address (engine.io's WSGI environ says 127.0.0.1 under aiohttp, always)."""
        request = environ.get("aiohttp.request")
        remote = getattr(request, "remote", None)
        return canonical_address(str(remote or environ.get("REMOTE_ADDR") or "?"))

    def client_address(self, environ: dict[str, Any]) -> str:
        """The peer, or behind trusted proxies the last address in X-Forwarded-For they did not add."""
        address = self.peer(environ)
        if not self.trusts(address):
            return address
        hops = [canonical_address(h) for h in str(environ.get("HTTP_X_FORWARDED_FOR", "")).split(",") if h.strip()]
        for hop in reversed(hops):
            address = hop
            if not self.trusts(hop):
                break
        return address

    def forwarded(self, environ: dict[str, Any], header: str) -> str | None:
        """A proxy's X-Forwarded-<header> (first value), only when the peer is a trusted proxy."""
        if not self.trusts(self.peer(environ)):
            return None
        value = str(environ.get(f"HTTP_X_FORWARDED_{header}", "")).split(",")[0].strip()
        return value or None


def normalize_origin(origin: str) -> str | None:
    """`scheme://host[:port]` in lower case with the default port dropped; None if it is not one."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


class OriginPolicy:
    """Which `Origin`s may open a socket.io connection (python-engineio's `cors_allowed_origins` callable)."""

    def __init__(self, public_url: str, allowed: Sequence[str] = (), proxies: TrustedProxies | None = None,
                 cluster: Callable[[], Iterable[str]] = tuple) -> None:
        self.proxies = proxies or TrustedProxies()
        self.cluster = cluster  # the cluster's node URLs now (`sfu.cluster.NodeRegistry.members`)
        self.allowed: set[str] = set()
        for origin in (public_url, *allowed):
            normal = normalize_origin(origin)
            if normal is None:
                raise ValueError(f"allowed origin: {origin!r} is not scheme://host[:port]")
            self.allowed.add(normal)

    def own_origins(self, environ: dict[str, Any]) -> set[str]:
        """The origin(s) of the request's own Host: a page served by this server, however it was reached."""
        host = self.proxies.forwarded(environ, "HOST") or environ.get("HTTP_HOST")
        if not host:
            return set()
        out = set()
        for scheme in ("http", "https"):
            normal = normalize_origin(f"{scheme}://{host}")
            if normal is not None:
                out.add(normal)
        return out

    def allows(self, origin: str | None, environ: dict[str, Any]) -> bool:
        if origin is None:  # not a browser's cross-site request
            return True
        normal = normalize_origin(origin)
        if normal is None:
            return False
        if normal in self.allowed or normal in self.own_origins(environ):
            return True
        return any(normalize_origin(url) == normal for url in self.cluster())

    def __call__(self, origin: str | None, environ: dict[str, Any]) -> bool:
        return self.allows(origin, environ)


class Admission:
    """Counts sockets per address and per token, joins per address; says when a limit is hit.

    Connections (engine.io sockets) are keyed by engine.io sid; joins by socket.io sid.
    """

    def __init__(self, limits: Limits, proxies: TrustedProxies | None = None) -> None:
        self.limits = limits
        self.proxies = proxies or TrustedProxies()
        self._socket_address: dict[str, str] = {}  # engine.io sid -> client address
        self._per_address: Counter[str] = Counter()
        self._sid_address: dict[str, str] = {}  # socket.io sid -> client address
        self._buckets: dict[str, TokenBucket] = {}
        self._holder: dict[str, Hashable] = {}  # socket.io sid joined/joining -> its token's identity
        self._per_token: Counter[Hashable] = Counter()
        self._idle_since: dict[str, float] = {}  # socket.io sid -> when its session ended (left)

    # -- connections ---------------------------------------------------------------------------

    def address_full(self, address: str) -> LimitError | None:
        key = limit_key(address)  # an IPv6 client counts by its /64
        if self._per_address[key] >= self.limits.sockets_per_address:
            return LimitError("limit_address", f"too many connections from {key} "
                                               f"(at most {self.limits.sockets_per_address})")
        return None

    def open_socket(self, eio_sid: str, address: str) -> LimitError | None:
        """Record a new connection, or say which limit refuses it."""
        refused = self.address_full(address)
        if refused is None:
            self._socket_address[eio_sid] = address
            self._per_address[limit_key(address)] += 1
        return refused

    def close_socket(self, eio_sid: str) -> None:
        address = self._socket_address.pop(eio_sid, None)
        if address is not None:
            key = limit_key(address)
            self._per_address[key] -= 1
            if self._per_address[key] <= 0:
                del self._per_address[key]

    def sockets_from(self, address: str) -> int:
        return self._per_address[limit_key(address)]

    def address_of_socket(self, eio_sid: str) -> str:
        return self._socket_address.get(eio_sid, "?")

    # -- joins ---------------------------------------------------------------------------------

    def connected(self, sid: str, environ: dict[str, Any]) -> None:
        self._sid_address[sid] = self.proxies.client_address(environ)

    def address_of(self, sid: str) -> str:
        return self._sid_address.get(sid, "?")

    def admit_join(self, sid: str, identity: Hashable) -> None:
        """A join with a valid token: raise LimitError, or hold a place for `identity` until `left`."""
        now = time.monotonic()
        address = limit_key(self.address_of(sid))
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) > 4096:  # forget addresses whose bucket has refilled
                self._buckets = {a: b for a, b in self._buckets.items() if not b.full(now)}
            bucket = self._buckets[address] = TokenBucket(self.limits.joins_per_second, self.limits.join_burst, now)
        if not bucket.take(now):
            raise LimitError("limit_join_rate", f"too many joins from {address} (at most "
                                                f"{self.limits.joins_per_second:g} a second, bursts of "
                                                f"{self.limits.join_burst}); try again shortly")
        if self._per_token[identity] >= self.limits.sockets_per_token:
            raise LimitError("limit_token", f"this token is already in use on {self._per_token[identity]} "
                                            f"connections (at most {self.limits.sockets_per_token})")
        self._holder[sid] = identity
        self._per_token[identity] += 1
        self._idle_since.pop(sid, None)

    def holds(self, sid: str) -> bool:
        """Joined, or joining (a place held for its token)."""
        return sid in self._holder

    def left(self, sid: str) -> None:
        """Its session ended (left, refused, replaced); the socket may still be connected."""
        identity = self._holder.pop(sid, None)
        if identity is not None:
            self._per_token[identity] -= 1
            if self._per_token[identity] <= 0:
                del self._per_token[identity]
            self._idle_since[sid] = time.monotonic()

    def idle_since(self, sid: str) -> float | None:
        return self._idle_since.get(sid)

    def disconnected(self, sid: str) -> None:
        self.left(sid)
        self._sid_address.pop(sid, None)
        self._idle_since.pop(sid, None)
