"""The audit log also covers the lesson server's own admin APIs that change something
(`POST /api/lessons`, `PATCH /api/lessons/{id}`, `POST /api/lessons/{id}/tokens`,
`POST /api/schedule/solve`): one middleware writes an entry after each that succeeded, so those
routes need not know about the audit log."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from sfu.http_api import bearer_claims
from sfu.tokens import TokenIssuer
from web.admin.audit import AuditLog

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# (method, canonical route) -> action
AUDITED = {
    ("POST", "/api/lessons"): "api.lesson.create",
    ("PATCH", "/api/lessons/{lesson_id}"): "api.lesson.edit",
    ("POST", "/api/lessons/{lesson_id}/tokens"): "api.lesson.tokens",
    ("POST", "/api/schedule/solve"): "api.timetable.solve",
}


def audit_middleware(audit: AuditLog, tokens: TokenIssuer) -> Middleware:
    @web.middleware
    async def audited(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        resource = request.match_info.route.resource
        action = AUDITED.get((request.method, resource.canonical if resource else ""))
        if action is None or response.status >= 400:
            return response
        who = bearer_claims(request, tokens)  # the route already accepted it
        target = request.match_info.get("lesson_id", "")
        body = getattr(response, "body", None)
        detail: dict[str, object] = {}
        if isinstance(body, bytes) and not target:
            try:
                target = str(json.loads(body).get("id", ""))
            except (ValueError, AttributeError):
                target = ""
        if request.method == "PATCH":
            try:
                detail = {"fields": sorted(json.loads(await request.text()))}
            except (ValueError, TypeError):
                detail = {}
        await asyncio.to_thread(audit.record, who, action, target, detail)
        return response

    return audited
