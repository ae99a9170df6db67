"""`twinclass serve --oidc-*`: login with the province's identity provider (README "Login").

Each option defaults to its environment variable (`TWINCLASS_OIDC_ISSUER`, `…_CLIENT_ID`,
`…_CLIENT_SECRET`, `…_ROLES_CLAIM`). The client secret is best given as a file
(`--oidc-client-secret-file`) or in the environment: `--oidc-client-secret S` shows in `ps`
(it works, with a warning). Without an issuer nothing changes: token links only.
"""

from __future__ import annotations

import argparse
import os

from sfu.credential_options import add_credential_options
from twinclass.oidc_client import OidcSettings

ENV = "TWINCLASS_OIDC_"


def add_login_options(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--oidc-issuer", default=os.environ.get(f"{ENV}ISSUER"),
                       help="OpenID Connect issuer URL of the identity provider (enables GET /login)")
    serve.add_argument("--oidc-client-id", default=os.environ.get(f"{ENV}CLIENT_ID"),
                       help=f"our client id at the provider (default: ${ENV}CLIENT_ID)")
    add_credential_options(serve, "oidc-client-secret", f"{ENV}CLIENT_SECRET", "client secret at the provider")
    serve.add_argument("--oidc-roles-claim", default=os.environ.get(f"{ENV}ROLES_CLAIM", "roles"),
                       help="ID token claim with the role values (default roles; groups is read when it is absent)")
    serve.add_argument("--oidc-local-logout", action="store_true",
                       help="POST /logout ends only our session (default: then the provider's too, if it can)")
    serve.add_argument("--session-max-age", type=float, default=12 * 3600.0, metavar="S",
                       help="seconds a login lasts at most (default 12 h)")
    serve.add_argument("--session-idle", type=float, default=2 * 3600.0, metavar="S",
                       help="seconds a login lasts unused (default 2 h)")


def oidc_settings(args: argparse.Namespace) -> OidcSettings | None:
    if not args.oidc_issuer:
        return None
    missing = [name for name, value in (("--oidc-client-id", args.oidc_client_id),
                                        ("--oidc-client-secret-file", args.oidc_client_secret)) if not value]
    if missing:
        raise SystemExit(f"twinclass serve: --oidc-issuer needs {' and '.join(missing)}")
    if not args.oidc_issuer.startswith(("https://", "http://127.", "http://localhost", "http://[::1]")):
        raise SystemExit("twinclass serve: --oidc-issuer must be an https:// URL (http only on loopback)")
    if args.session_max_age <= 0 or args.session_idle <= 0:
        raise SystemExit("twinclass serve: --session-max-age and --session-idle must be positive")
    return OidcSettings(issuer=args.oidc_issuer, client_id=args.oidc_client_id, client_secret=args.oidc_client_secret)
