"""Where lessons and the token secret live: one definition for `twinclass serve`, `twinclass token`
and `twinclass schedule apply`, so every command reads and writes the store the server uses.

Precedence: the command-line option, then the environment variable, then the data directory
(SQLite `DATA_DIR/twinclass.db`, the secret kept in `DATA_DIR/token-secret`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from sfu.store import sqlite_url
from sfu.tokens import load_or_create_secret

DATABASE_URL_ENV = "TWINCLASS_DATABASE_URL"
SECRET_ENV = "TWINCLASS_SECRET"


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """`--database-url` and `--secret`, defaulting to the environment."""
    parser.add_argument("--database-url", default=os.environ.get(DATABASE_URL_ENV),
                        help=f"SQLAlchemy URL (default: ${DATABASE_URL_ENV}, else SQLite in the data dir)")
    parser.add_argument("--secret", default=os.environ.get(SECRET_ENV),
                        help=f"token signing secret (default: ${SECRET_ENV}, else kept in the data dir)")


def database_url(data_dir: Path, url: str | None) -> str:
    """The lesson store's SQLAlchemy URL: the one given, else SQLite in the data directory."""
    return url or sqlite_url(data_dir)


def token_secret(data_dir: Path, secret: str | None) -> str:
    """The token signing secret: the one given, else the data directory's (created on first use)."""
    return secret or load_or_create_secret(data_dir)
