"""Lesson study in real Chromium: an observer finds a recording, sees where the floor changed, reads
the S-T analysis and comments at 00:12; another observer finds that comment at its marker and
replies; a rubric is saved and the printable report shows it (and prints to PDF)."""

from __future__ import annotations

import re

from browser import ARTIFACTS
from harness import ServerProcess, wait_for
from playwright.sync_api import Page
from study_archive import ARCHIVE_ID
from study_pages import Pages, mint

DURATION = 30.0


def timeline_x(page: Page, t: float) -> tuple[float, float]:
    box = page.locator("#timeline").bounding_box()
    assert box is not None
    return box["x"] + box["width"] * t / DURATION, box["y"] + box["height"] / 2


def video_time(page: Page) -> float:
    return float(page.evaluate("document.getElementById('video').currentTime"))


def test_comment_at_0012_appears_at_its_marker_for_another_observer(study_server: ServerProcess,
                                                                     pages: Pages) -> None:
    server = study_server
    li = mint(server, role="observer", name="李老师")
    wang = mint(server, role="observer", name="王老师")

    # 李老师 finds the lesson in the library by the rural school's name and opens it
    a = pages.open(f"{server.url}/recordings?token={li}", "li")
    a.fill("input[name=school]", "山口")
    a.click("button[type=submit]")
    card = a.locator(f".recording-card[data-recording='{ARCHIVE_ID}']")
    card.wait_for()
    assert "天气单词" in card.inner_text() and "山口教学点" in card.inner_text()
    card.locator("a.title").click()
    a.wait_for_url(re.compile(rf"/recordings/{ARCHIVE_ID}\?"))
    a.wait_for_function("() => document.getElementById('video').readyState >= 1", timeout=20000)

    # where the floor changed: markers on the timeline and the events list
    assert a.eval_on_selector_all(".timeline-markers .marker.floor", "els => els.map(e => Number(e.dataset.t))") \
        == [12.0, 20.0]
    assert "发言权交给 山口教学点" in a.inner_text("#events")

    # the S-T analysis and speaking time (computed by the server in the background)
    a.wait_for_selector("#st [data-stat=type] .stat-value", timeout=60000)
    # one S-T sample (30 s) at 15 s: the master starts speaking at 15.0 s, so it speaks for half of the
    # 2 s around the sample -> T, Rt = 1 -> a lecture
    assert a.inner_text("#st [data-stat=type] .stat-value") == "讲授型"
    assert "自动近似" in a.inner_text("#st .approximation")
    shares = {r.get_attribute("data-classroom"): float(r.locator(".percent-lesson").inner_text().rstrip("%"))
              for r in a.locator(".speaking-table tbody tr").all()}
    assert abs(shares["master"] - 70) <= 5 and abs(shares["rural-1"] - 30) <= 5

    # click the timeline at 00:12 and write
    x, y = timeline_x(a, 12.2)
    a.mouse.click(x, y)
    wait_for(lambda: abs(video_time(a) - 12.2) < 0.3, 10, "the video to seek to 00:12")
    assert a.inner_text("#composer-time") == "00:12"
    a.fill("#comment-body", "00:12 主讲把发言权交给山口教学点，学生回答得很完整。")
    a.click("#btn-comment")
    a.locator("#comments > li .time-link", has_text="00:12").wait_for()

    # 王老师, elsewhere, sees a comment marker exactly there
    b = pages.open(f"{server.url}/recordings/{ARCHIVE_ID}?token={wang}", "wang")
    marker = b.locator("#comment-markers .marker.comment")
    marker.wait_for()
    assert marker.count() == 1
    assert 12.0 <= float(marker.get_attribute("data-t") or 0) < 13.0
    title = marker.get_attribute("title") or ""
    assert "李老师" in title and "学生回答得很完整" in title
    box = marker.bounding_box()
    assert box is not None
    mx, _my = timeline_x(b, 12.2)
    assert abs(box["x"] + box["width"] / 2 - mx) < 4, "the marker sits at 00:12 on the timeline"
    b.wait_for_function("() => document.getElementById('video').readyState >= 1", timeout=20000)
    marker.click()
    wait_for(lambda: abs(video_time(b) - 12.2) < 0.3, 10, "the video to jump to the comment")
    selected = b.locator("#comments > li.selected")
    assert "学生回答得很完整" in selected.inner_text() and "李老师" in selected.inner_text()

    # ...and replies; 李老师 sees the reply after a reload
    selected.locator(".reply-toggle").click()
    selected.locator(".reply-form textarea").fill("同意，等待时间只有 4 秒。")
    selected.locator(".reply-form button[type=submit]").click()
    b.locator("#comments .reply", has_text="等待时间只有 4 秒").wait_for()
    a.reload()
    a.locator("#comments .reply", has_text="王老师").wait_for()
    pages.screenshot(b, "recording")
    assert not [line for line in pages.log("li") + pages.log("wang") if "[pageerror]" in line]


def test_rubric_saved_and_printed_in_the_report(study_server: ServerProcess, pages: Pages) -> None:
    server = study_server
    zhao = mint(server, role="observer", name="赵老师")
    server.api(f"/api/recordings/{ARCHIVE_ID}/comments", method="POST", token=zhao,
               body={"t": 22.5, "body": "课件出现得正是时候。"})
    page = pages.open(f"{server.url}/recordings/{ARCHIVE_ID}?token={zhao}", "zhao")
    page.wait_for_selector("#rubric-form input[name=score-objectives]")
    scores = {"objectives": 90, "content": 85, "methods": 80, "participation": 95, "outcomes": 85,
              "teacher": 90, "technology": 70}
    for key, value in scores.items():
        page.fill(f"input[name=score-{key}]", str(value))
    page.fill("textarea[name=note-participation]", "两个教学点都参与了问答。")
    page.fill("textarea[name=overall-note]", "结构清楚，互动充分。")
    assert page.inner_text("#rubric-total") == "85.5" and page.inner_text("#rubric-band") == "良好"
    page.click("#rubric-form button[type=submit]")
    page.locator("#rubric-saved", has_text="已保存").wait_for()
    row = page.locator("#evaluations tr[data-evaluator='赵老师']")
    row.wait_for()
    assert "85.5" in row.inner_text() and "良好" in row.inner_text()

    with page.expect_popup() as popup:
        page.click("#link-report")
    report = popup.value
    report.wait_for_selector("body[data-ready='1']", timeout=60000)  # with the analysis
    assert report.inner_text("#report-title") == "英语 三年级 · 天气单词（同步课堂）"
    assert "李老师" in report.inner_text("#report-lesson")  # the teacher
    evaluation = report.locator("#report-rubric tr[data-evaluator='赵老师']")
    assert "85.5" in evaluation.inner_text() and "良好" in evaluation.inner_text()
    assert "两个教学点都参与了问答。" in report.inner_text("#report-rubric")
    assert "85.5 分，良好" in report.inner_text("#report-overall")
    assert "课件出现得正是时候。" in report.inner_text("#report-comments")
    assert "00:22" in report.inner_text("#report-comments")
    assert "发言权交给 山口教学点" in report.inner_text("#report-events")
    assert report.inner_text("#report-analysis #st [data-stat=type] .stat-value") == "讲授型"

    pdf = report.pdf(format="A4", print_background=True)
    assert pdf.startswith(b"%PDF")
    pages_in_pdf = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert 1 <= pages_in_pdf <= 6
    (ARTIFACTS / "study-report.pdf").write_bytes(pdf)
    report.emulate_media(media="print")
    assert report.locator(".report-tools").is_hidden(), "the buttons do not print"
    pages.screenshot(report, "report-print")

    # the same report in English
    report.emulate_media(media="screen")
    report.click("#btn-lang")
    report.locator(".kicker", has_text="Lesson-study report").wait_for()
    assert "Good" in report.locator("#report-rubric tr[data-evaluator='赵老师']").inner_text()
