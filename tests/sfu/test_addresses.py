"""IPv6 beside IPv4 (sfu.addresses and its users): `--host` lists, URLs with bracketed hosts, ICE on
loopback per family, client addresses behind trusted IPv6 proxies, per-address limits by /64, Origins of
[::1] pages, STUN/TURN URLs with IPv6 hosts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiortc import RTCPeerConnection

from sfu.addresses import (
    aiortc_usable_ice_servers,
    bind_hosts,
    canonical_address,
    check_ice_server,
    limit_key,
    loopback_ice_addresses,
    parse_hosts,
    public_host,
    url_host,
)
from sfu.admission import Admission, LimitError, Limits, OriginPolicy, TrustedProxies
from sfu.media.aiortc_adapter import selected_candidate_pair, use_host_addresses
from sfu.media.endpoint import rtc_configuration
from twinclass.cli import main
from twinclass.server import ServerConfig


def environ(peer: str, **headers: str) -> dict[str, Any]:
    return {"aiohttp.request": SimpleNamespace(remote=peer), "REMOTE_ADDR": "127.0.0.1",
            **{f"HTTP_{k.upper()}": v for k, v in headers.items()}}


def test_host_lists_take_repeats_commas_and_brackets() -> None:
    assert parse_hosts(["127.0.0.1", "::1"]) == ["127.0.0.1", "::1"]
    assert parse_hosts(["127.0.0.1,[::1]", "::1"]) == ["127.0.0.1", "::1"]
    assert parse_hosts(["::"]) == ["::"] and parse_hosts(["0:0::1"]) == ["::1"]
    assert parse_hosts(["lesson.school.cn"]) == ["lesson.school.cn"]
    for bad in (["::1::2"], ["[::1"], ["a b"], [","], ["http://[::1]"]):
        with pytest.raises(ValueError, match="host"):
            parse_hosts(bad)


def test_double_colon_listens_on_both_families() -> None:
    assert bind_hosts(["::"]) == ["0.0.0.0", "::"]  # asyncio's IPv6 sockets are IPV6_V6ONLY
    assert bind_hosts(["::", "0.0.0.0"]) == ["0.0.0.0", "::"]
    assert bind_hosts(["127.0.0.1", "::1"]) == ["127.0.0.1", "::1"]


def test_urls_bracket_ipv6_hosts() -> None:
    assert url_host("::1") == "[::1]" and url_host("127.0.0.1") == "127.0.0.1" and url_host("[::1]") == "[::1]"
    assert ServerConfig(hosts=("::1",), port=8080).public_url == "http://[::1]:8080"
    assert ServerConfig(hosts=("::",), port=8080).public_url == "http://127.0.0.1:8080"
    assert ServerConfig(hosts=("0.0.0.0",), port=8080).public_url == "http://127.0.0.1:8080"
    assert public_host(["::1", "127.0.0.1"]) == "[::1]"


def test_ice_on_loopback_gathers_in_each_family_served() -> None:
    assert loopback_ice_addresses(["::1"]) == ["::1"]
    assert loopback_ice_addresses(["127.0.0.1", "::1"]) == ["127.0.0.1", "::1"]
    assert loopback_ice_addresses(["127.0.0.5", "localhost"]) == ["127.0.0.1"]
    assert loopback_ice_addresses(["::"]) is None  # every interface, IPv6 included (aioice's own list)
    assert loopback_ice_addresses(["127.0.0.1", "192.0.2.1"]) is None
    assert ServerConfig(hosts=("127.0.0.1", "::1")).effective_ice_addresses() == ["127.0.0.1", "::1"]
    assert ServerConfig(hosts=("::1",), ice_addresses=["fd00::2"]).effective_ice_addresses() == ["fd00::2"]


def test_one_client_address_however_it_is_written() -> None:
    assert canonical_address("[2001:DB8::1]:443") == "2001:db8::1"
    assert canonical_address("2001:0db8:0:0::1") == "2001:db8::1"
    assert canonical_address("::ffff:10.0.0.1") == "10.0.0.1"
    assert canonical_address("10.0.0.1:5678") == "10.0.0.1"
    assert canonical_address("fe80::1%eth0") == "fe80::1"
    assert canonical_address(" unknown ") == "unknown"


def test_trusted_ipv6_proxies_name_the_client() -> None:
    proxies = TrustedProxies(["2001:db8:ff::/48", "10.0.0.0/8"])
    # an IPv6 proxy forwarding an IPv6 client, written with brackets and a port, or plain
    assert proxies.client_address(environ("2001:db8:ff::5", x_forwarded_for="[2001:db8:1::7]:51000")) == "2001:db8:1::7"
    assert proxies.client_address(environ("2001:db8:ff::5", x_forwarded_for="2001:DB8:1::7")) == "2001:db8:1::7"
    # the client's own X-Forwarded-For entry never wins over what the proxies appended
    chain = "6.6.6.6, 2001:db8:1::7, [2001:db8:ff::9]:80"
    assert proxies.client_address(environ("2001:db8:ff::5", x_forwarded_for=chain)) == "2001:db8:1::7"
    # an IPv4 proxy reached over a dual-stack socket (IPv4-mapped) is still the trusted proxy
    assert proxies.client_address(environ("::ffff:10.0.0.5", x_forwarded_for="2001:db8:1::7")) == "2001:db8:1::7"
    # not a proxy: the peer itself, in canonical form
    assert proxies.client_address(environ("2001:db8:2::0:1", x_forwarded_for="1.2.3.4")) == "2001:db8:2::1"
    assert proxies.forwarded(environ("2001:db8:ff::5", x_forwarded_host="[::1]:8080"), "HOST") == "[::1]:8080"


def test_pages_served_over_ipv6_may_open_socketio() -> None:
    policy = OriginPolicy("http://[::1]:8080", ["https://[2001:db8::10]", "http://[fd00::2]:9000"])
    own = environ("::1", host="[::1]:8080")
    assert policy.allows("http://[::1]:8080", own)
    assert policy.allows("https://[2001:DB8::10]:443", own) and policy.allows("http://[fd00::2]:9000", own)
    # a server listening on both families: a page reached over 127.0.0.1 has that Host
    assert policy.allows("http://127.0.0.1:8080", environ("127.0.0.1", host="127.0.0.1:8080"))
    for foreign in ("http://[::1]:8081", "http://[::2]:8080", "http://[fd00::2]", "http://[::1]:8080.evil"):
        assert not policy.allows(foreign, own), foreign
    with pytest.raises(ValueError, match="allowed origin"):
        OriginPolicy("http://[::1]:8080", ["http://::1:8080"])


def test_limits_count_an_ipv6_client_by_its_64() -> None:
    assert limit_key("2001:db8:1:2::7") == "2001:db8:1:2::/64" and limit_key("::1") == "::1"
    assert limit_key("fe80::1") == "fe80::1" and limit_key("192.0.2.7") == "192.0.2.7"
    admission = Admission(Limits(sockets_per_address=2, join_burst=1, joins_per_second=0.001))
    assert admission.open_socket("e1", "2001:db8:1:2::1") is None
    assert admission.open_socket("e2", "2001:db8:1:2:aaaa::9") is None  # a privacy address of the same host
    refused = admission.open_socket("e3", "2001:db8:1:2::3")
    assert refused is not None and refused.code == "limit_address" and "2001:db8:1:2::/64" in str(refused)
    assert admission.open_socket("e4", "2001:db8:1:3::1") is None  # the next network is another client
    assert admission.open_socket("e5", "::1") is None and admission.open_socket("e6", "127.0.0.1") is None
    admission.close_socket("e1")
    assert admission.sockets_from("2001:db8:1:2::ffff") == 1
    assert admission.open_socket("e3", "2001:db8:1:2::3") is None
    # one join bucket per /64 as well: a second address of the network does not get a fresh burst
    admission.connected("a", environ("2001:db8:1:2::1"))
    admission.connected("b", environ("2001:db8:1:2::2"))
    admission.admit_join("a", "token-a")
    with pytest.raises(LimitError) as too_fast:
        admission.admit_join("b", "token-b")
    assert too_fast.value.code == "limit_join_rate"


def test_ice_server_urls_with_ipv6_hosts_are_for_browsers_only(tmp_path: Path) -> None:
    for good in ("stun:stun.example.cn", "stun:192.0.2.1:3478", "turn:[2001:db8::1]:3478?transport=udp",
                 "stuns:[::1]"):
        assert check_ice_server(good) == good
    for bad in ("stun:[::1", "stun:[zz::1]:3478", "http://stun.example.cn", "stun:", "turn:host:3478?transport=x"):
        with pytest.raises(ValueError, match="ice-server"):
            check_ice_server(bad)
    assert aiortc_usable_ice_servers(["stun:[2001:db8::1]:3478", "stun:192.0.2.1:3478"]) == ["stun:192.0.2.1:3478"]
    with pytest.raises(SystemExit, match="--ice-server: 'stun:\\[::1' is not"):
        main(["serve", "--data-dir", str(tmp_path), "--ice-server", "stun:[::1"])


async def test_our_peers_still_connect_with_an_ipv6_stun_server_configured() -> None:
    """aiortc 1.16 raised "malformed uri" creating any connection with `stun:[…]` (every join failed)."""
    use_host_addresses(["::1"])
    try:
        config = rtc_configuration(["stun:[::1]:3478"])
        offerer, answerer = RTCPeerConnection(config), RTCPeerConnection(config)
        offerer.createDataChannel("check")
        await offerer.setLocalDescription(await offerer.createOffer())
        await answerer.setRemoteDescription(offerer.localDescription)
        await answerer.setLocalDescription(await answerer.createAnswer())
        await offerer.setRemoteDescription(answerer.localDescription)
        for _ in range(100):
            if offerer.connectionState == "connected" and answerer.connectionState == "connected":
                break
            await asyncio.sleep(0.05)
        assert offerer.connectionState == "connected"
        pair = selected_candidate_pair(offerer)
        assert pair is not None and pair["local"]["address"] == "::1" and pair["remote"]["address"] == "::1"
        await offerer.close()
        await answerer.close()
    finally:
        use_host_addresses(None)
