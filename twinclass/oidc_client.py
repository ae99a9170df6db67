"""The OpenID Connect relying party: authorization-code flow with PKCE (S256) through Authlib.

The provider is found by its discovery document (`<issuer>/.well-known/openid-configuration`),
whose `issuer` must be exactly the configured one; ID tokens are checked against its JWKS
(signature, `iss`, `aud` = our client id, `exp`/`iat`, `nonce`, `at_hash`) by Authlib.
The client secret goes only to the token endpoint (client_secret_basic), never to a log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx2
from authlib.integrations.base_client import BaseApp, OAuthError
from authlib.integrations.base_client.async_app import AsyncOAuth2Mixin
from authlib.integrations.base_client.async_openid import AsyncOpenIDMixin
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc.errors import JoseError

logger = logging.getLogger(__name__)

SCOPE = "openid profile"
HTTP_TIMEOUT_S = 10.0
LEEWAY_S = 60  # clock skew allowed on exp/iat


class OidcError(Exception):
    """A login the provider or its ID token does not support; the message says why (no secrets)."""


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    client_id: str
    client_secret: str

    def __repr__(self) -> str:  # never the secret
        return f"OidcSettings(issuer={self.issuer!r}, client_id={self.client_id!r})"


@dataclass(frozen=True)
class AuthorizationRequest:
    url: str
    state: str
    nonce: str
    code_verifier: str


class _Provider(AsyncOAuth2Mixin, AsyncOpenIDMixin, BaseApp):  # type: ignore[misc]
    """Authlib's framework-neutral OAuth 2 + OpenID app over httpx (the Starlette one minus sessions)."""

    client_cls = AsyncOAuth2Client


class OidcClient:
    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self.issuer = settings.issuer
        self._app = _Provider(
            framework=None, client_id=settings.client_id, client_secret=settings.client_secret,
            server_metadata_url=settings.issuer.rstrip("/") + "/.well-known/openid-configuration",
            client_kwargs={"scope": SCOPE, "code_challenge_method": "S256", "timeout": HTTP_TIMEOUT_S,
                           "token_endpoint_auth_method": "client_secret_basic"},
        )

    async def metadata(self) -> dict[str, Any]:
        """The discovery document (fetched once); OidcError if unreachable or for another issuer."""
        try:
            metadata: dict[str, Any] = await self._app.load_server_metadata()
        except (httpx2.HTTPError, ValueError) as exc:
            raise OidcError(f"the provider's discovery document could not be read ({type(exc).__name__})") from exc
        if metadata.get("issuer") != self.issuer:
            self._app.server_metadata.clear()
            raise OidcError(f"the discovery document names the issuer {metadata.get('issuer')!r}, "
                            f"not {self.issuer!r}")
        return metadata

    async def authorization_request(self, redirect_uri: str) -> AuthorizationRequest:
        await self.metadata()
        rv = await self._app.create_authorization_url(redirect_uri)
        return AuthorizationRequest(url=rv["url"], state=rv["state"], nonce=rv["nonce"],
                                    code_verifier=rv["code_verifier"])

    async def exchange(self, code: str, *, code_verifier: str, redirect_uri: str,
                       nonce: str) -> tuple[dict[str, Any], str]:
        """Trade the code (once) for tokens; returns the validated ID token's claims and the ID token."""
        await self.metadata()
        try:
            token = await self._app.fetch_access_token(redirect_uri=redirect_uri, code=code,
                                                       code_verifier=code_verifier)
        except OAuthError as exc:  # e.g. invalid_grant: the code was used already or has expired
            raise OidcError(f"the provider refused the code ({exc.error})") from exc
        except (httpx2.HTTPError, ValueError) as exc:
            raise OidcError(f"the token endpoint could not be reached ({type(exc).__name__})") from exc
        return await self.validate_id_token(token, nonce), str(token.get("id_token", ""))

    async def validate_id_token(self, token: dict[str, Any], nonce: str) -> dict[str, Any]:
        """The claims of `token["id_token"]` once signature, iss, aud, exp, iat and nonce hold."""
        if not token.get("id_token"):
            raise OidcError("the provider sent no ID token (is the scope 'openid' allowed for this client?)")
        await self.metadata()
        options = {"iss": {"essential": True, "values": [self.issuer]},
                   "aud": {"essential": True, "values": [self.settings.client_id]},
                   "exp": {"essential": True}, "nonce": {"essential": True}}
        try:
            claims = await self._app.parse_id_token(token, nonce, claims_options=options, leeway=LEEWAY_S)
        except (JoseError, ValueError) as exc:
            detail = getattr(exc, "description", "") or ""
            raise OidcError(f"the ID token is not valid ({type(exc).__name__} {detail})".replace(" )", ")")) from exc
        except httpx2.HTTPError as exc:
            raise OidcError(f"the provider's keys could not be read ({type(exc).__name__})") from exc
        if claims is None:
            raise OidcError("the provider sent no ID token")
        return dict(claims)

    async def logout_url(self, id_token: str, post_logout_redirect_uri: str) -> str | None:
        """The provider's end_session_endpoint for this login, or None if it has none."""
        try:
            metadata = await self.metadata()
        except OidcError:
            return None
        if not metadata.get("end_session_endpoint"):
            return None
        result = await self._app.create_logout_url(post_logout_redirect_uri=post_logout_redirect_uri,
                                                   id_token_hint=id_token or None,
                                                   client_id=self.settings.client_id)
        return str(result["url"])
