"""The lesson-study API on a real server holding one built recording: library filters, analysis,
comments and replies, the rubric and evaluations, and who may do what."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from harness import ServerProcess, wait_until
from study_archive import ARCHIVE_ID, LESSON
from study_pages import mint

REC = f"/api/recordings/{ARCHIVE_ID}"


def analysis_ready(server: ServerProcess, token: str) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def ready() -> bool:
        status, body = server.api(f"{REC}/analysis", token=token)
        out.update(body)
        return status == 200

    wait_until(ready, 60, message="the classroom analysis of the recording")
    return out


def test_library_analysis_comments_and_rubric_api(study_server: ServerProcess) -> None:
    server = study_server
    li = mint(server, role="observer", name="李老师（教研员）")
    wang = mint(server, role="observer", name="王老师")
    admin = server.admin_token()
    master = mint(server, role="master", name="主讲", lesson="study-synth", classroom="master")
    rural = mint(server, role="rural", name="山口", lesson="study-synth", classroom="rural-1")
    other_master = mint(server, role="master", name="别的课", lesson="demo", classroom="master")

    # the library: filters on the lesson's places and people
    def found(**query: str) -> list[str]:
        qs = urlencode(query)
        status, body = server.api(f"/api/study/recordings?{qs}", token=li)
        assert status == 200, body
        return [r["id"] for r in body["recordings"]]

    assert found() == [ARCHIVE_ID]
    assert found(school="山口") == [ARCHIVE_ID] and found(school="不存在的学校") == []
    assert found(teacher="李老师", subject="英语", grade="3", county="青山县") == [ARCHIVE_ID]
    assert found(classroom="rural-1") == [ARCHIVE_ID] and found(classroom="rural-9") == []
    assert found(**{"from": "2000-01-01", "to": "2000-01-02"}) == []
    status, body = server.api("/api/study/recordings", token=other_master)
    assert status == 200 and body["recordings"] == [], "a classroom token sees its own lesson's recordings only"

    # the analysis, computed by the server on its own
    a = analysis_ready(server, li)
    by_id = {c["id"]: c for c in a["classrooms"]}
    assert abs(by_id["master"]["percent_of_lesson"] - 70) <= 5 and abs(by_id["rural-1"]["percent_of_lesson"] - 30) <= 5
    assert [f["t"] for f in a["floor_changes"]] == [12.0, 20.0]
    assert a["hands"]["answered"] == 1 and a["hands"]["items"][0]["wait_s"] == 4.0
    status, fine = server.api(f"{REC}/analysis?interval=5", token=rural)
    assert status == 200 and fine["st"]["n"] == 6 and fine["st"]["interval_s"] == 5.0

    # comments: observers write, a reply joins the thread, the master reads, a rural classroom does not
    status, c = server.api(f"{REC}/comments", method="POST", body={"t": 12, "body": "把发言权交给山口教学点，很及时。"},
                           token=li)
    assert status == 201 and c["t"] == 12 and c["author"] == {"name": "李老师（教研员）", "role": "observer"}
    status, reply = server.api(f"{REC}/comments", method="POST", body={"parent": c["id"], "body": "同意。"},
                               token=wang)
    assert status == 201 and reply["parent"] == c["id"]
    assert server.api(f"{REC}/comments", method="POST", body={"t": 999, "body": "x"}, token=li)[0] == 400
    assert server.api(f"{REC}/comments", method="POST", body={"t": 3, "body": "  "}, token=li)[0] == 400
    assert server.api(f"{REC}/comments", method="POST", body={"t": 3, "body": "x"}, token=master)[0] == 403
    assert server.api(f"{REC}/comments", token=rural)[0] == 403
    status, body = server.api(f"{REC}/comments", token=master)
    assert status == 200
    [thread] = body["comments"]
    assert thread["body"].startswith("把发言权") and [r["body"] for r in thread["replies"]] == ["同意。"]
    assert server.api(f"{REC}/comments/{c['id']}", method="DELETE", token=wang)[0] == 403

    # the rubric: defaults from the lesson-study vocabulary; an evaluation per author, updated in place
    status, rubric = server.api("/api/study/rubric", token=li)
    assert [d["name"] for d in rubric["dimensions"]] == ["教学目标", "教学内容", "教学方法/过程", "学生参与",
                                                         "教学效果", "教师素养", "技术运用"]
    assert sum(d["weight"] for d in rubric["dimensions"]) == 100
    scores = {d["key"]: {"score": 80, "note": ""} for d in rubric["dimensions"]}
    scores["participation"] = {"score": 100, "note": "三个教学点都有发言"}
    status, ev = server.api(f"{REC}/evaluations/mine", method="PUT", body={"scores": scores, "note": "好课"},
                            token=li)
    assert status == 200 and ev["total"] == 84.0 and ev["band"]["name"] == "良好"
    scores["participation"]["score"] = 60
    status, ev = server.api(f"{REC}/evaluations/mine", method="PUT", body={"scores": scores}, token=li)
    assert ev["total"] == 76.0
    del scores["technology"]
    status, err = server.api(f"{REC}/evaluations/mine", method="PUT", body={"scores": scores}, token=wang)
    assert status == 400 and "technology" in err["error"]
    status, body = server.api(f"{REC}/evaluations", token=master)
    assert status == 200 and [e["total"] for e in body["evaluations"]] == [76.0]
    assert server.api(f"{REC}/evaluations", token=rural)[0] == 403

    # an administrator changes the rubric; earlier evaluations keep the rubric they were written against
    new = {"dimensions": [{"key": "participation", "name": "学生参与", "name_en": "Participation", "weight": 2},
                          {"key": "outcomes", "name": "教学效果", "weight": 1}]}
    assert server.api("/api/study/rubric", method="PUT", body=new, token=li)[0] == 403
    status, changed = server.api("/api/study/rubric", method="PUT", body=new, token=admin)
    assert status == 200 and [d["key"] for d in changed["dimensions"]] == ["participation", "outcomes"]
    status, ev2 = server.api(f"{REC}/evaluations/mine", method="PUT",
                             body={"scores": {"participation": 90, "outcomes": 60}}, token=wang)
    assert status == 200 and ev2["total"] == 80.0
    status, body = server.api(f"{REC}/evaluations", token=admin)
    assert [len(e["rubric"]["dimensions"]) for e in body["evaluations"]] == [7, 2]
    assert body["summary"]["count"] == 2 and body["summary"]["total"] == 78.0

    # library counts, and a deleted comment's reply keeps its thread
    assert server.api(f"{REC}/comments/{c['id']}", method="DELETE", token=admin)[0] == 200
    status, body = server.api("/api/study/recordings", token=admin)
    [item] = body["recordings"]
    assert (item["comments"], item["evaluations"]) == (1, 2)
    status, body = server.api(f"{REC}/comments", token=li)
    assert body["comments"][0]["deleted"] and body["comments"][0]["replies"][0]["body"] == "同意。"


def test_observer_links_reach_their_own_lesson_only_and_each_is_its_own_author(study_server: ServerProcess) -> None:
    server = study_server
    admin = server.admin_token()
    status, created = server.api("/api/lessons", method="POST", body=LESSON, token=admin)
    assert status == 201, created

    def link(lesson: str) -> str:
        status, body = server.api(f"/api/lessons/{lesson}/tokens", method="POST", token=admin)
        assert status == 200, body
        return str(body["tokens"]["observer"])

    mine, also_mine, elsewhere = link("study-synth"), link("study-synth"), link("demo")
    scores = {d["key"]: 80 for d in server.api("/api/study/rubric", token=mine)[1]["dimensions"]}

    # another lesson's observer link: nothing of this recording, no patrol wall
    for path in (REC, f"{REC}/files/lesson.mp4", f"/api/study/recordings/{ARCHIVE_ID}", f"{REC}/analysis",
                 f"{REC}/comments", f"{REC}/evaluations", f"/api/study/report/{ARCHIVE_ID}"):
        assert server.api(path, token=elsewhere)[0] == 403, path
    assert server.api("/api/recordings", token=elsewhere)[1]["recordings"] == []
    assert server.api(f"/api/recordings?lesson={LESSON['id']}", token=elsewhere)[0] == 403
    assert server.api("/api/study/recordings", token=elsewhere)[1]["recordings"] == []
    assert server.api(f"{REC}/comments", method="POST", body={"t": 3, "body": "x"}, token=elsewhere)[0] == 403
    assert server.api(f"{REC}/evaluations/mine", method="PUT", body={"scores": scores}, token=elsewhere)[0] == 403
    assert server.api("/api/patrol", token=elsewhere)[0] == 403
    assert server.api("/api/patrol", token=mine)[0] == 403

    # this lesson's links watch, comment and evaluate, each as its own author
    assert server.api(REC, token=mine)[0] == 200
    assert [r["id"] for r in server.api("/api/study/recordings", token=mine)[1]["recordings"]] == [ARCHIVE_ID]
    status, detail = server.api(f"/api/study/recordings/{ARCHIVE_ID}", token=mine)
    assert status == 200 and detail["may"] == {"study": True, "write": True}
    status, c = server.api(f"{REC}/comments", method="POST", body={"t": 5, "body": "导入自然。"}, token=mine)
    assert status == 201 and c["mine"]
    assert server.api(f"{REC}/comments/{c['id']}", method="DELETE", token=also_mine)[0] == 403
    for token, score in ((mine, 80), (also_mine, 60)):
        body = {"scores": {k: score for k in scores}}
        assert server.api(f"{REC}/evaluations/mine", method="PUT", body=body, token=token)[0] == 200
    status, body = server.api(f"{REC}/evaluations", token=also_mine)
    assert status == 200
    assert sorted((e["total"], e["mine"]) for e in body["evaluations"]) == [(60.0, True), (80.0, False)]
    assert server.api(f"{REC}/comments/{c['id']}", method="DELETE", token=mine)[0] == 200
