"""Host addresses, IPv4 and IPv6 alike: what `serve --host` binds, how a host goes into a URL, which
host addresses ICE offers on loopback, and a client address in one canonical form.

- `parse_hosts`: `--host` values (repeatable, or a comma list): `127.0.0.1`, `::1`, `[::1]`, `::`,
  `0.0.0.0`, a name. ValueError names the bad one (an empty one too).
- `bind_hosts`: the addresses to listen on. `::` means both families: asyncio opens IPv6 sockets
  with `IPV6_V6ONLY`, so `::` alone would not answer IPv4, and `0.0.0.0` is added beside it.
- `url_host`: `::1` -> `[::1]` (RFC 3986), anything else unchanged.
- `loopback_ice_addresses`: a server (or a terminal) reached only over loopback gathers ICE host
  candidates there, one per family it uses (aioice never offers loopback by itself); None for any
  other host: every interface, IPv6 included.
- `canonical_address`: an address as a peer or an `X-Forwarded-For` hop writes it (`[2001:db8::1]:443`,
  `::ffff:10.0.0.1`, `10.0.0.1:5678`) in one form, so limits and trusted-proxy checks see one client.
- `limit_key`: what the per-address limits count. An IPv6 host picks any of the 2^64 addresses of
  its network at will (privacy addresses), so an IPv6 client counts by its /64, as one school's LAN
  behind one IPv4 NAT address already does; loopback and link-local addresses count one by one.
- `check_ice_server`, `aiortc_usable_ice_servers`: `--ice-server` URLs (`stun:HOST[:PORT]`,
  `turn:[2001:db8::1]:3478?transport=udp`). Browsers take IPv6 literals; aiortc 1.16 cannot parse
  them (every peer connection would fail) and aioice gathers server-reflexive candidates over IPv4
  only, so our own peers leave them out.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence

WILDCARDS = ("0.0.0.0", "::")
_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})")
_ICE_URL_RE = re.compile(r"(?:stuns?|turns?):(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*)(?::[0-9]{1,5})?"
                         r"(?:\?transport=(?:udp|tcp))?")
_HOST_PORT_RE = re.compile(r"\[([0-9A-Fa-f:.%]+)\](?::[0-9]{1,5})?|([0-9.]+):[0-9]{1,5}")


def parse_hosts(values: Iterable[str]) -> list[str]:
    """Each `--host` value, comma lists split, brackets taken off, duplicates dropped (ValueError if bad)."""
    out: list[str] = []
    for value in values:
        for part in value.split(","):
            host = part.strip()
            if host.startswith("[") and host.endswith("]"):
                host = host[1:-1]
            if _is_address(host):
                host = str(ipaddress.ip_address(host))  # one spelling: 0:0::1 is ::1
            elif not _NAME_RE.fullmatch(host):
                raise ValueError(f"host: {part.strip()!r} is not an IPv4/IPv6 address or a host name")
            if host not in out:
                out.append(host)
    if not out:
        raise ValueError("host: give at least one address")
    return out


def bind_hosts(hosts: Sequence[str]) -> list[str]:
    """What to listen on: `::` stands for both families (asyncio's IPv6 sockets are IPv6-only)."""
    out: list[str] = []
    for host in hosts:
        for address in (("0.0.0.0", "::") if host == "::" else (host,)):
            if address not in out:
                out.append(address)
    return out


def url_host(host: str) -> str:
    """The host as it goes into a URL's authority: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def public_host(hosts: Sequence[str]) -> str:
    """The host of the links a server prints: the first one bound, loopback for a wildcard."""
    host = hosts[0] if hosts else "127.0.0.1"
    return url_host("127.0.0.1" if host in WILDCARDS else host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_ice_addresses(hosts: Sequence[str]) -> list[str] | None:
    """ICE host addresses for hosts that are all loopback (`127.0.0.1` and/or `::1`), else None."""
    if not hosts or not all(is_loopback(h) for h in hosts):
        return None
    out: list[str] = []
    for host in hosts:
        address = "::1" if ":" in host else "127.0.0.1"
        if address not in out:
            out.append(address)
    return out


def canonical_address(text: str) -> str:
    """`[2001:DB8::1]:443` -> `2001:db8::1`, `::ffff:10.0.0.1` -> `10.0.0.1`, `10.0.0.1:80` -> `10.0.0.1`;
    the stripped text itself if it is no address (a Unix socket's peer, `unknown`)."""
    text = text.strip()
    match = _HOST_PORT_RE.fullmatch(text)
    candidate = (match.group(1) or match.group(2)) if match else text
    try:
        ip = ipaddress.ip_address(candidate.split("%", 1)[0])
    except ValueError:
        return text
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def limit_key(address: str) -> str:
    """The address (canonical), or for an IPv6 one beyond this link its /64 (`2001:db8:1:2::/64`)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and not (ip.is_loopback or ip.is_link_local):
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


def check_ice_server(url: str) -> str:
    """A STUN/TURN URL as `--ice-server` takes it, else ValueError naming it."""
    match = _ICE_URL_RE.fullmatch(url.strip())
    if match is None or (match.group(1).startswith("[") and not _is_address(match.group(1)[1:-1])):
        raise ValueError(f"ice-server: {url!r} is not stun:HOST[:PORT] or turn:HOST[:PORT][?transport=udp|tcp] "
                         "(an IPv6 host in brackets)")
    return url.strip()


def aiortc_usable_ice_servers(urls: Iterable[str]) -> list[str]:
    """The URLs our own (aiortc) peer connections can use: those without an IPv6 literal host."""
    return [u for u in urls if not (m := _ICE_URL_RE.fullmatch(u)) or not m.group(1).startswith("[")]


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
