"""The response headers every answer of the lesson server carries, in one place.

Added on `on_response_prepare`, so pages, static files, API JSON and error answers (404, 401,
500) all get them:

- ``Referrer-Policy: no-referrer``: lesson and study links carry tokens in ``?token=``;
- ``X-Content-Type-Options: nosniff``;
- ``Content-Security-Policy``: everything from this origin only; no inline script; inline styles
  only by hash (the printable timetable pages); images and media also from ``blob:``/``data:``;
  socket.io over ``ws(s)://`` to this host (named, unless it is an IPv6 literal: 'self' covers
  it) and to the other nodes of the cluster (`HeaderPolicy.cluster`: a viewer's page whose node
  died goes on with another node, `web/static/js/failover.js`); ``frame-ancestors 'none'``
  unless a deployment lets a portal embed the pages (`HeaderPolicy.frame_ancestors`,
  ``serve --frame-ancestors``);
- ``X-Frame-Options: DENY`` (older browsers) while no frame ancestor is allowed;
- ``Strict-Transport-Security`` only when the public URL is https (behind a TLS proxy).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp import web

_HOST_RE = re.compile(r"[A-Za-z0-9.:\[\]-]{1,255}")
_SOURCE_RE = re.compile(r"(?:'self'|'none'|https?://[A-Za-z0-9.*:\[\]/-]+|[A-Za-z0-9.*-]+(?::[0-9]+)?)")
HSTS_MAX_AGE_S = 180 * 24 * 3600


def node_sources(urls: Iterable[str]) -> list[str]:
    """connect-src sources for the cluster's nodes: each node's origin (socket.io's polling) and its
    ws(s) twin. An IPv6 literal has no CSP syntax and is left out (that node is not reachable from a
    page served elsewhere); anything that is not a plain http(s) origin is dropped."""
    out: list[str] = []
    for url in urls:
        try:
            parts = urlsplit(url)
            host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
        except ValueError:
            continue
        if parts.scheme not in ("http", "https") or not parts.hostname or not _HOST_RE.fullmatch(host):
            continue
        if ":" in str(parts.hostname):
            continue
        for source in (f"{parts.scheme}://{host}", f"{parts.scheme.replace('http', 'ws')}://{host}"):
            if source not in out:
                out.append(source)
    return out


def parse_frame_ancestors(value: str | None) -> tuple[str, ...]:
    """`--frame-ancestors "https://portal.example.edu.cn 'self'"`: CSP sources, checked (ValueError)."""
    if not value or not value.strip():
        return ()
    sources = tuple(value.replace(",", " ").split())
    for source in sources:
        if not _SOURCE_RE.fullmatch(source):
            raise ValueError(f"frame-ancestors: {source!r} is not a CSP source (an origin, 'self' or 'none')")
    return () if sources == ("'none'",) else sources


@dataclass(frozen=True)
class HeaderPolicy:
    frame_ancestors: tuple[str, ...] = ()  # () = none: no page may be framed
    https: bool = False  # the public URL is https: send HSTS
    style_hashes: tuple[str, ...] = field(default=())  # 'sha256-…' of inline <style> blocks the pages use
    form_targets: tuple[str, ...] = ()  # origins a form may lead to besides ours (the login provider's logout)
    cluster: Callable[[], Iterable[str]] = field(default=tuple, compare=False)  # the cluster's node URLs now

    def csp(self, host: str) -> str:
        connect = ["'self'"]
        # CSP has no syntax for an IPv6 literal (Chromium drops `ws://[::1]:8080` as invalid, with a
        # console error); there 'self' alone allows the page's own ws(s) origin (CSP 3)
        if _HOST_RE.fullmatch(host) and not host.startswith("["):
            connect += [f"ws://{host}", f"wss://{host}"]
        connect += [source for source in node_sources(self.cluster()) if source not in connect]
        styles = " ".join(["'self'", *(f"'{h}'" for h in self.style_hashes)])
        ancestors = " ".join(self.frame_ancestors) or "'none'"
        forms = " ".join(["'self'", *self.form_targets])
        return "; ".join([
            "default-src 'self'",
            "script-src 'self'",
            f"style-src {styles}",
            "img-src 'self' data: blob:",
            "media-src 'self' data: blob:",
            "font-src 'self' data:",
            f"connect-src {' '.join(connect)}",
            "object-src 'none'",
            "base-uri 'none'",
            f"form-action {forms}",
            f"frame-ancestors {ancestors}",
        ])

    def headers(self, host: str) -> dict[str, str]:
        out = {
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": self.csp(host),
        }
        if not self.frame_ancestors:
            out["X-Frame-Options"] = "DENY"
        if self.https:
            out["Strict-Transport-Security"] = f"max-age={HSTS_MAX_AGE_S}"
        return out


def install(app: web.Application, policy: HeaderPolicy) -> None:
    """Add the policy's headers to every response the app prepares (a handler's own CSP wins)."""

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in policy.headers(request.host).items():
            response.headers.setdefault(name, value)

    app.on_response_prepare.append(add_headers)


def policy_for(frame_ancestors: Iterable[str], public_url: str, style_hashes: Iterable[str],
               form_targets: Iterable[str] = (), cluster: Callable[[], Iterable[str]] = tuple) -> HeaderPolicy:
    return HeaderPolicy(frame_ancestors=tuple(frame_ancestors), https=public_url.lower().startswith("https://"),
                        style_hashes=tuple(style_hashes), form_targets=tuple(form_targets), cluster=cluster)
