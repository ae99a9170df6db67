"""Who the client is and which pages may connect (sfu.admission): the client address behind trusted
proxies, the Origin policy's own origins, the join token bucket."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from sfu.admission import Admission, LimitError, Limits, OriginPolicy, TokenBucket, TrustedProxies, normalize_origin


def environ(peer: str, **headers: str) -> dict[str, Any]:
    return {"aiohttp.request": SimpleNamespace(remote=peer), "REMOTE_ADDR": "127.0.0.1",
            **{f"HTTP_{k.upper()}": v for k, v in headers.items()}}


def test_the_client_address_is_the_peer_unless_a_trusted_proxy_names_it() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    assert proxies.client_address(environ("192.0.2.7", x_forwarded_for="1.2.3.4")) == "192.0.2.7"  # not a proxy
    assert proxies.client_address(environ("10.0.0.5", x_forwarded_for="1.2.3.4")) == "1.2.3.4"
    # a client cannot choose its address by sending X-Forwarded-For through the proxy: the last untrusted hop counts
    assert proxies.client_address(environ("10.0.0.5", x_forwarded_for="6.6.6.6, 1.2.3.4, 10.0.0.9")) == "1.2.3.4"
    assert proxies.client_address(environ("10.0.0.5")) == "10.0.0.5"
    assert TrustedProxies().client_address(environ("::1", x_forwarded_for="1.2.3.4")) == "::1"


def test_origin_policy_allows_the_servers_own_origins_and_the_configured_ones() -> None:
    policy = OriginPolicy("http://127.0.0.1:8080", ["https://School.example:443"], TrustedProxies(["10.0.0.0/8"]))
    own = environ("192.0.2.7", host="lesson.school.cn:8080")
    assert policy.allows(None, own)
    assert policy.allows("http://127.0.0.1:8080", own) and policy.allows("https://school.example", own)
    assert policy.allows("http://lesson.school.cn:8080", own)  # the Host the request came to
    for foreign in ("http://evil.example", "null", "http://127.0.0.1:8081", "http://lesson.school.cn",
                    "http://127.0.0.1:8080.evil.example", "file://", "http://127.0.0.1:8080/path"):
        assert not policy.allows(foreign, own), foreign
    # behind a trusted proxy its X-Forwarded-Host is the Host; from anyone else that header is ignored
    assert policy.allows("https://twin.school.cn", environ("10.1.1.1", host="backend:8080",
                                                            x_forwarded_host="twin.school.cn"))
    assert not policy.allows("https://twin.school.cn", environ("192.0.2.7", host="backend:8080",
                                                                x_forwarded_host="twin.school.cn"))
    assert normalize_origin("HTTPS://Example.COM:443") == "https://example.com"
    with pytest.raises(ValueError):
        OriginPolicy("http://127.0.0.1:8080", ["evil.example"])


def test_origin_policy_allows_pages_of_the_clusters_other_nodes() -> None:
    """A viewer's page whose node died connects to another node (web/static/js/failover.js): that
    node takes the Origin of any member of the cluster, as the registry lists them now."""
    members = ["http://127.0.0.1:8080", "http://10.0.0.2:8080", "https://Node3.School.cn:443"]
    policy = OriginPolicy("http://127.0.0.1:8080", (), cluster=lambda: members)
    here = environ("192.0.2.7", host="127.0.0.1:8080")
    assert policy.allows("http://10.0.0.2:8080", here) and policy.allows("https://node3.school.cn", here)
    assert not policy.allows("http://10.0.0.2:8081", here) and not policy.allows("http://10.0.0.3:8080", here)
    members.remove("http://10.0.0.2:8080")  # read each time: a node no longer a member is refused
    assert not policy.allows("http://10.0.0.2:8080", here)
    assert not OriginPolicy("http://127.0.0.1:8080").allows("http://10.0.0.2:8080", here)  # no cluster


def test_join_limits_per_address_and_per_token() -> None:
    bucket = TokenBucket(rate=2, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.5) and not bucket.take(0.5)
    admission = Admission(Limits(sockets_per_token=2, join_burst=100, joins_per_second=100))
    for sid in "abc":
        admission.connected(sid, environ("192.0.2.7"))
    admission.admit_join("a", "token-1")
    admission.admit_join("b", "token-1")
    with pytest.raises(LimitError) as refused:
        admission.admit_join("c", "token-1")
    assert refused.value.code == "limit_token" and "at most 2" in str(refused.value)
    admission.left("a")
    admission.admit_join("c", "token-1")
    assert admission.holds("c") and not admission.holds("a") and admission.idle_since("a") is not None
    with pytest.raises(ValueError):
        Limits(join_timeout_s=0)
