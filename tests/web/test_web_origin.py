"""The socket.io Origin policy in a real Chromium (issue 10, item 5): the lesson page connects from
the server's own origin, whatever name reached the server (the Host it came to), by websocket
and by polling."""

from __future__ import annotations

from harness import ServerProcess, mint_token
from lesson_page import LessonPages

PROBE = """async (base) => {
  const ws = await new Promise((resolve) => {
    const sock = new WebSocket(base.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket");
    sock.onmessage = () => { sock.close(); resolve("open"); };
    sock.onerror = () => resolve("refused");
  });
  let polling;
  try {
    const resp = await fetch(base + "/socket.io/?EIO=4&transport=polling");
    polling = "status " + resp.status;
  } catch (err) {
    polling = "refused";
  }
  return { ws, polling };
}"""


def test_lesson_page_connects_from_the_servers_own_origins(
        server: ServerProcess, pages: LessonPages) -> None:
    rural = pages.open_as(server, "rural-1", "rural")
    rural.wait_connected(timeout=30)

    token = mint_token(server, role="observer", name="巡课")
    by_name = pages.open(server, token, label="observer-localhost")
    by_name.page.goto(f"http://localhost:{server.port}/lesson/demo?token={token}")
    by_name.wait_connected(timeout=30)

    # the socket.io endpoints answer the page's own origin (a foreign Origin is refused by the
    # server: tests/sfu/test_signaling_hostile.py; a foreign page in Chromium never gets as far, as
    # Chromium itself keeps public pages off loopback)
    assert rural.page.evaluate(PROBE, server.url) == {"ws": "open", "polling": "status 200"}
    assert rural.connection_state() == "connected" and by_name.connection_state() == "connected"
    assert "Traceback" not in server.log.read_text()
