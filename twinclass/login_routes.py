"""Login with the province's identity provider (OpenID Connect), and the session it leaves.

    GET  /login?next=/path         to the provider (authorization code + PKCE); `next`: a path here
    GET  /auth/callback            back from it: state (once, this browser), code, ID token -> session
    POST /logout                   ends the session server-side; then to the provider's logout, if any
    GET  /api/session              who am I: name, role, roles, school, classroom (401 without a login)
    GET  /api/session/join-token?lesson=ID   a join token (5 min) minted from the session's claims,
                                   for the lesson page's socket.io `join` (same-origin requests only)

`session_middleware` resolves the cookie to `sfu.tokens.Claims` under `sfu.http_api.SESSION_CLAIMS`,
where `bearer_claims` (the one resolver of every route) finds it when a request carries no token.
The cookie holds only a random id: HttpOnly, SameSite=Lax, Path=/, Secure when the request came
over HTTPS (or a trusted proxy says so). A request that changes something (not GET/HEAD/OPTIONS)
is authenticated by the cookie only if it comes from our own pages (Sec-Fetch-Site, else Origin).
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sfu.admission import OriginPolicy, TrustedProxies
from sfu.http_api import SESSION_CLAIMS
from sfu.lessons import Role
from sfu.scope import covers, is_full_admin
from sfu.store import LessonStore
from sfu.tokens import Claims, TokenIssuer
from twinclass.login_roles import NoRole, RoleRule
from twinclass.oidc_client import OidcClient, OidcError
from twinclass.web_sessions import LoginAttempt, SessionStore, WebSession, new_secret

logger = logging.getLogger(__name__)

SESSION_COOKIE = "twinclass_session"
LOGIN_COOKIE = "twinclass_login"  # binds a login under way to the browser that began it
LOGIN_ENABLED = web.AppKey("twinclass.login_enabled", bool)
SESSION_KEY = "twinclass.session"  # request key: the WebSession
JOIN_TOKEN_TTL_S = 300.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
UNAUTHENTICATED_PREFIXES = ("/socket.io/", "/static/", "/vendor/")  # socket.io joins with a token in `join`


@dataclass(frozen=True)
class LoginConfig:
    """`twinclass serve --oidc-*` (README "Login")."""

    public_url: str
    roles: RoleRule
    provider_logout: bool = True  # after POST /logout, to the provider's end_session_endpoint


def _environ(request: web.Request) -> dict[str, Any]:
    """What sfu.admission's proxy and origin checks read, from an aiohttp request."""
    env: dict[str, Any] = {"aiohttp.request": request, "HTTP_HOST": request.host}
    for header in ("HOST", "PROTO", "FOR"):
        value = request.headers.get(f"X-Forwarded-{header.title()}")
        if value is not None:
            env[f"HTTP_X_FORWARDED_{header}"] = value
    return env


def _json_error(exc: type[web.HTTPException], message: str) -> web.HTTPException:
    return exc(text=json.dumps({"error": message}, ensure_ascii=False), content_type="application/json")


def _page(title: str, body: str, status: int) -> web.Response:
    text = ("<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><link rel='stylesheet' href='/static/css/lesson.css'></head>"
            f"<body class='simple-page'><main>{body}</main></body></html>")
    return web.Response(text=text, content_type="text/html", status=status, headers={"Cache-Control": "no-store"})


def _redirect(location: str, status: int = 302) -> web.Response:
    """A redirect that carries cookies (aiohttp's HTTPFound is for raising, not returning)."""
    return web.Response(status=status, headers={"Location": location, "Cache-Control": "no-store"})


def _safe_next(value: str | None) -> str:
    """A same-origin path to go to after the login; ValueError otherwise."""
    if not value:
        return "/"
    if not value.startswith("/") or value.startswith("//") or "\\" in value or any(ord(c) < 32 for c in value):
        raise ValueError("next: must be a path on this server (starting with one '/')")
    return value


def session_banner(request: web.Request) -> str:
    """Who is logged in, with a logout button (or a login link when login is on); '' otherwise."""
    session: WebSession | None = request.get(SESSION_KEY)
    if session is None:
        if not request.app.get(LOGIN_ENABLED, False):
            return ""
        return "<p class='session'><a id='login' href='/login'>登录 Log in</a></p>"
    c = session.claims
    who = html.escape(c.name) + (f" · {html.escape(c.school)}" if c.school else "")
    roles = html.escape(", ".join(session.roles))
    return (f"<form class='session' method='post' action='/logout'><span id='who'>已登录 Logged in: {who} "
            f"({roles})</span> <button id='logout' type='submit'>退出 Log out</button></form>")


class Login:
    def __init__(self, config: LoginConfig, client: OidcClient, sessions: SessionStore, store: LessonStore,
                 tokens: TokenIssuer, proxies: TrustedProxies) -> None:
        self.config = config
        self.client = client
        self.sessions = sessions
        self.store = store
        self.tokens = tokens
        self.proxies = proxies
        self.origins = OriginPolicy(config.public_url, (), proxies)
        self.redirect_uri = config.public_url.rstrip("/") + "/auth/callback"

    def _secure(self, request: web.Request) -> bool:
        return request.secure or self.proxies.forwarded(_environ(request), "PROTO") == "https"

    def _same_origin(self, request: web.Request) -> bool:
        """A request from our own pages, or not from a browser: the browser's `Sec-Fetch-Site` says
        same-origin; without one, its `Origin` is ours or absent. (Our pages send no Referer, so a
        browser's form POST says `Origin: null`: only Sec-Fetch-Site tells it is ours.)"""
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None:
            return site in ("same-origin", "none")
        return self.origins.allows(request.headers.get("Origin"), _environ(request))

    def _cookie(self, response: web.StreamResponse, request: web.Request, name: str, value: str,
                max_age: int, path: str = "/") -> None:
        response.set_cookie(name, value, max_age=max_age, path=path, httponly=True, samesite="Lax",
                            secure=self._secure(request))

    # -- the middleware -----------------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id and not request.path.startswith(UNAUTHENTICATED_PREFIXES) and (
                request.method in SAFE_METHODS or self._same_origin(request)):
            session = await asyncio.to_thread(self.sessions.get, session_id)
            if session is not None:
                request[SESSION_KEY] = session
                request[SESSION_CLAIMS] = session.claims
        return await handler(request)

    # -- routes -------------------------------------------------------------------------------------

    async def login(self, request: web.Request) -> web.StreamResponse:
        try:
            next_path = _safe_next(request.query.get("next"))
        except ValueError as exc:
            raise _json_error(web.HTTPBadRequest, str(exc)) from None
        try:
            auth = await self.client.authorization_request(self.redirect_uri)
        except OidcError as exc:
            logger.warning("login: %s", exc)
            return _page("Twinclass", "<h1>无法登录 · Login unavailable</h1><p>统一身份认证暂时无法使用。"
                         f"The identity provider cannot be reached: {html.escape(str(exc))}</p>", 502)
        browser = new_secret()
        attempt = LoginAttempt(nonce=auth.nonce, code_verifier=auth.code_verifier, next_path=next_path)
        await asyncio.to_thread(self.sessions.begin_login, auth.state, browser, attempt)
        response = _redirect(auth.url)
        self._cookie(response, request, LOGIN_COOKIE, browser, max_age=600, path="/auth/callback")
        return response

    async def callback(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        if q.get("error"):
            return self._refused(f"the provider answered {q['error']}", 400)
        for field in ("state", "code"):
            if not q.get(field):
                raise _json_error(web.HTTPBadRequest, f"{field}: missing from the callback")
        attempt = await asyncio.to_thread(self.sessions.take_login, q["state"], request.cookies.get(LOGIN_COOKIE, ""))
        if attempt is None:
            return self._refused("state: unknown, already used, expired, or begun in another browser", 400)
        if "iss" in q and q["iss"] != self.client.issuer:  # RFC 9207: a response from another provider
            return self._refused("iss: the answer comes from another identity provider", 400)
        try:
            id_claims, id_token = await self.client.exchange(q["code"], code_verifier=attempt.code_verifier,
                                                             redirect_uri=self.redirect_uri, nonce=attempt.nonce)
        except OidcError as exc:
            logger.warning("login refused: %s", exc)
            return self._refused(str(exc), 401)
        now = time.time()
        try:
            identity = self.config.roles.identity(id_claims, exp=int(now + self.sessions.absolute_s))
        except NoRole as exc:
            logger.info("login without a role: %s", exc)
            return _page("Twinclass", "<h1>没有权限 · No access</h1><p id='no-role'>你的账号在城乡结对课堂中没有角色。"
                         f"Your account has no role in Twinclass ({html.escape(str(exc))}). "
                         "请联系教育局管理员。Ask the bureau's administrator.</p>", 403)
        previous = request.cookies.get(SESSION_COOKIE)
        if previous:  # a new login is a new session: the old id (whoever knew it) ends here
            await asyncio.to_thread(self.sessions.delete, previous)
        session_id, expires = await asyncio.to_thread(self.sessions.create, identity.claims, identity.roles, id_token,
                                                      now)
        logger.info("login: %s as %s", identity.claims.sub, ",".join(identity.roles))
        response = _redirect(attempt.next_path)
        self._cookie(response, request, SESSION_COOKIE, session_id, max_age=int(expires - now))
        response.del_cookie(LOGIN_COOKIE, path="/auth/callback")
        return response

    def _refused(self, reason: str, status: int) -> web.Response:
        return _page("Twinclass", "<h1>登录失败 · Login failed</h1>"
                     f"<p id='login-error'>{html.escape(reason)}</p><p><a href='/login'>重新登录 Log in again</a></p>",
                     status)

    async def logout(self, request: web.Request) -> web.StreamResponse:
        if not self._same_origin(request):
            raise _json_error(web.HTTPForbidden, "Origin: logout only from this server's pages")
        session_id = request.cookies.get(SESSION_COOKIE)
        ended = await asyncio.to_thread(self.sessions.delete, session_id) if session_id else None
        target = "/"
        if ended is not None and self.config.provider_logout:
            target = await self.client.logout_url(ended.id_token, self.config.public_url.rstrip("/") + "/") or "/"
        response = _redirect(target, 303)
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    def _session(self, request: web.Request) -> WebSession:
        session: WebSession | None = request.get(SESSION_KEY)
        if session is None:
            raise _json_error(web.HTTPUnauthorized, "not logged in")
        return session

    async def whoami(self, request: web.Request) -> web.Response:
        session = self._session(request)
        c = session.claims
        body = {"name": c.name, "role": str(c.role), "roles": session.roles, "school": c.school or None,
                "classroom": c.classroom or None, "sub": c.sub, "expires_at": int(session.expires_at)}
        return web.json_response(body, dumps=lambda d: json.dumps(d, ensure_ascii=False),
                                 headers={"Cache-Control": "no-store"})

    async def join_token(self, request: web.Request) -> web.Response:
        if not self._same_origin(request):
            raise _json_error(web.HTTPForbidden, "Origin: join tokens only for this server's pages")
        session = self._session(request)
        lesson_id = request.query.get("lesson", "")
        if not lesson_id:
            raise _json_error(web.HTTPBadRequest, "lesson: required")
        lesson = await asyncio.to_thread(self.store.get, lesson_id)
        if lesson is None:
            raise _json_error(web.HTTPNotFound, f"lesson: {lesson_id!r} not found")
        c = session.claims
        if not covers(c, lesson):
            raise _json_error(web.HTTPForbidden, f"lesson: {lesson_id!r} is not one of this login's lessons")
        token = self.tokens.mint(ttl_s=JOIN_TOKEN_TTL_S, **_join_claims(c, lesson.id, lesson.master.id))
        return web.json_response({"token": token, "lesson": lesson.id, "ttl_s": JOIN_TOKEN_TTL_S},
                                 headers={"Cache-Control": "no-store"})

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/login", self.login), web.get("/auth/callback", self.callback),
                web.post("/logout", self.logout), web.get("/api/session", self.whoami),
                web.get("/api/session/join-token", self.join_token)]


def _join_claims(c: Claims, lesson_id: str, master_id: str) -> dict[str, Any]:
    """The JWT claims a login joins a lesson with: its teacher as the master classroom, a full admin
    as an admin (patrol), anyone else as an invisible observer. The login's `sub` stays the author."""
    if c.role == Role.MASTER:
        return {"lesson": lesson_id, "classroom": master_id, "name": c.name, "role": Role.MASTER, "sub": c.sub}
    if is_full_admin(c):
        return {"lesson": "", "classroom": "", "name": c.name, "role": Role.ADMIN, "sub": c.sub}
    return {"lesson": lesson_id, "classroom": "observer", "name": c.name, "role": Role.OBSERVER, "sub": c.sub}


def install(app: web.Application, login: Login) -> None:
    """The login routes and the session middleware (before any route reads who is asking)."""
    app[LOGIN_ENABLED] = True
    app.middlewares.append(login.middleware)
    app.add_routes(login.routes())
