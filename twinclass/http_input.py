"""Request input for every HTTP route, parsed and bounded in one place.

Every route reads its query parameters, path ids and JSON bodies through these functions, so
that a hostile or careless client gets a 400 (or 404 for a path id) whose JSON body names the
field, ``{"error": "<field>: <reason>"}``, and never a 500 from Python or SQLite:

- whole numbers are plain ASCII digits within the route's bounds (``offset=9223372036854775808``
  is a 400, not an OverflowError from SQLite);
- dates and date-times are ISO 8601 with a year between `MIN_YEAR` and `MAX_YEAR`, so that
  converting them to UTC or to the server's local time (and adding a day) cannot overflow;
- path ids (comment ids) are positive and fit a signed 64-bit column, else 404 naming the field;
- JSON bodies are at most as deep as `MAX_JSON_DEPTH`, checked before `json.loads` recurses,
  without NaN or Infinity or lone surrogates, and an object where the route needs one.

The media plane (`sfu.media`) never imports this module; the routes of `sfu`, `recorder`,
`scheduler` and `web` do.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web

MIN_YEAR = 1900
MAX_YEAR = 2999
MAX_JSON_DEPTH = 32
MAX_ID = 2**63 - 1  # SQLite's INTEGER
MAX_PARAM_CHARS = 200

_INT_RE = re.compile(r"[+-]?[0-9]{1,19}")
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]{1,19}(?:\.[0-9]{0,19})?|\.[0-9]{1,19})(?:[eE][+-]?[0-9]{1,3})?")
_STRING_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET_RE = re.compile(r"[^\[\]{}]+")
_INNERMOST_RE = re.compile(r"\[\]|\{\}")


class InputError(ValueError):
    """A request value that cannot be accepted; `str()` is ``"<field>: <reason>"``."""

    def __init__(self, name: str, reason: str, status: int = 400) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.status = status


def error_response(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status,
                             dumps=lambda d: json.dumps(d, ensure_ascii=False))


def http_error(exc: InputError) -> web.HTTPException:
    """The aiohttp exception to raise for an InputError (JSON body naming the field)."""
    kind: type[web.HTTPException] = web.HTTPNotFound if exc.status == 404 else web.HTTPBadRequest
    return kind(text=json.dumps({"error": str(exc)}, ensure_ascii=False), content_type="application/json")


def _query(source: web.Request | Mapping[str, str]) -> Mapping[str, str]:
    return source.query if isinstance(source, web.Request) else source


def _raw(source: web.Request | Mapping[str, str], name: str) -> str | None:
    raw = _query(source).get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_PARAM_CHARS:
        raise http_error(InputError(name, f"at most {MAX_PARAM_CHARS} characters"))
    return raw


# -- numbers ------------------------------------------------------------------------------------

def _got(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def int_value(value: object, name: str, lo: int, hi: int) -> int:
    """A whole number in [lo, hi] from a query string or a JSON value (not a bool, not a float)."""
    reason = f"a whole number from {lo} to {hi}, got {_got(value)}"
    if isinstance(value, str):
        if not _INT_RE.fullmatch(value.strip()):
            raise InputError(name, reason)
        number = int(value.strip())
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise InputError(name, reason)
    if not lo <= number <= hi:
        raise InputError(name, reason)
    return number


def int_param(source: web.Request | Mapping[str, str], name: str, lo: int, hi: int, default: int) -> int:
    """`?name=` as a whole number in [lo, hi], else `default` when absent; 400 naming it."""
    raw = _raw(source, name)
    if raw is None:
        return default
    try:
        return int_value(raw, name, lo, hi)
    except InputError as exc:
        raise http_error(exc) from None


def float_param(source: web.Request | Mapping[str, str], name: str, lo: float, hi: float, default: float,
                *, lo_open: bool = False) -> float:
    """`?name=` as a finite number in [lo, hi] (or (lo, hi] with `lo_open`); 400 naming it."""
    raw = _raw(source, name)
    if raw is None:
        return default
    low = "above" if lo_open else "from"
    reason = f"a number {low} {_num(lo)} to {_num(hi)}, got {_got(raw)}"
    if not _FLOAT_RE.fullmatch(raw.strip()):
        raise http_error(InputError(name, reason))
    value = float(raw)
    if not math.isfinite(value) or value > hi or value < lo or (lo_open and value == lo):
        raise http_error(InputError(name, reason))
    return value


def id_value(value: object, name: str) -> int:
    """A row id (1 to 2^63-1) from a JSON value or a path segment; 400 naming the field."""
    return int_value(value, name, 1, MAX_ID)


def id_param(request: web.Request, name: str) -> int:
    """A path id such as a comment id: 404 naming it when it cannot be a row id."""
    raw = request.match_info[name]
    if not _INT_RE.fullmatch(raw) or not 1 <= int(raw) <= MAX_ID:
        raise http_error(InputError(name, "no such id", status=404))
    return int(raw)


def path_param(request: web.Request, name: str) -> str:
    """A path segment that names a file: 404 for a NUL or control character (never a ValueError)."""
    raw = request.match_info[name]
    if any(ord(c) < 32 or c == "\x7f" for c in raw):
        raise web.HTTPNotFound()
    return raw


# -- dates ----------------------------------------------------------------------------------------

def _year_ok(d: date | datetime) -> bool:
    return MIN_YEAR <= d.year <= MAX_YEAR


def datetime_value(value: object, name: str) -> datetime:
    """An ISO 8601 date or date-time as an aware datetime (naive values are server-local time),
    with a year from MIN_YEAR to MAX_YEAR in UTC and in local time."""
    reason = f"an ISO 8601 date-time, years {MIN_YEAR} to {MAX_YEAR}"
    if not isinstance(value, str) or len(value) > 64:
        raise InputError(name, reason)
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InputError(name, f"not an ISO 8601 date-time ({value[:40]!r})") from None
    if not _year_ok(parsed):
        raise InputError(name, reason)
    try:
        aware = parsed.astimezone() if parsed.tzinfo is None else parsed
        if not (_year_ok(aware.astimezone(UTC)) and _year_ok(aware.astimezone())):
            raise InputError(name, reason)
    except (OverflowError, OSError, ValueError):
        raise InputError(name, reason) from None
    return aware


def local_naive(value: object, name: str) -> datetime:
    """`datetime_value` as server-local wall-clock time without a zone (how lessons keep planned times)."""
    return datetime_value(value, name).astimezone().replace(tzinfo=None)


def datetime_param(source: web.Request | Mapping[str, str], name: str) -> datetime | None:
    """`?name=` as an aware datetime (see `datetime_value`), None when absent; 400 naming it."""
    raw = _raw(source, name)
    if raw is None:
        return None
    try:
        return datetime_value(raw, name)
    except InputError as exc:
        raise http_error(exc) from None


def utc_naive_param(source: web.Request | Mapping[str, str], name: str) -> datetime | None:
    """`?name=` as a naive UTC datetime (how catalogs keep times), None when absent."""
    at = datetime_param(source, name)
    return at.astimezone(UTC).replace(tzinfo=None) if at else None


def date_value(value: object, name: str) -> date:
    """A calendar day YYYY-MM-DD (a longer ISO date-time: its date) with a year in range."""
    reason = f"a date YYYY-MM-DD, years {MIN_YEAR} to {MAX_YEAR}"
    if not isinstance(value, str) or len(value) > 64:
        raise InputError(name, reason)
    try:
        day = date.fromisoformat(value.strip()[:10])
    except ValueError:
        raise InputError(name, f"not a date YYYY-MM-DD ({value[:40]!r})") from None
    if not _year_ok(day) or not _year_ok(day + timedelta(days=1)):
        raise InputError(name, reason)
    return day


def date_param(source: web.Request | Mapping[str, str], name: str) -> date | None:
    """`?name=` as a calendar day, None when absent; 400 naming it."""
    raw = _raw(source, name)
    if raw is None:
        return None
    try:
        return date_value(raw, name)
    except InputError as exc:
        raise http_error(exc) from None


def choice_param(source: web.Request | Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    raw = _raw(source, name)
    if raw is None:
        return default
    if raw not in choices:
        raise http_error(InputError(name, f"one of {', '.join(choices)}"))
    return raw


# -- JSON bodies ------------------------------------------------------------------------------------

def json_depth_ok(text: str, max_depth: int) -> bool:
    """Whether `text`'s arrays and objects nest at most `max_depth` deep (strings do not count).

    Linear passes at C speed: strings and everything but brackets are removed, then innermost
    pairs `[]`/`{}` are removed once per level; anything left is deeper (or does not match)."""
    brackets = _NOT_BRACKET_RE.sub("", _STRING_RE.sub("", text))
    for _ in range(max_depth):
        if not brackets:
            return True
        brackets = _INNERMOST_RE.sub("", brackets)
    return not brackets


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(text: str, name: str = "body", *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`json.loads` for untrusted text: InputError when invalid, nested too deep, or NaN/Infinity."""
    if not json_depth_ok(text, max_depth):
        raise InputError(name, f"nested deeper than {max_depth} levels (or its brackets do not match)")
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise InputError(name, "not valid JSON") from None
    if "\\u" in text:  # an escaped lone surrogate ("\ud800") is JSON but no text a database can store
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(name, "a string with a lone surrogate (\\ud800…) is not text") from None
    return data


async def json_body(request: web.Request, *, max_depth: int = MAX_JSON_DEPTH, require_object: bool = True) -> Any:
    """The request's JSON body (an object unless `require_object=False`); 400 naming `body`."""
    try:
        text = await request.text()
    except UnicodeDecodeError:
        raise http_error(InputError("body", "not UTF-8 text")) from None
    try:
        data = parse_json(text, "body", max_depth=max_depth)
    except InputError as exc:
        raise http_error(exc) from None
    if require_object and not isinstance(data, dict):
        raise http_error(InputError("body", "must be a JSON object"))
    return data
