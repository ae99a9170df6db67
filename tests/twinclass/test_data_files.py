"""The data directory and the secret (issue 10, item 5): the directory is 0700 and the database 0600,
a looser existing directory is tightened with a WARNING; the secret can come from a file, and
`--secret` on the command line warns that `ps` shows it (never printing it)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from harness import TWINCLASS, start_server

from sfu.tokens import TokenIssuer


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_data_dir_is_private_and_a_loose_one_is_tightened(tmp_path: Path) -> None:
    data = tmp_path / "var"  # the server creates it (the harness's own dir only holds the log)
    with start_server(tmp_path / "log", "--no-demo", "--data-dir", str(data),
                      env={"TWINCLASS_RECORDER": "0"}) as server:
        assert mode(data) == 0o700
        db = data / "twinclass.db"
        assert db.exists() and mode(db) == 0o600
        for sidecar in (data / "twinclass.db-wal", data / "twinclass.db-shm", data / "twinclass.db-journal"):
            assert not sidecar.exists() or mode(sidecar) == 0o600
        assert mode(data / "token-secret") == 0o600
        assert "WARNING" not in server.log.read_text()
    os.chmod(data, 0o755)
    os.chmod(data / "twinclass.db", 0o644)
    with start_server(data, "--no-demo", env={"TWINCLASS_RECORDER": "0"}) as server:
        assert mode(data) == 0o700 and mode(data / "twinclass.db") == 0o600
        log = server.log.read_text()
    assert f"data directory {data} had mode 755" in log and "database file" in log and "had mode 644" in log


def test_secret_file_is_used_by_token_and_serve_alike(tmp_path: Path) -> None:
    secret = "a-secret-kept-in-a-file-at-least-32-bytes-long"
    secret_file = tmp_path / "secret"
    secret_file.write_text(secret + "\n")
    secret_file.chmod(0o600)
    data = tmp_path / "var"
    token = subprocess.check_output([TWINCLASS, "token", "--data-dir", str(data), "--secret-file", str(secret_file),
                                     "--role", "admin"], text=True).strip()
    assert TokenIssuer(secret).verify(token).role == "admin"
    with start_server(data, "--no-demo", "--secret-file", str(secret_file),
                      env={"TWINCLASS_RECORDER": "0"}) as server:
        status, _ = server.api("/api/lessons", token=token)
        assert status == 200, "serve --secret-file and token --secret-file must agree"
        assert server.api("/api/lessons", token=TokenIssuer("another-secret-that-is-32-bytes-long!!")
                          .mint_admin())[0] == 401
        assert not (data / "token-secret").exists(), "a given secret is not replaced by the data dir's"
        assert secret not in server.log.read_text()
    # --secret still works, with a warning that names the risk and never the value
    run = subprocess.run([TWINCLASS, "token", "--data-dir", str(data), "--secret", secret, "--role", "admin"],
                         capture_output=True, text=True, check=True)
    assert TokenIssuer(secret).verify(run.stdout.strip()).role == "admin"
    assert "visible to other users" in run.stderr and "--secret-file" in run.stderr and secret not in run.stderr
    missing = subprocess.run([TWINCLASS, "token", "--data-dir", str(data), "--secret-file", str(tmp_path / "nope"),
                              "--role", "admin"], capture_output=True, text=True)
    assert missing.returncode == 2 and "--secret-file: cannot read" in missing.stderr
