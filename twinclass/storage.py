"""Where lessons and the token secret live: one definition for `twinclass serve`, `twinclass token`
and `twinclass schedule apply`, so every command reads and writes the store the server uses.

Precedence: the command-line option, then the environment variable, then the data directory
(SQLite `DATA_DIR/twinclass.db`, the secret kept in `DATA_DIR/token-secret`). The secret is best
given as a file (`--secret-file`) or `$TWINCLASS_SECRET`: `--secret VALUE` shows in `ps` to every
local user (it still works, with a warning).

The data directory holds comments, attendance and the token secret: it is kept 0700 and the
SQLite database (with its -wal/-shm/-journal) 0600; looser modes found at start are tightened
with a WARNING.
"""

from __future__ import annotations

import argparse
import logging
import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from sfu.store import sqlite_url
from sfu.tokens import load_or_create_secret

logger = logging.getLogger(__name__)

DATABASE_URL_ENV = "TWINCLASS_DATABASE_URL"
SECRET_ENV = "TWINCLASS_SECRET"
SECRET_IN_PS_WARNING = ("WARNING: --secret on the command line is visible to other users of this machine "
                        f"(ps, /proc); prefer --secret-file PATH or ${SECRET_ENV}")


class SecretOnCommandLine(argparse.Action):
    """A secret given as a value: taken, with a warning that `ps` shows it (`warning`)."""

    warning = SECRET_IN_PS_WARNING

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        print(self.warning, file=sys.stderr, flush=True)  # logging is not set up yet; never the value
        setattr(namespace, self.dest, values)


class SecretFile(argparse.Action):
    """A secret read from the file PATH names (first line), kept out of `ps`."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        path = Path(str(values))
        option = option_string or "--secret-file"
        try:
            secret = path.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            parser.error(f"{option}: cannot read {path} ({type(exc).__name__})")
        if not secret:
            parser.error(f"{option}: {path} is empty")
        setattr(namespace, self.dest, secret)


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """`--database-url` and `--secret-file` / `--secret`, defaulting to the environment."""
    parser.add_argument("--database-url", default=os.environ.get(DATABASE_URL_ENV),
                        help=f"SQLAlchemy URL (default: ${DATABASE_URL_ENV}, else SQLite in the data dir)")
    # both options share one dest: argparse takes the first action's default, so both carry the env's
    parser.add_argument("--secret-file", dest="secret", action=SecretFile, metavar="PATH",
                        default=os.environ.get(SECRET_ENV),
                        help="read the token signing secret from PATH (first line; kept out of ps)")
    parser.add_argument("--secret", action=SecretOnCommandLine, default=os.environ.get(SECRET_ENV),
                        help=f"token signing secret (visible in ps: prefer --secret-file; default: ${SECRET_ENV}, "
                             "else kept in the data dir)")


def database_url(data_dir: Path, url: str | None) -> str:
    """The lesson store's SQLAlchemy URL: the one given, else SQLite in the data directory."""
    return url or sqlite_url(data_dir)


def token_secret(data_dir: Path, secret: str | None) -> str:
    """The token signing secret: the one given, else the data directory's (created on first use)."""
    return secret or load_or_create_secret(data_dir)


def prepare_data_dir(data_dir: Path) -> None:
    """Create the data directory 0700, or tighten an existing one that others could read (WARNING)."""
    if not data_dir.exists():
        old = os.umask(0o077)
        try:
            data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        finally:
            os.umask(old)
    _tighten(data_dir, 0o700, "data directory")


def secure_database_files(data_dir: Path, url: str | None = None, *, warn: bool = True) -> None:
    """The SQLite database and its -wal/-shm/-journal 0600 (SQLite gives the latter the database's mode).
    `warn=False` right after creating it (a new file's mode is the umask's, nothing to report)."""
    parsed = make_url(database_url(data_dir, url))
    if not parsed.drivername.startswith("sqlite") or not parsed.database or parsed.database == ":memory:":
        return
    db = Path(parsed.database)
    for path in (db, *(db.with_name(db.name + suffix) for suffix in ("-wal", "-shm", "-journal"))):
        if path.exists():
            _tighten(path, 0o600, "database file", warn=warn)


def _tighten(path: Path, mode: int, what: str, *, warn: bool = True) -> None:
    current = stat.S_IMODE(path.stat().st_mode)
    if current & ~mode & 0o777:
        if warn and current & 0o077:
            logger.warning("%s %s had mode %03o (other users could read it); setting %03o", what, path, current, mode)
        os.chmod(path, mode)
