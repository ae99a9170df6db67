"""Credentials never reach a log: one `logging.Filter` that rewrites them to ``[redacted]``.

What it rewrites, in the message, its arguments, the extras aiohttp's access logger attaches
(``first_request_line``, ``request_header``) and a traceback's text:

- ``token=…`` (also ``access_token=``, ``secret=``, a login's ``code=``, percent-encoded ``token%3D…``) in URLs;
- ``Authorization: Bearer …`` and any ``Bearer …``;
- JWT-looking strings (``eyJ….eyJ….…``: join and admin tokens);
- the server's token secret itself (`CredentialFilter.add_secret`).

The request line stays readable (``GET /api/lessons?token=[redacted] HTTP/1.1``). `install` puts
the filter on the root logger's handlers and on ``aiohttp.access``; calling it again (e.g. once
the secret is known) adds to the filter already installed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

REDACTED = "[redacted]"
ACCESS_LOGGER = "aiohttp.access"

_PATTERNS = (
    # token=..., access_token=..., secret=... in a query string or a form (also %3D-encoded)
    (re.compile(r"(?i)\b((?:access_)?token|secret|password|code)(=|%3D)[^&\s\"'<>;,]+"), rf"\1\2{REDACTED}"),
    (re.compile(r"(?i)\b(bearer\s+)[^\s\"',;]+"), rf"\1{REDACTED}"),
    (re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*"), REDACTED),
)
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class CredentialFilter(logging.Filter):
    """Rewrites credentials in every record it sees; never drops a record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__("")
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add_secret(secret)

    def add_secret(self, secret: str | None) -> None:
        if secret and len(secret) >= 8:  # a short string would blank ordinary words
            self._secrets.add(secret)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {k: self._value(v) for k, v in value.items()}
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the handler's own error path
            return True
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        for key, value in list(vars(record).items()):
            if key not in _RECORD_ATTRS:
                setattr(record, key, self._value(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def _installed(filterer: logging.Filterer) -> CredentialFilter | None:
    return next((f for f in filterer.filters if isinstance(f, CredentialFilter)), None)


def install(secrets: Iterable[str] = ()) -> CredentialFilter:
    """Put one CredentialFilter on every root handler and on aiohttp's access logger (idempotent:
    the one already there gets the new secrets). Returns it."""
    root = logging.getLogger()
    targets: list[logging.Filterer] = [*root.handlers, logging.getLogger(ACCESS_LOGGER)]
    found = next((f for f in (_installed(t) for t in targets) if f is not None), None)
    credential_filter = found or CredentialFilter()
    for secret in secrets:
        credential_filter.add_secret(secret)
    for target in targets:
        if _installed(target) is None:
            target.addFilter(credential_filter)
    return credential_filter
