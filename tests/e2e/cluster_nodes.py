"""A cluster of real `serve` nodes for the end-to-end tests (imported as `cluster_nodes`): they share a
private Redis, the lesson store and the token secret, with the broadcast lesson "mingshi" created."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import ClassroomLauncher, RedisProcess, ServerProcess, free_port, start_server

LESSON = {"id": "mingshi", "kind": "broadcast", "title": "名师课堂 · 数学", "subject": "数学", "grade": "5",
          "master": {"id": "m1", "name": "名师工作室"}, "rurals": [{"id": "r1", "name": "山口教学点"}]}


def start_nodes(tmp_path: Path, redis: RedisProcess, count: int, *extra: list[str]) -> list[ServerProcess]:
    data = tmp_path / "var"  # the nodes share the lesson store and the token secret
    nodes = []
    for i in range(count):
        port = free_port()
        args = ["--redis-url", redis.url, "--node-url", f"http://127.0.0.1:{port}", "--no-tiers",
                *(extra[i] if i < len(extra) else [])]
        nodes.append(start_server(data, *args, port=port, env={"TWINCLASS_RECORDER_IDLE_S": "1"}))
    return nodes


def lesson_tokens(node: ServerProcess, listeners: str) -> dict[str, str]:
    admin = node.admin_token()
    status, body = node.api("/api/lessons", method="POST", body=LESSON, token=admin)
    assert status == 201, body
    status, body = node.api(f"/api/lessons/mingshi/tokens?listeners={listeners}", method="POST", token=admin)
    assert status == 200, body
    return dict(body["tokens"])


@dataclass
class Cluster:
    nodes: list[ServerProcess]
    tokens: dict[str, str]  # classroom -> its token for the lesson
    admin: str
    terminals: list[ClassroomLauncher]  # one per node


@contextmanager
def cluster(tmp_path: Path, redis: RedisProcess, count: int, listeners: str,
            *extra: list[str]) -> Iterator[Cluster]:
    """`count` nodes with the broadcast lesson created; everything stops at the end."""
    nodes = start_nodes(tmp_path, redis, count, *extra)
    launchers = [ClassroomLauncher(node, tmp_path) for node in nodes]
    try:
        yield Cluster(nodes, lesson_tokens(nodes[0], listeners), nodes[0].admin_token(), launchers)
    finally:
        for launcher in launchers:
            launcher.stop_all()
        for node in nodes:
            node.stop()


def lesson_stats(node: ServerProcess, admin: str) -> dict[str, Any]:
    return dict(node.api("/api/stats", token=admin)[1]["lessons"].get("mingshi", {}))
