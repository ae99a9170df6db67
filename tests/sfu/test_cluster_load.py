"""Node load reports in a real Redis, and where a viewer is placed (sfu.cluster)."""

from __future__ import annotations

import asyncio

from harness import RedisProcess

from sfu.cluster import LOAD_TTL_S, NodeLoad, RedisRegistry, choose_node


def test_a_viewer_stays_where_it_arrived_while_that_node_has_room() -> None:
    nodes = [NodeLoad("http://a", subscribers=3, capacity=10), NodeLoad("http://b", subscribers=9, capacity=10)]
    assert choose_node(nodes, "http://b") == "http://b"


def test_a_full_node_sends_the_viewer_to_the_least_loaded_node_with_room() -> None:
    nodes = [NodeLoad("http://a", subscribers=10, capacity=10), NodeLoad("http://b", subscribers=8, capacity=10),
             NodeLoad("http://c", subscribers=2, capacity=4), NodeLoad("http://d", subscribers=1, capacity=10)]
    assert choose_node(nodes, "http://a") == "http://d"
    assert choose_node(nodes[:3], "http://a") == "http://c"  # 2/4 below 8/10
    full = [NodeLoad("http://a", subscribers=10, capacity=10), NodeLoad("http://b", subscribers=5, capacity=5)]
    assert choose_node(full, "http://a") == "http://a"  # nowhere better: it stays


async def test_nodes_report_their_load_and_a_dead_node_expires(redis_server: RedisProcess) -> None:
    a = RedisRegistry(redis_server.url, "http://a")
    b = RedisRegistry(redis_server.url, "http://b")
    try:
        a.report_load(lambda: NodeLoad("http://a", cpu=0.5, subscribers=7, bitrate_out=1e6, capacity=20))
        b.report_load(lambda: NodeLoad("http://b", subscribers=1))
        for _ in range(50):
            if len(await a.nodes()) == 2:
                break
            await asyncio.sleep(0.1)
        seen = {n.url: n for n in await b.nodes()}
        assert seen["http://a"] == NodeLoad("http://a", cpu=0.5, subscribers=7, bitrate_out=1e6, capacity=20)
        assert seen["http://b"].subscribers == 1
        # b stops refreshing (as a killed node does): it is gone within the TTL
        assert b._reporter is not None
        b._reporter.cancel()
        await asyncio.sleep(LOAD_TTL_S + 0.5)
        assert [n.url for n in await a.nodes()] == ["http://a"]
    finally:
        await a.close()
        await b.close()
    c = RedisRegistry(redis_server.url, "http://c")
    try:
        assert await c.nodes() == []  # a node that closes removes its key
        # ... but stays a member of the cluster (its pages' Origin is still taken elsewhere), dead or not
        c.report_load(lambda: NodeLoad("http://c"))
        for _ in range(50):
            if c.members():
                break
            await asyncio.sleep(0.1)
        assert c.members() == ("http://a", "http://b", "http://c")
    finally:
        await c.close()
