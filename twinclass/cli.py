"""The `twinclass` command. Subcommands register themselves from their own packages; for those with
--log-level, logging is set up here before they run."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    from classroom_client import cli as classroom_cli
    from recorder import cli as recorder_cli
    from scheduler import cli as scheduler_cli
    from twinclass import commands
    from twinclass.lesson_port import lesson_port_from_args
    from twinclass.storage import add_store_options
    from web import timetable as timetable_pages

    parser = argparse.ArgumentParser(prog="twinclass", description="Twinclass twinning lessons")
    sub = parser.add_subparsers(dest="command", required=True)
    commands.add_commands(sub)
    classroom_cli.add_commands(sub)
    scheduler_cli.add_commands(sub, lesson_port_from_args, timetable_pages.render, add_store_options)
    recorder_cli.add_commands(sub)
    return parser


def configure_logging(level: str, log_format: str = "text") -> None:
    """Log lines to stderr at `level` (a subcommand's --log-level), as text or JSON (--log-format);
    aioice's chatter only from WARNING. Credentials are rewritten to [redacted] on every handler and
    in aiohttp's access log."""
    from twinclass import log_redaction
    from twinclass.log_format import formatter

    logging.basicConfig(level=level.upper())
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter(log_format))
    logging.getLogger("aioice").setLevel(logging.WARNING)
    log_redaction.install()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "log_level", None):
        configure_logging(args.log_level, getattr(args, "log_format", None) or "text")
    result = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
