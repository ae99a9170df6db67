"""Observer and admin links are each their own author (issue 10, item 3): two observer links minted
the way `twinclass serve` mints them (its `join_links`, once per start) cannot delete or overwrite
each other's comment or evaluation through the real HTTP API; nor can two admin tokens."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import cast

from harness import ServerProcess
from study_archive import ARCHIVE_ID

from sfu.lessons import Classroom, Lesson
from sfu.tokens import TokenIssuer
from twinclass.server import ServerConfig, Services, join_links

REC = f"/api/recordings/{ARCHIVE_ID}"


def serve_observer_link(server: ServerProcess, lesson: Lesson) -> str:
    """The observer token of the links `twinclass serve` prints for `lesson` (as at one start)."""
    issuer = TokenIssuer((server.data_dir / "token-secret").read_text().strip())
    services = cast(Services, SimpleNamespace(config=ServerConfig(port=server.port), tokens=issuer))
    [token] = [token for who, token, _link in join_links(services, lesson) if who == "observer"]
    return token


def test_observer_links_from_two_starts_and_two_admin_tokens_are_different_authors(
        study_server: ServerProcess) -> None:
    server = study_server
    issuer = TokenIssuer((server.data_dir / "token-secret").read_text().strip())
    # the links this server printed when it started carry a `sub` of their own
    printed = re.findall(r"observer\s+\S+\?token=(\S+)", server.log.read_text())
    assert printed and issuer.verify(printed[0]).sub

    lesson = Lesson(id="study-synth", title="t", subject="英语", grade="3", master=Classroom("master", "M"),
                    rurals=[Classroom("rural-1", "R1")])
    first, second = serve_observer_link(server, lesson), serve_observer_link(server, lesson)
    assert issuer.verify(first).name == issuer.verify(second).name  # minted alike...
    assert issuer.verify(first).sub != issuer.verify(second).sub  # ...yet two people

    status, comment = server.api(f"{REC}/comments", method="POST", body={"t": 5, "body": "第一位观察员"}, token=first)
    assert status == 201 and comment["mine"] is True
    status, body = server.api(f"{REC}/comments", token=second)
    assert status == 200 and [c["mine"] for c in body["comments"]] == [False]
    assert server.api(f"{REC}/comments/{comment['id']}", method="DELETE", token=second)[0] == 403
    _status, body = server.api(f"{REC}/comments", token=first)
    assert body["comments"][0]["body"] == "第一位观察员" and not body["comments"][0]["deleted"]

    _status, rubric = server.api("/api/study/rubric", token=first)
    scores = {d["key"]: {"score": 90, "note": ""} for d in rubric["dimensions"]}
    assert server.api(f"{REC}/evaluations/mine", method="PUT", body={"scores": scores}, token=first)[0] == 200
    low = {k: {"score": 60, "note": ""} for k in scores}
    assert server.api(f"{REC}/evaluations/mine", method="PUT", body={"scores": low}, token=second)[0] == 200
    admins = [issuer.mint_admin("admin"), issuer.mint_admin("admin")]
    for admin in admins:
        assert server.api(f"{REC}/evaluations/mine", method="PUT", body={"scores": low}, token=admin)[0] == 200
    _status, body = server.api(f"{REC}/evaluations", token=admins[0])
    assert sorted(e["total"] for e in body["evaluations"]) == [60.0, 60.0, 60.0, 90.0], body
    mine = [e for e in server.api(f"{REC}/evaluations", token=first)[1]["evaluations"] if e["mine"]]
    assert [e["total"] for e in mine] == [90.0], "the second link overwrote the first link's evaluation"
