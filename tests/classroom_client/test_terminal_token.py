"""Where the terminal's join token comes from (`twinclass classroom`): `--token-file PATH` or
`$TWINCLASS_TOKEN` keep it out of `ps`; `--token VALUE` still works and warns, never printing it.
(tests/e2e/test_ipv6.py joins a lesson with a token file and with the variable.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from twinclass.cli import build_parser

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoicnVyYWwifQ.c2lnbmF0dXJl"


def parse(*args: str) -> str | None:
    parsed = build_parser().parse_args(["classroom", "--server", "http://[::1]:8080", *args])
    return parsed.token  # type: ignore[no-any-return]


def test_the_token_comes_from_a_file_the_environment_or_the_command_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("TWINCLASS_TOKEN", raising=False)
    token_file = tmp_path / "rural-1.token"
    token_file.write_text(TOKEN + "\n")
    assert parse("--token-file", str(token_file)) == TOKEN
    assert parse() is None  # run_classroom refuses to start without one (below)
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("TWINCLASS_TOKEN", TOKEN)
    assert parse() == TOKEN
    assert parse("--token-file", str(token_file)) == TOKEN
    assert capsys.readouterr().err == ""
    assert parse("--token", TOKEN) == TOKEN
    err = capsys.readouterr().err
    assert "visible to other users" in err and "--token-file" in err and TOKEN not in err


def test_a_missing_or_empty_token_is_refused_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("TWINCLASS_TOKEN", raising=False)
    empty = tmp_path / "empty.token"
    empty.write_text("\n")
    for args, message in ((["--token-file", str(empty)], f"--token-file: {empty} is empty"),
                          (["--token-file", str(tmp_path / "nowhere")], "--token-file: cannot read"),
                          ([], "a join token is required: --token-file PATH, $TWINCLASS_TOKEN or --token")):
        with pytest.raises(SystemExit) as exited:
            parsed = build_parser().parse_args(["classroom", "--server", "http://127.0.0.1:1", *args])
            parsed.func(parsed)
        assert exited.value.code == 2
        assert message in capsys.readouterr().err, args
