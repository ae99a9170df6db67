"""The last-resort error middleware: an unexpected exception becomes a 500 JSON with a request id.

It is a safety net, not where input is checked (`twinclass.http_input` is): a route that lets an
exception through has a bug. Each such request logs one ERROR line (request id, method, path
without the query, exception type); the traceback is logged once per place it was raised, so a
client repeating a request that hits the bug cannot flood the log with tracebacks.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from twinclass.http_input import InputError, error_response, http_error

logger = logging.getLogger("twinclass.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_REMEMBERED = 256  # distinct places a traceback was logged for


def _where(exc: BaseException) -> tuple[str, str, int]:
    frames = traceback.extract_tb(exc.__traceback__)
    last = frames[-1] if frames else None
    return (type(exc).__name__, last.filename if last else "", last.lineno or 0 if last else 0)


def error_middleware() -> Middleware:
    seen: set[tuple[str, str, int]] = set()

    @web.middleware
    async def last_resort(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except InputError as exc:  # a helper's error that a route let through: still the client's
            raise http_error(exc) from None
        except Exception as exc:
            request_id = uuid.uuid4().hex[:12]
            where = _where(exc)
            first = where not in seen and len(seen) < MAX_REMEMBERED
            seen.add(where)
            logger.error("request %s: %s %s failed: %s at %s:%d%s", request_id, request.method, request.path,
                         where[0], where[1].rsplit("/", 1)[-1], where[2],
                         "" if first else " (traceback logged before)", exc_info=exc if first else None)
            return error_response(500, f"internal error (request {request_id})", request_id=request_id)

    return last_resort
