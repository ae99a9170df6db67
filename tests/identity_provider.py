"""A real OpenID Connect provider for the tests (imported as `identity_provider`): npm
`oidc-provider` from web/package-lock.json, run by tests/idp/provider.mjs on a free loopback port
with the test users below, started and stopped (by PID) by the test that needs it.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from harness import ROOT, StopsOnExit, free_port, terminate

PROVIDER_SCRIPT = ROOT / "tests" / "idp" / "provider.mjs"
CLIENT_ID = "twinclass"

# user name -> password, as tests/idp/provider.mjs has them (with their claims)
PASSWORDS = {"bureau": "bureau-pw", "schooladmin": "school-pw", "teacher": "teacher-pw",
             "observer": "observer-pw", "nobody": "nobody-pw"}


@dataclass
class Provider(StopsOnExit):
    issuer: str
    proc: subprocess.Popen[bytes]
    log: Path
    secret_file: Path

    def stop(self) -> None:
        terminate(self.proc)

    def login_code(self, redirect_uri: str, user: str, *, nonce: str, verifier: str) -> str:
        """A real login at this provider without a browser (its form, user + password): the code
        it sends to `redirect_uri`."""
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        params = {"client_id": CLIENT_ID, "redirect_uri": redirect_uri, "response_type": "code",
                  "scope": "openid profile", "state": secrets.token_urlsafe(8), "nonce": nonce,
                  "code_challenge": challenge, "code_challenge_method": "S256"}
        with httpx2.Client(base_url=self.issuer, timeout=10) as http:
            url = f"/auth?{urllib.parse.urlencode(params)}"
            for _ in range(10):
                resp = http.get(url)
                if resp.status_code == 200 and "<form" in resp.text:  # the login form
                    resp = http.post(f"{url.rstrip('/')}/login", data={"username": user, "password": PASSWORDS[user]})
                location = resp.headers.get("location", "")
                if location.startswith(redirect_uri):
                    return urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)["code"][0]
                if not location:
                    raise AssertionError(f"login at {self.issuer} stopped: {resp.status_code} {resp.text[:300]}")
                url = location
        raise AssertionError("login did not come back")

    def tokens(self, code: str, redirect_uri: str, verifier: str) -> dict[str, Any]:
        secret = self.secret_file.read_text().strip()
        resp = httpx2.post(f"{self.issuer}/token", auth=(CLIENT_ID, secret), timeout=10,
                          data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                                "code_verifier": verifier})
        resp.raise_for_status()
        return dict(resp.json())


def start_provider(directory: Path, redirect_uri: str, post_logout_uri: str, *more_redirect_uris: str) -> Provider:
    """The provider, with our client registered for `redirect_uri` (and any more given)."""
    directory.mkdir(parents=True, exist_ok=True)
    secret_file = directory / "client-secret"
    secret_file.write_text(secrets.token_urlsafe(24))
    secret_file.chmod(0o600)
    port = free_port()
    log = directory / f"provider-{port}.log"
    proc = subprocess.Popen(
        ["node", str(PROVIDER_SCRIPT), "--port", str(port), "--client-id", CLIENT_ID,
         "--client-secret-file", str(secret_file), "--redirect-uri", redirect_uri,
         *(arg for uri in more_redirect_uris for arg in ("--redirect-uri", uri)), "--post-logout-uri", post_logout_uri],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=str(ROOT))
    provider = Provider(issuer=f"http://127.0.0.1:{port}", proc=proc, log=log, secret_file=secret_file)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"identity provider exited:\n{log.read_text()}")
        try:
            if httpx2.get(f"{provider.issuer}/.well-known/openid-configuration", timeout=1).status_code == 200:
                return provider
        except httpx2.HTTPError:
            pass
        time.sleep(0.1)
    provider.stop()
    raise TimeoutError(f"identity provider not ready:\n{log.read_text()}")
