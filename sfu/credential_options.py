"""Command-line options for a credential kept out of `ps`: `--NAME-file PATH`, `$ENV`, and `--NAME VALUE`
(still accepted, with a warning on stderr: every local user sees a process's arguments in `ps` and
/proc). One definition for `twinclass serve`/`token` (`--secret`) and `twinclass classroom` (`--token`).

Both options share one dest and one default (the environment variable): argparse takes the first
action's default, so each carries it. The value itself is never printed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def in_ps_warning(option: str, env: str) -> str:
    return (f"WARNING: --{option} on the command line is visible to other users of this machine "
            f"(ps, /proc); prefer --{option}-file PATH or ${env}")


class _OnCommandLine(argparse.Action):
    def __init__(self, *args: Any, warning: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.warning = warning

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        print(self.warning, file=sys.stderr, flush=True)  # logging is not set up yet; never the value
        setattr(namespace, self.dest, values)


class _FromFile(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        path = Path(str(values))
        try:
            value = path.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            parser.error(f"{option_string}: cannot read {path} ({type(exc).__name__})")
        if not value:
            parser.error(f"{option_string}: {path} is empty")
        setattr(namespace, self.dest, value)


def add_credential_options(parser: argparse.ArgumentParser, option: str, env: str, what: str,
                           fallback: str = "") -> None:
    """`--OPTION-file PATH` and `--OPTION VALUE` into `args.OPTION` (dashes as underscores), default `$ENV` (else None).
    `what` names the credential in the help; `fallback` says what happens without one."""
    dest = option.replace("-", "_")
    default = os.environ.get(env) or None
    otherwise = f", else {fallback}" if fallback else ""
    parser.add_argument(f"--{option}-file", dest=dest, action=_FromFile, metavar="PATH", default=default,
                        help=f"read the {what} from PATH (kept out of ps; default: ${env}{otherwise})")
    parser.add_argument(f"--{option}", dest=dest, action=_OnCommandLine, default=default,
                        warning=in_ps_warning(option, env),
                        help=f"the {what} itself (visible in ps: prefer --{option}-file or ${env})")
